"""Whom the permission hints name: the owner of the state dir, as systemd's
StateDirectory= makes it for the unit's User=, else the package's user outboxd."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from daemon.configuration.daemonuser import as_the_daemons_user, daemons_group, daemons_user


def test_the_hint_names_the_user_and_group_that_own_the_state_dir(
        tmp_path: Path, made_user: str) -> None:
    """A drop-in sets `User=` to another user than outboxd: systemd gives it the state
    dir, and every hint says `sudo -u` that user (it said outboxd, a user that may not
    exist there), and status's hint names its group."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.chown(state, made_user, made_user)
    assert daemons_user(state) == made_user
    assert daemons_group(state) == made_user
    assert as_the_daemons_user("send", state) == (
        f"run it as the daemon's user (sudo -u {made_user} outboxd send …) or as root")


def test_without_a_state_dir_or_with_one_of_root_the_hint_names_outboxd(
        tmp_path: Path) -> None:
    """No state dir yet (never started), or one root owns (made by hand): the package's
    user, as before."""
    assert daemons_user(tmp_path / "none") == daemons_group(tmp_path / "none") == "outboxd"
    if os.geteuid() == 0:
        assert os.stat(tmp_path).st_uid == 0
        assert daemons_user(tmp_path) == daemons_group(tmp_path) == "outboxd"


def test_a_state_dir_owned_by_an_id_without_a_name_is_named_by_its_id(tmp_path: Path) -> None:
    """A user removed since (or a DynamicUser= not running): `sudo -u '#UID'` still runs
    as it, quoted for the shell (# would start a comment)."""
    if os.geteuid() != 0:
        return
    os.chown(tmp_path, 54321, 54321)
    assert daemons_user(tmp_path) == "'#54321'"
    assert daemons_group(tmp_path) == "54321"


def test_a_folder_refusing_the_daemons_user_is_told_by_its_mode_as_that_user_reads_it(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001 - pytest's MonkeyPatch
    """The daemon runs as its own user, not root: which words a refused write gets rests
    on whether the folder's mode lets that user write — by the owner's bits where it owns
    the folder, the group's where it is in its group, the others' else. Not let: "is not
    writable by" with the chgrp/chmod fix; let (so something else refuses): the
    attribute, ACL or unit path to look at. The user and group, here ids without a name,
    are named by their numbers; a folder that cannot be looked at is said so."""
    import stat

    from daemon.configuration.daemonuser import folder_refusing
    if os.geteuid() != 0:
        return  # the folders are given to the made-up user by chown
    uid, gid, other = 54321, 54322, 54323
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    monkeypatch.setattr(os, "getegid", lambda: gid)
    monkeypatch.setattr(os, "getgroups", lambda: [gid])
    cases = [(uid, other, 0o555, False), (uid, other, 0o700, True),
             (other, gid, 0o750, False), (other, gid, 0o070, True),
             (other, other, 0o775, False), (other, other, 0o003, True)]
    for n, (owner, group, mode, lets) in enumerate(cases):
        folder = tmp_path / f"f{n}"
        folder.mkdir()
        os.chown(folder, owner, group)
        folder.chmod(mode)
        said = folder_refusing(str(folder))
        facts = f"{folder} (owner {owner}, mode {stat.S_IMODE(mode):04o})"
        if lets:
            assert said.startswith(f"{facts} refuses the writes of {uid}, the user outboxd "
                                   "runs as here, though its mode lets it write"), said
        else:
            assert said == (f"{facts} is not writable by {uid}, the user outboxd runs as "
                            f"here — give {uid} write access to it (e.g. chgrp {gid} {folder} "
                            f"&& chmod g+rwx {folder})"), said
    missing = tmp_path / "gone" / "sub"
    assert folder_refusing(str(missing)) == (
        f"{missing.parent} cannot be looked at by {uid}, the user outboxd runs as here — give "
        "it access to that folder and those above it")
