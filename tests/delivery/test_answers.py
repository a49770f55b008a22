"""What a receiver's answer means (daemon/delivery/answers.py, docs/protocol.md): the status table
(sent, paused, retried, rejected), Retry-After, the receipt id, and answers a receiver
should not give (odd charsets, odd JSON, statuses HTTP has no class for) each ending as
the status line decides. How the body is read (endless, huge, compressed):
test_answer_body.py."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.delivery import answers
from daemon.delivery.answer_body import ANSWER_LIMIT
from daemon.delivery.answers import (
    BODY_LIMIT,
    RECEIPT_ID_LIMIT,
    Receipt,
    classify,
    parse_retry_after,
    web_page_warning,
)
from daemon.delivery.scrub import Scrubber
from daemon.errors import Paused, Rejected, Retryable
from delivery.test_deliver import _http, _raw_server, http_cfg, response, send


class TestAnswersThatMisbehave:
    """Answers a receiver should not give: each ends as an outcome the status line
    decides, never as an exception that leaves the bundle stuck (network audit)."""

    @pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "utf-16", "utf-32",
                                         "idna", "undefined", "punycode"])
    def test_a_charset_that_no_text_codec_reads_leaves_the_status_to_decide(
            self, charset: str) -> None:
        """An answer whose Content-Type names a codec that is no text encoding (base64,
        zlib, rot13), one that fails on these bytes (utf-16 or utf-32 without a
        byte-order mark) or one that takes no "replace" (idna, undefined, punycode): the
        status decides, the body kept as text (UTF-8 where the charset is no text codec
        that reads it, as for an unknown one): a 201 is a receipt, a 400 quarantines, a
        503 is retried. The codec's exception escaped the classification (fuzzing found
        it), and the daemon retried each as an unexpected error for ever: the receiver's
        201 never archived."""
        headers = {"content-type": f"text/plain; charset={charset}"}
        body = "Fehler: Rechnung fehlt\xff".encode("latin-1")
        # UTF-16 and UTF-32 read any bytes (the whole ones, each unit a character).
        kept = ("Fehler: Rechnung fehlt\ufffd" if not charset.startswith("utf")
                else body.decode(charset, "replace"))
        scrub = {"unchanged": answers.unchanged, "scrubbing": lambda t: t.replace("xx", "")}
        for how in scrub.values():
            receipt = classify(response(201, body, headers), how)
            assert receipt.status == 201 and receipt.body == kept
            with pytest.raises(Rejected) as rejected:
                classify(response(400, body, headers), how)
            assert rejected.value.body == kept
            with pytest.raises(Retryable) as retried:
                classify(response(503, body, headers), how)
            assert retried.value.body == kept

    @pytest.mark.parametrize("status", [201, 400, 503])
    def test_a_megabyte_answer_in_punycode_is_not_decoded_as_such(self, status: int) -> None:
        """A body of 1 MiB whose Content-Type says `charset=punycode` (a codec Python
        has for host names, whose decoder takes quadratic time): kept as UTF-8 text
        within a fraction of a second. Decoded as punycode it held the delivery worker,
        and with it every thread of the daemon (the interpreter's lock), for close to a
        minute, at each attempt."""
        body = b"x" * ANSWER_LIMIT
        started = time.monotonic()
        try:
            kept = classify(response(status, body, {"content-type":
                                                    "text/plain; charset=punycode"})).body
        except (Rejected, Retryable) as exc:
            kept = exc.body
        assert time.monotonic() - started < 2
        assert kept == "x" * BODY_LIMIT

    @pytest.mark.parametrize("status", [201, 400])
    def test_json_nested_beyond_the_parser_is_kept_as_text(self, tmp_path: Path,
                                                           status: int) -> None:
        """JSON nested 100,000 deep (Python's parser gives up with RecursionError): a 201
        is a receipt, a 400 a rejection, each with the text cut to BODY_LIMIT."""
        body = b"[" * 100_000
        answer = _http(f"{status} X", "Content-Type: application/json\r\n", body)
        with _raw_server(lambda c: c.sendall(answer)) as port:
            cfg = http_cfg(url=f"http://127.0.0.1:{port}/b")
            if status == 201:
                receipt, _, _, _ = send(tmp_path, cfg, real=True)
                assert receipt.body == "[" * BODY_LIMIT
            else:
                with pytest.raises(Rejected) as info:
                    send(tmp_path, cfg, real=True)
                assert info.value.body == "[" * BODY_LIMIT

    @pytest.mark.parametrize("status", [201, 400])
    def test_json_the_parser_takes_but_too_deep_to_walk_is_kept_as_text(
            self, tmp_path: Path, status: int) -> None:
        """JSON nested 700 deep, which json.loads still takes, with a \\u escape in it (so
        it is walked string by string for lone surrogates): the walk, two frames a level,
        ran out of stack and its RecursionError escaped classify. A 201 is a receipt, a
        400 a rejection, each with the text cut to BODY_LIMIT, as for deeper JSON."""
        body = b"[" * 700 + b'"\\u0041"' + b"]" * 700
        answer = _http(f"{status} X", "Content-Type: application/json\r\n", body)
        with _raw_server(lambda c: c.sendall(answer)) as port:
            cfg = http_cfg(url=f"http://127.0.0.1:{port}/b")
            if status == 201:
                receipt, _, _, _ = send(tmp_path, cfg, real=True)
                assert receipt.status == 201 and receipt.body == body.decode()[:BODY_LIMIT]
            else:
                with pytest.raises(Rejected) as info:
                    send(tmp_path, cfg, real=True)
                assert info.value.body == body.decode()[:BODY_LIMIT]

    def test_a_lone_surrogate_in_a_json_answer_becomes_a_replacement_character(
            self, tmp_path: Path) -> None:
        """{"receipt_id": "\\ud800"} decodes to text no UTF-8 file or database holds:
        it is kept as U+FFFD, with a token set (whose scrub writes the JSON again)."""
        answer = _http("201 Created", "Content-Type: application/json\r\n",
                       b'{"receipt_id": "R-\\ud800", "note": "x\\udfff"}')
        with _raw_server(lambda c: c.sendall(answer)) as port:
            receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b",
                                                       token="s3cret-token"), real=True)
        assert receipt.receipt_id == "R-\ufffd" and receipt.body["note"] == "x\ufffd"
        json.dumps(receipt.as_dict(), ensure_ascii=False).encode("utf-8")  # storable

    def test_a_lone_surrogate_in_a_utf16_answer_is_replaced_too(self) -> None:
        """The same escape in an answer sent as UTF-16 (its bytes spread out by NULs):
        still U+FFFD, not text the journal cannot store (the reread found the first
        check looked for the escape's UTF-8 bytes only)."""
        raw = '{"receipt_id": "R-\\ud800"}'.encode("utf-16")
        got = classify(response(201, raw))
        assert got.receipt_id == "R-\ufffd"
        json.dumps(got.as_dict(), ensure_ascii=False).encode("utf-8")  # storable

    def test_a_receipt_id_that_is_no_string_or_number_is_none(self) -> None:
        """An object, a list or true as receipt_id: no receipt id anyone could quote.
        NaN or 1e999 anywhere is not JSON (Python's parser takes them): the body is kept
        as text, so that receipt.json stays strict JSON."""
        for odd in ({"a": 1}, [1], True):
            assert classify(response(201, json_body={"receipt_id": odd})).receipt_id is None
        assert classify(response(201, json_body={"receipt_id": 7})).receipt_id == "7"
        for body in (b'{"receipt_id": "R-1", "n": NaN}', b'{"receipt_id": "R-1", "n": 1e999}'):
            kept = classify(response(201, body))
            assert kept.receipt_id is None and kept.body == body.decode()

    def test_a_receipt_id_of_a_megabyte_is_kept_cut_to_a_quotable_length(self) -> None:
        """A receipt id of 900,000 characters (in a body under ANSWER_LIMIT) or of 60,000
        (in a body kept as JSON) is kept as its first RECEIPT_ID_LIMIT characters and
        says from how long it was cut ("cut: 900000 characters" read as if that many
        were taken away): it went whole into the journal, the `bundle sent` log line
        (longer than journald keeps as one line) and the status page."""
        for length in (900_000, 60_000):
            got = classify(response(201, json_body={"receipt_id": "R" * length}))
            assert got.receipt_id == "R" * RECEIPT_ID_LIMIT + f"… (cut from {length} characters)"
        short = classify(response(201, json_body={"receipt_id": "R" * RECEIPT_ID_LIMIT}))
        assert short.receipt_id == "R" * RECEIPT_ID_LIMIT
        assert classify(response(201, json_body={"receipt_id": 10 ** 300})).receipt_id == (
            "1" + "0" * (RECEIPT_ID_LIMIT - 1) + "… (cut from 301 characters)")

    def test_a_token_across_the_cut_of_a_long_receipt_id_is_still_scrubbed(self) -> None:
        """The receipt id is scrubbed whole before it is cut: a token that the cut at
        RECEIPT_ID_LIMIT would split leaves no piece of itself."""
        token = "s3cr3t-Token-0123456789"
        rid = "x" * (RECEIPT_ID_LIMIT - 6) + token + "y" * 400
        got = classify(response(201, json_body={"receipt_id": rid}),
                       lambda text: text.replace(token, "***"))
        assert got.receipt_id is not None and "s3cr3t" not in got.receipt_id
        assert got.receipt_id.startswith("x" * (RECEIPT_ID_LIMIT - 6) + "***y")

    def test_a_token_of_digits_echoed_as_a_json_number_is_scrubbed(self) -> None:
        """A token of digits (an operator's numeric key, which [delivery] token allows)
        echoed as a JSON number, alone or inside a longer one: neither the receipt's body
        nor a rejection's or a retry's body keeps its digits; other numbers stay numbers.
        Only strings were scrubbed, and receipt.json and the journal kept the token."""
        token = "9081726354"
        scrub = Scrubber(token, None).scrub
        body = json.dumps({"receipt_id": "R-1", "echo": int(token), "in": int(f"7{token}7"),
                           "n": 3, "list": [int(token)], "ok": True}).encode()
        receipt = classify(response(201, body), scrub)
        assert receipt.body == {"receipt_id": "R-1", "echo": "***", "in": "7***7", "n": 3,
                                "list": ["***"], "ok": True}
        for status, error in ((400, Rejected), (503, Retryable)):
            with pytest.raises(error) as info:
                classify(response(status, body), scrub)
            assert token not in info.value.body and '"n": 3' in info.value.body

    def test_a_receipt_with_a_byte_order_mark_or_in_utf16_keeps_its_id(self) -> None:
        """JSON may come with a UTF-8 byte-order mark, or in UTF-16: read from the bytes
        as JSON allows, not through a charset guess (the first version of the bounded
        read lost such receipt ids)."""
        data = json.dumps({"receipt_id": "R-Å"})
        for raw in (b"\xef\xbb\xbf" + data.encode(), data.encode("utf-16"),
                    data.encode("utf-8")):
            got = classify(response(201, raw, {"content-type":
                                               "application/json; charset=iso-8859-1"}))
            assert got.receipt_id == "R-Å", raw[:4]


class TestClassify:
    @pytest.mark.parametrize("status", [200, 201])
    def test_2xx_json_receipt_id(self, status: int) -> None:
        """2xx is sent; a JSON body's receipt_id is kept."""
        r = classify(response(status, json_body={"receipt_id": "R-77", "x": 1}))
        assert r == Receipt(status, {"receipt_id": "R-77", "x": 1}, "R-77")

    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirect_pauses_instead_of_quarantining(self, status: int) -> None:
        """A redirect is a wrong [delivery] url (ours), not a bad bundle: Paused, naming
        where it points, never Rejected."""
        with pytest.raises(Paused) as info:
            classify(response(status, headers={"Location": "https://operator.example/x"}))
        assert "https://operator.example/x" in str(info.value)

    def test_a_redirect_echoing_keys_of_the_url_is_named_with_their_values_masked(
            self) -> None:
        """A redirect to the https:// form of our url echoes its query: the values of
        parameters named like a secret are masked by their names, however short (a key
        of 3 characters is too short to be looked for in any text), and a password; the
        address is still said. It was shown whole in the log, `outboxd status` and
        STATUS=."""
        where = "https://bob:pw-9@operator.example/x?sig=s1g&tenant=7&api_key=K"
        with pytest.raises(Paused) as info:
            classify(response(301, headers={"Location": where}))
        assert ("redirect to https://bob:********@operator.example/x?sig=********&tenant=7"
                "&api_key=********: set [delivery] url" in str(info.value))

    def test_2xx_numeric_receipt_id_as_text(self) -> None:
        """A numeric receipt_id is kept as text."""
        assert classify(response(201, json_body={"receipt_id": 42})).receipt_id == "42"

    def test_2xx_non_json_has_no_receipt_id(self) -> None:
        """A 2xx with a non-JSON body is still sent, without receipt_id; the body is kept."""
        r = classify(response(200, b"OK thanks", {"content-type": "text/plain"}))
        assert r.status == 200 and r.receipt_id is None and r.body == "OK thanks"

    def test_2xx_json_without_receipt_id(self) -> None:
        """A JSON 2xx body that is not an object, or lacks receipt_id, gives none."""
        assert classify(response(201, json_body=["a"])).receipt_id is None
        assert classify(response(204)).receipt_id is None

    @pytest.mark.parametrize("status", [401, 403, 404])
    def test_config_problems_pause(self, status: int) -> None:
        """401/403/404 pause deliveries (configuration problem), never reject."""
        with pytest.raises(Paused) as info:
            classify(response(status, b"nope"))
        assert info.value.status == status and not isinstance(info.value, Rejected)

    def test_a_proxy_that_wants_credentials_pauses_naming_the_proxy(self) -> None:
        """407 comes from a proxy in between, not the receiver: the bundle is not at
        fault, so deliveries pause (never quarantine) and the message names what to fix."""
        with pytest.raises(Paused) as info:
            classify(response(407, b"Proxy Authentication Required"))
        assert info.value.status == 407 and "HTTPS_PROXY" in str(info.value)

    @pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
    def test_retryable(self, status: int) -> None:
        """408/409/425/429/5xx are retried."""
        with pytest.raises(Retryable) as info:
            classify(response(status, b"busy"))
        assert info.value.status == status and info.value.retry_after is None

    def test_retry_after_seconds(self) -> None:
        """Retry-After in seconds is passed on."""
        with pytest.raises(Retryable) as info:
            classify(response(429, headers={"Retry-After": "120"}))
        assert info.value.retry_after == 120.0

    def test_retry_after_http_date(self) -> None:
        """Retry-After as an HTTP date becomes the seconds until then."""
        when = datetime.now(UTC) + timedelta(seconds=90)
        with pytest.raises(Retryable) as info:
            classify(response(503, headers={"Retry-After": email.utils.format_datetime(
                when, usegmt=True)}))
        assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 91

    def test_retry_after_garbage_and_past(self) -> None:
        """An unparsable Retry-After is ignored; one in the past is 0. Only digits are
        seconds (RFC 9110): "1_000", "inf", "nan", "-5" or other scripts' digits, which
        Python's float() takes, are ignored too."""
        assert parse_retry_after("soon-ish") is None
        past = email.utils.format_datetime(datetime.now(UTC) - timedelta(minutes=5),
                                           usegmt=True)  # past on any host clock
        assert parse_retry_after(past) == 0.0
        for odd in ("-5", "1_000", "inf", "nan", "1e3", "\u0661\u0662"):
            assert parse_retry_after(odd) is None, odd
        assert parse_retry_after(" 120 ") == 120.0

    @pytest.mark.parametrize("date", ["Sun, 06 Nov 1994 08:49:37 +9999999999999",
                                      "Sun, 06 Nov 19946666666666666666666 08:49:37 GMT"])
    def test_a_retry_after_date_too_large_to_read_is_ignored_like_garbage(
            self, date: str) -> None:
        """An HTTP date whose zone or year overflows the date parser (OverflowError, not
        ValueError) is ignored as any unreadable Retry-After: a 503 is retried on the
        usual back-off, and a 400 still quarantines the bundle. Before, the error escaped
        classify(): the attempt ended as an "unexpected error" with a traceback and a
        rejected bundle was retried for good instead of quarantined."""
        assert parse_retry_after(date) is None
        with pytest.raises(Retryable) as retried:
            classify(response(503, headers={"Retry-After": date}))
        assert retried.value.retry_after is None
        with pytest.raises(Rejected) as rejected:
            classify(response(400, b"bad manifest", headers={"Retry-After": date}))
        assert rejected.value.status == 400 and "bad manifest" in rejected.value.body

    @pytest.mark.parametrize("status", [100, 101, 103, 150, 199, 0, 99])
    def test_an_answer_without_a_final_status_is_retried_never_quarantined(
            self, status: int) -> None:
        """A 1xx handed on as the answer, or a status below 100: no final answer, so the
        receiver may have the bundle; retried with the same key (Retry-After, which only
        the answers the table retries or pauses carry, ignored), never rejected. The
        classification read them as "any other 4xx" and quarantined the bundle."""
        with pytest.raises(Retryable) as info:
            classify(response(status, b"wait", {"Retry-After": "60"}))
        assert not isinstance(info.value, Rejected)
        assert info.value.status == status and info.value.retry_after is None
        assert "no final answer" in str(info.value)

    @pytest.mark.parametrize("status", [600, 700, 999])
    def test_a_status_past_599_is_retried_as_a_5xx(self, status: int) -> None:
        """600–999 (an HTTP parser takes any three digits): a server error of no class
        HTTP defines, retried as a 5xx is, its Retry-After honoured."""
        with pytest.raises(Retryable) as info:
            classify(response(status, b"odd", {"Retry-After": "60"}))
        assert info.value.status == status and info.value.retry_after == 60.0

    @pytest.mark.parametrize("status", [400, 413, 415, 422])
    def test_other_4xx_rejected_with_truncated_body(self, status: int) -> None:
        """Other 4xx reject the bundle with the status and the first 2,000 characters."""
        body = "é" + "x" * 5000
        with pytest.raises(Rejected) as info:
            classify(response(status, body.encode("utf-8"),
                              {"content-type": "text/plain; charset=utf-8"}))
        assert info.value.status == status
        assert info.value.body == body[:BODY_LIMIT] and len(info.value.body) == 2000


    def test_a_413_keeps_the_size_of_the_request_it_refused(self) -> None:
        """A 413 says the request was too large, and the clerk is told its size: the
        Rejected carries the Content-Length of the request the receiver answered (None
        where the request gave none)."""
        sent = httpx.Request("POST", "http://127.0.0.1:9/in", content=b"x" * 12345)
        with pytest.raises(Rejected) as info:
            classify(httpx.Response(413, content=b"too large", request=sent))
        assert info.value.status == 413 and info.value.sent_bytes == 12345
        with pytest.raises(Rejected) as unknown:
            classify(httpx.Response(413, content=b"too large"))
        assert unknown.value.sent_bytes is None


class TestAnswersNotForThisRequest:
    """A 2xx is a receipt only for the request it answers (classify's `sent`, `whole`)."""

    SENT = {"bundle_id": "ab" * 32, "idempotency_key": "ab" * 32}

    @pytest.mark.parametrize("named", [{"bundle_id": "cd" * 32},
                                       {"idempotency_key": "CD" * 32},
                                       {"bundle_id": "ab" * 32, "idempotency_key": "0" * 64}])
    def test_without_ours_a_2xx_naming_another_id_of_our_form_is_retried_not_sent(
            self, named: dict[str, str]) -> None:
        """Without `ours` (a ubl-embedded document's key, the SHA-256 of the very bytes
        sent): a 201 whose JSON names another id of our form than the request carried
        answers some other request (a receiver or proxy that mixed answers up): retried
        with the same key, the answer kept in the error, instead of a receipt that
        filed the bundle in sent/ on another one's word."""
        answer = response(201, json_body={"receipt_id": "R-9", **named})
        with pytest.raises(Retryable) as info:
            classify(answer, sent=self.SENT)
        [(key, value)] = [(k, v) for k, v in named.items() if v != "ab" * 32]
        assert f'names {key} "{value}", not "{"ab" * 32}"' in str(info.value)
        assert info.value.status == 201 and "R-9" in info.value.body

    @pytest.mark.parametrize("named", [{}, {"bundle_id": "AB" * 32}, {"bundle_id": None},
                                       {"idempotency_key": "ab" * 32}])
    def test_a_2xx_naming_its_own_ids_or_none_is_a_receipt(
            self, named: dict[str, Any]) -> None:
        """Ours in either case of hex, null, or no id at all: the receipt as before."""
        answer = response(201, json_body={"receipt_id": "R-9", **named})
        assert classify(answer, sent=self.SENT).receipt_id == "R-9"

    @pytest.mark.parametrize("named", [
        {"bundle_id": "ab" * 6},                      # our id's 12-character prefix
        {"bundle_id": "B-2026-000123"},               # the receiver's own numbering
        {"bundle_id": "3f2a9c" + "0" * 26},           # its own uuid4().hex
        {"bundle_id": "sha256:" + "ab" * 32},         # ours, written its way
        {"idempotency_key": "tenant-7:" + "ab" * 32},  # ours, in its namespace
        {"bundle_id": " " + "ab" * 32 + "\n"}])
    def test_a_2xx_naming_an_id_in_another_form_than_ours_is_a_receipt(
            self, named: dict[str, str]) -> None:
        """Only a value in the form of our ids (64 hex digits) can name another bundle: a
        receiver that names its own id for the bundle under `bundle_id`, or ours shortened
        or written its way, answers this request (docs/protocol.md, section 5: a 2xx is
        sent). Read as "another bundle's", such a receiver's every answer was retried, the
        same 200 coming back each time, and the bundle never left the outbox."""
        answer = response(201, json_body={"receipt_id": "R-9", **named})
        assert classify(answer, sent=self.SENT).receipt_id == "R-9"

    @pytest.mark.parametrize("named", [{"bundle_id": "cd" * 32},
                                       {"idempotency_key": "CD" * 32}])
    def test_a_2xx_naming_another_bundle_of_this_daemon_is_retried_naming_both_and_it(
            self, named: dict[str, str]) -> None:
        """An id of our form that `ours` knows as another bundle of this daemon's (sent,
        or on its way): the answer was meant for that bundle's request (mixed up by the
        receiver or a proxy), so it is no receipt for this one. The error names the id
        the receiver gave, ours, and whose the receiver's is, for the admin to tell a
        receiver that mixes answers up."""
        asked: list[str] = []

        def ours(bid: str) -> str | None:
            asked.append(bid)
            return "INV-7.xml (sent), another bundle of this outboxd" if bid == "cd" * 32 \
                else None

        with pytest.raises(Retryable) as info:
            classify(response(201, json_body={"receipt_id": "R-9", **named}), sent=self.SENT,
                     ours=ours)
        [(key, value)] = named.items()
        assert (f'names {key} "{value}", not "{"ab" * 32}": that is the id of INV-7.xml '
                "(sent), another bundle of this outboxd" in str(info.value))
        assert "same Idempotency-Key" in str(info.value)
        assert asked == ["cd" * 32]  # our ids are lower case in the journal

    @pytest.mark.parametrize("named", [
        {"bundle_id": "e3" * 32},                       # its SHA-256 of what it stored
        {"bundle_id": "E3" * 32, "idempotency_key": "ab" * 32},
        {"idempotency_key": "e3" * 32}])
    def test_a_2xx_naming_an_id_of_our_form_that_is_none_of_ours_is_this_bundles_receipt(
            self, named: dict[str, str]) -> None:
        """A receiver that names a SHA-256 of its own as `bundle_id` (over the bytes it
        stored, say): 64 hex digits, but no bundle this daemon has sent or has on its way
        (`ours` finds none). It answers this request: a receipt. Taken for another
        bundle's answer, every bundle was asked again for ever under the same key, the
        same 201 coming back each time, and none was archived."""
        answer = response(201, json_body={"receipt_id": "R-9", **named})
        receipt = classify(answer, sent=self.SENT, ours=lambda bid: None)
        assert receipt.receipt_id == "R-9" and receipt.body["receipt_id"] == "R-9"

    def test_ours_is_asked_only_when_an_answer_names_an_id_that_is_not_the_requests(
            self) -> None:
        """The journal is asked only about an id of our form that is not the request's:
        a receiver that echoes ours (or names its own numbering) costs no look-up."""
        def ours(bid: str) -> str | None:
            raise AssertionError(f"asked about {bid}")

        for named in ({"bundle_id": "AB" * 32}, {"bundle_id": "B-2026-000123"}, {}):
            answer = response(201, json_body={"receipt_id": "R-9", **named})
            assert classify(answer, sent=self.SENT, ours=ours).receipt_id == "R-9"

    @pytest.mark.parametrize("order", ["ours last", "ours first"])
    @pytest.mark.parametrize("key", ["bundle_id", "idempotency_key"])
    def test_a_2xx_giving_our_id_and_another_bundles_under_one_name_is_retried(
            self, key: str, order: str) -> None:
        """JSON that gives `bundle_id` (or `idempotency_key`) twice, once ours and once
        another bundle's of this daemon: which one it means depends on the reader
        (Python's json took the last, so "ours last" was filed as sent; a reader that
        takes the first sees another request's answer). A receipt whose meaning
        depends on the parser is no proof: any reading that names another request's
        id makes it one, retried with the same key; the error says it gave the name
        twice."""
        ids = ["cd" * 32, "ab" * 32] if order == "ours last" else ["ab" * 32, "cd" * 32]
        body = f'{{"receipt_id": "R-9", "{key}": "{ids[0]}", "{key}": "{ids[1]}"}}'
        with pytest.raises(Retryable) as info:
            classify(response(201, body.encode()), sent=self.SENT,
                     ours=lambda bid: "INV-7.xml (sent), another bundle of this outboxd"
                     if bid == "cd" * 32 else None)
        assert (f'names {key} "{"cd" * 32}" (one of the 2 values it gives {key}), not '
                f'"{"ab" * 32}": that is the id of INV-7.xml' in str(info.value))
        assert info.value.body == body  # as it came, not as one reader rewrites it

    @pytest.mark.parametrize("body", [
        '{"receipt_id": "A", "receipt_id": "B"}',
        '{"receipt_id": "R-9", "bundle_id": "abab", "bundle_id": "' + "e3" * 32 + '"}',
        '{"receipt_id": "R-9", "detail": {"state": "stored", "state": "failed"}}'])
    def test_a_2xx_whose_json_gives_a_name_twice_is_kept_as_text_without_receipt_id(
            self, body: str) -> None:
        """JSON with a name twice in one object (RFC 8259 leaves its meaning to the
        reader; I-JSON forbids it), naming no other request of ours in any reading: the
        2xx is a receipt, as one whose body is not JSON is — kept as the text it came
        as, with no receipt id read from it (the last `receipt_id` was kept as if it
        were the one)."""
        receipt = classify(response(201, body.encode()), sent=self.SENT,
                           ours=lambda bid: None)
        assert (receipt.status, receipt.body, receipt.receipt_id) == (201, body, None)

    def test_a_refusal_whose_json_gives_a_name_twice_is_kept_as_it_came(self) -> None:
        """A 400 whose JSON gives `error` twice: its reason is kept as the receiver wrote
        it (both), not rewritten with the one value a reader kept."""
        body = '{"error": "bad invoice", "error": "bad attachment"}'
        with pytest.raises(Rejected) as info:
            classify(response(400, body.encode()), Scrubber("tok-12345678", None).scrub)
        assert info.value.body == body

    def test_a_2xx_over_64_kib_naming_another_bundle_of_this_daemon_is_retried(
            self) -> None:
        """A 201 whose JSON is over 64 KiB (kept as text in the receipt, its receipt id
        still read) and names another bundle of this daemon's: that request's answer,
        retried, as a small one is. Kept as text, it was not looked at for the id it
        names, and filed this bundle as sent on another's word."""
        body = json.dumps({"receipt_id": "R-9", "bundle_id": "cd" * 32,
                           "pad": "z" * (70 << 10)}).encode()
        with pytest.raises(Retryable, match=f'names bundle_id "{"cd" * 32}", not'):
            classify(response(201, body), sent=self.SENT,
                     ours=lambda bid: "INV-7.xml (sent), another bundle of this outboxd"
                     if bid == "cd" * 32 else None)

    def test_a_2xx_to_a_request_not_all_written_is_retried_not_sent(self) -> None:
        """The receiver answered 201 and the body could not all be written (it closed the
        connection, or stopped reading): it never had the bundle whole, so the 201 is
        no receipt; retried with the same key. A refusal still decides (below)."""
        with pytest.raises(Retryable) as info:
            classify(response(201, json_body={"receipt_id": "R-1"}), whole=False)
        assert "before it had the whole request" in str(info.value)
        with pytest.raises(Rejected):
            classify(response(413, b"too large"), whole=False)

    @pytest.mark.parametrize("status", [300, 304])
    def test_a_3xx_naming_no_address_pauses_without_a_redirect_to_nowhere(
            self, status: int) -> None:
        """304 to a POST (a cache in between) or a 300 without Location: paused as a
        configuration problem, said as an answer that names no address — it read
        "redirect to ?: set [delivery] url to the final address"."""
        with pytest.raises(Paused) as info:
            classify(response(status))
        assert "redirect to" not in str(info.value)
        assert f"HTTP {status} from the receiver" in str(info.value)
        assert "names no other address" in str(info.value)

    @pytest.mark.parametrize(("values", "wait"), [(["120", "5"], 120.0), (["5", "120"], 120.0),
                                                  (["soon", "30"], 30.0), (["-1", "x"], None)])
    def test_several_retry_after_headers_wait_the_longest_readable_one(
            self, values: list[str], wait: float | None) -> None:
        """Two Retry-After headers (an application's and its proxy's) were joined into
        "120, 5", neither digits nor a date, and neither was honoured: now each is read
        alone and the longest readable wait is the floor."""
        answer = httpx.Response(503, headers=[("Retry-After", v) for v in values],
                                request=httpx.Request("POST", "http://127.0.0.1:9/x"))
        with pytest.raises(Retryable) as info:
            classify(answer)
        assert info.value.retry_after == wait


@pytest.mark.parametrize(("body", "page"), [
    ("<!DOCTYPE html><html><body>Maintenance</body></html>", True),
    ("\n  <!-- portal -->\n<HTML lang=en><title>Sign in to Wi-Fi</title>", True),
    ({"receipt_id": "R-1"}, False),
    ("OK", False),
    ("", False),
    ('<?xml version="1.0"?><receipt id="R-1"/>', False),
    ("the word <htmlish> is no page", False),
])
def test_a_2xx_answer_that_is_a_web_page_is_told_apart(body: object, page: bool) -> None:
    """A 2xx whose kept body is an HTML page (a portal's, a maintenance page, whatever
    its Content-Type said) gets a warning naming the status and what to check; a JSON
    receipt, a plain word, an empty or an XML answer gets none."""
    said = web_page_warning(Receipt(200, body, None).as_dict())
    assert (said is not None) == page, said
    if page:
        assert said is not None and said.startswith("the answer (HTTP 200) was a web page")


def test_a_retry_after_date_with_the_unknown_zone_is_read_as_gmt() -> None:
    """An HTTP date written with "-0000" (RFC 5322's "zone unknown", which the date
    parser gives without a zone) is read as GMT, as HTTP dates are: the seconds until
    then, never an error that ends the attempt as an unexpected one."""
    when = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S -0000")
    with pytest.raises(Retryable) as info:
        classify(response(503, headers={"Retry-After": when}))
    assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 91
