"""NAME.errors.txt beside a held bundle's invoice file ([policy] invalid = "hold"): the
clerk's copy of why it does not move. Only a file that starts with one of our headers
is ours to replace or remove; a person's file of that name is left alone.

Invoice files of one stem (INV-1.xml and its print INV-1.pdf under the default
invoice_patterns) have one NAME.errors.txt: it explains every held bundle of that NAME,
each in a section headed by its invoice file's name when there are more than one, and
goes away only once none of them is held (`HeldErrors`).

A file of ours a clerk typed notes into is still ours by its header, but its text is
not what outboxd wrote there: before it is replaced or removed, a copy of it is kept
beside it as NAME.errors.txt.edited, which outboxd never touches (`_Look`). outboxd
knows its text by the journal and by the mark its last line carries, a digest of the
lines above it (`_mark`): a crash between the file's writing and its journal record
leaves a text the journal does not know, which is outboxd's all the same."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from daemon.bundle import Finding
from daemon.errors import NO_ROOM, LockHeld, NotOurs, describe
from daemon.fs.fswrite import Stranded, free_name, fsync_dir, rename_noreplace, written_temp
from daemon.fs.ourfiles import Judged, opened, remove_ours, replace_ours
from daemon.fs.temps import TEMP_NAME_BYTES, Listed, drop_unfinished_ending, temp_prefix
from daemon.invisible import escaped_controls, for_terminal
from daemon.names import ERRORS_SUFFIX, stem
from daemon.watching.scan import Candidate

ERRORS_HEADER = ("# outboxd: this bundle is held because of the errors below. Fix them;\n"
                 "# it is checked again on every change and this file goes away once it passes.\n")
ERRORS_HEADER_MANY = (
    "# outboxd: these invoice files of one name are held, each because of the errors\n"
    "# under its name below. Fix them; each is checked again on every change and this\n"
    "# file goes away once none of them is held.\n")
_OURS = (ERRORS_HEADER, ERRORS_HEADER_MANY)
# Beside NAME.errors.txt: the copy of one a clerk edited, kept before outboxd's text
# replaces it (or it is removed). Not a name outboxd writes or removes otherwise.
EDITED_SUFFIX = ".edited"
# The names of such copies after NAME.errors.txt (free_name: -2, -3 … beside an earlier
# one), whose temps a kill may leave too.
_EDITED_COPY = rf"(?:{re.escape(EDITED_SUFFIX)}(?:-[0-9]+)?)?"
# An invoice file's name of at most this many characters (UTF-8 takes at most 4 bytes
# for one) leaves the temp names of its NAME.errors.txt and .edited copy uncut, whatever
# its characters: the start works out no temp name for it (nearly every name).
_UNCUT = (TEMP_NAME_BYTES - len(ERRORS_SUFFIX + EDITED_SUFFIX)) // 4


_MARK = "\n# written by outboxd (mark "


def _mark(body: str) -> str:
    """What follows outboxd's text `body` (its lines), after a blank line: a digest of
    them, which a clerk's notes typed anywhere in the file no longer match."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    return (f"{_MARK}{digest}); notes typed into this file are kept in a .edited copy "
            "beside it\n")


def without_mark(text: str) -> str:
    """`text` without its mark if it carries the one its lines make, else as it is: an
    unmarked text is outboxd's only as the journal knows it (or a clerk's edit)."""
    body = text[:max(text.rfind(_MARK), 0)]
    return body if text == body + _mark(body) else text


def errors_file_for(cand: Candidate) -> Path:
    return cand.invoice.with_name(cand.name + ERRORS_SUFFIX)


def _judge(path: Path) -> tuple[Judged | None, str]:
    """What is at NAME.errors.txt: (the file, open, and its text) if it is ours, one that
    starts with one of our headers; (None, "") if nothing is there; NotOurs if anything
    else is (OSError: it cannot be looked at). Looked at as an input is (never opened if
    a link, a FIFO or a device: one swapped in would block the loop), and read only up
    to 1 MiB: ours is a few lines."""
    file = opened(path, lambda what: NotOurs(f"{path.name}: {what}"))
    if file is None:
        return None, ""
    try:
        size = file.st.st_size
        text = os.pread(file.fd, size + 1, 0).decode("utf-8") if size <= 1 << 20 else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if not text.startswith(_OURS):
        os.close(file.fd)
        raise NotOurs(f"{path.name}: not written by outboxd")
    return file, text


class _Look:
    """The look of replace_ours and remove_ours at NAME.errors.txt (NotOurs as _judge's).
    A file of ours whose text is none outboxd wrote there (`known`: what it last wrote,
    or as the journal says it did before a restart, and what it writes now) was edited
    by a clerk: a copy of it is kept beside it first, with a warning, so that the notes
    are not lost without a word. Each look judges anew: an edit saved between the look
    and the exchange changes the file's time and size, so replace_ours looks again and
    the newer text is kept as well. OSError (nothing replaced) if the copy cannot be."""

    def __init__(self, path: Path, known: Iterable[str | None], log: Any) -> None:
        self.path, self.log = path, log
        self.known = {text for text in known if text is not None}
        self.text = ""  # what the last look found there ("": nothing)

    def __call__(self) -> Judged | None:
        file, text = _judge(self.path)
        self.text = text
        # for_terminal: as an earlier version wrote it, a zero-width space in a name
        # shown as it is, not as \u200b (an upgrade is no clerk's edit).
        if file is None or any(_unedited(t, self.known) for t in (text, for_terminal(text))):
            return file
        try:
            kept = _keep_copy(self.path, text)
        except BaseException:
            os.close(file.fd)
            raise
        self.known.add(text)
        self.log.warning("the errors file was edited since outboxd wrote it; the edited "
                         "copy is kept beside it, and outboxd's explanation replaces it "
                         "(or it goes, once nothing of its name is held)",
                         file=self.path.name, kept_as=kept.name,
                         fix=f"move notes you want to keep out of {kept.name} into a "
                             "file of your own, then remove it")
        return file

    def removal(self) -> Judged | None:
        """As a look for remove_ours: a file not ours is none of ours to remove."""
        try:
            return self()
        except NotOurs:
            return None


def _unedited(text: str, known: set[str]) -> bool:
    """Whether `text` is outboxd's as it wrote it: marked by its own lines (whether the
    journal knows it or not: a crash may have come before its record), or as the journal
    knows it (`known`), with its mark or without (an outboxd before marks wrote it)."""
    body = without_mark(text)
    return body != text or text in known or body + _mark(body) in known


def _keep_copy(path: Path, text: str) -> Path:
    """`text` written at NAME.errors.txt.edited beside path (or at a free name beside
    it: an earlier copy is never replaced); where it went."""
    there = free_name(path.parent, path.name + EDITED_SUFFIX)
    with written_temp(there, text.encode("utf-8"), True, None) as (tmp, _fd):
        for _ in range(3):
            try:
                rename_noreplace(tmp, there)
                break
            except FileExistsError:  # a file came at that name meanwhile: another one
                there = free_name(path.parent, path.name + EDITED_SUFFIX)
        else:
            # EAGAIN, not EEXIST: report_failure reads EEXIST as a person's file kept at
            # a name outboxd gave way to, when here nothing was replaced (the edited file
            # is still in place) and the next change tries again.
            raise OSError(errno.EAGAIN, "the names drawn for the edited copy were taken "
                          "by someone else at each try", str(there))
    fsync_dir(path.parent)
    return there


def _lines(errors: tuple[Finding, ...]) -> str:
    # As the page shows these lines: a name's bidirectional controls (U+202E) as \u202e.
    return "".join(f"{escaped_controls(f.line())}\n" for f in errors)


def errors_text(held: Mapping[str, tuple[Finding, ...]]) -> str:
    """The file's text for the held bundles of one NAME, by invoice file: one bundle's
    lines under the one-bundle header, or a section for each, in name order; its mark
    last."""
    if len(held) == 1:
        [errors] = held.values()
        body = ERRORS_HEADER + _lines(errors)
    else:
        body = ERRORS_HEADER_MANY + "".join(
            f"\n== {escaped_controls(name)} ==\n{_lines(held[name])}" for name in sorted(held))
    return body + _mark(body)


def write_errors_file(path: Path, held: Mapping[str, tuple[Finding, ...]], log: Any,
                      last: str | None = None) -> bool:
    """Write the errors of the held bundles of path's NAME, by invoice file (or, with
    none, remove our file); OSError if that fails, False when a file outboxd did not
    write is there (kept, and said). `log` is bound to the invoice file whose change
    this follows. `last`: the text outboxd last wrote there (None: none it knows of);
    a file of ours with any other text is kept as an edited copy (_Look)."""
    if not held:
        remove_ours(path, _Look(path, (last,), log).removal)
        return True
    text = errors_text(held)
    look = _Look(path, (last, text), log)
    try:
        file = look()
        if file is not None:
            os.close(file.fd)
        if look.text != text:
            replace_ours(path, text.encode("utf-8"), look)
    except NotOurs:
        log.error("not replacing a file outboxd did not write: rename or remove it to see "
                  "outboxd's explanation of the held bundle there", file=path.name)
        return False
    return True


class HeldErrors:
    """What each NAME.errors.txt is to explain: the held bundles of that NAME, by
    invoice file, with their errors (loop thread only). Kept here rather than asked of
    the other files each time: a file of the NAME not read again since a start is
    known only by its journal row (`remember`)."""

    def __init__(self) -> None:
        self._held: dict[Path, dict[str, tuple[Finding, ...]]] = {}
        # The text outboxd left at each NAME.errors.txt this run where it differs from
        # what its held bundles say: a write that failed (a full share) left the earlier
        # text, which is outboxd's, not a clerk's edit. Else the held bundles' text is
        # what is there (written, or taken over from the journal at start).
        self._left: dict[Path, str | None] = {}

    def remember(self, cand: Candidate, errors: tuple[Finding, ...]) -> None:
        """A bundle held as its journal row says (taken over at start), file untouched."""
        if errors:
            self._held.setdefault(errors_file_for(cand), {})[cand.invoice.name] = errors

    def update(self, cand: Candidate, errors: tuple[Finding, ...], log: Any) -> bool:
        """cand's bundle is held with `errors`, or (none) no longer held: its NAME's
        errors file rewritten for all of that NAME still held, or removed once none
        is. OSError if it cannot be written; False if a file outboxd did not write is
        at its name (write_errors_file)."""
        path = errors_file_for(cand)
        held = self._held.setdefault(path, {})
        last = self._left.pop(path) if path in self._left else (
            errors_text(held) if held else None)  # what outboxd left there
        if errors:
            held[cand.invoice.name] = errors
        else:
            held.pop(cand.invoice.name, None)
        if not held:
            del self._held[path]
        try:
            return write_errors_file(path, held, log, last)
        except BaseException:
            self._left[path] = last  # still there: replace_ours and remove_ours are one step
            raise


def drop_unfinished_errors(outbox: Path, invoice_files: Iterable[str],
                           listed: Listed | None = None) -> None:
    """Remove the temp files of NAME.errors.txt, and of the edited copies kept beside it,
    that a kill of outboxd (SIGKILL, a power loss) between a temp's writing and its
    rename left in the outbox, where the clerks would see them for good: those of any
    NAME, whether its invoice file is still there or not, and those of the
    `invoice_files` (the outbox's, at start) whose temp names are cut to fit. A live
    writer's temp (locked) and a clerk's file of a like name stay. `listed`: the outbox's
    entries as the start's listing has them (else it is listed here). OSError if the
    outbox cannot be listed."""
    names = {stem(name) + ERRORS_SUFFIX + edited for name in invoice_files
             if len(name) > _UNCUT for edited in ("", EDITED_SUFFIX)}
    drop_unfinished_ending(outbox, ERRORS_SUFFIX, sorted(
        n for n in names if temp_prefix(n) != f".{n}.tmp-"), after=_EDITED_COPY, listed=listed)


def _if_marked(path: Path) -> Judged | None:
    """The look of remove_ours for a file outboxd has no row for: only its own unedited
    text, known by its mark; anything else stays."""
    try:
        file, text = _judge(path)
    except NotOurs:
        return None
    if file is not None and without_mark(text) == text:
        os.close(file.fd)
        return None
    return file


def drop_orphaned_errors(outbox: Path, invoice_files: Iterable[str],
                         listed: Listed | None = None) -> None:
    """Remove each NAME.errors.txt outboxd wrote (its mark, unedited) beside no invoice
    file of its NAME (`invoice_files`: the outbox's, at start): one a crash between its
    writing and the journal's record left, whose bundle then left the outbox, would say
    "held" for good, with no row to take it away. `listed` as for drop_unfinished_errors;
    OSError if the outbox cannot be listed or a file removed."""
    names = listed if listed is not None else os.listdir(outbox)
    stems = {stem(name) for name in invoice_files}
    for name in names:
        if name.endswith(ERRORS_SUFFIX) and name[:-len(ERRORS_SUFFIX)] not in stems:
            path = outbox / name
            remove_ours(path, functools.partial(_if_marked, path))


def tried_again(exc: OSError) -> bool:
    """Whether a NAME.errors.txt that could not be written (`exc`) is tried again without
    a change of its bundle: a full disk, a quota, permissions pass by the admin's hand,
    which the outbox's events do not tell. Not a person's file at its name (kept, or
    theirs to rename back), a file changed at each try, nor a name too long. A temp another
    process locked as it was made (LockHeld) is: given up within 50 ms, for the loop's sake."""
    return isinstance(exc, LockHeld) or not isinstance(exc, Stranded) and exc.errno not in (
        errno.EEXIST, errno.EAGAIN, errno.ENAMETOOLONG)


def report_failure(log: Any, path: Path, exc: OSError) -> None:
    """Log that NAME.errors.txt (`path`) could not be written or removed (`exc`), with
    what happened and what to do. The file is only the clerk's copy: the journal,
    `status` and the status page hold the reasons, so the bundle is still held (or
    passes) without it."""
    if exc.errno == errno.EEXIST and not isinstance(exc, Stranded):
        # ourfiles: a person saved a file at the name while outboxd replaced or removed
        # its own; theirs is kept, under the name the error gives. Nothing to mend.
        log.warning("a file was saved at the errors file's name while outboxd replaced "
                    "or removed it; that file was kept, under the name given here",
                    file=path.name, error=describe(exc),
                    fix="nothing was lost: rename or remove the kept file if it should "
                        "not be there")
        return
    if isinstance(exc, Stranded):
        fix = "rename the file named here back, as it says"
    elif isinstance(exc, LockHeld):
        fix = ("another process on this server locks outboxd's files in the outbox as they "
               "are made (`lsof +L1` lists it, holding the temporary file outboxd removed): "
               "stop it; outboxd tries again by itself")
    elif exc.errno == errno.EAGAIN:
        # Two causes, said by the error: the file changed at each try, or every name
        # drawn for a copy of a clerk's edits was taken (_keep_copy).
        fix = ("nothing to do unless it recurs: outboxd tries again at the bundle's next "
               "change (the error says what stopped it this time); keep notes in a file "
               "of another name")
    elif exc.errno == errno.ENAMETOOLONG:
        fix = "shorten the invoice file's name"
    elif exc.errno in NO_ROOM:
        fix = ("free space on the outbox's file system, or raise the disk quota of outboxd's "
               "user there; outboxd writes the file by itself once it can")
    else:
        fix = "check the outbox's free space and permissions; outboxd tries again by itself"
    log.error("cannot write or remove the errors file beside the invoice file; its "
              "errors are on the status page and in `outboxd status`",
              file=path.name, error=describe(exc), fix=fix)
