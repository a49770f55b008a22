"""A bundle part named like one of outboxd's papers (REASON.txt, reason.json,
receipt.json) where outboxd writes them: the sidecar of REASON.txt.xml is REASON.txt/.
outboxd never writes a paper over a file or folder it did not write, so such a bundle,
claimed, could never be moved into sent/ or quarantine/; it stays in the outbox, held
with `paper-name` whatever [policy] invalid says (docs/codes.md). The real daemon,
watchdog observer and reference receiver."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Env, Receiver, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")



def _held_as_a_paper(env: Env, receiver: Receiver, start_daemon: Any, name: str) -> str:
    """NAME.xml with NAME/scan.pdf dropped into a running daemon and held: the text of
    its NAME.errors.txt."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600})
    start_daemon()
    drop_bundle(env.outbox, name, {"scan.pdf": pdf_bytes(2)})
    wait_for(lambda: journal_states(env).get(f"{name}.xml") == "held", what=f"{name}.xml held")
    errors = env.outbox / f"{name}.errors.txt"
    wait_for(errors.exists, what=errors.name)
    return errors.read_text(encoding="utf-8")

def test_a_sidecar_named_REASON_txt_is_held_in_the_outbox_not_stuck_on_its_way(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under the default invalid = "quarantine", REASON.txt.xml with REASON.txt/scan.pdf
    is held with `paper-name` in REASON.txt.errors.txt (before: claimed and quarantined
    into a work folder where REASON.txt is its sidecar, stuck `quarantining` for good).
    Renamed alike by the clerk, it is sent with its attachment."""
    text = _held_as_a_paper(env, receiver, start_daemon, "REASON.txt")
    assert "REASON.txt: the name of this attachments folder is one outboxd keeps for its " \
           "own papers" in text
    assert "rename REASON.txt.xml and its attachments folder alike" in text
    assert (env.outbox / "REASON.txt" / "scan.pdf").is_file()
    assert env.quarantined() == [] and env.sent_bundles() == [] and receiver.accepted() == []

    (env.outbox / "REASON.txt").rename(env.outbox / "INV-9")  # the clerk's fix
    (env.outbox / "REASON.txt.xml").rename(env.outbox / "INV-9.xml")
    [sent] = wait_for(env.sent_bundles, what="INV-9.xml in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    assert (sent / "INV-9" / "scan.pdf").is_file()
    assert env.quarantined() == [] and len(receiver.accepted()) == 1


def test_a_sidecar_named_like_a_paper_in_other_case_is_held_too(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Reason.TXT.xml with Reason.TXT/scan.pdf: on the SMB share (or a Mac) Reason.TXT and
    REASON.txt are one name, so the quarantine's REASON.txt would meet the clerk's folder.
    Held with `paper-name` saying so, not claimed (before: sent or quarantined as any
    bundle on Linux, where the two names differ, though the share shows the clash)."""
    text = _held_as_a_paper(env, receiver, start_daemon, "Reason.TXT")
    assert "Reason.TXT: the name of this attachments folder is one outboxd keeps for its " \
           "own papers" in text
    assert "takes Reason.TXT and REASON.txt for one name" in text
    assert (env.outbox / "Reason.TXT" / "scan.pdf").is_file()
    assert env.quarantined() == [] and env.sent_bundles() == [] and receiver.accepted() == []
