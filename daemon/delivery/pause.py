"""A configuration problem pauses every delivery, not only the bundles that met it
(docs/protocol.md, Answers).

A 401, 403 or 404, a redirect or a proxy's 407 answers our url, token or proxy, which
every bundle shares. Posting each of the other bundles anyway only earned each the same
answer once every `retry_max_seconds`: a receiver saw hundreds of refused logins (some
lock an account for that) and whole bundles uploaded to be refused. So once two
bundles in a row are paused (no answer in between that was not a pause), the others
are not posted until the pause is over; then one bundle goes first, and the others wait
for its answer. Any answer that is not a pause ends it, and the bundles held back go at
once.

Two, not one: a receiver that answers one bundle 403 or 404 for a reason of that
bundle's (against the protocol, but it happens) must not hold back every other bundle,
which it accepts; that bundle alone is paused, each time, between the others' answers.

A pause belongs to the deliverer whose answer it was: a reload makes a new deliverer
(the url or token may be fixed), and a restart starts without one, so either ends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

STRIKES = 2  # bundles paused in a row, with no other answer between, that pause all
# How a bundle held back by a pause begins its error (then the pause's own): the
# clerks' page knows it by this (clerkwords.py).
HELD_BACK = "waiting while deliveries are paused — "


@dataclass
class Gate:
    """Every bundle held back until `until`; then one goes first and the others wait for
    its answer. What a pause and a receiver's hold (throttle.py) share."""

    until: float  # on the loop's clock (monotonic)
    why: str  # the error the held bundles show
    first: int | None = None  # the row that goes first once it is over
    held: set[int] = field(default_factory=set)  # rows held back, to go when it ends

    def admit(self, row_id: int, now: float) -> float | None:
        """None when row_id may go (it is over, and this row goes first); else the
        seconds left (none or fewer once it is over: the first row's answer is awaited),
        row_id counted among the held."""
        left = self.until - now
        if left <= 0 and self.first in (None, row_id):
            self.first = row_id
            self.held.discard(row_id)
            return None
        self.held.add(row_id)
        return left


class DeliveryPause:
    """Shared by the delivery workers; every method is safe from any thread."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._deliverer: object | None = None  # whose answers the state below is of
        self._strikes: set[int] = set()  # rows paused since the last other answer
        self._pause: Gate | None = None
        self._lock = threading.Lock()

    def hold(self, deliverer: object, row_id: int, fallback: float) -> tuple[float, str] | None:
        """(seconds to wait, why) when this row must not be posted now; None when it may
        go (no pause, or the pause is over and this row goes first). A row held while
        the first one's answer is awaited waits `fallback` seconds, unless that answer
        comes sooner (end() says which rows to try then)."""
        with self._lock:
            pause = self._pause if self._deliverer is deliverer else None
            if pause is None:
                return None
            left = pause.admit(row_id, self.clock())
            if left is None:
                return None
            return (left if left > 0 else fallback), pause.why

    def begin(self, deliverer: object, row_id: int, delay: float, why: str) -> None:
        """An attempt of row_id with `deliverer` was paused for `delay` seconds. Once
        STRIKES bundles are so in a row, the others wait as long (those held back
        already come again when theirs ends, and are held again)."""
        with self._lock:
            if self._deliverer is not deliverer:  # a reload's: it starts afresh
                self._deliverer, self._strikes, self._pause = deliverer, set(), None
            self._strikes.add(row_id)
            if len(self._strikes) < STRIKES:
                return
            held = self._pause.held if self._pause is not None else set()
            self._pause = Gate(self.clock() + delay, why, held=held)

    def attempted(self, deliverer: object, row_id: int) -> None:
        """An attempt of row_id with `deliverer` has ended. If it went first after a pause
        and its outcome neither began a pause again nor ended it (no answer: the bundle's
        files could not be read, say), the next row to come goes first instead."""
        with self._lock:
            pause = self._pause if self._deliverer is deliverer else None
            if pause is not None and pause.first == row_id:
                pause.first = None

    def end(self, deliverer: object) -> dict[int, float]:
        """An attempt with `deliverer` got an answer that is no pause: the rows held back,
        each to be tried at once. (An answer to a deliverer a reload replaced says
        nothing of the one in force.)"""
        with self._lock:
            if self._deliverer is not deliverer:
                return {}
            pause, self._pause, self._strikes = self._pause, None, set()
            return {row_id: 0.0 for row_id in pause.held} if pause is not None else {}
