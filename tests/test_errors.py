"""The exception tree (daemon/errors.py): what each kind carries, and the lines an OSError
becomes for people."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import (
    OS_FIX,
    ConfigError,
    InputError,
    ReadTimedOut,
    describe,
    refused,
)
from daemon.fs import fsmove, fswrite


def test_describe_names_what_went_wrong_and_the_file(tmp_path: Path) -> None:
    """describe() is the OS's words and, when the error has one, the file in parentheses
    (not Python's "[Errno 13]" form)."""
    missing = tmp_path / "nope"
    try:
        missing.read_bytes()
    except OSError as exc:
        assert describe(exc) == f"No such file or directory ({missing})"
    assert describe(OSError(errno.EIO, "Input/output error")) == "Input/output error"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_describe_gives_a_full_disk_or_quota_its_fix(tmp_path: Path, code: int) -> None:
    """A write refused for want of room (a full file system, a quota used up) names the
    file and says what the admin does: nothing outboxd does makes room."""
    said = describe(OSError(code, os.strerror(code), str(tmp_path / "sent")))
    assert said.startswith(f"{os.strerror(code)} ({tmp_path / 'sent'}) — ")
    assert "free space on that file system" in said and "quota" in said
    # refused() gives no second, vaguer fix after it.
    assert refused(OSError(code, os.strerror(code))).count(" — ") == 1


def test_describe_gives_a_read_only_file_system_its_fix(tmp_path: Path) -> None:
    """A write refused by a file system mounted read-only (sent/ remounted read-only under
    the daemon: explore-admin saw the archive's retries say only "Read-only file system")
    names the file and the fix; refused() gives no second, vaguer one after it."""
    exc = OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "sent"))
    assert describe(exc) == (f"{os.strerror(errno.EROFS)} ({tmp_path / 'sent'}) — that file "
                             "system is mounted read-only: remount it read-write")
    assert refused(exc) == describe(exc)


def test_refused_adds_the_one_fix_for_an_environment_error() -> None:
    """refused() is describe() followed by the fix to check path, permissions and space."""
    exc = PermissionError(errno.EACCES, "Permission denied", "/srv/outbox")
    assert refused(exc) == f"Permission denied (/srv/outbox) — {OS_FIX}"


def test_a_config_error_keeps_every_problem_and_names_its_source() -> None:
    """ConfigError keeps its problems as a list (one string becomes one problem) and its
    text starts with the file they come from, the problems joined."""
    one = ConfigError("[outbox] path is required")
    assert one.problems == ["[outbox] path is required"] and one.source is None
    both = ConfigError(["[outbox] path is required", "[log] level = 'loud'"], "/etc/o.toml")
    assert both.problems == ["[outbox] path is required", "[log] level = 'loud'"]
    assert str(both) == "/etc/o.toml: [outbox] path is required; [log] level = 'loud'"


def test_a_read_past_the_time_limit_is_an_input_error_naming_file_and_limit() -> None:
    """ReadTimedOut is an InputError (the bundle's fault: quarantine, not a retry) with the
    stable code read-time-limit, the invoice file, and the limit in plain seconds."""
    exc = ReadTimedOut("INV-1.xml", 120.0)
    assert isinstance(exc, InputError)
    assert (exc.code, exc.file) == ("read-time-limit", "INV-1.xml")
    assert "longer than 120 s" in exc.message and str(exc).startswith("INV-1.xml: ")


def _refused_move(tmp_path: Path) -> tuple[OSError, Path, Path]:
    """A bundle's work folder refused its rename into a day folder of sent/ (EPERM, as
    renameat2 reports it: the source's name first, the destination's second)."""
    work = tmp_path / "processing" / "INV-1--abc"
    day = tmp_path / "sent" / "2031-05-06"
    work.mkdir(parents=True)
    day.mkdir(parents=True)
    exc = OSError(errno.EPERM, os.strerror(errno.EPERM), str(work), None,
                  str(day / "INV-1--abc"))
    return exc, work, day


def test_a_refused_move_names_the_folder_it_goes_into_first(tmp_path: Path) -> None:
    """A day folder in sent/ made immutable (chattr +i) refused the move of a delivered
    bundle: the line sent the admin to look for the attribute on the bundle's own work
    folder in processing/, the one name the error holds, which was fine. Every folder
    the move writes in lets this user write by its mode, so the one it goes into is
    named first, and the others after it."""
    exc, work, day = _refused_move(tmp_path)
    said = describe(exc, writing=True)
    assert f"— {day} (owner " in said and f"lsattr -d {day})" in said
    assert said.endswith(f"the move writes in {work.parent} and {work} too: look there "
                         "as well")


def test_a_move_into_a_folder_another_user_owns_names_that_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day folder in sent/ that another user made (0755, say: another server's outboxd
    on the share) is not writable by this one: the line names it and the write access
    to give, not the bundle's work folder, which this user may write in."""
    exc, work, day = _refused_move(tmp_path)
    for folder in (work, work.parent):
        folder.chmod(0o777)
    day.chmod(0o755)
    others = os.stat(day).st_uid + 4242  # this process as a user who owns neither
    monkeypatch.setattr(os, "geteuid", lambda: others)
    monkeypatch.setattr(os, "getegid", lambda: others)
    monkeypatch.setattr(os, "getgroups", lambda: [])
    said = describe(exc, writing=True)
    assert f"— {day} (owner " in said and "is not writable by" in said
    assert f"chmod g+rwx {day})" in said and str(work.parent) + " " not in said


def test_a_move_refused_on_a_share_without_renameat2_names_the_folder_it_goes_into(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NFS or SMB (no renameat2): the move into sent/'s day folder, held open, is a
    plain rename by descriptor. Refused there (EPERM, as CPython raises it with the
    names it was given), the line named the day folder, not the daemon's working
    folder, which a bare name would have made it look at."""
    monkeypatch.setattr(fswrite, "_renameat2", None)
    _, work, day = _refused_move(tmp_path)

    def refused(src: Any, dst: Any, **at: Any) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), src, None, dst)

    monkeypatch.setattr(os, "rename", refused)
    held = os.open(day, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(PermissionError) as caught:
            fswrite.rename_noreplace(work, day / work.name, None, held)
    finally:
        os.close(held)
    said = describe(caught.value, writing=True)
    assert f"— {day} (owner " in said and "— . (owner" not in said


def test_a_refused_rename_whose_destination_is_a_bare_name_never_names_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename by a held folder's descriptor names its destination bare: the folder it
    goes into is unknown, and the working folder ("/" under systemd) is not it — the
    line names the folder the source leaves, never "." with a chmod of it."""
    _, work, _ = _refused_move(tmp_path)
    monkeypatch.chdir(tmp_path)
    exc = OSError(errno.EPERM, os.strerror(errno.EPERM), str(work), None, work.name)
    said = describe(exc, writing=True)
    assert f"— {work} (owner " in said and "— . (owner" not in said


def test_a_copy_across_file_systems_refused_in_the_folder_it_goes_into_never_names_dot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on another file system than processing/ (EXDEV): the bundle is copied into
    its day folder by the folder's descriptor, each name bare. A refused write there
    (EACCES, raised with the bare name it was given) had describe() judge the daemon's
    working folder ("." — under systemd "/") and ask for a chmod of it; a bare name is
    no folder to judge, so the line says the refusal without that fix (the archive's
    line names the target)."""
    _, work, day = _refused_move(tmp_path)
    monkeypatch.chdir(tmp_path)

    def across(*args: Any, **kw: Any) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    def refused(name: Any, *args: Any, **kw: Any) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)

    monkeypatch.setattr(fsmove, "_rename", across)
    monkeypatch.setattr(os, "mkdir", refused)
    with pytest.raises(PermissionError) as caught:
        fsmove.move_tree(work, day / work.name)
    said = describe(caught.value, writing=True)
    assert "(owner" not in said and "chmod" not in said and said.startswith(
        os.strerror(errno.EACCES))


def test_an_os_error_without_a_file_name_is_shown_as_python_says_it() -> None:
    """shown_text (the error of a log line or a command's refusal) of an OSError that names
    no file (a socket's, a share's failure at a read): its errno and words, as str() gives
    them — nothing invented, and no "/proc/self/fd/N" to translate."""
    from daemon.errors import shown_text
    exc = OSError(errno.EIO, os.strerror(errno.EIO))
    assert shown_text(exc) == str(exc) == "[Errno 5] Input/output error"
    named = OSError(errno.EIO, os.strerror(errno.EIO), "/srv/outbox/INV-1.xml")
    assert shown_text(named) == "[Errno 5] Input/output error: '/srv/outbox/INV-1.xml'"


def test_in_words_says_an_os_error_as_describe_does_and_anything_else_as_its_text() -> None:
    """in_words, for an `except` that may catch an OSError among others: the OSError in
    words with its file (and, for a write, the fix), never "[Errno …]"; any other
    exception as its own text."""
    from daemon.errors import in_words
    gone = FileNotFoundError(errno.ENOENT, "No such file or directory", "/srv/outbox/a.pdf")
    assert in_words(gone) == "No such file or directory (/srv/outbox/a.pdf)"
    full = OSError(errno.ENOSPC, "No space left on device", "/srv/outbox/a.pdf")
    assert in_words(full, writing=True) == describe(full, writing=True)
    assert "Errno" not in in_words(full, writing=True)
    assert in_words(ValueError("not a number: 'x'")) == "not a number: 'x'"
