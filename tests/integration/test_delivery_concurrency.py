"""`[delivery] concurrency`: how many bundles the real daemon has in flight at once, seen
by a receiver on 127.0.0.1 that holds the POSTs it gets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import Env, journal_states
from helpers import answering_receiver, drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

# How long the receiver looks out for one POST more than the workers there should be,
# once every bundle is claimed and the ones without a worker wait in its queue. An idle
# worker takes a queued bundle at once: from the test seeing all five `delivering` in the
# journal to an idle worker's POST at the receiver took at most 0.01 s on a 2-core test
# machine (concurrency 5, 20 runs), 0.02 s with both cores kept busy (concurrency 4, 10
# runs). 1.5 s is over 70 times that, so a fourth worker cannot hide behind a slow
# machine; and the watch ends the moment a fourth POST arrives, so the window costs its
# full length only when the test passes. It is a window for an absence, not a wait for
# something to happen.
EXTRA_POST_WINDOW = 1.5
# What the receiver holds a POST for at most, should the test fail before it lets them
# go: well under the daemon's 60 s answer timeout, so nothing is retried meanwhile.
HOLD_LIMIT = 20.0


class Gate:
    """Holds every POST until `release()`. `in_flight`: held now; `most`: the most ever
    held at once; `posts`: all POSTs so far."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.in_flight = self.most = self.posts = 0
        self.released = False

    def enter(self) -> None:
        with self.cond:
            self.in_flight += 1
            self.posts += 1
            self.most = max(self.most, self.in_flight)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.released, timeout=HOLD_LIMIT)

    def leave(self) -> None:
        with self.cond:
            self.in_flight -= 1

    def watch_for_more_than(self, count: int, window: float) -> int:
        """Watch for up to `window` seconds whether more than `count` are held at once
        (returning as soon as that happens); the most held at once."""
        with self.cond:
            self.cond.wait_for(lambda: self.most > count, timeout=window)
            return self.most

    def release(self) -> None:
        with self.cond:
            self.released = True
            self.cond.notify_all()


@contextmanager
def gated_receiver(gate: Gate) -> Iterator[str]:
    """A receiver on 127.0.0.1 that holds each POST at the gate, then answers 201."""

    def answer() -> tuple[int, str, bytes]:
        gate.enter()
        return 201, "application/json", json.dumps({"receipt_id": f"r-{gate.posts}"}).encode()

    with answering_receiver(answer, answered=gate.leave) as url:
        yield url


def test_concurrency_bundles_are_posted_at_once_and_never_more(env: Env, start_daemon) -> None:
    """With concurrency = 3 and five bundles waiting, three POSTs are in flight at the
    same time, never a fourth: the receiver holds every POST until all five bundles are
    claimed (`delivering` in the journal, two of them queued for a worker) and then for
    a window in which a fourth worker would have posted one of those two. Then every
    bundle is posted once and sent."""
    gate = Gate()
    invoices = [f"INV-{n}.xml" for n in range(5)]
    with gated_receiver(gate) as url:
        env.write_config(url, delivery={"concurrency": 3})
        for n in range(5):
            drop_bundle(env.outbox, f"INV-{n}", {"a.pdf": pdf_bytes(1, f"INV-{n}")})
        start_daemon()
        try:
            wait_for(lambda: [journal_states(env).get(i) for i in invoices]
                     == ["delivering"] * 5, what="all five bundles claimed")
            wait_for(lambda: gate.in_flight >= 3, timeout=10, what="three POSTs held at once")
            most = gate.watch_for_more_than(3, EXTRA_POST_WINDOW)
        finally:
            gate.release()
        wait_for(lambda: len(env.sent_bundles()) == 5, timeout=60, what="all five sent")
    assert most == 3, f"{most} POSTs in flight at once with concurrency = 3"
    assert gate.most == 3
    assert gate.posts == 5
