"""Settling (docs/folder-convention.md, section 4): ready only when nothing changed for
settle_seconds; explicit clocks."""

from __future__ import annotations

import pytest

from daemon.watching.settle import MOVED_AGAIN, PACE_FROM, PACE_PER_ENTRY, Pacer, SettleTracker
from daemon.watching.snapshot import Entry, Snapshot

A = Snapshot((("INV-1.xml", "f", 10, 1),), busy=False)
B = Snapshot((("INV-1.xml", "f", 11, 2),), busy=False)
# A look that found the sidecar gone when it opened it (a clerk renamed it meanwhile).
MOVED = Snapshot((("INV-1.xml", "f", 10, 1), ("INV-1", "d", 0, 1)), busy=False,
                 moved=("INV-1",))
BUSY = Snapshot((("INV-1.xml", "f", 10, 1), ("INV-1/x.pdf.part", "f", 3, 1)), busy=True)


class TestSettleTracker:
    def test_first_sight_is_not_settled(self) -> None:
        """The first observation never settles when settle_seconds > 0."""
        t = SettleTracker(5)
        assert not t.observe("INV-1.xml", A, now=100.0)

    def test_settles_after_settle_seconds_unchanged(self) -> None:
        """An unchanged snapshot settles once settle_seconds have passed, not before."""
        t = SettleTracker(5)
        t.observe("k", A, now=100.0)
        assert not t.observe("k", A, now=102.0)
        assert not t.observe("k", A, now=104.999)
        assert t.observe("k", A, now=105.0)
        assert t.observe("k", A, now=200.0)

    def test_change_restarts_clock(self) -> None:
        """A change (close and reopen) restarts the clock from the time it was seen."""
        t = SettleTracker(5)
        t.observe("k", A, now=100.0)
        assert not t.observe("k", B, now=104.0)
        assert t.ready_at("k") == 109.0
        assert not t.observe("k", B, now=108.0)
        assert t.observe("k", B, now=109.0)

    def test_change_back_still_restarts(self) -> None:
        """A -> B -> A is two changes: the clock starts again at the last one."""
        t = SettleTracker(5)
        t.observe("k", A, now=0.0)
        t.observe("k", B, now=1.0)
        assert not t.observe("k", A, now=5.5)
        assert not t.observe("k", A, now=10.0)
        assert t.observe("k", A, now=10.5)

    def test_busy_never_settles(self) -> None:
        """An in-progress name in the sidecar keeps the bundle from settling, however long."""
        t = SettleTracker(5)
        t.observe("k", BUSY, now=0.0)
        assert not t.observe("k", BUSY, now=10.0)
        assert not t.observe("k", BUSY, now=10_000.0)

    def test_busy_with_zero_settle_seconds(self) -> None:
        """Busy never settles, not even with settle_seconds = 0."""
        t = SettleTracker(0)
        assert not t.observe("k", BUSY, now=0.0)
        assert not t.observe("k", BUSY, now=1.0)

    def test_after_busy_clock_starts_when_copy_ends(self) -> None:
        """When the copy finishes the clock starts then, not when busy was first seen."""
        t = SettleTracker(5)
        t.observe("k", BUSY, now=0.0)
        assert not t.observe("k", A, now=100.0)
        assert not t.observe("k", A, now=104.0)
        assert t.observe("k", A, now=105.0)

    def test_zero_settle_seconds_settles_at_once(self) -> None:
        """settle_seconds = 0: ready as soon as it has been looked at once."""
        assert SettleTracker(0).observe("k", A, now=0.0)

    def test_fractional_settle_seconds(self) -> None:
        """Durations may be fractional (tests run with 0.3)."""
        t = SettleTracker(0.3)
        t.observe("k", A, now=1.0)
        assert not t.observe("k", A, now=1.2)
        assert t.observe("k", A, now=1.3)

    @pytest.mark.parametrize("settle", [5.0, 0.0])
    def test_a_look_that_saw_a_folder_go_never_settles_and_restarts_the_clock(
            self, settle: float) -> None:
        """A look that found a folder of the sidecar gone (or replaced) when it opened it
        is a change each time, even one just like the last (a share without change
        times), and even with settle_seconds = 0: never settled on, the quiet period
        starts again from it (a timer then, never due at once: MOVED_AGAIN at the
        earliest, else settle_seconds = 0 had the loop look again and again at full
        speed); the look after it, of what the folder became, settles a quiet period
        later."""
        wait = max(settle, MOVED_AGAIN)
        t = SettleTracker(settle)
        t.observe("k", A, now=0.0)
        assert not t.observe("k", MOVED, now=100.0)
        assert t.ready_at("k") == 100.0 + wait
        assert not t.observe("k", MOVED, now=100.0 + wait)
        assert t.ready_at("k") == 100.0 + 2 * wait
        assert not t.observe("k", MOVED, now=10_000.0)
        assert t.observe("k", A, now=10_000.0) == (settle == 0)
        assert t.observe("k", A, now=10_000.0 + settle)

    def test_keys_are_independent(self) -> None:
        """Each invoice file has its own clock."""
        t = SettleTracker(5)
        t.observe("a", A, now=0.0)
        t.observe("b", A, now=4.0)
        assert t.observe("a", A, now=5.0)
        assert not t.observe("b", A, now=5.0)
        assert (t.last("a"), t.last("b")) == (A, A)

    def test_forget_restarts(self) -> None:
        """After forget() the key is new again: first sight, no settling yet."""
        t = SettleTracker(5)
        t.observe("k", A, now=0.0)
        t.forget("k")
        assert t.ready_at("k") is None
        assert not t.observe("k", A, now=100.0)
        assert t.ready_at("k") == 105.0


    def test_first_look_holds_until_a_change_is_seen(self) -> None:
        """A key looks as at the first look until a change is seen (then never again while
        it is tracked, also when it changes back); forgotten, the next look is a first."""
        t = SettleTracker(5)
        assert not t.first_look("k")
        t.observe("k", BUSY, now=0.0)
        t.observe("k", BUSY, now=50.0)
        assert t.first_look("k") and t.still_since("k") == 0.0
        t.observe("k", A, now=60.0)
        assert not t.first_look("k")
        t.observe("k", BUSY, now=70.0)
        assert not t.first_look("k")
        t.forget("k")
        t.observe("k", BUSY, now=80.0)
        assert t.first_look("k")

    def test_a_claim_undone_stays_settled_only_where_its_own_renames_changed_times(
            self) -> None:
        """put_back: the undo's renames give the invoice file a new change time, and its
        sidecar folder a new change and modification time (its ".." rewritten): still the
        settled look. Anything else is a change, even a change time alone: an attachment
        renamed away and back meanwhile, or the invoice file rewritten with its change
        time the only trace besides its modification time."""
        def snap(xml: tuple[float, float], side: tuple[float, float],
                 pdf: tuple[float, float]) -> Snapshot:
            return Snapshot((_entry("INV-1.xml", "f", *xml), _entry("INV-1", "d", *side),
                             _entry("INV-1/a.pdf", "f", *pdf)), busy=False)
        before, moved = snap((1, 1), (1, 1), (1, 1)), {"INV-1.xml", "INV-1"}
        for after, kept in [(snap((1, 9), (9, 9), (1, 1)), True),
                            (snap((1, 9), (9, 9), (1, 9)), False),
                            (snap((9, 9), (9, 9), (1, 1)), False)]:
            t = SettleTracker(5)
            t.observe("INV-1.xml", before, now=0.0)
            assert t.put_back("INV-1.xml", before, after, moved) is kept, after
            assert t.observe("INV-1.xml", after, now=5.0) is kept

def test_a_look_at_many_entries_paces_events_by_its_size() -> None:
    """A bundle of 2,000 entries looked at at t: events on it wait until
    t + 2,000 × PACE_PER_ENTRY; other bundles are not paced."""
    pacer = Pacer()
    pacer.looked("A.xml", at=100.0, entries=2000)
    due = pacer.not_before("A.xml", 100.1)
    assert due == pytest.approx(100.0 + 2000 * PACE_PER_ENTRY)
    assert pacer.not_before("A.xml", due) is None  # its time has come
    assert pacer.not_before("B.xml", 100.1) is None


def test_a_small_look_and_a_bundle_gone_end_the_pacing() -> None:
    """Pacing lasts while the bundle stays big: a look of fewer than PACE_FROM entries,
    or forget() (the bundle left), ends it."""
    pacer = Pacer()
    pacer.looked("A.xml", at=0.0, entries=2000)
    pacer.looked("A.xml", at=0.6, entries=PACE_FROM - 1)
    assert pacer.not_before("A.xml", 0.61) is None
    pacer.looked("B.xml", at=0.0, entries=PACE_FROM)
    assert pacer.not_before("B.xml", 0.0) is not None
    pacer.forget("B.xml")
    assert pacer.not_before("B.xml", 0.0) is None


def _entry(rel: str, kind: str, mtime: float, ctime: float) -> Entry:
    """An entry with the file server's times (seconds): mtime, and ctime, its change time."""
    return (rel, kind, 10 if kind == "f" else 0, int(mtime * 1e9), 0o640, 0, 0, int(ctime * 1e9))


# The file server's clock, whatever the daemon's says: 1980, 2023 (ten minutes either side
# of a daemon that has none here), 2100.
SERVER_NOWS = [315_532_800.0, 1_700_000_000.0 - 600, 1_700_000_000.0 + 600, 4_102_444_800.0]


class TestWrittenBefore:
    @pytest.mark.parametrize("now", SERVER_NOWS)
    def test_a_copy_at_work_is_never_taken_for_files_written_long_ago(self, now: float) -> None:
        """A file being copied into the sidecar has a modification time as late as the
        bundle's latest change, by the file server's clock: not read early, whether that
        clock says 1980, 2100 or ten minutes off (the daemon's own clock is not asked)."""
        snap = Snapshot((_entry("INV-1.xml", "f", now - 3600, now - 3600),
                         _entry("INV-1", "d", now - 1, now - 1),
                         _entry("INV-1/a.pdf", "f", now, now)), busy=False)
        assert not SettleTracker(5).written_before(snap)

    @pytest.mark.parametrize("now", SERVER_NOWS)
    def test_a_sidecar_moved_in_whole_is_taken_for_files_written_long_ago(
            self, now: float) -> None:
        """A sidecar finished elsewhere and moved in (its folder's change time is the
        move, its files were written an hour before) may be read while it settles,
        whatever the file server's clock says."""
        snap = Snapshot((_entry("INV-1.xml", "f", now - 3600, now - 3600),
                         _entry("INV-1", "d", now - 3600, now),
                         _entry("INV-1/a.pdf", "f", now - 3600, now - 3600)), busy=False)
        assert SettleTracker(5).written_before(snap)

    def test_files_moved_in_within_a_quiet_period_of_their_writing_are_not(self) -> None:
        """Written a second before the move, with settle_seconds = 5: not yet long ago."""
        now = 1_700_000_000.0
        snap = Snapshot((_entry("INV-1.xml", "f", now - 1, now),), busy=False)
        assert not SettleTracker(5).written_before(snap)
        assert SettleTracker(0.5).written_before(snap)

    def test_a_file_written_exactly_a_quiet_period_before_the_latest_change_counts(self) -> None:
        """The quiet period is whole at its end: a file written settle_seconds before the
        bundle's latest change was written long enough ago to be read early."""
        snap = Snapshot((_entry("INV-1.xml", "f", 995.0, 1000.0),), busy=False)
        assert SettleTracker(5).written_before(snap)
        assert not SettleTracker(5.000000001).written_before(snap)


def test_a_version_with_a_copy_at_work_is_never_taken_for_files_written_long_ago() -> None:
    """A version with an in-progress name (x.pdf.part) whose files all carry old times
    (a copy that keeps them, `cp -p`) is not read early: the copy is still at work. A
    look that found no entry is not either."""
    old = Snapshot((_entry("INV-1.xml", "f", 1.0, 1000.0),
                    _entry("INV-1/x.pdf.part", "f", 1.0, 1000.0)), busy=True)
    assert not SettleTracker(5).written_before(old)
    assert SettleTracker(5).written_before(Snapshot(old.entries, busy=False))
    assert not SettleTracker(5).written_before(Snapshot((), busy=False))


def test_a_claim_undone_after_a_file_came_or_went_meanwhile_is_a_change() -> None:
    """put_back: a claim undone whose bundle gained or lost a file meanwhile (an
    attachment the clerk added as it was put back), or that was a copy at work, or whose
    read version is no longer the one last seen: a change like any other — its quiet
    period starts again — never the settled look."""
    before = Snapshot((_entry("INV-1.xml", "f", 1, 1), _entry("INV-1", "d", 1, 1)),
                      busy=False)
    more = Snapshot((*before.entries, _entry("INV-1/b.pdf", "f", 9, 9)), busy=False)
    moved = {"INV-1.xml", "INV-1"}
    t = SettleTracker(5)
    t.observe("INV-1.xml", before, now=0.0)
    assert t.put_back("INV-1.xml", before, more, moved) is False
    assert t.put_back("INV-1.xml", before, Snapshot(before.entries, busy=True), moved) is False
    assert t.put_back("INV-1.xml", A, before, moved) is False  # not what was last seen
    assert t.put_back("other.xml", before, before, moved) is False  # never seen
    assert t.observe("INV-1.xml", more, now=5.0) is False


# Whole even seconds in both times, as a FAT disk (in a NAS, behind SMB) keeps them.
_S = 1_000_000_000
FAT = Snapshot((("INV-1.xml", "f", 10, 1000 * _S, 0o644, 0, 0, 1000 * _S, 7),), busy=False,
               coarse=2)


class TestCoarseTimes:
    def test_a_quiet_period_on_two_second_times_is_two_seconds_longer(self) -> None:
        """A file system keeping times to 2 s shows no same-size rewrite within its 2 s:
        a bundle seen at 100.0 may still be written until 102.0 unseen, so with
        settle_seconds = 1 it settles at 103.0, not at 101.0 (its claim would have come
        before its writer's last write)."""
        t = SettleTracker(1)
        assert not t.observe("k", FAT, now=100.0)
        assert t.ready_at("k") == 103.0
        assert not t.observe("k", FAT, now=101.0)
        assert not t.observe("k", FAT, now=102.999)
        assert t.observe("k", FAT, now=103.0)

    def test_zero_settle_seconds_stays_no_wait(self) -> None:
        """settle_seconds = 0 asks for no quiet period at all: coarse times add none."""
        t = SettleTracker(0)
        assert t.observe("k", FAT, now=100.0)
