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

Prints what was dropped and the outcome; exit 0 on PASS. `--keep` keeps the work folder.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import html
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fuzzdrops import Drops, make_outside, snapshot_outside
from bench.procs import OUTBOXD, NotifySocket, Proc, Receiver, _env, stop_all, write_config
from daemon.invisible import escaped_controls
from daemon.names import (
    ERRORS_SUFFIX,
    NAME_MAX,
    NameKind,
    classify,
    fold_key,
    is_share_file,
    stem,
    trimmed,
)

SETTLED_STATES = ("settling", "waiting", "held")
# As root, the daemon (and the check of what it holds) without the rights that read and
# list what its mode forbids, as a daemon running as a user of its own.
DROP_CAPS = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
             if os.geteuid() == 0 else [])
QUIET_SECONDS = 8.0


def walk(root: Path) -> list[tuple[Path, os.stat_result]]:
    """Every entry below root, links not followed."""
    out: list[tuple[Path, os.stat_result]] = []
    if not root.exists():
        return out
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            p = Path(folder, name)
            try:
                out.append((p, p.lstat()))
            except OSError:
                continue  # gone meanwhile (archived)
    return out


def sha_file(p: Path) -> str:
    with open(p, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Campaign:
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
    def found(self) -> tuple[dict[str, list[Path]], dict[tuple[str, str], list[Path]]]:
        """Regular files by hash, and other entries by (name, kind), in sent/,
        quarantine/ and the outbox (processing included: a leftover there is flagged)."""
        by_hash: dict[str, list[Path]] = collections.defaultdict(list)
        by_name: dict[tuple[str, str], list[Path]] = collections.defaultdict(list)
        for top in (self.sent, self.quarantine, self.outbox):
            for p, st in walk(top):
                if stat.S_ISREG(st.st_mode):
                    if st.st_size == 0:
                        by_name[(p.name, "empty")].append(p)
                    else:
                        by_hash[sha_file(p)].append(p)
                elif stat.S_ISLNK(st.st_mode):
                    by_name[(p.name, "symlink")].append(p)
                elif stat.S_ISFIFO(st.st_mode):
                    by_name[(p.name, "fifo")].append(p)
                elif stat.S_ISDIR(st.st_mode):
                    by_name[(p.name, "dir")].append(p)
        return by_hash, by_name

    def explained(self, top: str, status: dict[str, Any], page: str) -> bool:
        """A top-level entry left in the outbox has a reason a clerk can see."""
        if classify(top) is not NameKind.OTHER or is_share_file(
                top, "outboxd-status.html", ".send-anyway") or top == ".outboxd":
            return True
        if self.markers and top.endswith(".ready"):
            return True  # documented: a marker of no invoice file waits for one, unlisted
        for b in status["bundles"]:
            # A look-alike of a bundle's sidecar in other case or form goes with it: the
            # bundle's row says why it does not move (it is named when the bundle is read;
            # one waiting for its marker is not read).
            if b["state"] in SETTLED_STATES and fold_key(top).startswith(
                    fold_key(stem(b["invoice_file"]))):
                return True
        if any(f["folder"] == top for f in status["lone_folders"]):
            return True
        return escaped_controls(top) in page

    def verify(self, status: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        by_hash, by_name = self.found()
        page_file = self.outbox / "outboxd-status.html"
        page = html.unescape(page_file.read_text(errors="replace").replace("<wbr>", "")) \
            if page_file.exists() else ""
        wanted = collections.Counter(i.sha for i in self.drops.inputs if i.kind == "file")
        seen_top: set[str] = set()
        for i in self.drops.inputs:
            name = Path(i.rel).name
            if i.kind == "file":
                where = by_hash.get(i.sha, [])
                if len(where) < wanted[i.sha]:
                    problems.append(f"LOST {i.rel!r} ({i.note or 'file'}): content found "
                                    f"{len(where)} of {wanted[i.sha]} times")
                    continue
            else:
                where = by_name.get((name, i.kind), [])
                if not where:
                    problems.append(f"LOST {i.rel!r} ({i.kind} {i.note})")
                    continue
            for p in where:
                if p.is_relative_to(self.outbox / ".outboxd" / "processing"):
                    problems.append(f"in processing: {i.rel!r} at {p}")
                elif p.is_relative_to(self.outbox):
                    seen_top.add(p.relative_to(self.outbox).parts[0])
        for top in sorted(seen_top):
            if not self.explained(top, status, page):
                problems.append(f"left in the outbox with no reason a clerk sees: {top!r}")
        problems += self.archive_problems(status)
        problems += self.outside_problems(by_hash)
        return problems

    def archive_problems(self, status: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        stored = {p.name for p in self.receiver.store.iterdir()} \
            if self.receiver.store.exists() else set()
        folders = {"sent": [], "quarantined": []}  # type: dict[str, list[Path]]
        for state, top, paper in (("sent", self.sent, "receipt.json"),
                                  ("quarantined", self.quarantine, "reason.json")):
            for day in (top.iterdir() if top.exists() else ()):
                for folder in day.iterdir():
                    if not (folder / paper).is_file():
                        problems.append(f"{state} folder without {paper}: {folder}")
                        continue
                    doc = json.loads((folder / paper).read_text())
                    if state == "quarantined" and not os.path.lexists(
                            folder / doc["invoice_file"]):
                        continue  # moved back by hand: no longer listed (documented)
                    folders[state].append(folder)
                    if state == "sent":
                        if doc["manifest"]["bundle_id"] not in stored:
                            problems.append(f"sent but not at the receiver: {folder}")
                    elif not doc["reasons"]:
                        problems.append(f"quarantined without reasons: {folder}")
        for state, paths in folders.items():
            rows = [b for b in status["bundles"] if b["state"] == state]
            if len(rows) != len(paths):
                problems.append(f"status --json has {len(rows)} {state}, disk {len(paths)}")
            for b in rows:
                if not b["folder"] or not os.path.isdir(b["folder"]):
                    problems.append(f"status --json: {state} {b['invoice_file']!r} has no "
                                    f"folder ({b['folder']!r})")
        for b in status["bundles"]:
            errors = f"{stem(b['invoice_file'])}{ERRORS_SUFFIX}"
            # Documented: no errors file where its name would pass NAME_MAX.
            fits = len(os.fsencode(errors)) <= NAME_MAX
            if b["state"] == "held" and self.invalid == "hold" and fits and not \
                    os.path.lexists(self.outbox / errors):
                problems.append(f"held without an errors file: {b['invoice_file']!r}")
        return problems

    def outside_problems(self, by_hash: dict[str, list[Path]]) -> list[str]:
        problems: list[str] = []
        if snapshot_outside(self.outside) != self.outside_before:
            problems.append("something outside the outbox changed")
        for secret in (self.outside / "secret.pdf", self.outside / "dir" / "secret.xml"):
            digest = sha_file(secret)
            if by_hash.get(digest):
                problems.append(f"{secret.name} read through a link: {by_hash[digest]}")
            for p, st in walk(self.receiver.store):
                if stat.S_ISREG(st.st_mode) and sha_file(p) == digest:
                    problems.append(f"{secret.name} at the receiver: {p}")
        return problems

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in sorted(self.config.parent.glob("daemon-*.log")))

    def log_problems(self) -> list[str]:
        problems = [f"daemon exited on its own: {code}" for code in self.exits]
        if not self.daemon.alive():
            problems.append(f"daemon exited: {self.daemon.popen.returncode}")
        text = self.log_text()
        if "Traceback" in text:
            problems.append(f"tracebacks in the daemon log: {text.count('Traceback')}")
        bad = 0
        for line in text.splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad += 1
                if bad <= 3:
                    problems.append(f"log line not JSON: {line[:200]!r}")
        check = self.check()
        if check.returncode not in (0, 1) or b"Traceback" in check.stderr:
            problems.append(f"outboxd check: exit {check.returncode}: {check.stderr[-1500:]!r}")
        return problems

    def check(self, *paths: str) -> subprocess.CompletedProcess[bytes]:
        """`outboxd check` with the daemon's rights: a file of mode 000 it cannot read
        either."""
        return subprocess.run([*DROP_CAPS, *OUTBOXD, "check", "-c", str(self.config), *paths],
                              capture_output=True, env=_env(), timeout=600, check=False)

    def check_problems(self, status: dict[str, Any], most: int = 12) -> list[str]:
        """`outboxd check` of held bundles (a sample of `most`) says what the daemon
        holds them for: exit 1 and every code of their reasons."""
        problems: list[str] = []
        held = [b for b in status["bundles"] if b["state"] == "held"
                and os.path.lexists(self.outbox / b["invoice_file"])]
        for b in self.rng.sample(held, min(most, len(held))):
            done = self.check(str(self.outbox / b["invoice_file"]))
            said = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
            missing = sorted({r["code"] for r in b["reasons"]} - set(
                re.findall(r"\[([a-z0-9-]+)\]", said)))
            if done.returncode != 1 or missing:
                problems.append(f"check of held {b['invoice_file']!r}: exit "
                                f"{done.returncode}, codes not said: {missing} "
                                f"({said[-600:]!r})")
        return problems

    def errors_logged(self) -> collections.Counter[str]:
        out: collections.Counter[str] = collections.Counter()
        for line in self.log_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("level") in ("error", "critical"):
                out[str(row.get("event"))] += 1
        return out

    def stop(self) -> None:
        self.daemon.stop()
        self.notify.close()
        self.receiver.stop()


def _restore_modes(root: Path) -> None:
    """Files of mode 000 the campaign made: removable again for rmtree."""
    for p, st in walk(root):
        if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o777:
            os.chmod(p, 0o600)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--drops", type=int, default=150)
    ap.add_argument("--restarts", type=int, default=2,
                    help="SIGKILL and restart the daemon this many times during the drops")
    ap.add_argument("--settle-timeout", type=float, default=300.0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
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
    if args.keep or problems:
        print(f"work folder kept: {root}")
    else:
        _restore_modes(root)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
