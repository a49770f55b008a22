"""A big sidecar copied in one file at a time, as a clerk's copy over the share does it:
what the daemon spends a file copied, with 2,000 files against 200 in the same run.

Each copied file raises events on its bundle, and each look at the bundle walks its
whole sidecar; without pacing (settle.Pacer) the cost a file grew with the files
already there (2,000 files: 6.1 CPU-s in a 7 s copy). The ratio of the two costs a
file says whether the cost stays linear: about 1 when it does.

The same 2,000 files copied once more keeping their times (`cp -p`, a file manager):
every version of such a copy looks written long ago, which the daemon reads while it
settles (Pipeline._read_early). The ratio against the fresh copy says whether the
readers follow the copy: about 1 when they do not.
"""

from __future__ import annotations

import os
import time

from bench.context import Context
from bench.corpus import invoice_xml
from bench.procs import PREFLIGHT_OFF, Daemon, Receiver, tree_cpu_seconds, write_config

SMALL, BIG = 200, 2000
RATE = 300.0  # files a second: a copy over the network, one event burst each
FILE = b"%PDF-1.4 a page of a delivery note\n" * 50  # 1.7 KB; never read (no settle)


def sidecar(ctx: Context) -> None:
    with ctx.phase("sidecar"):
        ctx.note(PREFLIGHT_OFF)
        rec = ctx.start(Receiver(ctx.work, "sidecar"))
        # Nothing settles while the phase runs: only the copies' events are measured.
        config = write_config(ctx.work, "sidecar", rec.url, outbox={"settle_seconds": 60.0})
        daemon = ctx.start(Daemon(config))
        daemon.ready()
        per_file = {n: _copy(daemon, n) for n in (SMALL, BIG)}
        kept = _copy(daemon, BIG, keep_times=True)
        for n, cost in per_file.items():
            ctx.results.add(f"sidecar_{n}", f"sidecar: CPU a file, {n:,} files copied in",
                            cost * 1e3, "ms",
                            f"outboxd with its reader processes, during a copy of {n:,} "
                            f"files at {RATE:g} a second into one sidecar")
        ctx.results.add("sidecar_ratio", f"sidecar: CPU a file, {BIG:,} files / {SMALL:,}",
                        per_file[BIG] / per_file[SMALL], "x",
                        "about 1 when the cost a file does not grow with the sidecar")
        ctx.results.add("sidecar_kept", f"sidecar: CPU a file, {BIG:,} files copied in "
                        "keeping their times", kept * 1e3, "ms",
                        "as above, each file and the invoice file dated an hour back, as "
                        "`cp -p` leaves them")
        ctx.results.add("sidecar_kept_ratio", "sidecar: times kept / times fresh",
                        kept / per_file[BIG], "x",
                        "about 1 when a copy that keeps times is not read file by file")


def _copy(daemon: Daemon, n: int, keep_times: bool = False) -> float:
    """CPU-seconds of the daemon a file while n files are copied into a new sidecar."""
    name = f"COPY-{n}" + ("-KEPT" if keep_times else "")
    invoice = daemon.outbox / f"{name}.xml"
    invoice.write_bytes(invoice_xml(name))
    then = time.time() - 3600
    if keep_times:
        os.utime(invoice, (then, then))
    side = daemon.outbox / name
    side.mkdir()
    time.sleep(1.0)  # the invoice file's own look is not part of the copy
    cpu0, t0 = tree_cpu_seconds(daemon.pid), time.monotonic()
    for i in range(n):
        note = side / f"note-{i:05d}.pdf"
        note.write_bytes(FILE)
        if keep_times:
            os.utime(note, (then, then))
        # A steady rate: each file waits for its own slot, not for the one before.
        time.sleep(max(0.0, t0 + (i + 1) / RATE - time.monotonic()))
    time.sleep(0.5)  # the looks the last events asked for
    return (tree_cpu_seconds(daemon.pid) - cpu0) / n
