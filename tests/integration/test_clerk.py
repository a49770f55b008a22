"""The clerk's workflow end to end: the real daemon and receiver, commands run as
`python -m daemon …` subprocesses beside them (SPEC §1.6, §7)."""

from __future__ import annotations

import io
import json
import subprocess

from conftest import OUTBOXD, Env, Receiver
from helpers import drop_bundle, pdf_bytes, wait_for
from PIL import Image


def outboxd(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTBOXD, *args, "-c", str(env.config)], capture_output=True,
                          text=True, timeout=60)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    return buf.getvalue()


def test_quarantined_bundle_fixed_in_place_and_retried_is_delivered(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url)
    start_daemon()
    drop_bundle(env.outbox, "INV-1001", {"scan.pdf": png()})
    [folder] = wait_for(env.quarantined, what="the bundle in quarantine/")
    wait_for(lambda: (folder / "REASON.txt").exists(), what="REASON.txt")
    (folder / "INV-1001" / "scan.pdf").write_bytes(pdf_bytes())  # the fix, in place

    done = outboxd(env, "retry", folder.name.split("--")[1])
    assert done.returncode == 0, done.stderr
    [sent] = wait_for(env.sent_bundles, what="the retried bundle in sent/")
    assert (sent / "INV-1001" / "scan.pdf").read_bytes() == pdf_bytes()
    assert not (sent / "REASON.txt").exists() and not folder.exists()
    assert len(receiver.accepted()) == 1
    # The journal records the retry: the old row no longer counts as quarantined.
    counts = json.loads(outboxd(env, "status", "--json").stdout)["counts"]
    assert counts["quarantined"] == 0 and counts["sent"] == 1
