"""A receiver's 429/503 with Retry-After holds back every bundle (throttle.py,
docs/protocol.md Answers): no bundle is posted to it before the time it gave; then one
goes first and the others wait for its answer; an answer that asks for no time sends
them at once, one that asks again starts a new hold. On clocks the test sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.delivery.throttle import ReceiverHold, asks_for_time
from daemon.errors import Paused, Retryable

R = "https://operator.example/bundles"
OTHER = "https://other.example/bundles"
NOON = datetime(2026, 3, 9, 12, 0, 0, tzinfo=UTC)
WHY = "the receiver asked to wait until 2026-03-09 12:01:00 UTC (HTTP 429)"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def held(clock: Clock, seconds: float = 60.0, row: int = 1) -> ReceiverHold:
    """A hold begun by row's 429 asking for `seconds`, the wall clock at NOON."""
    hold = ReceiverHold(clock, lambda: NOON)
    change = hold.answered(R, row, seconds, 429)
    assert change is not None and change.began
    return hold


def test_only_a_429_or_503_with_a_retry_after_asks_for_time() -> None:
    """No hold from a 429/503 without a Retry-After (each bundle backs off on its own), one
    of 0 (it asks for nothing), another status's Retry-After (408, 409, 425: that one
    request's), or a pause of ours; a Retry-After over a day counts as a day."""
    assert asks_for_time(Retryable("HTTP 429 from the receiver", 429, "", 30.0)) == 30.0
    assert asks_for_time(Retryable("HTTP 503 from the receiver", 503, "", 5.0)) == 5.0
    assert asks_for_time(Retryable("HTTP 429 from the receiver", 429, "", None)) is None
    assert asks_for_time(Retryable("HTTP 503 from the receiver", 503, "", 0.0)) is None
    assert asks_for_time(Retryable("HTTP 409 from the receiver", 409, "", 30.0)) is None
    assert asks_for_time(Retryable("HTTP 500 from the receiver", 500, "", 30.0)) is None
    assert asks_for_time(Paused("HTTP 401: check [delivery] url and token", 429, "",
                                30.0)) is None
    assert asks_for_time(Retryable("HTTP 429 from the receiver", 429, "", 10 ** 9)) == 86400.0


def test_while_a_hold_lasts_no_bundle_goes_and_each_waits_for_what_is_left_of_it() -> None:
    """Every bundle, the one that got the 429 too, waits for the hold's end, and is told
    the wall-clock time the receiver gave, in UTC."""
    clock = Clock()
    hold = held(clock)
    assert hold.hold(R, 2, fallback=300) == (60.0, WHY)
    clock.t += 45
    assert hold.hold(R, 3, fallback=300) == (15.0, WHY)
    assert hold.hold(R, 1, fallback=300) == (15.0, WHY)


def test_when_the_hold_is_over_one_goes_first_and_the_others_wait_for_its_answer() -> None:
    clock = Clock()
    hold = held(clock)
    assert hold.hold(R, 2, fallback=300) is not None
    assert hold.hold(R, 3, fallback=300) is not None
    clock.t += 60
    assert hold.hold(R, 3, fallback=300) is None  # the first to come: the probe
    wait, why = hold.hold(R, 2, fallback=300) or (0.0, "")
    assert wait == 300 and "the bundle sent first" in why and WHY in why
    assert hold.hold(R, 4, fallback=300) is not None  # any newcomer waits too
    change = hold.answered(R, 3, None, 201)
    assert change is not None and not change.began
    assert change.wake == [(2, 0.0), (4, 0.0)]  # accepted: the others go at once
    assert hold.hold(R, 2, fallback=300) is None and hold.hold(R, 4, fallback=300) is None


def test_a_probe_asked_for_time_again_starts_a_new_hold_and_tells_the_held_ones() -> None:
    """The rows held while the probe was out are tried again at once, to be held again
    until the new end (their next attempt in the journal must be it)."""
    clock = Clock()
    hold = held(clock)
    clock.t += 60
    assert hold.hold(R, 1, fallback=300) is None
    assert hold.hold(R, 2, fallback=300) is not None
    change = hold.answered(R, 1, 120.0, 503)
    assert change is not None and change.began and change.wake == [(2, 0.0)]
    assert change.why == "the receiver asked to wait until 2026-03-09 12:02:00 UTC (HTTP 503)"
    assert hold.hold(R, 2, fallback=300) == (120.0, change.why)
    assert hold.hold(R, 1, fallback=300) == (120.0, change.why)  # the probe is no more


def test_a_probe_asked_for_under_a_second_more_still_starts_a_new_hold() -> None:
    """A probe's request for time (an HTTP-date Retry-After half a second ahead) is the
    receiver's new word, never taken for an echo of the hold in force: the rows held
    while the probe was out are woken at once, not left to wait their fallback."""
    clock = Clock()
    hold = held(clock)
    clock.t += 60
    assert hold.hold(R, 1, fallback=300) is None
    assert hold.hold(R, 2, fallback=300) is not None
    change = hold.answered(R, 1, 0.5, 429)
    assert change is not None and change.began and change.wake == [(2, 0.0)]


def test_an_answer_to_a_request_posted_before_the_hold_does_not_end_it() -> None:
    """A 201 to another bundle posted side by side with the one that got the 429: the
    receiver's word came after, and stands."""
    clock = Clock()
    hold = held(clock)
    assert hold.answered(R, 2, None, 201) is None
    assert hold.hold(R, 3, fallback=300) == (60.0, WHY)
    clock.t += 60
    assert hold.hold(R, 3, fallback=300) is None  # the probe
    assert hold.answered(R, 2, None, 201) is None  # still not the probe's answer
    assert hold.hold(R, 4, fallback=300) is not None


def test_a_longer_wait_asked_meanwhile_makes_the_hold_longer_and_a_shorter_one_not() -> None:
    clock = Clock()
    hold = held(clock)
    assert hold.hold(R, 3, fallback=300) is not None
    assert hold.answered(R, 2, 10.0, 429) is None  # shorter: the hold stands
    assert hold.hold(R, 4, fallback=300) == (60.0, WHY)
    assert hold.answered(R, 2, 60.5, 429) is None  # the same end, answers a moment apart
    change = hold.answered(R, 2, 600.0, 429)
    assert change is not None and change.began and change.wake == [(3, 0.0), (4, 0.0)]
    assert hold.hold(R, 3, fallback=300) == (600.0, change.why)


def test_a_probe_that_got_no_answer_lets_the_next_bundle_go_first() -> None:
    """A connection refused or a timeout is no answer: it ends nothing, and the next
    bundle to come goes first instead (not every held one at once)."""
    clock = Clock()
    hold = held(clock)
    clock.t += 60
    assert hold.hold(R, 1, fallback=300) is None
    hold.attempted(R, 1)
    assert hold.hold(R, 2, fallback=300) is None  # the new probe
    assert hold.hold(R, 3, fallback=300) is not None


def test_a_hold_is_the_receivers_whose_answer_it_was() -> None:
    """A reload that names another receiver makes the hold moot there; an answer about
    one receiver neither ends nor starts another's hold."""
    clock = Clock()
    hold = held(clock)
    assert hold.hold(OTHER, 2, fallback=300) is None
    assert hold.answered(OTHER, 2, None, 201) is None
    assert hold.hold(R, 3, fallback=300) == (60.0, WHY)


def test_no_hold_without_a_request_for_time() -> None:
    clock = Clock()
    hold = ReceiverHold(clock, lambda: NOON)
    assert hold.answered(R, 1, None, 429) is None
    assert hold.hold(R, 2, fallback=300) is None
    assert hold.hold(R, 1, fallback=300) is None


def test_the_time_shown_is_the_wall_clock_at_the_answer_plus_the_wait() -> None:
    clock = Clock()
    hold = ReceiverHold(clock, lambda: NOON + timedelta(hours=11, minutes=59))
    change = hold.answered(R, 1, 3600.0, 429)
    assert change is not None
    assert change.why == "the receiver asked to wait until 2026-03-10 00:59:00 UTC (HTTP 429)"
