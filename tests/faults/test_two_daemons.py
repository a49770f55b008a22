"""Two daemons on one share, and a config path that is a folder (issue 6, case 9)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from conftest import OUTBOXD, Env, Proc
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import no_traceback

# Daemons here start lean (conftest.LEAN): the claim race is the daemons', not their readers'.
pytestmark = pytest.mark.usefixtures("lean")


def test_losing_a_claim_race_is_not_an_error(env: Env, receiver) -> None:
    """Two daemons (own state dirs) on one outbox, 40 bundles: each is sent once and the one
    that loses a race logs no error (it is normal work, not a broken bundle)."""
    procs = []
    for n in (1, 2):
        cfg = env.root / f"config{n}.toml"
        # Each its own status page, as docs/operations.md tells admins: with one name,
        # a starting daemon's sweep of dead temp files can take the other's page write.
        env.write_config(receiver.url, paths={"state_dir": str(env.root / f"state{n}")},
                         outbox={"path": str(env.outbox), "settle_seconds": 0.2,
                                 "rescan_seconds": 5},
                         share={"status_page": f"outboxd-status-{n}.html"})
        env.config.rename(cfg)
        p = Proc([*OUTBOXD, "run", "-c", str(cfg)], env.root / f"d{n}.log")
        procs.append(p)
    try:
        for p in procs:
            # Two daemons start at once (as shipped, each loading the rules in its reader
            # processes, that took over 20 s on a busy 2-core host). One that exits fails fast.
            wait_for(lambda p=p: "outboxd running" in p.stderr() or p.popen.poll() is not None,
                     timeout=60, what="daemon start")
            assert p.popen.poll() is None, p.stderr()
        for i in range(40):
            drop_bundle(env.outbox, f"INV-{i:03}", {"a.pdf": pdf_bytes(1 + i % 3)})
        wait_for(lambda: len(env.sent_bundles()) >= 40, timeout=90, what="40 bundles sent")
    finally:
        for p in procs:
            p.stop(signal.SIGTERM)
    assert len(env.sent_bundles()) == 40
    assert len({r["idempotency_key"] for r in receiver.accepted()}) == 40
    for p in procs:
        errors = [json.loads(line) for line in p.stderr().splitlines()
                  if line.startswith("{") and json.loads(line).get("level") == "error"]
        assert errors == []
        no_traceback(p.stderr())


def test_config_path_that_is_a_folder_is_named_so(env: Env, receiver, start_daemon) -> None:
    """`-c FOLDER` says the path is a folder (not "does not exist"), at start and on SIGHUP,
    where the old configuration is kept."""
    folder = env.root / "conf.d"
    folder.mkdir()
    out = subprocess.run([*OUTBOXD, "config", "--check", "-c", str(folder)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "is a folder" in out.stderr, out.stderr
    env.write_config(receiver.url)
    daemon = start_daemon()
    env.config.rename(env.root / "config.bak")
    env.config.mkdir()
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded" in daemon.stderr(), what="the reload error")
    line = next(ln for ln in daemon.stderr().splitlines() if "not reloaded" in ln)
    assert "is a folder" in line and "does not exist" not in line
    drop_bundle(env.outbox, "INV-9", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="still working on the old configuration")
