"""Who else may read the files that hold the token (daemon/configuration/secret_files.py): real
files with real modes in tmp_path, loaded as the daemon loads them. The tests run as root, so
the file's owner and the service are root; where a group with clerks in it is needed,
its member list is given (the machine's own groups are not the test's to change)."""

from __future__ import annotations

import errno
import os
import pwd
import struct
from pathlib import Path

import pytest
from helpers import config_file, minimal

from daemon.configuration.config_load import load_settings
from daemon.configuration.secret_files import exposure_warnings, group_members, other_readers

TOKEN = "s3cret-token-42"


def clerks(gid: int) -> set[str]:
    """A group the clerks are in, as the shipped sysusers comment tells admins to make
    the `outboxd` group: its real members and two people."""
    return group_members(gid) | {"alice", "bob"}


def _with_token(tmp_path: Path, outbox: Path, mode: int) -> Path:
    path = config_file(tmp_path, minimal(outbox, f'token = "{TOKEN}"\n'))
    path.chmod(mode)
    return path


def _with_token_file(tmp_path: Path, outbox: Path, mode: int) -> tuple[Path, Path]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(mode)
    path = config_file(tmp_path, minimal(outbox, f'token_file = "{token}"\n'))
    path.chmod(0o644)  # holds no secret: readable by all is no matter
    return path, token


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOXD_PATHS__STATE_DIR", str(tmp_path / "state"))


class TestInlineToken:
    def test_a_world_readable_configuration_with_a_token_is_warned_of_without_it(
            self, tmp_path: Path, outbox: Path) -> None:
        """[delivery] token in a file of mode 0644: one warning naming the file, its mode,
        that every user may read it, and the fix (token_file with LoadCredential=, or
        chmod); the token is not in it."""
        path = _with_token(tmp_path, outbox, 0o644)
        [warning] = exposure_warnings(load_settings(path), path)
        assert warning.startswith(f"the configuration file {path} holds [delivery] token, "
                                  "and every user of this machine may read it (mode 0644)")
        assert "token_file" in warning and "LoadCredential=" in warning
        assert "chmod 0640" in warning and "chmod 0600" in warning
        assert TOKEN not in warning

    def test_a_configuration_readable_by_a_group_with_clerks_in_it_is_warned_of(
            self, tmp_path: Path, outbox: Path) -> None:
        """The install of operations.md (0640, group outboxd) where the clerks are in
        that group: they may read the token. The warning names the group and whom."""
        path = _with_token(tmp_path, outbox, 0o640)
        [warning] = exposure_warnings(load_settings(path), path, members=clerks)
        group = Path(path).group()
        assert (f"and its group {group} may read it (mode 0640), and that group has "
                "members besides outboxd's own user: alice, bob —") in warning
        assert TOKEN not in warning

    @pytest.mark.parametrize("mode", [0o600, 0o640, 0o400])
    def test_no_warning_where_only_root_and_the_service_may_read_it(
            self, tmp_path: Path, outbox: Path, mode: int) -> None:
        """0600, or 0640 with a group no one but root and the service is in (the
        machine's real members of the file's group): the fix itself must not warn."""
        path = _with_token(tmp_path, outbox, mode)
        assert exposure_warnings(load_settings(path), path) == []

    def test_a_token_from_the_environment_is_not_in_the_file(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__TOKEN: a world-readable file without a token holds nothing
        to warn of."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__TOKEN", TOKEN)
        path = config_file(tmp_path, minimal(outbox))
        path.chmod(0o644)
        assert exposure_warnings(load_settings(path), path) == []

    def test_the_state_dirs_owner_counts_as_the_service(
            self, tmp_path: Path, outbox: Path) -> None:
        """`config --check` runs as root: the daemon's user, the owner of the state dir,
        being in the group is the recommended 0640 setup, not a clerk."""
        nobody = pwd.getpwnam("nobody")
        state = tmp_path / "state"
        state.mkdir()
        os.chown(state, nobody.pw_uid, -1)
        path = _with_token(tmp_path, outbox, 0o640)
        only_the_service = lambda gid: {"root", "nobody"}  # noqa: E731
        assert exposure_warnings(load_settings(path), path, members=only_the_service) == []
        with_a_clerk = lambda gid: {"nobody", "alice"}  # noqa: E731
        [warning] = exposure_warnings(load_settings(path), path, members=with_a_clerk)
        assert "besides outboxd's own user: alice —" in warning


class TestTokenFile:
    @pytest.mark.parametrize("mode", [0o644, 0o604])
    def test_a_world_readable_token_file_is_warned_of(
            self, tmp_path: Path, outbox: Path, mode: int) -> None:
        """token_file readable by "other": one warning naming the file, the mode and the
        fix; the configuration file (no token in it) is not named."""
        path, token = _with_token_file(tmp_path, outbox, mode)
        [warning] = exposure_warnings(load_settings(path), path)
        assert warning.startswith(f"[delivery] token_file {token} holds the token, and every "
                                  f"user of this machine may read it (mode {mode:04o})")
        assert "chmod 0600" in warning and TOKEN not in warning

    def test_a_token_file_readable_by_the_clerks_group_is_warned_of(
            self, tmp_path: Path, outbox: Path) -> None:
        """/etc/outboxd/token made 0640 group outboxd, where the clerks are in it."""
        path, token = _with_token_file(tmp_path, outbox, 0o640)
        [warning] = exposure_warnings(load_settings(path), path, members=clerks)
        assert str(token) in warning and "alice, bob" in warning

    @pytest.mark.parametrize("mode", [0o600, 0o400, 0o440])
    def test_a_credential_as_systemd_makes_it_is_not_warned_of(
            self, tmp_path: Path, outbox: Path, mode: int) -> None:
        """systemd writes a credential 0400 owned by root, and gives the service's user
        read access by an ACL, which shows as 0440 group root: only root is in it."""
        path, _ = _with_token_file(tmp_path, outbox, mode)
        assert exposure_warnings(load_settings(path), path) == []


def _set_acl(path: Path, user: int, group_obj: int) -> None:
    """An access ACL as `setfacl -m u:UID:r` leaves it (a named user that may read, the
    mask r), the owning group's own entry `group_obj` (4: read, 0: none); what `getfacl`
    would show, written as the kernel keeps it. Skips where the file system has none."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, user), (0x04, group_obj, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    try:
        os.setxattr(path, "system.posix_acl_access", struct.pack("<I", 2) + b"".join(
            struct.pack("<HHI", *e) for e in entries))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            pytest.skip(f"no POSIX ACLs here: {exc}")
        raise


class TestAcl:
    def test_a_user_an_acl_lets_read_the_token_file_is_warned_of(
            self, tmp_path: Path, outbox: Path) -> None:
        """/etc/outboxd/token 0600 root, then `setfacl -m u:nobody:r` for someone not the
        service: the mode shows 0640 group root, a group with no one in it, yet that user
        may read the token. The warning names the user and says how to take it away."""
        path, token = _with_token_file(tmp_path, outbox, 0o600)
        _set_acl(token, pwd.getpwnam("nobody").pw_uid, group_obj=0)
        assert os.stat(token).st_mode & 0o777 == 0o640
        [warning] = exposure_warnings(load_settings(path), path, members=lambda gid: set())
        assert str(token) in warning and "ACL" in warning and "nobody" in warning
        assert "setfacl -x" in warning and TOKEN not in warning

    def test_an_acl_for_the_service_alone_is_not_a_group_that_may_read(
            self, tmp_path: Path, outbox: Path) -> None:
        """The token file 0600 root:outboxd-with-clerks, read by the service through
        `setfacl -m u:outboxd:r` (as systemd gives a credential to the service): the
        mode shows 0640, but the group's own entry reads nothing. No warning: its fix
        (chmod 0600) would take the service's read away with the ACL's mask."""
        service = pwd.getpwnam("nobody")
        state = tmp_path / "state"
        state.mkdir()
        os.chown(state, service.pw_uid, -1)  # the daemon's user (test_the_state_dirs...)
        path, token = _with_token_file(tmp_path, outbox, 0o600)
        _set_acl(token, service.pw_uid, group_obj=0)
        assert os.stat(token).st_mode & 0o777 == 0o640
        assert exposure_warnings(load_settings(path), path, members=clerks) == []

    def test_the_owning_groups_own_acl_entry_decides_for_the_group(
            self, tmp_path: Path, outbox: Path) -> None:
        """With an ACL, the group bits of the mode are its mask: the group with clerks
        in it is warned of where its own entry reads (group_obj r), as without one."""
        path, token = _with_token_file(tmp_path, outbox, 0o600)
        _set_acl(token, 0, group_obj=4)
        [warning] = exposure_warnings(load_settings(path), path, members=clerks)
        assert str(token) in warning and "alice, bob" in warning


def test_more_members_than_shown_are_counted(tmp_path: Path) -> None:
    """A group of many clerks: three named, the rest counted, so the line stays short."""
    secret = tmp_path / "secret"
    secret.write_text(TOKEN)
    secret.chmod(0o640)
    who = other_readers(secret, set(), members=lambda gid: {f"clerk{i}" for i in range(7)})
    assert who is not None and who.endswith("clerk0, clerk1, clerk2 and 4 more")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the file to another user needs root")
def test_the_files_owner_is_not_named_as_another_reader(tmp_path: Path) -> None:
    """A token file owned by a user (here `daemon`) who is also in its group: the owner
    reads its own file whatever the group bits say, so only the clerk is named."""
    secret = tmp_path / "secret"
    secret.write_text(TOKEN)
    secret.chmod(0o640)
    os.chown(secret, pwd.getpwnam("daemon").pw_uid, -1)
    who = other_readers(secret, set(), members=lambda gid: {"daemon", "clerk0"})
    assert who is not None and who.endswith("besides outboxd's own user: clerk0")


def test_a_file_that_is_not_there_is_left_to_the_reading(tmp_path: Path) -> None:
    """A systemd credential's path while the service is stopped: no warning (reading
    it says what is wrong, where it is read)."""
    assert other_readers(tmp_path / "missing", set()) is None


@pytest.mark.parametrize("from_env", [False, True])
def test_a_token_file_beside_a_token_is_said_to_be_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: bool) -> None:
    """token and token_file both set: token wins (configuration.md) and the file is never
    read — yet the file's mode was warned of as if it held the token (a folder named by
    mistake too: "holds the token, … mode 0755"), and nothing said the token still
    came from the configuration. One warning names the file, which key wins and the
    fix; none about the unread file's readers (found by bench/configfuzz.py)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o755)
    token = "" if from_env else 'token = "abc"\n'
    if from_env:
        monkeypatch.setenv("OUTBOXD_DELIVERY__TOKEN", "abc")
    path = config_file(tmp_path, minimal(outbox).replace(
        "[delivery]\n", f'[delivery]\n{token}token_file = "{folder}"\n'))
    path.chmod(0o600)
    key = "OUTBOXD_DELIVERY__TOKEN" if from_env else "[delivery] token"
    assert exposure_warnings(load_settings(path), path) == [
        f"[delivery] token_file {folder} is not read: {key} is set too, and wins — remove "
        f"{key} to send the file's token, or remove token_file"]
