"""A receiver that asks for time holds back every delivery, not only the bundle it
answered (docs/protocol.md, Answers).

A 429 (RFC 6585 §4) or 503 (RFC 9110 §15.6.4) with a Retry-After speaks for the
receiver as a whole: "come back in an hour". Honoured per bundle only, each other
bundle was still posted at once and earned the same answer, a whole upload refused
each; with a thousand queued, a thousand refused uploads each period. So such an
answer starts a hold: no bundle is posted to that receiver before it ends; then one
bundle goes first (the probe) and the others wait for its answer. An answer that is no
429/503 with a Retry-After ends the hold and the others go at once; another such answer
starts a new hold. A 429/503 without a Retry-After starts none (each bundle backs off
on its own, as before): the receiver gave no time to hold everything for.

Only the probe's answer ends a hold: a 2xx to a request posted before the hold began
says nothing against it (the receiver's word came after). Any 429/503 with a
Retry-After, whoever's, makes the hold last at least as long as it asks. A probe that
got no answer at all (a connection refused, a timeout) ends nothing; the next bundle to
come goes first instead.

A hold belongs to the receiver whose answer it was (its address), not to a
configuration: a reload that keeps the url keeps it (the operator's word does not
change with our settings), one that names another receiver makes it moot. A restart
forgets it; each held bundle's next attempt, in the journal, is the hold's end, so
none is posted before it (but they then go together, without a probe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from daemon.delivery.backoff import RETRY_AFTER_LIMIT
from daemon.delivery.pause import Gate
from daemon.errors import DeliveryError, Paused

# Answers by which the receiver as a whole asks for time (RFC 6585 §4, RFC 9110
# §15.6.4). A Retry-After on 408, 409 or 425 is about that one request (409: this
# Idempotency-Key is still being processed), so it holds back no other.
THROTTLE_STATUSES = frozenset({429, 503})
# Answers asking for a hold that ends within this many seconds of the one in force
# (several requests in flight, answered alike a moment apart) make it no new hold.
SAME_END = 1.0
# How a bundle held back by a receiver's hold begins its error (then the hold's own): the
# clerks' page knows it by this (clerkwords.py). Not pause.HELD_BACK: nothing of ours
# needs fixing, and nobody needs telling.
THROTTLED = "waiting because the receiver asked for time — "
# How a held bundle's error goes on once the time asked for is over and the first bundle
# sent since waits for its answer (then the hold's words, in brackets).
AWAITING_FIRST = "waiting for the answer to the bundle sent first after the receiver's wait"


def asks_for_time(exc: DeliveryError) -> float | None:
    """The seconds a receiver's answer asks every bundle to wait (at most a day, as the
    back-off counts a Retry-After), or None when it asks for no hold: not a 429 or 503,
    none or a zero Retry-After (which asks for nothing), or a pause of ours (ubl-embedded
    folds another document's 401 in: our settings come first)."""
    if isinstance(exc, Paused) or exc.status not in THROTTLE_STATUSES or not exc.retry_after:
        return None
    return min(exc.retry_after, RETRY_AFTER_LIMIT)


def until_words(wall: datetime, status: int | None) -> str:
    """A hold as the held bundles show it: when the receiver said to come back."""
    return (f"the receiver asked to wait until {wall.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
            f"(HTTP {status})")


@dataclass(frozen=True)
class Change:
    """What an answer did to the hold: `began` (a hold began, or lasts longer) or it
    ended; `why`: the hold's words; `wake`: the rows held back, each to be tried again
    after its delay (to be held again until the new end, or to go)."""

    began: bool
    why: str
    wake: list[tuple[int, float]]


@dataclass
class _Hold(Gate):
    """A receiver's hold: `why` is until_words() (the wall-clock end, for people); the
    row that goes first is the probe, the rows held are woken by its answer."""

    receiver: str = field(kw_only=True)  # whose answer it was (the deliverer's destination)


class ReceiverHold:
    """Shared by the delivery workers; every method is safe from any thread. Methods that
    return rows: those to be tried again after `delay` seconds (the loop's schedule)."""

    def __init__(self, clock: Callable[[], float],
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.wall = wall  # only for the words people read: never for a schedule
        self._hold: _Hold | None = None
        self._lock = threading.Lock()

    def hold(self, receiver: str, row_id: int, fallback: float) -> tuple[float, str] | None:
        """(seconds to wait, why) when this row must not be posted to `receiver` now;
        None when it may go (no hold, or the hold is over and this row goes first). A row
        held while the probe's answer is awaited waits `fallback` seconds, unless that
        answer comes sooner (answered() wakes it)."""
        with self._lock:
            hold = self._hold
            if hold is None or hold.receiver != receiver:
                return None
            left = hold.admit(row_id, self.clock())
            if left is None:
                return None
            if left > 0:
                return left, hold.why
            return fallback, f"{AWAITING_FIRST} ({hold.why})"

    def answered(self, receiver: str, row_id: int, wait: float | None,
                 status: int | None = None) -> Change | None:
        """`receiver` answered row_id's request; `wait`: the seconds it asked for
        (asks_for_time), None when it asked for none. A wait starts a hold, or makes the
        one in force last at least so long (the rows it holds are tried again at once,
        to be held again: their next attempt in the journal is its new end). No wait
        ends the hold only when this row was its probe: the rows held go at once."""
        with self._lock:
            hold = self._hold if self._hold is not None and self._hold.receiver == receiver \
                else None
            if wait is None:
                if hold is None or hold.first != row_id:
                    return None
                self._hold = None
                return Change(False, hold.why, [(row, 0.0) for row in sorted(hold.held)])
            until = self.clock() + wait
            if hold is not None and hold.first != row_id and until < hold.until + SAME_END:
                # The hold asked for already, give or take the answers' own spread: the
                # rows it holds are not woken (each wakes to a journal write) for it.
                hold.until = max(hold.until, until)
                return None
            why = until_words(self.wall() + timedelta(seconds=wait), status)
            held = hold.held if hold is not None else set()
            self._hold = _Hold(until, why, held=held, receiver=receiver)
            return Change(True, why, [(row, 0.0) for row in sorted(held)])

    def attempted(self, receiver: str, row_id: int) -> None:
        """row_id's attempt has ended. If it was the probe and got no answer (answered()
        was not called: a connection refused, a timeout, files that could not be read),
        the next row to come goes first instead."""
        with self._lock:
            hold = self._hold
            if hold is not None and hold.receiver == receiver and hold.first == row_id:
                hold.first = None
