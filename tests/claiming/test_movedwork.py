"""Work folders of an outbox moved while outboxd was stopped (daemon/claiming/movedwork.py):
taken up at the start in the processing folder now configured, never through a link nor
by a look the share failed; driven with a real journal, real files and the directory
transport."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import (  # noqa: E402, F401 - quiet_logs: autouse
    Idempotent,
    NeverPost,
    claimed,
    folders,
    quiet_logs,
    started_while_work_looks_fail,
    step,
)
from helpers import looks_fail  # noqa: E402
from hungshare import hung_share  # noqa: E402

from daemon.claiming import movedwork  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.delivery.finish import Finisher  # noqa: E402
from daemon.fs.workfolder import folder_mark  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402


class TestOutboxMoved:
    """The admin stops outboxd with bundles on their way, moves the outbox (the
    processing folder in it) to a new path or server and starts on the new path with
    the same journal (docs/operations.md, Moving the outbox)."""

    @staticmethod
    def _moved(tmp_path: Path) -> tuple[Pipeline, Settings, int, Path]:
        """A bundle claimed and retrying (the receiver was away), then the outbox moved
        to tmp_path/new/outbox: the pipeline, the settings of the new path, the row and
        the work folder where it is now."""
        p, s, row = claimed(tmp_path)
        p.j.transition(row, "retrying", attempts=1, last_error="HTTP 503")
        old_work = Path(p.j.get(row).work_dir or "")
        (tmp_path / "new").mkdir()
        s.outbox.path.rename(tmp_path / "new" / "outbox")
        moved = s.model_copy(update={"outbox": s.outbox.model_copy(
            update={"path": tmp_path / "new" / "outbox"})})
        return p, moved, row, moved.processing_dir / old_work.name

    def test_a_bundle_on_its_way_when_the_outbox_moved_is_sent_from_its_new_place(
            self, tmp_path: Path) -> None:
        """Its work folder, moved with the outbox, is taken up where it is now (the journal
        names it by its old full path) and the bundle is sent and archived from there —
        not retried for ever as "not there (is the share mounted?)"."""
        p, s, row, work = self._moved(tmp_path)
        assert work.is_dir()
        p.j.update(row, claimed_in="1:2")  # the mark of its processing folder on the old server
        fin = Finisher(s, p.j, NeverPost())
        assert [r for r, _ in fin.recover()] == [row]
        assert p.j.get(row).work_dir == str(work)
        # The claim's processing folder is now this one (a later look for a work folder
        # gone from it tells "never made" by it, recovery._never_made).
        assert p.j.get(row).claimed_in == folder_mark(s.processing_dir, s.outbox.path)
        fin.d = receiver = Idempotent(Receipt(200, {"receipt_id": "r-1"}, "r-1"))
        assert fin.attempt(row) is None
        assert receiver.posts == 1 and p.j.get(row).state == "sent"
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1.xml").exists() and (entry / "INV-1" / "a.pdf").exists()
        assert not work.exists()

    @pytest.mark.parametrize("state", ["retrying", "claiming", "delivering"])
    def test_a_moved_work_folder_the_share_fails_to_look_at_is_followed_at_a_rescan(
            self, tmp_path: Path, state: str) -> None:
        """The look for the work folder in the processing folder now configured fails
        (the share's EIO): the row is neither taken as not moved nor sent or finished
        from its old path; it says why (status: retrying, with the error) and is looked
        for again at each rescan, taken up there once the share answers, its error from
        before back. Taken for "not here", it kept the old path until the next start:
        "is the share mounted?" for good."""
        p, s, row, work = self._moved(tmp_path)
        if state != "retrying":
            p.j.transition(row, state, last_error=None)
        before = p.j.get(row)
        fin = Finisher(s, p.j, NeverPost())
        with pytest.MonkeyPatch.context() as m:
            looks_fail(m, work.name, calls=("open", "stat", "lstat"))
            assert fin.recover() == []
            assert fin.follow_moved_again() == []  # a rescan while it still fails
            waiting = p.j.get(row)
            assert waiting.work_dir == before.work_dir and waiting.shown_state == "retrying"
            assert "cannot look for its work folder in the processing folder now " \
                   f"configured ({work}): Input/output error" in (waiting.last_error or "")
        due = fin.follow_moved_again()  # the next rescan, the share back
        taken = p.j.get(row)
        assert taken.work_dir == str(work)
        if state == "claiming":
            assert due == [] and fin.finish_claims_again() == ([row], [])
        else:
            assert due == [(row, 0.0)] and taken.last_error == before.last_error
        fin.d = receiver = Idempotent(Receipt(200, {"receipt_id": "r-1"}, "r-1"))
        assert fin.attempt(row) is None
        assert receiver.posts == 1 and p.j.get(row).state == "sent"

    def test_a_reload_with_a_new_receiver_leaves_a_row_waiting_for_its_moved_folder(
            self, tmp_path: Path) -> None:
        """A reload that changes the receiver tries every retrying row at once, but not
        one still waiting for its moved work folder (the share failed the look): tried
        then, it went from its old path, where a delivery worker waited on the old
        server's hanging mount without the start's bound. Once the look answers (a
        rescan) the row is the reload's like any other."""
        p, s, row, work = self._moved(tmp_path)
        p.j.transition(row, "delivering", last_error=None)
        fin = Finisher(s, p.j, NeverPost())
        with pytest.MonkeyPatch.context() as m:
            looks_fail(m, work.name, calls=("open", "stat", "lstat"))
            assert fin.recover() == []
        assert p.j.get(row).state == "retrying"
        assert fin.after_reload(receiver_changed=True) == []
        assert fin.follow_moved_again() == [(row, 0.0)]
        assert fin.after_reload(receiver_changed=True) == [row]

    @pytest.mark.parametrize("stopped", ["claim-before-its-renames", "retrying"])
    def test_the_orphan_sweep_leaves_a_moved_work_folder_its_row_waits_for_alone(
            self, tmp_path: Path, stopped: str) -> None:
        """The start's look for the moved work folder failed (the share's EIO), and the
        share answers the orphan sweep right after: the folder is its waiting row's, left
        alone and not said to be anyone else's, and a rescan takes it up. Taken for no
        row's, an empty one (a claim stopped before its first rename) was removed, and one
        holding the bundle was said to be "copied in by someone", the admin told to move
        its files into the outbox while the row waited to finish it from there."""
        from structlog.testing import capture_logs

        from daemon.claiming.orphans import Orphans
        p, s, row, work = self._moved(tmp_path)
        if stopped == "claim-before-its-renames":
            for name in ("INV-1.xml", "INV-1"):
                (work / name).rename(s.outbox.path / name)
            p.j.transition(row, "claiming", last_error=None)
        kept = sorted(q.name for q in work.iterdir())
        fin = Finisher(s, p.j, NeverPost())
        with pytest.MonkeyPatch.context() as m:
            looks_fail(m, work.name, calls=("open", "stat", "lstat"))
            assert fin.recover() == []
        assert fin.unfollowed() == {row}
        with capture_logs() as logged:
            assert Orphans().sweep(p.j, s, fin.mounts, fin.unfollowed()) == 0
        assert sorted(q.name for q in work.iterdir()) == kept
        assert [e for e in logged if e.get("work_dir") == str(work)] == []
        fin.follow_moved_again()
        assert p.j.get(row).work_dir == str(work) and fin.unfollowed() == set()

    def test_a_link_under_the_work_folders_name_is_not_taken_for_the_moved_folder(
            self, tmp_path: Path) -> None:
        """In the processing folder now configured, a symbolic link (anyone on the share
        may make one) under the work folder's name, to the folder itself moved aside: not
        taken for the moved work folder, the row keeps naming its recorded path (nothing
        is ever done through a link in the outbox)."""
        p, s, row, work = self._moved(tmp_path)
        recorded = p.j.get(row).work_dir
        aside = tmp_path / "aside"
        work.rename(aside)
        work.symlink_to(aside)
        Finisher(s, p.j, NeverPost()).recover()
        assert p.j.get(row).work_dir == recorded
        assert work.is_symlink() and (aside / "INV-1.xml").exists()

    def test_a_work_folder_still_at_its_recorded_path_is_used_there(
            self, tmp_path: Path) -> None:
        """A copy of the outbox rather than a move leaves the recorded work folder where
        it was: that one is finished, the copy's is not taken for it."""
        p, s, row, work = self._moved(tmp_path)
        old = tmp_path / "outbox" / ".outboxd" / "processing" / work.name
        old.parent.mkdir(parents=True)
        shutil.copytree(work, old)
        fin = Finisher(s, p.j, NeverPost())
        assert [r for r, _ in fin.recover()] == [row]
        assert p.j.get(row).work_dir == str(old)

    def test_a_recorded_path_on_a_share_that_hangs_does_not_hold_the_start(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The outbox moved off a file server that was then switched off, its mount left
        behind (a hard NFS mount hangs): the start looks at the recorded paths there for
        a bounded time, takes the work folders up from the processing folder now
        configured and goes on. Without a bound the look waited in the kernel for as long
        as the server was off, and systemd killed each start before READY."""
        # The bound is the daemon's constant (5 s), read at each look: 1 s here, so that
        # the test waits out one bounded look of 1 s rather than 5 (the same ratio below).
        limit = 1.0
        monkeypatch.setattr(movedwork, "OLD_PATH_SECONDS", limit)
        looks: list[Path] = []
        real_left_at = movedwork.left_at

        def counted(path: Path, seconds: float) -> bool | None:
            looks.append(path)
            return real_left_at(path, seconds)

        monkeypatch.setattr(movedwork, "left_at", counted)
        p, s, row, work = self._moved(tmp_path)
        with hung_share(tmp_path / "oldserver") as mount:
            recorded = mount / "outbox" / ".outboxd" / "processing" / work.name
            p.j.update(row, work_dir=str(recorded))
            second = p.j.create("INV-3.xml", "retrying", bundle_id="ef" * 32, attempts=1,
                                work_dir=str(recorded.parent / "INV-3--efefefefefef--x"))
            (s.processing_dir / "INV-3--efefefefefef--x").mkdir()
            fin = Finisher(s, p.j, NeverPost())
            due: list[list[tuple[int, float]]] = []
            start = threading.Thread(target=lambda: due.append(fin.recover()), daemon=True)
            start.start()
            # Far above one bounded look (the second folder there is not looked at
            # again), far below systemd's start timeout (90 s).
            start.join(3 * limit)
            assert due, "the start waits on the recorded path of the share that hangs"
            assert p.j.get(row).work_dir == str(work)
            assert p.j.get(second).work_dir == str(s.processing_dir / "INV-3--efefefefefef--x")
            assert looks == [recorded]  # the folder that hung is not looked into again
        fin.d = receiver = Idempotent(Receipt(200, {"receipt_id": "r-1"}, "r-1"))
        assert fin.attempt(row) is None
        assert receiver.posts == 1 and p.j.get(row).state == "sent"


class TestAClaimCutShortWhenTheOutboxMoved:
    """A stop came after a claim's work folder was made and before its invoice file
    moved into it (the bundle still whole in the outbox); the admin then moved the outbox
    to a new path, and at the start the share fails the look for that work folder."""

    def test_its_invoice_file_in_the_outbox_is_not_quarantined_as_its_own_duplicate(
            self, tmp_path: Path) -> None:
        """While the claim's row waits for its work folder to be looked for (`claiming`,
        the bundle id of the bundle in the outbox), a look at the invoice file neither
        gives the bundle a second row nor quarantines it as a duplicate of the bundle
        "sent already (or being sent)" — a REASON.txt that told the clerk to remove the
        folder, an invoice never sent. Once the share answers, the claim is found not to
        have happened and the bundle is sent, once."""
        from daemon.delivery.directory import DirectoryDeliverer
        from daemon.journal import Journal

        p, s, row = claimed(tmp_path)
        old_work = Path(p.j.get(row).work_dir or "")
        for name in ("INV-1.xml", "INV-1"):  # the claim's renames never happened
            (old_work / name).rename(s.outbox.path / name)
        p.j.transition(row, "claiming", last_error=None)
        p.j.close()
        (tmp_path / "new").mkdir()
        s.outbox.path.rename(tmp_path / "new" / "outbox")
        moved = s.model_copy(update={"outbox": s.outbox.model_copy(
            update={"path": tmp_path / "new" / "outbox"})})
        work = moved.processing_dir / old_work.name
        again = Pipeline(moved, Journal(moved.journal_path),
                         DirectoryDeliverer(tmp_path / "target"))
        try:
            with started_while_work_looks_fail(again, moved, work.name, row) as cand:
                pass
            assert again.finish.follow_moved_again() == []  # the share back: a claim
            assert again.retry_stranded() == []  # it did not happen: settling again
            assert again.j.get(row).state == "settling" and again.live["INV-1.xml"].id == row
            assert not work.exists()
            claimed_now = [step(again, cand, now).claimed for now in (3000.0, 3001.0)]
            assert row in claimed_now
            assert again.finish.attempt(row) is None
            assert again.j.get(row).state == "sent"
            assert folders(moved.quarantine_dir) == []
        finally:
            again.j.close()
