"""Two daemons on one outbox (own state dirs, docs/operations.md section 5): the files
both write or act on in the share — a held bundle's NAME.errors.txt, a clerk's
NAME.send-anyway — and the sweeps of a daemon starting while the other runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, Proc
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import no_traceback

pytestmark = pytest.mark.usefixtures("lean")

HOLD = {"unattached": "hold", "invalid": "hold"}
RESCAN = 0.25  # seconds between the rescans of the errors-file test


def _daemon(env: Env, receiver: Any, n: int, **sections: dict[str, Any]) -> Proc:
    """Daemon `n` on the shared outbox with its own state dir and status page (as
    docs/operations.md tells admins), rescanning every second."""
    cfg = env.root / f"config{n}.toml"
    outbox = {"path": str(env.outbox), "settle_seconds": 0.2, "rescan_seconds": 1,
              **sections.pop("outbox", {})}
    env.write_config(receiver.url, paths={"state_dir": str(env.root / f"state{n}")},
                     outbox=outbox, share={"status_page": f"outboxd-status-{n}.html"},
                     **sections)
    env.config.rename(cfg)
    return Proc([*env.daemon, "run", "-c", str(cfg)], env.root / f"d{n}.log")


def _running(p: Proc) -> None:
    wait_for(lambda: "outboxd running" in p.stderr() or p.popen.poll() is not None,
             timeout=60, what="daemon start")
    assert p.popen.poll() is None, p.stderr()


def _states(env: Env, n: int) -> dict[str, str]:
    """invoice file -> state in daemon n's journal (its last row of that file)."""
    path = env.root / f"state{n}" / "journal.sqlite3"
    if not path.exists():
        return {}
    db = sqlite3.connect(path)
    try:
        return {r[0]: r[1] for r in db.execute(
            "SELECT invoice_file, state FROM bundles ORDER BY id")}
    finally:
        db.close()


def _lines(p: Proc, level: str) -> list[dict]:
    return [json.loads(line) for line in p.stderr().splitlines()
            if line.startswith("{") and json.loads(line).get("level") == level]


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.rename(path)


def _unchanged_for(path: Path, seconds: float) -> bool:
    """Whether the file at path stays the very file (inode, mtime, size) for `seconds`
    (polled: what is asserted is that nothing happens)."""
    first = os.stat(path)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = os.stat(path)
        if (now.st_ino, now.st_mtime_ns, now.st_size) != (
                first.st_ino, first.st_mtime_ns, first.st_size):
            return False
        time.sleep(0.02)
    return True


def test_a_held_bundles_errors_file_is_written_once_and_removed_once(
        env: Env, receiver: Any) -> None:
    """Both daemons hold INV-1 (a broken PDF): its INV-1.errors.txt is the same file for
    both — neither takes the other's for a clerk's edit (no .edited copy, no warning),
    and it is not rewritten while nothing changes (4 rescans of each). Mended, the bundle
    is sent once, the file goes, and neither daemon's journal says held."""
    # Rescans every 0.25 s: the 4 of each that must leave the file alone take 1 s, not 4.
    a = _daemon(env, receiver, 1, outbox={"rescan_seconds": RESCAN}, policy=HOLD)
    b = _daemon(env, receiver, 2, outbox={"rescan_seconds": RESCAN}, policy=HOLD)
    try:
        _running(a)
        _running(b)
        drop_bundle(env.outbox, "INV-1", {"a.pdf": b"%PDF-1.4 broken"})
        errors_file = env.outbox / "INV-1.errors.txt"
        wait_for(lambda: all(_states(env, n).get("INV-1.xml") == "held" for n in (1, 2))
                 and errors_file.exists(), what="INV-1 held by both, with its errors file")
        assert _unchanged_for(errors_file, 4 * RESCAN), "the errors file was rewritten"
        _replace(env.outbox / "INV-1" / "a.pdf", pdf_bytes())
        wait_for(lambda: env.sent_bundles() and not errors_file.exists(),
                 what="the mended bundle sent and its errors file gone")
        wait_for(lambda: all(_states(env, n).get("INV-1.xml") not in ("held", "settling")
                             for n in (1, 2)), what="neither journal left holding INV-1")
    finally:
        for p in (a, b):
            p.stop(signal.SIGTERM)
    assert len(receiver.accepted()) == 1
    assert [n for n in os.listdir(env.outbox) if "errors" in n] == []
    for p in (a, b):
        assert [w for w in _lines(p, "warning") if "edited" in w["event"]] == [], p.log
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


def test_a_release_file_sends_the_waiting_bundle_once(env: Env, receiver: Any) -> None:
    """Both daemons wait on INV-2 (no attachments, unattached = "hold"); a clerk drops
    INV-2.send-anyway: the bundle is sent once, the release file archived with it, and
    neither journal is left waiting."""
    a = _daemon(env, receiver, 1, policy=HOLD)
    b = _daemon(env, receiver, 2, policy=HOLD)
    try:
        _running(a)
        _running(b)
        drop_bundle(env.outbox, "INV-2", {})
        wait_for(lambda: all(_states(env, n).get("INV-2.xml") == "waiting" for n in (1, 2)),
                 what="INV-2 waiting in both journals")
        (env.outbox / "INV-2.send-anyway").write_bytes(b"")
        [sent] = wait_for(env.sent_bundles, what="the released bundle in sent/")
        wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
        # The claiming daemon's row says sent only after the archive (receipt.json in
        # sent/ comes first): polled for, not read once.
        states = wait_for(lambda: (lambda got: got if "sent" in got and not {
            "waiting", "settling"} & set(got) else None)(
                [_states(env, n).get("INV-2.xml") for n in (1, 2)]),
            what="one journal saying sent, neither left waiting")
    finally:
        for p in (a, b):
            p.stop(signal.SIGTERM)
    assert sorted(states)[-1] == "sent", states
    assert len(receiver.accepted()) == 1
    assert (sent / "INV-2.send-anyway").exists()
    assert sorted(n for n in os.listdir(env.outbox) if not n.startswith("outboxd-status")) \
        == [".outboxd"]
    for p in (a, b):
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())


@pytest.mark.usefixtures("quick_page")
def test_each_daemons_page_leaves_the_others_page_unlisted(env: Env, receiver: Any) -> None:
    """Each daemon its own page, as operations.md says (outboxd-status-1.html and -2):
    neither lists the other's page as a file left alone, which told the clerks to move
    it out of the outbox, nor logs it as "not an invoice file"; under invoice_patterns
    "*" neither takes it for an invoice file (it was read, and quarantined)."""
    a = _daemon(env, receiver, 1, outbox={"invoice_patterns": ["*"]}, policy=HOLD)
    b = _daemon(env, receiver, 2, outbox={"invoice_patterns": ["*"]}, policy=HOLD)
    pages = [env.outbox / f"outboxd-status-{n}.html" for n in (1, 2)]
    try:
        _running(a)
        _running(b)
        wait_for(lambda: all(p.exists() for p in pages), what="both pages written")
        # Held by both (a broken PDF): each page, written again to show it, was written
        # after its daemon had listed the other's page.
        drop_bundle(env.outbox, "INV-3", {"a.pdf": b"%PDF-1.4 broken"})
        wait_for(lambda: all("INV-3" in p.read_text() for p in pages),
                 what="both pages showing INV-3 held")
        texts = [p.read_text() for p in pages]
    finally:
        for p in (a, b):
            p.stop(signal.SIGTERM)
    assert "outboxd-status-2.html" not in texts[0]
    assert "outboxd-status-1.html" not in texts[1]
    assert env.quarantined() == []
    for p in (a, b):
        assert not [i for i in _lines(p, "info") if "outboxd-status" in i.get("file", "")]
        assert _lines(p, "error") == [], p.log
        no_traceback(p.stderr())
