"""`outboxd demo`: the newcomer's first command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LEAN
from helpers import wait_for

OUTBOXD = [sys.executable, "-m", "daemon"]


@pytest.fixture
def lean_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's daemon started LEAN (conftest.LEAN, as OUTBOXD_SECTION__KEY overrides of
    the file the demo writes): no reader processes loading the e-invoice rules, ~3 s and
    ~3 CPU-s a demo. For the tests about the demo's stop, its words and its timeout; the
    samples' own ends, pre-flight included, are shown as shipped by the --once test."""
    for section, values in LEAN.items():
        for key, value in values.items():
            monkeypatch.setenv(f"OUTBOXD_{section.upper()}__{key.upper()}", str(value))


def test_demo_once_exits_0_with_samples_sent_and_quarantined_with_reasons(
        tmp_path: Path) -> None:
    """`outboxd demo --once --dir TMP` starts receiver and daemon, drops the samples, and
    exits 0 once each reached its expected end, saying so: the good ones in sent/ and in the
    receiver's store (the one released without attachments shown with the warning saying
    who released it), the 200-DPI TIFF and the encrypted PDF in quarantine/ with REASON.txt
    naming the rule; the receiver and the daemon are stopped afterwards."""
    ws = tmp_path / "demo"
    began = time.monotonic()
    done = subprocess.run([*OUTBOXD, "demo", "--once", "--dir", str(ws), "--pace", "0.2",
                           "--timeout", "90"], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    # It ends once every sample is at its end (~15 s), not when its --timeout runs out.
    assert time.monotonic() - began < 90
    sent = {p.name.split("--")[0] for p in ws.glob("sent/*/*")}
    assert {"INV-1001", "batch-42", "scan-0007"} <= sent
    receipts = [json.loads(p.read_text()) for p in ws.glob("sent/*/*/receipt.json")]
    ids = {i["id"] for r in receipts for i in r["manifest"]["invoices"]}
    assert {"INV-1001", "INV-2001", "INV-2002", "INV-2003", "INV-3001"} <= ids
    stored = [p for p in (ws / "receiver-store").iterdir() if len(p.name) == 64]
    assert len(stored) == len(receipts)
    reasons = {p.parent.name.split("--")[0]: p.read_text()
               for p in ws.glob("quarantine/*/*/REASON.txt")}
    assert "200 DPI" in reasons["INV-5001"] and "tiff-resolution" in reasons["INV-5001"]
    assert "encrypted" in reasons["INV-6001"] and "pdf-encrypted" in reasons["INV-6001"]
    assert "Where to look" in done.stdout and str(ws) in done.stdout
    assert "\nEvery sample reached its expected end.\n" in done.stdout  # not the code alone
    # The released one's line says so on screen, not only in its receipt.json.
    assert any("INV-4001.xml" in line and " sent " in line
               and "released by INV-4001.send-anyway" in line
               for line in done.stdout.splitlines()), done.stdout
    log = (ws / "daemon.log").read_text().splitlines()
    assert json.loads(log[-1])["event"] == "stopped"


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    """--dir must be new or empty: an old journal would take the samples for duplicates."""
    (tmp_path / "old.txt").write_text("x")
    done = subprocess.run([*OUTBOXD, "demo", "--once", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not an empty folder" in done.stderr


@pytest.mark.usefixtures("lean_demo")
def test_ctrl_c_stops_receiver_and_daemon_and_says_where_the_files_are(tmp_path: Path) -> None:
    """Without --once the demo keeps running after the samples; SIGINT (Ctrl-C) stops the
    daemon and the receiver it started, prints where the files are and exits 0."""
    ws = tmp_path / "demo"
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        proc = subprocess.Popen([*OUTBOXD, "demo", "--dir", str(ws), "--pace", "0.2"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: "Every sample reached its end" in log.read_text(), timeout=90,
                     what="the samples to finish")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert f"Everything the demo made is in {ws}" in text
    assert json.loads((ws / "daemon.log").read_text().splitlines()[-1])["event"] == "stopped"
    assert _receiver_gone(ws)


@pytest.mark.usefixtures("lean_demo")
def test_while_it_keeps_running_it_says_where_to_follow_the_files_you_drop(
        tmp_path: Path) -> None:
    """The live view follows the samples only, and "Where to look" comes after Ctrl-C,
    which stops the daemon: a newcomer who drops a bundle of their own as invited saw
    nothing of it. The line that invites them names the status page and a status command
    that runs as printed, and the bundle they drop shows there."""
    import re
    import shlex
    ws = tmp_path / "demo"
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        # --timeout bounds --once only: without it the demo runs on past it.
        proc = subprocess.Popen([*OUTBOXD, "demo", "--dir", str(ws), "--pace", "0.2",
                                 "--timeout", "1"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: "Every sample reached its end" in log.read_text(), timeout=90,
                     what="the samples to finish")
            said = log.read_text().split("Every sample reached its end", 1)[1]
            assert str(ws / "outbox" / "outboxd-status.html") in said, said
            match = re.search(r"`([^`]* status -c [^`]*)`", said)
            assert match, said
            (ws / "outbox" / "MINE-1.xml").write_text(
                "<Invoice><ID>MINE-1</ID></Invoice>")

            def listed() -> bool:
                shown = subprocess.run(shlex.split(match.group(1)), capture_output=True,
                                       text=True, timeout=30)
                return "MINE-1.xml" in shown.stdout
            wait_for(listed, timeout=30, interval=0.5,
                     what="the dropped bundle in the status command")
            wait_for(lambda: "MINE-1.xml" in (ws / "outbox" / "outboxd-status.html")
                     .read_text(), timeout=30, what="the dropped bundle on the page")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def _receiver_gone(ws: Path) -> bool:
    """The receiver's port no longer answers."""
    import re
    import socket
    cfg = (ws / "config.toml").read_text()
    match = re.search(r"127\.0\.0\.1:(\d+)", cfg)
    assert match
    port = int(match.group(1))
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.usefixtures("lean_demo")
def test_a_demo_stopped_by_its_timeout_says_so_not_that_samples_failed(
        tmp_path: Path) -> None:
    """`demo --once` that reaches --timeout first exits 1 and says why: stopped by the
    timeout, with each sample not at its end yet and where it is so far. It used to list
    them as "Not at their expected end", samples never even dropped among them, as if
    the daemon had failed them."""
    ws = tmp_path / "demo"
    done = subprocess.run([*OUTBOXD, "demo", "--once", "--dir", str(ws), "--pace", "60",
                           "--timeout", "1"], capture_output=True, text=True, timeout=150)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\nStopped (--timeout 1 s) before every sample had reached its end; not there " \
           "yet: " in done.stdout
    assert "INV-6001.xml (expected quarantined, not seen yet)" in done.stdout
    assert "Not at their expected end" not in done.stdout
    assert "Every sample reached its expected end" not in done.stdout
