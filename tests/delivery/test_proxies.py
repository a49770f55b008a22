"""The proxy of the service's environment for the receiver's url
(daemon/delivery/proxies.py): the choice, NO_PROXY's forms as curl reads them, and an
IPv6 receiver's address as a proxy on 127.0.0.1 is asked to reach it."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from rawreceiver import RawReceiver, created, stop_accepting

from daemon.delivery.proxies import environment_proxy
from daemon.errors import Retryable, Untrusted
from delivery.test_answer_deadline import deliver_once
from delivery.test_deliver import http_cfg
from delivery.test_tls import SERVER_V6, _certificates, _signed_by_a_new_ca

PROXY = "http://proxy.example:3128"


@pytest.mark.parametrize(("environment", "url", "chosen"), [
    ({"HTTP_PROXY": PROXY}, "http://rx.example/b", PROXY),
    ({"HTTP_PROXY": PROXY}, "https://rx.example/b", None),  # no proxy for https
    ({"https_proxy": "proxy.example:3128"}, "https://rx.example/b", PROXY),  # http:// added
    ({"ALL_PROXY": PROXY}, "https://rx.example/b", PROXY),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "example.com"}, "http://rx.example.com/b", None),
    ({"HTTP_PROXY": PROXY, "no_proxy": "*"}, "http://rx.example/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.5:8080"}, "http://10.0.0.5:8080/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.5:8080"}, "http://10.0.0.5:9090/b", PROXY),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "localhost,::1,fd00::/8,[::1],,"},
     "http://rx.example/b", PROXY),
    ({"NO_PROXY": "localhost,::1,fd00::/8,[::1]"}, "http://rx.example/b", None),
    ({}, "http://rx.example/b", None),
    ({"HTTP_PROXY": PROXY}, "http://127.0.0.1:8787/b", None),  # this machine: never
    ({"HTTP_PROXY": PROXY}, "http://127.1.2.3/b", None),
    ({"HTTP_PROXY": PROXY}, "http://[::1]:8787/b", None),
    ({"ALL_PROXY": PROXY}, "https://localhost/b", None),
    # A name under .localhost is looked up as any other (DNS, the search domain): it may
    # be another machine, which the proxy is there to reach.
    ({"HTTP_PROXY": PROXY}, "http://app.localhost/b", PROXY),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "localhost"}, "http://app.localhost/b", None),
    ({"HTTP_PROXY": PROXY}, "http://10.0.0.5/b", PROXY),
    # Networks (curl 7.86 and later, Go, requests for IPv4): httpx's own reading took
    # 10.0.0.0/8 for the one address 10.0.0.0, and urllib has none.
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8,.corp.example"}, "http://10.1.2.3/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8,.corp.example"}, "http://11.0.0.1/b", PROXY),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8,.corp.example"},
     "http://rx.corp.example/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8,.corp.example"}, "http://corp.example/b",
     None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8,.corp.example"}, "http://xcorp.example/b",
     PROXY),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "*.corp.example"}, "http://rx.corp.example/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "RX.Example."}, "http://rx.example/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "localhost, *"}, "http://rx.example/b", None),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/33"}, "http://10.0.0.1/b", PROXY),
    ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, "http://rx.example/b", PROXY),
    # A port the url does not write is its scheme's.
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "rx.example:443"}, "https://rx.example/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "rx.example:8443"}, "https://rx.example/b", PROXY),
    # IPv6: the url's address in brackets, NO_PROXY's with or without them, compared as
    # addresses; a port only after brackets.
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "fd00::1"}, "https://[fd00::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "[fd00::1]"}, "https://[fd00::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "[fd00::1]:8443"}, "https://[fd00::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "[fd00::1]:9"}, "https://[fd00::1]:8443/b", PROXY),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "fd00:0:0::0:1"}, "https://[fd00::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "fd00::2"}, "https://[fd00::1]:8443/b", PROXY),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "fd00::/8"}, "https://[fd00::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "[fd00::]/8"}, "https://[fd00::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "fd00::/8"}, "https://10.0.0.1/b", PROXY),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, "https://[fd00::1]/b", PROXY),
    ({"HTTPS_PROXY": PROXY}, "https://[2001:db8::5]/b", PROXY),
    # This machine, as IPv6 writes it: never through the proxy.
    ({"HTTPS_PROXY": PROXY}, "https://[::1]:8443/b", None),
    ({"HTTPS_PROXY": PROXY}, "https://[::ffff:127.0.0.1]:8443/b", None),
])
def test_the_proxy_is_chosen_for_the_url_as_curl_chooses_it(
        monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str,
        chosen: str | None) -> None:
    """The environment's proxy for the receiver's url: HTTP_PROXY or HTTPS_PROXY by its
    scheme, else ALL_PROXY, any case, a proxy without a scheme as http://; none where
    NO_PROXY names the host (and its subdomains), the address, `host:port`, or `*`.
    Entries httpx cannot parse (IPv6 networks, bracketed addresses) are no error."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    proxy = environment_proxy(httpx.URL(url))
    assert (None if proxy is None else str(proxy.url).rstrip("/")) == chosen


def test_an_ipv6_receiver_is_reached_through_a_proxy_by_its_bracketed_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY, and a receiver's url with an IPv6 address: the proxy is asked to
    CONNECT to `[2001:db8::5]:8443` — it was asked for `2001:db8::5:8443`, which a proxy
    refuses or reads as another port — and TLS through the tunnel checks the
    receiver's certificate for that address (not for the bracketed text): the bundle
    is taken."""
    ca, cert, key, _, _ = _certificates(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert), str(key))
    with RawReceiver(lambda rx, conn, n: conn.sendall(created("v6")), tls=server,
                     tunnel=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        outcome = deliver_once(tmp_path, http_cfg(url=f"https://[{SERVER_V6}]:8443/b",
                                                  verify=str(ca)))
    assert proxy.heads[0].startswith(f"CONNECT [{SERVER_V6}]:8443 HTTP/1.1\r\n"
                                     f"Host: [{SERVER_V6}]:8443"), proxy.heads
    assert outcome.receipt_id == "v6", outcome


def test_an_ipv6_receiver_over_http_is_asked_of_the_proxy_by_a_valid_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY and an http:// url with an IPv6 address: the request line the proxy
    gets names the receiver by a url it can read, `http://[2001:db8::5]:8080/b` (it was
    `http://2001:db8::5:8080/b`)."""
    with RawReceiver(lambda rx, conn, n: conn.sendall(created("v6"))) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        outcome = deliver_once(tmp_path, http_cfg(url=f"http://[{SERVER_V6}]:8080/b",
                                                  allow_plain_http=True))
    assert proxy.heads[0].startswith(f"POST http://[{SERVER_V6}]:8080/b HTTP/1.1\r\n")
    assert f"Host: [{SERVER_V6}]:8080" in proxy.heads[0]
    assert outcome.receipt_id == "v6", outcome


def _through_https_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         proxy_tls: ssl.SSLContext, url: str) -> tuple[object, int]:
    """One delivery to `url` through HTTPS_PROXY=https://127.0.0.1:PORT, a proxy that
    speaks TLS with `proxy_tls` from the first byte: its outcome, and PORT."""
    with RawReceiver(lambda rx, conn, n: conn.sendall(created("via-tls-proxy")),
                     tls=proxy_tls) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("HTTP_PROXY", f"https://127.0.0.1:{proxy.port}")
        return deliver_once(tmp_path, http_cfg(url=url, allow_plain_http=True)), proxy.port


def _serving(cert: Path, key: Path) -> ssl.SSLContext:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert), str(key))
    return server


@pytest.mark.parametrize("url", ["https://receiver.test/b", "http://receiver.test/b"])
def test_an_https_proxy_whose_certificate_is_not_trusted_is_named_not_the_receiver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """HTTPS_PROXY=https://… and the proxy's own certificate signed by a CA this server
    does not trust: the retried error names the proxy's certificate, its address and
    where its CAs are looked for — it said "the TLS certificate of the receiver … is
    not trusted" with `[delivery] verify` as the fix, which is about the receiver's and
    changes nothing here."""
    _, cert, key = _signed_by_a_new_ca(tmp_path / "proxy", "proxy",
                                       "subjectAltName=IP:127.0.0.1")
    outcome, port = _through_https_proxy(tmp_path, monkeypatch, _serving(cert, key), url)
    said = str(outcome)
    assert isinstance(outcome, Retryable) and not isinstance(outcome, Untrusted), outcome
    assert said.startswith(f"the TLS certificate of the proxy at 127.0.0.1:{port} "
                           "(HTTPS_PROXY, HTTP_PROXY or ALL_PROXY in the service's "
                           "environment) is not trusted"), said
    assert "on the way to the receiver at receiver.test:" in said
    assert "update-ca-certificates" in said and "SSL_CERT_FILE" in said
    assert "the TLS certificate of the receiver" not in said
    assert "[delivery] verify" not in said


def test_an_https_proxy_whose_certificate_has_expired_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy's certificate ended yesterday: the error says the proxy's certificate
    has expired (its admins renew it, or this server's clock is wrong), not the
    receiver's."""
    now = datetime.now(UTC)
    _, cert, key = _signed_by_a_new_ca(
        tmp_path / "proxy", "proxy", "subjectAltName=IP:127.0.0.1",
        ((now - timedelta(days=3)).strftime("%Y%m%d%H%M%SZ"),
         (now - timedelta(days=1)).strftime("%Y%m%d%H%M%SZ")))
    # Trusted, so that what fails is the dates alone.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "proxy" / "other-ca.pem"))
    outcome, port = _through_https_proxy(tmp_path, monkeypatch, _serving(cert, key),
                                         "https://receiver.test/b")
    said = str(outcome)
    assert said.startswith(f"the TLS certificate of the proxy at 127.0.0.1:{port} "), said
    assert "has expired" in said and "clock" in said and "receiver's" not in said


def test_an_https_proxy_trusted_through_the_environments_cas_carries_the_post(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy's certificate signed by a CA that SSL_CERT_FILE names (as for a CA in
    this server's store): TLS with the proxy is made and the POST for an http://
    receiver goes through it — what docs/configuration.md says it trusts."""
    ca, cert, key, _, _ = _certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    outcome, _ = _through_https_proxy(tmp_path, monkeypatch, _serving(cert, key),
                                      "http://receiver.test/b")
    assert getattr(outcome, "receipt_id", None) == "via-tls-proxy", outcome


def test_a_plain_proxy_written_as_https_is_told_to_be_written_http(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY=https://… naming a proxy that speaks plain HTTP (most do, also for
    https:// receivers): the TLS handshake with it fails, and the error says so, with
    http:// as the likely fix — not a receiver's TLS failure."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_plainly() -> None:
        # What a plain HTTP proxy answers to bytes that are no request: a 400.
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
    accepting = threading.Thread(target=answer_plainly, daemon=True)
    accepting.start()
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{port}")
        outcome = deliver_once(tmp_path, http_cfg(url="https://receiver.test/b",
                                                  connect_timeout_seconds=2))
    finally:
        stop_accepting(listener, accepting)
    said = str(outcome)
    assert said.startswith(f"TLS with the proxy at 127.0.0.1:{port} (HTTPS_PROXY"), said
    assert "write http://" in said and "the receiver at receiver.test:443" in said


def test_a_no_proxy_entry_with_an_unclosed_bracket_is_skipped_not_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY holding `[fd00::1` (its closing bracket lost): that entry matches no
    host, the others still do, and the proxy is chosen for the rest, without an error."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "[fd00::1,rx.example")
    assert environment_proxy(httpx.URL("https://rx.example/b")) is None
    chosen = environment_proxy(httpx.URL("https://[fd00::1]:8443/b"))
    assert chosen is not None and str(chosen.url) == PROXY
