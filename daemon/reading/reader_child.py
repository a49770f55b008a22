"""What the reader pool (reader_pool.py) keeps of each reader process and each call,
and the small tools its collector uses: the order calls went down a child's pipe
(the one under way is the first of them not answered), the poll object that
registers each descriptor once, the ticks of a start's wait (Ticks), the signal
mask a child is spawned under, and whether
a command's reader may be forked instead (may_fork) and how a forked one starts; and
for readers.py's blocking calls, the results gathered one by one (Gather, raised).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from daemon import GROUP_SIGNALS
from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.watching.scan import Candidate

Result = Bundle | BaseException


class ChildUnavailable(Exception):
    """No reader process can be started in this environment."""

    why = "no new child process can be started here"


class ChildLate(ChildUnavailable):
    """New reader processes did not say "ready" within the time a start or reload gives
    them (stopped, loading from a mount that hangs, a host swapping): ended."""

    why = "new reader processes did not load in time (ended)"


@dataclass(eq=False, slots=True)
class Call:
    """One evaluate (or, with `known`, one check by hashes; with `known` and `work_dir`,
    the writing of its converted images into that claimed work folder) on its way."""

    cand: Candidate
    settings: Settings
    done: Callable[[Result], None]
    known: Bundle | None = None
    tries: int = 1  # deaths of a reader under it still allowed, plus one
    timed_out: bool = False  # its child was killed for running past its time limit
    work_dir: Path | None = None
    limit: float | None = None  # seconds it may run (reader_deaths.time_limit), once sent
    # A command's own read instead of evaluate (readers.Readers.read): a module-level
    # function of (cand, settings), pickled by name; under the same time limit.
    job: Callable[[Candidate, Settings], Any] | None = None


@dataclass
class Restarts:
    """Shared by the pools of one Readers (a reload makes a new pool)."""

    limit: int  # deaths in a row without a result before reading moves to threads
    total: int = 0
    in_row: int = 0
    # Replacements in a row that could not load the rules: another child's results do
    # not reset it (they did in_row, and such replacements followed each other for as
    # long as bundles came); only children that load them do.
    unloaded: int = 0


@dataclass(eq=False)
class Child:
    """One reader process as the pool sees it: its process, its end of the pipe, and
    the calls it holds."""

    proc: Any
    conn: Any
    calls: dict[int, Call] = field(default_factory=dict)
    version: int = 0  # the settings version this child has been sent
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    dead: bool = False
    # Call ids in the order they went down the pipe (ids are taken under the pool's
    # lock, writes made under send_lock: two threads may write out of id order).
    written: collections.deque[int] = field(default_factory=collections.deque)
    # Monotonic time its first open call could start (under the pool's lock); None: idle,
    # or not ready yet (a replacement's clock starts with its "ready").
    busy_since: float | None = None
    ready: bool = False
    killed_for: int | None = None  # the call under way when it was killed for time
    # A replacement's deadline to say "ready" (monotonic; None once it has, and for a
    # start's children, which the start waits for): one that hangs while loading would
    # hold the calls sent to it for ever, with no read's clock running.
    load_by: float | None = None


def call_under_way(child: Child) -> int | None:
    """The id of the call a child was working on: the first written down its pipe of
    those not yet answered (None: none of them reached it)."""
    # A snapshot: a sending thread may append meanwhile (under send_lock, not the pool's
    # lock), and a deque changed during iteration raises.
    return next((i for i in tuple(child.written) if i in child.calls), None)


class Watched:
    """The collector's poll object, each descriptor registered once (not per wait, as
    selectors and multiprocessing.connection.wait do), and who owns each."""

    def __init__(self, wake_fd: int) -> None:
        self.poll = select.poll()
        self.owners: dict[int, tuple[Child, bool]] = {}
        self.poll.register(wake_fd, select.POLLIN)

    def watch(self, child: Child) -> None:
        for fd, is_conn in ((child.conn.fileno(), True), (child.proc.sentinel, False)):
            self.poll.register(fd, select.POLLIN)
            self.owners[fd] = (child, is_conn)

    def forget(self, child: Child) -> None:
        for fd, (owner, _) in list(self.owners.items()):
            if owner is child:
                self.poll.unregister(fd)
                del self.owners[fd]


# A read takes milliseconds; one running this long is a big bundle's (a batch of
# thousands of invoices pre-flighted takes minutes), and what is queued behind it waits
# as long: new calls go to a child that is not stuck, where there is one.
LONG_CALL = 2.0


def least_waiting(now: float) -> Callable[[Child], tuple[bool, int, float]]:
    """The key that orders children by how long a new call would wait there: behind a
    call that has run past LONG_CALL last, then by the calls already held, then behind
    the call that has run longest last (a big read is not yet long for its first
    LONG_CALL seconds: on a tie, the next small bundle went to the first child)."""
    def key(child: Child) -> tuple[bool, int, float]:
        ran = 0.0 if child.busy_since is None else now - child.busy_since
        return ran > LONG_CALL, len(child.calls), ran
    return key


def may_fork() -> bool:
    """Whether a reader may be forked from this process instead of spawned: only while
    the process has one thread, counted by the kernel (a thread of a native library
    too, which threading does not list), and has not loaded the e-invoice engine (a
    native runtime: it loads in the reader). A fork copies the memory of a process
    as it is, locks held by its other threads included, which no thread of the child
    would ever release; a one-thread command has none."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return False  # cannot be told: spawned
    return threads == 1 and "saxonche" not in sys.modules


def descriptors() -> list[int]:
    """The descriptors this process has open above stdin, stdout and stderr (for a fork:
    forked_main closes them in the child)."""
    try:
        return [fd for fd in map(int, os.listdir("/proc/self/fd")) if fd > 2]
    except OSError:
        return []  # no /proc: may_fork said no already


def forked_main(target: Callable[..., None], inherited: list[int], conn: Any,
                *args: Any) -> None:
    """A forked reader's start: the descriptors the command had open when it forked
    (`inherited`, but its end of the pipe) closed, so that it holds what a spawned
    one does — its end of the pipe, stdin, stdout, stderr and multiprocessing's own.
    The command's end of the pipe above all: else the pipe would never end for it, and
    a reader whose command is gone (ended, or killed) would wait on it for good. And
    any other: a lock the command holds (retry's on the quarantine folder) must not
    outlive the command in a reader still busy with a file."""
    # What the command's objects hold is never finalized here (their descriptor
    # numbers are reused): kept out of the collector, which spares copying their pages.
    gc.freeze()
    signal.set_wakeup_fd(-1)
    for fd in inherited:
        if fd != conn.fileno():
            with contextlib.suppress(OSError):  # the listing's own, closed since
                os.close(fd)
    target(conn, *args)


@contextlib.contextmanager
def signals_blocked(spawning: bool) -> Iterator[None]:
    """GROUP_SIGNALS blocked on this thread while a reader starts: processes spawned
    meanwhile inherit the mask through exec, so a group-wide signal cannot end a reader
    before its main() ignores it, nor multiprocessing's resource tracker (which ignores
    SIGINT and SIGTERM itself, but dies of SIGHUP and is relaunched without its
    records).

    When `spawning`, the tracker is launched first: the first spawn of a process
    launches it, and CPython's launch (resource_tracker.ensure_running) ends by
    unblocking SIGINT and SIGTERM rather than restoring the mask it found, so the
    reader spawned right after it ran its first moments unprotected — a Ctrl-C then
    killed it mid-import with a traceback on the command's stderr.

    On the main thread, the Python handlers wait too: with another thread in the
    process the kernel hands a group signal to that thread, whose mask is not ours,
    and a command's Ctrl-C then raised KeyboardInterrupt here in the middle of the
    start — before the new reader had its start-up data, which it then died of,
    traceback and all. Deferred, each signal that came is raised again once the
    reader has started and the handlers and mask are as they were."""
    held: list[int] = []
    handlers: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, lambda signum, _frame: held.append(signum))
                    for sig in GROUP_SIGNALS}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
    try:
        if spawning:
            resource_tracker.ensure_running()
            signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
        yield
    finally:
        try:
            # SIGINT's last: a command's handler for it raises KeyboardInterrupt, and a
            # Ctrl-C another thread takes the moment it is back must leave neither the
            # other handlers deferring nor this thread's mask blocked.
            for sig in sorted(handlers, key=lambda sig: sig == signal.SIGINT):
                handler = handlers[sig]
                # None: a handler not set from Python, which cannot be set back; none here
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


def raised(result: Result | None) -> Bundle:
    """The bundle a blocking call got back, or its exception raised."""
    assert result is not None
    if isinstance(result, BaseException):
        raise result
    return result


class Gather:
    """Results of n calls, each waited for on its own (lighter than Futures)."""

    def __init__(self, n: int) -> None:
        self.results: list[Result | None] = [None] * n
        self._back = [False] * n
        self._cond = threading.Condition(threading.Lock())

    def put(self, i: int, result: Result) -> None:
        with self._cond:
            self.results[i], self._back[i] = result, True
            self._cond.notify_all()

    def wait_for(self, i: int, timeout: float | None) -> Result | None:
        """Result i once it is back; None if it is not back within timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._back[i], timeout)
            return self.results[i]


class Ticks:
    """The `tick` of a pool's start, called when due (at once, then every `every`
    seconds): `due()` calls it if it is, and says when it is next (never, without one)."""

    def __init__(self, tick: Callable[[], None] | None, every: float) -> None:
        self._tick, self._every = tick, every
        self._next = time.monotonic()

    def due(self) -> float:
        if self._tick is None:
            return float("inf")
        now = time.monotonic()
        if now >= self._next:
            self._tick()
            self._next = now + self._every
        return self._next
