"""CPU of one delivery attempt, in one thread: `Finisher.attempt` from a claimed bundle
to its entry in sent/ (POST to the reference receiver on 127.0.0.1, journal
transitions, receipt, archive move and syncs, log lines).

    python -m bench.attempt [--bundles N] [--url URL]

Bench-corpus bundles (invoice, ~100 KB PDF, ~50 KB PNG) are dropped, read and
claimed first (not measured); then each attempt is timed with
`time.thread_time()` (user + system CPU of this thread) and the median is
printed as one JSON line, with the median wall time. The first 5 attempts warm
the connection and are not counted. Without --url a receiver is started (and
stopped) here; pass the url of a running one to compare two checkouts against
the same receiver, alternating runs (the host is shared: compare medians of
several runs, never one against one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import write_bundles
from bench.procs import Receiver
from daemon import logs
from daemon.configuration.config import LogConfig, Settings
from daemon.delivery.deliver import HttpDeliverer
from daemon.delivery.finish import evaluate
from daemon.journal import Journal
from daemon.loop.pipeline import Pipeline
from daemon.watching.scan import list_outbox

WARM_UP = 5


def claim_all(outbox: Path, url: str, state: Path, n: int) -> tuple[Pipeline, list[int]]:
    """A pipeline on `outbox` posting to `url`, with n corpus bundles claimed."""
    write_bundles(outbox, n)
    s = Settings.model_validate({
        "outbox": {"path": str(outbox), "settle_seconds": 0, "rescan_seconds": 30},
        "paths": {"state_dir": str(state)}, "delivery": {"url": url},
        "einvoice": {"preflight": "off"}})
    for folder in (s.sent_dir, s.quarantine_dir, s.processing_dir, s.paths.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    p = Pipeline(s, Journal(s.journal_path), HttpDeliverer(s.delivery))
    rows = []
    for cand in list_outbox(s.outbox).candidates.values():
        nxt = p.step(cand, 1000.0)
        if nxt.read is not None:
            p.took_read(cand.invoice.name, nxt.read, evaluate(cand, s))
            nxt = p.step(cand, 1000.0)
        if nxt.claimed is None:
            raise SystemExit(f"{cand.invoice.name} was not claimed: {nxt}")
        rows.append(nxt.claimed)
    return p, rows


def measure(p: Pipeline, rows: list[int]) -> dict[str, float]:
    cpu, wall = [], []
    for i, row in enumerate(rows):
        c0, w0 = time.thread_time(), time.perf_counter()
        if p.finish.attempt(row) is not None:
            raise SystemExit(f"row {row} was not delivered: {p.j.get(row)}")
        c1, w1 = time.thread_time(), time.perf_counter()
        if i >= WARM_UP:
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
    return {"attempts": len(cpu), "cpu_ms_median": round(statistics.median(cpu) * 1e3, 3),
            "wall_ms_median": round(statistics.median(wall) * 1e3, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attempt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", type=int, default=100)
    parser.add_argument("--url", help="a running receiver (default: start one here)")
    args = parser.parse_args(argv)
    # As the daemon logs under systemd (JSON), to nowhere: the cost counts, not the text.
    logs.configure(LogConfig(format="json"), open(os.devnull, "w"))
    work = Path(tempfile.mkdtemp(prefix="bench-attempt-"))
    receiver = None
    try:
        url = args.url
        if url is None:
            receiver = Receiver(work, "attempt")
            url = receiver.url
        p, rows = claim_all(work / "outbox", url, work / "state", args.bundles + WARM_UP)
        result = measure(p, rows)
        p.finish.d.close()
        print(json.dumps(result))
    finally:
        if receiver is not None:
            receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
