"""SIGTERM/SIGINT with a delivery in flight (docs/operations.md, Stopping): the daemon
stops taking new bundles, finishes the delivery when it can within
`[service] shutdown_grace_seconds`, else leaves it safely for the next start, and exits 0
either way."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from typing import Any

import pytest
from conftest import STOP_GRACE, Env, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_finishes_a_delivery_that_ends_within_the_grace_and_exits_0(
        env: Env, start_receiver: Any, start_daemon: Any, sig: int) -> None:
    """The receiver stores the bundle and takes 2 s to answer; the stop comes meanwhile.
    Within the grace (20 s, the default) the answer arrives: the daemon archives the
    bundle in sent/ with its receipt before it exits 0, and a bundle dropped after the
    stop is not taken."""
    # The hold is the time the test has to begin the stop once the bundle is stored
    # (some 50 ms unloaded): 2 s, and asserted below to have been enough.
    slow = start_receiver("--hold-first", "2", process=True)
    env.write_config(slow.url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-8001", {"a.pdf": pdf_bytes()})
    wait_for(lambda: [r for r in slow.requests() if r["status"] == 201],
             what="the receiver to store the bundle")
    daemon.popen.send_signal(sig)
    wait_for(lambda: "stopping" in daemon.stderr(), what="the daemon to begin its stop")
    drop_bundle(env.outbox, "INV-8002", {"b.pdf": pdf_bytes(2)})
    assert daemon.stop(sig) == 0
    events = [json.loads(line)["event"] for line in daemon.stderr().splitlines() if line.strip()]
    assert events.index("stopping") < events.index("bundle sent")  # in flight at the stop
    [archived] = env.sent_bundles()
    assert (archived / "receipt.json").is_file()
    assert (archived / "INV-8001" / "a.pdf").read_bytes() == pdf_bytes()
    assert journal_states(env)["INV-8001.xml"] == "sent"
    assert list(env.processing.iterdir()) == []
    # Taken after the stop began: not claimed, still in the outbox for the next start.
    assert (env.outbox / "INV-8002.xml").is_file()
    assert journal_states(env).get("INV-8002.xml") not in ("sent", "delivering")
    assert len(slow.accepted()) == 1


def test_a_stop_abandons_a_delivery_past_the_grace_exits_0_and_the_next_start_sends_it_once(
        env: Env, start_receiver: Any, start_daemon: Any) -> None:
    """The receiver stores the bundle and sits on its answer for a minute; the stop
    (grace 0.2 s) does not wait for it: the daemon exits 0 within seconds, the bundle
    stays whole in processing, not shown as sent; the next start posts it again with
    the same Idempotency-Key and archives it once."""
    slow = start_receiver("--hold-first", "60", process=True)  # its hold outlasts the test
    env.write_config(slow.url, service={"shutdown_grace_seconds": 0.2})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-8003", {"a.pdf": pdf_bytes()})
    wait_for(lambda: [r for r in slow.requests() if r["status"] == 201],
             what="the receiver to store the bundle")
    began = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    # The grace and the stop's own steps, far from the receiver's 60 s hold.
    assert time.monotonic() - began < 20
    assert "abandoning deliveries still in flight" in daemon.stderr()
    assert env.sent_bundles() == []
    assert journal_states(env)["INV-8003.xml"] == "delivering"
    [work] = list(env.processing.iterdir())
    assert (work / "INV-8003.xml").is_file() and (work / "INV-8003" / "a.pdf").is_file()

    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/ after the restart")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    statuses = [r["status"] for r in slow.requests()]
    assert statuses.count(201) == 1 and statuses[-1] == 200
    assert set(statuses) <= {200, 201, 409}



def stop_signals_until_it_exits(popen: subprocess.Popen[bytes], sig: int) -> int:
    """`sig` sent again every millisecond until the process has ended (at most
    STOP_GRACE): whatever part of the stop a second signal lands in, one does. Its
    exit code."""
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return popen.wait(timeout=0.001)
    popen.kill()
    raise AssertionError("the daemon did not end its stop")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_again_during_the_stop_change_nothing_and_it_exits_0(
        env: Env, start_receiver: Any, start_daemon: Any, sig: int) -> None:
    """An admin presses Ctrl-C again, or a script sends SIGTERM again, while the daemon
    stops with a delivery in flight: the stop goes on as begun to its end (not killed
    by the signal, exit -15 or -2, as it was when one came after "stopped"; no
    traceback), the delivery is left for the next start as after one signal, and the
    daemon exits 0."""
    slow = start_receiver("--hold-first", "60", process=True)  # its hold outlasts the test
    # The signals come every millisecond, in the grace as in each step after it: 0.3 s
    # of grace is some 300 of them, as many as any step needs to be hit.
    env.write_config(slow.url, service={"shutdown_grace_seconds": 0.3})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-8004", {"a.pdf": pdf_bytes()})
    wait_for(lambda: [r for r in slow.requests() if r["status"] == 201],
             what="the receiver to store the bundle")
    daemon.popen.send_signal(sig)
    wait_for(lambda: "stopping" in daemon.stderr(), what="the daemon to begin its stop")
    assert stop_signals_until_it_exits(daemon.popen, sig) == 0, daemon.stderr()
    log = daemon.stderr()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "abandoning deliveries still in flight" in log and '"stopped"' in log
    assert journal_states(env)["INV-8004.xml"] == "delivering"
