"""Deliver: post a bundle to the operator (SPEC §5), or write it to a folder.

The response classification lives in `classify()` and nowhere else; httpx
errors are mapped to our Retryable / Paused / Rejected here, at the edge.
The transport is injectable (httpx.MockTransport in unit tests).
"""

from __future__ import annotations

import base64
import email.utils
import http.cookiejar
import json
import math
import os
import random
import re
import shutil
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import certifi
import httpx

from daemon import __version__
from daemon.bundle import Bundle
from daemon.config import DeliveryConfig
from daemon.config_values import has_userinfo
from daemon.errors import (
    OS_FIX,
    ConfigError,
    DeliveryError,
    Paused,
    Rejected,
    Retryable,
    describe,
)
from daemon.fsops import copy_file, fsync_dir, open_regular, write_json
from daemon.manifest import sent_parts
from daemon.names import folder_name_for_id

RETRY_STATUSES = {408, 409, 425, 429}
PAUSE_STATUSES = {401, 403, 404}
BODY_LIMIT = 2000
# An answer's body is read up to ANSWER_LIMIT bytes, and for timeout_seconds after its
# status line (a receiver that drips bytes, or sends without end, cannot hold a worker
# or the memory); a 2xx JSON body over RECEIPT_JSON_LIMIT is kept as cut text.
ANSWER_LIMIT = 1 << 20
RECEIPT_JSON_LIMIT = 64 << 10
INVOICE_TYPES = {"ubl": "application/xml", "svefaktura": "application/xml",
                 "pdf": "application/pdf", "other": "application/octet-stream"}


@dataclass(frozen=True)
class Receipt:
    status: int
    body: Any
    receipt_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "receipt_id": self.receipt_id}


class Deliverer(Protocol):
    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: digits (RFC 9110: nothing else, not "1_000" nor "inf"),
    or an HTTP date."""
    if not value:
        return None
    if (digits := value.strip()).isascii() and digits.isdigit():
        return float(digits)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


RETRY_AFTER_LIMIT = 86400.0  # a Retry-After over 24 h counts as 24 h


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped at `cap`; a server's
    Retry-After is a floor even above the cap (SPEC §5.1): a receiver that
    says "come back in an hour" is not asked again every five minutes."""
    # Retries go on without limit: clamp the exponent, or 2**n overflows a float.
    ceiling = min(cap, base * 2.0 ** min(max(0, attempt - 1), 60))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_LIMIT))
    return delay


def _decoded(content: bytes) -> Any:
    """A JSON answer decoded from its bytes (a byte-order mark, UTF-16 or UTF-32 as JSON
    allows), or _NOT_JSON: also for NaN or infinity, which strict readers of the receipt
    could not read, and for nesting past the parser. Lone surrogates ("\\ud800") become
    U+FFFD: they decode, but no UTF-8 file or database can hold them."""
    try:
        value = json.loads(content, parse_constant=_not_finite, parse_float=_finite_float)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        return _NOT_JSON
    if b"\\u" in content or b"\\U" in content:
        return scrub_json(value, _no_lone_surrogates)
    return value


_NOT_JSON = object()
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_finite(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_lone_surrogates(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def _body(response: httpx.Response, scrub: Callable[[str], str]) -> tuple[Any, str | None]:
    """A 2xx answer as kept in the receipt (JSON as JSON while it is small, anything
    else as text cut to BODY_LIMIT), and its receipt_id."""
    decoded = _decoded(response.content)
    if decoded is _NOT_JSON or len(response.content) > RECEIPT_JSON_LIMIT:
        return scrub(response.text)[:BODY_LIMIT], _receipt_id(decoded)
    return decoded, _receipt_id(decoded)


def _receipt_id(decoded: Any) -> str | None:
    """A string or a number; an object, a list or true is no receipt id anyone could
    quote."""
    value = decoded.get("receipt_id") if isinstance(decoded, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _same(text: str) -> str:
    return text


def scrub_json(value: Any, scrub: Callable[[str], str]) -> Any:
    """`scrub` on every string of a decoded JSON value, keys included."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_json(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, scrub) for v in value]
    return value


def _error_text(response: httpx.Response, scrub: Callable[[str], str]) -> str:
    """An error answer as kept: a JSON one decoded, scrubbed and written again (however
    it escaped its strings), anything else scrubbed whole; then cut to BODY_LIMIT."""
    if scrub is _same:
        return response.text[:BODY_LIMIT]
    decoded = _decoded(response.content)
    if decoded is _NOT_JSON:
        return scrub(response.text)[:BODY_LIMIT]
    return json.dumps(scrub_json(decoded, scrub), ensure_ascii=False)[:BODY_LIMIT]


def classify(response: httpx.Response, scrub: Callable[[str], str] = _same) -> Receipt:
    """The SPEC §5.1 table: a Receipt for 2xx, else the DeliveryError to act on.
    `scrub` runs over a text answer before it is cut to BODY_LIMIT, so that a secret
    the cut would split is still found whole."""
    status = response.status_code
    if 200 <= status < 300:
        return Receipt(status, *_body(response, scrub))
    text = _error_text(response, scrub)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status in RETRY_STATUSES or status >= 500:
        raise Retryable(f"HTTP {status} from the receiver", status, text, retry_after)
    if status in PAUSE_STATUSES:
        raise Paused(f"HTTP {status}: check [delivery] url and token", status, text, retry_after)
    if 300 <= status < 400:
        # httpx does not follow redirects (a POST body would be lost on many);
        # a redirecting url is our configuration problem, not the bundle's.
        where = response.headers.get("Location", "?")
        raise Paused(f"HTTP {status} redirect to {where}: set [delivery] url to the final "
                     "address", status, text, retry_after)
    raise Rejected(f"the receiver rejected the bundle with HTTP {status}", status, text)


WRITE_SIZE = 64 * 1024


class Coalesced(httpx.SyncByteStream):
    """A multipart body, still streamed, in writes of at least WRITE_SIZE bytes.

    httpx yields every part header, boundary and CRLF as a chunk of its own,
    each a send() of a few bytes (about ten per bundle); the receiver then
    reads and parses as many small segments. Joined, a typical bundle goes in
    three writes, and a large file still never sits whole in memory.
    """

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[bytes]:
        # Pieces are joined once (a file's own 64 KiB chunk is passed on as it is):
        # each byte is copied at most once here.
        pending: list[bytes] = []
        size = 0
        for chunk in self._parts:
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_SIZE:
                yield pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                size = 0
        if pending:
            yield b"".join(pending)


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: no Cookie header ever goes out."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass


def _proxies_from_environment() -> bool:
    """A proxy variable httpx would honour is set (http_proxy, https_proxy, all_proxy, any
    case); NO_PROXY is left to httpx, which then decides per url."""
    found = urllib.request.getproxies()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


def tls_verify(cfg: DeliveryConfig) -> bool | ssl.SSLContext:
    """httpx's `verify`: True or False as configured, or a context with the CA bundle
    and the client certificate loaded (httpx no longer takes paths for either).
    ConfigError, naming the setting and its file, when a file does not load."""
    if isinstance(cfg.verify, bool) and not cfg.client_cert:
        return cfg.verify
    # ssl's errors name no file: one that cannot be read is found first, and named.
    for setting, path in (("verify", cfg.verify), ("client_cert", cfg.client_cert),
                          ("client_key", cfg.client_key)):
        if path and not isinstance(path, bool):
            try:
                open(path, "rb").close()
            except OSError as exc:
                raise _unusable(f"{setting} = {str(path)!r}", exc, "make the file readable "
                                "by the user outboxd runs as") from None
    # verify = true: the same CAs httpx trusts without a client certificate (certifi's),
    # not the system's, so adding a certificate does not change whom we trust.
    try:
        context = ssl.create_default_context(
            cafile=cfg.verify if isinstance(cfg.verify, str) else certifi.where())
    except (OSError, ssl.SSLError) as exc:
        raise _unusable(f"verify = {cfg.verify!r}", exc, "point verify to a PEM file of CA "
                        "certificates, or set it to true") from None
    if cfg.verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cfg.client_cert:
        try:
            # A callback, so that OpenSSL never prompts on a terminal for a passphrase.
            context.load_cert_chain(str(cfg.client_cert),
                                    str(cfg.client_key) if cfg.client_key else None,
                                    password=_no_passphrase)
        except _Encrypted:
            raise _unusable(f"client_key = {str(cfg.client_key)!r}" if cfg.client_key
                            else f"client_cert = {str(cfg.client_cert)!r}",
                            "the private key is protected by a passphrase, which outboxd "
                            "cannot be given", "store the key without a passphrase, "
                            "readable only by the outboxd user") from None
        except (OSError, ssl.SSLError) as exc:
            raise _unusable(f"client_cert = {str(cfg.client_cert)!r}" + (
                f", client_key = {str(cfg.client_key)!r}" if cfg.client_key else ""), exc,
                "client_cert must be a PEM certificate and client_key its PEM private key "
                "(or client_cert a PEM file holding both)") from None
    return context


def read_answer(response: httpx.Response, seconds: float) -> None:
    """Read and close the answer's body: at most ANSWER_LIMIT bytes, and for at most
    `seconds` after its status line (httpx's timeouts are per read: a receiver sending a
    byte a second would hold the worker for ever). What is left is not read, and a body
    that does not decode (a false Content-Encoding) is replaced: a line says so, and the
    status line decides what the answer means, as for any other answer."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk[:ANSWER_LIMIT - size])
            size += len(chunks[-1])
            if size >= ANSWER_LIMIT:
                chunks.append(f" (the answer was cut at {ANSWER_LIMIT} bytes)".encode())
                break
            if time.monotonic() > deadline:
                chunks.append(f" (the answer did not end within {seconds:g} s; the rest "
                              "was not read)".encode())
                break
    except httpx.DecodingError as exc:
        chunks = [f"(the answer's body could not be decoded: {exc})".encode()]
    finally:
        response.close()
    # What Response.read() keeps; set here because the body is read by these rules.
    response._content = b"".join(chunks)


class _Encrypted(Exception):
    pass


def transport_error(cfg: DeliveryConfig, exc: OSError) -> ConfigError:
    """An OSError while the transport is built (TLS files are ConfigErrors already):
    a directory target that cannot be made, or the CAs httpx reads itself (verify =
    true) from the environment's SSL_CERT_FILE or SSL_CERT_DIR."""
    if cfg.transport == "directory":
        return ConfigError(f"[delivery] target = {str(cfg.target)!r} cannot be created: "
                           f"{describe(exc)} — {OS_FIX}")
    env = [f"{k}={os.environ[k]}" for k in ("SSL_CERT_FILE", "SSL_CERT_DIR")
           if os.environ.get(k)]
    return _unusable("verify = true", exc, f"the environment sets {', '.join(env)}: fix or "
                     "unset it" if env else "check verify")


def _no_passphrase() -> str:
    raise _Encrypted


def _unusable(setting: str, why: OSError | ssl.SSLError | str, fix: str) -> ConfigError:
    if isinstance(why, OSError) and not isinstance(why, ssl.SSLError):
        why = describe(why)
    return ConfigError(f"[delivery] {setting} cannot be used: {why} — {fix}")


def _basic(url: str | None) -> str | None:
    """The credentials of the url's userinfo as a Basic Authorization header carries them."""
    try:
        parsed = httpx.URL(url or "")
    except httpx.InvalidURL:
        return None
    if not parsed.password:
        return None
    pair = f"{parsed.username}:{parsed.password}".encode()
    return base64.b64encode(pair).decode("ascii")


def _passwords(url: str | None) -> list[str]:
    """The password in the url's userinfo (Basic auth), decoded and as written in the
    url (any case of %-escapes): an error may quote either."""
    try:
        parsed = httpx.URL(url or "")
    except httpx.InvalidURL:
        return []
    written = parsed.userinfo.decode("ascii", "replace").partition(":")[2]
    return [p for p in (parsed.password, written) if p]


class HttpDeliverer:
    # A delivery repeated with the same Idempotency-Key is recognised by the
    # receiver (SPEC §5.1): the receipt may wait for its archive to be durable
    # (finish.py). Not so a directory target, which a transfer agent may have
    # emptied before the repeat.
    idempotent = True

    def __init__(self, cfg: DeliveryConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        # identity: an answer is a few hundred bytes; a compressed one could unpack to
        # gigabytes before read_answer's limit is reached.
        headers = {"User-Agent": f"outboxd/{__version__}", "Accept-Encoding": "identity"}
        token = cfg.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Every form a secret takes in an error text: as given, as repr() quotes it (b'…'
        # in h11's errors), percent-encoded (in a url), and as written in the url.
        # Longest first, so that no form is cut by a shorter one inside it.
        # A receiver that echoes the request's headers quotes Basic auth in base64.
        # And as JSON writes them in an answer: '"' and '\\' escaped, '/' as '\\/' (PHP).
        self._secrets = sorted({form for x in (token, *_passwords(cfg.url), _basic(cfg.url))
                                if x for form in (x, repr(x)[1:-1],
                                                  urllib.parse.quote(x, safe=""),
                                                  json.dumps(x)[1:-1],
                                                  json.dumps(x)[1:-1].replace("/", "\\/"))},
                               key=len, reverse=True)
        verify = tls_verify(cfg)
        limits = httpx.Limits(max_connections=cfg.concurrency)
        if transport is None and not _proxies_from_environment() \
                and not has_userinfo(cfg.url):
            # The transport the Client would make, made here so that a POST can go to
            # it directly (`send`).
            transport = httpx.HTTPTransport(verify=verify, limits=limits)
        # None: a proxy from the environment (HTTPS_PROXY …) applies, or the url holds a
        # user and password (Basic auth): the Client mounts the proxy (only when it makes
        # the transport itself) or adds the header, and every POST goes through it.
        self._transport = transport
        # When transport= is given httpx ignores verify/limits here: they went into the
        # transport above.
        self.client = httpx.Client(
            headers=headers, transport=transport, verify=verify,
            timeout=httpx.Timeout(cfg.timeout_seconds, connect=cfg.connect_timeout_seconds),
            limits=limits,
            # The protocol has no use for cookies (SPEC §5.1: a bearer token); a jar
            # that keeps none spares parsing every response for Set-Cookie.
            cookies=_NoCookies(),
        )
        # Parsed once: httpx would parse the url string again for every request.
        self._url: httpx.URL | None = None

    def close(self) -> None:
        self.client.close()

    def post_url(self) -> httpx.URL:
        if self._url is None:
            assert self.cfg.url is not None  # config guarantees it for transport = "http"
            self._url = httpx.URL(self.cfg.url)  # raises InvalidURL, as a request would
        return self._url

    def send(self, request: httpx.Request) -> httpx.Response:
        """The response, its body read (read_answer). Client.send wraps the transport in
        what the daemon does not use (auth flows, redirect and cookie handling, event
        hooks) at a cost of ~0.2 ms of CPU a POST; without a proxy the request goes to
        the transport."""
        if self._transport is None:
            response = self.client.send(request, stream=True)
        else:
            response = self._transport.handle_request(request)
            response.request = request
        read_answer(response, self.cfg.timeout_seconds)
        return response

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        inv = bundle.invoice_file
        with ExitStack() as stack:
            # Open file objects: httpx streams them in chunks with a known length.
            files: list[tuple[str, tuple[str | None, Any, str]]] = [
                ("manifest", (None, json.dumps(manifest, ensure_ascii=False).encode("utf-8"),
                              "application/json")),
                ("invoice", (manifest["invoice_file"]["name"],
                             stack.enter_context(open_regular(inv.path, inv.name)),
                             INVOICE_TYPES[inv.format])),
            ]
            for n, (att, name) in enumerate(sent_parts(bundle, manifest), start=1):
                _, path, ctype, _, _ = att.sent  # a converted image goes as its PDF
                files.append((f"attachment-{n}", (name,
                              stack.enter_context(open_regular(path, att.rel)), ctype)))
            try:
                request = self.client.build_request(
                    "POST", self.post_url(), files=files,
                    headers={"Idempotency-Key": manifest["bundle_id"]})
                request.stream = Coalesced(request.stream)  # type: ignore[arg-type]
                response = self.send(request)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                raise self.failure(exc) from None
        return self.answer(response)

    def answer(self, response: httpx.Response) -> Receipt:
        """classify(), with the token and the url's password taken out of what the
        receiver said: an answer that echoes our headers would otherwise put them in
        the journal, the papers and the status page on the share (also ubl-embedded's)."""
        try:
            receipt = classify(response, self.scrub if self._secrets else _same)
        except DeliveryError as exc:
            raise type(exc)(self.scrub(str(exc)), exc.status, self.scrub(exc.body),
                            exc.retry_after) from None
        if not self._secrets:
            return receipt
        return Receipt(receipt.status, scrub_json(receipt.body, self.scrub),
                       receipt.receipt_id and self.scrub(receipt.receipt_id))

    def failure(self, exc: httpx.TransportError | httpx.InvalidURL) -> Retryable | Paused:
        """What an httpx error on the way to the receiver means (also for ubl-embedded's
        POSTs): its text goes to the log, the journal, `outboxd status` and the status
        page on the share, so it never carries the token or the url's password."""
        if isinstance(exc, httpx.TimeoutException):
            return Retryable(f"timed out talking to the receiver ({type(exc).__name__})")
        if isinstance(exc, httpx.LocalProtocolError):
            # Our own request was refused before it left (h11 quotes the header it
            # refuses, token and all): a retry would meet the same; the settings must
            # change.
            return Paused("the request could not be made: a header or the url is not "
                          "valid HTTP — check [delivery] token and url")
        if isinstance(exc, httpx.InvalidURL):
            return Paused(self.scrub(f"[delivery] url is not usable: {exc}"))
        return Retryable(self.scrub(f"cannot reach the receiver: "
                                     f"{exc or type(exc).__name__}"))

    def scrub(self, text: str) -> str:
        for form in self._secrets:
            text = text.replace(form, "***")
        return text


class DirectoryDeliverer:
    """SPEC §5.2: TARGET/.tmp-BUNDLEID/ renamed to TARGET/BUNDLEID/."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def close(self) -> None:
        pass

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        bid = manifest["bundle_id"]
        final = self.target / bid
        body = {"delivered_to": str(final)}
        if final.exists():
            return Receipt(200, {**body, "already_delivered": True}, None)
        tmp = self.target / f".tmp-{bid}"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            write_json(tmp / "manifest.json", manifest)
            # Every file under its manifest `name`, the one field that is right for a
            # folded name and for a converted image alike (original_name is neither).
            copy_file(bundle.invoice_file.path, tmp / manifest["invoice_file"]["name"])
            for att, name in sent_parts(bundle, manifest):
                folder = tmp / "attachments" / folder_name_for_id(att.invoice_id)
                folder.mkdir(parents=True, exist_ok=True)
                _, path, _, _, _ = att.sent  # a converted image goes as its PDF
                copy_file(path, folder / name)
            tmp.rename(final)
            fsync_dir(self.target)
        except OSError as exc:
            raise Retryable(f"cannot write to [delivery] target {self.target}: "
                            f"{exc.strerror}") from None
        return Receipt(201, body, None)


def make_deliverer(cfg: DeliveryConfig) -> Deliverer:
    if cfg.format == "ubl-embedded":
        from daemon.einvoice.transport import EmbeddedDeliverer
        if cfg.transport == "directory":
            assert cfg.target is not None
            cfg.target.mkdir(parents=True, exist_ok=True)
        return EmbeddedDeliverer(cfg)
    if cfg.transport == "directory":
        assert cfg.target is not None
        cfg.target.mkdir(parents=True, exist_ok=True)
        return DirectoryDeliverer(cfg.target)
    return HttpDeliverer(cfg)
