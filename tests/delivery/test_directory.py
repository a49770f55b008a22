"""The directory transport (daemon/delivery/directory.py, docs/protocol.md section 7): a bundle as
TARGET/BUNDLEID/, a ubl-embedded document as TARGET/NAME; each published by one rename
with everything in it on disk, never half, never a temporary name a reader takes."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from helpers import fake_mount_table
from structlog.testing import capture_logs
from swaps import opened_in, swap_for_link

from daemon.bundle import Conversion
from daemon.configuration.config import DeliveryConfig
from daemon.delivery import directory
from daemon.delivery.answers import Receipt
from daemon.delivery.deliver import make_deliverer
from daemon.delivery.directory import (
    STALE_AFTER,
    DirectoryDeliverer,
    clear_target,
    keep_mount,
    sweep_target,
    write_document,
)
from daemon.errors import InputError, Rejected, Retryable
from daemon.fs import fswrite
from daemon.manifest import build_manifest, safe_filename
from daemon.watching import mounts
from daemon.watching.mounts import Mount
from delivery.test_deliver import INVOICE_XML, attachment, make_bundle, pdf, put


class TestDirectoryDeliverer:
    def test_a_file_whose_folder_became_a_link_is_never_copied_from_outside(
            self, tmp_path: Path) -> None:
        """An invoice's folder in the work folder swapped for a link to an outside folder
        holding a file of the same name after the bundle was checked: the copy reads it
        from the work folder with no link followed on the way, so the outside file is
        never opened, nothing is published, and an InputError names the file, the link
        and the fix (the bundle is quarantined as processing-damaged)."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        att = bundle.attachments[1]  # batch-42/INV-2/spec.csv
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "spec.csv").write_bytes(b"a;b\n9;9\n")
        swap_for_link(att.path.parent, outside)
        target = tmp_path / "target"
        target.mkdir()
        with opened_in(outside) as opened, pytest.raises(InputError) as info:
            DirectoryDeliverer(target).deliver(bundle, manifest)
        assert opened == []
        assert (info.value.code, info.value.file) == ("symlink", att.rel)
        assert "lies in batch-42/INV-2, which is a symbolic link" in info.value.message
        assert os.listdir(target) == []

    def test_a_file_rewritten_after_its_check_with_size_and_time_kept_is_not_published(
            self, tmp_path: Path) -> None:
        """A clerk who owns an attachment rewrites it in the work folder after its check,
        as many bytes, its modification time put back: the copy hashes what it reads, so
        the bundle is not published with other bytes than its manifest's hash; an
        InputError names the file (quarantined as processing-damaged)."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        att = bundle.attachments[1]  # batch-42/INV-2/spec.csv
        times = os.stat(att.path)
        att.path.write_bytes(att.path.read_bytes().replace(b"1", b"9"))
        os.utime(att.path, ns=(times.st_atime_ns, times.st_mtime_ns))
        assert os.stat(att.path).st_size == att.size
        target = tmp_path / "target"
        target.mkdir()
        with pytest.raises(InputError) as info:
            DirectoryDeliverer(target).deliver(bundle, manifest)
        assert (info.value.code, info.value.file) == ("processing-damaged", att.rel)
        assert os.listdir(target) == []

    def test_writes_bundle_folder(self, tmp_path: Path) -> None:
        """TARGET/BUNDLEID/ holds manifest.json, the invoice file and
        attachments/INVOICE_ID/NAME with the original bytes; no .tmp-* left.
        (safe_filenames off: NAME is the name on disk.)"""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle, safe_filenames=False)
        target = tmp_path / "target"
        target.mkdir()
        receipt = DirectoryDeliverer(target).deliver(bundle, manifest)
        bid = manifest["bundle_id"]
        final = target / bid
        assert receipt.status == 201 and receipt.body["delivered_to"] == str(final)
        assert os.listdir(target) == [bid]
        assert json.loads((final / "manifest.json").read_text("utf-8")) == manifest
        assert (final / "batch-42.xml").read_bytes() == INVOICE_XML
        files = sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file())
        assert files == ["attachments/INV-1/Tidrapport oktober Å.pdf",
                         "attachments/INV-1/contract.png", "attachments/INV-2/spec.csv",
                         "batch-42.xml", "manifest.json"]
        for a in bundle.attachments:
            assert (final / "attachments" / a.invoice_id / a.original_name).read_bytes() == \
                a.path.read_bytes()

    def test_every_file_lies_under_its_manifest_name(self, tmp_path: Path) -> None:
        """With safe_filenames (the default) the files are written under the manifest's
        `name`, folded as over HTTP, and a converted image under its PDF's name: a reader
        finds every file from the manifest alone."""
        bundle = make_bundle(tmp_path / "work", invoice_name="Faktura Å.xml")
        pdf_path, size, sha = put(tmp_path / "work" / "Skärm.pdf", pdf(1))
        cyrillic = attachment(tmp_path / "work", "INV-2", "batch-42/INV-2/Акт.pdf", pdf(1),
                              "application/pdf")
        shot = attachment(tmp_path / "work", "INV-2", "batch-42/INV-2/Skärm.png",
                          b"\x89PNG\r\n\x1a\nfake", "image/png")
        shot = replace(shot, converted=Conversion("Skärm.pdf", size, sha, 1, "image/png",
                                                  pdf_path))
        bundle = replace(bundle, attachments=(*bundle.attachments, shot, cyrillic))
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        target.mkdir()
        DirectoryDeliverer(target).deliver(bundle, manifest)
        final = target / manifest["bundle_id"]
        assert (final / manifest["invoice_file"]["name"]).read_bytes() == INVOICE_XML
        assert manifest["invoice_file"]["name"] == "Faktura_A.xml"
        written = {str(p.relative_to(final)) for p in final.rglob("*") if p.is_file()}
        named = {f"attachments/{inv['id']}/{e['name']}" for inv in manifest["invoices"]
                 for e in inv["attachments"]}
        assert written == named | {"manifest.json", "Faktura_A.xml"}
        assert "attachments/INV-2/Skarm.pdf" in named
        assert f"attachments/INV-2/{safe_filename('Акт.pdf')}" in named
        assert (final / "attachments/INV-2/Skarm.pdf").read_bytes() == pdf_path.read_bytes()
        assert (final / "attachments/INV-1/Tidrapport_oktober_A.pdf").read_bytes() == \
            bundle.attachments[0].path.read_bytes()

    def test_second_delivery_is_already_delivered(self, tmp_path: Path) -> None:
        """An existing TARGET/BUNDLEID/ means already delivered: reported, not rewritten."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        target.mkdir()
        d = DirectoryDeliverer(target)
        d.deliver(bundle, manifest)
        final = target / manifest["bundle_id"]
        (final / "manifest.json").write_text("picked up by the agent")
        again = d.deliver(bundle, build_manifest(bundle, created_at="2030-01-01T00:00:00Z"))
        assert again.body.get("already_delivered") is True and 200 <= again.status < 300
        assert (final / "manifest.json").read_text() == "picked up by the agent"
        assert os.listdir(target) == [manifest["bundle_id"]]

    def test_stale_tmp_folder_is_replaced(self, tmp_path: Path) -> None:
        """A .tmp-BUNDLEID left by a crash is rebuilt, not shipped as it was."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        stale = target / f".tmp-{manifest['bundle_id']}"
        stale.mkdir(parents=True)
        (stale / "junk").write_bytes(b"junk")
        DirectoryDeliverer(target).deliver(bundle, manifest)
        final = target / manifest["bundle_id"]
        assert not (final / "junk").exists() and os.listdir(target) == [manifest["bundle_id"]]

    def test_unwritable_target_is_retryable(self, tmp_path: Path) -> None:
        """A target that cannot be written (here: a file in the way) is Retryable."""
        bundle = make_bundle(tmp_path / "work")
        (tmp_path / "target").write_bytes(b"not a folder")
        with pytest.raises(Retryable):
            DirectoryDeliverer(tmp_path / "target").deliver(bundle, build_manifest(bundle))

    def test_make_deliverer_directory_gives_a_directory_deliverer(self, tmp_path: Path) -> None:
        """transport = "directory" gives a DirectoryDeliverer; it makes no folder (the
        target is prepare_folders', which never makes one through a share that is away)."""
        d = make_deliverer(DeliveryConfig(transport="directory", target=tmp_path / "a" / "t"))
        assert isinstance(d, DirectoryDeliverer) and not (tmp_path / "a").exists()


def test_every_folder_of_a_bundle_is_synced_before_the_rename_publishes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folders of TARGET/.tmp-BUNDLEID/ (the attachments' too) are synced before it
    is renamed into place: else a power loss could leave TARGET/BUNDLEID/ without some of
    its files, which a retry then takes for delivered."""
    synced: set[tuple[int, int]] = set()  # the folders synced, by identity: the
    real = fswrite.fsync_dir                  # deliverer writes by the held folder's fd

    def noted(path: Path) -> None:
        st = os.stat(path)
        synced.add((st.st_dev, st.st_ino))
        real(path)
    monkeypatch.setattr(fswrite, "fsync_dir", noted)
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    DirectoryDeliverer(target).deliver(bundle, manifest)
    final = target / manifest["bundle_id"]  # the same folders, renamed into place
    published = {(st.st_dev, st.st_ino) for st in (
        os.stat(final), os.stat(final / "attachments"),
        os.stat(final / "attachments" / "INV-1"), os.stat(final / "attachments" / "INV-2"))}
    assert published <= synced



def test_a_bundle_that_cannot_be_written_whole_leaves_no_tmp_folder(tmp_path: Path) -> None:
    """An attachment swapped for a link in the processing folder after its check: the
    bundle is refused (it is quarantined as processing-damaged) and never comes again
    under that id, so the half-written TARGET/.tmp-BUNDLEID/ it left stayed in the target
    for good. It is removed at once, as after a full disk (which it also frees)."""
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    swapped = bundle.attachments[-1].path
    swapped.unlink()
    swapped.symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        DirectoryDeliverer(target).deliver(bundle, manifest)
    assert os.listdir(target) == []


def test_a_full_target_leaves_no_tmp_folder_and_is_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No space left while the bundle is copied: Retryable, and the part already written
    is removed at once (a full disk gets its space back; the retry writes it anew)."""
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    copies = []
    real = directory.copy_file

    def full_at_the_second(src: Path, dst: Path) -> None:
        copies.append(dst)
        if len(copies) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)
    monkeypatch.setattr(directory, "copy_file", full_at_the_second)
    with pytest.raises(Retryable, match="No space left"):
        DirectoryDeliverer(target).deliver(bundle, manifest)
    assert len(copies) == 2 and os.listdir(target) == []

@pytest.mark.parametrize("mode", [0o2770, 0o750])
def test_a_group_writable_target_gets_group_writable_bundle_folders(
        tmp_path: Path, mode: int) -> None:
    """A transfer agent of the target's group must be able to move or delete the bundle
    folders it has taken: in a group-writable target each folder of a bundle is
    group-writable too (umask 027 made them read-only for the agent); in one that is not,
    they stay as the umask makes them."""
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, mode)
    DirectoryDeliverer(target).deliver(bundle, manifest)
    final = target / manifest["bundle_id"]
    folders = [final, *(p for p in final.rglob("*") if p.is_dir())]
    assert len(folders) == 4  # the bundle, attachments/, and one per invoice
    writable = [bool(os.stat(f).st_mode & stat.S_IWGRP) for f in folders]
    assert writable == [bool(mode & stat.S_IWGRP)] * 4


class TestDocuments:
    """ubl-embedded documents as TARGET/NAME (docs/einvoice.md, Directory transport)."""

    def test_a_leftover_of_a_killed_write_is_swept_when_the_document_is_written(
            self, tmp_path: Path) -> None:
        """A writer killed between writing and renaming leaves its temporary file: the
        next write of that document (the bundle's retry) removes it, and nothing a
        reader of `*.xml` would take is ever left beside the document."""
        target = tmp_path / "target"
        target.mkdir()
        name = "INV--A.xml"
        leftover = target / f".{name}.tmp-0123456789ab"
        leftover.write_bytes(b"<Invoice>half")
        receipt = write_document(target, name, b"<Invoice>whole</Invoice>")
        assert receipt.status == 201
        assert os.listdir(target) == [name]
        assert (target / name).read_bytes() == b"<Invoice>whole</Invoice>"

    def test_a_write_that_fails_leaves_nothing_behind_and_is_retried(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A full disk at the sync: Retryable, and no temporary file stays in the target
        (the first version left `.tmp-…-NAME.xml` there for good, a name a reader of
        `*.xml` may take)."""
        target = tmp_path / "target"
        target.mkdir()

        def full(fd: int) -> None:
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(Retryable, match="No space left"):
            write_document(target, "INV--A.xml", b"<Invoice/>")
        assert os.listdir(target) == []

    def test_a_document_there_with_other_bytes_is_never_replaced(self, tmp_path: Path) -> None:
        """TARGET/NAME with other bytes (an earlier version the agent has not taken): a
        rejection naming the file, and the file stays as it was; the same bytes are
        delivered already."""
        target = tmp_path / "target"
        target.mkdir()
        (target / "INV--A.xml").write_bytes(b"<Invoice>old</Invoice>")
        with pytest.raises(Rejected) as info:
            write_document(target, "INV--A.xml", b"<Invoice>new</Invoice>")
        assert "INV--A.xml" in str(info.value) and "exists and differs" in info.value.body
        assert info.value.fix is not None and "move that file away" in info.value.fix
        assert (target / "INV--A.xml").read_bytes() == b"<Invoice>old</Invoice>"
        again = write_document(target, "INV--A.xml", b"<Invoice>old</Invoice>")
        assert again.status == 200 and os.listdir(target) == ["INV--A.xml"]


def _write_in_thread(target: Path, name: str, data: bytes) -> BaseException | Receipt:
    """write_document run where a FIFO it opened would block it: if it is still running
    after 10 s, the FIFO is opened for writing (which lets its read end) so that the test
    fails instead of hanging."""
    out: list[BaseException | Receipt] = []

    def run() -> None:
        try:
            out.append(write_document(target, name, data))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        os.close(os.open(target / name, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        out.append(AssertionError("write_document blocked on the FIFO"))
    return out[0] if len(out) == 1 else out[-1]


class TestWhatIsAlreadyAtTheDocumentsName:
    """TARGET/NAME that is no file outboxd wrote: looked at, never opened, followed or
    replaced; refused with what is there and what to do (docs/protocol.md, section 8)."""

    def test_a_fifo_is_refused_without_being_opened(self, tmp_path: Path) -> None:
        """A FIFO at the document's name: refused at once naming it (reading it blocked
        the delivery worker for good), and left as it is."""
        target = tmp_path / "target"
        target.mkdir()
        os.mkfifo(target / "INV--A.xml")
        outcome = _write_in_thread(target, "INV--A.xml", b"<Invoice/>")
        assert isinstance(outcome, Rejected), outcome
        assert "INV--A.xml" in str(outcome) and "is a FIFO" in outcome.body
        assert outcome.fix is not None and "remove or rename it" in outcome.fix
        assert stat.S_ISFIFO(os.lstat(target / "INV--A.xml").st_mode)
        assert os.listdir(target) == ["INV--A.xml"]

    @pytest.mark.parametrize("kind", ["link to the same bytes", "dangling link", "folder"])
    def test_a_link_or_a_folder_is_refused_and_left_as_it_is(
            self, tmp_path: Path, kind: str) -> None:
        """A link at the document's name is not followed (one to a file with the same
        bytes was taken for delivered; a dangling one sent the write round for good), and
        a folder there was retried for good ("Is a directory"): each is refused, naming
        what it is, and stays."""
        target = tmp_path / "target"
        target.mkdir()
        outside = tmp_path / "elsewhere.xml"
        outside.write_bytes(b"<Invoice/>")
        final = target / "INV--A.xml"
        if kind == "folder":
            final.mkdir()
        else:
            final.symlink_to(outside if kind == "link to the same bytes" else tmp_path / "no")
        with pytest.raises(Rejected) as info:
            write_document(target, "INV--A.xml", b"<Invoice/>")
        what = "a folder, not a file" if kind == "folder" else "a symbolic link, not a regular"
        assert f"is {what}" in info.value.body
        assert "INV--A.xml" in str(info.value) and info.value.fix is not None
        assert final.is_dir() if kind == "folder" else final.is_symlink()
        assert outside.read_bytes() == b"<Invoice/>" and os.listdir(target) == ["INV--A.xml"]

    @pytest.mark.skipif(os.geteuid() != 0, reason="making a device file needs root")
    def test_a_device_is_refused_without_being_opened(self, tmp_path: Path) -> None:
        """A device file at the document's name (here a copy of /dev/null) is refused as
        a device, not read (it was, and refused for 'other content')."""
        target = tmp_path / "target"
        target.mkdir()
        try:
            os.mknod(target / "INV--A.xml", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("no device files here (a user namespace)")
        with pytest.raises(Rejected) as info:
            write_document(target, "INV--A.xml", b"<Invoice/>")
        assert "is a device file, not a regular file" in info.value.body
        assert stat.S_ISCHR(os.lstat(target / "INV--A.xml").st_mode)


class TestWhatIsAlreadyAtTheBundlesName:
    @pytest.mark.parametrize("kind", ["link to a folder", "file"])
    def test_a_link_or_a_file_at_the_bundle_id_is_not_taken_for_delivered(
            self, tmp_path: Path, kind: str) -> None:
        """TARGET/BUNDLEID as a link to a folder elsewhere, or as a file, was taken for a
        delivered bundle (nothing was written and the bundle counted as sent): refused,
        naming what is there, left as it is, and nothing written through the link."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        target.mkdir()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        final = target / manifest["bundle_id"]
        if kind == "file":
            final.write_bytes(b"not a bundle")
        else:
            final.symlink_to(elsewhere)
        with pytest.raises(Rejected) as info:
            DirectoryDeliverer(target).deliver(bundle, manifest)
        what = "file" if kind == "file" else "symbolic link"
        assert f"is a {what}, not a bundle folder" in info.value.body
        assert manifest["bundle_id"] in str(info.value) and info.value.fix is not None
        assert os.listdir(target) == [manifest["bundle_id"]] and os.listdir(elsewhere) == []
        assert final.is_symlink() if kind != "file" else final.read_bytes() == b"not a bundle"


@pytest.mark.parametrize("name", ["manifest.json", "attachments", "Manifest.JSON"])
def test_an_invoice_file_named_like_the_bundles_own_entries_is_refused_not_retried(
        tmp_path: Path, name: str) -> None:
    """An invoice file whose name is that of the bundle folder's manifest.json or
    attachments/ (an outbox with invoice_patterns such as "*.json" or "*"; in any case,
    for a target that takes upper and lower case as one) could never be written there:
    it was retried for good with "File exists". Refused instead, naming the file and the
    fix, with nothing left in the target."""
    bundle = make_bundle(tmp_path / "work", name)
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(Rejected) as info:
        DirectoryDeliverer(target).deliver(bundle, manifest)
    assert name in str(info.value) and info.value.fix is not None
    assert "rename the invoice file" in info.value.fix
    assert os.listdir(target) == []


def _hold(path: Path) -> int:
    """A live writer's hold on a temp (what create_locked and hold_new_folder take)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _staged(tmp_path: Path) -> tuple[Any, dict[str, Any], Path, Path]:
    """A bundle, its manifest, an empty target, and the `.tmp-BUNDLEID/` its write uses."""
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    return bundle, manifest, target, target / f".tmp-{manifest['bundle_id']}"


def _after_the_invoice(monkeypatch: pytest.MonkeyPatch, then: Callable[[], None]) -> None:
    """The deliverer's copies as ever, `then` run once, when the invoice file (the first
    copy) is in: what happens to the `.tmp-` folder in the middle of a write."""
    real_copy = directory.copy_file
    copies: list[Path] = []

    def copy_then(src: Path, dst: Path) -> None:
        real_copy(src, dst)
        copies.append(dst)
        if len(copies) == 1:
            then()

    monkeypatch.setattr(directory, "copy_file", copy_then)


class TestTemporaries:
    """`.tmp-BUNDLEID/` and `.NAME.tmp-…` are held by their writer until renamed: what a
    killed writer left goes, another daemon's live one stays (docs/protocol.md, 7)."""

    def test_a_tmp_folder_another_daemon_holds_is_left_alone(self, tmp_path: Path) -> None:
        """Two daemons sharing one target deliver the same bundle (a copy of it dropped
        twice): the second's attempt removed the first's `.tmp-BUNDLEID/` in the middle
        of its writing. Now it is retried later, and the first's folder stays whole."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        live = target / f".tmp-{manifest['bundle_id']}"
        live.mkdir(parents=True)
        (live / "manifest.json").write_text("being written")
        fd = _hold(live)
        try:
            with pytest.raises(Retryable, match="another outboxd is writing this bundle"):
                DirectoryDeliverer(target).deliver(bundle, manifest)
            assert (live / "manifest.json").read_text() == "being written"
            assert os.listdir(target) == [live.name]
        finally:
            os.close(fd)
        assert DirectoryDeliverer(target).deliver(bundle, manifest).status == 201
        assert os.listdir(target) == [manifest["bundle_id"]]

    def test_the_start_sweep_takes_leftovers_only(self, tmp_path: Path) -> None:
        """sweep_target removes a `.tmp-BUNDLEID/` and a `.NAME.tmp-…` no writer holds,
        and an old version's unlocked `.tmp-<32 hex>-NAME` once a day old; it leaves the
        held ones, a fresh old-style one, the delivered bundles and documents, and
        anything else in the target."""
        target = tmp_path / "target"
        target.mkdir()
        names = {
            "left bundle": f".tmp-{'a' * 64}", "held bundle": f".tmp-{'b' * 64}",
            "left document": ".X--1.xml.tmp-0123456789ab",
            "held document": ".X--2.xml.tmp-0123456789ab",
            "old document": f".tmp-{'c' * 32}-X--3.xml",
            "fresh old document": f".tmp-{'d' * 32}-X--4.xml",
            "delivered": "e" * 64, "document": "X--5.xml", "agent's": ".sync-state",
            "other temp": f".tmp-{'f' * 63}"}
        for label, name in names.items():
            if "bundle" in label or label == "delivered":
                (target / name).mkdir()
                (target / name / "manifest.json").write_text("{}")
            else:
                (target / name).write_bytes(b"x")
        day_ago = time.time() - STALE_AFTER - 60
        os.utime(target / names["old document"], (day_ago, day_ago))
        fds = [_hold(target / names["held bundle"]), _hold(target / names["held document"])]
        try:
            sweep_target(target)
        finally:
            for fd in fds:
                os.close(fd)
        gone = {"left bundle", "left document", "old document"}
        assert sorted(os.listdir(target)) == sorted(n for label, n in names.items()
                                                    if label not in gone)

    def test_a_held_document_temp_named_also_like_an_old_style_one_is_never_swept(
            self, tmp_path: Path) -> None:
        """An invoice file named tmp-<32 hex>-X makes document temps that match both the
        locked pattern (`.NAME.tmp-…`) and the old unlocked one (`.tmp-<32 hex>-NAME`,
        removed once a day old). Its writer's lock decides, whatever its age: a held one
        stays, one no writer holds goes."""
        target = tmp_path / "target"
        target.mkdir()
        held = target / f".tmp-{'c' * 32}-X--1.xml.tmp-0123456789ab"
        left = target / f".tmp-{'c' * 32}-X--2.xml.tmp-0123456789ab"
        for path in (held, left):
            path.write_bytes(b"x")
            day_ago = time.time() - STALE_AFTER - 60
            os.utime(path, (day_ago, day_ago))
        fd = _hold(held)
        try:
            sweep_target(target)
        finally:
            os.close(fd)
        assert os.listdir(target) == [held.name]

    def test_where_no_lock_can_be_had_only_a_day_old_tmp_folder_is_swept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On a share without locks (NFS without lockd: ENOLCK) a live writer cannot be
        told from a dead one: the start sweep removes a `.tmp-BUNDLEID/` only once it is
        untouched for a day, never one a writer may be filling now."""
        target = tmp_path / "target"
        target.mkdir()
        old, fresh = target / f".tmp-{'a' * 64}", target / f".tmp-{'b' * 64}"
        old.mkdir()
        fresh.mkdir()
        day_ago = time.time() - STALE_AFTER - 60
        os.utime(old, (day_ago, day_ago))

        def no_locks(fd: int, op: int) -> None:
            raise OSError(errno.ENOLCK, "No locks available")
        monkeypatch.setattr(fcntl, "flock", no_locks)
        sweep_target(target)
        assert os.listdir(target) == [fresh.name]


    def test_on_a_network_file_system_only_a_day_old_tmp_folder_is_swept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """NFS and SMB keep a lock on a folder on the host that took it: a daemon
        starting on one host found the `.tmp-BUNDLEID/` another host was writing free,
        and removed it at once. On a network file system the start sweep removes one
        only once untouched for a day (a document's `.NAME.tmp-…` file, whose lock the
        server keeps, still goes when no one holds it); and what a removal killed
        half-way left (`.tmp-BUNDLEID.gone-…`) goes."""
        target = tmp_path / "target"
        target.mkdir()
        old, fresh = target / f".tmp-{'a' * 64}", target / f".tmp-{'b' * 64}"
        aside = target / f".tmp-{'c' * 64}.gone-0123456789ab"
        for folder in (old, fresh, aside):
            (folder / "attachments").mkdir(parents=True)
        (target / ".X--1.xml.tmp-0123456789ab").write_bytes(b"<Inv")
        day_ago = time.time() - STALE_AFTER - 60
        os.utime(old, (day_ago, day_ago))
        monkeypatch.setattr(mounts, "fs_type", lambda path: "nfs4")
        sweep_target(target)
        assert os.listdir(target) == [fresh.name]

    def test_the_start_refuses_a_leftover_nested_a_thousand_deep_by_name_and_goes_on(
            self, tmp_path: Path, deep_tree: Any) -> None:
        """Anyone who may write in the target can nest folders 1,100 deep in a set-aside
        `.tmp-BUNDLEID.gone-…` (or a `.tmp-BUNDLEID/`, set aside first): its removal
        (shutil.rmtree) ran out of Python's recursion limit, a RecursionError out of
        the start, at every start. The start now warns naming it, the bound and the
        fix, without a traceback, leaves it whole, and clears every other leftover."""
        target = tmp_path / "target"
        target.mkdir()
        aside = target / f".tmp-{'c' * 64}.gone-0123456789ab"
        left = target / f".tmp-{'a' * 64}"
        cleared = [target / f".tmp-{'b' * 64}", target / ".X--1.xml.tmp-0123456789ab"]
        for folder in (aside, left, cleared[0]):
            folder.mkdir()
        cleared[1].write_bytes(b"<Inv")
        deep_tree(aside, 1100)
        deep_tree(left, 1100)
        with capture_logs() as logs:
            clear_target(target, structlog.get_logger())
        assert sorted(e["leftover"] for e in logs) == sorted([aside.name, left.name])
        for event in logs:
            assert event["event"] == "cannot clear a leftover in [delivery] target"
            assert "exc_info" not in event
            assert "more than 64 deep" in event["error"] and "move the innermost" in event["error"]
            assert "rm -r" in event["fix"] and "let outboxd's user" not in event["fix"]
        assert not any(os.path.lexists(path) for path in cleared)
        [set_aside] = [n for n in os.listdir(target) if n.startswith(left.name + ".gone-")]
        assert set_aside in logs[[e["leftover"] for e in logs].index(left.name)]["error"]
        assert sorted(os.listdir(target)) == sorted([aside.name, set_aside])
        assert (aside / ("d/" * 1100) / "f.pdf").exists()
        assert (target / set_aside / ("d/" * 1100) / "f.pdf").exists()

    def test_a_write_whose_tmp_folder_someone_nests_a_thousand_deep_fails_as_a_retry(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep_tree: Any) -> None:
        """A member of the target's group nests folders 1,100 deep in the `.tmp-` folder
        being written, and the write fails: the removal of the unpublished folder ran
        out of Python's recursion limit and a RecursionError left the delivery, not a
        retry. It is a retry (the folder left, refused by name at the next try's
        sweep of it), and a later try delivers the bundle."""
        bundle, manifest, target, tmp = _staged(tmp_path)
        real_fsync_tree = directory.fsync_tree

        def nested_then_failed(folder: Path) -> None:
            deep_tree(folder / "attachments", 1100)
            raise OSError(errno.EIO, "Input/output error", str(folder))
        monkeypatch.setattr(directory, "fsync_tree", nested_then_failed)
        deliverer = DirectoryDeliverer(target)
        with pytest.raises(Retryable, match="Input/output error"):
            deliverer.deliver(bundle, manifest)
        assert (tmp / "attachments" / ("d/" * 1100) / "f.pdf").exists()  # refused, left
        monkeypatch.setattr(directory, "fsync_tree", real_fsync_tree)
        with pytest.raises(Retryable, match="more than 64 deep"):
            deliverer.deliver(bundle, manifest)  # set aside, then refused
        assert deliverer.deliver(bundle, manifest).status == 201
        assert manifest["bundle_id"] in os.listdir(target)

    def test_a_target_on_a_share_mounted_on_demand_is_looked_into_before_it_is_swept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A target on a share mounted on demand (fstab's x-systemd.automount): the mount
        table holds only the automounter's autofs entry until something looks inside.
        The start sweep looks into the target before it reads the table, so it sees the
        NFS share mounted there and keeps a fresh `.tmp-BUNDLEID/` that another host
        may be writing, instead of taking the share for a local disk and removing it."""
        target = tmp_path / "target"
        target.mkdir()
        fresh = target / f".tmp-{'b' * 64}"
        fresh.mkdir()
        where = os.path.realpath(target)
        table = ["/dev/sda1 / ext4 rw 0 0\n", f"systemd-1 {where} autofs rw 0 0\n"]
        real_stat = os.stat
        looked: list[str] = []

        def stat(path: str | os.PathLike[str], *args: object,
                 **kwargs: object) -> os.stat_result:
            if os.fspath(path) == os.fspath(target) and not looked:
                looked.append(os.fspath(path))
                table.append(f"srv:/invoices {where} nfs4 rw 0 0\n")  # mounted now
            return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(mounts.os, "stat", stat)
        fake_mount_table(monkeypatch, lambda: "".join(table))
        assert sweep_target(target) == []
        assert looked == [os.fspath(target)]
        assert os.listdir(target) == [fresh.name]

    def test_a_target_still_under_autofs_after_the_look_is_swept_as_a_share(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A target whose mount table still shows only the automounter's autofs entry
        after the look into it (the automounter slow): what is behind it is a share whose
        file system cannot be known yet, so the start sweep trusts no folder lock there
        and keeps a fresh `.tmp-BUNDLEID/`; only one untouched for a day goes."""
        target = tmp_path / "target"
        target.mkdir()
        old, fresh = target / f".tmp-{'a' * 64}", target / f".tmp-{'b' * 64}"
        for folder in (old, fresh):
            folder.mkdir()
        day_ago = time.time() - STALE_AFTER - 60
        os.utime(old, (day_ago, day_ago))
        fake_mount_table(monkeypatch, "/dev/sda1 / ext4 rw 0 0\n"
                                      f"systemd-1 {os.path.realpath(target)} autofs rw 0 0\n")
        assert sweep_target(target) == []
        assert os.listdir(target) == [fresh.name]

    def test_a_tmp_folder_swapped_for_a_link_mid_write_takes_no_file_elsewhere(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A member of the target's group (a transfer agent's account) swaps the
        `.tmp-BUNDLEID/` being written for a link to another folder: the files still to
        come went through the link, outside the target, before the last check refused
        to publish. They are written into the very folder held, never by its path:
        nothing lands elsewhere, nothing is published, and the attempt is retried."""
        bundle, manifest, target, tmp = _staged(tmp_path)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()

        def swapped() -> None:
            tmp.rename(target / "moved-aside")
            tmp.symlink_to(elsewhere)

        _after_the_invoice(monkeypatch, swapped)
        with pytest.raises(Retryable):
            DirectoryDeliverer(target).deliver(bundle, manifest)
        assert list(elsewhere.iterdir()) == []
        assert not (target / manifest["bundle_id"]).exists()

    def test_a_tmp_folder_taken_from_its_writer_is_never_published(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A lock on a folder holds only on the host that took it on NFS and SMB: another
        host's daemon may take a live `.tmp-BUNDLEID/` for a leftover and remove it while
        it is written. The writer made it again for its next attachment (mkdir with its
        parents) and renamed that into place: TARGET/BUNDLEID/ without its manifest and
        invoice file, which a transfer agent takes and a retry counts as delivered. Now
        that write fails and is retried; nothing is published half."""
        bundle, manifest, target, tmp = _staged(tmp_path)
        real_copy = directory.copy_file

        def taken_by_another_hosts_sweep() -> None:
            from daemon.fs.folderlocks import drop_folder_unless_held
            monkeypatch.setattr(fcntl, "flock", lambda fd, op: None)  # that host's own lock
            try:
                assert drop_folder_unless_held(tmp)
            finally:
                monkeypatch.undo()

        _after_the_invoice(monkeypatch, taken_by_another_hosts_sweep)
        with pytest.raises(Retryable, match="removed while it was written"):
            DirectoryDeliverer(target).deliver(bundle, manifest)
        assert os.listdir(target) == []
        monkeypatch.setattr(directory, "copy_file", real_copy)
        assert DirectoryDeliverer(target).deliver(bundle, manifest).status == 201
        final = target / manifest["bundle_id"]
        assert json.loads((final / "manifest.json").read_text("utf-8")) == manifest

    def test_another_writers_tmp_folder_made_in_its_place_is_neither_published_nor_removed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Its `.tmp-BUNDLEID/` taken from a writer (see above) once everything was in it,
        another daemon made its own under that name at once, and holds it: the first
        writer's rename would publish that one half-written, and its clean-up remove
        it. It leaves that folder alone and tries again."""
        bundle, manifest, target, tmp = _staged(tmp_path)
        real_sync = directory.fsync_tree
        other: list[int] = []

        def taken_and_made_again(path: Path) -> None:
            real_sync(path)
            os.rename(tmp, target / "elsewhere")  # taken by a removal on another host
            tmp.mkdir()
            (tmp / "manifest.json").write_text("being written")
            other.append(_hold(tmp))

        monkeypatch.setattr(directory, "fsync_tree", taken_and_made_again)
        try:
            with pytest.raises(Retryable, match="removed while it was written"):
                DirectoryDeliverer(target).deliver(bundle, manifest)
            assert sorted(os.listdir(target)) == sorted([tmp.name, "elsewhere"])
            assert os.listdir(tmp) == ["manifest.json"]
        finally:
            for fd in other:
                os.close(fd)

    def test_a_tmp_folder_that_cannot_be_looked_at_any_more_is_a_plain_retry(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The share going away in the middle of a write: the look at whether the
        `.tmp-BUNDLEID/` is still this attempt's fails too (EIO). The attempt is retried,
        naming the target, and removes nothing it cannot tell is its own."""
        bundle = make_bundle(tmp_path / "work")
        target = tmp_path / "target"
        target.mkdir()

        def share_gone(*args: Any) -> Any:
            raise OSError(errno.EIO, "Input/output error")
        monkeypatch.setattr(directory, "copy_file", lambda src, dst: share_gone())
        monkeypatch.setattr(directory, "still_at", share_gone)
        with pytest.raises(Retryable, match="cannot write to \\[delivery\\] target .*: "
                           "Input/output error"):
            DirectoryDeliverer(target).deliver(bundle, build_manifest(bundle))

        monkeypatch.setattr(directory, "copy_file", lambda src, dst: (_ for _ in ()).throw(
            FileNotFoundError(errno.ENOENT, "No such file or directory")))
        with pytest.raises(Retryable, match="removed while it was written"):
            DirectoryDeliverer(target).deliver(bundle, build_manifest(bundle))
        # Not removed by the attempt that could not tell it was its own: the start sweep's.
        assert [p.name for p in target.iterdir()] == [f".tmp-{build_manifest(bundle)['bundle_id']}"]

    def test_a_sweep_never_empties_a_folder_its_writer_renames_meanwhile(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A sweep that took a live `.tmp-BUNDLEID/` for a leftover (another host's, on a
        share whose folder locks hold only locally) removed it in place, entry by entry
        through the folder it had opened: a rename by its writer in the middle published
        TARGET/BUNDLEID/ and the sweep went on emptying it. The sweep moves the folder
        out of the writer's way in one step first: either the writer's rename comes
        first, and its folder stays whole, or it finds its temp gone and tries again."""
        target = tmp_path / "target"
        tmp, final = target / f".tmp-{'a' * 64}", target / ("a" * 64)
        tmp.mkdir(parents=True)
        for name in ("manifest.json", "INV-1.xml", "scan.pdf"):
            (tmp / name).write_text(name)
        real_scandir = os.scandir
        renamed: list[bool] = []

        def writer_renames_meanwhile(path: Any = ".") -> Any:
            if isinstance(path, int) and not renamed:  # rmtree has the folder open
                try:
                    os.rename(tmp, final)
                    renamed.append(True)
                except FileNotFoundError:
                    renamed.append(False)  # the writer finds its temp gone: retried
            return real_scandir(path)

        monkeypatch.setattr(fcntl, "flock", lambda fd, op: None)  # a lock held elsewhere
        monkeypatch.setattr(os, "scandir", writer_renames_meanwhile)
        from daemon.fs.folderlocks import drop_folder_unless_held
        drop_folder_unless_held(tmp)
        monkeypatch.undo()
        assert renamed  # the writer's rename came while the sweep was at it
        if final.exists():
            assert sorted(os.listdir(final)) == ["INV-1.xml", "manifest.json", "scan.pdf"]
        assert [n for n in os.listdir(target) if n != final.name] == []


_HOLDER = """
import sys, time
from pathlib import Path
from daemon.fs.folderlocks import hold_new_folder
fd = hold_new_folder(Path(sys.argv[1]))
(Path(sys.argv[1]) / "manifest.json").write_text("half")
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_writers_tmp_folder_is_swept_and_a_live_ones_is_not(tmp_path: Path) -> None:
    """A real writer process holds `.tmp-BUNDLEID/` while it fills it: the start sweep
    of another daemon leaves it alone. Killed (SIGKILL), the kernel drops its hold, and
    the next sweep removes what it left."""
    target = tmp_path / "target"
    target.mkdir()
    tmp = target / f".tmp-{'a' * 64}"
    writer = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "held\n"
        sweep_target(target)
        assert (tmp / "manifest.json").read_text() == "half"
    finally:
        writer.kill()
        writer.wait(10)
    assert writer.returncode == -signal.SIGKILL
    sweep_target(target)
    assert os.listdir(target) == []


def test_a_tmp_folder_swapped_for_a_link_while_set_aside_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who may write in the target swaps a killed writer's `.tmp-BUNDLEID/` for a
    link to a folder elsewhere between the start sweep's look and its rename: the link is
    what is renamed aside, and it is removed, never followed; the folder it points to
    keeps its files and the sweep raises nothing."""
    from daemon.fs import folderlocks
    target = tmp_path / "target"
    target.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    leftover = target / f".tmp-{'a' * 64}"
    leftover.mkdir()
    real_rename = os.rename

    def swapped_first(src: Any, dst: Any) -> None:
        if Path(src) == leftover:
            real_rename(leftover, tmp_path / "moved-away")
            os.symlink(elsewhere, leftover)
        real_rename(src, dst)

    monkeypatch.setattr(folderlocks.os, "rename", swapped_first)
    sweep_target(target)
    assert (elsewhere / "keep.txt").read_text() == "mine"
    assert os.listdir(target) == []


def test_a_tmp_folder_swapped_for_a_link_while_made_group_writable_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member of a group-writable target's group swaps the `.tmp-BUNDLEID/` being made
    group-writable for a link to a folder elsewhere: outboxd changes the permissions of
    no folder there (each folder is reached from the one held, never by its path), and
    the bundle is tried again later."""
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, 0o2770)
    tmp = target / f".tmp-{manifest['bundle_id']}"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "attachments").mkdir(parents=True)
    for sub in ("INV-1", "INV-2"):
        (elsewhere / "attachments" / sub).mkdir()
    os.chmod(elsewhere / "attachments", 0o750)
    real_fchmod = os.fchmod

    def swap_after_the_first(fd: int, mode: int) -> None:
        real_fchmod(fd, mode)
        if not os.path.islink(tmp):
            os.rename(tmp, tmp_path / "moved-away")
            os.symlink(elsewhere, tmp)

    monkeypatch.setattr(os, "fchmod", swap_after_the_first)
    with pytest.raises(Retryable):
        DirectoryDeliverer(target).deliver(bundle, manifest)
    assert stat.S_IMODE(os.stat(elsewhere / "attachments").st_mode) == 0o750


NOBODY = 65534


@contextmanager
def unprivileged() -> Iterator[None]:
    """The code inside runs as a user a chmod binds: as such a user itself, or, run as root
    (whom no mode stops), with the effective user and group of nobody, restored after."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    except OSError as exc:
        os.setegid(0)
        pytest.skip(f"cannot act as nobody here ({exc.strerror})")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def stuck_target() -> Iterator[tuple[Path, list[Path], list[Path]]]:
    """A target with two killed writers' `.tmp-BUNDLEID/` whose `attachments/INV-1/` the
    daemon's user may not write (chmod 0555, real folders), between leftovers it may
    remove: (target, the stuck ones, the others). In a folder nobody can reach (pytest's
    tmp folders are root's only), everything in it nobody's when the tests run as root."""
    root = Path(tempfile.mkdtemp(prefix="outboxd-sweep-"))
    os.chmod(root, 0o755)
    target = root / "target"
    stuck = [target / f".tmp-{c * 64}" for c in "ac"]
    cleared = [target / f".tmp-{c * 64}" for c in "bdef"] + [
        target / f".X--{n}.xml.tmp-0123456789ab" for n in range(4)]
    try:
        for folder in stuck + cleared[:4]:
            (folder / "attachments" / "INV-1").mkdir(parents=True)
            (folder / "attachments" / "INV-1" / "a.pdf").write_bytes(b"%PDF")
        for document in cleared[4:]:
            document.write_bytes(b"<Invoice")
        if os.geteuid() == 0:
            for path in [root, target, *target.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        for folder in stuck:
            os.chmod(folder / "attachments" / "INV-1", 0o555)
        yield target, stuck, cleared
    finally:
        for path in root.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
        shutil.rmtree(root)


def test_the_start_sweep_goes_on_past_a_leftover_it_cannot_remove(
        stuck_target: tuple[Path, list[Path], list[Path]]) -> None:
    """The sweep removes every leftover it can, and returns each one it could not with
    the error: the first such leftover used to end the whole sweep, keeping every later
    one."""
    target, stuck, cleared = stuck_target
    with unprivileged():
        kept = sweep_target(target)
    assert sorted(name for name, _ in kept) == sorted(f.name for f in stuck)
    assert all(isinstance(exc, PermissionError) for _, exc in kept)
    assert not any(path.exists() for path in cleared)
    # What stays is each stuck leftover, set aside for the next start to finish.
    left = sorted(os.listdir(target))
    assert len(left) == 2 and all(name.startswith((stuck[0].name, stuck[1].name))
                                  for name in left)


def test_the_start_names_each_leftover_it_cannot_remove_and_the_fix(
        stuck_target: tuple[Path, list[Path], list[Path]]) -> None:
    """At the start (clear_target), each leftover that stays is one warning naming the
    leftover, the error and what to do, without a traceback; the others are gone."""
    target, stuck, cleared = stuck_target
    with capture_logs() as logs, unprivileged():
        clear_target(target, structlog.get_logger())
    assert sorted(e["leftover"] for e in logs) == sorted(f.name for f in stuck)
    for event in logs:
        assert event["event"] == "cannot clear a leftover in [delivery] target"
        assert event["log_level"] == "warning" and "exc_info" not in event
        assert event["target"] == str(target)
        assert event["error"].startswith("Permission denied (")
        assert "remove it (rm -r), or let outboxd's user write to it" in event["fix"]
    assert not any(path.exists() for path in cleared)


def test_a_reload_keeps_the_mount_of_the_start_for_the_target_it_still_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload builds new deliverers (plain, and ubl-embedded around one); made while the
    target's share is away, they keep the share noted at the start (keep_mount) and refuse
    to write onto the bare mount point; a target the reload names anew is noted as it is."""
    from daemon.einvoice.transport import EmbeddedDeliverer
    target, other = tmp_path / "target", tmp_path / "other"
    target.mkdir(), other.mkdir()
    share: dict[str, Any] = {"device": 40, "mount": Mount(str(target), "cifs", "//fs/agent", "/")}
    monkeypatch.setattr(mounts, "_identity",
                        lambda p: (share["device"] if Path(p) == target else 1, 1))
    disk = Mount("/", "ext4", "/dev/sda1", "/")
    monkeypatch.setattr(mounts, "mount_of", lambda p: share["mount"] if Path(p) == target
                        else disk)
    running = DirectoryDeliverer(target)
    share["device"], share["mount"] = 1, disk  # unmounted: the bare mount point
    for fmt in ("bundle", "ubl-embedded"):
        cfg = DeliveryConfig(transport="directory", target=target, format=fmt)
        new = EmbeddedDeliverer(cfg) if fmt == "ubl-embedded" else DirectoryDeliverer(target)
        keep_mount(new, running)
        inner = new.inner if isinstance(new, EmbeddedDeliverer) else new
        assert isinstance(inner, DirectoryDeliverer)
        with pytest.raises(Retryable, match="is not on the file system it was on"):
            inner.on_its_mount()
    elsewhere = DirectoryDeliverer(other)
    keep_mount(elsewhere, running)
    elsewhere.on_its_mount()  # on the disk it was on when the reload named it


class TestWhatComesToTheFinalNameWhileItIsWritten:
    """What another writer puts at TARGET/BUNDLEID (or TARGET/NAME) between the check
    before a write and the rename that publishes it: exactly once, nothing replaced."""

    def test_a_bundle_another_daemon_publishes_meanwhile_counts_as_delivered_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Two daemons writing one bundle to one target: the one whose rename comes second
        finds the other's TARGET/BUNDLEID/ and reports it delivered (200, already
        delivered), leaving that folder as it is and no `.tmp-` folder of its own."""
        bundle, manifest, target, tmp = _staged(tmp_path)
        final = target / manifest["bundle_id"]

        def other_daemon_publishes() -> None:
            (final / "attachments").mkdir(parents=True)
            (final / "manifest.json").write_text("the other daemon's")

        _after_the_invoice(monkeypatch, other_daemon_publishes)
        receipt = DirectoryDeliverer(target).deliver(bundle, manifest)
        assert receipt.status == 200 and receipt.body.get("already_delivered") is True
        assert (final / "manifest.json").read_text() == "the other daemon's"
        assert os.listdir(target) == [manifest["bundle_id"]]

    def test_a_file_put_at_the_bundle_id_meanwhile_is_refused_and_left_as_it_is(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file (no bundle outboxd wrote) that appears at TARGET/BUNDLEID during the
        write is neither replaced nor taken for delivered: refused (409) with the fix,
        and the half-written `.tmp-` folder goes."""
        bundle, manifest, target, tmp = _staged(tmp_path)
        final = target / manifest["bundle_id"]
        _after_the_invoice(monkeypatch, lambda: final.write_bytes(b"someone's file"))
        with pytest.raises(Rejected) as info:
            DirectoryDeliverer(target).deliver(bundle, manifest)
        assert info.value.status == 409 and "is a file, not a bundle folder" in info.value.body
        assert info.value.fix is not None
        assert final.read_bytes() == b"someone's file"
        assert os.listdir(target) == [manifest["bundle_id"]]

    @pytest.mark.parametrize("theirs", [b"<Invoice/>", b"<Invoice>other</Invoice>"])
    def test_a_document_another_writer_renames_into_place_meanwhile_is_compared_not_replaced(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, theirs: bytes) -> None:
        """A ubl-embedded document another daemon writes at TARGET/NAME between the check
        and the rename: the same bytes are delivered already (200), other bytes are
        refused (409); either way theirs stays and no temporary file is left."""
        target = tmp_path / "target"
        target.mkdir()
        real_create = directory.create_locked

        def create_then_theirs_lands(path: Path) -> int:
            fd = real_create(path)
            if not (target / "INV-1.xml").exists():
                (target / "INV-1.xml").write_bytes(theirs)
            return fd

        monkeypatch.setattr(directory, "create_locked", create_then_theirs_lands)
        if theirs == b"<Invoice/>":
            receipt = write_document(target, "INV-1.xml", b"<Invoice/>")
            assert receipt.status == 200 and receipt.body.get("already_there") is True
        else:
            with pytest.raises(Rejected) as info:
                write_document(target, "INV-1.xml", b"<Invoice/>")
            assert info.value.status == 409 and "with other content" in str(info.value)
        assert os.listdir(target) == ["INV-1.xml"]
        assert (target / "INV-1.xml").read_bytes() == theirs


def test_a_start_that_cannot_list_the_target_says_so_in_one_warning(tmp_path: Path) -> None:
    """A [delivery] target that cannot be listed at the start (here: a file stands where
    the folder belongs) is one warning naming the target and the error, no traceback;
    the start goes on (the write of each bundle reports it again, retried)."""
    target = tmp_path / "target"
    target.write_bytes(b"not a folder")
    with capture_logs() as logs:
        clear_target(target, structlog.get_logger())
    assert len(logs) == 1
    [event] = logs
    assert event["event"] == "cannot clear leftovers in [delivery] target"
    assert event["log_level"] == "warning" and "exc_info" not in event
    assert event["target"] == str(target) and "Not a directory" in event["error"]
    assert target.read_bytes() == b"not a folder"
