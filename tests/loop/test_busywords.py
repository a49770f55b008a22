"""Since when a bundle held by an in-progress name is unchanged, on the loop's clock: what
the loop counts STUCK_SECONDS from (pipeline._busy)."""

from __future__ import annotations

import pytest

from daemon.loop.busywords import stuck_said, unchanged_since
from daemon.watching.snapshot import Entry, Snapshot

WALL = 1_800_000_000.0  # the wall clock at the look, seconds


def _snap(*ages: float) -> Snapshot:
    """A bundle whose entries were last changed `ages` seconds before WALL (mtime, and
    a change time one second later, as a rename leaves it)."""
    entries: list[Entry] = []
    for n, age in enumerate(ages):
        at = int((WALL - age) * 1e9)
        entries.append((f"INV-1/f{n}", "f", 1, at - 10**9, 0o640, 0, 0, at, n + 1))
    return Snapshot(tuple(entries), busy=True)


@pytest.mark.parametrize("now", [0.0, 1e9])
def test_a_bundle_unchanged_for_two_days_counts_from_its_newest_file(now: float) -> None:
    """Files last changed two days and three days ago, first seen by this process now:
    unchanged since two days before now on the loop's clock, whatever that clock reads."""
    assert unchanged_since(_snap(3 * 86400, 2 * 86400), now, now, WALL) == \
        pytest.approx(now - 2 * 86400)


def test_a_file_time_ahead_of_the_wall_clock_counts_as_no_age() -> None:
    """A file server whose clock runs an hour fast: never a since before the look, nor
    one after it."""
    assert unchanged_since(_snap(-3600.0), seen=5.0, now=5.0, wall=WALL) == 5.0


def test_a_bundle_without_entries_counts_from_the_look() -> None:
    assert unchanged_since(Snapshot((), busy=True), seen=3.0, now=9.0, wall=WALL) == 3.0


def test_the_row_says_since_when_in_utc() -> None:
    """The why names the file, the wall-clock time it is unchanged since, and the fix."""
    said = stuck_said(["INV-1/~$a.docx"], 1_800_000_000.0)
    assert said.startswith("waits for INV-1/~$a.docx: an in-progress name, unchanged since "
                           "2027-01-15 08:00:00 UTC — a lock file that Word")
