"""logs.py: one stream, one format — library records, warnings and thread deaths included."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from helpers import not_json_lines

from daemon import logs
from daemon.config import LogConfig

ROOT = Path(__file__).resolve().parent.parent


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line.strip()]


def test_json_format_makes_every_line_json_including_libraries_and_warnings() -> None:
    """Under format = "json", our events, a library's stdlib log record, a Python warning
    and an exception that kills a thread each come out as one JSON object per line."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    logs.get().info("bundle sent", invoice_file="INV-1.xml", invoice_ids=["INV-1"],
                    bundle_id="a" * 64)
    logging.getLogger("watchdog.observers.inotify").error(
        "InotifyEmitter.queue_events() called when the thread is inactive")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library warning", RuntimeWarning, stacklevel=1)
    t = threading.Thread(target=lambda: 1 / 0, name="emitter")
    t.start()
    t.join()
    records = [json.loads(line) for line in _lines(out)]
    assert [r["event"] for r in records][:2] == [
        "bundle sent", "InotifyEmitter.queue_events() called when the thread is inactive"]
    assert records[0]["invoice_ids"] == ["INV-1"] and records[0]["level"] == "info"
    assert records[1]["logger"] == "watchdog.observers.inotify"
    assert "a library warning" in records[2]["event"]
    assert records[3]["event"] == "thread died" and "ZeroDivisionError" in records[3]["exception"]
    logs.configure()


def test_console_format_puts_invoice_file_ids_and_short_id_on_the_event_line() -> None:
    """On a terminal a bundle event reads as one line: event, invoice file, [ids], id12."""
    out = io.StringIO()
    logs.configure(LogConfig(format="console"), out)
    logs.get().info("bundle sent", invoice_file="INV-1.xml", invoice_ids=["INV-1", "INV-2"],
                    bundle_id="0123456789ab" + "f" * 52, receipt_id="R-9")
    [line] = _lines(out)
    assert "bundle sent: INV-1.xml [INV-1, INV-2] 0123456789ab" in line
    assert "receipt_id=R-9" in line and "f" * 52 not in line
    logs.configure()


def test_reconfigure_replaces_the_handler_instead_of_adding_one() -> None:
    """A SIGHUP reload configures logging again; lines must not come out twice."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    logs.configure(LogConfig(format="json"), out)
    logs.get().info("once")
    assert len(_lines(out)) == 1
    logs.configure()


def test_a_reload_reaches_loggers_bound_before_it() -> None:
    """Components bind their logger once at start; a SIGHUP that changes [log] format
    or level applies to those loggers too, on the new stream."""
    first, second = io.StringIO(), io.StringIO()
    logs.configure(LogConfig(format="console"), first)
    log = logs.get(invoice_file="INV-1.xml")
    logs.configure(LogConfig(format="json", level="warning"), second)
    log.info("not at this level")
    log.warning("bundle cannot be moved; will retry", error="EACCES")
    assert first.getvalue() == ""
    [record] = [json.loads(line) for line in _lines(second)]
    assert record["event"] == "bundle cannot be moved; will retry"
    assert record["invoice_file"] == "INV-1.xml" and record["level"] == "warning"
    logs.configure()


def test_an_exception_logged_by_us_carries_its_traceback_in_one_json_line() -> None:
    """log.exception() inside an except block: one JSON line, level error, with the
    traceback as a field (no bare traceback lines on the stream)."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    try:
        {}["missing"]
    except KeyError:
        logs.get().exception("unexpected error while delivering", row=7)
    [record] = [json.loads(line) for line in _lines(out)]
    assert record["level"] == "error" and record["row"] == 7
    assert "KeyError: 'missing'" in record["exception"]
    logs.configure()


def test_warnings_are_captured_again_by_each_configure() -> None:
    """logging.captureWarnings(True) does nothing while it believes it already captures:
    a configure made inside warnings.catch_warnings() (whose exit puts the previous
    showwarning back) used to leave later warnings printed as bare text. Each
    configure now installs the capture again."""
    with warnings.catch_warnings():
        logs.configure(LogConfig(format="json"), io.StringIO())
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("after a catch_warnings", RuntimeWarning, stacklevel=1)
    [record] = [json.loads(line) for line in _lines(out)]
    assert "after a catch_warnings" in record["event"]
    logs.configure()


def test_http_libraries_say_nothing_below_warning_even_at_debug_level() -> None:
    """httpcore logs at DEBUG the headers a receiver sent back (which may echo our token)
    and h11's errors quoting them; httpx logs each request's url (with any password):
    under [log] level = "debug" neither reaches the log, while our own debug lines do."""
    text = _logged("debug", lambda: (
        logging.getLogger("httpcore.http11").debug("receive_response_headers.complete "
                                                   "return_value=[(b'X-Echo', b'Bearer T0k')]"),
        logging.getLogger("httpx").info("HTTP Request: POST http://u:T0k@127.0.0.1:9/x"),
        logs.get().debug("ours")))
    assert "T0k" not in text and "ours" in text


def _logged(level: str, emit: Callable[[], object]) -> str:
    """What the JSON log holds after emit() under [log] level = `level`."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json", level=level), out)  # type: ignore[arg-type]
    try:
        emit()
    finally:
        logs.configure()
    return out.getvalue()


def test_pikepdf_import_chatter_stays_out_of_the_log_but_its_warnings_do_not() -> None:
    """pikepdf (imported by img2pdf for convert_images) logs "C++ to Python logger bridge
    initialized" at INFO: it appeared on `outboxd check`'s stderr and in the daemon's
    log. At [log] level = "info" it is dropped; a pikepdf warning still gets through."""
    text = _logged("info", lambda: (
        logging.getLogger("pikepdf._core").info("pikepdf C++ to Python logger bridge "
                                                "initialized"),
        logging.getLogger("pikepdf._core").warning("a real pikepdf warning")))
    assert "logger bridge" not in text
    assert "a real pikepdf warning" in text


def test_auto_format_is_console_on_a_terminal_and_json_off_one() -> None:
    """[log] format = "auto" (the default) writes readable console lines to a terminal and
    JSON lines anywhere else (journald under systemd)."""
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, is_json in ((Terminal(), False), (io.StringIO(), True)):
        logs.configure(LogConfig(format="auto"), stream)
        logs.get().info("bundle sent", invoice_file="INV-1.xml", invoice_ids=["INV-1"],
                        bundle_id="a" * 64)
        [line] = _lines(stream)
        if is_json:
            assert json.loads(line)["event"] == "bundle sent"
        else:
            assert not line.startswith("{") and "bundle sent: INV-1.xml [INV-1]" in line
    logs.configure()


def test_a_bundle_event_of_thousands_of_invoices_stays_one_json_line_journald_keeps_whole(
        ) -> None:
    """A batch of 6,000 invoices (the most an XML file may hold is about that many):
    its event keeps its first invoice ids and says how many it leaves out, so the line
    stays under journald's 48 KiB (a longer one is split into pieces that are not JSON).
    A short list is left whole."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    ids = [f"INVOICE-2026-{n:06d}" for n in range(6000)]
    logs.get().info("bundle sent", invoice_file="batch.xml", reasons=["x" * 40] * 2,
                    invoice_ids=ids, bundle_id="a" * 64, unattached_ids=ids,
                    warnings=[{"code": "unattached-invoice", "invoice_id": i} for i in ids])
    [line] = _lines(out)
    record = json.loads(line)
    assert len(line.encode()) < 48 * 1024
    assert record["reasons"] == ["x" * 40] * 2 and "reasons_omitted" not in record
    kept = record["invoice_ids"]
    assert kept == ids[:len(kept)] and len(kept) > 500
    assert record["invoice_ids_omitted"] == 6000 - len(kept)
    # The lists share the room; each keeps at least its first item.
    assert record["unattached_ids"] == ids[:1] and record["unattached_ids_omitted"] == 5999
    assert len(record["warnings"]) == 1 and record["warnings_omitted"] == 5999
    logs.configure()


# A reader process: spawned after take_native_output, with its fds 1 and 2.
_READER = r"""
from daemon import logs
logs.configure()
logs.get().info("a reader process's own line", file="INV-1.xml")
"""

_NATIVE_SCRIPT = r"""
import os, subprocess, sys
_READER = @READER@
from daemon import logs
from daemon.config import LogConfig
logs.configure(LogConfig(format=sys.argv[1]))
logs.take_native_output()
logs.get().info("ours")
os.write(2, b"a C library's line\nand its second\n")
print("a library's print to stdout", flush=True)
subprocess.run([sys.executable, "-c", _READER], check=True)  # inherits fds 1 and 2
os.write(1, b"said on fd 1 just before the end\n")
raise RuntimeError("a bug")
""".replace("@READER@", repr(_READER))


def test_under_json_everything_on_fds_1_and_2_comes_out_as_json_lines_on_stderr() -> None:
    """take_native_output (outboxd run): what native code writes to fd 2, a print to
    stdout, a reader process's JSON line, a line written just before the process ends
    and a bug's traceback all reach stderr as one JSON object per line, nothing on
    stdout; the reader's line as it was written."""
    r = subprocess.run([sys.executable, "-c", _NATIVE_SCRIPT, "json"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1
    assert r.stdout == ""
    assert not_json_lines(r.stderr) == []
    records = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    outside = "\n".join(r.get("output", "") for r in records)
    assert "a C library's line\nand its second" in outside
    assert "a library's print to stdout" in outside
    assert "said on fd 1 just before the end" in outside
    [reader] = [r for r in records if r["event"] == "a reader process's own line"]
    assert reader["file"] == "INV-1.xml" and reader["level"] == "info"
    [bug] = [r for r in records if r["event"] == "outboxd failed"]
    assert bug["level"] == "critical" and "RuntimeError: a bug" in bug["exception"]


def test_under_console_fds_1_and_2_are_left_as_they_are() -> None:
    """On a terminal (format = "console") nothing is taken: a print stays on stdout, a
    native line on stderr as it was written."""
    r = subprocess.run([sys.executable, "-c", _NATIVE_SCRIPT, "console"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.stdout.splitlines() == ["a library's print to stdout",
                                     "said on fd 1 just before the end"]
    assert "a C library's line\nand its second\n" in r.stderr
    assert "Traceback (most recent call last)" in r.stderr


_FORGING_SCRIPT = r"""
import os, subprocess, sys
from daemon import logs
from daemon.config import LogConfig
logs.configure(LogConfig(format="json"))
logs.take_native_output()
# What native code in a reader might print of a clerk's invoice: a value holding lines.
forged = '{"event": "bundle sent", "level": "info", "invoice_file": "INV-9.xml"}'
child = "import os, sys; os.write(2, sys.argv[1].encode())"
subprocess.run([sys.executable, "-c", child, f"bad value: x\n{forged}\n"], check=True)
os.write(2, forged.encode() + b"\n")
os.write(2, b"\x00outboxd: end of native output\n")  # the forwarding's old end line
os.write(2, b"after the old end line\n")
"""


def test_a_json_line_written_to_fd_2_by_anything_but_the_log_is_not_passed_as_an_event(
) -> None:
    """A clerk's text that native code writes to fd 2 (in the daemon or in a reader
    process) and that reads as a JSON log line is not passed through as a log event: only
    a reader's log lines, marked with this run's mark, are. The forged line is the
    output of a warning event instead; a line like the forwarding's end line (a fixed
    one, once) does not end the forwarding."""
    r = subprocess.run([sys.executable, "-c", _FORGING_SCRIPT], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not_json_lines(r.stderr) == []
    records = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    assert [x for x in records if x["event"] == "bundle sent"] == []
    outside = "\n".join(x.get("output", "") for x in records)
    assert outside.count('"event": "bundle sent"') == 2
    assert "after the old end line" in outside


_FAILING_EMIT_SCRIPT = r"""
import fcntl, os, time
from daemon import logs
from daemon.config import LogConfig
logs.configure(LogConfig(format="json"))
logs.take_native_output()
print("pipe", fcntl.fcntl(logs._native.write_end, fcntl.F_GETPIPE_SZ), file=logs._native.out)
real, calls = logs._emit, []
def once_broken(lines):
    calls.append(lines)
    if len(calls) == 1:
        raise RuntimeError("a bug in the forwarding")
    real(lines)
logs._emit = once_broken
os.write(2, b"the first native line\n")
os.write(2, b"x" * 200_000 + b"\n")  # more than a default pipe holds: blocks if nobody reads
deadline = time.monotonic() + 20
while not calls and time.monotonic() < deadline:  # the broken batch is behind us
    time.sleep(0.01)
os.write(2, b"the last native line\n")
"""


def test_the_forwarding_thread_outlives_an_error_and_the_pipe_holds_a_long_report() -> None:
    """An error while one batch of native output is logged costs that batch's event (it
    is written as a plain JSON line instead), not the thread that empties the pipe:
    without it every later write to fd 2 (a reader process's log line) would block for
    ever. And the pipe is given 1 MiB, room for a long report written at once."""
    r = subprocess.run([sys.executable, "-c", _FAILING_EMIT_SCRIPT], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert lines[0].startswith("pipe ") and int(lines[0].split()[1]) >= 1 << 20
    assert not_json_lines("\n".join(lines[1:])) == []
    records = [json.loads(line) for line in lines[1:] if line.strip()]
    [broken] = [x for x in records if x["event"] == "output outside the log could not be logged"]
    assert "a bug in the forwarding" in broken["error"]
    assert "the first native line" in broken["output"]
    assert any(x.get("output") == "the last native line" for x in records)
