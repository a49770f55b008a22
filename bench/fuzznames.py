"""Random names and layouts thrown at a running daemon, with "nothing lost" as the oracle.

Not part of CI: run by hand, e.g.

    nice -n 10 .venv/bin/python -m bench.fuzznames --seed 1 --drops 150

What it does:
- the reference receiver runs on 127.0.0.1, the daemon as `outboxd run` ([policy]
  unattached = "send", JSON log; [policy] invalid "hold" for odd seeds and "quarantine"
  for even ones; polling for seeds divisible by 3, else inotify; invoice_patterns =
  ["*"] for seeds ending in 4 or 9; completion = "marker" for seeds 6, 13, 20 … (7k+6),
  whose drops then mostly end with NAME.ready); as root the daemon runs without
  CAP_DAC_OVERRIDE (setpriv), so that a file of mode 000 is unreadable to it as to a
  daemon with a user of its own; `--restarts` times during the drops it is SIGKILLed
  and started again on the same journal;
- `--drops` random drops (bench/fuzzdrops.py, seeded): invoice files (the Peppol example
  with random ids, several invoices in one file, PDFs, junk, empty) with random names of
  many Unicode categories, names at NAME_MAX, Windows device names, look-alikes of
  outboxd's own names, litter, in-progress names; sidecar trees with case and NFC/NFD
  twins, symlinks into and out of the outbox, FIFOs, hard links, files of mode 000,
  empty files and folders; made in place, renamed from a dot-name, written slowly, with
  old times kept, or a folder moved in whole; some bundles dropped again once gone;
- then it waits (polling, with a deadline) until the outbox has not changed for a while
  and nothing is being delivered, and checks:
  * every input accounted for: its content (hash; empty files, links and FIFOs by name
    and kind) in sent/, quarantine/ or still in the outbox — and a top-level entry left
    in the outbox is explained: litter or an in-progress name, outboxd's own file, a
    bundle `status --json` lists as settling, waiting or held, a folder it lists, or a
    name the status page shows;
  * nothing in the processing folder; every sent/ folder has receipt.json and its bundle
    is in the receiver's store; every quarantine/ folder has reason.json with reasons;
  * `status --json` agrees with disk: each sent or quarantined bundle's folder is there,
    a held one has its NAME.errors.txt (under "hold"), as many sent/ and quarantine/
    folders as bundles in those states;
  * `outboxd check` runs without a traceback, and says of a sample of held bundles
    what the daemon holds them for (exit 1, every code of their reasons);
  * the daemon is alive, no traceback in its log, every log line JSON;
  * nothing outside the outbox changed, and no byte of the files links point to there
    reached the receiver, sent/ or quarantine/.

Prints what was dropped and the outcome; exit 0 on PASS. `--keep` keeps the work folder;
its drops.txt is the trace of every entry made, rewritten through a hard link, moved
back or renamed, and of each restart, in order. `--trace TEXT` prints the lines of it
and of the daemon's logs that name TEXT.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.fuzzdrops import Drops, make_outside
from bench.fuzzoracle import DROP_CAPS, QUIET_SECONDS, Oracle, walk
from bench.procs import OUTBOXD, NotifySocket, Proc, Receiver, _env, stop_all, write_config
from daemon.invisible import escaped_controls
from daemon.names import trimmed


class Campaign(Oracle):
    def __init__(self, root: Path, seed: int, drops: int) -> None:
        self.root = root
        self.seed = seed
        self.n = drops
        self.rng = random.Random(seed)
        self.invalid = "hold" if seed % 2 else "quarantine"
        base = root / "fz"
        self.outbox = base / "outbox"
        self.sent = base / "sent"
        self.quarantine = base / "quarantine"
        self.outside = base / "outside"
        self.stage = base / "stage"
        self.stage.mkdir(parents=True)
        self.outside_before = make_outside(self.outside)
        self.receiver = Receiver(root, "fz")
        self.config = write_config(
            root, "fz", self.receiver.url,
            outbox={"settle_seconds": 0.5, "rescan_seconds": 5,
                    "watch": "polling" if seed % 3 == 0 else "auto",
                    "invoice_patterns": ["*"] if seed % 5 == 4 else ["*.xml", "*.pdf"],
                    "completion": "marker" if seed % 7 == 6 else "settle"},
            paths={"sent": str(self.sent), "quarantine": str(self.quarantine),
                   "state_dir": str(base / "state")},
            policy={"unattached": "send", "invalid": self.invalid},
            delivery={"retry_base_seconds": 0.2, "retry_max_seconds": 2})
        self.drops = Drops(self.outbox, self.stage, self.outside, self.rng,
                           markers=seed % 7 == 6)
        self.markers = seed % 7 == 6
        self.variant = (f"invalid = {self.invalid}" + (", polling" if seed % 3 == 0 else "")
                        + (', invoice_patterns = ["*"]' if seed % 5 == 4 else "")
                        + (', completion = "marker"' if seed % 7 == 6 else ""))
        self.starts = 0
        self.moved_back = self.renamed = 0
        self.exits: list[int] = []
        self.start()

    def start(self) -> None:
        """`outboxd run`, as root without CAP_DAC_OVERRIDE; its log daemon-N.log."""
        self.starts += 1
        base = self.config.parent
        self.notify = NotifySocket(base / "notify.sock")
        self.daemon = Proc([*DROP_CAPS, *OUTBOXD, "run", "-c", str(self.config)],
                           base / f"daemon-{self.starts}.log",
                           env=_env(NOTIFY_SOCKET=str(self.notify.path)))
        self.notify.wait_ready(self.daemon, 120)

    def kill(self) -> None:
        """SIGKILL mid-campaign (a power loss), then a fresh start on the same journal."""
        if self.daemon.popen.poll() is not None:
            self.exits.append(self.daemon.popen.returncode)
        self.drops.note("daemon SIGKILLed and started again")
        self.daemon.popen.kill()
        self.daemon.popen.wait()
        self.daemon.stop()
        self.notify.close()
        self.start()

    # -- the campaign --------------------------------------------------------
    def run(self, restarts: int) -> None:
        kills = set(self.rng.sample(range(1, self.n), min(restarts, self.n - 1)))
        for i in range(self.n):
            if i in kills:
                self.kill()
            roll = self.rng.random()
            if roll < 0.04:
                self.move_back()
            elif roll < 0.07:
                self.rename_trimmed()
            self.drops.one()
            time.sleep(self.rng.uniform(0, 0.3))  # the clerks' pace, not synchronisation

    def move_back(self) -> None:
        """A clerk takes a quarantined bundle back as REASON.txt says: the sidecar (and
        whatever else of the bundle is there) into the outbox first, the invoice file
        last; outboxd's papers stay. Nothing is moved over a name the outbox has."""
        folders = [f for f in self.quarantine.glob("*/*") if (f / "reason.json").is_file()]
        if not folders:
            return
        folder = self.rng.choice(folders)
        try:
            invoice = json.loads((folder / "reason.json").read_text())["invoice_file"]
            parts = [e for e in os.listdir(folder) if e not in (
                "REASON.txt", "reason.json", invoice) and not e.endswith(".converted")]
        except (OSError, ValueError, KeyError):
            return
        for name in [*parts, invoice]:
            if os.path.lexists(folder / name) and not os.path.lexists(self.outbox / name):
                try:
                    os.rename(folder / name, self.outbox / name)
                except OSError:
                    continue
                self.drops.note(f"moved back {name!r} from {folder.name!r}")
        self.moved_back += 1

    def rename_trimmed(self) -> None:
        """A clerk mends a name with a space or dot at an end, as the page says."""
        # Only files the clerks dropped (not outboxd's errors files), accounted for by
        # content: a link or an empty file is accounted for by its name.
        mine = [i for i in self.drops.inputs if "/" not in i.rel and i.kind == "file"
                and trimmed(i.rel) != i.rel and os.path.isfile(self.outbox / i.rel)
                and not os.path.lexists(self.outbox / trimmed(i.rel))]
        if mine:
            i = self.rng.choice(mine)
            with contextlib.suppress(OSError):
                os.rename(self.outbox / i.rel, self.outbox / trimmed(i.rel))
                self.drops.note(f"renamed {i.rel!r} to {trimmed(i.rel)!r}")
                i.rel = trimmed(i.rel)
                self.renamed += 1

    def status(self) -> dict[str, Any]:
        done = subprocess.run([*OUTBOXD, "status", "--json", "-c", str(self.config)],
                              capture_output=True, env=_env(), timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"status --json: {done.returncode} {done.stderr[-2000:]!r}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def outbox_view(self) -> list[tuple[str, int, int]]:
        return sorted((str(p), st.st_size, st.st_mtime_ns) for p, st in walk(self.outbox)
                      if ".outboxd" not in p.relative_to(self.outbox).parts)

    def quiet(self, timeout: float) -> dict[str, Any] | None:
        """status --json once the outbox has not changed for QUIET_SECONDS, nothing is
        being delivered and the processing folder is empty; None at the deadline."""
        deadline = time.monotonic() + timeout
        view, since = self.outbox_view(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(1.0)  # polling the end state with a deadline
            now = self.outbox_view()
            if now != view:
                view, since = now, time.monotonic()
                continue
            if time.monotonic() - since < QUIET_SECONDS or self.processing():
                continue
            status = self.status()
            if not any(b["state"] in ("delivering", "retrying") for b in status["bundles"]):
                return status
        return None

    def processing(self) -> list[Path]:
        work = self.outbox / ".outboxd" / "processing"
        return list(work.iterdir()) if work.exists() else []

    # -- the oracle ----------------------------------------------------------
    def stop(self) -> None:
        self.daemon.stop()
        self.notify.close()
        self.receiver.stop()


def _restore_modes(root: Path) -> None:
    """Files of mode 000 the campaign made: removable again for rmtree."""
    for p, st in walk(root):
        if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o777:
            os.chmod(p, 0o600)


def trace(root: Path, text: str, log: list[str]) -> list[str]:
    """The lines of the drops' record and of the daemon's logs that name TEXT, each
    record's in order (the daemon's are stamped with wall-clock, the drops' with the
    monotonic clock: they interleave by their content, not their stamps)."""
    # As the record writes a name (repr), and as outboxd shows one: an invisible
    # character by its code, as typed (`\u200d`).
    typed = repr(text)[1:-1]
    out = [f"drops: {line}" for line in log if text in line or typed in line]
    for path in sorted(root.glob("fz/daemon-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                texts = list(_strings(json.loads(line)))
            except ValueError:
                texts = [line]
            if any(text in t or typed in t for t in texts):
                out.append(f"{path.stem}: {line}")
    return out


def _strings(value: Any) -> Iterator[str]:
    """Every text in a log line's JSON: names are looked for in them as they are, not
    as JSON escapes them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--drops", type=int, default=150)
    ap.add_argument("--restarts", type=int, default=2,
                    help="SIGKILL and restart the daemon this many times during the drops")
    ap.add_argument("--settle-timeout", type=float, default=300.0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--trace", action="append", default=[], metavar="TEXT",
                    help="print what was done to names holding TEXT (drops.txt) and the "
                    "daemon's log lines naming them; may be given again")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="outboxd-fuzznames-"))
    started = time.monotonic()
    campaign: Campaign | None = None
    try:
        campaign = Campaign(root, args.seed, args.drops)
        campaign.run(args.restarts)
        status = campaign.quiet(args.settle_timeout)
        if status is None:
            problems = ["did not become quiet within the settle timeout"]
            status = campaign.status()
        else:
            problems = []
        problems += (campaign.verify(status) + campaign.log_problems()
                     + campaign.check_problems(status))
        (root / "drops.txt").write_text("\n".join(campaign.drops.log) + "\n",
                                        errors="surrogateescape")
        errors = campaign.errors_logged()
        counts = status["counts"]
    finally:
        if campaign is not None:
            campaign.stop()
        stop_all()
    kinds = collections.Counter(i.kind for i in campaign.drops.inputs)
    print(f"seed: {args.seed}  drops: {args.drops}  config: {campaign.variant}  "
          f"daemon starts: {campaign.starts}  time: {time.monotonic() - started:.0f} s")
    print("inputs: " + ", ".join(f"{k} ×{v}" for k, v in sorted(kinds.items()))
          + f"; moved back from quarantine/ ×{campaign.moved_back}, names mended "
          f"×{campaign.renamed}")
    print("refused by the file system: " + (", ".join(
        f"{k} ×{v}" for k, v in sorted(campaign.drops.skipped.items())) or "nothing"))
    print("bundles: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    print("error log lines: " + (", ".join(f"{k} ×{v}" for k, v in errors.most_common())
                                 or "none"))
    print(f"outcome: {'PASS' if not problems else 'FAIL'}")
    for p in problems[:40]:
        print(f"  {escaped_controls(p)}")
    for text in args.trace:
        print(f"trace of {text!r}:")
        for line in trace(root, text, campaign.drops.log):
            print(f"  {escaped_controls(line)}")
    if args.keep or problems:
        print(f"work folder kept: {root}")
    else:
        _restore_modes(root)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
