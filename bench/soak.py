"""Soak test: bundles through a real daemon while the environment misbehaves (issue 6).

Needs root (tmpfs and bind mounts). Not part of CI: run by hand, e.g.

    sudo .venv/bin/python -m bench.soak --bundles 500 --chaos-seconds 120

What it does:
- the outbox is a bind mount of a backing folder (processing/ lives on it), sent/ is
  a small tmpfs on another file system (archive moves are copy + fsync + rename);
- the reference receiver runs on 127.0.0.1, the daemon as `outboxd run`;
- a dropper writes N bundles (invoice + one or two PDF attachments, each unique) the
  way an ERP does (sidecar first, invoice under a temporary name, then renamed);
- for `--chaos-seconds`, a chaos loop picks one fault every 1-4 s: unmount the outbox
  (`umount -l`) for 1-5 s and mount it again; fill sent/ to the last byte for 1-5 s
  and free it; SIGKILL the daemon and start it again. While the share is away the
  dropper waits (the ERP cannot write to a share that is not there either);
- afterwards it waits until everything settles and checks: every bundle at the
  receiver exactly once by content, in sent/ byte-identical, nothing left in the
  outbox, in processing, or as `.partial`, nothing quarantined.

Prints the faults injected by kind, the time taken and the outcome; exit 0 on PASS.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from pypdf import PdfWriter

OUTBOXD = [sys.executable, "-m", "daemon"]
UBL = ('<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="urn:oasis:names:specification'
       ':ubl:schema:xsd:Invoice-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:'
       'CommonBasicComponents-2">\n  <cbc:CustomizationID>urn:cen.eu:en16931:2017'
       '</cbc:CustomizationID>\n  <cbc:ID>{id}</cbc:ID>\n</Invoice>\n')


def pdf(marker: str, pages: int = 1) -> bytes:
    w = PdfWriter()
    for _ in range(pages):
        w.add_blank_page(595, 842)
    w.add_metadata({"/Title": marker})
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def _partials(root: Path) -> list[Path]:
    """Every `*.partial` below root. os.walk, not rglob: a work folder the daemon archives
    while this walks (processing/ is under the backing folder) is skipped, where rglob
    raised FileNotFoundError and ended the soak with a traceback of its own (seed 30)."""
    return [Path(folder) / name for folder, dirs, files in os.walk(root)
            for name in (*dirs, *files) if name.endswith(".partial")]

class Soak:
    def __init__(self, root: Path, bundles: int, chaos_seconds: float, seed: int) -> None:
        self.root = root
        self.n = bundles
        self.chaos_seconds = chaos_seconds
        self.rng = random.Random(seed)
        self.backing = root / "backing"
        self.outbox = root / "outbox"
        self.sent = root / "sent"
        self.quarantine = root / "quarantine"
        self.state = root / "state"
        self.store = root / "store"
        self.config = root / "config.toml"
        self.share_up = threading.Event()
        self.share_up.set()
        self.share_lock = threading.Lock()  # held by the dropper while it writes one bundle
        self.faults: Counter[str] = Counter()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_starts = 0
        self.unexpected_exits: list[int] = []
        self.expected: dict[str, dict[str, bytes]] = {}  # NAME -> relative path -> bytes
        self.mounted: list[Path] = []
        self.stop = threading.Event()

    # -- set-up -------------------------------------------------------------
    def setup(self) -> None:
        for d in (self.backing, self.outbox, self.sent, self.quarantine, self.state, self.store):
            d.mkdir(parents=True)
        sh("mount", "--bind", str(self.backing), str(self.outbox))
        self.mounted.append(self.outbox)
        sh("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(self.sent))
        self.mounted.append(self.sent)
        port = free_port()
        self.receiver = subprocess.Popen(
            [*OUTBOXD, "receiver", "--listen", f"127.0.0.1:{port}", "--store", str(self.store)],
            stdout=subprocess.PIPE, stderr=open(self.root / "receiver.log", "wb"))
        assert self.receiver.stdout is not None
        self.receiver.stdout.readline()
        self.config.write_text(
            f'[outbox]\npath = "{self.outbox}"\nsettle_seconds = 0.3\nrescan_seconds = 2\n'
            f'watch = "polling"\npoll_interval_seconds = 1\n'
            f'[paths]\nsent = "{self.sent}"\nquarantine = "{self.quarantine}"\n'
            f'state_dir = "{self.state}"\n[policy]\nunattached = "send"\n'
            f'[delivery]\nurl = "http://127.0.0.1:{port}/bundles"\nretry_base_seconds = 0.2\n'
            f'retry_max_seconds = 3\nconcurrency = 4\n[log]\nformat = "json"\n'
            f'[service]\nshutdown_grace_seconds = 5\n'
            # The soak is about the environment, not content: the minimal invoices
            # here are not full EN 16931 documents.
            f'[einvoice]\npreflight = "off"\n')
        self.start_daemon()

    def start_daemon(self) -> None:
        self.daemon_starts += 1
        log = open(self.root / f"daemon-{self.daemon_starts}.log", "wb")
        self.daemon = subprocess.Popen([*OUTBOXD, "run", "-c", str(self.config)],
                                       stdout=subprocess.DEVNULL, stderr=log)

    def supervise(self) -> None:
        """Restart=always: a daemon that exited on its own is counted and restarted."""
        assert self.daemon is not None
        code = self.daemon.poll()
        if code is not None:
            self.unexpected_exits.append(code)
            self.start_daemon()

    # -- the ERP ------------------------------------------------------------
    def drop(self, i: int) -> None:
        name = f"INV-{i:05d}"
        files = {f"{name}/a.pdf": pdf(f"{name}-a", 1 + i % 3)}
        if i % 2:
            files[f"{name}/b.pdf"] = pdf(f"{name}-b")
        invoice = UBL.format(id=name).encode()
        self.expected[name] = {**files, f"{name}.xml": invoice}
        while True:
            self.share_up.wait()
            with self.share_lock:
                if not self.share_up.is_set():
                    continue
                for rel, data in files.items():
                    (self.outbox / rel).parent.mkdir(parents=True, exist_ok=True)
                    (self.outbox / rel).write_bytes(data)
                tmp = self.outbox / f".{name}.xml.tmp"
                tmp.write_bytes(invoice)
                tmp.rename(self.outbox / f"{name}.xml")
                return

    def dropper(self, seconds: float) -> None:
        for i in range(self.n):
            if self.stop.is_set():
                return
            self.drop(i)
            time.sleep(seconds / self.n)  # pacing of the ERP, not synchronisation

    # -- faults -------------------------------------------------------------
    def unmount_share(self) -> None:
        with self.share_lock:
            self.share_up.clear()
            sh("umount", "-l", str(self.outbox))
            self.mounted.remove(self.outbox)
        time.sleep(self.rng.uniform(1, 5))
        sh("mount", "--bind", str(self.backing), str(self.outbox))
        self.mounted.append(self.outbox)
        self.share_up.set()
        self.faults["outbox unmounted"] += 1

    def fill_sent(self) -> None:
        filler = self.sent / ".filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for block in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * block):
                        pass
        finally:
            os.close(fd)
        time.sleep(self.rng.uniform(1, 5))
        filler.unlink()
        self.faults["sent/ filled"] += 1

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        self.start_daemon()
        self.faults["daemon SIGKILLed"] += 1

    def chaos(self) -> None:
        end = time.monotonic() + self.chaos_seconds
        actions = (self.unmount_share, self.fill_sent, self.kill_daemon)
        while time.monotonic() < end and not self.stop.is_set():
            time.sleep(self.rng.uniform(1, 4))
            self.supervise()
            self.rng.choice(actions)()

    # -- the end ------------------------------------------------------------
    def leftovers(self) -> list[str]:
        # The share's status page is the daemon's own file, not a bundle.
        out = [f"outbox: {p.name}" for p in self.backing.iterdir()
               if not p.name.startswith(".") and p.name != "outboxd-status.html"]
        processing = self.backing / ".outboxd" / "processing"
        if processing.exists():
            out += [f"processing: {p.name}" for p in processing.iterdir()]
        for root in (self.sent, self.quarantine, self.backing):
            out += [f"partial: {p}" for p in _partials(root)]
        return out

    def settle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervise()
            if not self.leftovers() and len(self.sent_entries()) >= self.n:
                return True
            time.sleep(0.5)  # polling the end state with a deadline
        return False

    def sent_entries(self) -> list[Path]:
        return [p for p in self.sent.glob("*/*") if p.is_dir() and not p.name.startswith(".")]

    def verify(self) -> list[str]:
        problems = []
        by_invoice = {sha(f[f"{n}.xml"]): n for n, f in self.expected.items()}
        at_receiver: Counter[str] = Counter()
        for d in self.store.iterdir():
            if d.is_dir() and not d.name.startswith(".") and d.name != "documents":
                m = json.loads((d / "manifest.json").read_text())
                at_receiver[by_invoice.get(m["invoice_file"]["sha256"], "?unknown")] += 1
        for name in self.expected:
            if at_receiver[name] != 1:
                problems.append(f"{name}: at the receiver {at_receiver[name]} times")
        if at_receiver["?unknown"]:
            problems.append(f"{at_receiver['?unknown']} unknown bundles at the receiver")
        entries: dict[str, list[Path]] = {}
        for p in self.sent_entries():
            entries.setdefault(p.name.split("--")[0], []).append(p)
        for name, files in self.expected.items():
            found = entries.get(name, [])
            if len(found) != 1:
                problems.append(f"{name}: {len(found)} folders in sent/")
                continue
            for rel, data in files.items():
                path = found[0] / rel
                if not path.is_file() or path.read_bytes() != data:
                    problems.append(f"{name}: {rel} not byte-identical in sent/")
        quarantined = [p for p in self.quarantine.glob("*/*") if p.is_dir()]
        problems += [f"quarantined: {p.name}" for p in quarantined]
        problems += self.leftovers()
        return problems

    def teardown(self) -> None:
        self.stop.set()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.daemon.wait(timeout=30)
        self.receiver.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.receiver.wait(timeout=10)
        for p in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


def tracebacks(root: Path) -> int:
    return sum(p.read_text(errors="replace").count("Traceback") for p in root.glob("daemon-*.log"))


# Daemon log events that show the faults were felt, not only injected.
FELT = ("bundle cannot be moved; will retry", "delivery failed; will retry",
        "recovering bundle", "claimed bundle unknown to the journal put back into the outbox",
        "bundle taken by another daemon", "bundle left the outbox while being read (claimed by "
        "another daemon, or the share went away)", "cannot claim bundle; will try again",
        "bundle changed while being claimed; settling again",
        "claim cannot be undone: its work folder is not there; tried again at each rescan",
        "work folder there again; bundle put back into the outbox, settling again")


def felt(root: Path) -> Counter[str]:
    out: Counter[str] = Counter()
    for p in root.glob("daemon-*.log"):
        for line in p.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line).get("event")
            except ValueError:
                continue
            if event in FELT:
                out[event] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", type=int, default=500)
    ap.add_argument("--chaos-seconds", type=float, default=120.0)
    ap.add_argument("--drop-seconds", type=float, default=None,
                    help="spread the drops over this time (default: the chaos time)")
    ap.add_argument("--settle-timeout", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("soak: needs root (tmpfs and bind mounts)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="outboxd-soak-"))
    soak = Soak(root, args.bundles, args.chaos_seconds, args.seed)
    started = time.monotonic()
    try:
        soak.setup()
        dropper = threading.Thread(target=soak.dropper,
                                   args=(args.drop_seconds or args.chaos_seconds,), daemon=True)
        dropper.start()
        soak.chaos()
        dropper.join()
        chaos_done = time.monotonic()
        settled = soak.settle(args.settle_timeout)
        problems = soak.verify() if settled else ["did not settle: " + "; ".join(
            soak.leftovers()[:10]) + f" (sent: {len(soak.sent_entries())})"]
    finally:
        soak.teardown()
    total = time.monotonic() - started
    print(f"bundles: {args.bundles}  chaos: {args.chaos_seconds:g} s  seed: {args.seed}")
    print("faults injected: " + ", ".join(f"{k} ×{v}" for k, v in sorted(soak.faults.items())))
    print(f"daemon starts: {soak.daemon_starts}  exits on its own: {soak.unexpected_exits}")
    print(f"time: {total:.1f} s total, {total - (chaos_done - started):.1f} s to settle after "
          "the chaos ended")
    print(f"tracebacks in daemon logs: {tracebacks(root)}")
    print("felt by the daemon: " + ", ".join(f"{k} ×{v}" for k, v in felt(root).items()))
    print(f"outcome: {'PASS' if not problems else 'FAIL'}")
    for p in problems[:30]:
        print(f"  {p}")
    if args.keep or problems:
        print(f"work folder kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
