"""`outboxd retry BUNDLE_ID_OR_FOLDER…`: quarantined bundles back into the outbox.

The bundle goes back in its original layout: sidecar folder (and marker,
release file) first, the invoice file last, so the daemon never sees an
invoice file without its attachments. Every move is a rename that never
replaces (`fsmove.move_tree`: rename_noreplace, or copy + fsync + rename +
delete across file systems). outboxd's papers (REASON.txt, reason.json,
receipt.json) do not go back; the quarantine folder goes away. Only papers as outboxd
wrote them are removed (papers.remove_papers): a clerk's notes saved as REASON.txt, or a
folder, link or FIFO of a paper's name, stay, and so does the folder then, with a note.
NAME.converted/ (the PDFs convert_images made) neither goes back nor is removed: nothing
tells outboxd's PDFs there from a clerk's, so it stays, named in that note; nor does
NAME.embedded/ (the documents ubl-embedded posted: the record of what the receiver has).
What goes back, and the refusals made before anything moves (a name the outbox already
holds, a look-alike of the sidecar that would stop the bundle again), are
retry_plan.py's: if any bundle named is refused, nothing is moved at all.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from daemon.actions import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from daemon.actions.attach_copy import share_with_the_daemon
from daemon.actions.common import settings_of
from daemon.actions.reads import CommandReads
from daemon.actions.retry_find import (
    FOLDER_RE,
    RetryRefused,
    find,
    read_reason,
    share_failed,
)
from daemon.actions.retry_plan import conversions, documents_kept, plan, run_as
from daemon.actions.retry_record import recorded_first
from daemon.archiving.papers import PAPER_NAMES, remove_papers
from daemon.configuration.config import Settings
from daemon.configuration.daemonuser import as_the_daemons_user
from daemon.errors import OutboxdError, UsageError, describe, long_words_cut
from daemon.fs.folderlocks import folder_locked
from daemon.fs.fsmove import move_tree
from daemon.fs.fsops import FOLDER_NOFOLLOW, SHARE_AWAY
from daemon.fs.fswrite import add_group_write_below, fsync_dir
from daemon.fs.temps import drop_unfinished
from daemon.fs.workfolder import there
from daemon.invisible import for_terminal
from daemon.journal.readonly import journal_there


def retry(folder: Path, settings: Settings, reads: CommandReads,
          operator_checked: bool = False) -> list[str]:
    """Move one quarantined bundle back; the names it put into the outbox. Its bundle is
    read (if at all) in `reads`, the command's (retry_plan.plan, as is
    `operator_checked`)."""
    outbox = settings.outbox.path
    # A paper half-written by a killed daemon (an entry archived before it dropped
    # them) is outboxd's litter: it goes, not into the outbox.
    drop_unfinished(folder, PAPER_NAMES)
    order = plan(folder, settings, reads, operator_checked=operator_checked)
    # Read before anything moves: what tells outboxd's REASON.txt from a clerk's.
    record = read_reason(folder)
    moved: list[str] = []
    came: list[Path] = []  # put into the folder while it was copied: kept there
    with recorded_first(settings, folder):  # all of it moves, or none and the record goes
        try:
            for name in order:
                try:
                    came += move_tree(folder / name, outbox / name)
                except OSError as exc:
                    if not _placed(outbox / name, exc):
                        raise
                moved.append(name)
        except OSError as exc:
            # Someone dropped a file of that name this very moment: put back what we moved.
            stuck: list[str] = []  # what the share would not let go back (said, not hidden)
            for name in reversed(moved):
                try:
                    move_tree(outbox / name, folder / name)
                except OSError as back:
                    if not _placed(folder / name, back, left=outbox / name):
                        stuck.insert(0, name)
            # The quarantine folder or the outbox this user may not write: the fix is
            # whom to run it as, as for the journal (run_as), not a bare errno.
            fix = (f" — {as_the_daemons_user('retry', settings.paths.state_dir, group=True)}"
                   if exc.errno in (errno.EACCES, errno.EPERM) else "")
            left = "nothing was moved" if not stuck else (
                f"{', '.join(stuck)} could not be moved back and "
                f"{'is' if len(stuck) == 1 else 'are'} in the outbox — once the share "
                f"answers, move {'it' if len(stuck) == 1 else 'them'} back into {folder} "
                "by hand, then run outboxd retry again")
            raise RetryRefused(f"cannot move {folder / order[len(moved)]} back into the "
                               f"outbox ({exc.strerror or exc}); {left}{fix}") from None
    if came:
        # Across file systems the bundle is copied: a file saved into it meanwhile is not
        # in the copy, and is never removed uncopied (fsmove.move_tree). Said first: a
        # share failing the tidying-up below must not leave it unnamed.
        print(for_terminal(f"outboxd: note: {folder}: saved there while retry copied the "
                           "bundle back, so not moved with it and kept there: "
                           f"{'; '.join(str(p.relative_to(folder)) for p in came)} — if it "
                           "belongs to the bundle, compare it with the one now in the "
                           "outbox and move the right one there"), file=sys.stderr)
    try:
        _tidied(folder, settings, outbox, moved, record, order[-1])
    except OSError as exc:
        # The bundle is back: a share that fails the tidying-up after it is no refusal
        # (exit 1 and no "back in the outbox" line had the admin retry a bundle gone).
        # What is left may be a clerk's (a note saved as REASON.txt, a file saved there
        # meanwhile): looked through, not removed blindly.
        print(for_terminal(f"outboxd: note: {folder}: the bundle is back in the outbox, "
                           f"but the quarantine folder could not be tidied ({describe(exc)})"
                           " — once the share answers, look through what is left of it "
                           "(outboxd's papers, and anything saved there since the bundle "
                           "was quarantined): keep what you need, then remove the folder "
                           "by hand"), file=sys.stderr)
    return moved


def _placed(dst: Path, exc: OSError, left: Path | None = None) -> bool:
    """Whether a move that raised `exc` had put its file or folder at `dst` all the same:
    the rename into place is a move's last step but the sync of `dst`'s folder (across
    file systems, the removal of the copied source), which the share can fail after it.
    Not one there already (EEXIST: a clerk's), nor a look the share fails; `left`: the
    source, which must be gone (a move back: `dst` may hold what a copy left behind)."""
    try:
        return exc.errno != errno.EEXIST and there(dst) and (left is None or not there(left))
    except OSError:
        return False


def _tidied(folder: Path, settings: Settings, outbox: Path, moved: list[str],
            record: dict[str, Any] | None, invoice: str) -> None:
    """After the moves: the folders shared with the daemon, the outbox synced, outboxd's
    papers and the quarantine folder removed."""
    if share_with_the_daemon(outbox) is not None:
        _shared(outbox, moved)
    fsync_dir(outbox)
    # Only what outboxd wrote goes: quarantine/ is the share's too, and a clerk's notes
    # saved as REASON.txt (or a folder, link or FIFO of a paper's name) are kept.
    left = remove_papers(folder, _folder_id(folder, record), record)
    try:
        folder.rmdir()
    except OSError:
        left = left or [p.name for p in folder.iterdir()]
    converted = conversions(settings, invoice)
    if os.path.lexists(folder / converted):
        # Never removed: nothing records what outboxd wrote there, and a clerk told that
        # a file may be fixed where it lies in quarantine may have saved a PDF of their
        # own there, or over one of outboxd's. Said, for a person to judge.
        left = [n for n in left if n != converted] + [
            f"{converted} (the PDFs outboxd made of the bundle's images: it makes them "
            "again when it sends the bundle, so remove it unless you saved a file of your "
            "own in it)"]
    kept = documents_kept(settings, invoice)
    if os.path.lexists(folder / kept):
        left = [n for n in left if n != kept] + [
            f"{kept} (the documents outboxd built and posted under [delivery] format = "
            "\"ubl-embedded\"; reason.json's accepted_documents says which the receiver "
            "took: keep it as the record of what was sent, or remove it)"]
    if left:
        print(for_terminal(f"outboxd: note: {folder}: left in place, as outboxd removes only "
                           f"the papers it wrote: {'; '.join(left)} — the bundle is back in "
                           "the outbox; keep what you need, then remove the folder by hand"),
              file=sys.stderr)


def _folder_id(folder: Path, record: dict[str, Any] | None) -> str:
    """The bundle id's start that the folder's name (NAME--ID12) gives; for a folder a
    clerk renamed (given by its path), the id its reason.json records, else "". Without
    it, outboxd's own papers were left with the folder, called edited or someone's."""
    named = FOLDER_RE.match(folder.name)
    if named:
        return named["id"]
    recorded = record.get("bundle_id") if record is not None else None
    return recorded if isinstance(recorded, str) else ""


def _shared(outbox: Path, moved: list[str]) -> None:
    """The folders among `moved` (and those below them) group-writable, as those attach
    makes: copied back across file systems, each was its maker's alone (0750, root's
    under retry as root), and the daemon, which must write in a folder to move it into
    processing, left the bundle stuck, as clerks could not fix a file in it."""
    for name in moved:
        try:
            fd = os.open(outbox / name, FOLDER_NOFOLLOW)  # a file, or a link: not ours
        except OSError:
            continue
        try:
            with contextlib.suppress(OSError):  # back all the same; the daemon says so
                add_group_write_below(fd, outbox / name)  # if it cannot move the folder
        finally:
            os.close(fd)


def refuse_a_journal_out_of_reach(settings: Settings) -> None:
    """A journal this user may not write (a member of the daemon's group, say), or one
    another process holds locked (a sqlite3 shell, a backup): refused before any bundle
    is looked at or moves, with whom to run it as, or what it waited for. recorded_first
    refuses each bundle on any write that fails; this says it once, before the first,
    within one wait for the lock (each look of the plans at a locked journal would wait
    as long again)."""
    path = settings.journal_path
    if not journal_there(path, run_as(settings)):
        return
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        raise RetryRefused(f"this user may not write the journal {path}, where retry records "
                           f"what it moved back; {run_as(settings)}")
    from daemon.journal import Journal
    try:
        # Whole, as the daemon's start finds it: a torn copy put back before the start
        # would have this command's rows written into its damaged pages.
        journal = Journal(path, whole=True)
        try:
            journal.can_write()
        finally:
            journal.close()
    except OutboxdError as exc:
        raise RetryRefused(f"nothing was moved — {exc}") from None


def run(args: argparse.Namespace) -> int:
    settings, _ = settings_of(args)
    try:
        return _locked(args, settings)
    except OSError as exc:
        if exc.errno not in SHARE_AWAY:
            raise
        raise share_failed(exc) from None  # quarantine/ itself (its look, its lock)


def _locked(args: argparse.Namespace, settings: Settings) -> int:
    root = settings.quarantine_dir.resolve()
    if not root.is_dir():
        return _retry(args, settings)  # find says what is wrong
    # One retry at a time: an ERP's scripts retrying one bundle at once each found it,
    # then all but the first found it half moved ("cannot tell the invoice file (none)
    # — move the files back by hand", "No such file or directory"). Taking turns, the
    # later ones find it gone, and say so.
    try:
        with folder_locked(root):
            return _retry(args, settings)
    except BlockingIOError as exc:
        if exc.filename != str(root):
            raise
        raise RetryRefused(
            f"quarantine/ ({root}) was {exc.strerror}, so nothing was moved: another "
            "outboxd retry still moving bundles back, or a process of anyone who may open "
            "the folder (`fuser -v` names it) — run retry again once it ends") from None


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    # One reader for the command (started at its first read, if any): each bundle is
    # planned twice, and its second look answers from the first where nothing changed.
    done = 0
    try:
        with CommandReads(settings, looks_twice=True) as reads:
            checked = bool(args.operator_checked)
            found = _judged(args.bundles, settings, reads, checked)
            if isinstance(found, int):
                return found
            folders, notes = found
            for note in notes:
                print(for_terminal(f"outboxd: note: {note}"), file=sys.stderr)
            for folder in folders:
                names = retry(folder, settings, reads, checked)
                done += 1
                print(for_terminal(f"{folder.name}: back in the outbox: {', '.join(names)}"))
    except OSError as exc:
        if exc.errno not in SHARE_AWAY:
            raise
        raise share_failed(exc, done) from None
    return EXIT_OK


def _judged(refs: list[str], settings: Settings, reads: CommandReads,
            operator_checked: bool = False) -> tuple[list[Path], list[str]] | int:
    """The folders of the arguments, each found and planned; or, when any is refused,
    every refusal told and the exit code. An admin or a script retrying five bundles, one
    of them refused, was told of that one alone: not that the other four stayed in
    quarantine too, nor of a second refusal until the first was mended. One argument
    takes this path too: it had its own, which said a path that is no bundle's folder
    (exit 2) alone, where given with others behind a journal this user may not write the
    same path was not said, and the exit was 1."""
    folders: dict[Path, str] = {}
    refusals: list[OutboxdError] = []
    for ref in refs:
        try:
            folders.setdefault(find(ref, settings), ref)
        except (RetryRefused, UsageError) as exc:
            refusals.append(exc)
    journal: RetryRefused | None = None
    try:
        if folders:  # else not waited for (locked): no bundle is to go back
            refuse_a_journal_out_of_reach(settings)
    except RetryRefused as exc:
        journal = exc  # no bundle can go back: the plans are not looked at
    notes: list[str] = []
    movable = []
    putting: dict[str, Path] = {}  # a name going back into the outbox: whose it is
    for folder in folders if journal is None else ():  # all refusals before any move
        try:
            names = plan(folder, settings, reads, notes, operator_checked)
            _refuse_a_name_given_twice(folder, names, putting)
        except (RetryRefused, UsageError) as exc:
            refusals.append(exc)
        else:
            movable.append(folder)
            putting.update(dict.fromkeys(names, folder))
    if not refusals:
        if journal is not None:
            raise journal
        return list(folders), notes
    if len(refs) == 1 and journal is None:
        raise refusals[0]  # one argument refused: its one line, its exit code
    for refusal in refusals + ([journal] if journal is not None else []):
        print(for_terminal(long_words_cut(f"outboxd: {refusal}")), file=sys.stderr)
    others = (f"; the {len(movable)} bundle(s) that could go back stay in quarantine too "
              f"— retry them alone: outboxd retry -- {shlex.join(f.name for f in movable)}"
              if movable else "")
    print(for_terminal(f"outboxd: {len(refusals)} of {len(refs)} argument(s) refused, so "
                       f"nothing was moved{others}"), file=sys.stderr)
    # A mistyped path is the command line's fault whichever comes first (exit 2, as alone).
    return EXIT_USAGE if any(isinstance(e, UsageError) for e in refusals) else EXIT_FAILED


def _refuse_a_name_given_twice(folder: Path, names: list[str],
                               putting: dict[str, Path]) -> None:
    """Refuses a bundle that would put back a name another argument's bundle puts back
    (one invoice quarantined on two days): each plan looks at the outbox as it is, so
    both passed, the first moved, and the second was refused after it — "nothing was
    moved", with one bundle moved."""
    if taken := [n for n in names if n in putting]:
        raise RetryRefused(f"{folder.name}: nothing was moved — {putting[taken[0]].name}, "
                           f"given too, puts {', '.join(taken)} back into the outbox, and "
                           "one name holds one bundle — retry one of them, the other once "
                           "the daemon has taken the first")

