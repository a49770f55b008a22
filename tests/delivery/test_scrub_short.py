"""A secret shorter than 8 characters (a url's or the proxy's password, a token) is taken
out of what a receiver answers only where it stands apart (daemon/delivery/spelled.py,
SHORT_SECRET): taken out wherever its characters stood, a password "1" made every
"HTTP 401" "HTTP 4***" and every receipt id holding a 1 another id. Where it stands
alone — quoted, in a url's userinfo, after "Bearer", as its Basic base64 pair, spelled
with escapes — it is still taken out."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from daemon.delivery.answers import classify
from daemon.delivery.scrub import Scrubber
from daemon.errors import Paused, Rejected

PASSWORD_ONE = "https://erp:1@receiver.example/in"


@pytest.mark.parametrize("text", [
    "HTTP 401 Unauthorized", "receipt R-100100 stored", "rcpt-1f0e21a91", "at 127.0.0.1:8001",
    "retry in 1.5 s", "invoice R-1-7", "2026-12-01T10:01:11Z", "id_1", "v1", "x1y",
    "HTTP 401&amp; more 41", "{\"code\": 401, \"n\": 41}", "4%31 and 4&#49;"])
def test_a_short_password_inside_a_longer_word_or_number_stays(text: str) -> None:
    """A password "1" in a url: every "1" joined to letters, digits, `_`, or by a `.` or
    `-` to one (an address, a decimal, a date, an id) is no quote of it, and stays —
    also in a text with escapes, which the escape search reads."""
    assert Scrubber(None, PASSWORD_ONE).scrub(text) == text


@pytest.mark.parametrize(("text", "kept"), [
    ("password 1 rejected", "password *** rejected"),
    ("you sent '1'", "you sent '***'"),
    ('{"password": "1"}', '{"password": "***"}'),
    ("1", "***"),
    ("the password was 1.", "the password was ***."),
    ("POST https://erp:1@host/in failed", "POST https://erp:***@host/in failed"),
    ("pw=1&user=erp", "pw=***&user=erp"),
])
def test_a_short_password_standing_apart_is_taken_out(text: str, kept: str) -> None:
    """Where no letter or digit stands beside it (a word of its own, quoted, in the
    url's userinfo, a query's value, at a sentence's end) the short password is taken
    out."""
    assert Scrubber(None, PASSWORD_ONE).scrub(text) == kept


@pytest.mark.parametrize(("text", "kept"), [
    ("you sent &#49; (refused)", "you sent *** (refused)"),
    ("you sent &#x31;, refused", "you sent ***, refused"),
    ("you sent \\u0031 refused", "you sent *** refused"),
    ("GET /in?pw=%31&x=2", "GET /in?pw=***&x=2"),
    ("code 4&#49; and 4%31", "code 4&#49; and 4%31"),
    # After an escape that ends in a letter or digit: apart, whatever it spells.
    ("msg=wrong%20password%201", "msg=wrong%20password%20***"),
    ("return=https%3A%2F%2Ferp%3A1%40host", "return=https%3A%2F%2Ferp%3A***%40host"),
    ('{"error": "password:\\u00201"}', '{"error": "password:\\u0020***"}'),
    # After an entity's `;`, too: "&#52;&#49;" (41) loses its 1, as a quote of the
    # password among entities would.
    ("code &#52;&#49;", "code &#52;***"),
    # After an entity without its `;`, which the escape search reads as the entity:
    # `&quot1&quot` is "1" quoted (judged by raw characters, the "t" joined it).
    ("you sent &quot1&quot", "you sent &quot***&quot"),
    ("pw=&amp1 ", "pw=&amp*** "),
    ("a &lt1&gt", "a &lt***&gt"),
    ("you sent &quot&#49;&quot", "you sent &quot***&quot"),
])
def test_a_short_password_spelled_with_escapes_is_taken_out_where_it_stands_apart(
        text: str, kept: str) -> None:
    """Its spellings with escapes (HTML entities, JSON's \\u, %-escapes) are judged
    by the characters around the spelling, as the raw password is by its own; and
    what follows an escape stands apart from it: "%201" is " 1" (a url-encoded
    message quoting the password; our url quoted url-encoded), which a judge of raw
    characters took for the "1" of "201"."""
    assert Scrubber(None, PASSWORD_ONE).scrub(text) == kept


def test_the_basic_pair_of_a_short_password_is_taken_out_anywhere() -> None:
    """The user:password pair in base64 (`erp:1` is `ZXJwOjE=`, 8 characters) is taken
    out wherever it stands, as any secret of 8 characters or more; a shorter pair (a
    user `u`: `dTox`) where it stands apart, as in a Basic header."""
    pair = base64.b64encode(b"erp:1").decode()
    assert Scrubber(None, PASSWORD_ONE).scrub(f"Authorization: Basic {pair}x") == \
        "Authorization: Basic ***x"
    short = base64.b64encode(b"u:1").decode()
    scrubber = Scrubber(None, "https://u:1@receiver.example/in")
    assert scrubber.scrub(f"Authorization: Basic {short}") == "Authorization: Basic ***"
    assert scrubber.scrub(f"id x{short}y") == f"id x{short}y"


def test_a_long_secret_is_still_taken_out_inside_a_word() -> None:
    """A secret of 8 characters or more is taken out wherever it stands, glued to
    letters too: only short ones are judged by what stands beside them."""
    scrubber = Scrubber("SuperSecretTok123", "https://erp:Passw0rdX@receiver.example/in")
    assert scrubber.scrub("xSuperSecretTok123y zPassw0rdX9") == "x***y z***9"


def test_a_short_token_is_treated_as_a_short_password() -> None:
    """The token rule allows a token of any length: a short one is taken out after
    "Bearer" and quoted alone, and left in the words it is part of."""
    scrubber = Scrubber("abc", None)
    assert scrubber.scrub("Bearer abc refused; abcdef is no token, abc-1 neither") == \
        "Bearer *** refused; abcdef is no token, abc-1 neither"


def test_a_short_proxy_password_is_taken_out_where_it_stands_apart() -> None:
    """The environment's proxy's password (HTTP_PROXY=http://px:7@…): the same rule."""
    scrubber = Scrubber(None, None, httpx.Proxy("http://px:7@127.0.0.1:3128"))
    assert scrubber.scrub("HTTP 407 for px:7 (status 407, retry at 17:07)") == \
        "HTTP 407 for px:*** (status 407, retry at 17:07)"


def test_a_401_answer_keeps_its_status_and_body_with_a_password_of_1() -> None:
    """A 401 from a receiver at a url with the password "1": the error says HTTP 401
    and keeps the body as sent — it said "HTTP 4***: check [delivery] url" and a body
    with every 1 taken out."""
    body = json.dumps({"status": 401, "error": "token expired at 2026-12-01 10:01"})
    with pytest.raises(Paused) as paused:
        classify(httpx.Response(401, content=body.encode()), Scrubber(None, PASSWORD_ONE))
    assert str(paused.value).startswith("HTTP 401: check [delivery] url")
    assert json.loads(paused.value.body) == json.loads(body)


def test_a_receipt_id_holding_the_digit_is_kept_as_the_receiver_gave_it() -> None:
    """A 201 whose receipt id holds the short password's digit: the receipt id (which
    the journal, receipt.json and the status page keep, and which identifies the
    bundle at the operator) and the body are kept as they came; a body quoting the
    password alone still loses it."""
    answer = {"receipt_id": "rcpt-1f01a-100100", "note": "you sent erp:1"}
    receipt = classify(httpx.Response(201, json=answer), Scrubber(None, PASSWORD_ONE))
    assert receipt.receipt_id == "rcpt-1f01a-100100"
    assert receipt.body == {"receipt_id": "rcpt-1f01a-100100", "note": "you sent erp:***"}


def test_a_rejection_text_keeps_the_numbers_a_short_password_holds() -> None:
    """A 400 in text quoting sizes and ids: kept as sent but where it quotes the
    password alone."""
    text = "invoice 1001 line 11: amount 1.10 refused; password 1 is weak"
    with pytest.raises(Rejected) as rejected:
        classify(httpx.Response(400, content=text.encode()), Scrubber(None, PASSWORD_ONE))
    assert rejected.value.body == text.replace("password 1 ", "password *** ")


@pytest.mark.parametrize(("text", "kept"), [
    ("you sent &#47g", "you sent &#47***"),
    ("you sent &#x2Fg.", "you sent &#x2F***."),
    ("you sent &#x2fg &#47;g", "you sent &#x2f*** &#47;***"),
    ("eggs: 4g and xg and &#47gx", "eggs: 4g and xg and &#47gx"),
])
def test_a_short_token_after_a_numeric_entity_without_its_semicolon_is_taken_out(
        text: str, kept: str) -> None:
    """A token "g" after `&#47` (a `/`, its `;` left out as HTML allows): the entity's
    last digit joined it by the raw characters, and "/g" kept the token; a "g" in a
    word stays."""
    assert Scrubber("g", None).scrub(text) == kept


@pytest.mark.parametrize("proxy", ["http://px@127.0.0.1:3128", "http://px:@127.0.0.1:3128"])
def test_a_proxy_user_without_a_password_takes_nothing_out(proxy: str) -> None:
    """HTTPS_PROXY with a user and no password (or an empty one) has no secret: an
    answer is kept as the receiver gave it, not starred between every character as an
    empty secret would have it, and the user's name stays."""
    text = "HTTP 407 for px (status 407), Basic cHg6"
    assert Scrubber(None, None, httpx.Proxy(proxy)).scrub(text) == text
