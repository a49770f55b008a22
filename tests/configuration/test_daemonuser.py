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
