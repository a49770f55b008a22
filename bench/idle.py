"""The phases where nothing moves: a backlog of invoices waiting under the hold
policy (READY, idle CPU and RSS, `status --json`), and `status --json` on a
big journal."""

from __future__ import annotations

import os
import sqlite3
import statistics
import time

from bench.context import Context
from bench.corpus import invoice_xml
from bench.procs import (
    PREFLIGHT_OFF,
    BenchError,
    Daemon,
    Receiver,
    rss_mb,
    status_json,
    tree_cpu_seconds,
    tree_rss_mb,
    write_config,
)
from bench.yearjournal import fill_journal, shape

IDLE_SECONDS = 20.0



def all_counted(waiting: int) -> bytes:
    """What the status page shows once it counts `waiting` invoices waiting (the count at
    its top, as daemon/report/pagerender.py writes it): matched on the page's bytes."""
    return f"<b>{waiting}</b> Waiting for attachments".encode()

def _waiting(daemon: Daemon) -> int:
    """Rows in `waiting`, read as `status` reads them (read-only, beside the daemon)."""
    if not daemon.journal.exists():
        return 0
    db = sqlite3.connect(f"file:{daemon.journal}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM bundles WHERE state = 'waiting'")
                   .fetchone()[0])
    except sqlite3.Error:
        return 0  # the schema is not there yet
    finally:
        db.close()


def backlog(ctx: Context) -> None:
    for size in ctx.backlog_sizes:
        with ctx.phase(f"backlog {size}"):
            _backlog(ctx, size)


def _backlog(ctx: Context, size: int) -> None:
    ctx.note(PREFLIGHT_OFF)
    rec = ctx.start(Receiver(ctx.work, f"backlog{size}"))
    config = write_config(ctx.work, f"backlog{size}", rec.url,
                          outbox={"settle_seconds": 0.2},
                          policy={"unattached": "hold"})
    outbox = config.parent / "outbox"
    for i in range(1, size + 1):
        name = f"INV-W{i:06d}"
        (outbox / f"{name}.xml").write_bytes(invoice_xml(name))
    os.sync()  # nothing left to write back while the daemon is timed
    daemon = ctx.start(Daemon(config))
    ready = daemon.ready(timeout=300)
    key = f"backlog_{size}"
    ctx.results.add(f"{key}_ready", f"backlog {size}: READY after spawn", ready, "s",
                    "spawn until READY=1 on NOTIFY_SOCKET")
    # Idle means: everything read and recorded. The journal says when that is.
    limit = 60.0 + 0.03 * size
    start = time.monotonic()
    waiting = 0
    said = start
    while waiting < size:
        if not daemon.alive():
            raise BenchError(f"daemon exited: {daemon.tail()}")
        if time.monotonic() - start > limit:
            break
        time.sleep(0.5)
        waiting = _waiting(daemon)
        if time.monotonic() - said >= 10:
            said = time.monotonic()
            print(f"  {waiting} of {size} waiting after {said - daemon.spawned:.0f} s",
                  flush=True)
    all_waiting = time.monotonic() - daemon.spawned
    if waiting < size:
        ctx.results.notes.append(f"backlog {size}: only {waiting} of {size} waiting after "
                                 f"{limit:g} s; idle figures measured anyway (not idle)")
    ctx.results.add(f"{key}_all_waiting", f"backlog {size}: all waiting (journal) after spawn",
                    all_waiting if waiting >= size else None, "s",
                    "journal polled every 0.5 s" if waiting >= size
                    else f"{waiting}/{size} after {limit:g} s")
    # The daemon's last work after the journal says "all waiting": the status page
    # is rewritten with every waiting row (at most every 2 s, or 20 times what a
    # rewrite costs: about 11 s with 20,000 rows). Idle starts when the page counts
    # them all and has been left alone for QUIET seconds.
    page = outbox / "outboxd-status.html"
    counted = all_counted(waiting)
    quiet_since = time.monotonic()
    page_deadline = quiet_since + limit
    last, shows_all = None, False
    while not shows_all or time.monotonic() - quiet_since < QUIET:
        mtime = page.stat().st_mtime_ns if page.exists() else None
        if mtime != last:
            last, quiet_since = mtime, time.monotonic()
            shows_all = mtime is not None and counted in page.read_bytes()
        if time.monotonic() > page_deadline:
            ctx.results.notes.append(f"backlog {size}: the status page did not count "
                                     f"{waiting} waiting within {limit:g} s")
            break
        time.sleep(0.2)
    cpu0, t0 = tree_cpu_seconds(daemon.pid), time.monotonic()
    rss: list[float] = []
    tree_rss: list[float] = []
    samples = [(t0, cpu0)]
    while (left := t0 + RESCAN_PERIOD - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        rss.append(rss_mb(daemon.pid))
        tree_rss.append(tree_rss_mb(daemon.pid))
        samples.append((time.monotonic(), tree_cpu_seconds(daemon.pid)))
    t1, cpu1 = samples[-1]
    busy, span = quietest(samples, IDLE_SECONDS)
    ctx.results.add(f"{key}_cpu", f"backlog {size}: idle CPU", busy / span * 100, "%",
                    f"{busy:.2f} CPU-s in {span:.1f} s (utime+stime, all threads and child "
                    f"processes): the quietest {IDLE_SECONDS:g} s of the rescan period "
                    f"below, which starts {QUIET:g} s after the status page was last "
                    "written; the period's one rescan is in the next figure")
    ctx.results.add(f"{key}_cpu_period", f"backlog {size}: idle CPU over a rescan period",
                    (cpu1 - cpu0) / (t1 - t0) * 100, "%",
                    f"{cpu1 - cpu0:.2f} CPU-s in {t1 - t0:.1f} s: one full rescan "
                    f"(rescan_seconds = {RESCAN_PERIOD:g}) amortised")
    ctx.results.add(f"{key}_rss", f"backlog {size}: RSS", max(rss), "MB",
                    "highest VmRSS of 1 s samples, the daemon's own process")
    ctx.results.add(f"{key}_tree_rss", f"backlog {size}: RSS with child processes",
                    max(tree_rss), "MB", "highest sum of VmRSS over the daemon and its "
                    "reader processes (shared pages counted in each)")
    elapsed, data = status_json(config, config.parent / "status.json")
    shown = data["counts"].get("waiting")
    ctx.results.add(f"{key}_status", f"backlog {size}: status --json", elapsed, "s",
                    f"lists {shown} waiting")


def quietest(samples: list[tuple[float, float]], seconds: float) -> tuple[float, float]:
    """(CPU-s, s) of the window of at least `seconds` between two samples (time,
    cumulative CPU) with the least CPU. The rescan period holds one full rescan,
    wherever it falls; idleness is what the daemon costs between two of them."""
    best: tuple[float, float] | None = None
    for i, (ti, ci) in enumerate(samples):
        j = next((j for j in range(i + 1, len(samples)) if samples[j][0] - ti >= seconds),
                 None)
        if j is None:
            break
        window = (samples[j][1] - ci, samples[j][0] - ti)
        if best is None or window[0] / window[1] < best[0] / best[1]:
            best = window
    if best is None:
        raise BenchError(f"no {seconds:g} s window in {samples[-1][0] - samples[0][0]:.1f} s")
    return best


QUIET = 3.0  # seconds the status page stays unwritten before idleness is measured
RESCAN_PERIOD = 60.0  # the default rescan_seconds: the longer window holds one rescan

def journal(ctx: Context, runs: int = 3) -> None:
    rows = ctx.journal_rows
    config = write_config(ctx.work, "journal", "http://127.0.0.1:9/bundles")
    state = config.parent / "state"
    state.mkdir(parents=True, exist_ok=True)
    path = state / "journal.sqlite3"
    began = time.monotonic()
    counts = fill_journal(str(path), rows, days=ctx.journal_days)
    filled = time.monotonic() - began
    times: list[float] = []
    for n in range(runs):
        elapsed, data = status_json(config, config.parent / f"status{n}.json")
        times.append(elapsed)
        listed = len(data["bundles"])
    ctx.results.add(f"journal_{rows}_status",
                    f"status --json on a year's journal of {rows} bundles",
                    statistics.median(times), "s",
                    f"median of {runs} (max {max(times):.2f} s); lists {listed} bundles; "
                    + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                    + f"; sent and quarantined spread over {ctx.journal_days:g} days; "
                    + shape(path) + f" (written in {filled:.0f} s)")
