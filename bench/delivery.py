"""The delivery phases: baseline (plain httpx), peer (inotifywait + curl),
throughput and latency (outboxd run). Same bundles, same receiver, same clock
(time.monotonic in the bench), same "done" (the receiver's store holds them)."""

from __future__ import annotations

import os
import queue
import shutil
import statistics
import threading
import time
from pathlib import Path

import httpx

from bench.context import Context
from bench.corpus import Item
from bench.procs import (
    PREFLIGHT_OFF,
    BenchError,
    Daemon,
    Proc,
    Receiver,
    cpu_seconds,
    thread_split,
    tree_cpu_split,
    write_config,
)
from daemon import __version__

SETTLE = 0.2
THREADS = 4
# outboxd's threads by the name the OS shows (osthreads.py), and how a row calls them.
THREAD_ROWS = (("loop", "the loop (main thread)"), ("deliver", "the delivery workers"),
               ("readers", "the readers' collector thread"), ("watcher", "the watcher"))
POLL = 0.005  # the store is listed every 5 ms while a burst is timed
process_cpu = time.process_time  # this process's CPU, all threads (a test's clock stands in)
INSTALL_INOTIFY = "apt-get update && apt-get install -y inotify-tools"


def burst_timeout(n: int) -> float:
    return 60.0 + 0.5 * n


def drop(stage: Path, dest: Path, items: tuple[Item, ...], extras: bool = False) -> float:
    """Rename the sidecars (and the peer's manifest files) into dest first, then the
    invoice files, as an ERP does; the monotonic time of the last rename."""
    for it in items:
        os.rename(stage / it.name, dest / it.name)
        if extras:
            for suffix in (".manifest.json", ".id"):
                os.rename(stage / f"{it.name}{suffix}", dest / f"{it.name}{suffix}")
    for it in items:
        os.rename(stage / f"{it.name}.xml", dest / f"{it.name}.xml")
    return time.monotonic()


def wait_all(rec: Receiver, n: int, t0: float, timeout: float,
             contender: Proc | None = None) -> tuple[float, float]:
    """(first, all): seconds after t0 until the store held 1 and n bundles."""
    first: float | None = None
    deadline = t0 + timeout
    while True:
        held = rec.held()
        now = time.monotonic()
        if held and first is None:
            first = now - t0
        if held >= n:
            assert first is not None
            return first, now - t0
        if now > deadline or (contender is not None and not contender.alive()):
            why = "exited" if now <= deadline else f"timed out after {timeout:g} s"
            log = f"; its log: {contender.tail()}" if contender else ""
            raise BenchError(f"{why}: the receiver holds {held} of {n} bundles{log}")
        time.sleep(POLL)


def baseline(ctx: Context) -> None:
    items = ctx.corpus().items[:ctx.n]
    rec = ctx.start(Receiver(ctx.work, "baseline"))
    jobs: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for it in items:
        jobs.put(it)
    failures: list[str] = []

    def loop(client: httpx.Client) -> None:
        with client:
            while True:
                try:
                    it = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = client.post(rec.url, content=it.body,
                                    headers={"Content-Type": it.content_type,
                                             "Idempotency-Key": it.bundle_id,
                                             "User-Agent": f"outboxd/{__version__}"})
                    if r.status_code != 201:
                        failures.append(f"{it.name}: HTTP {r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{it.name}: {exc!r}")

    # Made before the clock starts (loading the CA store costs tens of ms of CPU), as
    # the daemon makes its client before READY.
    threads = [threading.Thread(target=loop, daemon=True, args=(
        httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)),)) for _ in range(THREADS)]
    rec_cpu = cpu_seconds(rec.pid)
    # This process does nothing else meanwhile (its main thread waits in join): its
    # CPU is the client's.
    client_cpu = process_cpu()
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, start + burst_timeout(len(items)) - time.monotonic()))
    elapsed = time.monotonic() - start
    client_cpu = process_cpu() - client_cpu
    if any(t.is_alive() for t in threads) or failures or rec.held() != len(items):
        raise BenchError(f"baseline: {len(failures)} failed POSTs, receiver holds "
                         f"{rec.held()} of {len(items)}: {failures[:3]}")
    n = len(items)
    ctx.results.add("baseline_time", f"baseline: {n} bundles, httpx × {THREADS}",
                    elapsed, "s", rate="time", bundles=n)
    ctx.results.add("baseline_client_cpu", f"baseline: CPU of the httpx client ({THREADS} "
                    "threads, bodies ready)", client_cpu, "s", "what the POSTs alone cost "
                    "the sender", rate="cpu", bundles=n)
    rec_cpu = cpu_seconds(rec.pid) - rec_cpu
    ctx.results.add("baseline_receiver_cpu", "baseline: CPU of the receiver", rec_cpu, "s",
                    rate="cpu", bundles=n)


PEER_SCRIPT = r"""#!/bin/bash
# The admin's outbox script: one curl per invoice file that lands in the folder.
# Manifests and bundle ids were computed beforehand, beside each bundle.
WATCH="$1"; URL="$2"
cd "$WATCH" || exit 1
export LC_ALL=C
inotifywait -m -e close_write,moved_to --format '%f' . | while IFS= read -r f; do
  case "$f" in *.xml) ;; *) continue ;; esac
  name="${f%.xml}"
  args=(-F "manifest=<$name.manifest.json;type=application/json"
        -F "invoice=@$f;type=application/xml")
  n=0
  for a in "$name"/*; do
    n=$((n + 1))
    case "$a" in
      *.pdf) t=application/pdf ;;
      *.png) t=image/png ;;
      *) t=application/octet-stream ;;
    esac
    args+=(-F "attachment-$n=@$a;type=$t")
  done
  curl -sS -o /dev/null -w "%{http_code} $name\n" -H "Idempotency-Key: $(<"$name.id")" \
       "${args[@]}" "$URL"
done
"""


def peer(ctx: Context) -> None:
    if shutil.which("inotifywait") is None or shutil.which("curl") is None:
        missing = "inotifywait" if shutil.which("inotifywait") is None else "curl"
        note = (f"skipped: {missing} is not installed (Debian: `{INSTALL_INOTIFY}`"
                + (", and curl" if missing == "curl" else "") + ")")
        print(f"peer {note}", flush=True)
        ctx.results.add("peer_time", "peer: inotifywait + curl script", None, "s", note)
        return
    items = ctx.corpus().items[:ctx.n]
    base = ctx.work / "peer"
    watch, stage = base / "watch", base / "stage"
    watch.mkdir(parents=True)
    ctx.corpus().stage(stage, items, extras=True)
    script = base / "outbox.sh"
    script.write_text(PEER_SCRIPT)
    rec = ctx.start(Receiver(ctx.work, "peer"))
    out = open(base / "curl.out", "wb")
    ctx._stack.callback(out.close)
    proc = ctx.start(Proc(["bash", str(script), str(watch), rec.url], base / "peer.log",
                          stdout=out))
    # inotifywait says so on stderr once its watch is in place.
    deadline = time.monotonic() + 10
    while "Watches established" not in proc.tail(20):
        if time.monotonic() > deadline or not proc.alive():
            raise BenchError(f"inotifywait did not start: {proc.tail()}")
        time.sleep(0.01)
    t0 = drop(stage, watch, items, extras=True)
    first, total = wait_all(rec, len(items), t0, burst_timeout(len(items)), proc)
    ctx.results.add("peer_time", f"peer: {len(items)} bundles, inotifywait + curl",
                    total, "s", rate="time", bundles=len(items))
    ctx.results.add("peer_first", "peer: first delivery after the last rename", first, "s")


def start_daemon(ctx: Context, tag: str, rec: Receiver, preflight: str = "off") -> Daemon:
    config = write_config(ctx.work, tag, rec.url, outbox={"settle_seconds": SETTLE},
                          einvoice={"preflight": preflight})
    daemon = ctx.start(Daemon(config))
    daemon.ready()
    return daemon


def throughput(ctx: Context) -> None:
    """The burst with pre-flight off: the loop, validation and delivery."""
    ctx.note(PREFLIGHT_OFF)
    _burst(ctx, "throughput", "off")


def throughput_preflight(ctx: Context) -> None:
    """The same burst with pre-flight on (the default, docs/einvoice.md): what the rules add."""
    _burst(ctx, "throughput-preflight", "error")


def ready_burst(ctx: Context, tag: str, preflight: str = "off"
                ) -> tuple[tuple[Item, ...], Receiver, Daemon, Path]:
    """A fresh receiver, a daemon that is READY, and the burst's N bundles staged
    beside its outbox: (items, receiver, daemon, stage) for `drop`."""
    items = ctx.corpus().items[:ctx.n]
    rec = ctx.start(Receiver(ctx.work, tag))
    daemon = start_daemon(ctx, tag, rec, preflight)
    stage = daemon.outbox.parent / "stage"
    ctx.corpus().stage(stage, items)
    return items, rec, daemon, stage


def _burst(ctx: Context, tag: str, preflight: str) -> None:
    items, rec, daemon, stage = ready_burst(ctx, tag, preflight)
    own0, tree0 = tree_cpu_split(daemon.pid)
    threads0 = thread_split(daemon.pid)
    rec0 = cpu_seconds(rec.pid)
    t0 = drop(stage, daemon.outbox, items)
    try:
        first, total = wait_all(rec, len(items), t0, burst_timeout(len(items)), daemon)
        own, whole = tree_cpu_split(daemon.pid)
        threads = thread_split(daemon.pid)
        own, whole, rec_cpu = own - own0, whole - tree0, cpu_seconds(rec.pid) - rec0
    except BenchError as exc:
        quarantined = list((daemon.outbox.parent / "quarantine").glob("*/*"))
        raise BenchError(f"{exc}; {len(quarantined)} quarantined") from None
    # The engine is loaded (and its compiled rules cached in the state dir) before READY,
    # so the timed window holds only the rules' runs; the cache shows they were on.
    compiled = list((daemon.outbox.parent / "state" / "einvoice").glob("*.xsl"))
    if preflight != "off" and not compiled:
        raise BenchError(f"{tag}: no compiled rules in the daemon's state dir: pre-flight "
                         f"did not run; daemon log: {daemon.tail()}")
    key, n = tag.replace("-", "_"), len(items)
    ctx.results.add(f"{key}_time", f"{tag}: {n} bundles, outboxd run", total, "s",
                    f"settle {SETTLE} s; [einvoice] preflight = \"{preflight}\"",
                    rate="time", bundles=n)
    ctx.results.add(f"{key}_first", f"{tag}: first delivery after the last rename",
                    first, "s")
    # Where the two cores went: what the work costs, apart from how it was scheduled.
    ctx.results.add(f"{key}_cpu", f"{tag}: CPU of outboxd (with its reader processes)",
                    whole, "s", rate="cpu", bundles=n)
    # The split: the loop, the deliveries (httpx) and the watcher share one process and
    # its interpreter lock; reading and validating runs in the reader processes.
    ctx.results.add(f"{key}_main_cpu", f"{tag}: of which outboxd's own process", own,
                    "s", "the loop, the deliveries, the watcher", rate="cpu", bundles=n)
    # Within that process, by thread: which of them would gain from a process of its own.
    # The daemon's threads live as long as it does, so both readings see the same ones.
    for name, label in THREAD_ROWS:
        cpu = threads.get(name, (0.0, 0))[0] - threads0.get(name, (0.0, 0))[0]
        ctx.results.add(f"{key}_{name}_cpu", f"{tag}: of which {label}", cpu, "s",
                        rate="cpu", bundles=n)
    switches = sum(s for _, s in threads.values()) - sum(s for _, s in threads0.values())
    ctx.results.add(f"{key}_switches", f"{tag}: context switches of outboxd's process",
                    switches / n, "a bundle", "all its threads, voluntary or not; a thread "
                    "waiting for the interpreter lock held by another switches too")
    ctx.results.add(f"{key}_receiver_cpu", f"{tag}: CPU of the receiver", rec_cpu, "s",
                    rate="cpu", bundles=n)


def latency(ctx: Context, count: int = 20, gap: float = 1.0) -> None:
    ctx.note(PREFLIGHT_OFF)
    items = ctx.corpus().items[:count]
    rec = ctx.start(Receiver(ctx.work, "latency"))
    daemon = start_daemon(ctx, "latency", rec)
    stage = daemon.outbox.parent / "stage"
    ctx.corpus().stage(stage, items)
    delays: list[float] = []
    placed = time.monotonic() - gap
    for it in items:
        time.sleep(max(0.0, placed + gap - time.monotonic()))
        placed = drop(stage, daemon.outbox, (it,))
        deadline = placed + 30
        while not rec.holds(it.bundle_id):
            if time.monotonic() > deadline or not daemon.alive():
                raise BenchError(f"latency: {it.name} not received within 30 s; "
                                 f"daemon log: {daemon.tail()}")
            time.sleep(0.001)
        delays.append((time.monotonic() - placed - SETTLE) * 1000)
    how = (f"{len(delays)} bundles ≥ {gap:g} s apart; beyond settle ({SETTLE} s); "
           "store polled every 1 ms")
    ctx.results.add("latency_p50", "latency p50", statistics.median(delays), "ms", how)
    ctx.results.add("latency_max", "latency max", max(delays), "ms")
