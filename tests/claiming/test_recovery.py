"""Recovery at start (daemon/claiming/recovery.py): a claim a crash cut short is finished, put
back to settle, or quarantined, and says why while it cannot be; driven with a real
journal, real files and the directory transport."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import (  # noqa: E402, F401 - quiet_logs: autouse
    Idempotent,
    NeverPost,
    claimed,
    folders,
    make,
    quiet_logs,
    started_while_work_looks_fail,
    step,
)
from helpers import drop_bundle, pdf_bytes, pin_wall, write  # noqa: E402
from matching import batch_xml  # noqa: E402
from swaps import linked_aside_before  # noqa: E402

from daemon import idnames, names  # noqa: E402
from daemon.claiming import recovery  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.configuration.config_folders import prepare_folders  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.delivery.finish import Finisher, evaluate  # noqa: E402
from daemon.fs.workfolder import folder_mark  # noqa: E402
from daemon.journal import Journal  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.manifest import bundle_id_of  # noqa: E402
from daemon.report.pagerender import sections  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


def _never_read(*_: object) -> Any:
    raise AssertionError("read the bundle again")


class TestRecovery:
    def test_a_claim_that_never_happened_goes_back_to_settling(self, tmp_path: Path) -> None:
        """Journal says claiming but the invoice is still in the outbox: back to settling."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32,
                         work_dir=str(s.processing_dir / "INV-1--abababababab--x"))
        assert p.finish.recover() == []
        assert p.j.get(row).state == "settling"
        assert (s.outbox.path / "INV-1.xml").exists()

    @staticmethod
    def _half_claimed(tmp_path: Path, pdf: bytes) -> tuple[Pipeline, Settings, Path, int]:
        """A claim of the bundle as read (INV-1 with a.pdf = `pdf`) cut short by a crash:
        the invoice file in the work folder, the sidecar still in the outbox."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf})
        bid = bundle_id_of(evaluate(next(iter(list_outbox(s.outbox).candidates.values())), s))
        work = s.processing_dir / f"INV-1--{bid[:12]}--x"
        work.mkdir()
        (s.outbox.path / "INV-1.xml").rename(work / "INV-1.xml")
        return p, s, work, p.j.create("INV-1.xml", "claiming", bundle_id=bid,
                                      work_dir=str(work),
                                      claimed_in=folder_mark(s.processing_dir))

    def test_a_half_done_claim_is_finished_and_delivered(self, tmp_path: Path) -> None:
        """Invoice already in the work folder, sidecar still in the outbox: recovery moves
        the sidecar too, finds the bytes the claim recorded and schedules the delivery
        of the bundle it read (not read a second time)."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        assert p.finish.recover() == [(row, 0.0)]
        assert (work / "INV-1" / "a.pdf").exists() and not (s.outbox.path / "INV-1").exists()
        p.finish.evaluate = _never_read
        assert p.finish.attempt(row) is None
        assert p.j.get(row).state == "sent"
        assert (folders(s.sent_dir)[0] / "INV-1" / "a.pdf").exists()

    def test_a_half_done_claim_of_a_bundle_to_quarantine_is_quarantined_not_sent(
            self, tmp_path: Path) -> None:
        """A claim cut short whose row holds reasons (the bundle was claimed to be
        quarantined): finished at the start into `quarantining`, and its attempt moves it
        into quarantine/ with those reasons; nothing is sent."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        reason = {"code": "duplicate-invoice-id", "file": "INV-1.xml",
                  "message": "already sent in another bundle"}
        p.j.update(row, reasons=[reason])
        assert p.finish.recover() == [(row, 0.0)]
        assert p.j.get(row).state == "quarantining"
        assert p.finish.attempt(row) is None
        assert p.j.get(row).state == "quarantined" and folders(s.sent_dir) == []
        [entry] = folders(s.quarantine_dir)
        assert "already sent in another bundle" in (entry / "REASON.txt").read_text()

    def test_a_claim_that_cannot_be_finished_at_start_says_why_until_the_next_start(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A half-done claim whose finishing fails at start (the share refuses the move)
        waits (tried again at each rescan, and at the next start). It stayed `claiming`
        with no error: `status` said "delivering" and the page listed it under "Being
        sent" for as long as that took, though nothing was on its way. It is retrying
        with why; the next try that finishes the claim clears the error."""
        from daemon.claiming import recovery
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        real = recovery.finish_claim

        def refused(*_: object, **__: object) -> None:
            raise PermissionError(13, "Permission denied", str(s.outbox.path / "INV-1"))

        monkeypatch.setattr(recovery, "finish_claim", refused)
        with capture_logs() as logs:
            assert p.finish.recover() == []
        [said] = [e for e in logs if e["event"].startswith("cannot finish an interrupted")]
        # In words, as archiving/ says an OSError, not "[Errno 13] …".
        assert said["error"] == f"Permission denied ({s.outbox.path / 'INV-1'})"
        r = p.j.get(row)
        assert r.state == "claiming" and r.shown_state == "retrying"
        assert "Permission denied" in (r.last_error or "")
        assert "Errno" not in (r.last_error or "")  # shown on the page and by `status`
        shown = sections(p.j.recent(), datetime.now(UTC).strftime("%Y-%m-%d"))
        assert [x.id for x in shown["retrying"]] == [row] and shown["sending"] == []
        assert p.j.counts()["delivering"] == 0 and p.j.counts()["retrying"] == 1
        monkeypatch.setattr(recovery, "finish_claim", real)
        assert p.finish.recover() == [(row, 0.0)]
        r = p.j.get(row)
        assert (r.state, r.last_error, r.shown_state) == ("delivering", None, "delivering")

    def test_an_unfinished_claim_whose_row_has_left_claiming_is_tried_no_more(
            self, tmp_path: Path) -> None:
        """A claim recovery could not finish, whose row has since left `claiming` (its
        bundle put back and ended by the pipeline): the rescan's retry drops it, and
        never finishes a claim for a row that no longer names a work folder."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        p.finish._unfinished.add(row)
        p.j.transition(row, "gone", recovery.NOT_HAPPENED_GONE, work_dir=None)
        assert p.finish.finish_claims_again() == ([], [])
        assert p.finish._unfinished == set() and p.j.get(row).state == "gone"

    def test_a_claim_recorded_without_its_folders_mark_is_never_taken_for_one_not_made(
            self, tmp_path: Path) -> None:
        """A claim an outboxd before the processing folder's mark recorded (claimed_in
        None) whose work folder is not there, the invoice file not in the outbox, and no
        processing folder to be seen either: nothing tells that the folder was never
        made (the share may be away), so the row waits, `claiming`, saying why; never
        `gone`, with the bundle in a folder no row names when the share is back."""
        p, s = make(tmp_path)
        row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32,
                         work_dir=str(s.processing_dir / "INV-1--abababababab--x"))
        s.processing_dir.rmdir()
        assert p.finish.recover() == []
        r = p.j.get(row)
        assert (r.state, r.shown_state) == ("claiming", "retrying")
        assert "is not there" in (r.last_error or "")

    def test_a_claim_whose_work_folder_is_away_at_start_waits_for_it_and_is_finished(
            self, tmp_path: Path) -> None:
        """A restart while a claim's work folder is out of sight (the share that holds
        processing/ away, an empty outbox mounted in its place, whose processing folder
        the start makes afresh): neither the folder nor the invoice file in the outbox.
        That is no "claim that did not happen": settled, the row went `gone` and the
        bundle, when its folder came back, lay in a folder no row names, left for a
        person for good. The row stays `claiming`, says why, and a rescan after the share
        is back finishes the claim; the bundle is delivered."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        (s.outbox.path / "INV-1").rename(work / "INV-1")  # the whole bundle claimed
        away = tmp_path / "away"
        s.outbox.path.rename(away)  # the share is away: an empty folder where it was
        s.outbox.path.mkdir()
        prepare_folders(s)
        assert p.finish.recover() == []
        r = p.j.get(row)
        assert (r.state, r.work_dir, r.shown_state) == ("claiming", str(work), "retrying")
        assert "is not there" in (r.last_error or "") and "rescan" in (r.last_error or "")
        changes = p.j.changes
        assert p.retry_stranded() == [] and p.j.get(row).state == "claiming"
        assert p.j.changes == changes  # the same why: not written again at each rescan
        s.outbox.path.rename(tmp_path / "mountpoint")
        away.rename(s.outbox.path)  # the share is back
        assert p.retry_stranded() == [row]
        r = p.j.get(row)
        assert (r.state, r.last_error) == ("delivering", None)
        assert p.retry_stranded() == []  # finished: not tried again
        assert p.finish.attempt(row) is None
        assert p.j.get(row).state == "sent"
        assert (folders(s.sent_dir)[0] / "INV-1" / "a.pdf").exists()

    @staticmethod
    def _cut_short(tmp_path: Path) -> tuple[Settings, int]:
        """A claim of INV-1 recorded as the loop records it (its journal row, with the
        processing folder it is made in), then a crash before its work folder was made:
        the bundle still in the outbox, the journal closed."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        p.hold_claims()
        assert step(p, cand, 1000.0).claimed is None  # held for the end of the turn
        [row] = p._record_claims(p._held or [])
        p.j.close()
        return s, row

    @staticmethod
    def _start(s: Settings, prepare: bool = True) -> Finisher:
        """A start of outboxd on the journal: its folders prepared (unless the outbox is
        not there), the claims it finds recovered (none of them handed to delivery)."""
        if prepare:
            prepare_folders(s)
        fin = Finisher(s, Journal(s.journal_path), NeverPost())
        assert fin.recover() == []
        return fin

    @staticmethod
    def _delete_sidecar(outbox: Path) -> None:
        for f in (outbox / "INV-1").iterdir():
            f.unlink()
        (outbox / "INV-1").rmdir()

    def _delete_bundle(self, outbox: Path) -> None:
        (outbox / "INV-1.xml").unlink()
        self._delete_sidecar(outbox)

    @pytest.mark.parametrize("sidecar", [False, True], ids=["bundle deleted",
                                                            "sidecar left"])
    def test_a_claim_cut_short_before_its_work_folder_whose_bundle_was_deleted_is_gone(
            self, tmp_path: Path, sidecar: bool) -> None:
        """A crash between the claim's journal record and its work folder, then the
        clerk deletes the bundle (or takes back only the invoice file, leaving its
        sidecar) while outboxd is stopped: the outbox is there, its processing folder is
        the very one the claim was recorded for, and neither the work folder nor the
        invoice file is. The claim did not happen and the bundle is gone, as one deleted
        before its claim: the row ends `gone` with why, is not tried again at each
        rescan, and a sidecar left is not touched. It stayed `claiming` for ever, shown
        as retrying ("is the share mounted?"), the sidecar left or not."""
        s, row = self._cut_short(tmp_path)
        if sidecar:
            (s.outbox.path / "INV-1.xml").unlink()
        else:
            self._delete_bundle(s.outbox.path)
        fin = self._start(s)
        r = fin.j.get(row)
        assert (r.state, r.work_dir, r.last_error) == ("gone", None, None)
        assert "claim did not happen" in (fin.j.last_detail(row) or "")
        assert fin.finish_claims_again() == ([], []) and fin.j.get(row).state == "gone"
        assert (s.outbox.path / "INV-1").is_dir() is sidecar
        assert os.listdir(s.processing_dir) == []

    @pytest.mark.parametrize("moved", [False, True], ids=["before its work folder",
                                                          "into its work folder"])
    def test_a_claim_cut_short_waits_through_two_starts_while_the_share_is_away(
            self, tmp_path: Path, moved: bool) -> None:
        """The share that holds the outbox is away at two starts in a row: an empty
        folder where it is mounted, in which the first start made .outboxd/processing.
        At the second start that processing folder was not made by it, yet it is not the
        one the claim was recorded for: the row still waits, saying why (it was `gone`,
        and the bundle, on the share, for a person to move back). Once the share is back
        the claim is settled again (nothing moved yet) or finished (all moved)."""
        s, row = self._cut_short(tmp_path)
        r = Journal(s.journal_path).get(row)
        work = Path(r.work_dir or "")
        if moved:
            work.mkdir()
            (s.outbox.path / "INV-1.xml").rename(work / "INV-1.xml")
            (s.outbox.path / "INV-1").rename(work / "INV-1")
        away = tmp_path / "away"
        s.outbox.path.rename(away)  # the share is away: an empty folder where it was
        s.outbox.path.mkdir()
        for _start in range(2):
            fin = self._start(s)
            r = fin.j.get(row)
            assert (r.state, r.work_dir, r.shown_state) == ("claiming", str(work), "retrying")
            assert "is the share mounted?" in (r.last_error or "")
            fin.j.close()
        s.outbox.path.rename(tmp_path / "mountpoint")
        away.rename(s.outbox.path)  # the share is back
        fin = Finisher(s, Journal(s.journal_path), NeverPost())
        assert fin.recover() == ([(row, 0.0)] if moved else [])
        assert fin.j.get(row).state == ("delivering" if moved else "settling")
        assert (work / "INV-1" / "a.pdf").exists() == moved
        assert (s.outbox.path / "INV-1" / "a.pdf").exists() != moved

    @pytest.mark.parametrize("back", ["as a link", "itself"])
    def test_a_processing_folder_put_back_after_the_look_never_closes_the_claim(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, back: str) -> None:
        """A clerk moved `.outboxd/processing` (the claimed bundle in it) aside and, just
        after the start looked for the work folder and found none, put it back: as a link
        to it, or itself. Its identity, taken by its path (through the link), was the one
        the claim was recorded in: the claim was called "did not happen, the invoice file
        gone" and the row closed, the bundle left with no row naming it. Taken from the
        folder reached without a link, and with the work folder looked for in it, the
        row waits (a link: saying why) or is finished at the next rescan."""
        from daemon.claiming import recovery
        s, row = self._cut_short(tmp_path)
        work = Path(Journal(s.journal_path).get(row).work_dir or "")
        work.mkdir()
        (s.outbox.path / "INV-1.xml").rename(work / "INV-1.xml")
        (s.outbox.path / "INV-1").rename(work / "INV-1")
        aside = s.processing_dir.with_name("aside")
        s.processing_dir.rename(aside)
        hold = recovery.hold_folder

        def then_linked(*args: Any, **kwargs: Any) -> int:
            try:
                return hold(*args, **kwargs)
            except FileNotFoundError:
                if back == "itself":
                    aside.rename(s.processing_dir)
                elif not os.path.lexists(s.processing_dir):
                    s.processing_dir.symlink_to(aside)
                raise

        monkeypatch.setattr(recovery, "hold_folder", then_linked)
        fin = Finisher(s, Journal(s.journal_path), NeverPost())
        assert fin.recover() == []
        r = fin.j.get(row)
        assert (r.state, r.work_dir, r.shown_state) == ("claiming", str(work), "retrying")
        assert (work / "INV-1" / "a.pdf").exists()
        if back == "as a link":
            s.processing_dir.unlink()
            aside.rename(s.processing_dir)
        assert fin.finish_claims_again() == ([row], [])

    @pytest.mark.parametrize("where", ["outbox away", "processing folder another",
                                       "claimed by an earlier version"])
    def test_a_claim_with_no_work_folder_whose_folder_may_be_out_of_sight_waits(
            self, tmp_path: Path, where: str) -> None:
        """No work folder and no invoice file in the outbox, but the work folder may be
        out of sight: the outbox not there (the share away); the processing folder found
        not the one the claim was recorded for (the same outbox path, processing/ made
        anew: a share remounted, a folder put in its place); or no processing folder
        recorded with the claim (an outboxd before this one). The row stays `claiming` and
        says why: taken for "gone", the bundle would lie in a folder no row names once the
        share is back."""
        s, row = self._cut_short(tmp_path)
        (s.outbox.path / "INV-1.xml").unlink()
        if where == "outbox away":
            s.outbox.path.rename(tmp_path / "away")
        elif where == "processing folder another":
            self._delete_sidecar(s.outbox.path)
            # Renamed, not removed: a new folder could get the freed inode number again.
            s.processing_dir.rename(s.processing_dir.with_name("aside"))
        elif where == "claimed by an earlier version":
            self._delete_sidecar(s.outbox.path)
            j = Journal(s.journal_path)
            j.update(row, claimed_in=None)
            j.close()
        fin = self._start(s, prepare=where != "outbox away")
        r = fin.j.get(row)
        assert (r.state, r.shown_state) == ("claiming", "retrying")
        assert "is not there" in (r.last_error or "")

    def test_a_work_folder_the_share_cannot_look_at_is_not_taken_for_one_never_made(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim cut short between its moves (the invoice file in its work folder, the
        sidecar still in the outbox), then a share that blinks at the start: the hold of
        the work folder says "not there", and the second look for it, in the processing
        folder the claim was recorded in, fails with an I/O error. That look cannot tell,
        so the claim is not ended `gone` as one whose work folder was never made: it
        waits (`claiming`, shown retrying, saying why) and is finished at the rescan once
        the share answers. Ended `gone`, the invoice file lay in a work folder no row
        named, which the orphan sweep only names in the log as one not left by outboxd."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        real_hold, real_stat = recovery.hold_folder, os.stat
        blinks = {"hold": 1, "look": 1}

        def hold(path: Path, *args: Any, **kw: Any) -> int:
            if path == work and blinks["hold"]:
                blinks["hold"] -= 1
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
            return real_hold(path, *args, **kw)

        def look(path: Any, *args: Any, **kw: Any) -> os.stat_result:
            if path == work.name and kw.get("dir_fd") is not None and blinks["look"]:
                blinks["look"] -= 1
                raise OSError(errno.EIO, os.strerror(errno.EIO), path)
            return real_stat(path, *args, **kw)
        monkeypatch.setattr(recovery, "hold_folder", hold)
        monkeypatch.setattr(os, "stat", look)
        assert p.finish.recover() == []
        assert blinks == {"hold": 0, "look": 0}
        waiting = p.j.get(row)
        assert (waiting.state, waiting.shown_state) == ("claiming", "retrying")
        assert waiting.work_dir == str(work) and (work / "INV-1.xml").exists()
        assert p.finish.finish_claims_again() == ([row], [])  # the share answers again
        assert (work / "INV-1" / "a.pdf").exists() and not (s.outbox.path / "INV-1").exists()

    def test_an_invoice_file_the_share_cannot_look_at_in_its_work_folder_is_not_gone(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim cut short between its moves, and at the start the look for the invoice
        file in its work folder fails with an I/O error (a share that blinks): that is no
        "the invoice file is not in the work folder", which ends the claim (`gone`, or
        settling) as one that did not happen, its invoice file left in a work folder no
        row names. The claim waits, saying why, and is finished at the rescan."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        real_stat, real_lstat = os.stat, os.lstat
        blinks = [1]

        def once(path: Any) -> None:
            if blinks[0]:
                blinks[0] -= 1
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

        def look(path: Any, *args: Any, **kw: Any) -> os.stat_result:
            if path == "INV-1.xml" and kw.get("dir_fd") is not None:
                once(path)
            return real_stat(path, *args, **kw)

        def look_by_path(path: Any, *args: Any, **kw: Any) -> os.stat_result:
            if str(path).startswith("/proc/self/fd/") and str(path).endswith("/INV-1.xml"):
                once(path)
            return real_lstat(path, *args, **kw)
        monkeypatch.setattr(os, "stat", look)
        monkeypatch.setattr(os, "lstat", look_by_path)
        assert p.finish.recover() == []
        assert blinks == [0]
        waiting = p.j.get(row)
        assert (waiting.state, waiting.shown_state) == ("claiming", "retrying")
        assert "Input/output error" in (waiting.last_error or "")
        assert (work / "INV-1.xml").exists() and (s.outbox.path / "INV-1").is_dir()
        assert p.finish.finish_claims_again() == ([row], [])  # the share answers again
        assert (work / "INV-1" / "a.pdf").exists() and not (s.outbox.path / "INV-1").exists()

    def test_a_half_done_claim_whose_work_folder_is_a_link_moves_nothing_through_it(
            self, tmp_path: Path) -> None:
        """A half-done claim whose work folder was swapped for a link (to a folder that
        holds an invoice file of the same name) before the start: the sidecar left in the
        outbox is not moved where the link leads, nothing there is read, and the row says
        why (retrying, the link named and the fix) until a start finds the folder back."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "INV-1.xml").write_bytes(b"someone else's")
        real = work.with_name(work.name + ".real")
        work.rename(real)
        work.symlink_to(outside)
        p.finish.evaluate = _never_read
        assert p.finish.recover() == []
        assert os.listdir(outside) == ["INV-1.xml"]
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        r = p.j.get(row)
        assert r.state == "claiming" and r.shown_state == "retrying"
        assert "no longer the folder outboxd claimed" in (r.last_error or "")
        assert "put the bundle's folder itself back" in (r.last_error or "")
        work.unlink()
        real.rename(work)
        p.finish.evaluate = evaluate
        assert p.finish.recover() == [(row, 0.0)]
        assert (work / "INV-1" / "a.pdf").exists()

    def test_a_half_done_claim_behind_a_dot_outboxd_made_a_link_moves_nothing_through_it(
            self, tmp_path: Path) -> None:
        """`.outboxd` moved aside and replaced by a link to a folder whose processing/
        holds a work folder of the same name before the start: the sidecar left in the
        outbox is not moved where the link leads, and the row says why (retrying, naming
        `.outboxd`) until a start finds the folder itself back."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        outside = tmp_path / "outside"
        (outside / "processing" / work.name).mkdir(parents=True)
        (outside / "processing" / work.name / "INV-1.xml").write_bytes(b"someone else's")
        dot = s.outbox.path / ".outboxd"
        dot.rename(tmp_path / "aside")
        dot.symlink_to(outside)
        p.finish.evaluate = _never_read
        assert p.finish.recover() == []
        assert os.listdir(outside / "processing" / work.name) == ["INV-1.xml"]
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        r = p.j.get(row)
        assert r.state == "claiming" and r.shown_state == "retrying"
        assert str(dot) in (r.last_error or "") and "symbolic link" in (r.last_error or "")
        dot.unlink()
        (tmp_path / "aside").rename(dot)
        p.finish.evaluate = evaluate
        assert p.finish.recover() == [(row, 0.0)]
        assert (work / "INV-1" / "a.pdf").exists()

    def test_each_claim_read_again_at_start_asks_systemd_for_more_start_time(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Reading an interrupted claim again happens before READY: each one sends
        EXTEND_TIMEOUT_USEC, so that a batch of them cannot run into the start timeout."""
        import socket
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        path = tmp_path / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(5)
            monkeypatch.setenv("NOTIFY_SOCKET", str(path))
            assert p.finish.recover() == [(row, 0.0)]
            assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=60000000"

    def test_a_half_done_claim_of_changed_files_goes_back_to_settle(
            self, tmp_path: Path) -> None:
        """An attachment replaced between the read and the crash mid-claim: the check after
        the claim, which the crash came before, is made at the next start; the bundle goes
        back to the outbox whole, to be read and decided again, and is not sent."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes(pages=2))
        assert p.finish.recover() == []
        r = p.j.get(row)
        assert (r.state, r.work_dir) == ("settling", None)
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").read_bytes() == pdf_bytes(pages=2)
        assert not work.exists() and folders(s.sent_dir) == []

    def test_a_half_done_claim_with_a_copy_at_work_in_its_sidecar_goes_back_to_settle(
            self, tmp_path: Path) -> None:
        """A copy begun in the sidecar (`b.pdf.part`) between the read and a crash
        mid-claim: the check after the claim, made at the next start, sees it as a change
        (as the check without a crash does): the bundle goes back to the outbox to settle,
        instead of going out without the file and taking the half-written copy into
        sent/."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        write(s.outbox.path / "INV-1" / "b.pdf.part", b"%PDF-1.4 half")
        assert p.finish.recover() == []
        r = p.j.get(row)
        assert (r.state, r.work_dir) == ("settling", None)
        assert (s.outbox.path / "INV-1" / "b.pdf.part").read_bytes() == b"%PDF-1.4 half"
        assert (s.outbox.path / "INV-1.xml").exists()
        assert not work.exists() and folders(s.sent_dir) == []

    def test_a_half_done_claim_of_changed_files_with_a_new_version_beside_is_quarantined(
            self, tmp_path: Path) -> None:
        """As above, but a new invoice file of the same name arrived meanwhile: ours cannot
        go back without replacing it, so it is quarantined beside it, whole, and says why."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes(pages=2))
        write(s.outbox.path / "INV-1.xml", b"<Inv>new</Inv>")
        [(again, _)] = p.finish.recover()
        assert again == row and p.j.get(row).state == "quarantining"
        assert p.finish.attempt(row) is None
        [q] = folders(s.quarantine_dir)
        assert (q / "INV-1" / "a.pdf").read_bytes() == pdf_bytes(pages=2)
        assert (s.outbox.path / "INV-1.xml").read_bytes() == b"<Inv>new</Inv>"
        assert json.loads((q / "reason.json").read_text())["reasons"][0]["code"] == \
            "changed-during-claim"

    def test_a_changed_half_done_claim_whose_work_folder_is_swapped_before_it_goes_back(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """As above (changed files, found at the next start), but the work folder is
        swapped for a link between that read and the put-back: nothing is moved through
        the link, and the row is quarantining for its work folder (processing-damaged,
        naming it and the fix) — not for "new files named <work folder> appeared in the
        outbox", which none did."""
        from daemon.claiming import claim as claim_module
        from daemon.claiming import recovery
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())
        write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes(pages=2))
        aside = tmp_path / "aside"
        monkeypatch.setattr(recovery, "unclaim",
                            linked_aside_before(claim_module.unclaim, aside))
        p.finish.recover()
        r = p.j.get(row)
        assert r.state == "quarantining"
        [reason] = r.reasons
        assert reason["code"] == "processing-damaged"
        assert work.name in reason["message"] and "symbolic link" in reason["message"]
        assert sorted(os.listdir(aside)) == ["INV-1", "INV-1.xml"]
        assert not (s.outbox.path / "INV-1.xml").exists()

    def test_a_half_done_claim_that_cannot_be_read_for_an_unexpected_reason_is_finished(
            self, tmp_path: Path) -> None:
        """The read of the recovery's check fails with an error no rule names (a bug in a
        parser, handed back by a reader): the start goes on, as it did before the check,
        and the claim is finished for the attempt, which reads the bundle again."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())

        def broken(*_: object) -> Any:
            raise RuntimeError("parser bug")

        p.finish.evaluate = broken
        with capture_logs() as logs:
            assert p.finish.recover() == [(row, 0.0)]
        assert p.j.get(row).state == "delivering"
        assert (work / "INV-1" / "a.pdf").exists()
        # A bundle event (docs/operations.md, Logs): it named the invoice file only, not
        # the bundle id.
        [line] = [e for e in logs if e["event"] == "unexpected error reading a claimed "
                  "bundle again"]
        got = p.j.get(row)
        assert (line["bundle_id"], line["invoice_file"], line["invoice_ids"]) == \
            (got.bundle_id, "INV-1.xml", got.invoice_ids)
        assert len(line["bundle_id"]) == 64
        p.finish.evaluate = evaluate
        assert p.finish.attempt(row) is None and p.j.get(row).state == "sent"

    def test_a_claimed_bundle_that_cannot_be_read_again_says_why_in_its_row(
            self, tmp_path: Path) -> None:
        """The recovery's check let the start go on past an unexpected read error; the
        attempt meets it too (the parser bug is still there). The row says so, retrying
        with the error as last_error (status, the page), instead of staying `delivering`
        with no error while the workers retry it; nothing is sent, quarantined or moved."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())

        def broken(*_: object) -> Any:
            raise RuntimeError("parser bug")

        p.finish.evaluate = broken
        assert p.finish.recover() == [(row, 0.0)]
        delay = p.finish.attempt(row)
        got = p.j.get(row)
        assert delay is not None and delay > 0
        assert got.state == "retrying" and "parser bug" in (got.last_error or "")
        assert got.shown_state == "retrying"
        assert (work / "INV-1.xml").exists() and (work / "INV-1" / "a.pdf").exists()
        assert (p.finish.attempt(row) or 0) > 0  # its back-off, not read again at once
        p.finish.evaluate = evaluate
        p.finish._move_faults.clear()  # its back-off over
        assert p.finish.attempt(row) is None and p.j.get(row).state == "sent"

    @pytest.mark.parametrize("code", [errno.EMFILE, errno.EIO, errno.ESTALE])
    def test_a_claimed_bundle_the_machine_fails_to_read_again_waits_not_quarantined(
            self, tmp_path: Path, code: int) -> None:
        """Read again in processing after a restart, the bundle meets no descriptors left,
        an I/O error, a stale share: the machine's fault, not the bundle's. It was
        quarantined as processing-damaged with "[Errno 24] …" and the server's path in
        REASON.txt; it waits in its row (retrying, why) and is sent once the read works."""
        p, s, work, row = self._half_claimed(tmp_path, pdf_bytes())

        def failing(*_: object) -> Any:
            raise OSError(code, os.strerror(code), str(work / "INV-1" / "a.pdf"))

        p.finish.evaluate = failing
        assert p.finish.recover() == [(row, 0.0)]
        delay = p.finish.attempt(row)
        got = p.j.get(row)
        assert delay is not None and delay > 0
        assert got.state == "retrying" and os.strerror(code) in (got.last_error or "")
        assert list(s.quarantine_dir.glob("*/*")) == []
        assert (work / "INV-1.xml").exists() and (work / "INV-1" / "a.pdf").exists()
        p.finish.evaluate = evaluate
        p.finish._move_faults.clear()  # its back-off over
        assert p.finish.attempt(row) is None and p.j.get(row).state == "sent"

    def test_a_retry_wait_is_not_lengthened_by_a_wall_clock_stepped_back_before_a_restart(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bundle retrying with 2 s left when the daemon stops, the wall clock then
        stepped back an hour (an NTP step at boot): the restart tries it within those 2 s,
        not an hour later, and the next try `status` and the page show is then (before,
        an hour later). A clock stepped forward tries it at once."""
        wall = pin_wall(monkeypatch, datetime(2031, 5, 6, 12, 0, tzinfo=UTC))
        p, _ = make(tmp_path)
        row = p.j.create("INV-1.xml", "delivering", bundle_id="ab" * 32)
        p.j.transition(row, "retrying", attempts=1, last_error="HTTP 503",
                       next_attempt_at="2031-05-06T12:00:02.000Z")
        wall.at -= timedelta(hours=1)
        [(due_row, delay)] = p.finish.recover()
        assert due_row == row and delay == 2.0
        assert p.j.get(row).next_attempt_at == "2031-05-06T11:00:02.000Z"
        wall.at += timedelta(hours=2)
        assert p.finish.recover() == [(row, 0.0)]


class TestRulesOfANewVersion:
    """An upgrade brings new rules (pre-flight, validation) and may come with changed
    settings; a bundle claimed before it was checked by the rules of its time."""

    @staticmethod
    def _stricter(s: Settings) -> Settings:
        # PDF no longer allowed: what today's rules find in the bundle claimed before.
        return s.model_copy(update={"validation": s.validation.model_copy(
            update={"allowed_types": ["png"]})})

    @staticmethod
    def _restarted_and_attempted(p: Pipeline, s: Settings, row: int) -> Idempotent:
        """The claimed row taken over by a restart (recovered) and attempted once against
        a receiver that has it or takes it: that receiver, to count its POSTs."""
        fin = Finisher(s, p.j, NeverPost())
        assert [r for r, _ in fin.recover()] == [row]
        fin.d = receiver = Idempotent(Receipt(200, {"receipt_id": "r-1"}, "r-1"))
        assert fin.attempt(row) is None
        return receiver

    @staticmethod
    def _older_name_rule(monkeypatch: pytest.MonkeyPatch) -> None:
        """Names judged as the version before C1 controls were refused: C0 only."""
        from daemon.reading import folderfiles, match

        def before_c1(name: str) -> str | None:
            problem = names.name_problem(name)
            return None if problem and not any(
                c < " " or c == "\x7f" for c in name) else problem

        monkeypatch.setattr(match, "name_problem", before_c1)  # the sidecar's folders
        monkeypatch.setattr(folderfiles, "name_problem", before_c1)  # the files in each

    def test_a_bundle_whose_sending_began_before_a_restart_is_sent_as_claimed(
            self, tmp_path: Path) -> None:
        """A bundle claimed and being sent when outboxd stopped (the receiver may have it:
        a POST cut short) is sent again as claimed after a restart, with the same bundle
        id, though the rules in force now find errors in it. It was quarantined with
        "Nothing was sent" in REASON.txt while the receiver had it (found by upgrading a
        pilot's outboxd from before pre-flight during a delivery), and the corrected copy
        the clerk then dropped would have reached the receiver as a second bundle."""
        p, s, row = claimed(tmp_path)
        bid = p.j.get(row).bundle_id
        receiver = self._restarted_and_attempted(p, self._stricter(s), row)
        got = p.j.get(row)
        assert receiver.posts == 1
        assert got.state == "sent" and got.bundle_id == bid and got.receipt_id == "r-1"
        assert list(s.quarantine_dir.glob("*/*")) == []

    def test_a_bundle_an_older_version_claimed_with_a_c1_name_is_sent_as_claimed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Upgrade: the version before this one took names with C1 controls and claimed
        a bundle whose attachment is named a<U+0085>.pdf, killed while sending it (the
        receiver may have it). This version refuses such a name (bad-name); read again
        after the restart the file was left out of the bundle, so it had another id and
        was quarantined — REASON.txt saying nothing was sent — while the receiver held
        it. It is read with the file and sent again as claimed, with the same id."""
        self._older_name_rule(monkeypatch)
        p, s, row = claimed(tmp_path, {"a\x85.pdf": pdf_bytes()})
        monkeypatch.undo()
        bid = p.j.get(row).bundle_id
        receiver = self._restarted_and_attempted(p, s, row)
        got = p.j.get(row)
        assert receiver.posts == 1 and list(s.quarantine_dir.glob("*/*")) == []
        assert got.state == "sent" and got.bundle_id == bid
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a\x85.pdf").read_bytes() == pdf_bytes()

    def test_an_invoice_folder_an_older_version_matched_with_its_c1_name_is_sent_as_claimed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Upgrade: the version before this one named invoice INV-<U+0085>8's folder with
        the character kept, and claimed B-7 (INV-7, INV-<U+0085>8) with b.pdf in that
        folder; killed while sending it (the receiver may have it). Read again after the
        restart, the folder (a bad-name now) was skipped, b.pdf left out, the bundle had
        another id and was quarantined, REASON.txt saying nothing was sent. The folder is
        read as the invoice's, as it was claimed, and the bundle sent with the same id."""
        self._older_name_rule(monkeypatch)
        monkeypatch.setattr(idnames, "contract_folder_name",
                            lambda i: names.fit_name(re.sub(r'[/\\:*?"<>|\x00-\x1f\x7f]', "_", i)))
        p, s, row = claimed(tmp_path, {"INV-7/a.pdf": pdf_bytes(),
                                       "INV-\x858/b.pdf": pdf_bytes(2)},
                            name="B-7", invoice=batch_xml("INV-7", "INV-\x858"))
        monkeypatch.undo()
        bid = p.j.get(row).bundle_id
        receiver = self._restarted_and_attempted(p, s, row)
        got = p.j.get(row)
        assert receiver.posts == 1 and list(s.quarantine_dir.glob("*/*")) == []
        assert got.state == "sent" and got.bundle_id == bid
        [entry] = folders(s.sent_dir)
        assert (entry / "B-7" / "INV-\x858" / "b.pdf").read_bytes() == pdf_bytes(2)

    def test_a_folder_no_version_matched_is_not_taken_as_an_invoices_when_read_again(
            self, tmp_path: Path) -> None:
        """Only an id's own folder by the older rule is read as the invoice's: in a
        claimed B-7 (INV-7, INV_8), a folder INV<U+0085>8 put in processing was no
        invoice's folder for any version (INV_8's was INV_8, as it is now), though with
        its character replaced it reads INV_8. Taken as INV_8's it would change the
        bundle's id and quarantine a bundle the receiver may have; it is left out (its
        bad-name said), and the bundle is sent as claimed."""
        p, s, row = claimed(tmp_path, {"INV-7/a.pdf": pdf_bytes(),
                                       "INV_8/c.pdf": pdf_bytes(3)},
                            name="B-7", invoice=batch_xml("INV-7", "INV_8"))
        bid = p.j.get(row).bundle_id
        write(Path(p.j.get(row).work_dir or "") / "B-7" / "INV\x858" / "b.pdf", pdf_bytes(2))
        receiver = self._restarted_and_attempted(p, s, row)
        got = p.j.get(row)
        assert receiver.posts == 1 and got.state == "sent" and got.bundle_id == bid

    @pytest.mark.parametrize("hidden", ["INV-1/a.pdf", "INV-1"], ids=["file", "sidecar"])
    def test_what_the_share_hides_while_a_restart_reads_it_again_waits_not_quarantined(
            self, tmp_path: Path, hidden: str) -> None:
        """A claimed bundle read again after a restart, one of its files (or its sidecar)
        listed or looked at and gone at its open (a share that blinked), is read again
        later. It was "cannot be read (No such file or directory) — check the file's
        permissions", and the bundle, which the receiver may hold, went to quarantine/ as
        processing-damaged. Back, it is sent as claimed."""
        from swaps import when_opened
        p, s, row = claimed(tmp_path)
        bid = p.j.get(row).bundle_id
        path = Path(p.j.get(row).work_dir or "") / hidden
        aside = tmp_path / "aside"
        fin = Finisher(s, p.j, NeverPost())
        assert [r for r, _ in fin.recover()] == [row]
        fin.d = receiver = Idempotent(Receipt(200, {"receipt_id": "r-1"}, "r-1"))
        with when_opened(path.name, lambda: path.rename(aside)) as done:
            wait = fin.attempt(row)
        assert done and wait is not None and wait > 0
        got = p.j.get(row)
        assert got.state in ("delivering", "retrying") and path.name in (got.last_error or "")
        assert receiver.posts == 0 and list(s.quarantine_dir.glob("*/*")) == []
        aside.rename(path)
        fin._move_faults.clear()  # the back-off's pause over
        assert fin.attempt(row) is None
        got = p.j.get(row)
        assert got.state == "sent" and got.bundle_id == bid and receiver.posts == 1

    def test_a_bundle_read_again_on_another_channel_is_never_sent_as_claimed(
            self, tmp_path: Path) -> None:
        """The bundle id does not cover the channel: a claimed e-invoice bundle with a PNG
        whose attachments.toml a clerk edited inside processing to original-print (PDF
        only) has the same id after a restart. It was sent as claimed, with a manifest
        saying original-print and the PNG, checked for no channel it went out on; it is
        judged as it is now, and quarantined for the PNG."""
        image = io.BytesIO()
        Image.new("RGB", (8, 8)).save(image, format="PNG")
        p, s, row = claimed(tmp_path, {"photo.png": image.getvalue()})
        assert p.j.get(row).channel == "e-invoice"
        work = Path(p.j.get(row).work_dir or "")
        (work / "INV-1" / "attachments.toml").write_text('channel = "original-print"\n')
        receiver = self._restarted_and_attempted(p, s, row)
        assert receiver.posts == 0 and list(s.sent_dir.glob("*/*")) == []
        assert p.j.get(row).state == "quarantined"
        [folder] = folders(s.quarantine_dir)
        record = json.loads((folder / "reason.json").read_text())
        [reason] = record["reasons"]
        assert reason["file"] == "INV-1/photo.png" and "original-print" in reason["message"]
        # Its first POST may have reached the receiver before the restart (no count
        # says so): the papers say to ask the operator, never "Nothing was delivered".
        assert record["delivery_outcome_unknown"] is True
        text = (folder / "REASON.txt").read_text()
        assert "may have this bundle already" in text and "Nothing was delivered" not in text

    def test_only_a_post_of_an_earlier_process_is_said_to_be_from_before_a_restart(
            self, tmp_path: Path) -> None:
        """A bundle read again after a reload (not a restart) and quarantined for what the
        rules in force find: its POSTs were this process's, counted (attempts), and its
        papers already say the receiver may have it. Its first reason said "a POST of it
        before a restart may have reached the receiver" of a daemon never restarted; the
        words are kept for a row claimed before the start."""
        from daemon.bundle import Finding
        p, s, row = claimed(tmp_path)
        p.j.transition(row, "retrying", attempts=1, last_error="HTTP 503")
        r = p.j.get(row)
        errors = [Finding("type-not-allowed", "INV-1/a.pdf", "is a PDF", "error")]
        fin = Finisher(s, p.j, NeverPost())
        assert "before a restart" in fin.judged_after_restart(r, errors)[0].message
        fin._since_claim.add(row)  # handed over in this process, read again at a reload
        assert fin.judged_after_restart(r, errors) == errors

    def test_a_bundle_whose_files_changed_in_processing_is_never_sent_as_claimed(
            self, tmp_path: Path) -> None:
        """Only the bytes a claim recorded are sent as claimed: a claimed bundle whose
        attachment someone replaced inside processing while outboxd was stopped has
        another bundle id after the restart, and is judged by the rules in force now
        (quarantined for what they find), never sent on the strength of the claim."""
        p, s, row = claimed(tmp_path)
        work = Path(p.j.get(row).work_dir or "")
        (work / "INV-1" / "a.pdf").write_bytes(pdf_bytes(text_marker="replaced"))
        receiver = self._restarted_and_attempted(p, self._stricter(s), row)
        assert receiver.posts == 0 and list(s.sent_dir.glob("*/*")) == []
        assert p.j.get(row).state == "quarantined"
        [folder] = folders(s.quarantine_dir)
        assert "type-not-allowed" in (folder / "reason.json").read_text()

    def test_with_documents_built_at_delivery_nothing_is_sent_as_claimed(
            self, tmp_path: Path) -> None:
        """ubl-embedded builds and checks each document at delivery, and none may go out
        unchecked: a bundle claimed before a restart is never sent as it was checked then
        in that format (the documents the receiver has are in the journal), while the
        format that sends the files as they are does send it as claimed."""
        p, s, row = claimed(tmp_path)
        r = p.j.get(row)
        bundle = p.finish._read_again(r, s)
        assert r.bundle_id is not None and s.delivery.format != "ubl-embedded"
        for fmt, as_claimed in (("ubl-embedded", False), (s.delivery.format, True)):
            now = s.model_copy(update={"delivery": s.delivery.model_copy(
                update={"format": fmt})})
            fin = Finisher(now, p.j, NeverPost())
            assert fin.sent_as_claimed(r, bundle, r.bundle_id, p.log) is as_claimed

    def test_a_claim_cut_short_before_a_restart_meets_the_rules_in_force_now(
            self, tmp_path: Path) -> None:
        """A claim a crash cut short sent nothing: it is checked by the rules in force
        when it is finished, and quarantined (nothing was sent) if they find errors."""
        p, s, work, row = TestRecovery._half_claimed(tmp_path, pdf_bytes())
        fin = Finisher(self._stricter(s), p.j, NeverPost())
        assert fin.recover() == [(row, 0.0)]
        assert fin.attempt(row) is None
        assert p.j.get(row).state == "quarantined"
        [folder] = folders(s.quarantine_dir)
        record = json.loads((folder / "reason.json").read_text())
        assert "type-not-allowed" in json.dumps(record)
        assert "delivery_outcome_unknown" not in record
        assert "Nothing was delivered" in (folder / "REASON.txt").read_text()

    def test_a_claim_cut_short_whose_check_at_start_failed_still_meets_the_rules_in_force(
            self, tmp_path: Path) -> None:
        """A claim a crash cut short sent nothing, also when the share failed the read of
        its check at start (EIO) and the bundle is read again at its attempt: it is judged
        by the rules in force then and quarantined for what they find, never sent as it
        was checked at its claim (a POST that never began cannot have reached anyone)."""
        p, s, work, row = TestRecovery._half_claimed(tmp_path, pdf_bytes())
        fin = Finisher(self._stricter(s), p.j, NeverPost())

        def share_failed(*_: object) -> Any:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(work / "INV-1.xml"))

        fin.evaluate = share_failed
        assert fin.recover() == [(row, 0.0)]
        fin.evaluate = evaluate
        fin.d = receiver = Idempotent(Receipt(200, {"receipt_id": "r-1"}, "r-1"))
        assert fin.attempt(row) is None
        assert receiver.posts == 0 and list(s.sent_dir.glob("*/*")) == []
        assert p.j.get(row).state == "quarantined"
        [folder] = folders(s.quarantine_dir)
        record = json.loads((folder / "reason.json").read_text())
        assert "type-not-allowed" in json.dumps(record)
        assert "delivery_outcome_unknown" not in record


def test_a_work_folder_without_the_invoice_but_with_a_file_keeps_it_at_recovery(
        tmp_path: Path) -> None:
    """A claim cut short before its invoice file moved, whose work folder a clerk has
    since dropped a file into (or the crash left the marker there): the claim did not
    happen, the row settles again with the bundle in the outbox, and the work folder is
    not removed with the file in it — only an empty one is."""
    p, s = make(tmp_path)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    work = s.processing_dir / "INV-1--abababababab--x"
    work.mkdir()
    (work / "late.pdf").write_bytes(b"%PDF-1.4 late")
    row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32, work_dir=str(work),
                     claimed_in=folder_mark(s.processing_dir))
    assert p.finish.recover() == []
    assert p.j.get(row).state == "settling"
    assert (s.outbox.path / "INV-1.xml").exists()
    assert (work / "late.pdf").read_bytes() == b"%PDF-1.4 late"
    empty = s.processing_dir / "INV-2--cdcdcdcdcdcd--x"
    empty.mkdir()
    drop_bundle(s.outbox.path, "INV-2", {"a.pdf": pdf_bytes()})
    row2 = p.j.create("INV-2.xml", "claiming", bundle_id="cd" * 32, work_dir=str(empty),
                      claimed_in=folder_mark(s.processing_dir))
    assert p.finish.recover() == []
    assert p.j.get(row2).state == "settling" and not empty.exists()


def _share_fails(monkeypatch: pytest.MonkeyPatch, fails: Any, code: int = errno.EIO) -> None:
    """os.lstat fails with `code` (a share's I/O error, a stale handle) for each path
    `fails(path)` is true of, as a share that is half away answers."""
    real_lstat = os.lstat

    def lstat(path: Any, *args: Any, **kw: Any) -> os.stat_result:
        if fails(str(path)):
            raise OSError(code, os.strerror(code), str(path))
        return real_lstat(path, *args, **kw)
    monkeypatch.setattr(os, "lstat", lstat)


class TestRecoveryOnAShareThatCannotBeLookedAt:
    """A start during a share's outage: a look that fails with EIO or ESTALE is no
    answer, and a claim is never ended for it (docs/operations.md, share away)."""

    @pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE], ids=["EIO", "ESTALE"])
    def test_an_invoice_file_in_its_work_folder_the_share_cannot_look_at_is_not_gone(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """A claim cut short with its invoice file in the work folder, whose look there
        fails (the share half away): the row waits `claiming`, saying why, and is finished
        once the share answers. Taken for "no invoice file there", with none in the outbox
        either, the row ended `gone` and the bundle was left in a folder no row named."""
        p, s, work, row = TestRecovery._half_claimed(tmp_path, pdf_bytes())
        with monkeypatch.context() as m:
            _share_fails(m, lambda path: path.startswith("/proc/self/fd/")
                         and path.endswith("/INV-1.xml"), code)
            assert p.finish.recover() == []
        r = p.j.get(row)
        assert (r.state, r.work_dir) == ("claiming", str(work))
        assert os.strerror(code) in (r.last_error or "")
        assert p.finish.finish_claims_again() == ([row], [])
        assert p.j.get(row).state == "delivering"
        assert (work / "INV-1.xml").is_file() and (work / "INV-1" / "a.pdf").is_file()

    def test_a_claim_left_waiting_stands_for_its_bundle_still_in_the_outbox(
            self, tmp_path: Path) -> None:
        """A stop after a claim made its work folder and before its first rename (the
        bundle whole in the outbox), and at the start the share fails the look at that
        work folder: the row waits `claiming`, and while it waits the invoice file in the
        outbox is not read into a second row nor quarantined as a duplicate of its own
        claim ("this exact bundle was being sent … — remove it": a clerk who did lost an
        invoice never sent). Once the share answers, the claim is found not to have
        happened and the bundle is sent from the outbox."""
        from daemon.delivery.directory import DirectoryDeliverer
        from daemon.journal import Journal
        from daemon.loop.pipeline import Pipeline
        p, s, row = claimed(tmp_path)
        work = Path(p.j.get(row).work_dir or "")
        for name in ("INV-1.xml", "INV-1"):  # the claim's renames never happened
            (work / name).rename(s.outbox.path / name)
        p.j.transition(row, "claiming", last_error=None)
        p.j.close()
        again = Pipeline(s, Journal(s.journal_path), DirectoryDeliverer(tmp_path / "target"))
        try:
            with started_while_work_looks_fail(again, s, work.name, row) as cand:
                pass
            assert again.retry_stranded() == []  # the share back: settling again
            assert again.live["INV-1.xml"].id == row
            claimed_now = [step(again, cand, now).claimed for now in (3000.0, 3001.0)]
            assert row in claimed_now
            assert again.finish.attempt(row) is None
            assert again.j.get(row).state == "sent" and folders(s.quarantine_dir) == []
        finally:
            again.j.close()

    def test_an_invoice_file_in_the_outbox_the_share_cannot_look_at_is_not_gone(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim cut short before its work folder was made, its invoice file still in
        the outbox, whose look fails at the start: the row waits and settles again once the
        share answers. Taken for "the invoice file is no longer in the outbox" (the
        processing folder the very one claimed in, no work folder), the claim ended `gone`
        and said the clerk had taken the invoice file back."""
        s, row = TestRecovery._cut_short(tmp_path)
        invoice = str(s.outbox.path / "INV-1.xml")
        with monkeypatch.context() as m:
            _share_fails(m, lambda path: path == invoice)
            fin = TestRecovery._start(s)
        r = fin.j.get(row)
        assert r.state == "claiming" and "Input/output error" in (r.last_error or "")
        assert fin.finish_claims_again()[0] == [] and fin.j.get(row).state == "settling"
        assert (s.outbox.path / "INV-1.xml").is_file()
