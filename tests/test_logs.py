"""logs.py: one stream, one format — library records, warnings and thread deaths included."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon import logs
from daemon.configuration.config import DeliveryConfig, LogConfig
from daemon.delivery.deliver import HttpDeliverer

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


def test_an_unexpected_errors_traceback_never_shows_local_values_such_as_the_token(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An unexpected error is logged with its traceback (workers.py, a reload, a start
    that fails). On a terminal (format "console", or "auto" on a tty) that traceback
    named the code of each frame and not the values of its local variables: structlog's
    default, through rich, printed every frame's locals, and a delivery's frames hold
    the bearer token (HttpDeliverer's `token` and `headers`), a url's password, an
    invoice's bytes. Under either format the traceback is there, the token is not."""
    def unexpected(cfg: object) -> None:
        raise RuntimeError("a bug after the token was read")

    monkeypatch.setattr("daemon.delivery.deliver.tls_verify", unexpected)
    token_file = tmp_path / "token"
    token_file.write_text("T0ken-0f-the-operator\n")  # the frames' code shows no token
    for fmt in ("console", "json"):
        out = io.StringIO()
        logs.configure(LogConfig(format=fmt), out)  # type: ignore[arg-type]
        try:
            HttpDeliverer(DeliveryConfig(url="http://127.0.0.1:9/bundles",
                                         token_file=token_file))
        except RuntimeError:
            logs.get().exception("unexpected error while delivering", row=1)
        finally:
            logs.configure()
        text = out.getvalue()
        assert "a bug after the token was read" in text and "deliver.py" in text, fmt
        assert "T0ken-0f-the-operator" not in text, f"{fmt}: {text[-2000:]}"


def _utf8_stream() -> io.TextIOWrapper:
    """A stream as journald's or a terminal's: it takes only what UTF-8 can write."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")


def _written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    assert isinstance(stream.buffer, io.BytesIO)
    return stream.buffer.getvalue().decode("utf-8")


def test_a_name_with_a_byte_that_is_not_utf8_loses_no_log_line() -> None:
    """A sidecar named in Latin-1 (os.fsdecode gives its 0xFC as a lone surrogate): a
    line naming it raw cannot be written as UTF-8: dropped without a word on a stream
    that takes only UTF-8, shown as \\udcfc (a code no other output uses) on stderr. It
    is written, the byte shown as \\udcfc as everywhere else, in both formats, our records
    and a library's."""
    name = os.fsdecode(b"M\xfcller-scans")
    for fmt in ("json", "console"):
        out = _utf8_stream()
        logs.configure(LogConfig(format=fmt), out)
        logs.get().warning("sidecar without its invoice file", folder=name)
        logging.getLogger("watchdog.observers.inotify").warning("cannot watch %s", name)
        lines = _written(out).splitlines()
        if fmt == "json":  # whose backslash JSON writes as \\
            lines = [" ".join(map(str, json.loads(line).values())) for line in lines]
        assert len(lines) == 2 and all("M\\udcfcller-scans" in line for line in lines), lines
    logs.configure()


def test_a_library_record_and_a_traceback_show_a_name_as_codes_and_keep_their_lines() -> None:
    """A library's record (watchdog naming a path) and an exception's message quote a
    name as it is: each is shown as our own values are (\\x1b, \\u2028), one record a
    line; a traceback keeps its own lines, only the name's line break is a code."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    logging.getLogger("watchdog.observers.inotify").error("cannot watch %s",
                                                          "INV-\x1b[2J\u2028x")
    try:
        raise ValueError("bad name 'INV-\x1b]8;;http:\\\\evil\x07'")
    except ValueError:
        logs.get().exception("unexpected error", invoice_file="INV-1\u2028.xml")
    text = out.getvalue()
    assert "\x1b" not in text and "\u2028" not in text
    lib, ours = (json.loads(line) for line in text.split("\n") if line)
    assert lib["event"] == "cannot watch INV-\\x1b[2J\\u2028x"
    assert ours["invoice_file"] == "INV-1\\u2028.xml"
    assert "\nValueError: bad name 'INV-\\x1b]8;;http:\\\\evil\\x07'" in ours["exception"]
    logs.configure()


def test_console_lines_show_a_names_codes_as_the_status_page_does_not_doubled() -> None:
    """On the console a name reads as everywhere else, INV-\\x1b[2J.xml, in the event, in
    a value in quotes and in a list: not repr()'s 'INV-\\\\x1b[2J.xml', which would read
    as another name (with two backslashes) than the page and `outboxd status` show."""
    out = io.StringIO()
    logs.configure(LogConfig(format="console"), out)
    logs.get().warning("bundle quarantined", invoice_file="INV-\x9b2J.xml", invoice_ids=["I"],
                       reasons=["INV-7/a\x1b[2J.pdf: the name holds control characters"],
                       error="INV-\u202e1.xml: gone")
    [line] = _lines(out)
    assert "bundle quarantined: INV-\\x9b2J.xml [I]" in line
    assert "reasons=['INV-7/a\\x1b[2J.pdf: the name holds control characters']" in line
    assert "error='INV-\\u202e1.xml: gone'" in line
    logs.configure()


def test_a_batch_of_ids_full_of_invisible_characters_still_stays_under_journalds_limit(
        ) -> None:
    """Each zero-width space of an invoice id is shown as \\u200b, six characters for
    one: counted before they were shown, 6,000 such ids made a line of over 100 KB,
    which journald splits into pieces that are not JSON. The ids are cut as shown."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    ids = [f"{chr(0x200b) * 30}{n:06d}" for n in range(6000)]
    logs.get().info("bundle waiting", invoice_file="batch.xml", invoice_ids=ids,
                    bundle_id="a" * 64)
    [line] = _lines(out)
    record = json.loads(line)
    assert len(line.encode()) < 48 * 1024
    assert record["invoice_ids"][0] == "\\u200b" * 30 + "000000"
    assert record["invoice_ids_omitted"] == 6000 - len(record["invoice_ids"])
    logs.configure()


def test_a_batch_of_ids_of_emoji_stays_under_journalds_limit_counted_in_bytes() -> None:
    """An id of emoji (which a person sees, so shown as they are) takes four bytes a
    character: 16,000 characters of them made a 64 KB line, which journald splits. The
    room of a record's lists is counted in bytes."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    ids = [f"{chr(0x1F9FE) * 20}{n:06d}" for n in range(6000)]
    logs.get().info("bundle waiting", invoice_file="batch.xml", invoice_ids=ids)
    [line] = _lines(out)
    assert len(line.encode()) < 48 * 1024
    assert json.loads(line)["invoice_ids"][0] == chr(0x1F9FE) * 20 + "000000"
    logs.configure()


def test_a_thread_ended_by_system_exit_logs_nothing() -> None:
    """SystemExit in a thread is how a thread is told to end, not a death: no "thread
    died" line (as Python's own hook says nothing of it)."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)

    def leave() -> None:
        raise SystemExit
    t = threading.Thread(target=leave, name="leaver")
    t.start()
    t.join()
    assert _lines(out) == []
    logs.configure()


def test_a_line_logged_to_a_closed_stream_or_before_any_configure_is_dropped_not_raised(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A lost log line must not stop the daemon: a stream closed under the log (ValueError,
    not OSError) and a line logged before logging was set up are each dropped — neither
    raises, and neither goes anywhere else."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    out.close()
    logs.get().info("after the close")
    monkeypatch.setattr(logs, "_handler", None)
    logs.get().info("before any configure")
    monkeypatch.undo()
    logs.configure()
    assert capsys.readouterr() == ("", "")


def test_a_native_output_of_many_lines_keeps_its_line_breaks_in_the_json_record() -> None:
    """`output` (a library's own lines, forwarded) is text of many lines by nature: its
    line breaks stay line breaks in the record (JSON writes them as \\n), where a name's
    would be shown as a code; a control character in it is still shown as one."""
    out = io.StringIO()
    logs.configure(LogConfig(format="json"), out)
    logs.get().info("native output", output="first line\nsecond \x1b[31mline")
    [record] = [json.loads(line) for line in _lines(out)]
    assert record["output"] == "first line\nsecond \\x1b[31mline"
    logs.configure()
