"""The loop's claim of a burst, alone (scratch driver, not a phase of `python -m bench`).

N bench bundles are dropped into an outbox, read and decided as the loop
does in one turn (claims held), then claimed together (`Pipeline.claim_held`,
CLAIM_BATCH at a time). Printed: the loop thread's CPU (`time.thread_time`) and
wall time of the claims a bundle, and the journal statements a bundle (every
statement SQLite runs for the connection, BEGIN and COMMIT included). The
check by hashes after the move runs in reader processes as in the daemon
(`--no-readers`: on this thread).

Syscalls a bundle: run under strace and count those of the loop thread between
the two markers the driver leaves (a stat of a path that does not exist):

    strace -f -o /tmp/claims.strace .venv/bin/python -m bench.claims --markers
    .venv/bin/python -m bench.claims --count-syscalls /tmp/claims.strace --bundles 300
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import write_bundles
from daemon import logs
from daemon.configuration.config import LogConfig, Settings
from daemon.delivery.deliver import HttpDeliverer
from daemon.delivery.finish import evaluate
from daemon.journal import Journal
from daemon.loop.pipeline import Pipeline
from daemon.watching.scan import Candidate, list_outbox

MARK_START = "/outboxd-bench-claims-start"
MARK_END = "/outboxd-bench-claims-end"


def prepared(work: Path, n: int, reader_processes: int | str = "auto"
             ) -> tuple[Pipeline, list[Candidate], Settings]:
    """A pipeline with n bundles read and their claims held (none made yet)."""
    outbox = work / "outbox"
    write_bundles(outbox, n)
    # Settling first, as in the daemon: each claim moves a live row (settling -> claiming).
    s = Settings.model_validate({
        "outbox": {"path": str(outbox), "settle_seconds": 0.2, "rescan_seconds": 30},
        "paths": {"state_dir": str(work / "state")},
        "delivery": {"url": "http://127.0.0.1:9/bundles"}, "einvoice": {"preflight": "off"},
        "service": {"reader_processes": reader_processes}})
    for folder in (s.sent_dir, s.quarantine_dir, s.processing_dir, s.paths.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    cands = list(list_outbox(s.outbox).candidates.values())
    reads = {cand.invoice.name: evaluate(cand, s) for cand in cands}
    for name, bundle in reads.items():
        # One with errors would be quarantined in the timed claims, not claimed to be sent.
        if bundle.errors:
            raise RuntimeError(f"{name}: " + "; ".join(f.line() for f in bundle.errors))
    p = Pipeline(s, Journal(s.journal_path), HttpDeliverer(s.delivery))
    for cand in cands:  # each gets its live row and its read, as before a burst's claims
        nxt = p.step(cand, 1000.0)
        if nxt.read is not None:
            p.took_read(cand.invoice.name, nxt.read, reads[cand.invoice.name])
    p.hold_claims()
    for cand in cands:
        p.step(cand, 1001.0)
    return p, cands, s


@dataclass(frozen=True)
class Figures:
    """One claim phase: N bundles claimed, what the loop thread spent on them."""

    bundles: int
    cpu_s: float  # the loop thread's CPU (thread_time) for all the claims
    wall_s: float
    statements: int  # every statement SQLite ran for the journal's connection meanwhile

    def a_bundle(self) -> dict[str, float]:
        """The figures a bundle, as printed."""
        n = self.bundles
        return {"bundles": n, "cpu_ms_a_bundle": round(self.cpu_s * 1e3 / n, 3),
                "wall_ms_a_bundle": round(self.wall_s * 1e3 / n, 3),
                "statements_a_bundle": round(self.statements / n, 2)}


def measure(work: Path, n: int, readers: bool = True, profile: Path | None = None,
            markers: bool = False, reader_processes: int | str = "auto") -> Figures:
    """One claim phase on n fresh bundles in `work` (a fresh outbox and journal)."""
    pool = None
    p, cands, s = prepared(work, n, reader_processes)
    try:
        if readers:
            from daemon.reading.readers import Readers
            pool = Readers(work / "cache")
            pool.configure(s)
            p.assemble_many = pool.assemble_many
        statements = 0

        def counted(_sql: str) -> None:
            nonlocal statements
            statements += 1
        p.j._db.set_trace_callback(counted)
        # CPU time of this thread, as the figures above: waits for the readers, the disk or
        # the lock are not counted.
        prof = cProfile.Profile(time.thread_time) if profile else None
        if markers:
            os.path.lexists(MARK_START)
        c0, w0 = time.thread_time(), time.perf_counter()
        if prof:
            prof.enable()
        results = list(p.claim_held(1000.0))
        if prof:
            prof.disable()
        c1, w1 = time.thread_time(), time.perf_counter()
        if markers:
            os.path.lexists(MARK_END)
        p.j._db.set_trace_callback(None)
        claimed = sum(1 for _, r in results if getattr(r, "claimed", None) is not None)
        if claimed != n:
            raise RuntimeError(f"{n - claimed} of {n} not claimed: {results[:3]}")
        if prof and profile:
            prof.dump_stats(profile)
            pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(30)
        return Figures(n, c1 - c0, w1 - w0, statements)
    finally:
        if pool is not None:
            pool.stop()
        # Each round has its own journal: left open, every round of a run kept its
        # database and WAL descriptors (of files removed with the round's folder).
        p.j.close()
        p.finish.deliverers.current.close()


def count_syscalls(trace: Path, n: int) -> dict[str, object]:
    """Syscalls of the thread that left the markers, between them, from `strace -f -o`."""
    lines = trace.read_text().splitlines()
    start = next((i for i, ln in enumerate(lines) if MARK_START in ln), None)
    end = next((i for i, ln in enumerate(lines) if MARK_END in ln), None)
    if start is None or end is None:
        raise RuntimeError(f"{trace}: no markers of bench.claims in it: record it with "
                           "`strace -f -o FILE python -m bench.claims --markers`")
    tid = lines[start].split()[0]
    counts: collections.Counter[str] = collections.Counter()
    call = re.compile(r"^\S+\s+(?:<\.\.\. )?(\w+)")
    for ln in lines[start + 1:end]:
        if ln.split()[0] != tid or "resumed>" in ln:
            continue
        m = call.match(ln)
        if m:
            counts[m.group(1)] += 1
    total = sum(counts.values())
    return {"syscalls_a_bundle": round(total / n, 2),
            "by_call_a_bundle": {k: round(v / n, 2) for k, v in counts.most_common(15)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="claim phases, each on fresh "
                        "bundles in a fresh outbox and journal")
    parser.add_argument("--no-readers", action="store_true")
    parser.add_argument("--profile", type=Path, help="write cProfile stats here (and print)")
    parser.add_argument("--markers", action="store_true", help="leave the strace markers")
    parser.add_argument("--count-syscalls", type=Path, metavar="STRACE_FILE")
    args = parser.parse_args(argv)
    logs.configure(LogConfig(format="json"), open(os.devnull, "w"))
    if args.count_syscalls:
        try:
            print(json.dumps(count_syscalls(args.count_syscalls, args.bundles)))
        except (OSError, RuntimeError) as exc:
            raise SystemExit(str(exc)) from None
        return 0
    runs: list[dict[str, float]] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-claims-") as tmp:
            try:
                fig = measure(Path(tmp), args.bundles, not args.no_readers, args.profile,
                              args.markers)
            except RuntimeError as exc:  # a bench bundle invalid or not claimed: no figure
                raise SystemExit(str(exc)) from None
        runs.append(fig.a_bundle())
    out: dict[str, object] = dict(runs[0])
    for k in ("cpu_ms_a_bundle", "wall_ms_a_bundle"):
        # The least of the rounds: on a shared host, what the others' load did not add.
        out[k] = min(r[k] for r in runs)
        out[k.replace("_a_bundle", "_rounds")] = [r[k] for r in runs]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
