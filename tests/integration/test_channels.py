"""Attachments a clerk's desk makes, through the real daemon and receiver
(docs/folder-convention.md, "What makes an attachment invalid" and attachments.toml)."""

from __future__ import annotations

import io
import json
import unicodedata

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for
from PIL import Image
from pypdf import PdfReader

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")


def test_a_macs_file_with_an_erps_entry_and_a_one_column_csv_are_sent_as_meant(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """'Räkning.pdf' named on a Mac (accent as a separate mark) gets the type its entry
    in attachments.toml gives it, typed as one letter; a .csv of one column goes as CSV.
    Before, the bundle was quarantined: the entry named "no file" and the CSV was
    "plain text"."""
    env.write_config(receiver.url)
    start_daemon()
    mac_name = unicodedata.normalize("NFD", "Räkning.pdf")
    typed = unicodedata.normalize("NFC", "Räkning.pdf")
    drop_bundle(env.outbox, "INV-1001", {
        mac_name: pdf_bytes(2),
        "orders.csv": b"Ordernummer\r\n4711\r\n4712\r\n",
        "attachments.toml": f'[files."{typed}"]\ntype = "Timesheet"\n'.encode(),
    })
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/")
    assert env.quarantined() == []
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    by_name = {a["original_name"]: a for a in manifest["invoices"][0]["attachments"]}
    assert by_name[mac_name]["document_type"] == "Timesheet"
    assert by_name["orders.csv"]["content_type"] == "text/csv"
    assert [w["code"] for w in manifest["warnings"]] == ["pdf-recommended"]
    assert len(receiver.accepted()) == 1


@pytest.mark.usefixtures("lean")  # neither reads in processes nor pre-flights
def test_a_phones_jpeg_of_300_dpi_without_a_unit_tag_is_printed_at_300_dpi(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """convert_images on external print: a photo whose EXIF says 300 DPI and holds no
    ResolutionUnit (inch, as a TIFF's) arrives as a PDF page of its size at 300 DPI.
    Before, it was held as "72 DPI", a figure the file does not hold."""
    env.write_config(receiver.url, validation={"channel": "external-print",
                                               "convert_images": True})
    start_daemon()
    exif = Image.Exif()
    exif[0x011A], exif[0x011B] = 300.0, 300.0  # XResolution, YResolution; no unit tag
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), "white").save(buf, "JPEG", exif=exif)
    drop_bundle(env.outbox, "INV-1001", {"photo.jpg": buf.getvalue()})
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/")
    assert not (env.outbox / "INV-1001.errors.txt").exists() and env.quarantined() == []
    pdf = PdfReader(sent / "INV-1001.converted" / "photo.pdf")
    box = pdf.pages[0].mediabox
    assert (float(box.width), float(box.height)) == (144.0, 72.0)  # 2 × 1 inch


@pytest.mark.usefixtures("lean")  # neither reads in processes nor pre-flights
def test_a_channel_set_for_one_invoice_of_a_batch_holds_the_file_saying_which_others(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A clerk marks INV-2001 of batch-42.xml for print in its own folder: the file
    cannot be split, so it is held with an errors file naming INV-2002 and the fixes,
    instead of going to print whole. Moving the channel to the sidecar root (all of it
    for print) sends it."""
    env.write_config(receiver.url, policy={"invalid": "hold"})
    start_daemon()
    batch = (b'<?xml version="1.0" encoding="UTF-8"?><Batch>'
             + b"".join(ubl_invoice(i).split(b"?>", 1)[1] for i in ("INV-2001", "INV-2002"))
             + b"</Batch>")
    drop_bundle(env.outbox, "batch-42", {
        "INV-2001/scan.pdf": pdf_bytes(1),
        "INV-2001/attachments.toml": b'channel = "external-print"\n',
        "INV-2002/spec.pdf": pdf_bytes(2)}, invoice=batch)
    errors = env.outbox / "batch-42.errors.txt"
    text = wait_for(lambda: errors.exists() and errors.read_text(), what="the errors file")
    assert ("batch-42/INV-2001/attachments.toml: sets channel = 'external-print' for "
            "INV-2001 only, but the invoice file holds several invoices and goes out whole "
            "on one channel: INV-2002 would go out on it too") in text
    assert receiver.requests() == []

    (env.outbox / "batch-42" / "INV-2001" / "attachments.toml").rename(
        env.outbox / "batch-42" / "attachments.toml")
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/")
    assert json.loads((sent / "receipt.json").read_text())["manifest"]["channel"] == \
        "external-print"
    wait_for(lambda: not errors.exists(), what="the errors file to go")
