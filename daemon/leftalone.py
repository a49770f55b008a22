"""Root entries of the outbox that the daemon leaves alone: files that are not
invoice files, and invoice files that cannot be used (a symbolic link, a FIFO or
device, a name that is not UTF-8 or holds control characters). Each is said once
in the log; the unusable invoice files are also kept, until they go, for the
status page — the clerk sees only the share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daemon.names import printable
from daemon.scan import Listing


class LeftAlone:
    def __init__(self, log: Any) -> None:
        self.log = log
        self.refused: dict[str, str] = {}  # invoice file (as shown) → why it cannot be used
        self._said: set[str] = set()

    def seen(self, listing: Listing, patterns: Sequence[str], name: str | None = None
             ) -> bool:
        """Log what was not said yet, and keep the unusable invoice files: all of a full
        listing (`name` None), or what became of the root entry `name` (an event).
        True when those changed (the page shows them)."""
        for other in listing.others:
            if other not in self._said:
                self._said.add(other)
                self.log.info("not an invoice file; left alone", file=other,
                              patterns=patterns)
        for shown, problem in listing.refused:
            if shown not in self._said:
                self._said.add(shown)
                self.log.error("invoice file cannot be used; left alone", file=shown,
                               error=f"{shown}: {problem}")
        if name is None:
            refused = dict(listing.refused)
            changed = refused != self.refused
            self.refused = refused
            return changed
        # An event: only `name` can have changed (the usual event costs a look-up).
        shown = printable(name)
        why = dict(listing.refused).get(shown)
        if self.refused.get(shown) == why:
            return False
        if why is None:
            del self.refused[shown]
        else:
            self.refused[shown] = why
        return True
