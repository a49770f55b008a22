"""`python -m bench.readers [--n N] [--passes P] [--workers W]`: the CPU the reader
processes spend a bundle, and what the daemon's own process spends on their calls.

The bench's own bundles (bench/corpus.py) are written to a temp folder; the real
reader pool is started as the daemon starts it (`Readers.configure`, `[einvoice]
preflight = "off"`, as in the throughput burst) and each pass sends every bundle
through `evaluate` (the loop's reads, `Readers.submit`), then through the check by
hashes after a claim (`Readers.assemble_many` with the bundles just read,
`claims.CLAIM_BATCH` at a time, as the loop claims them in a burst). The
children's CPU is read from /proc/<pid>/stat (utime + stime, clock ticks: with 300
bundles a tick is 0.03 ms a bundle), this process's with `process_time` and per
thread (`readers` is the collector). A pass before the measured ones warms up.
Compare with `python -m bench.evaluate`: the same work in one process, no pipe.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.evaluate import outbox_of_bundles
from daemon.bundle import Bundle
from daemon.claiming.claims import CLAIM_BATCH
from daemon.configuration.config import Settings
from daemon.reading.readers import Readers, Result
from daemon.watching.scan import Candidate

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(stat: str) -> float:
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _threads() -> dict[str, float]:
    """CPU seconds of each thread of this process, by name and id."""
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            raw = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        out[f"{raw[raw.index('(') + 1:raw.rindex(')')]}:{tid}"] = _cpu(
            f"/proc/self/task/{tid}/stat")
    return out


def _evaluate_all(readers: Readers, cands: list[Candidate], settings: Settings) -> list[Bundle]:
    results: list[Result | None] = [None] * len(cands)
    left = [len(cands)]
    cond = threading.Condition()

    def put(i: int, result: Result) -> None:
        with cond:
            results[i] = result
            left[0] -= 1
            cond.notify()

    for i, cand in enumerate(cands):
        readers.submit(cand, settings, functools.partial(put, i))
    with cond:
        if not cond.wait_for(lambda: left[0] == 0, 120):
            raise RuntimeError("the readers did not answer in time")
    bundles: list[Bundle] = []
    for cand, result in zip(cands, results, strict=True):
        # The one that failed, by name: the first three results said nothing of a later one.
        if not isinstance(result, Bundle):
            raise RuntimeError(f"{cand.invoice.name}: not read: {result!r}")
        if result.errors:
            raise RuntimeError(f"{cand.invoice.name}: "
                               + "; ".join(f.line() for f in result.errors))
        bundles.append(result)
    return bundles


def _check_all(readers: Readers, cands: list[Candidate], bundles: list[Bundle],
               settings: Settings) -> list[Result]:
    jobs = list(zip(cands, bundles, strict=True))
    return [result for start in range(0, len(jobs), CLAIM_BATCH)
            for result in readers.assemble_many(jobs[start:start + CLAIM_BATCH], settings)]


@dataclass(frozen=True)
class Figures:
    """CPU a bundle (ms) in each measured pass, and this process's by thread."""

    bundles: int
    workers: int
    evaluate_children: tuple[float, ...]
    evaluate_here: tuple[float, ...]  # this process's
    check_children: tuple[float, ...]
    check_here: tuple[float, ...]
    by_thread: tuple[tuple[str, float], ...]  # thread name, ms a bundle over all passes

    @property
    def passes(self) -> int:
        return len(self.evaluate_children)


def by_thread(before: dict[str, float], after: dict[str, float], calls: int
              ) -> dict[str, float]:
    """ms of CPU a call of each thread (by name) between two `_threads()` readings."""
    spent: dict[str, float] = {}
    for key, cpu in after.items():
        # Threads the OS shows under one name (on 3.11 every thread not named by
        # osthreads.show_name is `python`, as the main thread) are added up: one of
        # them alone stood for all, whichever /proc listed last.
        name = key.rsplit(":", 1)[0]
        spent[name] = spent.get(name, 0.0) + (cpu - before.get(key, 0.0)) / calls * 1e3
    return spent


def measure(work: Path, n: int = 300, passes: int = 5, workers: int = 2) -> Figures:
    """n bench bundles in `work`, read and checked by the real pool: a warm-up pass,
    then `passes` measured ones."""
    settings, cands = outbox_of_bundles(
        work, n, False, f'[log]\nformat = "json"\n[service]\nreader_processes = {workers}\n')
    readers = Readers(work / "state")
    readers.configure(settings)
    try:
        stats = [f"/proc/{pid}/stat" for pid in readers.pids()]

        def children() -> float:
            return sum(_cpu(s) for s in stats)

        bundles = _evaluate_all(readers, cands, settings)  # warm-up
        _check_all(readers, cands, bundles, settings)
        figures: dict[str, list[float]] = {k: [] for k in ("ev_c", "ev_p", "ck_c", "ck_p")}
        threads_before = _threads()
        for _ in range(passes):
            c0, p0 = children(), time.process_time()
            bundles = _evaluate_all(readers, cands, settings)
            c1, p1 = children(), time.process_time()
            checked = _check_all(readers, cands, bundles, settings)
            c2, p2 = children(), time.process_time()
            for cand, result in zip(cands, checked, strict=True):
                if not isinstance(result, Bundle):
                    raise RuntimeError(f"{cand.invoice.name}: check failed: {result!r}")
            for key, value in (("ev_c", c1 - c0), ("ev_p", p1 - p0),
                               ("ck_c", c2 - c1), ("ck_p", p2 - p1)):
                figures[key].append(value / n * 1e3)
        threads_after = _threads()
    finally:
        readers.stop()
    return Figures(n, workers, tuple(figures["ev_c"]), tuple(figures["ev_p"]),
                   tuple(figures["ck_c"]), tuple(figures["ck_p"]),
                   tuple(by_thread(threads_before, threads_after, n * passes).items()))


def report(fig: Figures) -> str:
    """The lines main() prints."""

    def line(xs: tuple[float, ...]) -> str:
        return (f"{statistics.median(xs):.3f} ms ("
                + " ".join(f"{x:.2f}" for x in xs) + ")")

    total = tuple(a + b for a, b in zip(fig.evaluate_children, fig.check_children, strict=True))
    return "\n".join((
        f"{fig.bundles} bundles, {fig.workers} reader processes, {fig.passes} passes; "
        "median (each pass) CPU a bundle:",
        f"evaluate: children {line(fig.evaluate_children)}; "
        f"this process {line(fig.evaluate_here)}",
        f"check:    children {line(fig.check_children)}; this process {line(fig.check_here)}",
        f"both:     children {line(total)}",
        "this process by thread, a bundle: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in fig.by_thread if v > 0)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.readers", description=__doc__)
    ap.add_argument("--n", type=int, default=300, help="bundles (default 300)")
    ap.add_argument("--passes", type=int, default=5, help="measured passes (default 5)")
    ap.add_argument("--workers", type=int, default=2, help="reader processes (default 2)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="outboxd-readers-") as tmp:
        try:
            fig = measure(Path(tmp), args.n, args.passes, args.workers)
        except RuntimeError as exc:  # a bench bundle that does not read valid: no figures
            raise SystemExit(str(exc)) from None
    print(report(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
