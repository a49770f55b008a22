"""Documents whose pre-flight findings are pinned in ``pinned_findings.json``.

Every official example, the broken copies of ``broken.py``, and copies of the
base example broken so that the national rules (NL, DE, GR, SE, DK, IT, NO, IS),
the code lists, the line arithmetic, the empty-element rule and the XSD all
speak. The pinned file records, per document, every assertion the engine
returns (rule id, text, location, fatal) and the findings ``preflight`` makes
of them, so a change to how the rules are run (compile options, how the SVRL
is read) cannot change what a user is told without a test failing.

The file is written by the engine itself: ``python -m tests.einvoice.pinned``
(run from the repository root) rewrites it. Do that only on purpose — after
updating the vendored rules, and after reading the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .broken import BASE, BROKEN, body, with_id

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PINNED = Path(__file__).resolve().parent / "pinned_findings.json"
CREDIT_NOTE = (FIXTURES / "einvoice" / "base-creditnote-correction.xml").read_bytes()

SUPPLIER_COUNTRY = b"<cbc:IdentificationCode>GB</cbc:IdentificationCode>"
CUSTOMER_COUNTRY = b"<cbc:IdentificationCode>SE</cbc:IdentificationCode>"
SUPPLIER_VAT = b"<cbc:CompanyID>GB1232434</cbc:CompanyID>"


def _sub(data: bytes, *pairs: tuple[bytes, bytes]) -> bytes:
    for old, new in pairs:
        assert old in data, old
        data = data.replace(old, new)
    return data


def _country(supplier: str, customer: str | None = None, vat: str | None = None) -> bytes:
    pairs = [(SUPPLIER_COUNTRY, f"<cbc:IdentificationCode>{supplier}</cbc:IdentificationCode>"
              .encode())]
    if customer:
        pairs.append((CUSTOMER_COUNTRY, f"<cbc:IdentificationCode>{customer}"
                      "</cbc:IdentificationCode>".encode()))
    if vat:
        pairs.append((SUPPLIER_VAT, f"<cbc:CompanyID>{vat}</cbc:CompanyID>".encode()))
    return _sub(BASE, *pairs)


def cases() -> dict[str, bytes]:
    """name -> the bytes of one invoice file."""
    out: dict[str, bytes] = {}
    for folder in ("einvoice", "peppol"):
        for path in sorted((FIXTURES / folder).glob("*.xml")):
            out.setdefault(f"official/{path.name}", path.read_bytes())
    for kind, (data, _) in BROKEN.items():
        out[f"broken/{kind}"] = data
    out.update({
        "national/nl": _country("NL", "NL", "NL123456789B01"),
        "national/de": _country("DE", "DE", "DE123456789"),
        "national/gr": _country("GR", "GR", "EL123456789"),
        "national/se": _country("SE", None, "SE556677889901"),
        "national/dk": _country("DK", "DK", "DK12345678"),
        "national/it": _country("IT", None, "IT12345678901"),
        "national/no": _country("NO", None, "NO123456789MVA"),
        "national/is": _country("IS", "IS", "IS12345"),
        "empty-element": _sub(BASE, (b"<cbc:AccountingCost>4025:123:4343</cbc:AccountingCost>",
                                     b"<cbc:AccountingCost></cbc:AccountingCost>")),
        "line-amount": _sub(BASE, (b'<cbc:LineExtensionAmount currencyID= "EUR">2800<',
                                   b'<cbc:LineExtensionAmount currencyID= "EUR">2900<')),
        "code-lists": _sub(BASE, (b"<cbc:DocumentCurrencyCode>EUR<",
                                  b"<cbc:DocumentCurrencyCode>XYZ<"),
                           (b'unitCode="DAY"', b'unitCode="QQQ"')),
        "wrong-export": _sub(BASE, (b"<cac:AccountingSupplierParty>",
                                    b"<cac:AccountingSupplierPartyX>"),
                             (b"</cac:AccountingSupplierParty>",
                              b"</cac:AccountingSupplierPartyX>"),
                             (b"<cbc:TaxAmount", b"<cbc:TaxAmountX"),
                             (b"</cbc:TaxAmount>", b"</cbc:TaxAmountX>")),
        "many-findings": _sub(BASE, (b'currencyID="EUR"', b'currencyID="XYZ"'),
                              (b'currencyID= "EUR"', b'currencyID= "XYZ"'),
                              (b"<cbc:ID>S</cbc:ID>", b"<cbc:ID>Q</cbc:ID>"),
                              (b"<cbc:ID>VAT</cbc:ID>", b"<cbc:ID>GST</cbc:ID>")),
        "credit-note-totals": _sub(CREDIT_NOTE, (
            b'<cbc:TaxInclusiveAmount currencyID="EUR">1656.25<',
            b'<cbc:TaxInclusiveAmount currencyID="EUR">1600.00<')),
        "batch": (b"<Batch>" + body(with_id(BASE, "GOOD-1"))
                  + body(with_id(BROKEN["wrong-totals"][0], "BAD-2"))
                  + body(CREDIT_NOTE) + b"</Batch>"),
    })
    return out


def findings_of(data: bytes) -> dict[str, object]:
    """What the engine says about one file: raw assertions per document, and findings."""
    from daemon.einvoice import check_document, documents, preflight
    docs = []
    for doc in documents(data, "x.xml"):
        found = check_document(doc)
        docs.append({"invoice_id": doc.invoice_id,
                     "assertions": None if found is None else
                     [[a.rule, a.text, a.location, a.fatal] for a in found]})
    out: dict[str, object] = {"documents": docs}
    for mode in ("error", "warn"):
        result = preflight(data, "x.xml", mode)  # type: ignore[arg-type]
        out[mode] = {"checked": result.checked, "not_checked": list(result.not_checked),
                     "findings": [[f.code, f.file, f.message, f.severity, f.invoice_id]
                                  for f in result.findings]}
    return out


def current() -> dict[str, object]:
    from daemon.einvoice.artefacts import artefacts_hash
    return {"artefacts_sha256": artefacts_hash(),
            "cases": {name: findings_of(data) for name, data in cases().items()}}


if __name__ == "__main__":
    PINNED.write_text(json.dumps(current(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {PINNED}", file=sys.stderr)
