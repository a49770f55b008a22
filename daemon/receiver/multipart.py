"""A streaming multipart/form-data reader (RFC 7578) for the reference receiver.

Reads exactly Content-Length bytes in bounded chunks and hands each part's
data to a sink as it arrives, so a receiver never holds a whole file in
memory. Anything malformed is a Refusal(400).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from io import BufferedIOBase
from typing import NamedTuple

from daemon.errors import Refusal

CHUNK = 1 << 16
MAX_PART_HEADERS = 16 << 10
MAX_PREAMBLE = 1024
# The slowest average a body may arrive at once its grace is used up. A socket timeout
# only bounds each wait: a sender trickling a byte at a time never trips it, and would
# hold its Idempotency-Key (every retry of the real sender answered 409) and a thread.
MIN_BODY_RATE = 16 << 10
_PARAM = re.compile(r';\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class Body:
    """Content-Length bytes of rfile, read in bounded chunks and never past the end,
    within `grace` seconds plus its length at MIN_BODY_RATE (TimeoutError after)."""

    def __init__(self, rfile: BufferedIOBase, length: int, grace: float) -> None:
        self.rfile = rfile
        self.remaining = length
        self.buf = bytearray()
        self.deadline = time.monotonic() + grace + length / MIN_BODY_RATE

    def _fill(self) -> bool:
        if self.remaining == 0:
            return False
        if time.monotonic() > self.deadline:
            raise TimeoutError("the body arrived slower than the receiver waits for")
        # read1: take what has arrived, so a slow sender is processed as it goes.
        chunk = self.rfile.read1(min(CHUNK, self.remaining))
        if not chunk:
            raise ConnectionError("client closed the connection before the body was complete")
        self.remaining -= len(chunk)
        self.buf += chunk
        return True

    def take(self, n: int, what: str) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise Refusal(400, f"body ends inside {what}")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, delim: bytes, limit: int, what: str) -> bytes:
        start = 0
        while (i := self.buf.find(delim, start)) < 0:
            if len(self.buf) > limit:
                raise Refusal(400, f"{what} longer than {limit} bytes")
            start = max(0, len(self.buf) - len(delim) + 1)
            if not self._fill():
                raise Refusal(400, f"body ends inside {what}")
        out = bytes(self.buf[:i])
        del self.buf[:i + len(delim)]
        return out

    def copy_until(self, delim: bytes, sink: Callable[[bytes], None], what: str) -> None:
        """Pass everything before delim to sink, holding back only a possible delimiter start."""
        keep = len(delim) - 1
        while (i := self.buf.find(delim)) < 0:
            if len(self.buf) > keep:
                n = len(self.buf) - keep
                sink(bytes(self.buf[:n]))
                del self.buf[:n]
            if not self._fill():
                raise Refusal(400, f"body ends inside {what} (no closing boundary)")
        sink(bytes(self.buf[:i]))
        del self.buf[:i + len(delim)]

    def drain(self) -> None:
        while self._fill():
            self.buf.clear()
        self.buf.clear()


class Part(NamedTuple):
    name: str | None
    filename: str | None
    content_type: str


def unquote(value: str) -> str:
    """A header parameter's value as sent: quotes and backslash escapes undone, nothing
    else. HTML5 form encoding (%22, %0D, %0A) is left as it is: a literal "%22" in a
    name is as likely as an encoded quote, so the caller compares both forms
    (`html5_escaped`) with the name it expects."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def html5_escaped(name: str) -> str:
    """A file name as browsers and httpx put it in a part header (HTML5): '"', CR and
    LF as %22, %0D and %0A."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def parse_part_headers(raw: bytes) -> Part:
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            raise Refusal(400, f"malformed part header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None or not disposition.lower().startswith("form-data"):
        raise Refusal(400, "a part has no 'Content-Disposition: form-data' header")
    params = {k.lower(): unquote(v) for k, v in _PARAM.findall(disposition)}
    return Part(params.get("name"), params.get("filename"),
                 headers.get("content-type", "text/plain"))


class Multipart:
    """multipart/form-data (RFC 7578) read part by part from a Body."""

    def __init__(self, body: Body, boundary: bytes) -> None:
        self.body = body
        self.delim = b"--" + boundary
        self.done = False
        preamble = body.read_until(self.delim, MAX_PREAMBLE, "preamble")
        if preamble and not preamble.endswith(b"\r\n"):
            raise Refusal(400, "body does not start with the multipart boundary")
        self._after_delimiter()

    def _after_delimiter(self) -> None:
        tail = self.body.take(2, "a boundary line")
        if tail == b"--":
            self.done = True
            self.body.drain()  # the epilogue carries nothing
        elif tail != b"\r\n":
            raise Refusal(400, "malformed multipart boundary line")

    def next_part(self) -> Part | None:
        if self.done:
            return None
        raw = self.body.read_until(b"\r\n\r\n", MAX_PART_HEADERS, "part headers")
        return parse_part_headers(raw)

    def read_data(self, sink: Callable[[bytes], None], what: str) -> None:
        self.body.copy_until(b"\r\n" + self.delim, sink, what)
        self._after_delimiter()
