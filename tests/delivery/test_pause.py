"""One configuration problem pauses every delivery (pause.py, docs/protocol.md Answers):
once two bundles in a row are paused, no other is posted while the pause lasts, then
one goes first and the others wait for its answer; an answer that is no pause sends
them at once; a reload (a new deliverer) ends it. On a clock the test sets."""

from __future__ import annotations

from daemon.delivery.pause import DeliveryPause

WHY = "HTTP 401: check [delivery] url and token (the answer to INV-2.xml)"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def paused(clock: Clock, d: object) -> DeliveryPause:
    """Rows 1 and 2 paused in a row with `d`, for 300 s."""
    pause = DeliveryPause(clock)
    pause.begin(d, 1, 300.0, WHY)
    pause.begin(d, 2, 300.0, WHY)
    return pause


def test_while_a_pause_lasts_every_other_bundle_waits_for_what_is_left_of_it() -> None:
    clock, d = Clock(), object()
    pause = paused(clock, d)
    assert pause.hold(d, 3, fallback=300) == (300.0, WHY)
    clock.t += 100
    assert pause.hold(d, 4, fallback=300) == (200.0, WHY)


def test_one_bundle_paused_alone_holds_back_no_other() -> None:
    """A receiver that answers one bundle 404 for that bundle's own reason, and accepts
    the others: that bundle alone waits; the others are not held back by it, also when
    it is paused again after answers to them."""
    clock, d = Clock(), object()
    pause = DeliveryPause(clock)
    pause.begin(d, 1, 300.0, WHY)
    assert pause.hold(d, 2, fallback=300) is None
    assert pause.end(d) == {}  # row 2 was accepted
    pause.begin(d, 1, 300.0, WHY)  # row 1 paused again
    assert pause.hold(d, 3, fallback=300) is None
    pause.begin(d, 1, 300.0, WHY)  # and again, with nothing in between: still one bundle
    assert pause.hold(d, 3, fallback=300) is None


def test_when_the_pause_is_over_one_goes_first_and_the_others_wait_for_its_answer() -> None:
    clock, d = Clock(), object()
    pause = paused(clock, d)
    assert pause.hold(d, 3, fallback=300) is not None  # held while it lasts
    clock.t += 300
    assert pause.hold(d, 3, fallback=300) is None  # the first to come after it
    assert pause.hold(d, 4, fallback=300) == (300, WHY)  # waits for row 3's answer
    assert pause.hold(d, 5, fallback=300) == (300, WHY)
    assert pause.end(d) == {4: 0.0, 5: 0.0}  # row 3 was answered: 4 and 5 go at once
    assert pause.hold(d, 4, fallback=300) is None and pause.end(d) == {}


def test_a_first_one_paused_again_keeps_the_others_waiting_as_long() -> None:
    clock, d = Clock(), object()
    pause = paused(clock, d)
    clock.t += 300
    assert pause.hold(d, 3, fallback=300) is None
    assert pause.hold(d, 4, fallback=300) == (300, WHY)
    assert pause.hold(d, 5, fallback=300) == (300, WHY)
    pause.begin(d, 3, 300.0, "HTTP 403: check [delivery] url and token")
    assert pause.hold(d, 4, fallback=300) == (300.0, "HTTP 403: check [delivery] url and token")
    # Both still remembered, to go when it ends: row 5 too, which did not come again.
    assert pause.end(d) == {4: 0.0, 5: 0.0}


def test_a_first_one_without_an_answer_lets_the_next_go_first() -> None:
    """The first bundle after the pause could not be posted (its files unreadable, say):
    no answer began or ended the pause, so the next one to come goes first instead of
    every bundle waiting for good."""
    clock, d = Clock(), object()
    pause = paused(clock, d)
    clock.t += 300
    assert pause.hold(d, 3, fallback=300) is None
    assert pause.hold(d, 4, fallback=300) is not None
    pause.attempted(d, 4)  # not the first one: changes nothing
    assert pause.hold(d, 5, fallback=300) is not None
    pause.attempted(d, 3)
    assert pause.hold(d, 5, fallback=300) is None


def test_a_new_deliverer_of_a_reload_is_not_held_by_the_old_ones_pause() -> None:
    clock, old, new = Clock(), object(), object()
    pause = paused(clock, old)
    assert pause.hold(new, 3, fallback=300) is None
    assert pause.end(new) == {}
    assert pause.hold(old, 4, fallback=300) is not None  # an attempt still on the old one
    pause.begin(new, 5, 300.0, WHY)  # the new one's first pause: one bundle, no hold
    assert pause.hold(new, 6, fallback=300) is None


def test_the_first_one_held_back_by_something_else_still_goes_first_when_it_comes_again(
        ) -> None:
    """The first bundle after the pause was let through, but not posted (the receiver's
    own hold kept it back, or its count could not be written): when it comes again it
    still goes first, and the others still wait for it — not every bundle held back for
    good, the first one among them, until a reload."""
    clock, d = Clock(), object()
    pause = paused(clock, d)
    clock.t += 300
    assert pause.hold(d, 3, fallback=300) is None
    assert pause.hold(d, 3, fallback=300) is None  # again, not yet attempted
    assert pause.hold(d, 4, fallback=300) == (300, WHY)


def test_after_an_answer_that_ended_a_pause_one_bundle_paused_holds_back_no_other() -> None:
    """An acceptance ends the pause and its count: the next bundle paused is the first
    of a new count, so the others still go (not held back again on one 401)."""
    clock, d = Clock(), object()
    pause = paused(clock, d)
    assert pause.end(d) == {}
    pause.begin(d, 3, 300.0, WHY)
    assert pause.hold(d, 4, fallback=300) is None
