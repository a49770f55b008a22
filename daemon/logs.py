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

import dataclasses
import logging
import os
import sys
import threading
import warnings
from contextlib import AbstractContextManager
from typing import Any, TextIO

import structlog

from daemon.configuration.config import LogConfig
from daemon.invisible import escaped_controls, for_terminal

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


# Values whose text is many lines by nature: their line breaks stay (JSON writes them as
# \n, the console as lines); every other control character in them is shown as its code.
_MANY_LINES = frozenset({"exception", "output"})


def _shown(value: Any, lines: bool = False) -> Any:
    if isinstance(value, str):
        if value.isascii() and value.isprintable():
            return value  # nearly every value: no look at each character
        return for_terminal(value) if lines else escaped_controls(value)
    if isinstance(value, list | tuple):
        shown = [_shown(v) for v in value]
        return value if shown == list(value) else shown
    if isinstance(value, dict):
        return {_shown(k): _shown(v) for k, v in value.items()}
    return value


def _names_shown(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Every text in a record as escaped_controls shows it, in both formats: a name from
    the share (a file, a sidecar, an attachment), an invoice id, a receiver's answer.
    A newline, U+2028 or U+0085 in one would end the record where a reader splits lines
    and let the rest pose as a record of its own; ESC and C1 would drive the terminal
    that shows it (`journalctl`, `jq -r`, `outboxd run`); a bidirectional control would
    show a name's letters reordered, a zero-width space two names as one; a byte that is
    not UTF-8 would lose the whole line. Shown as \\x1b, \\u2028, \\u202e, \\u200b, \\xff,
    as the status page, `outboxd status` and the papers show them."""
    for key, value in event.items():
        # Not the counts, nulls, nor exc_info (an exception, or its tuple from a library's
        # record), which _traceback_shown shows once it is text.
        if not isinstance(value, int | float | None) and key != "exc_info":
            event[key] = _shown(value, key in _MANY_LINES)
    return event


def _traceback_shown(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A traceback (made text by format_exc_info, after _names_shown) as _names_shown
    shows a text of many lines: an exception's message may quote a name."""
    if isinstance(event.get("exception"), str):
        event["exception"] = for_terminal(event["exception"])
    return event


def _renderer(fmt: str, stream: TextIO) -> list[Any]:
    if fmt == "json":
        return [structlog.processors.format_exc_info, _traceback_shown,
                structlog.processors.JSONRenderer(ensure_ascii=False)]
    colors = stream.isatty()
    # A traceback as the JSON format writes it: structlog's default (through rich) shows
    # every frame's local variables, and a delivery's hold the bearer token.
    console = structlog.dev.ConsoleRenderer(colors=colors,
                                            exception_formatter=structlog.dev.plain_traceback)
    if hasattr(console, "columns"):  # structlog 25.5 and later
        default, *columns = console.columns
        if isinstance(default.formatter, structlog.dev.KeyValueColumnFormatter):
            console.columns = [structlog.dev.Column("", dataclasses.replace(
                default.formatter, value_repr=_console_value)), *columns]
    return [structlog.processors.format_exc_info, _traceback_shown, _bundle_first, console]


def _console_value(value: Any) -> str:
    """A value on a console line, in quotes where it has spaces, as structlog shows it,
    but not as repr() writes it: _names_shown made it safe to show, and repr() would
    double each backslash of a code (a name's \\x1b shown as \\\\x1b, unlike everywhere
    else)."""
    if isinstance(value, str):
        return f"'{value}'" if set(value) & {" ", "=", '"', "'"} else value
    if isinstance(value, list):
        return f"[{', '.join(_console_value(v) for v in value)}]"
    return repr(value)


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
# list in an event keeps its first items up to this many characters (counted as bytes of
# UTF-8: ids of emoji take four each), and says how many it leaves out. The lists of one
# event (invoice_ids, unattached_ids, warnings…) share the room. The journal, `outboxd
# status` and the papers keep every item.
LIST_CHARS = 16_000


def _bounded(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    room = LIST_CHARS
    for key, value in list(event.items()):
        if isinstance(value, list | tuple) and value:
            for n, item in enumerate(value):
                text = item if isinstance(item, str) else repr(item)
                room -= len(text.encode("utf-8", "surrogatepass"))
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
    _names_shown,  # before _bounded: a code is longer than its character
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
    from daemon import stdio  # it logs through this module: imported when first used
    # After take_native_output: the log's own copy of fd 2, fd 2 itself being a pipe.
    forwarded = stdio.log_stream()
    mark = stream is None and forwarded is None and os.environ.get(stdio.LINE_MARK_ENV)
    stream = stream or forwarded or sys.stderr
    fmt = cfg.format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if mark and fmt == "json":
        # A reader process's lines, told from a forgery by their mark (LINE_MARK_ENV).
        stream = stdio.marked(stream, mark)
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
    # Records from other libraries: their logger name says who spoke.
    foreign: list[Any] = [*shared, structlog.stdlib.add_logger_name,
                          structlog.stdlib.ExtraAdder(), _names_shown]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign,
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
    # Its only errors: a font whose /Encoding it does not know, its text read in the
    # standard one instead ("Advanced encoding /X not implemented yet, using [256
    # characters]"): an error line of 2.5 KB naming no file at each read of the file.
    logging.getLogger("pypdf._cmap").setLevel(logging.CRITICAL)
    # pikepdf (under img2pdf, for convert_images) says "C++ to Python logger bridge
    # initialized" at INFO on import: a line in `outboxd check`'s output and the log
    # that tells nobody anything.
    logging.getLogger("pikepdf").setLevel(max(level, logging.WARNING))
    # img2pdf warns of what it does to an image it converts (a soft mask for its
    # transparency, an ICC profile left out), naming no file and asking nothing of anyone;
    # what stops a conversion it raises, which is a finding naming the file (convert.py).
    logging.getLogger("img2pdf").setLevel(max(level, logging.ERROR))
    # Pillow logs each chunk and tag it reads at DEBUG, and at ERROR only just before it
    # raises on a TIFF it refuses ("More samples per pixel than can be decoded"): a line
    # naming no file at each read of a bundle, beside the finding that names it.
    logging.getLogger("PIL").setLevel(logging.CRITICAL)
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


def about_file(rel: str) -> AbstractContextManager[Any]:
    """While the block runs (in this thread), every line logged carries `file`: the file
    being read, as the clerk knows it (INV-1/scan.pdf). For what a library says of it
    deep inside a read (pypdf's own failure, its chatter), where no caller's logger is
    at hand: such a line named no file, and the admin could not tell which bundle."""
    return structlog.contextvars.bound_contextvars(file=rel)


def bundle_log(log: Any, invoice_file: str, bundle_id: str | None,
               ids: list[str] | tuple[str, ...]) -> Any:
    """`log` for one bundle's events: every one carries bundle_id, invoice_file and
    invoice_ids."""
    return log.bind(bundle_id=bundle_id, invoice_file=invoice_file, invoice_ids=list(ids))


def handler() -> logging.StreamHandler[TextIO] | None:
    """The handler the stdlib's loggers (libraries') write through, once configured."""
    return _handler


def current_format() -> str:
    """The format set last: "json" or "console"."""
    return _format


def write_line(line: str) -> None:
    """A line already rendered (a reader process's JSON event), written as the log's own."""
    _Line().msg(line)
