"""`python -m bench timeline`: one throughput burst seen every 100 ms (issue 5's
miss, made visible): bundles claimed and received, deliveries a second, and where
the cores went — outboxd's own process, its readers, the receiver, idle. Not judged;
run only when named. Its summary figures are recorded with --record, its table too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.context import Context
from bench.delivery import _burst_timeout, _daemon, drop
from bench.procs import CLK_TCK, BenchError, Receiver, cpu_seconds, tree
from bench.report import Table

BUCKET = 0.1  # seconds a row of the table covers
EVERY = 0.02  # seconds between samples: each reads a few /proc files and lists two folders


@dataclass(frozen=True)
class Sample:
    at: float  # seconds after the last rename
    claimed: int  # invoice files gone from the outbox
    held: int  # bundles in the receiver's store
    own: float  # CPU seconds so far: outboxd's process
    tree: float  # outboxd with its readers
    receiver: float
    idle: float  # idle + iowait seconds of all cores, from /proc/stat


def idle_seconds() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        fields = fh.readline().split()
    return (int(fields[4]) + int(fields[5])) / CLK_TCK


def _waiting(outbox: Path) -> int:
    with os.scandir(outbox) as it:
        return sum(1 for e in it if e.name.endswith(".xml"))


def rows(samples: list[Sample]) -> list[tuple[str, ...]]:
    """One row per BUCKET: rates over the bucket (per second, in cores for CPU)."""
    out: list[tuple[str, ...]] = []
    last = samples[0]
    for s in samples[1:]:
        if s.at - last.at < BUCKET and s is not samples[-1]:
            continue
        dt = s.at - last.at
        if dt <= 0:
            continue
        readers = max(0.0, (s.tree - s.own) - (last.tree - last.own))
        out.append((f"{s.at:.2f}", str(s.claimed), str(s.held),
                    f"{(s.held - last.held) / dt:.0f}", f"{(s.own - last.own) / dt:.2f}",
                    f"{readers / dt:.2f}", f"{(s.receiver - last.receiver) / dt:.2f}",
                    f"{(s.idle - last.idle) / dt:.2f}"))
        last = s
    return out


HEADER = ("s after the last rename", "claimed", "received", "received a second",
          "outboxd's process (cores)", "its readers (cores)", "receiver (cores)",
          "idle (cores)")


def _rate(start: Sample, end: Sample) -> tuple[float, float]:
    """(bundles received a second, idle cores) between two samples."""
    dt = end.at - start.at
    if dt <= 0:
        return 0.0, 0.0
    return (end.held - start.held) / dt, (end.idle - start.idle) / dt


def timeline(ctx: Context) -> None:
    items = ctx.corpus().items[:ctx.n]
    rec = ctx.start(Receiver(ctx.work, "timeline"))
    daemon = _daemon(ctx, "timeline", rec)
    stage = daemon.outbox.parent / "stage"
    ctx.corpus().stage(stage, items)
    n = len(items)

    # The readers are started before READY: the tree is listed once, not per sample
    # (a walk of /proc every few ms would take a good part of a core from the burst).
    pids = tree(daemon.pid)

    def used(pid: int) -> float:
        try:
            return cpu_seconds(pid)
        except OSError:
            return 0.0  # a reader that ended: its CPU is no longer counted anywhere

    def sample(t0: float) -> Sample:
        cpu = [used(p) for p in pids]
        return Sample(time.monotonic() - t0, n - _waiting(daemon.outbox), rec.held(), cpu[0],
                      sum(cpu), cpu_seconds(rec.pid), idle_seconds())

    start = sample(time.monotonic())
    t0 = drop(stage, daemon.outbox, items)
    samples = [replace(start, at=0.0, claimed=0)]
    deadline = t0 + _burst_timeout(n)
    while samples[-1].held < n:
        if time.monotonic() > deadline or not daemon.alive():
            raise BenchError(f"timeline: the receiver holds {samples[-1].held} of {n}; "
                             f"daemon log: {daemon.tail()}")
        time.sleep(EVERY)
        samples.append(sample(t0))
    end = samples[-1]
    claims_done = next(s for s in samples if s.claimed >= n)
    before, idle_before = _rate(samples[0], claims_done)
    after, idle_after = _rate(claims_done, end)
    r = ctx.results
    r.add("timeline_time", f"timeline: {n} bundles, outboxd run", end.at, "s",
          f"one burst as throughput's, sampled every {EVERY * 1000:g} ms", rate="time",
          bundles=n)
    r.add("timeline_claims_done", "timeline: every bundle claimed after", claims_done.at,
          "s")
    r.add("timeline_rate_claiming", "timeline: received a second until then", before,
          "bundles/s", f"idle {idle_before:.2f} of the cores meanwhile")
    r.add("timeline_rate_delivering", "timeline: received a second after", after,
          "bundles/s", f"idle {idle_after:.2f} of the cores meanwhile")
    r.tables["Timeline of the burst"] = Table(
        f"Rows of {BUCKET:g} s; CPU and idle time in cores (1.00: one core the whole row).",
        HEADER, rows(samples))
