"""The vendored artefacts (daemon/einvoice/artefacts.py): which rule sets a
CustomizationID gets, and the pinned versions `check --rules` names."""

from __future__ import annotations

import pytest

from daemon.einvoice import preflight, rules_versions
from daemon.einvoice.artefacts import CEN, PEPPOL, almost_peppol, artefacts_hash, rule_sets_for

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


BIS3 = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"


@pytest.mark.parametrize("cid", [
    BIS3[:-1] + "O",  # a letter O for the zero
    BIS3.replace("3.0", "3,0"),
    BIS3.replace("compliant", "conformant"),
    BIS3.upper(),
    "urn:fdc:peppol.eu:2017:poacc:billing:3.0",  # the #compliant# part left out
    "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0",  # the ProfileID's value
    "urn:www.cenbii.eu:transaction:biitrns010:ver2.0:extended:urn:www.peppol.eu:bis:"
    "peppol4a:ver2.0",  # Peppol BIS 2, retired
    BIS3.replace("peppol.eu", "pepol.eu"),
])
def test_an_id_that_names_peppol_but_is_not_bis3s_is_almost_peppol(cid: str) -> None:
    """Such an id gets the EN 16931 rules, or none, never the Peppol ones: pre-flight
    warns of it (docs/einvoice.md)."""
    assert rule_sets_for(cid) != (CEN, PEPPOL)
    assert almost_peppol(cid)


@pytest.mark.parametrize("cid", [
    BIS3, f" {BIS3}\n",
    BIS3 + "#conformant#urn:fdc:peppol.eu:2017:poacc:billing:international:aunz:3.0",
    "urn:cen.eu:en16931:2017",
    "urn:cen.eu:en16931:2017#compliant#urn:xoev-de:kosit:standard:xrechnung_2.3",
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:selfbilling:3.0",
    "urn:peppol:pint:billing-1@jp-1",
    # BIS Billing 3.0's regional variants, as A-NZ and Singapore senders write them.
    "urn:cen.eu:en16931:2017#conformant#urn:fdc:peppol.eu:2017:poacc:billing:"
    "international:aunz:3.0",
    "urn:cen.eu:en16931:2017#conformant#urn:fdc:peppol.eu:2017:poacc:billing:"
    "international:sg:3.0",
    "urn:fdc:peppol:jp:billing:3.0",
    "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
    "urn:www.cenbii.eu:transaction:biitrns010:ver2.0",
    "", None,
])
def test_peppol_bis3_and_ids_that_rightly_name_something_else_are_not_almost_peppol(
        cid: str | None) -> None:
    """Peppol BIS 3 and its extensions get the Peppol rules; plain EN 16931, XRechnung,
    Peppol Self-Billing, Peppol International (PINT), BIS Billing 3.0's A-NZ, Singapore
    and Japan variants and others are what they say: warning those, an access point
    accepts, would send a clerk to "correct" an id that is right."""
    assert not almost_peppol(cid)
