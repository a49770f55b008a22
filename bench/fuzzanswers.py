"""Fuzz the delivery's classification at length: answers made from a seed, each to a
delivery through HttpDeliverer (a token set), held to docs/protocol.md's outcome for it
— the sweep tests/delivery/test_fuzz_answers.py runs bounded, run as long as you like:

    nice -n 10 .venv/bin/python -m bench.fuzzanswers --seed 7 --cases 100000

Prints what became of the answers by outcome, and each answer that broke the oracle
with its number and recipe (the same seed makes the same answers: minimise one into a
test of its own). Exit 1 if any did. About 500 answers a second on one core; no network
(the answers are handed over by httpx.MockTransport: the wire's faults are
tests/delivery/test_fuzz_wire.py's).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

# The generator and its oracle live with the tests that run them (tests/delivery/
# answerfuzz.py and answeroracle.py), which import them as `delivery.…`.
TESTS = Path(__file__).resolve().parent.parent / "tests"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--show", type=int, default=20, help="how many failures to print")
    args = ap.parse_args()
    sys.path.insert(0, str(TESTS))
    fuzz = importlib.import_module("delivery.answeroracle")
    work = Path(tempfile.mkdtemp(prefix="outboxd-fuzzanswers-"))
    started = time.monotonic()
    try:
        failed, outcomes = fuzz.sweep(args.seed, args.cases, work / "bundle")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    print(f"{args.cases} answers (seed {args.seed}) in {took:.1f} s: "
          + ", ".join(f"{n} {kind}" for kind, n in sorted(outcomes.items())))
    for line in failed[:args.show]:
        print(line[:2000])
    if failed:
        print(f"{len(failed)} broke the oracle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
