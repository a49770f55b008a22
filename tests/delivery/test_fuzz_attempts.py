"""Generated answers (answerfuzz.py) through whole delivery attempts (finish.py): what the
daemon keeps and says of each — the journal's row (state, last error, reasons, receipt),
receipt.json in sent/, REASON.txt in quarantine/, every log event — holds no form of the
token, and the attempt's log lines name the bundle. (The classification's own sweep is
test_fuzz_answers.py.)
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import claimed  # noqa: E402

from daemon.configuration.config import DeliveryConfig  # noqa: E402
from daemon.delivery.deliver import HttpDeliverer, KnownBundles  # noqa: E402
from delivery.answerfuzz import (  # noqa: E402
    PAUSE,
    REJECT,
    RETRY,
    SENT,
    TOKEN,
    answer,
    json_unescaped,
    token_forms,
)
from delivery.answeroracle import KnownBundles as OneOtherBundle  # noqa: E402

# A seed whose CASES answers reach each outcome at least three times (asserted; four
# at the choice: the generator's answers, and so the choice, change with it).
SEED = 20261207
CASES = 24
STATES = {SENT: "sent", RETRY: "retrying", PAUSE: "retrying", REJECT: "quarantined"}


class _Deliverer(HttpDeliverer):
    """HttpDeliverer whose journal knows one other bundle of this daemon's (OTHER)."""

    def bind_journal(self, journal: KnownBundles) -> None:
        super().bind_journal(OneOtherBundle())


def kept_text(folder: Path) -> str:
    return "\n".join(f.read_text("utf-8", "replace") for f in sorted(folder.rglob("*"))
                     if f.is_file() and f.suffix in (".json", ".txt"))


def test_generated_answers_leave_no_token_and_each_line_names_the_bundle(
        tmp_path: Path) -> None:
    """CASES answers made from SEED, each to an attempt of a claimed bundle with a
    token set: the row ends in the state docs/protocol.md gives the answer (sent,
    retrying, quarantined); no form of the token is in the row, the files kept in
    sent/ or quarantine/, or any log event; and every log event of the attempt that
    says what became of the bundle names its invoice file and bundle id."""
    rng = random.Random(SEED)
    failed: list[str] = []
    outcomes: Counter[str] = Counter()
    for i in range(CASES):
        p, s, row = claimed(tmp_path / f"case-{i}")
        bid = p.j.get(row).bundle_id
        assert bid is not None
        given = answer(rng, bid)

        def handler(request: httpx.Request, given: Any = given) -> httpx.Response:
            request.read()
            # A stream, as from the wire (content would be read by httpx already).
            return httpx.Response(given.status, stream=httpx.ByteStream(given.body), headers=[
                (k.encode(), v.encode()) for k, v in given.headers])

        p.finish.d = _Deliverer(DeliveryConfig(url="http://127.0.0.1:9/in", token=TOKEN),
                                transport=httpx.MockTransport(handler))
        try:
            with capture_logs() as events:
                p.finish.attempt(row)
        finally:
            p.finish.d.close()
        done = p.j.get(row)
        said = f"case {i}: {given}"
        outcomes[given.expected.outcome] += 1
        if done.state != STATES[given.expected.outcome]:
            failed.append(f"{said}: {done.state} ({done.last_error})")
        kept = [json.dumps([done.last_error, done.reasons, done.receipt_id, done.response],
                           default=str),
                kept_text(s.sent_dir), kept_text(s.quarantine_dir),
                json.dumps(events, default=str)]
        for text in kept:
            failed += [f"{said}: the token as {form!r} in {text[:200]!r}…"
                       for form in token_forms() if form in text]
            if TOKEN in json_unescaped(json_unescaped(text)):  # \uXXXX, whole or in part
                failed.append(f"{said}: the token JSON-escaped in {text[:200]!r}…")
        if not any(e.get("bundle_id") == bid for e in events):
            failed.append(f"{said}: no log line of the attempt names the bundle: {events}")
        for event in events:
            if event.get("log_level") in ("warning", "error") or "sent" in event["event"]:
                if event.get("invoice_file") != "INV-1.xml" or event.get("bundle_id") != bid:
                    failed.append(f"{said}: a log line that names no bundle: {event}")
    assert not failed, "\n".join(failed[:10])
    assert all(outcomes[kind] >= 3 for kind in STATES), outcomes
