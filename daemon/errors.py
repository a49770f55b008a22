"""The one exception tree of outboxd.

Errors of the libraries underneath (OSError, pypdf, Pillow, httpx, sqlite3,
pydantic) are translated into these kinds at the edge of the module that
calls them, so the pipeline only ever decides on *our* kinds:

    OutboxdError
    ├── ConfigError          bad or missing configuration: exit 2, no start
    │   └── NotReady             the environment is not (yet) fit to start in: run exits 1
    │       ├── OutboxNotReachable   the outbox is not there (a share not mounted)
    │       ├── FolderNotMade        a folder the daemon writes cannot be made (full, away)
    │       └── NameInUse            another machine's outboxd runs under this daemon's name
    ├── UsageError           a command line that cannot be carried out: exit 2
    ├── InputError           one input file breaks a rule (names file, rule, fix)
    │   ├── HostileInput     XML with entities/DTDs, links, FIFOs, devices
    │   └── ReadTimedOut     reading a bundle ran past the readers' time limit
    ├── DeliveryError        the receiver did not take a bundle
    │   ├── Retryable        408/409/425/429/5xx, timeouts, connection errors
    │   ├── Paused           401/403/404: a configuration problem on our side
    │   └── Rejected         other 4xx: the receiver refuses this bundle
    ├── ClaimLost            another daemon (or a person) took the files first
    ├── JournalError         the state database cannot be used
    │   └── JournalLost      deleted or replaced while the daemon runs: stop
    ├── Refusal              the reference receiver answers a request with an error
    └── ReaderFailed         a reader process died under a bundle (not the bundle's fault)
"""

from __future__ import annotations

import errno
import os
import re
import struct
from collections.abc import Callable

from daemon.configuration.daemonuser import folder_refusing, rename_refusing
from daemon.fs.fdnames import shown_name


class OutboxdError(Exception):
    """Base of every error outboxd raises on purpose."""


class ConfigError(OutboxdError):
    """The configuration cannot be used; carries every problem found, one per line."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))


class NotReady(ConfigError):
    """A start that the environment stops, not the configuration: it may pass by itself
    or by the admin's hand without a change of the file. `run` exits 1 for it (the start
    failed, and may pass later: systemd's Restart=on-failure starts it again until it
    does), not the 2 of a configuration error, which the unit does not restart. The
    other commands refuse it as any configuration error (exit 2): an admin at the prompt
    is told at once. `what`: the start's failure in a few words, for `run`'s line."""

    what = "what it needs is not there yet"


class OutboxNotReachable(NotReady):
    """[outbox] path names no folder that can be looked at: most likely its share is not
    mounted (yet), or the NAS behind it reboots — the environment's fault, not the file's."""

    what = "the outbox is not reachable"


class FolderNotMade(NotReady):
    """A folder the daemon writes to (sent/, quarantine/, processing, the state dir, a
    directory target) cannot be made for want of room (a full disk, a used-up quota) or
    because its share is away (or, there already, cannot be opened for it): freeing space
    or mounting the share is the fix, after which the next start makes or uses it."""

    what = "a folder it writes to cannot be made or reached"


class NameInUse(NotReady):
    """Another machine's outboxd, renewed within the day, writes the settings fingerprint
    of this daemon's name (HOST-OWNER: the same short host name and state dir path), and
    so names its work folders as this one would (claiming/samename.py). Exit 1: once that
    daemon stops cleanly its fingerprint goes, and systemd's next try starts this one."""

    what = "another machine's outboxd runs on this outbox under this daemon's name"


class UsageError(OutboxdError):
    """The command line asks for something that cannot be done."""


class InputError(OutboxdError):
    """An input file breaks a rule.

    ``code`` is stable (it lands in reason.json); ``file`` is the path relative
    to the outbox; ``message`` says the rule and the fix. ``unanswered``: raised in a
    delivery, the invoices whose documents (ubl-embedded) went out before it without
    an answer that says the receiver did not take them.
    """

    unanswered: tuple[str, ...] = ()

    def __init__(self, code: str, file: str, message: str) -> None:
        self.code = code
        self.file = file
        self.message = message
        super().__init__(f"{file}: {message}")


class UnconvertibleImage(OutboxdError):
    """An image that a PDF page made from it could not show as the image is shown
    (convert.py): why, in words for a clerk."""


class DuplicateInvoiceIds(InputError):
    """An XML invoice file holds an invoice id more than once. ``invoice_ids``: the
    distinct ids it holds, in file order: known although the file is refused, so the
    journal and `status --json` name the invoices instead of the file's stem."""

    def __init__(self, file: str, message: str, invoice_ids: tuple[str, ...]) -> None:
        super().__init__("duplicate-invoice-id", file, message)
        self.invoice_ids = invoice_ids


class UnusablePdf(InputError):
    """A PDF that no one can use (encrypted, unreadable, without pages), or an invoice
    file whose ids cannot all be read (a page whose text cannot be): still a PDF."""


class HostileInput(InputError):
    """Input that tries to make us expand, fetch, follow or open something."""


class NotOurs(OutboxdError):
    """A file outboxd writes for people (the status page) cannot be written: something
    that is not outboxd's own has its name, and outboxd never replaces it."""


class LockHeld(BlockingIOError):
    """A temp file outboxd made this instant is flock-held by another process (anyone who
    may open it, on this host) longer than a clean-up's instant: given up after
    temps.SWEEP_HOLD_SECONDS, never waited for longer (temps.create_locked).
    An OSError, as the file system's own errors beside it are: what passes by itself, so
    the write is tried again later (errorsfile.tried_again)."""


class DeliveryError(OutboxdError):
    """The receiver did not accept a bundle; ``status`` is None for network faults."""

    def __init__(self, message: str, status: int | None = None, body: str = "",
                 retry_after: float | None = None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(message)


class Retryable(DeliveryError):
    """Try again later with backoff; nothing is dropped."""


class Untrusted(Retryable):
    """TLS between us and the receiver fails on a certificate: the receiver's is not
    trusted as [delivery] verify says (or is out of its dates), or the receiver wants or
    refuses our client certificate. Retried like any connection error (the operator may
    mend its side), and at once after a reload that changes verify, client_cert or
    client_key (the admin's fix is a setting)."""


class Paused(DeliveryError):
    """401/403/404: our URL or credentials are wrong; pause, do not quarantine."""


class Rejected(DeliveryError):
    """The receiver refuses this bundle for good: quarantine it. ``invoice_id``: the
    invoice whose document was refused (ubl-embedded posts one per invoice), else None.
    ``fix``: what to do, where it is not what the receiver's answer names (a directory
    target holds no receiver), else None. ``sent_bytes``: the size of the request
    refused (its Content-Length), where known: a 413 is about it. ``unanswered``,
    ``pending``: the other invoices of the file whose documents were posted in this
    attempt without an answer that says the receiver did not take them, and those not
    accepted yet (an earlier attempt may have posted them): the refusal answers for its
    own document's key only."""

    invoice_id: str | None = None
    fix: str | None = None
    sent_bytes: int | None = None
    unanswered: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()


class ClaimLost(OutboxdError):
    """The files vanished or changed under us while claiming."""


class NothingClaimed(OutboxdError):
    """A claim that failed before any file left the outbox (its work folder could not be
    made or held, or the invoice file not renamed into it): `cause`, the OSError. There
    is nothing to put back, and the work folder's name is not even looked at (a link a
    user of the share swapped in for it is no bundle of ours, stuck or otherwise)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class JournalError(OutboxdError):
    """The SQLite journal cannot be opened or written.

    ``reported``: the journal has already logged this failure (it logs each kind
    once and backs off), so callers must not log it again.
    """

    def __init__(self, message: str, reported: bool = False) -> None:
        self.reported = reported
        super().__init__(message)


class JournalLost(JournalError):
    """The journal file was deleted or replaced under the running daemon."""


class Refusal(OutboxdError):
    """The reference receiver's non-success answer (status and message for the client)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class ReadTimedOut(InputError):
    """Reading a bundle ran past the reader processes' time limit each time it was
    tried: a PDF or image in it that makes pypdf or Pillow loop (no exception ends that)."""

    def __init__(self, file: str, limit: float) -> None:
        self.limit = limit  # seconds: a command words it for the file it was checking
        super().__init__("read-time-limit", file, (
            f"reading this bundle took longer than {limit:g} s each time it was tried — a PDF "
            "or image in it (or the invoice file) is probably damaged or built to make readers "
            "loop; replace that file (open each in a viewer to find the one that hangs)"))


class ReaderFailed(OutboxdError):
    """A reader process could not evaluate a bundle for a reason that is not the
    bundle's (it died every time, or the daemon is stopping): never an input error."""


class ReaderStopped(ReaderFailed):
    """The read was dropped because the daemon is stopping: nothing went wrong, and the
    next start reads the bundle again."""


# A write refused for want of room: the file system is full, or the user's quota on it
# is used up. Nothing outboxd does makes room (it deletes no input), so the line says
# what the admin does.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
NO_ROOM_FIX = "free space on that file system, or raise the disk quota of outboxd's user there"


# A write refused by a file system mounted read-only (a share the server remounted
# read-only after an error, a disk gone read-only): outboxd cannot mend it either.
READ_ONLY_FIX = "that file system is mounted read-only: remount it read-write"


def describe(exc: OSError, writing: bool = False) -> str:
    """An OSError for people: what went wrong and on which file, by its real path — never
    the /proc/self/fd/N of a folder held by descriptor (fs/fdnames.py) — and, for a full
    disk or quota or a file system mounted read-only, the fix. `writing`: the error of a
    write, so a refusal (EACCES, EPERM) gets its fix too: the folder's owner and mode
    against outboxd's user (a read refused is not fixed by write access)."""
    name = shown_name(exc.filename) if exc.filename else None
    where = f" ({name})" if name else ""
    if exc.errno in NO_ROOM:
        fix = f" — {NO_ROOM_FIX}"
    elif exc.errno == errno.EROFS:
        fix = f" — {READ_ONLY_FIX}"
    elif writing and name and os.path.isabs(name) and exc.errno in (errno.EACCES,
                                                                      errno.EPERM):
        # A bare name (of a write by a held folder's descriptor: a copy across file
        # systems) is no folder to judge: "." is the daemon's working folder, and a
        # chmod of it no fix. The caller's line names where it wrote.
        # A rename (two names) is refused by the folder it goes into as often as by the
        # one it leaves; the error names only the latter.
        fix = f" — {folder_refusing(name)}" if exc.filename2 is None else \
            f" — {rename_refusing(name, shown_name(exc.filename2))}"
    else:
        fix = ""
    return f"{exc.strerror or shown_text(exc)}{where}{fix}"


def in_words(exc: BaseException, writing: bool = False) -> str:
    """Any exception for a log line: an OSError as describe() says it ("Permission denied
    (/srv/outbox/INV-1.xml)", not "[Errno 13] …"), anything else as its own text. For
    an `except` that may catch an OSError among others (a bug's catch-all)."""
    return describe(exc, writing) if isinstance(exc, OSError) else shown_text(exc)


def shown_text(exc: BaseException) -> str:
    """str(exc), any /proc/self/fd/N in an OSError's names given as the real path."""
    if not isinstance(exc, OSError) or exc.strerror is None:
        return str(exc)
    names = [shown_name(n) for n in (exc.filename, exc.filename2) if n is not None]
    if not names:
        return str(exc)
    return f"[Errno {exc.errno}] {exc.strerror}: " + " -> ".join(repr(n) for n in names)


def not_utf8(exc: UnicodeDecodeError) -> str:
    """A text file that is not UTF-8, for people: the line to look at and the fix, not
    the codec's byte offset. An editor that saves in the Windows code page writes the
    "ü" of "für" as one byte that UTF-8 cannot hold."""
    if exc.object[:2] in (b"\xff\xfe", b"\xfe\xff"):
        # Notepad's "Unicode": every other byte is 0, so "line 1 holds the byte 0xff"
        # and "such as Windows' ANSI" pointed at the wrong encoding.
        return ("is not UTF-8 text: it was saved as UTF-16 (\"Unicode\" or \"UTF-16 LE\" "
                "in Notepad's Encoding list) — save it again as UTF-8")
    line = exc.object[:exc.start].count(b"\n") + 1
    return (f"is not UTF-8 text (line {line} holds the byte 0x{exc.object[exc.start]:02x}: it "
            "was saved in another encoding, such as Windows' ANSI) — save it again as UTF-8")


# What to check when the environment refuses: the one fix for an OSError in a command.
OS_FIX = "check that the path exists, that this user may read and write it, and that the " \
    "disk has space"


def refused(exc: OSError) -> str:
    """The line for an OSError the environment answered a command with: what, and the fix."""
    return (describe(exc) if exc.errno in NO_ROOM or exc.errno == errno.EROFS
            else f"{describe(exc)} — {OS_FIX}")


def failure_key(exc: BaseException) -> str:
    """What tells one failure from the next, for a line logged once while a failure lasts
    and again when it changes: an OSError by its kind and words, not its file name, which
    names a temp file new at each try (LockHeld, a refused open of the temp) — each retry
    of the same failure was logged as a new one."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}:{exc.errno}:{exc.strerror}"
    return str(exc)


def library_fault(exc: BaseException) -> bool:
    """Whether a reader library (pypdf, Pillow, img2pdf) that failed on a file failed in
    its own code — an AssertionError, a TypeError ("unsupported operand type(s) for +"),
    a KeyError, an IndexError, a ValueError, struct's error … — rather than saying
    what is wrong with the file in its own error class ("EOF marker not found": pypdf's
    PdfReadError; Pillow's OSError and SyntaxError, "image file is truncated"). Its
    text then tells a clerk nothing ("pypdf: AssertionError"): the message says the
    file cannot be read and what to do, and the text goes to the log only."""
    own = type(exc).__module__.startswith(("pypdf", "PIL", "img2pdf", "daemon"))
    return isinstance(exc, _LIBRARY_FAULTS) and not own


# What Python raises in a library's code that meets data it did not expect. Not
# NotImplementedError: pypdf raises it with its words ("Unsupported filter /Foo").
_LIBRARY_FAULTS = (AssertionError, TypeError, LookupError, AttributeError, ValueError,
                   ArithmeticError, NameError, struct.error)


# A value in an error line is there to be recognised, not read whole: a 40 KB value
# pasted into a variable, or a megabyte of text in attachments.toml, must not make a
# line of that size in the log, NAME.errors.txt or REASON.txt.
SHOWN_CHARS = 200


def shown(text: str, quote: Callable[[str], str] = repr) -> str:
    """`text` quoted for an error line: whole up to SHOWN_CHARS characters, else its
    start and how long it is: 'xxx…'… (40,000 characters). Mask a secret before: a cut
    may remove what the mask looks for (the "@" after a url's password)."""
    if len(text) <= SHOWN_CHARS:
        return quote(text)
    return f"{quote(text[:SHOWN_CHARS])}… ({len(text):,} characters)"


def unquoted(text: str) -> str:
    """`text` as an error line shows a name or a path, without quotes, cut as shown() cuts."""
    return shown(text, str)


# A refusal quotes the argument it is about (an unknown option, a path or bundle not found):
# one of 100,000 characters (a variable that held a file's content, not its name) made a
# line of 100,000 that no one reads. Past what any path may be (4,095 bytes) only rarely.
_LONG_WORD = re.compile(r"\S{1001,}")


def long_words_cut(text: str) -> str:
    """`text`, a command's refusal, with each word over 1,000 characters cut as unquoted()
    cuts (the arguments it quotes are the person's, of any length)."""
    return _LONG_WORD.sub(lambda m: unquoted(m[0]), text)


def double_quoted(text: str) -> str:
    """`text` in double quotes, as a path is written in the configuration file; cut as
    shown() cuts."""
    return shown(text, lambda part: f'"{part}"')
