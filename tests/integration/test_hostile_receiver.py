"""End to end: `outboxd run` against a receiver on 127.0.0.1 that answers as no
receiver should (raw bytes, test_answer_deadline.RawReceiver): a bundle lands in sent/
only on an answer that is truly its own, is retried with the same Idempotency-Key when
the answer is lost or not its own, and the log says what happened, without a traceback
or the token. Classification itself: test_answers.py; the transport: test_deliver.py and
test_answer_deadline.py."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env, Proc, journal_states
from delivery.test_answer_deadline import RawReceiver
from helpers import drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

TOKEN = "hostile-test-token-4711"


def answer(status: str, body: dict[str, str], extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def key_of(head: str) -> str:
    match = re.search(r"(?im)^idempotency-key: *(\S+)", head)
    assert match, head
    return match.group(1)


def receipt_of(entry: Path) -> dict:
    return json.loads((entry / "receipt.json").read_text())


def events(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def calm(daemon: Proc) -> str:
    """The daemon's log, checked for what no hostile answer may cause in it."""
    log = daemon.stderr()
    assert "Traceback" not in log and TOKEN not in log
    assert daemon.popen.poll() is None, "the daemon stopped"
    return log


def started_against(rx: RawReceiver, env: Env, start_daemon: Callable[[], Proc]) -> Proc:
    """The daemon started, delivering to `rx` with TOKEN (which no log line may show)."""
    env.write_config(f"http://127.0.0.1:{rx.port}/bundles", delivery={"token": TOKEN})
    return start_daemon()


def sent_once(env: Env) -> Path:
    """INV-1's one entry in sent/, once the journal says it is sent."""
    [entry] = wait_for(env.sent_bundles, what="the bundle in sent/")
    wait_for(lambda: journal_states(env) == {"INV-1.xml": "sent"}, what="sent")
    return entry


def test_a_connection_closed_before_any_answer_is_retried_with_the_same_key_and_sent_once(
        env: Env, start_daemon) -> None:
    """The receiver reads the whole POST and closes the connection without a word (it
    may have stored the bundle): the attempt is retried with the same Idempotency-Key,
    whose answer files it in sent/ once, after two attempts; the log says the receiver
    gave no answer after the request was sent — not that it could not be reached."""
    def serve(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        if n == 0:
            conn.close()
            return
        key = key_of(rx.head())
        conn.sendall(answer("200 OK", {"receipt_id": "R-kept", "bundle_id": key}))

    with RawReceiver(serve) as rx:
        daemon = started_against(rx, env, start_daemon)
        drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf_bytes()})
        entry = sent_once(env)
        receipt = receipt_of(entry)
        keys = [key_of(h) for h in rx.heads]
    assert keys == [receipt["manifest"]["bundle_id"]] * 2
    assert receipt["attempts"] == 2 and receipt["response"]["receipt_id"] == "R-kept"
    log = calm(daemon)
    assert "no valid answer from the receiver at 127.0.0.1" in log
    assert "cannot reach" not in log


def test_a_stray_answer_after_a_receipt_is_not_taken_for_the_next_bundles(
        env: Env, start_daemon) -> None:
    """The receiver answers the first POST with its receipt and, on the same kept-alive
    connection, a second 201 nobody asked for; every later POST it refuses (422). The
    next bundle posted on that connection was filed in sent/ with the stray 201 as its
    receipt, though the receiver refused it. Now the stray answer is not taken: that
    bundle is asked again on a new connection, and quarantined with the receiver's 422."""
    def serve(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        if n == 0:
            conn.sendall(answer("201 Created", {"receipt_id": "R-first"})
                         + answer("201 Created", {"receipt_id": "R-STRAY"}))
        else:
            conn.sendall(answer("422 Unprocessable Content",
                                {"error": "hostile receiver refuses this bundle"}))

    with RawReceiver(serve) as rx:
        daemon = started_against(rx, env, start_daemon)
        drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf_bytes()})
        [first] = wait_for(env.sent_bundles, what="the first bundle in sent/")
        drop_bundle(env.outbox, "INV-2", {"timesheet.pdf": pdf_bytes(2)})
        wait_for(lambda: journal_states(env).get("INV-2.xml") in ("sent", "quarantined"),
                 what="the second bundle's outcome")
        assert journal_states(env) == {"INV-1.xml": "sent", "INV-2.xml": "quarantined"}
        [quarantined] = wait_for(env.quarantined, what="the second bundle in quarantine/")
    assert receipt_of(first)["response"]["receipt_id"] == "R-first"
    assert env.sent_bundles() == [first]
    reason = (quarantined / "REASON.txt").read_text()
    assert "HTTP 422" in reason and "hostile receiver refuses this bundle" in reason
    assert "R-STRAY" not in reason
    assert "an answer was already waiting on the kept-alive connection" in calm(daemon)


def test_a_receipt_naming_another_bundle_is_not_filed_as_sent(
        env: Env, start_daemon) -> None:
    """A 201 whose JSON names the id of another bundle this daemon sent (a receiver or a
    proxy that mixed up its answers: INV-1's answer given again to INV-2's request) is
    no receipt for this bundle: it is asked again with the same key, and only the answer
    naming its own id files it in sent/ (with that answer's receipt). The log's error
    names the id the receiver gave, ours, and the bundle the named one is."""
    sent_first: list[str] = []

    def serve(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        key = key_of(rx.head())
        named = sent_first[0] if n == 1 else key  # INV-2's first answer is INV-1's
        sent_first.append(key)
        conn.sendall(answer("201 Created", {"receipt_id": f"R-{n}", "bundle_id": named}))

    with RawReceiver(serve) as rx:
        daemon = started_against(rx, env, start_daemon)
        drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf_bytes()})
        [first] = wait_for(env.sent_bundles, what="the first bundle in sent/")
        drop_bundle(env.outbox, "INV-2", {"timesheet.pdf": pdf_bytes(2)})
        wait_for(lambda: len(env.sent_bundles()) == 2, what="the second bundle in sent/")
        [entry] = [e for e in env.sent_bundles() if e != first]
        receipt = receipt_of(entry)
    assert receipt["attempts"] == 2 and receipt["response"]["receipt_id"] == "R-2"
    ours, theirs = receipt["manifest"]["bundle_id"], receipt_of(first)["manifest"]["bundle_id"]
    assert any(f'names bundle_id "{theirs}", not "{ours}": that is the id of INV-1.xml '
               "(sent), another bundle of this outboxd" in line.get("error", "")
               for line in events(calm(daemon)))


def test_connection_close_on_every_answer_sends_each_bundle_once(
        env: Env, start_daemon) -> None:
    """`Connection: close` on every answer, the connection then closed: each POST takes
    a new connection and every bundle is sent once, in one attempt."""
    def serve(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        key = key_of(rx.head())
        conn.sendall(answer("201 Created", {"receipt_id": f"R-{n}", "bundle_id": key},
                            "Connection: close\r\n"))
        conn.close()

    with RawReceiver(serve) as rx:
        daemon = started_against(rx, env, start_daemon)
        for n in range(1, 5):
            drop_bundle(env.outbox, f"INV-{n}", {"timesheet.pdf": pdf_bytes(n)})
        wait_for(lambda: len(env.sent_bundles()) == 4, what="four bundles in sent/")
        assert len(rx.heads) == rx.connections == 4
    assert {receipt_of(e)["attempts"] for e in env.sent_bundles()} == {1}
    calm(daemon)


@pytest.mark.parametrize("status", ["200 OK", "201 Created"])
def test_a_web_page_answering_2xx_is_sent_with_a_warning_that_names_it(
        env: Env, start_daemon, status: str) -> None:
    """A captive portal or a load balancer's maintenance page answers the POST with 2xx
    and HTML: the protocol makes it a receipt, so the bundle is filed in sent/ with the
    page in receipt.json (what came back) — and `bundle sent` is a warning saying it was
    a web page, not the operator's answer, and what to check."""
    page = b"<!DOCTYPE html>\n<html><body><h1>Service under maintenance</h1></body></html>"

    def serve(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        conn.sendall((f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\n"
                      f"Content-Length: {len(page)}\r\n\r\n").encode() + page)

    with RawReceiver(serve) as rx:
        daemon = started_against(rx, env, start_daemon)
        drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf_bytes()})
        entry = sent_once(env)
        wait_for(lambda: any(e.get("event") == "bundle sent" for e in events(daemon.stderr())),
                 what="the bundle sent line")
    response = receipt_of(entry)["response"]
    assert response["body"] == page.decode() and response["receipt_id"] is None
    [sent] = [e for e in events(calm(daemon)) if e.get("event") == "bundle sent"]
    assert sent["level"] == "warning"
    assert sent["answer"].startswith(f"the answer (HTTP {status[:3]}) was a web page")
    assert "captive portal" in sent["answer"] and "[delivery] url" in sent["answer"]


def test_a_json_receipt_is_sent_without_a_web_page_warning(env: Env, start_daemon) -> None:
    """The operator's JSON receipt (the reference answer): `bundle sent` at info level,
    without the web page's warning."""
    def serve(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        conn.sendall(answer("201 Created", {"receipt_id": "R-1"}))

    with RawReceiver(serve) as rx:
        daemon = started_against(rx, env, start_daemon)
        drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf_bytes()})
        wait_for(lambda: any(e.get("event") == "bundle sent" for e in events(daemon.stderr())),
                 what="the bundle sent line")
    [sent] = [e for e in events(calm(daemon)) if e.get("event") == "bundle sent"]
    assert sent["level"] == "info" and "answer" not in sent
