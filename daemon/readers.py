"""The validation workers: read, match, validate and pre-flight a settled bundle in
child processes (`finish.evaluate`, one call per settled version).

Why processes: reading a bundle (pypdf, Pillow, hashing) costs milliseconds
of CPU, pre-flight ~12 ms per invoice; on threads of the daemon that time
holds its one interpreter lock, in series with the loop and the deliveries.
N spawned children (`[service] reader_processes`, "auto" = min(2, CPUs)) run
it beside them; each loads the e-invoice engine once at start (compile cache
in the state dir), so pre-flight is part of the same call.

Across the boundary: the Candidate, the Settings (pickled once per version,
unpickled once per version in a child: a reload reaches it with the next
call), and back a Bundle or an error. Exceptions with their own ``__init__``
do not survive pickling: `reader_process.pack` / `_unpack` are the one place
errors cross.

Never losing a bundle: where no child can start (no POSIX semaphores, an
interpreter this user cannot execute), reads run on threads here, with one
warning; a child that dies under a call is
replaced and the call repeated (up to `TRIES`, then `ReaderFailed`: logged,
read again when the bundle changes, never an input error); when the daemon
dies (even SIGKILL) its children see the end of a pipe only it writes to.
Signals sent to the whole process group (Ctrl-C, hangup, killpg SIGTERM) are
ignored by the children: the daemon decides, and stops them itself.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.spawn
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from daemon import errors, logs, reader_process
from daemon.bundle import Bundle
from daemon.config import LogConfig, Settings
from daemon.errors import ConfigError, InputError, ReaderFailed
from daemon.reader_process import GROUP_SIGNALS, needs_engine
from daemon.scan import Candidate

__all__ = ["ChildUnavailable", "Readers", "needs_engine", "workers_for"]

Result = Bundle | BaseException
Done = Callable[[Result], None]
CHECK_WAIT = 5.0  # seconds the loop waits for the readers' checks after a claim
READS_AHEAD = 2  # reads handed to the pool at once, per worker (the rest wait in order)
TRIES = 3  # calls of one bundle that may meet a dead child before it is given up
RESTARTS_IN_ROW = 5  # pools started again without one result between: read here instead
STOP_GRACE = 5.0  # seconds for the children to finish their call at stop, then killed


class ChildUnavailable(Exception):
    """No reader process can be started in this environment."""


def workers_for(settings: Settings) -> int:
    """How many reader processes: the setting, or min(2, CPUs) for "auto"; 0 = none."""
    n = settings.service.reader_processes
    return min(2, os.cpu_count() or 1) if n == "auto" else n


# -- in the daemon --------------------------------------------------------------------------
def _unpack(out: tuple[Any, ...]) -> Result:
    kind = out[0]
    if kind == "ok":
        bundle: Bundle = out[1]
        return bundle
    if kind == "input":
        cls = getattr(errors, out[1], InputError)
        if not (isinstance(cls, type) and issubclass(cls, InputError)):
            cls = InputError
        return cls(*out[2:])
    if kind == "os":
        os_error: OSError = out[1]
        return os_error
    return ReaderFailed(f"{out[1]} (in a reader process)\n{out[2]}")


class Readers:
    """evaluate() off the daemon's interpreter lock: in child processes, or on threads
    here where no child can run. `done` is called once per submit, on some thread."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.log = logs.get()
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._shape: tuple[int, bool] = (0, False)  # workers, engine loaded
        self._threads: ThreadPoolExecutor | None = None
        self._stopping = False
        self._ctx: Any = None
        self._parent_r: Any = None
        self._parent_w: Any = None
        self._encoded: tuple[Settings, int, bytes] | None = None
        self.restarts = 0  # pools started again after a child died
        self._in_row = 0  # of those, since the last result
        # Reads handed to the pool at once are few (READS_AHEAD a worker); the
        # rest wait here, so that a check after a claim (submitted with `known`)
        # is not queued behind a whole burst of reads.
        self._reads_out = 0
        self._reads_waiting: collections.deque[tuple[Candidate, Settings, Done]] = \
            collections.deque()

    @property
    def processes(self) -> bool:
        with self._lock:
            return self._pool is not None

    def pids(self) -> list[int]:
        """The reader processes now running (for tests and diagnostics)."""
        with self._lock:
            pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return [p.pid for p in list(procs.values()) if p.pid is not None]

    # -- start, reload, stop ------------------------------------------------------
    def configure(self, settings: Settings) -> None:
        """Fit the workers to these settings: at start, and again on SIGHUP.

        ConfigError when the engine the settings need cannot load (the caller keeps
        its old settings, or does not start); a missing child is no error.
        """
        workers, engine = workers_for(settings), needs_engine(settings)
        with self._lock:
            shape, running = self._shape, self._pool is not None or self._threads is not None
        if running and shape[0] == workers and (shape[1] or not engine):
            return
        if workers > 0:
            try:
                pool = self._start_pool(workers, engine, settings.log)
            except ChildUnavailable as exc:
                self.log.warning("reading and pre-flight run in the daemon's own process: no "
                                 "child process can be started here", error=str(exc))
            else:
                self._swap(pool, (workers, engine))
                return
        if engine:
            from daemon.einvoice import load
            load(self.cache_dir)  # ConfigError: a broken install stops the start
        with self._lock:
            if self._threads is None:
                self._threads = _thread_pool()
        self._swap(None, (0, engine))

    def _swap(self, pool: ProcessPoolExecutor | None, shape: tuple[int, bool]) -> None:
        with self._lock:
            old, self._pool, self._shape = self._pool, pool, shape
        if old is not None:
            old.shutdown(wait=False)  # calls already queued there still finish

    def _context(self) -> Any:
        if self._ctx is None:
            self._ctx = multiprocessing.get_context("spawn")  # threads here: never fork
        return self._ctx

    def _new_pool(self, workers: int, engine: bool, log: LogConfig,
                  barrier: Any) -> ProcessPoolExecutor:
        if self._parent_w is None:
            self._parent_r, self._parent_w = self._context().Pipe(duplex=False)
        return ProcessPoolExecutor(max_workers=workers, mp_context=self._context(),
                                   initializer=reader_process.start,
                                   initargs=(str(self.cache_dir), engine, log, self._parent_r,
                                             barrier))

    def _start_pool(self, workers: int, engine: bool, log: LogConfig) -> ProcessPoolExecutor:
        """Start `workers` children and wait until each has loaded the engine."""
        exe = multiprocessing.spawn.get_executable()
        if exe is None or not os.access(exe, os.X_OK):
            # Said before any semaphore exists: multiprocessing's resource tracker would
            # be started with this interpreter too, die, and litter the log at exit.
            raise ChildUnavailable(f"this user cannot run {os.fsdecode(exe or '?')}")
        pool = None
        try:
            with _signals_blocked():
                barrier = self._context().Barrier(workers)
                pool = self._new_pool(workers, engine, log, barrier)
                # One call per child (each waits at the barrier): every child is up
                # before READY, and the bench's clock does not time their start.
                calls = [pool.submit(reader_process.ready) for _ in range(workers)]
            problems = [c.result() for c in calls]
        except (OSError, BrokenProcessPool) as exc:
            if pool is not None:
                _stop_pool(pool)
            raise ChildUnavailable(f"{type(exc).__name__}: {exc}") from None
        problem = next((p for p in problems if p and "another reader" not in p), None) or \
            next((p for p in problems if p), None)
        if problem:
            _stop_pool(pool)
            raise ConfigError(problem)
        return pool

    def stop(self) -> None:
        """The children exit (a call under way is given STOP_GRACE, then killed)."""
        with self._lock:
            self._stopping = True
            pool, self._pool = self._pool, None
            threads, self._threads = self._threads, None
            waiting, self._reads_waiting = list(self._reads_waiting), collections.deque()
        for _, _, done in waiting:
            done(ReaderFailed("the daemon is stopping"))
        if pool is not None:
            _stop_pool(pool)
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)

    # -- calls ----------------------------------------------------------------------
    def _evaluate_here(self, cand: Candidate, settings: Settings,
                       known: Bundle | None = None) -> Result:
        """On a thread of this process (no child can run, or a check not answered)."""
        try:
            return reader_process.run(cand, settings, known, self.cache_dir)
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
        """Evaluate in a reader; `done(bundle or exception)` once, from another thread.
        With `known`: only match it again by hashes (match.assemble), as after a
        claim — handed to the pool at once, ahead of reads still waiting."""
        if known is not None:
            self._submit(cand, settings, done, TRIES, known)
            return
        with self._lock:
            stopping = self._stopping
            if not stopping and self._reads_out >= READS_AHEAD * max(2, self._shape[0]):
                self._reads_waiting.append((cand, settings, done))
                return
            if not stopping:
                self._reads_out += 1
        if stopping:
            done(ReaderFailed("the daemon is stopping"))
            return
        self._submit(cand, settings, self._read_done(done), TRIES)

    def _read_done(self, done: Done) -> Done:
        def finished(result: Result) -> None:
            try:
                done(result)
            finally:
                self._next_read()
        return finished

    def _next_read(self) -> None:
        """A read finished: start the next waiting one in its slot, or free the slot
        (stopping: stop() has answered the waiting ones)."""
        with self._lock:
            if self._stopping or not self._reads_waiting:
                self._reads_out -= 1
                return
            cand, settings, then = self._reads_waiting.popleft()
        self._submit(cand, settings, self._read_done(then), TRIES)

    def _submit(self, cand: Candidate, settings: Settings, done: Done, tries: int,
                known: Bundle | None = None) -> None:
        with self._lock:
            pool, threads, stopping = self._pool, self._threads, self._stopping
        if stopping:
            done(ReaderFailed("the daemon is stopping"))
            return
        if pool is None:
            if threads is None:  # configure() never ran: a caller's mistake, said plainly
                done(ReaderFailed("the readers were not started"))
                return
            try:
                here = threads.submit(self._evaluate_here, cand, settings, known)
            except RuntimeError:  # shut down by stop() just now
                done(ReaderFailed("the daemon is stopping"))
                return
            # A call that stop() cancels still answers: a delivery worker may wait on it.
            here.add_done_callback(lambda f: done(
                ReaderFailed("the daemon is stopping") if f.cancelled() else f.result()))
            return
        version, blob = self._settings_blob(settings)
        try:
            with _signals_blocked():  # a restarted pool spawns its children here
                fut = pool.submit(reader_process.call, cand, version, blob, known)
        except (BrokenProcessPool, RuntimeError):  # broken, or retired by a reload just now
            self._died(pool, cand, settings, done, tries, known)
            return
        fut.add_done_callback(lambda f: self._finished(f, pool, cand, settings, done, tries,
                                                       known))

    def _finished(self, fut: Future[tuple[Any, ...]], pool: ProcessPoolExecutor,
                  cand: Candidate, settings: Settings, done: Done, tries: int,
                  known: Bundle | None) -> None:
        if fut.cancelled():
            done(ReaderFailed("the daemon is stopping"))
            return
        exc = fut.exception()
        if isinstance(exc, BrokenProcessPool):
            self._died(pool, cand, settings, done, tries, known)
        elif exc is not None:
            done(exc)  # e.g. a result that did not pickle: a bug, reported as one
        else:
            self._in_row = 0
            done(_unpack(fut.result()))

    def _died(self, pool: ProcessPoolExecutor, cand: Candidate, settings: Settings,
              done: Done, tries: int, known: Bundle | None = None) -> None:
        """A reader process died under a call (or the pool was retired): start the pool
        again, once for all the calls it took along, and repeat this one there."""
        with self._lock:
            if self._pool is pool and not self._stopping:
                workers, engine = self._shape
                self._in_row += 1
                try:
                    if self._in_row > RESTARTS_IN_ROW:
                        raise OSError(f"{self._in_row - 1} restarts without one result")
                    self._pool = self._new_pool(workers, engine, settings.log, None)
                except OSError as exc:
                    self.log.error("reader processes cannot be started again; reading in "
                                   "the daemon's own process", error=str(exc))
                    self._pool = None
                    self._threads = self._threads or _thread_pool()
                else:
                    self.restarts += 1
                    self.log.warning("a reader process died; started again",
                                     file=cand.invoice.name, restarts=self.restarts)
                threading.Thread(target=_stop_pool, args=(pool,), daemon=True).start()
        if tries <= 1:
            done(ReaderFailed(f"{cand.invoice.name}: a reader process died {TRIES} times "
                              "while reading it (out of memory?); it is read again when it "
                              "changes"))
            return
        self._submit(cand, settings, done, tries - 1, known)

    def assemble_many(self, jobs: list[tuple[Candidate, Bundle]], settings: Settings
                      ) -> list[Result]:
        """match.assemble(cand, known=bundle) for each, in the readers side by side,
        waiting for all: the check by hashes after a claim, off this process's lock."""
        boxes: list[Future[Result]] = []
        for cand, known in jobs:
            box: Future[Result] = Future()
            self.submit(cand, settings, box.set_result, known)
            boxes.append(box)
        # The loop waits here: never longer than CHECK_WAIT (readers busy with long
        # pre-flights, a reader stuck in a hostile PDF); what is not back by then, or
        # came back with an answer not about the files (a reader died, stopping), is
        # checked here, in this thread.
        deadline = time.monotonic() + CHECK_WAIT
        out: list[Result] = []
        for box, (cand, known) in zip(boxes, jobs, strict=True):
            try:
                result = box.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                result = ReaderFailed("no answer in time")
            if isinstance(result, BaseException) and not isinstance(result, InputError | OSError):
                result = self._evaluate_here(cand, settings, known)
            out.append(result)
        return out

    def evaluate(self, cand: Candidate, settings: Settings) -> Bundle:
        """finish.evaluate in a reader, waiting for it (for a delivery worker)."""
        box: Future[Result] = Future()
        self.submit(cand, settings, box.set_result)
        result = box.result()
        if isinstance(result, BaseException):
            raise result
        return result


def _thread_pool() -> ThreadPoolExecutor:
    """Where reads run in this process: no child can, or reader_processes = 0."""
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="read")


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """GROUP_SIGNALS blocked on this thread: processes spawned meanwhile inherit the
    mask through exec, so a group-wide signal cannot end a reader before its start()
    ignores it, nor multiprocessing's resource tracker (which ignores SIGINT and SIGTERM
    itself, but dies of SIGHUP and is relaunched without its records). Here a blocked
    signal only waits: it is handled when the block ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down and make sure its children are gone: a call under way may end
    within STOP_GRACE (it only reads), then the child is killed."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + STOP_GRACE
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(STOP_GRACE)
