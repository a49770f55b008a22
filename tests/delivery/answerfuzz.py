"""A reproducible generator of receiver answers, each with the outcome docs/protocol.md
(section 5) gives it: the fuzzing of the delivery's classification (answeroracle.py
checks what became of each; test_fuzz_answers.py runs a bounded sweep with a fixed seed,
`python -m bench.fuzzanswers` a larger one).

The expected outcome is worked out from how the answer was made (the recipe), not by
parsing it again: the oracle does not share the code it checks. Every answer is made
for a deliverer configured with TOKEN, and many echo it in some form: none may reach
what outboxd keeps or says.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import html
import json
import random
import re
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# A token with the characters that JSON, HTML and urls escape (a valid one: visible
# ASCII, no spaces).
TOKEN = 'tok-S3cr3t/&<"q">+x'
# Another bundle of this daemon's (the journal knows it: ours() names it), and a SHA-256
# that is no bundle's (a receiver's own id for the bundle).
OTHER = "cd" * 32
FOREIGN = "e3" * 32
OTHER_SAID = "INV-7.xml (sent), another bundle of this outboxd"

SENT, RETRY, PAUSE, REJECT = "sent", "retry", "pause", "reject"
# A Retry-After date is read to the second, and the sweep takes its time.
DATE_SLACK = 3.0


def token_forms() -> tuple[str, ...]:
    """The token as what outboxd keeps may hold it: as it is, JSON-escaped (receipt.json
    and the journal are JSON), HTML-escaped, percent-encoded."""
    return (TOKEN, json.dumps(TOKEN)[1:-1], html.escape(TOKEN),
            urllib.parse.quote(TOKEN, safe=""))


def json_escaped(text: str, how: str, rng: random.Random) -> str:
    """`text` with its characters as JSON's \\uXXXX escapes: every one, in lower, upper
    or mixed hex, or some of them (`partly`, those the seed picks); or (`families`)
    each as it is, as JSON's \\u or as an HTML entity in decimal or hex, mixed."""
    def u(c: str, upper: bool) -> str:
        code = f"{ord(c):04x}"
        return "\\u" + (code.upper() if upper else code)
    if how == "families":
        return "".join(rng.choice((c, u(c, rng.random() < 0.5), f"&#{ord(c)};",
                                   f"&#x{ord(c):X};")) for c in text)
    if how == "partly":
        return "".join(u(c, rng.random() < 0.5) if rng.random() < 0.5 else c for c in text)
    return "".join(u(c, how == "upper" or (how == "mixed" and rng.random() < 0.5))
                   for c in text)


def json_unescaped(text: str) -> str:
    """`text` with JSON's escapes read (\\uXXXX and the two-character ones), as a person
    reading a kept body would: the oracle's own reading, not outboxd's scrubber."""
    short = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)",
                  lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 5
                  else short.get(m[1], m[1]), text)


@dataclass(frozen=True)
class Expected:
    outcome: str  # SENT, RETRY, PAUSE or REJECT
    # For SENT: the receipt ids that may be kept (a duplicate key may give either).
    receipt_ids: frozenset[str | None] = frozenset({None})
    # For RETRY and PAUSE: the Retry-After floor the answer asks for (None: none).
    retry_after: float | None = None
    retry_after_slack: float = 0.0
    # For a RETRY of a 2xx: the text the error must say (whose answer it is).
    says: str = ""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expected: Expected
    recipe: str  # how it was made, for a failure's message
    # Its JSON names, as idempotency_key, another id of our form than the request's (of
    # this daemon's or not): what a ubl-embedded document's answer is read by.
    names_another_key: bool = False

    def __str__(self) -> str:
        return f"HTTP {self.status} [{self.recipe}] headers={self.headers!r} " \
               f"body={self.body[:160]!r}{'…' if len(self.body) > 160 else ''}"


# ----------------------------------------------------------------------------- statuses

def status_outcome(status: int) -> str:
    """docs/protocol.md, section 5, for the status alone."""
    if 200 <= status < 300:
        return SENT
    if status in (401, 403, 404, 407) or 300 <= status < 400:
        return PAUSE
    if status in (408, 409, 425, 429) or status >= 500:  # 600–999 count as 5xx
        return RETRY
    if 400 <= status < 500:
        return REJECT
    # 1xx (no final answer) and what is no HTTP status (0–99): retried with the same key.
    return RETRY


def _status(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.35:
        return rng.choice((200, 201, 202, 204, 205)) if rng.random() < 0.5 \
            else rng.randrange(200, 300)
    if kind < 0.9:
        return rng.randrange(100, 600)
    return rng.choice((0, 1, 99, 600, 700, 999))


# ------------------------------------------------------------------------- Retry-After

@dataclass
class _Waits:
    values: list[float] = field(default_factory=list)
    slack: float = 0.0

    def floor(self) -> float | None:
        return max(self.values, default=None)


def _retry_after(rng: random.Random, waits: _Waits) -> tuple[str, str]:
    """One Retry-After value and what it asks for (added to `waits`), by RFC 9110 as
    docs/protocol.md reads it: digits are seconds, else an HTTP date, else nothing."""
    now = datetime.now(UTC)
    kind = rng.randrange(12)
    if kind == 0:
        n = rng.randrange(0, 7200)
        waits.values.append(float(n))
        return f"{n}", "seconds"
    if kind == 1:
        digits = "9" * rng.randrange(6, 400)  # over 24 h; past a float's range, too
        waits.values.append(float(digits))
        return digits, "huge seconds"
    if kind == 2:
        ahead = rng.randrange(10, 5000)
        waits.values.append(float(ahead))
        waits.slack = DATE_SLACK
        return email.utils.format_datetime(now + timedelta(seconds=ahead), usegmt=True), \
            "date ahead"
    if kind == 3:
        waits.values.append(0.0)
        return email.utils.format_datetime(now - timedelta(days=rng.randrange(1, 900)),
                                           usegmt=True), "date past"
    if kind == 4:
        waits.values.append((datetime(9999, 12, 31, tzinfo=UTC) - now).total_seconds())
        waits.slack = DATE_SLACK
        return "Fri, 31 Dec 9999 00:00:00 GMT", "date far"
    ignored = ("-5", "-0", "1.5", "0.5", "1e3", "soon", "", "1_000", "٣", "12 s", "0x10",
               "Mon, 99 Foo 2026 99:99:99 GMT", "Fri, 31 Dec 99999999999 00:00:00 GMT",
               "inf", "NaN", "+5", "5,6")
    return rng.choice(ignored), "ignored"


# ---------------------------------------------------------------------------- bodies

@dataclass
class _Body:
    data: bytes
    receipt_ids: frozenset[str | None]
    content_type: str | None = "application/json"
    names_other: bool = False
    names_another_key: bool = False
    recipe: str = ""


def _cut_id(rid: str) -> str:
    if len(rid) <= 256:
        return rid
    return f"{rid[:256]}… (cut from {len(rid)} characters)"


def _scrubbed(rid: str) -> str:
    return rid.replace(TOKEN, "***")


def _receipt_value(rng: random.Random) -> tuple[Any, str | None, str]:
    """A receipt_id value and the id kept for it."""
    kind = rng.randrange(11)
    if kind == 0:
        n = rng.randrange(-10**6, 10**12)
        return n, str(n), "int id"
    if kind == 10:
        # Past Python's 4,300 digits an integer is not read: no JSON, no id.
        digits = rng.choice((300, 4000, 4300, 4301, 9000))
        return f"{_DIGITS}{digits}", _cut_id("7" * digits) if digits <= 4300 else None, \
            f"{digits}-digit id"
    if kind == 1:
        return 2.5, "2.5", "float id"
    if kind == 2:
        odd = rng.choice((None, True, False, [1], {"a": 1}))
        return odd, None, "odd id"
    if kind == 3:
        long = "R" * rng.randrange(257, 5000)
        return long, _cut_id(long), "long id"
    if kind == 4:
        said = f"R-{TOKEN}-1"
        return said, _scrubbed(said), "token in id"
    if kind == 5:
        return "", "", "empty id"
    if kind == 6:
        return "R-Åäö-€-\u2028", "R-Åäö-€-\u2028", "unicode id"
    rid = f"R-{rng.randrange(10**6)}"
    return rid, rid, "id"


# Where a receipt_id of so many digits goes in the JSON text (json.dumps writes no such
# number itself).
_DIGITS = "@@digits@@"


def _receipt(rng: random.Random, ours: str) -> _Body:
    """A receipt object as docs/protocol.md's, with fields missing, odd, extra or foreign."""
    value, kept, how = _receipt_value(rng)
    obj: dict[str, Any] = {}
    recipe = [how]
    if rng.random() < 0.85:
        obj["receipt_id"] = value
    else:
        kept, recipe = None, ["no id"]
    names_other = False
    which = rng.randrange(9)
    key = rng.choice(("bundle_id", "idempotency_key"))
    if which == 0:
        obj[key] = ours
    elif which == 1:
        obj[key] = ours.upper()
    elif which == 2:
        obj[key], names_other = OTHER, True
        recipe.append("names another of ours")
    elif which == 3:
        obj[key], names_other = OTHER.upper(), True
        recipe.append("names another of ours, upper case")
    elif which == 4:
        obj[key] = FOREIGN  # a receiver's own SHA-256: still this bundle's receipt
    elif which == 5:
        obj[key] = rng.choice((ours[:12], f"sha256:{OTHER}", f" {OTHER}", 7, None,
                               [OTHER], {"id": OTHER}, OTHER[:63]))
    if rng.random() < 0.3:
        obj["extra"] = {"nested": [1, 2, {"x": "y"}], "echo": TOKEN}
        recipe.append("extra with token")
    if rng.random() < 0.2:
        obj[TOKEN] = "token as a key"
    text = json.dumps(obj, ensure_ascii=rng.random() < 0.5)
    if "receipt_id" in obj and isinstance(value, str) and value.startswith(_DIGITS):
        digits = int(value[len(_DIGITS):])
        text = text.replace(f'"{value}"', "7" * digits)
        # Not JSON that can be read: kept as text, which names no other request.
        names_other = names_other and digits <= 4300
        readable = digits <= 4300
    else:
        readable = True
    # A ubl-embedded document's answer is read by its key alone: any other id of our form.
    another_key = readable and key == "idempotency_key" and which in (2, 3, 4)
    if rng.random() < 0.2:
        text = text.replace("/", "\\/")  # PHP's escaping
    data = text.encode()
    enc = rng.randrange(8)
    if enc == 0:
        data = text.encode("utf-16")  # with its byte-order mark
        recipe.append("utf-16")
    elif enc == 1:
        data = b"\xef\xbb\xbf" + data
        recipe.append("utf-8 bom")
    return _Body(data, frozenset({kept}), names_other=names_other,
                 names_another_key=another_key, recipe=", ".join(recipe))


def _not_a_receipt(rng: random.Random, ours: str) -> _Body:
    """A body whose JSON no receipt id can be read from: kept as text (or as JSON that
    names none); never another bundle's answer."""
    kind = rng.randrange(16)
    rid = json.dumps(f"R-{rng.randrange(1000)}")
    if kind == 0:
        return _Body(b"", frozenset({None}), None, recipe="empty")
    if kind == 1:
        return _Body(f'{{"receipt_id": {rid}, "n": NaN}}'.encode(), frozenset({None}),
                     recipe="NaN")
    if kind == 2:
        return _Body(f'{{"receipt_id": {rid}, "n": -Infinity}}'.encode(),
                     frozenset({None}), recipe="Infinity")
    if kind == 3:
        return _Body(f'{{"receipt_id": {rid}, "n": 1e999}}'.encode(), frozenset({None}),
                     recipe="1e999")
    if kind == 4:
        depth = rng.choice((150, 3000, 200_000))
        return _Body(f'{{"receipt_id": {rid}, "x": {"[" * depth}{"]" * depth}}}'.encode(),
                     frozenset({None}), recipe=f"nested {depth}")
    if kind == 5:
        return _Body(f'{{"receipt_id": {rid[:-1]}\xff"}}'.encode("latin-1"),
                     frozenset({None}), recipe="not utf-8")
    if kind == 6:
        return _Body(rng.randbytes(rng.randrange(1, 3000)), frozenset({None}),
                     rng.choice((None, "application/octet-stream", "application/json")),
                     recipe="random bytes")
    if kind == 7:
        page = (f"<!DOCTYPE html><html><body>Maintenance. Request had Authorization: "
                f"Bearer {html.escape(TOKEN)}</body></html>")
        return _Body(page.encode(), frozenset({None}), "text/html", recipe="html page")
    if kind == 8:
        how = rng.choice(("as it is", "lower", "upper", "mixed", "partly", "families"))
        echoed = TOKEN if how == "as it is" else json_escaped(TOKEN, how, rng)
        return _Body(f"OK, token {echoed} seen, key {OTHER}".encode(), frozenset({None}),
                     "text/plain", recipe=f"text echoing token {how}")
    if kind == 9:
        return _Body(json.dumps([{"receipt_id": "R", "bundle_id": OTHER}]).encode(),
                     frozenset({None}), recipe="a list")
    if kind == 10:
        return _Body(json.dumps(f"R-{TOKEN}").encode(), frozenset({None}),
                     recipe="a string")
    if kind == 11:
        return _Body(b"x" * rng.randrange((1 << 20) + 1, (1 << 20) + 5000),
                     frozenset({None}), "text/plain", recipe="over the read limit")
    if kind == 12:
        big = json.dumps({"receipt_id": f"R-{TOKEN}", "pad": "y" * (1 << 20)}).encode()
        return _Body(big, frozenset({None}), recipe="json over the read limit")
    if kind == 13:
        return _twice(rng, ours, rid)
    if kind == 14:
        # JSON over 64 KiB, under the read limit: kept as text, its receipt id kept.
        pad = "z" * rng.randrange(65 << 10, 200 << 10)
        if rng.random() < 0.3:  # its ids are read as a small one's are
            big = json.dumps({"receipt_id": "R-1", "bundle_id": OTHER, "pad": pad}).encode()
            return _Body(big, frozenset({"R-1"}), names_other=True,
                         recipe="json over 64 KiB, names another of ours")
        big = json.dumps({"receipt_id": f"R-{TOKEN}", "pad": pad}).encode()
        return _Body(big, frozenset({"R-***"}), recipe="json over 64 KiB")
    surrogate = b'{"receipt_id": "R-\\ud800"}'
    return _Body(surrogate, frozenset({"R-\ufffd"}), recipe="lone surrogate")


def _twice(rng: random.Random, ours: str, rid: str) -> _Body:
    """JSON that gives a name twice in one object: no receipt anyone could hold the
    receiver to (each reader reads its own), kept as text with no receipt id; one
    whose readings name another bundle of ours, in any of them, is another's answer."""
    which = rng.randrange(4)
    if which == 0:
        dup = f'{{"receipt_id": "A", "receipt_id": "B", "receipt_id": {rid}}}'
        return _Body(dup.encode(), frozenset({None}), recipe="duplicate receipt_id")
    if which == 1:
        dup = f'{{"receipt_id": {rid}, "x": {{"a": 1, "a": 2}}}}'
        return _Body(dup.encode(), frozenset({None}), recipe="duplicate key, nested")
    key = rng.choice(("bundle_id", "idempotency_key"))
    other = OTHER if which == 2 else FOREIGN
    ids = [ours, other] if rng.random() < 0.5 else [other, ours]
    dup = f'{{"receipt_id": {rid}, "{key}": "{ids[0]}", "{key}": "{ids[1]}"}}'
    return _Body(dup.encode(), frozenset({None}), names_other=other == OTHER,
                 names_another_key=key == "idempotency_key",
                 recipe=f"{key} twice, {'another of ours' if other == OTHER else 'foreign'}"
                 f"{' first' if ids[0] == other else ' last'}")


def _compressed(rng: random.Random, body: _Body) -> _Body:
    """`body` in gzip or deflate (with its zlib header or without), whole or its stream
    cut (a compressor never closed): cut, the body came whole all the same, so its
    status decides, and what it unpacked to is kept as text saying it was cut — no
    receipt id, naming no other request. Its recipe ends in the coding."""
    coding = rng.choice(("gzip", "deflate", "raw deflate"))
    if coding == "gzip":
        packed = gzip.compress(body.data)
    else:
        pack = zlib.compressobj(wbits=zlib.MAX_WBITS if coding == "deflate"
                                else -zlib.MAX_WBITS)
        packed = pack.compress(body.data) + pack.flush()
    if rng.random() < 0.5 or not body.data:
        return dataclasses.replace(body, data=packed,
                                   recipe=f"whole {coding.split()[-1]}")
    # Anywhere, or in the last bytes: a gzip or zlib trailer cut leaves what it unpacks
    # to whole (readable JSON), and still no stream that ended.
    cut = packed[:rng.randrange(1, len(packed)) if rng.random() < 0.5
                 else max(1, len(packed) - rng.randrange(1, 5))]
    return dataclasses.replace(body, data=cut, receipt_ids=frozenset({None}),
                               names_other=False, names_another_key=False,
                               recipe=f"cut {coding.split()[-1]}")


def _content_type(rng: random.Random, body: _Body) -> str | None:
    """Right, wrong, missing or with parameters, among them charsets that no text codec
    reads (a body's kept text must come whatever the header says)."""
    kind = rng.randrange(10)
    if kind < 4:
        return body.content_type
    if kind == 4:
        return None
    return rng.choice((
        "application/json; charset=utf-8", "application/json; charset=UTF-16",
        "text/plain; charset=utf-16", "application/json; charset=base64",
        "text/plain; charset=zlib", "text/html; charset=rot13", "text/plain; charset=idna",
        "text/plain; charset=no-such-codec", "application/problem+json",
        "application/json;;charset=", "text/plain; charset=utf-32",
        "text/plain; charset=undefined", "application/xml; charset=punycode"))


# ---------------------------------------------------------------------------- answers

def answer(rng: random.Random, ours: str) -> Answer:
    """One answer to a POST of the bundle `ours`, with its expected outcome."""
    status = _status(rng)
    body = _receipt(rng, ours) if rng.random() < 0.55 else _not_a_receipt(rng, ours)
    headers: list[tuple[str, str]] = []
    recipe = [body.recipe]
    if (ctype := _content_type(rng, body)) is not None:
        headers.append(("Content-Type", ctype))
        recipe.append(ctype)
    waits = _Waits()
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        value, how = _retry_after(rng, waits)
        headers.append(("Retry-After", value))
        recipe.append(f"Retry-After {how}")
    if rng.random() < 0.2:  # a Content-Length that lies: the body given is what counts
        headers.append(("Content-Length", str(rng.randrange(0, 10**6))))
    if 300 <= status < 400 and rng.random() < 0.7:
        headers.append(("Location", rng.choice((
            "https://operator.example/x",
            f"https://operator.example/x?access_token={urllib.parse.quote(TOKEN)}",
            f"https://u:{urllib.parse.quote(TOKEN, safe='')}@operator.example/",
            f"/x/{TOKEN}", ""))))
    if rng.random() < 0.2:
        headers.append(("X-Echo-Authorization", f"Bearer {TOKEN}"))
    if rng.random() < 0.15:  # compressed, though outboxd asks for identity
        body = _compressed(rng, body)
        headers.append(("Content-Encoding", body.recipe.rsplit(" ", 1)[-1]))
        recipe.append(body.recipe)
    outcome = status_outcome(status)
    expected = Expected(outcome)
    if outcome == SENT:
        if body.names_other:
            # Its receipt ids all the same: a ubl-embedded document's answer reads none
            # but its key (document_outcome).
            expected = Expected(RETRY, receipt_ids=body.receipt_ids,
                                says=f"that is the id of {OTHER_SAID}")
        else:
            expected = Expected(SENT, receipt_ids=body.receipt_ids)
    elif status >= 300:  # a Retry-After counts with the answers the table retries or pauses
        expected = Expected(outcome, retry_after=waits.floor(), retry_after_slack=waits.slack)
    return Answer(status, tuple(headers), body.data, expected, "; ".join(recipe),
                  body.names_another_key)


def document_outcome(given: Answer) -> str:
    """The outcome of `given` as the answer to a ubl-embedded document's POST (its
    key the id it was made for): a 2xx is that document's receipt unless its
    idempotency_key names another id of our form; a bundle_id is not read."""
    if 200 <= given.status < 300:
        return RETRY if given.names_another_key else SENT
    return status_outcome(given.status)


def answers(seed: int, count: int, ours: str) -> Iterator[Answer]:
    """`count` answers to POSTs of the bundle `ours`, the same for the same seed; each
    made when it is taken (a Retry-After date counts from then)."""
    rng = random.Random(seed)
    for _ in range(count):
        yield answer(rng, ours)
