"""`outboxd status [--json]`: what the journal says (daemon/report/status.py builds it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of
from daemon.configuration.config import Settings
from daemon.configuration.config_folders import outbox_missing
from daemon.journal.readonly import journal_there
from daemon.loop.statelock import running
from daemon.report import status

# Below this, SQLite's next write (a WAL frame, a checkpoint) may not fit.
_ROOM = 1 << 20


def no_room(state_dir: Path) -> str | None:
    """Why the journal cannot be written in state_dir, as far as its file system says:
    read-only, or (nearly) full for the unprivileged user the daemon runs as."""
    try:
        st = os.statvfs(state_dir)
    except OSError:
        return None  # a missing state_dir is the other notes' matter
    if st.f_flag & os.ST_RDONLY:
        return "is on a read-only file system"
    free = st.f_bavail * st.f_frsize
    return f"has only {free // 1024} KB free" if free < _ROOM else None


def outbox_away(settings: Settings) -> str | None:
    """The line for an outbox this command cannot see, or None. The counts are the
    journal's either way; without the outbox an admin must not read "waiting: 3" as
    three files there, nor an empty "nothing sent from these" as a tidy outbox."""
    outbox = settings.outbox.path
    why = outbox_missing(outbox)
    if why is None:
        try:
            with os.scandir(outbox):
                return None
        except OSError as exc:
            why = (f"cannot be listed by this user ({exc.strerror or exc}) — run "
                   "status as the daemon's user (sudo -u outboxd), or check the share's "
                   "mount and permissions")
    return (f"outboxd: the outbox {outbox} {why}. What follows is what the "
            "journal holds; files it lists as waiting may not be in the outbox now")


def run(args: argparse.Namespace) -> int:
    # Not refused without the outbox: a share not mounted is when an admin needs this.
    settings, _ = settings_of(args, outbox=False)
    # First: a state dir this user may not enter ends the command in one line.
    there = journal_there(settings.journal_path, status.RUN_AS)
    away = outbox_away(settings)
    if away:
        print(away, file=sys.stderr)
    if not there:
        # All zeros would look like an idle daemon; a mistyped state_dir is likelier.
        print(f"outboxd: no journal at {settings.journal_path} — outboxd has not run with "
              "this configuration yet, or [paths] state_dir points elsewhere than the "
              "daemon's", file=sys.stderr)
    elif running(settings.paths.state_dir) is False:
        # A stopped daemon's counts read as live ones ("delivering: 6", next tries in
        # the past). On stderr: what --json prints stays as docs/operations.md shows it.
        print(f"outboxd: no outboxd is running with the state dir "
              f"{settings.paths.state_dir}; these are the counts it left — start it "
              "(systemctl start outboxd) for them to move", file=sys.stderr)
    if there and (why := no_room(settings.paths.state_dir)):
        # The daemon logs this once; the counts cannot show it (nothing can be recorded),
        # so they would read as an idle daemon while the outbox fills.
        print(f"outboxd: the state dir {settings.paths.state_dir} {why}: the journal "
              "cannot be written, so nothing in the outbox moves and these counts stay as "
              "they are — free space there (or make it writable); the daemon goes on by "
              "itself", file=sys.stderr)
    data = status.collect(settings)
    view = status.outbox_view(settings, data)
    if args.json:
        # operations.md's keys; the page's files left alone are text only
        print(status.as_json({**data, "lone_folders": status.lone_json(view.lone)}))
    else:
        if away:
            print(away.removeprefix("outboxd: ") + "\n")  # read where the counts are
        print(status.render(data, limit=args.limit, view=view,
                            unattached=settings.policy.unattached))
    return EXIT_OK
