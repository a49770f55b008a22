"""Judging figures against the issue's targets, ratios, and the dated section the bench
appends to docs/benchmarks.md."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import idle, procs, report
from bench.context import Context


def test_a_target_is_met_missed_or_not_measured() -> None:
    results = report.Results()
    results.add("backlog_2000_cpu", "cpu", 0.4, "%")
    results.add("backlog_20000_cpu", "cpu", 95.0, "%")
    by_key = {t.key: t for t in report.TARGETS}
    assert report.verdict(by_key["backlog_2000_cpu"], results) == "met"
    assert report.verdict(by_key["backlog_20000_cpu"], results) == "**missed**"
    assert report.verdict(by_key["latency_p50"], results) == "not measured"


def test_ratios_come_from_the_same_run_or_say_n_a(tmp_path: Path) -> None:
    ctx = Context(tmp_path, n=300, backlog_sizes=(), journal_rows=0)
    ctx.results.add("throughput_time", "t", 2.0, "s")
    ctx.results.add("peer_time", "p", 5.0, "s")
    cli._ratios(ctx)
    assert ctx.results.value("ratio_peer") == pytest.approx(2.5)
    assert ctx.results.value("ratio_baseline") is None
    assert ctx.results.figures["ratio_baseline"].shown() == "n/a"


def test_the_floor_is_the_settle_plus_the_bursts_cpu_over_the_cores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor spreads outboxd's and the receiver's CPU of the burst over the cores,
    after the settle, and its ratio to httpx is shown beside the judged one; turned
    round, the CPU a bundle outboxd may spend for the 1.4× target; without the CPU
    figures there is neither."""
    monkeypatch.setattr(report, "cores", lambda: 2)
    ctx = Context(tmp_path, n=300, backlog_sizes=(), journal_rows=0)
    cli._ratios(ctx)
    assert "throughput_floor" not in ctx.results.figures
    assert "throughput_cpu_budget" not in ctx.results.figures
    ctx.results.add("throughput_time", "t", 3.2, "s")
    ctx.results.add("throughput_cpu", "c", 3.0, "s")
    ctx.results.add("throughput_receiver_cpu", "r", 1.8, "s")
    ctx.results.add("baseline_time", "b", 2.0, "s")
    cli._ratios(ctx)
    assert ctx.results.value("throughput_floor") == pytest.approx(cli.SETTLE + 2.4)
    assert ctx.results.value("ratio_baseline_floor") == pytest.approx((cli.SETTLE + 2.4) / 2)
    assert ctx.results.value("ratio_baseline") == pytest.approx(1.6)
    # (1.4 × 2.0 s − settle) × 2 cores − 1.8 s of the receiver, over 300 bundles:
    budget = ctx.results.figures["throughput_cpu_budget"]
    assert budget.value == pytest.approx(((2.8 - cli.SETTLE) * 2 - 1.8) / 300 * 1000)
    assert budget.unit == "ms" and "full use of the cores" in budget.note


def test_rounds_are_judged_by_the_median_of_each_rounds_own_ratio() -> None:
    """With --rounds, a burst's time is the median over the rounds, every round's value is
    in the note, and a ratio is the median of the ratios of each round (bursts that ran
    side by side), not a ratio of medians from different rounds."""
    rounds = []
    for daemon, httpx_time in ((3.0, 2.0), (9.0, 3.0), (4.0, 2.0)):
        r = report.Results()
        r.add("throughput_time", "t", daemon, "s", "300 bundles")
        r.add("baseline_time", "b", httpx_time, "s")
        r.add("ratio_baseline", "ratio", daemon / httpx_time, "x", "lower is better")
        rounds.append(r)
    merged = report.Results()
    report.merge_rounds(merged, rounds)
    assert merged.value("throughput_time") == 4.0
    assert merged.value("ratio_baseline") == 2.0  # of 1.5, 3.0, 2.0
    assert merged.figures["throughput_time"].note == \
        "median of 3 rounds (3.00 s, 9.00 s, 4.00 s); 300 bundles"
    assert cli.parse(["throughput", "--rounds", "3"]).rounds == 3
    with pytest.raises(SystemExit):
        cli.parse(["--rounds", "0"])


def test_a_rate_a_bundle_is_worked_out_from_the_value_even_for_a_median() -> None:
    """"ms a bundle" and "bundles/s" are computed from the figure's own value when shown,
    so a median over rounds states the median's rate, not the first round's."""
    rounds = []
    for cpu, took in ((2.0, 1.5), (2.4, 2.0), (3.0, 3.0)):
        r = report.Results()
        r.add("throughput_cpu", "c", cpu, "s", rate="cpu", bundles=300)
        r.add("throughput_time", "t", took, "s", "settle 0.2 s", rate="time", bundles=300)
        rounds.append(r)
    assert rounds[0].figures["throughput_cpu"].text() == "6.7 ms a bundle"
    merged = report.Results()
    report.merge_rounds(merged, rounds)
    assert merged.figures["throughput_cpu"].text() == \
        "median of 3 rounds (2.00 s, 2.40 s, 3.00 s); 8.0 ms a bundle"
    assert merged.figures["throughput_time"].text() == \
        "median of 3 rounds (1.50 s, 2.00 s, 3.00 s); settle 0.2 s; 150 bundles/s"
    assert report.Figure("b", "budget", -2.0, "ms").shown() == "-2.0 ms"


def test_the_preflight_ratio_needs_both_bursts_of_the_same_run(tmp_path: Path) -> None:
    ctx = Context(tmp_path, n=300, backlog_sizes=(), journal_rows=0)
    ctx.results.add("throughput_preflight_time", "t", 2.4, "s")
    cli._ratios(ctx)
    fig = ctx.results.figures["ratio_preflight"]
    assert fig.value is None and fig.shown() == "n/a" and "throughput not" in fig.note
    ctx.results.add("throughput_time", "t", 2.0, "s")
    cli._ratios(ctx)
    assert ctx.results.value("ratio_preflight") == pytest.approx(1.2)
    by_key = {t.key: t for t in report.TARGETS}
    assert report.verdict(by_key["ratio_preflight"], ctx.results) == "met"


def test_without_a_preflight_burst_the_ratio_is_n_a_and_not_judged(tmp_path: Path) -> None:
    ctx = Context(tmp_path, n=300, backlog_sizes=(), journal_rows=0)
    ctx.results.add("throughput_time", "t", 2.0, "s")
    cli._ratios(ctx)
    assert ctx.results.figures["ratio_preflight"].shown() == "n/a"
    by_key = {t.key: t for t in report.TARGETS}
    assert report.verdict(by_key["ratio_preflight"], ctx.results) == "not measured"


def test_the_preflight_target_is_on_at_most_1_3_times_off() -> None:
    results = report.Results()
    results.add("ratio_preflight", "r", 1.31, "x")
    by_key = {t.key: t for t in report.TARGETS}
    assert report.verdict(by_key["ratio_preflight"], results) == "**missed**"


def test_phases_run_in_order_with_the_preflight_ones_beside_their_kin() -> None:
    """All run in this order by default; the timeline only when named."""
    assert cli.parse([]).phases == ["baseline", "peer", "throughput", "throughput-preflight",
                                    "latency", "backlog", "journal", "sidecar",
                                    "preflight"]
    assert list(cli.PHASES)[-1] == "timeline"
    args = cli.parse(["preflight", "throughput-preflight", "throughput", "--journal-days", "30"])
    assert args.phases == ["throughput", "throughput-preflight", "preflight"]
    assert args.journal_days == 30
    assert cli.parse([]).journal_days == 365


def test_daemons_run_without_preflight_unless_a_phase_asks(tmp_path: Path) -> None:
    off = tomllib.loads(procs.write_config(tmp_path, "a", "http://127.0.0.1:9/").read_text())
    on = tomllib.loads(procs.write_config(tmp_path, "b", "http://127.0.0.1:9/",
                                          einvoice={"preflight": "error"}).read_text())
    assert off["einvoice"]["preflight"] == "off"
    assert on["einvoice"]["preflight"] == "error"


def test_record_appends_a_dated_section_with_machine_command_and_verdicts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    md = tmp_path / "benchmarks.md"
    monkeypatch.setattr(report, "BENCHMARKS_MD", md)
    results = report.Results()
    results.add("latency_p50", "latency p50", 40.0, "ms")
    info = report.machine(tmp_path)
    report.record(results, info, "python -m bench latency --record", datetime.now(UTC))
    report.record(results, info, "python -m bench latency --record", datetime.now(UTC))
    text = md.read_text()
    assert text.count("# Benchmarks\n") == 1
    assert text.count("Command: `python -m bench latency --record`") == 2
    assert "| latency p50 | ≤ settle + 150 ms | 40.0 ms | met |" in text
    assert f"- cores: {info['cores']}" in text and "file system of the work dir" in text


def test_each_round_has_its_own_receiver_store(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A second round posts the same bundles again: to a fresh receiver (a store that
    already held them would answer 200, "seen before", which the baseline counts as
    failed), so every round succeeds."""
    assert cli.main(["baseline", "--rounds", "2", "--n", "3", "--workdir", str(tmp_path)]) == 0
    assert "median of 2 rounds" in capsys.readouterr().out


def test_idle_cpu_is_the_quietest_window_so_the_periods_rescan_lands_in_its_own_figure() -> None:
    """The rescan period holds one full rescan wherever it falls (here at 5 s): the idle
    figure is the window of at least 20 s with the least CPU, not the first 20 s."""
    samples = [(float(t), 0.01 * t + (0.3 if t >= 5 else 0.0)) for t in range(61)]
    busy, span = idle.quietest(samples, 20.0)
    assert span == 20.0
    assert abs(busy - 0.2) < 1e-9  # 0.01 CPU-s a second, the rescan's 0.3 left out
    # Only a window longer than the period cannot avoid it.
    with pytest.raises(procs.BenchError):
        idle.quietest(samples, 61.0)


def test_a_verdict_says_how_many_rounds_met_the_target_when_they_disagree(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The verdict is the median's; when the rounds fall on both sides of the target, it
    also says how many met it (a median near the target lands either side by chance),
    and the printed table shows it without the bold."""
    by_key = {t.key: t for t in report.TARGETS}

    def merged(*ratios: float) -> report.Results:
        rounds = []
        for ratio in ratios:
            r = report.Results()
            r.add("ratio_baseline", "ratio", ratio, "x", "lower is better")
            rounds.append(r)
        out = report.Results()
        report.merge_rounds(out, rounds)
        return out

    target = by_key["ratio_baseline"]
    assert report.verdict(target, merged(1.36, 1.5, 1.62)) == \
        "**missed** (1 of 3 rounds met it)"
    assert report.verdict(target, merged(1.3, 1.38, 1.62)) == "met (2 of 3 rounds met it)"
    assert report.verdict(target, merged(1.5, 1.6, 1.7)) == "**missed**"
    assert report.verdict(target, merged(1.2, 1.3, 1.35)) == "met"
    single = report.Results()
    single.add("ratio_baseline", "ratio", 1.5, "x")
    assert report.verdict(target, single) == "**missed**"
    report.print_results(merged(1.36, 1.5, 1.62), {})
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(target.figure)]
    assert line.rstrip().endswith("missed (1 of 3 rounds met it)") and "*" not in line
