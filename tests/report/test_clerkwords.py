"""The clerk's words for what the admin's errors say (daemon/report/clerkwords.py): the
fix a bundle the receiver refused is quarantined with; a receiver that cannot be
reached or puts a bundle off."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx
import pytest

from daemon.archiving.moves import ARCHIVE_FAILED
from daemon.configuration.config_sections import DeliveryConfig
from daemon.delivery.answer_body import AnswerCut
from daemon.delivery.answer_deadline import ProxyHandshakeFailed
from daemon.delivery.answers import classify
from daemon.delivery.deliver import HttpDeliverer
from daemon.delivery.throttle import THROTTLED, ReceiverHold
from daemon.errors import Rejected, Retryable
from daemon.report.clerkwords import for_clerks, rejection_fix


def _refused(status: int, sent_bytes: int | None = None) -> Rejected:
    refused = Rejected(f"the receiver rejected the bundle with HTTP {status}", status, "no")
    refused.sent_bytes = sent_bytes
    return refused


def test_a_refusal_other_than_413_sends_the_clerk_to_what_the_receiver_names() -> None:
    """400, 415, 422 …: the receiver's answer names what is wrong; the fix says so."""
    assert rejection_fix(_refused(422, 5000), ("INV-1",)) == (
        "fix what the receiver names, then move the bundle back into the outbox")


def test_a_413_gives_a_large_size_in_mb_and_bytes() -> None:
    """A bundle of 31,234,567 bytes is 31.2 MB, MB of 1,000,000 bytes as the attachment
    limit counts them, and the exact bytes are there, as Windows Explorer's Properties
    show them and for the admin to compare with the operator's limit."""
    fix = rejection_fix(_refused(413, 31_234_567), ("INV-1",))
    assert fix.startswith("the bundle is larger than the receiver takes "
                          "(31.2 MB (31,234,567 bytes) were sent): ")


def test_a_413_whose_size_is_not_known_says_no_size() -> None:
    """A request sent without a Content-Length: no size is made up."""
    fix = rejection_fix(_refused(413), ("INV-1",))
    assert fix.startswith("the bundle is larger than the receiver takes: make it smaller")


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cut_answer(status: int, cut: httpx.TransportError) -> str:
    """The admin's error for an answer of `status` whose body `cut` ended (a close, or
    the answer's deadline), as HttpDeliverer.send says it."""
    class Cut(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'{"receipt_id": "R'
            raise cut

    d = HttpDeliverer(DeliveryConfig(url="http://127.0.0.1:9/b"), transport=httpx.MockTransport(
        lambda request: httpx.Response(status, stream=Cut())))
    try:
        d.send(d.client.build_request("POST", "http://127.0.0.1:9/b"))
    except Retryable as exc:
        return str(exc)
    finally:
        d.close()
    raise AssertionError("a cut answer was taken whole")


def _failure(exc: httpx.TransportError, port: int = 9) -> str:
    url = f"http://127.0.0.1:{port}/b"
    return str(HttpDeliverer(DeliveryConfig(url=url)).failure(exc))


def _put_off(status: int, **kw: bool) -> str:
    req = httpx.Request("POST", "http://127.0.0.1:9/b")
    body = b'{"bundle_id": "' + b"f" * 64 + b'"}' if status < 300 else b"<html>db=prod-7"
    with pytest.raises(Retryable) as caught:
        classify(httpx.Response(status, content=body, request=req),
                 sent={"bundle_id": "e" * 64}, **kw)
    return f"{caught.value}: {caught.value.body}"


def test_a_receiver_that_refuses_the_connection_is_said_in_a_clerks_words() -> None:
    """A real refused connection to 127.0.0.1: the admin's error names the host, port and
    the socket's "[Errno 111] Connection refused"; the clerk reads that the operator's
    server does not answer, that outboxd tries again, and when to tell the admin."""
    port = _closed_port()
    with pytest.raises(httpx.ConnectError) as caught:
        httpx.post(f"http://127.0.0.1:{port}/b", timeout=5)
    admin = _failure(caught.value, port)
    assert f"127.0.0.1:{port}" in admin and "refused" in admin
    assert for_clerks(admin) == (
        "The operator's server does not answer. outboxd tries again by itself and nothing "
        "is lost: nothing to do unless this lasts for hours, then tell the admin.")


@pytest.mark.parametrize(("admin", "said"), [
    (_failure(httpx.ConnectError("[Errno -2] Name or service not known")),
     "The operator's server cannot be found on the network."),
    (_failure(httpx.ConnectError("[Errno -3] Temporary failure in name resolution")),
     "The operator's server cannot be found on the network."),
    (_failure(httpx.ConnectTimeout("timed out")), "did not answer in time."),
    (_failure(httpx.ReadTimeout("timed out")), "did not answer in time."),
    (_failure(httpx.RemoteProtocolError("Server disconnected without sending a response.")),
     "broke off before its answer"),
    (_put_off(503), "has a problem at the moment (HTTP 503)."),
    (_put_off(500), "has a problem at the moment (HTTP 500)."),
    (_put_off(429), "is busy and asked outboxd to wait (HTTP 429)."),
    (_put_off(408), "put the file off for now (HTTP 408)."),
    (_put_off(201), "answered for another file (HTTP 201)"),
    (_put_off(200, whole=False), "answered before it had the whole file (HTTP 200)"),
    (_cut_answer(201, httpx.RemoteProtocolError("peer closed connection")),
     "answer (HTTP 201) broke off before its end"),
    (_cut_answer(201, AnswerCut("its body was still coming")),
     "answer (HTTP 201) broke off before its end"),
])
def test_network_failures_and_answers_that_pass_by_themselves_are_plain_words(
        admin: str, said: str) -> None:
    """DNS, timeouts, a connection cut, 5xx, 429, 408, a 2xx for another request: the
    clerk's row says what happened to the operator's server in plain words, keeps at
    most the HTTP status, and that outboxd tries again by itself — never the socket's
    words, the host, the port or the receiver's answer (the admin's, in `status`)."""
    clerk = for_clerks(admin)
    assert clerk is not None and said in clerk, clerk
    assert clerk.startswith(("The operator's server", "The connection to the operator's"))
    assert "tries again by itself" in clerk and "tell the admin" in clerk
    for jargon in ("Errno", "127.0.0.1", "receiver", "Timeout", "prod-7", "Idempotency"):
        assert jargon not in clerk, (jargon, clerk)


def test_an_untrusted_certificate_asks_for_the_admin_at_once() -> None:
    """A certificate ssl refuses (a private CA, a host name that does not match): no wait
    mends outboxd's settings, so the clerk is told to tell the admin now, in plain
    words, without [delivery] verify or the certificate's details."""
    exc = httpx.ConnectError("certificate verify failed")
    exc.__cause__ = ssl.SSLCertVerificationError("unable to get local issuer certificate")
    admin = _failure(exc)
    assert "[delivery] verify" in admin
    clerk = for_clerks(admin)
    assert clerk is not None and clerk.startswith("outboxd cannot verify that it is talking "
                                                  "to the operator's server")
    assert "tell the admin" in clerk and "[delivery]" not in clerk and "issuer" not in clerk


def test_a_401_stays_a_pause_in_its_own_words() -> None:
    """HTTP 401 is no failure that passes by itself: the pause's words, with the token
    to fix, not "tries again by itself"."""
    clerk = for_clerks("HTTP 401: check [delivery] url and token: {}")
    assert clerk is not None and clerk.startswith("The operator refused outboxd's credentials")
    assert "outboxd's token" in clerk


def test_an_error_outboxd_has_no_words_for_is_shown_as_it_is() -> None:
    """A share that cannot be read is for whoever can fix it to read as it is."""
    error = "cannot read the bundle's files to send them: [Errno 5] Input/output error"
    assert for_clerks(error) == error


def _in_the_proxys_handshake(tls: ssl.SSLError) -> httpx.ConnectError:
    """httpx's error as DeadlineTransport raises it for ssl's `tls` in the handshake with
    an https:// proxy itself."""
    handshake = ProxyHandshakeFailed(str(tls))
    handshake.__cause__ = tls
    error = httpx.ConnectError(str(tls))
    error.__cause__ = handshake
    return error


_SECURE_PROXY = ("outboxd cannot make a secure connection to the company network's proxy "
                 "server, which it goes through.")


@pytest.mark.parametrize(("error", "said"), [
    (httpx.ConnectError("[Errno 111] Connection refused"),
     "The company network's proxy server, which outboxd goes through, does not answer."),
    (httpx.ProxyError("502 Bad Gateway"),
     "The company network's proxy server could not reach the operator's server."),
    (_in_the_proxys_handshake(ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")), _SECURE_PROXY),
    (_in_the_proxys_handshake(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version "
                                              "number")), _SECURE_PROXY),
])
def test_a_proxy_of_the_environment_that_fails_is_the_company_networks_in_clerks_words(
        monkeypatch: pytest.MonkeyPatch, error: httpx.TransportError, said: str) -> None:
    """Through HTTPS_PROXY, a proxy that does not answer or will not reach the operator
    is told to the clerk as the company network's proxy (not the operator's server),
    with no host, port or proxy's words, and that outboxd tries again by itself."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    admin = str(HttpDeliverer(DeliveryConfig(url="https://receiver.test/b")).failure(error))
    clerk = for_clerks(admin)
    assert clerk is not None and clerk.startswith(said), clerk
    assert "tries again by itself" in clerk
    for jargon in ("proxy.example", "3128", "Errno", "Bad Gateway", "receiver", "SSL",
                   "certificate"):
        assert jargon not in clerk, (jargon, clerk)


def test_a_bundle_waiting_for_the_first_answer_after_the_receivers_wait_names_no_time_to_come(
        ) -> None:
    """Held back by the receiver's request for time: until then the clerk reads the time
    it gave; once it is over and the first bundle sent since awaits its answer, the
    words say that time is over, not that the file "waits until" a time gone by."""
    now = [100.0]
    hold = ReceiverHold(lambda: now[0])
    hold.answered("https://op", 1, 60.0, 429)
    held = hold.hold("https://op", 2, 300.0)
    assert held is not None
    why = held[1]
    during = for_clerks(f"{THROTTLED}{why}") or ""
    assert "this file waits until then" in during
    now[0] += 61
    assert hold.hold("https://op", 3, 300.0) is None  # the first to go after the wait
    after = hold.hold("https://op", 2, 300.0)
    assert after is not None
    words = for_clerks(f"{THROTTLED}{after[1]}") or ""
    assert "waits until then" not in words
    assert "that time is over, and this file goes as soon as the operator answers the " \
        "first file sent since" in words and "(HTTP 429)" in words


def test_a_failed_archive_whose_receipt_id_holds_a_line_break_is_in_a_clerks_words() -> None:
    """A receiver's receipt id is its own text, a line break in it too: the row's error
    "delivered (receipt R\\n7), but cannot be archived in …" was shown to the clerk as
    the raw admin error (folders, modes, lsattr), the words' pattern stopping at the
    break. The clerk reads that the operator has it, as for any other receipt."""
    error = (ARCHIVE_FAILED.format("R\n7") + " /srv/sent/2031-05-06/INV-1--abc: "
             "Operation not permitted — look for an immutable attribute (lsattr -d …)")
    said = for_clerks(error)
    assert said is not None and said.startswith("The operator has received this file")
    assert "lsattr" not in said


@pytest.mark.parametrize("error", [None, ""])
def test_a_retrying_row_without_an_error_shows_none_to_clerks(error: str | None) -> None:
    """A retrying row with no error recorded (a claim stranded by a crash, tried at each
    rescan): the clerks' page shows its Last error cell as empty — not a pause's or a
    receiver's words made up for it."""
    from daemon.report.clerkwords import for_clerks, paused_for_clerks
    assert paused_for_clerks(error) is None
    assert for_clerks(error) == error


def test_an_https_url_at_a_plain_http_port_is_a_secure_connection_refused_in_clerks_words(
        ) -> None:
    """The admin's error for an https:// url whose port speaks plain HTTP names the host,
    the port and OpenSSL's reason; the clerk reads that the operator's server does not
    take a secure connection at outboxd's address, that outboxd tries again, and when to
    tell the admin — not that the operator's server does not answer."""
    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls.reason = "WRONG_VERSION_NUMBER"  # what ssl sets from OpenSSL's error
    error = httpx.ConnectError(str(tls))
    error.__cause__ = tls
    admin = _failure(error)
    assert "does not speak TLS" in admin
    assert for_clerks(admin) == (
        "The operator's server does not take a secure connection at the address outboxd "
        "sends to. outboxd tries again by itself and nothing is lost: nothing to do unless "
        "this lasts for hours, then tell the admin.")
