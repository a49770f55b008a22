"""Deliver: post a bundle to the operator (docs/protocol.md), or write it to a folder.

What an answer means is answers.py's (`classify()`, and nowhere else); httpx's
errors are mapped to our Retryable / Paused / Rejected here, at the edge; TLS
settings are tls.py's. The transport is injectable (httpx.MockTransport in unit
tests).
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from typing import Any, Protocol

import httpx

from daemon import __version__, logs
from daemon.bundle import Bundle
from daemon.configuration.config import DeliveryConfig
from daemon.configuration.config_values import has_userinfo, receiver_address
from daemon.delivery.answer_body import AnswerCut, read_answer
from daemon.delivery.answer_deadline import DeadlineTransport
from daemon.delivery.answers import (
    Receipt,
    classify,
    unchanged,
)
from daemon.delivery.directory import DirectoryDeliverer
from daemon.delivery.failures import transport_failure
from daemon.delivery.parts import OpenWhenRead
from daemon.delivery.proxies import environment_proxy
from daemon.delivery.scrub import Scrubber
from daemon.delivery.tls import environment_cas_error, tls_verify
from daemon.errors import Paused, Retryable
from daemon.journal.records import Row, shown_state
from daemon.manifest import sent_parts

INVOICE_TYPES = {"ubl": "application/xml", "svefaktura": "application/xml",
                 "pdf": "application/pdf", "other": "application/octet-stream"}


class Deliverer(Protocol):
    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt: ...

    def close(self) -> None: ...


class KnownBundles(Protocol):
    """What the journal tells a deliverer: the bundle of an id, if this daemon has sent
    it, has it on its way or posted it before it was quarantined (one look-up in the
    index of bundle ids)."""

    def posted_before(self, bundle_id: str) -> Row | None: ...


class Shared:
    """The deliverer the delivery attempts take, and a reload replaces. The old one is
    closed once the attempts under way with it have ended: closing its client under
    them broke their POSTs, which the receiver had, and sent them again."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.current = deliverer
        self._users: dict[int, int] = {}  # attempts under way, by id() of their deliverer
        self._retired: dict[int, Deliverer] = {}  # replaced, waiting for those to end
        self._lock = threading.Lock()

    def replace(self, new: Deliverer) -> None:
        with self._lock:
            old, self.current = self.current, new
            if self._users.get(id(old)):
                self._retired[id(old)] = old
                return
        old.close()

    def take(self) -> Deliverer:
        """The deliverer for one attempt; give_back() it when the attempt ends."""
        with self._lock:
            d = self.current
            self._users[id(d)] = self._users.get(id(d), 0) + 1
        return d

    def give_back(self, d: Deliverer) -> None:
        with self._lock:
            left = self._users.pop(id(d)) - 1
            if left:
                self._users[id(d)] = left
                return
            retired = self._retired.pop(id(d), None)
        if retired is not None:
            try:
                retired.close()
            except Exception as exc:  # noqa: BLE001 - the attempt's outcome stands
                scrub = getattr(retired, "scrub", str)  # never the token, whatever it says
                logs.get().warning("the replaced deliverer did not close cleanly",
                                   error=scrub(f"{type(exc).__name__}: {exc}"))


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
        # All handed to the transport: a 2xx that came while the body was still being
        # written (the receiver closed) is no receipt (answers.classify).
        self.finished = False

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
        self.finished = True


def multipart_boundary(bundle_id: str) -> str:
    """The multipart boundary of a bundle's POST: the same on every attempt, so that a
    retry (after a reset in the upload, a timeout, a 5xx, a restart) carries the bytes
    of the first, the manifest's created_at and warnings aside (docs/protocol.md).
    httpx draws a random one per request: a receiver that fingerprints a request by
    the hash of its body, as the Idempotency-Key draft allows, took every retry for
    the key reused with another payload (422), and the bundle it had was quarantined.
    Derived from the bundle id, which covers the SHA-256 of every file sent (of an
    image sent as a PDF, the image's): no part can hold it (a file would have to
    contain a hash of its own hash), and the
    manifest, which holds the id, does not hold this hash of it."""
    return hashlib.sha256(f"outboxd multipart {bundle_id}".encode()).hexdigest()[:32]


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: no Cookie header ever goes out."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass


class HttpDeliverer:
    # A delivery repeated with the same Idempotency-Key is recognised by the
    # receiver (docs/protocol.md, Idempotency): the receipt may wait for its archive to be durable
    # (finish.py). Not so a directory target, which a transfer agent may have
    # emptied before the repeat.
    idempotent = True

    def __init__(self, cfg: DeliveryConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        # receipt.json names it: after a reload to another url, which receiver took a bundle.
        self.destination = receiver_address(cfg.url or "")
        # identity: an answer is a few hundred bytes; a compressed one could unpack to
        # gigabytes before read_answer's limit is reached.
        headers = {"User-Agent": f"outboxd/{__version__}", "Accept-Encoding": "identity"}
        token = cfg.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify = tls_verify(cfg)  # its ConfigError also with a transport given
        # A transport given (httpx.MockTransport in tests) takes every POST directly.
        self._direct = transport is not None
        self._proxy_at: str | None = None  # "HOST:PORT" of the environment's proxy, if any
        if transport is None:
            # httpx's timeouts are per read and send: the upload and the answer as wholes
            # are bounded by this transport (answer_deadline.py), also through a proxy of
            # the environment, so the Client is given it instead of making its own.
            try:
                url: httpx.URL | None = httpx.URL(cfg.url or "")
            except httpx.InvalidURL:
                url = None  # the POST says so (failure(): "url is not usable")
            proxy = environment_proxy(url) if url is not None else None
            if proxy is not None:
                # Errors on the way name it: "cannot reach the receiver" sent the admin
                # to the operator when the proxy in between was down or refused.
                port = proxy.url.port or {"http": 80, "https": 443}.get(proxy.url.scheme, 1080)
                self._proxy_at = f"{proxy.url.host}:{port}"
            transport = DeadlineTransport(cfg.timeout_seconds, verify,
                                          httpx.Limits(max_connections=cfg.concurrency), proxy,
                                          tls=url is None or url.scheme != "http")
            # A url with a user and password (Basic auth): the POST goes through
            # Client.send, which adds the header.
            self._direct = not has_userinfo(cfg.url)
        else:
            proxy = None
        # Made once the proxy is known: its password is a secret of ours too.
        self._scrubber = Scrubber(token, cfg.url, proxy)
        self._transport = transport
        self.client = httpx.Client(
            headers=headers, transport=transport,
            timeout=httpx.Timeout(cfg.timeout_seconds, connect=cfg.connect_timeout_seconds),
            # The protocol has no use for cookies (it authenticates with a bearer token); a jar
            # that keeps none spares parsing every response for Set-Cookie.
            cookies=_NoCookies(),
        )
        # Parsed once: httpx would parse the url string again for every request.
        self._url: httpx.URL | None = None
        # Bound by finish.py before each attempt: whose id a 2xx names (other_bundle).
        self._journal: KnownBundles | None = None

    def close(self) -> None:
        self.client.close()

    def bind_journal(self, journal: KnownBundles) -> None:
        self._journal = journal

    def other_bundle(self, bundle_id: str) -> str | None:
        """Which other bundle of this daemon's has `bundle_id` (claimed, on its way, sent,
        or posted and then quarantined), as an error names it; None for an id that is
        none of ours. Only a 2xx naming an id of our form that is not the request's asks
        (answers.classify), so a receiver echoing ours costs nothing, and one that names
        its own SHA-256 one look-up in the journal's index of bundle ids a bundle."""
        assert self._journal is not None
        row = self._journal.posted_before(bundle_id)
        if row is None:
            return None
        return (f"{row.invoice_file} ({shown_state(row.state, bool(row.last_error))}), "
                "another bundle of this outboxd")

    def post_url(self) -> httpx.URL:
        if self._url is None:
            assert self.cfg.url is not None  # config guarantees it for transport = "http"
            self._url = httpx.URL(self.cfg.url)  # raises InvalidURL, as a request would
        return self._url

    def send(self, request: httpx.Request) -> httpx.Response:
        """The response, its body read (read_answer). Client.send wraps the transport in
        what the daemon does not use (auth flows, redirect and cookie handling, event
        hooks) at a cost of ~0.2 ms of CPU a POST, so the request goes to the transport
        (which holds the proxy, if any), unless the url holds a user and password:
        Client.send adds the Basic header."""
        if self._direct:
            response = self._transport.handle_request(request)
            response.request = request
        else:
            response = self.client.send(request, stream=True)
        try:
            read_answer(response, self.cfg.timeout_seconds)
        except httpx.TransportError as exc:
            # The status line came and the body did not come whole: the receiver or a
            # proxy closed the connection in it, or it was still coming when the
            # answer's time was over. An answer known in part is no answer, whatever
            # its status (docs/protocol.md, Answers): a 2xx cut so is no receipt, and
            # no reading of it is proof that the receiver has the bundle (a server that
            # fails after its status line went out can only cut the body). The attempt
            # is repeated with the same Idempotency-Key, which a receiver that has the
            # bundle answers with its first answer, whole. Said as what happened: the
            # receiver was reached.
            how = (f"did not come whole: {exc}" if isinstance(exc, AnswerCut) else
                   f"broke off before its end ({str(exc) or type(exc).__name__})")
            raise Retryable(self.scrub(
                f"the receiver's answer (HTTP {response.status_code}) {how}; it is asked "
                "again with the same Idempotency-Key")) from None
        return response

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        inv = bundle.invoice_file
        with ExitStack() as stack:
            # File objects that httpx streams in chunks with a known length, each open
            # only while its part is sent: a bundle may hold thousands of attachments.
            files: list[tuple[str, tuple[str | None, Any, str]]] = [
                ("manifest", (None, json.dumps(manifest, ensure_ascii=False).encode("utf-8"),
                              "application/json")),
                ("invoice", (manifest["invoice_file"]["name"], stack.enter_context(
                    closing(OpenWhenRead(inv.where, inv.name, inv.size, inv.sha256))),
                    INVOICE_TYPES[inv.format])),
            ]
            for n, (att, name) in enumerate(sent_parts(bundle, manifest), start=1):
                _, _, ctype, size, sha = att.sent  # a converted image goes as its PDF
                files.append((f"attachment-{n}", (name, stack.enter_context(
                    closing(OpenWhenRead(att.sent_where, att.rel, size, sha))), ctype)))
            try:
                bid = manifest["bundle_id"]
                request = self.client.build_request(
                    "POST", self.post_url(), files=files,
                    headers={"Idempotency-Key": bid, "Content-Type":
                             f"multipart/form-data; boundary={multipart_boundary(bid)}"})
                body = Coalesced(request.stream)  # type: ignore[arg-type]
                request.stream = body
                response = self.send(request)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                raise self.failure(exc) from None
        return self.answer(response, {"bundle_id": bid, "idempotency_key": bid},
                           whole=body.finished,
                           ours=None if self._journal is None else self.other_bundle)

    def answer(self, response: httpx.Response, sent: dict[str, str] | None = None,
               whole: bool = True, ours: Callable[[str], str | None] | None = None
               ) -> Receipt:
        """classify() (`sent`: the request's ids; `whole`: its body all written; `ours`:
        whose id of our form an answer names), with the token and the url's password
        taken out of what the receiver said: an answer that echoes our headers would
        otherwise put them in the journal, the papers and the status page on the share
        (also ubl-embedded's)."""
        return classify(response, self._scrubber if self._scrubber else unchanged, sent=sent,
                        whole=whole, ours=ours)

    def failure(self, exc: httpx.TransportError | httpx.InvalidURL) -> Retryable | Paused:
        """What an httpx error on the way to the receiver means (also for ubl-embedded's
        POSTs): failures.py's, said with this receiver's address and scrubbed."""
        return transport_failure(exc, self._proxy_at, self._where(), self.scrub,
                                 client_cert=bool(self.cfg.client_cert))

    def _where(self) -> str:
        """" at HOST:PORT": a resolver's "Name or service not known" names no host, and
        an admin with several outboxd configurations must see which one it could not find."""
        try:
            url = self.post_url()
        except httpx.InvalidURL:
            return ""
        return f" at {url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"

    def scrub(self, text: str) -> str:
        """`text` without the token, the url's password or its keys (scrub.py)."""
        return self._scrubber.scrub(text)


def make_deliverer(cfg: DeliveryConfig) -> Deliverer:
    """The transport the settings ask for. What makes building it fail (CAs httpx reads
    from the environment) is a ConfigError, as the TLS files' are: for `run`, a reload and
    `config --check` alike. A directory target must exist already (prepare_folders)."""
    try:
        return _make_deliverer(cfg)
    except OSError as exc:
        raise environment_cas_error(exc) from None


def _make_deliverer(cfg: DeliveryConfig) -> Deliverer:
    # A directory target is made by config_folders.prepare_folders (at start with its
    # parents, at a reload never through a share that is away).
    if cfg.format == "ubl-embedded":
        from daemon.einvoice.transport import EmbeddedDeliverer
        return EmbeddedDeliverer(cfg)
    if cfg.transport == "directory":
        assert cfg.target is not None
        return DirectoryDeliverer(cfg.target)
    return HttpDeliverer(cfg)
