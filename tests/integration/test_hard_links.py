"""A bundle whose files have second names outside the outbox (hard links an ERP keeps),
through the real daemon and the reference receiver: what lies in sent/ is a copy of its
own, which a later save into the other names never changes; and a SIGKILL in the middle
of that copy loses nothing and sends the bundle once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import Env, Proc, journal_states
from helpers import pdf_bytes, ubl_invoice, wait_for

# Lean (conftest.LEAN): where the bundle is read has nothing to do with its names.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _linked_in(env: Env, erp: Path, name: str, pdfs: dict[str, bytes]) -> None:
    """The ERP's own files in `erp`; the bundle NAME made in the outbox of second names of
    them: the sidecar's files first, the invoice file last (linked under a temp name and
    renamed in, as an ERP saves)."""
    erp.mkdir()
    (erp / f"{name}.xml").write_bytes(ubl_invoice(name))
    (env.outbox / name).mkdir()
    for fname, data in pdfs.items():
        (erp / fname).write_bytes(data)
        os.link(erp / fname, env.outbox / name / fname)
    os.link(erp / f"{name}.xml", env.outbox / f".{name}.xml.tmp")
    os.rename(env.outbox / f".{name}.xml.tmp", env.outbox / f"{name}.xml")


def _save_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(data)


def _as_sent(entry: Path, name: str) -> None:
    """Each file of the entry has the SHA-256 its receipt.json's manifest gives, and one
    name."""
    manifest = json.loads((entry / "receipt.json").read_text())["manifest"]
    assert _sha(entry / f"{name}.xml") == manifest["invoice_file"]["sha256"]
    [invoice] = manifest["invoices"]
    for att in invoice["attachments"]:
        sent = entry / name / att["original_name"]
        assert _sha(sent) == att["sha256"] and sent.stat().st_nlink == 1
    assert (entry / f"{name}.xml").stat().st_nlink == 1


def test_a_bundle_of_second_names_is_archived_as_copies_its_erp_files_never_change(
        env: Env, receiver, start_daemon, tmp_path: Path) -> None:
    """The invoice file and both attachments are second names of the ERP's files. The
    bundle is sent and archived; the ERP then saves into its files in place: sent/ still
    holds what receipt.json says was sent, and the ERP's files hold what it saved."""
    env.write_config(receiver.url)
    start_daemon()
    erp = tmp_path / "erp"
    pdfs = {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)}
    _linked_in(env, erp, "INV-7101", pdfs)
    [entry] = wait_for(env.sent_bundles, what="the bundle in sent/")
    wait_for(lambda: journal_states(env).get("INV-7101.xml") == "sent", what="state sent")
    for fname in ("INV-7101.xml", *pdfs):
        _save_in_place(erp / fname, b"saved by the ERP after the send")
    _as_sent(entry, "INV-7101")
    assert {f: (entry / "INV-7101" / f).read_bytes() for f in pdfs} == pdfs
    assert [(erp / f).read_bytes() for f in ("INV-7101.xml", *pdfs)] == \
        [b"saved by the ERP after the send"] * 3
    [accepted] = receiver.accepted()
    assert accepted["idempotency_key"] == json.loads(
        (entry / "receipt.json").read_text())["manifest"]["bundle_id"]


# The daemon run as `outboxd run` is, but killed by SIGKILL halfway through the first
# copy it makes of a file of several names (the claim's, before the check by hashes).
_KILLED_MID_COPY = """
import os, signal, sys
from daemon.fs import fscopy
def killed(fin, fout):
    fout.write(fin.read(1000))
    fout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
fscopy.copy_into = killed
from daemon.entry import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""


def test_a_kill_halfway_through_a_copy_loses_nothing_and_sends_the_bundle_once(
        env: Env, receiver, start_daemon, tmp_path: Path) -> None:
    """SIGKILL while the claim copies a file of several names: the bundle lies in
    processing with its half copy beside it, nothing was sent. The restarted daemon
    removes the half copy, makes the copies and sends the bundle once, as validated;
    nothing is left in processing, and the ERP's files are whole where they were."""
    env.write_config(receiver.url)
    killed = Proc([sys.executable, "-c", _KILLED_MID_COPY, str(env.config)],
                  env.root / "killed.log", env.root / "killed.out")
    erp = tmp_path / "erp"
    pdfs = {"a.pdf": pdf_bytes(3)}
    try:
        wait_for(lambda: "outboxd running" in killed.stderr() or killed.popen.poll() is not None,
                 timeout=60, what="the daemon to start")
        _linked_in(env, erp, "INV-7102", pdfs)
        wait_for(lambda: killed.popen.poll() is not None, what="the kill inside the copy")
    finally:
        assert killed.stop() == -signal.SIGKILL, killed.stderr()
    [work] = env.processing.iterdir()
    assert [p.name for p in work.iterdir() if ".tmp-" in p.name], "no half copy was left"
    assert receiver.requests() == []
    xml = (erp / "INV-7102.xml").read_bytes()

    start_daemon()
    [entry] = wait_for(env.sent_bundles, what="the bundle in sent/ after the restart")
    wait_for(lambda: journal_states(env).get("INV-7102.xml") == "sent", what="state sent")
    _as_sent(entry, "INV-7102")
    assert sorted(os.listdir(entry)) == ["INV-7102", "INV-7102.xml", "receipt.json"]
    assert os.listdir(entry / "INV-7102") == ["a.pdf"]
    assert len(receiver.requests()) == 1
    assert list(env.processing.iterdir()) == []
    assert (erp / "INV-7102.xml").read_bytes() == xml
    assert (erp / "a.pdf").read_bytes() == pdfs["a.pdf"]


# As _KILLED_MID_COPY, but killed once the first copy took its file's name, the file
# itself then at the temp's name (not let go).
_KILLED_AFTER_EXCHANGE = """
import os, signal, sys
from daemon.claiming import owncopy
exchange = owncopy.rename_exchange
def killed(a, b):
    exchange(a, b)
    os.kill(os.getpid(), signal.SIGKILL)
owncopy.rename_exchange = killed
from daemon.entry import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""


def test_bytes_saved_through_a_name_removed_after_a_kill_are_sent_not_deleted(
        env: Env, receiver, start_daemon, tmp_path: Path) -> None:
    """SIGKILL once a.pdf's copy took its name in the work folder, before the file itself
    (at the temp's name) was let go. The ERP then saves new bytes through its name for
    a.pdf and removes that name: the file at the temp's name holds the only copy of them.
    The restarted daemon puts it back, finds the bundle changed, lets it settle again and
    sends it once, with the new bytes; nothing is left in processing."""
    env.write_config(receiver.url)
    killed = Proc([sys.executable, "-c", _KILLED_AFTER_EXCHANGE, str(env.config)],
                  env.root / "killed.log", env.root / "killed.out")
    erp = tmp_path / "erp"
    erp.mkdir()
    try:
        wait_for(lambda: "outboxd running" in killed.stderr() or killed.popen.poll() is not None,
                 timeout=60, what="the daemon to start")
        (erp / "a.pdf").write_bytes(pdf_bytes(3))
        (env.outbox / "INV-7103").mkdir()
        os.link(erp / "a.pdf", env.outbox / "INV-7103" / "a.pdf")
        (env.outbox / "INV-7103.xml").write_bytes(ubl_invoice("INV-7103"))
        wait_for(lambda: killed.popen.poll() is not None, what="the kill after the exchange")
    finally:
        assert killed.stop() == -signal.SIGKILL, killed.stderr()
    [work] = env.processing.iterdir()
    [left] = [p for p in (work / "INV-7103").iterdir() if ".tmp-" in p.name]
    assert left.stat().st_ino == (erp / "a.pdf").stat().st_ino, "not killed after the exchange"
    new = pdf_bytes(4)
    _save_in_place(erp / "a.pdf", new)
    (erp / "a.pdf").unlink()

    start_daemon()
    [entry] = wait_for(env.sent_bundles, what="the bundle in sent/ after the restart")
    wait_for(lambda: journal_states(env).get("INV-7103.xml") == "sent", what="state sent")
    _as_sent(entry, "INV-7103")
    assert (entry / "INV-7103" / "a.pdf").read_bytes() == new
    assert os.listdir(entry / "INV-7103") == ["a.pdf"]
    assert len(receiver.requests()) == 1
    assert list(env.processing.iterdir()) == []
