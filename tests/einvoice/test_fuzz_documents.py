"""Generated answers (tests/delivery/answerfuzz.py) to ubl-embedded's documents: a file of
two invoices is posted as two documents (daemon/einvoice/transport.py), each answered
by an answer of its own, and the bundle's outcome is what docs/protocol.md's table,
applied per document, gives: rejected when a document posted was refused, sent when
both were taken, else retried (paused when a document's answer pauses). Nothing
escapes, and no form of the token is in what the deliverer returns or raises.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
from delivery.answerfuzz import (
    PAUSE,
    REJECT,
    RETRY,
    SENT,
    TOKEN,
    Answer,
    answer,
    document_outcome,
    token_forms,
)

from daemon.configuration.config import DeliveryConfig
from daemon.delivery.answers import Receipt
from daemon.einvoice.transport import EmbeddedDeliverer
from daemon.errors import Paused, Rejected, Retryable

from .test_transport import NOWHERE, batch_bundle, keys_of

# A seed whose CASES bundles reach every outcome, and several documents answered 2xx
# naming another key (asserted).
SEED = 20261210
CASES = 60


def bundle_outcome(outcomes: list[str], all_posted: bool) -> str:
    """The bundle's outcome from its posted documents' (in order)."""
    if REJECT in outcomes:
        return REJECT
    if all_posted and all(o == SENT for o in outcomes):
        return SENT
    return PAUSE if PAUSE in outcomes else RETRY


def test_generated_answers_to_each_document_give_the_bundle_its_outcome(
        tmp_path: Path) -> None:
    """CASES bundles of two documents, each document answered from SEED: the bundle
    ends as the per-document table gives (rejected, sent, paused or retried), never by
    an exception of another kind, with the receipt ids each document's answer gave,
    and without the token in its receipt or error."""
    rng = random.Random(SEED)
    failed: list[str] = []
    seen: set[str] = set()
    another_key = 0  # documents answered 2xx naming another key: retried, not receipts
    for i in range(CASES):
        (tmp_path / f"case-{i}").mkdir()
        bundle = batch_bundle(tmp_path / f"case-{i}")
        given: dict[str, Answer] = {key: answer(rng, key) for key in keys_of(bundle).values()}
        posted: list[str] = []

        def handler(request: httpx.Request, given: dict[str, Answer] = given,
                    posted: list[str] = posted) -> httpx.Response:
            request.read()
            posted.append(request.headers["Idempotency-Key"])
            a = given[posted[-1]]
            # A stream, as from the wire (content would be read by httpx already).
            return httpx.Response(a.status, stream=httpx.ByteStream(a.body), headers=[
                (k.encode(), v.encode()) for k, v in a.headers])

        d = EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded",
                                             token=TOKEN), httpx.MockTransport(handler))
        try:
            got: Receipt | Exception = d.deliver(bundle, {"bundle_id": "b" * 64})
        except (Rejected, Paused, Retryable) as exc:
            got = exc
        except Exception as exc:  # noqa: BLE001 - the oracle's first rule
            failed.append(f"case {i}: {type(exc).__name__} escaped: {exc}")
            continue
        finally:
            d.close()
        outcomes = [document_outcome(given[key]) for key in posted]
        another_key += sum(200 <= given[k].status < 300 and given[k].names_another_key
                           for k in posted)
        want = bundle_outcome(outcomes, len(posted) == len(given))
        is_ = (SENT if isinstance(got, Receipt) else REJECT if isinstance(got, Rejected)
               else PAUSE if isinstance(got, Paused) else RETRY)
        seen.add(is_)
        said = f"case {i}: " + " | ".join(str(given[k]) for k in posted)
        if is_ != want:
            failed.append(f"{said}: {is_} ({got}), not {want}")
        kept = (json.dumps(got.as_dict(), default=str) if isinstance(got, Receipt)
                else f"{got} {getattr(got, 'body', '')}")
        failed += [f"{said}: the token as {form!r} in {kept[:300]!r}"
                   for form in token_forms() if form in kept]
        if isinstance(got, Receipt):
            ids = [d["receipt_id"] for d in got.body["documents"]]
            for key, kept_id in zip(posted, ids, strict=True):
                if kept_id not in given[key].expected.receipt_ids:
                    failed.append(f"{said}: receipt id {kept_id!r} kept")
    assert not failed, "\n".join(failed[:10])
    assert seen == {SENT, RETRY, PAUSE, REJECT} and another_key >= 3, (seen, another_key)
