"""Work folders in the processing folder that another host's outboxd claimed
(`NAME--ID12--HOST-PID-OWNERRAND`, workname.py, HOST not this one's): found for
the status page and `outboxd status`, with what to do.

No daemon takes another host's work folder over (orphans.py): only that host's journal
knows whether the receiver has its bundle. While that daemon runs on the same outbox it
finishes them. But an outbox moved here from that host without its journal (a new
server) keeps them for good, and a bundle in one is never sent while nobody sees it:
so each is listed, saying both cases and, for the second, the fix by what it holds.
Names and an lstat of two papers only: nothing in such a folder is opened or changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from daemon.claiming.workname import host_tag, work_host, work_stem
from daemon.errors import InputError
from daemon.fs.fsops import FOLDER_NOFOLLOW, NOT_THE_FILES_FAULT, folder_within
from daemon.names import printable
from daemon.watching.lonefolders import since


@dataclass(frozen=True)
class Foreign:
    name: str  # the work folder's name, as shown
    host: str  # the host its name carries, as shown
    why: str
    # Its ctime (set when the claim renamed it in), as the journal writes times: one
    # under way is seconds old, one an outbox moved here left is as old as the move, and
    # the clerk and the admin tell them apart by it.
    since: str


def foreign_work(processing: Path, outbox: Path) -> list[Foreign]:
    """The folders in `processing` named as another host's work folders, by name; none
    where it cannot be listed (not made yet, a share away: the outbox's own lines say
    that). Where `processing` lies in `outbox` (by default `.outboxd/processing`), no
    link on the way there is followed: anyone on the share may put `.outboxd` back as a
    link to another folder, whose names the page would then show."""
    here = host_tag()
    found: list[Foreign] = []
    try:
        with folder_within(outbox, processing) as fd:
            with os.scandir(fd) as it:
                entries = [e for e in it if not e.name.startswith(".")
                           and e.is_dir(follow_symlinks=False)]
            for entry in entries:
                host, stem = work_host(entry.name), work_stem(entry.name)
                if host is None or stem is None or host == here:
                    continue
                try:
                    changed = entry.stat(follow_symlinks=False).st_ctime_ns
                    # Not listed this time when its papers cannot be looked at (a share's
                    # EIO): taken for none, a delivered bundle's folder was given the
                    # fix "move its files into the outbox", which sends it again.
                    papers = _papers(fd, entry.name)
                except OSError:
                    continue  # finished and gone since the listing
                found.append(Foreign(printable(entry.name), printable(host),
                                     _why(papers, printable(host), printable(stem)),
                                     since(changed)))
    except (OSError, InputError):
        return []
    return sorted(found, key=lambda f: (f.since, f.name))


def _papers(processing: int, name: str) -> set[str]:
    """Which of receipt.json and reason.json the work folder `name` of the folder open at
    `processing` holds; reached from it, never through a link (one swapped in for the
    folder since the listing would tell what lies elsewhere)."""
    try:
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=processing)
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            raise
        return set()
    try:
        return {p for p in ("receipt.json", "reason.json")
                if _lexists(fd, p)}
    finally:
        os.close(fd)


def _lexists(folder: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _why(papers: set[str], host: str, name: str) -> str:
    if "receipt.json" in papers:
        fix = ("it was delivered (it holds receipt.json): move the folder into sent/ to "
               "keep its receipt with the others; do not put its files back, they would "
               "be sent again")
    elif "reason.json" in papers:
        fix = ("it was being quarantined (it holds reason.json, which says why): move the "
               "folder into quarantine/ beside the others")
    else:
        fix = ("to send it, move its files into the outbox (the sidecar folder first, the "
               "invoice file last), then remove the folder; if that host had sent it "
               "already, the receiver recognises it by its bundle id")
    return (f"work folder of host {host}, not ours: outboxd on {host} took {name} for "
            f"sending and has not finished it. If outboxd on {host} still runs on this "
            f"outbox, it finishes it (its own status lists it): nothing to do. If not (the "
            f"outbox moved here from {host}), it is never sent from here — {fix}")
