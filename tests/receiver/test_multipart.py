"""The reference receiver's streaming multipart parser (daemon/receiver/multipart.py),
driven over real HTTP by raw sockets."""

from __future__ import annotations

import http.client
from pathlib import Path

from .conftest import connect, make_sent, raw_request


class TestStreaming:
    def test_body_arriving_in_tiny_pieces_is_parsed_the_same(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """Boundaries split across reads do not confuse the streaming parser."""
        sent = make_sent(tmp_path)
        head, body = raw_request(sent, url)
        with connect(url) as sock:
            sock.sendall(head + b"\r\n")
            cut = 7 * 600  # the manifest and the first parts' boundaries, 7 bytes at a time
            for i in range(0, cut, 7):
                sock.sendall(body[i:i + 7])
            sock.sendall(body[cut:])
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 201, resp.read()
        assert (store / sent.key / "manifest.json").read_bytes() == sent.manifest_bytes()
