"""The contenders as subprocesses (receiver, daemon, the peer script), and what the
kernel says about them (/proc). Everything is bound to 127.0.0.1, every wait
has a deadline, and every process is stopped by its own id (or the process
group the bench created for it) when the phase ends — also on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from bench.corpus import REPO

T = TypeVar("T")
OUTBOXD = [sys.executable, "-m", "daemon"]
_BUNDLE_DIR = re.compile(r"[0-9a-f]{64}")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A phase could not be measured (a contender failed or timed out)."""


def wait_for(condition: Callable[[], T], timeout: float, what: str,
             interval: float = 0.01) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OUTBOXD_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO), **extra)
    return env


# Started and not yet stopped, whether or not a phase registered them.
_LIVE: list[Proc] = []


def stop_all() -> None:
    """Stop whatever is still running (a Ctrl-C inside a constructor, before registration)."""
    for proc in list(_LIVE):
        proc.stop(grace=10.0)


class Proc:
    """A subprocess in its own process group, stderr to a log file."""

    def __init__(self, args: list[str], log: Path, stdout: int | IO[Any] = subprocess.DEVNULL,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.log = log
        self._fh = open(log, "wb")
        self.spawned = time.monotonic()
        self.popen = subprocess.Popen(args, stdout=stdout, stderr=self._fh, env=env or _env(),
                                      cwd=cwd, start_new_session=True)
        _LIVE.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to the group the bench made for it, SIGKILL after `grace` seconds."""
        if self not in _LIVE:
            return  # stopped already; its group id may belong to someone else by now
        try:
            if self.alive():
                os.killpg(self.popen.pid, signal.SIGTERM)
                try:
                    self.popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(timeout=10)
            else:
                # The leader is gone; children of a pipeline may not be.
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        except ProcessLookupError:
            pass
        finally:
            self._fh.close()
            if self.popen.stdout:
                self.popen.stdout.close()
            if self in _LIVE:
                _LIVE.remove(self)


class Receiver(Proc):
    """`outboxd receiver` on 127.0.0.1:0; the port is read from its first stdout line."""

    def __init__(self, work: Path, tag: str) -> None:
        self.store = work / f"store-{tag}"
        super().__init__([*OUTBOXD, "receiver", "--listen", "127.0.0.1:0", "--store",
                          str(self.store)], work / f"receiver-{tag}.log", stdout=subprocess.PIPE)
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().decode(errors="replace")  # EOF if it dies
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise BenchError(f"receiver did not say where it listens: {line!r} {self.tail()}")
        self.url = f"http://127.0.0.1:{match.group(1)}/bundles"

    def held(self) -> int:
        """Bundles stored so far: the BUNDLE_ID folders (staging is .tmp-*)."""
        with os.scandir(self.store) as it:
            return sum(1 for e in it if _BUNDLE_DIR.fullmatch(e.name))

    def holds(self, bundle_id: str) -> bool:
        return os.path.isdir(self.store / bundle_id)


class NotifySocket:
    """$NOTIFY_SOCKET for a daemon: a bound AF_UNIX datagram socket, as systemd has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_ready(self, proc: Proc, timeout: float) -> float:
        """Seconds from spawn until READY=1 arrived."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no READY=1 within {timeout:g} s; daemon log: {proc.tail()}")
            if not proc.alive():
                raise BenchError(f"daemon exited ({proc.popen.returncode}): {proc.tail()}")
            self.sock.settimeout(min(left, 0.5))
            try:
                msg = self.sock.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            if "READY=1" in msg.split("\n"):
                return time.monotonic() - proc.spawned

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


PREFLIGHT_OFF = ("throughput, latency and backlog run their daemons with [einvoice] preflight "
                 "= \"off\": they measure the loop; pre-flight is measured by "
                 "throughput-preflight (the same burst with preflight = \"error\", the "
                 "default) and preflight")


def write_config(work: Path, tag: str, url: str, **sections: dict[str, Any]) -> Path:
    """A daemon configuration in work/ (outbox, state, sent, quarantine all under it).

    Pre-flight is off unless a phase asks for it (``einvoice={"preflight": "error"}``):
    the loop phases measure the loop, and pre-flight has phases of its own
    (throughput-preflight, preflight)."""
    base = work / tag
    outbox = base / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    data: dict[str, dict[str, Any]] = {
        "outbox": {"path": str(outbox), "settle_seconds": 0.2},
        "paths": {"state_dir": str(base / "state")},
        "delivery": {"url": url},
        "log": {"format": "json"},
        "einvoice": {"preflight": "off"},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = base / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon(Proc):
    """`outboxd run -c CONFIG` with a NOTIFY_SOCKET; stderr (JSON log lines) to a file."""

    def __init__(self, config: Path) -> None:
        base = config.parent
        self.config = config
        self.outbox = base / "outbox"
        self.journal = base / "state" / "journal.sqlite3"
        self.notify = NotifySocket(base / "notify.sock")
        try:
            super().__init__([*OUTBOXD, "run", "-c", str(config)], base / "daemon.log",
                             env=_env(NOTIFY_SOCKET=str(self.notify.path)))
        except BaseException:
            self.notify.close()
            raise

    def ready(self, timeout: float = 120.0) -> float:
        return self.notify.wait_ready(self, timeout)

    def stop(self, grace: float = 30.0) -> None:
        try:
            super().stop(grace)
        finally:
            self.notify.close()


def machine_cpu_seconds() -> list[float]:
    """The columns of /proc/stat's "cpu" line (all cores) in seconds: user, nice,
    system, idle, iowait, irq, softirq, steal, ..."""
    with open("/proc/stat", encoding="ascii") as fh:
        return [int(v) / CLK_TCK for v in fh.readline().split()[1:]]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def _stat_cpu(raw: str) -> float:
    """utime + stime from the text of a /proc stat file (a process's or a thread's)."""
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree(pid: int) -> list[int]:
    """pid and every live descendant (a daemon's reader processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(raw[raw.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """cpu_seconds of pid and its live descendants."""
    return tree_cpu_split(pid)[1]


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(pid's own cpu_seconds, with its live descendants'), read in one pass."""
    own = total = 0.0
    for p in tree(pid):
        try:
            used = cpu_seconds(p)
        except OSError:
            continue  # exited meanwhile
        total += used
        if p == pid:
            own = used
    return own, total


def thread_split(pid: int) -> dict[str, tuple[float, int]]:
    """CPU seconds and context switches (voluntary and not) of pid's threads, summed by
    the name the OS shows for them (the daemon names its threads: osthreads.py;
    "deliver-0", "deliver-1"… count as "deliver", "watcher-poll" as "watcher"). The
    main thread is "loop"."""
    out: dict[str, tuple[float, int]] = {}
    try:
        tasks = list(os.scandir(f"/proc/{pid}/task"))
    except OSError:
        raise BenchError(f"process {pid} is gone: its threads cannot be read") from None
    for entry in tasks:
        try:
            comm = Path(entry.path, "comm").read_text().strip()
            raw = Path(entry.path, "stat").read_text()
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue  # ended meanwhile
        cpu = _stat_cpu(raw)
        switches = sum(int(line.split()[1]) for line in status.splitlines()
                       if "ctxt_switches:" in line)
        name = "loop" if entry.name == str(pid) else comm.split("-")[0]
        was = out.get(name, (0.0, 0))
        out[name] = (was[0] + cpu, was[1] + switches)
    return out


def tree_rss_mb(pid: int) -> float:
    """VmRSS of pid and its live descendants, added up (shared pages count twice:
    an upper bound, as a memory limit on the service's cgroup would see it)."""
    total = 0.0
    for p in tree(pid):
        try:
            total += rss_mb(p)
        except (OSError, BenchError):
            continue
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for process {pid}")


def status_json(config: Path, out: Path, timeout: float = 120.0) -> tuple[float, dict[str, Any]]:
    """Wall time of `outboxd status --json` (a new process, as a person runs it)."""
    with open(out, "wb") as fh:
        start = time.monotonic()
        done = subprocess.run([*OUTBOXD, "status", "--json", "-c", str(config)], stdout=fh,
                              stderr=subprocess.PIPE, env=_env(), timeout=timeout, check=False)
        elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise BenchError(f"outboxd status --json failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace').strip()}")
    return elapsed, json.loads(out.read_bytes())
