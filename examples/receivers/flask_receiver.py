"""A minimal outboxd receiver on Flask/Werkzeug (docs/protocol.md).

    pip install flask
    python flask_receiver.py --listen 127.0.0.1:8787 --store ./received [--token T]

It reads the multipart body as a stream with Werkzeug's MultipartDecoder (so
part order is seen and no file is held in memory), checks every part against
the manifest (bundle_check.py), stores the bundle atomically and answers as
the protocol says: 201 with a receipt, 200 with the same body for a repeated
Idempotency-Key, 409 while that key is in progress, 422 for a key reused with
other content, 400 for anything malformed, 401 for a bad token, 413 for a
manifest over MAX_MANIFEST (bundle_check.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    Preamble,
)
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_check import (  # noqa: E402
    MAX_MANIFEST,
    PartSink,
    Refusal,
    Store,
    check_part,
    check_token,
    parse_manifest,
)

CHUNK = 64 * 1024


def _events(boundary: bytes):
    """Multipart events of the request body, read in chunks."""
    decoder = MultipartDecoder(boundary, max_form_memory_size=None)
    while True:
        chunk = request.stream.read(CHUNK)
        decoder.receive_data(chunk or None)
        event = decoder.next_event()
        while not isinstance(event, NeedData):
            yield event
            if isinstance(event, Epilogue):
                return
            event = decoder.next_event()
        if not chunk:
            raise Refusal(400, "the multipart body ended early")


def receive(store: Store, token: str | None) -> tuple[int, bytes]:
    check_token(request.headers.get("Authorization"), token)
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise Refusal(400, "Content-Type must be multipart/form-data with a boundary")
    key = request.headers.get("Idempotency-Key", "")
    staging = store.begin(key) if key else None
    try:
        events = _events(options["boundary"].encode("latin-1"))
        head = next((e for e in events if not isinstance(e, Preamble)), None)
        if not isinstance(head, Field) or head.name != "manifest":
            raise Refusal(400, "the first part must be the field 'manifest'")
        if head.headers.get("Content-Type", "").split(";")[0] != "application/json":
            raise Refusal(400, "part 'manifest' must be application/json")
        raw = bytearray()
        for event in events:
            if not isinstance(event, Data):
                raise Refusal(400, "part 'manifest' is not followed by the file parts")
            raw += event.data
            if len(raw) > MAX_MANIFEST:
                raise Refusal(413, f"part 'manifest' is over {MAX_MANIFEST} bytes")
            if not event.more_data:
                break
        manifest, expected = parse_manifest(bytes(raw), key, store)
        assert staging is not None  # parse_manifest refused an empty key
        for position, entry in enumerate(expected):
            event = next(events, None)
            if not isinstance(event, File):
                raise Refusal(400, f"expected file part {entry['part']!r}")
            check_part(entry, event.name, event.filename, event.headers.get("Content-Type"),
                       position)
            sink = PartSink(entry, staging / entry["part"])
            for data in events:
                if not isinstance(data, Data):
                    raise Refusal(400, f"part {entry['part']!r} is malformed")
                sink.write(data.data)
                if not data.more_data:
                    break
            sink.finish()
        if not isinstance(next(events, None), Epilogue):
            raise Refusal(400, "unexpected part after the last attachment")
        stored = store.stored(key)
        if stored is not None:
            return 200, stored
        return 201, store.commit(key, staging, bytes(raw))
    finally:
        if staging is not None:
            store.end(key, staging)


def create_app(store_dir: Path, token: str | None) -> Flask:
    app = Flask(__name__)
    store = Store(store_dir)

    @app.post("/bundles")
    def bundles() -> Response:
        try:
            status, body = receive(store, token)
        except Refusal as exc:
            import json
            status, body = exc.status, json.dumps({"error": exc.message}).encode()
        return Response(body, status=status, mimetype="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8787", help="HOST:PORT (port 0: any)")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--token", default=os.environ.get("RECEIVER_TOKEN"))
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = make_server(host, int(port), create_app(args.store, args.token), threaded=True)
    print(f"flask receiver listening on http://{host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
