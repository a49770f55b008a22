"""`python -m bench.readers`: the reader processes' CPU a bundle, on a few bench bundles
through the real pool (one reader process)."""

from __future__ import annotations

import multiprocessing
import statistics
from pathlib import Path

import pytest

from bench import evaluate, readers


def test_every_pass_gives_one_figure_a_bundle_and_the_report_shows_their_median(
        tmp_path: Path) -> None:
    """Each measured pass gives one figure a bundle for each of the four costs (the
    children's and this process's, for the read and for the check); the printed value
    is their median, each pass's beside it; the reader processes are gone afterwards."""
    fig = readers.measure(tmp_path, n=2, passes=3, workers=1)
    series = (fig.evaluate_children, fig.evaluate_here, fig.check_children, fig.check_here)
    assert fig.bundles == 2 and fig.passes == 3
    assert all(len(xs) == 3 and min(xs) >= 0 for xs in series)
    lines = readers.report(fig).splitlines()
    assert lines[0] == ("2 bundles, 1 reader processes, 3 passes; "
                        "median (each pass) CPU a bundle:")
    for line, children, here in ((lines[1], fig.evaluate_children, fig.evaluate_here),
                                 (lines[2], fig.check_children, fig.check_here)):
        assert f"children {statistics.median(children):.3f} ms (" in line
        assert f"this process {statistics.median(here):.3f} ms (" in line
    both = [a + b for a, b in zip(fig.evaluate_children, fig.check_children, strict=True)]
    assert lines[3] == (f"both:     children {statistics.median(both):.3f} ms ("
                        + " ".join(f"{x:.2f}" for x in both) + ")")
    # The readers' collector is shown under its own name.
    assert "readers" in dict(fig.by_thread)
    assert multiprocessing.active_children() == []


def test_an_invalid_bench_bundle_stops_the_measurement_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bench bundle that does not read valid is not measured as the usual bundle: the
    run stops with an error that names its invoice file and what is wrong with it."""
    monkeypatch.setattr(evaluate, "write_bundles", _bundles_with_a_broken_pdf)  # writes its outbox
    with pytest.raises(RuntimeError, match=r"INV-B00004\.xml.*timesheet\.pdf"):
        readers.measure(tmp_path, n=4, passes=1, workers=1)
    assert multiprocessing.active_children() == []


def _bundles_with_a_broken_pdf(root: Path, n: int) -> None:
    from bench.corpus import write_bundles
    write_bundles(root, n)
    (root / "INV-B00004" / "timesheet.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00" * 64)


def test_threads_of_one_name_are_added_up_not_one_of_them_shown() -> None:
    """Threads the OS shows under one name (the main thread and any unnamed thread are
    all `python` on 3.11) are added up under it; a thread started meanwhile counts from
    zero; each figure is ms a call."""
    before = {"python:10": 1.0, "python:11": 0.5, "readers:12": 2.0}
    after = {"python:10": 1.2, "python:11": 0.8, "readers:12": 2.1, "python:13": 0.1}
    spent = readers.by_thread(before, after, calls=100)
    assert spent.keys() == {"python", "readers"}
    assert spent["python"] == pytest.approx((0.2 + 0.3 + 0.1) / 100 * 1e3)
    assert spent["readers"] == pytest.approx(0.1 / 100 * 1e3)
