"""Another machine's outboxd under this daemon's name: a new server that keeps the old
one's short host name and state dir path (both /var/lib/outboxd) is HOST-OWNER as the
old one is, and names its work folders alike (workname.py). Started on a new journal
while the old daemon ran, it took the old one's live work folders for those its lost
journal left (`whose`: this host, this state dir, a process not running here) and put
their bundles back into the outbox: one was quarantined as a duplicate of itself.

So before a daemon writes its settings fingerprint at its start it reads the one of its
own name (deciding.py, which names the machine that wrote it). Written by another
machine and renewed within the day that tells a daemon probably retired: that daemon
runs, and this one does not start (NameInUse, exit 1: systemd tries again, and once the
other stops cleanly its file goes). Not started rather than started with that name's
folders left alone: the name is also its partial copies' into sent/ (fsmove.partial_name,
where a copy of the other's would be taken for a leftover of ours), its fingerprint
(each would overwrite and at a stop remove the other's), and a later start on a journal
lost again would judge the folders by a fingerprint that is ours by then. New claims of
the two could not collide (PID and 6 random hex digits, made by a mkdir that refuses a
name taken), but the rest is the name's alone. Older than a day: the other server is
taken for retired, said at warning, and the name taken over.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from daemon import logs
from daemon.claiming.workname import named_for
from daemon.configuration.config import Settings
from daemon.configuration.deciding import (
    FOLDER,
    RETIRED_AFTER,
    Deciding,
    utc_of,
    written_by,
)
from daemon.errors import InputError, NameInUse
from daemon.fs.fsops import folder_below, folder_within
from daemon.fs.fswrite import held_path, written_temp
from daemon.names import printable

_SHOWN = 64  # characters of another machine's name and id shown: a full host name's 64
RETIRED_TWIN = ("the settings fingerprint under this daemon's name was written by outboxd on "
                "another machine, which has not renewed it for over a day: that daemon "
                "probably runs no more, and this one takes the name over")

# The other machine has our full host name too: most likely this very server, rebuilt or
# restored with a new machine-id after it died without a clean stop, for which the day's
# wait is a day without invoices sent unless the admin is told that this is that case.
_REBUILT = (". The other machine has this one's full host name: if this server was rebuilt "
            "or reinstalled (a new /etc/machine-id) after the old one died, no daemon runs "
            "there — remove {file} and start outboxd again")


@dataclass(frozen=True)
class Twin:
    """Another machine's fingerprint under our name."""

    file: Path
    machine: str  # its full host name, as it wrote it
    machine_id: str  # as deciding writes it (machine.machine_id)
    renewed_at: str  # UTC
    retired: bool  # not renewed for over a day (RETIRED_AFTER)


def twin_of(settings: Settings, tag: str, machine: str, probe: bool = True) -> Twin | None:
    """Another machine's fingerprint of the name `tag` (HOST-OWNER); None for none, one
    of `machine`'s (ours, left by a kill) or of a build before machines were named.
    Whether it is over a day old is told by the share's clock (`probe`: a temp file made
    beside it, as the renewals are compared), else (`outboxd status`, which writes
    nothing on the share; a folder we cannot write in) by ours."""
    name = f"{tag}.json"
    with contextlib.suppress(OSError, InputError), \
            folder_below(settings.outbox.path, "/".join(FOLDER)) as fd:
        written = written_by(fd, name)
        if written is None or written[0] == machine:
            return None
        mtime = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime_ns
        now = (_share_now(fd, name) if probe else None) or time.time_ns()
        # Shown as read, but cut: anyone on the share may write there (the file's owner
        # tells an admin who, and the fix names it to remove).
        return Twin(settings.outbox.path.joinpath(*FOLDER, name), printable(written[1][:_SHOWN]),
                    printable(written[0][:_SHOWN]), utc_of(mtime),
                    now - mtime > RETIRED_AFTER * 10**9)
    return None


def check_name(settings: Settings, deciding: Deciding) -> None:
    """At the start, before our fingerprint is written: NameInUse where another
    machine's daemon of our name runs; one probably retired is said and taken over."""
    twin = twin_of(settings, deciding.tag, deciding.machine)
    if twin is None:
        return
    if twin.retired:
        logs.get().warning(RETIRED_TWIN, file=str(twin.file), other_machine=twin.machine,
                           renewed_at=twin.renewed_at, machine=deciding.machine_name,
                           fix=f"if outboxd on {twin.machine} still runs on this outbox, "
                           "stop one of the two now and give each server its own short "
                           "host name or its own [paths] state_dir")
        return
    raise NameInUse(twin_words(settings, deciding.tag, deciding.machine_name, deciding.machine,
                               twin),
                    source=str(twin.file))


def twin_words(settings: Settings, tag: str, here: str, mine: str, twin: Twin) -> str:
    """What NameInUse and `outboxd status` say: both machines, the folder, the fix."""
    processing = settings.processing_dir
    host, owner = tag.rsplit("-", 1)
    count = _named_for(settings, owner)
    held = f"{count} now" if count is not None else "cannot be listed now"
    return (f"outboxd on the machine {twin.machine} (machine {twin.machine_id}) runs on this "
            f"outbox under this daemon's name {tag} (its settings fingerprint {twin.file}, "
            f"renewed at {twin.renewed_at}): the same short host name {host} and the same "
            f"state dir path {settings.paths.state_dir} as this machine, {here} (machine "
            f"{mine}). Its work folders in "
            f"{processing} (NAME--ID--{host}-PID-{owner}…, {held}) are named as this "
            "daemon's own: none is taken over, put back or removed, and outboxd does not "
            f"start here while that daemon runs. Fix: give each server its own short host "
            "name (hostnamectl hostname) or its own [paths] state_dir; for a move to this "
            f"server, stop outboxd on {twin.machine} (a clean stop removes its "
            "fingerprint, and systemd's next try starts this one). If outboxd on "
            f"{twin.machine} runs no more (killed, its server off), remove {twin.file}"
            + (_REBUILT.format(file=twin.file) if twin.machine == here else ""))


def _named_for(settings: Settings, owner: str) -> int | None:
    """How many work folders in processing/ carry our name; None where it cannot be
    listed. Never through a link in the outbox (as foreign.py lists them)."""
    try:
        with folder_within(settings.outbox.path, settings.processing_dir) as fd, \
                os.scandir(fd) as it:
            return sum(1 for e in it if named_for(e.name, owner))
    except (OSError, InputError):
        return None


def _share_now(fd: int, name: str) -> int | None:
    """The share's time now: the mtime of a temp file made in the folder open at `fd`
    (a dot-name, which no daemon reads as a fingerprint), removed at once."""
    try:
        with written_temp(held_path(fd) / name, b"", False, None) as (tmp, tmp_fd):
            now = os.fstat(tmp_fd).st_mtime_ns
        os.unlink(tmp)
    except OSError:
        return None
    return now
