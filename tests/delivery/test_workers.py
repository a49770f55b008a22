"""The delivery workers' order: deliveries before archives, an archive that waited
ARCHIVE_WAIT before new deliveries, archives done at stop, a row never twice in
flight. Real threads; the attempts are stand-ins that say what they were."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from daemon.delivery.workers import ARCHIVE_WAIT, JOURNAL_RETRY, DeliveryWorkers
from daemon.errors import JournalError, OutboxdError
from tests.helpers import needs_proc, os_thread_name, wait_for


class Attempts:
    """Finisher.attempt as the workers see it: a row's first attempt "delivers" and
    hands its archive back (archive_later); its next attempt "archives" it. The
    first delivery waits for `go`, so the test can queue behind it."""

    def __init__(self, after_delivery: Callable[[int], None] | None = None) -> None:
        self.log: list[str] = []
        self.started = threading.Event()  # the first delivery is under way
        self.go = threading.Event()
        self.delivered: set[int] = set()
        self.workers: DeliveryWorkers | None = None
        self.after_delivery = after_delivery

    def __call__(self, row_id: int) -> float | None:
        assert self.workers is not None
        if row_id in self.delivered:
            self.log.append(f"archive {row_id}")
            return None
        if not self.log:
            self.started.set()
            assert self.go.wait(10), "the test never let the first delivery go"
        self.log.append(f"deliver {row_id}")
        self.delivered.add(row_id)
        self.workers.archive_later(row_id)
        if self.after_delivery is not None:
            self.after_delivery(row_id)
        return None


def _workers(attempts: Attempts, clock: Callable[[], float] = lambda: 0.0,
             stopping: Callable[[], bool] = lambda: False,
             wake: Callable[[], None] = lambda: None) -> DeliveryWorkers:
    workers = DeliveryWorkers(attempt=attempts, schedule=lambda row, delay: None,
                              wake=wake, stopping=stopping, retry_max=lambda: 60.0,
                              clock=clock)
    attempts.workers = workers
    return workers


def _first_delivery_started(attempts: Attempts) -> None:
    # The one worker has taken row 1 and waits for `go`: the rest queue behind it.
    assert attempts.started.wait(10), "the first delivery never started"


def _three_rows(attempts: Attempts, workers: DeliveryWorkers) -> None:
    """One worker; rows 2 and 3 queued while it delivers row 1; all six attempts done."""
    workers.start(1)
    workers.queue(1)
    _first_delivery_started(attempts)
    workers.queue(2)
    workers.queue(3)
    attempts.go.set()
    wait_for(lambda: len(attempts.log) == 6, timeout=10, what="six attempts")


def test_queued_deliveries_go_before_the_archives_of_delivered_bundles() -> None:
    attempts = Attempts()
    workers = _workers(attempts)
    _three_rows(attempts, workers)
    assert attempts.log == ["deliver 1", "deliver 2", "deliver 3",
                            "archive 1", "archive 2", "archive 3"]
    assert workers.stop(5)


def test_an_archive_that_waited_archive_wait_goes_before_new_deliveries() -> None:
    """A steady stream of deliveries cannot hold an archive back for longer."""
    now = [0.0]

    def wake() -> None:  # after row 1's delivery: its archive has waited long enough
        now[0] = ARCHIVE_WAIT

    attempts = Attempts()
    workers = _workers(attempts, clock=lambda: now[0], wake=wake)
    _three_rows(attempts, workers)
    assert attempts.log == ["deliver 1", "archive 1", "deliver 2", "deliver 3",
                            "archive 2", "archive 3"]
    assert workers.stop(5)


def test_stop_does_the_waiting_archives_and_starts_no_new_delivery() -> None:
    """At stop the bundles the receiver has are archived (local work, within the grace
    period); a delivery not yet started is left to the next start."""
    stopping = threading.Event()
    attempts = Attempts()
    workers = _workers(attempts, stopping=stopping.is_set)
    workers.start(1)
    workers.queue(1)
    _first_delivery_started(attempts)
    workers.queue(2)
    stopping.set()  # as the service does before it stops the workers
    stopper = threading.Thread(target=lambda: result.append(workers.stop(10)))
    result: list[bool] = []
    stopper.start()
    attempts.go.set()
    stopper.join(15)
    assert result == [True]
    assert attempts.log == ["deliver 1", "archive 1"]


def test_a_row_waiting_for_its_archive_is_not_queued_again() -> None:
    """The loop may queue a row again (a timer, a recovery) after its delivery returned
    and before its archive ran; it is still in flight, so it is archived once and never
    delivered twice."""
    attempts = Attempts()
    requeued: list[int] = []

    def wake() -> None:  # after each attempt, before the worker takes its next
        if not requeued:
            requeued.append(1)
            workers.queue(1)

    workers = _workers(attempts, wake=wake)
    workers.start(1)
    workers.queue(1)
    attempts.go.set()
    wait_for(lambda: len(attempts.log) >= 2, timeout=10, what="two attempts")
    assert workers.stop(5)
    assert requeued == [1]
    assert attempts.log == ["deliver 1", "archive 1"]


def test_an_archive_never_starts_before_the_attempt_that_handed_it_over_ends() -> None:
    """With a second worker idle, the archive handed over by a delivery still waits for
    that delivery's attempt to end: else the row would leave "in flight" while it is
    being archived, and a second archive of it could start beside the first."""
    log: list[str] = []
    archiving = threading.Event()

    def attempt(row_id: int) -> float | None:
        if "deliver 1" in log:
            archiving.set()
            log.append("archive 1")
            return None
        log.append("deliver 1")
        workers.archive_later(1)
        # An idle worker would take the archive now if it could; give it the chance.
        archiving.wait(0.5)
        log.append("delivery of 1 ended")
        return None

    workers = DeliveryWorkers(attempt=attempt, schedule=lambda row, delay: None,
                              wake=lambda: None, stopping=lambda: False,
                              retry_max=lambda: 60.0)
    workers.start(2)
    workers.queue(1)
    wait_for(lambda: "archive 1" in log, timeout=10, what="the archive of row 1")
    assert workers.stop(5)
    assert log == ["deliver 1", "delivery of 1 ended", "archive 1"]


@needs_proc
def test_the_workers_show_as_deliver_n_to_the_os() -> None:
    """`top -H` tells the delivery workers apart from the loop (osthreads.py)."""
    workers = _workers(Attempts())
    workers.start(2)
    try:
        names = sorted(os_thread_name(t) for t in workers._threads)
        assert names == ["deliver-0", "deliver-1"]
    finally:
        assert workers.stop(5)


def test_a_row_asked_for_while_its_attempt_runs_goes_again_at_once() -> None:
    """A reload that brings a row forward while its attempt runs (the old receiver's
    answer is still coming) is not lost: when the attempt ends asking for a retry in an
    hour, the row is scheduled at once instead; a row asked for while only queued is not
    run twice, and one not asked for keeps its delay."""
    running, go = threading.Event(), threading.Event()
    scheduled: list[tuple[int, float]] = []

    def attempt(row_id: int) -> float:
        if row_id == 1:
            running.set()
            assert go.wait(10)
        return 3600.0

    workers = DeliveryWorkers(attempt=attempt, schedule=lambda r, d: scheduled.append((r, d)),
                              wake=lambda: None, stopping=lambda: False,
                              retry_max=lambda: 60.0)
    workers.start(1)
    try:
        workers.queue(1)
        assert running.wait(10)
        workers.queue(2)
        workers.queue(1)  # the reload, while row 1's attempt runs
        workers.queue(2)  # only queued: it runs once, with its own delay
        go.set()
        wait_for(lambda: len(scheduled) == 2, what="both attempts to end")
        assert scheduled == [(1, 0.0), (2, 3600.0)]
    finally:
        go.set()
        workers.stop(5)


def test_after_a_stop_whose_grace_ran_out_running_names_the_abandoned_rows() -> None:
    """A delivery that hangs past the grace period: stop() says False and running()
    names its row, for the service's log of what the next start resumes."""
    attempts = Attempts()
    workers = _workers(attempts)
    workers.start(1)
    workers.queue(7)
    _first_delivery_started(attempts)
    try:
        assert workers.stop(0.1) is False
        assert workers.running() == {7}
    finally:
        attempts.go.set()
    assert wait_for(lambda: not workers.running(), timeout=10)


def test_an_attempts_error_is_said_even_when_its_bundle_cannot_be_named() -> None:
    """An attempt that fails unexpectedly, and the journal cannot say which bundle its
    row is (the error may be the journal's): the error is still logged, on the bare log
    with the row, and the row is retried after retry_max — not lost with the event."""
    scheduled: list[tuple[int, float]] = []

    def attempt(row_id: int) -> float:
        raise RuntimeError("a bug")

    def log_for(row_id: int) -> object:
        raise RuntimeError("database is locked")

    workers = DeliveryWorkers(attempt=attempt, schedule=lambda r, d: scheduled.append((r, d)),
                              wake=lambda: None, stopping=lambda: False,
                              retry_max=lambda: 60.0, log_for=log_for)
    with capture_logs() as said:
        workers.start(1)
        try:
            workers.queue(4)
            wait_for(lambda: scheduled, what="the attempt to end")
        finally:
            workers.stop(5)
    assert scheduled == [(4, 60.0)]
    [event] = [e for e in said if e["event"] == "unexpected error while delivering"]
    assert event["row"] == 4 and event["log_level"] == "error"


@pytest.mark.parametrize(("escapes", "delay", "said"), [
    (JournalError("database is locked"), JOURNAL_RETRY, True),
    (JournalError("disk I/O error", reported=True), JOURNAL_RETRY, False),
    (OutboxdError("said plainly"), 60.0, True),
], ids=["journal", "journal-reported", "outboxd-error"])
def test_an_outboxd_error_of_an_attempt_is_retried_by_its_kind_and_said_once(
        escapes: OutboxdError, delay: float, said: bool) -> None:
    """An attempt that ends in an error of ours: a journal that cannot be written is
    looked at again after JOURNAL_RETRY (it backs off by itself), not after retry_max
    (an hour of a bundle stuck for a lock held a second); any other after retry_max.
    Its line ("delivery step failed", with the row) is said once: not again where the
    journal has said it already. The row is never dropped."""
    scheduled: list[tuple[int, float]] = []

    def attempt(row_id: int) -> float:
        raise escapes

    workers = DeliveryWorkers(attempt=attempt, schedule=lambda r, d: scheduled.append((r, d)),
                              wake=lambda: None, stopping=lambda: False,
                              retry_max=lambda: 60.0)
    with capture_logs() as lines:
        workers.start(1)
        try:
            workers.queue(5)
            wait_for(lambda: scheduled, what="the attempt to end")
        finally:
            workers.stop(5)
    assert scheduled == [(5, delay)]
    failed = [e for e in lines if e["event"] == "delivery step failed"]
    assert failed == ([{"event": "delivery step failed", "row": 5, "error": str(escapes),
                        "log_level": "error"}] if said else [])
