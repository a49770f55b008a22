"""A receiver's 429/503 with Retry-After, met by one bundle's attempt, holds back the
others' (finish.py, retries.py, throttle.py): not posted, each showing the receiver's
time in the journal, kept over a reload, the clerks told it passes by itself; then one
goes first and its acceptance sends the rest at once. A request for time neither is
nor ends a configuration pause."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))

from claimed import Scripted, three_claimed  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.delivery.finish import Finisher  # noqa: E402
from daemon.delivery.pause import HELD_BACK  # noqa: E402
from daemon.delivery.throttle import THROTTLED  # noqa: E402
from daemon.errors import Paused, Rejected, Retryable  # noqa: E402
from daemon.journal import seconds_until  # noqa: E402
from daemon.report.clerkwords import for_clerks  # noqa: E402

URL = "https://operator.example/bundles"


def busy(seconds: float | None = 60.0) -> Retryable:
    return Retryable("HTTP 429 from the receiver", 429, "slow down", seconds)


def accepted(n: int) -> Receipt:
    return Receipt(201, {"receipt_id": f"r-{n}"}, f"r-{n}")


def clocked(p: Any) -> tuple[list[float], list[tuple[int, float]]]:
    """The finisher of `p` on a clock the test moves (clock[0], from 5000 s) and with the
    rows it wakes early, and their delays, noted in `resumed` instead of scheduled."""
    clock = [5000.0]
    resumed: list[tuple[int, float]] = []
    p.finish.clock = lambda: clock[0]
    p.finish.resume = lambda row, delay: resumed.append((row, delay))
    return clock, resumed


class Operator(Scripted):
    """A scripted receiver at URL; `during` (row, finisher) is attempted while the
    POST numbered `during_post` is under way (the delivery workers run side by side)."""

    destination = URL

    def __init__(self, *outcomes: Exception | Receipt) -> None:
        super().__init__(*outcomes)
        self.during: tuple[int, Finisher] | None = None
        self.during_post = 0
        self.other_waits: float | None = None
        self.replaced_by: Operator | None = None  # a reload's deliverer, before `during`

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        if self.during is not None and self.posts + 1 == self.during_post:
            row, finisher = self.during
            if self.replaced_by is not None:
                finisher.d = self.replaced_by  # the reload, during this POST
            self.other_waits = finisher.attempt(row)
        return super().deliver(bundle, manifest)


def test_a_request_for_time_holds_back_every_bundle_until_the_first_after_it_is_taken(
        tmp_path: Path) -> None:
    p, s, (one, two, three) = three_claimed(tmp_path)
    clock, resumed = clocked(p)
    receiver = Operator(busy(60.0), accepted(1), accepted(2), accepted(3))
    p.finish.d = receiver
    first_waits = p.finish.attempt(one)
    assert first_waits is not None and first_waits >= 60

    assert p.finish.attempt(two) == 60.0
    assert receiver.posts == 1  # INV-2 was not posted
    held = p.j.get(two)
    assert held.state == "retrying" and held.attempts == 0
    assert held.last_error is not None and held.last_error.startswith(
        f"{THROTTLED}the receiver asked to wait until ") and "(HTTP 429)" in held.last_error
    assert held.next_attempt_at is not None
    assert 58 <= seconds_until(held.next_attempt_at) <= 60  # the hold's end, honestly
    words = for_clerks(held.last_error) or ""
    assert "busy" in words and "nothing is lost" in words
    assert "tell the admin, who must fix" not in words  # not a pause of ours

    # A reload (a new deliverer, the same receiver) keeps the hold and brings none forward.
    assert p.finish.after_reload(receiver_changed=False) == []
    receiver = Operator(accepted(1), accepted(2), accepted(3))
    p.finish.d = receiver
    clock[0] += 30
    assert p.finish.attempt(three) == 30.0
    assert receiver.posts == 0

    clock[0] += 30  # the hold is over: INV-3 goes first, INV-2 comes meanwhile
    receiver.during, receiver.during_post = (two, p.finish), 1
    assert p.finish.attempt(three) is None
    assert receiver.posts == 1 and receiver.other_waits == s.delivery.retry_max_seconds
    assert p.j.get(three).state == "sent"
    assert resumed == [(two, 0.0)]  # INV-3 was accepted: INV-2 goes at once
    assert p.finish.attempt(two) is None and p.j.get(two).state == "sent"
    assert p.finish.attempt(one) is None and p.j.get(one).state == "sent"
    assert receiver.posts == 3


def test_a_429_without_a_retry_after_holds_back_no_other_bundle(tmp_path: Path) -> None:
    """It gives no time to hold everything for: that bundle backs off on its own."""
    p, _, (one, two, _three) = three_claimed(tmp_path)
    receiver = Operator(busy(None), accepted(2))
    p.finish.d = receiver
    assert p.finish.attempt(one) is not None
    assert p.finish.attempt(two) is None
    assert receiver.posts == 2 and p.j.get(two).state == "sent"


def test_a_request_for_time_does_not_end_a_configuration_pause(tmp_path: Path) -> None:
    """Two 401s pause deliveries; the bundle that goes first after the pause gets a 429
    with Retry-After, which a gateway's rate limit answers before our token is looked
    at: the pause stands, and a held bundle still says what the admin must fix."""
    p, s, (one, two, three) = three_claimed(tmp_path)
    clock = [5000.0]
    p.finish.clock = lambda: clock[0]
    refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
    receiver = Operator(refused, refused, busy(30.0), refused)
    p.finish.d = receiver
    p.finish.attempt(one)
    p.finish.attempt(two)
    clock[0] += s.delivery.retry_max_seconds
    p.finish.attempt(one)  # goes first after the pause: answered 429, Retry-After: 30
    clock[0] += 40  # the receiver's time is over: INV-3 goes first, and is refused
    assert p.finish.attempt(three) is not None
    assert receiver.posts == 4
    # Still the third 401 in a row, no acceptance between: the pause holds INV-2 back
    # (had the 429 ended it, INV-3's 401 would have been the first of a new count).
    assert p.finish.attempt(two) is not None
    assert receiver.posts == 4
    last_error = p.j.get(two).last_error
    assert last_error is not None and last_error.startswith(HELD_BACK)


def test_a_probe_refused_for_our_token_ends_the_receivers_hold_but_not_its_own_pause(
        tmp_path: Path) -> None:
    """The receiver answered the first bundle after its hold with something other than
    a request for time: the hold is over (the others may go; a 401 pauses by itself)."""
    p, _, (one, two, _three) = three_claimed(tmp_path)
    clock, resumed = clocked(p)
    refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
    receiver = Operator(busy(10.0), refused, accepted(2))
    p.finish.d = receiver
    p.finish.attempt(one)
    assert p.finish.attempt(two) == 10.0
    clock[0] += 10
    p.finish.attempt(one)  # the probe: 401
    assert resumed == [(two, 0.0)]
    assert p.finish.attempt(two) is None and receiver.posts == 3


def test_a_bundle_that_goes_first_after_a_pause_and_gets_no_answer_does_not_end_it(
        tmp_path: Path) -> None:
    """Two 401s pause deliveries; the bundle that goes first after the pause cannot reach
    the receiver (no answer, status None): nothing said the token is fixed, so the pause
    stands and the held bundle is not posted — released, each would earn its own 401."""
    p, s, (one, two, three) = three_claimed(tmp_path)
    clock, resumed = clocked(p)
    refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
    unreachable = Retryable("cannot reach the receiver at operator.example:443", None)
    receiver = Operator(refused, refused, unreachable, refused)
    p.finish.d = receiver
    p.finish.attempt(one)
    p.finish.attempt(two)
    clock[0] += s.delivery.retry_max_seconds
    p.finish.attempt(one)  # goes first after the pause: no answer
    assert receiver.posts == 3
    assert resumed == []  # nobody released
    assert p.finish.attempt(three) is not None  # the next goes first instead: a 401
    assert receiver.posts == 4
    assert p.finish.attempt(two) is not None and receiver.posts == 4
    last_error = p.j.get(two).last_error
    assert last_error is not None and last_error.startswith(HELD_BACK)


def test_a_first_bundle_after_the_receivers_wait_that_gets_no_answer_releases_nobody(
        tmp_path: Path) -> None:
    """The receiver's time is over and the bundle that goes first cannot reach it (no
    answer, status None): nothing said the receiver is ready, so the bundles held back
    are not all sent at once; the next bundle to come goes first instead, and its
    acceptance sends them."""
    p, _, (one, two, three) = three_claimed(tmp_path)
    clock, resumed = clocked(p)
    unreachable = Retryable("cannot reach the receiver at operator.example:443", None)
    receiver = Operator(busy(60.0), unreachable, accepted(3))
    p.finish.d = receiver
    p.finish.attempt(one)
    assert p.finish.attempt(two) == 60.0
    clock[0] += 60
    assert p.finish.attempt(one) is not None  # goes first: no answer
    assert receiver.posts == 2 and resumed == []  # nobody released
    assert p.finish.attempt(three) is None  # the next goes first instead, and is taken
    assert receiver.posts == 3 and p.j.get(three).state == "sent"
    assert resumed == [(two, 0.0)]


def test_a_first_bundle_after_the_receivers_wait_refused_for_its_own_fault_ends_the_wait(
        tmp_path: Path) -> None:
    """A refusal (422: this bundle is wrong) is the receiver's answer, no request for time:
    the bundle is quarantined and the bundles held back go at once."""
    p, _, (one, two, _three) = three_claimed(tmp_path)
    clock, resumed = clocked(p)
    refused = Rejected("the receiver rejected the bundle with HTTP 422", 422, "bad")
    receiver = Operator(busy(10.0), refused, accepted(2))
    p.finish.d = receiver
    p.finish.attempt(one)
    assert p.finish.attempt(two) == 10.0
    clock[0] += 10
    assert p.finish.attempt(one) is None and p.j.get(one).state == "quarantined"
    assert resumed == [(two, 0.0)]
    assert p.finish.attempt(two) is None and receiver.posts == 3


def test_a_request_for_time_from_the_receiver_a_reload_replaced_leaves_the_new_ones_hold(
        tmp_path: Path) -> None:
    """A reload names another receiver while a POST to the old one is under way; the new
    receiver asks for a minute (429) and then the old one for ten: the old receiver's
    word says nothing of the new one, so the new one's hold stands and the next bundle
    waits for it, not posted to earn its own 429."""
    p, _, (one, two, three) = three_claimed(tmp_path)
    p.finish.clock = lambda: 5000.0
    new = Operator(busy(60.0))
    old = Operator(busy(600.0))
    old.destination = "https://old-operator.example/bundles"
    old.during, old.during_post, old.replaced_by = (one, p.finish), 1, new
    p.finish.d = old
    assert p.finish.attempt(three) is not None
    assert new.posts == 1 and old.posts == 1
    assert p.finish.attempt(two) == 60.0
    assert new.posts == 1  # held back by the new receiver's hold, not posted
    last_error = p.j.get(two).last_error
    assert last_error is not None and last_error.startswith(THROTTLED)


def test_a_restart_keeps_a_bundle_held_back_by_the_receivers_wait_until_its_end(
        tmp_path: Path) -> None:
    """A restart forgets the receiver's hold, but not what it asked: a bundle held back
    by it is not taken for a paused one (tried at once) but waits for the hold's end
    recorded in the journal."""
    p, s, (one, two, _three) = three_claimed(tmp_path)
    p.finish.clock = lambda: 5000.0
    p.finish.d = Operator(busy(600.0))
    p.finish.attempt(one)
    assert p.finish.attempt(two) == 600.0
    due = dict(Finisher(s, p.j, p.finish.d).recover())
    assert due[two] > 500
