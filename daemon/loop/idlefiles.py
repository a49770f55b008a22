"""Release and marker files that do nothing, and what the status page and `outboxd status`
say of each (docs/folder-convention.md, sections 5, 6): a release file beside no invoice
file, or beside one a release does not send now (why); a root file named nearly, but not
exactly, as a release file or a marker (the exact name it needs, or what is true where a
rename would not help). Words only: what a release file does is release.py's."""

from __future__ import annotations

import functools
import os
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.fs.fsops import kind_of
from daemon.names import (
    ERRORS_SUFFIX,
    errors_named,
    name_problem,
    printable,
    stem,
)


@dataclass(frozen=True)
class Idle:
    """A release file that does nothing, and why (for the status page).

    `name` is as shown (a name that is not UTF-8 escaped as \\udcNN, a control character
    as \\xNN); `bad_name` says the name itself can never release anything, so the daemon
    logs it as well; `on_disk` is the name as it is in the outbox: two names on disk may
    be shown alike (`\\x85` typed, and U+0085), and each is told of on its own.
    """

    name: str
    why: str
    bad_name: bool = False
    on_disk: str = ""


@dataclass(frozen=True)
class Suffixed:
    """The root's names ending in the release suffix and, under completion = "marker", in
    the marker suffix, each sorted (the page and `outboxd status` list them in this
    order): what idle_releases and marker_misses look at."""

    releases: list[str]
    markers: list[str]
    errors: list[str] = field(default_factory=list)  # NAME.errors.txt, not a folder


def suffixed_names(outbox: OutboxConfig, share: ShareConfig) -> Suffixed:
    """The three kinds of name from one listing of the outbox root: the status page and
    `outboxd status` listed it once for each, twice a refresh under marker mode, with
    20,000 files there."""
    release = share.release_suffix
    marker = outbox.marker_suffix if outbox.completion == "marker" else ""
    releases: list[str] = []
    markers: list[str] = []
    errors: list[str] = []
    with os.scandir(outbox.path) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if release and e.name.endswith(release) and e.name != release:
                releases.append(e.name)
            if marker and e.name.endswith(marker) and e.name != marker:
                markers.append(e.name)
            if errors_named(e.name) and not e.is_dir(follow_symlinks=False):
                errors.append(e.name)
    return Suffixed(sorted(releases), sorted(markers), sorted(errors))


STRAY_ERRORS = ("named like the errors file outboxd writes beside a held invoice file, but no "
                "invoice file of that name is in the outbox: it explains nothing now and "
                "outboxd leaves it alone — remove it, or rename it if you keep notes in it")


def stray_errors_files(names: Iterable[str], invoice_files: Iterable[str]) -> dict[str, str]:
    """The NAME.errors.txt files (`names`: Suffixed.errors) beside no invoice file NAME.*
    (`invoice_files`: those in the outbox and those of the journal's bundles not yet
    archived — held under a name the listing refuses (`paper-name`), or claimed, whose
    errors file outboxd removes once they leave), by the name on disk -> why (as the
    files left alone are: the page and `status` show each printable). The scanner passes
    over every such name as outboxd's own, so a clerk's file of that name (or one outboxd
    could not remove) was listed nowhere. A file left alone of its stem (an invoice file
    with a bad name, `NAME.Send-Anyway`) has none: outboxd holds neither."""
    stems = {stem(f) for f in invoice_files}
    return {n: STRAY_ERRORS for n in names
            if n[:-len(ERRORS_SUFFIX)] not in stems}


def idle_releases(names: Iterable[str], share: ShareConfig, invoice_files: Iterable[str],
                  states: Mapping[str, str], outbox: Path | None = None) -> list[Idle]:
    """The release files that do nothing now, with why.

    `invoice_files` are the invoice files in the outbox; `states` maps an
    invoice file to its journal state (settling, waiting, held). `outbox`: where
    a release beside an invoice file is lstat'ed, to tell a link or a FIFO.
    """
    names = list(names)
    by_stem: dict[str, list[str]] = {}
    for f in invoice_files:
        by_stem.setdefault(stem(f), []).append(f)
    # Made once, not for each near miss: with 2,000 of them beside 20,000 invoice files,
    # making both again for each was 6 s of CPU a refresh.
    every = [f for fs in by_stem.values() for f in fs]
    there = set(names).__contains__
    out: list[Idle] = []
    for name in names:
        problem = name_problem(name)
        if problem:
            # The scanner refuses an invoice file with such a name, so no stem can ever
            # match it: it would wait forever, and the raw name cannot go on a UTF-8 page.
            out.append(Idle(printable(name), f"it releases nothing: {problem}", True, name))
            continue
        base = name[: -len(share.release_suffix)]
        files = by_stem.get(base, [])
        if not files:
            why = f"there is no invoice file {base}.* beside it; it waits for one"
            meant = meant_release(name, share.release_suffix, every)
            if meant:
                why += " — " + _instead(meant, states, there)
            out.append(Idle(name, why, on_disk=name))
            continue
        kind = None if outbox is None else _kind(outbox / name)
        if kind is not None:
            # release_file never follows or opens it: no state makes it release.
            out.append(Idle(name, f"it is a {kind}, not a file: outboxd never follows or "
                                  "opens one, so it releases nothing — put an ordinary file "
                                  "of that name there (an empty one will do)", on_disk=name))
            continue
        why_not = _releases_nothing(files[0], states.get(files[0]))
        if why_not is not None:
            out.append(Idle(name, why_not, on_disk=name))
    return out


def _kind(path: Path) -> str | None:
    """What `path` is when it is there and not a regular file (a link, a FIFO …)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # gone since it was listed
    return None if stat.S_ISREG(mode) else kind_of(mode)


def _releases_nothing(file: str, state: str | None) -> str | None:
    """Why a release of the invoice file `file` (in journal state `state`) does nothing
    now, or None where it releases (waiting)."""
    if state == "held":
        return (f"{file} has errors (see {stem(file)}.errors.txt); a release only sends "
                "invoices that lack attachments — fix the errors first")
    if state == "waiting":
        return None  # about to be released
    if state in (None, "settling"):
        return f"{file} is still settling; the release applies once it has"
    return (f"{file} has attachments for every invoice; there is nothing to release — it "
            "goes out as usual")


def _instead(meant: tuple[str, str], states: Mapping[str, str],
             there: Callable[[str], bool], rename: str | None = None) -> str:
    """What a near miss of the release file of `meant` (invoice file, exact release name)
    is told: to rename it (`rename`, else the short way) — unless the exact name is there
    already (the rename would fail, or the clerk has two), or a release would do nothing
    for that invoice (it has errors, or its attachments): then what is true."""
    file, exact = meant
    if there(exact):
        return f"{exact}, the release file of {file}, is there already: remove this one"
    why_not = _releases_nothing(file, states.get(file))
    if why_not is not None and states.get(file) not in (None, "settling"):
        return f"a release of {file} would do nothing: {why_not}"
    return rename or f"to release {file}, rename it to {exact}"


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
    by_stem, whole, by_fold, whole_fold = _named(tuple(invoice_files))
    for base in bases:
        # Exactly first: `k-1.xml.send-anyway` is k-1.xml's near miss, not K-1.xml's. A
        # folded name that two invoice files share (K-1.xml and k-1.xml) tells no one.
        file = (by_stem.get(base) or whole.get(base) or by_fold.get(_fold(base))
                or whole_fold.get(_fold(base)))
        if file is not None:
            return (file, stem(file) + suffix) if file and stem(file) + suffix != name \
                else None
    return None


@functools.lru_cache(maxsize=2)
def _named(invoice_files: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str],
                                                     dict[str, str], dict[str, str]]:
    """The invoice files by stem and by whole name (the first of a stem's in sorted
    order), and by folded stem and folded whole name, "" where two differ only in case
    or Unicode form: made once for a page's refresh, not once for each near miss and
    each idle release (sorting 20,000 names was ~13 ms each time)."""
    files = sorted(invoice_files)
    by_stem = {stem(f): f for f in reversed(files)}  # the first of a stem's files
    return by_stem, {f: f for f in files}, _folded(by_stem), _folded({f: f for f in files})


def _folded(named: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, file in named.items():
        fold = _fold(key)
        out[fold] = "" if fold in out else file
    return out


def _may_be(name: str, suffix: str | None) -> bool:
    """The cheap look before meant_release's: the suffix's core is in the name at all."""
    core = _fold(suffix).strip(". ") if suffix else ""
    return bool(core) and core in _fold(name)


_EXACTLY = ("(exactly so: upper and lower case count, and nothing may follow; Windows may "
            "hide an ending such as .txt)")


def near_miss(name: str, share: ShareConfig, invoice_files: Iterable[str],
              marker_suffix: str | None = None, states: Mapping[str, str] | None = None,
              there: Callable[[str], bool] | None = None) -> str | None:
    """What the page says of a root file that is no invoice file but a near miss of a
    release file (meant_release), or of a marker under `completion = "marker"`
    (`marker_suffix`), in place of "not an invoice file"; else None. `states`: the
    invoice files' journal states (a release does nothing for a held one); `there`: whether
    a name is in the outbox root (the exact name may be there already)."""
    if not (_may_be(name, share.release_suffix) or _may_be(name, marker_suffix)):
        return None  # the usual stray file: the invoice files not even listed
    there = there or (lambda _: False)
    files = list(invoice_files)
    if (said := _release_miss(name, share, files, states or {}, there)) is not None:
        return said
    meant = meant_release(name, marker_suffix, files) if marker_suffix else None
    return None if meant is None else _marker_miss(meant, there)


def _release_miss(name: str, share: ShareConfig, files: list[str],
                  states: Mapping[str, str], there: Callable[[str], bool]) -> str | None:
    """near_miss's words for a near miss of a release file, else None."""
    meant = meant_release(name, share.release_suffix, files)
    if meant is None:
        return None
    return ("named like a release file, but not exactly, so it releases nothing — "
            + _instead(meant, states, there, f"to send {meant[0]} without its "
                       f"attachments, rename it to {meant[1]} {_EXACTLY}"))


def _marker_miss(meant: tuple[str, str], there: Callable[[str], bool]) -> str:
    """near_miss's words for a near miss of the marker of `meant` (invoice file, the
    marker's exact name)."""
    if there(meant[1]):
        return (f"named like a marker file, but not exactly, so it does nothing — "
                f"{meant[1]}, the marker of {meant[0]}, is there already: remove this one")
    return (f"named like a marker file, but not exactly, so {meant[0]} still waits for "
            f"its marker — rename it to {meant[1]} {_EXACTLY}")


def marker_misses(outbox: OutboxConfig, share: ShareConfig, invoice_files: Iterable[str],
                  names: Iterable[str]) -> dict[str, str]:
    """Under completion = "marker", the root files that end like a marker but are none
    (`M-3.xml.ready` for M-3.xml, `m-3.ready` for M-3.xml): the scanner leaves every
    `*.ready` alone unlisted, as a marker, so such a near miss was shown nowhere while its
    bundle waited. `names`: the root's names ending in the marker suffix
    (Suffixed.markers). As shown -> what near_miss says (the name it needs); one that
    names no invoice file waits for one, as a marker does, and is not listed."""
    suffix = outbox.marker_suffix
    names = list(names)
    if outbox.completion != "marker" or not suffix or not names:
        return {}
    files = list(invoice_files)
    stems = {stem(f) for f in files}
    out = {}

    def there(x: str) -> bool:
        return os.path.lexists(outbox.path / x)

    for name in names:
        # The marker of an invoice file there is none, told apart without meant_release,
        # which costs a look at every invoice file: with 20,000 waiting, each with its
        # marker, that was 4 s of CPU a refresh of the page and of `outboxd status`.
        if name[: -len(suffix)] in stems or name_problem(name):
            continue
        # Matched once: near_miss matched each such name again to word it.
        if (meant := meant_release(name, suffix, files)) is not None:
            out[name] = _release_miss(name, share, files, {}, there) or _marker_miss(
                meant, there)
    return out
