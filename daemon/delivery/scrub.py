"""Our secrets — the token, the url's password, the keys in its query, the password of
the environment's proxy — in every form a text may quote them, and taken out of it: what
a receiver answers (an error page that quotes the request, a header it echoes) and
httpx's errors, before either is logged, kept in the journal and the papers, or shown on
the status page (deliver.py)."""

from __future__ import annotations

import base64
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from daemon.configuration.config_values import secret_param_names, secret_params
from daemon.delivery.proxies import environment_proxy
from daemon.delivery.spelled import (
    APART_AFTER,
    JOINERS,
    SHORT_SECRET,
    Spelled,
    apart_before,
)
from daemon.errors import ConfigError

if TYPE_CHECKING:
    from daemon.configuration.config_sections import DeliveryConfig

# A query value shorter than this is no credential, and taken out of every answer it
# would garble the answer (a "1" of `?auth=1` out of "HTTP 401"). A password or token
# that short is one, and is taken out where it stands apart (spelled.py, SHORT_SECRET).
MIN_QUERY_SECRET = 8
# head() scrubs a text's first HEAD_FIRST characters (or four times what is kept), then
# four times as many, up to HEAD_MOST: a MiB of escapes spelling the token took a
# delivery worker, and the interpreter's lock, a second at every answer; 64 KiB at most
# take some 60 ms. Only an answer whose first HEAD_MOST characters are nearly all our
# secrets keeps less than its limit.
HEAD_FIRST = 4096
HEAD_MOST = 64 << 10


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


class Scrubber:
    """The secrets of one deliverer's settings (a Bearer token, the url's, the password
    of the environment's proxy it posts through), and `scrub()`, which writes each form
    of them found in a text as "***"."""

    def __init__(self, token: str | None, url: str | None,
                 proxy: httpx.Proxy | None = None) -> None:
        # Every form a secret takes in an error text: as given, as repr() quotes it (b'…'
        # in h11's errors), percent-encoded (in a url), and as written in the url.
        # Longest first, so that no form is cut by a shorter one inside it.
        # And spelled with escapes, each character its own way (JSON's, HTML's, a
        # url's %): spelled.py, whose search needs an escape in the text.
        # A form shorter than SHORT_SECRET only where it stands apart (`_Form`).
        secrets = [x for x in (token, *_url_secrets(url), *_proxy_secrets(proxy)) if x]
        self._forms = [_Form.of(form) for form in sorted(
            {form for x in secrets for form in (x, repr(x)[1:-1],
                                                urllib.parse.quote(x, safe=""))},
            key=len, reverse=True)]
        self._spelled = Spelled(secrets)

    def __bool__(self) -> bool:
        """Whether there is any secret to take out."""
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        return self.scrub(text)

    def scrub(self, text: str) -> str:
        text = self._spelled.scrub(text)
        for form in self._forms:
            text = form.replace(text)
        return text

    def head(self, text: str, limit: int) -> tuple[str, bool]:
        """scrub(text)[:limit] and True, in time bounded by `limit` and HEAD_MOST, not
        by the text: a prefix of the text is scrubbed, and a longer one only while
        what it gave is shorter (secrets taken out as ***). Where HEAD_MOST characters
        give less than `limit`, what they give, a prefix of scrub(text), and False: it
        ends where a secret may be spelled across, or at what was read."""
        if limit <= 0:
            return "", True
        size = max(4 * limit, HEAD_FIRST)
        while len(text) > size:
            kept = self._settled(text[:size])
            if len(kept) >= limit:
                return kept[:limit], True
            if size >= HEAD_MOST:
                return kept, False
            size = min(4 * size, HEAD_MOST)
        return self.scrub(text)[:limit], True

    def _settled(self, head: str) -> str:
        """What scrub() makes of any text that begins with `head`, as far as `head`
        tells (a prefix of it): spelled.py's, then each form replaced as scrub()
        replaces them, short of an end that the next characters could make one."""
        text = self._spelled.head(head)
        for form in self._forms:
            text = form.replace(form.short_of(text))
        return text


@dataclass(frozen=True)
class _Form:
    """One form of a secret, and (shorter than SHORT_SECRET) the pattern that finds it
    only where it stands apart: "1" in "password 1 rejected", not in "HTTP 401"."""
    text: str
    apart: re.Pattern[str] | None

    @classmethod
    def of(cls, text: str) -> _Form:
        return cls(text, None if len(text) >= SHORT_SECRET else
                   re.compile(re.escape(text) + apart_before(re.escape(text)) + APART_AFTER))

    def replace(self, text: str) -> str:
        if self.apart is None:
            return text.replace(self.text, "***")
        return self.apart.sub("***", text)

    def short_of(self, text: str) -> str:
        """`text` without an end that replace() could read otherwise were the text to
        go on: the start of the form where replace() would look for it, after the last
        form it finds (scanning from the left, never overlapping); and a short form
        whose standing apart the next characters decide (at the end, or before a last
        `.` or `-` that may join it to what follows) — also one that a cut of the start
        after it leaves at the end ("a1" of "a1a…" for a token "a1": joined to the "a"
        that is cut, it stands apart at the end, and replace() took it out)."""
        while (cut := self._short_of_once(text)) != text:
            text = cut
        return text

    def _short_of_once(self, text: str) -> str:
        form, end = self.text, 0
        if self.apart is None:
            found = text.find(form)
            while found >= 0:
                end = found + len(form)
                found = text.find(form, end)
        else:
            for m in self.apart.finditer(text):
                if m.end() == len(text) or (m.end() == len(text) - 1 and text[-1] in JOINERS):
                    return text[:m.start()]
                end = m.end()
        for at in range(max(end, len(text) - len(form) + 1), len(text)):
            if form.startswith(text[at:]):
                return text[:at]
        return text


def short_secrets_warning(cfg: DeliveryConfig, token_file: bool = True) -> str | None:
    """What to say of secrets shorter than SHORT_SECRET (the token, the url's password,
    the environment's proxy's): named, never shown nor measured. Said at each start and
    reload and by `config` (`token_file`: read it too, as `config --check` and `run`
    do), as an admin sees the others."""
    if cfg.transport != "http" or not cfg.url:
        return None
    try:
        url = httpx.URL(cfg.url)
        proxy = environment_proxy(url)
    except (httpx.InvalidURL, ConfigError):  # said by the check of the url, the proxy
        return None
    short = []
    token = cfg.token.get_secret_value() if cfg.token is not None else None
    if token is None and cfg.token_file is not None and token_file:
        try:
            token = cfg.bearer_token()
        except ConfigError:  # said by the check of token_file
            token = None
    if token is not None and len(token) < SHORT_SECRET:
        short.append("[delivery] token" if cfg.token is not None else
                     "the token of [delivery] token_file")
    if url.password and len(url.password) < SHORT_SECRET:
        short.append("the password in [delivery] url")
    if proxy is not None and proxy.auth is not None and 0 < len(proxy.auth[1]) < SHORT_SECRET:
        short.append("the password of the environment's proxy (HTTPS_PROXY, HTTP_PROXY or "
                     "ALL_PROXY)")
    # Never taken out (a flag such as `?auth=1`, MIN_QUERY_SECRET), so said apart.
    flags = list(dict.fromkeys(
        name for name, value in zip(secret_param_names(cfg.url), secret_params(cfg.url),
                                    strict=True)
        if 0 < len(urllib.parse.unquote_plus(value)) < MIN_QUERY_SECRET))
    flag_said = (f"the value of {', '.join(repr(n) for n in flags)} in the query of "
                 f"[delivery] url is shorter than {MIN_QUERY_SECRET} characters, so taken for "
                 "a flag and never taken out of what a receiver answers; if it is a "
                 "credential, ask the operator for a longer one") if flags else None
    if not short:
        return flag_said
    return (f"{flag_said}; " if flag_said else "") + (
            f"{' and '.join(short)} {'is' if len(short) == 1 else 'are'} shorter than "
            f"{SHORT_SECRET} characters, and such a secret is taken out of what a receiver "
            "answers (before the log, the journal, the papers in sent/ and quarantine/ or "
            "the status page keep it) only where it stands apart from letters and digits — "
            "taken out everywhere, a password \"1\" would garble \"HTTP 401\" and every "
            "receipt id holding a 1; quoted inside a longer word or number it stays readable "
            f"there. Ask the operator for one of {SHORT_SECRET} characters or more, which is "
            "taken out wherever it stands")
