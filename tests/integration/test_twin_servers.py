"""Two servers with one short host name and one state dir path on one outbox (a new
server started while the old one still runs): the second does not start, the first's
bundle stays its own, and after the switch-over it is sent once. Real daemons, each
with a machine id of its own (machine.MACHINE_ID_FILES set for the process: on one test
host they share the short name, and a state dir path only a second machine could give
its own disk), the reference receiver on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from conftest import Env, journal_states
from helpers import drop_bundle, outboxd_with, pdf_bytes, wait_for

from daemon.claiming.claim import copy_tag
from daemon.configuration.deciding import FOLDER

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def _machine(env: Env, name: str, machine_id: str) -> list[str]:
    """`python -m daemon` on a machine whose /etc/machine-id holds `machine_id`."""
    path = env.root / f"machine-id-{name}"
    path.write_text(machine_id + "\n")
    return outboxd_with({"daemon.configuration.machine.MACHINE_ID_FILES": (str(path),)})


def test_a_second_server_of_the_same_name_waits_until_the_first_stops_and_takes_nothing(
        env: Env, start_receiver, start_daemon) -> None:
    """The old server's daemon retries INV-1 (receiver down). The new server's `run`
    exits 1 naming the old machine's fingerprint and the fix; INV-1's work folder and the
    old daemon's fingerprint are as they were, the old daemon still retries, and
    `outboxd status` on the new server says why. The old daemon stopped cleanly (its
    fingerprint gone) and the receiver back: the new server starts and INV-1 is sent once,
    nothing quarantined (the trial's bug: quarantined as a duplicate of itself)."""
    down = start_receiver()
    url = down.url
    down.stop()  # connection refused: the old daemon retries
    env.write_config(url, policy={"unattached": "send"})
    old = _machine(env, "old", "0" * 32)
    new = _machine(env, "new", "1" * 32)
    env.daemon = old
    old_daemon = start_daemon()
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    wait_for(lambda: journal_states(env).get("INV-1.xml") == "retrying",
             what="the old daemon retrying INV-1")
    [work] = list(env.processing.iterdir())
    fingerprint = env.outbox.joinpath(*FOLDER, f"{copy_tag(env.state)}.json")
    before = fingerprint.read_bytes()

    refused = subprocess.run([*new, "run", "-c", str(env.config)], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 1, refused.stderr
    [line] = [json.loads(x) for x in refused.stderr.splitlines()
              if "another machine's outboxd runs on this outbox" in x]
    [problem] = line["problems"]
    assert line["source"] == str(fingerprint)
    assert f"(machine {json.loads(before)['machine']}) runs on this outbox" in problem
    assert f"{env.processing} (NAME--ID--" in problem and ", 1 now)" in problem
    assert "own short host name (hostnamectl hostname) or its own [paths] state_dir" in problem
    assert (work / "INV-1.xml").exists() and fingerprint.read_bytes() == before
    assert old_daemon.popen.poll() is None and "put back" not in old_daemon.stderr()

    status = subprocess.run([*new, "status", "-c", str(env.config)], capture_output=True,
                            text=True, timeout=120)
    assert "runs on this outbox under this daemon's name" in status.stderr
    assert "outboxd does not start here while that daemon runs" in status.stderr

    back = start_receiver()
    env.write_config(back.url, policy={"unattached": "send"})
    assert old_daemon.stop(signal.SIGTERM) == 0
    assert not fingerprint.exists()  # a clean stop removes it
    env.daemon = new
    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="INV-1 sent after the switch-over")
    assert (archived / "INV-1" / "a.pdf").exists()
    assert len(back.accepted()) == 1 and env.quarantined() == []
    assert json.loads(fingerprint.read_text())["machine"] != json.loads(before)["machine"]
