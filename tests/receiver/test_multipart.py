"""The reference receiver's streaming multipart parser (daemon/receiver/multipart.py),
driven over real HTTP by raw sockets."""

from __future__ import annotations

import http.client
import io
from pathlib import Path

import pytest

from daemon.errors import Refusal
from daemon.receiver.multipart import Body, Multipart

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


class _OneByteAtATime:
    """An rfile whose every read gives one byte: each boundary split at every place."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read1(self, n: int) -> bytes:
        out, self.data = self.data[:1], self.data[1:]
        return out


class TestParsing:
    def test_part_data_is_passed_on_exactly_when_every_read_is_one_byte(self) -> None:
        """A part's data goes to its sink as it arrives, but never a byte that may begin
        its closing boundary: split anywhere, the data is exactly what was sent (data
        full of near-boundaries: CR LF, dashes, the boundary's start)."""
        data = b"a\r\n--b\r\n-\r\n--bounx\r\n--boun" * 5
        body = (b"--bound\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"
                + data + b"\r\n--bound--\r\n")
        mp = Multipart(Body(_OneByteAtATime(body), len(body), 10.0),  # type: ignore[arg-type]
                       b"bound")
        part = mp.next_part()
        assert part is not None and (part.name, part.filename) == ("f", "x")
        got = bytearray()
        mp.read_data(got.extend, "part 'f'")
        assert bytes(got) == data and mp.next_part() is None

    def test_a_body_with_text_before_its_first_boundary_line_is_400(self) -> None:
        """A preamble must end in CR LF before the first boundary: text run into the
        boundary means the body is not the multipart its header says."""
        body = b"junk--bound\r\n"
        with pytest.raises(Refusal) as refused:
            Multipart(Body(io.BytesIO(body), len(body), 10.0), b"bound")
        assert refused.value.status == 400 and "boundary" in refused.value.message


_DISPOSITION = b"--bound\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"


@pytest.mark.parametrize(("body", "said"), [
    (b"--bound", "body ends inside a boundary line"),
    (b"--boundXY", "malformed multipart boundary line"),
    (b"--bound\r\n" + b"X-Pad: " + b"a" * (20 << 10), "part headers longer than"),
    (b"--bound\r\nNo colon here\r\n\r\n", "malformed part header line 'No colon here'"),
    (b"--bound\r\nContent-Type: text/plain\r\n\r\n",
     "a part has no 'Content-Disposition: form-data' header"),
    (b"--bound\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\n",
     "a part has no 'Content-Disposition: form-data' header"),
    (_DISPOSITION + b"data with no closing boundary", "body ends inside part 'f' (no closing"),
    (_DISPOSITION + b"data\r\n--boundXY", "malformed multipart boundary line"),
])
def test_a_malformed_multipart_body_is_refused_with_400_saying_what_is_wrong(
        body: bytes, said: str) -> None:
    """A body that is not the multipart its header says — cut short in a boundary line or
    a part's data, a boundary followed by neither CR LF nor "--", a header line without
    a colon, headers past their limit, a part without form-data disposition — is a 400
    whose message says which, never an exception that is no answer."""
    with pytest.raises(Refusal) as refused:
        mp = Multipart(Body(io.BytesIO(body), len(body), 10.0), b"bound")
        mp.next_part()
        mp.read_data(lambda _data: None, "part 'f'")
    assert refused.value.status == 400 and said in refused.value.message
