"""Shared fixtures: a temp outbox with its config, the real daemon as a subprocess, and
the reference receiver on 127.0.0.1 (on a thread of this process, or as `outboxd
receiver`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import outboxd_with, wait_for  # noqa: E402

# The loop without timing (a fake clock, a fake watcher, counts of its work): the
# fixtures of the loop's tests (test_service.py, test_changes.py, test_stopping.py …).
pytest_plugins = ["fakeloop"]

OUTBOXD = [sys.executable, "-m", "daemon"]

# What the host's environment would change in every daemon and receiver the tests
# start (they inherit it): configuration overrides, a proxy that would take the
# POSTs meant for 127.0.0.1, systemd's sockets of the shell that runs the tests.
# Tests that want one of these set it themselves (monkeypatch).
_HOST_ONLY = re.compile(r"OUTBOXD_.*|(HTTP|HTTPS|ALL|NO)_PROXY|NOTIFY_SOCKET|WATCHDOG_(USEC|PID)",
                        re.IGNORECASE)
for _name in [n for n in os.environ if _HOST_ONLY.fullmatch(n)]:
    del os.environ[_name]

# A shell or CI runner that starts the tests in the background (`pytest &` in a script)
# starts them with SIGINT ignored, and every process they start inherits that: a
# daemon or command a test stops with Ctrl-C would never see it (the test fails after
# its deadline). The tests are about a terminal's Ctrl-C, so they get its disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionstart(session: pytest.Session) -> None:
    """daemon/ and bench/ compiled to bytecode once, before any test starts a process of
    them. Where PYTHONDONTWRITEBYTECODE is set (this machine's environment sets it) no
    interpreter writes its .pyc, so every daemon, command, receiver and reader process a
    test starts compiled the daemon's modules from source again: 0.2 CPU-s a start, some
    hundreds of starts a run. compileall writes them whatever that variable says (0.3 s
    once); each process still checks them against their source, so an edit is seen."""
    import compileall
    root = Path(__file__).resolve().parent.parent
    for package in ("daemon", "bench"):
        # quiet=2: a checkout that cannot be written runs as before, only slower.
        compileall.compile_dir(root / package, quiet=2)


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """A Service opened in-process installs its SIGINT, SIGTERM and SIGHUP handlers
    (bound to that service) and nothing puts them back: a later test's Ctrl-C then
    reached a closed service instead of raising KeyboardInterrupt (test_cli's interrupt
    test failed after tests/loop/test_service.py). Each test starts with the handlers
    the run started with."""
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                    signal.SIGHUP)}
    yield
    for sig, handler in kept.items():
        if signal.getsignal(sig) is not handler and handler is not None:
            signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _not_started_by_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a CI job that systemd started, the tests' daemons (their state dirs
    under /tmp) would each warn of the unit's PrivateTmp=: a test that wants that warning
    sets INVOCATION_ID itself."""
    monkeypatch.delenv("INVOCATION_ID", raising=False)


@pytest.fixture(autouse=True)
def _no_temp_held_for_good_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process: a temp another test saw held for good does not
    make this one's writes give up at once (temps.HELD_FOR_GOOD_QUIET_SECONDS)."""
    import daemon.fs.temps
    monkeypatch.setattr(daemon.fs.temps, "_held_for_good_at", {})


@pytest.fixture(autouse=True)
def _pipelines_made_closed() -> Iterator[None]:
    """The journals claimed.make() opened for a test, closed after it, where the test
    left them open (most do: their pipeline is never stopped)."""
    yield
    claimed = sys.modules.get("claimed")
    if claimed is not None:
        claimed.close_made()


@dataclass
class Env:
    root: Path
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    daemon: list[str] = field(default_factory=lambda: OUTBOXD)  # start_daemon's command

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def sent(self) -> Path:
        return self.root / "sent"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def processing(self) -> Path:
        return self.outbox / ".outboxd" / "processing"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def write_config(self, url: str, **sections: dict[str, Any]) -> Path:
        data: dict[str, dict[str, Any]] = {
            "outbox": {"path": str(self.outbox), "settle_seconds": 0.3, "rescan_seconds": 5},
            "paths": {"state_dir": str(self.state)},
            "policy": {"attachment_wait_seconds": 1},
            "delivery": {"url": url, "retry_base_seconds": 0.05, "retry_max_seconds": 0.5},
            "log": {"format": "json"},
        }
        # Key by key: a test's own [service] key keeps extra's other [service] keys.
        for layer in (self.extra, sections):
            for section, values in layer.items():
                data.setdefault(section, {}).update(values)
        lines = []
        for section, values in data.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        self.config.write_text("\n".join(lines) + "\n")
        # As operations.md installs it: a token in it is then nobody else's to read
        # (secret_files.py), whatever umask the test process has by then.
        self.config.chmod(0o640)
        return self.config

    def sent_bundles(self) -> list[Path]:
        return _entries(self.sent)

    def quarantined(self) -> list[Path]:
        return _entries(self.quarantine)


def _entries(root: Path) -> list[Path]:
    """Archive entries ROOT/DAY/NAME--ID12; not a `.NAME.partial` copy still under way
    (pathlib's "*" matches dot-names too)."""
    return sorted(p for p in root.glob("*/*") if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    e.outbox.mkdir()
    return e


# A daemon as shipped starts min(2, CPUs) reader processes, each loading the e-invoice
# rules before the daemon says it runs: some 3.5 CPU-seconds a start, 3-5 s of a test on
# CI's 2 cores. A test about neither reading in processes nor pre-flight starts it LEAN
# (the `lean` fixture): no pre-flight, reads on the daemon's own threads, both documented
# settings. Where a module is lean, a test about them asks for SHIPPED in write_config.
LEAN: dict[str, dict[str, Any]] = {"einvoice": {"preflight": "off"},
                                   "service": {"reader_processes": 0}}
SHIPPED: dict[str, dict[str, Any]] = {"einvoice": {"preflight": "error"},
                                      "service": {"reader_processes": "auto"}}


@pytest.fixture
def lean(env: Env) -> Env:
    """env, whose write_config gives the LEAN settings unless the test names them
    (`pytestmark = pytest.mark.usefixtures("lean")` in a module of daemon tests)."""
    for section, values in LEAN.items():
        env.extra.setdefault(section, {}).update(values)
    return env


@pytest.fixture
def no_attachment_wait(lean: Env) -> Env:
    """lean, and an invoice without attachments sent once settled ([policy]
    attachment_wait_seconds = 0), for modules none of whose tests is about that wait:
    each bundle dropped alone paid the default's second."""
    lean.extra.setdefault("policy", {})["attachment_wait_seconds"] = 0
    return lean


# [outbox] settle_seconds under quick_settle: the quiet period a bundle waits once seen.
QUICK_SETTLE = 0.1


@pytest.fixture
def quick_settle(env: Env) -> Env:
    """env, whose write_config gives [outbox] settle_seconds = QUICK_SETTLE (0.1 s), not
    write_config's 0.3 s, unless the test names it: for modules whose bundles come whole
    — drop_bundle (the sidecar first, the invoice file renamed in last), files there
    before the start, or a file or rename of its own at a time while the bundle waits or
    is held — so that every quiet period was a wait for nothing the test shows (each
    bundle a test waits for paid it, some several in a row). Not for tests about
    settling, or a poller slower than it (test_poll_share.py names its own)."""
    env.extra.setdefault("outbox", {})["settle_seconds"] = QUICK_SETTLE
    return env


STOP_GRACE = 30.0  # seconds a stopped process may take before it is killed
# Seconds a daemon may take to say it runs. Measured with 2 cores at load 8-9: 7-10 s
# lean, 20-30 s as shipped (two reader processes loading the e-invoice rules); the
# 20 s of wait_for's default left a shipped start no room at all. Only a start that
# fails waits this long.
START_DEADLINE = 60.0


class Proc:
    """A process of ours; its stderr to `log`, its stdout a pipe, or the file `out`."""

    def __init__(self, args: list[str], log: Path, out: Path | None = None) -> None:
        self.log, self.out = log, out
        self._fh = open(log, "wb")
        self._out = open(out, "wb") if out is not None else subprocess.PIPE
        self.popen = subprocess.Popen(args, stdout=self._out, stderr=self._fh,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it with `sig`; one that has not ended after STOP_GRACE is killed (and the
        test fails on its exit code), so no run leaves a process behind."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()
        finally:
            self._fh.close()
            if not isinstance(self._out, int):
                self._out.close()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stdout(self) -> str:
        """What it wrote to stdout (only for one started with `out`)."""
        assert self.out is not None
        return self.out.read_text(errors="replace")


class Receiver:
    """The reference receiver, set up from `outboxd receiver`'s own command line (e.g.
    --fail-first 503); what it was sent is read back from its store."""

    store: Path
    url: str

    def requests(self) -> list[dict[str, Any]]:
        path = self.store / "requests.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def accepted(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["status"] == 201]

    def stop(self) -> int:
        raise NotImplementedError


class ThreadReceiver(Receiver):
    """The receiver's server (daemon.receiver.make_server, as `outboxd receiver` runs it)
    on a thread of the test process: the daemon under test still posts to it over HTTP
    on 127.0.0.1, and no interpreter is started for it (~0.7 s a test)."""

    def __init__(self, server: Any) -> None:
        # A handler sitting on a held answer cannot be stopped on a thread: it would
        # outlive stop() and its test. A process can be (process=True).
        assert not server.hold_first, "--hold-first: start_receiver(..., process=True)"
        self.server = server
        self.store = Path(server.store)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/bundles"
        # The connections its handler threads serve, cut at stop() as a receiver
        # process's exit cuts them (see stop).
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        process_request, shutdown_request = server.process_request, server.shutdown_request

        def opened(request: socket.socket, client_address: Any) -> None:
            with self._lock:
                self._open.add(request)
            process_request(request, client_address)

        def closed(request: socket.socket) -> None:
            try:
                shutdown_request(request)
            finally:
                with self._lock:
                    self._open.discard(request)

        server.process_request, server.shutdown_request = opened, closed
        # serve_forever's poll interval is how long a stop() waits for it.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name="receiver", daemon=True)
        self._thread.start()

    @classmethod
    def from_args(cls, store: Path, *extra: str) -> ThreadReceiver:
        """One set up from `outboxd receiver`'s command line (e.g. --fail-first 503)."""
        from daemon.cli import build_parser
        from daemon.receiver import make_server
        from daemon.receiver.faults import parse_faults
        # A port of its own unless the test names one (a receiver back on the port of
        # one stopped): the command line refuses --listen given twice.
        listen = [] if "--listen" in extra else ["--listen", "127.0.0.1:0"]
        args = build_parser().parse_args(["receiver", *listen, "--store", str(store), *extra])
        host, _, port = args.listen.rpartition(":")
        return cls(make_server(host, int(port), args.store, token=args.token,
                               fail_first=parse_faults(args.fail_first),
                               hold_first=args.hold_first, retry_after=args.retry_after,
                               own_ids=args.own_ids))

    def stop(self) -> int:
        """Stop serving and close the port, and cut every connection still open (a
        sender's kept-alive one, a request in flight), as the end of a receiver process
        would: else a stopped receiver still answered on them, and their handler threads
        outlived the test (a kept-alive one up to the handler's 120-s timeout)."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
            self.server.server_close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: not self._open, timeout=10,
                 what="the receiver's handlers to end on their cut connections")
        return 0


class ProcessReceiver(Proc, Receiver):
    """`outboxd receiver` as a process: for tests of its command and its log, and for a
    receiver that sits on an answer (--hold-first)."""

    def __init__(self, store: Path, log: Path, *extra: str) -> None:
        super().__init__([*OUTBOXD, "receiver", "--listen", "127.0.0.1:0", "--store", str(store),
                          *extra], log)
        self.store = store
        self.url = ""

    def listening(self, timeout: float = 20.0) -> ProcessReceiver:
        """Wait (at most `timeout`) for the line saying where it listens."""
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        line = self.popen.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"receiver did not say where it listens: {line!r} {self.stderr()}"
        self.url = f"http://127.0.0.1:{match.group(1)}/bundles"
        return self


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Any]:
    """Start the reference receiver with `outboxd receiver`'s options (e.g. --fail-first
    503) on a thread (ThreadReceiver), or with process=True as `outboxd receiver`
    (ProcessReceiver); the store is tmp_path/store unless given. Every receiver is
    stopped at the end."""
    started: list[Receiver] = []

    def start(*extra: str, store: Path | None = None, process: bool = False) -> Receiver:
        store = store or tmp_path / "store"
        if not process:
            started.append(ThreadReceiver.from_args(store, *extra))
            return started[-1]
        r = ProcessReceiver(store, tmp_path / f"receiver{len(started)}.log", *extra)
        started.append(r)  # stopped at the end even if it never says where it listens
        return r.listening()

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than tmp_path's (tmpfs at /dev/shm), so that a move
    there is a copy; removed after the test. Skips where there is none."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    other = Path(tempfile.mkdtemp(prefix="outboxd-test-", dir=shm))
    yield other
    shutil.rmtree(other, ignore_errors=True)


@pytest.fixture
def made_user() -> Iterator[str]:
    """A system user (and its group of the same name) made for the test, as an admin's
    drop-in names with `User=`: no home folder; removed after the test. Needs root."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to make a user")
    name = f"obxt{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-r", "-U", "-s", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)  # where userdel left it


@pytest.fixture
def receiver(start_receiver: Any) -> Receiver:
    return start_receiver()


@pytest.fixture
def quick_page(env: Env) -> Env:
    """env, whose daemons (start_daemon, or a test's own Proc on `[*env.daemon, "run",
    …]`) look at the clerks' page every 0.5 s at most, not the shipped 2 s
    (statuspage.MIN_INTERVAL, "at most every 2 s" in docs/folder-convention.md): for a
    module's tests, or one test, that wait for the page to change, which waited out the
    2 s once or twice each; what they read comes as it would, only sooner. The pace
    itself is shown with a clock of the test's (tests/report/test_statuspage.py,
    test_publish.py). Not for every daemon: one busy with many bundles spends the CPU of
    four refreshes where one was."""
    env.daemon = outboxd_with({"daemon.report.statuspage.MIN_INTERVAL": 0.5})
    return env


@pytest.fixture
def start_daemon(env: Env) -> Iterator[Any]:
    """Start `outboxd run` on env's config (env.daemon: see quick_page); every daemon is
    stopped at the end."""
    procs: list[Proc] = []

    def start() -> Proc:
        p = Proc([*env.daemon, "run", "-c", str(env.config)], env.root / f"daemon{len(procs)}.log",
                 env.root / f"daemon{len(procs)}.out")
        procs.append(p)
        wait_for(lambda: "outboxd running" in p.stderr() or p.popen.poll() is not None,
                 timeout=START_DEADLINE, what="the daemon to start")
        assert p.popen.poll() is None, p.stderr()
        return p

    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two reader processes without the engine; paused ones are resumed at the end.
    (tests of reader_pool.py and reader_deaths.py)"""
    from reading.test_readers import alive, settings_for

    from daemon.reading.readers import Readers
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 2})
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    pids = r.pids()
    yield r, s
    for pid in pids + r.pids():
        if alive(pid):
            os.kill(pid, signal.SIGCONT)
    r.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """An empty outbox folder (the configuration tests' [outbox] path)."""
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Any]:
    """A journal in tmp_path, closed after the test (tests of daemon/journal/)."""
    from daemon.journal import Journal
    j = Journal(tmp_path / "journal.sqlite3")
    yield j
    j.close()


def journal_since(env: Env, state: str, invoice_file: str | None = None) -> list[str]:
    """When each row in `state` (of `invoice_file`, if given) entered it, as the journal
    keeps it (UTC, ISO 8601)."""
    import sqlite3
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        return [r[0] for r in db.execute(
            "SELECT since FROM bundles WHERE state = ? AND invoice_file = COALESCE(?, "
            "invoice_file)", (state, invoice_file))]
    finally:
        db.close()


def journal_states(env: Env) -> dict[str, str]:
    """invoice file -> journal state, as the running daemon last wrote it ({} before)."""
    import sqlite3
    if not (env.state / "journal.sqlite3").exists():
        return {}
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        return {r[0]: r[1] for r in db.execute("SELECT invoice_file, state FROM bundles")}
    finally:
        db.close()


@pytest.fixture
def deep_tree(tmp_path: Path) -> Iterator[Any]:
    """deeptree.nested(top, depth) for a test, and at its end everything below tmp_path
    removed without recursion: pytest's own removal of old temp folders (in a later run)
    would run past Python's recursion limit on a tree a thousand deep."""
    from deeptree import nested, remove_below
    yield nested
    remove_below(tmp_path)
