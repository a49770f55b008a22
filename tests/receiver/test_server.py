"""The reference receiver (docs/protocol.md), driven over real HTTP by httpx and raw sockets."""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import socket
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import run_receiver, wait_for
from structlog.testing import capture_logs

from daemon.receiver.server import MAX_BODY, MAX_DRAIN

from .conftest import UBL, Starter, connect, log_lines, make_sent, post, raw_request, stored_bundles


class TestAccepting:
    def test_get_answers_a_small_json_health_document(self, url: str) -> None:
        """GET is a health check; other methods get 405 with JSON."""
        assert httpx.get(url).json()["status"] == "ok"
        resp = httpx.put(url, content=b"")
        assert resp.status_code == 405 and "error" in resp.json()


class TestIdempotency:
    def test_same_key_while_first_is_in_progress_gets_409(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A second request with a key still being received gets 409; the first then succeeds."""
        sent = make_sent(tmp_path)
        head, body = raw_request(sent, url)
        with connect(url) as sock:
            # The receiver answers 100 Continue only once it holds the key: our sync point.
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
            assert interim_answer(sock).startswith(b"HTTP/1.1 100")
            sock.sendall(body[:1000])
            assert post(url, sent).status_code == 409
            sock.sendall(body[1000:])
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 201
        assert [line["status"] for line in log_lines(store)] == [409, 201]

    def test_a_document_whose_key_is_still_being_received_gets_409(
            self, store: Path, url: str) -> None:
        """ubl-embedded: a second POST of a document whose key is still being received
        gets 409; the first then gets 201 with its receipt, and the document is stored
        once, as STORE/documents/KEY.xml."""
        key = hashlib.sha256(UBL).hexdigest()
        head = (f"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                f"Idempotency-Key: {key}\r\nContent-Length: {len(UBL)}\r\n").encode()
        with connect(url) as sock:
            # The receiver answers 100 Continue only once it holds the key: our sync point.
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
            assert interim_answer(sock).startswith(b"HTTP/1.1 100")
            sock.sendall(UBL[:10])
            second = httpx.post(url, content=UBL, headers={
                "Content-Type": "application/xml", "Idempotency-Key": key})
            assert second.status_code == 409 and "in progress" in second.json()["error"]
            sock.sendall(UBL[10:])
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 201
            assert json.loads(resp.read())["receipt_id"].startswith("rcpt-")
        assert [line["status"] for line in log_lines(store)] == [409, 201]
        assert [p.name for p in (store / "documents").glob("*.xml")] == [f"{key}.xml"]

    def test_stored_answers_survive_a_restart(
            self, tmp_path: Path, store: Path, start: Starter) -> None:
        """A new receiver on the same store answers a repeat with the first body."""
        sent = make_sent(tmp_path)
        first = post(start(store), sent)
        second = post(start(store), sent)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.content == first.content

    def test_staging_a_receiver_killed_mid_request_left_is_removed_at_the_next_start(
            self, tmp_path: Path, store: Path, start: Starter) -> None:
        """A .tmp-* folder is a body half received when its receiver died: the next
        receiver on the store removes it before serving; a bundle stored whole stays."""
        sent = make_sent(tmp_path)
        post(start(store), sent)
        (store / ".tmp-dead" / "attachments").mkdir(parents=True)
        (store / ".tmp-dead" / "batch-42.xml").write_bytes(UBL[:10])
        # A body's file set aside, and a link that stood at a bundle's place, whose
        # removal failed: the entries go, never what the link names.
        (store / ".tmp-file").write_bytes(b"half")
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "keep").write_bytes(b"k")
        (store / ".tmp-link").symlink_to(tmp_path / "elsewhere")
        start(store)
        assert not any(os.path.lexists(store / n) for n in (".tmp-dead", ".tmp-file",
                                                             ".tmp-link"))
        assert (tmp_path / "elsewhere" / "keep").read_bytes() == b"k"
        assert stored_bundles(store) == [sent.key]


class TestRefusing:
    @pytest.mark.parametrize("key, expected", [
        (None, "Idempotency-Key header missing"),
        ("../../etc", "Idempotency-Key header missing or not a bundle id"),
        ("0" * 64, "is not the bundle id"),
        # Matched whole: a key with more after its 64 digits never names a store path.
        ("a" * 64 + "/../x", "Idempotency-Key header missing or not a bundle id"),
    ])
    def test_missing_or_wrong_idempotency_key_is_400(
            self, tmp_path: Path, url: str, key: str | None, expected: str) -> None:
        """The Idempotency-Key must be present and equal to the recomputed bundle id."""
        resp = post(url, make_sent(tmp_path), key=key)
        assert resp.status_code == 400 and expected in resp.json()["error"]

    def test_non_multipart_body_is_400(self, url: str) -> None:
        """Only multipart/form-data is accepted."""
        resp = httpx.post(url, json={"a": 1}, headers={"Idempotency-Key": "0" * 64})
        assert resp.status_code == 400 and "multipart" in resp.json()["error"]

    def test_chunked_body_without_length_is_411(self, url: str) -> None:
        """A body without Content-Length gets 411 and a JSON answer."""
        with connect(url) as sock:
            sock.sendall(b"POST /bundles HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n0\r\n\r\n")
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 411 and "Content-Length" in json.loads(resp.read())["error"]

    def test_a_body_with_both_a_length_and_chunked_encoding_is_411_and_closed(
            self, url: str) -> None:
        """Content-Length beside Transfer-Encoding leaves where the body ends unknown (a
        request smuggled after it): 411, and the connection is not used again."""
        with connect(url) as sock:
            sock.sendall(b"POST /bundles HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                         b"Transfer-Encoding: chunked\r\nIdempotency-Key: " + b"a" * 64 +
                         b"\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n"
                         b"0\r\n\r\n")
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 411 and resp.getheader("Connection") == "close"

    def test_a_body_one_byte_over_the_limit_is_413_before_a_byte_of_it_is_read(
            self, url: str) -> None:
        """A Content-Length of MAX_BODY + 1 is refused 413 from the headers alone:
        answered at once, though no byte of the body came, and the connection closed."""
        with connect(url) as sock:
            sock.settimeout(10)
            sock.sendall(b"POST /bundles HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         + str(MAX_BODY + 1).encode() + b"\r\nIdempotency-Key: " + b"a" * 64
                         + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n")
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 413 and resp.getheader("Connection") == "close"

    def test_a_refused_request_with_a_body_over_max_drain_is_answered_at_once_and_closed(
            self, store: Path, start: Starter) -> None:
        """A refused request's body is read and dropped to keep the connection only up to
        MAX_DRAIN: beyond it the answer (here 401) goes out at once, unread body and all,
        and the connection is closed — never a wait for 64 MiB a sender may not send."""
        url = start(store, token="s3cret-token")
        with connect(url) as sock:
            sock.settimeout(10)
            sock.sendall(b"POST /bundles HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         + str(MAX_DRAIN + 1).encode() + b"\r\nIdempotency-Key: " + b"a" * 64
                         + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n")
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 401 and resp.getheader("Connection") == "close"

    @pytest.mark.parametrize("boundary, error", [("b" * 70, "preamble"),
                                                 ("b" * 71, "boundary of 1-70")])
    def test_a_boundary_over_seventy_characters_is_400(
            self, url: str, boundary: str, error: str) -> None:
        """RFC 2046 allows a boundary of 1-70 characters: 71 is refused as such; 70 is
        taken, and the body (no boundary in it) is what is refused."""
        resp = httpx.post(url, content=b"x", headers={
            "Idempotency-Key": "a" * 64,
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert resp.status_code == 400 and error in resp.json()["error"]


class TestTokenAndFaults:
    @pytest.mark.parametrize("token", [None, "wrong", "s3cret-tokenX", "s3cret-toke"])
    def test_bad_or_missing_token_is_401_and_never_logged(
            self, tmp_path: Path, store: Path, start: Starter, token: str | None,
            capfd: pytest.CaptureFixture[str]) -> None:
        """With a token configured, only 'Bearer <token>' is let in; the token stays secret."""
        url = start(store, token="s3cret-token")
        sent = make_sent(tmp_path)
        resp = post(url, sent, token=token)
        assert resp.status_code == 401 and "error" in resp.json()
        assert post(url, sent, token="s3cret-token").status_code == 201
        assert [line["status"] for line in log_lines(store)] == [401, 201]
        assert "s3cret" not in (store / "requests.jsonl").read_text()
        assert "s3cret" not in capfd.readouterr().err

    def test_fail_first_answers_the_given_statuses_then_accepts(
            self, tmp_path: Path, store: Path, start: Starter) -> None:
        """fail_first injects those statuses (with Retry-After: 0), storing nothing, then 201."""
        url = start(store, fail_first=[503, 429])
        sent = make_sent(tmp_path)
        statuses = []
        with ExitStack() as stack, httpx.Client() as client:  # one keep-alive connection
            for _ in range(3):
                resp = client.post(url, files=sent.parts(stack),
                                   headers={"Idempotency-Key": sent.key})
                statuses.append((resp.status_code, resp.headers.get("retry-after")))
                if resp.status_code != 201:
                    assert stored_bundles(store) == []
        assert statuses == [(503, "0"), (429, "0"), (201, None)]
        assert [line["status"] for line in log_lines(store)] == [503, 429, 201]

    def test_fail_first_lets_a_request_through_and_gives_one_answer_its_own_retry_after(
            self, start_receiver: Any) -> None:
        """`--fail-first pass,422,429:7,503 --retry-after 2` (the command line, as the
        ubl-embedded tests use it), one entry per request in turn: the first is answered
        as usual (stored, 201), the second 422, the third 429 with Retry-After: 7, the
        fourth 503 with --retry-after's 2; after them every request is answered as usual.
        Nothing an injected answer refused is stored."""
        r = start_receiver("--fail-first", "pass,422,429:7,503", "--retry-after", "2",
                           process=True)
        docs = [UBL.replace(b"INV-2001", f"INV-{i}".encode()) for i in range(5)]
        keys = [hashlib.sha256(d).hexdigest() for d in docs]
        with httpx.Client() as client:  # one keep-alive connection
            answers = [client.post(r.url, content=d, headers={
                "Content-Type": "application/xml", "Idempotency-Key": k})
                for d, k in zip(docs, keys, strict=True)]
        assert [(a.status_code, a.headers.get("retry-after")) for a in answers] == [
            (201, None), (422, None), (429, "7"), (503, "2"), (201, None)]
        assert [(x["idempotency_key"], x["status"]) for x in r.requests()] == list(
            zip(keys, [201, 422, 429, 503, 201], strict=True))
        assert sorted(p.name for p in (r.store / "documents").glob("*.xml")) == sorted(
            f"{k}.xml" for k in (keys[0], keys[4]))
        assert answers[0].json()["document_key"] == keys[0]


    def test_a_repeat_of_a_bundle_it_holds_is_answered_as_held_and_the_fault_waits(
            self, tmp_path: Path, store: Path, start: Starter) -> None:
        """`--fail-first pass,503`: a bundle is stored (201); its repeat under the same
        key gets the stored answer (200, the same body), not the 503 — a conforming
        receiver answers a key it holds from what it holds; the 503 goes to the next
        request it does not hold. Injected before the lookup, the repeat got the 503
        (and a 400 so made outboxd write "Nothing was delivered" of a bundle it has)."""
        from daemon.receiver.faults import Fault
        url = start(store, fail_first=[Fault(None), Fault(503)])
        first, other = make_sent(tmp_path / "a"), make_sent(tmp_path / "b", note="Other")
        answers = [post(url, first), post(url, first), post(url, other), post(url, other)]
        assert [a.status_code for a in answers] == [201, 200, 503, 201]
        assert answers[1].content == answers[0].content
        assert [line["status"] for line in log_lines(store)] == [201, 200, 503, 201]

    def test_a_repeat_of_a_document_it_holds_is_answered_as_held_and_the_fault_waits(
            self, start_receiver: Any) -> None:
        """ubl-embedded's documents alike: `--fail-first pass,400`, document A stored
        (201), A again gets 200 with its receipt, not the 400, which goes to B."""
        r = start_receiver("--fail-first", "pass,400", process=True)
        docs = [UBL.replace(b"INV-2001", f"INV-{i}".encode()) for i in range(2)]
        keys = [hashlib.sha256(d).hexdigest() for d in docs]
        with httpx.Client() as client:
            answers = [client.post(r.url, content=docs[i], headers={
                "Content-Type": "application/xml", "Idempotency-Key": keys[i]})
                for i in (0, 0, 1)]
        assert [a.status_code for a in answers] == [201, 200, 400]
        assert answers[1].content == answers[0].content

class TestStoreFull:
    @pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
    def test_a_full_store_is_a_507_that_keeps_nothing_and_serving_goes_on(
            self, tmp_path: Path, store: Path, start: Starter, code: int,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """The store's file system is full (or its quota used up) while a bundle is
        received, and requests.jsonl cannot be appended to either: the sender gets 507
        naming "store is full" and the fix, no staging is left, the receiver logs it at
        error and the request log's failure once. Once there is room the same bundle is
        stored (201) and logged again. (A stand-in for the full disk, injected where the
        store is written: tests/faults/test_full_share.py has the store on a real full
        tmpfs.)"""
        url = start(store)
        sent = make_sent(tmp_path)
        from daemon.receiver import receive, requestlog

        def full(*args: object, **kwargs: object) -> None:
            raise OSError(code, os.strerror(code), str(store / "x"))

        monkeypatch.setattr(receive, "write_atomic", full)
        monkeypatch.setattr(requestlog, "append_whole", full)  # requests.jsonl
        with capture_logs() as said:
            answers = [post(url, sent) for _ in range(2)]
        assert [a.status_code for a in answers] == [507, 507]
        error = answers[0].json()["error"]
        assert "store is full" in error and os.strerror(code) in error and "free space" in error
        assert stored_bundles(store) == [] and list(store.glob(".tmp-*")) == []
        events = [(e["log_level"], e["event"]) for e in said]
        assert events.count(("error", "cannot append to the request log; requests go on "
                             "being answered")) == 1, events
        assert events.count(("error", "POST /bundles 507")) == 2, events
        monkeypatch.undo()
        with capture_logs() as said:
            assert post(url, sent).status_code == 201
        assert stored_bundles(store) == [sent.key]
        assert [line["status"] for line in log_lines(store)] == [201]
        assert "the request log is written again" in [e["event"] for e in said]


class TestStartUpErrors:
    def test_a_port_in_use_is_one_line_naming_the_address_and_exit_2(
            self, tmp_path: Path) -> None:
        """Another program listens on the port: one line with the address, the OS error
        and the fix; exit 2 (a usage error), no traceback."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = run_receiver("--listen", f"127.0.0.1:{port}", "--store", str(tmp_path / "s"))
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert f"127.0.0.1:{port}" in line and "Address already in use" in line
        assert "choose another port" in line


    def test_a_store_that_cannot_be_created_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path) -> None:
        """--store below a plain file: one line with the folder, the OS error and the fix;
        exit 2, no traceback, nothing listening."""
        (tmp_path / "afile").write_text("x")
        store = tmp_path / "afile" / "sub"
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(store))
        assert done.returncode == 2 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert str(store) in line and "Not a directory" in line and "name a folder" in line


def test_off_a_terminal_every_line_the_receiver_logs_is_json(start_receiver: Any) -> None:
    """Under systemd or a log collector (stderr not a terminal) the receiver logs JSON
    lines only: each answered POST is an event with its status and key (it was a line of
    plain text among the JSON ones)."""

    receiver = start_receiver(process=True)
    assert httpx.post(receiver.url, content=b"not multipart",
                      headers={"Content-Type": "text/plain"}).status_code == 400
    wait_for(lambda: "POST /bundles 400" in receiver.stderr(), what="the POST's log line")
    events = [json.loads(line) for line in receiver.stderr().splitlines()]
    [answered] = [e for e in events if e["event"] == "POST /bundles 400"]
    assert answered["level"] == "info" and answered["idempotency_key"] is None
    assert answered["error"] == "Content-Type must be multipart/form-data"


def test_a_receiver_on_a_thread_once_stopped_answers_nothing_and_leaves_no_handler(
        tmp_path: Path, start_receiver: Any) -> None:
    """The tests' receiver on a thread (conftest.ThreadReceiver) stops as a receiver
    process ends: a kept-alive connection gets no answer after the stop, a request in
    flight is cut (no bundle stored), the port refuses new connections, and no handler
    thread is left to the next test. Before, the stopped receiver still answered 200 on
    a kept-alive connection, and each handler waited up to 120 s for its client."""
    import threading

    receiver = start_receiver()
    sent = make_sent(tmp_path)
    head, body = raw_request(sent, receiver.url)
    with httpx.Client(timeout=10) as client, connect(receiver.url) as uploading:
        assert client.get(receiver.url).status_code == 200  # a connection kept alive
        uploading.sendall(head + b"\r\n" + body[:1000])  # a POST whose body is not all there
        wait_for(lambda: _handlers() == 2, what="both connections served")
        receiver.stop()
        with pytest.raises(httpx.TransportError):
            client.get(receiver.url)
        assert uploading.recv(4096) == b""  # cut: no answer will come
    assert _handlers() == 0, [t.name for t in threading.enumerate()]
    with pytest.raises(ConnectionRefusedError):
        connect(receiver.url).close()
    assert stored_bundles(receiver.store) == []


def _handlers() -> int:
    """Threads of this process serving a connection of a threaded HTTP server."""
    import threading
    return sum("process_request_thread" in t.name for t in threading.enumerate())


class TestSlowSenders:
    def test_a_sender_trickling_its_body_loses_its_key_after_the_time_its_length_allows(
            self, tmp_path: Path, store: Path, url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Slow-loris: one byte now and then never trips the socket's idle timeout, so
        without a deadline for the whole body a sender held its Idempotency-Key (and a
        handler thread) for as long as it liked, and the real sender got 409 forever. The
        body must arrive within the handler's timeout plus its length at MIN_BODY_RATE;
        then the connection is closed and the key is free again."""
        from daemon.receiver import multipart
        from daemon.receiver import server as server_module
        monkeypatch.setattr(server_module.ReceiverHandler, "timeout", 1.0)
        monkeypatch.setattr(multipart, "MIN_BODY_RATE", 1 << 30)  # the deadline: ~1 s
        sent = make_sent(tmp_path)
        head, body = raw_request(sent, url)
        with connect(url) as sock:
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
            assert interim_answer(sock).startswith(b"HTTP/1.1 100")  # the key is now held
            assert post(url, sent).status_code == 409
            sock.settimeout(0.3)
            closed = False
            for byte in body[:100]:  # ~30 s at most; the deadline is ~1 s
                try:
                    sock.sendall(bytes([byte]))
                    closed = sock.recv(1024) == b""
                except TimeoutError:
                    continue  # nothing from the receiver yet: trickle on
                except ConnectionError:
                    closed = True
                if closed:
                    break
            assert closed, "the receiver kept reading a body trickled one byte at a time"
        resp = post(url, sent)
        assert resp.status_code == 201, resp.text
        assert stored_bundles(store) == [sent.key]


def interim_answer(sock: socket.socket) -> bytes:
    """The receiver's interim answer to "Expect: 100-continue", read to its blank line
    (byte by byte: nothing of what follows it is taken)."""
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        interim += sock.recv(1)
    return interim


class TestIdleConnections:
    """A connection timing out before a request's first byte is a client keeping it
    alive, not a fault; one timing out with a request begun is."""

    GET = b"GET / HTTP/1.1\r\nHost: receiver\r\n\r\n"

    def _closed_by_receiver(self, sock: socket.socket) -> None:
        sock.settimeout(20)
        while sock.recv(4096):  # the rest of an answer, then the receiver's close
            pass

    def test_an_idle_kept_alive_connection_timing_out_is_a_debug_line_not_a_warning(
            self, store: Path, start: Starter, monkeypatch: pytest.MonkeyPatch) -> None:
        """After its last request a client (httpx) keeps the connection open; the
        receiver closes it at its timeout. That was logged as the warning "receiver:
        Request timed out: TimeoutError('timed out')" some minutes after every burst, and
        read as a fault: now a debug line saying the connection was idle."""
        from structlog.testing import capture_logs

        from daemon.receiver import server as server_module
        monkeypatch.setattr(server_module.ReceiverHandler, "timeout", 0.2)
        url = start(store)
        with capture_logs() as logged, connect(url) as sock:
            sock.sendall(self.GET)
            self._closed_by_receiver(sock)
        assert [e for e in logged if e["log_level"] == "warning"] == []
        [idle] = [e for e in logged if "idle" in e["event"]]
        assert idle["log_level"] == "debug"
        assert idle["event"] == "receiver: idle connection closed: no request within 0.2 s"

    def test_a_request_head_cut_short_by_the_timeout_stays_a_warning(
            self, store: Path, start: Starter, monkeypatch: pytest.MonkeyPatch) -> None:
        """A client that sent part of a request and then nothing: that request is lost,
        and the line says so as a warning."""
        from structlog.testing import capture_logs

        from daemon.receiver import server as server_module
        monkeypatch.setattr(server_module.ReceiverHandler, "timeout", 0.2)
        url = start(store)
        with capture_logs() as logged, connect(url) as sock:
            sock.sendall(self.GET + b"POST /bundles HTTP/1.1\r\nHost: rec")
            self._closed_by_receiver(sock)
        [warning] = [e for e in logged if e["log_level"] == "warning"]
        assert warning["event"].startswith("receiver: Request timed out")
        assert not [e for e in logged if "idle" in e["event"]]


@pytest.mark.parametrize("listen", ["8787", "127.0.0.1:", ":8787", "127.0.0.1:http",
                                    "127.0.0.1:70000"])
def test_a_listen_address_without_host_and_port_is_one_line_and_exit_2(
        tmp_path: Path, listen: str) -> None:
    """`--listen` that is not HOST:PORT (a port alone, no port, no host, a service name,
    a port past 65535): one line quoting it and an example, exit 2, nothing listening
    and no store made."""
    done = run_receiver("--listen", listen, "--store", str(tmp_path / "s"))
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8787" in line
    assert not (tmp_path / "s").exists()


def test_a_request_the_http_parser_refuses_is_answered_in_json(url: str) -> None:
    """A request the HTTP parser refuses itself (a method the receiver has no handler
    for, a probe) is answered as every answer of the receiver's is — JSON — and the
    connection closed, not with the base class's HTML page."""
    with connect(url) as sock:
        sock.sendall(b"BREW /bundles HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read()
    assert resp.status == 501 and resp.getheader("Content-Type", "").startswith(
        "application/json")
    assert "BREW" in json.loads(body)["error"] and resp.getheader("Connection") == "close"


@pytest.mark.parametrize("fault", [RuntimeError("a bug"),
                                   PermissionError(errno.EACCES, "Permission denied")],
                         ids=["bug", "os-error"])
def test_a_request_the_receiver_fails_on_is_a_500_and_it_serves_on(
        tmp_path: Path, store: Path, url: str, monkeypatch: pytest.MonkeyPatch,
        fault: Exception) -> None:
    """A fault of the receiver's own while it takes a bundle (a bug, an OS error other
    than a full store): answered 500 naming it, in JSON, nothing kept, the key let go —
    the same bundle sent again is then stored (201), the receiver serving on."""
    from daemon.receiver import server
    real = server.receive_bundle
    calls: list[int] = []

    def fails_once(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise fault
        return real(*args)

    monkeypatch.setattr(server, "receive_bundle", fails_once)
    sent = make_sent(tmp_path)
    first = post(url, sent)
    assert first.status_code == 500
    assert first.json()["error"] == f"receiver failed: {fault!r}"
    assert stored_bundles(store) == [] and not list(store.glob(".tmp-*"))
    again = post(url, sent)
    assert again.status_code == 201, again.text
    assert stored_bundles(store) == [sent.key]
