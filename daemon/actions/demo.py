"""`outboxd demo`: a self-contained trial a newcomer runs first.

It makes a workspace, starts the reference receiver on a free loopback port
and the daemon (both as child processes, exactly as they run for real) with
short timings, drops the samples of `demo_samples` one after another, and
shows each bundle move (settling → waiting → sent / quarantined) by reading
the daemon's journal (demo_views.py: a live table on a terminal, one line per
change otherwise).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from daemon.actions import demo_samples
from daemon.actions.demo_views import Seen, reached, so_far, view_for
from daemon.actions.samples import write_then_rename
from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.errors import InputError, OutboxdError, UsageError
from daemon.fs.fsops import open_below
from daemon.fs.fsread import read_bounded
from daemon.journal import Journal

OUTBOXD = [sys.executable, "-m", "daemon"]


def _not_a_folder(path: Path) -> str | None:
    """What `path` is when it is there but no folder ("a file", "a FIFO", …); None for
    a folder or nothing. A file named was called "not an empty folder", which sent the
    user looking for files in a folder that is none."""
    mode = path.stat().st_mode if path.exists() else stat.S_IFDIR
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISREG(mode):
        return "a file"
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) \
        else "a device"


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.outbox = root / "outbox"
        self.sent = root / "sent"
        self.quarantine = root / "quarantine"
        self.store = root / "receiver-store"
        self.state = root / "state"
        self.config = root / "config.toml"
        self.daemon_log = root / "daemon.log"
        self.receiver_log = root / "receiver.log"

    @classmethod
    def make(cls, directory: Path | None) -> Workspace:
        if directory is None:
            try:
                return cls(Path(tempfile.mkdtemp(prefix="outboxd-demo-")))
            except OSError as exc:
                raise UsageError(f"cannot create a temporary folder for the demo in "
                                 f"{tempfile.gettempdir()} ({exc.strerror or exc}) — name a "
                                 "folder with --dir") from None
        # A folder that cannot be looked into or made is a mistake on the command
        # line: one line naming it and the fix, exit 2, never a traceback.
        try:
            if (what := _not_a_folder(directory)) is not None:
                raise UsageError(f"--dir {directory}: is {what}, not a folder — name a new "
                                 "or empty folder, or leave out --dir for a temporary one")
            if directory.exists() and any(directory.iterdir()):
                # Never "remove it": what is in it is the user's, not the demo's.
                raise UsageError(f"--dir {directory}: not an empty folder — the demo starts "
                                 "from nothing (files of an earlier run would mix with its "
                                 "own); name a new or empty folder, or leave out --dir for "
                                 "a temporary one")
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--dir {directory}: cannot create or use that folder "
                             f"({exc.strerror or exc}) — name a new folder in a place you may "
                             "write to, or leave out --dir for a temporary one") from None
        return cls(directory.resolve())

    def write_config(self, url: str, release_supported: bool) -> None:
        sections: dict[str, dict[str, Any]] = {
            "outbox": {"path": str(self.outbox), "settle_seconds": 0.5, "rescan_seconds": 2,
                       "poll_interval_seconds": 0.5},
            "paths": {"state_dir": str(self.state)},
            # hold: an invoice without attachments waits for the clerk's decision
            "policy": {"unattached": "hold"},
            "delivery": {"url": url, "retry_base_seconds": 0.2, "retry_max_seconds": 2},
            "log": {"format": "json"},
            "service": {"shutdown_grace_seconds": 5},
        }
        lines = ["# Written by `outboxd demo`: short timings for a trial on one machine."]
        for name, values in sections.items():
            lines += ["", f"[{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _release_support() -> tuple[str, bool]:
    share = Settings.model_fields.get("share")
    model = getattr(share, "annotation", None)
    fields = getattr(model, "model_fields", {})
    if "release_suffix" in fields:
        return str(fields["release_suffix"].default), True
    return ".send-anyway", False


class Children:
    """The receiver and the daemon; each in its own session, so a Ctrl-C reaches only
    the demo, which then stops the daemon first and the receiver after it."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[Any] = []

    def start(self, name: str, args: list[str], log: Path, stdout: int) -> subprocess.Popen[bytes]:
        fh = open(log, "ab")
        self._logs.append(fh)
        proc = subprocess.Popen(args, stdout=stdout, stderr=fh, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fh in self._logs:
            fh.close()
        self.procs.clear()


def start_receiver(ws: Workspace, children: Children) -> str:
    proc = children.start("receiver", [*OUTBOXD, "receiver", "--listen", "127.0.0.1:0",
                                       "--store", str(ws.store)],
                          ws.receiver_log, subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode(errors="replace")
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        raise OutboxdError(f"the reference receiver did not start; see {ws.receiver_log}")
    return f"http://127.0.0.1:{match.group(1)}/bundles"


def start_daemon(ws: Workspace, children: Children, timeout: float = 30) -> None:
    proc = children.start("daemon", [*OUTBOXD, "run", "-c", str(ws.config)], ws.daemon_log,
                          subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while "outboxd running" not in ws.daemon_log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise OutboxdError(f"the daemon did not start; see {ws.daemon_log}")
        time.sleep(0.05)


def observe(settings: Settings, receipts: Receipts | None = None) -> dict[str, Seen]:
    """invoice file -> what the journal says about its latest row. `receipts`: the
    warnings read so far in this run (None: read afresh)."""
    if receipts is None:
        receipts = Receipts(settings.sent_dir)
    if not settings.journal_path.exists():
        return {}
    journal = Journal(settings.journal_path, readonly=True)
    try:
        rows = journal.recent()
    finally:
        journal.close()
    out: dict[str, Seen] = {}
    for row in rows:
        # As `status` and the page show it: a move that keeps failing is retrying, not
        # delivering (the demo showed it on its way, with no error, for as long as it
        # failed).
        state = row.shown_state
        detail = ""
        if state == "waiting":
            detail = f"no attachments: {', '.join(row.unattached_ids)}"
        elif state == "sent":
            detail = f"receipt {row.receipt_id}" if row.receipt_id else "sent"
            if row.archive_dir:
                detail += f" → {Path(row.archive_dir).relative_to(settings.sent_dir.parent)}"
                # First, so that the table's one-line form (which cuts the end) keeps it.
                detail = "".join(f"warning: {w}; " for w in
                                 receipts.warnings_of(Path(row.archive_dir))) + detail
        elif state in ("quarantined", "held"):
            detail = "; ".join(f"{r['file']}: {r['message']}" for r in row.reasons)
        elif state == "retrying":
            detail = f"attempt {row.attempts}: {row.last_error}"
        elif row.last_error:
            # A bundle that cannot be read, or waits for a marker or a copy: why it does not
            # move (it showed as settling, as if about to move, for good).
            detail = row.last_error
        out[row.invoice_file] = Seen(state, detail, tuple(r["code"] for r in row.reasons))
    return out


class Receipts:
    """The warnings sent bundles went with (an invoice released without attachments, and
    who released it), as their receipt.json's manifests have them: the journal does not
    keep them. Each read once, for one run of the demo (its own: a second run in the same
    process, or one over another folder, never sees this one's)."""

    def __init__(self, sent_dir: Path) -> None:
        self.sent_dir = sent_dir
        self._warnings: dict[Path, list[str]] = {}

    def warnings_of(self, archive: Path) -> list[str]:
        """A receipt that cannot be read shows none: it lies on the share, where anyone
        may put a link in place of it or of a folder above it (never followed: opened
        below the demo's own sent/ as the daemon opens a bundle's files), a FIFO, or
        JSON nested thousands deep (a RecursionError, not a ValueError)."""
        if archive not in self._warnings:
            try:
                rel = archive.relative_to(self.sent_dir).as_posix()
                with open_below(self.sent_dir, f"{rel}/receipt.json") as fh:
                    data = read_bounded(fh, 4 << 20)
                found = json.loads(data or b"{}")["manifest"]["warnings"]
                self._warnings[archive] = [str(w["message"]) for w in found]
            except (OSError, InputError, ValueError, KeyError, TypeError, RecursionError):
                return []
        return self._warnings[archive]


def invoked_as() -> str:
    """outboxd as this demo was started, for the command it suggests: the README installs
    it as `.venv/bin/outboxd`, not on PATH, where a bare `outboxd` is not found."""
    me = Path(sys.argv[0])
    if me.name != "outboxd":
        return shlex.join(OUTBOXD)  # python -m daemon demo
    found = shutil.which("outboxd")
    return "outboxd" if found and Path(found).resolve() == me.resolve() else shlex.quote(str(me))


def where_to_look(ws: Workspace, status_page: Path | None, out: TextIO) -> None:
    print("\nWhere to look:", file=out)
    rows = [("outbox", ws.outbox, "drop your own files here (sidecar first, invoice last)"),
            ("sent", ws.sent, "delivered bundles, each with receipt.json"),
            ("quarantine", ws.quarantine, "refused bundles, each with REASON.txt and "
                                          "reason.json"),
            ("receiver", ws.store, "what the reference receiver stored, one folder per "
                                   "bundle id"),
            ("logs", ws.daemon_log, f"the daemon's JSON log; the receiver's: "
                                    f"{ws.receiver_log}")]
    if status_page is not None and status_page.exists():
        rows.insert(3, ("status page", status_page, "what the clerks see on the share"))
    for label, path, what in rows:
        print(f"  {label:<12} {path}\n  {'':<12} {what}", file=out)
    print(f"  {'status':<12} {invoked_as()} status -c {shlex.quote(str(ws.config))}",
          file=out)


def _drop(ws: Workspace, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        write_then_rename(ws.outbox / rel, data)


def run(directory: Path | None, once: bool, pace: float, timeout: float,
        out: TextIO = sys.stdout) -> int:
    ws = Workspace.make(directory)
    ws.outbox.mkdir(parents=True, exist_ok=True)
    suffix, release_supported = _release_support()
    samples = demo_samples.build(suffix, release_supported)
    children = Children()
    # SIGTERM (e.g. from a test harness or systemd-run) stops the demo like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    progress = {"done": False}
    stopped_by = f"--timeout {timeout:g} s"  # unless Ctrl-C comes first
    status_page: Path | None = None
    receipts: Receipts | None = None  # this run's: the warnings read once each
    print(f"outboxd demo in {ws.root}", file=out, flush=True)
    try:
        url = start_receiver(ws, children)
        ws.write_config(url, release_supported)
        settings = load_settings(ws.config)
        receipts = Receipts(settings.sent_dir)
        page = getattr(getattr(settings, "share", None), "status_page", "")
        status_page = ws.outbox / page if page else None
        start_daemon(ws, children)
        print(f"receiver on {url}; daemon watching {ws.outbox}\n", file=out, flush=True)
        _watch(ws, settings, samples, once, pace, timeout, out, progress, receipts,
               status_page)
    except KeyboardInterrupt:
        stopped_by = "Ctrl-C"
        print("\nstopping the daemon and the receiver", file=out, flush=True)
    finally:
        children.stop()
        signal.signal(signal.SIGTERM, previous)
    where_to_look(ws, status_page, out)
    final = observe_safely(ws, receipts)
    missed = [s for s in samples if not reached(s, final.get(s.invoice_file))]
    if not progress["done"]:  # exit 1: stopped before the end, which is no sample's fault
        left = ", ".join(f"{s.invoice_file} (expected {s.expect}, "
                         f"{so_far(final.get(s.invoice_file))})" for s in missed)
        print(f"\nStopped ({stopped_by}) before every sample had reached its end"
              + (f"; not there yet: {left}" if left else "") + ".", file=out)
    elif missed:
        print("\nNot at their expected end: " + ", ".join(
            f"{s.invoice_file} (expected {s.expect})" for s in missed), file=out)
    elif once:  # the live view said nothing of the verdict the exit code gives
        print("\nEvery sample reached its expected end.", file=out)
    print(f"\nEverything the demo made is in {ws.root} (remove it when done).", file=out)
    return 0 if progress["done"] and not missed else 1


def observe_safely(ws: Workspace, receipts: Receipts | None = None) -> dict[str, Seen]:
    try:
        return observe(load_settings(ws.config), receipts)
    except OutboxdError:
        return {}


def keeps_running(ws: Workspace, status_page: Path | None) -> str:
    """The view follows the samples only, and "Where to look" comes after Ctrl-C, which
    stops the daemon: whoever drops files of their own meanwhile is told here where to
    see what becomes of them."""
    page = f"on the status page {status_page} (open it in a browser) or " \
        if status_page is not None else ""
    return ("\nEvery sample reached its end. The daemon keeps running: drop your own files "
            f"into {ws.outbox} (the folder of attachments first, the invoice file last). "
            "The view above follows the samples only: see what becomes of yours "
            f"{page}with `{invoked_as()} status -c {shlex.quote(str(ws.config))}`. "
            "Ctrl-C stops the demo.")


def _watch(ws: Workspace, settings: Settings, samples: list[demo_samples.Sample],
           once: bool, pace: float, timeout: float, out: TextIO,
           progress: dict[str, bool], receipts: Receipts,
           status_page: Path | None) -> None:
    """Drop the samples and show them move; returns when --once is done or timed out."""
    pending = list(samples)
    released: set[str] = set()
    next_drop = time.monotonic()
    deadline = time.monotonic() + timeout
    with view_for(out) as view:
        while True:
            now = time.monotonic()
            if pending and now >= next_drop:
                sample = pending.pop(0)
                _drop(ws, sample.files)
                view.note(f"dropped {', '.join(sample.files)}  ({sample.shows})")
                next_drop = now + pace
            seen = observe(settings, receipts)
            for sample in samples:
                state = seen.get(sample.invoice_file)
                if sample.when_waiting and state and state.state == "waiting" \
                        and sample.invoice_file not in released:
                    released.add(sample.invoice_file)
                    _drop(ws, sample.when_waiting)
                    view.note(f"dropped {', '.join(sample.when_waiting)}  (a clerk's "
                              "\"send anyway\" on the share)")
            view.show(samples, seen)
            if not pending and all(reached(s, seen.get(s.invoice_file)) for s in samples):
                if not progress["done"]:
                    progress["done"] = True
                    if once:
                        return
                    view.say(keeps_running(ws, status_page))
            if once and now > deadline:
                return
            time.sleep(0.2)
