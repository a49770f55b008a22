"""Release files: what a NAME.send-anyway means, who released, how `send` writes one."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.fs.temps import create_locked, drop_stale_copies
from daemon.loop import release
from daemon.loop.release import (
    RELEASED_BY_SEND,
    release_file,
    released_by,
    warning_text,
    write_release,
)
from daemon.names import is_share_file
from daemon.watching.scan import Candidate, candidate_for, list_outbox

SHARE = ShareConfig()
ME = pwd.getpwuid(os.geteuid()).pw_name  # who owns the files the tests write


def test_send_killed_before_its_rename_leaves_nothing_once_run_again(tmp_path: Path) -> None:
    """A `send` killed between its temp file and the rename left `.NAME.send-anyway.MARK.tmp`
    (an earlier version's `.NAME.send-anyway.PID.tmp`) in the outbox; the next send
    removes it (and only such names)."""
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    (tmp_path / ".INV-1.send-anyway.4242.tmp").write_text("x")
    (tmp_path / ".INV-1.send-anyway.0a1b2c3.tmp").write_text("x")
    (tmp_path / ".INV-1.send-anyway.notes.tmp").write_text("someone else's")
    assert write_release(cand, SHARE, "anna")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".INV-1.send-anyway.notes.tmp", "INV-1.send-anyway"]


def test_a_send_run_meanwhile_does_not_take_the_release_in_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `send`s of one invoice at once: the second's sweep of killed sends' temps
    leaves the first's temp alone while it is written (its writer holds the lock), so
    the first still places its release instead of failing."""
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    real_fsync, swept = os.fsync, []

    def fsync_then_other_send_sweeps(fd: int) -> None:
        real_fsync(fd)
        if not swept:  # the release's own fsync, before its rename
            swept.append(sorted(os.listdir(tmp_path)))
            drop_stale_copies(tmp_path, "INV-1.send-anyway", release._STALE_MARK)
    monkeypatch.setattr(os, "fsync", fsync_then_other_send_sweeps)
    assert write_release(cand, SHARE, "anna")
    [temp] = swept[0]
    assert re.fullmatch(r"\.INV-1\.send-anyway\.[0-9a-f]{7}\.tmp", temp)
    assert [p.name for p in tmp_path.iterdir()] == ["INV-1.send-anyway"]


def _theirs(path: Path) -> int:
    """Another `send`'s temp at path, under way (written, locked until it is renamed)."""
    fd = create_locked(path)
    os.write(fd, b"theirs")
    return fd


def _released_leaving_theirs(cand: Candidate, tmp_path: Path, other: Path) -> list[str]:
    """A release written while another send's temp is under way at `other`: their temp
    is left as it was, still the file they hold open. Returns the folder's names after."""
    fd = _theirs(other)
    try:
        assert write_release(cand, SHARE, "anna")
        assert other.read_bytes() == b"theirs"
        assert os.fstat(fd).st_ino == os.lstat(other).st_ino
    finally:
        os.close(fd)
    return sorted(p.name for p in tmp_path.iterdir())


def test_another_sends_temp_named_by_our_process_id_is_never_removed(tmp_path: Path) -> None:
    """A `send` in another pid namespace (another container on the share), or one that
    reuses a killed send's pid, has the same process id: its temp, under way, had the
    name this send's was given. This send found it there, said "already released" and
    removed it, so the other send failed too and nothing was released. A send's temp
    now has a random mark: the other's is left as it is, and the release is written."""
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    other = tmp_path / f".INV-1.send-anyway.{os.getpid()}.tmp"
    assert _released_leaving_theirs(cand, tmp_path, other) == [other.name,
                                                              "INV-1.send-anyway"]


def test_a_temp_name_another_send_has_taken_is_left_to_it_and_another_drawn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a send's random mark to be one another send under way has: that temp is
    neither opened nor removed, and the release is written under another mark."""
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    marks = iter(["abc1234", "abc1234", "def5678"])
    monkeypatch.setattr(release, "_mark", lambda: next(marks))
    other = tmp_path / ".INV-1.send-anyway.abc1234.tmp"
    assert _released_leaving_theirs(cand, tmp_path, other) == [other.name,
                                                              "INV-1.send-anyway"]


def test_a_send_that_finds_a_release_there_removes_only_its_own_temp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release already there: the send says so (False) and removes its temp, but only
    its own file: one another process put at that name since (a sweep took ours for a
    leftover, and a send made its own temp there) stays."""
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    (tmp_path / "INV-1.send-anyway").write_bytes(b"")
    monkeypatch.setattr(release, "_mark", lambda: "abc1234")
    temp = tmp_path / ".INV-1.send-anyway.abc1234.tmp"
    real_rename, theirs = release.rename_noreplace, []

    def replaced_then_rename(src: Path, dst: Path) -> None:
        os.unlink(temp)  # a sweep took ours; another send made its own there since
        theirs.append(_theirs(temp))
        real_rename(src, dst)
    monkeypatch.setattr(release, "rename_noreplace", replaced_then_rename)
    try:
        assert not write_release(cand, SHARE, "anna")
        assert temp.read_bytes() == b"theirs"
    finally:
        for fd in theirs:
            os.close(fd)
    assert (tmp_path / "INV-1.send-anyway").read_bytes() == b""


def test_status_page_and_release_files_are_neither_invoices_nor_litter(tmp_path: Path) -> None:
    for name in ("outboxd-status.html", "INV-1.send-anyway", "odd.txt", "INV-1.xml"):
        (tmp_path / name).write_bytes(b"x")
    cfg = OutboxConfig(path=tmp_path, invoice_patterns=["*"])
    listing = list_outbox(cfg, SHARE)
    assert sorted(listing.candidates) == ["INV-1.xml", "odd.txt"]
    assert listing.others == ()
    assert is_share_file("a.send-anyway", "outboxd-status.html", ".send-anyway")
    assert not is_share_file(".send-anyway", "", ".send-anyway")


def test_send_writes_a_release_once_and_says_so_in_the_warning(tmp_path: Path) -> None:
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    assert write_release(cand, SHARE, "anna")
    assert not write_release(cand, SHARE, "anna")  # never replaced
    path = release_file(cand, SHARE)
    assert path is not None and path.read_text().startswith(RELEASED_BY_SEND)
    assert warning_text("INV-1", path) == ("invoice INV-1 is sent without attachments "
                                           f"(released by outboxd send (run by anna as {ME}))")
    assert [p.name for p in tmp_path.iterdir()] == ["INV-1.send-anyway"]


@pytest.mark.parametrize(("first_line", "said"), [
    (RELEASED_BY_SEND, f"released by outboxd send (run as {ME})"),
    (f"{RELEASED_BY_SEND} (by CORP\\anna)\r",
     f"released by outboxd send (run by CORP\\anna as {ME})"),
    (f"{RELEASED_BY_SEND} (by anna) and more", f"released by outboxd send (run as {ME})"),
    (f"{RELEASED_BY_SEND} (by {'a' * 65})", f"released by outboxd send (run as {ME})"),
    (f"{RELEASED_BY_SEND} (by {ME})", f"released by outboxd send (run by {ME})"),
])
def test_who_ran_send_is_read_from_its_line_only_where_it_is_a_name(
        tmp_path: Path, first_line: str, said: str) -> None:
    """The user `send` names on its release's first line goes into the warning (run by
    NAME), beside the user the file belongs to where that is another (run by NAME as
    OWNER); a line without one (an older send's), or whose end is no user name (more
    text after it, a name longer than 64), names the owner alone rather than a guess."""
    path = tmp_path / "INV-1.send-anyway"
    path.write_text(first_line + "\n")
    assert warning_text("INV-1", path) == f"invoice INV-1 is sent without attachments ({said})"


def test_send_names_the_person_sudo_names_else_its_own_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run with sudo -u outboxd, as the docs say, the process's user is outboxd for every
    admin: SUDO_USER names the person. Without sudo, the process's user; a SUDO_USER
    that cannot stand on the line (a newline in it) is passed over, never an error."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("SUDO_USER", "anna")
    assert release.invoking_user() == "anna"
    monkeypatch.setenv("SUDO_USER", "anna\n# forged")
    assert release.invoking_user() == me
    monkeypatch.delenv("SUDO_USER")
    assert release.invoking_user() == me


def test_a_sudo_user_not_in_utf_8_is_passed_over_and_the_release_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SUDO_USER whose bytes are not UTF-8 (a name from a directory in another
    encoding) reached the release file's line as it was and its write failed: `send`
    stopped with a UnicodeEncodeError traceback and released nothing. Such a name is no
    name the line can hold: passed over for the process's own user, and the release is
    written."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("SUDO_USER", os.fsdecode(b"an\xffna"))
    assert release.invoking_user() == me
    (tmp_path / "INV-8.xml").write_bytes(b"<x/>")
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-8.xml")
    assert write_release(cand, SHARE, release.invoking_user())
    assert released_by(tmp_path / "INV-8.send-anyway") == f"released by outboxd send (run by {me})"


def test_a_release_file_that_says_send_wrote_it_names_the_user_it_belongs_to(
        tmp_path: Path) -> None:
    """Anyone who may write into the outbox can drop a release file whose first line is
    the one `send` writes, naming anyone: "released by outboxd send (run by boss)" was
    recorded in the manifest on the word of that line alone, the clerk who made the file
    named nowhere. The file's owner, which no one writing it can choose, is named beside
    the name on the line (as `sudo -u outboxd` makes it outboxd); a hard link, whose
    owner need not be who made it, names no owner, as a release file does."""
    nobody = pwd.getpwnam("nobody")
    path = tmp_path / "INV-1.send-anyway"
    path.write_text(f"{RELEASED_BY_SEND} (by boss)\n")
    os.chown(path, nobody.pw_uid, -1)
    assert released_by(path) == "released by outboxd send (run by boss as nobody)"
    os.link(path, tmp_path / "other")
    assert "owner unknown" in released_by(path)
    assert "boss" not in released_by(path)


def test_dropped_release_names_its_file_and_owner(tmp_path: Path) -> None:
    path = tmp_path / "INV-2.send-anyway"
    path.write_bytes(b"")
    text = warning_text("INV-2", path)
    assert "released by INV-2.send-anyway (owner " in text


def test_a_link_named_like_a_release_releases_nothing(tmp_path: Path) -> None:
    os.symlink("/etc/passwd", tmp_path / "INV-3.send-anyway")
    assert release_file(candidate_for(OutboxConfig(path=tmp_path), "INV-3.xml"), SHARE) is None


@pytest.mark.parametrize("values", [{"status_page": "../x.html"}, {"status_page": ".hidden"},
                                    {"release_suffix": "send"}])
def test_bad_share_settings_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ShareConfig(**values)


def test_a_release_that_is_a_hard_link_names_no_owner(tmp_path: Path) -> None:
    """A release file with more than one name (a hard link to someone else's file, which
    keeps that file's owner) is recorded with its owner unknown, never as released by
    the owner of the file it links to; the same file alone names its owner."""
    theirs = tmp_path / "their-notes.txt"
    theirs.write_bytes(b"")
    path = tmp_path / "INV-4.send-anyway"
    os.link(theirs, path)
    assert warning_text("INV-4", path) == (
        "invoice INV-4 is sent without attachments (released by INV-4.send-anyway (owner "
        "unknown: the file is a hard link, one of several names of one file, so its owner "
        "need not be who made it))")
    theirs.unlink()
    assert "(owner " + pwd.getpwuid(os.getuid()).pw_name + ")" in warning_text("INV-4", path)


def test_who_released_is_the_owner_of_the_file_read_not_of_one_put_at_its_name_since(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The release file read is the one whose owner is recorded: a hard link to another
    file renamed over it between the read and the look at its owner does not make it
    "owner unknown" (nor another's), as the name looked at again would."""
    import contextlib
    from collections.abc import Iterator
    from typing import BinaryIO

    path = tmp_path / "INV-4.send-anyway"
    path.write_bytes(b"")
    theirs = tmp_path / "their-notes.txt"
    theirs.write_bytes(b"")
    real = release.open_regular

    @contextlib.contextmanager
    def read_then_replaced(at: Path) -> Iterator[BinaryIO]:
        with real(at) as fh:
            os.link(theirs, tmp_path / "swap")
            os.replace(tmp_path / "swap", at)  # a second name of their file, put there
            yield fh

    monkeypatch.setattr(release, "open_regular", read_then_replaced)
    owner = pwd.getpwuid(os.getuid()).pw_name
    assert warning_text("INV-4", path).endswith(f"(released by INV-4.send-anyway (owner {owner}))")


def test_a_release_that_cannot_be_written_leaves_nothing_in_the_outbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The share fills up as `send` renames its release into place (ENOSPC, injected):
    the error goes to `send` (which says "nothing was changed"), and so it is — neither
    the release nor its temp is left in the outbox."""
    import errno
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")

    def full(src: Path, dst: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(release, "rename_noreplace", full)
    with pytest.raises(OSError) as info:
        write_release(cand, SHARE, "anna")
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_three_temp_names_taken_in_a_row_leave_theirs_and_write_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every temp name `send` draws is another send's under way: their temps are left
    as they are, no release is written, and the error (EEXIST) goes to `send`."""
    cand = candidate_for(OutboxConfig(path=tmp_path), "INV-1.xml")
    monkeypatch.setattr(release, "_mark", lambda: "abc1234")
    other = tmp_path / ".INV-1.send-anyway.abc1234.tmp"
    fd = _theirs(other)
    try:
        with pytest.raises(FileExistsError):
            write_release(cand, SHARE, "anna")
        assert other.read_bytes() == b"theirs"
        assert os.fstat(fd).st_ino == os.lstat(other).st_ino
    finally:
        os.close(fd)
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away takes root")
def test_a_release_owned_by_a_user_this_server_does_not_know_names_no_owner(
        tmp_path: Path) -> None:
    """A release file owned by a user id with no name here (made over NFS by a user of
    another server): the warning names the file alone, not a made-up owner, and the
    bundle still goes."""
    path = tmp_path / "INV-5.send-anyway"
    path.write_bytes(b"")
    unknown = next(uid for uid in range(54321, 60000) if not _has_name(uid))
    os.chown(path, unknown, -1)
    assert warning_text("INV-5", path) == (
        "invoice INV-5 is sent without attachments (released by INV-5.send-anyway)")


def _has_name(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_a_release_gone_or_swapped_for_a_fifo_before_its_read_still_names_the_file(
        tmp_path: Path) -> None:
    """The release file seen beside the invoice is gone when it is read (the clerk took
    it back), or a FIFO stands at its name (never opened: it would block): the warning
    still names the release file, with the owner of what is there if anything is."""
    path = tmp_path / "INV-6.send-anyway"
    assert warning_text("INV-6", path) == (
        "invoice INV-6 is sent without attachments (released by INV-6.send-anyway)")
    os.mkfifo(path)
    owner = pwd.getpwuid(os.getuid()).pw_name
    assert warning_text("INV-6", path) == (
        f"invoice INV-6 is sent without attachments (released by INV-6.send-anyway "
        f"(owner {owner}))")


@pytest.mark.parametrize("line", [f"{RELEASED_BY_SEND} (by anna)\n", ""])
def test_an_owner_named_in_passwd_not_in_utf_8_is_shown_escaped_and_the_warning_goes_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str) -> None:
    """A release file owned by a user whose name the passwd database (LDAP, winbind) keeps
    in Latin-1: pwd gives it with lone surrogates, which the manifest, posted as UTF-8,
    cannot hold (its encode raised UnicodeEncodeError at the delivery). The owner
    is named with that byte escaped (\\udcNN, as a file name not in UTF-8 is shown), and
    the warning, beside a line `send` wrote or a clerk's file, is UTF-8 throughout."""
    path = tmp_path / "INV-6.send-anyway"
    path.write_text(line)
    latin1 = os.fsdecode(b"j\xf6rg")
    real = pwd.getpwuid

    def latin1_passwd(uid: int) -> pwd.struct_passwd:
        got = real(uid)
        return pwd.struct_passwd((latin1, *got[1:])) if uid == os.stat(path).st_uid else got

    monkeypatch.setattr(pwd, "getpwuid", latin1_passwd)
    text = warning_text("INV-6", path)
    text.encode("utf-8")
    assert "j\\udcf6rg" in text
