"""Our secrets found in a text however it spells them, character by character: each
character as it is, as an HTML or XML entity (`&#116;`, `&#x74;`, `&amp;`, any case,
with or without the closing `;`), as a JSON escape (`\\u0074` in any case of hex, a
surrogate pair, `\\/`) or %-escaped (`%74`; one past ASCII as
its UTF-8 bytes, `%C3%A4` for `ä`), in any mix — `s&#101;\\u0063r3t` is
`secr3t`. scrub.py takes out what is found.

The search runs in time linear in the text: a regular expression with an alternation
per character backtracks on a hostile body (a token holding `;` read both as the end of
an entity and as itself doubles the ways at each character), so the characters are
matched as a set of automaton states instead (Shift-And, one bit per character of each
secret, all secrets in one integer), and only near the escapes: a text of raw
characters alone is scrub.py's plain replace.

A secret shorter than SHORT_SECRET is found only where it stands apart (`apart_before`,
`APART_AFTER`): a password "1" is no credential to recognise inside "HTTP 401" or a
receipt id "R-100100", and taken out there it garbled every answer; "password 1
rejected", `erp:1@`, "Bearer 1" still lose it. The automaton lets such a secret begin
and end only at a place where it stands apart, judged by the characters around the
spelling as the plain replace of scrub.py judges them.

`head()` reads a text as the start of a longer one (an answer of a MiB is scrubbed only
as far as what is kept of it): it stops before whatever the rest could change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A secret (or a form of one, scrub.py) shorter than this is taken out only where it
# stands apart: a short one taken out wherever it stands garbles every answer.
SHORT_SECRET = 8
# Apart: no letter, digit or `_` right before or after it, nor a `.` or `-` that joins
# it to one (`127.0.0.1`, `1.5`, `2026-12-01`, `R-1-7` keep their "1"; a sentence's
# closing `.` does not join). Judged by the raw characters, but for an escape that
# ends in a letter or digit (`%20`, `\u0020`, `\n`, an entity without its `;`): what
# follows one stands apart from it, whatever it spells — `wrong%20password%201` and
# `erp%3A1%40` quote the password "1" alone. Two characters of context after it:
# head() keeps that far from what it cannot see (before it, what it has read).
JOINERS = ".-"
_JOIN = f"[{re.escape(JOINERS)}]"


# The escapes that end in a letter or digit, each of a fixed width (a lookbehind's): an
# entity without its `;` too, which _ESCAPE reads (`&quot1`, `&#47g` are `"1`, `/g`).
# Its digits up to the most a character takes (leading zeros past those: joined).
_ENDING_IN_A_WORD = (r"%[0-9a-fA-F]{2}", r"\\u[0-9a-fA-F]{4}", r"\\[nrtbf]",
                     *(f"&(?i:{name})" for name in ("amp", "lt", "gt", "quot", "apos")),
                     *(f"&#[0-9]{{{n}}}" for n in range(1, 8)),
                     *(f"&#[xX][0-9a-fA-F]{{{n}}}" for n in range(1, 7)))


def _not_after_escape(then: str) -> str:
    """Not just after an escape that ends in a letter or digit, and `then`."""
    return "".join(f"(?<!{escape}{then})" for escape in _ENDING_IN_A_WORD)


def apart_before(then: str) -> str:
    """A pattern for just after `then` (of a fixed width): what `then` matched stands
    apart from what is before it. After, not before: a pattern that begins with the
    secret is searched for as text, and its context looked at only where it is found
    (a lookaround at every character of the answer took 3 ms a 64 KiB of it)."""
    return (rf"(?!(?<=\w{then}){_not_after_escape(then)}"
            rf"|(?<=\w{_JOIN}{then}){_not_after_escape(_JOIN + then)})")


_JOINED_BEFORE_AT = (rf"(?:(?<=\w){_not_after_escape('')}"
                     rf"|(?<=\w{_JOIN}){_not_after_escape(_JOIN)})")
_JOINED_AFTER_AT = rf"{_JOIN}?\w"
APART_AFTER = f"(?!{_JOINED_AFTER_AT})"
APART_CONTEXT = 2
_JOINED_BEFORE = re.compile(_JOINED_BEFORE_AT)
_JOINED_AFTER = re.compile(_JOINED_AFTER_AT)

# The characters that open an escape: a text without any has nothing for this search.
OPENERS = ("&", "\\", "%")

# One escape each, found wherever one starts, inside another too (`\\u0041` is a
# backslash and "u0041" to JSON, but a raw backslash and "A" to a person reading it).
# Digits are read as far as they go, as HTML does (`&#1011` is one character, never
# `&#101` and "1"); the `;` is read both as the entity's end and as itself.
_ESCAPE = re.compile(
    r"(?=(&#[xX](?P<hexa>[0-9a-fA-F]+)"
    r"|&#(?P<decimal>[0-9]+)"
    r"|&(?P<name>(?i:amp|lt|gt|quot|apos))"
    r"|\\u(?P<unit>[0-9a-fA-F]{4})"
    r"|\\(?P<short>[\"\\/bfnrt])"
    r"|%(?P<percent>[0-9a-fA-F]{2})))")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
          "t": "\t"}
_LOW_SURROGATE = re.compile(r"\\u([dD][c-fC-F][0-9a-fA-F]{2})")
# A byte of UTF-8 after its first, %-escaped: a url's character past ASCII (a password's
# `ä`, `%C3%A4` in any case) is several %-escapes, one character.
_CONTINUATION = re.compile(r"%([89abAB][0-9a-fA-F])")
# An escape the text ends in the middle of, or that what follows could make longer or
# another (`&#10` of `&#101;`, `&amp` of `&amp;`, a `\\uD83D` its low surrogate may
# follow): _ESCAPE read it, or no escape, only because the text ends. Leading zeros
# make it of any length.
_PENDING = re.compile(
    r"(?:&(?:#(?:[xX][0-9a-fA-F]*|[0-9]*)|[a-zA-Z]{0,4})"
    r"|\\(?:u[0-9a-fA-F]{0,4}(?:\\(?:u[0-9a-fA-F]{0,3})?)?)?"
    r"|(?:%[0-9a-fA-F]{2}){1,3}|(?:%[0-9a-fA-F]{2}){0,3}%[0-9a-fA-F]?)\Z")


def _code(digits: str, base: int) -> str | None:
    """The character of an entity's digits, or None past Unicode (leading zeros, which
    HTML allows without end, are no reason to read a number of any length)."""
    digits = digits.lstrip("0")
    if len(digits) > (7 if base == 10 else 6):
        return None
    code = int(digits or "0", base)
    return chr(code) if 0 < code <= 0x10FFFF else None


def escapes(text: str) -> list[tuple[int, int, str]]:
    """The escapes in `text` as (where it starts, where it ends, the character it
    spells); an entity without and with the `;` that follows it, both."""
    found = []
    for m in _ESCAPE.finditer(text):
        _, hexa, decimal, name, unit, short, percent = m.groups()
        at, to = m.span(1)
        if hexa is not None or decimal is not None or name is not None:
            char = (_code(hexa, 16) if hexa is not None else _code(decimal, 10)
                    if decimal is not None else _NAMED[name.lower()])
            if char is None:
                continue
            found.append((at, to, char))
            if text.startswith(";", to):
                found.append((at, to + 1, char))
        elif unit is not None:
            code = int(unit, 16)
            low = _LOW_SURROGATE.match(text, to) if 0xD800 <= code < 0xDC00 else None
            if low is not None:  # beyond the BMP: a pair, as JSON writes it
                pair = 0x10000 + ((code - 0xD800) << 10 | (int(low[1], 16) - 0xDC00))
                found.append((at, low.end(), chr(pair)))
            found.append((at, to, chr(code)))
        else:
            found.append((at, to, _SHORT[short] if short is not None
                          else chr(int(percent, 16))))
            if percent is not None and (utf8 := _utf8_at(text, to, int(percent, 16))):
                found.append((at, *utf8))
    return found


def _utf8_at(text: str, to: int, lead: int) -> tuple[int, str] | None:
    """The character a %-escaped byte `lead` of UTF-8 begins, its other bytes %-escaped
    from `to` on, and where they end; None if `lead` begins none or they do not follow."""
    more = 1 if 0xC2 <= lead < 0xE0 else 2 if 0xE0 <= lead < 0xF0 else \
        3 if 0xF0 <= lead < 0xF5 else 0
    if not more:
        return None
    raw = bytearray([lead])
    for _ in range(more):
        if (m := _CONTINUATION.match(text, to)) is None:
            return None
        raw.append(int(m[1], 16))
        to = m.end()
    try:
        return to, raw.decode("utf-8")
    except UnicodeDecodeError:  # an overlong or surrogate form: no character
        return None


@dataclass(frozen=True)
class _Automaton:
    """The secrets laid end to end, one bit per character: `chars[c]` has the bits of
    the positions holding c, `first` those of each secret's first character, `last`
    those of its last; `short_first` and `short_last` those of the secrets shorter
    than SHORT_SECRET, which begin and end only where they stand apart."""
    chars: dict[str, int]
    first: int
    last: int
    longest: int
    short_first: int
    short_last: int

    def first_at(self, text: str, at: int) -> int:
        """The first bits of the secrets that may begin at `at` of `text`."""
        if self.short_first and _JOINED_BEFORE.match(text, at):
            return self.first & ~self.short_first
        return self.first

    def last_at(self, text: str, to: int) -> int:
        """The last bits of the secrets that may end at `to` of `text`."""
        if self.short_last and _JOINED_AFTER.match(text, to):
            return self.last & ~self.short_last
        return self.last


def _automaton(secrets: Sequence[str]) -> _Automaton:
    chars: dict[str, int] = {}
    first = last = bit = short_first = short_last = 0
    for secret in secrets:
        first |= 1 << bit
        if len(secret) < SHORT_SECRET:
            short_first |= 1 << bit
            short_last |= 1 << bit + len(secret) - 1
        for c in secret:
            chars[c] = chars.get(c, 0) | 1 << bit
            bit += 1
        last |= 1 << bit - 1
    return _Automaton(chars, first, last, max(map(len, secrets)), short_first, short_last)


class Spelled:
    """Where `secrets` stand in a text in any spelling (`spans`), each taken out as
    "***" (`scrub`)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._auto = _automaton([s for s in secrets if s]) if any(secrets) else None

    def scrub(self, text: str) -> str:
        return _taken_out(text, self.spans(text), len(text))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The stretches of `text` that spell a secret with an escape, in order,
        overlapping ones joined; one of raw characters alone far from any escape is
        left to the plain replace (scrub.py)."""
        if self._auto is None or not any(o in text for o in OPENERS):
            return []
        chars = self._auto.chars
        found = [(at, to, char) for at, to, char in escapes(text) if char in chars]
        return self._spans(text, found, None)

    def head(self, text: str) -> str:
        """What scrub() makes of any text that begins with `text`, as far as `text`
        tells: a prefix of it, cut where no secret's spelling runs across (which the
        text after could complete, or an escape it could make another) and far enough
        before an escape `text` ends in for the rest to change no search around it."""
        auto = self._auto
        if auto is None:
            return text
        # Where an escape may begin that the rest could read otherwise; and before it,
        # each escape that ends there or later (whether a secret may go on into what
        # follows it is asked of that escape's neighbours), and the longest secret's
        # length of raw characters (a window of the rest's escapes reaches so far back).
        pending = _PENDING.search(text)
        settled = pending.start() if pending else len(text)
        found: list[tuple[int, int, str]] = []
        if any(o in text for o in OPENERS):
            found = [(at, to, char) for at, to, char in escapes(text) if char in auto.chars]
        settled = min([settled, *(at for at, to, _ in found if to >= settled)])
        # And the context whether a short secret stands apart looks at after its end.
        across = _Across(max(0, settled - auto.longest - APART_CONTEXT))
        spans = self._spans(text, found, across) if found else []
        return _taken_out(text, [(start, end) for start, end in spans if start < across.cut],
                          across.cut)

    def _spans(self, text: str, found: list[tuple[int, int, str]],
               across: _Across | None) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        # Windows may overlap by their raw margins: what two find is joined in order.
        for start, end in sorted(span for lo, hi, window in self._windows(text, found)
                                 for span in self._window_spans(text, lo, hi, window, across)):
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        return spans

    def _windows(self, text: str, found: list[tuple[int, int, str]]
                 ) -> list[tuple[int, int, list[tuple[int, int, str]]]]:
        """The escapes (`found`: those of a secret's character) that may stand in a
        secret, in clusters, each with the stretch of text a secret spelled with them
        could take: no more raw characters than the longest secret has around and
        between them (a cluster's escapes in order of where they start)."""
        auto = self._auto
        assert auto is not None
        reach, chars = auto.longest, auto.chars
        ends, starts = {to for _, to, _ in found}, {at for at, _, _ in found}
        every = (1 << auto.last.bit_length()) - 1  # every secret's every character
        windows: list[tuple[int, int, list[tuple[int, int, str]]]] = []
        for at, to, char in found:
            # Only one whose neighbours could be a secret's, raw or escaped: a JSON
            # body's every `\/` (PHP's) made the whole body one window for a token
            # holding a "/" (half a second a MiB); such a `\/` between "b" and "c" is
            # none of "tok/en"'s.
            before = every if at in ends else auto.first | chars.get(text[at - 1:at], 0) << 1
            after = every if to in starts else auto.last | chars.get(text[to:to + 1], 0) >> 1
            if not chars[char] & before & after:
                continue
            if windows and at - windows[-1][1] <= reach:
                lo, hi, cluster = windows[-1]
                cluster.append((at, to, char))
                windows[-1] = (lo, max(hi, to), cluster)
            else:
                windows.append((at, to, [(at, to, char)]))
        return [(max(0, lo - reach), min(len(text), hi + reach), cluster)
                for lo, hi, cluster in windows]

    def _window_spans(self, text: str, lo: int, hi: int, window: list[tuple[int, int, str]],
                      across: _Across | None = None) -> list[tuple[int, int]]:
        """The stretches of text[lo:hi] that spell a secret: a forward pass (which
        prefixes of a secret end at each place), and only if some secret ends, a
        backward one (which suffixes start there); a step of a match is on both.
        Only the places where a step can start are visited: a raw character of some
        secret, or an escape of one. A short secret begins and ends only where it
        stands apart. `across`: brought back to where the earliest spelling of a
        secret (whole or not) that runs across its place starts."""
        auto = self._auto
        assert auto is not None
        chars, first, last = auto.chars, auto.first, auto.last
        # Each place's steps as (where it ends, the bits of the character), window-local.
        steps: dict[int, list[tuple[int, int]]] = {}
        for i, ch in enumerate(text[lo:hi]):
            if bits := chars.get(ch, 0):
                steps[i] = [(i + 1, bits)]
        for at, to, char in window:
            steps.setdefault(at - lo, []).append((to - lo, chars[char]))
        places = sorted(steps)
        # What may step at each place: a prefix going on, or a secret beginning. A bit
        # shifted past one secret's last character is no start of the next: only a
        # start the place allows (first_at) is.
        begins = {i: auto.first_at(text, lo + i) for i in places}
        ahead = [0] * (hi - lo + 1)  # bits: a secret's prefix that ends here
        complete = False
        for i in places:
            can = (ahead[i] << 1) & ~first | begins[i]
            for to, bits in steps[i]:
                if step := can & bits:
                    ahead[to] |= step
                    complete = complete or bool(step & last and step & auto.last_at(text, lo + to))
        if across is not None and lo < across.at <= hi:
            across.back(lo, steps, places, ahead, begins, first, last)
        if not complete:
            return []
        behind = [0] * (hi - lo + 1)  # bits: a secret's suffix that starts here
        spans: list[tuple[int, int]] = []
        for i in reversed(places):
            can = (ahead[i] << 1) & ~first | begins[i]
            for to, bits in steps[i]:
                rest = bits & ((behind[to] >> 1) & ~last | auto.last_at(text, lo + to))
                behind[i] |= rest
                if rest & can:  # a step of a whole match: taken out
                    spans.append((lo + i, lo + to))
        return spans


class _Across:
    """A place in a text (`at`), and where to cut it (`cut`): before the earliest
    spelling of a secret, whole or not, that runs across `at` (or ends there and may go
    on), which the text after `at` may complete or make a secret's."""

    def __init__(self, at: int) -> None:
        self.at = self.cut = at

    def back(self, lo: int, steps: dict[int, list[tuple[int, int]]], places: list[int],
             ahead: list[int], begins: dict[int, int], first: int, last: int) -> None:
        """Of a window from `lo` (its steps, and `ahead`, its forward pass: the bits
        of a secret's prefix that ends at each place; `begins`, the first bits of the
        secrets that may begin at each), the spellings that run across: followed back
        from `at` to where they start."""
        at = self.at - lo
        wanted = [0] * len(ahead)  # bits: a prefix that ends here, of one that runs across
        wanted[at] = ahead[at] & ~last
        for i in reversed(places):
            if i >= at:
                continue
            can = (ahead[i] << 1) & ~first | begins[i]
            for to, bits in steps[i]:
                step = can & bits & (-1 if to > at else wanted[to])
                if step & first:  # one starts here
                    self.cut = min(self.cut, lo + i)
                wanted[i] |= (step & ~first) >> 1


def _taken_out(text: str, spans: list[tuple[int, int]], end: int) -> str:
    """text[:end] with each span as "***"; one that runs past `end` ends it."""
    out, at = [], 0
    for start, stop in spans:
        out += [text[at:start], "***"]
        at = stop
    return "".join(out) + text[at:end] if at < end else "".join(out)
