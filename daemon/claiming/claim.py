"""Claim: move a bundle out of the outbox into a processing folder of our own.

The rename of the invoice file is the claim: on one file system exactly one
rename of a name succeeds, so several daemons (several hosts on one share)
can watch the same outbox and only one of them sends a bundle. The check after the
renames is claimcheck.py's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from daemon.bundle import Bundle, Finding
from daemon.claiming.workname import OWNER_LEN, host_tag
from daemon.configuration.config import Settings
from daemon.errors import ClaimLost, InputError, NothingClaimed, describe
from daemon.fs.fsops import opened_from
from daemon.fs.fswrite import fsync_dir, held_path, rename_noreplace
from daemon.fs.workfolder import (
    held_folder,
    hold_folder,
    made_in_processing,
    maybe_there,
    still_at,
    still_held,
    there,
)
from daemon.names import NAME_MAX, fit_bytes, printable
from daemon.reading.match import assemble
from daemon.watching.scan import Candidate

T = TypeVar("T")


def owner_of(state_dir: Path) -> str:
    """Which daemon of this host claimed a work folder: 6 hex of its state dir's path.

    Host and pid alone do not tell two daemons of one host apart (each has its own
    state dir and journal) once the claimer's process is gone: the other one took its
    folders for its own and called them copies no daemon left. The path, not something
    kept inside the state dir, so that a journal lost with its state dir's contents
    still finds the folders its daemon left."""
    return hashlib.sha256(os.fsencode(os.path.abspath(state_dir))).hexdigest()[:OWNER_LEN]


def copy_tag(state_dir: Path) -> str:
    """This daemon as its copies under way into the archive are named (fsmove.partial_name):
    HOST-OWNER, as its work folders name it but without the pid, so that it finds its own
    copy again after a crash. The host too: two hosts on one share may both keep their
    state in the default /var/lib/outboxd."""
    return f"{host_tag()}-{owner_of(state_dir)}"


def work_dir_for(processing: Path, name: str, bundle_id: str, owner: str = "") -> Path:
    """A folder only this daemon uses: NAME--BUNDLEID12--HOST-PID-OWNERRANDOM, OWNER
    being owner_of(its state dir) ("" in tests of one daemon; folders of outboxd before
    it have a RANDOM of 6 only).

    NAME is shortened when the whole would not fit in one path component (an
    invoice file name of ~226 bytes or more); the invoice file keeps its full
    name inside the folder, and the journal keeps the folder's real name.
    """
    tail = f"--{bundle_id[:12]}--{host_tag()}-{os.getpid()}-{owner}{uuid.uuid4().hex[:6]}"
    return processing / (fit_bytes(name, NAME_MAX - len(os.fsencode(tail))) + tail)


def moved_candidate(cand: Candidate, work: Path) -> Candidate:
    """The same bundle, as it lies inside its work folder after the claim."""
    return Candidate(cand.name, work / cand.invoice.name, work / cand.sidecar.name,
                     work / cand.marker.name)


@contextmanager
def held_work(bundle: Bundle, within: Path | None = None) -> Iterator[Bundle]:
    """The claimed bundle, its files found below its work folder held open while the
    block runs (fsops.opened_from): the work folder held as every step after the claim
    holds it (workfolder.hold_folder), each folder below it opened with O_NOFOLLOW. Opened by
    its path at each file, a work folder swapped for a link after the check would have
    had the delivery read, and send, what the link leads to. HostileInput naming the
    invoice file and the work folder when that is a link (the bundle is
    processing-damaged). `within`: the outbox (see hold_folder: `.outboxd` made a link)."""
    work = bundle.invoice_file.path.parent
    with held_folder(work, bundle.invoice_file.name, within) as fd, opened_from(work, fd):
        yield bundle


def read_in_place(work: Path, read: Callable[[], T], within: Path | None = None) -> T:
    """What `read` reads of the claimed bundle in `work` by its paths (in the readers,
    which no descriptor of ours reaches: a bundle read again after a restart), the work
    folder held meanwhile: never a link when the read begins, and still that folder when
    it ends. Else OSError naming it (processing-damaged; its quarantine refuses a link).
    `within`: the outbox (see hold_folder)."""
    with held_folder(work, within=within) as held:
        got = read()
        still_held(work, held)
        return got


def _parts(cand: Candidate, with_marker: bool, companions: Sequence[Path] = ()) -> list[Path]:
    # `there`: a look that fails but for ENOENT (a share's EIO, ESTALE or timeout) raises.
    # Taken for "not there", a sidecar that the share hid for a moment stayed behind, and
    # the invoice file went out without its attachments (the check by hashes reads the
    # work folder, where they were not). Raised after the invoice file's rename, the
    # claim is undone and tried again once it has settled.
    parts = [cand.invoice]
    if there(cand.sidecar):
        parts.append(cand.sidecar)
    if with_marker and there(cand.marker):
        parts.append(cand.marker)
    # Files that travel with the bundle into the archive, e.g. NAME.send-anyway.
    parts += [p for p in companions if there(p)]
    return parts


def claim(cand: Candidate, work: Path, with_marker: bool, companions: Sequence[Path] = (),
          held_open: list[tuple[Path, int]] | None = None) -> Candidate:
    """Move invoice file, then sidecar and marker into `work`; ClaimLost if we lost the race,
    NothingClaimed if it failed before any file left the outbox (another OSError: after).

    `held_open` leaves the folder syncs to the caller, who claims several bundles and
    syncs each folder once (`sync_claimed`) before any effect follows: the work folder
    claimed is added to it still held, the caller's to sync through and close.
    """
    try:
        # Made in the processing folder reached from the outbox, held from here on, and
        # every part renamed into the folder held (dst_dir_fd), never by `work`'s path:
        # a work folder a user of the share swapped for a link meanwhile would have had
        # the invoice file renamed out of the outbox to where the link leads (so too a
        # `.outboxd` made a link, behind which the folder would have been made).
        held = made_in_processing(work, within=cand.invoice.parent)
    except OSError as exc:
        raise NothingClaimed(exc) from exc
    kept = False
    try:
        try:
            os.rename(cand.invoice, cand.invoice.name, dst_dir_fd=held)
        except OSError as exc:
            if not _renamed_all_the_same(held, cand.invoice.name, exc):
                _remove_if_ours(work, held)  # ours and still empty: nothing was claimed
                if isinstance(exc, FileNotFoundError):
                    raise ClaimLost(f"{cand.invoice.name} was taken by someone else") from None
                raise NothingClaimed(exc) from exc
        # The work folder is ours and new: it holds the invoice file only, so nothing of
        # the rest can be there already (no look per part, as recovery needs).
        finish_claim(cand, held, with_marker, companions, fresh=True)
        # Moved away with the bundle in it, a link or another folder in its place: the
        # bundle is safe where the folder went, and nothing is done through the name
        # (the caller's undo finds it stuck; its quarantine refuses the link).
        still_held(work, held)
        if held_open is None:
            sync_claimed([(work, held)], cand.invoice.parent)
        else:
            held_open.append((work, held))
            kept = True
    finally:
        if not kept:
            os.close(held)
    return moved_candidate(cand, work)


def _renamed_all_the_same(held: int, name: str, failed: OSError) -> bool:
    """Whether the failed rename of the invoice file `name` into the folder at `held`
    happened all the same (a network share's, sent again after its answer was lost: the
    second finds the name gone, ENOENT): it is then in our new folder, and the claim goes
    on — taken for nothing claimed, the row ended, the file left in a folder no row
    named. A look that fails cannot tell: `failed` raised as after a move (its undo looks)."""
    try:
        return in_folder(held, name)
    except OSError:
        raise failed from None


def _remove_if_ours(work: Path, held: int) -> None:
    with contextlib.suppress(OSError):
        if still_at(work, held):
            work.rmdir()


def finish_claim(cand: Candidate, held: int, with_marker: bool,
                 companions: Sequence[Path] = (), fresh: bool = False) -> None:
    """Move what is still in the outbox into the work folder open at `held` (renamed into
    it by descriptor, never through the folder's path); also used by recovery after a
    crash mid-claim (a part already in the work folder stays; `fresh`: the claim just
    made it). The caller syncs."""
    for part in _parts(cand, with_marker, companions)[1:]:
        if fresh or not in_folder(held, part.name):
            os.rename(part, part.name, dst_dir_fd=held)


def in_folder(held: int, name: str) -> bool:
    """Whether the folder open at `held` has an entry `name` (a link counts, unfollowed)."""
    try:
        os.stat(name, dir_fd=held, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def sync_claimed(claimed: Sequence[tuple[Path, int]], outbox: Path) -> None:
    """Make claims durable: each work folder (at its path, held at its descriptor) through
    the descriptor, the very folder the parts were renamed into, whatever its name has
    become since; the folder(s) holding them (their new names), and the outbox they
    left, once."""
    for _work, held in claimed:
        os.fsync(held)
    for folder in [*dict.fromkeys(work.parent for work, _held in claimed), outbox]:
        fsync_dir(folder)


def taken_meanwhile(cand: Candidate) -> bool:
    """The invoice file left the outbox while we read its bundle: another daemon's claim
    (the rename of the invoice file comes first), or a person took it back. Not when the
    look fails otherwise (a share's EIO, ESTALE): os.path.lexists took that for "gone",
    and a read that the same blink failed was said as another daemon's claim, with no
    error and no second read, the bundle left settling for good."""
    return not maybe_there(cand.invoice)  # cannot tell: the read's own error says why


LEFTOVER = ".outboxd-put-back"
"""The mark an unclaim leaves in a work folder it emptied but could not remove: the
orphan sweep removes such a folder once it is empty and never puts what is in it (files
someone dropped in after the bundle went back) into the outbox as a bundle."""


@dataclass(frozen=True)
class Unclaimed:
    """What an unclaim did. `stuck`: names that could not go back (the bundle is
    quarantined where it lies); `[work.name]` when the work folder itself could not be
    used (a link or another folder in its place). `leftover`: every file went back, only
    the emptied work folder could not be removed (why): the bundle settles again."""

    stuck: list[str]
    leftover: str | None = None


def unclaim(cand: Candidate, work: Path) -> Unclaimed:
    """Put a claimed bundle back into the outbox.

    Never replaces: if someone dropped a new file under the same name in the
    meantime, ours stays in the work folder and the caller decides.
    """
    try:
        # Listed and moved from the work folder held, never through a link a user of the
        # share put in its place: its files are not ours to bring into the outbox. Such
        # a bundle stays (all of it "stuck": quarantined, whose move refuses the link).
        # Nor through `.outboxd` made a link (the outbox is the invoice file's folder).
        held = hold_folder(work, within=cand.invoice.parent)
    except OSError:
        return Unclaimed([work.name])
    try:
        return _put_back(cand, work, held)
    finally:
        os.close(held)


def _put_back(cand: Candidate, work: Path, held: int) -> Unclaimed:
    here = held_path(held)
    # `there`: a look the share fails (EIO) raises, and the undo waits (stranded.py).
    # os.path.lexists took it for "no new invoice file": the sidecar went back first and
    # joined a new invoice file dropped under the name; and a file of the work folder it
    # could not look at was passed over, left in a folder the undo then called emptied.
    if there(cand.invoice):
        # A new invoice file of the same name arrived: keep our whole bundle
        # together (its sidecar must not go back and join the new invoice).
        return Unclaimed(sorted(os.listdir(held)))
    stuck: list[str] = []
    # Sidecar, marker and companions (a release file) first, invoice last: the
    # bundle is complete in the outbox again at the moment its invoice file reappears.
    others = [n for n in sorted(os.listdir(held)) if n != cand.invoice.name]
    for name in [*others, cand.invoice.name]:
        src = here / name
        if not there(src):
            continue
        try:
            rename_noreplace(src, cand.invoice.parent / name)
        except FileExistsError:
            stuck.append(name)
    fsync_dir(cand.invoice.parent)
    if stuck:
        return Unclaimed(stuck)
    try:
        still_held(work, held)
        work.rmdir()
    except OSError as exc:
        # The bundle is back in the outbox (synced just now): only the folder is left,
        # a file dropped into it after the listing, or a link swapped in for it. Marked
        # (when it is still ours at that name) so that the orphan sweep never takes what
        # is in it for a claimed bundle; a link in its place the sweep never looks into.
        with contextlib.suppress(OSError):  # unmarked: swept as any claim's folder is
            if still_at(work, held):
                _mark_leftover(held)
        return Unclaimed([], leftover=exc.strerror or str(exc))
    return Unclaimed([])


def log_leftover(log: Any, work: Path, why: str) -> None:
    log.warning("bundle put back into the outbox; its emptied work folder could not be "
                "removed and is left to the next rescan", work_dir=str(work), error=why)


def _mark_leftover(held: int) -> None:
    mark_work_folder(held, LEFTOVER)


def mark_work_folder(held: int, name: str) -> None:
    """An empty file `name` made in the work folder open at `held` (there already: kept),
    durable: a mark a later look at the folder goes by."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o640, dir_fd=held))
    os.fsync(held)


def stuck_in_work_folder(invoice_file: str, work: Path, log: Any) -> Finding:
    """Why a bundle cannot go back when its work folder itself could not be used (unclaim
    gave `[work.name]`: a link or another folder in its place); logged at error. The
    bundle lies wherever the folder went; its quarantine refuses the link and is retried
    until a person puts the folder back."""
    what = "is a symbolic link" if os.path.islink(work) else \
        "is no longer the folder outboxd claimed"
    log.error(f"work folder {what}; the bundle is reported stuck", work_dir=str(work),
              fix="put the bundle's folder itself back under this name")
    return Finding("processing-damaged", invoice_file, f"its work folder {work.name} {what} "
                   "since it was claimed; outboxd never moves a bundle through one — put the "
                   "bundle's folder itself back under that name in the processing folder")


def changed_during_claim(invoice_file: str, stuck: list[str]) -> Finding:
    """Why a claimed bundle that changed cannot go back: unclaim() found new files of its
    names in the outbox."""
    return Finding("changed-during-claim", invoice_file, f"while this bundle was being "
                   f"claimed, new files named {', '.join(stuck)} appeared in the outbox; this "
                   "is the earlier version — compare the two and move the right one back into "
                   "the outbox")


def not_moved(exc: OSError) -> str:
    """Why a claim could not move a bundle, for `status` and the page on the share."""
    if isinstance(exc, PermissionError) and exc.filename:
        # Moving a folder to another folder rewrites its "..": Linux asks for write
        # access to the folder itself, which one copied in by another user may not give.
        return (f"cannot move {printable(Path(exc.filename).name)} into processing: "
                "permission denied — outboxd's user needs write access to the outbox and "
                "to the bundle's folders themselves (a folder copied in by another user "
                "keeps that user's permissions; a sticky bit on an outbox outboxd does not "
                "own lets only the owner of a file move it)")
    return f"cannot move into processing: {describe(exc, writing=True)}"


def assemble_here(jobs: list[tuple[Candidate, Bundle]], settings: Settings
                  ) -> list[Bundle | BaseException]:
    """match.assemble(cand, known=bundle) for each, in this thread."""
    out: list[Bundle | BaseException] = []
    for cand, known in jobs:
        try:
            out.append(assemble(cand, settings, known=known))
        except (InputError, OSError) as exc:
            out.append(exc)
    return out
