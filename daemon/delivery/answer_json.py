"""A receiver's answer read as JSON (docs/protocol.md, Answers), only where every reader
of it would read the same: strict JSON (no NaN, no infinity), nested at most
MAX_JSON_DEPTH deep, and, as I-JSON (RFC 7493) requires, no name twice in one object —
and what is kept of it walked by scrub_json (or written by written_head, as far as it is
kept). What an answer means is answers.py's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

NOT_JSON = object()
# What is kept of an answer is walked (scrub_json, two frames a level) and written
# again (receipt.json, the journal) by recursive code: JSON nested deeper than this is
# kept as text, as JSON nested past the parser is. json.loads itself takes ~1,000
# levels, which ran the walk out of stack; real receipts nest a few.
MAX_JSON_DEPTH = 100


@dataclass(frozen=True)
class Ambiguous:
    """JSON with a name twice in one object: RFC 8259 leaves what it means to the reader
    (Python's takes the last value, others the first or refuse it), so it is no receipt
    anyone could hold the receiver to — kept as text, no receipt id read. `readings`:
    every value the top-level object gives each of its names (one for most), so that an
    answer naming another request's id in any reading is taken for another's."""

    readings: dict[str, list[Any]]


def decoded(content: bytes) -> Any:
    """A JSON answer decoded from its bytes (a byte-order mark, UTF-16 or UTF-32 as JSON
    allows), NOT_JSON (also for NaN or infinity, which strict readers of the receipt
    could not read, and for nesting past the parser or past MAX_JSON_DEPTH), or
    Ambiguous. Lone surrogates ("\\ud800") become U+FFFD: they decode, but no UTF-8
    file or database can hold them."""
    twice = False
    last: list[list[tuple[str, Any]]] = [[]]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal twice
        obj = dict(items)
        twice = twice or len(obj) < len(items)
        last[0] = items  # the outermost object is the last one finished
        return obj

    try:
        value = json.loads(content, parse_constant=_not_finite, parse_float=_finite_float,
                           object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        return NOT_JSON
    if _too_deep(value):
        return NOT_JSON
    if twice:
        readings: dict[str, list[Any]] = {}
        for name, item in last[0] if isinstance(value, dict) else []:
            readings.setdefault(name, []).append(item)
        return Ambiguous(readings)
    # Only a \u escape gives a lone surrogate (JSON has no \U); in UTF-16 or UTF-32
    # the escape's bytes are spread out, so such answers are always walked.
    if b"\\u" in content or not json.detect_encoding(content).startswith("utf-8"):
        return scrub_json(value, no_lone_surrogates)
    return value


def _too_deep(value: Any) -> bool:
    """Whether lists and objects in `value` nest deeper than MAX_JSON_DEPTH (found
    without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return False


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_finite(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return value


def no_lone_surrogates(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def scrub_json(value: Any, scrub: Callable[[str], str]) -> Any:
    """`scrub` on every string of a decoded JSON value, keys included, and on every
    integer's digits (one that holds a secret is kept as the scrubbed text)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, int) and not isinstance(value, bool):
        # A token of digits (an operator's numeric key) echoed as a JSON number was kept
        # whole in receipt.json, the journal and a rejection's reason: only strings were
        # scrubbed. A float cannot hold one: it keeps 17 digits, written otherwise.
        digits = str(value)
        return value if (said := scrub(digits)) == digits else said
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_json(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, scrub) for v in value]
    return value




class _Full(Exception):
    """written_head has what it keeps."""


def written_head(value: Any, scrub: Callable[[str], str],
                 head: Callable[[str, int], tuple[str, bool]], limit: int) -> str:
    """json.dumps(scrub_json(value, scrub), ensure_ascii=False)[:limit], written only as
    far as that: a string is scrubbed by `head` (scrub(text)[:n] and True, or a prefix
    of it and False), only for the characters that can still be kept, and none after
    the limit at all. Where `head` gave a prefix, what is written ends with it: a
    prefix of the whole. The names of an object are scrubbed first, each by `head` to
    the limit: two that scrub alike are one (the last value), as scrub_json makes them."""
    out: list[str] = []
    size = 0

    def put(piece: str) -> None:
        nonlocal size
        out.append(piece)
        size += len(piece)
        if size >= limit:
            raise _Full

    def string(text: str) -> None:
        kept, whole = head(text, limit - size)
        said = json.dumps(kept, ensure_ascii=False)
        if not whole:  # a prefix: nothing after it is known
            out.append(said[:-1])
            raise _Full
        put(said)  # at the limit or more, it is cut there: the rest is not written

    def write(item: Any) -> None:
        if isinstance(item, str):
            string(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            digits = str(item)  # at most 4,300 (json's limit): scrubbed whole
            said = scrub(digits)
            put(digits if said == digits else json.dumps(said, ensure_ascii=False))
        elif isinstance(item, dict):
            # Each name scrubbed by `head` too, to the whole limit: a name of a MiB of
            # escapes, scrubbed whole, took a second of every answer. Two alike that far
            # are one (the last value at the first's place, as scrub_json makes them): a
            # name scrubbed to less than the limit is scrubbed whole, and one cut at the
            # limit, or only a prefix, fills what is kept once written, as the other would.
            pairs: dict[tuple[str, bool], Any] = {}
            for k, v in item.items():
                pairs[head(str(k), limit)] = v
            put("{")
            for (name, whole), v in _each(pairs.items(), put):
                if not whole:  # a prefix: nothing after it is known
                    out.append(json.dumps(name, ensure_ascii=False)[:-1])
                    raise _Full
                put(json.dumps(name, ensure_ascii=False) + ": ")
                write(v)
            put("}")
        elif isinstance(item, list):
            put("[")
            for v in _each(item, put):
                write(v)
            put("]")
        else:
            put(json.dumps(item))

    try:
        write(value)
    except _Full:
        pass
    return "".join(out)[:limit]


def _each(items: Any, put: Callable[[str], None]) -> Iterator[Any]:
    """`items`, with json.dumps's ", " put between them."""
    for n, item in enumerate(items):
        if n:
            put(", ")
        yield item
