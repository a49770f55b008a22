"""Pre-flight in a process of its own, for the daemon.

Saxon and lxml take ~12 ms of CPU per invoice. In the daemon's own process
that time holds its one interpreter lock, so pre-flight ran in series with
the loop, the reads and the deliveries (a burst of 300 took 1.7× as long as
without it). In a child process the rules run on the other core, beside
everything else. The child loads the engine once (with the compile cache);
`outboxd check` and the embedded-document checks keep the in-process engine.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from daemon.einvoice.engine import load
from daemon.einvoice.preflight import Mode, Result, read_and_preflight
from daemon.errors import ConfigError, InputError, OutboxdError

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()
_load_error: str | None = None  # in the child: why the engine could not load

# What the child sends back: a Result, or the parts of an InputError (exception
# classes with their own __init__ do not survive pickling).
Outcome = tuple[str, Result | None, tuple[str, str, str] | None]


def _init(cache_dir: str | None) -> None:
    global _load_error
    try:
        load(Path(cache_dir) if cache_dir else None)
    except OutboxdError as exc:
        _load_error = str(exc)


def _ready() -> str | None:
    return _load_error


def _run(path: str, rel: str, mode: Mode) -> Outcome:
    try:
        return "ok", read_and_preflight(Path(path), rel, mode), None
    except InputError as exc:
        return "input", None, (exc.code, exc.file, exc.message)


class ChildUnavailable(Exception):
    """No pre-flight process can be started in this environment."""


def start(cache_dir: Path | None, workers: int = 1) -> None:
    """Start the child(ren) and wait until the engine is loaded there; ConfigError
    (exit 2 at start) when it cannot load; ChildUnavailable when no child can run."""
    global _pool
    try:
        pool = ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init,
                                   initargs=(str(cache_dir) if cache_dir else None,))
        problem = pool.submit(_ready).result()
    except (OSError, BrokenProcessPool) as exc:
        # No child process here (a sandbox without POSIX semaphores, an interpreter
        # a service user cannot start again): the caller checks in its own process.
        raise ChildUnavailable(f"{type(exc).__name__}: {exc}") from None
    if problem:
        pool.shutdown(wait=False, cancel_futures=True)
        raise ConfigError(problem)
    with _lock:
        _pool = pool


def running() -> bool:
    with _lock:
        return _pool is not None


def stop() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def read_and_preflight_anywhere(path: Path, rel: str, mode: Mode) -> Result:
    """In the child when one runs, else here. InputError as read_and_preflight raises it."""
    with _lock:
        pool = _pool
    if pool is None:
        return read_and_preflight(path, rel, mode)
    try:
        kind, result, error = pool.submit(_run, str(path), rel, mode).result()
    except BrokenProcessPool:
        # The child died (killed, out of memory): check here rather than lose the bundle.
        return read_and_preflight(path, rel, mode)
    if kind == "input":
        assert error is not None
        raise InputError(*error)
    assert result is not None
    return result
