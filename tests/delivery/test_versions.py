"""A correction waits for the earlier version of its invoice (daemon/delivery/versions.py): when it
looks again, and that it never misses the end of the attempt it waits for."""

from __future__ import annotations

from daemon import logs
from daemon.delivery.versions import EARLIER_POLL_SECONDS, Versions
from daemon.journal import Journal, iso_in


def two_versions(journal: Journal) -> tuple[int, int]:
    """INV-1.xml found first, then its correction; both claimed and on their way."""
    first = journal.create("INV-1.xml", "delivering", bundle_id="a" * 64,
                           invoice_ids=["INV-1"])
    second = journal.create("INV-1.xml", "delivering", bundle_id="b" * 64,
                            invoice_ids=["INV-1"])
    return first, second


def test_a_wait_that_began_as_the_earlier_attempt_ended_looks_again_at_once(
        journal: Journal) -> None:
    """The correction saw the first version on its way; before it listened for the end
    of that one's attempt, the attempt ended (a 503: retrying now, tried in an hour) and
    woke nobody. The correction looks again at once instead of waiting an hour on what it
    saw before."""
    first, second = two_versions(journal)
    versions = Versions(journal)
    seen = versions.earlier(journal.get(second))
    assert seen is not None and seen.id == first
    journal.transition(first, "retrying", attempts=1, next_attempt_at=iso_in(3600))
    assert versions.attempt_ended(first) == []  # nobody listened yet

    assert versions.wait(journal.get(second), seen, 300.0, logs.get()) == 0.0
    assert versions.attempt_ended(first) == [second]  # listening from then on


def test_a_wait_looks_again_by_what_the_earlier_bundle_is_doing(journal: Journal) -> None:
    """Behind a first version retried in 100 s: just after that try. Behind one queued or
    being posted: only when its attempt ends (at the latest after retry_max_seconds).
    Behind a claim under way: in a moment."""
    first, second = two_versions(journal)
    versions = Versions(journal)
    log = logs.get()

    queued = journal.get(first)
    assert versions.wait(journal.get(second), queued, 300.0, log) == 300.0
    assert journal.get(second).state == "retrying"
    assert journal.get(second).next_attempt_at is None

    journal.transition(first, "retrying", next_attempt_at=iso_in(100))
    put_off = journal.get(first)
    delay = versions.wait(journal.get(second), put_off, 300.0, log)
    assert 99.0 < delay <= 100.0 + EARLIER_POLL_SECONDS
    assert journal.get(second).next_attempt_at == put_off.next_attempt_at

    journal.transition(first, "claiming", next_attempt_at=None)
    assert versions.wait(journal.get(second), journal.get(first), 300.0, log) == \
        EARLIER_POLL_SECONDS
    assert versions.attempt_ended(first) == [second]
