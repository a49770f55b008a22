"""Attachments a clerk's desk makes, through the real daemon and receiver
(docs/folder-convention.md, "What makes an attachment invalid" and attachments.toml)."""

from __future__ import annotations

import json
import unicodedata

from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, wait_for


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
