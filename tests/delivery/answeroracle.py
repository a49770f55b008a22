"""The oracle of the answers answerfuzz.py makes (docs/development.md, Fuzzing the
delivery): what one delivery of an answer ended as, and how that breaks docs/protocol.md —
the outcome, the receipt id or Retry-After floor, a token in anything kept or said,
something kept unbounded or unstorable; and the sweep that delivers many of them through
HttpDeliverer on httpx.MockTransport.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from daemon.delivery.answers import BODY_LIMIT
from daemon.delivery.deliver import HttpDeliverer
from daemon.errors import Paused, Rejected, Retryable
from daemon.manifest import build_manifest
from delivery.answerfuzz import (
    OTHER,
    PAUSE,
    REJECT,
    RETRY,
    SENT,
    TOKEN,
    Answer,
    answers,
    json_unescaped,
    token_forms,
)


class KnownBundles:
    """The journal as HttpDeliverer.other_bundle asks it: OTHER is a sent bundle of this
    daemon's, nothing else is."""

    def posted_before(self, bundle_id: str) -> Any:
        if bundle_id != OTHER:
            return None
        return SimpleNamespace(invoice_file="INV-7.xml", state="sent", last_error=None)


def delivered(deliverer: Any, bundle: Any, manifest: dict[str, Any]) -> tuple[str, Any]:
    """What one deliver() ended as: (SENT, the Receipt) or (RETRY / PAUSE / REJECT, the
    error). Anything else raised escapes: the oracle's first rule is that nothing does."""
    try:
        return SENT, deliverer.deliver(bundle, manifest)
    except Rejected as exc:
        return REJECT, exc
    except Paused as exc:
        return PAUSE, exc
    except Retryable as exc:
        return RETRY, exc


def problems(given: Answer, outcome: str, what: Any) -> list[str]:
    """How `what` (a Receipt or a DeliveryError), which `given` ended as, breaks the
    oracle: docs/protocol.md's outcome, its receipt id or Retry-After floor, no token
    anywhere outboxd keeps or says it, and what is kept bounded and storable."""
    want = given.expected
    found: list[str] = []
    if outcome != want.outcome:
        found.append(f"{outcome} ({what}), not {want.outcome}")
        return found
    kept: list[str] = []
    if outcome == SENT:
        if what.status != given.status:
            found.append(f"receipt status {what.status}")
        if what.receipt_id not in want.receipt_ids:
            found.append(f"receipt id {what.receipt_id!r}, not one of {set(want.receipt_ids)}")
        record = what.as_dict()
        try:
            kept.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
            kept[-1].encode("utf-8")
        except (ValueError, UnicodeEncodeError) as exc:
            found.append(f"receipt not storable as strict UTF-8 JSON: {exc}")
        kept.append(json.dumps(record, ensure_ascii=True, default=str))
        if isinstance(what.body, str) and len(what.body) > BODY_LIMIT:
            found.append(f"receipt body of {len(what.body)} characters kept")
    else:
        kept += [str(what), what.body]
        if len(what.body) > BODY_LIMIT:
            found.append(f"error body of {len(what.body)} characters kept")
        if 100 <= given.status < 600 and not 100 <= given.status < 200 \
                and what.status != given.status:
            found.append(f"error status {what.status}")
        if want.says and want.says not in str(what):
            found.append(f"error does not say {want.says!r}: {what}")
        if outcome in (RETRY, PAUSE):
            got, floor = what.retry_after, want.retry_after
            if (got is None) != (floor is None) or (
                    got is not None and floor is not None and got != floor
                    and abs(got - floor) > want.retry_after_slack):
                found.append(f"Retry-After {got}, not {floor}")
    for text in kept:
        for form in token_forms():
            if form in text:
                found.append(f"the token (as {form!r}) in what is kept: "
                             f"{text[max(0, text.find(form) - 60):][:160]!r}")
        # JSON-escaped, whole or in part (what is kept is itself JSON, so read twice),
        # and HTML's entities among the escapes, read after them.
        read = html.unescape(json_unescaped(json_unescaped(text)))
        if TOKEN in read and not any(form in text for form in token_forms()):
            found.append(f"the token, escaped, in what is kept: "
                         f"{read[max(0, read.find(TOKEN) - 60):][:160]!r}")
    return found


# ------------------------------------------------------------------- the sweep

def answering(given: Iterator[Answer]) -> tuple[httpx.MockTransport, list[Answer]]:
    """A transport that takes each request whole and answers it with the next of
    `given`; and the answers given so far, the last one the latest."""
    sent: list[Answer] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()  # the whole body taken: a 2xx may be a receipt
        sent.append(next(given))
        a = sent[-1]
        # Header values as bytes: a receiver's may be any, not only ASCII. The body as a
        # stream, as from the wire: one given as content is read (and decompressed) by
        # httpx already, not by outboxd's reading of an answer.
        return httpx.Response(a.status, stream=httpx.ByteStream(a.body),
                              headers=[(k.encode(), v.encode()) for k, v in a.headers])
    return httpx.MockTransport(handler), sent


def sweep(seed: int, count: int, work: Path) -> tuple[list[str], Counter[str]]:
    """`count` answers made from `seed`, each to a delivery of one bundle (made in
    `work`) through HttpDeliverer with TOKEN set: what broke the oracle, one line an
    answer (its recipe and what was wrong), and how many ended as each outcome."""
    from delivery.test_deliver import http_cfg, make_bundle

    bundle = make_bundle(work)
    manifest = build_manifest(bundle)
    transport, sent = answering(answers(seed, count, manifest["bundle_id"]))
    deliverer = HttpDeliverer(http_cfg(token=TOKEN), transport=transport)
    deliverer.bind_journal(KnownBundles())
    failed: list[str] = []
    outcomes: Counter[str] = Counter()
    try:
        for n in range(count):
            try:
                outcome, what = delivered(deliverer, bundle, manifest)
            except Exception as exc:  # noqa: BLE001 - the oracle's first rule
                failed.append(f"#{n} {sent[-1]}: {type(exc).__name__} escaped: {exc}")
                continue
            outcomes[outcome] += 1
            failed += [f"#{n} {sent[-1]}: {p}" for p in problems(sent[-1], outcome, what)]
    finally:
        deliverer.close()
    return failed, outcomes
