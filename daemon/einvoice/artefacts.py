"""The vendored validation artefacts: where they are, what they are, their hash.

The files under ``data/`` are the official ones, unchanged (``data/SOURCES.md``
says where each comes from and under which licence). ``versions.toml`` pins
what they are; ``scripts/update-einvoice-rules`` rewrites both together.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

SCHXSLT_PIPELINE = DATA / "schxslt" / "xslt-2.0" / "pipeline-for-svrl.xsl"
XSD_INVOICE = DATA / "ubl-2.1" / "xsd" / "maindoc" / "UBL-Invoice-2.1.xsd"
XSD_CREDIT_NOTE = DATA / "ubl-2.1" / "xsd" / "maindoc" / "UBL-CreditNote-2.1.xsd"
MIME_CODES = DATA / "peppol-bis-invoice-3" / "MimeCode.xml"

PEPPOL_BIS3 = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
EN16931 = "urn:cen.eu:en16931:2017"


@dataclass(frozen=True)
class RuleSet:
    """One Schematron file; ``name`` keys the compiled XSLT in the cache."""

    name: str
    sch: Path


CEN = RuleSet("cen", DATA / "peppol-bis-invoice-3" / "sch" / "CEN-EN16931-UBL.sch")
PEPPOL = RuleSet("peppol", DATA / "peppol-bis-invoice-3" / "sch" / "PEPPOL-EN16931-UBL.sch")
ALL_RULE_SETS = (CEN, PEPPOL)


def rule_sets_for(customization_id: str | None) -> tuple[RuleSet, ...] | None:
    """Peppol BIS 3 → EN 16931 + Peppol; other EN 16931 → EN 16931; else None (einvoice.md).

    Peppol's own CIUS extensions (``…billing:3.0#conformant#…``) start with the
    Peppol id and get the Peppol rules too.
    """
    cid = (customization_id or "").strip()
    if cid.startswith(PEPPOL_BIS3):
        return (CEN, PEPPOL)
    if cid.startswith(EN16931):
        return (CEN,)
    return None


# Other Peppol specifications an invoice may rightly name, whose rules outboxd does not
# hold: Peppol International (PINT), BIS Self-Billing 3.0, and BIS Billing 3.0's
# regional variants (A-NZ's and Singapore's "…#conformant#urn:fdc:peppol.eu:2017:poacc:
# billing:international:aunz:3.0", Japan's before PINT), which access points accept.
_OTHER_PEPPOL = ("urn:peppol:pint:", "poacc:selfbilling:", "poacc:billing:international:",
                 "urn:fdc:peppol:jp:billing:")


def almost_peppol(customization_id: str | None) -> bool:
    """Whether the id names Peppol (its words "peppol" or "poacc", in any case) but does
    not start with the Peppol BIS 3 id, so rule_sets_for leaves the Peppol rules out: a
    typo ("…billing:3.O"), the ProfileID's value, the retired BIS 2 id. An access point
    refuses such an invoice; pre-flight warns (einvoice.md). Not for PINT, Self-Billing or
    the regional variants of BIS Billing 3.0, which are other Peppol specifications."""
    cid = (customization_id or "").strip()
    folded = cid.casefold()
    return (not cid.startswith(PEPPOL_BIS3) and ("peppol" in folded or "poacc" in folded)
            and not any(other in folded for other in _OTHER_PEPPOL))


@cache
def artefacts_hash() -> str:
    """sha256 over every vendored file (relative name and bytes): the compile cache key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in DATA.rglob("*") if p.is_file()):
        digest.update(path.relative_to(DATA).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@cache
def pinned() -> dict[str, dict[str, str]]:
    with open(DATA / "versions.toml", "rb") as fh:
        return tomllib.load(fh)


def mime_codes() -> frozenset[str]:
    """The attachment mime codes Peppol BIS 3 allows (code list CL001 / BR-CL-24)."""
    from lxml import etree
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(MIME_CODES), parser).getroot()
    return frozenset(el.text.strip() for el in root.iter("{*}Id") if el.text)


def rules_versions() -> list[str]:
    """One line per artefact with its pinned version and source, for ``check --rules``."""
    lines = [f"{entry['what']}: {entry['version']} ({entry['source']})"
             for entry in pinned().values()]
    lines.append(f"artefacts sha256: {artefacts_hash()}")
    return lines
