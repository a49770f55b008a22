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
    second, and CPU and idle time in cores over that row; the readers are the tree
    less outboxd's own process."""
    samples = [Sample(0.0, 0, 0, 0.0, 0.0, 0.0, 10.0),
               Sample(0.05, 2, 0, 0.02, 0.05, 0.0, 10.05),
               Sample(0.1, 4, 1, 0.05, 0.12, 0.01, 10.08),
               Sample(0.15, 4, 3, 0.06, 0.13, 0.05, 10.1)]
    assert timeline.rows(samples) == [
        ("0.10", "4", "1", "10", "0.50", "0.70", "0.10", "0.80"),
        ("0.15", "4", "3", "40", "0.20", "0.00", "0.80", "0.40"),
    ]


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
