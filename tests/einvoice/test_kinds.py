"""What a non-UBL invoice file is, in words: told from its root's start tag alone."""

from __future__ import annotations

import pytest

from daemon.einvoice.kinds import _content_words
from daemon.errors import HostileInput


def test_the_kind_is_told_from_the_root_start_tag_never_by_parsing_the_whole_file() -> None:
    """`outboxd check` names an `other` invoice file's kind in its own process, outside
    the reader's time and memory limits: parsed whole again, a 21 MB export took 8 s and
    780 MB there (64 MB allowed). Only the start of the file is parsed: what follows
    the root's start tag, here bytes no parser gets through, is never read as XML."""
    data = b"<?xml version='1.0'?>\n<!DOCTYPE Batch>\n<Batch xmlns='urn:x'>" + b"<r>&</r" * 10
    assert _content_words(data, "B-1.xml") == "XML whose root is <Batch> (in the namespace urn:x)"
    cii = b"<rsm:CrossIndustryInvoice xmlns:rsm='urn:un:unece:uncefact:data:standard:" \
          b"CrossIndustryInvoice:100'><<<"
    assert _content_words(cii, "C-1.xml").startswith("a UN/CEFACT CII invoice")


def test_an_entity_declared_before_the_root_is_refused_never_expanded() -> None:
    """A DTD declaring entities (billion laughs) ahead of the root: hostile-xml, as the
    reader says it, and nothing expanded."""
    data = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx">'
            b'<!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]><a>&y;</a>')
    with pytest.raises(HostileInput) as exc:
        _content_words(data, "H-1.xml")
    assert exc.value.code == "hostile-xml"


def test_a_ubl_namespace_whose_root_is_another_documents_is_not_called_that_document() -> None:
    """<Invoice> in UBL's CreditNote namespace (an export that mixed the two) is no UBL
    Invoice nor CreditNote: the words say which root in which namespace, and what a UBL
    Invoice's namespace is."""
    data = b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"/>'
    assert _content_words(data, "X-1.xml") == (
        "XML whose root is <Invoice> in the namespace urn:oasis:names:specification:ubl:"
        "schema:xsd:CreditNote-2 (a UBL Invoice's is urn:oasis:names:specification:ubl:"
        "schema:xsd:Invoice-2)")
