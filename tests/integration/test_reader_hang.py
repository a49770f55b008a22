"""A reload whose new reader processes hang while loading the e-invoice rules (here: the
state dir's compiled rules on a share that hangs): the daemon is neither held up until
systemd's watchdog kills it nor left without readers (daemon/reading/readers.py,
RELOAD_WAIT; daemon/loop/offloop.py). A real daemon, a real hung FUSE mount, the
reference receiver on 127.0.0.1."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, Receiver, journal_states
from helpers import drop_bundle, outboxd_with, pdf_bytes, wait_for
from hungshare import hung_share
from notifysock import Notes, events, notify_socket

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")

WATCHDOG_SEC = 3.0  # its pings every 1.5 s; the reload's wait (4 s) is longer than it
RELOAD_WAIT = 4.0


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notes]:
    yield from notify_socket(tmp_path, monkeypatch, WATCHDOG_SEC)


def test_a_reload_whose_new_readers_hang_keeps_the_watchdog_and_the_running_reader(
        env: Env, receiver: Receiver, start_daemon: Any, notes: Notes) -> None:
    """A reload to 2 readers while the state dir's einvoice/ hangs (the rules' compile
    cache on a share that does not answer): the new readers cannot load. The reload ends
    after RELOAD_WAIT with READY=1, WATCHDOG=1 was sent while it waited (longer than
    WatchdogSec/2), one warning says why with what to look at, the rest of the file is
    taken ("configuration reloaded"), and bundles are still read, pre-flighted and sent by
    the reader kept."""
    env.daemon = outboxd_with({"daemon.reading.reader_lifecycle.RELOAD_WAIT": RELOAD_WAIT})
    env.write_config(receiver.url, service={"reader_processes": 1})
    daemon = start_daemon()
    wait_for(lambda: "READY=1" in notes(), what="READY=1")
    drop_bundle(env.outbox, "INV-R1", {"a.pdf": pdf_bytes()})
    wait_for(lambda: journal_states(env).get("INV-R1.xml") == "sent", timeout=30,
             what="a bundle sent before the reload")
    with hung_share(env.state / "einvoice"):
        env.write_config(receiver.url, service={"reader_processes": 2})
        seen = len(notes())
        asked = time.monotonic()
        daemon.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "READY=1" in notes()[seen:], timeout=30,
                 what="READY=1 after the reload")
        took = time.monotonic() - asked
        during = notes()[seen:]
        during = during[during.index(next(m for m in during if m.startswith("RELOADING=1"))):
                        during.index("READY=1")]
        assert during.count("WATCHDOG=1") >= 2, during
        assert RELOAD_WAIT <= took < RELOAD_WAIT + 15
        [warning] = events(daemon, "reader processes not changed")
        assert warning["level"] == "warning"
        assert warning["event"] == ("reader processes not changed: new reader processes "
                                    "did not load in time (ended); the ones running go on")
        assert warning["error"] == ("2 of 2 new reader processes did not say they were "
                                    "ready within 4 s (2 waiting on a disk or a mount)")
        assert warning["running"] == 1 and "einvoice/" in warning["fix"]
        assert events(daemon, "configuration reloaded")
        drop_bundle(env.outbox, "INV-R2", {"a.pdf": pdf_bytes()})
        wait_for(lambda: journal_states(env).get("INV-R2.xml") == "sent", timeout=30,
                 what="a bundle sent after the reload, by the reader kept")
    assert daemon.popen.poll() is None
    assert "Traceback" not in daemon.stderr()
