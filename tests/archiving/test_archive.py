"""Archive entries (docs/folder-convention.md, After delivery): where a finished bundle goes,
crash-safe moves, the papers."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import ubl_invoice, write
from swaps import opened_in

from daemon.archiving import archive
from daemon.archiving.archive import move_into_place, target_for
from daemon.archiving.archive_papers import (
    readable_json,
    reason_papers,
    reason_record,
    receipt_papers,
    write_papers,
)
from daemon.archiving.kept import kept_for, mark_kept
from daemon.bundle import Finding
from daemon.claiming.claim import copy_tag
from daemon.configuration.config import Settings
from daemon.fs import fsmove, fswrite
from daemon.fs.fsmove import remove_held
from daemon.reading.match import assemble
from daemon.watching.scan import list_outbox

BID = "0123456789abcdef" * 4


def make_work(path: Path) -> Path:
    (path / "INV-1" / "sub").mkdir(parents=True)
    (path / "INV-1.xml").write_bytes(b"<Invoice/>")
    (path / "INV-1" / "a.pdf").write_bytes(b"%PDF-a")
    (path / "INV-1" / "sub" / "b.pdf").write_bytes(b"%PDF-b")
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


class _FixedClock(datetime):
    """23:30 UTC on 2026-01-01, which is already 2026-01-02 at UTC+14."""

    @classmethod
    def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
        utc = datetime(2026, 1, 1, 23, 30, tzinfo=UTC)
        if tz is None:
            return (utc + timedelta(hours=14)).replace(tzinfo=None)
        return utc.astimezone(tz)  # type: ignore[arg-type]


class TestTargetFor:
    def test_layout_uses_utc_date_and_bundle_id_prefix(self, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
        """ROOT/YYYY-MM-DD/NAME--BUNDLEID12 with the UTC date, not the local one."""
        monkeypatch.setattr(archive, "datetime", _FixedClock)
        assert target_for(tmp_path, "INV-1", BID) == tmp_path / "2026-01-01" / \
            "INV-1--0123456789ab"

    def test_today(self, tmp_path: Path) -> None:
        """Without a fixed clock the folder is today's UTC date."""
        before = datetime.now(UTC).strftime("%Y-%m-%d")
        got = target_for(tmp_path, "INV-1", BID)
        after = datetime.now(UTC).strftime("%Y-%m-%d")
        assert got.parent.name in (before, after) and got.name == "INV-1--0123456789ab"

    def test_taken_names_get_suffixes(self, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
        """-2, -3 … are appended while the name is taken."""
        monkeypatch.setattr(archive, "datetime", _FixedClock)
        first = target_for(tmp_path, "INV-1", BID)
        first.mkdir(parents=True)
        second = target_for(tmp_path, "INV-1", BID)
        assert second.name == "INV-1--0123456789ab-2"
        second.mkdir()
        assert target_for(tmp_path, "INV-1", BID).name == "INV-1--0123456789ab-3"


class TestMoveIntoPlace:
    def test_moves_whole_tree(self, tmp_path: Path) -> None:
        """The work folder becomes the archive entry, layout kept, parents created."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123456789ab"
        assert move_into_place(work, target) == target
        assert tree(target) == content and not work.exists()

    def test_idempotent(self, tmp_path: Path) -> None:
        """Calling it again after it finished (recovery) changes nothing."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "d" / "x"
        move_into_place(work, target)
        content = tree(target)
        assert move_into_place(work, target) == target
        assert tree(target) == content and not work.exists()

    def test_a_paper_swapped_for_a_fifo_before_its_sync_is_never_opened(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Someone on the share puts a FIFO where receipt.json was just written, before
        the paper is synced in its new entry: the FIFO is never opened (only looked at),
        the archive fails naming it, and so does its next try (outboxd writes over no
        file it did not write); once someone removes the FIFO, the next try writes the
        receipt in the entry. Opened by its name, the FIFO was joined (a device's driver
        would have been called)."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123456789ab"
        papers = {"receipt.json": json.dumps({"bundle_id": BID}).encode()}
        real = archive.write_papers

        def then_a_fifo(folder: Path, papers: Any, sync: bool = True) -> None:
            real(folder, papers, sync=sync)
            os.unlink(folder / "receipt.json")
            os.mkfifo(folder / "receipt.json")

        monkeypatch.setattr(archive, "write_papers", then_a_fifo)
        with opened_in(work) as opened, pytest.raises(OSError) as caught:
            archive.place(work, target, papers, BID)
        assert "receipt.json" not in opened
        assert "FIFO" in str(caught.value) and str(caught.value.filename).endswith(
            "receipt.json")
        assert stat.S_ISFIFO(os.lstat(target / "receipt.json").st_mode)
        monkeypatch.setattr(archive, "write_papers", real)
        with pytest.raises(OSError, match="receipt.json is a FIFO, not outboxd's paper"):
            archive.place(work, target, papers, BID)
        assert stat.S_ISFIFO(os.lstat(target / "receipt.json").st_mode)
        os.unlink(target / "receipt.json")
        assert archive.place(work, target, papers, BID) == target
        assert (target / "receipt.json").read_bytes() == papers["receipt.json"]

    def test_missing_work_and_missing_target_is_an_error(self, tmp_path: Path) -> None:
        """Neither the work folder nor the target is there (a share that went away): an
        OSError, never a target that does not exist reported as done."""
        target = tmp_path / "sent" / "d" / "x"
        with pytest.raises(FileNotFoundError, match="share mounted"):
            move_into_place(tmp_path / "gone", target)
        assert not target.exists()

    def test_long_names_give_a_target_that_fits(self, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
        """target_for shortens NAME so NAME--ID12, a -N suffix and the temp name of a copy
        under way, with the longest daemon tag (a long host name), all fit in one path
        component."""
        t = target_for(tmp_path, "Å" * 123, "0123456789ab" * 5)
        assert t.name.endswith("--0123456789ab")
        monkeypatch.setattr("socket.gethostname", lambda: "Ö" * 100 + ".example.org")
        longest = copy_tag(tmp_path / "state")
        assert len(longest.encode()) == fsmove.TAG_MAX
        assert len(fsmove.partial_name(t.with_name(f"{t.name}-999"), longest).name.encode()) \
            <= 255

    def test_crash_after_copy_removes_source_because_target_complete(
            self, tmp_path: Path) -> None:
        """Target exists and source still there (crash between copy-rename and delete):
        the complete target is kept and the source removed."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "d" / "x"
        target.parent.mkdir(parents=True)
        shutil.copytree(work, target)
        content = tree(work)
        assert move_into_place(work, target) == target
        assert not work.exists() and tree(target) == content

    def test_crash_after_copy_with_folders_a_thousand_deep_put_in_meanwhile(
            self, tmp_path: Path, deep_tree: Any) -> None:
        """After a crash between the copy's rename into place and the removal of its
        source, someone put folders 1,100 deep into the work folder: the look at what the
        entry holds of it (os.fwalk) ran out of Python's recursion limit, a traceback on
        every try, the bundle in both places. What lies deeper than a copy goes
        (fsdepth.DEPTH_MAX) was never copied, so the entry is not the whole work folder:
        it stays as it is, and the work folder goes beside it."""
        work = make_work(tmp_path / "work")
        (work / "receipt.json").write_bytes(b'{"bundle_id": "0123"}\n')  # before the copy
        target = tmp_path / "sent" / "d" / "x"
        target.parent.mkdir(parents=True)
        shutil.copytree(work, target)
        content = tree(work)
        (work / "INV-1" / "sub" / "deep").mkdir()
        deep_tree(work / "INV-1" / "sub" / "deep", 1100)
        got = move_into_place(work, target)
        assert got == target.with_name("x-2") and not work.exists()
        assert tree(target) == content
        assert os.listdir(got / "INV-1" / "sub" / "deep")

    def test_crash_during_source_delete(self, tmp_path: Path) -> None:
        """Source half deleted after the copy was complete: what is left is removed."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "d" / "x"
        shutil.copytree(work, target)
        (work / "INV-1.xml").unlink()
        move_into_place(work, target)
        assert not work.exists() and (target / "INV-1.xml").exists()

    def test_foreign_target_never_costs_the_source(self, tmp_path: Path) -> None:
        """A target that is not a copy of this bundle (someone else's entry under the same
        name) does not make us delete the source: it goes to a free name beside it."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "d" / "x"
        target.mkdir(parents=True)
        (target / "INV-1.xml").write_bytes(b"<Invoice>other</Invoice>")
        got = move_into_place(work, target)
        assert got == target.with_name("x-2")
        assert tree(got) == content and not work.exists()
        assert tree(target) == {"INV-1.xml": b"<Invoice>other</Invoice>"}

    @pytest.mark.parametrize("taken_by", ["folder", "link"])
    def test_the_name_beside_a_taken_one_is_told_before_the_move_and_found_after_a_crash(
            self, tmp_path: Path, taken_by: str) -> None:
        """The entry name taken by someone else's folder, or a link: the name beside is told
        (`beside`: the caller journals it) before anything is moved there. A retry at that
        name after a crash that came after the rename, before the journal's word of it,
        finds the bundle there: at the name taken it was reported archived in the other
        entry (a folder) or not in the archive at all (a link), for ever."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "d" / "x"
        target.parent.mkdir(parents=True)
        if taken_by == "folder":
            target.mkdir()
            (target / "INV-1.xml").write_bytes(b"<Invoice>other</Invoice>")
        else:
            os.symlink(tmp_path / "elsewhere", target)
        told: list[Path] = []

        def beside(free: Path) -> None:
            assert os.path.lexists(work) and not os.path.lexists(free)  # before the move
            told.append(free)

        papers = {"receipt.json": json.dumps({"bundle_id": BID}).encode()}
        got = archive.place(work, target, papers, BID, beside=beside)
        assert told == [got] == [target.with_name("x-2")]
        assert archive.place(work, told[-1], papers, BID) == got
        assert tree(got) == {**content, **papers} and not work.exists()

    def test_a_copy_beside_a_taken_name_is_found_by_the_retry_at_the_name_told(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Across file systems, beside someone else's entry: killed after the copy was put
        in place, before its source was removed. The retry at the name told finds its
        own copy there and removes the source: one entry of the bundle (the retry at the
        name taken copied it again, to x-3)."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "d" / "x"
        target.mkdir(parents=True)
        (target / "INV-1.xml").write_bytes(b"<Invoice>other</Invoice>")
        rename = fsmove.rename_noreplace

        def across(src: Path, dst: Path, *at: int | None) -> None:
            if Path(src) == work:
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            rename(src, dst, *at)

        def killed(*_: Any) -> list[Path]:
            raise OSError(errno.EINTR, "killed here")

        monkeypatch.setattr(fsmove, "rename_noreplace", across)
        monkeypatch.setattr(fsmove, "remove_held", killed)
        told: list[Path] = []
        with pytest.raises(OSError, match="killed here"):
            move_into_place(work, target, beside=told.append)
        monkeypatch.setattr(fsmove, "remove_held", remove_held)
        assert move_into_place(work, told[-1], beside=told.append) == target.with_name("x-2")
        assert told == [target.with_name("x-2")]
        assert sorted(os.listdir(target.parent)) == ["x", "x-2"]
        assert tree(target.with_name("x-2")) == content and not work.exists()

    def test_two_daemons_archiving_one_bundle_at_once_never_remove_each_others_copy(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Two daemons on one share (each journal knows only its own deliveries) archive the
        same bundle, dropped again while the first was archived, into one sent/ on another
        file system: one target name (NAME--ID12, the same day). The second, starting while
        the first's copy is complete but not yet renamed into place, never removes that copy
        (each copies under its own name): the first finds the name taken at its rename and
        its retry archives beside it; each entry holds its own receipt, nothing is left."""
        works = {d: make_work(tmp_path / d / "INV-1--0123") for d in ("a", "b")}
        papers = {d: {"receipt.json": json.dumps({"bundle_id": BID, "by": d}).encode()}
                  for d in works}
        target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123456789ab"
        rename = fswrite.rename_noreplace
        partials_then: list[list[str]] = []

        def across(src: Path, dst: Path, *at: int | None) -> None:
            if Path(src) in works.values():
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            if Path(dst) == target and not partials_then:
                # Daemon a's copy is complete, about to be renamed: daemon b archives now.
                partials_then.append([])
                assert archive.place(works["b"], target, papers["b"], BID, "hostb-bbbbbb") \
                    == target
                partials_then.append(sorted(os.listdir(src)) if os.path.lexists(src) else [])
            rename(src, dst, *at)
        monkeypatch.setattr("daemon.fs.fsmove.rename_noreplace", across)

        beside = archive.place(works["a"], target, papers["a"], BID, "hosta-aaaaaa")
        assert partials_then[-1] == ["INV-1", "INV-1.xml", "receipt.json"], \
            "daemon a's complete copy was removed under it"
        assert beside == target.with_name(target.name + "-2")
        for d, entry in (("b", target), ("a", beside)):
            assert json.loads((entry / "receipt.json").read_bytes())["by"] == d
            assert (entry / "INV-1" / "sub" / "b.pdf").read_bytes() == b"%PDF-b"
        assert sorted(os.listdir(target.parent)) == [target.name, beside.name]
        assert not any(os.path.lexists(w) for w in works.values())

    @pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "no-renameat2"])
    def test_an_entry_made_between_the_look_and_the_move_is_kept_and_ours_goes_beside(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renameat2: bool) -> None:
        """Another daemon on the share (or a clerk) makes an entry of the bundle's name
        after the look for one, before the move: it is never replaced, and the bundle is
        archived beside it at once, as beside an entry found before (it failed the
        archive, retried on the back-off). Also where the file system has no renameat2
        (NFS, SMB: a look, then a plain rename)."""
        if not renameat2:
            monkeypatch.setattr(fswrite, "_renameat2", None)
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "d" / "x"
        look = archive.entry_at

        def then_made(path: Path, held: int | None = None) -> bool:
            found = look(path, held)
            if path == target and not os.path.lexists(target):
                target.mkdir()
                (target / "theirs.xml").write_bytes(b"<Invoice>other</Invoice>")
            return found

        monkeypatch.setattr(archive, "entry_at", then_made)
        got = move_into_place(work, target)
        assert got == target.with_name("x-2")
        assert tree(got) == content and not work.exists()
        assert tree(target) == {"theirs.xml": b"<Invoice>other</Invoice>"}

    def test_an_entry_made_inside_the_plain_renames_window_is_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without renameat2 the rename is a look and a plain rename: an entry made
        between those two is a folder that is not empty, which a folder is never renamed
        onto (ENOTEMPTY): kept, and the bundle archived beside it."""
        monkeypatch.setattr(fswrite, "_renameat2", None)
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "d" / "x"
        rename = os.rename

        def made_then_rename(src: Any, dst: Any, **at: Any) -> None:
            if os.fsdecode(dst) == target.name and not os.path.lexists(target):
                target.mkdir()
                (target / "theirs.xml").write_bytes(b"<Invoice>other</Invoice>")
            rename(src, dst, **at)

        monkeypatch.setattr(fswrite.os, "rename", made_then_rename)
        got = move_into_place(work, target)
        monkeypatch.undo()
        assert got == target.with_name("x-2")
        assert tree(got) == content and not work.exists()
        assert tree(target) == {"theirs.xml": b"<Invoice>other</Invoice>"}

    def test_a_name_taken_inside_the_move_with_none_at_the_entry_is_no_move_beside(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The move refused with EEXIST while nothing is at the entry's name (a name
        taken inside the copy, not the entry's): the error it is, the bundle left in its
        work folder for the retry at that name — never archived beside an entry that is
        not there (x-2 beside no x)."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        target = tmp_path / "sent" / "d" / "x"

        def taken_inside(*_: Any, **__: Any) -> list[Path]:
            raise OSError(errno.EEXIST, "File exists", "inside the copy")

        monkeypatch.setattr(archive, "move_tree", taken_inside)
        told: list[Path] = []
        with pytest.raises(OSError) as refused:
            move_into_place(work, target, beside=told.append)
        assert refused.value.errno == errno.EEXIST
        assert told == [] and os.listdir(target.parent) == [] and tree(work) == content

    def test_across_file_systems(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """EXDEV on rename: copied in full, source removed, no partial folder left behind."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        real_rename = os.rename
        calls = []

        def rename(src: object, dst: object) -> None:
            calls.append(src)
            if len(calls) == 1:
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            real_rename(src, dst)

        monkeypatch.setattr(fswrite.os, "rename", rename)
        target = tmp_path / "sent" / "d" / "x"
        move_into_place(work, target)
        monkeypatch.undo()
        assert tree(target) == content and not work.exists()
        assert os.listdir(target.parent) == ["x"]


def _look_alike_reason(tmp_path: Path, *look_alikes: str) -> str:
    """REASON.txt of INV-7.xml quarantined for sidecar-spelling with the files
    `look_alikes` (paths under the outbox) beside it, the reasons as the matcher finds
    them from a listing."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    for look_alike in look_alikes:
        write(outbox / look_alike, b"%PDF-1.4")
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "st")},
                 delivery={"url": "http://127.0.0.1:9/x"})
    reasons = [f for f in assemble(list_outbox(s.outbox).candidates["INV-7.xml"],
                                   s).findings if f.code == "sidecar-spelling"]
    record = reason_record(BID, "INV-7.xml", reasons, "2026-12-03T07:50:12Z")
    return reason_papers(record)["REASON.txt"].decode("utf-8")


class TestReasons:
    def _record(self) -> dict:
        return reason_record(BID, "INV-1.xml", [
            Finding("too-large", "INV-1/scan.tif", "is 9 MB; the limit is 5 MB — shrink it",
                    invoice_id="INV-1"),
            Finding("rejected", "INV-1.xml", "the receiver answered HTTP 422: bad"),
        ], "2026-12-03T07:50:12Z", invoice_ids=["INV-1"])

    def test_reason_json_fields(self, tmp_path: Path) -> None:
        """reason.json holds bundle_id, invoice_file, invoice_ids, reasons[code, file, message,
        invoice_id], quarantined_at."""
        write_papers(tmp_path, reason_papers(self._record()))
        data = json.loads((tmp_path / "reason.json").read_text("utf-8"))
        assert set(data) == {"bundle_id", "invoice_file", "invoice_ids", "reasons",
                             "quarantined_at"}
        assert data["bundle_id"] == BID and data["invoice_file"] == "INV-1.xml"
        assert data["invoice_ids"] == ["INV-1"]
        assert data["reasons"] == [
            {"code": "too-large", "file": "INV-1/scan.tif",
             "message": "is 9 MB; the limit is 5 MB — shrink it", "invoice_id": "INV-1"},
            {"code": "rejected", "file": "INV-1.xml",
             "message": "the receiver answered HTTP 422: bad", "invoice_id": None}]
        assert data["quarantined_at"] == "2026-12-03T07:50:12Z"

    def test_reason_txt_names_files_and_codes(self, tmp_path: Path) -> None:
        """REASON.txt names each offending file, its code and message, and how to retry."""
        write_papers(tmp_path, reason_papers(self._record()))
        text = (tmp_path / "REASON.txt").read_text("utf-8")
        for needle in ("INV-1/scan.tif", "too-large", "shrink it", "INV-1.xml", "rejected",
                       "HTTP 422", BID, "outbox"):
            assert needle in text

    def test_a_receivers_control_characters_in_reason_txt_are_shown_escaped(
            self, tmp_path: Path) -> None:
        """A rejection quotes the receiver's body: its escape sequences, NUL and line
        breaks were written raw into REASON.txt, which an admin cats in a terminal; they
        are shown as \\xNN there (reason.json keeps the answer as it came), and each
        reason stays one line."""
        body = "\x00bad\x1b[31mred\x1b[0m\nline two"
        record = reason_record(BID, "INV-1.xml", [Finding(
            "rejected", "INV-1.xml", f"the receiver rejected the bundle with HTTP 400: {body}")],
            "2026-12-03T07:50:12Z", [{"invoice_id": "A", "name": "INV-1--A.xml",
                                      "idempotency_key": "a" * 64, "status": 201,
                                      "receipt_id": "r\x1b]0;pwned\x07"}])
        write_papers(tmp_path, reason_papers(record))
        text = (tmp_path / "REASON.txt").read_text("utf-8")
        assert not any(c in text for c in "\x00\x1b\x07")
        assert "HTTP 400: \\x00bad\\x1b[31mred\\x1b[0m\\x0aline two  [rejected]" in text
        assert "receipt r\\x1b]0;pwned\\x07" in text
        data = json.loads((tmp_path / "reason.json").read_text("utf-8"))
        assert data["reasons"][0]["message"].endswith(body)

    def test_no_temp_files_left(self, tmp_path: Path) -> None:
        """Only reason.json and REASON.txt are written."""
        write_papers(tmp_path, reason_papers(self._record()))
        assert sorted(os.listdir(tmp_path)) == ["REASON.txt", "reason.json"]

    def test_reason_txt_says_the_invoices_of_the_file_without_errors_were_not_sent_either(
            self, tmp_path: Path) -> None:
        """A file of several invoices goes out whole: one attachment of INV-21 refused
        stops INV-20 too. REASON.txt lists INV-21's file alone, so it says that INV-20,
        which has no error of its own, was not sent either (the clerk who looks for INV-20
        under Sent would not find it, and nothing else says why)."""
        record = reason_record(BID, "batch.xml", [Finding(
            "tiff-resolution", "batch/INV-21/bad.tif", "page 1 is 299 DPI; external print "
            "needs 300 DPI — rescan or export at 300 DPI", invoice_id="INV-21")],
            "2026-12-03T07:50:12Z", invoice_ids=["INV-20", "INV-21", "INV-22"])
        text = reason_papers(record)["REASON.txt"].decode("utf-8")
        assert ("\n\nbatch.xml holds the invoices INV-20, INV-21, INV-22 and is sent whole, so "
                "INV-20, INV-22 (without errors of their own) were not sent either.\n"
                "Nothing was delivered. To send it again:\n") in text

    @pytest.mark.parametrize("ids,finding", [
        (["INV-1"], Finding("too-large", "INV-1/a.pdf", "is 9 MB", invoice_id="INV-1")),
        (["A", "B"], Finding("rejected", "batch.xml", "the receiver answered HTTP 422")),
    ])
    def test_reason_txt_names_no_invoice_held_back_when_every_invoice_is_concerned(
            self, ids: list[str], finding: Finding) -> None:
        """One invoice in the file, or a reason of the whole file (a receiver's refusal):
        no invoice was held back only by another's error, and no such line is written."""
        record = reason_record(BID, "batch.xml", [finding], "2026-12-03T07:50:12Z",
                               invoice_ids=ids)
        assert "not sent either" not in reason_papers(record)["REASON.txt"].decode("utf-8")

    def _partly_accepted(self) -> dict:
        """ubl-embedded: A and C were accepted before B was rejected; the
        records as Journal.accepted_documents keeps them."""
        accepted = [{"invoice_id": i, "name": f"INV-1--{i}.xml", "idempotency_key": k * 64,
                     "size": 9, "status": 201, "body": {"receipt_id": f"r-{i}"},
                     "receipt_id": f"r-{i}"} for i, k in (("A", "a"), ("C", "c"))]
        return reason_record(BID, "INV-1.xml", [Finding(
            "rejected", "INV-1.xml", "the receiver rejected the document of invoice B with "
            "HTTP 400: buyer unknown")], "2026-12-03T07:50:12Z", accepted)

    def test_reason_json_lists_the_documents_the_receiver_already_accepted(
            self, tmp_path: Path) -> None:
        """reason.json keeps each accepted document's invoice id, receipt id, key, status
        and name beside the reasons, so the quarantine entry itself says what was
        delivered (not only the journal)."""
        write_papers(tmp_path, reason_papers(self._partly_accepted()))
        data = json.loads((tmp_path / "reason.json").read_text("utf-8"))
        assert data["accepted_documents"] == [
            {"invoice_id": "A", "receipt_id": "r-A", "idempotency_key": "a" * 64,
             "status": 201, "name": "INV-1--A.xml"},
            {"invoice_id": "C", "receipt_id": "r-C", "idempotency_key": "c" * 64,
             "status": 201, "name": "INV-1--C.xml"}]
        assert [r["code"] for r in data["reasons"]] == ["rejected"]

    def test_reason_txt_says_to_move_the_sidecar_folder_back_before_the_invoice_file(
            self, tmp_path: Path) -> None:
        """Every REASON.txt (plain, a look-alike's, a partly delivered bundle's) says, in
        numbered steps, to move the folder of attachments back into the outbox first and
        the invoice file last, as the guide and the ERP's good practice do (an invoice
        file back first settles alone, and under unattached = "send" goes out before its
        folder follows), and names the `outboxd retry` command an admin can run instead,
        as README offers. It said all this in one sentence ("move back into the outbox
        from this folder first the sidecar folder, if this folder holds one, then the
        invoice file"), without the command."""
        look_alike = reason_record(BID, "INV-7.xml", [Finding(
            "sidecar-spelling", "inv-7", "this folder looks like the sidecar INV-7")],
            "2026-12-03T07:50:12Z")
        for record, first in ((self._record(), 2), (look_alike, 3),
                              (self._partly_accepted(), 2)):
            text = reason_papers(record)["REASON.txt"].decode("utf-8")
            name = record["invoice_file"]
            assert (f"\n{first}. If this folder holds a folder of attachments (named like the "
                    "invoice file), move that folder back into the outbox.\n"
                    f"{first + 1}. Last, move {name} back into the outbox (back before its "
                    "attachments, it could be sent without them). outboxd then checks the "
                    "files and sends them again.\n"
                    f"Instead of steps {first} and {first + 1}, an admin can run the command "
                    f"outboxd retry {BID[:12]} (it moves the files back itself).\n") in text
            assert "first the sidecar folder" not in text

    def test_reason_txt_names_the_accepted_invoices_and_says_not_to_send_them_again(
            self, tmp_path: Path) -> None:
        """A partly delivered bundle's REASON.txt does not say "Nothing was delivered": it names
        the rejected invoice and why, each accepted invoice with its receipt, and warns
        that a new export with those invoices would reach the receiver twice."""
        write_papers(tmp_path, reason_papers(self._partly_accepted()))
        text = (tmp_path / "REASON.txt").read_text("utf-8")
        assert "Nothing was delivered" not in text
        for needle in ("invoice B with HTTP 400: buyer unknown", "invoice A: receipt r-A",
                       "invoice C: receipt r-C", "a" * 64, "do NOT send them again",
                       "No other invoice of this file was delivered",
                       "Do NOT export the file again with invoices A, C in it"):
            assert needle in text

    def test_without_accepted_documents_the_papers_stay_as_before(self, tmp_path: Path) -> None:
        """No document accepted (the bundle format, or none went through): reason.json has
        only the fields folder-convention.md lists and REASON.txt says nothing was sent."""
        record = reason_record(BID, "INV-1.xml", [Finding("rejected", "INV-1.xml", "no")],
                               "2026-12-03T07:50:12Z", [])
        write_papers(tmp_path, reason_papers(record))
        assert "accepted_documents" not in json.loads((tmp_path / "reason.json").read_text())
        assert "Nothing was delivered" in (tmp_path / "REASON.txt").read_text("utf-8")

    def test_reason_txt_of_a_look_alike_sidecar_says_it_is_still_in_the_outbox(
            self, tmp_path: Path) -> None:
        """A bundle quarantined for sidecar-spelling: the look-alike folder was not claimed
        with it, so REASON.txt names it as still in the outbox and says to rename it there
        first, then move the invoice file back — not to move "its sidecar folder" back
        from the quarantine folder, where it is not. Other reasons keep their wording."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-7") for f in ("NFC", "NFD"))
        record = reason_record(BID, f"{nfc}.xml", [Finding(
            "sidecar-spelling", nfd, f"this folder looks like the sidecar {nfc}")],
            "2026-12-03T07:50:12Z")
        text = reason_papers(record)["REASON.txt"].decode("utf-8")
        assert f"It is still in the outbox, under that name, with everything in it:\n" \
            f"- {nfd}\n" in text
        assert f"1. In the outbox, rename {nfd} by typing its name again on the computer " \
            f"that named {nfc}.xml" in text
        assert "2. Fix anything else listed above.\n3. If this folder holds a folder of " \
            "attachments" in text
        assert "move the invoice file and its sidecar folder from this folder" not in text
        other = reason_papers(self._record())["REASON.txt"].decode("utf-8")
        # "If this folder holds": a bundle quarantined without attachments has none.
        assert "\n\nNothing was delivered. To send it again:\n1. Fix what is listed above, in " \
            "this folder.\n2. If this folder holds a folder of attachments" in other

    def test_reason_txt_shows_the_time_as_the_page_does_and_reason_json_keeps_iso(
            self, tmp_path: Path) -> None:
        """A clerk reads REASON.txt and the status page: REASON.txt said
        2026-12-03T07:50:12Z where the page says 2026-12-03 07:50:12 UTC. REASON.txt now
        uses the page's form; reason.json, for programs, keeps ISO 8601."""
        write_papers(tmp_path, reason_papers(self._record()))
        text = (tmp_path / "REASON.txt").read_text("utf-8")
        assert text.startswith(f"outboxd quarantined INV-1.xml (bundle {BID}) at "
                               "2026-12-03 07:50:12 UTC for these reasons:\n")
        assert "07:50:12Z" not in text
        data = json.loads((tmp_path / "reason.json").read_text("utf-8"))
        assert data["quarantined_at"] == "2026-12-03T07:50:12Z"

    def test_every_sentence_of_reason_txt_ends_where_its_line_ends(
            self, tmp_path: Path) -> None:
        """Notepad wraps a long line but shows a line break as one: a sentence broken
        across lines ("…then the invoice file;" / "outboxd will check and send them
        again.", "(bundle …)" / "at … for these reasons:") read as two. In every kind of
        REASON.txt (plain, partly delivered, look-alike folder, two folders, a file) each
        line that is no list item ends its sentence (. or :) and begins a new one."""
        texts = [reason_papers(r)["REASON.txt"].decode("utf-8")
                 for r in (self._record(), self._partly_accepted())]
        texts += [_look_alike_reason(tmp_path / "one", "inv-7/a.pdf"),
                  _look_alike_reason(tmp_path / "two", "inv-7/a.pdf", "INV-7 /b.pdf"),
                  _look_alike_reason(tmp_path / "file", "INV-7.pdf")]
        for text in texts:
            prose = [line for line in text.splitlines() if line and not line.startswith("- ")]
            assert len(prose) >= 2
            for line in prose:
                assert line.endswith((".", ":")), line
                assert line[0].isupper() or line[0].isdigit() or line.startswith("outboxd "), line

    def test_reason_txt_shows_a_names_bidirectional_controls_escaped_on_every_line(
            self, tmp_path: Path) -> None:
        """An invoice file "INV-7" + U+202E + "lmx.pdf" reads "INV-7fdp.xml" on screen; the
        page and `outboxd status` show it as INV-7\\u202elmx.pdf. REASON.txt, which the
        clerk reads, showed it raw in its first line, its steps and the look-alikes'
        lines (only the reason lines were escaped): every line now shows it as the page
        does. reason.json keeps the exact names, for scripts."""
        name, look_alike = "INV-7\u202elmx", "inv-7\u202elmx"
        record = reason_record(BID, f"{name}.pdf", [Finding(
            "sidecar-spelling", look_alike, f"this folder looks like the sidecar {name}")],
            "2026-12-03T07:50:12Z")
        write_papers(tmp_path, reason_papers(record))
        text = (tmp_path / "REASON.txt").read_text("utf-8")
        assert text.startswith(f"outboxd quarantined INV-7\\u202elmx.pdf (bundle {BID}) at ")
        assert "\n- inv-7\\u202elmx\n" in text
        assert "To send INV-7\\u202elmx.pdf with its files:" in text
        assert "\u202e" not in text
        data = json.loads((tmp_path / "reason.json").read_text("utf-8"))
        assert data["invoice_file"] == f"{name}.pdf" and data["reasons"][0]["file"] == look_alike

    def test_reason_txt_of_a_look_alike_in_other_case_says_to_mend_the_case(
            self, tmp_path: Path) -> None:
        """inv-7/ made on Windows beside INV-7.xml, quarantined for sidecar-spelling (the
        message as the matcher writes it): REASON.txt says to rename it so that its upper
        and lower case letters are as in the invoice file's name, not to type its accents
        again on another computer."""
        text = _look_alike_reason(tmp_path, "inv-7/a.pdf")
        assert "- inv-7\n" in text
        assert "1. In the outbox, rename inv-7 so that each letter is in upper or lower " \
            "case as in the invoice file's name (Windows takes the two names for one, " \
            "Linux, where outboxd runs, for two)." in text
        assert "accents" not in text and "typing its name again" not in text

    def test_reason_txt_of_a_look_alike_with_a_space_says_to_give_the_sidecars_name(
            self, tmp_path: Path) -> None:
        """`INV-7 /` beside INV-7.xml, quarantined for sidecar-spelling: REASON.txt says to
        rename it to the name its line gives, with nothing before or after it — not to
        mend its upper and lower case or its accents, which are right. The folder's name
        is in quotes, its space shown: "rename INV-7  to …" reads as INV-7 to itself."""
        text = _look_alike_reason(tmp_path, "INV-7 /a.pdf")
        assert '- "INV-7 "\n' in text
        assert '1. In the outbox, rename "INV-7 " to the sidecar\'s name its line above ' \
            "gives, exactly as written there, with nothing before or after it." in text
        assert "upper or lower case" not in text and "typing its name again" not in text

    def test_reason_txt_of_two_look_alike_folders_says_to_merge_them(
            self, tmp_path: Path) -> None:
        """inv-7/ and Inv-7/ both beside INV-7.xml: only one folder can be named INV-7, so
        REASON.txt says to merge them into one (rename one, move the other's files into it)
        or delete an extra one — not to rename each of those folders."""
        text = _look_alike_reason(tmp_path, "inv-7/a.pdf", "Inv-7/b.pdf")
        assert "They are still in the outbox, under those names, with everything in " \
            "them:\n- Inv-7\n- inv-7\n" in text
        assert "1. In the outbox, merge those folders into one: only one folder can have " \
            "the sidecar's name, so they cannot each be renamed to it. Rename one of them " \
            "so that each letter is in upper or lower case as in the invoice file's name " \
            "(Windows takes the two names for one, Linux, where outboxd runs, for two), " \
            "move the files of the others into it and delete the emptied folders (or " \
            "delete a folder that holds nothing for this invoice)." in text
        assert "rename each of those folders" not in text
        assert "\n3. If this folder holds a folder of attachments" in text

    def test_reason_txt_of_a_look_alike_file_says_to_move_it_into_the_sidecar(
            self, tmp_path: Path) -> None:
        """A file named like the sidecar (a sidecar is a folder): REASON.txt says to move
        it into the sidecar folder its line names, or remove it — renamed to the sidecar's
        name it would be quarantined again as no folder — and does not speak of
        "everything in it"."""
        text = _look_alike_reason(tmp_path, "inv-7")
        assert "It is still in the outbox, under that name:\n- inv-7\n" in text
        assert "1. In the outbox, move inv-7 into the sidecar folder its line above names " \
            "(make that folder if it is not there)" in text
        assert "rename inv-7" not in text and "everything in it" not in text
        assert "\n3. If this folder holds a folder of attachments" in text

    def test_receipt(self, tmp_path: Path) -> None:
        """The receipt paper stores the receipt as JSON in receipt.json."""
        receipt = {"manifest": {"bundle_id": BID}, "response": {"status": 201, "body": {},
                   "receipt_id": "r-1"}, "attempts": 2, "delivered_at": "2026-01-01T00:00:00Z"}
        write_papers(tmp_path, receipt_papers(receipt))
        assert json.loads((tmp_path / "receipt.json").read_text()) == receipt


def _synced(monkeypatch: pytest.MonkeyPatch) -> set[tuple[int, int]]:
    """(device, inode) of everything fsync'd from now on."""
    seen: set[tuple[int, int]] = set()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(fswrite.os, "fsync", fsync)
    return seen


def _id(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


class TestPlace:
    RECEIPT = {"manifest": {"bundle_id": BID}, "response": {"status": 201, "body": {},
               "receipt_id": "r-1"}, "attempts": 1, "delivered_at": "2026-01-01T00:00:00Z"}

    def test_papers_travel_with_the_move_and_all_is_synced_before_it_returns(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The receipt is written into the work folder, which becomes the archive entry;
        before place returns the receipt, the entry, its new day folder and the root
        holding that day folder are synced (a power loss after 'sent' keeps all)."""
        work = make_work(tmp_path / "work")
        content = tree(work)
        (tmp_path / "sent").mkdir()
        target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123456789ab"
        synced = _synced(monkeypatch)
        placed = archive.place(work, target, receipt_papers(self.RECEIPT), BID)
        assert placed == target and not work.exists()
        assert json.loads((placed / "receipt.json").read_text("utf-8")) == self.RECEIPT
        assert tree(placed) == {**content, "receipt.json": (placed / "receipt.json").read_bytes()}
        for path in (placed / "receipt.json", placed, placed.parent, placed.parent.parent):
            assert _id(path) in synced, path

    def test_a_fifo_planted_as_the_receipt_is_neither_opened_nor_replaced(
            self, tmp_path: Path) -> None:
        """After a crash between the move and 'sent', a share user replaced receipt.json
        in the entry with a FIFO: place never opens it (that would block for good) nor
        writes over it (it writes over no file it did not write): it fails naming it and
        what to do, and once the FIFO is gone writes the receipt."""
        import os
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        make_work(target)
        os.mkfifo(target / "receipt.json")
        with pytest.raises(OSError, match="receipt.json is a FIFO.*rename or move"):
            archive.place(tmp_path / "work", target, receipt_papers(self.RECEIPT), BID)
        assert stat.S_ISFIFO(os.lstat(target / "receipt.json").st_mode)
        os.unlink(target / "receipt.json")
        placed = archive.place(tmp_path / "work", target,
                               receipt_papers(self.RECEIPT), BID)
        assert placed == target
        assert json.loads((placed / "receipt.json").read_text("utf-8")) == self.RECEIPT

    def test_receipt_lost_by_a_power_loss_after_the_move_is_written_again(
            self, tmp_path: Path) -> None:
        """The rename reached the disk, the receipt's bytes did not (it is synced only
        after the move): called again, place writes it whole from what it is given."""
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        make_work(target)
        (target / "receipt.json").write_bytes(b"")
        placed = archive.place(tmp_path / "work", target,
                               receipt_papers(self.RECEIPT), BID)
        assert placed == target
        assert json.loads((target / "receipt.json").read_text("utf-8")) == self.RECEIPT
        assert sorted(os.listdir(target)) == ["INV-1", "INV-1.xml", "receipt.json"]

    @pytest.mark.parametrize("moved", [False, True], ids=["in-work", "already-moved"])
    def test_a_paper_half_written_before_a_kill_does_not_travel_into_the_entry(
            self, tmp_path: Path, moved: bool) -> None:
        """A kill inside an earlier write of the receipt left its temp file beside the
        bundle (in the work folder, or in the entry when the move had happened): the entry
        holds the bundle and the receipt only. A file of that shape inside the sidecar
        folder is an attachment's neighbour from the share and stays."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        (work / "INV-1" / ".receipt.json.tmp-0123456789ab").write_bytes(b"theirs")
        if moved:
            target.parent.mkdir(parents=True)
            work.rename(target)
        stale = (target if moved else work) / ".receipt.json.tmp-0123456789ab"
        stale.write_bytes(b'{"half')
        placed = archive.place(work, target, receipt_papers(self.RECEIPT), BID)
        assert sorted(os.listdir(placed)) == ["INV-1", "INV-1.xml", "receipt.json"]
        assert (placed / "INV-1" / ".receipt.json.tmp-0123456789ab").read_bytes() == b"theirs"

    def test_a_receipt_nested_past_the_json_parser_is_kept_and_named(
            self, tmp_path: Path) -> None:
        """After a crash between the move and 'sent', receipt.json in the entry holds JSON
        nested thousands deep (no receipt outboxd writes is: answers that deep are kept as
        text): it is not outboxd's, so place keeps it and fails with an error naming it
        (no RecursionError), and writes ours once it is moved away."""
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        make_work(target)
        deep = b"[" * 100_000 + b"]" * 100_000
        (target / "receipt.json").write_bytes(deep)
        with pytest.raises(OSError, match="receipt.json is not as outboxd wrote it"):
            archive.place(tmp_path / "work", target, receipt_papers(self.RECEIPT), BID)
        assert (target / "receipt.json").read_bytes() == deep
        (target / "receipt.json").rename(tmp_path / "theirs.json")
        placed = archive.place(tmp_path / "work", target,
                               receipt_papers(self.RECEIPT), BID)
        assert json.loads((placed / "receipt.json").read_text("utf-8")) == self.RECEIPT

    def test_another_bundles_entry_under_the_name_is_not_touched(self, tmp_path: Path) -> None:
        """Work folder gone and the target holds a readable receipt of another bundle:
        its papers are never rewritten with ours."""
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        make_work(target)
        theirs = {**self.RECEIPT, "manifest": {"bundle_id": "f" * 64}}
        write_papers(target, receipt_papers(theirs))
        before = tree(target)
        archive.place(tmp_path / "work", target, receipt_papers(self.RECEIPT), BID)
        assert tree(target) == before

    def test_another_bundles_large_receipt_under_the_name_is_not_touched(
            self, tmp_path: Path) -> None:
        """The same with a receipt over a megabyte (a receiver's long answer): it is still
        another bundle's, and never written over."""
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        make_work(target)
        theirs = {**self.RECEIPT, "manifest": {"bundle_id": "f" * 64},
                  "response": {"status": 201, "body": {"log": "x" * 1_500_000}}}
        write_papers(target, receipt_papers(theirs))
        before = tree(target)
        archive.place(tmp_path / "work", target, receipt_papers(self.RECEIPT), BID)
        assert tree(target) == before

    def test_quarantine_papers_are_readable_by_the_group_and_leave_no_temp_files(
            self, tmp_path: Path) -> None:
        """reason.json and REASON.txt land in the entry, REASON.txt mode 0640, no temp
        names left behind."""
        work = make_work(tmp_path / "work")
        record = reason_record(BID, "INV-1.xml", [Finding("too-large", "INV-1/a.pdf", "big")],
                               "2026-12-03T07:50:12Z")
        placed = archive.place(work, tmp_path / "q" / "d" / "x", reason_papers(record),
                               BID)
        assert sorted(os.listdir(placed)) == ["INV-1", "INV-1.xml", "REASON.txt", "reason.json"]
        assert os.stat(placed / "REASON.txt").st_mode & 0o777 == 0o640
        assert json.loads((placed / "reason.json").read_text("utf-8")) == record

    def test_a_quarantined_entry_is_writable_by_the_group_where_quarantine_is(
            self, tmp_path: Path) -> None:
        """The people on the share fix a quarantined bundle where it lies and move it back
        into the outbox: under umask 027 the day folder and the entry the daemon makes in
        a group-writable quarantine/ (tmpfiles: 2770) are made group-writable too, so a
        member of the group can take the invoice file out of its entry; in sent/ (2750)
        they stay read-only for the group, and nothing becomes writable for others."""
        old = os.umask(0o027)
        try:
            made = {}
            for root, mode in (("quarantine", 0o2770), ("sent", 0o2750)):
                (tmp_path / root).mkdir()
                os.chmod(tmp_path / root, mode)
                work = make_work(tmp_path / f"work-{root}")
                record = reason_record(BID, "INV-1.xml", [Finding("empty", "INV-1/a.pdf", "e")],
                                       "2026-12-03T07:50:12Z")
                made[root] = archive.place(work, tmp_path / root / "2026-12-03" / "INV-1--x",
                                           reason_papers(record), BID)
        finally:
            os.umask(old)
        quarantined, sent = made["quarantine"], made["sent"]
        for folder in (quarantined, quarantined.parent):
            assert os.stat(folder).st_mode & 0o777 == 0o770, folder
        assert os.stat(quarantined.parent).st_mode & stat.S_ISGID  # the group kept
        for folder in (sent, sent.parent):
            assert os.stat(folder).st_mode & 0o777 == 0o750, folder

    def test_readable_json_is_json_with_one_item_per_line(self) -> None:
        """The papers are JSON a person can read: top-level keys each on a line, and the
        same data back when parsed."""
        text = readable_json(self.RECEIPT)
        assert json.loads(text) == self.RECEIPT
        assert text.splitlines()[1] == '  "manifest": {'
        for obj in ({}, [], {"a": []}, {"a": {"b": {"c": {"d": [1, "é"]}}}}, None, "x"):
            assert json.loads(readable_json(obj)) == obj


def test_reason_txt_is_made_group_readable_before_its_rename_never_through_a_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REASON.txt is group-readable (0640) whatever the daemon's umask, its mode set on
    the temp file before the rename: a share user who swaps the new REASON.txt for a link
    to a file of the daemon's (a token file kept 0600) at that moment gets that file's
    mode changed by nothing."""
    from daemon.archiving import archive_papers
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    os.chmod(secret, 0o600)
    folder = tmp_path / "quarantine-entry"
    folder.mkdir()
    real_write = archive_papers.replace_ours

    def swapped_after(path: Path, data: bytes, *args: Any, **kwargs: Any) -> os.stat_result:
        written = real_write(path, data, *args, **kwargs)
        if path.name == "REASON.txt":
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o640
            path.unlink()
            path.symlink_to(secret)
        return written

    monkeypatch.setattr(archive_papers, "replace_ours", swapped_after)
    old = os.umask(0o077)
    try:
        write_papers(folder, reason_papers(TestReasons()._record()))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def _modes(root: Path) -> dict[str, int]:
    """The permission bits of everything below root (papers aside), by path below it."""
    return {str(p.relative_to(root)): stat.S_IMODE(os.lstat(p).st_mode)
            for p in sorted(root.rglob("*")) if p.name not in ("REASON.txt", "reason.json")}


def test_a_bundle_quarantined_onto_another_file_system_keeps_the_group_write_it_had(
        tmp_path: Path, other_file_system: Path) -> None:
    """quarantine/ on another file system than processing (a real tmpfs): the bundle is
    copied, and each folder and file of the copy was the daemon's alone (0750 / 0640),
    so the clerks of the group could not fix an attachment in place, as the docs tell
    them to. The copy keeps group write where the bundle had it (Samba's 2770 / 0660),
    as a rename on one file system keeps the clerk's own modes — and gives nothing to
    others, even where the source did."""
    def work_at(path: Path) -> Path:
        work = make_work(path)
        for p in (work / "INV-1", work / "INV-1" / "sub"):
            os.chmod(p, 0o2770)
        for p in (work / "INV-1.xml", work / "INV-1" / "a.pdf"):
            os.chmod(p, 0o660)
        os.chmod(work / "INV-1" / "sub" / "b.pdf", 0o666)  # world-writable: never copied so
        return work

    record = reason_record(BID, "INV-1.xml", [Finding("empty", "INV-1/a.pdf", "e")],
                           "2026-12-03T07:50:12Z")
    placed = {}
    old = os.umask(0o027)
    try:
        for name, root in (("renamed", tmp_path / "quarantine"),
                           ("copied", other_file_system / "quarantine")):
            root.mkdir()
            os.chmod(root, 0o2770)
            placed[name] = archive.place(work_at(tmp_path / f"work-{name}"),
                                         root / "2026-12-03" / "INV-1--x",
                                         reason_papers(record), BID)
    finally:
        os.umask(old)
    renamed, copied = _modes(placed["renamed"]), _modes(placed["copied"])
    assert os.stat(placed["renamed"]).st_dev != os.stat(placed["copied"]).st_dev
    assert renamed["INV-1/sub/b.pdf"] == 0o666  # the rename keeps even a mistake
    for path, mode in copied.items():
        assert mode & stat.S_IWGRP == renamed[path] & stat.S_IWGRP, path
        assert not mode & 0o007, path
    assert copied["INV-1"] & 0o770 == 0o770 and copied["INV-1/a.pdf"] == 0o660


@pytest.mark.parametrize("at_rename", [False, True], ids=["before-the-move", "at-the-rename"])
@pytest.mark.parametrize("across", [False, True], ids=["renamed", "copied"])
def test_a_day_folder_swapped_for_a_link_before_the_move_takes_nothing_out_of_the_archive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
        across: bool, at_rename: bool) -> None:
    """Someone who may write in sent/ replaces the day folder by a link to a folder of
    their choice just before the entry is moved into it (after it was checked), or at
    the rename itself: the move went by path, through the link, so the bundle landed
    wherever the daemon's user may write. Now the entry is moved into the day folder held
    open (never through a link), and a day folder no longer at its name is refused (what
    went into it taken back): the bundle stays in processing, the error names the link
    and the fix; once the link is removed, the next try makes the folder again and
    archives the bundle there."""
    fs = request.getfixturevalue("other_file_system") if across else tmp_path
    sent, elsewhere = fs / "sent", fs / "elsewhere"
    elsewhere.mkdir()
    work = make_work(tmp_path / "work")
    content = tree(work)
    target = sent / "2026-12-03" / "INV-1--0123456789ab"
    papers = {"receipt.json": json.dumps({"bundle_id": BID}).encode()}
    def swap() -> None:
        day = target.parent
        if not day.is_symlink():
            day.rename(day.with_name("aside"))
            day.symlink_to(elsewhere)

    if at_rename:
        rename = fsmove.rename_noreplace

        def swapped_first(src: Path, dst: Path, *at: int | None) -> None:
            if Path(dst).name == target.name:
                swap()
            rename(src, dst, *at)
        monkeypatch.setattr(fsmove, "rename_noreplace", swapped_first)
    else:
        move = archive.move_tree

        def swapped_before(*args: Any, **kwargs: Any) -> list[Path]:
            swap()
            return move(*args, **kwargs)
        monkeypatch.setattr(archive, "move_tree", swapped_before)
    with pytest.raises(OSError) as refused:
        archive.place(work, target, papers, BID)
    assert refused.value.filename == str(target.parent)
    assert "symbolic link" in str(refused.value) and "remove the link" in str(refused.value)
    assert os.listdir(elsewhere) == [], "the bundle went through the link"
    assert tree(work) == {**content, **{k: v for k, v in papers.items()}}
    assert sorted(os.listdir(sent)) == ["2026-12-03", "aside"]
    assert os.listdir(sent / "aside") == []

    target.parent.unlink()  # the fix the error names
    monkeypatch.undo()
    assert archive.place(work, target, papers, BID) == target
    assert tree(target) == {**content, **papers} and not work.exists()


def test_papers_written_again_after_a_crash_never_go_through_a_day_folder_swapped_for_a_link(
        tmp_path: Path) -> None:
    """The bundle was moved into sent/ and a power loss took its receipt's bytes; the
    next start writes the papers again. Someone who may write in sent/ had replaced the
    day folder by a link to a folder of theirs holding a folder of the entry's name: the
    papers went by path, through the link, into it (written as the daemon's user, maybe
    root, where that person chose). Now the entry is held from its day folder, opened
    without following a link: refused, naming the link and the fix; nothing written
    there; once the link is removed and the day folder back, the papers are written."""
    target = tmp_path / "sent" / "2026-12-03" / "INV-1--0123456789ab"
    make_work(target)  # moved before the crash; its papers lost
    elsewhere = tmp_path / "elsewhere"
    make_work(elsewhere / target.name)
    day = target.parent
    day.rename(day.with_name("aside"))
    day.symlink_to(elsewhere, target_is_directory=True)
    papers = {"receipt.json": json.dumps({"bundle_id": BID}).encode()}
    with pytest.raises(OSError) as refused:
        archive.place(tmp_path / "work", target, papers, BID)
    assert refused.value.filename == str(day) and "remove the link" in str(refused.value)
    assert not (elsewhere / target.name / "receipt.json").exists()
    day.unlink()  # the fix the error names; the day folder put back
    day.with_name("aside").rename(day)
    assert archive.place(tmp_path / "work", target, papers, BID) == target
    assert (target / "receipt.json").read_bytes() == papers["receipt.json"]


def test_group_write_after_the_move_never_goes_through_a_day_folder_swapped_for_a_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a group-writable quarantine/ the entry and its day folder are made
    group-writable after the move. Someone who may write there replaced the day folder
    by a link, just after the move, to a folder of theirs holding a folder of the
    entry's name: that folder was made group-writable, by path through the link. Now
    the entry is reached from the day folder held for the move: the entry made gets
    group write, in the folder it was moved into; the folder behind the link keeps its
    mode."""
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    os.chmod(quarantine, 0o2770)
    target = quarantine / "2026-12-03" / "INV-1--x"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / target.name).mkdir(parents=True, mode=0o750)
    os.chmod(elsewhere / target.name, 0o750)
    move = archive.move_into_place

    def move_then_swap(*args: Any, **kwargs: Any) -> Path:
        placed = move(*args, **kwargs)
        target.parent.rename(target.parent.with_name("aside"))
        target.parent.symlink_to(elsewhere, target_is_directory=True)
        return placed
    monkeypatch.setattr(archive, "move_into_place", move_then_swap)
    record = reason_record(BID, "INV-1.xml", [Finding("empty", "INV-1/a.pdf", "e")],
                           "2026-12-03T07:50:12Z")
    old = os.umask(0o027)
    try:
        archive.place(make_work(tmp_path / "work"), target, reason_papers(record), BID)
    finally:
        os.umask(old)
    assert os.stat(elsewhere / target.name).st_mode & 0o777 == 0o750
    moved = quarantine / "aside" / target.name
    assert os.stat(moved).st_mode & 0o070 == 0o070


def _unreachable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Every look at `path` (by its path, or by its name in a folder held) fails with
    EIO, as a share half away answers."""
    for fn in ("stat", "lstat"):
        real = getattr(os, fn)

        def failing(p: Any, *args: Any, _real: Any = real, **kw: Any) -> os.stat_result:
            if (str(p) == str(path)) or (p == path.name and kw.get("dir_fd") is not None):
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(p))
            return _real(p, *args, **kw)  # type: ignore[no-any-return]
        monkeypatch.setattr(os, fn, failing)


class TestAShareThatCannotBeLookedAt:
    """A look at the work folder or the entry that the share fails (EIO) is no answer:
    the archive is retried (its caller's back-off), never decided on it."""

    RECEIPT = {"manifest": {"bundle_id": BID}, "response": {"status": 201}}

    def test_a_work_folder_the_share_cannot_look_at_is_not_taken_for_archived(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The work folder's look fails while an entry of the same name (another
        bundle's) is in the archive: the archive fails, the work folder and the entry
        untouched. Taken for "the work folder is gone", the entry was reported as this
        bundle's archive (an earlier run's move), the bundle recorded sent or quarantined
        while it lay in processing."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        make_work(target)
        write_papers(target, receipt_papers({**self.RECEIPT,
                                             "manifest": {"bundle_id": "f" * 64}}))
        before, ours = tree(target), tree(work)
        with monkeypatch.context() as m:
            _unreachable(m, work)
            with pytest.raises(OSError) as raised:
                archive.place(work, target, receipt_papers(self.RECEIPT), BID)
            assert raised.value.errno == errno.EIO
            with pytest.raises(OSError):
                move_into_place(work, target)
        assert tree(target) == before and tree(work) == ours

    def test_an_entry_the_share_cannot_look_at_keeps_the_proof_it_is_our_copy(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A work folder kept (KEPT) for its entry, whose copy is in place, and the entry's
        look fails: the archive fails and the mark stays. Taken for "no entry there", the
        mark was dropped and the bundle archived again, a second entry beside its copy."""
        work = make_work(tmp_path / "work")
        target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
        shutil.copytree(work, target)
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        try:
            mark_kept(fd, target)
        finally:
            os.close(fd)
        with monkeypatch.context() as m:
            _unreachable(m, target)
            with pytest.raises(OSError):
                archive.place(work, target, receipt_papers(self.RECEIPT), BID)
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert kept_for(fd) == str(target)
        finally:
            os.close(fd)
        assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
