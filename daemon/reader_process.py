"""What runs inside a reader process (readers.py starts them): the engine loaded
once, the settings unpickled once per version, one `finish.evaluate` per call,
and every outcome packed so that it pickles (`pack`; readers._unpack reverses
it). Nothing here runs in the daemon's own process but `needs_engine`.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import traceback
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.bundle import Bundle
from daemon.config import LogConfig, Settings
from daemon.errors import ConfigError, InputError, OutboxdError
from daemon.scan import Candidate

GROUP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
START_TIMEOUT = 600.0  # seconds for every child to load the engine (a busy, slow host)


def needs_engine(settings: Settings) -> bool:
    """Whether evaluate() runs e-invoice rules under these settings (SPEC §2.2, §5.4)."""
    return settings.einvoice.preflight != "off" or settings.delivery.format == "ubl-embedded"


_cache_dir: Path | None = None
_load_error: str | None = None
_barrier: Any = None
_settings: tuple[int, Settings] | None = None


def start(cache_dir: str, engine: bool, log: LogConfig, parent: Any, barrier: Any) -> None:
    """The pool's initializer, once per reader process, before its first call."""
    global _cache_dir, _load_error, _barrier
    # Ctrl-C, a closed terminal and a stop sent to the whole process group (or cgroup)
    # reach the readers too: the daemon decides (stop, reload) and stops them itself,
    # after the call under way. Blocked since the spawn (see _signals_blocked).
    for sig in GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="parent-watch").start()
    logs.configure(log)  # pypdf's and Pillow's chatter in the daemon's format, not bare lines
    _cache_dir, _barrier = Path(cache_dir), barrier
    import daemon.finish  # noqa: F401 - imported once here, not in the first bundle's time
    if engine:
        from daemon.einvoice import load
        try:
            load(_cache_dir)
        except OutboxdError as exc:
            _load_error = str(exc)
        else:
            _warm_up()


def _warm_up() -> None:
    """One pre-flight of the official example, here, on the thread that takes the calls:
    Saxon's first run on a thread costs about twice a later one (its clones and
    document builder are made then), and the first bundle after READY should not pay."""
    from importlib import resources

    from daemon.einvoice import preflight
    try:
        data = resources.files("daemon.actions").joinpath("demo_data/base-example.xml")
        preflight(data.read_bytes(), "base-example.xml")
    except (OSError, OutboxdError):
        pass  # only a warm-up: the first real call then pays, nothing more


def _exit_with_parent(parent: Any) -> None:
    """Block on a pipe only the daemon writes to: end of file means it is gone."""
    try:
        parent.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(0)


def ready() -> str | None:
    """At start, one call per child: why the engine did not load, or None once every
    child has loaded it (the barrier keeps each child to one of these calls)."""
    if _load_error is not None:
        _barrier.abort()
        return _load_error
    try:
        _barrier.wait(START_TIMEOUT)
    except threading.BrokenBarrierError:
        return "another reader process could not start"
    return None


def call(cand: Candidate, version: int, blob: bytes, known: Bundle | None = None
         ) -> tuple[Any, ...]:
    """One bundle: ("ok", Bundle), or what pack() makes of the exception. With
    `known`, only match.assemble by hashes (the check after a claim)."""
    global _settings
    try:
        if _settings is None or _settings[0] != version:
            settings = pickle.loads(blob)
            _settings = (version, settings)
            logs.configure(settings.log)  # pypdf's and Pillow's chatter as in the daemon
        settings = _settings[1]
        if known is None and needs_engine(settings) and _load_error is not None:
            raise ConfigError(_load_error)
        return ("ok", run(cand, settings, known, Path(_cache_dir) if _cache_dir else None))
    except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the daemon
        return pack(exc)


def run(cand: Candidate, settings: Settings, known: Bundle | None,
        cache_dir: Path | None) -> Bundle:
    """The one job of a reader, wherever it runs: read, match, validate and pre-flight
    (finish.evaluate), or with `known` only match again by hashes (after a claim)."""
    if known is not None:
        from daemon.match import assemble
        return assemble(cand, settings, known=known)
    if needs_engine(settings):
        from daemon.einvoice import load
        load(cache_dir)  # loaded at start; this only matters after a reload turned it on
    from daemon.finish import evaluate
    return evaluate(cand, settings)


def pack(exc: BaseException) -> tuple[Any, ...]:
    """An exception as plain data that pickles (see _unpack)."""
    if isinstance(exc, InputError):
        return ("input", type(exc).__name__, exc.code, exc.file, exc.message)
    if isinstance(exc, OSError):
        try:
            pickle.loads(pickle.dumps(exc))
            return ("os", exc)  # its kind matters: the pipeline reports it as unreadable
        except Exception:  # noqa: BLE001 - a library's subclass with its own __init__
            return ("os", OSError(exc.errno, str(exc), exc.filename))
    return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
