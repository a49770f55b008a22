"""A receiver that asks for time (429 with Retry-After) is not asked again by any
bundle before that time: the real daemon against the reference receiver on 127.0.0.1
(`outboxd receiver --fail-first 429:1`), counting the POSTs it gets."""

from __future__ import annotations

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

BUNDLES = 8
# The least a Retry-After in seconds can ask for: what it shows is the same at any length.
RETRY_AFTER = 1
# The receiver logs each request once its answer is written, so the first POST after
# the hold may be logged a moment less than RETRY_AFTER after the 429's line (which
# came after its answer too): a tenth of a second for that order, not a wait.
LOG_ORDER = 0.1


def test_eight_queued_bundles_wait_out_one_429_and_are_each_posted_once(
        env: Env, start_receiver, start_daemon) -> None:
    """Eight bundles queued; the receiver answers the first POST 429 with Retry-After: 1,
    then accepts. No POST comes within that second (before, the other seven were posted at
    once, and with a receiver that kept refusing them, each again after its own wait);
    then one goes first and the rest follow: 9 POSTs in all, each bundle sent once.
    One delivery worker, so that no other POST is already under way when the 429 comes
    (those are posted before the receiver's word, and would be counted in the window)."""
    receiver = start_receiver("--fail-first", f"429:{RETRY_AFTER}")
    env.write_config(receiver.url, delivery={"concurrency": 1})
    for n in range(BUNDLES):
        drop_bundle(env.outbox, f"INV-{n}", {"a.pdf": pdf_bytes(1, f"INV-{n}")})
    start_daemon()
    wait_for(lambda: len(env.sent_bundles()) == BUNDLES, timeout=60,
             what="all eight bundles sent")
    requests = receiver.requests()
    assert [r["status"] for r in requests] == [429] + [201] * BUNDLES
    refused_at = requests[0]["monotonic"]
    soonest = min(r["monotonic"] for r in requests[1:]) - refused_at
    assert soonest >= RETRY_AFTER - LOG_ORDER, \
        f"a POST {soonest:.2f} s after the 429 that asked for {RETRY_AFTER} s"
    assert len({r["idempotency_key"] for r in requests[1:]}) == BUNDLES
