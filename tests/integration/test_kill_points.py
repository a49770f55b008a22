"""SIGKILL at the steps after a claim, one at a time, each in a daemon run as `outboxd
run` is but with one function of it ending the process (`_KILLED_AT`): the claim's check
done, the hand-over's `delivering` not yet made durable, the check before the POST, the
receipt recorded, the entry in sent/ or quarantine/ before the row says so, a restart's
own claim check and its take-over of the live rows; a claim recorded whose work folder
was not made yet; reader processes loading at a reload; after an outbox moved, a claim
left waiting that holds its invoice file back and a work folder followed at a rescan;
`outboxd retry` between two bundles, and between its journal mark and its move. After
each kill `outboxd status` shows the bundle as on its way (never sent, quarantined or
missing) and processing/ holds it; after a restart it ends once, in sent/ or
quarantine/, the receiver holding it at most once under its one key."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import OUTBOXD, Env, Proc, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for

# Lean (conftest.LEAN): the kills are in the daemon's own steps after a claim, not in
# its readers; bundles come whole (drop_bundle), so they settle in 0.1 s.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

# `outboxd COMMAND…` (the daemon: `run`) with `TARGET` ("module:attribute", a function or
# Class.method) ending the process by SIGKILL at its `NTH` call, before it runs or once it
# returned (`WHEN`); its children's pids written first into CHILDREN (a reader process
# must not outlive it). FAILING ("module:attribute:N", or ""): that one raises the share's
# EIO at its first N calls, for a kill at a step that only a failed look leads to.
_KILLED_AT = """
import errno, os, signal, sys
from importlib import import_module
from pathlib import Path
target, when, nth, children, failing, *command = sys.argv[1:]
def wrap(target, make):
    module_name, _, dotted = target.partition(":")
    owner = import_module(module_name)
    *path, name = dotted.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    wrapped = make(real)
    setattr(owner, name, staticmethod(wrapped) if isinstance(
        owner.__dict__.get(name), staticmethod) else wrapped)
def kill():
    kids = []
    for task in Path("/proc/self/task").iterdir():
        kids += (task / "children").read_text().split()
    Path(children).write_text(" ".join(kids))
    os.kill(os.getpid(), signal.SIGKILL)
def killing(real):
    calls = []
    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) != int(nth):
            return real(*args, **kwargs)
        if when == "before":
            kill()
        got = real(*args, **kwargs)
        kill()
        return got
    return killed
def failing_first(count):
    def make(real):
        calls = []
        def fails(*args, **kwargs):
            calls.append(1)
            if len(calls) <= count:
                raise OSError(errno.EIO, os.strerror(errno.EIO), "(the share)")
            return real(*args, **kwargs)
        return fails
    return make
wrap(target, killing)
if failing:
    fail_target, _, count = failing.rpartition(":")
    wrap(fail_target, failing_first(int(count)))
from daemon.entry import main
sys.exit(main(command))
"""

IN_FLIGHT_SHOWN = {"delivering", "retrying"}

# (target, when): the step and where in it the kill lands; a list is one kill per run.
POINTS: dict[str, list[tuple[str, str]]] = {
    # `delivering` committed (not durable yet), no POST made.
    "hand-over made durable, before the POST": [
        ("daemon.journal:Journal.durable_through", "before")],
    # The receiver took it; the receipt and the archive folder recorded, nothing moved.
    "delivered recorded, before the archive": [
        ("daemon.delivery.delivered:Delivered._delivered", "after")],
    # The entry renamed into sent/ with its receipt, the row still `delivered`.
    "entry in sent/, before the row says so": [
        ("daemon.archiving.moves:Moves._place", "after")],
    # Killed once the claim's files were renamed into processing and synced and the check
    # after the move made (row `claiming`), then again in the restart's own check of the
    # claim. (Each point after it also begins with this kill: its state after it is
    # asserted there too, and the restart that finishes it is the next run.)
    "claim checked, then the restart's check": [
        ("daemon.claiming.claims:changed_since_read", "after"),
        ("daemon.claiming.recovery:Recovery._check_claimed", "after")],
    # Killed at the claim's check, then at the restart's take-over of the live rows
    # (recovery done, the row `delivering` again, READY not yet said).
    "claim checked, then the restart's take-over": [
        ("daemon.claiming.claims:changed_since_read", "after"),
        ("daemon.loop.takeover:Takeover.start", "after")],
    # Read again after a restart, the check before the POST made, nothing posted yet.
    "restart's check before the POST": [
        ("daemon.claiming.claims:changed_since_read", "after"),
        ("daemon.delivery.beforepost:BeforePost._changed_after_post", "after")],
}


def _status(env: Env) -> dict[str, Any]:
    out = subprocess.run([*OUTBOXD, "status", "--json", "-c", str(env.config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _killed_run(env: Env, target: str, when: str, n: int,
                drop: Callable[[int], object] | None = None, nth: int = 1,
                failing: str = "", command: list[str] | None = None) -> list[int]:
    """Run n of the daemon (or of `command`, outboxd's arguments) killed at the `nth` call
    of `target` (`when`), `failing` failing as _KILLED_AT says: `drop` called with its pid
    once the daemon runs (the bundle dropped, a reload asked for), then waited for until
    the kill lands. The pids of its children at the kill."""
    children = env.root / f"killed{n}.children"
    killed = Proc([sys.executable, "-c", _KILLED_AT, target, when, str(nth), str(children),
                   failing, *(command or ["run", "-c", str(env.config)])],
                  env.root / f"killed{n}.log", env.root / f"killed{n}.out")
    try:
        if drop is not None:
            wait_for(lambda: "outboxd running" in killed.stderr()
                     or killed.popen.poll() is not None, timeout=60, what="the daemon to start")
            drop(killed.popen.pid)
        wait_for(lambda: killed.popen.poll() is not None, timeout=60,
                 what=f"the kill at {target}")
    finally:
        assert killed.stop() == -signal.SIGKILL, killed.stderr()
    return [int(pid) for pid in children.read_text().split()]


def _check_shown_in_flight(env: Env, name: str) -> None:
    """While outboxd is down: status lists the bundle as on its way, its files in
    processing/ (or, the move made, its entry in sent/), never as done."""
    [row] = [b for b in _status(env)["bundles"] if b["invoice_file"] == name]
    assert row["state"] in IN_FLIGHT_SHOWN, row
    in_processing = [p for p in env.processing.iterdir() if (p / name).exists()]
    in_sent = [p for p in env.sent_bundles() if (p / name).exists()]
    assert len(in_processing) + len(in_sent) == 1, (in_processing, in_sent)


@pytest.mark.parametrize("point", list(POINTS))
def test_a_kill_after_the_claim_ends_the_bundle_once_with_one_post_per_key(
        env: Env, receiver, start_daemon, point: str) -> None:
    """SIGKILL at `point` (one kill per run listed there, each run started again after
    the last): meanwhile `status` shows the bundle delivering or retrying and its files
    lie in processing/ (or its entry in sent/); after a restart it is in sent/ once with
    the receipt of the receiver's one 201, every POST under its one Idempotency-Key,
    nothing left in processing/ or the outbox."""
    env.write_config(receiver.url)
    name = "INV-5100.xml"
    pdfs = {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)}
    for n, (target, when) in enumerate(POINTS[point]):
        _killed_run(env, target, when, n, None if n else
                    lambda _: drop_bundle(env.outbox, "INV-5100", pdfs))
        _check_shown_in_flight(env, name)

    _check_sent_once_after_a_restart(env, receiver, start_daemon, "INV-5100", pdfs)


def _check_sent_once_after_a_restart(env: Env, receiver: Any, start_daemon: Callable[[], Proc],
                               stem: str, pdfs: dict[str, bytes]) -> None:
    """The daemon started again sends the bundle `stem` once: its entry in sent/ with the
    receipt of the receiver's one 201, every POST under its one Idempotency-Key, its
    files as dropped, nothing in quarantine/, processing/ or the outbox, and `status` says
    sent."""
    name = f"{stem}.xml"
    daemon = start_daemon()
    wait_for(lambda: journal_states(env).get(name) == "sent", timeout=60,
             what="the bundle sent after the restart")
    [entry] = env.sent_bundles()
    receipt = json.loads((entry / "receipt.json").read_text("utf-8"))
    bundle_id = receipt["manifest"]["bundle_id"]
    requests = receiver.requests()
    assert {r["idempotency_key"] for r in requests} == {bundle_id}, requests
    assert [r["status"] for r in requests].count(201) == 1, requests
    [accepted] = receiver.accepted()
    stored = json.loads((receiver.store / bundle_id / "response.json").read_text())
    assert receipt["response"]["receipt_id"] == stored["receipt_id"]
    for pdf, data in pdfs.items():
        assert (entry / stem / pdf).read_bytes() == data
    assert env.quarantined() == [] and list(env.processing.iterdir()) == []
    assert not (env.outbox / name).exists() and not (env.outbox / stem).exists()
    [row] = [b for b in _status(env)["bundles"] if b["invoice_file"] == name]
    assert row["state"] == "sent", row
    assert "Traceback" not in daemon.stderr()


# A bundle on its way when the admin stopped outboxd and moved the outbox, its processing
# folder in it, to a new path (docs/operations.md, Moving the outbox to a new path or
# server), and the start's look for its work folder in the processing folder now
# configured failed (the share's EIO, FAILS times), so its row waits for a rescan (its
# row id in MovedWork._unfollowed). (The step it was stopped at, the kill after the move,
# how many looks fail, the rescan period.)
# The rescan that follows a work folder the start could not look for: what the two
# points after it wait for, once (1 s was a second of each test waiting for it).
QUICK_RESCAN = 0.2
MOVED_POINTS: dict[str, tuple[tuple[str, str], tuple[str, str], int, float]] = {
    # A claim stopped once its work folder was made, the bundle still whole in the outbox;
    # killed once the waiting claim held its invoice file back from being decided (the
    # looks keep failing).
    "waiting claim holds its invoice file back": (
        ("daemon.claiming.claim:made_in_processing", "after"),
        ("daemon.claiming.stranded:Stranded.cut_pending", "after"), 1000, 3600),
    # The same claim, killed once a rescan found its work folder and the row names it,
    # before the claim is finished from there.
    "claim's work folder followed at a rescan": (
        ("daemon.claiming.claim:made_in_processing", "after"),
        ("daemon.claiming.movedwork:MovedWork.followed_again", "after"), 1, QUICK_RESCAN),
    # `delivering`, no POST made; killed once a rescan found its work folder, before the
    # attempt from there.
    "delivering bundle's work folder followed at a rescan": (
        ("daemon.journal:Journal.durable_through", "before"),
        ("daemon.claiming.movedwork:MovedWork.followed_again", "after"), 1, QUICK_RESCAN),
}
_FOLLOW_FAILED = "cannot look for a work folder in the processing folder now configured"
_FOLLOWED = "work folder found in the processing folder now configured"


@pytest.mark.parametrize("point", list(MOVED_POINTS))
def test_a_kill_after_the_outbox_moved_ends_the_bundle_once(
        env: Env, receiver, start_daemon, point: str) -> None:
    """SIGKILL at `point`, a step of a bundle whose work folder a moved outbox's start
    could not look for: meanwhile `status` shows it on its way, its files in the outbox
    or processing/; after a restart it is in sent/ once, one 201 under its one key."""
    (stopped, when), (target, at), fails, rescan = MOVED_POINTS[point]
    before = env.root / "before" / "outbox"  # the old path
    before.mkdir(parents=True)
    env.write_config(receiver.url, outbox={"path": str(before)})
    pdfs = {"a.pdf": pdf_bytes()}
    _killed_run(env, stopped, when, 0, lambda _: drop_bundle(before, "INV-5500", pdfs))
    env.outbox.rmdir()
    before.rename(env.outbox)
    env.write_config(receiver.url, outbox={"rescan_seconds": rescan})
    _killed_run(env, target, at, 1,
                failing=f"daemon.claiming.movedwork:MovedWork._folder_here:{fails}")
    said = (env.root / "killed1.log").read_text()
    assert _FOLLOW_FAILED in said and (_FOLLOWED in said) == (fails == 1), said
    # Its folder here is its row's meanwhile, not one the orphan sweep removes or names.
    assert "unknown to the journal" not in said, said
    [row] = [b for b in _status(env)["bundles"] if b["invoice_file"] == "INV-5500.xml"]
    assert row["state"] in IN_FLIGHT_SHOWN, row
    assert env.sent_bundles() == [] and env.quarantined() == [] and receiver.requests() == []
    _check_sent_once_after_a_restart(env, receiver, start_daemon, "INV-5500", pdfs)


# (why it is quarantined, target, when): a refusal (422) killed at its move into
# quarantine/ (before: `quarantining` recorded with its reasons; after: the entry there,
# the row not yet `quarantined`); an invalid bundle killed once its claim was checked
# (row `claiming` with its reasons, before the quarantine was decided).
QUARANTINE_POINTS = {
    "refused, before its move": ("rejected", "daemon.archiving.moves:Moves._place", "before"),
    "refused, after its move": ("rejected", "daemon.archiving.moves:Moves._place", "after"),
    "invalid, claim checked": ("extension-mismatch",
                               "daemon.claiming.claims:changed_since_read", "after"),
}


@pytest.mark.parametrize("point", list(QUARANTINE_POINTS))
def test_a_kill_on_the_way_into_quarantine_ends_the_bundle_once(
        env: Env, start_receiver, start_daemon, point: str) -> None:
    """SIGKILL at `point` on the way of a bundle into quarantine/. Meanwhile `status`
    shows it on its way with the reasons it goes for, never as done; after a restart
    quarantine/ holds it once with those reasons, saying nothing was delivered (the
    refused one's one POST not made again, the invalid one never posted), nothing in
    sent/ or processing/."""
    code, target, when = QUARANTINE_POINTS[point]
    refusing = start_receiver("--fail-first", "422")
    env.write_config(refusing.url)
    name = "INV-5200.xml"
    # A PDF named .tif: whole, so quarantined at once (an empty file waits 30 s as a
    # copy perhaps cut short).
    files = {"a.pdf": pdf_bytes(), **({"scan.tif": pdf_bytes(2)} if code != "rejected"
                                      else {})}
    _killed_run(env, target, when, 0, lambda _: drop_bundle(env.outbox, "INV-5200", files))
    [row] = [b for b in _status(env)["bundles"] if b["invoice_file"] == name]
    assert row["state"] in IN_FLIGHT_SHOWN and code in {r["code"] for r in row["reasons"]}, row
    entries = env.quarantined()
    assert len(entries) == (1 if when == "after" and code == "rejected" else 0)
    assert len([p for p in env.processing.iterdir() if (p / name).exists()]) == 1 - len(entries)

    daemon = start_daemon()
    wait_for(lambda: journal_states(env).get(name) == "quarantined", timeout=60,
             what="the bundle quarantined after the restart")
    [entry] = env.quarantined()
    record = json.loads((entry / "reason.json").read_text("utf-8"))
    assert code in {r["code"] for r in record["reasons"]}, record
    assert record.get("delivery_outcome_unknown") in (None, False), record
    assert "Nothing was delivered" in (entry / "REASON.txt").read_text("utf-8")
    for pdf, data in files.items():
        assert (entry / "INV-5200" / pdf).read_bytes() == data
    assert [r["status"] for r in refusing.requests()] == ([422] if code == "rejected" else [])
    assert env.sent_bundles() == [] and list(env.processing.iterdir()) == []
    [row] = [b for b in _status(env)["bundles"] if b["invoice_file"] == name]
    assert row["state"] == "quarantined", row
    assert "Traceback" not in daemon.stderr()


def test_retry_killed_between_two_bundles_leaves_the_second_quarantined_and_honest(
        env: Env, start_receiver, start_daemon) -> None:
    """`outboxd retry A B` killed once A is back in the outbox, before B moves: the
    running daemon sends A, once; B stays in quarantine/ as it was, its one refused POST
    not made again, `status` saying A sent and B quarantined (A's quarantined row not
    left beside its sent one); nothing in processing/. The same command run again is
    refused whole, saying how to retry B alone, which then ends it like A."""
    refusing = start_receiver("--fail-first", "422,422")
    env.write_config(refusing.url)
    daemon = start_daemon()
    stems = ("INV-5600", "INV-5601")
    for stem in stems:
        drop_bundle(env.outbox, stem, {"a.pdf": pdf_bytes(int(stem[-1]) + 1)})
    wait_for(lambda: len(env.quarantined()) == 2, timeout=60, what="both quarantined")
    wait_for(lambda: all(journal_states(env).get(f"{s}.xml") == "quarantined" for s in stems),
             what="both recorded quarantined")
    first, second = env.quarantined()
    assert first.name.startswith(stems[0]) and second.name.startswith(stems[1])
    _killed_run(env, "daemon.actions.retry:retry", "after", 0,
                command=["retry", "-c", str(env.config), str(first), str(second)])
    wait_for(lambda: journal_states(env).get(f"{stems[0]}.xml") == "sent", timeout=60,
             what="the bundle retry moved back sent")

    def states(stem: str) -> list[str]:
        return [b["state"] for b in _status(env)["bundles"] if b["invoice_file"] == f"{stem}.xml"]
    assert (states(stems[0]), states(stems[1])) == (["sent"], ["quarantined"])
    assert env.quarantined() == [second] and (second / "REASON.txt").exists()
    [entry] = env.sent_bundles()
    key = json.loads((entry / "receipt.json").read_text("utf-8"))["manifest"]["bundle_id"]
    statuses = [(r["idempotency_key"] == key, r["status"]) for r in refusing.requests()]
    assert sorted(statuses) == [(False, 422), (True, 201), (True, 422)], statuses
    assert list(env.processing.iterdir()) == []

    # The same command run again: refused whole, naming the one moved back and how to
    # retry the rest; then the rest as it says.
    again = subprocess.run([*OUTBOXD, "retry", "-c", str(env.config), str(first), str(second)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "one moved back into the outbox is no longer there" \
        in again.stderr and f"retry them alone: outboxd retry -- {second.name}" in again.stderr
    done = subprocess.run([*OUTBOXD, "retry", "-c", str(env.config), "--", second.name],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: journal_states(env).get(f"{stems[1]}.xml") == "sent", timeout=60,
             what="the second bundle sent")
    assert (states(stems[0]), states(stems[1])) == (["sent"], ["sent"])
    assert env.quarantined() == [] and len(env.sent_bundles()) == 2
    assert [r["status"] for r in refusing.requests()].count(201) == 2
    assert list(env.processing.iterdir()) == []
    assert "Traceback" not in daemon.stderr()


@pytest.mark.parametrize("daemon_then", ["running", "started after"])
def test_retry_killed_between_its_mark_and_its_move_is_shown_quarantined_again(
        env: Env, start_receiver, start_daemon, daemon_then: str) -> None:
    """`outboxd retry` killed once it marked the bundle's row moved back, before its
    first move: the bundle lies whole in quarantine/ (left out of `status`, it waited for
    a fix no one saw). `status --json` shows it quarantined at once, and the daemon —
    running (at its next rescan), or started after (at its start) — records it so
    again, its folder no longer locked. A second retry then moves it back and it is
    sent once."""
    refusing = start_receiver("--fail-first", "422")
    env.write_config(refusing.url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-5700", {"a.pdf": pdf_bytes()})
    wait_for(lambda: journal_states(env).get("INV-5700.xml") == "quarantined", timeout=60,
             what="the bundle quarantined")
    [entry] = env.quarantined()
    if daemon_then == "started after":
        assert daemon.stop() == 0
    _killed_run(env, "daemon.actions.retry:move_tree", "before", 0,
                command=["retry", "-c", str(env.config), str(entry)])
    assert (entry / "INV-5700.xml").exists() and (entry / "INV-5700" / "a.pdf").exists()

    def shown() -> list[str]:
        return [b["state"] for b in _status(env)["bundles"]
                if b["invoice_file"] == "INV-5700.xml"]
    # `status` shows it as the daemon's look will record it, before that look.
    assert shown() == ["quarantined"] and _status(env)["counts"]["quarantined"] == 1
    if daemon_then == "started after":
        assert journal_states(env)["INV-5700.xml"] == "gone"
        daemon = start_daemon()
        assert journal_states(env)["INV-5700.xml"] == "quarantined"  # by its start
    wait_for(lambda: journal_states(env)["INV-5700.xml"] == "quarantined", timeout=60,
             what="the bundle recorded quarantined again")
    assert shown() == ["quarantined"]
    assert _status(env)["counts"]["quarantined"] == 1

    done = subprocess.run([*OUTBOXD, "retry", "-c", str(env.config), str(entry)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: shown() == ["sent"], timeout=60, what="the bundle sent")
    assert env.quarantined() == [] and len(env.sent_bundles()) == 1
    assert [r["status"] for r in refusing.requests()] == [422, 201]
    assert _status(env)["counts"]["quarantined"] == 0
    assert "Traceback" not in daemon.stderr()


def test_a_kill_before_the_claims_work_folder_then_the_invoice_taken_back_ends_gone(
        env: Env, receiver, start_daemon) -> None:
    """SIGKILL after a claim's record, before its work folder was made (nothing moved);
    while outboxd is down the clerk takes the invoice file back, leaving its attachments'
    folder. The restarted daemon ends the row `gone` ("claim did not happen") at its
    start — the processing folder is the very one the claim was recorded for, and no work
    folder was made in it — and leaves the attachments' folder alone. It showed the
    bundle `retrying` for good, "the work folder is not there … (is the share
    mounted?) — if someone moved the folder, put it back", of a folder never made, on a
    share that was there, until someone happened to remove the attachments' folder."""
    from daemon.claiming.recovery import NOT_HAPPENED_GONE
    env.write_config(receiver.url, outbox={"rescan_seconds": 3600})
    name = "INV-5300.xml"
    _killed_run(env, "daemon.claiming.claim:made_in_processing", "before", 0,
                lambda _: drop_bundle(env.outbox, "INV-5300", {"a.pdf": pdf_bytes()}))
    assert list(env.processing.iterdir()) == []  # nothing moved
    rows = [b for b in _status(env)["bundles"] if b["invoice_file"] == name]
    assert [b["state"] for b in rows] == ["delivering"]
    (env.outbox / name).rename(env.root / name)  # the clerk's

    daemon = start_daemon()  # recovery is done before it says it runs
    assert journal_states(env).get(name) == "gone", daemon.stderr()
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        [(detail,)] = db.execute("SELECT t.detail FROM transitions t JOIN bundles b ON "
                                 "b.id = t.bundle_row WHERE b.invoice_file = ? ORDER BY "
                                 "t.id DESC LIMIT 1", (name,)).fetchall()
    finally:
        db.close()
    assert detail == NOT_HAPPENED_GONE
    assert [b for b in _status(env)["bundles"] if b["invoice_file"] == name
            and b["state"] in IN_FLIGHT_SHOWN] == []
    assert "is the share mounted?" not in daemon.stderr()
    assert sorted(p.name for p in (env.outbox / "INV-5300").iterdir()) == ["a.pdf"]
    assert receiver.requests() == [] and list(env.processing.iterdir()) == []


def test_a_kill_while_reader_processes_load_leaves_none_behind_and_sends_once(
        env: Env, receiver, start_daemon) -> None:
    """SIGKILL while new reader processes load (spawned, not yet ready) at a reload
    (SIGHUP) that starts them anew. Every reader the daemon had then ends on its own (each
    would hold its memory, and its rules' hundreds of MB, through every restart of a
    crash loop), and the daemon started again runs and sends a bundle dropped while it
    was down, once. (A daemon killed while it runs: tests/reading/test_reader_process.py.)"""
    from reading.test_readers import alive
    env.write_config(receiver.url, service={"reader_processes": 2})

    def reload(pid: int) -> None:
        drop_bundle(env.outbox, "INV-5400", {"a.pdf": pdf_bytes()})
        wait_for(lambda: journal_states(env).get("INV-5400.xml") == "sent",
                 what="the bundle sent before the reload")
        env.write_config(receiver.url, service={"reader_processes": 1})
        os.kill(pid, signal.SIGHUP)

    # The start's two readers are its first two calls; the reload's one, the third.
    kids = _killed_run(env, "daemon.reading.reader_pool:Pool._ready", "before", 0, reload,
                       nth=3)
    assert len(kids) >= 2, kids  # its readers (and multiprocessing's resource tracker)
    wait_for(lambda: not any(alive(p) for p in kids), timeout=30,
             what="the killed daemon's reader processes to end")

    drop_bundle(env.outbox, "INV-5401", {"a.pdf": pdf_bytes(2)})
    daemon = start_daemon()
    wait_for(lambda: journal_states(env).get("INV-5401.xml") == "sent", timeout=60,
             what="the bundle sent")
    assert len(env.sent_bundles()) == 2 and len(receiver.accepted()) == 2
    assert list(env.processing.iterdir()) == []
    assert "Traceback" not in daemon.stderr()
