"""The outbox folder itself replaced under a running daemon (an admin moves it aside and
puts a new one in its place; a share mounted anew): the real daemon, watching by inotify
or by polling, and the reference receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from conftest import Env, Receiver, journal_states
from helpers import drop_bundle, outboxd_with, wait_for

from daemon.fs.fswrite import rename_exchange

pytestmark = pytest.mark.usefixtures("no_attachment_wait", "quick_settle")

# No rescan within the test: what it checks must come from the watcher being told.
QUIET = {"rescan_seconds": 600, "poll_interval_seconds": 0.2}


@pytest.mark.parametrize("watch", ["inotify", "polling"])
def test_an_outbox_replaced_by_a_new_folder_is_watched_again_at_once(
        env: Env, receiver: Receiver, start_daemon, watch: str) -> None:
    """The outbox is moved aside and a new, empty one takes its place. The daemon watches
    the new folder: a bundle dropped there is sent without waiting for the next rescan
    (ten minutes here). Watching by inotify, whose watch followed the old folder, it says
    in the log at once that the folder was replaced; before, the watch went on following
    the old folder, silently, and every bundle waited for a rescan. The poller lists the
    path at each poll, so it sees the new folder as it is."""
    env.write_config(receiver.url, outbox={**QUIET, "watch": watch})
    daemon = start_daemon()
    new = env.root / "outbox.new"
    new.mkdir()
    # In one step (the old outbox is then outbox.new): two renames left a moment with no
    # outbox, which a loaded host's daemon could list — an outage, rightly said, not the
    # replacement this test is about.
    assert rename_exchange(new, env.outbox)
    if watch == "inotify":
        wait_for(lambda: "the outbox folder was replaced" in daemon.stderr(),
                 what="the log line that the outbox was replaced")

    drop_bundle(env.outbox, "INV-R1", {})
    wait_for(lambda: journal_states(env).get("INV-R1.xml") == "sent",
             what="the bundle dropped into the new outbox to be sent")

    assert [p.name.split("--")[0] for p in env.sent_bundles()] == ["INV-R1"]
    assert len(receiver.accepted()) == 1
    assert daemon.popen.poll() is None
    assert (watch == "inotify") == ("the outbox folder was replaced" in daemon.stderr())
    assert "cannot list the outbox" not in daemon.stderr()  # no outage: it never went


@pytest.mark.parametrize("watch", ["inotify", "polling"])
def test_an_outbox_taken_away_is_said_in_the_log_at_once(
        env: Env, receiver: Receiver, start_daemon, watch: str) -> None:
    """The outbox moved away with nothing in its place (a share unmounted): the log says
    so at once, in one error line naming the outbox, not first at the next rescan (ten
    minutes here); the daemon keeps running."""
    env.write_config(receiver.url, outbox={**QUIET, "watch": watch})
    daemon = start_daemon()
    os.rename(env.outbox, env.root / "outbox.old")
    wait_for(lambda: "cannot list the outbox" in daemon.stderr(),
             what="the log line that the outbox went away")

    [line] = [x for x in daemon.stderr().splitlines() if "cannot list the outbox" in x]
    assert str(env.outbox) in line and "the outbox folder" not in daemon.stderr()
    assert daemon.popen.poll() is None


def _records(daemon: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.stderr().splitlines() if line.strip()]


@pytest.mark.parametrize("watch", ["inotify", "polling"])
def test_an_outbox_that_comes_back_is_watched_within_seconds_and_its_outage_said_once(
        env: Env, receiver: Receiver, start_daemon, watch: str) -> None:
    """The outbox is moved away (a share gone) and, once the log says so, moved back: one
    error line for the outage, one line when it is back (naming the outbox, with how long
    it was away), and a bundle dropped right after is sent within seconds — not at the
    next rescan, ten minutes away (before, it waited for that rescan, and every rescan
    of the outage logged two errors)."""
    # The outbox looked at again 0.2 s after its first failed look, not 1 s (outage.FIRST_LOOK):
    # its coming back is what is shown, not how soon the first look after the loss comes.
    env.daemon = outboxd_with({"daemon.watching.outage.FIRST_LOOK": 0.2})
    env.write_config(receiver.url, outbox={**QUIET, "watch": watch})
    daemon = start_daemon()
    # The page the start writes is in the outbox: written before it goes (else that write
    # may fail, and say so, before the loop has heard the outbox went).
    wait_for((env.outbox / "outboxd-status.html").exists, what="the status page")
    away = env.root / "outbox.away"
    os.rename(env.outbox, away)
    wait_for(lambda: any(r["event"].startswith("cannot list the outbox")
                         for r in _records(daemon)), what="the error that the outbox is away")
    os.rename(away, env.outbox)
    wait_for(lambda: any(r["event"] == "the outbox is there again; watching it"
                         for r in _records(daemon)), timeout=30,
             what="the log line that the outbox is back")
    drop_bundle(env.outbox, "INV-B1", {})
    wait_for(lambda: journal_states(env).get("INV-B1.xml") == "sent", timeout=30,
             what="the bundle dropped once the outbox was back to be sent")

    records = _records(daemon)
    errors = [r for r in records if r["level"] == "error"]
    assert [r["event"] for r in errors] == [
        "cannot list the outbox; looking again every few seconds until it is back"]
    assert errors[0]["outbox"] == str(env.outbox) and errors[0]["fix"]
    [back] = [r for r in records if r["event"] == "the outbox is there again; watching it"]
    assert back["outbox"] == str(env.outbox) and back["away_seconds"] >= 0
    assert not any(r["event"] == "watcher was dead; restarted" for r in records)
    # Nor a warning that the folder went or was replaced beside the outage's own lines
    # (a share that comes and goes logged three lines each time).
    assert not any(r["event"].startswith("the outbox folder") for r in records)
    assert len(receiver.accepted()) == 1 and daemon.popen.poll() is None
