"""The vendored artefacts (daemon/einvoice/artefacts.py): which rule sets a
CustomizationID gets, and the pinned versions `check --rules` names."""

from __future__ import annotations

from daemon.einvoice import preflight, rules_versions
from daemon.einvoice.artefacts import artefacts_hash

from .broken import BASE, BROKEN


def test_rules_versions_name_the_pinned_releases() -> None:
    lines = rules_versions()
    assert any("Peppol BIS Billing 3.0" in line and "3.0.19" in line for line in lines)
    assert any("UBL 2.1" in line for line in lines)
    assert lines[-1] == f"artefacts sha256: {artefacts_hash()}"

def test_plain_en16931_gets_the_cen_rules_but_not_the_peppol_rules() -> None:
    """A CIUS-free EN 16931 invoice without ProfileID breaks a Peppol rule only."""
    plain = BASE.replace(b"#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0", b"")
    plain = plain.replace(b"<cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
                          b"</cbc:ProfileID>", b"")
    assert preflight(plain, "x.xml").findings == ()


def plain_en16931(data: bytes) -> bytes:
    """The document under the EN 16931 CustomizationID without the Peppol CIUS."""
    return data.replace(b"#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0", b"")


def test_plain_en16931_is_still_checked_by_the_xsd_and_the_en16931_rules() -> None:
    """docs/einvoice.md, What pre-flight checks: any other `urn:cen.eu:en16931:2017…` gets
    the UBL 2.1 XSD and the EN 16931 rules: wrong totals break BR-CO-15, a missing
    IssueDate is an XSD error and breaks BR-03, each an einvoice-rule error."""
    totals, _ = BROKEN["wrong-totals"]
    result = preflight(plain_en16931(totals), "x.xml")
    assert [f.code for f in result.errors if "[BR-CO-15]" in f.message] == ["einvoice-rule"]
    no_date, _ = BROKEN["no-issue-date"]
    messages = [f.message for f in preflight(plain_en16931(no_date), "x.xml").errors]
    assert any(m.startswith("[UBL-XSD]") and "cbc:IssueDate" in m for m in messages)
    assert any(m.startswith("[BR-03]") for m in messages)
