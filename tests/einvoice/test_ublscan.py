"""How ubl-embedded finds each invoice's bytes (daemon/einvoice/ublscan.py)."""

from __future__ import annotations

import pytest

from daemon.einvoice.ublscan import scan
from daemon.errors import InputError

from .broken import BASE


def test_an_invoice_not_in_its_declared_encoding_names_the_line_and_the_fix() -> None:
    """The scan reads the bytes in the encoding the declaration names, as the receiver
    will: Windows-1252 bytes under encoding="UTF-8" read "not well-formed (invalid
    token)" and "export the invoice again". The error names the encoding, the line of
    the first byte outside it and the fix: the export's encoding setting."""
    text = BASE.decode("utf-8")
    line = 1 + text[:text.index("</cbc:Name>")].count("\n")
    data = text.replace("</cbc:Name>", "ü</cbc:Name>", 1).encode("cp1252")
    with pytest.raises(InputError) as info:
        scan(data, "INV-9.xml")
    assert (info.value.code, info.value.file) == ("invalid-xml", "INV-9.xml")
    assert info.value.message.startswith(
        f"is not UTF-8 text, as its XML declaration says: line {line} holds the byte 0xfc")
    assert info.value.message.endswith("— export the invoice as UTF-8, or have the ERP "
                                       "name the encoding it writes in the XML declaration")
