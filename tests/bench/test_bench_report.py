"""Judging figures against the issue's targets, ratios, the journal the bench
builds, and the dated section it appends to docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import idle, report
from bench.context import Context
from daemon.journal import Journal


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


def test_the_bench_journal_is_read_by_the_daemons_own_queries(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    counts = idle.fill_journal(str(path), 2000)
    journal = Journal(path, readonly=True)
    try:
        assert sum(journal.counts().values()) == 2000
        assert journal.counts()["sent"] == counts["sent"] > 1900
        assert len(journal.recent()) == 2000  # every sent row lies within the last week
    finally:
        journal.close()


def test_record_appends_a_dated_section_with_machine_command_and_verdicts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime
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
