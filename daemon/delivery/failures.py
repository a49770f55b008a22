"""What an httpx error on the way to the receiver means (deliver.py's HttpDeliverer, and
ubl-embedded's POSTs through it): Retryable, Paused or Untrusted, in words that name the
receiver or the proxy that failed and what to check, never the token."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx

from daemon.delivery.answer_deadline import UPLOAD_TOO_SLOW
from daemon.delivery.answers import PROXY_WANTS_CREDENTIALS
from daemon.errors import Paused, Retryable, Untrusted


def transport_failure(exc: httpx.TransportError | httpx.InvalidURL, proxy_at: str | None,
                      where: str, scrub: Callable[[str], str]) -> Retryable | Paused:
    """What an httpx error on the way to the receiver (`where`: " at HOST:PORT", or "")
    means. Its text goes to the log, the journal, `outboxd status` and the status page on
    the share, so it is passed through `scrub`: never the token or the url's password.
    `proxy_at`: the environment's proxy this receiver is reached through, if any."""
    if proxy_at is not None and isinstance(
            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError):
        return _proxy_failure(exc, proxy_at, where, scrub)
    if isinstance(exc, httpx.TimeoutException):
        # The upload's own bound says its figures (answer_deadline): "raise
        # timeout_seconds" is then backed by how much went in, in what time.
        said = str(exc) if isinstance(exc, httpx.WriteTimeout) else ""
        words = f": {said}" if said.startswith(UPLOAD_TOO_SLOW) else ""
        return Retryable(f"timed out talking to the receiver ({type(exc).__name__}"
                         f"{words})")
    if isinstance(exc, httpx.LocalProtocolError):
        # Our own request was refused before it left (h11 quotes the header it
        # refuses, token and all): a retry would meet the same; the settings must
        # change.
        return Paused("the request could not be made: a header or the url is not "
                      "valid HTTP — check [delivery] token and url")
    if isinstance(exc, httpx.InvalidURL):
        return Paused(scrub(f"[delivery] url is not usable: {exc}"))
    if isinstance(exc, httpx.ProxyError) and str(exc).startswith("407"):
        # https through a proxy: its 407 answers the CONNECT, before any answer of
        # the receiver's, and httpcore raises it. A setting, as for http:// (classify).
        return Paused(PROXY_WANTS_CREDENTIALS, 407)
    if isinstance(exc, httpx.RemoteProtocolError):
        # The request went out, and no answer came back (the connection closed, bytes
        # that are not HTTP): not "cannot reach", and the receiver may have the bundle.
        return Retryable(scrub(
            f"no valid answer from the receiver{where} after the request was sent "
            f"({(str(exc) or type(exc).__name__)[:300]}); it may have the bundle, so it is "
            "asked again with the same Idempotency-Key"))
    if _untrusted_certificate(exc):
        # Retried like any connection error (an operator's chain may be fixed on its
        # side), but no wait mends our settings: the admin must hear what to change.
        return Untrusted(scrub(
            f"the TLS certificate of the receiver{where} is not trusted ({exc}) — "
            "if the operator's certificate comes from a private CA, set [delivery] "
            "verify to that CA's PEM file (verify = true trusts the CAs that SSL_CERT_FILE "
            "or SSL_CERT_DIR in the service's environment name, else certifi's public "
            "ones; never the system's store); if the host name does not match, "
            "fix [delivery] url"))
    return Retryable(scrub(f"cannot reach the receiver{where}: "
                           f"{str(exc) or type(exc).__name__}"))


def _proxy_failure(exc: httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError,
                   proxy_at: str, where: str, scrub: Callable[[str], str]
                   ) -> Retryable | Paused:
    """The proxy's hop failed, said as that: connecting to it (through a proxy every
    connection is to the proxy), or its refusal to CONNECT to the receiver.
    Retried, as a receiver's 502 or 503 would be."""
    if isinstance(exc, httpx.ProxyError) and str(exc).startswith("407"):
        return Paused(PROXY_WANTS_CREDENTIALS, 407)
    said = (str(exc) or type(exc).__name__)[:300]
    if isinstance(exc, httpx.ProxyError):
        return Retryable(scrub(
            f"the proxy at {proxy_at} (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY in the "
            f"service's environment) did not open the way to the receiver"
            f"{where}: it answered {said} — it could not reach the receiver, or "
            "does not let this server reach it; check with the proxy's admins, or set "
            "NO_PROXY for the receiver's host if it is reached without the proxy"))
    return Retryable(scrub(
        f"cannot reach the proxy at {proxy_at} (HTTPS_PROXY, HTTP_PROXY or "
        f"ALL_PROXY in the service's environment) on the way to the receiver"
        f"{where}: {said} — check the proxy's address in the environment, "
        "or whether the proxy is up"))


def _untrusted_certificate(exc: BaseException) -> bool:
    """Whether ssl refused the receiver's certificate somewhere under this httpx error
    (httpx raises its own ConnectError from httpcore's, from ssl's)."""
    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk: a chain is a few links, never a cycle we trust
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
