"""Settling on a disk that keeps file times to the second (daemon/watching/snapshot.py,
settle.py) with the real kernel: ext4 made with 128-byte inodes keeps no fraction of a
second, as a FAT disk in a NAS (2 s) or an old NFS server (1 s) does. Needs root; skipped
with the reason elsewhere."""

from __future__ import annotations

from pathlib import Path

from daemon.configuration.config import OutboxConfig
from daemon.watching.scan import list_outbox
from daemon.watching.settle import SettleTracker
from daemon.watching.snapshot import snapshot
from faults.conftest import Mounts


def test_a_rewrite_within_the_second_is_unseen_and_settling_waits_the_second_out(
        tmp_path: Path, mounts: Mounts) -> None:
    """An invoice file saved again in place at its size (100.00 -> 900.00) within the same
    second shows no change to any lstat there; the snapshot knows its times are whole
    seconds (coarse 1, or 2 on an even second, which FAT's could be), and with
    settle_seconds = 1 the bundle is not settled until that much more has passed."""
    outbox = mounts.ext4(tmp_path / "share", "16M", "-I", "128") / "outbox"
    outbox.mkdir()
    cfg = OutboxConfig(path=outbox)
    invoice = outbox / "INV-1.xml"
    for _ in range(3):  # the save fell into the next second: seen, try again
        invoice.write_bytes(b"<Invoice>100.00</Invoice>")
        cand = list_outbox(cfg).candidates["INV-1.xml"]
        before = snapshot(cand, cfg)
        with open(invoice, "r+b") as fh:
            fh.write(b"<Invoice>900.00</Invoice>")
        after = snapshot(cand, cfg)
        if after == before:
            break
    assert before is not None and after == before
    assert before.coarse in (1, 2)
    tracker = SettleTracker(1)
    assert not tracker.observe("INV-1.xml", before, now=50.0)
    assert not tracker.observe("INV-1.xml", after, now=51.0)
    assert tracker.observe("INV-1.xml", after, now=50.0 + 1 + before.coarse)
