"""The share's own disk full: the outbox, its processing folder, sent/ and quarantine/ on one
small real file system (ext4, as a NAS's disk; not tmpfs, which makes folders whatever its
size). The soak fills sent/ on a file system of its own (tests/faults/test_moves.py too):
here every write of the daemon on the share meets the full disk — the claim's work folder,
NAME.errors.txt, the status page, the papers written into the work folder and the rename
into sent/ on the same file system. Nothing is lost, nothing is recorded as done before it
is, each refusal says "No space left" and the fix, and all of it goes on by itself once
space is back, without a restart. Also the other disks the journal's tests
(tests/faults/test_journal.py) leave: the reference receiver's store, and the state dir's
compile cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import Mounts, bundle_of, fill, no_traceback, status_json

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def _on_the_share(env: Env, mounts: Mounts, url: str, rescan_seconds: float = 5,
                  **policy: str) -> Path:
    """The outbox, sent/ and quarantine/ beside each other on one small ext4 (the state
    dir and the logs elsewhere); its configuration written. The share's root."""
    share = mounts.ext4(env.root / "share")
    for name in ("outbox", "sent", "quarantine"):
        (share / name).mkdir()
    # Made before the disk fills, as a daemon that ran before would have left it.
    (share / "outbox" / ".outboxd" / "processing").mkdir(parents=True)
    env.write_config(url, outbox={"path": str(share / "outbox"), "rescan_seconds": rescan_seconds},
                     paths={"state_dir": str(env.state), "sent": str(share / "sent"),
                            "quarantine": str(share / "quarantine")},
                     policy=dict(policy))
    return share


def _hidden_litter(outbox: Path) -> list[str]:
    """Temp files (ours are dot-names) left in the outbox root."""
    return sorted(p.name for p in outbox.iterdir()
                  if p.name.startswith(".") and p.name != ".outboxd")


def _claims_failed(env: Env, invoice_file: str) -> int:
    """How many claims of `invoice_file` the journal has seen fail (each one's row goes
    back to settling with "claim failed")."""
    import sqlite3
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        return db.execute("SELECT count(*) FROM transitions AS t JOIN bundles AS b ON "
                          "b.id = t.bundle_row WHERE b.invoice_file = ? AND t.to_state = "
                          "'settling' AND t.detail = 'claim failed'", (invoice_file,)
                          ).fetchone()[0]
    finally:
        db.close()


def _lines(log: str, event: str) -> list[str]:
    return [line for line in log.splitlines() if event in line]


def test_full_share_holds_every_bundle_says_why_and_goes_on_once_space_is_back(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """The share is full when the daemon starts with two bundles in the outbox, one good
    and one held (invalid = "hold"). The good one cannot be claimed (no room for its work
    folder): it stays in the outbox, whole, and status says "No space left" and the fix;
    the held one's NAME.errors.txt cannot be written (said once, not at each try); the page
    cannot be written. Nothing is sent. Once space is freed, with no change to either
    bundle and no restart, the good one is sent once, the held one gets its errors file and
    the page is written; no temp file is left in the outbox, no traceback."""
    # Each try of the claim and of the errors file comes with a rescan: every half second,
    # not every 5 s, so the three tries below and the ones after space is back take a
    # second or two.
    share = _on_the_share(env, mounts, receiver.url, rescan_seconds=0.5, invalid="hold")
    outbox = share / "outbox"
    good = pdf_bytes()
    drop_bundle(outbox, "INV-1", {"a.pdf": good})
    drop_bundle(outbox, "INV-2", {"scan.pdf": b"not a pdf at all\n" * 2000})
    filler = fill(share)
    daemon = start_daemon()

    row = wait_for(lambda: (lambda b: b if b["last_error"] else None)(
        bundle_of(env.config, "INV-1.xml")), what="the failed claim in status")
    assert row["state"] == "settling", row
    assert "No space left on device" in row["last_error"], row
    assert "free space on that file system" in row["last_error"], row
    wait_for(lambda: bundle_of(env.config, "INV-2.xml")["state"] == "held", what="INV-2 held")
    wait_for(lambda: _lines(daemon.stderr(), "cannot write the status page"),
             what="the page's failure said")
    # Two more claims tried (a rescan each) while still full, the errors file
    # tried again with them: still nothing written, each said once (each try of the
    # claim leaves its journal row's "claim failed" again).
    wait_for(lambda: _claims_failed(env, "INV-1.xml") >= 3, timeout=30,
             what="the claim tried twice more")
    log = daemon.stderr()
    assert len(_lines(log, "cannot claim bundle")) == 1, _lines(log, "cannot claim bundle")
    [told] = _lines(log, "cannot write or remove the errors file")
    assert "No space left" in told and "free space on the outbox's file system" in told
    assert (outbox / "INV-1.xml").read_bytes() and (outbox / "INV-1" / "a.pdf").read_bytes() \
        == good
    assert not (outbox / "INV-2.errors.txt").exists()
    assert not (outbox / "outboxd-status.html").exists()
    assert receiver.requests() == [] and env.sent_bundles() == []
    assert status_json(env.config)["counts"]["sent"] == 0

    filler.unlink()
    wait_for(lambda: bundle_of(env.config, "INV-1.xml")["state"] == "sent", timeout=30,
             what="INV-1 sent once space is back")
    [entry] = [p for p in (share / "sent").glob("*/*") if p.is_dir()]
    assert (entry / "INV-1" / "a.pdf").read_bytes() == good and (entry / "receipt.json").is_file()
    wait_for(lambda: (outbox / "INV-2.errors.txt").exists(), timeout=30,
             what="the errors file written once space is back, with no change to the bundle")
    assert "scan.pdf" in (outbox / "INV-2.errors.txt").read_text("utf-8")
    wait_for(lambda: (outbox / "outboxd-status.html").exists(), what="the page written")
    assert len(receiver.accepted()) == 1
    assert list((outbox / ".outboxd" / "processing").iterdir()) == []
    assert _hidden_litter(outbox) == []
    assert _lines(daemon.stderr(), "errors file beside the invoice file written now")
    [claimed] = _lines(daemon.stderr(), "bundle claimed now; its claim had failed before")
    assert "No space left on device" in claimed
    no_traceback(daemon.stderr())


def _port(url: str) -> str:
    m = re.search(r":(\d+)/", url)
    assert m
    return m.group(1)


def test_full_share_after_delivery_keeps_the_bundle_until_its_receipt_is_written(
        env: Env, mounts: Mounts, start_receiver, start_daemon) -> None:
    """The share fills while a claimed bundle waits for the receiver; the receiver then
    takes it. Its receipt.json cannot be written into the work folder (sent/ is on the
    same file system: the archive is a rename, the papers are the write): the journal
    never says sent, status shows it retrying with "No space left" and the fix, nothing
    is left in the work folder as a receipt cut short, and it is not POSTed again. Once
    space is back it is archived by itself with its whole receipt."""
    down = start_receiver()
    port = _port(down.url)
    down.stop()
    share = _on_the_share(env, mounts, down.url)
    outbox, processing = share / "outbox", share / "outbox" / ".outboxd" / "processing"
    daemon = start_daemon()
    drop_bundle(outbox, "INV-3", {"a.pdf": pdf_bytes()})
    wait_for(lambda: "will retry" in daemon.stderr(), what="a failed delivery attempt")
    [work] = list(processing.iterdir())
    filler = fill(share)
    back = start_receiver("--listen", f"127.0.0.1:{port}")

    row = wait_for(lambda: (lambda b: b if b["receipt_id"] and b["last_error"]
                            and "archived" in b["last_error"] else None)(
        bundle_of(env.config, "INV-3.xml")), timeout=30, what="the failed archive")
    assert row["state"] == "retrying", row
    assert "No space left on device" in row["last_error"], row
    assert "free space on that file system" in row["last_error"], row
    assert env.sent_bundles() == [] and [p for p in (share / "sent").glob("*/*")] == []
    # No receipt at its name in the work folder unless whole (written by temp + rename).
    assert not (work / "receipt.json").exists()

    filler.unlink()
    wait_for(lambda: bundle_of(env.config, "INV-3.xml")["state"] == "sent", timeout=30,
             what="archived once space is back")
    [entry] = [p for p in (share / "sent").glob("*/*") if p.is_dir()]
    assert '"receipt_id"' in (entry / "receipt.json").read_text("utf-8")
    assert (entry / "INV-3" / "a.pdf").read_bytes() == pdf_bytes()
    assert len(back.requests()) == 1
    assert list(processing.iterdir()) == []
    no_traceback(daemon.stderr())


def test_full_receiver_store_answers_507_and_the_bundle_goes_once_there_is_room(
        env: Env, mounts: Mounts, start_receiver, start_daemon) -> None:
    """The reference receiver (`outboxd receiver`, a process) has its store on a small
    tmpfs that is full: each POST is answered 507 "store is full" with the fix, without a
    traceback and without a half-stored bundle; the daemon keeps the bundle retrying with
    that answer. Once space is back the bundle is stored and archived, by itself."""
    store = mounts.tmpfs(env.root / "store", "2m")
    receiver = start_receiver(store=store, process=True)
    env.write_config(receiver.url)
    daemon = start_daemon()
    filler = fill(store)
    data = b"a;b;c\n" * 50000
    drop_bundle(env.outbox, "INV-4", {"hours.csv": data})
    # Polled for as a whole: the row that first shows an error may be a retry's, already
    # delivering again (its last error kept) by the time it is read.
    row = wait_for(lambda: (lambda b: b if b["state"] == "retrying"
                            and "507" in (b["last_error"] or "") else None)(
        bundle_of(env.config, "INV-4.xml")), what="the refused delivery, retrying")
    assert "store is full" in row["last_error"], row
    wait_for(lambda: "POST /bundles 507" in receiver.stderr(), what="the receiver's line")
    assert [p.name for p in store.iterdir() if p.is_dir()] == []  # no staging, no bundle

    filler.unlink()
    [archived] = wait_for(env.sent_bundles, timeout=30, what="sent once the store has room")
    assert (archived / "INV-4" / "hours.csv").read_bytes() == data
    assert [p.name for p in store.iterdir() if p.is_dir()] == [row["bundle_id"]]
    no_traceback(daemon.stderr(), receiver.stderr())


def test_full_state_dir_leaves_no_compile_cache_temp(env: Env, mounts: Mounts) -> None:
    """The state dir (a small tmpfs) is full when the e-invoice rules are compiled and
    cached there, as at a daemon's start: the rules work all the same and no temp file
    cut short is left to hold the space the journal needs."""
    from daemon.einvoice.engine import Engine
    state = mounts.tmpfs(env.state, "1m")
    fill(state)
    Engine(state / "einvoice")
    assert [p.name for p in state.rglob("*")] in (
        [".filler"], [".filler", "einvoice"], ["einvoice", ".filler"]), list(state.rglob("*"))


def test_a_start_on_a_full_share_without_its_folders_exits_1_and_starts_once_there_is_room(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """A first start (or one after the processing folder, sent/ and quarantine/ were
    removed) on a share whose disk is full: `run` cannot make them, says so with "No space
    left on device" and the fix, and exits 1 — which systemd restarts — not the 2 of a
    configuration error ("create it or fix [paths] …"), which the unit leaves down after
    the disk is freed. Once space is back, the same configuration starts and makes them."""
    import json
    import subprocess

    from faults.conftest import OUTBOXD
    share = mounts.ext4(env.root / "share")
    outbox = share / "outbox"
    outbox.mkdir()
    env.write_config(receiver.url, outbox={"path": str(outbox)},
                     paths={"state_dir": str(env.state), "sent": str(share / "sent"),
                            "quarantine": str(share / "quarantine")})
    filler = fill(share)
    r = subprocess.run([*OUTBOXD, "run", "-c", str(env.config)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    [line] = [json.loads(x) for x in r.stderr.splitlines()]
    assert line["event"].startswith("outboxd cannot start: a folder it writes to cannot be made")
    [problem] = line["problems"]
    assert "No space left on device" in problem and "free space on that file system" in problem
    assert "create it or fix" not in problem
    no_traceback(r.stderr)

    filler.unlink()
    start_daemon()
    assert (outbox / ".outboxd" / "processing").is_dir()
    assert (share / "sent").is_dir() and (share / "quarantine").is_dir()


def test_a_full_receiver_store_leaves_no_torn_line_in_its_request_log(
        env: Env, mounts: Mounts) -> None:
    """The reference receiver's store (a small tmpfs) fills while requests.jsonl has room
    left in its last block only: a longer line would be cut at the block's end, a torn
    last line that a reader cannot parse and that the next line would be glued to. The
    line goes in whole or not at all; once there is room the next one is whole."""
    import json

    from daemon.receiver.requestlog import RequestLog
    store = mounts.tmpfs(env.root / "store", "2m")
    log = store / "requests.jsonl"
    requests = RequestLog(log)
    requests.append({"status": 201, "n": 1})
    filler = fill(store)
    requests.append({"status": 201, "n": 2, "pad": "x" * 6000})
    assert [json.loads(x)["n"] for x in log.read_text("utf-8").splitlines()] == [1]
    filler.unlink()
    requests.append({"status": 201, "n": 3})
    assert [json.loads(x)["n"] for x in log.read_text("utf-8").splitlines()] == [1, 3]


def test_a_start_on_a_full_state_dir_exits_1_naming_the_file_it_could_not_write(
        env: Env, mounts: Mounts) -> None:
    """The state dir (a small tmpfs) is full at a start: `run` exits 1 — restarted by
    systemd, and so running by itself once there is room — with "No space left on
    device", the file it could not write (the lock file, in the state dir) and the fix,
    no traceback."""
    import json
    import subprocess

    from faults.conftest import OUTBOXD
    state = mounts.tmpfs(env.state, "1m")
    env.write_config("http://127.0.0.1:9/x")
    fill(state)
    r = subprocess.run([*OUTBOXD, "run", "-c", str(env.config)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    [line] = [json.loads(x) for x in r.stderr.splitlines()]
    assert "No space left on device" in line["error"], line
    assert str(state / "outboxd.pid") in line["error"], line
    assert "free space on that file system" in line["error"], line
    no_traceback(r.stderr)
