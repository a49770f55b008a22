"""A reload brings the reader processes back once they were given up (they kept dying,
or could not load the e-invoice rules) or left short (replacements that could not load
the rules no longer started): the admin mends the install and reloads, no restart."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

import reader_targets  # noqa: E402
from helpers import wait_for  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.reading import readers  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from reading.test_reader_engine_lost import broken_saxonche, left_short, mended  # noqa: E402
from reading.test_reader_pool import bundles  # noqa: E402
from reading.test_readers import (  # noqa: E402
    alive,
    child_pids,
    in_child,
    readers_of,
    settings_for,
)

STARTED_AGAIN = "reader processes started again"
GIVEN_UP = "reader processes cannot be started again; reading in the daemon's own process"


def test_a_reload_after_the_rules_are_mended_starts_the_readers_given_up_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """saxonche breaks on disk, the reader dies and its replacements cannot load the
    rules: reading moves into the daemon's own process. A reload before the fix tries
    once, says so in one error line and is not refused (its other settings apply); a
    reload after the fix starts a reader again, which answers the next read with the
    rules loaded. Before, a reload with the same settings left reading in the daemon's
    process until a restart."""
    pytest.importorskip("saxonche")
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 1)
    s = settings_for(tmp_path, service={"reader_processes": 1})  # pre-flight on
    r = Readers(tmp_path / "state" / "einvoice")
    with capture_logs() as lines:
        r.configure(s)
        try:
            [cand] = bundles(s, "B1")
            fake = broken_saxonche(monkeypatch, tmp_path)
            [first] = r.pids()
            os.kill(first, signal.SIGKILL)
            wait_for(lambda: not r.processes, what="reading to move to threads")
            r.configure(s, reload=True)  # not mended yet: no exception, the reload goes on
            assert not r.processes and r.pids() == []
            [again] = [x for x in lines if x["event"] == GIVEN_UP
                       and "saxonche is broken here" in x["error"]]
            assert again["log_level"] == "error" and "reload" in again["fix"]
            mended(fake)
            r.configure(s, reload=True)
            assert r.processes
            [pid] = r.pids()
            assert pid != first and pid != os.getpid()
            assert r.read(cand, s, reader_targets.pid_of_reader) == pid
            bundle = in_child(r, cand, s)  # pre-flight in the child: the rules loaded there
            assert isinstance(bundle, Bundle), bundle
            assert [x["event"] for x in lines].count(STARTED_AGAIN) == 1
            r.configure(s, reload=True)  # a reader running, as many as set: left as it is
            assert r.pids() == [pid]
        finally:
            r.stop()


def test_a_reload_after_the_rules_are_mended_fills_a_pool_left_short(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two readers; saxonche breaks and one dies; its replacements cannot load the rules
    and are no longer started, the other reads on alone; a reload before the fix says so
    once and leaves it reading. After the fix a reload starts two readers again (the
    old one retired), and reads are answered by them. Before, the pool stayed one
    reader short until a restart."""
    pytest.importorskip("saxonche")
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 2)
    s = settings_for(tmp_path, service={"reader_processes": 2})  # pre-flight on
    r = Readers(tmp_path / "state" / "einvoice")
    with capture_logs() as lines:
        r.configure(s)
        try:
            cands = bundles(s, *(f"S{n}" for n in range(4)))
            fake = broken_saxonche(monkeypatch, tmp_path)
            healthy, doomed = r.pids()
            os.kill(doomed, signal.SIGKILL)
            left_short(r, s, cands, lines, limit=2)
            assert r.pids() == [healthy]
            r.configure(s, reload=True)  # not mended yet: the one reader left reads on
            assert r.pids() == [healthy]
            [again] = [x for x in lines if x["event"].startswith("reader processes cannot be")]
            assert again["event"].endswith("; 1 running read on")
            assert "saxonche is broken here" in again["error"] and "reload" in again["fix"]
            mended(fake)
            r.configure(s, reload=True)
            now = r.pids()
            assert len(now) == 2 and healthy not in now and doomed not in now
            for cand in cands:
                assert r.read(cand, s, reader_targets.pid_of_reader) in now
                assert isinstance(in_child(r, cand, s), Bundle)
            assert [x["event"] for x in lines].count(STARTED_AGAIN) == 1
        finally:
            r.stop()


def test_readers_given_up_for_dying_come_back_at_a_reload_with_a_fresh_count(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A reader and its replacement are killed without a result between: reading moves
    into the daemon's own process. A reload starts a reader again; when that one dies
    it is replaced, as any first death is — the deaths before the reload are not held
    against it (they gave up on it at its first death)."""
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 1)
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 1})
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    try:
        [cand] = bundles(s, "D1")
        [first] = r.pids()
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: [p for p in r.pids() if p != first],
                          what="a replacement")[0]
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: not r.processes, what="reading to move to threads")
        assert r.read(cand, s, reader_targets.pid_of_reader) == os.getpid()
        r.configure(s, reload=True)
        [back] = r.pids()
        os.kill(back, signal.SIGKILL)  # before any result of its own (one resets the count)
        wait_for(lambda: not r.processes or [p for p in r.pids() if p != back],
                 what="a replacement, or reading moved to threads")
        assert r.processes, "given up at the first death after the reload"
        [replaced] = r.pids()
        assert r.read(cand, s, reader_targets.pid_of_reader) == replaced
    finally:
        r.stop()


def test_the_daemon_brings_its_readers_back_at_a_sighup_after_giving_them_up(
        env: Any, tmp_path: Path) -> None:
    """The real daemon: its reader processes are killed as soon as they start, until it
    reads in its own process ("cannot be started again"). A SIGHUP with the file
    unchanged, as `systemctl reload outboxd` sends, starts reader processes again:
    children running, "reader processes started again" before "configuration
    reloaded", no traceback. Before, they came back only with a restart."""
    import subprocess

    from conftest import OUTBOXD, START_DEADLINE
    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"})
    log = tmp_path / "back.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)], stderr=fh,
                                stdout=subprocess.DEVNULL, start_new_session=True)
    killed: set[int] = set()

    def given_up() -> bool:
        for kid in readers_of(child_pids(proc.pid)):
            if kid not in killed:
                killed.add(kid)
                os.kill(kid, signal.SIGKILL)
        return "reader processes cannot be started again" in log.read_text()
    try:
        wait_for(lambda: "outboxd running" in log.read_text(), timeout=START_DEADLINE,
                 what="the daemon to start")
        wait_for(given_up, timeout=60, what="the daemon to give its readers up")
        wait_for(lambda: not [p for p in readers_of(child_pids(proc.pid)) if alive(p)],
                 what="the last reader to end")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in log.read_text(), timeout=60,
                 what="the reload")
        text = log.read_text()
        assert text.index("reader processes started again") < text.index(
            "configuration reloaded"), text
        back = [p for p in readers_of(child_pids(proc.pid)) if alive(p)]
        assert back and not set(back) & killed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()
