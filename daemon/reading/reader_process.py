"""What runs inside a reader process (reader_pool.py starts them): the engine loaded
once and warmed up, and Pillow's plugins loaded, before the "ready" message, the
settings unpickled once per version, one job per call (`run`: `finish.evaluate`, the
check by hashes after a claim, or a claimed bundle's images converted into its work
folder), and every outcome packed so that it pickles (`pack`; `unpack`, in the daemon,
reverses it). Nothing here runs in the daemon's own process but `run` (the thread
fallback, with `load_engine` and, at a reload, `forget_failed_load`), `pack` and `unpack`.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from daemon import GROUP_SIGNALS, errors, logs
from daemon.bundle import Bundle
from daemon.configuration.config import LogConfig, Settings
from daemon.configuration.config_readers import needs_engine
from daemon.errors import ConfigError, InputError, OutboxdError, ReaderFailed, in_words
from daemon.fs.fdnames import shown_name
from daemon.reading import reader_wire
from daemon.watching.scan import Candidate

Job = Callable[[Candidate, Settings], Any]  # see reader_child.Call.job


_cache_dir: Path | None = None
_load_error: str | None = None
_settings: tuple[int, Settings] | None = None


def main(conn: Connection, cache_dir: str | None, engine: bool, log: LogConfig) -> None:
    """A reader process: tell the daemon it is ready (or why the engine did not load),
    then answer calls in order until the daemon closes its end of the pipe."""
    global _cache_dir, _load_error, _kept
    # Ctrl-C, a closed terminal and a stop sent to the whole process group (or cgroup)
    # reach the readers too: the daemon decides (stop, reload) and stops them itself.
    # Blocked since the spawn (see reader_child.signals_blocked).
    for sig in GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    # Requests are taken off the pipe at once, by a thread of their own: the daemon's
    # writes never wait for a call to end, and the end of the pipe (the daemon stopped
    # us, or died, even by SIGKILL) ends this process at once, mid-call or not.
    threading.Thread(target=_take, args=(conn, inbox), daemon=True, name="take").start()
    logs.configure(log)  # pypdf's and Pillow's chatter in the daemon's format, not bare lines
    _cache_dir = Path(cache_dir) if cache_dir else None  # None: a command's, which writes none
    import daemon.delivery.finish  # noqa: F401 - imported once here, not in the first bundle's time
    from daemon.validation.imageprobe import warm_up
    try:
        warm_up()
    except Exception as exc:  # noqa: BLE001 - only a warm-up: each image then loads what it needs
        logs.get().warning("reader could not load Pillow's plugins ahead", error=in_words(exc))
    if engine:
        from daemon.einvoice import load
        from daemon.einvoice.engine import take_saxon_reports
        take_saxon_reports()  # one rule check at a time here: fd 2 may be taken aside
        try:
            load(_cache_dir)
        except OutboxdError as exc:
            _load_error = str(exc)
        else:
            _warm_up()
    # What the imports and the engine made lives as long as this process: frozen out of
    # the garbage collector's passes, which a spawned reader had off until now (daemon.
    # _set_up_a_spawned_reader): its ~130 passes during them cost ~0.1 s of each start.
    gc.freeze()
    gc.enable()
    _kept = _resident()  # what a big read is measured from
    _send(conn, (0, _load_error))
    while True:
        version, blob, calls = reader_wire.loads(inbox.get())
        for call_id, cand, known, work_dir, job in calls:  # each answered once done
            result = call(cand, version, blob, known, work_dir, job)
            _send(conn, (call_id, result))
            if (job is None and _converted(result, work_dir)) or _grown():
                _give_back_memory()


def _take(conn: Connection, inbox: queue.SimpleQueue[bytes]) -> None:
    try:
        while True:
            inbox.put(conn.recv_bytes())
    except (EOFError, OSError):
        pass
    os._exit(0)


def _converted(result: tuple[Any, ...], work_dir: Path | None) -> bool:
    """The call decoded an image to convert it: validation that made a PDF of one, or a
    claimed bundle's conversions written at delivery (a failed one gives its memory
    back at the next)."""
    if work_dir is not None:
        return True
    return result[0] == "ok" and any(a.converted for a in result[1].attachments)


# glibc keeps the heap a large image was decoded in (some 300 MB for 9000 × 9000
# pixels) for the process's life, and a reader lives as long as the daemon:
# malloc_trim hands it back. Not glibc (musl): nothing to call, nothing kept as long.
_malloc_trim: Any = getattr(ctypes.CDLL(None), "malloc_trim", None)


def _give_back_memory() -> None:
    global _kept
    if _malloc_trim is not None:
        _malloc_trim(0)
        _kept = _resident()


# The same for any big read: a batch file of thousands of invoices (its XML trees) left
# a reader 270 MB larger for good. Trimmed once the reader holds this much more than
# after its last trim (~10 ms then; asked in microseconds after every call).
_GROWTH = 64 << 20
_kept = 0  # bytes resident once ready, then after the last trim
_PAGE = os.sysconf("SC_PAGE_SIZE")
# statm is read after every call, twice a bundle in a burst: through a descriptor held
# open (a pread, ~2 µs) instead of an open, read and close each time (~22 µs).
_statm: int | None = None


def _resident() -> int:
    global _statm
    try:
        if _statm is None:
            _statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        return int(os.pread(_statm, 128, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0  # no /proc: never trimmed for growth


def _grown() -> bool:
    return _resident() > _kept + _GROWTH


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    try:
        data = reader_wire.dumps(message)
    except Exception as exc:  # noqa: BLE001 - a result that does not pickle: a bug, said so
        data = reader_wire.dumps((message[0], pack(exc)))
    try:
        conn.send_bytes(data)
    except OSError:
        os._exit(0)  # the daemon is gone


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


def call(cand: Candidate, version: int, blob: bytes | None, known: Bundle | None = None,
         work_dir: Path | None = None, job: Job | None = None) -> tuple[Any, ...]:
    """One bundle: ("ok", Bundle), or what pack() makes of the exception. With
    `known`, only match.assemble by hashes (the check after a claim); with `work_dir`
    too, its converted images written there (see `run`). With `job`: ("ok", what
    job(cand, settings) returned), a command's own read (readers.Readers.read)."""
    global _settings
    try:
        if _settings is None or _settings[0] != version:
            if blob is None:  # the daemon sends each version to each reader once
                raise RuntimeError(f"settings version {version} never reached this reader")
            settings = pickle.loads(blob)
            _settings = (version, settings)
            logs.configure(settings.log)  # pypdf's and Pillow's chatter as in the daemon
        settings = _settings[1]
        if job is not None:
            return ("ok", job(cand, settings))
        return ("ok", run(cand, settings, known, Path(_cache_dir) if _cache_dir else None,
                          work_dir))
    except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the daemon
        return pack(exc)


def run(cand: Candidate, settings: Settings, known: Bundle | None,
        cache_dir: Path | None, work_dir: Path | None = None) -> Bundle:
    """The one job of a reader, wherever it runs: read, match, validate and pre-flight
    (finish.evaluate), or with `known` only match again by hashes (after a claim), or
    with `known` and `work_dir` write its images converted to PDF into that claimed
    work folder (convert.materialise_bundle, at delivery): decoding an image costs what
    reading it did, and that is what the daemon's own process must never spend."""
    if known is not None and work_dir is not None:
        from daemon.validation.convert import materialise_bundle
        return materialise_bundle(known, work_dir, settings.validation.max_image_pixels,
                                  settings.outbox.path)
    if known is not None:
        from daemon.reading.match import assemble
        return assemble(cand, settings, known=known)
    if needs_engine(settings):
        load_engine(cache_dir)  # loaded at start; this only matters after a reload turned it on
    from daemon.delivery.finish import evaluate
    return evaluate(cand, settings)


def load_engine(cache_dir: Path | None) -> None:
    """The e-invoice engine of this process, or the ConfigError of its failed load. A
    failed load is remembered until `forget_failed_load` (a reload; or a restart, the
    documented fix): with a damaged install each read in the daemon's own process (the
    readers gone) tried it again — an import, with a damaged compile cache a compile of
    seconds — for the same error."""
    global _load_error
    if _load_error is not None:
        raise ConfigError(_load_error)
    from daemon.einvoice import load
    try:
        load(cache_dir)
    except ConfigError as exc:
        _load_error = str(exc)
        raise


def forget_failed_load() -> None:
    """The next read tries to load the engine again (a reload: perhaps after the fix)."""
    global _load_error
    _load_error = None


def pack(exc: BaseException) -> tuple[Any, ...]:
    """An exception as plain data that pickles (see unpack)."""
    if isinstance(exc, InputError):
        return ("input", type(exc).__name__, exc.code, exc.file, exc.message)
    if isinstance(exc, ConfigError):  # the engine cannot load: its cause and fix, no traceback
        return ("config", str(exc))
    if isinstance(exc, OSError):
        if exc.strerror is not None and isinstance(exc.filename, (str, bytes, os.PathLike)) \
                and (named := shown_name(exc.filename)) != os.fsdecode(exc.filename):
            # /proc/self/fd/N/… of a folder this process held (a conversion's write):
            # the daemon cannot name N's folder. OSError() picks the kind by errno.
            exc = OSError(exc.errno, exc.strerror, named)
        try:
            pickle.loads(pickle.dumps(exc))
            return ("os", exc)  # its kind matters: the pipeline reports it as unreadable
        except Exception:  # noqa: BLE001 - a library's subclass with its own __init__
            return ("os", OSError(exc.errno, str(exc), exc.filename))
    return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())


def unpack(out: tuple[Any, ...]) -> Bundle | BaseException:
    """What a child sent back (`pack`, or a result), as the daemon hands it on."""
    kind = out[0]
    if kind == "ok":
        bundle: Bundle = out[1]
        return bundle
    if kind == "input":
        cls = getattr(errors, out[1], InputError)
        if not (isinstance(cls, type) and issubclass(cls, InputError)):
            cls = InputError
        return cls(*out[2:])
    if kind == "config":
        return ConfigError(out[1])
    if kind == "os":
        os_error: OSError = out[1]
        return os_error
    return ReaderFailed(f"{out[1]} (in a reader process)\n{out[2]}")
