"""What bypasses the log, brought into it: under JSON logging (`outboxd run` not on a
terminal, i.e. under journald) a line written to fds 1 and 2 by anything but the log
would be a bare line among the JSON.

Native code writes to fd 2 itself: SaxonC's report of a dynamic error in a rule (when
pre-flight runs on the daemon's own threads: reader_processes = 0, or the readers kept
dying), a C library's message, a library's print() to stdout or sys.stderr. So the
daemon's fds 1 and 2 become one pipe, read by a thread (`stdio` in top -H) that passes a
reader process's own log line (marked: LINE_MARK_ENV) as it was written and makes one
warning event of the other lines of each read; the log itself writes to a copy of the
old fd 2. Nothing of this runs for the daemon's own events.
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
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from daemon import logs
from daemon.invisible import escaped_controls, for_terminal
from daemon.logs import LIST_CHARS
from daemon.names import fit_bytes

GATHER_SECONDS = 0.05
PIPE_BYTES = 1 << 20  # the default ceiling of /proc/sys/fs/pipe-max-size
NATIVE_CHARS = LIST_CHARS  # bytes of such output kept in one event, as shown
# A line that ends the forwarding (release). Unguessable, as LINE_MARK: a fixed one,
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


def log_stream() -> TextIO | None:
    """The log's own copy of fd 2 once take_native_output made fd 2 a pipe, else None."""
    return _native.out if _native is not None else None


def marked(stream: TextIO, mark: str) -> TextIO:
    """A reader process's log stream, each line starting with the run's mark."""
    return cast(TextIO, _Marked(stream, mark))


_asked = False  # take_native_output was called: this process is `outboxd run`


def take_native_output() -> None:
    """For `outboxd run` under JSON logging (once, after logs.configure): every line
    written to the process's fds 1 and 2 outside the log comes out as a JSON log event."""
    global _native, _asked
    _asked = True
    handler = logs.handler()
    if _native is not None or handler is None or logs.current_format() != "json":
        return
    if handler.stream is not sys.__stderr__:
        return  # a stream of a caller's own (pytest's capture): fd 2 is not the log's
    _flush_std()
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
    atexit.register(release)


def after_reload() -> None:
    """After a reload's logs.configure, in `outboxd run` only: a switch from console to
    json takes native output then (it was left alone at start), as it would have at a
    start in json. Nothing once taken; nothing in a process that never asked (a test
    driving a reload in pytest's own process)."""
    if _asked:
        take_native_output()


def _flush_std() -> None:
    """What Python buffered for fds 1 and 2, written before they are redirected."""
    for std in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # closed, or fd gone: nothing to keep
            std.flush()


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    # A bug's traceback as one event, written before the process ends.
    logging.getLogger("outboxd").critical("outboxd failed", exc_info=(exc_type, exc, tb))


def _forward(read_end: int) -> None:
    rest = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
            # A report of many lines comes in several writes: what follows within
            # GATHER_SECONDS is the same event. Not after the end line (release): nothing
            # after it is forwarded, and the exit waited those 50 ms out at every stop.
            while len(chunk) < 262144 and not chunk.endswith(_END + b"\n") \
                    and select.select([read_end], [], [], GATHER_SECONDS)[0]:
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
                "error": f"{type(exc).__name__}: {exc}", "level": "error",
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "output": b"\n".join(lines).decode("utf-8", "replace")[:NATIVE_CHARS]}) + "\n")


def _emit(lines: list[bytes]) -> None:
    text: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if _is_log_line(line):
            _say(text)
            text = []
            # A reader's line is shown already (a no-op here); under console logging after
            # a reload from JSON (the pipe stays) every line passes, a native one too.
            logs.write_line(escaped_controls(line.removeprefix(_mark)))
        elif line.strip():
            text.append(line.replace(_mark, ""))  # the mark never in the log
    _say(text)


def _is_log_line(line: str) -> bool:
    if logs.current_format() != "json":
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
    # Shown as the log shows every text before it is cut (a code is longer than its
    # character: 16,000 control bytes were an 80 KB line), and cut in bytes of UTF-8:
    # journald splits a line over 48 KiB into pieces that are not JSON.
    said = for_terminal("\n".join(text))
    kept = fit_bytes(said, NATIVE_CHARS)
    extra = {"output_omitted_chars": len(said) - len(kept)} if kept != said else {}
    logs.get().warning("output outside the log (a library or a reader process wrote it)",
                  output=kept, **extra)


def release() -> None:
    """At exit: fds 1 and 2 as they were, and what the pipe holds forwarded first (a
    reader process may still hold the pipe: its end is not awaited)."""
    native = _native
    if native is None:
        return
    _flush_std()
    os.dup2(native.saved[0], 1)
    os.dup2(native.saved[1], 2)
    try:
        os.write(native.write_end, _END + b"\n")
    except OSError:
        return
    native.thread.join(timeout=2.0)
