"""A delivery attempt that did not finish: recorded with why and when the next comes
(the back-off, a pause for a configuration problem or a receiver's request for time,
each holding the others back), and which rows a reload or an answer sends again at once.
A part of `Finisher` (a mixin: it shares its journal, settings and the per-row state of
the deliveries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.claiming.recovery import PAUSED
from daemon.configuration.config import Settings
from daemon.delivery.backoff import backoff
from daemon.delivery.deliver import Deliverer, Shared
from daemon.delivery.pause import HELD_BACK, DeliveryPause
from daemon.delivery.throttle import THROTTLED, ReceiverHold, asks_for_time
from daemon.errors import DeliveryError, Paused, Retryable, Untrusted
from daemon.journal import Journal, iso_in


class Retries:
    s: Settings
    j: Journal
    deliverers: Shared
    paused: set[int]
    untrusted: set[int]
    pause: DeliveryPause
    throttle: ReceiverHold
    resume: Callable[[int, float], None]
    _unfollowed: dict[int, str | None]  # recovery's: rows waiting for their moved folder

    def _retry_later(self, row_id: int, attempts: int, exc: Retryable | Paused,
                     log: Any, deliverer: Deliverer | None = None,
                     invoice_file: str = "") -> float:
        """An attempt that failed for now: recorded with why and when the next comes."""
        paused = isinstance(exc, Paused)
        # A pause a new configuration may end: a reload or a restart tries it at once
        # (an untrusted certificate: a reload that changes what is trusted).
        # Not one that also carries a Retry-After (ubl-embedded: another document of
        # the bundle was put off), whose floor stands.
        fixable = paused and exc.retry_after is None
        if fixable:
            self.paused.add(row_id)  # before the look below: a reload after it finds the row
        untrusted = isinstance(exc, Untrusted)
        if untrusted:
            self.untrusted.add(row_id)
        cfg = self.s.delivery
        delay = backoff(attempts, cfg.retry_base_seconds, cfg.retry_max_seconds,
                        exc.retry_after)
        if paused:
            delay = max(delay, cfg.retry_max_seconds)
        if (fixable or untrusted) and deliverer is not None \
                and deliverer is not self.deliverers.current:
            # A reload during the attempt: the answer (a 401, or the certificate found
            # untrusted) was the old configuration's, and after_reload missed the row.
            delay = 0.0
        error = str(exc) + (f": {exc.body[:200]}" if exc.body else "")
        if paused and deliverer is self.deliverers.current:
            self.pause.begin(deliverer, row_id, delay, f"{error} (the answer to {invoice_file})")
        self.j.transition(row_id, "retrying", PAUSED if fixable else "", durable=False,
                          attempts=attempts, last_error=error, next_attempt_at=iso_in(delay))
        (log.error if paused else log.warning)(
            "delivery paused: configuration problem" if paused else "delivery failed; "
            "will retry", error=error, attempts=attempts, retry_in=round(delay, 3))
        return delay

    def _held(self, deliverer: Deliverer, row_id: int, log: Any) -> float | None:
        """The wait of a row that must not be posted now, recorded; None when it may go.
        A pause of ours first: its fix is the admin's, and its words say so."""
        fallback = self.s.delivery.retry_max_seconds
        if (paused := self.pause.hold(deliverer, row_id, fallback)) is not None:
            return self._held_back(row_id, *paused, log)
        receiver = getattr(deliverer, "destination", None)
        if receiver is None or (held := self.throttle.hold(receiver, row_id, fallback)) is None:
            return None
        wait, why = held
        # Not `paused`: a reload changes nothing of what the receiver asked for.
        self.j.transition(row_id, "retrying", "", durable=False, last_error=f"{THROTTLED}{why}",
                          next_attempt_at=iso_in(wait))
        log.debug("delivery held back: the receiver asked for time", why=why,
                  retry_in=round(wait, 3))
        return wait

    def _held_back(self, row_id: int, wait: float, why: str, log: Any) -> float:
        """A bundle not posted because deliveries are paused (pause.py): it shows why, and
        a reload tries it at once, as a paused one."""
        self.paused.add(row_id)
        self.j.transition(row_id, "retrying", PAUSED, durable=False,
                          last_error=f"{HELD_BACK}{why}",
                          next_attempt_at=iso_in(wait))
        log.debug("delivery held back: deliveries are paused", retry_in=round(wait, 3))
        return wait

    def _answered(self, deliverer: Deliverer, row_id: int, exc: DeliveryError | None,
                  log: Any) -> None:
        """What an attempt's outcome (`exc`, None when the receiver took the bundle or
        refused it for good) says of every bundle's: a pause of ours ended, the receiver's
        hold begun, made longer or ended (throttle.py)."""
        wait = asks_for_time(exc) if exc is not None else None
        answered = exc is None or exc.status is not None
        if answered and not isinstance(exc, Paused) and wait is None:
            # The receiver took the request; it may take all. Not a request for time: a
            # gateway's rate limit answers before our token is looked at. Nor no answer
            # at all (unreachable, a reset, a document not kept): nothing said the
            # token or url is mended, and each bundle released would earn its own 401.
            self._pause_ended(deliverer)
        receiver = getattr(deliverer, "destination", None)
        if receiver is None or (exc is not None and exc.status is None):
            return  # no answer (attempted() lets the next bundle go first)
        if receiver != getattr(self.deliverers.current, "destination", None):
            return  # a receiver a reload replaced: its word is not the new one's
        change = self.throttle.answered(receiver, row_id, wait,
                                        exc.status if exc is not None else None)
        if change is None:
            return
        if change.began:
            log.warning("receiver asked for time: no bundle is posted to it until then",
                        why=change.why, held=len(change.wake))
        else:
            log.info("the receiver's wait is over: the bundles held back go now",
                     why=change.why, held=len(change.wake))
        for held_row, delay in change.wake:
            self.resume(held_row, delay)

    def _pause_ended(self, deliverer: Deliverer) -> None:
        """The receiver answered with `deliverer` and did not pause: the bundles held
        back go now."""
        for row_id, delay in self.pause.end(deliverer).items():
            self.resume(row_id, delay)

    def _attempt_ended(self, deliverer: Deliverer, row_id: int) -> None:
        """Whatever the outcome: a row that went first and got no answer lets the next
        one go first instead (pause.py, throttle.py)."""
        self.pause.attempted(deliverer, row_id)
        if (receiver := getattr(deliverer, "destination", None)) is not None:
            self.throttle.attempted(receiver, row_id)

    def after_reload(self, receiver_changed: bool, trust_changed: bool = False) -> list[int]:
        """The rows to try again at once after a reload: those paused for a
        configuration problem, which the new one may have fixed, and when the
        receiver changed, every retry and every attempt under way (another
        receiver's Retry-After, or its outage, says nothing of the new one). A row
        whose attempt is under way goes again as soon as it ends (workers.py). Those
        whose receiver's certificate was not trusted, when what decides trust changed
        (`trust_changed`: [delivery] verify, client_cert, client_key or their files, or
        the environment's CAs): any other reload would only earn each the same failure
        again, at once — with thousands retrying, thousands of handshakes.
        Never a row still waiting for its work folder where the outbox moved to
        (movedwork.py: the share failed the look): its row names the old path, often on
        the old server's mount, which may hang a worker without the start's bound; it is
        tried once a rescan's look answers."""
        if receiver_changed:
            return [row.id for row in self.j.rows(("delivering", "retrying"))
                    if row.id not in self._unfollowed]
        return sorted((self.paused | (self.untrusted if trust_changed else set()))
                      - self._unfollowed.keys())
