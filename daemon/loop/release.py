"""Release without attachments — "send anyway" (docs/folder-convention.md, sections 5, 6).

A release is one file in the outbox root, `NAME` + `[share] release_suffix`
(default `NAME.send-anyway`), beside the invoice file `NAME.ext`:

* a clerk drops it on the share (any content, usually empty);
* `outboxd send NAME --without-attachments` writes it for the operator, with
  a first line that says so (``RELEASED_BY_SEND``).

Why a file in the outbox and not a request in the state dir or the journal:
the daemon already watches the outbox, so a running daemon sees the release
at once through the same event that any dropped file causes, and a stopped
daemon finds it at its next start scan; there is one mechanism for both
ways of releasing, and the file travels with the bundle into the processing
folder at the claim (like the marker) and from there into sent/, which is
the lasting record of who released what. The people on the share see the
release too.

A release applies only to a bundle that waits for attachments (any
`[policy] unattached` but "send"); beside a bundle with errors, or one that
has all its attachments, it does nothing — the status page says why.
"""

from __future__ import annotations

import errno
import functools
import os
import pwd
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.configuration.config import ShareConfig
from daemon.errors import InputError
from daemon.fs.fsops import is_regular_file, kind_of, open_regular
from daemon.fs.fswrite import fsync_dir, rename_noreplace
from daemon.fs.temps import create_locked, drop_stale_copies, unlink_if_still
from daemon.names import NAME_MAX, fit_name, name_problem, printable, stem
from daemon.watching.scan import Candidate

RELEASED_BY_SEND = "# released by outboxd send --without-attachments"
_READ_LIMIT = 4096
# `send`'s temp file is `.NAME.MARK.tmp`, MARK 7 random hex digits. It was the process
# id (at most 7 digits, Linux's pid_max 2**22), which is not ours alone: two `send`s in
# different pid namespaces (two containers on one share) have the same one, and so has
# a process that reuses a killed send's. As long as the longest pid, so that a long NAME
# is cut where it always was and an earlier version's killed send is still found.
_MARK_LEN = 7
_TEMP_BASE_MAX = NAME_MAX - len("..") - _MARK_LEN - len(".tmp")
# What a killed send's temp has between `.NAME.` and `.tmp`: a mark, or an earlier
# version's process id.
_STALE_MARK = f"(?:[0-9a-f]{{{_MARK_LEN}}}|[0-9]+)"


def _mark() -> str:
    return os.urandom(4).hex()[:_MARK_LEN]


def path_for(cand: Candidate, share: ShareConfig) -> Path:
    return beside(cand.invoice, share)


def beside(invoice: Path, share: ShareConfig) -> Path:
    """Where the release of the invoice file at `invoice` is: NAME + suffix beside it,
    in the outbox or, once claimed, in its processing folder."""
    return invoice.with_name(stem(invoice.name) + share.release_suffix)


def overlong(name: str, suffix: str) -> int:
    """By how many bytes the release file of the invoice file stem `name` is longer than a
    file name may be (0: it fits). Such a bundle cannot be released, by a file or by
    `outboxd send`, which writes that file: its invoice file must be renamed shorter."""
    return max(0, len(os.fsencode(name + suffix)) - NAME_MAX)


def rename_shorter(over: int) -> str:
    """What to do first about a name `over` bytes too long for its release file: every
    character is at least a byte, so that many characters fewer always fit."""
    return (f"rename the invoice file (and its folder, if it has one) to a name at least "
            f"{over} character{'s' if over > 1 else ''} shorter")


def release_file(cand: Candidate, share: ShareConfig) -> Path | None:
    """The release beside this invoice file, if it is a regular file (a link or a FIFO of
    that name releases nothing: outboxd never follows or opens those)."""
    return found_beside(cand.invoice, share)


def found_beside(invoice: Path, share: ShareConfig) -> Path | None:
    """The release beside the invoice file at `invoice` (in the outbox, or in its
    processing folder once claimed), if it is a regular file. A NAME at the length limit
    has no room for the suffix: no release file then."""
    path = beside(invoice, share)
    return path if is_regular_file(path) else None


def owner_name(path: Path) -> str | None:
    try:
        return pwd.getpwuid(os.lstat(path).st_uid).pw_name
    except (KeyError, OSError):
        return None


def released_by(path: Path) -> str:
    """Who released: the text of the manifest's unattached-invoice warning."""
    try:
        with open_regular(path) as fh:
            head = fh.read(_READ_LIMIT).decode("utf-8", "replace")
    except (InputError, OSError):
        head = ""
    if head.startswith(RELEASED_BY_SEND):
        return "released by outboxd send"
    owner = owner_name(path)
    return f"released by {path.name}" + (f" (owner {owner})" if owner else "")


def warning_text(invoice_id: str, release: Path | None) -> str:
    """The unattached-invoice warning; names the release when there is one."""
    text = f"invoice {invoice_id} is sent without attachments"
    return f"{text} ({released_by(release)})" if release is not None else text


def write_release(cand: Candidate, share: ShareConfig, user: str | None) -> bool:
    """What `outboxd send --without-attachments` does; False if a release is already there.

    Written under a hidden name and renamed without replacing, so the daemon
    never reads half a file and a clerk's own release file is never replaced.
    """
    target = path_for(cand, share)
    # The temp's name must fit too (a release file of 240 bytes made a send fail with
    # "File name too long"): a long one is cut, the same way every time, so a killed
    # send's temp is still found by the next.
    base = fit_name(target.name, _TEMP_BASE_MAX)
    # A `send` killed before its rename left its temp file; a live one's is left be.
    drop_stale_copies(target.parent, base, _STALE_MARK)
    line = RELEASED_BY_SEND + (f" (by {user})" if user else "") + "\n"
    # Locked until renamed: a `send` of the same invoice run meanwhile leaves it be.
    tmp, fd = _new_temp(target, base)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fd)
            rename_noreplace(tmp, target)
        except BaseException as exc:
            # Only the file we made, while we hold it: whatever is at its name else is
            # another's (a sweep took ours, and someone made theirs there since).
            unlink_if_still(tmp, fd)
            if isinstance(exc, FileExistsError):
                return False  # a release is there: never replaced
            raise
    fsync_dir(target.parent)
    return True


def _new_temp(target: Path, base: str) -> tuple[Path, int]:
    """A temp of our own beside target, made (O_EXCL) and locked: a name another's
    temp has already is never opened, nor later removed, and another is drawn."""
    for _ in range(3):
        tmp = target.with_name(f".{base}.{_mark()}.tmp")
        try:
            return tmp, create_locked(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "three temp names in a row were taken", str(tmp))


@dataclass(frozen=True)
class Idle:
    """A release file that does nothing, and why (for the status page).

    `name` is as shown (a name that is not UTF-8 escaped as \\xNN); `bad_name` says
    the name itself can never release anything, so the daemon logs it as well.
    """

    name: str
    why: str
    bad_name: bool = False


def release_names(outbox: Path, share: ShareConfig) -> list[str]:
    if not share.release_suffix:
        return []
    with os.scandir(outbox) as it:
        return sorted(e.name for e in it if e.name.endswith(share.release_suffix)
                      and e.name != share.release_suffix and not e.name.startswith("."))


def idle_releases(names: Iterable[str], share: ShareConfig, invoice_files: Iterable[str],
                  states: dict[str, str], outbox: Path | None = None) -> list[Idle]:
    """The release files that do nothing now, with why.

    `invoice_files` are the invoice files in the outbox; `states` maps an
    invoice file to its journal state (settling, waiting, held). `outbox`: where
    a release beside an invoice file is lstat'ed, to tell a link or a FIFO.
    """
    by_stem: dict[str, list[str]] = {}
    for f in invoice_files:
        by_stem.setdefault(stem(f), []).append(f)
    out: list[Idle] = []
    for name in names:
        problem = name_problem(name)
        if problem:
            # The scanner refuses an invoice file with such a name, so no stem can ever
            # match it: it would wait forever, and the raw name cannot go on a UTF-8 page.
            out.append(Idle(printable(name), f"it releases nothing: {problem}", True))
            continue
        base = name[: -len(share.release_suffix)]
        files = by_stem.get(base, [])
        if not files:
            why = f"there is no invoice file {base}.* beside it; it waits for one"
            meant = meant_release(name, share.release_suffix,
                                  [f for fs in by_stem.values() for f in fs])
            if meant:
                why += f" — to release {meant[0]}, rename it to {meant[1]}"
            out.append(Idle(name, why))
            continue
        state = states.get(files[0])
        kind = None if outbox is None else _kind(outbox / name)
        if kind is not None:
            # release_file never follows or opens it: no state makes it release.
            out.append(Idle(name, f"it is a {kind}, not a file: outboxd never follows or "
                                  "opens one, so it releases nothing — put an ordinary file "
                                  "of that name there (an empty one will do)"))
        elif state == "held":
            out.append(Idle(name, f"{files[0]} has errors (see {base}.errors.txt); a release "
                                  "only sends invoices that lack attachments — fix the errors "
                                  "first"))
        elif state == "waiting":
            continue  # about to be released
        elif state in (None, "settling"):
            out.append(Idle(name, f"{files[0]} is still settling; the release applies once it "
                                  "has"))
        else:
            out.append(Idle(name, f"{files[0]} has attachments for every invoice; there is "
                                  "nothing to release — it goes out as usual"))
    return out


def _kind(path: Path) -> str | None:
    """What `path` is when it is there and not a regular file (a link, a FIFO …)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # gone since it was listed
    return None if stat.S_ISREG(mode) else kind_of(mode)


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def meant_release(name: str, suffix: str, invoice_files: Iterable[str]
                  ) -> tuple[str, str] | None:
    """(invoice file, the release file's exact name) when `name` is a clerk's near miss of
    the release file of an invoice file in the outbox, else None.

    Near misses a clerk on a share makes, each of which releases nothing: the invoice
    file's whole name before the suffix (`INV-1.xml.send-anyway`), other upper and lower
    case or Unicode form (`INV-1.Send-Anyway`), spaces at an end of a part
    (`INV-1 .send-anyway`), and an ending after it (`INV-1.send-anyway.txt`: Windows
    hides the `.txt` of the "New Text Document" renamed). Without this the page said
    only that such a file waits for an invoice file, or that it is no invoice file and
    belongs in a sidecar: true, and no help to the clerk who meant to release one.
    """
    if not _may_be(name, suffix):
        return None  # the usual name, at no cost per invoice file
    text = name.strip()
    tries = [text]
    head, dot, ext = text.rpartition(".")
    if dot and head and len(ext) <= 4 and ext.isalnum():
        tries.append(head.rstrip())
    bases = [t[: -len(suffix)].strip() for t in tries
             if len(t) > len(suffix) and _fold(t[-len(suffix):]) == _fold(suffix)]
    if not bases:
        return None
    by_stem, by_fold, whole = _named(tuple(invoice_files))
    for base in bases:
        file = by_stem.get(base) or by_fold.get(_fold(base)) or whole.get(_fold(base))
        if file is not None and stem(file) + suffix != name:
            return file, stem(file) + suffix
    return None


@functools.lru_cache(maxsize=2)
def _named(invoice_files: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str],
                                                     dict[str, str]]:
    """The invoice files by stem, by folded stem and by folded whole name (the first of
    each in sorted order): made once for a page's refresh, not once for each near miss
    and each idle release (sorting 20,000 names was ~13 ms each time)."""
    files = sorted(invoice_files)
    by_stem = {stem(f): f for f in reversed(files)}  # the first of a stem's files
    by_fold = {_fold(s): f for s, f in reversed(list(by_stem.items()))}
    whole = {_fold(f): f for f in reversed(files)}
    return by_stem, by_fold, whole


def _may_be(name: str, suffix: str | None) -> bool:
    """The cheap look before meant_release's: the suffix's core is in the name at all."""
    core = _fold(suffix).strip(". ") if suffix else ""
    return bool(core) and core in _fold(name)


def near_miss(name: str, share: ShareConfig, invoice_files: Iterable[str],
              marker_suffix: str | None = None) -> str | None:
    """What the page says of a root file that is no invoice file but a near miss of a
    release file (meant_release), or of a marker under `completion = "marker"`
    (`marker_suffix`), in place of "not an invoice file"; else None."""
    if not (_may_be(name, share.release_suffix) or _may_be(name, marker_suffix)):
        return None  # the usual stray file: the invoice files not even listed
    files = list(invoice_files)
    meant = meant_release(name, share.release_suffix, files)
    if meant is not None:
        return (f"named like a release file, but not exactly, so it releases nothing — to "
                f"send {meant[0]} without its attachments, rename it to {meant[1]} (exactly "
                "so: upper and lower case count, and nothing may follow; Windows may hide an "
                "ending such as .txt)")
    meant = meant_release(name, marker_suffix, files) if marker_suffix else None
    if meant is not None:
        return (f"named like a marker file, but not exactly, so {meant[0]} still waits for "
                f"its marker — rename it to {meant[1]} (exactly so: upper and lower case "
                "count, and nothing may follow; Windows may hide an ending such as .txt)")
    return None
