"""Index: the outbox as last listed, and which bundles a changed name concerns.

A watcher event names a top-level entry of the outbox: an invoice file, a
sidecar folder (for anything inside it), a marker, or a file beside the
invoice (its `.errors.txt`, a release file). The index maps each such name
to the invoice files (bundle keys) it belongs to, so an event marks exactly
those bundles dirty. Two invoice files with one stem (`A.xml`, `A.pdf`)
share a sidecar, so a name may concern several keys.

It also keeps each bundle's look-alike sidecars (`Candidate.look_alikes`: `inv-7/`
made on Windows beside the ERP's `INV-7.xml`, or a Mac's decomposed `Räkning-7/`),
found by the listing and kept up to date by events, so that no bundle's read has
to list the root: the root's names that are not invoice files by their key
(`sidecarnames.alike_key`: case and Unicode form folded, a space or dot at an end, the
sidecar suffix or an invoice extension cut; a copy's name, `INV-7 (1)/`, under the key
of what it is a copy of too), and the bundles by the key of their sidecar. An event on
a root name is then a dict lookup or two away from the bundles it may be a look-alike of.

And the root's folders that are no indexed invoice file's sidecar (`lone`, with their
ctime: lonefolders.py), from the listing and the events, for the page, `status` and the
hint a waiting invoice gets of a folder named close to its own.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.names import ERRORS_SUFFIX, errors_named
from daemon.watching.lonefolders import Near, is_lone, lone_in
from daemon.watching.scan import (
    Candidate,
    Listing,
    candidate_for,
    look,
)
from daemon.watching.sidecarnames import alike_key, alike_keys, with_look_alikes, with_sharers


class OutboxIndex:
    def __init__(self, cfg: OutboxConfig, extra_names: Callable[[str], Iterable[str]]
                 = lambda name: (), share: ShareConfig | None = None) -> None:
        self.cfg = cfg
        self.share = share
        self.candidates: dict[str, Candidate] = {}
        self._by_name: dict[str, set[str]] = defaultdict(set)
        # Names beside the invoice file that belong to it (release files, …).
        self._extra_names = extra_names
        # Root entries now there that are not invoice files, by fold key; and the fold
        # key of each bundle's sidecar with the bundles of that fold. Tuples, not sets:
        # nearly every one holds one name, a backlog holds 20,000 of them, and a set
        # takes four times a tuple's memory.
        self._folds: dict[str, tuple[str, ...]] = {}
        self._by_fold: dict[str, tuple[str, ...]] = {}
        # The invoice files of each sidecar name (nearly always one).
        self._by_sidecar: dict[str, tuple[str, ...]] = {}
        # Root folders without an invoice file of their name: name -> ctime_ns. Counted
        # in `lone_version` at each change, for the page to know it is due.
        self.lone: dict[str, int] = {}
        self.lone_version = 0
        self._near = Near((), cfg.sidecar_suffix)  # the lone folders' names, kept with them
        self._rebuilding = False

    def near(self, cand: Candidate) -> list[str]:
        """The lone folders whose names are close to `cand`'s stem (lonefolders.close),
        any bundle's look-alikes left out (told in that bundle's errors, to be renamed
        after it: the page leaves them out too): a few dict look-ups once the lone
        folders' names are indexed, which they are again only after they changed (and
        at a reload's rebuild: the sidecar suffix they are compared without)."""
        if not self.lone:
            return []
        return [n for n in self._near.of(cand.name, cand.look_alikes)
                if not self._a_look_alike(n)]

    def _a_look_alike(self, name: str) -> bool:
        return any(name in self.candidates[k].look_alikes
                   for f in alike_keys(self.cfg, name) for k in self._by_fold.get(f, ()))

    def _lone(self, name: str, st: os.stat_result | None) -> None:
        """Root entry `name` as it is now (`st`: its lstat, None if gone): lone or not."""
        if st is not None and is_lone(name, st, self._by_sidecar, self.cfg.ignore_patterns):
            if self.lone.get(name) != st.st_ctime_ns:
                self.lone[name], self.lone_version = st.st_ctime_ns, self.lone_version + 1
                self._near.add(name)
        else:
            self._unlone(name)

    def _unlone(self, name: str) -> None:
        if self.lone.pop(name, None) is not None:
            self.lone_version += 1
            self._near.discard(name)

    def _names_of(self, cand: Candidate) -> list[str]:
        name = cand.name
        # Look-alikes of the sidecar are found by their fold key (_by_fold), not here.
        return [cand.invoice.name, cand.sidecar.name, cand.marker.name,
                f"{name}{ERRORS_SUFFIX}", *self._extra_names(name)]

    def _refresh(self, fold: str) -> set[str]:
        """Set the look-alikes of the bundles whose sidecar folds to `fold` from the
        names there now; the keys whose look-alikes changed."""
        keys = self._by_fold.get(fold)
        if not keys:
            return set()
        names = self._folds.get(fold)
        changed = set()
        for key in keys:
            cand = self.candidates[key]
            self.candidates[key] = with_look_alikes(cand, names, self._by_sidecar)
            if self.candidates[key] is not cand:
                changed.add(key)
        return changed

    def add(self, cand: Candidate) -> set[str]:
        """Index an invoice file; the keys of other bundles whose look-alikes it changed
        (its sidecar is no look-alike of theirs)."""
        key = cand.invoice.name
        if key in self.candidates:
            return set()
        self.candidates[key] = cand
        for n in self._names_of(cand):
            self._by_name[n].add(key)
        fold = alike_key(self.cfg, cand.sidecar.name)
        self._by_fold[fold] = (*self._by_fold.get(fold, ()), key)
        side = cand.sidecar.name
        self._by_sidecar[side] = (*self._by_sidecar.get(side, ()), key)
        self._unlone(side)
        # Its sidecar (or a copy of it) may have been another bundle's look-alike as a
        # copy: `Faktura 2/` of Faktura.xml until Faktura 2.pdf (or .xml) comes.
        changed = set().union(*(self._refresh(f) for f in alike_keys(self.cfg, side)))
        return (changed | self._share(side)) - {key}

    def _share(self, side: str) -> set[str]:
        """Set the sharers of the bundles of sidecar `side`; the keys whose changed."""
        keys = self._by_sidecar.get(side, ())
        if len(keys) == 1 and not self.candidates[keys[0]].sharers:
            return set()  # a lone invoice file, the usual case
        return with_sharers([self.candidates[k] for k in keys], self.candidates)

    def sharing(self, key: str) -> tuple[str, ...]:
        """The invoice files indexed with the sidecar of `key` (itself included)."""
        cand = self.candidates.get(key)
        return self._by_sidecar.get(cand.sidecar.name, ()) if cand is not None else ()

    def remove(self, key: str) -> set[str]:
        """Forget an invoice file; the keys of the bundles whose look-alikes changed (its
        sidecar, left behind, is a look-alike of theirs): they are to be stepped."""
        cand = self.candidates.pop(key, None)
        if cand is None:
            return set()
        for n in self._names_of(cand):
            keys = self._by_name.get(n)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_name[n]
        side = cand.sidecar.name
        fold = alike_key(self.cfg, side)
        rest = tuple(k for k in self._by_fold.get(fold, ()) if k != key)
        if rest:
            self._by_fold[fold] = rest
        else:
            self._by_fold.pop(fold, None)
        left = tuple(k for k in self._by_sidecar.get(side, ()) if k != key)
        if left:
            self._by_sidecar[side] = left
        else:
            self._by_sidecar.pop(side, None)
            # Its sidecar left behind is a lone folder now: one lstat, only for a name
            # the root holds (a claim takes the sidecar with the invoice file).
            if not self._rebuilding and side in self._folds.get(alike_key(self.cfg, side), ()):
                try:
                    self._lone(side, os.lstat(self.cfg.path / side))
                except OSError:
                    self._lone(side, None)
        changed = set().union(*(self._refresh(f) for f in alike_keys(self.cfg, side)))
        return changed | self._share(side)

    def rebuild(self) -> None:
        """Derive every candidate again from the configuration (after a reload: another
        sidecar or marker suffix names other folders and files for the same bundles)."""
        keys = list(self.candidates)
        self._rebuilding = True  # the lone folders are looked at once, after
        try:
            for key in keys:
                self.remove(key)
        finally:
            self._rebuilding = False
        # The keys follow the sidecar suffix and the invoice patterns too.
        folds: dict[str, list[str]] = {}
        for name in dict.fromkeys(n for names in self._folds.values() for n in names):
            for fold in alike_keys(self.cfg, name):
                folds.setdefault(fold, []).append(name)
        self._folds = {f: tuple(names) for f, names in folds.items()}
        for key in keys:
            self.add(candidate_for(self.cfg, key))
        # Another sidecar suffix or ignore patterns make other folders lone.
        for name in dict.fromkeys(n for names in self._folds.values() for n in names):
            if name not in self._by_sidecar:
                try:
                    self._lone(name, os.lstat(self.cfg.path / name))
                except OSError:
                    self._lone(name, None)
            else:
                self._lone(name, None)
        self._near = Near(self.lone, self.cfg.sidecar_suffix)  # compared without the new one

    def candidate(self, key: str) -> Candidate:
        return self.candidates.get(key) or candidate_for(self.cfg, key)

    def replace(self, listing: Listing) -> tuple[set[str], set[str]]:
        """Take a full listing; returns (keys that appeared, keys that went). The bundles
        still there take their look-alikes as listed: the rescan's snapshots compare
        them (changes.py), so one that came or went without an event is found."""
        self._folds = dict(listing.folds)
        new, old = set(listing.candidates), set(self.candidates)
        for key in old - new:
            self.remove(key)
        for key in new - old:
            self.add(listing.candidates[key])
        for key, cand in listing.candidates.items():
            known = self.candidates[key]
            # A rescan's listing hands back the very candidates it was given (`known`),
            # unless their look-alikes changed: 20,000 identity checks, nothing more.
            if cand is not known and (cand.look_alikes, cand.sharers) != (
                    known.look_alikes, known.sharers):
                self.candidates[key] = replace(known, look_alikes=cand.look_alikes,
                                               sharers=cand.sharers)
        lone = lone_in(listing.stats, self._by_sidecar, self.cfg.ignore_patterns)
        # One whose lstat failed this time (a share's EIO) stays as it was known.
        lone.update((n, self.lone[n]) for n in listing.unlooked if n in self.lone)
        if lone != self.lone:
            for name in self.lone.keys() - lone.keys():
                self._near.discard(name)
            for name in lone.keys() - self.lone.keys():
                self._near.add(name)
            self.lone, self.lone_version = lone, self.lone_version + 1
        return new - old, old - new

    def stray_errors(self, names: Iterable[str],
                     stats: Mapping[str, os.stat_result] | None = None) -> frozenset[str]:
        """Of root `names`, those named as a NAME.errors.txt of no indexed bundle (the
        page lists them as beside no invoice file): a dict look-up each. None that
        `stats` (a listing's) shows as a folder, which the page never lists as such a
        file (idlefiles.suffixed_names): taken for one, a folder `X.errors.txt` had the
        page written again at a rescan, for nothing on it."""
        return frozenset(n for n in names if errors_named(n) and n not in self._by_name
                         and not (stats is not None and n in stats
                                  and stat.S_ISDIR(stats[n].st_mode)))

    def touched(self, name: str) -> tuple[set[str], Listing]:
        """The bundle keys an event on root entry `name` concerns, and what `name` is now.

        An invoice file that appeared is added; one that went stays indexed
        until its bundle has been stepped (the step records it as gone). A name
        that folds like a bundle's sidecar concerns that bundle: it may be a
        look-alike that came, went or changed.
        """
        now = look(self.cfg, name, self.share)
        keys: set[str] = set()
        for cand in now.candidates.values():
            keys |= self.add(cand)
        keys.update(self._by_name.get(name, ()))
        keys.update(now.candidates)
        self._lone(name, None if now.candidates else now.stats.get(name))
        if name in self.candidates:
            # Another invoice file of its sidecar (held for `sidecar-shared`) is read
            # again at once when this one goes, is renamed or changes. (The file itself
            # is among the keys already: _by_name holds each invoice file's own name.)
            keys.update(self.sharing(name))
        folds = alike_keys(self.cfg, name)
        # The name is under all its keys or none: its own tells which.
        there = name in self._folds.get(folds[0], ())
        came = name in now.stats and not now.candidates and not there
        went = not (name in now.stats and not now.candidates) and there
        for fold in folds:
            names = self._folds.get(fold, ())
            if came:
                self._folds[fold] = (*names, name)
            elif went:
                rest = tuple(n for n in names if n != name)
                if rest:
                    self._folds[fold] = rest
                else:
                    del self._folds[fold]
            if fold in self._by_fold:
                # Look-alikes change only when a name of the fold came or went (invoice
                # files that came or went are refreshed by add and remove); a write
                # inside a sidecar, the usual event, changes none.
                if came or went:
                    self._refresh(fold)
                keys.update(self._by_fold[fold])
        return keys, now
