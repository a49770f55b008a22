"""Pre-flight (docs/einvoice.md) with the vendored official rules, in process."""

from __future__ import annotations

import base64
import socket
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from helpers import ubl_invoice

from daemon.einvoice import preflight
from daemon.einvoice.engine import Assertion
from daemon.einvoice.preflight import Document, _findings
from daemon.errors import InputError

from .broken import BASE, BROKEN, EXAMPLES, SUPPLIER, nested, reference, with_id

OFFICIAL = sorted(p.name for p in EXAMPLES.glob("*.xml"))
SVEFAKTURA = (b'<?xml version="1.0"?>\n<Invoice xmlns="urn:sfti:documents:BasicInvoice:1:0">'
              b"<ID>SV-1</ID></Invoice>\n")


def rules(result) -> set[str]:  # noqa: ANN001
    return {f.message.split("]")[0].split("[")[-1] for f in result.findings}


@pytest.mark.parametrize("name", OFFICIAL)
def test_every_official_example_passes_without_errors(name: str) -> None:
    """The Peppol BIS 3.0.19 examples are valid under the rules that ship with them."""
    result = preflight((EXAMPLES / name).read_bytes(), name)
    assert result.checked
    assert result.errors == ()


def test_an_invoice_pointing_elsewhere_makes_the_rules_read_no_file_and_reach_no_host(
        tmp_path: Path) -> None:
    """XInclude (of a file, of a url), xsi:schemaLocation and an xml-stylesheet
    instruction in a UBL invoice are data to the rules: pre-flight (lxml's XSD, Saxon's
    Schematron) follows none of them. Nothing connects to the address they name, and
    the file they name is in no finding."""
    secret = tmp_path / "secret.txt"
    secret.write_text("S3CRET-CONTENT-42")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    xi = 'xmlns:xi="http://www.w3.org/2001/XInclude"'
    data = ubl_invoice("INV-1").decode().replace(
        "?>\n", f'?>\n<?xml-stylesheet href="{url}/s.xsl" type="text/xsl"?>\n', 1).replace(
        "<Invoice ", '<Invoice xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2 '
        f'{url}/invoice.xsd" ', 1).replace(
        "<cbc:BuyerReference>REF-42</cbc:BuyerReference>",
        f'<cbc:BuyerReference><xi:include {xi} href="file://{secret}" parse="text"/>'
        f'<xi:include {xi} href="{url}/x" parse="text"/></cbc:BuyerReference>')
    try:
        result = preflight(data.encode(), "INV-1.xml")
        assert result.checked
        # Included, the file would be BuyerReference's text; left alone, xi:include is an
        # element the XSD refuses there.
        assert any("cbc:BuyerReference': Element content is not allowed" in f.message
                   for f in result.findings)
        assert "S3CRET-CONTENT-42" not in repr(result)
        with pytest.raises(BlockingIOError):
            listener.accept()  # a connection made would be waiting here
    finally:
        listener.close()


def test_all_nine_official_examples_are_in_the_fixtures() -> None:
    assert len(OFFICIAL) == 9


def test_the_projects_own_test_invoice_is_valid_peppol_bis3() -> None:
    """helpers.ubl_invoice passes every rule, warnings included: other tests rely on it."""
    result = preflight(ubl_invoice("INV-1001"), "INV-1001.xml")
    assert result.checked and result.findings == ()


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_invoice_is_an_einvoice_rule_error_naming_the_rule(kind: str) -> None:
    data, rule = BROKEN[kind]
    result = preflight(data, "INV-9.xml")
    assert rule in rules(result)
    [finding] = [f for f in result.errors if f"[{rule}]" in f.message]
    assert finding.code == "einvoice-rule" and finding.file == "INV-9.xml"
    assert "(/Invoice" in finding.message  # the location in the document
    assert "export it again" in finding.message  # and the fix


def test_an_invoice_with_a_file_over_ten_megabytes_of_base64_inside_is_checked() -> None:
    """A UBL invoice may embed a file (cbc:EmbeddedDocumentBinaryObject) as one base64
    text node; one of ~7.6 MB (10.1 MB of base64, past libxml2's default 10 MB a node)
    is well-formed XML and is checked by the rules, not refused as not well-formed."""
    blob = base64.b64encode(b"%PDF-1.4\n" + bytes(range(256)) * 29_700).decode()
    assert len(blob) > 10_000_000
    ref = ('<cac:AdditionalDocumentReference><cbc:ID>att1</cbc:ID><cac:Attachment>'
           '<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="a.pdf">'
           f'{blob}</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>'
           '</cac:AdditionalDocumentReference>').encode()
    data = ubl_invoice("BIG-1").replace(b"<cac:AccountingSupplierParty>",
                                        ref + b"<cac:AccountingSupplierParty>", 1)
    assert ref in data
    result = preflight(data, "BIG-1.xml")
    assert result.checked and result.errors == ()


def test_an_invoice_nesting_deeper_than_the_rules_read_is_an_error_naming_the_file(
        capfd: pytest.CaptureFixture[str]) -> None:
    """Well-formed UBL with an extension nesting elements 150 deep (lxml reads it):
    Saxon, which runs the rules, stops at 100. That is an invalid-xml error naming the
    file and the fix, not Saxon's PySaxonApiError escaping as a traceback (from
    `outboxd check`) or as "cannot be read, not for a fault of the bundle"; and Saxon
    is not given it, so nothing is written to stderr outside the log."""
    with pytest.raises(InputError) as info:
        preflight(nested(150), "INV-9.xml")
    assert (info.value.code, info.value.file) == ("invalid-xml", "INV-9.xml")
    assert info.value.message == ("nests elements more than 100 deep, deeper than the "
                                  "e-invoice rules read — export the invoice again")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("mode", ["error", "warn"])
def test_past_40_findings_a_document_gets_one_line_counting_the_rest(mode: str) -> None:
    """docs/einvoice.md gives one finding per failed assertion, and caps that at
    40 per document (a file from the wrong export breaks hundreds) and sums up the rest
    in one line with their rule ids, of the same severity as a fatal rule among them.
    45 document references without an id break BR-52 45 times (and a Peppol rule 45
    times): 40 lines, then "50 more findings (BR-52, PEPPOL-EN16931-R008)"."""
    data = BASE.replace(SUPPLIER, b"".join(reference("") for _ in range(45)) + SUPPLIER)
    findings = preflight(data, "x.xml", mode=mode).findings
    assert len(findings) == 41
    severity = "error" if mode == "error" else "warning"
    assert all(f.code == "einvoice-rule" and f.severity == severity for f in findings)
    assert all(f.message.startswith("[") for f in findings[:40])
    assert findings[40].message.startswith("50 more findings (BR-52, PEPPOL-EN16931-R008)")
    assert findings[40].message.endswith("correct the invoice in the ERP and export it again")


def test_the_line_counting_findings_past_40_is_a_warning_when_none_of_them_is_fatal() -> None:
    """The line that sums up the findings past 40 has the severity of the worst among
    them: rule warnings alone past the 40 (Peppol's warnings come last) make a warning,
    not an error, and do not count as fatal."""
    doc = Document("INV-1", "Invoice", None, None, "", "x.xml")
    found = ([Assertion("BR-CO-15", "totals", "", True)] * 40
             + [Assertion("PEPPOL-EN16931-R001", "a warning", "", False)] * 3)
    summary, fatal = _findings(doc, found, "x.xml", "error", several=False)[-1]
    assert summary.message.startswith("3 more findings (PEPPOL-EN16931-R001)")
    assert (summary.severity, fatal) == ("warning", False)


def test_wrong_totals_finding_carries_the_rules_own_text() -> None:
    data, _ = BROKEN["wrong-totals"]
    [f] = [f for f in preflight(data, "x.xml").findings if "[BR-CO-15]" in f.message]
    assert f.message.startswith("[BR-CO-15] Invoice total amount with VAT (BT-112) = Invoice "
                                "total amount without VAT (BT-109) + Invoice total VAT amount")
    assert f.message.endswith("(/Invoice) — correct the invoice in the ERP and export it again")


def test_missing_element_is_also_an_xsd_error() -> None:
    """The XSD catches what Schematron cannot (element order, required elements)."""
    data, _ = BROKEN["no-issue-date"]
    xsd = [f for f in preflight(data, "x.xml").errors if "[UBL-XSD]" in f.message]
    assert xsd and "cbc:IssueDate" in xsd[0].message


def test_warn_mode_turns_fatal_findings_into_warnings() -> None:
    data, rule = BROKEN["wrong-totals"]
    result = preflight(data, "x.xml", mode="warn")
    assert result.errors == () and rule in rules(result)
    assert all(f.severity == "warning" for f in result.findings)


@pytest.mark.parametrize("mode", ["error", "warn"])
def test_a_decimal_comma_the_schema_refuses_is_an_xsd_finding_not_unreadable_xml(
        mode: str) -> None:
    """An amount an ERP writes with a decimal comma ("1.250,00") stops a rule that reads
    it as a number. The schema's error naming the element was dropped, and the invoice
    was invalid-xml, "cannot be checked by the e-invoice rules (Saxon: Cannot convert
    string …) — export the invoice again": no element named, the XML's form blamed, and
    an error even under preflight "warn", which makes every rule a warning (bench/fuzz.py,
    seed 42, case 17: a cbc:Percent of text). Now the XSD finding names the element and
    one more says the rules did not run, each an error or a warning as the mode says."""
    data = BASE.replace(b'<cbc:PayableAmount currencyID="EUR">1656.25<',
                        b'<cbc:PayableAmount currencyID="EUR">1.656,25<')
    assert data != BASE
    result = preflight(data, "x.xml", mode=mode)
    assert {f.code for f in result.findings} == {"einvoice-rule"}
    assert {f.severity for f in result.findings} == {"error" if mode == "error" else "warning"}
    assert rules(result) == {"UBL-XSD", "RULES-NOT-RUN"}
    [xsd] = [f for f in result.findings if "[UBL-XSD]" in f.message]
    assert "'1.656,25'" in xsd.message and "cbc:PayableAmount" in xsd.message
    [not_run] = [f for f in result.findings if "[RULES-NOT-RUN]" in f.message]
    assert "1.656,25" in not_run.message
    assert not_run.message.endswith("— correct the invoice in the ERP and export it again")


def test_an_invoice_with_over_100000_ampersands_is_checked_not_refused() -> None:
    """lxml writes each `&` of the text as `&amp;`, and SaxonC's parser (the JDK's) counts
    such references towards a limit of 100,000 characters of entities in a document: a
    valid invoice with more (item names like "Nuts & Bolts" on thousands of lines) was
    invalid-xml, "cannot be checked by the e-invoice rules (Saxon: … JAXP00010003: The
    length of entity "[xml]" is "100,001" …)", in every mode but "off" (bench/fuzz.py,
    seed 44, case 287: 5,000,000 of them in one street name). Now it is checked."""
    end = b"</cbc:InvoiceTypeCode>"
    note = b"<cbc:Note>" + b"Nuts &amp; Bolts; " * 100_001 + b"</cbc:Note>"
    data = BASE.replace(end, end + note, 1)
    assert data != BASE
    result = preflight(data, "x.xml")
    assert result.checked and result.findings == ()


def test_off_mode_does_not_look() -> None:
    result = preflight(b"<not even xml", "x.xml", mode="off")
    assert not result.checked and result.findings == ()


def test_warning_level_assertions_are_warnings_even_in_error_mode() -> None:
    """The national example triggers UBL-CR-679, a warning-level rule."""
    data = (EXAMPLES.parent / "peppol" / "Norwegian-example-1.xml").read_bytes()
    result = preflight(data, "no.xml", mode="error")
    assert "UBL-CR-679" in rules(result)
    assert result.errors == ()


def test_svefaktura_pdf_and_foreign_customizations_are_not_preflighted() -> None:
    assert not preflight(SVEFAKTURA, "sv.xml").checked
    foreign = BASE.replace(b"urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:"
                           b"billing:3.0", b"urn:example:not-en16931")
    result = preflight(foreign, "other.xml")
    assert not result.checked and result.findings == () and result.not_checked


def test_several_invoices_in_one_file_are_checked_one_by_one_naming_the_invoice() -> None:
    bad, _ = BROKEN["wrong-totals"]
    batch = (b"<Batch>" + with_id(BASE, "GOOD-1").split(b"?>", 1)[1]
             + with_id(bad, "BAD-2").split(b"?>", 1)[1] + b"</Batch>")
    result = preflight(batch, "batch.xml")
    assert result.errors and {f.invoice_id for f in result.findings} == {"BAD-2"}
    assert all(f.message.startswith("invoice BAD-2: [") for f in result.findings)


def test_the_greek_national_example_fails_only_the_xsd() -> None:
    """GR-base-example-correct.xml is correct for the Greek rules (a warning-level one
    aside), but puts its document references after the buyer, where the UBL 2.1 schema
    does not allow them: an error naming the element, as docs/einvoice.md says."""
    data = (EXAMPLES.parent / "peppol" / "GR-base-example-correct.xml").read_bytes()
    result = preflight(data, "gr.xml")
    [error] = result.errors
    assert error.message.startswith("[UBL-XSD] Element 'cac:AdditionalDocumentReference': "
                                    "This element is not expected.")
    assert error.invoice_id == "061828591|01/10/2020|0|1.1|0|1"
    assert [f.message.split("]")[0] for f in result.findings if f.severity == "warning"] == [
        "[GR-S-008-1"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark_says_so_and_to_export_utf8(codec: str) -> None:
    """A UTF-16 invoice with neither byte order mark nor declaration (XML requires the
    mark of UTF-16) read "is not well-formed XML (Invalid character: Char 0x0 out of
    allowed range …)", which tells a clerk nothing. The error says what is missing and
    to export the invoice as UTF-8; with the mark the same invoice is checked."""
    text = BASE.decode("utf-8").split("?>\n", 1)[1]
    with pytest.raises(InputError) as info:
        preflight(text.encode(codec), "INV-9.xml")
    assert (info.value.code, info.value.file) == ("invalid-xml", "INV-9.xml")
    assert info.value.message == ("is UTF-16 without a byte order mark (UTF-16 XML needs "
                                  "one to be read) — export the invoice as UTF-8")
    result = preflight(text.encode("utf-16"), "INV-9.xml")  # with its byte order mark
    assert result.checked and result.errors == ()


def test_xml_that_is_not_well_formed_still_says_so() -> None:
    """Only UTF-16 without its mark gets that message: broken UTF-8 keeps lxml's."""
    with pytest.raises(InputError) as info:
        preflight(BASE[:-40], "INV-9.xml")
    assert info.value.code == "invalid-xml"
    assert info.value.message.startswith("is not well-formed XML (")
    assert info.value.message.endswith("— export the invoice again")


def test_utf8_declared_as_us_ascii_names_the_line_of_the_byte_and_the_encoding() -> None:
    """An export that declares US-ASCII and writes "ü" in UTF-8 read "is not well-formed
    XML (Invalid bytes in character encoding, line 1, column 40 …)": libxml2 names the
    declaration's line, not the byte's, and "export again" repeats it. The error names
    the encoding declared, the line of the first byte outside it and the fix."""
    text = BASE.decode("utf-8").replace('encoding="UTF-8"', 'encoding="US-ASCII"')
    line = 1 + text[:text.index("</cbc:Name>")].count("\n")
    data = text.replace("</cbc:Name>", "ü</cbc:Name>", 1).encode("utf-8")
    with pytest.raises(InputError) as info:
        preflight(data, "INV-9.xml")
    assert (info.value.code, info.value.file) == ("invalid-xml", "INV-9.xml")
    assert info.value.message == (
        f"is not US-ASCII text, as its XML declaration says: line {line} holds the byte "
        "0xc3, so it was saved in another encoding, such as UTF-8 — export the invoice "
        "as UTF-8, or have the ERP name the encoding it writes in the XML declaration")


def test_a_file_of_many_invoices_is_checked_holding_one_invoice_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each invoice of a batch is copied out of the file to be checked (as text and as a
    tree of its own): made one at a time, a batch costs one invoice's copy, not the
    whole file again (15,000 invoices all at once took a reader ~750 MB past its size)."""
    count = 2000
    batch = b"<Batch>" + b"".join(ubl_invoice(f"INV-{n}").split(b"?>", 1)[1]
                                  for n in range(count)) + b"</Batch>"
    seen: list[str] = []

    def check(doc: Any) -> list[Any]:
        seen.append(doc.invoice_id)
        return []  # the rules themselves are not what is measured

    # The package exports the function `preflight` under the module's name.
    monkeypatch.setattr(sys.modules["daemon.einvoice.preflight"], "check_document", check)
    preflight(b"<Batch/>", "warm.xml")  # the engine loaded before the measure
    tracemalloc.start()
    try:
        result = preflight(batch, "batch.xml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.checked and seen == [f"INV-{n}" for n in range(count)]
    assert peak < len(batch) // 10, f"{peak:,} bytes held for a file of {len(batch):,}"


@pytest.mark.parametrize("tail", ["\u00a0", "\u0085", "\u2028"])
def test_a_finding_names_the_invoice_by_its_id_as_read_not_trimmed_of_other_spaces(
        tail: str) -> None:
    """Pre-flight names the invoice whose rule broke by the id the invoice file is read
    with (invoices.XML_SPACE: XML's white space only). With str.strip() it named the
    invoice 'INV-8\\xa0' as 'INV-8' — another invoice's id, which a file of both holds:
    the clerk corrected the wrong one, and the finding's invoice_id was no id of the
    bundle."""
    bad, _ = BROKEN["wrong-totals"]
    batch = (b"<Batch>" + with_id(BASE, "INV-8").split(b"?>", 1)[1]
             + with_id(bad, f"INV-8{tail}").split(b"?>", 1)[1] + b"</Batch>")
    result = preflight(batch, "batch.xml")
    assert result.errors and {f.invoice_id for f in result.findings} == {f"INV-8{tail}"}


@pytest.mark.parametrize("tail", ["\xa0", "\u2028"], ids=["NBSP", "LSEP"])
def test_a_customization_id_is_read_as_the_rules_read_it(tail: str) -> None:
    """The CustomizationID that picks the rule sets is trimmed of XML's white space only,
    as the rules' normalize-space() reads it: with str.strip() one ending in U+00A0 or
    U+2028 was taken for the known EN 16931 / Peppol id it is not."""
    from daemon.einvoice.preflight import documents
    known = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    data = BASE.replace(f"<cbc:CustomizationID>{known}<".encode(),
                        f"<cbc:CustomizationID> {known}{tail}\n<".encode())
    [doc] = documents(data, "INV.xml")
    assert doc.customization_id == f"{known}{tail}"
    [plain] = documents(BASE.replace(b"ID>" + known.encode(),
                                               b"ID> " + known.encode()), "INV.xml")
    assert plain.customization_id == known


BIS3 = b"urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"


def near_peppol(result) -> list:  # noqa: ANN001
    return [f for f in result.findings if f.code == "peppol-id-mismatch"]


@pytest.mark.parametrize("mode", ["error", "warn"])
def test_a_customization_id_one_character_off_peppol_bis3_is_a_warning_naming_both_ids(
        mode: str) -> None:
    """The official example with "billing:3.O" for "billing:3.0" starts with the EN 16931
    id, so only the EN 16931 rules ran: no finding at all, and the invoice went out to be
    refused by the access point. It passes (the rules are chosen by the id) with a
    warning naming the invoice, the id found, the id expected and the rules left out;
    the unchanged example gets no such warning."""
    typo = BASE.replace(BIS3 + b"<", BIS3[:-1] + b"O<")
    assert len(typo) == len(BASE) and typo != BASE
    result = preflight(typo, "INV-1.xml", mode)
    assert result.checked and result.errors == ()
    [warning] = near_peppol(result)
    assert (warning.file, warning.severity, warning.invoice_id) == (
        "INV-1.xml", "warning", "Snippet1")
    assert warning.message == (
        "invoice Snippet1: its CustomizationID 'urn:cen.eu:en16931:2017#compliant#urn:fdc:"
        "peppol.eu:2017:poacc:billing:3.O' looks like Peppol BIS Billing 3.0's but does not "
        f"begin with '{BIS3.decode()}', so the Peppol BIS 3 rules were not run (only the "
        "EN 16931 rules were) and a Peppol access point will refuse the invoice — if it goes "
        "to Peppol, correct the CustomizationID in the ERP's export")
    assert result.fatal == ()
    assert near_peppol(preflight(BASE, "INV-1.xml", mode)) == []


def test_the_profile_ids_value_as_customization_id_is_warned_of_besides_not_checked() -> None:
    """"urn:fdc:peppol.eu:2017:poacc:billing:01:1.0" (the ProfileID's value) names no
    EN 16931 rules: the invoice is not pre-flighted, which `check` notes, and nothing
    went into the manifest. The warning says it looks like Peppol and no rule ran."""
    data = BASE.replace(BIS3 + b"<", b"urn:fdc:peppol.eu:2017:poacc:billing:01:1.0<")
    result = preflight(data, "INV-1.xml")
    assert not result.checked and result.not_checked
    [warning] = near_peppol(result)
    assert warning.severity == "warning"
    assert "(no EN 16931 rule was either)" in warning.message


def test_off_mode_does_not_warn_of_a_customization_id() -> None:
    assert preflight(BASE.replace(BIS3 + b"<", BIS3[:-1] + b"O<"), "INV-1.xml",
                     "off").findings == ()
