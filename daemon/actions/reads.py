"""Where `check`, `send`, `attach` and `retry` read the files of a bundle: in a reader
process, as the daemon does (readers.py), under the daemon's time limit for a read
(reader_deaths.time_limit: 120 s, more for a large invoice file), tried as often, and
ended with the daemon's words (`read-time-limit`). A PDF or image that keeps pypdf or
Pillow busy for minutes (and hundreds of MB) would otherwise hold a clerk's command,
or an ERP's scheduled `send` or `attach`, that long, and in the command's own memory;
and a command would say of a bundle what the daemon does not.

The reader starts on the first read (a command refused before it reads starts none),
forked from the command where it may (reader_child.may_fork: one thread, no engine
loaded): the command has imported what a reader needs, where a spawned interpreter
imported it all again, 0.3 to 0.7 s of CPU on every call (docs/architecture.md,
"A command's reader is forked"); a replacement (after a death, or a kill for time)
is spawned, the command having its collector thread by then. The reader loads the
e-invoice engine the settings need when the command evaluates bundles, from the start
(check, send, retry) or, for `attach`, only once it evaluates the bundle it added to (as
`check` does, to say what is still wrong in it): an attach refused for an unknown id or a
file the channel refuses costs no engine (0.7 s of CPU), and the reader of its own reads
is ended first, so that the one with the engine is forked too. It writes no compile cache:
a command writes nothing into the state dir. With `[service] reader_processes = 0` the
reads run here, as the daemon's then do.

An invoice file whose ids ran a reader out of time (after the pool's one more try: the
host may have stalled) is remembered for the rest of the command, by its identity
(device, inode, size, mtime_ns): every read of its bundle reads that file first, the
same way, under the same limit, so a second read (`send` looks into every invoice file
for the name asked, then evaluates the one named) is answered the same at once. Two
more limits' worth of a clerk's or an ERP's wait said nothing new. In `retry`, which
looks at a bundle twice, so is a bundle whose evaluate ran out of time, by the identity
of its invoice file and every entry of its sidecar (looked at before each evaluate: the
other commands evaluate a bundle once, and are spared the walk), for its next evaluate;
not for its ids: what held the reader may have been an attachment. A file changed since
is read again.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Hashable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from daemon.bundle import Attachment, Bundle, Finding
from daemon.configuration.config import Settings
from daemon.configuration.config_readers import needs_engine
from daemon.errors import ConfigError, InputError, ReaderFailed, ReadTimedOut, describe
from daemon.fs.fdnames import shown_name
from daemon.fs.fsdepth import fwalk_bounded
from daemon.fs.fsops import NOT_THE_FILES_FAULT, SHARE_AWAY, folder_within
from daemon.fs.ourfiles import identity
from daemon.reading.invoices import read_invoice_file
from daemon.reading.lookalikes import distinct_names
from daemon.reading.match import assemble
from daemon.reading.reader_process import Job
from daemon.reading.readers import Readers, workers_for
from daemon.validation.validate import check_attachment
from daemon.watching.scan import Candidate

Reads = Literal["invoice", "bundle"] | None  # what a read reads: see _remembered
Identity = tuple[int, int, int, int]  # ourfiles.identity: device, inode, mtime_ns, size


class CommandReads:
    """One command's reads, in one reader process (or here, as configured)."""

    def __init__(self, settings: Settings, evaluates: bool = True,
                 looks_twice: bool = False) -> None:
        """`evaluates`: the command evaluates a bundle first (check, send, retry), so
        its reader loads the engine the settings need from the start, not in a second
        one started for it. Without it (attach) the engine loads at the first evaluate.
        `looks_twice`: it may evaluate a bundle twice (retry), so an evaluate that ran
        out of time is remembered too, for a look at the sidecar before each."""
        self._bundles: Reads = "bundle" if looks_twice else None
        self._engine = evaluates and needs_engine(settings)
        self._loaded = False  # whether the reader running has the engine
        workers = min(1, workers_for(settings))
        self._settings = settings.model_copy(update={"service": settings.service.model_copy(
            update={"reader_processes": workers})})
        self._readers: Readers | None = None
        # What ran a reader out of time (an invoice file's ids, a bundle): by the invoice
        # file, what it was then (_looked) and the limit.
        self._overran: dict[tuple[Path, Reads], tuple[Hashable, float]] = {}

    def __enter__(self) -> CommandReads:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """The reader ends (one stuck in a file is killed after readers' grace)."""
        if self._readers is not None:
            self._readers.stop()
            self._readers = None
            self._loaded = False

    def _started(self, engine: bool) -> Readers:
        if self._readers is not None and engine and not self._loaded:
            # Attach's own reads done without the engine: that reader ends before the one
            # with it starts, which a command with one thread again may fork (a
            # replacement beside it, with its collector thread, would be spawned).
            self.close()
        if self._readers is None:
            self._readers = Readers(None, fork=True)
        # Started once; configured again only for an engine it has not loaded yet.
        try:
            self._readers.configure(self._settings, engine=engine or self._engine)
            self._loaded = engine or self._engine
        except ConfigError:
            if engine or not self._engine:
                raise
            # An engine that cannot load (a broken install) refuses only the read that
            # needs it: attach's own reads (ids, its file) went on without it before it
            # read the bundle again, and an ERP's attach must not fail for that read.
            self._engine = False
            self._readers.configure(self._settings, engine=False)
            self._loaded = False
        return self._readers

    def evaluate(self, cand: Candidate, settings: Settings) -> Bundle:
        """finish.evaluate, as the daemon reads a bundle: the Bundle, or its InputError
        (ReadTimedOut past the limit) or OSError; ReaderFailed, in a command's words,
        when the reader died under it each time (out of memory)."""
        bundle: Bundle = self._remembered(cand, self._bundles, lambda: self._started(
            needs_engine(settings)).evaluate(cand, settings))
        return bundle

    def read(self, cand: Candidate, settings: Settings, job: Job) -> Any:
        """job(cand, settings) in the reader (a module-level function or a partial of
        one, that reads cand's invoice file first), under the same limit."""
        return self._remembered(cand, None, lambda: self._started(False).read(
            cand, settings, job))

    def _remembered(self, cand: Candidate, reads: Reads, read: Callable[[], Any]) -> Any:
        """read(), said for a command; or at once the ReadTimedOut of an earlier read in
        this command of what it reads, unchanged since. `reads`: what the read reads, so
        what its running out of time tells of: cand's invoice file alone, or its bundle;
        None where it reads more (attach's FILE too), which tells of neither."""
        for kind in ("invoice", reads):
            known = self._overran.get((cand.invoice, kind)) if kind else None
            if known is not None and _looked(cand, kind) == known[0]:
                raise ReadTimedOut(cand.invoice.name, known[1])
        before = _looked(cand, reads) if reads else None
        try:
            return _said(cand, read)
        except ReadTimedOut as exc:
            # Only as the files were throughout: a file saved again under the read may
            # read otherwise, and is read again.
            if reads and before is not None and _looked(cand, reads) == before:
                self._overran[(cand.invoice, reads)] = (before, exc.limit)
            raise

    def invoice_ids(self, cand: Candidate, settings: Settings) -> tuple[str, ...]:
        """The ids in cand's invoice file, read as the daemon reads them (InputError,
        OSError as read_invoice_file's)."""
        ids: tuple[str, ...] = self._remembered(cand, "invoice", lambda: self._started(
            False).read(cand, settings, invoice_ids))
        return ids

    def attachment_errors(self, cand: Candidate, settings: Settings, src: Path, rel: Path,
                          invoice_id: str) -> list[Finding]:
        """The errors the daemon's rules for cand's channel would find in `src` once it is
        at `rel` as an attachment of invoice_id (see attachment_errors below)."""
        found: list[Finding] = self.read(cand, settings, functools.partial(
            attachment_errors, src=src, rel=rel, invoice_id=invoice_id))
        return found


def _looked(cand: Candidate, reads: Reads) -> Hashable | None:
    """What `reads` of cand is as it is now: its invoice file; for its bundle, with each
    entry of the sidecar too. None where the invoice file cannot be looked at."""
    invoice = _identity(cand.invoice)
    if reads == "invoice" or invoice is None:
        return invoice
    return invoice, _identity(cand.sidecar), _sidecar_entries(cand)


def _sidecar_entries(cand: Candidate) -> frozenset[tuple[str, Identity | None]] | None:
    """Each entry below cand's sidecar (as fwalk_bounded walks it: never through a link,
    nor more than DEPTH_MAX down), as it is now; None where there is no folder to walk
    (none, or a link, a file, a FIFO there: the sidecar's own identity tells those)."""
    try:
        with folder_within(cand.invoice.parent, cand.sidecar) as held:
            return frozenset(
                (os.path.join(top, name), _identity(name, fd))
                for top, folders, files, fd in fwalk_bounded(held, cand.sidecar, "walk", _skip)
                for name in folders + files)
    except (InputError, OSError):
        return None


def _skip(_folder: str) -> None:
    """A folder too deep to walk: the matcher refuses the bundle without reading it."""


def _identity(path: Path | str, folder: int | None = None) -> Identity | None:
    """The entry at path (in the folder open at `folder`) as it is now, never where a
    link leads: saved again in place, its size or mtime differ; another saved over it,
    its inode. None where it cannot be looked at."""
    try:
        return identity(os.stat(path, dir_fd=folder, follow_symlinks=False))
    except OSError:
        return None


def _said(cand: Candidate, read: Callable[[], Any]) -> Any:
    """read(), with a reader's deaths said for a command (the daemon's words say it
    reads the bundle again when it changes)."""
    try:
        return read()
    except ReaderFailed as exc:
        if type(exc) is not ReaderFailed:
            raise  # stopping: never in a command
        raise ReaderFailed(f"{cand.invoice.name}: the reader process died while reading it, "
                           "each time it was tried (out of memory?); nothing was changed"
                           ) from None


# -- the jobs, run in the reader ------------------------------------------------------------
def invoice_ids(cand: Candidate, settings: Settings) -> tuple[str, ...]:
    return read_invoice_file(cand.invoice, cand.invoice.name,
                             settings.invoices.pdf_id_pattern).invoice_ids


def attachment_errors(cand: Candidate, settings: Settings, src: Path, rel: Path,
                      invoice_id: str) -> list[Finding]:
    """The bundle as it is (InputError: it does not match) and `src` checked by its
    channel's rules as one more attachment of invoice_id, then by name against the
    invoice's others as the matcher will see them (`name-collision`): the errors."""
    bundle = assemble(cand, settings)
    # Not hashed: the one rule that needs the digest (copy-of-invoice) is attach's own;
    # check_attachment opens src itself, never through a link.
    att = Attachment(path=src.absolute(), rel=src.name, original_name=src.name,
                     invoice_id=invoice_id, size=os.stat(src).st_size, sha256="",
                     document_type=settings.attachments.default_document_type)
    errors = [f for f in check_attachment(att, bundle, settings.validation)[1]
              if f.severity == "error"]
    distinct_names([*(a for a in bundle.attachments if a.invoice_id == invoice_id),
                    replace(att, rel=str(rel))], settings.delivery.safe_filenames, errors)
    return errors


def unreadable(cand: Candidate, exc: OSError, command: str) -> tuple[str, str, str]:
    """For a bundle whose read the OS refused: the file that failed (by its path in the
    outbox; the invoice file where the error names none), what the OS said (describe),
    and the fix for that kind of error, in `command`'s words (check, send). Every error
    was "check the file's permissions", of the invoice file, also for a share that went
    away (EIO); send printed the raw "[Errno 2] …"."""
    failed = shown_name(exc.filename) if exc.filename else None
    outbox = cand.invoice.parent
    name = (os.path.relpath(failed, outbox) if failed and os.path.isabs(failed)
            and Path(failed).is_relative_to(outbox) else failed) or cand.invoice.name
    said = describe(OSError(exc.errno, exc.strerror))  # the path is named in front
    if exc.errno in SHARE_AWAY:
        fix = f"is the share still mounted? Check it, then run outboxd {command} again"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = (f"check that outboxd's user, and the user running {command}, may read the file "
               "and open its folder")
    elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
        doing = "checked" if command == "check" else "read"
        fix = (f"it changed while it was {doing}, or the share lost it for a moment; run "
               f"outboxd {command} again")
    elif exc.errno in NOT_THE_FILES_FAULT:
        fix = f"not a fault of the file (the system ran short); run outboxd {command} again"
    else:
        fix = "check the file and its folder on the server"
    return name, said, fix
