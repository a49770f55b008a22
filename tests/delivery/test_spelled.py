"""A secret spelled in any mix of escapes, character by character (daemon/delivery/spelled.py),
taken out by the Scrubber of what a receiver's answer keeps: random tokens, each
character written its own way — as it is, as an HTML entity in decimal or hex (leading
zeros, any case, with or without the `;` where HTML reads it so), by name, as JSON's
\\uXXXX or two-character escape, %-escaped — and a hostile body searched in linear time.
"""

from __future__ import annotations

import json
import random
import string
import time
import urllib.parse

import httpx
import pytest

from daemon.delivery.scrub import Scrubber
from daemon.errors import Rejected
from delivery.test_deliver import Recorder, http_cfg, send

# The token rule's characters (visible ASCII), and those HTML names.
TOKEN_CHARS = string.ascii_letters + string.digits + string.punctuation
NAMED = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/"}


def _spellings(c: str, rng: random.Random) -> list[str]:
    """Every way this test writes `c`, each ending where a reader of it would end it;
    an entity without its `;` is made by _spelled, where the next text allows it."""
    code = ord(c)
    zeros = "0" * rng.randrange(3)
    hexa = f"{code:x}"
    hexa = "".join(d.upper() if rng.random() < 0.5 else d for d in hexa)
    unit = "".join(d.upper() if rng.random() < 0.5 else d for d in f"{code:04x}")
    forms = [c, f"&#{zeros}{code};", f"&#{rng.choice('xX')}{zeros}{hexa};",
             f"\\u{unit}", f"%{code:02X}", f"%{code:02x}"]
    if c in NAMED:
        name = NAMED[c]
        forms.append(f"&{name.upper() if rng.random() < 0.3 else name};")
    if c in SHORT:
        forms.append(SHORT[c])
    return forms


def _spelled(token: str, rng: random.Random) -> str:
    """`token` with each character spelled as the seed picks; an entity's `;` left
    off where what follows cannot be read as more of it (HTML reads digits on)."""
    parts = [rng.choice(_spellings(c, rng)) for c in token]
    for i, part in enumerate(parts):
        after = parts[i + 1] if i + 1 < len(parts) else " "
        if part.startswith("&#") and part.endswith(";") and rng.random() < 0.5:
            more = string.hexdigits if part[2] in "xX" else string.digits
            if after[0] not in more + ";":
                parts[i] = part[:-1]
    return "".join(parts)


@pytest.mark.parametrize("seed", range(40))
def test_a_token_spelled_in_any_mix_of_escapes_is_taken_out_whole(seed: int) -> None:
    """For random tokens of the token rule's characters and random per-character
    spellings (raw, HTML entities decimal/hex/named in any case, with or without `;`,
    JSON \\u and short escapes, %-escapes, mixed), the kept text holds *** where the
    token stood and nothing else of it."""
    rng = random.Random(seed)
    for _ in range(50):
        token = "".join(rng.choice(TOKEN_CHARS) for _ in range(rng.randrange(8, 40)))
        scrubber = Scrubber(token, None)
        said = _spelled(token, rng)
        assert scrubber.scrub(f"you sent: Bearer {said} (refused)") == \
            "you sent: Bearer *** (refused)", (token, said)


@pytest.mark.parametrize("seed", range(10))
def test_each_secret_of_several_spelled_in_a_mix_is_taken_out(seed: int) -> None:
    """The token, the url's password and a key in its query, all searched at once:
    each, spelled in any mix beside the others, leaves *** and nothing of itself."""
    rng = random.Random(seed)
    for _ in range(50):
        # A url's unreserved characters: written in it as they are.
        token, password, key = ("".join(rng.choice(string.ascii_letters + string.digits
                                                   + "-._~") for _ in range(rng.randrange(8, 24)))
                                for _ in range(3))
        scrubber = Scrubber(token, f"https://u:{password}@127.0.0.1:9/b?api_key={key}")
        said = [_spelled(secret, rng) for secret in (token, password, key)]
        rng.shuffle(said)
        assert scrubber.scrub(" | ".join(said)) == "*** | *** | ***", said


@pytest.mark.parametrize("said", ["s&#101;\\u0063r3t", "&#115;\\u0065cr%33t",
                                  "s&#X65\\u0063r&#x33;t", "\\u0073&#101c%72\\u0033t"])
def test_the_briefs_mixes_are_taken_out(said: str) -> None:
    """A token written partly with HTML entities, partly with \\u escapes, partly
    raw — each family was handled alone, and `s&#101;\\u0063r3t` kept `secr3t`."""
    assert Scrubber("secr3t", None).scrub(f"Bearer {said}.") == "Bearer ***."


def test_a_mixed_spelling_in_a_rejection_reaches_nothing_kept(tmp_path) -> None:
    """Through a delivery: a 400 answer quoting the token in a mix of escapes keeps
    *** in the body and the error (REASON.txt, the journal and the log take them)."""
    token = "Tk-9/Secret_42+x"
    said = "T&#107;-\\u0039\\/S&#x65;cr%65t_4&#50;+\\u0078"
    answer = httpx.Response(400, content=f"you sent: Bearer {said}".encode(),
                            headers={"Content-Type": "text/plain"})
    with pytest.raises(Rejected) as info:
        send(tmp_path, http_cfg(token=token), Recorder(answer))
    assert said not in info.value.body + str(info.value)
    assert "Bearer ***" in info.value.body


def test_what_only_resembles_the_token_stays() -> None:
    """Escapes that spell something else stay as they came: a digit read on by HTML
    (`&#1011` is one character), an entity past Unicode, another character."""
    scrubber = Scrubber("secr3t", None)
    for text in ("s&#1011cr3t", "s&#x65c;r3t", "s&#99999999999999999999;cr3t",
                 "s&#102;cr3t", "s\\u0066cr3t", "100% secr3 t", "&#" + "0" * 5000):
        assert scrubber.scrub(text) == text


@pytest.mark.parametrize("body", ["entities", "semicolons", "near misses"])
def test_a_hostile_body_of_64_kib_is_searched_in_linear_time(body: str) -> None:
    """64 KiB of escapes that keep the search busy everywhere — every character a
    token's, a token of `;` read both ways at each entity, a long token missed by its
    last character again and again — take well under a second (some 50–100 ms on the
    development host; a regular expression with an alternation per character and the
    `;` optional takes time exponential in the token's length on the second)."""
    n = 64 << 10
    token, text = {
        "entities": ("a" * 40, "&#97;" * (n // 5)),
        "semicolons": (";" * 40 + "x", "&#59;" * (n // 5)),
        "near misses": ("abcdefghij" * 4, ("&#97;b\\u0063%64efghi" * 4 + "X") * (n // 89)),
    }[body]
    scrubber = Scrubber(token, None)
    started = time.monotonic()
    scrubber.scrub(text)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("said", ["p%c3%a4ssw%c3%b6rd", "p%C3%A4sswörd", "p%c3%A4ssw&#246;rd",
                                  "p\\u00e4ssw%C3%B6rd", "%F0%9F%94%91key"])
def test_a_password_past_ascii_percent_escaped_in_any_case_or_mix_is_taken_out(
        said: str) -> None:
    """A url's password past ASCII (`pässwörd`) is UTF-8 when %-escaped: each `ä` two
    escapes. Only the url's own spelling (upper case, every such character escaped) was
    found: an answer quoting it in lower case, or half escaped, kept it whole."""
    password = "pässwörd" if said[0] == "p" else "🔑key"
    scrubber = Scrubber(None, "https://erp:" + urllib.parse.quote(password) + "@127.0.0.1:9/in")
    assert scrubber.scrub(f"you sent {said}.") == "you sent ***."


def test_a_password_past_the_bmp_quoted_by_json_as_a_surrogate_pair_is_taken_out() -> None:
    """JSON writes a character past U+FFFF (`🔑`) as two \\uXXXX escapes, a surrogate
    pair, as json.dumps does by default: an answer quoting the url's password so keeps
    it no more than one quoting it as it is."""
    password = "🔑key"
    scrubber = Scrubber(None, "https://erp:" + urllib.parse.quote(password) + "@127.0.0.1:9/in")
    quoted = json.dumps({"got": password})
    assert "\\ud83d\\udd11" in quoted
    assert "key" not in scrubber.scrub(quoted).replace("got", "")
    assert scrubber.scrub(quoted) == '{"got": "***"}'


def test_an_overlong_percent_escape_is_no_character_and_stops_nothing() -> None:
    """`%E0%80%AF` (an overlong `/`, which no UTF-8 decoder reads) or `%ED%A0%80` (a
    surrogate, which UTF-8 never holds) spells no character: the answer is scrubbed as
    ever, the password beside it taken out, without an error."""
    scrubber = Scrubber(None, "https://erp:" + urllib.parse.quote("pässwörd") + "@127.0.0.1:9/in")
    for odd in ("%E0%80%AF", "%ED%A0%80"):
        assert scrubber.scrub(f"a{odd}b p%c3%a4ssw%c3%b6rd") == f"a{odd}b ***"
