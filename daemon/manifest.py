"""The manifest and the bundle id (docs/protocol.md, sections 2, 3): what the receiver is told.

The bundle id is a pure function of content (invoice hash, attachment ids,
names, hashes, types, notes), so retries, restarts and a second daemon all
compute the same Idempotency-Key, and a receiver can recompute it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from daemon.bundle import Attachment, Bundle, Finding
from daemon.names import EXT_MAX, NAME_MAX, fold_key

MANIFEST_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Latin letters that NFKD does not take apart into an ASCII letter and an accent.
_LATIN_LETTERS = str.maketrans({"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O",
                                "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
                                "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i"})


def canonical_input(invoice_sha256: str,
                    attachments: Iterable[Sequence[str]]) -> str:
    """The canonical JSON the bundle id hashes; rows are [id, name, sha256, type, note]."""
    return json.dumps({"invoice_sha256": invoice_sha256,
                       "attachments": [list(row) for row in attachments]},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_bundle_id(invoice_sha256: str, attachments: Iterable[Sequence[str]]) -> str:
    data = canonical_input(invoice_sha256, attachments).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def ordered_attachments(bundle: Bundle) -> list[Attachment]:
    """Manifest order: invoices as the file holds them, then original name (code points)."""
    out: list[Attachment] = []
    for invoice_id in bundle.invoice_ids:
        out.extend(sorted(bundle.attachments_of(invoice_id), key=lambda a: a.original_name))
    return out


def bundle_id_of(bundle: Bundle) -> str:
    # A converted image is sent (and hashed) as its PDF: the receiver can recompute this
    # from the manifest's original_name and sha256.
    rows = [[a.invoice_id, a.original_name, a.converted.sha256 if a.converted else a.sha256,
             a.document_type, a.note or ""]
            for a in ordered_attachments(bundle)]
    return compute_bundle_id(bundle.invoice_file.sha256, rows)


def bundle_id_from_manifest(manifest: dict[str, Any]) -> str:
    """What a receiver does: recompute the id from the manifest it was sent."""
    rows = [[inv["id"], att["original_name"], att["sha256"], att["document_type"],
             att.get("note") or ""]
            for inv in manifest["invoices"] for att in inv["attachments"]]
    return compute_bundle_id(manifest["invoice_file"]["sha256"], rows)


def safe_filename(name: str) -> str:
    """Fold a name to ASCII letters, digits, '-', '_' and '.' for picky receivers.

    'Tidrapport oktober.pdf' -> 'Tidrapport_oktober.pdf', 'Å' -> 'A', 'Kjøp' -> 'Kjop'.
    A letter, digit or symbol with no ASCII form ('Счёт', '日本', '€') is not
    simply dropped: the name gets '-' and 8 hex digits of the SHA-256 of the
    name on disk before its extension ('Счёт.pdf' -> 'file-2eb0a6b9.pdf'), so
    two such names of one invoice still go out as two names, the same ones on
    every attempt. So does a name that would be longer than a file system
    takes (NAME_MAX bytes), cut to fit.
    """
    decomposed = unicodedata.normalize("NFKD", name.translate(_LATIN_LETTERS))
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii")
    folded = _UNSAFE.sub("_", ascii_only).strip("_")
    if not _drops_meaning(decomposed):
        # A name of symbols only could fold to '.pdf': a hidden file on the receiver's side.
        plain = ("file" if not folded.strip(".") else
                 "file" + folded if folded.startswith(".") else folded)
        if len(plain) <= NAME_MAX:
            return plain
    return _tagged(name, folded)


def sent_name(name: str, safe: bool) -> str:
    """The filename a part goes out under: folded with [delivery] safe_filenames."""
    return safe_filename(name) if safe else name


def sent_parts(bundle: Bundle, manifest: dict[str, Any]) -> list[tuple[Attachment, str]]:
    """Each attachment with the name its manifest entry gives it (manifest order): what
    a transport names the files by, so that they always agree with the manifest."""
    entries = [e["name"] for inv in manifest["invoices"] for e in inv["attachments"]]
    return list(zip(ordered_attachments(bundle), entries, strict=True))


def sent_keys(name: str) -> set[str]:
    """The keys under which `name` could reach a receiver: as it is and as safe_filename
    folds it, each with case and Unicode normalisation folded (names.fold_key)."""
    return {fold_key(name), fold_key(safe_filename(name))}


def _tagged(name: str, folded: str) -> str:
    """'STEM-TAG.EXT' from the folded name, at most NAME_MAX characters (all ASCII)."""
    if folded.startswith("."):  # nothing left before the extension: '日本.tar.gz'
        stem, ext = "file", folded.lstrip(".")
    else:
        stem, dot, ext = folded.rpartition(".")
        stem, ext = (stem.strip("._"), ext) if dot else (folded, "")
    if not ext.strip("._") or len(ext) > EXT_MAX:
        stem, ext = (f"{stem}.{ext}" if ext else stem).strip("._"), ""
    tag = hashlib.sha256(unicodedata.normalize("NFC", name).encode(
        "utf-8", "surrogatepass")).hexdigest()[:8]
    tail = f"-{tag}" + (f".{ext}" if ext else "")
    stem = stem[:NAME_MAX - len(tail)].rstrip("._-")
    return (stem or "file") + tail


def _drops_meaning(decomposed: str) -> bool:
    """Whether folding to ASCII loses more than accents and punctuation: a letter,
    digit or symbol outside ASCII (accents are combining marks after NFKD)."""
    return any(ord(c) > 127 and unicodedata.category(c)[0] in "LNS" for c in decomposed)


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(bundle: Bundle, *, safe_filenames: bool = True,
                   warnings: Sequence[Finding] = (),
                   created_at: str | None = None,
                   bundle_id: str | None = None) -> dict[str, Any]:
    """The manifest as docs/protocol.md (section 2) shows it; parts are numbered in manifest order.
    `bundle_id`: bundle_id_of(bundle) when the caller has it already."""
    def sent(name: str) -> str:
        return sent_name(name, safe_filenames)

    inv = bundle.invoice_file
    part = 0
    invoices: list[dict[str, Any]] = []
    for invoice_id in bundle.invoice_ids:
        entries = []
        for a in sorted(bundle.attachments_of(invoice_id), key=lambda a: a.original_name):
            part += 1
            entry: dict[str, Any] = {
                "part": f"attachment-{part}", "name": sent(a.original_name),
                "original_name": a.original_name, "size": a.size, "sha256": a.sha256,
                "content_type": a.content_type, "document_type": a.document_type,
                "note": a.note,
            }
            if a.pages is not None:
                entry["pages"] = a.pages
            if a.converted is not None:  # [validation] convert_images: the PDF is sent
                c = a.converted
                entry.update(name=sent(c.name), size=c.size, sha256=c.sha256,
                             content_type="application/pdf", pages=c.pages,
                             converted_from={"name": a.original_name, "size": a.size,
                                             "sha256": a.sha256,
                                             "content_type": c.original_content_type})
            entries.append(entry)
        invoices.append({"id": invoice_id, "attachments": entries})
    return {
        "manifest_version": MANIFEST_VERSION,
        "bundle_id": bundle_id or bundle_id_of(bundle),
        "created_at": created_at or utc_now_iso(),
        "channel": bundle.channel,
        "invoice_file": {"name": sent(inv.name), "original_name": inv.name,
                         "size": inv.size, "sha256": inv.sha256, "format": inv.format},
        "invoices": invoices,
        "warnings": [{"code": w.code, "invoice_id": w.invoice_id, "file": w.file,
                      "message": w.message} for w in warnings],
    }
