"""The reader processes themselves (readers.py decides what runs where): N spawned
children (a command's one forked, where it may: `_spawn`), each with one duplex pipe to
the daemon, and one collector thread.

Why not concurrent.futures.ProcessPoolExecutor: its plumbing (a feeder thread
pickling each call, a manager thread with a wakeup pipe and a selector built per
wait, a Future per call) cost about a fifth of the daemon's interpreter time in a
burst, ~0.5 ms per call. Here the thread that submits a call pickles it and
writes it to the child with the fewest calls outstanding, not stuck behind a long one
(`least_waiting`; the checks of a claim
batch: each child's share in one message, `send_all`); the collector waits
on every child's pipe and process sentinel at once (one poll, registered once),
reads a result (the read releases the interpreter lock), unpickles it and calls
the call's `done`. Nothing else runs per call. A child takes requests off its
pipe as they come (a thread of its own), so a write here never waits for a
call to end, and the collector never writes.

A child that dies, or runs past its time, is reader_deaths.py's (a part of
`Pool`, as a mixin): replaced, its calls repeated, or the pool retired. No
multiprocessing lock, queue or semaphore is used, so the resource tracker has
nothing to report when the daemon is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.configuration.config import LogConfig
from daemon.errors import ConfigError, describe, in_words
from daemon.osthreads import show_name
from daemon.reading import reader_process, reader_wire
from daemon.reading.reader_child import (
    Call,
    Child,
    ChildLate,
    ChildUnavailable,
    Restarts,
    Result,
    Ticks,
    Watched,
    descriptors,
    forked_main,
    least_waiting,
    may_fork,
    signals_blocked,
)
from daemon.reading.reader_deaths import Deaths, time_limit

__all__ = ["Call", "ChildLate", "ChildUnavailable", "Pool", "Restarts", "Result",
           "signals_blocked"]

# Seconds between the calls of a start's `tick` while it waits for its children (the
# loop's WATCHDOG=1 at a reload), at most: the loop asks for a quarter of WatchdogSec
# when that is less (an admin's drop-in may set a few seconds).
TICK_SECONDS = 1.0
STOP_GRACE = 5.0  # seconds for the children to exit at stop, then killed
# What a child late to say "ready" was doing, by its state in /proc/PID/stat: the warning
# is read after it was killed, when nothing else can tell.
_STATES = {"T": "stopped", "t": "stopped", "D": "waiting on a disk or a mount",
           "R": "running", "S": "sleeping"}


class Pool(Deaths):
    """`workers` reader processes (one shape: engine loaded or not) and their collector."""

    def __init__(self, ctx: Any, workers: int, engine: bool, cache_dir: Path | None,
                 log: LogConfig, unpack: Callable[[Any], Result], restarts: Restarts,
                 route: Callable[[Call], None], give_up: Callable[[Pool, str], None],
                 target: Callable[..., None] = reader_process.main, fork: bool = False) -> None:
        self._ctx, self._target, self._fork = ctx, target, fork
        self._args = (None if cache_dir is None else str(cache_dir), engine, log)
        self._workers, self._unpack, self.restarts = workers, unpack, restarts
        self._route, self._give_up = route, give_up
        self._lock = threading.Lock()
        self._children: list[Child] = []
        self._parked: list[Call] = []  # sent while no child is alive (one being replaced)
        self._next_id = 0
        self._closed = False  # retired or stopped: takes no new calls
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        self._wake_closed = False  # closed by the collector as it ends, under the lock
        self._collector: threading.Thread | None = None
        self.log = logs.get()

    # -- life ----------------------------------------------------------------------
    def start(self, wait: float, tick: Callable[[], None] | None = None,
              every: float | None = None) -> None:
        """Spawn the children and wait until each has loaded the engine, `wait` seconds
        for them all, calling `tick` at once and then every `every` seconds (at most
        TICK_SECONDS) meanwhile (ConfigError if one could not load it; ChildUnavailable
        if a child cannot run here; ChildLate if they were not all ready in time: ended,
        as hung)."""
        deadline = time.monotonic() + wait
        ticks = Ticks(tick, min(every or TICK_SECONDS, TICK_SECONDS))
        try:
            for _ in range(self._workers):
                self._children.append(self._spawn())
            problems: list[str | None] = []
            for c in self._children:
                problems.append(self._ready(c, deadline, ticks))
                c.ready = True
        except (OSError, EOFError) as exc:
            self._abandon()
            raise ChildUnavailable(describe(exc) if isinstance(exc, OSError)
                                   else f"{type(exc).__name__}: {exc}") from None
        except ChildLate:
            late = [c for c in self._children if not c.ready]
            doing = Counter(_STATES.get(_state(c.proc.pid), "state unknown") for c in late)
            for c in late:  # stopped, or waiting on a mount: an end of file would not end it
                c.proc.kill()
            self._abandon()
            raise ChildLate(f"{len(late)} of {self._workers} new reader processes did not "
                            f"say they were ready within {wait:g} s ("
                            + ", ".join(f"{n} {what}" for what, n in doing.items())
                            + ")") from None
        problem = next((p for p in problems if p), None)
        if problem:
            self._abandon()
            raise ConfigError(problem)
        # These loaded the rules and started (a reload after the fix): the counts that
        # gave up on the readers before begin again, or their first death would too.
        self.restarts.unloaded = self.restarts.in_row = 0
        atexit.register(self._at_exit)
        self._collector = threading.Thread(target=self._collect, daemon=True, name="readers")
        self._collector.start()
        show_name(self._collector)

    def _abandon(self) -> None:
        """A start that failed: its children ended, its wakeup pipe closed."""
        self._end_children(self._children)
        self._children = []
        self._wake_closed = True
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _spawn(self) -> Child:
        """A child spawned, or with `fork` forked while this process may (may_fork): a
        command's first reader (a replacement is started by the collector thread, so
        spawned)."""
        forking = self._fork and may_fork()
        ctx = multiprocessing.get_context("fork") if forking else self._ctx
        ours, theirs = ctx.Pipe(duplex=True)
        target, args = ((forked_main, (self._target, descriptors(), theirs, *self._args))
                        if forking else (self._target, (theirs, *self._args)))
        try:
            proc = ctx.Process(target=target, args=args, daemon=True, name="outboxd-reader")
            with signals_blocked(spawning=not forking):
                proc.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child's end lives in the child only: its EOF is ours
        return Child(proc, ours)

    @staticmethod
    def _ready(child: Child, deadline: float, ticks: Ticks) -> str | None:
        # The ticks keep one schedule across the children: waited for one after the
        # other, each ready just before a tick was due, they held the tick back by up
        # to a TICK_SECONDS each (4 children: 4 s without a WATCHDOG=1).
        while not child.conn.poll(max(0.0, min(ticks.due(), deadline) - time.monotonic())):
            if time.monotonic() >= deadline:
                raise ChildLate
        call_id, problem = reader_wire.loads(child.conn.recv_bytes())
        if call_id != 0:
            raise EOFError("a reader process did not start as expected")
        return problem

    @property
    def ended(self) -> bool:
        """Its collector has finished (retired and every call answered, or stopped)."""
        return self._wake_closed

    def pids(self) -> list[int]:
        with self._lock:
            return [c.proc.pid for c in self._children if not c.dead]

    def retire(self) -> None:
        """No new calls; the children exit once the calls they have are answered."""
        with self._lock:
            self._closed = True
            self._wake("r")

    def stop(self) -> list[Call]:
        """End the collector and the children; the calls not answered are returned."""
        with self._lock:
            self._closed = self._stopping = True
            self._wake("s")
        if self._collector is not None and self._collector is not threading.current_thread():
            self._collector.join(STOP_GRACE)
        return self._end_all()

    def _end_all(self) -> list[Call]:
        """Every child ended; the calls they held, and the parked ones, not answered."""
        with self._lock:
            children, self._children = self._children, []
            calls = [call for c in children for call in c.calls.values()] + self._parked
            self._parked = []
            for c in children:
                c.calls.clear()
        self._end_children(children)
        atexit.unregister(self._at_exit)
        return calls

    def _wake(self, why: str) -> None:
        """The collector looks at the pool's state again (called under the lock)."""
        if not self._wake_closed:
            os.write(self._wake_w, why.encode())

    def _at_exit(self) -> None:
        """An exit without stop(): our ends closed, so multiprocessing's join at exit
        does not wait for children that ignore its SIGTERM."""
        for c in list(self._children):
            with contextlib.suppress(OSError):
                c.conn.close()

    @staticmethod
    def _end_children(children: list[Child]) -> None:
        for c in children:
            # Closed under its send lock: a thread still writing to it must not write
            # into whatever file reuses the descriptor. A write that waits on a child
            # stopped (SIGSTOP) with a full pipe ends when the child is killed.
            if not c.send_lock.acquire(timeout=STOP_GRACE):
                c.proc.kill()
                c.send_lock.acquire()
            try:
                with contextlib.suppress(OSError):
                    c.conn.close()  # end of file: the child exits, mid-call or not
            finally:
                c.send_lock.release()
        deadline = time.monotonic() + STOP_GRACE
        for c in children:
            c.proc.join(max(0.0, deadline - time.monotonic()))
        for c in children:
            if c.proc.is_alive():
                c.proc.kill()
                c.proc.join(STOP_GRACE)
            with contextlib.suppress(ValueError):  # still running: nothing else to do
                c.proc.close()  # its sentinel descriptor

    # -- calls -----------------------------------------------------------------------
    def send(self, call: Call, version: int, blob: bytes) -> bool:
        """Hand the call to the child where it waits least; False once retired."""
        return self.send_all([call], version, blob)

    def send_all(self, calls: list[Call], version: int, blob: bytes) -> bool:
        """Hand each call to the child where it waits least (counting those handed out
        before it), the calls of one child written down its pipe in one message (a
        claim batch's checks: one wake-up of each child, one write of the caller's);
        False once retired (none taken)."""
        taken: dict[Child, list[tuple[int, Call]]] = {}
        for call in calls:
            if call.limit is None and call.known is None:
                call.limit = time_limit(call.cand)
        with self._lock:
            if self._closed:
                return False
            if not self._children:  # its only child is being replaced: sent once it is
                self._parked.extend(calls)
                return True
            waiting = least_waiting(time.monotonic())
            for call in calls:
                child = min(self._children, key=waiting)
                if not child.calls and child.ready:
                    if not any(c.busy_since is not None for c in self._children):
                        self._wake("t")  # the collector waits without a timeout: set one
                    child.busy_since = time.monotonic()
                self._next_id += 1
                child.calls[self._next_id] = call
                taken.setdefault(child, []).append((self._next_id, call))
        for child, mine in taken.items():
            self._write(child, version, blob, mine)
        return True

    @staticmethod
    def _write(child: Child, version: int, blob: bytes, calls: list[tuple[int, Call]]) -> None:
        with child.send_lock:  # one writer at a time; the version goes with the first
            fresh = child.version != version
            data = reader_wire.dumps((version, blob if fresh else None,
                                      tuple((call_id, call.cand, call.known, call.work_dir,
                                             call.job) for call_id, call in calls)))
            try:
                child.conn.send_bytes(data)
            except (OSError, ValueError):
                return  # it died: the collector repeats its calls
            child.version = version
            child.written.extend(call_id for call_id, _ in calls)

    def _collect(self) -> None:
        """The one thread that reads results and notices deaths."""
        sel = Watched(self._wake_r)
        with self._lock:
            children = list(self._children)
        for c in children:
            sel.watch(c)
        try:
            while True:
                wait = self._until_overdue()
                if wait == 0:
                    self._end_overdue_safely()
                    wait = self._until_overdue()
                for fd, _ in sel.poll.poll(wait):
                    owner = sel.owners.get(fd)
                    if owner is None:
                        os.read(self._wake_r, 64)
                        continue
                    child, is_conn = owner
                    if not child.dead and (not is_conn or not self._answer(child)):
                        self._died_safely(sel, child)
                        break  # a replacement may reuse a descriptor listed here: poll again
                with self._lock:
                    if self._stopping:
                        return
                    idle = self._closed and not any(c.calls for c in self._children)
                    parked: list[Call] = []
                    if self._parked:
                        parked, self._parked = self._parked, []
                for call in parked:  # a replacement is in, or the pool gave up
                    self._route(call)
                if idle:
                    with self._lock:
                        children, self._children = self._children, []
                    self._end_children(children)
                    atexit.unregister(self._at_exit)
                    return
        except Exception as exc:  # noqa: BLE001 - a bug here: its calls must not be lost with it
            self._collector_failed(exc)
        finally:
            with self._lock:
                self._wake_closed = True
                os.close(self._wake_r)
                os.close(self._wake_w)

    def _collector_failed(self, exc: Exception) -> None:
        """The collector met a bug: no child's answer would be read again. Reading moves
        to threads, and every call the children held is repeated there."""
        self.log.exception("the reader processes' collector failed; reading in the daemon's "
                           "own process", error=f"{type(exc).__name__}: {exc}")
        self._give_up(self, f"collector failed: {type(exc).__name__}: {exc}")
        with self._lock:
            self._closed = True
        for call in self._end_all():
            self._route(call)

    def _answer(self, child: Child) -> bool:
        """One message from a child; False when it is gone or talks nonsense."""
        try:
            call_id, out = reader_wire.loads(child.conn.recv_bytes())
            if call_id == 0:  # a replacement's "ready": calls were sent to it already
                if out is not None:  # it could not load the engine: as if it had died
                    self.restarts.unloaded += 1
                    self.log.error("a reader process could not load the e-invoice rules; "
                                   "ending it", error=str(out))
                    return False
                self.restarts.unloaded = 0
                with self._lock:
                    child.ready, child.load_by = True, None
                    child.busy_since = time.monotonic() if child.calls else None
                return True
            with self._lock:
                call = child.calls.pop(call_id)
                while child.written and child.written[0] not in child.calls:
                    child.written.popleft()  # answered: children answer in pipe order
                child.busy_since = time.monotonic() if child.calls else None
            self.restarts.in_row = 0
            result = self._unpack(out)
        except (EOFError, OSError):
            return False
        except Exception as exc:  # noqa: BLE001 - a message we cannot read: the child is broken
            self.log.error("a reader process sent a message that cannot be read; ending it",
                           error=f"{type(exc).__name__}: {exc}")
            return False
        try:
            call.done(result)
        except Exception as exc:  # noqa: BLE001 - the caller's bug must not end the collector
            self.log.exception("a reader's result could not be handed on", error=in_words(exc))
        return True


def _state(pid: int) -> str:
    """The one letter of a process's state in /proc (R, S, D, T …); "" where it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return raw[raw.rindex(")") + 2]
