"""Index: the outbox as last listed, and which bundles a changed name concerns.

A watcher event names a top-level entry of the outbox: an invoice file, a
sidecar folder (for anything inside it), a marker, or a file beside the
invoice (its `.errors.txt`, a release file). The index maps each such name
to the invoice files (bundle keys) it belongs to, so an event marks exactly
those bundles dirty. Two invoice files with one stem (`A.xml`, `A.pdf`)
share a sidecar, so a name may concern several keys.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from daemon.config import OutboxConfig, ShareConfig
from daemon.names import spelling_twins
from daemon.scan import Candidate, Listing, candidate_for, look


class OutboxIndex:
    def __init__(self, cfg: OutboxConfig, extra_names: Callable[[str], Iterable[str]]
                 = lambda name: (), share: ShareConfig | None = None) -> None:
        self.cfg = cfg
        self.share = share
        self.candidates: dict[str, Candidate] = {}
        self._by_name: dict[str, set[str]] = defaultdict(set)
        # Names beside the invoice file that belong to it (release files, …).
        self._extra_names = extra_names

    def _names_of(self, cand: Candidate) -> list[str]:
        name = cand.name
        return [cand.invoice.name, cand.sidecar.name, cand.marker.name,
                f"{name}.errors.txt", *self._extra_names(name),
                *spelling_twins(cand.sidecar.name)]  # a look-alike folder: an error

    def add(self, cand: Candidate) -> None:
        if cand.invoice.name in self.candidates:
            return
        self.candidates[cand.invoice.name] = cand
        for n in self._names_of(cand):
            self._by_name[n].add(cand.invoice.name)

    def remove(self, key: str) -> None:
        cand = self.candidates.pop(key, None)
        if cand is None:
            return
        for n in self._names_of(cand):
            keys = self._by_name.get(n)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_name[n]

    def rebuild(self) -> None:
        """Derive every candidate again from the configuration (after a reload: another
        sidecar or marker suffix names other folders and files for the same bundles)."""
        keys = list(self.candidates)
        for key in keys:
            self.remove(key)
        for key in keys:
            self.add(candidate_for(self.cfg, key))

    def candidate(self, key: str) -> Candidate:
        return self.candidates.get(key) or candidate_for(self.cfg, key)

    def replace(self, listing: Listing) -> tuple[set[str], set[str]]:
        """Take a full listing; returns (keys that appeared, keys that went)."""
        new, old = set(listing.candidates), set(self.candidates)
        for key in old - new:
            self.remove(key)
        for key in new - old:
            self.add(listing.candidates[key])
        return new - old, old - new

    def touched(self, name: str) -> tuple[set[str], Listing]:
        """The bundle keys an event on root entry `name` concerns, and what `name` is now.

        An invoice file that appeared is added; one that went stays indexed
        until its bundle has been stepped (the step records it as gone).
        """
        now = look(self.cfg, name, self.share)
        for cand in now.candidates.values():
            self.add(cand)
        keys = set(self._by_name.get(name, ()))
        keys.update(now.candidates)
        if name in self.candidates:
            keys.add(name)
        return keys, now
