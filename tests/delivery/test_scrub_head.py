"""What is kept of a huge answer is scrubbed only as far as it is kept (Scrubber.head,
Spelled.head, answer_json.written_head): random bodies of noise, secrets spelled in any
mix of escapes (entities with many leading zeros), parts of them and raw ones, cut at
every place around them, give what scrubbing the whole and then cutting gives — or,
where a prefix as long as scrub.HEAD_MOST scrubs to less than is kept, a prefix of it.
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from typing import Any

import httpx
import pytest

from daemon.delivery import scrub as scrub_module
from daemon.delivery.answer_json import scrub_json, written_head
from daemon.delivery.answers import BODY_LIMIT, classify
from daemon.delivery.scrub import Scrubber
from daemon.errors import Rejected, Retryable
from delivery.test_spelled import TOKEN_CHARS, _spelled

# Characters that open, go on or end an escape, and some of a secret's: noise that
# makes and breaks escapes at the places a prefix is cut, and joins a short secret to
# a word or sets it apart (`.`, `-`, a space).
NOISE = "&#;xX0129aAfFdDcCu\\%/ \"'<>*.-"


def _secrets(rng: random.Random) -> tuple[Scrubber, list[str]]:
    """A Scrubber of a token (now and then of few characters, so that its spellings
    overlap one another) and, half the time, a url's password and a key in its query;
    the token and now and then the password shorter than SHORT_SECRET, taken out only
    where they stand apart."""
    alphabet = rng.choice([TOKEN_CHARS, "ab;&1", "a;", "a"])
    token = "".join(rng.choice(alphabet) for _ in range(rng.randrange(2, 14)))
    if rng.random() < 0.5:
        return Scrubber(token, None), [token]
    password, key = ("".join(rng.choice(string.ascii_letters + string.digits)
                             for _ in range(rng.randrange(low, 16))) for low in (2, 8))
    return (Scrubber(token, f"https://u:{password}@127.0.0.1:9/b?api_key={key}"),
            [token, password, key])


def _spelled_long(secret: str, rng: random.Random) -> str:
    """A secret spelled in a mix of escapes, its entities' digits led by up to 40
    zeros (HTML reads them; no spelling has a longest form)."""
    return re.sub(r"&#([xX]?)", lambda m: f"&#{m[1]}{'0' * rng.randrange(40)}",
                  _spelled(secret, rng))


def _body(rng: random.Random, secrets: list[str], pieces: int) -> str:
    """Noise, and secrets: spelled, spelled only in part, raw (also one overlapping
    the next: `a;a;a` of `a;a`, which a search near escapes takes out whole and the
    plain replace in part), beside each other."""
    out = []
    for _ in range(pieces):
        kind, secret = rng.random(), rng.choice(secrets)
        if kind < 0.3:
            out.append(_spelled_long(secret, rng))
        elif kind < 0.45:
            said = _spelled_long(secret, rng)
            out.append(said[:rng.randrange(len(said))])
        elif kind < 0.5:
            out.append(secret)
        elif kind < 0.55:
            out.append(secret + secret[rng.randrange(1, len(secret)):])
        else:
            out.append("".join(rng.choice(NOISE) for _ in range(rng.randrange(1, 12))))
    return "".join(out)


def _assert_head_is_scrubs_start(scrubber: Scrubber, text: str, limit: int,
                                 expected: str | None = None) -> None:
    """head() gives scrub()'s start: the whole of it to `limit`, or (flagged) a prefix.
    `expected`: scrub(text), where the caller has it already (a text checked at many
    cuts: scrubbing it whole took most of such a test's time, and gives the same each
    time — neither HEAD_FIRST nor HEAD_MOST is scrub()'s)."""
    kept, whole = scrubber.head(text, limit)
    if expected is None:
        expected = scrubber.scrub(text)
    if whole:
        assert kept == expected[:limit], (text, limit)
    else:
        assert expected.startswith(kept) and len(kept) < limit, (text, limit)


@pytest.mark.parametrize("seed", range(8))
def test_a_prefix_cut_anywhere_scrubs_to_the_start_of_the_whole_scrubbed(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """For random bodies and every size of the first prefix read around the secrets
    (HEAD_FIRST made small: the cut falls inside entities, between a secret's
    characters, inside a run of leading zeros, between a high and a low surrogate),
    what head() keeps is what scrubbing the whole and cutting keeps; where the prefix
    grows to HEAD_MOST and still scrubs to less, a prefix of it."""
    rng = random.Random(seed)
    monkeypatch.setattr(scrub_module, "HEAD_MOST", 400)
    for _ in range(6):
        scrubber, secrets = _secrets(rng)
        text = _body(rng, secrets, rng.randrange(8, 40))
        expected = scrubber.scrub(text)
        for first in range(1, min(len(text), 260)):
            monkeypatch.setattr(scrub_module, "HEAD_FIRST", first)
            _assert_head_is_scrubs_start(scrubber, text, rng.randrange(1, 1 + max(1, first // 4)),
                                         expected)


@pytest.mark.parametrize("text", ["aaa&#97;x" + "y" * 60, "baaa&#97;" + "y" * 60,
                                  "aaa\\u0061" + "y" * 60, "aaa%61" + "y" * 60])
def test_raw_characters_an_escape_after_the_prefix_joins_are_not_kept(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`aaa` of the token `aa`, cut just before `&#97;`: in the whole, the escape's
    search takes in the raw characters before it (`a***x`: the matches overlap, joined),
    where the plain replace of the prefix alone made `***a`. The prefix is cut the
    longest secret's length before where an escape may begin (`&`, `\\`, `%`)."""
    scrubber = Scrubber("aa", None)
    monkeypatch.setattr(scrub_module, "HEAD_FIRST", text.index("aaa") + 3)
    for limit in range(1, 4):
        _assert_head_is_scrubs_start(scrubber, text, limit)


@pytest.mark.parametrize("after", ["c", ".c", "-c", " c", ".", "-"])
def test_a_short_password_at_the_prefix_end_waits_for_what_follows(
        after: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short password ("ab") is taken out only where it stands apart, and whether it
    does is told by the two characters after it: "abc", "ab.c", "ab-c" keep it, "ab c",
    "ab. ", "ab- " do not. The first prefix read ends with it, after a long token spelled
    again and again (so that what is kept reaches the prefix's end): it is kept only
    once the text after it is read, as scrubbing the whole gives it."""
    token = "T" * 40
    scrubber = Scrubber(token, "https://u:ab@127.0.0.1:9/b")
    # Spelled.head keeps nothing of the last longest secret's length and two more.
    tail = after + " " * (40 + 2 + 2 - len(after))
    text = f"{token} " * 5 + "ab" + tail + "y" * 400
    for past in (0, 1):  # the prefix kept ends after "ab", or after what follows it
        monkeypatch.setattr(scrub_module, "HEAD_FIRST", text.index(tail) + 42 + past)
        limit = len("*** " * 5) + 3 + past
        assert scrubber.head(text, limit) == (scrubber.scrub(text)[:limit], True)


@pytest.mark.parametrize("text", ["a1a-2%&%gF" + "y" * 60, "x a1a1%41" + "y" * 60,
                                  "a1a.1 %" + "y" * 60])
def test_a_short_token_the_cut_of_its_own_start_leaves_at_the_end_waits_too(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short token "a1" joined to an "a" that begins it again ("a1a…"), the prefix
    read ending there: the start of the token is cut from the end, which left the
    first "a1" at the end, standing apart there, and it was taken out ("*" kept of
    "a1a-2…", whose whole scrubs to itself). What is kept is what scrubbing the whole
    keeps."""
    scrubber = Scrubber("a1", None)
    for first in range(1, 12):
        monkeypatch.setattr(scrub_module, "HEAD_FIRST", first)
        for limit in range(1, 4):
            _assert_head_is_scrubs_start(scrubber, text, limit)


@pytest.mark.parametrize("after", ["5", ".5", "-5", " 5", ". "])
def test_a_short_token_spelled_at_the_prefix_end_waits_for_what_follows(
        after: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-character token spelled with an entity (hex, leading zeros, no `;`: what
    follows ends it), ending just before the last character of the first prefix read:
    "&#x31.5" is "1.5", where the token stands joined to a digit and stays; the
    prefix alone ("&#x31.") would have it apart. What is kept is what scrubbing the
    whole keeps."""
    scrubber = Scrubber("1", None)
    spelled = "&#x" + "0" * 40 + "31"
    text = f"{spelled} " * 6 + spelled + after + "y" * 400
    monkeypatch.setattr(scrub_module, "HEAD_FIRST", text.index(after, len(spelled) * 7) + 1)
    for limit in range(20, 30):
        kept, whole = scrubber.head(text, limit)
        assert kept == scrubber.scrub(text)[:limit] and whole, (limit, kept)


@pytest.mark.parametrize("seed", range(6))
def test_a_body_mostly_of_secrets_grows_the_prefix_until_enough_is_kept(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spelled secrets back to back (each taken out as ***, far shorter): the prefix is
    read again four times as long while it scrubs to less than is kept, and the result
    is still the whole's start."""
    rng = random.Random(100 + seed)
    monkeypatch.setattr(scrub_module, "HEAD_FIRST", 64)
    monkeypatch.setattr(scrub_module, "HEAD_MOST", 2048)
    for _ in range(10):
        scrubber, secrets = _secrets(rng)
        text = "".join(_spelled_long(rng.choice(secrets), rng) + rng.choice(["", " ", "&"])
                       for _ in range(rng.randrange(20, 120)))
        expected = scrubber.scrub(text)
        for limit in (1, 7, 16, 40, 100, 300):
            _assert_head_is_scrubs_start(scrubber, text, limit, expected)


def _json_value(rng: random.Random, secrets: list[str], depth: int = 0) -> Any:
    """Objects, lists, strings (bodies as above), numbers; names that may scrub alike."""
    kind = rng.random()
    if depth < 3 and kind < 0.25:
        return {rng.choice(["***", "a", secrets[0], _spelled(secrets[0], rng),
                            "***" + rng.choice(NOISE), _body(rng, secrets, 2)]):
                _json_value(rng, secrets, depth + 1)
                for _ in range(rng.randrange(4))}
    if depth < 3 and kind < 0.45:
        return [_json_value(rng, secrets, depth + 1) for _ in range(rng.randrange(4))]
    if kind < 0.85:
        return _body(rng, secrets, rng.randrange(1, 12))
    return rng.choice([7, -1, 1.5, True, None, int("9" * 20)])


class _Heads:
    """A Scrubber's head(), noting whether each was whole."""

    def __init__(self, scrubber: Scrubber) -> None:
        self.scrubber, self.whole = scrubber, list[bool]()

    def head(self, text: str, limit: int) -> tuple[str, bool]:
        kept, whole = self.scrubber.head(text, limit)
        self.whole.append(whole)
        return kept, whole


def test_names_that_scrub_alike_are_one_however_far_json_is_written() -> None:
    """A token in a name scrubs it to "***", as another name is: scrub_json keeps one,
    the last value at the first place. A name scrubbed only as far as the limit ("***"
    of "***x") was taken for one it is not, and the first value lost."""
    scrubber = Scrubber("secr3t", None)
    value = {"***": 1, "***x": 2, "s&#101;cr3t": 3, "z": "s\\u0065cr3t"}
    expected = json.dumps(scrub_json(value, scrubber.scrub), ensure_ascii=False)
    assert expected == '{"***": 3, "***x": 2, "z": "***"}'
    for limit in range(1, len(expected) + 2):
        assert written_head(value, scrubber.scrub, scrubber.head, limit) == \
            expected[:limit], limit


@pytest.mark.parametrize("seed", range(8))
def test_json_is_written_only_as_far_as_it_is_kept(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """written_head() gives json.dumps(scrub_json(...))[:limit]: strings scrubbed by a
    head only as far as they may show, names scrubbed whole (two that scrub alike are
    one, the last value at the first's place); a prefix of it where a string's head was
    only a prefix."""
    rng = random.Random(200 + seed)
    monkeypatch.setattr(scrub_module, "HEAD_FIRST", 16)
    monkeypatch.setattr(scrub_module, "HEAD_MOST", 256)
    for _ in range(40):
        scrubber, secrets = _secrets(rng)
        value = _json_value(rng, secrets)
        expected = json.dumps(scrub_json(value, scrubber.scrub), ensure_ascii=False)
        for limit in (1, 5, 20, 60, 200, 1000):
            heads = _Heads(scrubber)
            kept = written_head(value, scrubber.scrub, heads.head, limit)
            if all(heads.whole):
                assert kept == expected[:limit], (value, limit)
            else:
                assert expected.startswith(kept), (value, limit)


MIB = 1 << 20
HOSTILE = {
    # A token spelled with entities, again and again: *** every 80 characters.
    "entities spelling the token": (
        "secr3t-token", "x " + "".join(f"&#{ord(c)};" for c in "secr3t-token") + " "),
    # One secret of 40 a's, spelled across the whole MiB: one ***.
    "one secret across the MiB": ("a" * 40, "&#97;"),
    # A secret begun at every entity and never completed (no x comes).
    "semicolons never completed": (";" * 40 + "x", "&#59;"),
    # A long token missed by its last character again and again.
    "near misses": ("abcdefghij" * 4, "&#97;b\\u0063%64efghi" * 4 + "X"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_answer_of_a_mib_is_scrubbed_only_as_far_as_it_is_kept(name: str) -> None:
    """1 MiB answers of escapes that keep the search busy, kept from a 400 as text and
    as JSON (one string): what is kept is what scrubbing the whole keeps (cut to
    BODY_LIMIT) — for the MiB spelling one secret, only its start: nothing of 64 KiB
    is known to be no part of the secret, and `{"error": "***` is kept of the JSON.
    CPU time of one classification on the development host, text / JSON, before (the
    whole scrubbed, then cut) and now: entities 0.63 / 0.59 s → 0.03 / 0.02 s; one
    secret 1.08 / 1.10 s → 0.11 / 0.12 s; semicolons 1.08 / 1.07 s → 0.01 / 0.01 s;
    near misses 0.75 / 0.76 s → 0.005 / 0.008 s (not asserted: a shared host's time)."""
    token, unit = HOSTILE[name]
    body = unit * (MIB // len(unit))
    scrubber = Scrubber(token, None)
    expected = {
        "entities spelling the token": ("x *** " * 400)[:BODY_LIMIT],
        "one secret across the MiB": "***",
        "semicolons never completed": body[:BODY_LIMIT],
        "near misses": body[:BODY_LIMIT],
    }[name]
    # Of one secret across the MiB, the JSON string is not closed: its end is unknown.
    written = ('{"error": "***' if name == "one secret across the MiB"
               else json.dumps({"error": expected}, ensure_ascii=False)[:BODY_LIMIT])
    for content, kept in ((body, expected), (json.dumps({"error": body}), written)):
        started = time.process_time()
        with pytest.raises(Rejected) as rejected:
            classify(httpx.Response(400, content=content.encode()), scrubber)
        took = time.process_time() - started
        assert rejected.value.body == kept, (name, took)


def test_a_name_of_a_mib_in_an_error_answer_is_scrubbed_only_as_far_as_it_is_kept(
        ) -> None:
    """A 400 of JSON whose one name is a MiB of entities spelling the token again and
    again: the names were scrubbed whole before anything was written, a second of CPU
    (and the interpreter's lock) at every such answer. Now as a string is: what is kept
    is what scrubbing the whole keeps, cut to BODY_LIMIT, and the classification takes
    a fraction of that (1.3 s before, 0.1 s now on the development host; bounded here
    well below the whole's scrub, measured alike)."""
    token, unit = HOSTILE["entities spelling the token"]
    name = unit * (MIB // len(unit))
    scrubber = Scrubber(token, None)
    value = {name: "the name is not known", "error": "s"}
    expected = json.dumps(scrub_json(value, scrubber.scrub), ensure_ascii=False)[:BODY_LIMIT]
    started = time.process_time()
    scrubber.scrub(name)
    whole = time.process_time() - started
    started = time.process_time()
    with pytest.raises(Rejected) as rejected:
        classify(httpx.Response(400, content=json.dumps(value).encode()), scrubber)
    took = time.process_time() - started
    assert rejected.value.body == expected
    assert took < whole / 3, (took, whole)


def test_a_2xx_of_a_mib_naming_another_request_is_read_only_for_its_ids() -> None:
    """A 201 of a MiB of JSON (kept as text) that names another request's bundle_id
    beside a note of entities spelling the token: retried, saying the id, the note kept
    scrubbed. Each top-level string was scrubbed whole to be looked at as an id, and
    the text twice more: 2.6 s of CPU on the development host, now 0.07 s (not
    asserted)."""
    token = "secr3t-token"
    unit = "x " + "".join(f"&#{ord(c)};" for c in token) + " "
    other = "b" * 64
    body = json.dumps({"bundle_id": other, "note": unit * (MIB // len(unit))})
    with pytest.raises(Retryable) as retried:
        classify(httpx.Response(201, content=body.encode()), Scrubber(token, None),
                 sent={"bundle_id": "a" * 64})
    assert f'bundle_id "{other}", not "{"a" * 64}"' in str(retried.value)
    assert retried.value.body == (body[:body.index("x ")] + "x *** " * 400)[:BODY_LIMIT]
