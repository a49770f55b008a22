"""The bundles `outboxd demo` drops, each with the end it is expected to reach."""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.actions import samples as s


@dataclass
class Sample:
    invoice_file: str
    shows: str  # what the sample demonstrates, one line
    expect: str  # "sent", "quarantined" or "waiting"
    expect_code: str | None = None  # a reason code quarantine must name
    # relative path -> content; written in this order (sidecar first, invoice file last)
    files: dict[str, bytes] = field(default_factory=dict)
    # written once the bundle is seen waiting: what a clerk does on the share
    when_waiting: dict[str, bytes] = field(default_factory=dict)


def _toml(entries: dict[str, tuple[str, str]], channel: str | None = None) -> bytes:
    lines = [f'channel = "{channel}"', ""] if channel else []
    for name, (doc_type, note) in entries.items():
        lines += [f'[files."{name}"]', f'type = "{doc_type}"', f'note = "{note}"', ""]
    return "\n".join(lines).encode("utf-8")


def build(release_suffix: str, release_supported: bool) -> list[Sample]:
    """The demo's samples. Without release-file support in this build the
    `NAME.send-anyway` file is still written, and its invoice is expected to keep waiting."""
    timesheet = s.text_pdf(["Tidrapport oktober - Anna Andersson - 42,5 timmar",
                            "Vecka 43: 38 timmar", "Attesterad av projektledaren"])
    one = Sample("INV-1001.xml", "Peppol invoice + time sheet (Swedish file name)", "sent")
    one.files = {
        "INV-1001/Tidrapport oktober.pdf": timesheet,
        "INV-1001/attachments.toml": _toml({"Tidrapport oktober.pdf":
                                            ("Timesheet", "Hours for October")}),
        "INV-1001.xml": s.peppol_invoice("INV-1001"),
    }
    batch = Sample("batch-42.xml", "three invoices in one file, a subfolder each", "sent")
    for inv, fname, doc_type, note in (
            ("INV-2001", "contract.pdf", "Contract", "Signed 2026-09-01"),
            ("INV-2002", "specification.pdf", "Specification", "Parts list, rev. B"),
            ("INV-2003", "delivery-note.pdf", "DeliveryNote", "Goods received 2026-11-20")):
        batch.files[f"batch-42/{inv}/{fname}"] = s.text_pdf([f"{doc_type} for {inv}"])
        batch.files[f"batch-42/{inv}/attachments.toml"] = _toml({fname: (doc_type, note)})
    batch.files["batch-42.xml"] = s.peppol_batch(["INV-2001", "INV-2002", "INV-2003"])

    pdf = Sample("scan-0007.pdf", "PDF invoice: its id INV-3001 read from the text", "sent")
    pdf.files = {
        "scan-0007/Följesedel.pdf": s.text_pdf(["Foljesedel till faktura INV-3001"]),
        "scan-0007.pdf": s.text_pdf(["ACME AB   Fakturanummer: INV-3001   "
                                     "Att betala: 12 500,00 SEK"]),
    }
    released = Sample("INV-4001.xml", f"no attachments; released by INV-4001{release_suffix}",
                      "sent" if release_supported else "waiting")
    released.files = {"INV-4001.xml": s.peppol_invoice("INV-4001")}
    released.when_waiting = {f"INV-4001{release_suffix}": b""}
    if not release_supported:
        released.shows += " (not in this build: it waits)"
    tiff = Sample("INV-5001.xml", "external print, 200-DPI scan: needs 300 DPI",
                  "quarantined", "tiff-resolution")
    tiff.files = {
        "INV-5001/delivery-note.tif": s.tiff_scan(200),
        "INV-5001/attachments.toml": _toml({"delivery-note.tif": ("DeliveryNote", "Scan")},
                                           channel="external-print"),
        "INV-5001.xml": s.peppol_invoice("INV-5001"),
    }
    locked = Sample("INV-6001.xml", "an encrypted PDF attachment", "quarantined",
                    "pdf-encrypted")
    locked.files = {
        "INV-6001/contract.pdf": s.encrypted_pdf("Contract, protected by its author"),
        "INV-6001.xml": s.peppol_invoice("INV-6001"),
    }
    return [one, batch, pdf, released, tiff, locked]
