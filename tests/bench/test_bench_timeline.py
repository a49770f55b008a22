"""The timeline phase: one burst seen in 0.1-s rows, run only when named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import report, timeline
from bench.context import Context
from bench.timeline import Sample


def test_rows_give_what_each_tenth_of_a_second_received_and_used() -> None:
    """A row closes once 0.1 s has passed since the last (and at the end); bundles a
    second, and CPU and idle time in cores over that row."""
    samples = [Sample(0.0, 0, 0, 0.0, 0.0, 0.0, 10.0),
               Sample(0.05, 2, 0, 0.02, 0.03, 0.0, 10.05),
               Sample(0.1, 4, 1, 0.05, 0.07, 0.01, 10.08),
               Sample(0.15, 4, 3, 0.06, 0.07, 0.05, 10.1)]
    assert timeline.rows(samples) == [
        ("0.10", "4", "1", "10", "0.50", "0.70", "0.10", "0.80"),
        ("0.15", "4", "3", "40", "0.20", "0.00", "0.80", "0.40"),
    ]


def test_a_reader_replaced_mid_burst_adds_its_cpu_from_its_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The readers' CPU grows by what each one used since the last reading: one that
    ended adds nothing more (no drop), its replacement is found by listing the tree
    again and counts from its start."""
    trees = iter(([10, 11, 12], [10, 11, 13]))
    readings = iter(({11: 1.0, 12: 2.0}, {11: 1.5}, {11: 1.6, 13: 0.2}))
    current: dict[int, float] = {}

    def cpu(pid: int) -> float:
        if pid not in current:
            raise FileNotFoundError(pid)
        return current[pid]

    monkeypatch.setattr(timeline, "tree", lambda pid: next(trees))
    monkeypatch.setattr(timeline, "cpu_seconds", cpu)
    sampler = timeline._Sampler(10, None, Path("."), 3)  # type: ignore[arg-type]
    seen = []
    for reading in readings:
        current.clear()
        current.update(reading)
        seen.append(sampler._readers())
    assert seen == pytest.approx([0.0, 0.5, 0.8])


def test_the_timeline_runs_only_when_named() -> None:
    assert "timeline" not in cli.parse([]).phases
    assert cli.parse(["timeline"]).phases == ["timeline"]


def test_the_timeline_follows_one_real_burst_until_the_receiver_holds_every_bundle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a real daemon and receiver: the table ends with every bundle claimed and
    received, every claim comes before the end, and the recorded section holds the
    table under its title."""
    ctx = Context(tmp_path, n=3, backlog_sizes=(), journal_rows=0, corpus_size=3)
    with ctx.phase("timeline"):
        timeline.timeline(ctx)
    r = ctx.results
    total, claimed = r.value("timeline_time"), r.value("timeline_claims_done")
    assert total is not None and claimed is not None and 0 < claimed <= total
    last = r.tables["Timeline of the burst"].rows[-1]
    assert last[1:3] == ("3", "3") and float(last[0]) == pytest.approx(total, abs=0.01)
    md = tmp_path / "benchmarks.md"
    monkeypatch.setattr(report, "BENCHMARKS_MD", md)
    report.record(r, report.machine(tmp_path), "python -m bench timeline --record",
                  datetime.now(UTC))
    text = md.read_text()
    assert "### Timeline of the burst" in text
    assert "| s after the last rename | claimed | received |" in text
