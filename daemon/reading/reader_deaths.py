"""What the reader pool does when a child dies or overruns (a part of `Pool`, as a
mixin: it shares the pool's lock, its children and the calls they hold), so that
reader_pool.py reads as spawning, sending and collecting.

A child that dies (killed, out of memory) is replaced at once, and the calls it
had are repeated (the one under way at most `Call.tries` times; those queued
behind it were not started, and do not count); more deaths in a row than the
limit without one result between, or a replacement that cannot start, retire
the pool: readers.py reads on threads from then on. Replacements that cannot load
the rules, more in a row than the limit (other children's results between or not),
are not started again: the children left read on, and the pool retires with the last.
A read that runs longer than `READ_TIME_LIMIT` (a PDF or image built to make pypdf
or Pillow loop, which no exception ends) has its child killed: it is tried once more
on the replacement, then answered `ReadTimedOut`. A replacement that has not said
"ready" within `LOAD_LIMIT` (stopped, loading from a mount that hangs) is killed
too, and so replaced in turn; the calls sent to it are repeated without a try.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daemon.errors import ReaderFailed, ReadTimedOut, describe, in_words
from daemon.reading.invoices import MAX_INVOICE_BYTES
from daemon.reading.reader_child import Call, Child, Restarts, Watched, call_under_way
from daemon.watching.scan import Candidate

# Seconds one read may take in a child. Reading a bundle takes milliseconds, pre-flight
# of a very large invoice seconds: past this only a file that makes a library loop is
# left. The check after a claim (hashes only) has no limit: a slow share is not hostile.
READ_TIME_LIMIT = 120.0
# Pre-flight is work in proportion to the invoices of a file: a 45 MB batch of 15,480
# took a reader 60 to 140 s on a busy 2-core host, and the size limits let a file that
# large through (invoices.MAX_INVOICE_BYTES). A read gets this much more time for each
# MB of its invoice file (a 64 MiB file, the largest taken: 13 minutes in all).
SECONDS_PER_MB = 10.0
# Seconds a replacement may take to load (some 2.5 s with the rules), as a start's children
# get (reader_lifecycle.START_WAIT): past it, it is taken for hung and replaced in turn.
LOAD_LIMIT = 60.0


def time_limit(cand: Candidate) -> float:
    """Seconds a read of `cand` may take before its reader is killed (one lstat: by the
    thread that sends it, never under the pool's lock)."""
    try:
        size = os.lstat(cand.invoice).st_size
    except OSError:
        size = 0  # gone or unreadable: the read itself says so, quickly
    # No more than for the largest file read (a larger one, whatever it holds, is refused
    # by its size unread): a 1 TB file got 10,000,000 s.
    size = min(size, MAX_INVOICE_BYTES)
    return READ_TIME_LIMIT + round(SECONDS_PER_MB * size / 1_000_000)  # whole seconds


def _limit(call: Call | None) -> float:
    return READ_TIME_LIMIT if call is None or call.limit is None else call.limit


def _under_way(child: Child) -> Call | None:
    """The call a child works on (under the pool's lock), if it reached the child."""
    call_id = call_under_way(child)
    return None if call_id is None else child.calls.get(call_id)


class Deaths:
    _lock: threading.Lock
    _children: list[Child]
    _closed: bool
    _stopping: bool
    restarts: Restarts
    _route: Callable[[Call], None]
    _give_up: Callable[[Any, str], None]
    log: Any

    if TYPE_CHECKING:
        # The pool's: declared for mypy only, so that no stand-in here can come before
        # them in the pool's bases (tests/reading/test_reader_pool.py).
        def _spawn(self) -> Child: ...

        @staticmethod
        def _end_children(children: list[Child]) -> None: ...

    @property
    def short(self) -> bool:
        """Fewer children than it started: those that could not load the rules were not
        replaced (`_not_replaced`); a reload starts a whole pool again."""
        return self.restarts.unloaded > self.restarts.limit

    # -- a child that died -----------------------------------------------------------
    def _died_safely(self, sel: Watched, child: Child) -> None:
        try:
            self._died(sel, child)
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the collector
            self.log.exception("a dead reader process could not be dealt with", error=in_words(exc))

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
            # One that never said "ready" worked on none: each is repeated without a try.
            under_way = call_under_way(child) if child.ready else None
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
            elif self.restarts.unloaded > self.restarts.limit:
                why = self._not_replaced()
            else:
                try:
                    fresh = self._spawn()
                except (OSError, ValueError) as exc:
                    why = describe(exc) if isinstance(exc, OSError) else \
                        f"{type(exc).__name__}: {exc}"
                else:
                    fresh.load_by = time.monotonic() + LOAD_LIMIT
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
                call.done(_timed_out(call) if call.timed_out else _died_each_time(call))
                continue
            call.tries -= 1
            call.timed_out = False
            self._route(call)

    def _not_replaced(self) -> str:
        """Replacements kept failing to load the rules (a broken install): none is started
        again, each a reader's start and two lines more. The children that loaded them
        before read on; with none left, why the pool gives up (threads here)."""
        with self._lock:
            left = len(self._children)
        if not left:
            return f"{self.restarts.unloaded} in a row could not load the e-invoice rules"
        self.log.error("reader processes that cannot load the e-invoice rules are not started "
                       f"again: {self.restarts.unloaded} in a row could not; {left} running "
                       "read on", fix="reinstall outboxd with its dependencies, as the error "
                       "of each says, then reload outboxd (systemctl reload outboxd)")
        return ""

    # -- reads that run too long -----------------------------------------------------
    def _until_overdue(self) -> int | None:
        """Milliseconds until the first read under way runs out of time (poll's timeout;
        None: no read is under way)."""
        with self._lock:
            ends = [c.busy_since + _limit(_under_way(c)) for c in self._children
                    if c.busy_since is not None and not c.dead]
            ends += [c.load_by for c in self._children if c.load_by is not None and not c.dead]
        if not ends:
            return None
        left = min(ends) - time.monotonic()
        return 0 if left <= 0 else math.ceil(left * 1000)

    def _end_overdue_safely(self) -> None:
        try:
            self._end_overdue()
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the collector
            self.log.exception("a reader's time limit could not be checked", error=in_words(exc))

    def _end_overdue(self) -> None:
        """Kill each child whose read under way ran past the limit; its death (seen by
        the collector next) repeats or answers the read."""
        now = time.monotonic()
        self._end_unloaded(now)
        with self._lock:
            due = [c for c in self._children if not c.dead and c.busy_since is not None
                   and now >= c.busy_since + _limit(_under_way(c))]
        # An answer (or the end of the pipe) already waiting is read first: the collector
        # may have been held up, and a read that came back in time is not overdue.
        due = [c for c in due if not _readable(c)]
        killed: list[tuple[Child, Call]] = []
        with self._lock:
            for c in due:
                if c.dead or c.busy_since is None or \
                        now < c.busy_since + _limit(_under_way(c)):
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
                             file=call.cand.invoice.name, limit=_limit(call))
            with contextlib.suppress(OSError, ValueError):
                c.proc.kill()

    def _end_unloaded(self, now: float) -> None:
        """Kill each replacement that has not said "ready" by its `load_by` (stopped,
        loading from a mount that hangs); its death, seen next, replaces it again."""
        with self._lock:
            late = [c for c in self._children if not c.dead and c.load_by is not None
                    and now >= c.load_by]
            for c in late:
                c.load_by = None  # judged once
        for c in late:
            if _readable(c):
                continue  # its "ready" (or its end) came meanwhile: read next
            self.log.warning("a reader process started again did not load in time; "
                             "ending it", limit=LOAD_LIMIT)
            with contextlib.suppress(OSError, ValueError):
                c.proc.kill()


def _readable(child: Child) -> bool:
    """Something waits in the child's pipe (an answer, or its end)."""
    try:
        return bool(child.conn.poll(0))
    except (OSError, ValueError, EOFError):
        return True  # closed or broken: its death is noticed next


def _died_each_time(call: Call) -> ReaderFailed:
    name = call.cand.invoice.name
    if call.work_dir is not None:  # after the claim: the delivery worker tries it again
        return ReaderFailed(f"{name}: a reader process died each time while converting its "
                            "images to PDF (out of memory?); the delivery is tried again")
    return ReaderFailed(f"{name}: a reader process died while reading it each time (out of "
                        "memory?); it is read again when it changes")


def _timed_out(call: Call) -> ReadTimedOut:
    return ReadTimedOut(call.cand.invoice.name, _limit(call))
