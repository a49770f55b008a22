"""Permission changes count as changes (issue 6, case 4): an invoice file the daemon may
not read, fixed with chmod, is read again and sent without anyone touching it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LEAN, Env
from helpers import drop_bundle, pdf_bytes, wait_for

from daemon.config import OutboxConfig
from daemon.scan import candidate_for, snapshot
from faults.conftest import OUTBOXD, no_traceback

NOBODY = 65534


def test_snapshot_changes_when_only_the_mode_changes(tmp_path: Path) -> None:
    """A chmod (same name, size and mtime) gives a different snapshot, so settling and
    reading start again."""
    cfg = OutboxConfig(path=tmp_path)
    (tmp_path / "INV-1.xml").write_bytes(b"<x/>")
    (tmp_path / "INV-1").mkdir()
    (tmp_path / "INV-1" / "a.pdf").write_bytes(b"%PDF")
    cand = candidate_for(cfg, "INV-1.xml")
    before = snapshot(cand, cfg)
    st = os.stat(tmp_path / "INV-1" / "a.pdf")
    os.chmod(tmp_path / "INV-1" / "a.pdf", 0o000)
    os.utime(tmp_path / "INV-1" / "a.pdf", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert snapshot(cand, cfg) != before
    os.chmod(tmp_path / "INV-1" / "a.pdf", 0o644)
    os.chmod(tmp_path / "INV-1.xml", 0o600)
    assert snapshot(cand, cfg) != before


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp folders are root-only)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the daemon as another user")
    root = Path(tempfile.mkdtemp(prefix="outboxd-perm-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_unreadable_invoice_fixed_with_chmod_is_sent(open_root: Path, receiver) -> None:
    """The daemon runs as an unprivileged user; an invoice file it may not read is reported
    (status shows the error), and after `chmod` alone it is read and sent."""
    env = Env(open_root)
    env.outbox.mkdir()
    env.write_config(receiver.url, **LEAN)  # what is read, not where: see conftest.LEAN
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(open_root)], check=True)
    log = open_root / "daemon.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                 "--clear-groups", *OUTBOXD, "run", "-c", str(env.config)],
                                stderr=fh, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: "outboxd running" in log.read_text() or proc.poll() is not None,
                 what="the daemon to start")
        assert proc.poll() is None, log.read_text()
        inv = drop_bundle(env.outbox, "INV-4", {"a.pdf": pdf_bytes()})
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(env.outbox)], check=True)
        os.chmod(inv, 0o000)
        wait_for(lambda: "bundle cannot be read" in log.read_text(), what="the read error")
        st = os.stat(inv)
        os.chmod(inv, 0o644)
        os.utime(inv, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the mode changes
        wait_for(env.sent_bundles, what="the bundle sent after chmod")
        assert len(receiver.accepted()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # no daemon left behind; the log check below says why
            proc.wait()
    no_traceback(log.read_text())
