"""Copying for a move across file systems (fscopy.py): links and FIFOs recreated, never
followed nor opened; each file made in the folder the copy made, never through a link
swapped in meanwhile; folders nested deeper than DEPTH_MAX refused before anything is
put in place."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from deeptree import nested
from exdev import exdev_once

from daemon.fs import fscopy, fsdepth, fsmove
from daemon.fs.fsmove import move_tree


def test_fifo_across_file_systems_is_recreated_not_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO in a quarantined sidecar is recreated as a FIFO on the other side (opening
    it would block forever); the regular files are copied."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe.pdf")
    (src / "a.pdf").write_bytes(b"%PDF-1.4")
    exdev_once(monkeypatch)
    dst = tmp_path / "out" / "dst"
    move_tree(src, dst)
    monkeypatch.undo()
    assert stat.S_ISFIFO(os.lstat(dst / "pipe.pdf").st_mode)
    assert (dst / "a.pdf").read_bytes() == b"%PDF-1.4" and not src.exists()


def test_a_copy_under_way_swapped_for_a_link_writes_nothing_through_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy across file systems is made in a folder people may write in (the
    outbox, for `retry`, often root; a day folder of sent/): one who sees the partial
    copy appear renames it away and puts a link to a folder anywhere in its place
    (/etc/cron.d). The files still to copy went through the link, made there with the
    bundle's bytes, and the link was renamed into place. Now each file is made in the
    folder the copy made, by descriptor; the swap is found before the rename, which
    is refused (tried again later); nothing is made through the link, the source
    stays whole."""
    src = tmp_path / "quarantine" / "INV-1--x"
    (src / "INV-1").mkdir(parents=True)
    (src / "INV-1.xml").write_bytes(b"* * * * * root evil\n")  # copied last
    (src / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 a")
    elsewhere = tmp_path / "etc-cron.d"
    elsewhere.mkdir()
    dst = tmp_path / "outbox" / "INV-1--x"
    partial = fsmove.partial_name(dst)
    real_open, opened, swapped = fscopy.opened_if_regular, [], []

    def swap_then_open(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - as its
        opened.append(args)
        if len(opened) == 2:  # the first file is in: a person swaps the copy for a link
            swapped.append(partial.rename(partial.with_name("moved-away")))
            partial.symlink_to(elsewhere, target_is_directory=True)
        return real_open(*args, **kwargs)
    monkeypatch.setattr(fscopy, "opened_if_regular", swap_then_open)
    exdev_once(monkeypatch)
    with pytest.raises(OSError):
        move_tree(src, dst)
    monkeypatch.undo()
    assert swapped and os.listdir(elsewhere) == []
    assert not os.path.lexists(dst)
    assert sorted(str(p.relative_to(src)) for p in src.rglob("*")) == [
        "INV-1", "INV-1.xml", "INV-1/a.pdf"]


@pytest.mark.parametrize("depth", [400, 600])
def test_a_folder_nested_too_deep_to_copy_is_refused_whole_not_half_moved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth: int) -> None:
    """A sidecar holding folders nested hundreds deep (a clerk's or a hostile tree; such a
    bundle is quarantined, nested-too-deep) made the copy across file systems recurse past
    Python's limit: RecursionError, no OSError, so no retry was said and the row's error
    stayed empty; at 400 levels after the copy was renamed into place, before its source
    was removed (the bundle in both places for good). Deeper than fsdepth.DEPTH_MAX it is
    refused before anything is put in place: an OSError naming the folder and the fix,
    the source whole, nothing at dst nor as a partial."""
    src = tmp_path / "src"
    src.mkdir()
    nested(src, depth)
    dst = tmp_path / "day" / "dst"
    exdev_once(monkeypatch)
    with pytest.raises(OSError) as raised:
        move_tree(src, dst)
    assert raised.value.filename == str(src)
    assert f"more than {fsdepth.DEPTH_MAX} deep" in raised.value.strerror
    assert os.listdir(dst.parent) == []
    assert len([1 for _ in os.fwalk(src)]) == depth + 1


def test_a_folder_nested_as_deep_as_allowed_is_copied_and_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At DEPTH_MAX levels a folder is still moved across file systems whole."""
    src = tmp_path / "src"
    src.mkdir()
    nested(src, fsdepth.DEPTH_MAX)
    dst = tmp_path / "day" / "dst"
    exdev_once(monkeypatch)
    assert move_tree(src, dst) == []
    assert not os.path.lexists(src)
    assert len([1 for _ in os.fwalk(dst)]) == fsdepth.DEPTH_MAX + 1


def _socket_at(path: Path) -> None:
    """A Unix socket's file at `path` (bound under a short name, then renamed: a socket's
    address takes 107 bytes at most, a file name 255)."""
    short = path.with_name("s")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(short))
    short.rename(path)


def _bundle_with_socket(root: Path, socket_name: str) -> Path:
    src = root / "work" / "INV-1--x"
    (src / "INV-1").mkdir(parents=True)
    (src / "INV-1.xml").write_bytes(b"<Invoice/>")
    (src / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 a")
    _socket_at(src / "INV-1" / socket_name)
    return src


def test_a_socket_of_a_long_name_leaves_a_note_whose_name_fits_and_the_move_completes(
        tmp_path: Path, other_file_system: Path) -> None:
    """A socket (or device) in a bundle carries no document and is not copied to another
    file system: a note NAME.not-copied.txt takes its place. For a socket whose name was
    longer than 240 bytes the note's name passed 255 bytes: "File name too long" on every
    try of the archive, for ever. The note's name is cut to fit (its text names the
    socket in full); the move completes, the source is gone."""
    long = "S" * 250 + ".pdf"
    src = _bundle_with_socket(tmp_path, long)
    dst = other_file_system / "sent" / "2026-01-05" / "INV-1--x"
    assert move_tree(src, dst) == []
    notes = [n for n in os.listdir(dst / "INV-1") if n.endswith(".not-copied.txt")]
    assert len(notes) == 1 and len(os.fsencode(notes[0])) <= 255
    assert (dst / "INV-1" / notes[0]).read_text().startswith(f"{long} was a socket")
    assert sorted(os.listdir(dst / "INV-1")) == sorted(["a.pdf", *notes])
    assert not os.path.lexists(src)


def test_a_note_never_takes_the_name_of_a_file_of_the_bundle(
        tmp_path: Path, other_file_system: Path) -> None:
    """A socket `scan.pdf` beside a clerk's own file `scan.pdf.not-copied.txt`: the note,
    made first (its name sorts first), took the file's name, whose copy then failed
    "File exists" on every try, for ever. The file is copied under its own name and the
    note goes beside it under a free one."""
    src = _bundle_with_socket(tmp_path, "scan.pdf")
    (src / "INV-1" / "scan.pdf.not-copied.txt").write_bytes(b"the clerk's own")
    dst = other_file_system / "sent" / "2026-01-05" / "INV-1--x"
    assert move_tree(src, dst) == []
    assert (dst / "INV-1" / "scan.pdf.not-copied.txt").read_bytes() == b"the clerk's own"
    assert (dst / "INV-1" / "scan.pdf-2.not-copied.txt").read_text().startswith(
        "scan.pdf was a socket")
    assert not os.path.lexists(src)


def test_a_socket_moved_on_its_own_is_refused_and_leaves_nothing_behind(
        tmp_path: Path, other_file_system: Path) -> None:
    """A socket moved by itself to another file system (no folder to put a note in): its
    note was made beside the destination under the copy-under-way's name and stayed there,
    and the move failed "No such file" for the copy it never made. It is refused, naming
    what it is; the destination's folder holds nothing, the socket stays."""
    src = tmp_path / "q" / "INV-1.xml"
    src.parent.mkdir()
    _socket_at(src)
    dst = other_file_system / "outbox" / "INV-1.xml"
    with pytest.raises(OSError, match="is a socket") as raised:
        move_tree(src, dst)
    assert raised.value.filename == "INV-1.xml"
    assert os.listdir(dst.parent) == [] and stat.S_ISSOCK(os.lstat(src).st_mode)


def test_a_note_is_synced_before_the_copy_is_put_in_place(
        tmp_path: Path, other_file_system: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of a copy is synced before it is renamed into place and its source
    removed; the note standing for a socket was only closed, and a power loss after the
    move could leave it empty, its socket gone without a word of what it was."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    src = _bundle_with_socket(tmp_path, "scan.pdf")
    dst = other_file_system / "sent" / "2026-01-05" / "INV-1--x"
    assert move_tree(src, dst) == []
    note = dst / "INV-1" / "scan.pdf.not-copied.txt"
    assert note.read_text().startswith("scan.pdf was a socket")
    # Synced under the copy-under-way's name, which the rename then changed.
    assert any(p.endswith("/INV-1/scan.pdf.not-copied.txt") for p in synced), synced


def test_a_copy_is_outboxds_and_its_groups_only_with_group_write_where_the_source_had_it(
        tmp_path: Path, other_file_system: Path) -> None:
    """Whatever the umask, a copy to another file system makes folders 0750 and files 0640
    (nothing for others, even where the source gave it), adding group write only to
    what had it in the source (a clerk's 2770 / 0660 on a group share)."""
    src = tmp_path / "INV-1--x"
    (src / "own").mkdir(parents=True)
    (src / "shared").mkdir()
    (src / "own" / "a.pdf").write_bytes(b"%PDF-a")
    (src / "shared" / "b.pdf").write_bytes(b"%PDF-b")
    modes = {"own": 0o707, "own/a.pdf": 0o606, "shared": 0o2777, "shared/b.pdf": 0o666}
    for rel, mode in modes.items():
        os.chmod(src / rel, mode)
    dst = other_file_system / "INV-1--x"
    old = os.umask(0)
    try:
        assert move_tree(src, dst) == []
    finally:
        os.umask(old)
    assert {rel: stat.S_IMODE(os.lstat(dst / rel).st_mode) for rel in modes} == {
        "own": 0o750, "own/a.pdf": 0o640, "shared": 0o770, "shared/b.pdf": 0o660}
