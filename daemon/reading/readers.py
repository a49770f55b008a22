"""The validation workers: read, match, validate and pre-flight a settled bundle in
child processes (`finish.evaluate`, one call per settled version).

Why processes: reading a bundle (pypdf, Pillow, hashing) costs milliseconds
of CPU, pre-flight ~12 ms per invoice; on threads of the daemon that time
holds its one interpreter lock, in series with the loop and the deliveries.
N spawned children (`[service] reader_processes`, "auto" = min(2, CPUs)) run
it beside them; each loads the e-invoice engine once at start (compile cache
in the state dir), so pre-flight is part of the same call. After a claim they
also check the moved bundle by hashes (`assemble_many`) and, at delivery, write
its images converted to PDF into the work folder (`materialise`), so that decoding
an image (some 300 MB for 9000 × 9000 pixels) stays out of the daemon's own
process after the claim too. The children, their
pipes and the one collector thread are reader_pool.py's; starting them, fitting
them to a reload and stopping them, reader_lifecycle.py's; what crosses a pipe
and how it is pickled cheaply, reader_wire.py's; which read goes to a child now
and which waits, reader_turns.py's.

Across the boundary: the Candidate, the Settings (pickled once per version,
unpickled once per version in a child: a reload reaches it with the next
call), and back a Bundle or an error. Exceptions with their own ``__init__``
do not survive pickling: `reader_process.pack` / `unpack` are the one place
errors cross.

Never losing a bundle: where no child can start (a sandbox without pipes or
process creation, an interpreter this user cannot execute), reads run on
threads here, with one warning; a child that dies under a call is replaced and
its calls repeated (each up to `TRIES` times, then `ReaderFailed`: logged, read
again when the bundle changes, never an input error; more than
`RESTARTS_IN_ROW` deaths without one result between: threads here, with one
error line, until a reload starts them again); when the daemon dies (even
SIGKILL) its children see the end of their pipe and exit.
Signals sent to the whole process group (Ctrl-C, hangup, killpg SIGTERM) are
ignored by the children: the daemon decides, and stops them itself.
"""

from __future__ import annotations

import functools
import pickle
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.configuration.config_readers import needs_engine
from daemon.errors import InputError, ReaderFailed, ReaderStopped
from daemon.reading import reader_process
from daemon.reading.match import known_part
from daemon.reading.reader_child import Gather, raised
from daemon.reading.reader_lifecycle import Lifecycle, workers_for
from daemon.reading.reader_pool import Call, ChildUnavailable, Pool, Restarts
from daemon.reading.reader_turns import STOPPING, Done, ReadTurns
from daemon.watching.scan import Candidate

__all__ = ["ChildUnavailable", "Readers", "needs_engine", "workers_for"]

Result = Bundle | BaseException
CHECK_WAIT = 5.0  # seconds the loop waits for the readers' checks after a claim
TRIES = 3  # calls of one bundle that may meet a dead child before it is given up
RESTARTS_IN_ROW = 5  # children started again without one result between: read here instead


class Readers(Lifecycle):
    """evaluate() off the daemon's interpreter lock: in child processes, or on threads
    here where no child can run. `done` is called once per submit, on some thread."""

    def __init__(self, cache_dir: Path | None = None, fork: bool = False) -> None:
        """`fork`: a command's readers, forked while its process may (reader_pool)."""
        self.cache_dir = cache_dir  # the engine's compile cache (None: a command's, none)
        self._fork = fork
        self.log = logs.get()
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self._retired: list[Pool] = []  # after a reload: still answering their calls
        self._shape: tuple[int, bool] = (0, False)  # workers, engine loaded
        self._threads: ThreadPoolExecutor | None = None
        self._stopping = False
        self._ctx: Any = None
        self._encoded: tuple[Settings, int, bytes] | None = None
        self._restarts = Restarts(RESTARTS_IN_ROW)
        # Reads take turns (few in the children at once), so that a check after a
        # claim (submitted with `known`, routed at once) is not queued behind a burst.
        self._turns = ReadTurns(self._route)

    @property
    def restarts(self) -> int:
        """Reader processes started again after one died."""
        return self._restarts.total

    @property
    def processes(self) -> bool:
        with self._lock:
            return self._pool is not None

    def pids(self) -> list[int]:
        """The reader processes now running (for tests and diagnostics)."""
        with self._lock:
            pool = self._pool
        return pool.pids() if pool is not None else []

    # -- calls ----------------------------------------------------------------------
    def _evaluate_here(self, cand: Candidate, settings: Settings,
                       known: Bundle | None = None, work_dir: Path | None = None,
                       job: reader_process.Job | None = None) -> Result:
        """On a thread of this process (no child can run, or a check not answered)."""
        try:
            if job is not None:
                result: Result = job(cand, settings)
                return result
            return reader_process.run(cand, settings, known, self.cache_dir, work_dir)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, which reports it
            return exc

    def _settings_blob(self, settings: Settings) -> tuple[int, bytes]:
        """The settings pickled once per version (a child unpickles each version once)."""
        with self._lock:
            encoded = self._encoded
            if encoded is None or encoded[0] is not settings:
                version = 1 if encoded is None else encoded[1] + 1
                encoded = (settings, version, pickle.dumps(settings))
                self._encoded = encoded
            return encoded[1], encoded[2]

    def submit(self, cand: Candidate, settings: Settings, done: Done,
               known: Bundle | None = None) -> None:
        """Evaluate in a reader for the loop; `done(bundle or exception)` once, from
        another thread. With `known`: only match it again by hashes (match.assemble), as
        after a claim — handed to a child at once, ahead of reads still waiting, with
        only what that check takes of `known` (match.known_part)."""
        if known is not None:
            self._route(Call(cand, settings, done, known_part(known), TRIES))
            return
        self._read(cand, settings, done, for_loop=True)

    def _read(self, cand: Candidate, settings: Settings, done: Done, for_loop: bool,
              job: reader_process.Job | None = None) -> None:
        """A read in its turn (reader_turns: a few a child at once, the rest in order).
        `for_loop`: the loop's, which drop_reads answers at a stop; else a delivery's
        (or a command's)."""
        call = Call(cand, settings, functools.partial(self._turns.finished, done), None,
                    TRIES, job=job)
        with self._lock:
            workers = self._shape[0]
        self._turns.take(call, done, for_loop, workers)

    def drop_reads(self) -> int:
        """At a stop, before the deliveries are waited for: the loop's reads not handed
        to a child yet are answered ReaderFailed (the loop that would use them has
        ended; they are done again at the next start), and later ones at once, so that
        the grace period goes to what the deliveries wait on — their reads, checks and
        conversions, which keep their turn. Reads already in a child run out. The
        number dropped."""
        return self._turns.drop_reads()

    def _route(self, call: Call) -> None:
        """To the child where it waits least, or to a thread here."""
        while True:
            with self._lock:
                pool, threads, stopping = self._pool, self._threads, self._stopping
            if stopping:
                call.done(ReaderStopped(STOPPING))
                return
            if pool is None:
                break
            version, blob = self._settings_blob(call.settings)
            if pool.send(call, version, blob):
                return
            # Retired just now (a reload, or its children kept dying): self._pool was
            # replaced before, so the next turn routes elsewhere.
        if threads is None:  # configure() never ran: a caller's mistake, said plainly
            call.done(ReaderFailed("the readers were not started"))
            return
        try:
            here = threads.submit(self._evaluate_here, call.cand, call.settings, call.known,
                                  call.work_dir, call.job)
        except RuntimeError:  # shut down by stop() just now
            call.done(ReaderStopped(STOPPING))
            return
        # A call that stop() cancels still answers: a delivery worker may wait on it.
        here.add_done_callback(lambda f: call.done(
            ReaderStopped(STOPPING) if f.cancelled() else f.result()))

    def assemble_many(self, jobs: list[tuple[Candidate, Bundle]], settings: Settings
                      ) -> Iterator[Result]:
        """match.assemble(cand, known=bundle) for each, in the readers side by side: the
        check by hashes after a claim, off this process's lock. All are sent at once;
        each result is yielded, in order, as soon as it is back, so the first bundle
        of a batch goes to delivery while the rest are still being checked."""
        gather = Gather(len(jobs))
        self._route_all([Call(cand, settings, functools.partial(gather.put, i),
                              known_part(known), TRIES) for i, (cand, known) in enumerate(jobs)])
        return self._gathered(gather, jobs, settings)

    def _route_all(self, calls: list[Call]) -> None:
        """Calls under one Settings (a claim batch's checks, 32 in a burst): each child's
        share in one message (one wake-up, one write of the loop's); else as _route."""
        with self._lock:
            pool, stopping = self._pool, self._stopping
        if calls and pool is not None and not stopping:
            version, blob = self._settings_blob(calls[0].settings)
            if pool.send_all(calls, version, blob):
                return
        for call in calls:  # retired just now, threads here, or stopping
            self._route(call)

    def _gathered(self, gather: Gather, jobs: list[tuple[Candidate, Bundle]],
                  settings: Settings) -> Iterator[Result]:
        # The loop waits here: never longer than CHECK_WAIT in all (readers busy with
        # long pre-flights, a reader stuck in a hostile PDF); what is not back by then,
        # or came back with an answer not about the files (a reader died, stopping), is
        # checked here, in this thread.
        deadline = time.monotonic() + CHECK_WAIT
        for i, (cand, known) in enumerate(jobs):
            result = gather.wait_for(i, max(0.0, deadline - time.monotonic()))
            if result is None:
                result = ReaderFailed("no answer in time")
            if isinstance(result, BaseException) and not isinstance(result, InputError | OSError):
                result = self._evaluate_here(cand, settings, known)
            yield result

    def evaluate(self, cand: Candidate, settings: Settings) -> Bundle:
        """finish.evaluate in a reader, waiting for it (for a delivery worker)."""
        gather = Gather(1)
        self._read(cand, settings, functools.partial(gather.put, 0), for_loop=False)
        return raised(gather.wait_for(0, None))

    def read(self, cand: Candidate, settings: Settings, job: reader_process.Job) -> Any:
        """job(cand, settings) in a reader, waiting for it: a command's own read
        (actions/reads.py), under a read's time limit and tries, as evaluate."""
        gather = Gather(1)
        self._read(cand, settings, functools.partial(gather.put, 0), for_loop=False, job=job)
        result = gather.wait_for(0, None)
        if isinstance(result, BaseException):
            raise result
        return result

    def materialise(self, cand: Candidate, bundle: Bundle, work_dir: Path,
                    settings: Settings) -> Bundle:
        """convert.materialise_bundle in a reader, waiting for it (for a delivery worker):
        the claimed bundle (`cand` where it lies now) with its images converted and
        written into work_dir. Handed to a child at once, as a check is, and like one
        without a time limit (the same conversion ran within it before the claim; a
        slow share is not hostile). Raises the InputError or OSError of the conversion,
        or ReaderFailed: a reader died under it each time, or the daemon is stopping."""
        gather = Gather(1)
        self._route(Call(cand, settings, functools.partial(gather.put, 0), bundle, TRIES,
                         work_dir=work_dir))
        return raised(gather.wait_for(0, None))
