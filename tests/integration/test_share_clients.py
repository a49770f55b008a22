"""What Windows and Mac clients leave on an SMB share beside the files a clerk copies
in, as it lands on the server's disk: none of it is sent, none of it stops the bundle.
The real daemon, watchdog observer and reference receiver
(docs/folder-convention.md, section 1: desktop litter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Env, Receiver
from helpers import pdf_bytes, ubl_invoice, wait_for, write

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

# The ':' of a stream's name as a share without stream support shows it, mapped the SFM
# way (Mac clients, Samba's fruit, Linux cifs `mapposix`).
SFM_COLON = "\uf022"


def sent_and_attachments(env: Env) -> tuple[Path, list[str]]:
    """INV-1's entry in sent/ once its receipt is written, and the attachments the
    receipt's manifest names (as the clerk named them): what was sent."""
    [sent] = wait_for(env.sent_bundles, what="INV-1 in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    return sent, [a["original_name"] for i in manifest["invoices"] for a in i["attachments"]]


@pytest.mark.usefixtures("quick_page")
def test_streams_and_icon_files_in_the_mac_mapping_of_a_share_are_neither_sent_nor_errors(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A sidecar copied in over a share that shows a file's alternate data streams as
    files beside it, with the ':' mapped to U+F022: the PDF's download mark
    (`a.pdf` U+F022 `Zone.Identifier`, with and without `:$DATA`), Explorer's mark on
    Thumbs.db, a Mac's Finder info, a Mac's custom folder icon `Icon` + CR with the CR
    mapped to U+F00D, and the invoice file's download mark in the outbox.
    The bundle is sent with a.pdf as its one attachment, the stream files travel with
    the folder to sent/, nothing is quarantined and the status page lists none of
    them as a file left alone."""
    env.write_config(receiver.url)
    start_daemon()
    o = env.outbox
    streams = [f"a.pdf{SFM_COLON}Zone.Identifier",
               f"a.pdf{SFM_COLON}SmartScreen{SFM_COLON}$DATA",
               f"a.pdf{SFM_COLON}AFP_AfpInfo", "Thumbs.db", f"Thumbs.db{SFM_COLON}encryptable",
               "Icon\uf00d"]
    for name in streams:
        write(o / "INV-1" / name, b"[ZoneTransfer]\r\nZoneId=3\r\n")
    write(o / "INV-1" / "a.pdf", pdf_bytes())
    write(o / f"INV-1.xml{SFM_COLON}Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n")
    write(o / "INV-1.xml", ubl_invoice("INV-1"))

    sent, attachments = sent_and_attachments(env)
    assert attachments == ["a.pdf"]
    assert sorted(p.name for p in (sent / "INV-1").iterdir()) == sorted([*streams, "a.pdf"])
    assert env.quarantined() == []

    page = env.outbox / "outboxd-status.html"
    # The page is written after the bundle leaves; the stream file stays in the outbox.
    text = wait_for(lambda: page.exists() and "INV-1.xml" in page.read_text(encoding="utf-8")
                    and page.read_text(encoding="utf-8"), what="INV-1.xml on the status page")
    assert "Zone.Identifier" not in text


def test_a_mac_dropped_bundle_is_sent_at_once_and_its_appledouble_files_in_the_outbox_stay(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A bundle copied in from a Mac over a share without streams: `._INV-1.xml` beside
    the invoice file, `._INV-1` beside its sidecar, `._a.pdf` in it, and an orphaned
    `._b.pdf.part` (the Finder info of a copy that was cancelled). The AppleDouble file of
    a partial copy is no copy under way: the bundle is sent at once with a.pdf as its one
    attachment, the `._` files in the sidecar travel with it into sent/ (never to the
    operator); `._INV-1.xml` and `._INV-1` in the outbox root are litter there, which is
    never moved; nothing is quarantined."""
    env.write_config(receiver.url)
    start_daemon()
    o = env.outbox
    finder = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    write(o / "INV-1" / "._a.pdf", finder)
    write(o / "INV-1" / "._b.pdf.part", finder)
    write(o / "INV-1" / "a.pdf", pdf_bytes())
    write(o / "._INV-1", finder)
    write(o / "._INV-1.xml", finder)
    write(o / "INV-1.xml", ubl_invoice("INV-1"))

    sent, attachments = sent_and_attachments(env)
    assert attachments == ["a.pdf"]
    assert sorted(p.name for p in (sent / "INV-1").iterdir()) == \
        ["._a.pdf", "._b.pdf.part", "a.pdf"]
    assert (o / "._INV-1.xml").read_bytes() == finder and (o / "._INV-1").read_bytes() == finder
    assert env.quarantined() == []
