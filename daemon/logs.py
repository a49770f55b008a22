"""Logging: structlog, JSON lines off a terminal (journald), console lines on one.

One stdlib handler owns the stream. Whatever libraries log through `logging`
(watchdog, httpx, pypdf), Python warnings and uncaught thread exceptions go
through it with structlog's ProcessorFormatter. Our own events are rendered
by structlog directly (`_Line`) and written to the same stream under the same
handler lock: the stdlib round trip (a LogRecord per event, the formatter's
second pass) cost about half of each of our lines, three or four per bundle.
So under JSON logging every line on the stream is one JSON object — a bare
text line from a library would break a log shipper that parses lines — and
one lock keeps lines from different threads whole.

Loggers are bound once and kept (`get()`); a reload (SIGHUP) reaches them
because their processors read the format and level set here last.
"""

from __future__ import annotations

import atexit
import faulthandler
import fcntl
import io
import json
import logging
import os
import secrets
import select
import sys
import threading
import warnings
from contextlib import suppress
from typing import Any, TextIO, cast

import structlog

from daemon.config import LogConfig

_handler: logging.StreamHandler[TextIO] | None = None
_format = "json"  # the format set last ("json" or "console")


def _bundle_first(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Console only: put the invoice file, its ids and the short bundle id right after
    the event, so a person reads one line per bundle event without hunting for keys."""
    parts = []
    if "invoice_file" in event:
        parts.append(str(event.pop("invoice_file")))
    ids = event.pop("invoice_ids", None)
    if ids:
        parts.append("[" + ", ".join(map(str, ids)) + "]")
    bid = event.pop("bundle_id", None)
    if bid:
        parts.append(str(bid)[:12])
    if parts:
        event["event"] = f"{event.get('event', '')}: {' '.join(parts)}"
    return event


def _renderer(fmt: str, stream: TextIO) -> list[Any]:
    if fmt == "json":
        return [structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False)]
    colors = stream.isatty()
    return [_bundle_first, structlog.dev.ConsoleRenderer(colors=colors)]


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    # A thread that dies of an exception (a watchdog emitter, say) prints a
    # bare traceback by default; log it as one event instead.
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    # A dying thread hands the exception itself (exc_value is None only for a hook
    # called by hand), its traceback in __traceback__; True: the one being handled.
    logging.getLogger("outboxd").error(
        "thread died", exc_info=args.exc_value if args.exc_value is not None else True,
        extra={"thread_name": name})


_level = logging.INFO
_render: list[Any] = []  # the renderer chain of the format set last


def _filter(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    if _LEVELS.get(method, logging.INFO) < _level:
        raise structlog.DropEvent
    return event


def _rendered(logger: Any, method: str, event: dict[str, Any]) -> Any:
    out: Any = event
    for step in _render:
        out = step(logger, method, out)
    return out


# journald splits a line longer than its LineMax (48 KiB by default) into pieces, none
# of them JSON. A batch of thousands of invoices made bundle events far longer than that
# with its invoice_ids alone (and a sidecar of thousands of bad files its reasons): a
# list in an event keeps its first items up to this many characters, and says how many
# it leaves out. The lists of one event (invoice_ids, unattached_ids, warnings…) share
# the room. The journal, `outboxd status` and the papers keep every item.
LIST_CHARS = 16_000


def _bounded(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    room = LIST_CHARS
    for key, value in list(event.items()):
        if isinstance(value, list | tuple) and value:
            for n, item in enumerate(value):
                room -= len(item) if isinstance(item, str) else len(repr(item))
                if room < 0 and n > 0:
                    event[key] = list(value[:n])
                    event[f"{key}_omitted"] = len(value) - n
                    break
            room = max(room, 0)
    return event


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
           "critical": logging.CRITICAL, "fatal": logging.CRITICAL}
# One list for the process's life: bound loggers keep a reference to it (and
# structlog.testing.capture_logs swaps its contents in place).
_PROCESSORS: list[Any] = [
    _filter,
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _bounded,
    _rendered,
]


class _Line:
    """structlog's logger for our events: the rendered line onto the handler's stream,
    under the handler's lock (the one library records are written under)."""

    def msg(self, message: str) -> None:
        handler = _handler
        if handler is None:
            return
        handler.acquire()
        try:
            handler.stream.write(message + "\n")
            handler.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: a lost line must not stop the daemon
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = exception = fatal = msg


def _line_factory(*_: Any) -> _Line:
    return _Line()


def configure(cfg: LogConfig | None = None, stream: TextIO | None = None) -> None:
    """Set up logging for this process; called again on SIGHUP with the new [log]."""
    global _handler, _level, _format
    cfg = cfg or LogConfig()
    # After take_native_output: the log's own copy of fd 2, fd 2 itself being a pipe.
    marked = stream is None and _native is None and os.environ.get(LINE_MARK_ENV)
    stream = stream or (_native.out if _native is not None else sys.stderr)
    fmt = cfg.format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if marked and fmt == "json":
        # A reader process's lines, told from a forgery by their mark (LINE_MARK_ENV).
        stream = cast(TextIO, _Marked(stream, marked))
    _format = fmt
    level = getattr(logging, cfg.level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    _level = level
    _render[:] = _renderer(fmt, stream)
    structlog.configure(
        processors=_PROCESSORS,
        # Every level passes here; _filter drops by the level set last.
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=_line_factory,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from other libraries: their logger name says who spoke.
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name,
                           structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_renderer(fmt, stream)],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level)
    _handler = handler
    # pypdf logs "EOF marker not found" and the like for every damaged PDF;
    # validation already reports those files properly.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    # pikepdf (under img2pdf, for convert_images) says "C++ to Python logger bridge
    # initialized" at INFO on import: a line in `outboxd check`'s output and the log
    # that tells nobody anything.
    logging.getLogger("pikepdf").setLevel(max(level, logging.WARNING))
    # httpx logs every request at INFO (its url with any password); our delivery events
    # say more. httpcore logs at DEBUG the headers a receiver sent back, which may echo
    # our token, and h11's errors quoting them: never, whatever [log] level says.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(level, logging.WARNING))
    # captureWarnings(True) does nothing while logging believes it still captures, and a
    # warnings.catch_warnings() around an earlier configure (its exit puts the old
    # showwarning back) would have left warnings printed as bare text. Installed again
    # only when lost: turning it off and on would open a moment of bare text.
    if getattr(warnings.showwarning, "__module__", None) != "logging":
        logging.captureWarnings(False)
        logging.captureWarnings(True)
    # Our lines carry no source location, thread or process fields: skip finding
    # them for every record (the Logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    threading.excepthook = _thread_excepthook


def get(**context: Any) -> Any:
    return structlog.get_logger("outboxd").bind(**context)


def bundle_log(log: Any, invoice_file: str, bundle_id: str | None,
               ids: list[str] | tuple[str, ...]) -> Any:
    """`log` for one bundle's events: every one carries bundle_id, invoice_file and
    invoice_ids."""
    return log.bind(bundle_id=bundle_id, invoice_file=invoice_file, invoice_ids=list(ids))


# --- Output that bypasses logging --------------------------------------------------
# Native code writes to fd 2 itself: SaxonC's report of a dynamic error in a rule (when
# pre-flight runs on the daemon's own threads: reader_processes = 0, or the readers kept
# dying), a C library's message, a library's print() to stdout or sys.stderr. Under
# journald each of those lines would be a bare line among the JSON. So the daemon's
# fds 1 and 2 become one pipe, read by a thread that passes a line already JSON (a
# reader process's own log line: readers inherit fds 1 and 2) as it is, and makes one
# warning event of the other lines of each read; the log itself writes to a copy of
# the old fd 2. Nothing of this runs for the daemon's own events.
GATHER_SECONDS = 0.05
PIPE_BYTES = 1 << 20  # the default ceiling of /proc/sys/fs/pipe-max-size
NATIVE_CHARS = LIST_CHARS  # characters of such output kept in one event
# A line that ends the forwarding (_release). Unguessable, as LINE_MARK: a fixed one,
# written to fd 2 by anything a clerk's file reaches, would end it, and every writer to
# fds 1 and 2 would block once the pipe is full.
_END = b"\x00outboxd: end of native output " + secrets.token_hex(16).encode()
# The reader processes' own log lines start with a mark of this run, handed to them in
# the environment, and only a line that starts with it passes as a log line: native code
# may write what a clerk's file holds (a name, a value) to fd 2, and a line of it that
# reads as JSON, say '{"event": "bundle sent", ...}', passed as written would be a log
# event a clerk forged.
LINE_MARK_ENV = "OUTBOXD_LOG_LINE_MARK"


class _Marked(io.TextIOBase):
    """A reader process's log stream: each line written starts with the run's mark."""

    def __init__(self, raw: TextIO, mark: str) -> None:
        super().__init__()
        self._raw, self._mark = raw, mark

    def write(self, s: str) -> int:
        self._raw.write(self._mark + s)  # a whole line at a time (_Line, StreamHandler)
        return len(s)

    def flush(self) -> None:
        self._raw.flush()

    def isatty(self) -> bool:
        return self._raw.isatty()


_mark = secrets.token_hex(16)  # LINE_MARK_ENV's value, this process's when it forwards


class _Native:
    def __init__(self, out: TextIO, saved: tuple[int, int], read_end: int, write_end: int,
                 thread: threading.Thread) -> None:
        self.out, self.saved, self.read_end, self.write_end = out, saved, read_end, write_end
        self.thread = thread


_native: _Native | None = None


def take_native_output() -> None:
    """For `outboxd run` under JSON logging (once, after configure): every line written
    to the process's fds 1 and 2 outside the log comes out as a JSON log event."""
    global _native
    handler = _handler
    if _native is not None or handler is None or _format != "json":
        return
    if handler.stream is not sys.__stderr__:
        return  # a stream of a caller's own (pytest's capture): fd 2 is not the log's
    for std in (sys.stdout, sys.stderr):
        try:
            std.flush()
        except (OSError, ValueError):
            pass
    saved = (os.dup(1), os.dup(2))  # non-inheritable: reader processes get the pipe
    out = open(saved[1], "w", encoding=sys.stderr.encoding, errors="backslashreplace",  # noqa: SIM115 - the log's stream for the process's life
               buffering=1, closefd=False)
    read_end, write_end = os.pipe()
    with suppress(OSError):
        # Room for a long report written by native code that keeps the interpreter's
        # lock while it writes: with a full pipe, the thread that empties it could not run.
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    thread = threading.Thread(target=_forward, args=(read_end,), daemon=True,
                              name="stdio")
    _native = _Native(out, saved, read_end, write_end, thread)
    handler.setStream(out)
    os.environ[LINE_MARK_ENV] = _mark  # for the reader processes spawned from now on
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    if faulthandler.is_enabled():
        # A crash dump (PYTHONFAULTHANDLER) is written as the process dies, when no
        # thread forwards the pipe any more: bare lines are better than none.
        faulthandler.enable(file=out)
    sys.excepthook = _excepthook
    thread.start()
    from daemon.osthreads import show_name
    show_name(thread)  # "stdio" in top -H, beside the daemon's other threads
    atexit.register(_release)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    # A bug's traceback as one event, written before the process ends.
    logging.getLogger("outboxd").critical("outboxd failed", exc_info=(exc_type, exc, tb))


def _forward(read_end: int) -> None:
    rest = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
            # A report of many lines comes in several writes: what follows within
            # GATHER_SECONDS is the same event.
            while len(chunk) < 262144 and select.select([read_end], [], [], GATHER_SECONDS)[0]:
                more = os.read(read_end, 65536)
                if not more:
                    break
                chunk += more
        except OSError:
            return
        if not chunk:
            break
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if len(rest) > 65536:  # no line end in sight: what came so far
            lines.append(rest)
            rest = b""
        end = next((n for n, line in enumerate(lines) if line.endswith(_END)), None)
        if end is not None:  # what a reader wrote before it, even half a line, goes too
            _emit_safely([*lines[:end], lines[end][:-len(_END)]])
            return
        _emit_safely(lines)
    _emit_safely([rest])


def _emit_safely(lines: list[bytes]) -> None:
    """_emit, and this thread never ends by an error of it: nobody would empty the pipe
    then, and every writer to fds 1 and 2 (the reader processes too) would block."""
    try:
        _emit(lines)
    except Exception as exc:  # noqa: BLE001 - see above
        native = _native
        if native is None:
            return
        with suppress(Exception):
            native.out.write(json.dumps({
                "event": "output outside the log could not be logged",
                "error": f"{type(exc).__name__}: {exc}", "log_level": "error",
                "output": b"\n".join(lines).decode("utf-8", "replace")[:NATIVE_CHARS]}) + "\n")


def _emit(lines: list[bytes]) -> None:
    text: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if _is_log_line(line):
            _say(text)
            text = []
            _Line().msg(line.removeprefix(_mark))
        elif line.strip():
            text.append(line.replace(_mark, ""))  # the mark never in the log
    _say(text)


def _is_log_line(line: str) -> bool:
    if _format != "json":
        return True  # console lines: everything as it came
    if not line.startswith(_mark):
        return False
    line = line.removeprefix(_mark)
    if not (line.startswith("{") and line.endswith("}")):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _say(text: list[str]) -> None:
    if not text:
        return
    said = "\n".join(text)
    extra = {"output_omitted_chars": len(said) - NATIVE_CHARS} if len(said) > NATIVE_CHARS else {}
    get().warning("output outside the log (a library or a reader process wrote it)",
                  output=said[:NATIVE_CHARS], **extra)


def _release() -> None:
    """At exit: fds 1 and 2 as they were, and what the pipe holds forwarded first (a
    reader process may still hold the pipe: its end is not awaited)."""
    native = _native
    if native is None:
        return
    for std in (sys.stdout, sys.stderr):
        try:
            std.flush()
        except (OSError, ValueError):
            pass
    os.dup2(native.saved[0], 1)
    os.dup2(native.saved[1], 2)
    try:
        os.write(native.write_end, _END + b"\n")
    except OSError:
        return
    native.thread.join(timeout=2.0)
