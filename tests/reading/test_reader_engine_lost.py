"""A rule engine that stops loading while the daemon runs (a broken upgrade of saxonche
under it): reader processes started again cannot load it, reading moves to the daemon's
own process, which cannot either. What the bundle and the log then say."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import wait_for  # noqa: E402

from daemon import logs  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.einvoice import engine  # noqa: E402
from daemon.errors import ConfigError  # noqa: E402
from daemon.loop.unreadable import read_failed  # noqa: E402
from daemon.reading import reader_process, readers  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from daemon.watching.scan import Candidate  # noqa: E402
from reading.test_reader_pool import bundles  # noqa: E402
from reading.test_readers import in_child, settings_for  # noqa: E402


def test_an_engine_that_stops_loading_while_running_is_said_as_its_cause_and_fix_no_traceback(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The reader loaded the rules at start; then saxonche breaks on disk, the reader
    dies and neither its replacements nor the daemon's own process can load the rules.
    The read is answered with the engine's ConfigError (its cause and the fix), and the
    bundle's line names them, at error, without a traceback; it said "unexpected error"
    with the whole traceback before."""
    pytest.importorskip("saxonche")
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 1)
    s = settings_for(tmp_path, service={"reader_processes": 1})  # pre-flight on
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    try:
        [cand] = bundles(s, "E1")
        fake = tmp_path / "fake"
        fake.mkdir()
        (fake / "saxonche.py").write_text('raise ImportError("saxonche is broken here")\n')
        monkeypatch.syspath_prepend(str(fake))  # the replacements' path, and ours
        monkeypatch.delitem(sys.modules, "saxonche", raising=False)
        monkeypatch.setattr(engine, "_engine", None)
        monkeypatch.setattr(reader_process, "_load_error", None)  # its failure not kept after
        [first] = r.pids()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: not r.processes, what="reading to move to threads")
        result = in_child(r, cand, s)
        assert isinstance(result, ConfigError), result
        assert "saxonche is broken here" in str(result) and "reinstall" in str(result)
        with capture_logs() as lines:
            error, retry_at = read_failed(result, "E1.xml", s, logs.get(), 100.0)
        assert error is not None and "saxonche is broken here" in error
        assert "reinstall" in error and "reload outboxd" in error  # a reload will do
        [line] = lines
        assert line["log_level"] == "error" and "exc_info" not in line
        assert line["error"] == error and "Traceback" not in error
    finally:
        r.stop()


def test_a_reader_that_could_not_load_the_engine_answers_a_read_with_the_config_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A reader whose engine did not load answers a read that needs it with the engine's
    ConfigError as it is (cause and fix), as the daemon's own process does; it crossed
    as a ReaderFailed carrying the reader's traceback before."""
    import pickle

    s = settings_for(tmp_path, service={"reader_processes": 1})  # pre-flight on
    [cand] = bundles(s, "E2")
    why = "the e-invoice rule engine cannot load (saxonche is broken here) — reinstall"
    monkeypatch.setattr(reader_process, "_load_error", why)
    monkeypatch.setattr(reader_process, "_settings", None)
    result = reader_process.unpack(reader_process.call(cand, 1, pickle.dumps(s)))
    assert isinstance(result, ConfigError) and str(result) == why


def test_a_failed_load_in_the_daemons_process_is_tried_once_not_at_every_read(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Reading in the daemon's own process with an engine that cannot load: the first
    read tries to load it, each later read answers the same ConfigError without trying
    again (a damaged compile cache made each read a compile of seconds); a reload tries
    once more (perhaps after the fix), then that failure is remembered in its turn.
    Every read tried the load before."""
    attempts = [0]
    why = "the e-invoice rule engine cannot load (damaged here) — reinstall"

    def broken(cache_dir: Path | None = None) -> engine.Engine:
        attempts[0] += 1
        raise ConfigError(why)
    monkeypatch.setattr(engine, "Engine", broken)
    monkeypatch.setattr(engine, "_engine", None)
    monkeypatch.setattr(reader_process, "_load_error", None)
    off = settings_for(tmp_path, service={"reader_processes": 0}, einvoice={"preflight": "off"})
    on = settings_for(tmp_path, service={"reader_processes": 0})  # pre-flight on
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(off)  # reading in this process, no engine needed yet
    try:
        [cand] = bundles(on, "E3")
        for _ in range(3):
            result = in_child(r, cand, on)
            assert isinstance(result, ConfigError) and str(result) == why, result
        assert attempts[0] == 1
        with pytest.raises(ConfigError):
            r.configure(on, reload=True)  # the reload's own try: the old settings kept
        assert attempts[0] == 2
        for _ in range(2):
            assert isinstance(in_child(r, cand, on), ConfigError)
        assert attempts[0] == 2
    finally:
        r.stop()


def broken_saxonche(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """saxonche broken on disk for reader processes started from now on (their path is
    ours): the folder of the stand-in, for `mended` to take away again."""
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    (fake / "saxonche.py").write_text('raise ImportError("saxonche is broken here")\n')
    monkeypatch.syspath_prepend(str(fake))
    return fake


def mended(fake: Path) -> None:
    """The reinstall: readers started from now on load the real saxonche again."""
    sys.path.remove(str(fake))


def failed_loads(lines: list[dict[str, Any]]) -> int:
    return sum("could not load the e-invoice rules" in x["event"] for x in lines)


def left_short(r: Readers, s: Settings, cands: list[Candidate], lines: list[dict[str, Any]],
               limit: int) -> int:
    """Reads go on, one at a time, as bundles come, while the replacements of a dead
    reader cannot load the rules: until the pool stops replacing them, or has replaced
    well past the limit (the flood), whichever comes first. The reads made."""
    def given_up() -> bool:
        return any("not started again" in x["event"] for x in lines)
    read = 0
    while not given_up() and failed_loads(lines) <= limit + 3:
        result = in_child(r, cands[read % len(cands)], s)
        assert not isinstance(result, BaseException), result
        read += 1
    assert given_up(), f"{failed_loads(lines)} replacements could not load, {read} reads"
    return read


def test_replacements_that_cannot_load_the_rules_are_not_started_again_while_another_reads(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two readers loaded the rules; then saxonche breaks on disk and one reader dies.
    Its replacements cannot load the rules, while the other reader answers every read
    (a result in between reset the count of restarts in a row): each was replaced by the
    next at once, for as long as bundles came — an error and a warning line and a
    reader's start, again and again. Now after RESTARTS_IN_ROW + 1 such replacements in
    a row none is started again, said once with the fix, and the reader that has the
    rules reads on."""
    pytest.importorskip("saxonche")
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 2)
    limit = 2
    s = settings_for(tmp_path, service={"reader_processes": 2})  # pre-flight on
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    with capture_logs() as lines:
        try:
            cands = bundles(s, *(f"F{n}" for n in range(4)))
            broken_saxonche(monkeypatch, tmp_path)  # the replacements' path
            healthy, doomed = r.pids()
            os.kill(doomed, signal.SIGKILL)
            left_short(r, s, cands, lines, limit)
            assert failed_loads(lines) == limit + 1
            [said] = [x for x in lines if "not started again" in x["event"]]
            assert said["log_level"] == "error" and "reload" in said["fix"]
            started = r.restarts
            for cand in cands:  # the reader that has the rules reads on, alone
                assert not isinstance(in_child(r, cand, s), BaseException)
            assert r.pids() == [healthy] and r.restarts == started
            assert failed_loads(lines) == limit + 1
        finally:
            r.stop()
