"""`[log] format = "json"` end to end: every line a real daemon writes parses as JSON."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env, Receiver
from einvoice.broken import saxon_type_error
from helpers import drop_bundle, not_json_lines, pdf_bytes, ubl_invoice, wait_for

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")


def test_every_stderr_line_is_json_through_start_reload_watcher_restart_and_stop(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Start, deliver a bundle, SIGHUP-reload, kill the watcher (the outbox vanishes and
    comes back, as a share does), let the rescan restart it, stop: every stderr line of
    the daemon is one JSON object, watchdog's own log records included."""
    # As shipped (reader processes, pre-flight): the readers write to the same stderr.
    env.write_config(receiver.url, outbox={"rescan_seconds": 0.3, "watch": "inotify"})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-L1", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="the bundle in sent/")

    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), what="the reload")

    shutil.rmtree(env.outbox)  # the inotify watch dies with its folder
    wait_for(lambda: "cannot list the outbox" in daemon.stderr(), what="the missing outbox")
    env.outbox.mkdir()
    wait_for(lambda: "the outbox is there again; watching it" in daemon.stderr(),
             what="the watcher restarted once the outbox is back")
    drop_bundle(env.outbox, "INV-L2", {"b.pdf": pdf_bytes(2)})
    wait_for(lambda: len(env.sent_bundles()) == 2, what="a bundle sent after the restart")
    assert daemon.stop(signal.SIGTERM) == 0

    lines = [line for line in daemon.stderr().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    events = [r["event"] for r in records]
    assert "configuration reloaded" in events and "stopped" in events
    # every bundle event names its invoice file (and, once read, its ids and bundle id)
    for event in ("bundle settling", "bundle claimed", "bundle sent"):
        assert any(r["event"] == event and r["invoice_file"] == "INV-L1.xml" for r in records)
    sent = next(r for r in records if r["event"] == "bundle sent")
    assert sent["invoice_ids"] == ["INV-L1"] and len(sent["bundle_id"]) == 64
    assert all(isinstance(r, dict) and "level" in r and "timestamp" in r for r in records)


def test_saxons_report_on_the_daemons_own_threads_is_json_on_stderr_and_nothing_on_stdout(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Pre-flight on the daemon's own threads (reader_processes = 0; also where reader
    processes keep dying): an invoice with two IssueDates makes Saxon write a report
    of many lines straight to fd 2. Every line of stderr is still one JSON object, the
    report one warning event of its own, and stdout stays empty."""
    env.write_config(receiver.url, policy={"unattached": "send"},
                     service={"reader_processes": 0}, log={"format": "auto"})
    daemon = start_daemon()
    drop_bundle(env.outbox, "TWO-1", {}, saxon_type_error("TWO-1"))
    wait_for(env.quarantined, timeout=60, what="the invoice quarantined")
    assert daemon.stop() == 0

    assert not_json_lines(daemon.stderr()) == []
    assert daemon.stdout() == ""
    records = [json.loads(line) for line in daemon.stderr().splitlines() if line.strip()]
    [report] = [r for r in records if "XPTY0004" in r.get("output", "")]
    assert report["level"] == "warning" and "fn:normalize-space" in report["output"]
    assert "stopped" in [r["event"] for r in records]


@pytest.mark.usefixtures("lean")  # about the log, not where bundles are read
def test_every_bundle_event_of_a_run_carries_bundle_id_invoice_file_and_invoice_ids(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """docs/operations.md, Logs: every bundle event carries `bundle_id`, `invoice_file`
    and `invoice_ids` (the id null and the ids empty until the bundle is read). A run
    with a bundle sent, one that waits for attachments then goes out with a warning,
    and one quarantined: each line about a bundle has the three keys, and once a bundle
    was read its events name its 64-hex id and its invoice."""
    env.write_config(receiver.url, policy={"attachment_wait_seconds": 0.5})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-E1", {"a.pdf": pdf_bytes()})
    drop_bundle(env.outbox, "INV-E2", {})
    drop_bundle(env.outbox, "INV-E3", {"scan.pdf": b"MZ\x90\x00" + b"\x00" * 200})
    wait_for(lambda: len(env.sent_bundles()) == 2 and len(env.quarantined()) == 1,
             what="two bundles sent and one quarantined")
    assert daemon.stop(signal.SIGTERM) == 0

    records = [json.loads(line) for line in daemon.stderr().splitlines() if line.strip()]
    about_a_bundle = [r for r in records
                      if {"bundle_id", "invoice_file", "invoice_ids"} & r.keys()]
    for r in about_a_bundle:
        assert {"bundle_id", "invoice_file", "invoice_ids"} <= r.keys(), r
    by_file: dict[str, list[dict]] = {}
    for r in about_a_bundle:
        by_file.setdefault(r["invoice_file"], []).append(r)
    assert set(by_file) == {"INV-E1.xml", "INV-E2.xml", "INV-E3.xml"}
    for name, events in by_file.items():
        read = [r for r in events if r["bundle_id"] is not None]
        # settling comes before the read; every event after it names the bundle
        assert [r["event"] for r in events if r["bundle_id"] is None] == ["bundle settling"]
        assert read and {len(r["bundle_id"]) for r in read} == {64}
        assert all(r["invoice_ids"] == [name.removesuffix(".xml")] for r in read), read
    names = {(r["invoice_file"], r["event"]) for r in about_a_bundle}
    assert ("INV-E2.xml", "bundle sent") in names and ("INV-E1.xml", "bundle sent") in names
    assert any(f == "INV-E3.xml" and "quarantined" in e for f, e in names), names
    assert any(f == "INV-E2.xml" and "wait" in e for f, e in names), names


def _read_pty(master: int, until: str, timeout: float = 30.0, shown: str = "") -> str:
    """What the daemon wrote to its terminal until `until` appears (or EOF, or timeout);
    `shown`, what was read before: where `until` is in it already, nothing is read."""
    seen = b""
    before = shown.encode(errors="surrogateescape")
    deadline = time.monotonic() + timeout
    while until.encode() not in before + seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the daemon closed its end
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


@pytest.mark.usefixtures("lean")  # about the log, not where bundles are read
def test_the_default_log_format_is_console_lines_on_a_terminal_and_json_off_one(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """docs/configuration.md, `[log] format = "auto"` (the default): `outboxd run` by hand
    on a terminal writes readable console lines; under systemd (stderr a journald stream,
    here a file) every line is JSON."""
    env.write_config(receiver.url, log={"format": "auto"})
    daemon = start_daemon()  # stderr to a file
    drop_bundle(env.outbox, "INV-T1", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="the bundle in sent/")
    assert daemon.stop(signal.SIGTERM) == 0
    assert not_json_lines(daemon.stderr()) == []
    assert any(json.loads(line)["event"] == "bundle sent"
               for line in daemon.stderr().splitlines())

    master, slave = os.openpty()
    proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    try:
        shown = _read_pty(master, "outboxd running")
        proc.send_signal(signal.SIGTERM)
        shown += _read_pty(master, "stopped")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    lines = [line for line in shown.splitlines() if line.strip()]
    assert any("outboxd running" in line for line in lines), shown
    assert any("stopped" in line for line in lines), shown
    assert not any(line.lstrip().startswith("{") for line in lines), shown


def test_a_reload_from_console_to_json_brings_native_output_into_the_log_too(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An admin who ran with `[log] format = "console"` under systemd switches to "json"
    and reloads (SIGHUP): from the reload on, Saxon's report written straight to fd 2
    (pre-flight on the daemon's own threads) is one JSON event like every other line,
    not bare lines among the JSON."""
    sections: dict = {"policy": {"unattached": "send"}, "service": {"reader_processes": 0}}
    env.write_config(receiver.url, log={"format": "console"}, **sections)
    daemon = start_daemon()
    env.write_config(receiver.url, log={"format": "json"}, **sections)
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), what="the reload")
    before = len(daemon.stderr().splitlines())
    drop_bundle(env.outbox, "TWO-1", {}, saxon_type_error("TWO-1"))
    wait_for(env.quarantined, timeout=60, what="the invoice quarantined")
    assert daemon.stop() == 0

    after = "\n".join(daemon.stderr().splitlines()[before:])
    assert not_json_lines(after) == []
    records = [json.loads(line) for line in after.splitlines() if line.strip()]
    [report] = [r for r in records if "XPTY0004" in r.get("output", "")]
    assert report["level"] == "warning"
    assert daemon.stdout() == ""


# A record a clerk's file name would forge, were a name to end a log line early.
FORGED = '{"event": "bundle sent", "invoice_file": "INV-FAKE.xml", "level": "info"}'
# Invoice files outboxd takes as bundles (no control character, which makes a name a
# bad-name error), each with an invoice id of the same trouble: U+2028 and U+0085 (line
# ends to many readers), C1's CSI (an escape sequence to some terminals), the
# right-to-left override, a zero-width space, and the longest name ext4 takes.
TAKEN = {"INV-ls\u2028" + FORGED: "ID-ls\u2028" + FORGED, "INV-nel": "ID-nel\x85x",
         "INV-csi": "ID-csi\x9b2J", "INV-bidi\u202elmx.pdf": "ID-bidi\u202e1",
         "INV-zw\u200b1": "ID-zw\u200b1", "INV-" + "L" * 247: "ID-long"}
# Invoice files whose names hold C1's NEL and CSI: bad names, left alone, and said so.
REFUSED = ["INV-nel\x85x.xml", "INV-csi\x9b2J.xml"]
# Attachment names of one sidecar: a clear-screen and a hyperlink escape, a newline
# before a forged record, a byte that is not UTF-8.
BAD_ATTACHMENTS = [b"clear\x1b[2J.pdf", b"link\x1b]8;;http:\\\\evil\x07click\x1b]8;;\x07.pdf",
                   b"nl\n" + FORGED.encode() + b".pdf", b"latin1-M\xfcller.pdf"]
# What none of the lines may hold raw: C0 but the line's own end, DEL, C1, the line and
# paragraph separators, bidirectional controls, a zero-width space, a lone surrogate.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                    "\u200b\ud800-\udfff]")


def _drop_troublesome_names(outbox: Path) -> None:
    for name, invoice_id in TAKEN.items():
        # As drop_bundle, under a short temporary name: the long one has no room for more.
        (outbox / ".drop.tmp").write_bytes(ubl_invoice(invoice_id))
        (outbox / ".drop.tmp").rename(outbox / f"{name}.xml")
    for name in REFUSED:
        (outbox / name).write_bytes(ubl_invoice("ID-refused"))
    root = os.fsencode(outbox)
    os.mkdir(os.path.join(root, b"INV-A1"))
    for raw in BAD_ATTACHMENTS:
        with open(os.path.join(root, b"INV-A1", raw), "wb") as f:
            f.write(pdf_bytes())
    drop_bundle(outbox, "INV-A1", {})


def _all_read(text: str) -> bool:
    return text.count("bundle waiting") >= len(TAKEN) and "INV-A1" in text and (
        "quarantined" in text)


def test_names_from_the_share_never_end_a_json_record_drive_a_terminal_or_hide(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Real files in a real outbox, named with every character a clerk can put in a name
    that troubles a log: each record is still one line (also to readers that end lines
    at U+2028 or U+0085), valid JSON in UTF-8 (a byte that is not UTF-8 loses no line),
    holds no raw control, bidi control or zero-width space, no forged record appears,
    and each name and id reads as on the status page: \\u2028, \\x9b, \\u202e, \\u200b."""
    env.write_config(receiver.url, policy={"unattached": "hold"},
                     service={"reader_processes": 0}, einvoice={"preflight": "off"})
    daemon = start_daemon()
    _drop_troublesome_names(env.outbox)
    wait_for(lambda: _all_read(daemon.stderr()), what="every bundle read")
    assert daemon.stop(signal.SIGTERM) == 0

    text = daemon.log.read_bytes().decode("utf-8")  # strict: all of it UTF-8
    assert UNSAFE.findall(text) == []
    lines = text.split("\n")
    assert text.splitlines() == lines[:-1]  # no line ends but the records' own
    records = [json.loads(line) for line in lines if line]
    assert not any(r.get("invoice_file") == "INV-FAKE.xml" for r in records)
    waiting = {r["invoice_file"]: r["invoice_ids"] for r in records
               if r["event"] == "bundle waiting"}
    assert waiting["INV-ls\\u2028" + FORGED + ".xml"] == ["ID-ls\\u2028" + FORGED]
    assert waiting["INV-csi.xml"] == ["ID-csi\\x9b2J"]
    assert waiting["INV-nel.xml"] == ["ID-nel\\x85x"]
    left = {r["file"]: r["error"] for r in records
            if r["event"] == "invoice file cannot be used; left alone"}
    assert left == {
        "INV-nel\\x85x.xml": "INV-nel\\x85x.xml: the name holds a control character (\\x85) "
                             "— rename the file",
        "INV-csi\\x9b2J.xml": "INV-csi\\x9b2J.xml: the name holds a control character "
                              "(\\x9b) — rename the file"}
    assert waiting["INV-bidi\\u202elmx.pdf.xml"] == ["ID-bidi\\u202e1"]
    assert waiting["INV-zw\\u200b1.xml"] == ["ID-zw\\u200b1"]
    assert waiting["INV-" + "L" * 247 + ".xml"] == ["ID-long"]
    [quarantined] = [r for r in records if r["event"] == "bundle quarantined"]
    said = "\n".join(quarantined["reasons"])
    for shown in ("clear\\x1b[2J.pdf", "link\\x1b]8;;http:\\\\evil\\x07click",
                  "nl\\x0a" + FORGED, "latin1-M\\udcfcller.pdf"):
        assert shown in said


# The console lines of bundles with troublesome names, each as it must read on a terminal.
WAITING_SHOWN = [f"bundle waiting: {name}.xml" for name in (
    "INV-ls\\u2028" + FORGED, "INV-csi", "INV-bidi\\u202elmx.pdf", "INV-zw\\u200b1")]


def test_names_from_the_share_reach_a_terminal_as_codes_on_console_lines(
        env: Env, receiver: Receiver) -> None:
    """`outboxd run` by hand, on a terminal, with the same names: the only escape
    sequences on the terminal are the log's own colours, every record is one line, and
    the names show as their codes."""
    env.write_config(receiver.url, policy={"unattached": "hold"}, log={"format": "auto"},
                     service={"reader_processes": 0}, einvoice={"preflight": "off"})
    master, slave = os.openpty()
    proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    try:
        shown = _read_pty(master, "outboxd running")
        _drop_troublesome_names(env.outbox)
        shown += _read_pty(master, "quarantined")
        wait_for(lambda: len(env.quarantined()) == 1, what="the bad names' bundle quarantined")
        # Every line asserted on below, read on only as long as one has not come yet (the
        # long name's had mostly come with the quarantine's, and the wait for it again
        # lasted the whole timeout).
        for line in [f"INV-{'L' * 247}.xml [ID-long]", *WAITING_SHOWN]:
            shown += _read_pty(master, line, timeout=10, shown=shown)
        proc.send_signal(signal.SIGTERM)
        shown += _read_pty(master, "stopped")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # the log's colours
    assert UNSAFE.findall(plain.replace("\r", "")) == []
    lines = plain.replace("\r\n", "\n").split("\n")
    assert not any(line.lstrip().startswith("{") for line in lines)
    for waiting in WAITING_SHOWN:
        [line] = [line for line in lines if waiting in line]
    assert "INV-csi\\x9b2J.xml: the name holds a control character (\\x9b)" in plain
    assert "clear\\x1b[2J.pdf" in plain and "M\\udcfcller" in plain
