"""What the reference receiver makes of a POST's body (server.py handles the HTTP
around it): a bundle read as a stream (bounded buffer, parts written to a
staging folder as they arrive), checked part by part against its manifest, then
renamed into ``STORE/BUNDLE_ID/`` in one step; or one UBL document (ubl-embedded)
checked against its sha256 and stored as ``STORE/documents/KEY.xml``. A repeat
with the same content is answered with the stored 2xx body, a key reused with
other content 422. Stored answers live on disk (``response.json``), so they
survive a restart.

A key counts as received only once its whole answer is on disk: a store folder or a
document without one (a store copied by hand, a receiver of an earlier version, or a
second one on the same store killed mid-store) is stored again when the sender
retries, never answered 500 for good, nor with a cut answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Protocol

from daemon.errors import Refusal
from daemon.fs.fsread import NotAFile, read_admin_file
from daemon.fs.fswrite import fsync_dir, fsync_tree, rename_noreplace, write_atomic
from daemon.manifest import MANIFEST_VERSION, bundle_id_from_manifest
from daemon.receiver.checks import expected_parts
from daemon.receiver.multipart import Body, Multipart, html5_escaped

# The manifest part is held in memory to be parsed, so it has a limit (the file parts are
# streamed). The same as the example receivers' (examples/receivers/bundle_check.py,
# where the arithmetic is): 8 MiB was reached by some 1,900 attachments with two
# 2,000-character notes each, which outboxd makes; 64 MiB takes 15,000 of them.
MAX_MANIFEST = 64 << 20
MAX_ANSWER = 1 << 20  # far above the receipt this receiver writes


class Memory(Protocol):
    """What receiving needs of the server: the store, and its memory of answers given."""

    store: Path
    own_ids: bool

    def stored_response(self, key: str) -> bytes | None: ...

    def remember(self, key: str, body: bytes) -> None: ...


def receive_bundle(server: Memory, stream: Body, key: str, boundary: bytes, staging: Path
                   ) -> tuple[int, bytes]:
    """A multipart/form-data POST: stored as STORE/KEY/; KEY must be its bundle id."""
    mp = Multipart(stream, boundary)
    head = mp.next_part()
    if head is None or head.name != "manifest":
        raise Refusal(400, f"first part must be 'manifest', got {head and head.name!r}")
    if head.content_type.split(";")[0].strip().lower() != "application/json":
        raise Refusal(400, f"part 'manifest': Content-Type must be application/json, "
                      f"got {head.content_type!r}")
    raw = bytearray()

    def collect(data: bytes) -> None:
        raw.extend(data)
        if len(raw) > MAX_MANIFEST:
            raise Refusal(413, f"part 'manifest' is over {MAX_MANIFEST} bytes")

    mp.read_data(collect, "part 'manifest'")
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:
        # RecursionError: nested deeper than the parser goes, a malformed request too.
        raise Refusal(400, f"part 'manifest' is not valid JSON: {exc}") from None
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise Refusal(400, f"part 'manifest': manifest_version must be {MANIFEST_VERSION}, "
                      f"got {manifest.get('manifest_version')!r}")
    try:
        parts = expected_parts(manifest)
        recomputed = bundle_id_from_manifest(manifest)
    except (KeyError, TypeError, AttributeError) as exc:
        raise Refusal(400, f"part 'manifest' lacks or mistypes a field: {exc!r}") from None
    stored = server.stored_response(key)
    if stored is not None and recomputed != key:
        raise Refusal(422, "this Idempotency-Key was already used for a bundle with "
                      f"other content (this one's content gives {recomputed})")
    if manifest.get("bundle_id") != recomputed:
        raise Refusal(400, f"part 'manifest': bundle_id {manifest.get('bundle_id')!r} is "
                      f"not the id of its content ({recomputed})")
    if key != recomputed:
        raise Refusal(400, f"Idempotency-Key {key} is not the bundle id {recomputed}")
    for name, entry, rel in parts:
        _receive_file(mp, name, entry, staging / rel)
    if (extra := mp.next_part()) is not None:
        raise Refusal(400, f"unexpected part {extra.name!r} after {parts[-1][0]!r}")
    if stored is not None:
        return 200, stored  # the first answer, byte for byte
    # --own-ids: the receiver's own id for what it stored (64 hex digits, as ours are).
    named = hashlib.sha256(raw).hexdigest() if server.own_ids else key
    body = json.dumps({"receipt_id": f"rcpt-{uuid.uuid4().hex}", "bundle_id": named}).encode()
    write_atomic(staging / "manifest.json", bytes(raw))  # exactly the bytes received
    write_atomic(staging / "response.json", body)
    fsync_tree(staging)
    dest = server.store / key
    try:
        rename_noreplace(staging, dest)
    except FileExistsError:
        if (theirs := whole_answer(dest / "response.json")) is not None:
            # Stored whole meanwhile by another receiver on this store: its answer is
            # the key's, and what the sender gets (a repeat, as the draft has it).
            server.remember(key, theirs)
            return 200, theirs
        # STORE/KEY/ without a whole answer (stored_response found none): not received.
        # Set aside first, so the name never holds a mix of both.
        _set_aside(dest, server.store)
        rename_noreplace(staging, dest)
    fsync_dir(server.store)
    server.remember(key, body)
    return 201, body


def receive_document(server: Memory, stream: Body, key: str, length: int, staging: Path,
                     bundle_id: str | None) -> tuple[int, bytes]:
    """An application/xml POST: stored as DIR/documents/KEY.xml; KEY must be its sha256."""
    digest = hashlib.sha256()
    part = staging / "document.xml"
    with open(part, "xb") as fh:
        left = length
        while left:
            chunk = stream.take(min(1 << 16, left), "the document")
            left -= len(chunk)
            digest.update(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    folder = server.store / "documents"
    answer = folder / f"{key}.response.json"
    stored = whole_answer(answer)
    if digest.hexdigest() != key:
        if stored is not None:
            raise Refusal(422, "this Idempotency-Key was already used for a document with "
                          f"other content (this one's sha256 is {digest.hexdigest()})")
        raise Refusal(400, f"Idempotency-Key {key} is not the sha256 of the document "
                      f"({digest.hexdigest()})")
    if stored is not None:
        return 200, stored
    body = json.dumps({"receipt_id": f"rcpt-{uuid.uuid4().hex}", "document_key": key,
                       "bundle_id": bundle_id}).encode()
    folder.mkdir(exist_ok=True)
    # A KEY.xml there without its answer may be cut short (see the module's docstring):
    # replaced in one step by these bytes, whose sha256 is KEY, before the answer says so.
    os.replace(part, folder / f"{key}.xml")
    fsync_dir(folder)
    write_atomic(answer, body)
    return 201, body


def whole_answer(path: Path) -> bytes | None:
    """The stored answer at path if it is whole (a JSON object with a receipt_id), else
    None: nothing there, or a cut or empty file, or something that is no file (never
    opened if it is a FIFO or a device)."""
    try:
        data = read_admin_file(path, MAX_ANSWER)
    except (FileNotFoundError, NotADirectoryError, NotAFile):
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return data if isinstance(parsed, dict) and "receipt_id" in parsed else None


def _set_aside(dest: Path, store: Path) -> None:
    """Move what is at dest out of the way, under a staging name (swept at the next start
    if this removal fails), and remove it."""
    aside = store / f".tmp-{uuid.uuid4()}"
    os.rename(dest, aside)
    removed(aside)


def removed(path: Path) -> None:
    """A staging entry gone, whatever it is: a folder with its files, or a file or link
    itself (never what a link names); a failure leaves it for the next start's sweep."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _receive_file(mp: Multipart, name: str, entry: dict[str, Any], dest: Path) -> None:
    if (head := mp.next_part()) is None or head.name != name:
        raise Refusal(400, f"expected part {name!r}, got {head.name!r}" if head
                      else f"part {name!r} is missing")
    if head.filename not in (entry["name"], html5_escaped(entry["name"])):
        raise Refusal(400, f"part {name!r}: filename {head.filename!r} is not the "
                      f"manifest's name {entry['name']!r}")
    if name != "invoice" and head.content_type != entry["content_type"]:
        raise Refusal(400, f"part {name!r}: Content-Type {head.content_type!r} is not the "
                      f"manifest's {entry['content_type']!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open(dest, "xb") as fh:
        def sink(data: bytes) -> None:
            nonlocal size
            digest.update(data)
            size += len(data)
            fh.write(data)

        mp.read_data(sink, f"part {name!r}")
        fh.flush()
        os.fsync(fh.fileno())
    if size != entry["size"]:
        raise Refusal(400, f"part {name!r}: {size} bytes, manifest says {entry['size']}")
    if digest.hexdigest() != entry["sha256"]:
        raise Refusal(400, f"part {name!r}: sha256 {digest.hexdigest()} does not match "
                      f"the manifest's {entry['sha256']}")
