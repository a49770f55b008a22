"""What an httpx error on the way to the receiver means (deliver.py's HttpDeliverer, and
ubl-embedded's POSTs through it): Retryable, Paused or Untrusted, in words that name the
receiver or the proxy that failed and what to check, never the token."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TypeVar

import httpx

from daemon.delivery.answer_deadline import UPLOAD_TOO_SLOW, ProxyHandshakeFailed
from daemon.delivery.answers import PROXY_WANTS_CREDENTIALS
from daemon.errors import Paused, Retryable, Untrusted


def transport_failure(exc: httpx.TransportError | httpx.InvalidURL, proxy_at: str | None,
                      where: str, scrub: Callable[[str], str],
                      client_cert: bool = False) -> Retryable | Paused:
    """What an httpx error on the way to the receiver (`where`: " at HOST:PORT", or "")
    means. Its text goes to the log, the journal, `outboxd status` and the status page on
    the share, so it is passed through `scrub`: never the token or the url's password.
    `proxy_at`: the environment's proxy this receiver is reached through, if any;
    `client_cert`: whether [delivery] client_cert is set."""
    tls = _cause(exc, ssl.SSLError)
    if proxy_at is not None and _cause(exc, ProxyHandshakeFailed) is not None:
        # An https:// proxy's own TLS: said as the receiver's, the admin was sent to
        # [delivery] verify, which has no say over the proxy's certificate.
        return Retryable(scrub(_proxy_tls_failure(tls, exc, proxy_at, where)))
    # Through a proxy's CONNECT tunnel TLS is with the receiver, and its certificate's
    # failures were said as the proxy's ("cannot reach the proxy").
    if tls is not None and (
            said := _certificate_failure(tls, exc, where, client_cert)) is not None:
        return Untrusted(scrub(said))
    if tls is not None and tls.reason in _NOT_TLS:
        # An https:// url at a port that answers in plain HTTP: said as "cannot reach
        # the receiver", it sent the admin to the network, and the fix is the url.
        return Retryable(scrub(
            f"the receiver{where} does not speak TLS on that port ({tls.reason}): "
            "[delivery] url says https://, and what answers there is no TLS server (most "
            "likely plain HTTP) — check the url's port against the operator's https:// "
            "address; write http:// only if the operator says its receiver takes plain "
            "HTTP there (the token would then go unencrypted)"))
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
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        # Connected, then the connection broke (a reset) while the request went out or
        # its answer was awaited: the receiver was reached and may have the bundle.
        # Said as "cannot reach", it sent the admin to the network, and the clerks'
        # page said the operator's server does not answer.
        return Retryable(scrub(
            f"no valid answer from the receiver{where}: the connection broke while the "
            f"request was sent or its answer awaited ({(str(exc) or type(exc).__name__)[:300]}"
            "); it may have the bundle, so it is asked again with the same Idempotency-Key"))
    return Retryable(scrub(f"cannot reach the receiver{where}: "
                           f"{str(exc) or type(exc).__name__}"))


def _certificate_failure(tls: ssl.SSLError, exc: BaseException, where: str,
                         client_cert: bool) -> str | None:
    """What ssl's error says of a certificate, the receiver's or ours, and the fix (to
    raise as Untrusted); None for any other TLS failure."""
    # verify_code is set by ssl's handshake; an error made otherwise may lack it.
    code = getattr(tls, "verify_code", None)
    if isinstance(tls, ssl.SSLCertVerificationError) and code in _OUT_OF_DATE:
        # Neither a private CA nor the host name: the operator's certificate is out of
        # its dates, or this server's clock is. ssl does not say the dates.
        return (
            f"the TLS certificate of the receiver{where} {_OUT_OF_DATE[code]} "
            f"({tls.verify_message}) — the operator must renew it; if the operator says "
            "it is valid, check this server's clock (timedatectl), which decides "
            "(openssl s_client -connect HOST:PORT shows the certificate's dates)")
    if isinstance(tls, ssl.SSLCertVerificationError):
        # Retried like any connection error (an operator's chain may be fixed on its
        # side), but no wait mends our settings: the admin must hear what to change.
        return (
            f"the TLS certificate of the receiver{where} is not trusted ({exc}) — "
            "if the operator's certificate comes from a private CA, set [delivery] "
            "verify to that CA's PEM file (verify = true trusts the CAs that SSL_CERT_FILE "
            "or SSL_CERT_DIR in the service's environment name, else certifi's public "
            "ones; never the system's store); if the host name does not match, "
            "fix [delivery] url")
    if (refused := _client_refusal(tls, client_cert)) is not None:
        # Untrusted too: the fix is a setting, or the operator's trust in ours, and a
        # reload that changes client_cert or client_key tries the bundles again at once.
        return f"the receiver{where} {refused} ({tls.reason})"
    return None


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
            f"the proxy at {proxy_at} {_PROXY_VARIABLES} did not open the way to the receiver"
            f"{where}: it answered {said} — it could not reach the receiver, or "
            "does not let this server reach it; check with the proxy's admins, or set "
            "NO_PROXY for the receiver's host if it is reached without the proxy"))
    return Retryable(scrub(
        f"cannot reach the proxy at {proxy_at} {_PROXY_VARIABLES} on the way to the "
        f"receiver{where}: {said} — check the proxy's address in the environment, "
        "or whether the proxy is up"))


_E = TypeVar("_E", bound=BaseException)
_PROXY_VARIABLES = "(HTTPS_PROXY, HTTP_PROXY or ALL_PROXY in the service's environment)"


def _proxy_tls_failure(tls: ssl.SSLError | None, exc: BaseException, proxy_at: str,
                       where: str) -> str:
    """What failed in the TLS handshake with an https:// proxy, and the fix."""
    proxy = f"the proxy at {proxy_at} {_PROXY_VARIABLES}"
    code = getattr(tls, "verify_code", None)
    if isinstance(tls, ssl.SSLCertVerificationError) and code in _OUT_OF_DATE:
        return (f"the TLS certificate of {proxy} {_OUT_OF_DATE[code]} "
                f"({tls.verify_message}) on the way to the receiver{where} — the "
                "proxy's admins must renew it; if they say it is valid, check this "
                "server's clock (timedatectl), which decides")
    if isinstance(tls, ssl.SSLCertVerificationError):
        return (f"the TLS certificate of {proxy} is not trusted ({exc}) on the way to the "
                f"receiver{where} — a proxy's certificate is checked against this "
                "server's CA store (add the company's CA to it: update-ca-certificates), "
                "the CAs SSL_CERT_FILE or SSL_CERT_DIR name, and certifi's public ones; "
                "if the host name does not match, write the proxy's address as its "
                "certificate names it; then systemctl restart outboxd")
    said = (str(exc) or type(exc).__name__)[:300]
    return (f"TLS with {proxy} failed on the way to the receiver{where}: {said} — the "
            "variable's https:// asks for TLS with the proxy itself, which most proxies "
            "do not speak (an https:// receiver is reached through them all the same): "
            "write http:// unless the proxy's admins say it takes TLS, and systemctl "
            "restart outboxd")


# OpenSSL's verify codes for a certificate out of its dates: what to say of it.
_OUT_OF_DATE = {10: "has expired", 9: "is not valid yet"}

# TLS alerts of the receiver about a certificate: only the client's goes to the server,
# so one received is about ours (the receiver's certificate fails on our side, as an
# SSLCertVerificationError). The words say what the receiver found.
_OUR_CERTIFICATE = {
    "TLSV1_ALERT_UNKNOWN_CA": "does not trust the CA that signed it",
    "SSLV3_ALERT_BAD_CERTIFICATE": "found it bad",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "does not accept it",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "does not support its kind",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "found it expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "found it revoked",
}
_CERTIFICATE_REQUIRED = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
# OpenSSL's words for a first answer that is no TLS record (plain HTTP's "HTTP/1.1 400"):
# WRONG_VERSION_NUMBER before 3.2, PACKET_LENGTH_TOO_LONG or RECORD_LAYER_FAILURE since.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG",
                      "RECORD_LAYER_FAILURE"})
_HANDSHAKE_FAILURE = "SSLV3_ALERT_HANDSHAKE_FAILURE"


def _client_refusal(tls: ssl.SSLError, client_cert: bool) -> str | None:
    """What the receiver's TLS alert says of our client certificate, and the fix; None
    for an alert about anything else."""
    if tls.reason == _CERTIFICATE_REQUIRED and not client_cert:
        return ("asks for a client certificate and none is set — set "
                "[delivery] client_cert and client_key to the certificate and key the "
                "operator issued for this server (docs/configuration.md), and reload")
    if tls.reason == _HANDSHAKE_FAILURE:
        # TLS 1.2's word for a missing client certificate (1.3 has its own alert), and
        # for no version or cipher in common: both are said, with each fix.
        ours = ("does not accept this server's client certificate ([delivery] "
                "client_cert)" if client_cert else "asks for a client certificate and none "
                "is set (then set [delivery] client_cert and client_key to the "
                "certificate and key the operator issued for this server, and reload)")
        return (f"ended the TLS handshake: it {ours}, or it shares no TLS version or "
                "cipher with this server — ask the operator which it is")
    found = _OUR_CERTIFICATE.get(tls.reason or "")
    if found is None and tls.reason == _CERTIFICATE_REQUIRED:
        found = "did not take it"
    if found is None:
        return None
    return (f"refused this server's client certificate ([delivery] "
            f"client_cert): it {found} — ask the operator which certificate it accepts "
            "(it must trust the CA that signed ours), or set client_cert and client_key "
            "to the one it issued, and reload")


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The error of `kind` somewhere under this httpx error (httpx raises its own
    ConnectError or ReadError from httpcore's, from ssl's), if any."""
    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk: a chain is a few links, never a cycle we trust
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
