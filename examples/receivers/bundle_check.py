"""What every outboxd receiver checks, whatever its web framework (docs/protocol.md).

Standard library only, so it can be copied next to any receiver. The two
examples beside it (Flask, Starlette) only parse multipart/form-data and call
these functions; the rules and the store layout live here.

Store layout, one folder per bundle, written under a temporary name and
renamed into place:  STORE/BUNDLE_ID/{manifest.json, response.json,
invoice, attachment-1, …}. Files are kept under their *part* names: the
file names a person gave them are in the manifest, which is authoritative
(a part's `filename` parameter is only a hint that frameworks decode
differently).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

HEX64 = re.compile(r"^[0-9a-f]{64}$")

# The manifest part is held in memory to be parsed, so it has a limit; the file parts
# are streamed and have none here. outboxd's own limits bound one attachment's entry
# (json.dumps, ensure_ascii=False): a type and a note of at most 2,000 characters each,
# 12,000 bytes at worst as JSON (\u0001 escapes), 24,000; three file names of at most
# 255 bytes, 1,530 at worst escaped, 4,590; hashes, sizes, types and keys, about 600:
# about 29,200 bytes, call it 30,000 (plus 1,600 per invoice for its id). A typical
# entry is about 300 bytes, and 4,300 with two 2,000-character plain notes. 64 MiB is
# then at least 2,200 attachments of every value at its worst, 15,000 with two full
# plain notes each, and 200,000 typical ones: beyond any bundle a person assembles,
# where 1 MiB was reached by 3,500 attachments or 250 with long notes. outboxd sends at
# most [validation] max_attachments per bundle (1,000 by default: some 30 MB at worst),
# and only an admin who raises it far (it has no upper bound) brings one near this limit.
MAX_MANIFEST = 64 << 20
# A manifest entry is at least about 200 bytes ("part", "name", "original_name",
# "size", "sha256", "content_type", "document_type", "note"): no bundle within
# MAX_MANIFEST has more file parts than this, for a parser that wants a cap on them.
MAX_FILE_PARTS = MAX_MANIFEST // 200 + 1


class Refusal(Exception):
    """An answer other than 2xx: HTTP status and a message for the sender's log."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bundle_id(manifest: dict[str, Any]) -> str:
    """Recompute the bundle id from the manifest (docs/protocol.md, "Bundle id")."""
    rows = [[inv["id"], att["original_name"], att["sha256"], att["document_type"],
             att.get("note") or ""]
            for inv in manifest["invoices"] for att in inv["attachments"]]
    canonical = json.dumps({"invoice_sha256": manifest["invoice_file"]["sha256"],
                            "attachments": rows},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_manifest(raw: bytes, key: str | None, store: Store
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check the manifest part and the Idempotency-Key; the file parts expected, in order."""
    if not key or not HEX64.match(key):
        raise Refusal(400, "Idempotency-Key header missing or not a 64-hex bundle id")
    try:
        manifest = json.loads(raw.decode("utf-8"))
        if manifest.get("manifest_version") != 1:
            raise Refusal(400, "manifest_version must be 1")
        expected = [{"part": "invoice", **manifest["invoice_file"]}]
        for inv in manifest["invoices"]:
            expected += inv["attachments"]
        recomputed = bundle_id(manifest)
    except Refusal:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Refusal(400, f"part 'manifest' is not a valid manifest: {exc!r}") from None
    for n, entry in enumerate(expected[1:], start=1):
        if entry.get("part") != f"attachment-{n}":
            raise Refusal(400, f"manifest names part {entry.get('part')!r} where "
                               f"'attachment-{n}' belongs")
    if key != recomputed and store.stored(key) is not None:
        raise Refusal(422, "this Idempotency-Key was used before for other content "
                           f"(this content's id is {recomputed})")
    if manifest.get("bundle_id") != recomputed:
        raise Refusal(400, f"manifest bundle_id is not the id of its content ({recomputed})")
    if key != recomputed:
        raise Refusal(400, f"Idempotency-Key is not the bundle id {recomputed}")
    return manifest, expected


def html5_escaped(name: str) -> str:
    """A file name as HTML5 form encoding puts it in a part header: '"' -> %22, CR/LF ->
    %0D/%0A. Some parsers (python-multipart) hand it over like that; others (Werkzeug)
    decode it. Both forms are accepted; the manifest's name is the real one."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def check_part(entry: dict[str, Any], name: str | None, filename: str | None,
               content_type: str | None, position: int) -> None:
    """A file part's name, filename and Content-Type against its manifest entry."""
    want = entry["part"]
    if name != want:
        raise Refusal(400, f"part {position + 1} is {name!r}; the manifest says {want!r}")
    if filename not in (entry["name"], html5_escaped(entry["name"])):
        raise Refusal(400, f"part {want!r}: filename {filename!r} is not the manifest's "
                           f"name {entry['name']!r}")
    expected_type = entry.get("content_type")
    if expected_type and (content_type or "").split(";")[0].strip() != expected_type:
        raise Refusal(400, f"part {want!r}: Content-Type {content_type!r}, manifest says "
                           f"{expected_type!r}")


class PartSink:
    """Stream one part to disk, counting and hashing; `finish` compares with the manifest."""

    def __init__(self, entry: dict[str, Any], path: Path) -> None:
        self.entry = entry
        self.fh = open(path, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.entry["size"]:
            raise Refusal(400, f"part {self.entry['part']!r} is longer than the manifest's "
                               f"{self.entry['size']} bytes")
        self.digest.update(data)
        self.fh.write(data)

    def finish(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        part = self.entry["part"]
        if self.size != self.entry["size"]:
            raise Refusal(400, f"part {part!r}: {self.size} bytes, manifest says "
                               f"{self.entry['size']}")
        if self.digest.hexdigest() != self.entry["sha256"]:
            raise Refusal(400, f"part {part!r}: sha256 does not match the manifest")


class Store:
    """Bundles on disk and the idempotency bookkeeping around them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    def begin(self, key: str) -> Path:
        """A staging folder for this key; 409 while another request holds the key."""
        if not HEX64.match(key):  # it becomes part of a path
            raise Refusal(400, "Idempotency-Key header missing or not a 64-hex bundle id")
        with self._lock:
            if key in self._in_flight:
                raise Refusal(409, "a request with this Idempotency-Key is in progress")
            self._in_flight.add(key)
        staging = self.root / f".tmp-{key}-{uuid.uuid4().hex}"
        staging.mkdir()
        return staging

    def end(self, key: str, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)
        with self._lock:
            self._in_flight.discard(key)

    def stored(self, key: str) -> bytes | None:
        """The first 2xx answer for a key that finished, byte for byte."""
        if not HEX64.match(key):
            return None
        try:
            return (self.root / key / "response.json").read_bytes()
        except FileNotFoundError:
            return None

    def commit(self, key: str, staging: Path, manifest_raw: bytes) -> bytes:
        body = json.dumps({"receipt_id": f"rcpt-{uuid.uuid4().hex}",
                           "bundle_id": key}).encode()
        for name, data in (("manifest.json", manifest_raw), ("response.json", body)):
            with open(staging / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        # On disk before the 2xx goes out (the parts were synced as they came): a bundle
        # lost to a power loss after its answer would be taken for a new one at the
        # sender's next repeat of its key, and stored twice under two receipts.
        _fsync_dir(staging)
        os.rename(staging, self.root / key)  # atomic: the bundle is there whole or not at all
        _fsync_dir(self.root)
        return body


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_token(header: str | None, token: str | None) -> None:
    # compare_digest takes as long for a near miss as for a wild guess: how long the
    # answer took never tells a guesser how much of the token was right.
    if token and not hmac.compare_digest((header or "").encode(), f"Bearer {token}".encode()):
        raise Refusal(401, "missing or wrong bearer token")
