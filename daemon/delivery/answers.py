"""What a receiver's answer means (docs/protocol.md, Answers): its body (read within limits
by answer_body.py) decoded as the receipt keeps it, and classified. The classification lives in
`classify()` and nowhere else; the transports (deliver.py, einvoice/transport.py) act on it.
"""

from __future__ import annotations

import codecs
import email.utils
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from daemon.configuration.config_values import mask_url
from daemon.delivery.answer_json import (
    NOT_JSON,
    Ambiguous,
    no_lone_surrogates,
    scrub_json,
    written_head,
)
from daemon.delivery.answer_json import decoded as answer_json
from daemon.delivery.scrub import Scrubber
from daemon.errors import Paused, Rejected, Retryable

RETRY_STATUSES = {408, 409, 425, 429}
PAUSE_STATUSES = {401, 403, 404}
# A proxy on the way asks for credentials: as an answer (http://) or to CONNECT (https://).
PROXY_WANTS_CREDENTIALS = ("HTTP 407 from a proxy: check the proxy's address and "
                           "credentials in the environment (HTTPS_PROXY, HTTP_PROXY, "
                           "ALL_PROXY)")
BODY_LIMIT = 2000
# A 2xx JSON body over RECEIPT_JSON_LIMIT is kept as cut text (the body itself is read
# to answer_body.ANSWER_LIMIT).
RECEIPT_JSON_LIMIT = 64 << 10
# A receipt id is something a person quotes to the operator's support. One of a
# megabyte went whole into the journal, the `bundle sent` log line (which journald
# splits past 48 KiB into pieces that are not JSON) and the status page on every
# rendering; receipt.json keeps the body it came in.
RECEIPT_ID_LIMIT = 256


@dataclass(frozen=True)
class Receipt:
    status: int
    body: Any
    receipt_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "receipt_id": self.receipt_id}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: digits (RFC 9110: nothing else, not "1_000" nor "inf"),
    or an HTTP date."""
    if not value:
        return None
    if (digits := value.strip()).isascii() and digits.isdigit():
        return float(digits)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # a zone or year past a C long overflows
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_after_of(headers: httpx.Headers) -> float | None:
    """The longest wait the answer's Retry-After headers ask for. The field is meant to
    come once; an answer with several (an application's and its proxy's) had them joined
    by httpx into one value that is neither digits nor a date, and none was honoured.
    Each is read alone; those that do not parse are ignored, as a single one is."""
    waits = [w for value in headers.get_list("Retry-After")
             if (w := parse_retry_after(value)) is not None]
    return max(waits, default=None)


def answer_text(response: httpx.Response) -> str:
    """The body as text, in the charset its Content-Type names, else UTF-8; what does not
    decode replaced. httpx's Response.text takes whatever codec the name finds: a
    `charset=base64`, `zlib` or `rot13` (no text encodings), `utf-16` on a body without
    a byte-order mark, `idna` (no "replace"), raised from the classification, and the
    daemon retried the answer for ever as an unexpected error — a 201 never archived, a
    400 never quarantined. Such a charset is ignored, as an unknown one is, and so is
    one of _NOT_CHARSETS."""
    charset = response.charset_encoding or "utf-8"
    try:
        if codecs.lookup(charset).name in _NOT_CHARSETS:
            charset = "utf-8"
        return response.content.decode(charset, "replace")
    except (LookupError, ValueError):  # not a text codec; one that fails even so
        return response.content.decode("utf-8", "replace")


# Text codecs that are no character set of a body. Punycode's decoder takes time
# quadratic in its input: an answer of 1 MiB with `charset=punycode` held a delivery
# worker, and the interpreter's lock, for close to a minute (fuzzing found it).
_NOT_CHARSETS = frozenset({"punycode", "idna", "undefined"})


def _body(response: httpx.Response, decoded: Any, scrub: Callable[[str], str]
          ) -> tuple[Any, str | None]:
    """A 2xx answer (`decoded` from its bytes) as kept in the receipt (JSON as JSON while
    it is small and unambiguous, anything else as text cut to BODY_LIMIT), and its
    receipt_id."""
    receipt_id = _receipt_id(decoded)
    if receipt_id:
        # Scrubbed before the cut, which could split a secret.
        kept, whole = _head(scrub, receipt_id, RECEIPT_ID_LIMIT + 1)
        receipt_id = _quotable(kept, len(receipt_id), cut=not whole)
    if (decoded is NOT_JSON or isinstance(decoded, Ambiguous)
            or len(response.content) > RECEIPT_JSON_LIMIT):
        return _head(scrub, answer_text(response), BODY_LIMIT)[0], receipt_id
    return (decoded if scrub is unchanged else scrub_json(decoded, scrub)), receipt_id


def _head(scrub: Callable[[str], str], text: str, limit: int) -> tuple[str, bool]:
    """scrub(text)[:limit] and True, or (a Scrubber's, where its first 64 KiB are
    nearly all our secrets) a prefix of it and False: a Scrubber scrubs only as much
    of the text as it keeps (scrub.py, head)."""
    if isinstance(scrub, Scrubber):
        return scrub.head(text, limit)
    return scrub(text)[:limit], True


def _receipt_id(decoded: Any) -> str | None:
    """A string or a number, as text; an object, a list or true is no receipt id
    anyone could quote."""
    value = decoded.get("receipt_id") if isinstance(decoded, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # a 4,300-digit integer is text of that length too
    return value if isinstance(value, str) else None


# A web page's first tags, anywhere in what is kept of a 2xx body (a portal's page may
# begin with a comment or blank lines).
_WEB_PAGE = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)


def web_page_warning(response: Mapping[str, Any]) -> str | None:
    """What to say of a 2xx answer (a Receipt's as_dict(), as the journal keeps it) whose
    body is an HTML page: a captive portal, a proxy's or a load balancer's maintenance
    page answering 200 in the receiver's place. The protocol makes any 2xx a receipt,
    so the bundle stays sent; an operator's API answers JSON, and whether it has the
    bundle is worth a look. Of a ubl-embedded bundle's receipt, each document's answer
    is looked at (the bundle's body lists them). None for any other answer."""
    body = response.get("body")
    documents = body.get("documents") if isinstance(body, dict) else None
    if isinstance(documents, list):
        pages = [d for d in documents if isinstance(d, dict) and _is_page(d.get("body"))]
        if not pages:
            return None
        shown, rest = pages[:3], len(pages) - 3
        ids = ", ".join(str(d.get("invoice_id")) for d in shown) + (
            f" and {rest} more" if rest > 0 else "")
        what = "document" if len(pages) == 1 else "documents"
        return (f"the answer (HTTP {pages[0].get('status')}) to the {what} of invoice "
                f"{ids} was a web page, {_PAGE_FIX}")
    if not _is_page(body):
        return None
    return f"the answer (HTTP {response.get('status')}) was a web page, {_PAGE_FIX}"


_PAGE_FIX = ("not the operator's JSON: a captive portal, a proxy's or a load balancer's "
             "page may have answered in the receiver's place — receipt.json shows what "
             "came back; ask the operator whether it has the bundle, and check [delivery] "
             "url")


def _is_page(body: Any) -> bool:
    return isinstance(body, str) and _WEB_PAGE.search(body) is not None


def kept_receipt_id(answer: Any) -> str | None:
    """The receipt id of a decoded answer as outboxd keeps it, also one read back from a
    receipt.json in sent/, which a person may have made or edited: text of at most
    RECEIPT_ID_LIMIT characters that the journal can store."""
    receipt_id = _receipt_id(answer)
    return receipt_id and _quotable(no_lone_surrogates(receipt_id), len(receipt_id))


def _quotable(receipt_id: str, length: int, cut: bool = False) -> str:
    """A receipt id as kept (`receipt_id`: its start, scrubbed, of the answer's id of
    `length` characters; `cut`: only a start): cut to RECEIPT_ID_LIMIT characters,
    saying so."""
    if len(receipt_id) <= RECEIPT_ID_LIMIT and not cut:
        return receipt_id
    return f"{receipt_id[:RECEIPT_ID_LIMIT]}… (cut from {length} characters)"


def unchanged(text: str) -> str:
    return text


def _error_text(response: httpx.Response, scrub: Callable[[str], str]) -> str:
    """An error answer as kept: a JSON one decoded, scrubbed and written again (however
    it escaped its strings), anything else scrubbed; cut to BODY_LIMIT — scrubbed and
    written only as far as that (a MiB of escapes took a second at every answer)."""
    if scrub is unchanged:
        return answer_text(response)[:BODY_LIMIT]
    decoded = answer_json(response.content)
    if decoded is NOT_JSON or isinstance(decoded, Ambiguous):
        return _head(scrub, answer_text(response), BODY_LIMIT)[0]
    return written_head(decoded, scrub, lambda text, limit: _head(scrub, text, limit),
                        BODY_LIMIT)


def classify(response: httpx.Response, scrub: Callable[[str], str] = unchanged, *,
             sent: Mapping[str, str] | None = None, whole: bool = True,
             ours: Callable[[str], str | None] | None = None) -> Receipt:
    """The table of answers (docs/protocol.md): a Receipt for 2xx, else the DeliveryError to act on.
    `scrub` takes our secrets out of everything kept of the answer (the body, JSON string
    by string, the receipt id, a redirect's address), a text answer before it is cut to
    BODY_LIMIT, so that a secret the cut would split is still found whole.

    A 2xx is a receipt only for the request it answers: not when the request's body
    could not all be written (`whole` False: the receiver answered and closed before it
    had the bundle), nor when its JSON names, under a key of `sent` (`bundle_id`,
    `idempotency_key`), another id in our ids' form than this request's — with `ours`
    given, only one that `ours` finds to be another of this daemon's (it names that one;
    any other is the receiver's own id for the bundle; JSON that gives a name twice in
    any of its readings). Either is retried with the same Idempotency-Key, which a
    receiver that has the bundle answers as the first time."""
    status = response.status_code
    if 200 <= status < 300:
        decoded = answer_json(response.content)
        receipt = Receipt(status, *_body(response, decoded, scrub))
        if not whole:
            raise Retryable(f"the receiver answered HTTP {status} before it had the whole "
                            "request (it stopped taking it, or closed the connection, "
                            "while it was sent): no receipt for the bundle; it is asked "
                            "again with the same Idempotency-Key", status,
                            _error_text(response, scrub))
        if (other := _names_another(_readings(receipt.body, decoded, scrub), sent or {},
                                    ours)) is not None:
            raise Retryable(f"the receiver answered HTTP {status} for another request: its "
                            f"answer names {other}; it is asked again with the same "
                            "Idempotency-Key", status, _error_text(response, scrub))
        return receipt
    text = _error_text(response, scrub)
    if status < 200:
        # No final answer: 1xx (httpcore reads past 100, 102 and 103 and refuses 101, so
        # only a transport of another make hands one on), or no HTTP status at all. Read
        # as "any other 4xx" it quarantined the bundle the receiver may have.
        raise Retryable(f"HTTP {status} from the receiver, which is no final answer: it "
                        "may have the bundle, so it is asked again with the same "
                        "Idempotency-Key", status, text)
    retry_after = retry_after_of(response.headers)
    if status in RETRY_STATUSES or status >= 500:
        raise Retryable(f"HTTP {status} from the receiver", status, text, retry_after)
    if status in PAUSE_STATUSES:
        raise Paused(f"HTTP {status}: check [delivery] url and token", status, text, retry_after)
    if status == 407:
        # A proxy on the way wants credentials: the bundle is not at fault, as with 401
        # (read as "any other 4xx" it would be quarantined; but a configuration problem
        # pauses deliveries and quarantines nothing: docs/protocol.md, Answers).
        raise Paused(PROXY_WANTS_CREDENTIALS, status, text, retry_after)
    if 300 <= status < 400:
        # httpx does not follow redirects (a POST body would be lost on many);
        # a redirecting url is our configuration problem, not the bundle's.
        where = response.headers.get("Location")
        if where is None:
            # 300, 304 (a cache in the way answering a POST): no address to go to; "redirect
            # to ?" sent the admin looking for one.
            raise Paused(f"HTTP {status} from the receiver, an answer outboxd does not "
                         "follow and that names no other address: check [delivery] url "
                         "and what answers on it (a cache or proxy in between?)",
                         status, text, retry_after)
        # A redirect often echoes our url (http:// to https://, a host that moved):
        # `scrub` takes out our secrets long enough to look for in any text; the mask,
        # any value of a query parameter named like a secret, however short, and a
        # password, as `outboxd config` shows a url.
        raise Paused(f"HTTP {status} redirect to {mask_url(scrub(where))}: set [delivery] "
                     "url to the final address", status, text, retry_after)
    refused = Rejected(f"the receiver rejected the bundle with HTTP {status}", status, text)
    refused.sent_bytes = _sent_bytes(response)
    raise refused


def _sent_bytes(response: httpx.Response) -> int | None:
    """The Content-Length of the request `response` answers; None if it gave none (or
    the response was made without its request)."""
    try:
        length = response.request.headers.get("Content-Length")
    except RuntimeError:  # httpx: no request set
        return None
    return int(length) if length is not None and length.isdigit() else None


# The form of every id outboxd sends (a bundle id, an Idempotency-Key, a document key):
# SHA-256 in hex.
_OUR_ID_FORM = re.compile(r"[0-9a-fA-F]{64}")


def _readings(kept: Any, decoded: Any, scrub: Callable[[str], str]
              ) -> dict[str, list[Any]]:
    """Each value a 2xx answer gives each top-level name, strings scrubbed: of the
    receipt's body as kept, of JSON too large to be kept as JSON (its receipt id is
    read, and so is the id it names), or of every reading of JSON that gives a name
    twice (Ambiguous); none for an answer that is not JSON. Of the last two, a string
    not in our ids' form is None: only an id is read of them (_names_another), and
    scrubbing can make no other string one — a value of a MiB was scrubbed whole."""
    if isinstance(kept, dict):
        return {name: [v] for name, v in kept.items()}
    if isinstance(decoded, Ambiguous):
        readings = decoded.readings
    elif isinstance(decoded, dict):
        readings = {name: [v] for name, v in decoded.items()}
    else:
        return {}
    return {name: [(scrub(v) if _OUR_ID_FORM.fullmatch(v) else None)
                   if isinstance(v, str) else v for v in values]
            for name, values in readings.items()}


def _names_another(readings: Mapping[str, list[Any]], sent: Mapping[str, str],
                   ours: Callable[[str], str | None] | None) -> str | None:
    """'KEY "VALUE", not "OURS"' for the first key of `sent` whose value a JSON answer
    gives (`readings`: each value of each top-level name; several where the answer gives
    a name twice, any of which counts) as another id in our ids' form (64 hex digits;
    case does not count), and, with
    `ours`, only when `ours(VALUE)` names it as another request of ours (what it says is
    added); None when it names none, only ours, or an id of the receiver's own.

    A value in any other form (the receiver's own numbering under `bundle_id`, a UUID,
    our id shortened or prefixed) says nothing about which request the answer is for;
    nor does a SHA-256 of the receiver's own (over the bytes it stored, say) that is no
    id this daemon ever sent. Read as another bundle's, a receiver that writes either
    had each of its 2xx retried, the bundle never leaving the outbox. A mixed-up answer
    (a proxy's, a receiver's) names the id of a request we made: that one `ours` knows.
    Without `ours` (a ubl-embedded document's key, the SHA-256 of the very bytes sent,
    which a receiver hashing what it stored gets too) any other id of our form counts."""
    for key, sent_id in sent.items():
        values = readings.get(key, [])
        # A name given twice: the reader that takes this value takes the answer for
        # another request's (Python's json takes the last, others the first).
        twice = f" (one of the {len(values)} values it gives {key})" if len(values) > 1 \
            else ""
        for value in values:
            if (isinstance(value, str) and _OUR_ID_FORM.fullmatch(value)
                    and value.lower() != sent_id.lower()):
                named = f'{key} "{value}"{twice}, not "{sent_id}"'
                if ours is None:
                    return named
                if (whose := ours(value.lower())) is not None:
                    return f"{named}: that is the id of {whose}"
    return None
