"""The delivery's classification, fuzzed (answerfuzz.py; docs/development.md, Fuzzing the
delivery): a bounded sweep of generated answers with a fixed seed, each delivered through
HttpDeliverer (with a token set) and held to docs/protocol.md's outcome for it, its
receipt id or Retry-After floor, no token in anything kept or said, nothing escaping.
httpx.MockTransport hands the answers over: this is the classification's unit test; the
wire's faults are test_fuzz_wire.py's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from daemon.delivery.deliver import HttpDeliverer
from daemon.manifest import build_manifest
from delivery.answerfuzz import (
    PAUSE,
    REJECT,
    RETRY,
    SENT,
    TOKEN,
    Answer,
    KnownBundles,
    answers,
    delivered,
    problems,
)
from delivery.test_deliver import http_cfg, make_bundle

SEED = 20261207
CASES = 1500


def answering(given: Iterator[Answer]) -> tuple[httpx.MockTransport, list[Answer]]:
    """A transport that takes each request whole and answers it with the next of
    `given`; and the answers given so far, the last one the latest."""
    sent: list[Answer] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()  # the whole body taken: a 2xx may be a receipt
        sent.append(next(given))
        a = sent[-1]
        # Header values as bytes: a receiver's may be any, not only ASCII.
        return httpx.Response(a.status, content=a.body,
                              headers=[(k.encode(), v.encode()) for k, v in a.headers])
    return httpx.MockTransport(handler), sent


def test_generated_answers_each_end_as_the_protocol_says(tmp_path: Path) -> None:
    """CASES answers made from SEED — every status from 100 to 599 and some that are
    none (0, 600, 999), Retry-After in every form, charsets no text codec reads,
    receipts with fields missing, odd, extra, nested, huge, not UTF-8, NaN, duplicate
    keys, naming another bundle's id or the token — each ends as docs/protocol.md
    says: sent with the receipt id the answer gave, retried or paused with the floor
    its Retry-After asks for, or rejected; no exception escapes; the token is in
    nothing kept or said. Every failing answer is listed with its recipe, to be
    minimised into a test of its own."""
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    transport, sent = answering(iter(answers(SEED, CASES, manifest["bundle_id"])))
    deliverer = HttpDeliverer(http_cfg(token=TOKEN), transport=transport)
    deliverer.bind_journal(KnownBundles())
    failed: list[str] = []
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    try:
        for _ in range(CASES):
            try:
                outcome, what = delivered(deliverer, bundle, manifest)
            except Exception as exc:  # noqa: BLE001 - the oracle's first rule
                failed.append(f"{sent[-1]}: {type(exc).__name__} escaped: {exc}")
                continue
            outcomes[outcome] += 1
            failed += [f"{sent[-1]}: {p}" for p in problems(sent[-1], outcome, what)]
    finally:
        deliverer.close()
    assert not failed, f"{len(failed)} of {CASES} answers:\n" + "\n".join(failed[:20])
    # The sweep reaches every outcome (a generator gone one-sided would pass vacuously).
    assert all(outcomes[kind] >= 10 for kind in (SENT, RETRY, PAUSE, REJECT)), outcomes
    assert time.monotonic() - started < 30  # a quadratic codec came back (punycode)


@pytest.mark.parametrize("seed", range(3))
def test_the_generator_is_reproducible(seed: int) -> None:
    """The same seed makes the same answers (a failure's seed and number find it
    again), Retry-After dates aside, which count from when each answer is made."""
    def recipes(n: int) -> list[tuple[int, str, bytes]]:
        return [(a.status, a.recipe, a.body) for a in answers(seed, n, "ab" * 32)]
    assert recipes(60) == recipes(60)
