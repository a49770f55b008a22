"""`python -m bench.evaluate`: CPU per bundle of finish.evaluate on the bench's bundles."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from bench import evaluate


def test_every_pass_is_timed_and_the_median_reported(tmp_path: Path) -> None:
    """Each pass over all bundles gives one figure per bundle; the report is their median."""
    fig = evaluate.measure(tmp_path, n=2, passes=3)
    assert fig.bundles == 2 and len(fig.per_pass_ms) == 3
    assert all(ms > 0 for ms in fig.per_pass_ms)
    assert fig.median_ms == statistics.median(fig.per_pass_ms)


def test_an_invalid_bench_bundle_stops_the_measurement(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle with errors is not timed as if it were the usual bundle: it is refused."""
    monkeypatch.setattr(evaluate, "write_bundles", _bundles_with_a_broken_pdf)
    with pytest.raises(RuntimeError, match="INV-B00001.xml"):
        evaluate.measure(tmp_path, n=1, passes=1)


def _bundles_with_a_broken_pdf(root: Path, n: int) -> None:
    from bench.corpus import write_bundles
    write_bundles(root, n)
    (root / "INV-B00001" / "timesheet.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00" * 64)
