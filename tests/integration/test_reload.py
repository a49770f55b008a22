"""SIGHUP as an admin uses it (`systemctl reload outboxd`): the real daemon, the reference
receiver on 127.0.0.1, the configuration file edited between reloads
(docs/configuration.md, Reloading)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_states
from helpers import drop_bundle, outboxd_with, text_pdf, wait_for

# Lean: reloading does not depend on where bundles are read, and no test here is about
# pre-flight or the attachment wait (two of them paid its second for their bundle).
pytestmark = pytest.mark.usefixtures("no_attachment_wait", "quick_settle")


def test_a_waiting_invoice_that_a_reload_makes_no_invoice_file_is_left_alone_not_sent(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A PDF invoice waits for attachments; the admin narrows [outbox] invoice_patterns to
    "*.xml" and sets unattached = "send" in one reload. The PDF is no invoice file any
    more: its waiting row ends (as at a start), `outboxd status` lists it among the files
    left alone and no longer as waiting, and it stays in the outbox, unsent — while an
    XML invoice dropped after the reload goes out under the new policy."""
    env.write_config(receiver.url, policy={"unattached": "hold"})
    daemon = start_daemon()
    (env.outbox / "P-77.pdf").write_bytes(text_pdf(["Invoice number: P-77"]))
    wait_for(lambda: journal_states(env).get("P-77.pdf") == "waiting",
             what="the PDF invoice to wait for attachments")

    env.write_config(receiver.url, policy={"unattached": "send"},
                     outbox={"invoice_patterns": ["*.xml"]})
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: journal_states(env).get("P-77.pdf") not in ("waiting", "settling"),
             what="the PDF's waiting row to end after the reload")
    drop_bundle(env.outbox, "INV-X1", {})
    wait_for(lambda: journal_states(env).get("INV-X1.xml") == "sent",
             what="the XML invoice dropped after the reload to be sent")

    assert journal_states(env)["P-77.pdf"] == "gone"
    assert (env.outbox / "P-77.pdf").is_file()
    assert [r["idempotency_key"] for r in receiver.accepted()] == \
        [json.loads((p / "receipt.json").read_text())["manifest"]["bundle_id"]
         for p in env.sent_bundles()]
    assert [p.name.split("--")[0] for p in env.sent_bundles()] == ["INV-X1"]
    status = subprocess.run([*OUTBOXD, "status", "-c", str(env.config)], capture_output=True,
                            text=True, timeout=60).stdout
    waiting = status.split("Waiting for attachments:")[1].split("\n\n")[0] \
        if "Waiting for attachments:" in status else ""
    assert "P-77.pdf" not in waiting
    assert "P-77.pdf: not an invoice file" in status


def test_a_token_rotated_in_token_file_is_used_at_the_next_reload_and_never_shown(
        env: Env, start_receiver, start_daemon) -> None:
    """The operator issues a new token and refuses the old one (401): the bundle pauses,
    for an hour (retry_max_seconds). A reload while token_file still holds the old token
    (as a systemd credential does until a restart) warns that the url and token are the
    same, and the bundle stays paused; once the new token is in the file, the next
    reload sends it at once. Neither token is ever in the daemon's log, `outboxd
    status` (text and JSON) or the status page."""
    old, new = "old-T0KEN-4f2a9", "new-T0KEN-8c1d7"
    token_file = env.root / "token"
    token_file.write_text(old + "\n")
    receiver = start_receiver("--token", new)
    env.write_config(receiver.url, delivery={"token_file": str(token_file),
                                             "retry_max_seconds": 3600})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-T1", {})
    wait_for(lambda: journal_states(env).get("INV-T1.xml") == "retrying"
             and any(r["status"] == 401 for r in receiver.requests()),
             what="the bundle paused by the receiver's 401")

    def refusals() -> int:
        return sum(r["status"] == 401 for r in receiver.requests())

    refused = refusals()
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "the reload brought the same [delivery] url and token" in daemon.stderr(),
             what="the warning that the reload brought the same token")
    # The reload tries the paused bundle again at once, on a delivery thread: at the
    # warning the row may still be `delivering`. Paused again once that try is refused.
    wait_for(lambda: refusals() > refused and journal_states(env)["INV-T1.xml"] == "retrying",
             what="the reload's try refused (401) and the bundle paused again")
    assert env.sent_bundles() == []

    token_file.write_text(new + "\n")
    daemon.popen.send_signal(signal.SIGHUP)
    [sent] = wait_for(env.sent_bundles, what="the paused bundle in sent/ with the new token")
    assert sent.name.startswith("INV-T1--")
    assert [r["status"] for r in receiver.requests()][-1] == 201

    shown = [daemon.stderr(), (env.outbox / "outboxd-status.html").read_text()]
    for args in (["status"], ["status", "--json"]):
        shown.append(subprocess.run([*OUTBOXD, *args, "-c", str(env.config)],
                                    capture_output=True, text=True, timeout=60).stdout)
    assert not [text for text in shown if old in text or new in text]


def test_a_bundle_whose_post_was_under_way_at_a_reload_to_another_url_names_its_receiver(
        env: Env, start_receiver, start_daemon, tmp_path) -> None:
    """The admin moves [delivery] url to a second receiver while the first one has taken
    a bundle's POST but not answered it. The POST times out (its outcome unknown, so the
    bundle cannot count as sent there): the bundle goes to the new receiver at once, and
    receipt.json says which receiver accepted it (`delivered_to`, the new url). The old
    receiver kept its copy — an answer that never came cannot be told from a refusal."""
    first = start_receiver("--hold-first", "30", store=tmp_path / "first", process=True)
    second = start_receiver(store=tmp_path / "second")
    # The held POST times out this long after it was stored: the time the test has to
    # reload (some 0.1 s, under load a few tenths), and what it then waits out.
    env.write_config(first.url, delivery={"timeout_seconds": 3})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-U1", {})
    wait_for(lambda: [p for p in first.store.iterdir() if len(p.name) == 64]
             if first.store.is_dir() else [], what="the first receiver to store the bundle")

    env.write_config(second.url, delivery={"timeout_seconds": 5})
    daemon.popen.send_signal(signal.SIGHUP)
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/ after the reload")

    receipt = json.loads((sent / "receipt.json").read_text())
    assert receipt["delivered_to"] == second.url
    assert receipt["response"]["status"] == 201 and receipt["attempts"] == 2
    assert [r["idempotency_key"] for r in second.accepted()] == \
        [receipt["manifest"]["bundle_id"]]


def test_a_claimed_bundle_is_checked_again_for_the_format_a_reload_switches_to(
        env: Env, start_receiver, start_daemon) -> None:
    """A PDF invoice with its attachment is claimed under [delivery] format = "bundle"
    and put off by the receiver (503, Retry-After 2). The admin switches to
    "ubl-embedded", which sends UBL only: at its next attempt the bundle is read and
    checked again for the new format, as after a restart, and quarantined as not UBL —
    not posted, and not reported as changed in the processing folder, which it was not."""
    receiver = start_receiver("--fail-first", "503", "--retry-after", "2")
    env.write_config(receiver.url)
    daemon = start_daemon()
    (env.outbox / "P-9").mkdir()
    (env.outbox / "P-9" / "contract.pdf").write_bytes(text_pdf(["Contract"]))
    (env.outbox / "P-9.pdf").write_bytes(text_pdf(["Invoice number: P-9"]))
    wait_for(lambda: journal_states(env).get("P-9.pdf") == "retrying",
             what="the bundle put off by the receiver")

    env.write_config(receiver.url, delivery={"format": "ubl-embedded"})
    daemon.popen.send_signal(signal.SIGHUP)
    [folder] = wait_for(env.quarantined, what="the bundle quarantined under ubl-embedded")

    reasons = json.loads((folder / "reason.json").read_text())["reasons"]
    assert [r["code"] for r in reasons] == ["not-ubl"]
    assert "processing folder" not in (folder / "REASON.txt").read_text()
    assert [r["status"] for r in receiver.requests()] == [503]


def test_a_reload_while_the_outbox_is_away_is_applied_once_it_is_back(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The share is not mounted when the admin reloads a new file (unattached "hold" →
    "send"): the file is not applied while the outbox is away — the log says so and that
    it follows by itself — and once the outbox is back the new file is in force without a
    second reload: an invoice without attachments dropped then goes out at once instead
    of being held."""
    # The outbox looked at again 0.2 s after its first failed look, not 1 s (outage.FIRST_LOOK):
    # its coming back is what is shown, not how soon the first look after the loss comes.
    env.daemon = outboxd_with({"daemon.watching.outage.FIRST_LOOK": 0.2})
    env.write_config(receiver.url, policy={"unattached": "hold"})
    daemon = start_daemon()
    away = env.root / "unmounted"
    env.outbox.rename(away)
    env.write_config(receiver.url, policy={"unattached": "send"})
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded once the outbox is back" in daemon.stderr(),
             what="the log line that the reload waits for the outbox")
    assert "configuration reloaded" not in daemon.stderr()

    away.rename(env.outbox)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(),
             what="the reload applied once the outbox is back")
    drop_bundle(env.outbox, "INV-A1", {})
    [sent] = wait_for(env.sent_bundles, what="the unattached invoice sent under the new file")

    assert sent.name.startswith("INV-A1--")
    assert [r["status"] for r in receiver.requests()] == [201]
    assert "configuration not reloaded; keeping the old one" not in daemon.stderr()


@pytest.mark.usefixtures("quick_page")
def test_a_status_page_a_reload_renames_or_turns_on_is_written_with_nothing_moving(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The clerks' page follows a reload within its interval (2 s as shipped; 0.5 s
    here, conftest.quick_page), though nothing in the outbox changes (the page is
    otherwise rewritten only when the journal does): renamed, the page is written under
    its new name and the old one is gone — never neither; turned off and on again, it is
    written again without waiting for a bundle."""
    env.write_config(receiver.url)
    daemon = start_daemon()
    old, new = env.outbox / "outboxd-status.html", env.outbox / "status-now.html"
    wait_for(old.is_file, what="the status page of the start")

    def reload(status_page: str, count: int) -> None:
        env.write_config(receiver.url, share={"status_page": status_page})
        daemon.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.stderr().count("configuration reloaded") == count,
                 what=f"reload {count}")

    reload(new.name, 1)
    wait_for(new.is_file, what="the page under the name the reload gave it")
    assert not old.exists()
    assert "outboxd" in new.read_text()
    reload("", 2)
    wait_for(lambda: not new.exists(), what="the page turned off to go")
    reload(old.name, 3)
    wait_for(old.is_file, what="the page turned on again to be written")
    assert sorted(p.name for p in env.outbox.iterdir()) == [".outboxd", old.name]
