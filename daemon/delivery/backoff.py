"""How long to wait before trying again: exponential back-off with full jitter, a
receiver's Retry-After as its floor (docs/protocol.md, Answers). Delivery attempts
(retries.py), archive moves (moves.py) and the looks at an outbox that went away
(outage.py) all wait by it."""

from __future__ import annotations

import random

RETRY_AFTER_LIMIT = 86400.0  # a Retry-After over 24 h counts as 24 h


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """`base` doubled at each attempt after the first, at most `cap`: the back-off's
    schedule without jitter (the outbox's looks during an outage wait exactly this)."""
    # Retries go on without limit: clamp the exponent, or 2**n overflows a float.
    return min(cap, base * 2.0 ** min(max(0, attempt - 1), 60))


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped at `cap`; a server's
    Retry-After is a floor even above the cap (docs/protocol.md, Answers): a receiver that
    says "come back in an hour" is not asked again every five minutes."""
    delay = (rng or random).uniform(0, backoff_ceiling(attempt, base, cap))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_LIMIT))
    return delay
