"""Moves that fail (a share that goes away, a full archive disk, an immutable file) are
retried by the daemon; the bundle is shown with the error, never as done too early, and
nothing is lost or left behind as `.partial` (issue 6, cases 1, 2 and 7)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import Mounts, bundle_of, fill, no_traceback

# Daemons here start lean (conftest.LEAN): the moves' faults do not depend on where bundles are
# read.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def _port(url: str) -> str:
    m = re.search(r":(\d+)/", url)
    assert m
    return m.group(1)


def _states_seen(env: Env, invoice_file: str) -> set[str]:
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        return {r[0] for r in db.execute(
            "SELECT t.to_state FROM transitions t JOIN bundles b ON b.id = t.bundle_row "
            "WHERE b.invoice_file = ?", (invoice_file,))}
    finally:
        db.close()


def _partials(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*partial*")]


def test_share_gone_while_retrying_is_not_quarantined_and_delivers_once_back(
        env: Env, mounts: Mounts, start_receiver, start_daemon) -> None:
    """Case 1: the outbox (a bind mount holding processing/) is unmounted while a bundle waits
    for a retry. The bundle is never recorded as quarantined with a folder that does not
    exist; it shows the error and is delivered once the share and the receiver are back."""
    down = start_receiver()
    port = _port(down.url)
    down.stop()
    backing = env.root / "backing"
    backing.mkdir()
    mounts.bind(backing, env.outbox)
    env.write_config(down.url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    wait_for(lambda: "will retry" in daemon.stderr(), what="a failed delivery attempt")

    mounts.lazy_unmount(env.outbox)
    row = wait_for(lambda: (lambda b: b if b["state"] == "quarantined"
                            or "processing" in (b["last_error"] or "") else None)(
        bundle_of(env.config, "INV-1.xml")), what="an attempt while the share is gone")
    assert row["state"] in ("delivering", "retrying"), row
    assert env.quarantined() == []

    mounts.bind(backing, env.outbox)
    back = start_receiver("--listen", f"127.0.0.1:{port}")
    [archived] = wait_for(env.sent_bundles, timeout=30, what="delivery once the share is back")
    assert (archived / "INV-1.xml").exists() and (archived / "INV-1" / "a.pdf").exists()
    wait_for(lambda: bundle_of(env.config, "INV-1.xml")["state"] == "sent", what="state sent")
    assert "quarantined" not in _states_seen(env, "INV-1.xml")
    assert len(back.accepted()) == 1
    assert list(env.processing.iterdir()) == []
    no_traceback(daemon.stderr())


def test_quarantine_on_a_full_disk_at_claim_time_is_retried_without_partial(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """Case 2: quarantine/ (another file system) is full when an invalid bundle is claimed:
    no traceback, no `.partial` left, the bundle is not shown as quarantined until its folder
    is there; once space is freed the daemon finishes the move by itself (no restart)."""
    q = mounts.tmpfs(env.root / "quarantine", "1m")
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "quarantine": str(q)})
    daemon = start_daemon()
    filler = fill(q)
    drop_bundle(env.outbox, "INV-2", {"scan.pdf": b"not a pdf at all\n" * 20000})
    row = wait_for(lambda: (lambda b: b if b["state"] == "quarantined" or b["last_error"]
                            else None)(bundle_of(env.config, "INV-2.xml")),
                   what="the quarantine attempt")
    assert row["state"] in ("delivering", "retrying"), row
    assert "No space left" in row["last_error"]
    # The failed attempt left no half copy. Retries come every ≤ 0.5 s here and one under
    # way holds its `.partial` while it copies, so look until one is seen between them
    # (a copy left behind would stay and time this out).
    wait_for(lambda: _partials(q) == [], what="no .partial between attempts")
    assert env.quarantined() == []
    [work] = list(env.processing.iterdir())
    assert (work / "INV-2.xml").exists() and (work / "INV-2" / "scan.pdf").exists()

    filler.unlink()
    [folder] = wait_for(env.quarantined, timeout=30, what="the quarantine move after space")
    wait_for(lambda: bundle_of(env.config, "INV-2.xml")["state"] == "quarantined",
             what="state quarantined")
    assert (folder / "REASON.txt").exists() and (folder / "INV-2" / "scan.pdf").exists()
    assert list(env.processing.iterdir()) == []
    assert _partials(q) == []
    no_traceback(daemon.stderr())


def _error_lines(log: str) -> list[dict]:
    out = []
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") == "error":
            out.append(rec)
    return out


def test_sent_disk_full_after_delivery_shows_error_and_archives_once_freed(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """Case 7: sent/ (another file system) is full after the receiver took the bundle:
    the failure is logged without traceback with bundle_id, invoice_file and invoice_ids;
    status shows the bundle retrying with last_error; once freed it is archived (never
    POSTed again) and nothing is left in processing or as `.partial`."""
    sent = mounts.tmpfs(env.root / "sent", "1m")
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "sent": str(sent)})
    daemon = start_daemon()
    filler = fill(sent)
    data = b"a;b;c\n" * 50000
    drop_bundle(env.outbox, "INV-7", {"hours.csv": data})
    row = wait_for(lambda: (lambda b: b if b["last_error"] or b["state"] == "sent" else None)(
        bundle_of(env.config, "INV-7.xml")), what="the archive attempt")
    assert row["state"] == "retrying" and "No space left" in row["last_error"], row
    wait_for(lambda: _partials(sent) == [], what="no .partial between attempts")  # as above
    errors = _error_lines(daemon.stderr())
    assert errors and all(e.get("bundle_id") and e.get("invoice_file") == "INV-7.xml"
                          and e.get("invoice_ids") == ["INV-7"] for e in errors), errors

    filler.unlink()
    [archived] = wait_for(env.sent_bundles, timeout=30, what="archive after space is freed")
    wait_for(lambda: bundle_of(env.config, "INV-7.xml")["state"] == "sent", what="state sent")
    assert (archived / "INV-7" / "hours.csv").read_bytes() == data
    assert len(receiver.requests()) == 1
    assert list(env.processing.iterdir()) == []
    assert _partials(sent) == []
    no_traceback(daemon.stderr())


def test_immutable_attachment_with_sent_elsewhere_shows_error_until_removable(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """Case 7: an immutable attachment (chattr +i) cannot be deleted from processing after
    the copy to sent/ on another file system: the bundle shows that error (not "delivering"
    without one), and once the flag is gone the daemon finishes by itself."""
    sent = mounts.tmpfs(env.root / "sent", "8m")
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "sent": str(sent)})
    daemon = start_daemon()
    att = env.outbox / "INV-8" / "a.pdf"
    att.parent.mkdir()
    att.write_bytes(pdf_bytes())
    subprocess.run(["chattr", "+i", str(att)], check=True)
    try:
        drop_bundle(env.outbox, "INV-8", {})
        row = wait_for(lambda: (lambda b: b if b["last_error"] or b["state"] == "sent"
                                else None)(bundle_of(env.config, "INV-8.xml")),
                       what="the archive attempt")
        assert row["state"] == "retrying" and "Operation not permitted" in row["last_error"]
    finally:
        subprocess.run(["chattr", "-R", "-i", str(env.root)], capture_output=True)
    wait_for(lambda: bundle_of(env.config, "INV-8.xml")["state"] == "sent", timeout=30,
             what="state sent once the file can be removed")
    [archived] = env.sent_bundles()
    assert (archived / "INV-8" / "a.pdf").read_bytes() == pdf_bytes()
    assert list(env.processing.iterdir()) == []
    assert len(receiver.requests()) == 1
    no_traceback(daemon.stderr())
