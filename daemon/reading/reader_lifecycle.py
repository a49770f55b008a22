"""The reader processes started, fitted to a reload's settings and stopped: how many
(`workers_for`), how long new ones get to load (`START_WAIT`, `RELOAD_WAIT`) before they
are taken for hung, what is said when they cannot start (reading then goes on on threads
of this process), started once more at a reload after they were given up, and at a stop
every call not answered yet answered. A part of `readers.Readers` (a mixin: it shares
the pool, the threads and their lock; the calls are routed by `Readers._route`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.configuration.config import LogConfig, Settings
from daemon.configuration.config_readers import needs_engine
from daemon.errors import ConfigError, ReaderStopped, describe
from daemon.reading import reader_process
from daemon.reading.reader_pool import Call, ChildLate, ChildUnavailable, Pool, Restarts
from daemon.reading.reader_turns import STOPPING, ReadTurns

# Seconds new reader processes get to load (the rules: some 2.5 s each, 5-7 s for 4 on 2
# busy cores), then they are taken for hung (stopped, loading from a mount that hangs, a
# host swapping), ended, and reading goes on as where no child can start. At a start,
# under systemd's default TimeoutStartSec= (90 s), so that outboxd says why itself; at a
# reload, which holds up the loop meanwhile (no bundle taken; WATCHDOG=1 is sent by
# `tick`), a third of WatchdogSec=60 as shipped.
START_WAIT = 60.0
RELOAD_WAIT = 20.0
LATE_FIX = ("stopped: someone sent them SIGSTOP (a debugger, a script); waiting on a "
            "disk or a mount: check whether the Python installation or the state dir's "
            "einvoice/ folder is on a share whose server does not answer (`mount`, "
            "`dmesg`); running or sleeping: the host is short of CPU or memory (`free`, "
            "`vmstat 1`: swap); then reload again (systemctl reload outboxd)")
AGAIN = ("once what the error says is mended, reload outboxd (systemctl reload outboxd): "
         "it starts the reader processes again")


def workers_for(settings: Settings) -> int:
    """How many reader processes: the setting, or min(2, CPUs) for "auto"; 0 = none."""
    n = settings.service.reader_processes
    return min(2, os.cpu_count() or 1) if n == "auto" else n

class Lifecycle:
    """Start, reload and stop of `readers.Readers`' children (or its threads)."""

    cache_dir: Path | None
    _fork: bool
    log: Any
    _lock: threading.Lock
    _pool: Pool | None
    _retired: list[Pool]
    _shape: tuple[int, bool]
    _threads: ThreadPoolExecutor | None
    _stopping: bool
    _ctx: Any
    _restarts: Restarts
    _turns: ReadTurns

    if TYPE_CHECKING:
        # The readers' (readers.py): declared for mypy only, so that no stand-in here
        # can come before it in the readers' bases.
        def _route(self, call: Call) -> None: ...

    def configure(self, settings: Settings, engine: bool | None = None, reload: bool = False,
                  tick: Callable[[], None] | None = None, every: float | None = None
                  ) -> None:
        """Fit the workers to these settings: at start, and again on SIGHUP (`reload`:
        new children get RELOAD_WAIT, not START_WAIT, and `tick` is called at once and
        then every `every` seconds, a second at most, while they load). `engine`: load
        the e-invoice engine (default: if the settings need it; a command may not).

        ConfigError when the engine the settings need cannot load (the caller keeps
        its old settings, or does not start); a missing or hung child is no error.
        """
        workers = workers_for(settings)
        engine = needs_engine(settings) if engine is None else engine
        if reload:  # perhaps after the fix: a read here tries the engine once more
            reader_process.forget_failed_load()
        with self._lock:
            shape, pool = self._shape, self._pool
            running = pool is not None or self._threads is not None
        if running and shape[0] == workers and (shape[1] or not engine):
            if reload and workers > 0 and (pool is None or pool.short):  # try once more
                self._start_again(workers, engine, settings.log, tick, every)
            return
        if workers > 0:
            try:
                pool = self._start_pool(workers, engine, settings.log,
                                        RELOAD_WAIT if reload else START_WAIT, tick, every)
            except ChildUnavailable as exc:
                with self._lock:
                    kept = self._pool if self._shape[1] or not engine else None
                fix = {"fix": LATE_FIX} if isinstance(exc, ChildLate) else {}
                if kept is not None:
                    # A reload: the children running now (with the rules, if these need
                    # them) still work, and beat threads of this process, whose memory
                    # a reader's conversions would grow; the next reload tries again.
                    self.log.warning(f"reader processes not changed: {exc.why}; the ones "
                                     "running go on", error=str(exc),
                                     running=len(kept.pids()), **fix)
                    return
                self.log.warning("reading and pre-flight run in the daemon's own process: "
                                 f"{exc.why}", error=str(exc), **fix)
            else:
                self._swap(pool, (workers, engine))
                return
        if engine:
            # ConfigError: a broken install stops the start (a reload: keeps the old settings)
            reader_process.load_engine(self.cache_dir)
        with self._lock:
            if self._threads is None:
                self._threads = _thread_pool()
        self._swap(None, (0, engine))

    def _start_again(self, workers: int, engine: bool, log: LogConfig,
                     tick: Callable[[], None] | None, every: float | None) -> None:
        """A reload with the same settings, the readers given up (reading here) or left
        short (`Pool.short`): a whole pool once more, perhaps after the fix. Failing,
        reading stays as it is, said in one line; the reload is not refused for it."""
        try:
            pool = self._start_pool(workers, engine, log, RELOAD_WAIT, tick, every)
        except (ChildUnavailable, ConfigError) as exc:
            left = len(kept.pids()) if (kept := self._pool) is not None else 0
            self.log.error("reader processes cannot be started again; " + (
                f"{left} running read on" if left else "reading in the daemon's own process"),
                error=str(exc), fix=LATE_FIX if isinstance(exc, ChildLate) else AGAIN)
            return
        self._swap(pool, (workers, engine))
        self.log.info("reader processes started again", processes=workers)

    def _swap(self, pool: Pool | None, shape: tuple[int, bool]) -> None:
        with self._lock:
            old, self._pool, self._shape = self._pool, pool, shape
            self._retired = [p for p in self._retired if not p.ended]
            if old is not None:
                self._retired.append(old)
        if old is not None:
            old.retire()  # its calls are still answered, then its children exit

    def _start_pool(self, workers: int, engine: bool, log: LogConfig, wait: float,
                    tick: Callable[[], None] | None, every: float | None) -> Pool:
        """Start `workers` children and wait until each has loaded the engine (`wait`
        seconds in all)."""
        exe = multiprocessing.spawn.get_executable()
        if exe is None or not os.access(exe, os.X_OK):
            raise ChildUnavailable(f"this user cannot run {os.fsdecode(exe or '?')}")
        try:
            if self._ctx is None:
                self._ctx = multiprocessing.get_context("spawn")  # threads here: never fork
            pool = Pool(self._ctx, workers, engine, self.cache_dir, log, reader_process.unpack,
                        self._restarts, self._route, self._gave_up, fork=self._fork)
        except OSError as exc:
            raise ChildUnavailable(describe(exc)) from None
        pool.start(wait, tick, every)  # ChildUnavailable (ChildLate), or ConfigError: no engine
        return pool

    def _gave_up(self, pool: Pool, why: str) -> None:
        """The pool's children keep dying, or cannot be started again: threads here."""
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
            self._retired.append(pool)
            self._threads = self._threads or _thread_pool()
        self.log.error("reader processes cannot be started again; reading in the daemon's "
                       "own process", error=why, fix=AGAIN)

    def stop(self) -> None:
        """The children exit (a call under way is given STOP_GRACE, then killed); every
        call not answered yet is answered ReaderFailed."""
        with self._lock:
            self._stopping = True
            pools = [p for p in (self._pool, *self._retired) if p is not None]
            self._pool, self._retired = None, []
            threads, self._threads = self._threads, None
            waiting = self._turns.stop()
        for call in waiting:
            call.done(ReaderStopped(STOPPING))
        for pool in pools:
            for call in pool.stop():
                call.done(ReaderStopped(STOPPING))
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)


def _thread_pool() -> ThreadPoolExecutor:
    """Where reads run in this process: no child can, or reader_processes = 0."""
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="read")
