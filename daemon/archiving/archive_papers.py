"""The papers of an archive entry: receipt.json, reason.json and REASON.txt (from
`reasontext.py`) as outboxd writes them — JSON for people on the share, reason.json's
record and reading it back — and their writing into a folder, never over a file that is
not this bundle's paper (`papers.py` judges). The move that carries them is archive.py's.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from daemon.archiving.papers import PAPER_LIMIT, bundle_named, paper_look
from daemon.archiving.reasontext import reason_text
from daemon.bundle import Finding, reasons_of
from daemon.errors import NotOurs
from daemon.fs.fsread import read_regular
from daemon.fs.ourfiles import replace_ours
from daemon.fs.workfolder import entry_at

# One encoder made once: json.dumps with any option builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def readable_json(obj: Any, depth: int = 3, indent: str = "") -> str:
    """JSON for people on the share: dicts and lists one item per line down to `depth`,
    what lies deeper on one line. json's indent= runs its pure-Python encoder
    (about twice the CPU of this for a receipt); each piece here is one call of
    the C encoder."""
    if depth and obj and isinstance(obj, dict | list):
        inner = indent + "  "
        if isinstance(obj, dict):
            body = ",\n".join([f"{inner}{_encode(str(k))}: {readable_json(v, depth - 1, inner)}"
                               for k, v in obj.items()])
            return f"{{\n{body}\n{indent}}}"
        body = ",\n".join([inner + readable_json(v, depth - 1, inner) for v in obj])
        return f"[\n{body}\n{indent}]"
    return _encode(obj)


def _json_bytes(obj: Any) -> bytes:
    return (readable_json(obj) + "\n").encode("utf-8")


def receipt_papers(receipt: dict[str, Any]) -> dict[str, bytes]:
    return {"receipt.json": _json_bytes(receipt)}


def reason_papers(record: dict[str, Any]) -> dict[str, bytes]:
    return {"reason.json": _json_bytes(record),
            "REASON.txt": reason_text(record).encode("utf-8")}


def write_papers(folder: Path, papers: Mapping[str, bytes], sync: bool = True) -> None:
    """Each paper written whole or not at all (temp name + rename), never over a file
    that is not this bundle's paper: the folder is the bundle's (an invoice file named
    REASON.txt under invoice_patterns "*") or an entry people on the share write in
    (a clerk's own notes saved as REASON.txt). What is there is replaced only when
    paper_look judges it this bundle's paper (an earlier try's, whole or cut short);
    anything else is kept and the archive's next try finds it again (OSError)."""
    # The bundle, as its JSON paper (receipt.json or reason.json) names it.
    bundle_id = next(filter(None, map(bundle_named, papers.values())), "")
    # REASON.txt first: an earlier version's is judged by the reason.json beside it as it
    # was written with it (papers._older_reason), not by the one written now.
    for name, data in sorted(papers.items(), key=lambda item: item[0] != "REASON.txt"):
        path = folder / name
        try:
            # REASON.txt is for people on the share: readable by the group as well.
            replace_ours(path, data, partial(paper_look, path, bundle_id, data),
                         mode=0o640 if name == "REASON.txt" else None, sync=sync)
        except NotOurs as exc:
            raise OSError(errno.EEXIST, f"{exc} — outboxd writes its {name} there and never "
                          "over a file it did not write: rename or move that file, and the "
                          "next try writes it", str(path)) from None



def reason_record(bundle_id: str, invoice_file: str, reasons: list[Finding],
                  quarantined_at: str, accepted: list[dict[str, Any]] | None = None,
                  invoice_ids: list[str] | None = None, converted: str | None = None,
                  embedded: str | None = None, outcome_unknown: bool = False
                  ) -> dict[str, Any]:
    """reason.json's content. `quarantined_at` comes from the journal (when the bundle
    entered quarantining), not from the clock: a move retried after a crash must write
    the same papers, or the complete copy an earlier run left in quarantine/ no longer
    matches the work folder and a second entry is made beside it. `invoice_ids` (the
    journal's, too): the invoices the file holds, so that a script learns which invoices
    were stopped without reading the invoice file (a PDF's ids come from its text).

    `accepted`: the journal's records of the documents the receiver already took
    (ubl-embedded, `Journal.documents_of`). They are delivered; the
    papers must say so, or a clerk who fixes and re-exports the file sends them twice.
    reason.json then gains `accepted_documents` (invoice id, receipt id, Idempotency-Key,
    status, document name); without any, it keeps the fields folder-convention.md lists.

    `converted`: the folder of PDFs outboxd made of the bundle's images (convert_images)
    that the quarantine folder holds beside the sidecar; reason.json then gains
    `converted_folder`, and REASON.txt says to leave it out of what is moved back.
    `embedded`: likewise the folder of the documents ubl-embedded kept before posting
    them (`embedded_folder`): the record of what the receiver may have, never sent again
    from the outbox.
    `outcome_unknown`: a POST of the bundle may have reached the receiver, no answer
    saying otherwise (reasontext.outcome_unknown); reason.json then gains
    `delivery_outcome_unknown: true`, and REASON.txt says what to check before sending
    it again instead of "Nothing was delivered"."""
    record: dict[str, Any] = {
        "bundle_id": bundle_id, "invoice_file": invoice_file,
        "invoice_ids": list(invoice_ids or ()),
        "reasons": reasons_of(reasons), "quarantined_at": quarantined_at}
    if accepted:
        record["accepted_documents"] = [
            {"invoice_id": d.get("invoice_id"), "receipt_id": d.get("receipt_id"),
             "idempotency_key": d.get("idempotency_key"), "status": d.get("status"),
             "name": d.get("name")} for d in accepted]
    if converted:
        record["converted_folder"] = converted
    if embedded:
        record["embedded_folder"] = embedded
    if outcome_unknown:
        record["delivery_outcome_unknown"] = True
    return record


def reason_of(folder: Path, at: int | None = None) -> dict[str, Any] | None:
    """A folder's reason.json as written by reason_papers, None if it has none (`at`:
    the folder held open, reason.json read from it; errors still name `folder`).

    Raises InputError when it is there but not a regular file that can be read
    (never opened: a link or a FIFO a share user put there), ValueError (or
    RecursionError) when it is not a reason record.
    """
    path = folder / "reason.json"
    if not entry_at(path, at):
        return None
    data = read_regular(path, str(path), limit=PAPER_LIMIT, at=at)
    if data is None:
        raise ValueError(f"{path} is larger than a reason record can be")
    reason = json.loads(data)
    if not isinstance(reason, dict):
        raise ValueError(f"{path} holds no reason record (not a JSON object)")
    return reason
