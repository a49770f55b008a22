"""Work folders in processing/ that no journal row knows (a lost journal, a share that
went away in the middle of a claim): found and finished, never left there unseen.

A work folder is ours when its HOST-PID-OWNER tag names this host, a process that is
not running any more (or us) and our state dir (workname.whose): folders of another
daemon on this host or on another host of the share are that daemon's business (one
of this host whose process is gone is named once in a warning: it waits for that
daemon to start again). What is in it decides:

- receipt.json: the receiver took it and the journal lost the rest → archive it
  in sent/ and record it as sent;
- reason.json: it was being quarantined → finish the move into quarantine/;
  either waits (one warning) while that folder is off the mount it was on at the
  start (foldermounts.py): its share unmounted, the bare mount point would take it;
- otherwise: a claim that never reached the journal's next step → the files go
  back into the outbox (never replacing anything there) and are read again.
  A bundle sent before is then a duplicate (the journal or sent/ knows its id).

The papers are read from the work folder held, through fsops.read_regular: a
receipt.json or reason.json that is a FIFO, link or device is never opened (a FIFO
would block the sweep forever) and the folder is left for a person, with one error line: outboxd
writes its papers only as regular files, so what the folder means is unknown.

Only a journal lost can leave a bundle of ours in a work folder no row names: every
claim names its folder in the journal before it makes it, and a row leaves a folder
only once that is archived, emptied or marked (claim.LEFTOVER; kept.KEPT: files put
into it while it was copied into the archive on another file system, kept there). So
the above is done only for the folders that were there when a journal made afresh was
first swept (the lost journal's, `Orphans`). Any other folder of our name that no row
knows was put there by a person (a backup restored, a copy): nothing in it is sent, archived or
moved, and one error line names it. An empty work folder (a failed claim's whose
removal failed too) holds nothing to lose and is removed.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.archive import drop_archived, entry_name, move_into_place
from daemon.archiving.archive_papers import reason_of
from daemon.archiving.kept import KEPT, disowned, kept_for, mark_kept
from daemon.archiving.papers import PAPER_NAMES
from daemon.archiving.readback import record_of
from daemon.claiming.claim import (
    LEFTOVER,
    copy_tag,
    in_folder,
    moved_candidate,
    owner_of,
    unclaim,
)
from daemon.claiming.keptfolder import (
    files_below,
    names_its_bundle,
    record_quarantined,
    remove_folders_below,
)
from daemon.claiming.leftcopies import drop_copies_left
from daemon.claiming.workname import OURS, SIBLING, has_owner, whose
from daemon.configuration.config import Settings
from daemon.errors import HostileInput, InputError, OutboxdError, in_words
from daemon.fs.fsops import NOT_THE_FILES_FAULT, folder_within
from daemon.fs.fswrite import held_path
from daemon.fs.temps import drop_unfinished
from daemon.fs.workfolder import held_folder, not_the_folder, still_held
from daemon.journal import IN_FLIGHT, Journal, journal_time
from daemon.names import stem
from daemon.watching.foldermounts import FolderMounts
from daemon.watching.scan import candidate_for, is_invoice_file

_reported: set[Path] = set()  # work folders whose problem was logged (swept every rescan)
_waiting: set[Path] = set()  # work folders waiting for sent/ or quarantine/ to be back (_waits)
_unanswered: set[Path] = set()  # work folders a look the share failed keeps (Orphans.sweep)

CANNOT_FINISH = "work folder unknown to the journal cannot be finished; will try again"


def _once(work: Path, emit: Any, event: str, **fields: Any) -> None:
    if work not in _reported:
        _reported.add(work)
        emit(event, **fields)


def _invoice_in(held: int, settings: Settings) -> str | None:
    names = [e.name for e in os.scandir(held) if e.is_file(follow_symlinks=False)
             and is_invoice_file(settings.outbox, e.name, settings.share)]
    return names[0] if len(names) == 1 else None


class Orphans:
    """The sweep of one daemon run, which knows the work folders a lost journal left:
    those found at its first sweep on a journal made afresh (Journal.afresh)."""

    def __init__(self) -> None:
        self._inherited: set[Path] | None = None  # None: not swept yet

    def sweep(self, journal: Journal, settings: Settings, mounts: FolderMounts,
              waiting: Collection[int] = ()) -> int:
        """Finish every orphaned work folder of ours; how many were handled. `mounts`:
        the running configuration's (Finisher.mounts), so that nothing is archived in a
        sent/ or quarantine/ whose share is away. `waiting`: MovedWork.unfollowed, rows
        whose moved work folder is theirs under its name here."""
        log = logs.get()
        processing = settings.processing_dir
        try:
            # Never through a link in the outbox: a `.outboxd` put back as a link to another
            # folder had its folders named as ours archived or put into the outbox.
            with folder_within(settings.outbox.path, processing) as fd, \
                    os.scandir(fd) as listing:
                names = [e.name for e in listing
                         if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
        except HostileInput as exc:
            _once(processing, log.error, "processing folder reached through a link; no "
                  "work folder in it is finished until the folder itself is back",
                  folder=str(processing), error=str(exc))
            return 0
        except (OSError, InputError):
            return 0  # not made yet, the share away: the next rescan looks again
        _reported.discard(processing)  # reached again: said anew if it is lost again
        if self._inherited is None:
            self._inherited = {processing / n for n in names} if journal.afresh else set()
        if not names:
            return 0  # the usual case: no journal query at all
        known = {str(processing / Path(row.work_dir).name) if row.id in waiting
                 else row.work_dir for row in journal.rows(IN_FLIGHT) if row.work_dir}
        handled = 0
        owner = owner_of(settings.paths.state_dir)
        for name in names:
            work = processing / name
            if str(work) in known:
                continue
            kind = whose(name, owner)
            if kind == SIBLING:
                # Its journal knows it (ours cannot tell a bundle it delivered from one it
                # did not): finished when that daemon starts again, never by us. Only the
                # process that named the folder is known to be gone: that daemon may run
                # again already, under another pid, and be finishing it (the name's 6 hex
                # digits of its state dir do not lead to that dir, nor to its lock).
                pid = name.rsplit("--", 1)[1].rsplit("-", 2)[1]
                _once(work, log.warning, f"work folder of another outboxd on this host (its "
                      f"own state dir), left by process {pid}, which is no longer running: "
                      "left for the outboxd of that state dir, which finishes the bundle "
                      "when it runs (it may run again already, under another process id); "
                      "if it is not to run again, start it once so that it does",
                      work_dir=str(work))
                continue
            if kind != OURS:
                continue
            if not os.path.lexists(work):
                # Archived (or put back) by our own delivery since the listing: a row
                # leaves flight only once its folder has left, so the journal asked after
                # the listing knew it no more. Gone, not an orphan.
                continue
            try:
                done = _finish(journal, settings, mounts, work, work in self._inherited)
            except OSError as exc:
                if exc.errno not in NOT_THE_FILES_FAULT:
                    _once(work, log.error, CANNOT_FINISH, work_dir=str(work),
                          error=in_words(exc))
                elif work not in _unanswered:
                    # Said once while it lasts, the folder not marked said (_reported): a
                    # kept folder is compared with its entry once a run (_kept), and a
                    # look the share failed had its own files kept, said to be in no
                    # entry, until a restart.
                    _unanswered.add(work)
                    log.error(CANNOT_FINISH, work_dir=str(work), error=in_words(exc))
                continue
            except (ValueError, KeyError, OutboxdError) as exc:
                _once(work, log.error, CANNOT_FINISH, work_dir=str(work), error=in_words(exc))
                continue
            _unanswered.discard(work)
            if done:
                # Gone from processing/: a folder of that name put there later is not it.
                self._inherited.discard(work)
            handled += done
        return handled


def sweep(journal: Journal, settings: Settings, mounts: FolderMounts | None = None) -> int:
    """One sweep of a run of its own: as the first sweep of a daemon on `journal`."""
    return Orphans().sweep(journal, settings, mounts or FolderMounts(settings))


def _finish(journal: Journal, settings: Settings, mounts: FolderMounts, work: Path,
            inherited: bool) -> int:
    # Held while it is cleaned, read and moved, never through a link a user of the share
    # put in its place or `.outboxd`'s after the listing (OSError naming it: sweep logs
    # it, looks again): what the link leads to is neither removed, read as ours, nor moved.
    with held_folder(work, within=settings.outbox.path) as held:
        return _finish_held(journal, settings, mounts, work, held, inherited)


def _finish_held(journal: Journal, settings: Settings, mounts: FolderMounts, work: Path,
                 held: int, inherited: bool) -> int:
    if in_folder(held, LEFTOVER):
        return _leftover(work, held)
    entry = kept_for(held)
    # A mark the folder's own paper shows is not ours (a share user's): as if unmarked.
    if entry is not None and not disowned(held, (settings.sent_dir, settings.quarantine_dir)):
        if inherited and entry:
            record_quarantined(journal, settings, work, Path(entry))
        return _kept(work, held, entry, settings)
    if inherited:
        # The one killed may have been writing a paper: its temp file goes nowhere.
        drop_unfinished(held_path(held), PAPER_NAMES)
    if not os.listdir(held):
        # A claim that failed, whose removal of its folder failed too: nothing to lose.
        return _remove_empty(work, held, "empty work folder unknown to the journal removed")
    if not inherited and not has_owner(work.name):
        # Named by an outboxd before owners: ours would be in our journal (a claim names
        # its folder in a row first), so this is most likely another daemon's of this host
        # stopped for its upgrade, which finishes it by its own journal; or a copy.
        _once(work, logs.get().warning, "work folder unknown to the journal, named as "
              "outboxd named them before its upgrade (no state dir in the name): if "
              "another outboxd of this host has not been started since its upgrade, it is "
              "that daemon's — left for it, it finishes the bundle when it starts again; "
              "if none other runs on this host, it was copied in: nothing in it is sent, "
              "archived or moved — move its files into the outbox (sidecar folder first, "
              "invoice file last), then remove the folder", work_dir=str(work))
        return 0
    if not inherited:
        _once(work, logs.get().error, "work folder unknown to the journal was not left by "
              "outboxd (copied in by someone, e.g. a backup restored?): nothing in it is "
              "sent, archived or moved — to send what is in it, move its files into the "
              "outbox (sidecar folder first, invoice file last); then remove the folder",
              work_dir=str(work))
        return 0
    try:
        # Read from the folder held (errors name it by its path): never papers read
        # where a link swapped in for it, or for `.outboxd`, leads.
        rec = record_of(work, at=held)
        reason = reason_of(work, at=held) if rec is None else None
    except InputError as exc:
        # Neither finishing nor putting back is safe: a stray receipt.json may stand
        # for a bundle the receiver took (putting it back would send it twice).
        _once(work, logs.get().error, "work folder unknown to the journal holds a "
              "receipt.json or reason.json that is not a regular file outboxd can read; left "
              "for a person to look at — outboxd writes its papers only as regular files: "
              "remove or fix that one and the next rescan finishes the folder",
              work_dir=str(work), file=exc.file, error=exc.message)
        return 0
    if rec is None and in_folder(held, "receipt.json"):
        # A receipt that cannot be read as one (cut short, unreadable, huge) may still
        # stand for a bundle the receiver took: never put it back to be sent again.
        _once(work, logs.get().error, "work folder unknown to the journal holds a "
              "receipt.json that cannot be read as a receipt; left for a person to look "
              "at — if the bundle was delivered, move the folder into sent/ by hand",
              work_dir=str(work))
        return 0
    paper = rec if rec is not None else reason
    if paper is not None and not names_its_bundle(work, paper):
        name = "receipt.json" if rec is not None else "reason.json"
        _once(work, logs.get().error, f"work folder unknown to the journal holds a {name} "
              "that does not name the bundle the folder's name carries (another bundle id, "
              "or no invoice file by a plain name); nothing is recorded, archived or moved "
              f"— outboxd never writes such a {name}: remove it if someone put it there "
              "and the next rescan finishes the folder, else move the folder where it "
              "belongs by hand", work_dir=str(work), file=str(work / name))
        return 0
    if paper is not None and _waits(
            work, mounts, settings.sent_dir if rec is not None else settings.quarantine_dir):
        return 0
    tag = copy_tag(settings.paths.state_dir)
    if rec is not None:
        # In the day folder of its delivery (record_of made it a journal time), which
        # import_sent makes its `since`. At the entry's own name, taken or not: the lost
        # journal may have named the copy a crash left there (or beside it, `-2` …), and
        # a free name looked past it to a second entry of the bundle.
        target = entry_name(settings.sent_dir, stem(rec["invoice_file"]), rec["bundle_id"],
                            rec["delivered_at"])
        rec["archive_dir"] = str(move_into_place(work, target, held=held, tag=tag,
                                                     within=settings.outbox.path))
        journal.import_sent([rec])
        logs.get().warning("delivered bundle unknown to the journal archived in sent/",
                           work_dir=str(work), bundle_id=rec["bundle_id"],
                           invoice_file=rec["invoice_file"], invoice_ids=rec["invoice_ids"],
                           archive=rec["archive_dir"])
        return 1
    if reason is not None:
        invoice_file = str(reason["invoice_file"])
        at = journal_time(reason.get("quarantined_at"))  # its folder's day and `since`
        target = entry_name(settings.quarantine_dir, stem(invoice_file), reason["bundle_id"],
                            at)
        target = move_into_place(work, target, held=held, tag=tag, within=settings.outbox.path)
        journal.create(invoice_file, "quarantined", "orphaned work folder finished", since=at,
                       bundle_id=reason["bundle_id"], reasons=reason.get("reasons", []),
                       archive_dir=str(target))
        logs.get().warning("quarantined bundle unknown to the journal moved to quarantine/",
                           work_dir=str(work), bundle_id=reason["bundle_id"],
                           invoice_file=invoice_file, archive=str(target))
        return 1
    invoice = _invoice_in(held, settings)
    if invoice is None:
        _once(work, logs.get().error, "work folder unknown to the journal holds no single "
              "invoice file; left for a person to look at", work_dir=str(work))
        return 0
    cand = candidate_for(settings.outbox, invoice)
    # Killed while it copied a file of several names (the claim's check came after): the
    # half copy, or the file's old name, must not go back with the bundle.
    drop_copies_left(held, moved_candidate(cand, work), settings.outbox, logs.get())
    stuck = unclaim(cand, work).stuck
    if stuck == [work.name]:
        raise not_the_folder(work)  # swapped since it was held: sweep says so, looks again
    if stuck:
        _once(work, logs.get().error, "work folder unknown to the journal cannot go back: the "
              "outbox holds files of the same names; compare them and move the right ones",
              work_dir=str(work), invoice_file=invoice, names=stuck)
        return 0
    logs.get().warning("claimed bundle unknown to the journal put back into the outbox",
                       invoice_file=invoice, work_dir=str(work))
    return 1


def _waits(work: Path, mounts: FolderMounts, root: Path) -> bool:
    """Whether root (sent/, quarantine/) is off its mount: then the archive entry would go
    under the bare mount point, unseen, and be hidden for good at the remount, so the work
    folder stays where it is. Said once each time it starts waiting (apart from _once:
    what goes wrong once the share is back is said too)."""
    away = mounts.away(root)
    if away is None:
        _waiting.discard(work)
        return False
    if work not in _waiting:
        _waiting.add(work)
        logs.get().warning("work folder unknown to the journal waits for its archive "
                           "folder's share: finished at a rescan once that is back",
                           work_dir=str(work), error=away)
    return True


def _leftover(work: Path, held: int) -> int:
    """A work folder whose bundle was put back into the outbox, and that could not be
    removed then: what is in it besides the mark was dropped in afterwards, and is never
    taken for a bundle (put into the outbox, archived). Removed once it is empty."""
    others = sorted(n for n in os.listdir(held) if n != LEFTOVER)
    if others:
        _once(work, logs.get().error, "work folder of a bundle put back into the outbox "
              "holds files put there afterwards; they are not sent — move them where they "
              "belong (an invoice into the outbox) and the next rescan removes the folder",
              work_dir=str(work), names=others)
        return 0
    still_held(work, held)
    os.unlink(LEFTOVER, dir_fd=held)
    return _remove_empty(work, held, "emptied work folder of a bundle put back into the "
                         "outbox removed")


def _kept(work: Path, held: int, entry: str, settings: Settings) -> int:
    """A work folder whose bundle is archived (copied into sent/ or quarantine/ on another
    file system, `entry`), kept for files put into it during the copy (kept.KEPT): they
    are in no archive entry and never sent. Said once a run until a person takes them
    out; then the folder, its emptied subfolders and the mark are removed.

    The mark is made once the copy is complete, before its rename into place: a crash (the
    journal lost with it) part-way through the removal leaves the bundle's own files,
    which the entry holds. Those are removed first (once a run), as the archive's retry
    would: said as "in no archive entry", a clerk was sent to move the bundle's invoice
    back into the outbox. Only for an entry in sent/ or quarantine/ (a mark names it)."""
    target = Path(entry) if entry else None
    if work not in _reported and target is not None \
            and target.parent.parent in (settings.sent_dir, settings.quarantine_dir):
        # A look the share fails raises (kept.named_for): the sweep looks again.
        left = drop_archived(work, held, target, settings.outbox.path)
        if left == []:
            logs.get().info("work folder of an archived bundle, whose removal a crash cut "
                            "short, removed", work_dir=str(work), archive=entry)
            return 1
    files = files_below(held, "")
    if files:
        _once(work, logs.get().warning, "work folder kept because files were put into it "
              "while its bundle was being archived (copied into the archive on another file "
              "system); they are in no archive entry and not sent — compare them with the "
              "archive entry, move them where they belong (a corrected file into the outbox "
              "with its bundle) and the next rescan removes the folder",
              work_dir=str(work), archive=entry or "unknown (its mark cannot be read)",
              names=files)
        return 0
    still_held(work, held)
    _reported.discard(work)  # taken out: a file put in from now on is said anew
    try:
        remove_folders_below(held)
    except OSError:
        return 0  # a file put in since the look above: said at the next rescan
    os.unlink(KEPT, dir_fd=held)
    try:
        return _remove_empty(work, held, "emptied work folder kept after an archive removed")
    except OSError:
        # A file put in since the look above: without its mark the folder would be taken
        # for one someone copied in. Marked again; the next rescan says what it keeps.
        mark_kept(held, entry)
        return 0


def _remove_empty(work: Path, held: int, event: str) -> int:
    """The empty work folder held at `held` removed by its name while that is still it
    (rmdir never follows a link, and removes no folder with anything in it)."""
    still_held(work, held)
    work.rmdir()
    _reported.discard(work)
    logs.get().info(event, work_dir=str(work))
    return 1
