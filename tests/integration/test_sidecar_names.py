"""Ignored names in and beside a bundle (docs/folder-convention.md section 1) and a
sidecar folder moved in whole (section 3), end to end: `outboxd run` with the real
watcher, posting to the reference receiver on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from conftest import Env, Receiver, journal_states
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for, write

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_a_copy_in_progress_holds_its_bundle_and_litter_goes_to_sent_unposted(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A sidecar holding a file still being copied (`b.pdf.part`) is not sent while that
    name is there; once the copy gets its final name the bundle goes with a.pdf and b.pdf
    only. The desktop litter in the sidecar (Thumbs.db, .DS_Store, a Mac's ._a.pdf) is no
    attachment, never posted, and travels with the folder into sent/; the litter beside
    the invoice file in the outbox root (._INV-1.xml, INV-1.xml~) is never moved."""
    env.write_config(receiver.url)
    start_daemon()
    litter = {"Thumbs.db": b"thumbs", ".DS_Store": b"ds", "._a.pdf": b"apple double"}
    part = write(env.outbox / "INV-1" / "b.pdf.part", pdf_bytes(2))
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes(), **litter})
    for name in ("._INV-1.xml", "INV-1.xml~"):
        write(env.outbox / name, b"beside")
    # A bundle dropped after it, sent: INV-1 had as long to settle and was not sent.
    drop_bundle(env.outbox, "INV-2", {"c.pdf": pdf_bytes()})
    wait_for(lambda: len(env.sent_bundles()) == 1, what="INV-2 sent")
    assert [p.name.split("--")[0] for p in env.sent_bundles()] == ["INV-2"]
    assert journal_states(env)["INV-1.xml"] == "settling"
    assert (env.outbox / "INV-1.xml").exists()

    part.rename(part.with_name("b.pdf"))  # the copy ends
    wait_for(lambda: len(env.sent_bundles()) == 2, what="INV-1 sent once the copy ended")
    [sent] = [p for p in env.sent_bundles() if p.name.startswith("INV-1--")]
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [a["original_name"] for a in manifest["invoices"][0]["attachments"]] == [
        "a.pdf", "b.pdf"]
    for name, data in litter.items():
        assert (sent / "INV-1" / name).read_bytes() == data
    stored = receiver.store / manifest["bundle_id"]
    assert stored.is_dir()
    assert not [p for p in stored.rglob("*") if p.name in litter]
    assert (env.outbox / "._INV-1.xml").read_bytes() == b"beside"
    assert (env.outbox / "INV-1.xml~").read_bytes() == b"beside"


def test_a_sidecar_moved_in_whole_beside_a_waiting_file_goes_with_all_its_folders(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A file of two invoices waits for attachments; its sidecar, made elsewhere on the
    same file system with a folder per invoice, is moved in with one rename. It counts as
    a whole: no event names the files inside it, yet both invoices go with their files,
    long before the rescan."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600},
                     policy={"unattached": "hold"})
    start_daemon()
    body = b"".join(ubl_invoice(i).split(b"?>", 1)[-1] for i in ("B-1", "B-2"))
    write(env.outbox / ".batch.tmp", b"<Batch>" + body + b"</Batch>").rename(
        env.outbox / "batch.xml")
    wait_for(lambda: journal_states(env).get("batch.xml") == "waiting",
             what="the file to wait for its attachments")
    made = env.root / "made-elsewhere"
    write(made / "B-1" / "one.pdf", pdf_bytes())
    write(made / "B-2" / "two.pdf", pdf_bytes(2))
    made.rename(env.outbox / "batch")
    [sent] = wait_for(env.sent_bundles, timeout=30, what="the batch sent with its folders")
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["original_name"] for a in i["attachments"]])
            for i in manifest["invoices"]] == [("B-1", ["one.pdf"]), ("B-2", ["two.pdf"])]
    assert manifest["warnings"] == []
