"""`python -m bench [PHASE…] [--n N] [--record]`: measure outboxd against a plain
httpx loop and an inotifywait + curl script (issue 5), and what pre-flight costs
(issue 8). Without phases, all but timeline run in order; each one runs alone too. See
README, "Benchmarks"."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import delivery, idle, preflight, report, sidecar, timeline
from bench.context import Context
from bench.delivery import SETTLE
from bench.procs import BenchError, stop_all

PHASES: dict[str, Callable[[Context], None]] = {
    "baseline": delivery.baseline,
    "peer": delivery.peer,
    "throughput": delivery.throughput,
    "throughput-preflight": delivery.throughput_preflight,
    "latency": delivery.latency,
    "backlog": idle.backlog,
    "journal": idle.journal,
    "sidecar": sidecar.sidecar,
    "preflight": preflight.preflight,
    "timeline": timeline.timeline,
}
# Run only when named: a view of one burst, not a measurement the targets judge.
ON_REQUEST = ("timeline",)
LATENCY_BUNDLES = 20
# The bursts whose times are compared with each other: with --rounds they run in
# turn, round after round, so a noisy minute of the host hits all of them alike.
BURSTS = ("baseline", "peer", "throughput", "throughput-preflight")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 2000,20000, not {text!r}") \
            from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("phases", nargs="*", metavar="PHASE",
                   help=f"any of {', '.join(PHASES)} (default: all but "
                        f"{', '.join(ON_REQUEST)}, in that order)")
    p.add_argument("--n", type=int, default=300, help="bundles per burst (default %(default)s)")
    p.add_argument("--backlog", type=_sizes, default=(2000, 20000), metavar="N,N",
                   help="backlog sizes (default 2000,20000)")
    p.add_argument("--journal-rows", type=int, default=100_000, metavar="N",
                   help="bundles in the journal phase's journal (default %(default)s)")
    p.add_argument("--journal-days", type=float, default=365, metavar="N",
                   help="days over which the journal phase spreads its sent and quarantined "
                        "rows (default %(default)g; status lists the last 7)")
    p.add_argument("--record", action="store_true",
                   help="append a dated section to docs/benchmarks.md")
    p.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                   help="where the temporary folders go (default: the system temp dir); "
                        "its file system is part of what is measured")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs) afterwards")
    p.add_argument("--rounds", type=int, default=1, metavar="K",
                   help="run the bursts (baseline, peer, throughput, throughput-preflight) K "
                        "times in turn and judge their medians (default %(default)s)")
    args = p.parse_args(argv)
    unknown = [ph for ph in args.phases if ph not in PHASES]
    if unknown:
        p.error(f"unknown phase {unknown[0]!r}; choose from {', '.join(PHASES)}")
    args.phases = [ph for ph in PHASES if ph in args.phases] if args.phases else \
        [ph for ph in PHASES if ph not in ON_REQUEST]
    if args.n < 1:
        p.error("--n must be at least 1")
    if args.journal_days <= 0:
        p.error("--journal-days must be positive")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def _ratios(ctx: Context) -> None:
    r = ctx.results
    daemon = r.value("throughput_time")
    suffix = "" if ctx.n == 300 else f"_{ctx.n}"
    for key, other, label, how in (
        ("ratio_peer", "peer_time", "throughput vs script (script time / daemon time)",
         "higher is better"),
        ("ratio_baseline", "baseline_time", "throughput vs httpx (daemon time / httpx time)",
         "lower is better"),
    ):
        if daemon is None:
            continue
        ref = r.value(other)
        if ref is None:
            r.add(key + suffix, label, None, "x", f"n/a: {other.split('_')[0]} not run "
                  "in this run")
            continue
        value = ref / daemon if key == "ratio_peer" else daemon / ref
        r.add(key + suffix, label, value, "x", how + ("" if not suffix else
                                                      f"; N = {ctx.n}, not judged"))
    _preflight_ratio(ctx, suffix)
    _floor(ctx, suffix)


def _floor(ctx: Context, suffix: str) -> None:
    """The burst's time had no core ever been idle: the settle, then outboxd's and the
    receiver's CPU of this very burst spread over the cores. How far the measured time
    is above it is scheduling and waiting, not work; its ratio to httpx is the best this
    run's CPU use allows, however well the two are interleaved."""
    r = ctx.results
    daemon_cpu, receiver_cpu = r.value("throughput_cpu"), r.value("throughput_receiver_cpu")
    if daemon_cpu is None or receiver_cpu is None:
        return
    cores = report.cores()
    floor = SETTLE + (daemon_cpu + receiver_cpu) / cores
    r.add("throughput_floor" + suffix, "throughput at full use of the cores (floor)", floor,
          "s", f"settle {SETTLE} s + (CPU of outboxd + CPU of the receiver) / {cores} cores")
    ref = r.value("baseline_time")
    if ref:
        r.add("ratio_baseline_floor" + suffix, "floor vs httpx (floor / httpx time)",
              floor / ref, "x", "the best ratio this burst's CPU allows; not judged")
        # The same bound turned round: what outboxd may spend on a bundle, with the
        # receiver's CPU as it was, for the burst to fit in the target's time.
        budget = ((report.HTTPX_RATIO * ref - SETTLE) * cores - receiver_cpu) / ctx.n
        r.add("throughput_cpu_budget" + suffix,
              f"CPU a bundle outboxd may spend for ≤ {report.HTTPX_RATIO:g}× httpx", budget * 1000,
              "ms", "at full use of the cores; against the CPU of outboxd a bundle above; "
              "not judged")


def _preflight_ratio(ctx: Context, suffix: str) -> None:
    """Pre-flight on / off: the two bursts of this run (issue 8: on ≤ 1.3× off)."""
    r = ctx.results
    on, off = r.value("throughput_preflight_time"), r.value("throughput_time")
    if "throughput_preflight_time" not in r.figures and "throughput_time" not in r.figures:
        return
    label = "pre-flight on / off (throughput-preflight time / throughput time)"
    if on is None or off is None:
        missing = "throughput-preflight" if on is None else "throughput"
        r.add("ratio_preflight" + suffix, label, None, "x",
              f"n/a: {missing} not measured in this run")
        return
    r.add("ratio_preflight" + suffix, label, on / off, "x",
          "lower is better" + ("" if not suffix else f"; N = {ctx.n}, not judged"))


def _run(ctx: Context, phases: Sequence[str]) -> bool:
    """Run these phases in order; True if one failed (said, and noted)."""
    failed = False
    for name in phases:
        stolen = report.steal_seconds()
        try:
            if name == "backlog":
                PHASES[name](ctx)  # one sub-phase per size
            else:
                with ctx.phase(name):
                    PHASES[name](ctx)
            report.add_steal(ctx.results, name, stolen)
        except BenchError as exc:
            failed = True
            print(f"{name}: FAILED: {exc}", file=sys.stderr, flush=True)
            ctx.results.notes.append(f"{name} failed: {exc}")
    return failed


def _compiled() -> None:
    """The daemon's modules compiled to bytecode before any daemon starts, as `pip install`
    leaves an installed daemon: in a checkout's editable install, under
    PYTHONDONTWRITEBYTECODE (which this machine's environment sets), every daemon and
    reader process the bench started compiled them from source again — ~0.2 CPU-s in
    each READY figure that no installed daemon pays."""
    import compileall
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "daemon", quiet=2)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    started = datetime.now(UTC)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C must clean up even when the bench was started with SIGINT ignored (&).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="outboxd-bench-", dir=args.workdir))
    info = report.machine(work)
    _compiled()
    corpus_size = max(args.n, LATENCY_BUNDLES if "latency" in args.phases else 0)
    ctx = Context(work, args.n, args.backlog, args.journal_rows, corpus_size=corpus_size,
                  journal_days=args.journal_days)
    failed = False
    try:
        bursts = [ph for ph in args.phases if ph in BURSTS]
        rounds: list[report.Results] = []
        for k in range(args.rounds if bursts else 0):
            if args.rounds > 1:
                print(f"-- round {k + 1} of {args.rounds}", flush=True)
            ctx.results, kept = report.Results(), ctx.results
            if args.rounds > 1:  # fresh receivers' stores, outboxes and stages each round
                ctx.work = work / f"round-{k + 1}"
                ctx.work.mkdir()
            try:
                failed = _run(ctx, bursts) or failed
                _ratios(ctx)
            finally:
                rounds.append(ctx.results)
                kept.notes.extend(n for n in ctx.results.notes if n not in kept.notes)
                ctx.results, ctx.work = kept, work
        report.merge_rounds(ctx.results, rounds)
        failed = _run(ctx, [ph for ph in args.phases if ph not in BURSTS]) or failed
        report.print_results(ctx.results, info)
        if args.record:
            path = report.record(ctx.results, info, command, started)
            print(f"\nrecorded in {path}")
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped, work dir removed", file=sys.stderr)
        return 130
    finally:
        stop_all()
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
