"""`outboxd status [--json]`: what the journal says (daemon/report/status.py builds it)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from daemon.actions import EXIT_FAILED, EXIT_OK
from daemon.actions.common import settings_of
from daemon.claiming.claim import copy_tag
from daemon.claiming.samename import twin_of, twin_words
from daemon.configuration.config import Settings
from daemon.configuration.config_folders import outbox_missing
from daemon.configuration.daemonuser import daemons_user
from daemon.configuration.machine import machine_id, machine_name
from daemon.journal.readonly import OneWait, journal_there
from daemon.journal.records import iso_of
from daemon.loop.statelock import readiness, running
from daemon.report import status, statusjson

T = TypeVar("T")

# How long status waits for the outbox to answer. A share that hangs (a hard NFS mount
# to a file server that is down, a FUSE file system stopped) blocks every look at it for
# as long as it lasts, and not even Ctrl-C ends that look: the journal's counts, which
# are on the local state dir, are what the admin needs then.
ANSWER_SECONDS = 5.0

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
            why = (f"cannot be listed by this user ({exc.strerror or exc}) — run status "
                   f"as the daemon's user (sudo -u {daemons_user(settings.paths.state_dir)})"
                   ", or check the share's "
                   "mount and permissions")
    return (f"outboxd: the outbox {outbox} {why}. What follows is what the "
            "journal holds; files it lists as waiting may not be in the outbox now")


def answered(look: Callable[[], T], seconds: float) -> tuple[bool, T | None]:
    """(True, what look returned) if it returns within seconds, else (False, None): the
    look goes on, on a thread of its own that ends with the command, which a look
    blocked on a share does not stop (the kernel ends it at exit)."""
    got: list[T] = []
    failed: list[BaseException] = []

    def run_look() -> None:
        try:
            got.append(look())
        except BaseException as exc:  # raised again below, on the command's thread
            failed.append(exc)
    thread = threading.Thread(target=run_look, daemon=True, name="status: a look at the outbox")
    thread.start()
    thread.join(seconds)
    if failed:
        raise failed[0]
    return (True, got[0]) if got else (False, None)


def hung(settings: Settings) -> str:
    return (f"outboxd: the outbox {settings.outbox.path} does not answer: a look at it has "
            f"waited {ANSWER_SECONDS:g} s — its share hangs (the file server is down or "
            "cannot be reached, and the mount waits for it): check the server and the "
            "network, then the mount (`mount`, `dmesg`). What follows is what the journal "
            "holds; files it lists as waiting may not be in the outbox now")


def same_name(settings: Settings) -> str | None:
    """The line for another machine's outboxd that runs under this daemon's name
    (samename.py), or None. By this host's clock: status writes nothing on the share."""
    tag, mine = copy_tag(settings.paths.state_dir), machine_id()
    twin = twin_of(settings, tag, mine, probe=False)
    return None if twin is None or twin.retired else \
        twin_words(settings, tag, machine_name(), mine, twin)


def run(args: argparse.Namespace) -> int:
    # Not refused without the outbox: a share not mounted is when an admin needs this.
    settings, _ = settings_of(args, outbox=False)
    # First: a state dir this user may not enter ends the command in one line.
    there = journal_there(settings.journal_path, status.run_as(settings.paths.state_dir))
    # Each remark about the daemon, on stderr and (--json) under "daemon": a monitoring
    # check that reads only the JSON took a stopped daemon, or one whose journal cannot
    # be written, for a quiet one (operations.md, Monitoring).
    notes: list[str] = []

    def note(line: str) -> None:
        print(line, file=sys.stderr)
        notes.append(line.removeprefix("outboxd: "))
    answers, away = answered(lambda: outbox_away(settings), ANSWER_SECONDS)
    if not answers:
        away = hung(settings)
    if away:
        note(away)
    up = running(settings.paths.state_dir) if there else None
    ready, started = readiness(settings.paths.state_dir) if up else (None, None)
    since = None if started is None else iso_of(datetime.fromtimestamp(started, UTC))
    if not there:
        # All zeros would look like an idle daemon; a mistyped state_dir is likelier.
        note(f"outboxd: no journal at {settings.journal_path} — outboxd has not run with "
             "this configuration yet, or [paths] state_dir points elsewhere than the "
             "daemon's")
    elif up is False:
        # A stopped daemon's counts read as live ones ("delivering: 6", next tries in
        # the past).
        note(f"outboxd: no outboxd is running with the state dir "
             f"{settings.paths.state_dir}; these are the counts it left — start it "
             "(systemctl start outboxd) for them to move")
    elif ready is False:
        # Held, but stuck before READY=1 (a start waiting on a share, one systemd keeps
        # restarting): read as `running: true` with no note, a monitoring check said OK.
        note(f"outboxd: outboxd started at {since or 'an unknown time'} but is not ready "
             "yet — nothing is sent until it is: a start reads back sent/ and lists the "
             "outbox first, which may take minutes; longer, it waits on something "
             "(`systemctl status outboxd` and `journalctl -u outboxd` say on what)")
    if answers:
        # Why a daemon here does not start, and whose the work folders of its name are.
        _, twin = answered(lambda: same_name(settings), ANSWER_SECONDS)
        if twin:
            note(f"outboxd: {twin}")
    if there and (why := no_room(settings.paths.state_dir)):
        # The daemon logs this once; the counts cannot show it (nothing can be recorded),
        # so they would read as an idle daemon while the outbox fills.
        note(f"outboxd: the state dir {settings.paths.state_dir} {why}: the journal "
             "cannot be written, so nothing in the outbox moves and these counts stay as "
             "they are — free space there (or make it writable); the daemon goes on by "
             "itself")
    wait = OneWait()  # a journal held locked is waited for once, not at each look
    data = status.collect(settings, wait)
    view: status.OutboxView | None = None
    if answers:
        # It answered just now, but a share can begin to hang at any look.
        answers, view = answered(lambda: status.outbox_view(settings, data, wait),
                                 ANSWER_SECONDS)
        if not answers:
            away = hung(settings)
            note(away)
    if view is None:
        view = status.OutboxView([], [], {}, unlisted=(away or "").removeprefix("outboxd: "))
    if view.unlisted and not away:  # gone since it answered: said as the rest
        note(f"outboxd: {view.unlisted}")
    if view.unread:
        note(f"outboxd: {view.unread}")
    if args.json:
        # operations.md's keys; the page's files left alone are text only. An empty
        # lone_folders must not read as "none" when the outbox was not seen: a script
        # reads stdout, and stderr's line may go nowhere (cron, a pipe).
        unseen = (away or "").removeprefix("outboxd: ") or view.unlisted
        print(statusjson.as_json({**data, "lone_folders": statusjson.lone_json(view.lone),
                              "foreign_work_folders": statusjson.foreign_json(view.foreign),
                              "outbox_listed": not unseen, "outbox_problem": unseen or None,
                              "daemon": {"running": up, "ready": ready, "started": since,
                                         "notes": notes}}))
    else:
        if away:
            print(away.removeprefix("outboxd: ") + "\n")  # read where the counts are
        print(status.render(data, limit=args.limit, view=view,
                            unattached=settings.policy.unattached))
    # What could be read is shown; the exit says the journal could not be read whole.
    return EXIT_FAILED if view.unread else EXIT_OK
