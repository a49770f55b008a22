"""The reader processes themselves (readers.py decides what runs where): N spawned
children, each with one duplex pipe to the daemon, and one collector thread.

Why not concurrent.futures.ProcessPoolExecutor: its plumbing (a feeder thread
pickling each call, a manager thread with a wakeup pipe and a selector built per
wait, a Future per call) cost about a fifth of the daemon's interpreter time in a
burst, ~0.5 ms per call. Here the thread that submits a call pickles it and
writes it to the child with the fewest calls outstanding; the collector waits
on every child's pipe and process sentinel at once (one poll, registered once),
reads a result (the read releases the interpreter lock), unpickles it and calls
the call's `done`. Nothing else runs per call. A child takes requests off its
pipe as they come (a thread of its own), so a write here never waits for a
call to end, and the collector never writes.

A child that dies (killed, out of memory) is replaced at once, and the calls it
had are repeated (the one under way at most `Call.tries` times; those queued
behind it were not started, and do not count); more deaths in a row than the
limit without one result between, or a replacement that cannot start, retire
the pool: readers.py reads on threads from then on. A read that runs longer than
`READ_TIME_LIMIT` (a PDF or image built to make pypdf or Pillow loop, which no
exception ends) has its child killed: it is tried once more on the replacement,
then answered `ReadTimedOut`. No multiprocessing lock,
queue or semaphore is used, so the resource tracker has nothing to report when
the daemon is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs, reader_process, reader_wire
from daemon.config import LogConfig
from daemon.errors import ConfigError, ReaderFailed, ReadTimedOut
from daemon.osthreads import show_name
from daemon.reader_child import (
    Call,
    Child,
    ChildUnavailable,
    Restarts,
    Result,
    Watched,
    call_under_way,
    fewest_calls,
    signals_blocked,
)

__all__ = ["Call", "ChildUnavailable", "Pool", "Restarts", "Result", "signals_blocked"]

START_TIMEOUT = 600.0  # seconds for every child to load the engine (a busy, slow host)
STOP_GRACE = 5.0  # seconds for the children to exit at stop, then killed
# Seconds one read may take in a child. Reading a bundle takes milliseconds, pre-flight
# of a very large invoice seconds: past this only a file that makes a library loop is
# left. The check after a claim (hashes only) has no limit: a slow share is not hostile.
READ_TIME_LIMIT = 120.0


class Pool:
    """`workers` reader processes (one shape: engine loaded or not) and their collector."""

    def __init__(self, ctx: Any, workers: int, engine: bool, cache_dir: Path, log: LogConfig,
                 unpack: Callable[[Any], Result], restarts: Restarts,
                 route: Callable[[Call], None], give_up: Callable[[Pool, str], None],
                 target: Callable[..., None] = reader_process.main) -> None:
        self._ctx, self._args, self._target = ctx, (str(cache_dir), engine, log), target
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
    def start(self) -> None:
        """Spawn the children and wait until each has loaded the engine (ConfigError if
        one could not; ChildUnavailable if a child cannot run here)."""
        try:
            for _ in range(self._workers):
                self._children.append(self._spawn())
            problems = [self._ready(c, time.monotonic() + START_TIMEOUT)
                        for c in self._children]
            for c in self._children:
                c.ready = True
        except (OSError, EOFError) as exc:
            self._abandon()
            raise ChildUnavailable(f"{type(exc).__name__}: {exc}") from None
        problem = next((p for p in problems if p), None)
        if problem:
            self._abandon()
            raise ConfigError(problem)
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
        ours, theirs = self._ctx.Pipe(duplex=True)
        try:
            proc = self._ctx.Process(target=self._target, args=(theirs, *self._args),
                                     daemon=True, name="outboxd-reader")
            with signals_blocked():
                proc.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child's end lives in the child only: its EOF is ours
        return Child(proc, ours)

    @staticmethod
    def _ready(child: Child, deadline: float) -> str | None:
        if not child.conn.poll(max(0.0, deadline - time.monotonic())):
            return "a reader process did not load the e-invoice engine in time"
        call_id, problem = reader_wire.loads(child.conn.recv_bytes())
        if call_id != 0:
            raise EOFError("a reader process did not start as expected")
        return problem  # type: ignore[no-any-return]

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
        """Hand the call to the child with the fewest calls; False once retired."""
        with self._lock:
            if self._closed:
                return False
            if not self._children:  # its only child is being replaced: sent once it is
                self._parked.append(call)
                return True
            child = min(self._children, key=fewest_calls)
            if not child.calls and child.ready:
                if not any(c.busy_since is not None for c in self._children):
                    self._wake("t")  # the collector waits without a timeout: set one
                child.busy_since = time.monotonic()
            self._next_id += 1
            call_id = self._next_id
            child.calls[call_id] = call
        with child.send_lock:  # one writer at a time; the version goes with the first
            fresh = child.version != version
            data = reader_wire.dumps((call_id, version, blob if fresh else None,
                                      call.cand, call.known))
            try:
                child.conn.send_bytes(data)
            except (OSError, ValueError):
                return True  # it died: the collector repeats its calls
            child.version = version
            child.written.append(call_id)
        return True

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
                    self.log.error("a reader process could not load the e-invoice rules; "
                                   "ending it", error=str(out))
                    return False
                with self._lock:
                    child.ready = True
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
            self.log.exception("a reader's result could not be handed on", error=str(exc))
        return True

    def _died_safely(self, sel: Watched, child: Child) -> None:
        try:
            self._died(sel, child)
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the collector
            self.log.exception("a dead reader process could not be dealt with", error=str(exc))

    def _died(self, sel: Watched, child: Child) -> None:
        """A child died (or must): replace it and repeat its calls, or give up."""
        if child.dead:
            return
        child.dead = True
        sel.forget(child)
        self._end_children([child])
        with self._lock:
            # A child answers in the order its calls went down the pipe: only the
            # first written of those still open can have been under way when it died.
            # (_end_children above closed the pipe under send_lock: nothing is written
            # to `written` any more.)
            under_way = call_under_way(child)
            first = child.calls.pop(under_way) if under_way is not None else None
            calls = ([first] if first is not None else []) + list(child.calls.values())
            child.calls.clear()
            if child in self._children:
                self._children.remove(child)
            closed = self._closed
        killed_for, child.killed_for = child.killed_for, None
        if killed_for is not None and under_way != killed_for:
            # Killed for time just after the read it was killed for came back: the call
            # found under way had barely started, and is repeated without a try.
            first = None
        if first is not None and first.timed_out:
            first.tries = min(first.tries, 2)  # once more on a fresh child, then the answer
        elif not closed and killed_for is None:
            self.restarts.in_row += 1  # a kill for time says nothing of the next child
        if not closed:
            why = ""
            if self.restarts.in_row > self.restarts.limit:
                why = f"{self.restarts.in_row - 1} restarts without one result"
            else:
                try:
                    fresh = self._spawn()
                except (OSError, ValueError) as exc:
                    why = f"{type(exc).__name__}: {exc}"
                else:
                    with self._lock:
                        # stop() may have taken the children meanwhile (it waits for
                        # this thread only so long): a child added now would outlive it.
                        stopping = self._stopping
                        if not stopping:
                            self._children.append(fresh)
                    if stopping:
                        self._end_children([fresh])
                    else:
                        sel.watch(fresh)
                        self.restarts.total += 1
                        where = {"file": calls[0].cand.invoice.name} if calls else {}
                        self.log.warning("a reader process died; started again",
                                         restarts=self.restarts.total, **where)
            if why:
                self._give_up(self, why)  # first: new calls go to threads from now on
                with self._lock:
                    self._closed = True
        # The call under way (first, if any was written) costs a try; the others waited
        # behind it, or never reached the child, and are repeated without one.
        for n, call in enumerate(calls):
            if n > 0 or first is None:
                self._route(call)
                continue
            if call.tries <= 1:
                call.done(_timed_out(call) if call.timed_out else ReaderFailed(
                    f"{call.cand.invoice.name}: a reader process died while reading it "
                    "each time (out of memory?); it is read again when it changes"))
                continue
            call.tries -= 1
            call.timed_out = False
            self._route(call)

    # -- reads that run too long -----------------------------------------------------
    def _until_overdue(self) -> int | None:
        """Milliseconds until the first read under way runs out of time (poll's timeout;
        None: no read is under way)."""
        with self._lock:
            ends = [c.busy_since + READ_TIME_LIMIT for c in self._children
                    if c.busy_since is not None and not c.dead]
        if not ends:
            return None
        left = min(ends) - time.monotonic()
        return 0 if left <= 0 else math.ceil(left * 1000)

    def _end_overdue_safely(self) -> None:
        try:
            self._end_overdue()
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the collector
            self.log.exception("a reader's time limit could not be checked", error=str(exc))

    def _end_overdue(self) -> None:
        """Kill each child whose read under way ran past the limit; its death (seen by
        the collector next) repeats or answers the read."""
        now = time.monotonic()
        with self._lock:
            due = [c for c in self._children if not c.dead and c.busy_since is not None
                   and now >= c.busy_since + READ_TIME_LIMIT]
        # An answer (or the end of the pipe) already waiting is read first: the collector
        # may have been held up, and a read that came back in time is not overdue.
        due = [c for c in due if not _readable(c)]
        killed: list[tuple[Child, Call]] = []
        with self._lock:
            for c in due:
                if c.dead or c.busy_since is None or now < c.busy_since + READ_TIME_LIMIT:
                    continue  # answered or replaced meanwhile
                under_way = call_under_way(c)
                if under_way is None:  # its call is still being written: its clock starts
                    c.busy_since = now
                    continue
                call = c.calls[under_way]
                c.busy_since = None  # judged once; a killed child's death comes next
                if call.known is None:  # a check by hashes is left to finish
                    call.timed_out = True
                    c.killed_for = under_way
                    killed.append((c, call))
        for c, call in killed:
            self.log.warning("a reader ran out of time on a bundle; ending it",
                             file=call.cand.invoice.name, limit=READ_TIME_LIMIT)
            with contextlib.suppress(OSError, ValueError):
                c.proc.kill()

def _readable(child: Child) -> bool:
    """Something waits in the child's pipe (an answer, or its end)."""
    try:
        return bool(child.conn.poll(0))
    except (OSError, ValueError, EOFError):
        return True  # closed or broken: its death is noticed next


def _timed_out(call: Call) -> ReadTimedOut:
    return ReadTimedOut(call.cand.invoice.name, READ_TIME_LIMIT)
