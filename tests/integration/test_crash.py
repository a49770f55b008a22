"""Crash safety: the daemon killed with SIGKILL at awkward moments loses nothing and
never makes a second delivery that the receiver cannot recognise."""

from __future__ import annotations

import json
import signal

from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for


def test_kill_after_receiver_stored_but_before_answer_resumes_with_same_key(
        env: Env, start_receiver, start_daemon) -> None:
    """SIGKILL while the receiver has stored the bundle but not yet answered: the restarted
    daemon posts again with the same Idempotency-Key, the receiver recognises it (200,
    same receipt), and the bundle is archived once in sent/."""
    slow = start_receiver("--hold-first", "60", process=True)  # its hold outlasts the test
    env.write_config(slow.url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-7001", {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)})
    wait_for(lambda: [r for r in slow.requests() if r["status"] == 201],
             what="the receiver to store the bundle")
    daemon.stop(signal.SIGKILL)
    assert env.sent_bundles() == []
    work = list(env.processing.iterdir())
    assert len(work) == 1 and (work[0] / "INV-7001.xml").exists()  # nothing lost

    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/ after restart")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    statuses = [r["status"] for r in slow.requests()]
    assert statuses[0] == 201 and statuses[-1] == 200 and statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    stored = [p for p in slow.store.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(stored) == 1
    receipt = json.loads((archived / "receipt.json").read_text())
    first_answer = json.loads((stored[0] / "response.json").read_text())
    assert receipt["response"]["receipt_id"] == first_answer["receipt_id"]
    assert receipt["manifest"]["bundle_id"] == stored[0].name
    assert list(env.processing.iterdir()) == []
    assert not (env.outbox / "INV-7001.xml").exists()


def test_kill_while_retrying_keeps_the_claimed_bundle_and_delivers_later(
        env: Env, start_receiver, start_daemon) -> None:
    """SIGKILL while the receiver is down: the claimed files stay in processing and the
    restarted daemon delivers them once the receiver is back."""
    down = start_receiver()
    url = down.url
    down.stop()  # nothing listens on that port now: connection refused
    env.write_config(url)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-7002", {"a.pdf": pdf_bytes()})
    wait_for(lambda: "will retry" in daemon.stderr(), what="a failed attempt")
    daemon.stop(signal.SIGKILL)
    [work] = list(env.processing.iterdir())
    assert (work / "INV-7002" / "a.pdf").exists()

    back = start_receiver()
    env.write_config(back.url)
    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="delivery after restart")
    assert (archived / "INV-7002" / "a.pdf").exists()
    assert len(back.accepted()) == 1
