"""`outboxd status` never prints a traceback (issue 6, case 8): a corrupt journal, a
read-only state dir, output piped into a reader that goes away."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import Env

from daemon.journal import Journal
from faults.conftest import OUTBOXD, Mounts


def _status(config: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*OUTBOXD, "status", "-c", str(config)], text=True, timeout=30,
                          **({"capture_output": True} | kw))


def test_corrupt_journal_is_one_clear_line(env: Env) -> None:
    """A journal that is not a database: one line naming the file and the problem, exit 1."""
    env.write_config("http://127.0.0.1:9/x")
    env.state.mkdir()
    (env.state / "journal.sqlite3").write_bytes(b"this is not sqlite" * 100)
    out = _status(env.config)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "journal.sqlite3" in out.stderr and "not a database" in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2


def test_read_only_state_dir_still_shows_status(env: Env, mounts: Mounts) -> None:
    """A state dir mounted read-only (a backup host, a stopped daemon): status reads it."""
    real = env.root / "state-rw"
    real.mkdir()
    j = Journal(real / "journal.sqlite3")
    j.create("INV-1.xml", "waiting", bundle_id="a" * 64, invoice_ids=["INV-1"])
    j.close()
    mounts.bind(real, env.state, readonly=True)
    env.write_config("http://127.0.0.1:9/x")
    out = _status(env.config)
    assert out.returncode == 0, out.stderr
    assert "waiting: 1" in out.stdout and "INV-1.xml" in out.stdout
    assert "Traceback" not in out.stderr


def test_status_into_a_closed_pipe_is_quiet(env: Env) -> None:
    """`outboxd status | head -0`: the reader is gone before we write; no BrokenPipeError."""
    env.write_config("http://127.0.0.1:9/x")
    r, w = os.pipe()
    os.close(r)
    try:
        out = _status(env.config, stdout=w, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(w)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert out.returncode == 0
