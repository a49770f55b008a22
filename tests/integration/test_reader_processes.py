"""The reader processes of a real daemon, started as shipped (reader_processes = "auto",
pre-flight on: no `lean` here; the reload's without pre-flight, which it does not touch):
what a SIGHUP and a reader's death do to them, seen from the outbox, the receiver and the
log. (The readers alone: tests/reading/test_readers.py.)"""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, wait_for
from reading.test_readers import alive, child_pids, readers_of

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")


def test_a_reload_reaches_the_reader_processes_without_starting_them_again(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An attachment over max_attachment_bytes is held ([policy] invalid = "hold"); the
    admin raises the limit and sends SIGHUP: the same reader processes read the bundle
    again by the new limit, and it goes out. (A reader that kept the settings it started
    with would hold it for good.)"""
    # Without the e-invoice rules, which each reader would load for seconds first: the
    # limit is checked by the reader either way, and the reload changes nothing of them.
    no_rules = {"einvoice": {"preflight": "off"}}
    env.write_config(receiver.url, policy={"invalid": "hold"},
                     validation={"max_attachment_bytes": 50_000}, **no_rules)
    daemon = start_daemon()
    readers = readers_of(child_pids(daemon.popen.pid))
    assert len(readers) == min(2, os.cpu_count() or 1)
    big = pdf_bytes()
    drop_bundle(env.outbox, "INV-R1", {"big.pdf": big + b"%" * (60_000 - len(big))})
    errors_file = env.outbox / "INV-R1.errors.txt"
    wait_for(errors_file.exists, what="the bundle held with its errors file")
    assert "is 60.0 KB (60,000 bytes); at most 50 KB is taken" in errors_file.read_text()

    env.write_config(receiver.url, policy={"invalid": "hold"},
                     validation={"max_attachment_bytes": 100_000}, **no_rules)
    daemon.popen.send_signal(signal.SIGHUP)
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/ after the reload")
    assert (sent / "INV-R1" / "big.pdf").stat().st_size == 60_000
    assert len(receiver.accepted()) == 1 and not errors_file.exists()
    assert readers_of(child_pids(daemon.popen.pid)) == readers


def test_reader_processes_killed_by_the_system_are_replaced_and_bundles_still_go_out(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Every reader process is killed (SIGKILL, as the OOM killer does): the daemon logs
    each death as a warning, starts a new reader in its place (with the e-invoice rules:
    pre-flight is on), keeps running, and a bundle dropped after is read, pre-flighted
    and delivered; every log line stays JSON, with no traceback."""
    env.write_config(receiver.url)
    daemon = start_daemon()
    killed = readers_of(child_pids(daemon.popen.pid))
    assert killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: daemon.stderr().count("a reader process died; started again")
             == len(killed), what="each dead reader started again")
    wait_for(lambda: not any(alive(p) for p in killed), what="the killed readers gone")
    fresh = readers_of(child_pids(daemon.popen.pid))
    assert len(fresh) == len(killed) and not set(fresh) & set(killed)

    drop_bundle(env.outbox, "INV-K1", {"a.pdf": pdf_bytes()})
    [sent] = wait_for(env.sent_bundles, what="a bundle delivered after the deaths")
    assert (sent / "INV-K1" / "a.pdf").exists() and len(receiver.accepted()) == 1
    assert daemon.popen.poll() is None
    records = [json.loads(line) for line in daemon.stderr().splitlines() if line.strip()]
    deaths = [r for r in records if r["event"] == "a reader process died; started again"]
    assert [r["level"] for r in deaths] == ["warning"] * len(killed)
    assert "Traceback" not in daemon.stderr()
