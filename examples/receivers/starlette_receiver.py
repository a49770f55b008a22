"""A minimal outboxd receiver on Starlette + python-multipart (docs/protocol.md).

    pip install starlette uvicorn python-multipart
    python starlette_receiver.py --listen 127.0.0.1:8787 --store ./received [--token T]

Starlette parses the form with python-multipart (files spooled to disk) and
keeps the parts in arrival order; every part is checked against the manifest
(bundle_check.py). Note: python-multipart hands a file name over as the part
header carries it, so a '"' in a name arrives as '%22' (HTML5 form encoding);
the manifest's `name` and `original_name` are the authoritative ones.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_check import (  # noqa: E402
    MAX_FILE_PARTS,
    MAX_MANIFEST,
    PartSink,
    Refusal,
    Store,
    check_part,
    check_token,
    parse_manifest,
)

CHUNK = 64 * 1024


async def receive(request: Request, store: Store, token: str | None) -> tuple[int, bytes]:
    check_token(request.headers.get("authorization"), token)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Refusal(400, "Content-Type must be multipart/form-data")
    key = request.headers.get("idempotency-key", "")
    try:
        # Starlette's own defaults (1 MiB a field, 1,000 files) refuse bundles outboxd
        # makes: the manifest is the one field, and MAX_FILE_PARTS is what it can list.
        form = await request.form(max_files=MAX_FILE_PARTS, max_fields=1,
                                  max_part_size=MAX_MANIFEST)
    except Exception as exc:  # noqa: BLE001 - any parser complaint is a malformed request
        raise Refusal(400, f"malformed multipart body: {exc}") from None
    try:
        items = form.multi_items()
        if not items or items[0][0] != "manifest" or not isinstance(items[0][1], str):
            raise Refusal(400, "the first part must be the field 'manifest'")
        raw = items[0][1].encode("utf-8")
        manifest, expected = parse_manifest(raw, key, store)
        files = items[1:]
        if len(files) != len(expected):
            raise Refusal(400, f"{len(files)} file parts, the manifest names {len(expected)}")
        staging = store.begin(key)
        try:
            for position, (entry, (name, upload)) in enumerate(zip(expected, files, strict=True)):
                if not isinstance(upload, UploadFile):
                    raise Refusal(400, f"part {name!r} is not a file")
                check_part(entry, name, upload.filename, upload.headers.get("content-type"),
                           position)
                sink = PartSink(entry, staging / entry["part"])
                while data := await upload.read(CHUNK):
                    sink.write(data)
                sink.finish()
            stored = store.stored(key)
            if stored is not None:
                return 200, stored
            return 201, store.commit(key, staging, raw)
        finally:
            store.end(key, staging)
    finally:
        await form.close()


def create_app(store_dir: Path, token: str | None) -> Starlette:
    store = Store(store_dir)

    async def bundles(request: Request) -> Response:
        try:
            status, body = await receive(request, store, token)
        except Refusal as exc:
            status, body = exc.status, json.dumps({"error": exc.message}).encode()
        return Response(body, status_code=status, media_type="application/json")

    return Starlette(routes=[Route("/bundles", bundles, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8787", help="HOST:PORT (port 0: any)")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--token", default=os.environ.get("RECEIVER_TOKEN"))
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    print(f"starlette receiver listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(create_app(args.store, args.token), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
