"""The oracle of `python -m bench.fuzznames`: after a campaign, every input accounted
for, the archive and `status --json` agreeing with the disk, `check` agreeing with the
daemon, the log clean, nothing outside the outbox touched (bench/fuzznames.py says
what each check is)."""

from __future__ import annotations

import collections
import hashlib
import html
import json
import os
import random
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

from bench.fuzzdrops import Drops, snapshot_outside
from bench.procs import OUTBOXD, Proc, Receiver, _env
from daemon.invisible import escaped_controls
from daemon.names import (
    ERRORS_SUFFIX,
    NAME_MAX,
    NameKind,
    classify,
    fold_key,
    is_share_file,
    printable,
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


class Oracle:
    """The checks, on the campaign's folders and processes (Campaign sets them)."""

    outbox: Path
    sent: Path
    quarantine: Path
    outside: Path
    outside_before: dict[str, tuple[str, float]]
    config: Path
    invalid: str
    markers: bool
    rng: random.Random
    drops: Drops
    receiver: Receiver
    daemon: Proc
    exits: list[int]

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
            # A look-alike of a bundle's sidecar in other case or form, or with a blank
            # at an end, goes with it: the bundle's row says why it does not move (it is
            # named when the bundle is read; one waiting for its marker is not read).
            side = stem(b["invoice_file"])
            if b["state"] in SETTLED_STATES and any(
                    fold_key(n).startswith(fold_key(s))
                    for n in (top, trimmed(top)) for s in (side, trimmed(side))):
                return True
        # Listed as shown (LoneFolder.name): a control character as its code.
        if any(f["folder"] in (top, printable(top)) for f in status["lone_folders"]):
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
