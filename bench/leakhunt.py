"""Leak hunt: thousands of bundles in waves through a real daemon; per wave, what the
kernel and the daemon's own maps say (docs/benchmarks.md, "Leak hunt").

    sudo .venv/bin/python -m bench.leakhunt --waves 30 --per-wave 80

Needs root only to run the daemon without CAP_DAC_OVERRIDE (setpriv), so that a
sidecar chmod 000 cannot be listed by it, as for a daemon running as its own user.
Each wave drops `per-wave` bundles (an invoice and a PDF, each unique) and, among them:
invoices without attachments (waiting under `unattached = "warn"`, released by a
`NAME.send-anyway` the next wave), bundles with a refused attachment (held under
`invalid = "hold"`; the next wave their sidecar is moved away for half a second
(vanished), put back, and mended), duplicates of a bundle sent (quarantined; some put
back by `outboxd retry`, quarantined again), a sidecar chmod 000 for a second, unusable
receipt.json files in today's sent/ folder; the receiver is started again each wave
answering its first requests 503 (Retry-After: 1) twice, then 413 (quarantined; put
back by `outboxd retry` the next wave); a SIGHUP each wave, one reader SIGKILLed at the
middle wave. Once the wave has settled (every bundle sent, quarantined, waiting or held
as planned) it records the daemon's fds, threads and RSS, the readers' RSS, the WAL's
size and, through bench/leakprobe.py's SIGUSR2, the length of every map the daemon's
objects hold. Prints a table of the measures and of every map that grew; exits 1 when
a wave did not settle within 300 s."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from bench.procs import (
    OUTBOXD,
    BenchError,
    NotifySocket,
    Proc,
    _env,
    rss_mb,
    stop_all,
    tree,
    wait_for,
)
from bench.soak import UBL, free_port, pdf


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


class Hunt:
    def __init__(self, root: Path, waves: int, per_wave: int, preflight: str) -> None:
        self.root, self.waves, self.per_wave = root, waves, per_wave
        self.preflight = preflight
        self.outbox, self.sent = root / "outbox", root / "sent"
        self.quarantine, self.state = root / "quarantine", root / "state"
        self.store, self.probe = root / "store", root / "probe.json"
        self.config = root / "config.toml"
        self.port = free_port()
        self.receiver: Proc | None = None
        self.daemon: Proc | None = None
        self.n = 0
        self.waiting: list[str] = []  # invoice files waiting, released next wave
        self.held: list[str] = []  # held for a refused file, mended next wave
        self.rows: list[dict[str, Any]] = []
        self.maps: list[dict[str, int]] = []
        self.stuck = 0  # waves that did not settle
        self.samples: dict[str, str] = {}  # the probe's last: a few keys of each map
        self.firsts: dict[str, dict[str, bytes]] = {}  # what a duplicate drops again

    # -- processes --------------------------------------------------------------
    def start_receiver(self, fail: str) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        args = [*OUTBOXD, "receiver", "--listen", f"127.0.0.1:{self.port}", "--store",
                str(self.store), "--fail-first", fail]
        self.receiver = Proc(args, self.root / "receiver.log", stdout=subprocess.PIPE)
        assert self.receiver.popen.stdout is not None
        self.receiver.popen.stdout.readline()

    def start(self) -> None:
        for d in (self.outbox, self.sent, self.quarantine, self.state, self.store):
            d.mkdir(parents=True)
        self.config.write_text(
            f'[outbox]\npath = "{self.outbox}"\nsettle_seconds = 0.2\nrescan_seconds = 2\n'
            f'[paths]\nsent = "{self.sent}"\nquarantine = "{self.quarantine}"\n'
            f'state_dir = "{self.state}"\n'
            '[policy]\nunattached = "warn"\nattachment_wait_seconds = 3600\n'
            'invalid = "hold"\nduplicates = "quarantine"\n'
            f'[delivery]\nurl = "http://127.0.0.1:{self.port}/bundles"\n'
            'retry_base_seconds = 0.2\nretry_max_seconds = 2\n'
            '[log]\nformat = "json"\n[service]\nreader_processes = 2\n'
            f'[einvoice]\npreflight = "{self.preflight}"\n')
        self.start_receiver("pass")
        notify = NotifySocket(self.root / "notify.sock")
        drop_caps = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
        self.daemon = Proc([*drop_caps, sys.executable, "-m", "bench.leakprobe",
                            str(self.probe), "run", "-c", str(self.config)],
                           self.root / "daemon.log", env=_env(NOTIFY_SOCKET=str(notify.path)))
        notify.wait_ready(self.daemon, 120)
        notify.close()

    def readers(self) -> list[int]:
        assert self.daemon is not None
        return [p for p in tree(self.daemon.pid) if p != self.daemon.pid]

    # -- the ERP and the clerks -------------------------------------------------
    def drop(self, name: str, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            (self.outbox / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.outbox / name / rel).write_bytes(data)
        tmp = self.outbox / f".{name}.xml.tmp"
        tmp.write_bytes(UBL.format(id=name).encode())
        tmp.rename(self.outbox / f"{name}.xml")

    def quarantined(self) -> list[Path]:
        return [p for day in self.quarantine.iterdir() for p in day.iterdir()
                if (p / "reason.json").exists()] if self.quarantine.exists() else []

    def retry(self, folders: list[Path]) -> None:
        if folders:
            subprocess.run([*OUTBOXD, "retry", "-c", str(self.config), *map(str, folders)],
                           env=_env(), capture_output=True, check=False, timeout=120)

    def wave(self, w: int) -> None:
        assert self.daemon is not None
        # Last wave's waits released and holds mended; 413s and some duplicates retried.
        for name in self.waiting:
            (self.outbox / f"{name}.send-anyway").write_bytes(b"")
        for name in self.held:
            # Seen by the daemon (held, its errors file written): the sidecar goes away
            # for a while (vanished.py), then it is mended.
            away = self.root / f"away-{name}"
            os.rename(self.outbox / name, away)
            time.sleep(0.5)  # the clerk's pace, not synchronisation
            os.rename(away, self.outbox / name)
            (self.outbox / name / "payload.bin").unlink()
        self.waiting, self.held = [], []
        refused = [q for q in self.quarantined()
                   if "413" in (q / "REASON.txt").read_text(errors="replace") or w % 5 == 0]
        self.retry(refused[:10])
        self.start_receiver("503:1,503:1,413,pass")
        os.kill(self.daemon.pid, signal.SIGHUP)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        for i in range(3):  # receipts nobody can use
            junk = self.sent / day / f"JUNK-{w}-{i}--{w:06x}{i:06x}"
            junk.mkdir(parents=True)
            (junk / "receipt.json").write_text("{not json" if i else '{"bundle_id": 5}')
        for i in range(self.per_wave):
            self.n += 1
            name = f"W{w:02d}-{i:03d}"
            kind = i % 20
            if kind == 1:  # waits for attachments
                self.drop(name, {})
                self.waiting.append(name)
            elif kind == 2:  # held: a file type no rule takes
                self.drop(name, {"a.pdf": pdf(name), "payload.bin": os.urandom(64)})
                self.held.append(name)
            elif kind == 3 and w:  # last wave's first bundle again: a duplicate
                first = f"W{w - 1:02d}-000"
                self.drop(first, self.firsts[first])
            elif kind == 4:  # a sidecar that cannot be listed for a second
                self.drop(name, {"a.pdf": pdf(name), "b.png": png()})
                os.chmod(self.outbox / name, 0)
                time.sleep(1.0)
                os.chmod(self.outbox / name, 0o755)
            else:
                files = {"a.pdf": pdf(name)}
                self.firsts[name] = files
                self.drop(name, files)
        if w == self.waves // 2 and self.readers():
            os.kill(self.readers()[0], signal.SIGKILL)
        self.settle(w)

    def settle(self, w: int) -> None:
        stay = {f"{n}.xml" for n in self.waiting + self.held}
        processing = self.outbox / ".outboxd" / "processing"

        def settled() -> bool:
            root = {e.name for e in os.scandir(self.outbox) if e.name.endswith(".xml")}
            busy = processing.exists() and any(processing.iterdir())
            return root <= stay and not busy
        try:
            wait_for(settled, 300, f"wave {w} to settle", interval=0.2)
        except BenchError as exc:
            self.stuck += 1
            print(f"wave {w}: {exc}", file=sys.stderr)
        self.measure(w)

    # -- measures ---------------------------------------------------------------
    def measure(self, w: int) -> None:
        assert self.daemon is not None
        pid = self.daemon.pid
        self.probe.unlink(missing_ok=True)
        os.kill(pid, signal.SIGUSR2)
        def answered() -> dict[str, Any]:
            return json.loads(self.probe.read_text()) if self.probe.exists() else {}
        answer = wait_for(answered, 60, "the probe's answer", interval=0.05)
        self.maps.append(answer["sizes"])
        self.samples = answer["samples"]
        wal = self.state / "journal.sqlite3-wal"
        self.rows.append({
            "wave": w, "bundles": self.n,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task")),
            "rss": round(rss_mb(pid)),
            "readers": "/".join(str(round(rss_mb(p))) for p in self.readers()),
            "wal_kb": round(wal.stat().st_size / 1024) if wal.exists() else 0,
            "quarantined": len(self.quarantined()),
        })
        print(" ".join(f"{k}={v}" for k, v in self.rows[-1].items()), flush=True)

    def report(self) -> None:
        keys = list(self.rows[0])
        print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for row in self.rows:
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")
        first, mid, last = self.maps[0], self.maps[len(self.maps) // 2], self.maps[-1]
        print("\nmaps (after wave 0 / middle / last / max), those not 0 at the end or "
              "that grew:")
        for key in sorted(set(first) | set(last)):
            series = [m.get(key, 0) for m in self.maps]
            if key == "#gc objects" or series[-1] or max(series) > series[0]:
                print(f"  {key}: {first.get(key, 0)} / {mid.get(key, 0)} / "
                      f"{last.get(key, 0)} / {max(series)}"
                      + (f"  (e.g. {self.samples[key]})" if key in self.samples else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--waves", type=int, default=30)
    ap.add_argument("--per-wave", type=int, default=80)
    ap.add_argument("--preflight", default="warn", choices=("warn", "off"),
                    help="[einvoice] preflight: warn (the default) loads the rules in the "
                    "readers and checks each invoice, which the minimal invoices here break")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    # Started in the background SIGINT is ignored: a SIGTERM stops it and what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="outboxd-leakhunt-"))
    hunt = Hunt(root, args.waves, args.per_wave, args.preflight)
    start = time.monotonic()
    try:
        hunt.start()
        for w in range(args.waves):
            hunt.wave(w)
        # The last wave's waits and holds, released and mended, then a quiet period.
        hunt.per_wave = 0
        hunt.wave(args.waves)
        time.sleep(30)  # a quiet half minute: what timers still hold, they let go of
        hunt.measure(args.waves + 1)
        hunt.report()
        print(f"\n{hunt.n} bundles in {time.monotonic() - start:.0f} s; work folder {root}")
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if hunt.stuck else 0


if __name__ == "__main__":
    raise SystemExit(main())
