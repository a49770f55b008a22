"""One configuration problem pauses every delivery (pause.py, docs/protocol.md Answers):
while it lasts no bundle is posted, then one goes first and the others wait for its
answer; an answer that is no pause sends them at once; a reload (a new deliverer) ends
it. On a clock the test sets."""

from __future__ import annotations

from daemon.pause import DeliveryPause

WHY = "HTTP 401: check [delivery] url and token (the answer to INV-1.xml)"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_while_a_pause_lasts_every_other_bundle_waits_for_what_is_left_of_it() -> None:
    clock = Clock()
    pause, old = DeliveryPause(clock), object()
    assert pause.hold(old, 2, fallback=300) is None  # no pause: it goes
    pause.begin(old, 300.0, WHY)
    assert pause.hold(old, 2, fallback=300) == (300.0, WHY)
    clock.t += 100
    assert pause.hold(old, 3, fallback=300) == (200.0, WHY)


def test_when_the_pause_is_over_one_goes_first_and_the_others_wait_for_its_answer() -> None:
    clock = Clock()
    pause, d = DeliveryPause(clock), object()
    pause.begin(d, 300.0, WHY)
    assert pause.hold(d, 2, fallback=300) is not None  # held while it lasts
    clock.t += 300
    assert pause.hold(d, 2, fallback=300) is None  # the first to come after it
    assert pause.hold(d, 3, fallback=300) == (300, WHY)  # waits for row 2's answer
    assert pause.hold(d, 4, fallback=300) == (300, WHY)
    assert pause.end(d) == {3: 0.0, 4: 0.0}  # row 2 was answered: 3 and 4 go at once
    assert pause.hold(d, 3, fallback=300) is None and pause.end(d) == {}


def test_a_first_one_paused_again_keeps_the_others_waiting_as_long() -> None:
    clock = Clock()
    pause, d = DeliveryPause(clock), object()
    pause.begin(d, 300.0, WHY)
    clock.t += 300
    assert pause.hold(d, 2, fallback=300) is None
    assert pause.hold(d, 3, fallback=300) == (300, WHY)
    pause.begin(d, 300.0, "HTTP 403: check [delivery] url and token")
    assert pause.hold(d, 3, fallback=300) == (300.0, "HTTP 403: check [delivery] url and token")
    assert pause.end(d) == {3: 0.0}  # still remembered, to go when it ends


def test_a_first_one_without_an_answer_lets_the_next_go_first() -> None:
    """The first bundle after the pause could not be posted (its files unreadable, say):
    no answer began or ended the pause, so the next one to come goes first instead of
    every bundle waiting for good."""
    clock = Clock()
    pause, d = DeliveryPause(clock), object()
    pause.begin(d, 300.0, WHY)
    clock.t += 300
    assert pause.hold(d, 2, fallback=300) is None
    assert pause.hold(d, 3, fallback=300) is not None
    pause.attempted(d, 3)  # not the first one: changes nothing
    assert pause.hold(d, 4, fallback=300) is not None
    pause.attempted(d, 2)
    assert pause.hold(d, 4, fallback=300) is None


def test_a_new_deliverer_of_a_reload_is_not_held_by_the_old_ones_pause() -> None:
    clock = Clock()
    pause, old, new = DeliveryPause(clock), object(), object()
    pause.begin(old, 300.0, WHY)
    assert pause.hold(new, 2, fallback=300) is None
    assert pause.end(new) == {}
    assert pause.hold(old, 3, fallback=300) is not None  # an attempt still on the old one
