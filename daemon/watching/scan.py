"""Scan: list the outbox as it is now (the folder is the truth, events are hints).

Lists invoice files and their sidecars (each with the root names that meet its
sidecar: sidecarnames.py); the snapshot settling compares is snapshot.py's. Never
follows a link, never opens a file: lstat and folder listings only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.archiving.papers import PAPER_NAME_CODE, PAPER_WORDS, paper_name_problem
from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.fs.fsops import kind_of
from daemon.names import (
    ERRORS_SUFFIX,
    NAME_MAX,
    OTHER_PAGES,
    NameKind,
    classify,
    is_invoice_name,
    is_share_file,
    name_problem,
    stem,
)
from daemon.report.pagehtml import PAGE_START
from daemon.watching.sidecarnames import alike_keys, set_look_alikes, set_sharers


@dataclass(frozen=True)
class Candidate:
    """An invoice file in the outbox root, with where its sidecar and marker would be."""

    name: str  # NAME: the invoice file's stem
    invoice: Path
    sidecar: Path  # may not exist
    marker: Path  # may not exist; only used when completion = "marker"
    # Root entries named like the sidecar but for upper and lower case, Unicode form or
    # a space or dot at an end (`inv-7/` made on Windows beside the ERP's INV-7.xml), or
    # named otherwise by a clerk's common slip (sidecarnames.alike_kind), as a listing of the root
    # found them (list_outbox) and the index keeps them since (OutboxIndex.touched). A
    # case variant cannot be looked up as the two Unicode forms can (a name of n
    # letters has 2^n), and listing the root for each bundle would cost a listing of
    # 20,000 names per read: so the names travel with the candidate, into the
    # snapshot (their coming and going changes the bundle) and to the reader
    # (lookalikes.look_alike_sidecars). One made without a listing (candidate_for, in
    # recovery) has none; the two Unicode forms of the sidecar's name, which can be
    # looked up, are looked up for every candidate (spelling_twins).
    look_alikes: tuple[str, ...] = ()
    # The other invoice files in the root whose sidecar is this one's (INV-1.pdf, the
    # ERP's print, beside INV-1.xml: both have INV-1/), as the listing found them and
    # the index keeps them since. They travel with the candidate as look-alikes do: into
    # the snapshot (one that goes, renamed or moved into the folder, changes this
    # bundle, which is then read again) and to the reader, which asks the outbox as it
    # is whether they are still there (sharedsidecar.py, `sidecar-shared`).
    sharers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listing:
    candidates: dict[str, Candidate]  # by invoice file name
    # Root files that are neither invoices nor ignored, and the invoice-pattern names that
    # cannot be used with why (reported, never read): each by its name on disk, as
    # os.listdir gives it, made printable only where it is shown. Two names shown alike
    # (X + U+202E and X\u202e typed) are two files, each with its own why.
    others: tuple[str, ...]
    refused: tuple[tuple[str, str], ...] = ()
    # lstat of every root entry as listed: a rescan takes its snapshots from here,
    # so a bundle without a sidecar costs no system call of its own.
    stats: Mapping[str, os.stat_result] = field(default_factory=dict)
    # The root entries that are not invoice files, by sidecarnames.alike_keys (a copy's
    # name under the key of what it is a copy of too): where a look-alike of a sidecar
    # may be (OutboxIndex keeps them up to date from the watcher's events).
    folds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Root entries listed whose lstat failed otherwise than "gone" (a share's ESTALE or
    # EIO, a name not ours to look at): no stats of them here, so the bundles they
    # belong to are looked at on their own, never judged on this listing.
    unlooked: frozenset[str] = frozenset()
    # Listed, but their lstat says ENOENT: gone meanwhile, or a share's cached lookup.
    vanished: frozenset[str] = frozenset()


def candidate_for(cfg: OutboxConfig, invoice_file: str) -> Candidate:
    """Where an invoice file's sidecar and marker would be: NAME + suffix beside it."""
    name = stem(invoice_file)
    root = cfg.path
    return Candidate(name, root / invoice_file, root / (name + cfg.sidecar_suffix),
                     root / (name + cfg.marker_suffix))


_DEFAULT_SHARE = ShareConfig()


NOT_A_FILE = "not a regular file;"


def refused_code(problem: str) -> str:
    """The rule a refused invoice file breaks, for `check`: what it is (a link, a FIFO…),
    or its name."""
    if NOT_A_FILE in problem:
        return "not-a-file"
    return PAPER_NAME_CODE if PAPER_WORDS in problem else "bad-name"


def is_invoice_file(cfg: OutboxConfig, name: str, share: ShareConfig | None = None) -> bool:
    """Whether a root entry of this name is an invoice file under cfg: its patterns and
    not its ignore patterns; never outboxd's own NAME.errors.txt (names.is_invoice_name),
    the share's status page or a release file, nor, where completion is "marker", a
    marker, whatever the patterns take ("*")."""
    share = share or _DEFAULT_SHARE
    if is_share_file(name, share.status_page, share.release_suffix):
        return False  # the status page and release files (for the share)
    if cfg.completion == "marker" and name.endswith(cfg.marker_suffix):
        return False
    return is_invoice_name(name, cfg.invoice_patterns, cfg.ignore_patterns)


def _sort(cfg: OutboxConfig, name: str, mode: int, share: ShareConfig | None = None,
          ) -> tuple[str, str | None]:
    """What one root entry is: ("candidate"|"other"|"refused"|"", problem)."""
    if stat.S_ISDIR(mode) or classify(name, cfg.ignore_patterns) is not NameKind.OTHER:
        return "", None
    share = share or _DEFAULT_SHARE
    if is_invoice_file(cfg, name, share):
        problem = name_problem(name) or paper_name_problem(name)
        if problem is None and not stat.S_ISREG(mode):
            problem = (f"is a {kind_of(mode)}, {NOT_A_FILE} outboxd never follows or "
                       "opens it — put the invoice file itself there")
        return ("refused", problem) if problem else ("candidate", None)
    if name != share.status_page and OTHER_PAGES.fullmatch(name) and not _a_page(
            cfg.path / name, mode):
        # Named like another daemon's page, but none: a clerk's file, said so.
        if is_invoice_name(name, cfg.invoice_patterns, cfg.ignore_patterns):
            return "refused", NOT_A_PAGE
        return "other", None
    # A marker is outboxd's only under completion = "marker": under "settle" a NAME.ready
    # (from a sender set up for markers) does nothing and stays when its bundle goes, so it
    # is a file left alone like any other, listed with why (leftwords.left_words).
    if name.endswith(ERRORS_SUFFIX) or (
            cfg.completion == "marker" and name.endswith(cfg.marker_suffix)) or is_share_file(
            name, share.status_page, share.release_suffix):
        return "", None
    return "other", None


NOT_A_PAGE = ("is named like an outboxd status page (outboxd-status….html), which every "
              "outboxd on this outbox leaves alone as another daemon's page, but it is no "
              "such page — rename it (a name not starting with outboxd-status) to have it "
              "read")


def _a_page(path: Path, mode: int) -> bool:
    """Whether a root file is a status page outboxd wrote (its first bytes): one read of a
    few bytes, only for the rare names OTHER_PAGES takes. Never a FIFO or device opened;
    one that cannot be read is taken for a page (a daemon's, made unreadable here)."""
    if not stat.S_ISREG(mode):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return True  # gone (a page is replaced by a rename): its event tells
    try:
        return os.read(fd, len(PAGE_START)) == PAGE_START.encode()
    except OSError:
        return True
    finally:
        os.close(fd)


def list_outbox(cfg: OutboxConfig, share: ShareConfig | None = None,
                known: Mapping[str, Candidate] | None = None) -> Listing:
    """The outbox root as it is now. `known`: the candidates of the last listing under
    the same configuration; a name among them that is still a regular file is not
    classified again (a rescan of 20,000 names stays cheap)."""
    candidates: dict[str, Candidate] = {}
    others: list[str] = []
    refused: list[tuple[str, str]] = []
    stats: dict[str, os.stat_result] = {}
    folds: dict[str, list[str]] = {}
    unlooked: set[str] = set()
    vanished: set[str] = set()
    with os.scandir(cfg.path) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        prev = known.get(e.name) if known else None
        try:
            st = stats[e.name] = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            vanished.add(e.name)  # gone while we listed (its event will tell), or is it?
            continue
        except OSError:
            # There, but not looked at: one entry's trouble is no outage of the outbox. An
            # invoice file (known, or by its name: at a start) stays a bundle, not "gone";
            # any other name keeps its place among the look-alikes, by its name alone.
            unlooked.add(e.name)
            if prev is not None:
                candidates[e.name] = prev
            elif is_invoice_file(cfg, e.name, share) and not (
                    name_problem(e.name) or paper_name_problem(e.name)):
                candidates[e.name] = candidate_for(cfg, e.name)
            else:
                for fold in alike_keys(cfg, e.name):
                    folds.setdefault(fold, []).append(e.name)
            continue
        if prev is not None and stat.S_ISREG(st.st_mode):
            candidates[e.name] = prev
            continue
        kind, problem = _sort(cfg, e.name, st.st_mode, share)
        if kind == "candidate":
            candidates[e.name] = candidate_for(cfg, e.name)
            continue
        # An invoice file is a bundle of its own, never a look-alike of a sidecar: the
        # folds hold the rest (sidecars, .outboxd, the status page: a backlog of lone
        # invoice files keeps next to none).
        # A copy's name (`INV-7 (1)/`) meets the sidecar it is a copy of too.
        for fold in alike_keys(cfg, e.name):
            folds.setdefault(fold, []).append(e.name)
        if kind == "refused":
            refused.append((e.name, problem or ""))
        elif kind == "other":
            others.append(e.name)
    by_fold = {f: tuple(names) for f, names in folds.items()}
    set_look_alikes(cfg, candidates, by_fold)
    set_sharers(candidates)
    return Listing(candidates, tuple(others), tuple(refused), stats, by_fold,
                   frozenset(unlooked), frozenset(vanished))


def look(cfg: OutboxConfig, name: str, share: ShareConfig | None = None) -> Listing:
    """The listing restricted to one root name (what an event on it may have changed);
    its stats hold the name if it is there. Its candidate's look-alikes are the index's
    to find (OutboxIndex.add): this looked at one name only."""
    try:
        st = os.lstat(cfg.path / name)
    except (FileNotFoundError, NotADirectoryError):
        return Listing({}, ())
    stats = {name: st}
    kind, problem = _sort(cfg, name, st.st_mode, share)
    if kind == "candidate":
        return Listing({name: candidate_for(cfg, name)}, (), stats=stats)
    if kind == "refused":
        return Listing({}, (), ((name, problem or ""),), stats)
    return Listing({}, (name,) if kind == "other" else (), stats=stats)


def marker_wait(cand: Candidate) -> str:
    """Why a quiet bundle does not move under [outbox] completion = "marker" (the page,
    `status`, `check`)."""
    over = len(os.fsencode(cand.marker.name)) - NAME_MAX
    if over > 0:  # no file can have that name: the clerk's "create it" would fail
        return (f"waits for its marker file {cand.marker.name} ([outbox] completion = "
                f"\"marker\"), a name longer than a file name may be ({NAME_MAX} bytes), so "
                "it cannot be created — rename the invoice file (and its folder, if it has "
                f"one) to a name at least {over} character{'s' if over > 1 else ''} "
                "shorter, then create its marker once the bundle is complete")
    return (f"waits for its marker file {cand.marker.name} ([outbox] completion = "
            f"\"marker\"): the sender puts it there once the bundle is complete — if it "
            "is, create that empty file")
