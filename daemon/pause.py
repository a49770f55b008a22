"""A configuration problem pauses every delivery, not only the bundle that met it
(docs/protocol.md, Answers).

A 401, 403 or 404, a redirect or a proxy's 407 answers our url, token or proxy, which
every bundle shares. Posting each of the other bundles anyway only earned each the same
answer once every `retry_max_seconds`: a receiver saw hundreds of refused logins (some
lock an account for that) and whole bundles uploaded to be refused. So once an attempt
is paused, the others are not posted until the pause is over; then one bundle goes first,
and the others wait for its answer. Any answer that is not a pause ends it, and the
bundles held back go at once.

A pause belongs to the deliverer whose answer it was: a reload makes a new deliverer
(the url or token may be fixed), and a restart starts without one, so either ends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Pause:
    deliverer: object
    until: float  # on the loop's clock (monotonic)
    why: str  # the paused attempt's error, as the held bundles show it
    first: int | None = None  # the row that goes first once the pause is over
    held: set[int] = field(default_factory=set)  # rows held back, to go when it ends


class DeliveryPause:
    """Shared by the delivery workers; every method is safe from any thread."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._pause: _Pause | None = None
        self._lock = threading.Lock()

    def hold(self, deliverer: object, row_id: int, fallback: float) -> tuple[float, str] | None:
        """(seconds to wait, why) when this row must not be posted now; None when it may
        go (no pause, or the pause is over and this row goes first). A row held while
        the first one's answer is awaited waits `fallback` seconds, unless that answer
        comes sooner (end() says which rows to try then)."""
        with self._lock:
            pause = self._pause
            if pause is None or pause.deliverer is not deliverer:
                return None
            left = pause.until - self.clock()
            if left <= 0 and pause.first in (None, row_id):
                pause.first = row_id
                pause.held.discard(row_id)
                return None
            pause.held.add(row_id)
            return (left if left > 0 else fallback), pause.why

    def begin(self, deliverer: object, delay: float, why: str) -> None:
        """An attempt with `deliverer` was paused for `delay` seconds: the others wait as
        long (those held back already come again when theirs ends, and are held again)."""
        with self._lock:
            held = self._pause.held if self._pause is not None and \
                self._pause.deliverer is deliverer else set()
            self._pause = _Pause(deliverer, self.clock() + delay, why, held=held)

    def attempted(self, deliverer: object, row_id: int) -> None:
        """An attempt of row_id with `deliverer` has ended. If it went first after a pause
        and its outcome neither began a pause again nor ended it (no answer: the bundle's
        files could not be read, say), the next row to come goes first instead."""
        with self._lock:
            pause = self._pause
            if pause is not None and pause.deliverer is deliverer and pause.first == row_id:
                pause.first = None

    def end(self, deliverer: object) -> dict[int, float]:
        """An attempt with `deliverer` got an answer that is no pause: the rows held back,
        each to be tried at once."""
        with self._lock:
            pause = self._pause
            if pause is None or pause.deliverer is not deliverer:
                return {}
            self._pause = None
            return {row_id: 0.0 for row_id in pause.held}
