"""The back-off (daemon/delivery/backoff.py): full jitter within the doubling ceiling, a
receiver's Retry-After as its floor (at most a day), without limit on the attempts."""

from __future__ import annotations

import random

import pytest

from daemon.delivery.backoff import backoff


class TestBackoff:
    @pytest.mark.parametrize("attempt", [1, 2, 3, 5, 9, 12, 40])
    def test_within_full_jitter_bounds(self, attempt: int) -> None:
        """Delay is in [0, min(cap, base * 2**(n-1))]."""
        rng = random.Random(attempt)
        ceiling = min(300.0, 1.0 * 2 ** (attempt - 1))
        delays = [backoff(attempt, 1.0, 300.0, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.5  # jitter really spans the range

    def test_jitter_is_random(self) -> None:
        """Full jitter: not the same delay every time."""
        rng = random.Random(7)
        assert len({backoff(4, 1.0, 300.0, rng=rng) for _ in range(20)}) > 1

    def test_seeded_is_reproducible(self) -> None:
        """Same seed, same delays."""
        a = [backoff(n, 0.5, 10, rng=random.Random(3)) for n in range(1, 8)]
        b = [backoff(n, 0.5, 10, rng=random.Random(3)) for n in range(1, 8)]
        assert a == b

    def test_retry_after_is_a_floor(self) -> None:
        """Retry-After is honoured as the least delay."""
        rng = random.Random(1)
        assert all(backoff(1, 1.0, 300.0, retry_after=30, rng=rng) >= 30 for _ in range(50))

    def test_retry_after_is_a_floor_even_above_retry_max(self) -> None:
        """A receiver's "come back in an hour" is honoured even above retry_max_seconds
        (docs/protocol.md, Answers): the next attempt waits the whole hour."""
        assert backoff(1, 1.0, 300.0, retry_after=3600, rng=random.Random(1)) == 3600.0

    def test_retry_after_over_a_day_counts_as_a_day(self) -> None:
        """Retry-After values over 24 h wait 24 h, not longer."""
        assert backoff(1, 1.0, 300.0, retry_after=10 * 86400, rng=random.Random(1)) == 86400.0

    def test_endless_retries_do_not_overflow(self) -> None:
        """Retries go on without limit: attempt 5000 still gives a delay within the cap."""
        rng = random.Random(5)
        assert 0 <= backoff(5000, 1.0, 300.0, rng=rng) <= 300.0
        assert 0 <= backoff(10**6, 0.05, 0.5, retry_after=0.1, rng=rng) <= 0.5
