"""`python -m bench timeline`: one throughput burst sampled every 20 ms and shown in
0.1-s rows (issue 5's miss, made visible): bundles claimed and received, deliveries
a second, and where the cores went — outboxd's own process, its readers, the
receiver, idle. Not judged; run only when named, once even with --rounds. Its
summary figures are recorded with --record, its table too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.context import Context
from bench.delivery import burst_timeout, drop, ready_burst
from bench.procs import BenchError, Receiver, cpu_seconds, machine_cpu_seconds, tree
from bench.report import Table

BUCKET = 0.1  # seconds a row of the table covers
EVERY = 0.02  # seconds between samples: each reads a few /proc files and lists two folders


@dataclass(frozen=True)
class Sample:
    at: float  # seconds after the last rename
    claimed: int  # invoice files gone from the outbox
    held: int  # bundles in the receiver's store
    own: float  # CPU seconds so far: outboxd's process
    readers: float  # its reader processes (a replaced one counted from its start)
    receiver: float
    idle: float  # idle + iowait seconds of all cores, from /proc/stat


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
        readers = s.readers - last.readers
        out.append((f"{s.at:.2f}", str(s.claimed), str(s.held),
                    f"{(s.held - last.held) / dt:.0f}", f"{(s.own - last.own) / dt:.2f}",
                    f"{readers / dt:.2f}", f"{(s.receiver - last.receiver) / dt:.2f}",
                    f"{(s.idle - last.idle) / dt:.2f}"))
        last = s
    return out


HEADER = ("s after the last rename", "claimed", "received", "received a second",
          "outboxd's process (cores)", "its readers (cores)", "receiver (cores)",
          "idle (cores)")


def _rate(start: Sample, end: Sample) -> tuple[float, float] | None:
    """(bundles received a second, idle cores) between two samples; None if no time
    passed between them."""
    dt = end.at - start.at
    if dt <= 0:
        return None
    return (end.held - start.held) / dt, (end.idle - start.idle) / dt


class _Sampler:
    """Readings of the daemon's tree, the receiver and the outbox, each a few /proc files.

    The tree is listed at start and again only when a reader has gone (a walk of /proc
    every few ms would take a good part of a core from the burst); each reader's CPU
    is counted as it grew since the last reading, so a replaced one adds from its start.
    """

    def __init__(self, daemon_pid: int, rec: Receiver, outbox: Path, n: int) -> None:
        self.daemon_pid, self.rec, self.outbox, self.n = daemon_pid, rec, outbox, n
        self.pids = tree(daemon_pid)[1:]
        self.seen: dict[int, float] = {}
        self.readers = 0.0

    def _readers(self) -> float:
        now: dict[int, float] = {}
        for pid in self.pids:
            try:
                now[pid] = cpu_seconds(pid)
            except OSError:
                self.pids = tree(self.daemon_pid)[1:]  # it ended: whoever replaced it, next
        if self.seen:
            self.readers += sum(used - self.seen.get(pid, 0.0) for pid, used in now.items())
        self.seen = now
        return self.readers

    def take(self, t0: float) -> Sample:
        try:
            # The store before the outbox: every bundle received then also counts as
            # claimed, even one claimed between the two readings.
            held = self.rec.held()
            waiting = _waiting(self.outbox)
            own, receiver = cpu_seconds(self.daemon_pid), cpu_seconds(self.rec.pid)
        except OSError as exc:
            raise BenchError(f"timeline: the daemon or the receiver is gone ({exc})") from None
        idle, iowait = machine_cpu_seconds()[3:5]
        return Sample(time.monotonic() - t0, self.n - waiting, held, own, self._readers(),
                      receiver, idle + iowait)


def timeline(ctx: Context) -> None:
    """One throughput burst, sampled every EVERY seconds (see the module's docstring)."""
    items, rec, daemon, stage = ready_burst(ctx, "timeline")
    n = len(items)
    sampler = _Sampler(daemon.pid, rec, daemon.outbox, n)
    before_drop = time.monotonic()
    start = sampler.take(before_drop)
    t0 = drop(stage, daemon.outbox, items)
    # Its own time (before the renames, so negative): the first row then covers them.
    samples = [replace(start, at=start.at + before_drop - t0, claimed=0)]
    deadline = t0 + burst_timeout(n)
    while samples[-1].held < n:
        if time.monotonic() > deadline or not daemon.alive():
            raise BenchError(f"timeline: the receiver holds {samples[-1].held} of {n}; "
                             f"daemon log: {daemon.tail()}")
        time.sleep(EVERY)
        samples.append(sampler.take(t0))
    end = samples[-1]
    r = ctx.results
    r.add("timeline_time", f"timeline: {n} bundles, outboxd run", end.at, "s",
          f"one burst as throughput's, sampled every {EVERY * 1000:g} ms", rate="time",
          bundles=n)
    claims_done = next((s for s in samples if s.claimed >= n), None)
    if claims_done is None:
        r.add("timeline_claims_done", "timeline: every bundle claimed after", None, "s",
              "n/a: the outbox still held an invoice file at the end")
    else:
        r.add("timeline_claims_done", "timeline: every bundle claimed after",
              claims_done.at, "s")
        for key, label, span in (
                ("claiming", "until then", (samples[0], claims_done)),
                ("delivering", "after", (claims_done, end))):
            rate = _rate(*span)
            r.add(f"timeline_rate_{key}", f"timeline: received a second {label}",
                  rate[0] if rate else None, "bundles/s",
                  f"idle {rate[1]:.2f} of the cores meanwhile" if rate
                  else "n/a: no time between the last claim and the last receipt")
    r.tables["Timeline of the burst"] = Table(
        f"Rows of {BUCKET:g} s; CPU and idle time in cores (1.00: one core the whole row).",
        HEADER, rows(samples))
