"""The delivery's classification, fuzzed (answerfuzz.py; docs/development.md, Fuzzing the
delivery): a bounded sweep of generated answers with a fixed seed, each delivered through
HttpDeliverer (with a token set) and held to docs/protocol.md's outcome for it, its
receipt id or Retry-After floor, no token in anything kept or said, nothing escaping.
httpx.MockTransport hands the answers over: this is the classification's unit test; the
wire's faults are test_fuzz_wire.py's, whole attempts test_fuzz_attempts.py's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from delivery.answerfuzz import PAUSE, REJECT, RETRY, SENT, answers
from delivery.answeroracle import sweep

SEED = 20261207
CASES = 1500


def test_generated_answers_each_end_as_the_protocol_says(tmp_path: Path) -> None:
    """CASES answers made from SEED — every status from 100 to 599 and some that are
    none (0, 600, 999), Retry-After in every form, charsets no text codec reads,
    receipts with fields missing, odd, extra, nested, huge, not UTF-8, NaN, duplicate
    keys, naming another bundle's id or the token — each ends as docs/protocol.md
    says: sent with the receipt id the answer gave, retried or paused with the floor
    its Retry-After asks for, or rejected; no exception escapes; the token is in
    nothing kept or said. Every failing answer is listed with its recipe, to be
    minimised into a test of its own (`python -m bench.fuzzanswers` sweeps more)."""
    started = time.monotonic()
    failed, outcomes = sweep(SEED, CASES, tmp_path / "work")
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
