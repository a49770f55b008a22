"""`[delivery] concurrency`: how many bundles the real daemon has in flight at once, seen
by a receiver on 127.0.0.1 that counts the POSTs it holds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import Env
from helpers import answering_receiver, drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean")


class Gate:
    """POSTs in flight: each waits until `wanted` are in flight at once (or a deadline),
    then all go; later ones go straight through. `most`: the most ever in flight."""

    def __init__(self, wanted: int, deadline: float) -> None:
        self.wanted, self.deadline = wanted, deadline
        self.cond = threading.Condition()
        self.in_flight = self.most = self.posts = 0
        self.opened = False

    def enter(self) -> None:
        with self.cond:
            self.in_flight += 1
            self.posts += 1
            self.most = max(self.most, self.in_flight)
            if self.in_flight >= self.wanted:
                self.opened = True
                self.cond.notify_all()
            end = time.monotonic() + self.deadline
            while not self.opened and (left := end - time.monotonic()) > 0:
                self.cond.wait(left)

    def leave(self) -> None:
        with self.cond:
            self.in_flight -= 1


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
    same time (the receiver holds each until it has three), never a fourth beside them;
    every bundle is posted once and sent."""
    gate = Gate(wanted=3, deadline=20)
    with gated_receiver(gate) as url:
        env.write_config(url, delivery={"concurrency": 3})
        for n in range(5):
            drop_bundle(env.outbox, f"INV-{n}", {"a.pdf": pdf_bytes(1, f"INV-{n}")})
        start_daemon()
        wait_for(lambda: len(env.sent_bundles()) == 5, timeout=60, what="all five sent")
    assert gate.opened and gate.most == 3
    assert gate.posts == 5
