"""`outboxd attach` as a process into an outbox on a full or read-only file system (real
tmpfs mounts): exit 1, one line naming the file and the fix, nothing left behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import Env
from helpers import pdf_bytes, pdf_of_objects, ubl_invoice, write

from faults.conftest import OUTBOXD, Mounts, _run


def _attach(env: Env, src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTBOXD, "attach", "-c", str(env.config), "INV-F", str(src)],
                          capture_output=True, text=True, timeout=60)


def test_attach_into_a_full_or_read_only_outbox_says_which_file_and_leaves_nothing(
        env: Env, mounts: Mounts, tmp_path: Path) -> None:
    """A full disk said "No space left on device — free space…" naming no file, and left
    the sidecar it had made, empty; a read-only one named the copy by its /proc/self/fd
    path. Each now says which file could not be put where, and why, with the fix, and
    removes the folder it made: the outbox is as before."""
    outbox = mounts.tmpfs(tmp_path / "disk", size="1m") / "outbox"
    outbox.mkdir()
    env.write_config("http://127.0.0.1:9/bundles", outbox={"path": str(outbox)},
                     einvoice={"preflight": "off"})
    write(outbox / "INV-F.xml", ubl_invoice("INV-F"))
    noise = os.urandom(1_200_000)  # a PDF of one page and a stream larger than the disk
    big = write(tmp_path / "home" / "big.pdf", pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        b"<< /Length %d >>\nstream\n" % len(noise) + noise + b"\nendstream"]))
    full = _attach(env, big)
    assert full.returncode == 1, full.stderr
    assert full.stderr.splitlines() == [
        f"outboxd: could not put INV-F/big.pdf into the outbox {outbox}: No space left on "
        "device — free space on that file system, or raise the disk quota of outboxd's "
        "user there; nothing was changed"]
    assert sorted(p.name for p in outbox.iterdir()) == ["INV-F.xml"]
    _run("mount", "-o", "remount,ro", str(tmp_path / "disk"))
    small = write(tmp_path / "home" / "small.pdf", pdf_bytes(1))
    read_only = _attach(env, small)
    assert read_only.returncode == 1
    assert read_only.stderr.splitlines() == [
        f"outboxd: could not put INV-F/small.pdf into the outbox {outbox}: Read-only file "
        "system — it is mounted read-only; attach once it may be written; nothing was "
        "changed"]
