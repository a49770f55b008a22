"""The vendored artefacts (daemon/einvoice/artefacts.py): which rule sets a
CustomizationID gets, and the pinned versions `check --rules` names."""

from __future__ import annotations

from daemon.einvoice import preflight, rules_versions
from daemon.einvoice.artefacts import artefacts_hash

from .broken import BASE


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
