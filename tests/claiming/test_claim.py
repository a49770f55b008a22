"""Claiming: atomic moves into a work folder, one winner, nothing lost going back."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from swaps import swap_when_opened

from daemon.claiming.claim import (
    LEFTOVER,
    Unclaimed,
    claim,
    finish_claim,
    moved_candidate,
    unclaim,
    work_dir_for,
)
from daemon.errors import ClaimLost, NothingClaimed
from daemon.fs.workfolder import hold_folder
from daemon.watching.scan import Candidate

BID = "0123456789ab" + "c" * 52


@pytest.fixture
def processing(outbox: Path) -> Path:
    p = outbox / ".outboxd" / "processing"
    p.mkdir(parents=True)
    return p


def drop(outbox: Path, name: str = "INV-1", marker: bool = False) -> Candidate:
    (outbox / f"{name}.xml").write_bytes(b"<Invoice/>")
    (outbox / name / "sub").mkdir(parents=True)
    (outbox / name / "a.pdf").write_bytes(b"%PDF-a")
    (outbox / name / "sub" / "b.pdf").write_bytes(b"%PDF-b")
    if marker:
        (outbox / f"{name}.ready").write_bytes(b"")
    return Candidate(name, outbox / f"{name}.xml", outbox / name, outbox / f"{name}.ready")


class TestWorkDir:
    def test_work_dir_names_bundle_and_is_unique(self, processing: Path) -> None:
        """The work folder is NAME--BUNDLEID12--… inside processing, different every time."""
        a = work_dir_for(processing, "INV-1", BID)
        b = work_dir_for(processing, "INV-1", BID)
        assert a.parent == processing and a.name.startswith("INV-1--0123456789ab--")
        assert a != b

    def test_work_dir_name_fits_one_path_component(self, processing: Path) -> None:
        """A 251-byte stem (with multi-byte letters) is shortened so the folder name fits
        in 255 bytes, cut on a character boundary; the id and our tag are kept whole."""
        name = "é" * 100 + "x" * 51
        w = work_dir_for(processing, name, BID)
        assert len(w.name.encode()) <= 255
        assert "--0123456789ab--" in w.name and w.name.startswith("é" * 10)
        w.mkdir()  # the kernel agrees


class TestClaim:
    def test_moves_invoice_and_sidecar(self, outbox: Path, processing: Path) -> None:
        """claim moves invoice file and sidecar (whole tree) into the work folder."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        moved = claim(cand, work, with_marker=False)
        assert moved == moved_candidate(cand, work)
        assert moved.invoice.read_bytes() == b"<Invoice/>"
        assert (work / "INV-1" / "sub" / "b.pdf").read_bytes() == b"%PDF-b"
        assert not cand.invoice.exists() and not cand.sidecar.exists()

    def test_invoice_without_sidecar(self, outbox: Path, processing: Path) -> None:
        """A bundle without a sidecar claims just the invoice file."""
        (outbox / "INV-2.xml").write_bytes(b"x")
        cand = Candidate("INV-2", outbox / "INV-2.xml", outbox / "INV-2", outbox / "INV-2.ready")
        work = work_dir_for(processing, "INV-2", BID)
        claim(cand, work, with_marker=False)
        assert sorted(p.name for p in work.iterdir()) == ["INV-2.xml"]

    def test_marker_moved_only_when_asked(self, outbox: Path, processing: Path) -> None:
        """The marker travels with the bundle in marker mode, and stays otherwise."""
        cand = drop(outbox, "A", marker=True)
        work = work_dir_for(processing, "A", BID)
        claim(cand, work, with_marker=True)
        assert (work / "A.ready").exists() and not cand.marker.exists()

        cand = drop(outbox, "B", marker=True)
        work = work_dir_for(processing, "B", BID)
        claim(cand, work, with_marker=False)
        assert not (work / "B.ready").exists() and cand.marker.exists()

    def test_a_release_file_travels_with_the_bundle_and_goes_back_with_it(
            self, outbox: Path, processing: Path) -> None:
        """A companion (the clerk's NAME.send-anyway that released a held bundle) leaves
        the outbox with the claim, into the work folder (and so into sent/, the record of
        who released what): left behind, it would release the next bundle dropped under
        that name unasked. An undo puts it back with the bundle."""
        cand = drop(outbox)
        release = outbox / "INV-1.send-anyway"
        release.write_bytes(b"")
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False, companions=[release])
        assert sorted(p.name for p in work.iterdir()) == ["INV-1", "INV-1.send-anyway",
                                                         "INV-1.xml"]
        assert not release.exists()
        assert unclaim(cand, work).stuck == []
        assert release.exists() and cand.invoice.exists() and not work.exists()

    def test_second_claim_loses(self, outbox: Path, processing: Path) -> None:
        """A second daemon claiming the same candidate gets ClaimLost and leaves no work folder;
        the winner's files are untouched."""
        cand = drop(outbox)
        work1 = work_dir_for(processing, cand.name, BID)
        work2 = work_dir_for(processing, cand.name, BID)
        claim(cand, work1, with_marker=False)
        with pytest.raises(ClaimLost):
            claim(cand, work2, with_marker=False)
        assert not work2.exists()
        assert [p.name for p in processing.iterdir()] == [work1.name]
        assert sorted(p.name for p in work1.iterdir()) == ["INV-1", "INV-1.xml"]

    def test_an_invoice_file_that_cannot_be_moved_leaves_no_work_folder(
            self, outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The rename of the invoice file refused (a folder outboxd may not write in):
        NothingClaimed, the bundle whole in the outbox, and the work folder just made
        removed again — not left empty in processing/ at each retry of the claim."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        real = os.rename

        def refused(src: object, dst: object, **kw: object) -> None:
            if src == cand.invoice:
                raise PermissionError(13, "Permission denied", str(src))
            real(src, dst, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "rename", refused)
        with pytest.raises(NothingClaimed):
            claim(cand, work, with_marker=False)
        assert not work.exists() and list(processing.iterdir()) == []
        assert cand.invoice.exists() and (cand.sidecar / "sub" / "b.pdf").exists()

    def test_vanished_invoice_loses(self, outbox: Path, processing: Path) -> None:
        """An invoice file removed by a person before the claim: ClaimLost, no work folder,
        the sidecar stays in the outbox."""
        cand = drop(outbox)
        cand.invoice.unlink()
        work = work_dir_for(processing, cand.name, BID)
        with pytest.raises(ClaimLost):
            claim(cand, work, with_marker=False)
        assert not work.exists() and cand.sidecar.is_dir()


    @pytest.mark.parametrize("at", ["INV-1.xml", "INV-1"])
    def test_a_work_folder_swapped_for_a_link_during_the_claim_gets_nothing_moved_there(
            self, outbox: Path, processing: Path, tmp_path: Path, at: str) -> None:
        """The new work folder swapped for a link to a folder outside just before the
        rename of the invoice file (or of the sidecar) into it: nothing is moved to
        where the link leads; the whole bundle is together in the folder claimed (moved
        aside by the swap), and the claim fails naming the work folder (its undo then finds
        the bundle stuck and quarantines it, whose move refuses the link)."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        outside = tmp_path / "outside"
        outside.mkdir()
        with swap_when_opened(at, work, outside, renamed=True) as swapped, \
                pytest.raises(OSError) as raised:
            claim(cand, work, with_marker=False)
        assert swapped, "the swap was made"
        assert raised.value.filename == str(work)
        assert "symbolic link" in str(raised.value)
        assert list(outside.iterdir()) == []
        [real] = swapped
        assert sorted(p.name for p in real.iterdir()) == ["INV-1", "INV-1.xml"]
        assert (real / "INV-1.xml").read_bytes() == b"<Invoice/>"
        assert work.is_symlink()


    @pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE])
    def test_a_sidecar_the_share_cannot_look_at_is_no_claim_without_it(
            self, outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch,
            code: int) -> None:
        """The share fails the lstat of the sidecar just as the claim looks for it: the
        claim fails (after the invoice file's move, so that it is undone) instead of
        taking the invoice file alone, which its check by hashes (reading the work folder)
        would have found unchanged and sent without its attachments, the sidecar left
        behind in the outbox."""
        cand = drop(outbox)
        real_lstat = os.lstat

        def failing(path: object, *args: object, **kw: object) -> os.stat_result:
            if path == cand.sidecar:
                raise OSError(code, os.strerror(code), str(path))
            return real_lstat(path, *args, **kw)  # type: ignore[arg-type]
        monkeypatch.setattr(os, "lstat", failing)
        work = work_dir_for(processing, cand.name, BID)
        with pytest.raises(OSError) as info:
            claim(cand, work, with_marker=False)
        assert not isinstance(info.value, ClaimLost | NothingClaimed)
        assert info.value.errno == code
        assert cand.sidecar.is_dir()  # nothing of it moved


def finish_held(cand: Candidate, work: Path, with_marker: bool) -> None:
    """finish_claim as recovery calls it: into the work folder held."""
    held = hold_folder(work)
    try:
        finish_claim(cand, held, with_marker)
    finally:
        os.close(held)


class TestFinishClaim:
    def test_completes_half_done_claim(self, outbox: Path, processing: Path) -> None:
        """After a crash between the invoice move and the sidecar move, finish_claim moves
        the rest (sidecar and marker)."""
        cand = drop(outbox, marker=True)
        work = work_dir_for(processing, cand.name, BID)
        work.mkdir()
        cand.invoice.rename(work / cand.invoice.name)  # the claim rename happened
        finish_held(cand, work, with_marker=True)
        assert sorted(p.name for p in work.iterdir()) == ["INV-1", "INV-1.ready", "INV-1.xml"]
        assert not cand.sidecar.exists() and not cand.marker.exists()

    def test_idempotent(self, outbox: Path, processing: Path) -> None:
        """finish_claim on a complete claim changes nothing."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        finish_held(cand, work, with_marker=False)
        assert sorted(p.name for p in work.iterdir()) == ["INV-1", "INV-1.xml"]
        assert (work / "INV-1" / "a.pdf").read_bytes() == b"%PDF-a"

    def test_does_not_replace_what_is_in_work(self, outbox: Path, processing: Path) -> None:
        """A sidecar already in the work folder is not replaced by a new one of the same name."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        (outbox / "INV-1").mkdir()
        (outbox / "INV-1" / "new.pdf").write_bytes(b"new")
        finish_held(cand, work, with_marker=False)
        assert (work / "INV-1" / "a.pdf").exists() and not (work / "INV-1" / "new.pdf").exists()
        assert (outbox / "INV-1" / "new.pdf").exists()


class TestUnclaim:
    def test_puts_everything_back(self, outbox: Path, processing: Path) -> None:
        """unclaim moves invoice, sidecar and marker back and removes the work folder."""
        cand = drop(outbox, marker=True)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=True)
        assert unclaim(cand, work) == Unclaimed([])
        assert cand.invoice.read_bytes() == b"<Invoice/>"
        assert (cand.sidecar / "sub" / "b.pdf").read_bytes() == b"%PDF-b"
        assert cand.marker.exists()
        assert not work.exists()

    def test_never_replaces_reappeared_invoice(self, outbox: Path, processing: Path) -> None:
        """A new file dropped under the same name meanwhile is not replaced: our whole
        bundle (invoice and sidecar) stays together in the work folder and is reported."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        cand.invoice.write_bytes(b"<Invoice>new</Invoice>")
        stuck = unclaim(cand, work).stuck
        assert stuck == ["INV-1", "INV-1.xml"]
        assert not cand.sidecar.exists()
        assert cand.invoice.read_bytes() == b"<Invoice>new</Invoice>"
        assert (work / "INV-1.xml").read_bytes() == b"<Invoice/>"
        assert work.is_dir()

    def test_never_replaces_reappeared_sidecar(self, outbox: Path, processing: Path) -> None:
        """A new sidecar folder under the same name is left alone; ours stays in work."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        cand.sidecar.mkdir()
        (cand.sidecar / "other.pdf").write_bytes(b"other")
        stuck = unclaim(cand, work).stuck
        assert stuck == ["INV-1"]
        assert sorted(p.name for p in cand.sidecar.iterdir()) == ["other.pdf"]
        assert (work / "INV-1" / "a.pdf").exists()
        assert cand.invoice.read_bytes() == b"<Invoice/>"

    def test_a_work_folder_swapped_for_a_link_brings_nothing_into_the_outbox(
            self, outbox: Path, processing: Path, tmp_path: Path) -> None:
        """The work folder swapped for a link (to a folder holding files of the bundle's
        names) before the claim is undone: nothing where the link leads is moved into the
        outbox, the link is not removed, and the whole bundle is reported stuck (it is
        then quarantined, and its quarantine refuses the link)."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        outside = tmp_path / "outside"
        (outside / "INV-1").mkdir(parents=True)
        (outside / "INV-1.xml").write_bytes(b"someone else's")
        real = work.with_name(work.name + ".real")
        work.rename(real)
        work.symlink_to(outside)
        assert unclaim(cand, work) == Unclaimed([work.name])
        assert not cand.invoice.exists() and not cand.sidecar.exists()
        assert sorted(p.name for p in outside.iterdir()) == ["INV-1", "INV-1.xml"]
        assert work.is_symlink()
        assert sorted(p.name for p in real.iterdir()) == ["INV-1", "INV-1.xml"]

    def test_a_file_dropped_into_the_emptied_work_folder_leaves_the_bundle_back_not_stuck(
            self, outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every file went back, but a file dropped into the work folder after its listing
        keeps it from being removed: the bundle is reported back (nothing stuck), the
        folder as a leftover, marked for the orphan sweep; the dropped file stays."""
        from daemon.claiming import claim as claim_module
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        real_fsync = claim_module.fsync_dir

        def dropped_in_then_fsync(folder: Path) -> None:
            (work / "late.xml").write_bytes(b"dropped in by a clerk")
            real_fsync(folder)

        monkeypatch.setattr(claim_module, "fsync_dir", dropped_in_then_fsync)
        undone = unclaim(cand, work)
        assert undone.stuck == [] and undone.leftover is not None
        assert cand.invoice.read_bytes() == b"<Invoice/>"
        assert (cand.sidecar / "sub" / "b.pdf").read_bytes() == b"%PDF-b"
        assert sorted(p.name for p in work.iterdir()) == [LEFTOVER, "late.xml"]


def _dot_outboxd_linked(outbox: Path, tmp_path: Path) -> Path:
    """`.outboxd` moved aside by a share user and a link to a folder outside (holding a
    processing/ of its own) put in its place; that outside folder."""
    outside = tmp_path / "outside"
    (outside / "processing").mkdir(parents=True)
    (outbox / ".outboxd").rename(tmp_path / "aside")
    (outbox / ".outboxd").symlink_to(outside)
    return outside


def test_a_claim_through_a_dot_outboxd_made_a_link_moves_nothing_out_of_the_outbox(
        outbox: Path, processing: Path, tmp_path: Path) -> None:
    """`.outboxd` made a link (after the claims' look for links): no file of the bundle is
    renamed to where it leads, nor is the work folder made there; the claim fails before
    anything moved (NothingClaimed, naming `.outboxd`), the bundle whole in the outbox."""
    cand = drop(outbox)
    work = work_dir_for(processing, cand.name, BID)
    outside = _dot_outboxd_linked(outbox, tmp_path)
    with pytest.raises(NothingClaimed) as raised:
        claim(cand, work, with_marker=False)
    assert cand.invoice.read_bytes() == b"<Invoice/>" and (cand.sidecar / "a.pdf").exists()
    assert list((outside / "processing").iterdir()) == []
    assert isinstance(raised.value.cause, OSError)
    assert raised.value.cause.filename == str(outbox / ".outboxd")


def test_a_claim_makes_a_removed_dot_outboxd_again_inside_the_outbox(
        outbox: Path, processing: Path) -> None:
    """`.outboxd` removed by hand: the claim makes it and processing/ again (inside the
    outbox, from the outbox down) and claims the bundle into its work folder."""
    cand = drop(outbox)
    work = work_dir_for(processing, cand.name, BID)
    processing.rmdir()
    processing.parent.rmdir()
    claim(cand, work, with_marker=False)
    assert (work / "INV-1.xml").read_bytes() == b"<Invoice/>"
    assert (work / "INV-1" / "a.pdf").exists() and not cand.invoice.exists()


def test_an_unclaim_through_a_dot_outboxd_made_a_link_brings_nothing_into_the_outbox(
        outbox: Path, processing: Path, tmp_path: Path) -> None:
    """`.outboxd` made a link to a folder holding a work folder of the same name: none of
    its files is put into the outbox; the bundle is reported stuck (its work folder cannot
    be used), as for a work folder swapped for a link."""
    cand = drop(outbox)
    work = work_dir_for(processing, cand.name, BID)
    claim(cand, work, with_marker=False)
    outside = _dot_outboxd_linked(outbox, tmp_path)
    (outside / "processing" / work.name).mkdir()
    (outside / "processing" / work.name / "INV-1.xml").write_bytes(b"someone else's")
    assert unclaim(cand, work) == Unclaimed([work.name])
    assert sorted(os.listdir(outbox)) == [".outboxd"]
    assert os.listdir(outside / "processing" / work.name) == ["INV-1.xml"]


def test_a_bundle_matched_again_for_another_channel_is_changed_since_its_read(
        outbox: Path) -> None:
    """The same bytes and the same sidecar matched again after the claim, but for another
    channel than the bundle was validated for ([validation] channel changed between the
    read and the claim): a change, so the bundle settles and is read again rather than
    going out on a channel it was not checked for."""
    from matching import settings

    from daemon.claiming.claimcheck import changed_since_read
    from daemon.reading.match import assemble
    cand = drop(outbox)
    validated = assemble(cand, settings(outbox))
    moved = assemble(cand, settings(outbox, validation={"channel": "original-print"}))
    assert changed_since_read(validated, validated) is None
    assert changed_since_read(validated, moved) == "its channel (e-invoice -> original-print)"


@pytest.mark.parametrize("cause", [errno.ENOENT, errno.EIO])
def test_a_rename_that_failed_but_happened_is_a_claim_made(
        outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch, cause: int) -> None:
    """The rename of the invoice file into the work folder fails and has happened all the
    same (a network share's rename sent again after its answer was lost: the second one
    finds the name gone, ENOENT; or EIO after the server did it): the invoice file is in
    the work folder, so the claim goes on and moves the rest in. Taken for nothing
    claimed (or another daemon's claim), the folder holding the invoice file was left
    to no row."""
    cand = drop(outbox)
    work = work_dir_for(processing, cand.name, BID)
    real = os.rename

    def done_then_failed(src: object, dst: object, **kw: object) -> None:
        real(src, dst, **kw)  # type: ignore[arg-type]
        if src == cand.invoice:
            raise OSError(cause, os.strerror(cause), str(src))

    monkeypatch.setattr(os, "rename", done_then_failed)
    moved = claim(cand, work, with_marker=False)
    assert moved == moved_candidate(cand, work)
    assert sorted(os.listdir(work)) == ["INV-1", "INV-1.xml"]
    assert os.listdir(outbox) == [".outboxd"]


def test_a_failed_rename_that_cannot_be_looked_after_is_a_failure_after_a_move(
        outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename fails and the look into the work folder for the invoice file fails too
    (the share gone): whether it moved cannot be told, so the claim fails with the
    rename's error as one after a file may have moved (its undo looks at the work folder
    again), not NothingClaimed, and the work folder is left for that undo."""
    from daemon.claiming import claim as claim_module
    cand = drop(outbox)
    work = work_dir_for(processing, cand.name, BID)
    real = os.rename

    def refused(src: object, dst: object, **kw: object) -> None:
        if src == cand.invoice:
            raise OSError(errno.EIO, "Input/output error", str(src))
        real(src, dst, **kw)  # type: ignore[arg-type]

    def no_answer(held: int, name: str) -> bool:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "rename", refused)
    monkeypatch.setattr(claim_module, "in_folder", no_answer)
    with pytest.raises(OSError) as raised:
        claim(cand, work, with_marker=False)
    assert raised.value.errno == errno.EIO and work.is_dir()


class TestUnclaimOnAShareThatCannotBeLookedAt:
    """The undo of a claim whose look at a file fails with EIO (a share half away): it
    fails, to be tried again (stranded.py), and decides nothing on that look."""

    @staticmethod
    def _fails(monkeypatch: pytest.MonkeyPatch, fails: Any) -> None:
        real_lstat = os.lstat

        def lstat(path: Any, *args: Any, **kw: Any) -> os.stat_result:
            if fails(str(path)):
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
            return real_lstat(path, *args, **kw)
        monkeypatch.setattr(os, "lstat", lstat)

    def test_a_new_invoice_file_the_share_cannot_look_at_gets_no_old_sidecar(
            self, outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A new invoice file dropped under the name meanwhile, whose look fails: nothing
        goes back. Taken for "none there", the old sidecar went back first and joined the
        new invoice file, to be sent as its attachments."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        cand.invoice.write_bytes(b"<Invoice>new</Invoice>")
        with monkeypatch.context() as m:
            self._fails(m, lambda path: path == str(cand.invoice))
            with pytest.raises(OSError):
                unclaim(cand, work)
        assert not cand.sidecar.exists()
        assert sorted(p.name for p in work.iterdir()) == ["INV-1", "INV-1.xml"]

    def test_a_claimed_file_the_share_cannot_look_at_is_not_left_behind(
            self, outbox: Path, processing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The look at the sidecar in the work folder fails as it is put back: the undo
        fails. Passed over as "not there", the sidecar stayed in the work folder, which the
        undo then called emptied and marked for the orphan sweep, the bundle back in the
        outbox without its attachments."""
        cand = drop(outbox)
        work = work_dir_for(processing, cand.name, BID)
        claim(cand, work, with_marker=False)
        with monkeypatch.context() as m:
            self._fails(m, lambda path: path.startswith("/proc/self/fd/")
                        and path.endswith("/INV-1"))
            with pytest.raises(OSError):
                unclaim(cand, work)
        assert (work / "INV-1" / "a.pdf").is_file()
        assert unclaim(cand, work) == Unclaimed([])  # the share answers again
        assert (cand.sidecar / "a.pdf").is_file() and cand.invoice.is_file()
