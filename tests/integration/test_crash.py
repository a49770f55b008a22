"""Crash safety: the daemon killed with SIGKILL at awkward moments loses nothing and
never makes a second delivery that the receiver cannot recognise."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import Env, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")


def test_kill_after_receiver_stored_but_before_answer_resumes_with_same_key(
        env: Env, start_receiver, start_daemon) -> None:
    """SIGKILL while the receiver has stored the bundle but not yet answered: the restarted
    daemon posts again with the same Idempotency-Key, the receiver recognises it (200,
    same receipt), and the bundle is archived once in sent/."""
    slow = start_receiver("--hold-first", "60", process=True)  # its hold outlasts the test
    env.write_config(slow.url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-7001", {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)})
    wait_for(lambda: [r for r in slow.requests() if r["status"] == 201],
             what="the receiver to store the bundle")
    daemon.stop(signal.SIGKILL)
    assert env.sent_bundles() == []
    work = list(env.processing.iterdir())
    assert len(work) == 1 and (work[0] / "INV-7001.xml").exists()  # nothing lost

    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/ after restart")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    statuses = [r["status"] for r in slow.requests()]
    assert statuses[0] == 201 and statuses[-1] == 200 and statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    stored = [p for p in slow.store.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(stored) == 1
    receipt = json.loads((archived / "receipt.json").read_text())
    first_answer = json.loads((stored[0] / "response.json").read_text())
    assert receipt["response"]["receipt_id"] == first_answer["receipt_id"]
    assert receipt["manifest"]["bundle_id"] == stored[0].name
    assert list(env.processing.iterdir()) == []
    assert not (env.outbox / "INV-7001.xml").exists()


# Lean (conftest.LEAN): the claimed files and the retry are the daemon's, not its readers';
# the SIGKILL of the shipped daemon with its reader processes is the test above.
@pytest.mark.usefixtures("lean")
def test_kill_while_retrying_keeps_the_claimed_bundle_and_delivers_later(
        env: Env, start_receiver, start_daemon) -> None:
    """SIGKILL while the receiver is down: the claimed files stay in processing and the
    restarted daemon delivers them once the receiver is back."""
    down = start_receiver()
    url = down.url
    down.stop()  # nothing listens on that port now: connection refused
    env.write_config(url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-7002", {"a.pdf": pdf_bytes()})
    wait_for(lambda: "will retry" in daemon.stderr(), what="a failed attempt")
    daemon.stop(signal.SIGKILL)
    [work] = list(env.processing.iterdir())
    assert (work / "INV-7002" / "a.pdf").exists()

    back = start_receiver()
    env.write_config(back.url)
    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="delivery after restart")
    assert (archived / "INV-7002" / "a.pdf").exists()
    assert len(back.accepted()) == 1


def _csv(tag: str, size: int) -> bytes:
    """A CSV attachment of about `size` bytes, its content unique to tag."""
    line = f"{tag},row,".encode()
    return b"".join(line + b"%08d\n" % n for n in range(size // (len(line) + 9)))


def _temps(target: Path) -> list[str]:
    return [n for n in os.listdir(target) if n.startswith(".")] if target.exists() else []


def test_kill_inside_the_directory_target_write_publishes_each_bundle_once_and_whole(
        env: Env, start_daemon) -> None:
    """SIGKILL of `outboxd run` while it writes a bundle into the directory target (its
    `.tmp-BUNDLEID/` folder half-filled): the restarted daemon publishes the bundle once,
    with every file the manifest names and their hashes, the killed write's temporary
    gone; the bundle is `sent` with its folder in sent/, nothing left in the outbox."""
    target = env.root / "target"
    env.write_config("http://127.0.0.1:9/unused", delivery={
        "transport": "directory", "target": str(target)}, policy={"unattached": "send"},
        einvoice={"preflight": "off"}, service={"reader_processes": 0})
    names: list[str] = []
    left_half = False
    for attempt in range(6):  # a write may end before the kill lands: another bundle then
        daemon = start_daemon()
        name = f"INV-7100-{attempt}"
        names.append(name)
        # Large enough that the copies (each fsynced) outlast the look below.
        drop_bundle(env.outbox, name, {f"sheet-{i}.csv": _csv(f"{name}-{i}", 2_000_000)
                                       for i in range(8)})
        wait_for(lambda: _temps(target), timeout=30, interval=0.001,
                 what="the daemon to begin writing into the target")
        daemon.stop(signal.SIGKILL)
        if [n for n in _temps(target) if n.startswith(".tmp-")]:
            left_half = True
            break
    assert left_half, "no kill landed inside a write"

    start_daemon()
    wait_for(lambda: len(env.sent_bundles()) == len(names) and not _temps(target),
             timeout=60, what="every bundle sent and the target without temporaries")
    published = sorted(p for p in target.iterdir())
    assert len(published) == len(names)
    seen = []
    for folder in published:
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["bundle_id"] == folder.name
        seen.append(manifest["invoice_file"]["original_name"])
        expected = {"manifest.json": None,
                    manifest["invoice_file"]["name"]: manifest["invoice_file"]["sha256"]}
        for invoice in manifest["invoices"]:
            for att in invoice["attachments"]:
                expected[f"attachments/{invoice['id']}/{att['name']}"] = att["sha256"]
        files = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
        assert set(files) == set(expected)
        for rel, sha in expected.items():
            if sha is not None:
                assert hashlib.sha256(files[rel].read_bytes()).hexdigest() == sha
        assert len(expected) == 2 + 8
    assert sorted(seen) == sorted(f"{n}.xml" for n in names)
    # Each folder comes into sent/ a moment before its row says "sent" (moves.py).
    wait_for(lambda: set(journal_states(env).values()) == {"sent"}, what="every row sent")
    assert env.quarantined() == []
    assert list(env.processing.iterdir()) == []
    assert [p.name for p in env.outbox.iterdir()
            if p.name not in (".outboxd", "outboxd-status.html")] == []


# The daemon run as `outboxd run` is, but with the claim's second step (the sidecar's
# rename, after the invoice file's) ending the process by SIGKILL: the one moment a
# kill leaves the invoice file in processing and its attachments in the outbox.
_KILLED_MID_CLAIM = """
import os, signal, sys
import daemon.claiming.claim as claim
first = claim.finish_claim
def killed(cand, held, with_marker, companions=(), fresh=False):
    if fresh:
        os.kill(os.getpid(), signal.SIGKILL)
    return first(cand, held, with_marker, companions, fresh)
claim.finish_claim = killed
from daemon.entry import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""


@pytest.mark.usefixtures("lean")
def test_kill_between_the_invoice_files_claim_and_its_sidecars_sends_it_once_with_them(
        env: Env, receiver, start_daemon) -> None:
    """SIGKILL inside a claim, after the invoice file was renamed into processing and
    before its sidecar followed: nothing is lost (the sidecar is still in the outbox),
    and the restarted daemon finishes the claim and posts the bundle once, with every
    attachment — never the invoice without them."""
    from conftest import Proc
    env.write_config(receiver.url)
    killed = Proc([sys.executable, "-c", _KILLED_MID_CLAIM, str(env.config)],
                  env.root / "killed.log", env.root / "killed.out")
    try:
        wait_for(lambda: "outboxd running" in killed.stderr() or killed.popen.poll() is not None,
                 timeout=60, what="the daemon to start")
        pdfs = {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)}
        drop_bundle(env.outbox, "INV-7003", pdfs)
        wait_for(lambda: killed.popen.poll() is not None, what="the kill inside the claim")
    finally:
        assert killed.stop() == -signal.SIGKILL, killed.stderr()
    [work] = list(env.processing.iterdir())
    assert (work / "INV-7003.xml").is_file()  # claimed ...
    assert sorted(p.name for p in (env.outbox / "INV-7003").iterdir()) == sorted(pdfs)
    assert receiver.requests() == []

    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/ after the restart")
    wait_for(lambda: journal_states(env).get("INV-7003.xml") == "sent", what="state sent")
    [accepted] = receiver.requests()
    assert accepted["status"] == 201
    receipt = json.loads((archived / "receipt.json").read_text())
    [invoice] = receipt["manifest"]["invoices"]
    sent = {a["original_name"]: a["sha256"] for a in invoice["attachments"]}
    assert sent == {name: hashlib.sha256(data).hexdigest() for name, data in pdfs.items()}
    for name, data in pdfs.items():
        assert (archived / "INV-7003" / name).read_bytes() == data
    assert not (env.outbox / "INV-7003").exists() and not (env.outbox / "INV-7003.xml").exists()
    assert list(env.processing.iterdir()) == []


# The daemon run as `outboxd run` is, but with a claim cut short before any of its files
# moved, as one full disk under the outbox and the state folder does it: the batch's
# check finds the processing folder off its mount (once), and the journal refuses to
# record the claim's undo (once) — raised, the claim is left `claiming`.
_CUT_BEFORE_MOVE = """
import sys
from daemon.errors import JournalError
from daemon.journal import Journal
from daemon.watching.foldermounts import FolderMounts
armed = []
real_away, real_transition = FolderMounts.away, Journal.transition
def away(self, folder):
    if not armed and folder.name == "processing":
        armed.append(1)
        return "[paths] processing is not on the file system it was on (test)"
    return real_away(self, folder)
def transition(self, row_id, state, *args, **kwargs):
    if state == "settling" and armed == [1]:
        armed.append(2)
        raise JournalError("cannot write the journal: disk full (test)")
    return real_transition(self, row_id, state, *args, **kwargs)
FolderMounts.away, Journal.transition = away, transition
from daemon.entry import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""


def _row_of(env: Env, invoice_file: str) -> tuple[str, str | None, str | None]:
    """The state, last_error and latest transition's detail of the file's one row."""
    import sqlite3
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        state, error, row = db.execute("SELECT state, last_error, id FROM bundles WHERE "
                                       "invoice_file = ?", (invoice_file,)).fetchone()
        [detail] = db.execute("SELECT detail FROM transitions WHERE bundle_row = ? ORDER BY "
                              "id DESC LIMIT 1", (row,)).fetchone()
        return state, error, detail
    finally:
        db.close()


@pytest.mark.usefixtures("lean")
def test_a_claim_cut_short_before_its_move_then_taken_back_ends_gone_after_a_restart(
        env: Env, receiver, start_daemon) -> None:
    """A claim cut short before any of its files moved (its row `claiming`, the bundle
    still in the outbox), then SIGKILL before the rescan that would finish it; while
    outboxd is down the clerk takes the invoice file back, leaving its attachments'
    folder. The restarted daemon ends the row `gone` — the claim did not happen, the
    invoice file is no longer in the outbox — and touches nothing of the clerk's. What
    the row knew lived in the process only: the start took the claim for a crash's whose
    invoice file may be in a work folder out of sight, and the row waited, retrying with
    "is the share mounted?", until the sidecar went or the invoice file came back."""
    from conftest import Proc

    from daemon.claiming.recovery import NOT_HAPPENED_GONE
    env.write_config(receiver.url, outbox={"rescan_seconds": 3600})
    cut = Proc([sys.executable, "-c", _CUT_BEFORE_MOVE, str(env.config)],
               env.root / "cut.log", env.root / "cut.out")
    try:
        wait_for(lambda: "outboxd running" in cut.stderr() or cut.popen.poll() is not None,
                 timeout=60, what="the daemon to start")
        drop_bundle(env.outbox, "INV-7004", {"a.pdf": pdf_bytes()})
        wait_for(lambda: journal_states(env).get("INV-7004.xml") == "claiming"
                 and "disk full (test)" in cut.stderr(), what="the claim cut short")
        wait_for(lambda: "finished at the next rescan" in (_row_of(env, "INV-7004.xml")[1]
                                                           or ""), what="its row saying so")
    finally:
        assert cut.stop(signal.SIGKILL) == -signal.SIGKILL, cut.stderr()
    assert list(env.processing.iterdir()) == []  # nothing moved
    (env.outbox / "INV-7004.xml").rename(env.root / "INV-7004.xml")  # the clerk's
    before = _row_of(env, "INV-7004.xml")

    daemon = start_daemon()  # recovery is done before it says it runs
    state, error, detail = wait_for(lambda: (row := _row_of(env, "INV-7004.xml")) != before
                                    and row, what="the start to finish the claim")
    assert (state, error, detail) == ("gone", None, NOT_HAPPENED_GONE), daemon.stderr()
    assert "is the share mounted?" not in daemon.stderr()
    assert sorted(p.name for p in (env.outbox / "INV-7004").iterdir()) == ["a.pdf"]
    assert receiver.requests() == [] and list(env.processing.iterdir()) == []


# Lean (conftest.LEAN): the check of a bundle changed since a POST of unknown outcome is
# the daemon's own (delivery/beforepost.py), whoever reads the bundle again; a restart's
# reading again in reader processes is the first test's. Two shipped starts were 3-4 s.
@pytest.mark.usefixtures("lean")
def test_kill_after_receiver_stored_then_a_file_changed_in_processing_is_not_sent_again(
        env: Env, start_receiver, start_daemon) -> None:
    """SIGKILL while the receiver has stored the bundle but not yet answered (its first
    POST uncounted), then an attachment replaced inside processing before the restart.
    The restarted daemon posted the changed bundle under its new id, a second bundle the
    receiver could not match with the first: the invoice twice. It is quarantined as
    processing-damaged naming the id the receiver holds, nothing is posted again, and
    REASON.txt says the receiver may have it instead of "Nothing was delivered"."""
    slow = start_receiver("--hold-first", "60", process=True)  # its hold outlasts the test
    env.write_config(slow.url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-7004", {"a.pdf": pdf_bytes()})
    wait_for(lambda: [r for r in slow.requests() if r["status"] == 201],
             what="the receiver to store the bundle")
    daemon.stop(signal.SIGKILL)
    [work] = list(env.processing.iterdir())
    (work / "INV-7004" / "a.pdf").write_bytes(pdf_bytes(text_marker="edited in processing"))
    [stored] = [p for p in slow.store.iterdir() if p.is_dir() and not p.name.startswith(".")]

    start_daemon()
    [entry] = wait_for(env.quarantined, what="the changed bundle in quarantine/")
    record = json.loads(wait_for(lambda: (entry / "reason.json").exists()
                                 and (entry / "reason.json").read_text(), what="reason.json"))
    assert record["bundle_id"] == stored.name and record["delivery_outcome_unknown"] is True
    [reason] = record["reasons"]
    assert reason["code"] == "processing-damaged"
    assert f"that attempt posted (bundle {stored.name[:12]})" in reason["message"]
    assert "so the receiver may hold the earlier version" in reason["message"]
    text = (entry / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" not in text and "may have this bundle already" in text
    assert (entry / "INV-7004" / "a.pdf").read_bytes() == pdf_bytes(
        text_marker="edited in processing")  # nothing lost: the edited file is archived
    assert [r["status"] for r in slow.requests()] == [201]
    assert env.sent_bundles() == [] and list(env.processing.iterdir()) == []
