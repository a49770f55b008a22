"""Two daemons on one share, and a config path that is a folder (issue 6, case 9)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env, Proc
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import no_traceback

# Daemons here start lean (conftest.LEAN): the claim race is the daemons', not their readers'.
pytestmark = pytest.mark.usefixtures("lean")


def _daemon(env: Env, receiver, n: int, run: int = 0, **sections: dict) -> Proc:
    """Daemon `n` on the shared outbox, with its own state dir and status page (as
    docs/operations.md tells admins: with one name each would overwrite the other's page;
    a starting daemon's sweep no longer takes the other's page write in progress, which
    is locked since 1c73ed4: temps.py); run > 0: the same daemon started again."""
    cfg = env.root / f"config{n}.toml"
    if not cfg.exists():
        env.write_config(receiver.url, paths={"state_dir": str(env.root / f"state{n}")},
                         outbox={"path": str(env.outbox), "settle_seconds": 0.2,
                                 "rescan_seconds": 0.5},
                         share={"status_page": f"outboxd-status-{n}.html"}, **sections)
        env.config.rename(cfg)
    return Proc([*env.daemon, "run", "-c", str(cfg)], env.root / f"d{n}-{run}.log")


def _running(p: Proc) -> None:
    # Two daemons start at once (as shipped, each loading the rules in its reader
    # processes, that took over 20 s on a busy 2-core host). One that exits fails fast.
    wait_for(lambda: "outboxd running" in p.stderr() or p.popen.poll() is not None,
             timeout=60, what="daemon start")
    assert p.popen.poll() is None, p.stderr()


def _stopped(pid: int) -> bool:
    """Every thread of the process is stopped (state T in /proc)."""
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
    return all(s == "T" for s in states)


def _lines(p: Proc, level: str) -> list[dict]:
    return [json.loads(line) for line in p.stderr().splitlines()
            if line.startswith("{") and json.loads(line).get("level") == level]


def test_losing_a_claim_race_is_not_an_error(env: Env, receiver) -> None:
    """Two daemons (own state dirs) on one outbox, 40 bundles: each is sent once and the one
    that loses a race logs no error (it is normal work, not a broken bundle)."""
    procs = [_daemon(env, receiver, n) for n in (1, 2)]
    try:
        for p in procs:
            _running(p)
        for i in range(40):
            drop_bundle(env.outbox, f"INV-{i:03}", {"a.pdf": pdf_bytes(1 + i % 3)})
        wait_for(lambda: len(env.sent_bundles()) >= 40, timeout=90, what="40 bundles sent")
    finally:
        for p in procs:
            p.stop(signal.SIGTERM)
    assert len(env.sent_bundles()) == 40
    assert len({r["idempotency_key"] for r in receiver.accepted()}) == 40
    for p in procs:
        assert _lines(p, "error") == []
        no_traceback(p.stderr())


def test_a_daemon_killed_mid_burst_leaves_its_claims_to_itself(env: Env, receiver) -> None:
    """Two daemons of one host (own state dirs), 120 bundles, one killed (SIGKILL) while it
    holds claims: the other leaves those work folders alone and says so in a warning (not
    an error calling them copies nobody left); started again, the killed one finishes
    them. Every bundle is sent once (one request, one Idempotency-Key each), archived
    once, nothing is left in the outbox or in processing/."""
    a, b = _daemon(env, receiver, 1), _daemon(env, receiver, 2)
    procs = [a, b]
    try:
        _running(a)
        _running(b)
        for i in range(120):
            drop_bundle(env.outbox, f"INV-{i:03}", {"a.pdf": pdf_bytes(1 + i % 3)})
        tag = f"-{a.popen.pid}-"

        def held_while_stopped() -> set[str]:
            """Its claims, listed with it stopped: seen running, it could finish them all
            before the kill (nothing left to show). None held: it goes on, and is looked at
            again."""
            os.kill(a.popen.pid, signal.SIGSTOP)
            # Stopped once every thread is (a rename under way finishes first).
            wait_for(lambda: _stopped(a.popen.pid), timeout=10, interval=0.001,
                     what="the daemon to be killed to stop")
            held = {str(env.processing / n) for n in os.listdir(env.processing) if tag in n}
            if not held:
                os.kill(a.popen.pid, signal.SIGCONT)
            return held
        left = wait_for(held_while_stopped, timeout=60, what="a claim of the daemon to be killed")
        a.popen.kill()
        a.popen.wait()
        # Its folders wait for it: the other one's rescans (every 0.5 s) name them.
        wait_for(lambda: {e["work_dir"] for e in _lines(b, "warning")
                          if "another outboxd on this host" in e["event"]} & left,
                 timeout=30, what="the other daemon to name the killed one's work folders")
        a = _daemon(env, receiver, 1, run=1)
        procs.append(a)
        _running(a)
        wait_for(lambda: len(env.sent_bundles()) >= 120 and not os.listdir(env.processing),
                 timeout=120, what="120 bundles sent and processing/ empty")
    finally:
        for p in procs:
            p.stop(signal.SIGTERM)
    assert len(env.sent_bundles()) == 120
    assert len({p.name.split("--")[0] for p in env.sent_bundles()}) == 120
    # Stored once each (201); a POST the kill cut short is sent again by the restart with
    # the same Idempotency-Key, and the receiver answers it from its store (200), or 409
    # while the killed one's request is still being read there (tried again). The cut
    # request itself is logged 400, "request body not received" (its sender is gone).
    assert len(receiver.accepted()) == 120
    assert len({r["idempotency_key"] for r in receiver.accepted()}) == 120
    others = [r for r in receiver.requests() if r["status"] != 201]
    assert all(r["status"] in (200, 409) or (
        r["status"] == 400 and r.get("error", "").startswith("request body not received"))
        for r in others), others
    assert len([d for d in receiver.store.iterdir() if d.is_dir()]) == 120
    assert sorted(n for n in os.listdir(env.outbox) if not n.startswith("outboxd-status")) \
        == [".outboxd"]
    assert env.quarantined() == []
    for p in procs:
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


def test_a_bundle_sent_by_one_daemon_and_dropped_again_is_a_duplicate_on_the_other(
        env: Env, receiver) -> None:
    """Daemon B runs while daemon A sends INV-1 (B is stopped meanwhile, so A claims it);
    the ERP drops the same INV-1 again and B picks it up (A stopped now): B has learned
    from sent/ at its rescan that A sent it, and quarantines it as a duplicate — one POST,
    one sent/ entry (before, B posted it again and filed a second entry `…-2`)."""
    a, b = _daemon(env, receiver, 1), _daemon(env, receiver, 2)
    attachment = pdf_bytes()
    try:
        _running(a)
        _running(b)
        b.popen.send_signal(signal.SIGSTOP)
        drop_bundle(env.outbox, "INV-1", {"a.pdf": attachment})
        wait_for(env.sent_bundles, what="daemon A to send INV-1")
        a.popen.send_signal(signal.SIGSTOP)
        b.popen.send_signal(signal.SIGCONT)
        # B's next rescan (every 0.5 s) reads the new receipt.
        wait_for(lambda: any("other daemons sent" in e["event"] for e in _lines(b, "info")),
                 what="daemon B to read what daemon A sent")
        drop_bundle(env.outbox, "INV-1", {"a.pdf": attachment})
        wait_for(lambda: env.quarantined() or len(env.sent_bundles()) > 1,
                 what="the dropped-again INV-1 to be ended")
        quarantined = env.quarantined()
        assert len(env.sent_bundles()) == 1 and quarantined, "sent again"
        reason = json.loads((quarantined[0] / "reason.json").read_text())
        assert [r["code"] for r in reason["reasons"]] == ["duplicate"]
    finally:
        for p in (a, b):
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGCONT)
            p.stop(signal.SIGTERM)
    assert len(env.sent_bundles()) == 1
    assert len(receiver.requests()) == 1
    for p in (a, b):
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


def _page(env: Env, n: int) -> str:
    try:
        return (env.outbox / f"outboxd-status-{n}.html").read_text()
    except FileNotFoundError:
        return ""


@pytest.mark.usefixtures("quick_page")
def test_each_daemons_page_lists_what_the_other_quarantined_today(env: Env, receiver) -> None:
    """Daemon A quarantines INV-EXE (B is stopped meanwhile, so A claims it): B's page, too,
    lists it under "Quarantined today", with its reason from reason.json and that another
    outboxd quarantined it, and counts it (before, only A's page did); removed from
    quarantine/ (outboxd retry, by hand), it leaves B's page again."""
    a, b = _daemon(env, receiver, 1), _daemon(env, receiver, 2)
    try:
        _running(a)
        _running(b)
        b.popen.send_signal(signal.SIGSTOP)
        drop_bundle(env.outbox, "INV-EXE", {"scan.pdf": b"MZ\x90\x00" + b"\x00" * 200})
        wait_for(env.quarantined, what="daemon A to quarantine INV-EXE")
        folder = env.quarantined()[0]
        wait_for(lambda: folder.name in _page(env, 1), what="A's page to list it")
        b.popen.send_signal(signal.SIGCONT)
        wait_for(lambda: folder.name in _page(env, 2), timeout=20,
                 what="B's page to list what A quarantined")
        page = _page(env, 2)
        assert "quarantined by another outboxd sharing this outbox" in page
        assert "scan.pdf" in page.split('id="quarantined"')[1]
        assert "<b>1</b> Quarantined today" in page
        shutil.rmtree(folder)
        wait_for(lambda: folder.name not in _page(env, 2), timeout=20,
                 what="B's page to drop the entry gone from quarantine/")
        assert "<b>0</b> Quarantined today" in _page(env, 2)
    finally:
        for p in (a, b):
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGCONT)
            p.stop(signal.SIGTERM)
    for p in (a, b):
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


def _sent_today(page: str) -> str:
    return page.split('id="sent"')[1] if 'id="sent"' in page else ""


MARK = "sent by another outboxd sharing this outbox"


@pytest.mark.usefixtures("quick_page")
def test_each_daemons_page_marks_what_the_other_sent_today(env: Env, receiver) -> None:
    """Daemon A sends INV-1 (B is stopped meanwhile, so A claims it): B's page lists it
    under "Sent today" marked as sent by another outboxd sharing this outbox (before,
    unmarked, as if B had sent it), A's page lists it unmarked. A daemon started afresh
    on a new journal reads it back from sent/ and does not mark it: it cannot tell
    its own entries from the others' there."""
    a, b = _daemon(env, receiver, 1), _daemon(env, receiver, 2)
    c = None
    try:
        _running(a)
        _running(b)
        b.popen.send_signal(signal.SIGSTOP)
        drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
        wait_for(lambda: "INV-1.xml" in _sent_today(_page(env, 1)),
                 what="A's page to list INV-1 as sent")
        b.popen.send_signal(signal.SIGCONT)
        wait_for(lambda: "INV-1.xml" in _sent_today(_page(env, 2)), timeout=20,
                 what="B's page to list what A sent")
        assert MARK in _sent_today(_page(env, 2))
        assert "<b>1</b> Sent today" in _page(env, 2)
        assert MARK not in _page(env, 1)
        a.stop(signal.SIGTERM)
        b.stop(signal.SIGTERM)
        c = _daemon(env, receiver, 3)  # its own state dir: a journal started afresh
        _running(c)
        wait_for(lambda: "INV-1.xml" in _sent_today(_page(env, 3)), timeout=20,
                 what="the new daemon's page to list INV-1 read back from sent/")
        assert MARK not in _page(env, 3)
    finally:
        for p in (a, b, c):
            if p is None:
                continue
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGCONT)
            p.stop(signal.SIGTERM)
    assert len(receiver.requests()) == 1
    for p in (a, b, c):
        assert p is not None
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


def test_daemons_that_decide_by_other_settings_are_said_by_each(env: Env, receiver) -> None:
    """Daemon A with `unattached = "warn"`, B with "hold" on one outbox: B says at its
    start, and A at its next rescan, that another outboxd decides by other settings,
    naming `policy.unattached` and the other's fingerprint file (before, nothing compared
    them, and an unattached invoice was sent or held by whichever came first). B stopped
    cleanly takes its fingerprint away."""
    a = _daemon(env, receiver, 1)
    b = _daemon(env, receiver, 2, policy={"unattached": "hold"})
    try:
        _running(a)
        _running(b)

        def said(p: Proc) -> list[dict]:
            return [e for e in _lines(p, "warning") if "other settings" in e["event"]]
        for p in (b, a):
            wait_for(lambda p=p: said(p), timeout=20, what="the difference said")
            [line] = said(p)
            assert line["keys"] == ["policy.unattached"], line
            assert line["file"].startswith(str(env.outbox / ".outboxd" / "deciding"))
        b.stop(signal.SIGTERM)
        assert [f.name for f in (env.outbox / ".outboxd" / "deciding").iterdir()] \
            == [Path(said(b)[0]["file"]).name]
    finally:
        for p in (a, b):
            p.stop(signal.SIGTERM)
    for p in (a, b):
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


def test_config_path_that_is_a_folder_is_named_so(env: Env, receiver, start_daemon) -> None:
    """`-c FOLDER` says the path is a folder (not "does not exist"), at start and on SIGHUP,
    where the old configuration is kept."""
    folder = env.root / "conf.d"
    folder.mkdir()
    out = subprocess.run([*OUTBOXD, "config", "--check", "-c", str(folder)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "is a folder" in out.stderr, out.stderr
    env.write_config(receiver.url)
    daemon = start_daemon()
    env.config.rename(env.root / "config.bak")
    env.config.mkdir()
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded" in daemon.stderr(), what="the reload error")
    line = next(ln for ln in daemon.stderr().splitlines() if "not reloaded" in ln)
    assert "is a folder" in line and "does not exist" not in line
    drop_bundle(env.outbox, "INV-9", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="still working on the old configuration")
