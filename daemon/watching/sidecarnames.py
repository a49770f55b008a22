"""The root names that meet one invoice file's sidecar, beside the invoice file itself:
the look-alikes of the sidecar's name (`inv-7/` made on Windows beside the ERP's
INV-7.xml; what a clerk is told of them is lookalikes.py's) and the other invoice files
whose sidecar it is too (INV-1.pdf, the ERP's print, beside INV-1.xml: sharedsidecar.py).

Found on the candidates when the outbox is listed (scan.list_outbox) and kept up to
date from the watcher's events (index.OutboxIndex): both group names, neither looks at
the outbox, so that no bundle's read has to list the root.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from daemon.configuration.config import OutboxConfig
from daemon.names import fold_key, has_invoice_extension, stem, trimmed

if TYPE_CHECKING:
    # For annotations only: scan imports this module (list_outbox groups its
    # candidates here), so importing scan at run time would be circular.
    from daemon.watching.scan import Candidate


# The ends a second copy of a folder gets beside the first: Windows Explorer's
# "NAME - Copy" (in the language of Windows: Kopia, Kopie, Copie …), Explorer's and a
# browser's "NAME (1)", a Mac Finder's "NAME copy", "NAME copy 2" and "NAME 2". Numbers of
# one or two digits only, a Finder's from 2: a name is cut to at most a few bases, so
# that the names that meet one sidecar stay a handful (an outbox of "Faktura 1" …
# "Faktura 20000" puts no more than 98 of them beside a "Faktura").
_COPY_END = re.compile(r"\s+(?:-\s+(?:copy|kopia|kopie|copie|copia|kopi|kopio)"
                       r"|copy|\([1-9][0-9]?\)|[2-9]|[1-9][0-9])\Z", re.IGNORECASE)
_COPY_DEPTH = 4  # "INV-7 - Copy (2) - Copy": a copy of a copy is cut to its first


def copy_bases(name: str) -> tuple[str, ...]:
    """The names `name` is a copy of, nearest first, if it ends as a copy of a folder does:
    `INV-7 - Copy (2)` -> (`INV-7 - Copy`, `INV-7`); () for any other name."""
    bases: list[str] = []
    base = trimmed(name)
    # Every such end starts with a space: most names (INV-B00001) need no regex.
    while " " in base and len(bases) < _COPY_DEPTH:
        end = _COPY_END.search(base)
        if end is None or end.start() == 0:
            break
        base = trimmed(base[:end.start()])
        bases.append(base)
    return tuple(bases)


def alike_keys(cfg: OutboxConfig, name: str) -> tuple[str, ...]:
    """The keys (alike_key) where a root name may meet a sidecar: its own, and those of
    the names it is a copy of (copy_bases): `INV-7 (1)/` meets `INV-7/` too."""
    key = alike_key(cfg, name)
    bases = copy_bases(name)
    if not bases:
        return (key,)
    return tuple(dict.fromkeys((key, *(alike_key(cfg, b) for b in bases))))


def alike_key(cfg: OutboxConfig, name: str) -> str:
    """Where a root name meets the sidecars it may be mistaken for (Listing.folds,
    OutboxIndex): case and Unicode form folded (names.fold_key), the ends a clerk does
    not see taken off (names.trimmed), and the sidecar suffix or an invoice file's
    extension cut: `inv-7 /`, `INV-7./`, `INV-7.xml/` and, where sidecars are
    NAME.att, `INV-7/` all meet `INV-7/` (or `INV-7.att/`). Coarse, so that an event
    on a name stays one lookup: look_alikes_of sorts out which of them is one."""
    name = trimmed(name)
    suffix = cfg.sidecar_suffix
    if suffix and len(name) > len(suffix) and \
            name[-len(suffix):].casefold() == suffix.casefold():
        name = name[:-len(suffix)]
    elif "." in name and has_invoice_extension(name, cfg.invoice_patterns):
        name = stem(name)
    return fold_key(trimmed(name))


def alike_kind(cand: Candidate, name: str) -> str | None:
    """How root entry `name` looks like cand's sidecar, or None: "spelling" (the same
    name to a person: but for upper and lower case, Unicode form, or a space or dot at
    an end), "copy" (named as a second copy of the sidecar, or of one of its look-alikes,
    is: `INV-7 (1)/`, `INV-7 - Copy/`, `INV-7 2/`), "invoice" (named like the invoice file
    with an extension, as a folder made by copying the file's name is: `INV-7.XML/`,
    `INV-7.pdf/`), "suffix" (the invoice file's name without its extension, where
    sidecars take [outbox] sidecar_suffix)."""
    kind = _plain_kind(cand, name)
    if kind is not None:
        return kind
    side = cand.sidecar.name
    # Before "invoice": `INV-7.xml (1)/` is a copy, not an extension ".xml (1)".
    if any(b == side or _plain_kind(cand, b) is not None for b in copy_bases(name)):
        return "copy"
    return None


def copied_names(cand: Candidate, name: str) -> tuple[str, ...]:
    """For a copy of cand's sidecar (alike_kind "copy"), the names whose being another
    invoice file's exact sidecar makes `name` that file's, not cand's look-alike: its own
    (`Faktura 2/` of Faktura 2.pdf), and those it is a copy of before it comes to cand's
    sidecar or a look-alike of it (`Faktura 2 (1)/` is a copy of the sidecar of
    Faktura 2.pdf, if that is there, not of Faktura.xml's)."""
    names = [name]
    side = cand.sidecar.name
    for base in copy_bases(name):
        if base == side or _plain_kind(cand, base) is not None:
            break
        names.append(base)
    return tuple(names)


def _plain_kind(cand: Candidate, name: str) -> str | None:
    """alike_kind but for copies."""
    key = fold_key(trimmed(name))
    if key == fold_key(trimmed(cand.sidecar.name)):
        return "spelling"
    base = trimmed(stem(trimmed(name)))
    if base != trimmed(name) and fold_key(base) == fold_key(trimmed(cand.name)) \
            and not copy_bases(name):
        return "invoice"  # in a bucket (alike_key), an extension is an invoice file's
    if cand.name != cand.sidecar.name and key == fold_key(trimmed(cand.name)):
        return "suffix"
    return None


def look_alikes_of(cand: Candidate, names: Iterable[str],
                   owners: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Of the root `names` that meet cand's sidecar (alike_key), its look-alikes
    (alike_kind): all but the sidecar itself and another invoice file's exact sidecar
    (`owners`: the invoice files in the outbox by their sidecar's name).

    A copy's name (`INV-7 (1)/`, `Faktura 2/`) that is the sidecar of an invoice file of
    any extension (`INV-7 (1).xml`, `Faktura 2.pdf`), or a copy of one (copied_names), is
    that file's: a clerk who sees `Faktura 2.pdf` and `Faktura 2/` side by side sees one
    invoice and its folder. A look-alike of the older kinds is another file's only where
    that file has cand's extension (owner_of): two invoice files whose names differ only
    in case or form (INV-7.xml, inv-7.xml), or in a space at an end (`INV-7 .xml`), are
    two bundles on Linux, each with its sidecar spelled as it is, and neither's is a
    mistake of the other; but a folder beside a look-alike of another extension (inv-7/
    of inv-7.pdf beside INV-7.xml) stays one: Windows takes inv-7 and INV-7 for one
    name, so to a clerk it is the folder of both files, as A/ is of A.xml and A.pdf."""
    side = cand.sidecar.name
    found = []
    for n in names:
        kind = alike_kind(cand, n) if n != side else None
        if kind == "copy":
            if not any(owners.get(c) for c in copied_names(cand, n)):
                found.append(n)
        elif kind is not None and owner_of(cand, n) not in owners.get(n, ()):
            found.append(n)
    return tuple(sorted(found))


def owner_of(cand: Candidate, sidecar: str) -> str:
    """The invoice file of cand's extension whose sidecar `sidecar` would be (the
    sidecar suffix taken off, the extension put on); "" for a name without the suffix,
    which is no invoice file's sidecar."""
    suffix = cand.sidecar.name[len(cand.name):]
    if not sidecar.endswith(suffix) or len(sidecar) == len(suffix):
        return ""
    return sidecar[:len(sidecar) - len(suffix)] + cand.invoice.name[len(cand.name):]


def invoice_files_of(cand: Candidate, sidecar: str, patterns: Sequence[str]
                     ) -> tuple[str, ...]:
    """The names an invoice file whose sidecar is `sidecar` may have, to be looked up
    (lookalikes.look_alike_sidecars asks the outbox as it is now): the sidecar suffix
    taken off, cand's own extension put on, and each extension the invoice patterns
    spell out (`pdf` of `*.pdf`), as spelled and in lower and upper case. A pattern's
    extension with a wildcard (`*.xm?`) cannot be looked up: such a file is known only
    once the index has heard of it (look_alikes_of)."""
    suffix = cand.sidecar.name[len(cand.name):]
    if not sidecar.endswith(suffix) or len(sidecar) == len(suffix):
        return ()
    base = sidecar[:len(sidecar) - len(suffix)]
    exts = [cand.invoice.name[len(cand.name):]]
    for pattern in patterns:
        ext = pattern.rpartition(".")[2] if "." in pattern else ""
        if ext and not any(c in ext for c in "*?["):
            exts += [f".{ext}", f".{ext.lower()}", f".{ext.upper()}"]
    return tuple(dict.fromkeys(base + e for e in exts if e))


def with_look_alikes(cand: Candidate, names: Iterable[str] | None,
                     owners: Mapping[str, Sequence[str]]) -> Candidate:
    """cand with its look-alikes among `names` (the root's names that meet its sidecar,
    alike_key; `owners` as look_alikes_of has them); cand itself when they are as it has
    them."""
    # No name of that key (a lone invoice file, the usual backlog): none.
    found = look_alikes_of(cand, names, owners) if names else ()
    return cand if cand.look_alikes == found else replace(cand, look_alikes=found)


def with_sharers(cands: Iterable[Candidate], candidates: dict[str, Candidate]) -> set[str]:
    """Set the sharers of `cands` (invoice files of one sidecar, in `candidates`) to the
    others of them; the keys whose sharers changed."""
    names = sorted(c.invoice.name for c in cands)
    changed = set()
    for name in names:
        cand = candidates[name]
        others = tuple(n for n in names if n != name)
        if cand.sharers != others:
            candidates[name] = replace(cand, sharers=others)
            changed.add(name)
    return changed


def set_sharers(candidates: dict[str, Candidate]) -> None:
    """Set each candidate's sharers: the other invoice files of the same sidecar."""
    groups: dict[str, list[Candidate]] = {}
    for cand in candidates.values():
        groups.setdefault(cand.sidecar.name, []).append(cand)
    for group in groups.values():
        # A lone file keeps the very candidate it had (a rescan's `known`): none to set.
        if len(group) > 1 or group[0].sharers:
            with_sharers(group, candidates)


def set_look_alikes(cfg: OutboxConfig, candidates: dict[str, Candidate],
                      folds: Mapping[str, tuple[str, ...]]) -> None:
    """Set each candidate's look_alikes from the listing's other names (`folds`)."""
    # As the index keeps them (OutboxIndex._by_sidecar): nearly every sidecar has one
    # invoice file, and a one-tuple is cheaper to make than a list (20,000 a rescan).
    owners: dict[str, tuple[str, ...]] = {}
    for key, cand in candidates.items():
        side = cand.sidecar.name
        owners[side] = (*owners[side], key) if side in owners else (key,)
    for key, cand in candidates.items():
        candidates[key] = with_look_alikes(cand, folds.get(alike_key(cfg, cand.sidecar.name)),
                                           owners)
