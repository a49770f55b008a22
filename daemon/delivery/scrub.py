"""Our secrets — the token, the url's password, the keys in its query, the password of
the environment's proxy — in every form a text may quote them, and taken out of it: what
a receiver answers (an error page that quotes the request, a header it echoes) and
httpx's errors, before either is logged, kept in the journal and the papers, or shown on
the status page (deliver.py)."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

import httpx

from daemon.configuration.config_values import secret_params

# A query value shorter than this is no credential, and taken out of every answer it
# would garble the answer (a "1" of `?auth=1` out of "HTTP 401").
MIN_QUERY_SECRET = 8


def _url_secrets(url: str | None) -> list[str]:
    """The password of the url's userinfo (Basic auth) in every form an error may quote:
    decoded, as written in the url (any case of %-escapes), and the user:password pair
    in base64, as a Basic Authorization header (which a receiver may echo) carries it;
    and the values of its query parameters named like a secret (`?access_token=`),
    as written and decoded, which an answer quoting the request's url would show."""
    try:
        parsed = httpx.URL(url or "")
    except httpx.InvalidURL:
        return []
    found = [form for value in secret_params(url or "")
             for form in (value, urllib.parse.unquote_plus(value))
             if len(form) >= MIN_QUERY_SECRET]
    if not parsed.password:
        return found
    written = parsed.userinfo.decode("ascii", "replace").partition(":")[2]
    return _basic_secrets(parsed.username, parsed.password) + [written] + found


def _basic_secrets(user: str, password: str) -> list[str]:
    """A user's password and the user:password pair in base64, as a Basic
    Authorization (or Proxy-Authorization) header carries it; [] without a password."""
    if not password:
        return []
    pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return [password, pair]


def _proxy_secrets(proxy: httpx.Proxy | None) -> list[str]:
    """The environment's proxy's password (HTTP_PROXY=http://user:pw@…): httpx sends it
    as Proxy-Authorization on every POST, and a proxy that passes the header on, or an
    answer quoting the request, would show it."""
    if proxy is None or proxy.auth is None:
        return []
    return _basic_secrets(*proxy.auth)


# Each character that HTML or XML may write as an entity, with every spelling of it:
# by name, in decimal and in hex (with leading zeros: PHP's &#039;, Go's &#34;).
_ENTITIES = {"&": ("amp", 0x26), "<": ("lt", 0x3C), ">": ("gt", 0x3E), '"': ("quot", 0x22),
             "'": ("apos", 0x27)}


def _markup_pattern(secret: str) -> re.Pattern[str] | None:
    """The secret as any HTML or XML escaper may write it in an error page, or None
    when it holds no character they escape (the plain form covers it)."""
    if not any(c in _ENTITIES for c in secret):
        return None
    parts = []
    for c in secret:
        if c in _ENTITIES:
            name, code = _ENTITIES[c]
            parts.append(f"(?:{re.escape(c)}|&{name};|&#0*{code};|&#[xX]0*{code:x};)")
        else:
            parts.append(re.escape(c))
    return re.compile("".join(parts), re.IGNORECASE)


# JSON's two-character escapes (RFC 8259, section 7), beside \uXXXX.
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
               "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _hex4(unit: int) -> str:
    """A \\u escape of one UTF-16 code unit, its hex digits in either case."""
    return "\\\\u" + "".join(f"[{d}{d.upper()}]" if d.isalpha() else d
                             for d in f"{unit:04x}")


def _json_escaped_pattern(secret: str) -> re.Pattern[str]:
    """The secret as a JSON text may write it, each character as it is, as its \\u
    escape (hex in any case; a surrogate pair beyond the BMP) or as its two-character
    escape, in any mix: a body kept as text (not JSON, or too large or too deep to be
    kept as JSON) is not decoded, and `tok\\u0065n` or a token escaped whole went
    into receipt.json, the journal and the log as it came."""
    parts = []
    for c in secret:
        units = c.encode("utf-16-be")
        escaped = "".join(_hex4(int.from_bytes(units[i:i + 2], "big"))
                          for i in range(0, len(units), 2))
        forms = [re.escape(c), escaped] + ([re.escape(_JSON_SHORT[c])] if c in _JSON_SHORT
                                           else [])
        parts.append(f"(?:{'|'.join(forms)})")
    return re.compile("".join(parts))


class Scrubber:
    """The secrets of one deliverer's settings (a Bearer token, the url's, the password
    of the environment's proxy it posts through), and `scrub()`, which writes each form
    of them found in a text as "***"."""

    def __init__(self, token: str | None, url: str | None,
                 proxy: httpx.Proxy | None = None) -> None:
        # Every form a secret takes in an error text: as given, as repr() quotes it (b'…'
        # in h11's errors), percent-encoded (in a url), and as written in the url.
        # Longest first, so that no form is cut by a shorter one inside it.
        # And as JSON writes them in an answer: '"' and '\\' escaped, '/' as '\\/' (PHP);
        # as HTML or XML does in an error page ('&' '<' '>' and quotes as entities, in
        # any spelling: _markup_pattern).
        secrets = [x for x in (token, *_url_secrets(url), *_proxy_secrets(proxy)) if x]
        self._forms = sorted({form for x in secrets for form in (x, repr(x)[1:-1],
                                                 urllib.parse.quote(x, safe=""),
                                                 json.dumps(x)[1:-1],
                                                 json.dumps(x)[1:-1].replace("/", "\\/"))},
                             key=len, reverse=True)
        self._markup = [p for x in secrets if (p := _markup_pattern(x)) is not None]
        self._json = [_json_escaped_pattern(x) for x in secrets]

    def __bool__(self) -> bool:
        """Whether there is any secret to take out."""
        return bool(self._forms)

    def scrub(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        for pattern in self._markup:
            text = pattern.sub("***", text)
        if "\\" in text:  # no escape, no escaped form: the common case costs one look
            for pattern in self._json:
                text = pattern.sub("***", text)
        return text
