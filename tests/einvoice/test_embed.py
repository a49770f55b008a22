"""ubl-embedded (docs/einvoice.md): attachments spliced into the UBL document, byte for byte."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from pathlib import Path

import pytest
from helpers import pdf_bytes
from lxml import etree
from swaps import opened_in, swap_for_link

from daemon.bundle import Attachment, Bundle, Finding, InvoiceFile
from daemon.configuration.config import Settings
from daemon.einvoice import check_bundle, embed, mime_codes, preflight
from daemon.einvoice.embed import Plan, documents_for

from .broken import BASE, BIS_4A, EXAMPLES, body, nested, outside_en16931, with_id

NS = {"cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
      "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8"
       b"N\x00\x00\x00\x00IEND\xaeB`\x82")


def bundle_of(tmp_path: Path, invoice: bytes, files: dict[str, tuple[str, bytes, str]],
              ids: tuple[str, ...] = ("Snippet1",)) -> Bundle:
    """files: name -> (invoice id, bytes, content type)."""
    path = tmp_path / "INV.xml"
    path.write_bytes(invoice)
    atts = []
    for name, (invoice_id, data, ctype) in files.items():
        p = tmp_path / "INV" / invoice_id / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        # rel as matching gives it: the file's path from the folder holding INV.xml.
        atts.append(Attachment(p, f"INV/{invoice_id}/{name}", name, invoice_id, len(data),
                               hashlib.sha256(data).hexdigest(), "Timesheet",
                               "Hours" if name.endswith(".pdf") else "", content_type=ctype))
    inv = InvoiceFile(path, "INV.xml", len(invoice), hashlib.sha256(invoice).hexdigest(), "ubl",
                      ids)
    return Bundle(inv, tmp_path / "INV", tuple(atts), "e-invoice")


def built(bundle: Bundle, safe_filenames: bool = True) -> Plan:
    """The documents (or the findings) the delivery builds: transport.EmbeddedDeliverer's
    call, [delivery] safe_filenames as given (true by default, as in the config)."""
    return documents_for(bundle, mime_codes(), safe_filenames=safe_filenames)


def embedded_check(bundle: Bundle, safe_filenames: bool = True,
                   preflight: str = "off") -> list[Finding]:
    """What the daemon's check of a read bundle (finish.evaluate → einvoice.check_bundle)
    adds under format = "ubl-embedded" with [einvoice] preflight = "off" (by default): the
    findings of building each document and of checking it (XSD, fatal rules), and
    nothing else."""
    settings = Settings(outbox={"path": "/nonexistent-outbox"},
                        delivery={"url": "http://127.0.0.1:9/", "format": "ubl-embedded",
                                  "safe_filenames": safe_filenames},
                        einvoice={"preflight": preflight})
    return list(check_bundle(bundle, settings).findings)


def refs(doc: bytes) -> list[etree._Element]:
    return etree.fromstring(doc).findall("cac:AdditionalDocumentReference", NS)


def test_attachments_go_in_as_one_block_and_every_other_byte_stays(tmp_path: Path) -> None:
    pdf = pdf_bytes()
    b = bundle_of(tmp_path, BASE, {"timesheet.pdf": ("Snippet1", pdf, "application/pdf"),
                                   "photo.png": ("Snippet1", PNG, "image/png")})
    [doc] = built(b).documents
    start, end = doc.inserted
    assert doc.data[:start] + doc.data[end:] == BASE
    found = {r.findtext("cbc:ID", namespaces=NS): r for r in refs(doc.data)}
    assert set(found) == {"timesheet.pdf", "photo.png"}
    obj = found["timesheet.pdf"].find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", NS)
    assert base64.b64decode(obj.text) == pdf
    assert obj.get("mimeCode") == "application/pdf" and obj.get("filename") == "timesheet.pdf"
    assert found["timesheet.pdf"].findtext("cbc:DocumentDescription", namespaces=NS) == "Hours"
    # No note: the document type describes it. Never a DocumentTypeCode.
    assert found["photo.png"].findtext("cbc:DocumentDescription", namespaces=NS) == "Timesheet"
    assert b"DocumentTypeCode" not in doc.data[start:end]
    assert b"\n" not in obj.text.encode()  # base64 on one line
    # In the document's own indentation, after BuyerReference, before the supplier.
    assert doc.data[start:end].startswith(b"\n    <cac:AdditionalDocumentReference>")
    assert preflight(doc.data, "x.xml").findings == ()


def test_new_references_follow_the_existing_ones(tmp_path: Path) -> None:
    data = (EXAMPLES / "Allowance-example.xml").read_bytes()
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b).documents
    assert [r.findtext("cbc:ID", namespaces=NS) for r in refs(doc.data)] == [
        "DR35141", "ts12345", "a.pdf"]
    assert preflight(doc.data, "x.xml").errors == ()


def test_credit_note_gets_them_where_its_schema_wants_them(tmp_path: Path) -> None:
    data = (EXAMPLES / "base-creditnote-correction.xml").read_bytes()
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b).documents
    root = etree.fromstring(doc.data)
    names = [etree.QName(c).localname for c in root if isinstance(c.tag, str)]
    i = names.index("AdditionalDocumentReference")
    assert names[i - 1] == "BillingReference" and names[i + 1] == "AccountingSupplierParty"
    assert preflight(doc.data, "x.xml").findings == ()


def test_the_documents_own_prefixes_and_crlf_line_endings_are_used(tmp_path: Path) -> None:
    data = BASE.replace(b"xmlns:cac=", b"xmlns:a=").replace(b"<cac:", b"<a:") \
        .replace(b"</cac:", b"</a:").replace(b"\n", b"\r\n")
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b).documents
    start, end = doc.inserted
    assert doc.data[start:end].startswith(b"\r\n    <a:AdditionalDocumentReference><cbc:ID>")
    assert b"xmlns" not in doc.data[start:end]
    assert doc.data[:start] + doc.data[end:] == data
    assert preflight(doc.data, "x.xml").findings == ()


def test_two_invoices_in_one_file_become_two_documents_byte_for_byte(tmp_path: Path) -> None:
    one, two = with_id(BASE, "INV-A"), with_id(BASE, "INV-B")
    batch = b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n' + body(one) + body(two) + \
        b"</Batch>\n"
    b = bundle_of(tmp_path, batch, {"a.pdf": ("INV-B", pdf_bytes(), "application/pdf")},
                  ids=("INV-A", "INV-B"))
    docs = built(b).documents
    assert [d.invoice_id for d in docs] == ["INV-A", "INV-B"]
    assert docs[0].data == b'<?xml version="1.0" encoding="UTF-8"?>\n' + body(one)
    start, end = docs[1].inserted
    assert docs[1].data[:start] + docs[1].data[end:] == \
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + body(two)
    assert embedded_check(b) == []


def test_split_invoice_relying_on_the_wrappers_namespaces_is_an_error(tmp_path: Path) -> None:
    inner = BASE.split(b"?>\n", 1)[1].replace(
        b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"', b"")
    batch = (b'<Batch xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:'
             b'CommonBasicComponents-2">' + inner + b"</Batch>")
    plan = built(bundle_of(tmp_path, batch, {}))
    assert [f.code for f in plan.findings] == ["embed-split"] and "cbc" in plan.findings[0].message


def test_types_outside_the_peppol_list_and_case_equal_names_are_errors(tmp_path: Path) -> None:
    b = bundle_of(tmp_path, BASE, {"scan.tif": ("Snippet1", b"II*\x00", "image/tiff"),
                                   "A.pdf": ("Snippet1", pdf_bytes(), "application/pdf"),
                                   "a.PDF": ("Snippet1", pdf_bytes(2), "application/pdf")})
    plan = built(b)
    assert plan.documents == ()
    assert sorted(f.code for f in plan.findings) == ["embed-name-collision",
                                                     "embed-type-not-allowed"]
    # The clerk replaces the TIFF by a PDF, not adds one beside it (still refused).
    [refused] = [f for f in plan.findings if f.code == "embed-type-not-allowed"]
    assert refused.file.endswith("scan.tif") and refused.message.endswith(
        "inside an invoice — export it as PDF and put that file in its place")


def test_embedded_document_that_breaks_a_fatal_rule_is_an_error_in_any_mode(
        tmp_path: Path) -> None:
    """The finished document is checked whatever [einvoice] preflight says: an empty
    reference id the ERP wrote is caught there (BR-52) as an error."""
    data = BASE.replace(b"    <cac:AccountingSupplierParty>",
                        b"    <cac:AdditionalDocumentReference><cbc:ID></cbc:ID>"
                        b"</cac:AdditionalDocumentReference>\n    <cac:AccountingSupplierParty>")
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    found = embedded_check(b)
    assert any("[BR-52]" in f.message and f.severity == "error" for f in found)


def test_a_bundle_with_an_error_already_is_not_built_so_its_error_is_said_once(
        tmp_path: Path) -> None:
    """A bundle that reading or validation refused (a TIFF the channel does not take) is
    held or quarantined for that error: its documents are not built, and the clerk's
    errors file does not say the same file's fault again in embedding's words."""
    b = bundle_of(tmp_path, BASE, {"scan.tif": ("Snippet1", b"II*\x00", "image/tiff")})
    refused = Finding("type-not-allowed", "INV/Snippet1/scan.tif", "is a TIFF image",
                      "error", "Snippet1")
    assert embedded_check(b.with_findings((refused,))) == [refused]


def test_a_built_document_nesting_deeper_than_the_rules_read_is_an_error_finding(
        tmp_path: Path) -> None:
    """With [einvoice] preflight = "off" the built document is the first the rules see:
    one nesting 150 deep (Saxon reads 100) is an invalid-xml error of the invoice file,
    not Saxon's exception out of the check."""
    b = bundle_of(tmp_path, nested(150), {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [f] = embedded_check(b)
    assert (f.code, f.file, f.severity) == ("invalid-xml", "INV.xml", "error")
    assert f.message.startswith("nests elements more than 100 deep")


def test_an_invoice_without_attachments_that_breaks_a_rule_is_blamed_not_its_attachments(
        tmp_path: Path) -> None:
    """A wrong total in an invoice with no attachments (preflight "off" or "warn"): the
    error spoke of "the document built ... with its attachments inside" and told the
    clerk to fix the attachments, of which there are none. It names the invoice and
    says to correct it in the ERP."""
    data = BASE.replace(b'<cbc:PayableAmount currencyID="EUR">1656.25</cbc:PayableAmount>',
                        b'<cbc:PayableAmount currencyID="EUR">9.99</cbc:PayableAmount>')
    assert data != BASE
    found = embedded_check(bundle_of(tmp_path, data, {}))
    [f] = [f for f in found if "[BR-CO-16]" in f.message]
    assert f.message.startswith("invoice Snippet1 breaks [BR-CO-16]")
    assert "attachments" not in f.message and "correct the invoice in the ERP" in f.message


def test_under_preflight_warn_a_fatal_rule_is_said_once_as_the_built_documents_error(
        tmp_path: Path) -> None:
    """[einvoice] preflight = "warn" finds the wrong total as a warning; ubl-embedded
    never sends a document that breaks a fatal rule, so the built document's check says
    it as an error. The clerk reads it once, as that error, not also as a warning."""
    data = BASE.replace(b'<cbc:PayableAmount currencyID="EUR">1656.25</cbc:PayableAmount>',
                        b'<cbc:PayableAmount currencyID="EUR">9.99</cbc:PayableAmount>')
    found = embedded_check(bundle_of(tmp_path, data, {}), preflight="warn")
    [f] = [f for f in found if "[BR-CO-16]" in f.message]
    assert f.severity == "error" and f.message.startswith("invoice Snippet1 breaks [BR-CO-16]")


CII = (b'<?xml version="1.0" encoding="UTF-8"?>\n<rsm:CrossIndustryInvoice xmlns:rsm='
       b'"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"><rsm:ExchangedDocument/>'
       b"</rsm:CrossIndustryInvoice>\n")
# What each kind of invoice file that is not UBL is said to be in its not-ubl error.
NOT_UBL = {
    "INV.pdf": (pdf_bytes(), "is a PDF, not a UBL 2.1 Invoice or CreditNote"),
    "INV.xml": (CII, "is a UN/CEFACT CII invoice (CrossIndustryInvoice"),
    "ORDER.xml": (b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>',
                  "is a UBL Order, not a UBL 2.1 Invoice or CreditNote"),
    "SV.xml": (b'<Invoice xmlns="urn:sfti:documents:BasicInvoice:1:0"><ID>SV-1</ID></Invoice>',
               "is a Svefaktura 1.0 invoice"),
    "BARE.xml": (b"<Invoice><ID>B-1</ID></Invoice>", "is XML whose root is <Invoice> in no "
                 "namespace (a UBL Invoice's is urn:oasis:names:specification:ubl:schema:xsd:"
                 "Invoice-2), not"),
    "BATCH.xml": (b'<x:Batch xmlns:x="urn:example:batch"/>', "is XML whose root is <Batch> "
                  "(in the namespace urn:example:batch), not a UBL 2.1"),
    "INV.edi": (b"UNA:+.? 'UNB+UNOC:3+SENDER+RECEIVER+261106:1200+1'\n",
                "is a plain text file, not a UBL 2.1 Invoice or CreditNote"),
}


@pytest.mark.parametrize("name", sorted(NOT_UBL))
def test_an_invoice_file_that_is_not_ubl_is_a_not_ubl_error_saying_what_it_is(
        tmp_path: Path, name: str) -> None:
    """ubl-embedded sends UBL 2.1 Invoice/CreditNote documents only: any other invoice
    file is a bundle error `not-ubl` naming the file, and no document is made. The error
    said "(other)" — reading's internal word — of a CII invoice, a UBL Order or a wrapper
    holding no invoice; it says what the file is, by its root element or content, and the
    two ways out: a UBL export, or format = "bundle"."""
    from daemon.reading.invoices import read_invoice_file
    data, words = NOT_UBL[name]
    path = tmp_path / name
    path.write_bytes(data)
    read = read_invoice_file(path, name, r"Invoice number: (\S+)")
    assert read.format != "ubl"
    inv = InvoiceFile(path, name, len(data), hashlib.sha256(data).hexdigest(), read.format,
                      read.invoice_ids)
    plan = built(Bundle(inv, None, (), "e-invoice"))
    assert plan.documents == ()
    [finding] = plan.findings
    assert (finding.code, finding.file, finding.severity) == ("not-ubl", name, "error")
    assert finding.message.startswith(words), finding.message
    assert "(other)" not in finding.message
    assert finding.message.endswith("export the invoice from the ERP as a UBL 2.1 Invoice or "
                                    "CreditNote (Peppol BIS Billing 3.0), or have the admin "
                                    'set [delivery] format = "bundle" to send the file as it '
                                    "is")


def test_a_not_ubl_file_changed_since_its_check_is_still_said_to_be_not_ubl(
        tmp_path: Path) -> None:
    """The file is read again to say what it is: one rewritten since its check is not
    described by its new bytes (its own error says it changed, when it is read again);
    the error still says it is not UBL."""
    path = tmp_path / "INV.xml"
    path.write_bytes(CII)
    inv = InvoiceFile(path, "INV.xml", len(CII), hashlib.sha256(CII).hexdigest(), "other",
                      ("INV",))
    path.write_bytes(b"<Order/>")
    [finding] = built(Bundle(inv, None, (), "e-invoice")).findings
    assert finding.code == "not-ubl"
    assert finding.message.startswith("is not a UBL 2.1 Invoice or CreditNote, the only ")


def test_split_documents_of_a_file_with_a_utf8_bom_keep_its_bom_and_declaration(
        tmp_path: Path) -> None:
    """Windows ERPs write a UTF-8 byte order mark before the XML declaration. Each
    document cut from such a batch is the file's BOM and declaration, then the invoice's
    own bytes — as it is for a file without a BOM — not the bare element."""
    bom, decl = b"\xef\xbb\xbf", b'<?xml version="1.0" encoding="UTF-8"?>'
    one, two = with_id(BASE, "INV-A"), with_id(BASE, "INV-B")
    batch = bom + decl + b"\n<Batch>\n" + body(one) + body(two) + b"</Batch>\n"
    b = bundle_of(tmp_path, batch, {"a.pdf": ("INV-B", pdf_bytes(), "application/pdf")},
                  ids=("INV-A", "INV-B"))
    docs = built(b).documents
    assert docs[0].data == bom + decl + b"\n" + body(one)
    start, end = docs[1].inserted
    assert docs[1].data[:start] + docs[1].data[end:] == bom + decl + b"\n" + body(two)
    assert embedded_check(b) == []


def test_a_rule_the_invoice_itself_breaks_blames_the_invoice_not_its_attachments(
        tmp_path: Path) -> None:
    """The official Greek example (tests/fixtures/peppol) has its document references
    after the buyer, where the UBL 2.1 schema does not allow them. With an attachment
    beside it, the built document fails the XSD at that same place: the error told the
    clerk to "fix the attachments or the invoice", and the attachment is fine. A rule the
    invoice breaks on its own names the invoice and says to correct it in the ERP."""
    greek = (EXAMPLES.parent / "peppol" / "GR-base-example-correct.xml").read_bytes()
    gr_id = "061828591|01/10/2020|0|1.1|0|1"
    found = embedded_check(bundle_of(
        tmp_path, greek, {"a.pdf": (gr_id, pdf_bytes(), "application/pdf")}, ids=(gr_id,)))
    [f] = found
    assert f.message.startswith(f"invoice {gr_id} breaks [UBL-XSD] Element "
                                "'cac:AdditionalDocumentReference'")
    assert "correct the invoice in the ERP" in f.message
    assert "attachments" not in f.message


def test_a_rule_only_the_built_document_breaks_still_blames_the_attachments(
        tmp_path: Path) -> None:
    """An empty attachment (validation refuses it earlier; here it reaches the builder)
    makes an empty EmbeddedDocumentBinaryObject, which only the built document has: that
    error is about the document with its attachments inside."""
    found = embedded_check(bundle_of(tmp_path, BASE, {"empty.pdf": ("Snippet1", b"",
                                                                       "application/pdf")}))
    assert found and all(f.message.startswith("the document built for invoice Snippet1 with "
                                              "its attachments inside breaks [")
                         for f in found)


def test_a_file_named_like_one_the_norwegian_example_already_embeds_is_a_collision(
        tmp_path: Path) -> None:
    """The official Norwegian example embeds Hours-spent.csv itself; an attachment
    hours-spent.CSV beside it would be a second file of that name ignoring case."""
    data = (EXAMPLES.parent / "peppol" / "Norwegian-example-1.xml").read_bytes()
    b = bundle_of(tmp_path, data, {"hours-spent.CSV": ("TOSL108", b"a;b\n1;2\n", "text/csv")},
                  ids=("TOSL108",))
    plan = built(b)
    assert plan.documents == ()
    [f] = plan.findings
    assert f.code == "embed-name-collision" and "'Hours-spent.csv'" in f.message


def test_an_attachment_whose_folder_became_a_link_is_never_embedded_from_outside(
        tmp_path: Path) -> None:
    """The invoice's folder swapped for a link to an outside folder holding a PDF of the
    same name, after validation: the document is not built (an error names the link and
    the fix, which holds the bundle at validation and quarantines it at delivery), and
    the outside PDF is never opened."""
    b = bundle_of(tmp_path, BASE, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.pdf").write_bytes(pdf_bytes(2))
    swap_for_link(tmp_path / "INV" / "Snippet1", outside)
    with opened_in(outside) as opened:
        found = embedded_check(b)
    assert opened == []
    [f] = found
    assert (f.code, f.file, f.invoice_id) == ("symlink", "INV/Snippet1/a.pdf", "Snippet1")
    assert "lies in INV/Snippet1, which is a symbolic link" in f.message
    assert "put the folder itself there" in f.message


def test_files_grown_past_their_limit_since_their_check_are_refused_not_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pre-flight and ubl-embedded read the invoice file again when matching kept no
    bytes (at delivery, or a bundle past 16 MiB), never into memory whatever its size:
    pre-flight bounded as matching bounds it (one grown past the limit since is
    invoice-too-large); ubl-embedded, like an attachment, up to the size it was checked
    at: one grown since is refused as the multipart delivery refuses it."""
    import daemon.reading.invoices
    from daemon.einvoice import read_and_preflight
    from daemon.errors import InputError
    b = bundle_of(tmp_path, BASE, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    monkeypatch.setattr(daemon.reading.invoices, "MAX_INVOICE_BYTES", len(BASE) + 100)
    with (tmp_path / "INV" / "Snippet1" / "a.pdf").open("ab") as fh:
        fh.write(b"\n" * 10)  # still a PDF: only its size tells
    # Read as its document is built (one at a time, at delivery an InputError as any
    # file that changed after its check); the check of a read bundle says it as an error.
    with pytest.raises(InputError) as refused:
        list(built(b).each())
    assert (refused.value.code, refused.value.file) == ("processing-damaged",
                                                          "INV/Snippet1/a.pdf")
    [finding] = embedded_check(b)
    assert (finding.code, finding.file) == ("processing-damaged", "INV/Snippet1/a.pdf")
    assert "not the file that was checked" in finding.message
    with (tmp_path / "INV.xml").open("ab") as fh:
        fh.write(b"\n" * 200)  # still well-formed XML, past the limit
    with pytest.raises(InputError) as caught:
        read_and_preflight(b.invoice_file.path, "INV.xml", "error")
    assert (caught.value.code, caught.value.file) == ("invoice-too-large", "INV.xml")
    assert "split it into files of fewer invoices" in caught.value.message
    [finding] = built(b).findings
    assert (finding.code, finding.file) == ("processing-damaged", "INV.xml")


def test_an_invoice_declaring_an_entity_is_refused_by_the_scan_never_expanded(
        tmp_path: Path) -> None:
    """Reading refuses a DTD with declarations first; the scan that places the
    attachments refuses one too, as hostile-xml, rather than expand it."""
    data = BASE.replace(b"<Invoice ", b'<!DOCTYPE Invoice [<!ENTITY x "xxxxxxxxxx">]>\n'
                        b"<Invoice ", 1)
    assert data != BASE
    [f] = built(bundle_of(tmp_path, data, {})).findings
    assert (f.code, f.file) == ("hostile-xml", "INV.xml")


def test_a_type_that_is_refused_does_not_count_toward_the_embedded_limit(
        tmp_path: Path) -> None:
    """Only what goes inside counts toward MAX_EMBEDDED_BYTES: a large TIFF that is
    refused (embed-type-not-allowed) beside a small PDF is that one error, not also
    embed-too-large for bytes that were never to be embedded."""
    b = bundle_of(tmp_path, BASE, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf"),
                                   "scan.tif": ("Snippet1", b"II*\x00", "image/tiff")})
    atts = tuple(dataclasses.replace(a, size=embed.MAX_EMBEDDED_BYTES)
                 if a.original_name == "scan.tif" else a for a in b.attachments)
    [f] = built(dataclasses.replace(b, attachments=atts)).findings
    assert (f.code, f.file) == ("embed-type-not-allowed", "INV/Snippet1/scan.tif")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_utf16_or_utf32_invoice_without_byte_order_mark_is_an_encoding_error(
        tmp_path: Path, codec: str) -> None:
    """UTF-16 without a byte order mark (XML allows telling it by its first bytes, and
    outboxd reads its ids) was taken for UTF-8: the references went in as UTF-8 bytes
    amid UTF-16 ones, and the clerk read that the invoice is "not one UBL document".
    It is the `embed-encoding` error that says to export the invoice as UTF-8."""
    text = BASE.decode("utf-8").replace('encoding="UTF-8"', f'encoding="{codec[:6].upper()}"')
    b = bundle_of(tmp_path, text.encode(codec),
                  {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    plan = built(b)
    assert plan.documents == ()
    [f] = plan.findings
    assert (f.code, f.file, f.severity) == ("embed-encoding", "INV.xml", "error")
    assert f.message.startswith(f"is encoded as {codec[:6]}") and "export the invoice as UTF-8" \
        in f.message


def test_a_note_holding_a_control_character_is_an_error_naming_the_attachment(
        tmp_path: Path) -> None:
    """attachments.toml may write a control character into a note ("\\u0001"); XML cannot
    hold one, even escaped. The built document was not well-formed and the clerk read
    that the invoice is "not one UBL document — export the invoice again", which no
    export mends. The error names the attachment and the note."""
    from dataclasses import replace
    b = bundle_of(tmp_path, BASE, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf"),
                                   "b.png": ("Snippet1", PNG, "image/png")})
    b = replace(b, attachments=tuple(replace(a, note="Hours\x01 for October")
                                     if a.original_name == "a.pdf" else a
                                     for a in b.attachments))
    plan = built(b)
    assert plan.documents == ()
    [f] = plan.findings
    assert (f.code, f.file, f.severity, f.invoice_id) == (
        "embed-character", "INV/Snippet1/a.pdf", "error", "Snippet1")
    assert "note in attachments.toml holding the character U+0001" in f.message
    assert f.message.endswith("remove it from the note")
    assert [g.code for g in embedded_check(b)] == ["embed-character"]


def test_an_invoice_inside_another_invoices_element_is_a_split_error_naming_it(
        tmp_path: Path) -> None:
    """An Invoice inside another's UBLExtensions is an invoice of the file (its id is
    read, its attachments matched) but no document of its own. The clerk read "the
    document built for invoice Snippet1 is not one UBL document (too many values to
    unpack (expected 1))"; the error names the inner invoice and what to do."""
    ext = (b'<ext:UBLExtensions xmlns:ext="urn:oasis:names:specification:ubl:schema:xsd:'
           b'CommonExtensionComponents-2"><ext:UBLExtension><ext:ExtensionContent>'
           + body(with_id(BASE, "INNER"))
           + b"</ext:ExtensionContent></ext:UBLExtension></ext:UBLExtensions>")
    data = BASE.replace(b"<cbc:CustomizationID>", ext + b"<cbc:CustomizationID>", 1)
    b = bundle_of(tmp_path, data, {"a.pdf": ("INNER", pdf_bytes(), "application/pdf")},
                  ids=("Snippet1", "INNER"))
    found = embedded_check(b)
    [f] = found
    assert (f.code, f.file, f.severity, f.invoice_id) == ("embed-split", "INV.xml", "error",
                                                          "INNER")
    assert f.message.startswith("invoice INNER lies inside another invoice's element")
    assert "unpack" not in f.message


def test_a_name_holding_a_character_xml_cannot_carry_is_an_error_naming_the_file(
        tmp_path: Path) -> None:
    """U+FFFF is no control character, so a file may be named with it, but XML cannot
    hold it: the clerk read "not one UBL document — export the invoice again". With
    safe_filenames = false, where the name goes in as it is, the error names the
    attachment and says to rename it; folded (the default), the character is dropped
    and the file goes in as a.pdf."""
    b = bundle_of(tmp_path, BASE, {"a\uffff.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b).documents
    assert [r.findtext("cbc:ID", namespaces=NS) for r in refs(doc.data)] == ["a.pdf"]
    plan = built(b, safe_filenames=False)
    assert plan.documents == ()
    [f] = plan.findings
    assert (f.code, f.file) == ("embed-character", "INV/Snippet1/a\uffff.pdf")
    assert "name holding the character U+FFFF" in f.message and f.message.endswith(
        "rename the file")


@pytest.mark.parametrize("customization_id", [BIS_4A, None])
def test_an_embedded_invoice_outside_en16931_must_still_pass_the_ubl_schema(
        tmp_path: Path, customization_id: str | None) -> None:
    """Every document ubl-embedded builds is a UBL 2.1 Invoice or CreditNote, so it is
    checked against the UBL 2.1 schema whatever its CustomizationID (the EN 16931 rules
    stay chosen by it). One without cbc:IssueDate was embedded and sent unchecked; it is
    the einvoice-rule error naming the invoice, the schema rule and the ERP fix."""
    data = outside_en16931(BASE, customization_id)
    assert preflight(data, "INV.xml").not_checked  # pre-flight itself does not check it
    broken = data.replace(b"    <cbc:IssueDate>2017-11-13</cbc:IssueDate>\n", b"")
    assert broken != data
    found = embedded_check(bundle_of(
        tmp_path, broken, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")}))
    assert found
    assert all((f.code, f.file, f.severity, f.invoice_id) ==
               ("einvoice-rule", "INV.xml", "error", "Snippet1") for f in found)
    assert found[0].message.startswith("invoice Snippet1 breaks [UBL-XSD] Element "
                                       "'cbc:DueDate': This element is not expected.")
    assert "cbc:IssueDate" in found[0].message
    assert "correct the invoice in the ERP" in found[0].message


def test_a_valid_embedded_invoice_outside_en16931_passes_the_ubl_schema(
        tmp_path: Path) -> None:
    """The schema check does not refuse what is valid UBL 2.1: the same invoice with its
    cbc:IssueDate, its attachment inside, has no finding, with or without a
    CustomizationID, and nor does a credit note."""
    note = (EXAMPLES / "base-creditnote-correction.xml").read_bytes()
    for name, data in (("bis4a", outside_en16931(BASE, BIS_4A)),
                       ("none", outside_en16931(BASE, None)),
                       ("note", outside_en16931(note, BIS_4A))):
        (tmp_path / name).mkdir()
        b = bundle_of(tmp_path / name, data,
                      {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
        [doc] = built(b).documents
        assert doc.inserted[0] < doc.inserted[1]  # the attachment went in
        assert embedded_check(b) == [], name


def test_attachments_past_the_embedded_limit_are_refused_before_any_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An invoice whose attachments come to more than MAX_EMBEDDED_BYTES (20 MB; two
    PDFs' worth less one byte here) is one embed-too-large error naming the invoice, both
    sizes and the fix, and no attachment is read into memory for it: ten 5 MB scans
    took a reader to 700 MB. Attachments exactly at the limit are embedded."""
    pdf = pdf_bytes()
    files = {"a.pdf": ("Snippet1", pdf, "application/pdf"),
             "b.pdf": ("Snippet1", pdf, "application/pdf")}
    b = bundle_of(tmp_path, BASE, files)
    monkeypatch.setattr(embed, "MAX_EMBEDDED_BYTES", 2 * len(pdf))
    assert len(built(b).documents) == 1

    read_checked = embed.read_checked  # the invoice file is read through it too

    def not_read(file: Attachment | InvoiceFile, *rest: Path) -> bytes:
        if isinstance(file, Attachment):
            raise AssertionError("an attachment was read for a document past the limit")
        return read_checked(file, *rest)
    monkeypatch.setattr(embed, "MAX_EMBEDDED_BYTES", 2 * len(pdf) - 1)
    # Outside finish.evaluate nothing is kept (readonce): each attachment is read here.
    monkeypatch.setattr(embed, "read_checked", not_read)
    [f] = embedded_check(b)
    assert (f.code, f.file, f.invoice_id, f.severity) == (
        "embed-too-large", "INV.xml", "Snippet1", "error")
    assert f"{2 * len(pdf):,} bytes" in f.message and f"{2 * len(pdf) - 1:,}" in f.message
    assert "make them smaller" in f.message


def test_a_last_element_written_empty_with_a_quoted_gt_gets_the_block_after_its_whole_tag(
        tmp_path: Path) -> None:
    """The element the block follows written as an empty-element tag whose attribute
    values hold '>' in either kind of quote: the block goes after the tag's real end,
    never inside an attribute value, and every other byte stays — the document is
    well-formed, the attributes as they were."""
    empty = b"""<cbc:BuyerReference a="x>y" b='z">w'/>"""
    data = BASE.replace(b"<cbc:BuyerReference>0150abc</cbc:BuyerReference>", empty, 1)
    assert empty in data
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b).documents
    start, end = doc.inserted
    assert doc.data[:start].endswith(empty)
    assert doc.data[:start] + doc.data[end:] == data
    root = etree.fromstring(doc.data)
    buyer = root.find("cbc:BuyerReference", NS)
    assert buyer is not None and (buyer.get("a"), buyer.get("b")) == ("x>y", 'z">w')
    assert [r.findtext("cbc:ID", namespaces=NS) for r in refs(doc.data)] == ["a.pdf"]


def test_an_empty_last_element_is_blamed_on_the_invoice_not_on_its_attachments(
        tmp_path: Path) -> None:
    """`<cbc:BuyerReference/>` (an empty-element tag, which PEPPOL-EN16931-R008 refuses)
    as the element the block follows: the findings are the invoice's own, R008 on it.
    The block went into cac:AccountingSupplierParty, the element after it, and a second
    error blamed the document built "with its attachments inside", sending the clerk to
    the attachments for a fault of the invoice."""
    data = BASE.replace(b"<cbc:BuyerReference>0150abc</cbc:BuyerReference>",
                        b"<cbc:BuyerReference/>", 1)
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    findings = embedded_check(b)
    assert findings and all("attachments inside" not in f.message for f in findings)
    assert any("PEPPOL-EN16931-R008" in f.message and f.file == "INV.xml" for f in findings)
    [doc] = built(b).documents
    start, _ = doc.inserted
    assert doc.data[:start].endswith(b"<cbc:BuyerReference/>")


def test_an_invoice_declaring_cac_and_cbc_on_each_element_gets_a_block_declaring_its_own(
        tmp_path: Path) -> None:
    """An export that declares the cac and cbc namespaces on each element that uses them,
    none on the Invoice element: the block declares both itself (no prefix in scope
    there to borrow), so the built document is well-formed, its references where the
    schema wants them, every other byte as it was, and it passes the rules."""
    data = BASE.replace(b'<Invoice xmlns:cac="' + NS["cac"].encode() + b'"\n    xmlns:cbc="'
                        + NS["cbc"].encode() + b'"\n    xmlns=', b"<Invoice xmlns=", 1)
    data = re.sub(rb"<(cac|cbc):(\w+)", lambda m: m[0] + b' xmlns:' + m[1] + b'="'
                  + NS[m[1].decode()].encode() + b'"', data)
    assert b"<Invoice xmlns=" in data
    b = bundle_of(tmp_path, data, {"a.pdf": ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b).documents
    start, end = doc.inserted
    assert doc.data[:start] + doc.data[end:] == data
    block = doc.data[start:end]
    assert f'xmlns:cac="{NS["cac"]}"'.encode() in block
    assert f'xmlns:cbc="{NS["cbc"]}"'.encode() in block
    assert [r.findtext("cbc:ID", namespaces=NS) for r in refs(doc.data)] == ["a.pdf"]
    assert preflight(doc.data, "x.xml").findings == ()
