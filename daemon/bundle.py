"""The data a bundle is made of, shared by every stage of the pipeline.

Plain frozen dataclasses: the stages pass them along and never mutate them,
so a bundle read before the claim can be compared with one read after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

# A note is for `outboxd check` alone (e.g. not-preflighted): never an error, never in a
# manifest.
Severity = Literal["error", "warning", "note"]
InvoiceFormat = Literal["ubl", "svefaktura", "pdf", "other"]


@dataclass(frozen=True)
class Finding:
    """One error or warning about a bundle: a stable code, the file, the rule and the fix."""

    code: str
    file: str  # relative to the outbox, e.g. "INV-1001/scan.tif"
    message: str
    severity: Severity = "error"
    invoice_id: str | None = None

    def line(self) -> str:
        return f"{self.file}: {self.message}"


def reasons_of(findings: list[Finding] | tuple[Finding, ...]) -> list[dict[str, str | None]]:
    """Findings as the journal, reason.json and `status --json` keep them. `invoice_id`
    is always there (null for a finding about the whole file): an ERP maps an error in
    a file of several invoices to its invoice by it, not by undoing the folder name's
    replaced characters or reading the message."""
    return [{"code": f.code, "file": f.file, "message": f.message, "invoice_id": f.invoice_id}
            for f in findings]


def findings_of(reasons: list[dict[str, Any]]) -> list[Finding]:
    """The journal's reasons as findings again (rows of older versions have no
    invoice_id)."""
    return [Finding(r["code"], r["file"], r["message"], invoice_id=r.get("invoice_id"))
            for r in reasons]


def below(path: Path, rel: str) -> tuple[Path, str]:
    """A bundle's file as (root, its path below root), for fsops.open_below: root is the
    folder holding the invoice file (the outbox, or the claimed bundle's work folder),
    trusted as the admin configured it; below it no link is followed. `rel` is how the
    file is shown (its path from that folder: "INV-1/ID/scan.pdf"), so it says how many
    of `path`'s parts lie below root; the root travels in the path, and the reader
    wire carries nothing more."""
    depth = rel.count("/") + 1
    return path.parents[depth - 1], "/".join(path.parts[-depth:])


@dataclass(frozen=True)
class InvoiceFile:
    path: Path  # where it is now (outbox or processing)
    name: str  # name on disk
    size: int
    sha256: str
    format: InvoiceFormat
    invoice_ids: tuple[str, ...]
    # The file could not be read: its one id is its stem, a stand-in, or (an id said twice)
    # the distinct ids it holds (match.assemble).
    ids_unknown: bool = False
    # It had other names too (hard links, st_nlink > 1) when it was read: Bundle.linked.
    linked: bool = field(default=False, compare=False)

    @property
    def where(self) -> tuple[Path, str]:
        """(root, name): the folder holding it, and its name there (bundle.below)."""
        return self.path.parent, self.path.name


@dataclass(frozen=True)
class Conversion:
    """An image converted to PDF for a print channel (``[validation] convert_images``)."""

    name: str  # the PDF's name, e.g. "scan.pdf"
    size: int
    sha256: str
    pages: int
    original_content_type: str
    path: Path | None = None  # None until written into the work folder after the claim
    # Its first page's width and height in centimetres, as a printer gets it (for check).
    page_cm: tuple[float, float] | None = None


@dataclass(frozen=True)
class Attachment:
    path: Path  # where it is now
    rel: str  # relative to the outbox, for messages
    original_name: str
    invoice_id: str
    size: int
    sha256: str
    document_type: str
    note: str = ""
    # Filled in by validation, which is where the content is sniffed.
    content_type: str = "application/octet-stream"
    pages: int | None = None
    converted: Conversion | None = None  # what is validated and sent instead of the image
    # It had other names too (hard links) when it was read: Bundle.linked.
    linked: bool = field(default=False, compare=False)

    @property
    def where(self) -> tuple[Path, str]:
        """(root, path below it) of the file, to open it with fsops.open_below."""
        return below(self.path, self.rel)

    @property
    def sent(self) -> tuple[str, Path, str, int, str]:
        """Name, path, content type, size and sha256 of what is sent for this attachment."""
        c = self.converted
        if c is None:
            return self.original_name, self.path, self.content_type, self.size, self.sha256
        if c.path is None:
            raise RuntimeError(f"{self.rel}: the converted PDF was not written after the claim")
        return c.name, c.path, "application/pdf", c.size, c.sha256

    @property
    def sent_where(self) -> tuple[Path, str]:
        """(root, path below it) of what is sent (`sent`): a converted image's PDF lies in
        the work folder as deep as the image does (convert.converted_path)."""
        return below(self.sent[1], self.rel)


@dataclass(frozen=True)
class Bundle:
    """An invoice file, its sidecar (maybe absent) and the attachments matched to it."""

    invoice_file: InvoiceFile
    sidecar: Path | None
    attachments: tuple[Attachment, ...]
    channel: str
    findings: tuple[Finding, ...] = field(default=())
    # What matching read from the sidecar that the bundle id does not cover (each
    # attachments.toml, structural findings), as a digest: the check after the claim
    # compares it with the id (match._sidecar_digest).
    sidecar_digest: str = ""
    # The invoices whose attachments were not read: their sidecar (or their folder in it)
    # was refused from its listing, before any file was read (too-many-attachments, a
    # link). They may well have attachments: "has no attachments" would be false of them.
    unread_ids: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The bundle's NAME: the invoice file's stem."""
        return Path(self.invoice_file.name).stem

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        return self.invoice_file.invoice_ids

    @property
    def linked(self) -> tuple[str, ...]:
        """The files read that had other names too (hard links), by their paths from the
        outbox as Snapshot.linked gives them: from the lstat or fstat the read made of each
        anyway (the check after a claim finds a link made after its last snapshot)."""
        own = (self.invoice_file.name,) if self.invoice_file.linked else ()
        return own + tuple(a.rel for a in self.attachments if a.linked)

    def attachments_of(self, invoice_id: str) -> tuple[Attachment, ...]:
        return self._by_invoice.get(invoice_id, ())

    @cached_property
    def _by_invoice(self) -> dict[str, tuple[Attachment, ...]]:
        # Grouped once: asked per invoice, a scan of every attachment made a file of
        # thousands of invoices cost invoices x attachments, on the loop thread.
        groups: dict[str, list[Attachment]] = {}
        for a in self.attachments:
            groups.setdefault(a.invoice_id, []).append(a)
        return {k: tuple(v) for k, v in groups.items()}

    @property
    def unattached_ids(self) -> tuple[str, ...]:
        """The invoices read without attachments; not those whose files were not read."""
        return tuple(i for i in self.invoice_ids
                     if i not in self._by_invoice and i not in self.unread_ids)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    def with_findings(self, more: list[Finding] | tuple[Finding, ...]) -> Bundle:
        return replace(self, findings=self.findings + tuple(more))
