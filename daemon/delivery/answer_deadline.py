"""The receiver's whole answer within `[delivery] timeout_seconds` (docs/protocol.md,
Answers): the HTTP transport every POST goes through, direct or by a proxy.

httpx's timeouts are per socket operation. A receiver that sends `102 Processing` every
few seconds (httpcore skips informational answers and reads on), or its status line a
byte at a time, meets every read's timeout and holds a delivery worker for ever; with
`concurrency` such answers no bundle goes out at all. Here each connection keeps one
clock per request: it starts at the first read after the request's writes (an upload,
however long a large body takes on a slow link, does not count), and each read waits
at most for what is left of it. When nothing is left the read fails as
httpcore.ReadTimeout, which reaches HttpDeliverer.failure as httpx.ReadTimeout: a
retry, nothing dropped. The body is under the same clock: an answer whose body is still
coming then did not come whole, and read_answer says so (AnswerCut): retried too.

The upload has a clock of its own. httpcore bounds each send() by the write timeout, and
a send returns once the receiver has taken in a few bytes: a receiver that reads the
request a little at a time, just often enough, held a delivery worker for as long as
the bundle's size divided by its pace (4 MB at 30 KB/s: over two minutes with
timeout_seconds = 3; an hour and more at the default 60). Each request's writes now
share `seconds` plus `seconds` for every MiB written (UPLOAD_MIB): at the default, at
least some 17 KiB/s on average, which any link a bundle goes over keeps. When that time
is up the write fails as httpcore.WriteTimeout, a retry like any timeout. A plain
connection's bytes go out by one sendall() under what is left of that time (httpcore's
own write would wait that long again after each partial send); a TLS stream's write is
one SSL write or one sendall() already, bounded as a whole.

Why a network backend: httpcore's `network_backend=` (public, on ConnectionPool,
HTTPProxy and SOCKSProxy) sees every read and write of every connection below the HTTP
parser, also after TLS is started (start_tls hands back a new stream, wrapped in turn)
and through a proxy's CONNECT. httpx has no bound on a whole exchange, and a watchdog
that closes the socket under a blocked recv would need the socket, which httpx keeps
to itself. httpx.HTTPTransport takes no backend (it builds its pool itself), and
swapping its private `_pool` would break silently on an upgrade: DeadlineTransport
does the same small job (httpx request in, httpx response out, httpcore's errors as
httpx's) on public API only.
"""

from __future__ import annotations

import ssl
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

from daemon.delivery.proxies import proxied_host, unbracketed

# The upload's time: `seconds`, and `seconds` again for each of these many bytes written.
UPLOAD_MIB = 1 << 20


# How the upload's timeout begins its figures (HttpDeliverer.failure keeps them).
UPLOAD_TOO_SLOW = "the receiver took in"


def _mib(size: int) -> str:
    return f"{size / UPLOAD_MIB:.1f} MiB"


class ProxyHandshakeFailed(httpcore.ConnectError):
    """The TLS handshake with an https:// proxy itself failed, not the receiver's made
    through its tunnel (ssl's error, its cause, names neither): failures.py names the
    proxy, whose certificate [delivery] verify has no say over."""


class _AnswerClockStream(httpcore.NetworkStream):
    """A connection's stream whose reads, from the first after a write until the next
    write, share `seconds` between them; and whose writes, from the first after a read
    (or the connection's first) until the next read, share `seconds` and `seconds` more
    for every UPLOAD_MIB bytes they write. `to_tls_proxy`: a connection to an https://
    proxy, whose first handshake is with the proxy."""

    def __init__(self, inner: httpcore.NetworkStream, seconds: float,
                 to_tls_proxy: bool = False) -> None:
        self._inner = inner
        self._seconds = seconds
        self._to_tls_proxy = to_tls_proxy
        self._deadline: float | None = None
        # Reads since the request's last write: none means its answer was in the
        # parser's buffer before it was sent (stale_answer()).
        self.reads = 0
        # Never to carry another request (stale_answer()): told to the pool as readable,
        # which is how httpcore knows an idle connection the server has ended.
        self.spoiled = False
        self._upload_since: float | None = None  # None: the next write begins a request
        self._written = 0
        # The upload's timeout, while the answer it was taken for is looked for (write()).
        self._stalled: httpcore.WriteTimeout | None = None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            # h11's end of a body with a Content-Length: nothing goes out, so no time can
            # be up for it (a body taken in whole at the bound's end was a "timeout").
            return
        now = time.monotonic()
        if self._upload_since is None or self._deadline is not None:
            # A request going out (also the next one on a kept-alive connection).
            self._upload_since, self._written, self._stalled = now, 0, None
        # Its answer gets a clock of its own, started by the first read once the writes
        # are done.
        self._deadline = None
        self.reads = 0
        try:
            self._send(buffer, timeout, now)
        except httpcore.WriteTimeout as exc:
            if not self._inner.get_extra_info("is_readable"):
                raise
            # The receiver stopped taking the body and has answered (an early 413 or
            # 401, the connection left open). httpcore reads the answer after a failed
            # write but not after a timed-out one: the bundle was retried for ever on a
            # "timeout", never quarantined or paused as the answer says. Over TLS the
            # socket is readable with the server's session tickets alone, answer or not:
            # when none comes, read() says the upload's timeout, not the answer's.
            self._stalled = exc
            raise httpcore.WriteError("the receiver stopped reading the request and "
                                      "answered before its end") from None

    def _send(self, buffer: bytes, timeout: float | None, now: float) -> None:
        assert self._upload_since is not None  # set by write()
        self._written += len(buffer)
        left = self._upload_since + self._seconds * (1 + self._written / UPLOAD_MIB) - now
        if left <= 0:
            raise self._too_slow(len(buffer))
        within = left if timeout is None else min(timeout, left)
        try:
            if self._inner.get_extra_info("ssl_object") is not None:
                self._inner.write(buffer, within)
                return
            sock = self._inner.get_extra_info("socket")
            try:
                sock.settimeout(within)
                sock.sendall(buffer)  # one bound for all of it, unlike a loop of send()
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(str(exc) or "timed out") from exc
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
        except httpcore.WriteTimeout:
            if within < left:
                raise  # one write's own timeout, not the upload's
            raise self._too_slow(len(buffer)) from None

    def _too_slow(self, pending: int) -> httpcore.WriteTimeout:
        """The upload's time is up, in figures (`pending`: bytes of the write not known
        to be taken in): the admin told to raise timeout_seconds sees by how much."""
        assert self._upload_since is not None
        took = time.monotonic() - self._upload_since
        allowed = self._seconds * (1 + self._written / UPLOAD_MIB)
        return httpcore.WriteTimeout(
            f"{UPLOAD_TOO_SLOW} {_mib(self._written - pending)} of the request in "
            f"{took:.1f} s, where {allowed:.1f} s are allowed for {_mib(self._written)} "
            f"([delivery] timeout_seconds = {self._seconds:g}: {self._seconds:g} s, and "
            f"{self._seconds:g} s for each MiB)")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.reads += 1
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        left = self._deadline - now
        try:
            if left <= 0:
                raise httpcore.ReadTimeout(f"the receiver's answer did not come whole "
                                           f"within {self._seconds:g} s")
            got = self._inner.read(max_bytes, left if timeout is None else min(timeout, left))
        except httpcore.ReadTimeout:
            if self._stalled is not None:  # nothing came: the upload is what timed out
                raise self._stalled from None
            raise
        if got:
            self._stalled = None  # an answer came: its own timeouts are the answer's
        return got

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # Everything after the handshake goes through the TLS stream: unwrapped, an
        # https:// receiver (or one behind a proxy's CONNECT) would have no bound.
        # Through a proxy's CONNECT an IPv6 receiver's address comes in the brackets the
        # proxy needs (DeadlineTransport); its certificate names it without them.
        try:
            tls = self._inner.start_tls(ssl_context, unbracketed(server_hostname), timeout)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            if not self._to_tls_proxy:
                raise
            raise ProxyHandshakeFailed(str(exc) or type(exc).__name__) from exc
        return _AnswerClockStream(tls, self._seconds)  # the tunnel's: the receiver's

    def get_extra_info(self, info: str) -> typing.Any:
        # httpcore asks for "is_readable" before it reuses a connection, "ssl_object"
        # for ALPN: the real stream's answers.
        if info == "is_readable" and self.spoiled:
            return True
        return self._inner.get_extra_info(info)


class AnswerClockBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous backend, its streams under the answer's clock.
    `tls_proxy`: every connection is to an https:// proxy."""

    def __init__(self, seconds: float, tls_proxy: bool = False) -> None:
        self._seconds = seconds
        self._tls_proxy = tls_proxy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                    ) -> httpcore.NetworkStream:
        return _AnswerClockStream(self._inner.connect_tcp(
            host, port, timeout, local_address, socket_options), self._seconds,
            self._tls_proxy)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                            ) -> httpcore.NetworkStream:
        return _AnswerClockStream(self._inner.connect_unix_socket(
            path, timeout, socket_options), self._seconds)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# httpcore's errors as httpx.HTTPTransport raises them, the most specific first (each
# httpcore class and its httpx counterpart are public in both).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class _AnswerBody(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """What httpx.HTTPTransport is (HTTP/1.1, its pool sized by `limits`, straight or
    by `proxy`), each answer under the clock of AnswerClockBackend."""

    def __init__(self, seconds: float, verify: bool | ssl.SSLContext, limits: httpx.Limits,
                 proxy: httpx.Proxy | None = None, tls: bool = True) -> None:
        pool: dict[str, typing.Any] = {  # what every kind of pool is made with
            # verify True: httpx's CAs (SSL_CERT_FILE, SSL_CERT_DIR, else certifi's), as
            # tls.py's context with a client certificate. tls False: the url is http://
            # and no redirect is followed, so nothing goes to the receiver over TLS, and
            # the CA bundle (~40 ms to load, at every start and reload) is not loaded.
            # Were a TLS connection ever made, httpcore would verify it with certifi's
            # CAs, never unverified. (A proxy's own TLS is proxy.ssl_context.)
            "ssl_context": httpx.create_ssl_context(verify=verify) if tls else None,
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": AnswerClockBackend(
                seconds, proxy is not None and proxy.url.scheme == "https")}
        self._pool: httpcore.ConnectionPool
        # An HTTP proxy reads the receiver's IPv6 address only in brackets (proxied_host).
        self._bracketed = proxy is not None and proxy.url.scheme in ("http", "https")
        if proxy is None:
            self._pool = httpcore.ConnectionPool(**pool)
        elif proxy.url.scheme in ("http", "https"):
            self._pool = httpcore.HTTPProxy(
                proxy_url=_core_url(proxy.url), proxy_auth=proxy.raw_auth,
                proxy_headers=proxy.headers.raw, proxy_ssl_context=proxy.ssl_context, **pool)
        else:  # socks5, socks5h: httpx.Proxy takes no other scheme
            self._pool = httpcore.SOCKSProxy(
                proxy_url=_core_url(proxy.url), proxy_auth=proxy.raw_auth, **pool)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = httpcore.Request(
            method=request.method, url=_core_url(request.url, self._bracketed),
            headers=request.headers.raw,
            content=typing.cast(Iterable[bytes], request.stream),
            extensions=request.extensions)  # the per-operation timeouts, among others
        with _as_httpx_errors():
            answer = self._pool.handle_request(core)
        stale_answer(answer)
        return httpx.Response(status_code=answer.status, headers=answer.headers,
                              stream=_AnswerBody(typing.cast(Iterable[bytes], answer.stream)),
                              extensions=answer.extensions)

    def close(self) -> None:
        self._pool.close()


STALE_ANSWER = ("an answer was already waiting on the kept-alive connection before this "
                "request was sent (the receiver's previous answer ran on past its end: a "
                "Content-Length shorter than its body, or two answers to one request); it "
                "is not this bundle's answer")


def stale_answer(answer: httpcore.Response) -> None:
    """Raise httpx.RemoteProtocolError when `answer` came whole before its request was
    sent: the bytes a receiver wrote after an answer's end (its Content-Length too short,
    a second answer) stay in the parser's buffer of the kept-alive connection, and the
    next POST on it read them as its own answer — another bundle's `201` filed this one
    as sent, whatever the receiver said to it. Not read by the stream since the request
    was written, it cannot answer it; the connection is closed, never used again, and
    the bundle is asked again (with its Idempotency-Key) on a fresh one."""
    stream = answer.extensions.get("network_stream")
    if not isinstance(stream, _AnswerClockStream) or stream.reads:
        return  # an upgrade's stream (never asked for), or an answer read off the wire
    stream.spoiled = True
    # Its body unread, httpcore (1.0) closes the connection here; one that kept it
    # (idle, for the next request) would ask is_readable first, which a spoiled stream
    # answers yes (get_extra_info): dropped all the same, never reused. That second
    # guard stays for an httpcore that closes less: a stale answer decides no bundle.
    answer.close()
    raise httpx.RemoteProtocolError(STALE_ANSWER)


def _core_url(url: httpx.URL, bracketed: bool = False) -> httpcore.URL:
    return httpcore.URL(scheme=url.raw_scheme,
                        host=proxied_host(url.raw_host) if bracketed else url.raw_host,
                        port=url.port, target=url.raw_path)
