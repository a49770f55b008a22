"""What the reference receiver checks in a manifest before it stores a byte:
every field it relies on, plain file names, the part order, and names that
cannot collide in the store layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daemon.errors import Refusal
from daemon.idnames import folder_name_for_id

_ATTACHMENT_FIELDS = ("part", "name", "original_name", "size", "sha256", "content_type",
                      "document_type")
_RESERVED = {"manifest.json", "response.json", "attachments"}


def plain_name(name: Any, what: str) -> str:
    """A sent filename, accepted only if it is already a harmless basename."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        raise Refusal(400, f"{what}: filename {name!r} is empty or not a file name")
    if "/" in name or "\\" in name or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise Refusal(400, f"{what}: filename {name!r} contains '/', '\\' or control characters")
    if len(name.encode("utf-8")) > 255:
        raise Refusal(400, f"{what}: filename is longer than 255 bytes")
    return name


def _fields(entry: Any, where: str, names: Sequence[str]) -> dict[str, Any]:
    """The manifest entry, if it has every field the receiver relies on, with the right type."""
    if not isinstance(entry, dict):
        raise Refusal(400, f"part 'manifest': {where} is not an object")
    for name in names:
        kind = int if name == "size" else str
        if not isinstance(entry.get(name), kind) or isinstance(entry.get(name), bool):
            raise Refusal(400, f"part 'manifest': {where} needs {kind.__name__} field {name!r}")
    return entry


def expected_parts(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(part name, manifest entry, path inside the bundle folder) in the required order."""
    inv = _fields(manifest["invoice_file"], "invoice_file", ("name", "size", "sha256"))
    inv_name = plain_name(inv["name"], "manifest invoice_file")
    if inv_name in _RESERVED:
        raise Refusal(400, f"invoice file name {inv_name!r} clashes with the store layout")
    out = [("invoice", inv, inv_name)]
    for invoice in manifest["invoices"]:
        folder = folder_name_for_id(str(invoice["id"]))
        for att in invoice["attachments"]:
            _fields(att, f"attachment of {invoice['id']!r}", _ATTACHMENT_FIELDS)
            name = plain_name(att["name"], f"manifest entry {att.get('part')!r}")
            out.append((att["part"], att, f"attachments/{folder}/{name}"))
    for n, (part, _entry, _rel) in enumerate(out[1:], start=1):
        if part != f"attachment-{n}":
            raise Refusal(400, f"manifest names part {part!r} where 'attachment-{n}' belongs")
    paths = [rel for _p, _e, rel in out]
    if len(set(paths)) != len(paths):
        raise Refusal(400, "two files in the manifest would be stored under the same name")
    return out
