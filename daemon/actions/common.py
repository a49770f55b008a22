"""What several commands share: loading the configuration named on the command line, and
the words of their refusals that several say."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

from daemon import logs
from daemon.configuration.config import Settings
from daemon.configuration.config_load import config_path, load_settings
from daemon.configuration.daemonuser import as_the_daemons_user
from daemon.errors import NO_ROOM, NO_ROOM_FIX, ConfigError, LockHeld
from daemon.fs.fdnames import shown_name


def settings_of(args: argparse.Namespace, token: bool = False, outbox: bool = True
                ) -> tuple[Settings, Path]:
    """The settings, with logging set up from their [log]: what pypdf, Pillow or httpx
    say while a command works comes out in the configured format (JSON included), not
    as bare lines. A file that cannot be loaded is cli.main's to report. `token`: only
    for a command that delivers, or checks what delivering needs (run, config --check);
    the others work where the service's token_file cannot be read. `outbox`: refuse an
    outbox that is not there (all but `status`, which reports from the journal)."""
    path = config_path(args.config)
    try:
        settings = load_settings(path, token=token, outbox=outbox)
    except ConfigError as exc:
        if exc.source is None and not args.config and os.environ.get("OUTBOXD_CONFIG"):
            # The file itself cannot be read, and no -c named it: a stale $OUTBOXD_CONFIG
            # in an admin's shell is otherwise a path from nowhere.
            exc.problems = [*exc.problems, "(that file is named by $OUTBOXD_CONFIG in "
                            "this environment; -c FILE names another)"]
        raise
    logs.configure(settings.log)
    return settings, path


def why_not_written(exc: OSError, command: str, state_dir: Path) -> str:
    """Why the outbox took no file of `command` (attach's copy, send's release file),
    with the fix: not "Read-only file system (/proc/self/fd/4/.x.pdf.0a1b2c3d.tmp)", a
    temporary name the admin cannot look up."""
    if exc.errno in NO_ROOM:
        return f"{exc.strerror} — {NO_ROOM_FIX}"
    if isinstance(exc, LockHeld):  # its copy, within 50 ms: not another attach's folder lock
        return f"its copy was {exc.strerror} — stop that process, then {command} again"
    if exc.errno == errno.EWOULDBLOCK:  # folderlocks.LOCK_WAIT_SECONDS
        return (f"{shown_name(exc.filename)} was {exc.strerror} (another {command} into that "
                f"folder still running? `fuser -v` names who holds it) — {command} again once "
                "it is let go")
    if exc.errno == errno.EROFS:
        return f"{exc.strerror} — it is mounted read-only; {command} once it may be written"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{exc.strerror} — {as_the_daemons_user(command, state_dir, group=True)}"
    return f"{exc.strerror or exc} — check the outbox's file system, then {command} again"


def invalid_fate(settings: Settings) -> str:
    """What the daemon does with a bundle with errors, by [policy] invalid, for a refusal
    that says why it spares the admin that: "quarantined" under hold sent them to look in
    quarantine/ for a bundle that stays in the outbox."""
    if settings.policy.invalid == "quarantine":
        return "quarantined"
    return 'held in the outbox, unsent ([policy] invalid = "hold")'
