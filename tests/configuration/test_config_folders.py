"""The folders a configuration names (daemon/configuration/config_folders.py): created and writable
at start, never through a link, the processing folder on the outbox's file system;
`config --check` finds the same without creating anything."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from daemon.configuration.config import Settings
from daemon.configuration.config_folders import (
    folder_problems,
    prepare_folders,
    private_tmp_warning,
)
from daemon.errors import ConfigError, NotReady


def test_processing_on_another_file_system_than_the_outbox_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claims are renames: a [paths] processing folder on another file system
    than the outbox (another st_dev) is a configuration error at start, not a claim
    failing forever; the default, inside the outbox, is fine."""
    outbox, processing = tmp_path / "outbox", tmp_path / "elsewhere" / "processing"
    outbox.mkdir()
    real = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real(path, *args, **kwargs)
        if Path(path) != processing:
            return st
        fields = list(st)
        fields[2] += 1  # st_dev: another file system
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "processing": str(processing)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert "another file system" in str(info.value) and "processing" in str(info.value)
    prepare_folders(s.model_copy(update={"paths": s.paths.model_copy(
        update={"processing": None})}))


def test_a_folder_that_exists_but_refuses_writes_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sent/ that exists but cannot be written (another owner; faked here, as root may
    write anywhere): run refuses at start naming the key, the folder, the user it runs
    as and to give that user write access, instead of failing at every archive later.
    On a read-only mount (or outside the unit's ReadWritePaths=, which systemd mounts
    read-only) it says that instead: no chmod mends it."""
    outbox, sent = tmp_path / "outbox", tmp_path / "sent"
    outbox.mkdir()
    sent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != sent
                        and real(path, mode, **kw))
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(sent)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    line = str(info.value)
    assert line.startswith(f"[paths] sent: cannot write in {sent}: {sent} is not writable by "
                           f"{pwd.getpwuid(os.geteuid()).pw_name}, the user outboxd runs as"), line
    assert "give" in line and "write access to it" in line and line.endswith(
        ", or fix [paths] sent"), line
    real_statvfs = os.statvfs

    def statvfs(path: Any) -> Any:
        st = real_statvfs(path)
        return type("Ro", (), {"f_flag": st.f_flag | os.ST_RDONLY})() if Path(path) == sent \
            else st

    monkeypatch.setattr(os, "statvfs", statvfs)
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    line = str(info.value)
    assert f"{sent} is on a read-only file system" in line and "ReadWritePaths=" in line, line
    assert "not writable by" not in line, line


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A folder root owns (mode 0755) that nobody can reach (pytest's tmp folders are
    root's only), for a test that acts as nobody."""
    root = Path(tempfile.mkdtemp(prefix="outboxd-folders-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def as_nobody() -> Iterator[None]:
    """The code inside runs as nobody, real and effective ids both (os.access asks for
    the real one; root ignores modes), root kept as the saved id to come back to after."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user (as CI runs these)")
    try:
        os.setresgid(NOBODY, NOBODY, 0)
        os.setresuid(NOBODY, NOBODY, 0)
    except OSError as exc:
        os.setresgid(0, 0, 0)
        pytest.skip(f"cannot act as nobody here ({exc.strerror})")
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


NOBODY = 65534


@pytest.mark.parametrize("refusing", ["outbox", "beside", "sent"])
def test_a_folder_the_service_user_may_not_make_names_the_folder_that_refused_and_whom(
        open_root: Path, refusing: str) -> None:
    """Run as an unprivileged user where a folder with a default refuses it (a real
    EACCES): the outbox is root's, 0755 (`refusing` outbox: the default processing
    folder in it), the outbox's parent is (sent/ beside it, missing), or sent/ is.
    The line names the folder that refused, the user, and the fix — write access to the
    outbox, or sent/ made for that user — and says the key was not set, instead of
    "Permission denied — create it or fix [paths] processing" for a key the admin never
    set, where creating the folder was not the fix (outboxd moves bundles out of the
    outbox and writes its status page there)."""
    outbox, sent = open_root / "outbox", open_root / "sent"
    for folder in (outbox, open_root / "quarantine", open_root / "state", sent):
        folder.mkdir()
        os.chown(folder, NOBODY, NOBODY)
    if refusing == "outbox":
        os.chown(outbox, 0, 0)
    elif refusing == "beside":
        sent.rmdir()
    else:
        os.chown(sent, 0, 0)
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(open_root / "state")},
                 delivery={"url": "http://127.0.0.1:9/x"})
    name, group = pwd.getpwuid(NOBODY).pw_name, grp.getgrgid(NOBODY).gr_name
    with as_nobody(), pytest.raises(ConfigError) as info:
        prepare_folders(s)
    line = str(info.value)
    assert "create it or fix" not in line and "Permission denied" not in line, line
    if refusing == "outbox":
        assert line.startswith(f"[paths] processing: cannot create {outbox}/.outboxd/processing "
                               f"(the key is not set: its default): {outbox} is not writable "
                               f"by {name}, the user outboxd runs as"), line
        assert f"give {name} write access to the outbox" in line, line
        assert f"chgrp {group} {outbox} && chmod 2770 {outbox}" in line, line
        assert "fix [paths]" not in line and "set [paths]" not in line, line
    elif refusing == "beside":
        assert line.startswith(f"[paths] sent: cannot create {sent} (the key is not set: its "
                               f"default): {open_root} is not writable by {name}"), line
        assert f"install -d -o {name} -g {group} {sent}" in line, line
        assert line.endswith("or set [paths] sent to a folder it may write"), line
    else:
        assert line.startswith(f"[paths] sent: cannot write in {sent} (the key is not set: "
                               f"its default): {sent} is not writable by {name}"), line
        assert f"give {name} write access to it" in line, line
    with as_nobody():
        assert folder_problems(s) == [line], "config --check says the same"


@pytest.mark.parametrize("linked", ["sent", ".outboxd"])
def test_a_folder_the_daemon_writes_that_is_a_link_stops_the_start(
        tmp_path: Path, linked: str) -> None:
    """sent/ (or .outboxd in the outbox, where the default processing folder lies) as a
    symbolic link would send bundles wherever it leads: run refuses at start, naming the
    link and the key, and config --check finds it without creating anything."""
    outbox, elsewhere = tmp_path / "outbox", tmp_path / "elsewhere"
    outbox.mkdir()
    elsewhere.mkdir()
    link = tmp_path / "sent" if linked == "sent" else outbox / ".outboxd"
    link.symlink_to(elsewhere)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(tmp_path / "sent")},
                 delivery={"url": "http://127.0.0.1:9/x"})
    key = "[paths] sent" if linked == "sent" else "[paths] processing"
    [problem] = folder_problems(s)
    assert problem.startswith(f"{key}: {link} is a symbolic link")
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert f"{link} is a symbolic link" in str(info.value)
    assert list(elsewhere.iterdir()) == []


def _on_a_share(root: Path, **paths: str) -> Settings:
    """sent/, quarantine/ and a directory target below root/share (a share's mount point)."""
    (root / "outbox").mkdir(exist_ok=True)
    return Settings(outbox={"path": str(root / "outbox")},
                    paths={"state_dir": str(root / "state"),
                           "sent": paths.get("sent", str(root / "share" / "out" / "sent")),
                           "quarantine": str(root / "share" / "out" / "quarantine")},
                    delivery={"transport": "directory",
                              "target": paths.get("target", str(root / "share" / "out" / "t"))})


def test_a_reload_while_a_share_is_away_makes_nothing_under_its_bare_mount_point(
        tmp_path: Path) -> None:
    """A reload made while the share holding sent/, quarantine/ and the directory target
    is unmounted (its mount point left bare, as here) does not make them again on the
    local disk, where the remount would hide them: the running configuration's folders
    existed at start, and their moves and writes wait for the share."""
    s = _on_a_share(tmp_path)
    prepare_folders(s)  # the start, with the share mounted
    assert (tmp_path / "share" / "out" / "t").is_dir()
    for entry in (tmp_path / "share").iterdir():  # the share unmounted: its point is bare
        shutil.rmtree(entry)
    prepare_folders(s, running=s)
    assert list((tmp_path / "share").iterdir()) == []


def test_a_reload_naming_a_new_folder_below_a_missing_one_is_refused_and_makes_nothing(
        tmp_path: Path) -> None:
    """A reload names a new sent/ and a new target: each is made without its parents (the
    last level only); one whose parent is missing (a share not mounted?) refuses the
    reload naming that parent, before anything is made."""
    running = _on_a_share(tmp_path)
    prepare_folders(running)
    (tmp_path / "new").mkdir()
    away = tmp_path / "away" / "out"
    new = _on_a_share(tmp_path, sent=str(tmp_path / "new" / "sent"), target=str(away / "t"))
    with pytest.raises(ConfigError) as info:
        prepare_folders(new, running=running)
    assert f"[delivery] target: {away / 't'} is not made at a reload: {away} does not " \
        "exist — is its share not mounted?" in str(info.value)
    assert not (tmp_path / "away").exists() and list((tmp_path / "new").iterdir()) == []
    ok = _on_a_share(tmp_path, sent=str(tmp_path / "new" / "sent"),
                     target=str(tmp_path / "new" / "t"))
    prepare_folders(ok, running=running)
    assert (tmp_path / "new" / "sent").is_dir() and (tmp_path / "new" / "t").is_dir()


def test_a_start_makes_a_directory_target_with_its_parents(tmp_path: Path) -> None:
    """At start the directory target is made with all its parents, as the other folders."""
    s = _on_a_share(tmp_path)
    prepare_folders(s)
    assert (tmp_path / "share" / "out" / "t").is_dir()


@pytest.mark.parametrize("key", ["sent", "quarantine", "processing", "state_dir", "target"])
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EDQUOT, errno.ENOTCONN])
def test_a_folder_that_a_full_disk_or_an_absent_share_refuses_stops_the_start_to_be_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, error: int) -> None:
    """A folder made at start that the disk refuses for want of room (or quota), or whose
    share is away (injected here; tests/faults/test_full_share.py on a real full ext4),
    stops the start as the environment's (NotReady: `run` exits 1, which systemd
    restarts), naming the key, the real cause and its fix — not "create it or fix the
    key", a configuration error (exit 2) that leaves the daemon down once space is back.
    Any other refusal (here EACCES) stays a configuration error."""
    (tmp_path / "outbox").mkdir()
    folders = {"sent": tmp_path / "sent", "quarantine": tmp_path / "quarantine",
               "processing": tmp_path / "outbox" / ".outboxd" / "processing",
               "state_dir": tmp_path / "state", "target": tmp_path / "target"}
    s = Settings(outbox={"path": str(tmp_path / "outbox")},
                 paths={"state_dir": str(folders["state_dir"]), "sent": str(folders["sent"]),
                        "quarantine": str(folders["quarantine"])},
                 delivery={"transport": "directory", "target": str(folders["target"])})
    real, refused = Path.mkdir, folders[key]
    failing = [error]

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == refused:
            raise OSError(failing[0], os.strerror(failing[0]), str(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(NotReady) as info:
        prepare_folders(s)
    named = "[delivery] target" if key == "target" else f"[paths] {key}"
    line = str(info.value)
    assert line.startswith(f"{named}: cannot create {refused}: {os.strerror(error)}"), line
    if error == errno.ENOTCONN:
        assert "is its share mounted and reachable?" in line, line
    else:
        assert "free space on that file system, or raise the disk quota" in line, line
    assert "create it or fix" not in line and "the next start makes it" in line, line
    failing[0] = errno.EACCES
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert not isinstance(info.value, NotReady), info.value


@pytest.mark.parametrize("error", [errno.ESTALE, errno.EIO, errno.ENOTCONN])
def test_a_folder_whose_share_fails_just_as_its_access_is_checked_is_retried_not_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """sent/ exists (on a share), but just at the start the share fails: os.access says
    False for any call that fails, a stale handle (ESTALE), EIO or a dropped connection
    alike, and the start said "not writable by this user … ReadWritePaths=", a
    configuration error (exit 2) that systemd does not restart, so outboxd stayed down
    once the share was back. Opening the folder fails with the same error (injected here,
    as the NFS client's cached attributes may still answer a stat): the start stops as
    the environment's (NotReady: `run` exits 1, and systemd starts it again), naming the
    key, the folder, the error and to check the share. A folder that opens fine but
    refuses writes stays a configuration error."""
    outbox, sent = tmp_path / "outbox", tmp_path / "sent"
    outbox.mkdir()
    sent.mkdir()
    real_access, real_open = os.access, os.open
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != sent
                        and real_access(path, mode, **kw))
    failing = [error]

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == sent and failing:
            raise OSError(failing[0], os.strerror(failing[0]), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(sent)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(NotReady) as info:
        prepare_folders(s)
    line = str(info.value)
    assert line.startswith(f"[paths] sent: cannot use {sent}: {os.strerror(error)}"), line
    assert "is its share mounted and reachable?" in line and "not writable" not in line
    assert "systemd starts outboxd again by itself" in line, line
    failing.clear()
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert not isinstance(info.value, NotReady) and "is not writable by" in str(info.value)


SYSTEMD = {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}


@pytest.mark.parametrize(("state_dir", "environ", "under"), [
    ("/tmp/outboxd-trial/state", SYSTEMD, "/tmp"), ("/var/tmp/outboxd", SYSTEMD, "/var/tmp"),
    ("/tmp", SYSTEMD, "/tmp"), ("/var/lib/outboxd", SYSTEMD, None),
    ("/tmpfs/outboxd", SYSTEMD, None), ("/tmp/outboxd-trial/state", {}, None)])
def test_a_state_dir_in_a_private_tmp_is_warned_of_only_under_systemd(
        state_dir: str, environ: dict[str, str], under: str | None) -> None:
    """A state dir under /tmp or /var/tmp (the example's trial one) in a daemon systemd
    started (INVOCATION_ID) is lost at every start to the unit's PrivateTmp=: one line
    naming the key, the path, why and the default to set. Elsewhere, or started by hand,
    nothing (a folder merely named like /tmp is not it)."""
    line = private_tmp_warning(Path(state_dir), environ)
    if under is None:
        assert line is None
        return
    assert line is not None
    assert line.startswith(f'[paths] state_dir = "{state_dir}" is under {under}, which the '
                           "service's PrivateTmp= empties at every start"), line
    assert 'set state_dir = "/var/lib/outboxd" (the default)' in line, line


@pytest.mark.parametrize("blocked", ["default sent", "set sent", "default processing"])
def test_a_file_where_a_folder_must_be_is_named_with_moving_it_as_the_fix(
        tmp_path: Path, blocked: str) -> None:
    """A file where a folder the daemon makes must be (`sent` beside the outbox, the key
    unset: a real EEXIST), or on its path (a set [paths] sent below a file: ENOTDIR;
    `.outboxd` in the outbox, where the default processing folder lies) stops the start
    with a line naming that file and the fix — move it away, or set the key to another
    folder (not for the default processing folder: .outboxd/ is outboxd's own) — and
    saying when the key is unset, instead of "File exists — create it or fix KEY".
    config --check says the same; the file is left as it was."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    paths = {"state_dir": str(tmp_path / "state")}
    if blocked == "default sent":
        key, folder = "[paths] sent", tmp_path / "sent"
        in_the_way = folder
    elif blocked == "set sent":
        key, in_the_way = "[paths] sent", tmp_path / "archive"
        folder = in_the_way / "sent"
        paths["sent"] = str(folder)
    else:
        key, in_the_way = "[paths] processing", outbox / ".outboxd"
        folder = in_the_way / "processing"
    in_the_way.write_text("someone's notes\n")
    s = Settings(outbox={"path": str(outbox)}, paths=paths,
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    line = str(info.value)
    assert "create it" not in line and "File exists" not in line, line
    default = "" if blocked == "set sent" else " (the key is not set: its default)"
    assert line.startswith(f"{key}: cannot create {folder}{default}: "), line
    if blocked == "default sent":
        assert f"a file named {folder} is where that folder must be" in line, line
    else:
        assert f"{in_the_way}, on its path, is a file, not a folder" in line, line
    if blocked == "default processing":
        assert line.endswith("move that file away"), line
    else:
        assert line.endswith(f"move that file away, or set {key} to another folder"), line
    assert folder_problems(s) == [line], "config --check says the same"
    assert in_the_way.read_text() == "someone's notes\n"


def test_config_check_finds_processing_on_another_file_system_without_creating_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`config --check` (folder_problems) says what the start would refuse for a [paths]
    processing on another file system than the outbox — the same line — and creates
    nothing."""
    outbox, processing = tmp_path / "outbox", tmp_path / "elsewhere" / "processing"
    outbox.mkdir()
    (tmp_path / "elsewhere").mkdir()
    real = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real(path, *args, **kwargs)
        if Path(path) not in (processing, processing.parent):  # the parent: the nearest
            return st                                          # folder until it is made
        fields = list(st)
        fields[2] += 1  # st_dev: another file system
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "processing": str(processing)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    [problem] = folder_problems(s)
    assert problem.startswith(f'[paths] processing = "{processing}" is on another file system')
    assert not processing.exists() and not (tmp_path / "state").exists()
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert str(info.value) == problem


def test_a_folder_refused_for_another_reason_is_a_config_error_naming_key_folder_and_cause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the file system refuses to make for a reason that neither passes by itself
    (room, a share away) nor is access (here EMLINK: its parent holds as many folders as
    the file system allows): a configuration error, exit 2, naming the key, the folder,
    the system's words and the fix — no traceback, nothing else made under the path."""
    (tmp_path / "outbox").mkdir()
    sent = tmp_path / "sent"
    s = Settings(outbox={"path": str(tmp_path / "outbox")},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(sent)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    real = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == sent:
            raise OSError(errno.EMLINK, os.strerror(errno.EMLINK), str(self))
        real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert not isinstance(info.value, NotReady)
    assert str(info.value) == (f"[paths] sent: cannot create {sent}: Too many links — create "
                               "it or fix [paths] sent")
    assert not sent.exists()
