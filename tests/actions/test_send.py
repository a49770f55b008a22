"""`outboxd send NAME`: which bundle NAME means (a file, its stem, or an invoice id)."""

from __future__ import annotations

import pytest
from conftest import Env
from helpers import ubl_invoice, write

from daemon.actions.send import SendRefused, resolve
from daemon.config_load import load_settings


def test_the_stem_of_an_invoice_file_names_its_bundle(env: Env) -> None:
    """`send scan-7` finds scan-7.xml although the invoice inside is INV-9: NAME is the
    same NAME as in NAME.send-anyway."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "scan-7.xml", ubl_invoice("INV-9"))
    assert resolve("scan-7", settings).invoice.name == "scan-7.xml"
    assert resolve("scan-7.xml", settings).invoice.name == "scan-7.xml"
    assert resolve("INV-9", settings).invoice.name == "scan-7.xml"


def test_a_stem_shared_by_two_invoice_files_is_refused_naming_both(env: Env) -> None:
    """scan-7.xml and scan-7.pdf: `send scan-7` does not guess; it names both files."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "scan-7.xml", ubl_invoice("INV-9"))
    write(env.outbox / "scan-7.pdf", b"%PDF-1.4\n%%EOF\n")
    with pytest.raises(SendRefused) as info:
        resolve("scan-7", settings)
    assert "scan-7.pdf, scan-7.xml" in str(info.value) and "name the file" in str(info.value)


def test_a_name_that_is_one_files_stem_and_anothers_invoice_id_is_refused(env: Env) -> None:
    """INV-1001.xml holds CN-77 and batch-42.xml holds INV-1001: `send INV-1001` could mean
    either, so it releases neither and names both."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "INV-1001.xml", ubl_invoice("CN-77"))
    write(env.outbox / "batch-42.xml", ubl_invoice("INV-1001"))
    with pytest.raises(SendRefused) as info:
        resolve("INV-1001", settings)
    assert "INV-1001.xml, batch-42.xml" in str(info.value)
    assert resolve("INV-1001.xml", settings).invoice.name == "INV-1001.xml"
