"""An answer's body read within limits (docs/protocol.md, Answers): at most ANSWER_LIMIT
bytes, within the answer's `timeout_seconds`, and — where a receiver compresses it
though outboxd asked for `identity` — never decompressed past that limit at once.
What it means is answers.py's.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator

import httpx

# An answer's body is read up to ANSWER_LIMIT bytes, and until the answer's
# timeout_seconds are over (a receiver that drips bytes, or sends without end, cannot
# hold a worker or the memory).
ANSWER_LIMIT = 1 << 20


class AnswerCut(httpx.ReadTimeout):
    """The answer's time ran out in its body: the status line and headers came, the body
    did not come whole. An answer known only in part is no answer (docs/protocol.md,
    Answers), whether a close or the deadline cut it: the attempt is repeated with the
    same Idempotency-Key (deliver.py says so)."""


class _Undecodable(Exception):
    """The body's Content-Encoding is none outboxd reads, or its bytes are not in it."""


def _codings(response: httpx.Response) -> list[str]:
    """The answer's content codings, in the order they were applied (identity left out)."""
    return [c for value in response.headers.get_list("Content-Encoding")
            for c in (part.strip().lower() for part in value.split(","))
            if c and c != "identity"]


def _decompressed(raw: Iterator[bytes], coding: str) -> Iterator[bytes]:
    """`raw` decompressed (gzip, or deflate with or without its zlib header), each piece
    at most ANSWER_LIMIT bytes. httpx decodes each chunk read whole: 64 KiB of a gzip
    bomb came out as some 64 MB at once, a 1 MB answer held 140 MB per delivery worker
    though no more than ANSWER_LIMIT of it is kept."""
    wbits = zlib.MAX_WBITS | 16 if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    inflate = zlib.decompressobj(wbits)
    first = True
    try:
        for chunk in raw:
            if not chunk:
                continue
            if first and wbits == zlib.MAX_WBITS:
                try:
                    out = inflate.decompress(chunk, ANSWER_LIMIT)
                except zlib.error:  # deflate without its zlib header, as httpx reads it
                    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    out = inflate.decompress(chunk, ANSWER_LIMIT)
            else:
                out = inflate.decompress(chunk, ANSWER_LIMIT)
            first = False
            yield out
            while inflate.unconsumed_tail:
                yield inflate.decompress(inflate.unconsumed_tail, ANSWER_LIMIT)
        yield inflate.flush(ANSWER_LIMIT)
        if not inflate.eof and not first:  # an empty body holds no stream to cut
            # The body came whole (its Content-Length or last chunk), its compressed
            # stream did not: a gzip writer never closed, most likely, which a retry
            # meets again. The status decides, as for a body that does not decode; what
            # was unpacked is kept, saying it is cut.
            yield (f" (the answer's {coding} stream ended before its end: what it held "
                   "is cut here)").encode()
    except zlib.error as exc:
        raise _Undecodable(f"not {coding}: {exc}") from None


def _body(response: httpx.Response) -> Iterator[bytes]:
    """The answer's body as sent, or decompressed where one gzip or deflate coding says
    it is; any other coding (several, br, zstd: none asked for) is not read."""
    if response.is_stream_consumed:
        # Made in memory (a transport of tests'): read, and decoded by httpx, already.
        content = response.content
        return iter([content[i:i + ANSWER_LIMIT] for i in range(0, len(content), ANSWER_LIMIT)])
    codings = _codings(response)
    if not codings:
        return response.iter_raw()
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _decompressed(response.iter_raw(), codings[0])
    raise _Undecodable(f"Content-Encoding {', '.join(codings)}, which outboxd does not "
                       "read (it asks for identity)")


def read_answer(response: httpx.Response, seconds: float) -> None:
    """Read and close the answer's body: at most ANSWER_LIMIT bytes, and within the
    answer's `seconds` (httpx's timeouts are per read: a receiver sending a byte a second
    would hold the worker for ever). A body still coming when they are over raises
    AnswerCut, as one broken off raises httpx's error: the answer is not known whole. A
    body over the limit is not read further (a receipt is a few hundred bytes), and one
    that does not decode (a false Content-Encoding) is replaced: a line says so, and the
    status line decides what the answer means, as for any other answer."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in _body(response):
            chunks.append(chunk[:ANSWER_LIMIT - size])
            size += len(chunks[-1])
            if size >= ANSWER_LIMIT:
                chunks.append(f" (the answer was cut at {ANSWER_LIMIT} bytes)".encode())
                break
            # The transport's clock (answer_deadline.py) normally ends a slow body first,
            # raising httpx.ReadTimeout; this one, from the status line, bounds a
            # transport without it.
            if time.monotonic() > deadline:
                raise AnswerCut(_cut(seconds))
    except AnswerCut:
        raise
    except httpx.ReadTimeout as exc:
        # The answer's time ran out in its body (answer_deadline.py starts the clock at
        # the first read after the request is written, and each read waits only for what
        # is left of it).
        raise AnswerCut(_cut(seconds)) from exc
    except _Undecodable as exc:
        chunks = [f"(the answer's body could not be decoded: {exc})".encode()]
    finally:
        response.close()
    # What Response.read() keeps; set here because the body is read by these rules.
    response._content = b"".join(chunks)


def _cut(seconds: float) -> str:
    return (f"its body was still coming when the answer's {seconds:g} s ([delivery] "
            "timeout_seconds) were over")
