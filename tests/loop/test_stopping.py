"""The stop sequence (stopping.py), on the loop without timing (fakeloop): the parts
closed in the right order, and what a stop abandons named in the log.
"""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs


def test_a_stop_drops_the_loops_queued_reads_before_it_waits_for_the_deliveries(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a stop the loop's reads still queued for the readers are dropped first, then
    the deliveries get their grace period (the readers still serving them), and only
    then do the readers stop."""
    svc = make_service()
    order: list[str] = []

    class Readers:
        def drop_reads(self) -> int:
            order.append("reads dropped")
            return 0

        def stop(self) -> None:
            order.append("readers stopped")

    real = svc.workers.stop

    def stop(grace: float) -> bool:
        order.append("deliveries waited for")
        return bool(real(grace))

    monkeypatch.setattr(svc, "_readers", Readers())
    monkeypatch.setattr(svc.workers, "stop", stop)
    svc.request_stop()
    svc._shutdown()
    assert order == ["reads dropped", "deliveries waited for", "readers stopped"]


def test_a_stop_that_abandons_a_delivery_names_the_bundle_in_the_log(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop whose grace period runs out while a delivery hangs said only "abandoning
    deliveries still in flight": each abandoned bundle now has its own bundle event
    (bundle_id, invoice_file, invoice_ids), so the log says what the next start resumes."""
    svc = make_service()
    row = svc.journal.create("SLOW-1.xml", "delivering", bundle_id="d" * 64,
                             invoice_ids=["SLOW-1"])
    monkeypatch.setattr(svc.workers, "stop", lambda grace: False)
    monkeypatch.setattr(svc.workers, "running", lambda: {row})
    svc.request_stop()
    with capture_logs() as logs:
        svc._shutdown()
    [event] = [e for e in logs if e["event"].startswith("delivery abandoned at stop")]
    assert (event["invoice_file"], event["bundle_id"], event["invoice_ids"]) == \
        ("SLOW-1.xml", "d" * 64, ["SLOW-1"])
    assert event["log_level"] == "warning"


def test_a_start_given_up_takes_its_fingerprint_back_before_it_frees_the_state_dir(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start given up after its fingerprint was written removes it while it still
    holds the state dir: a daemon of this machine that takes the state dir the moment it
    is freed (systemd's next try, a start by hand) writes its own fingerprint under the
    same name, and a withdrawal after the release removed that running daemon's file
    (a twin of another machine then started unseen, and took its work folders)."""
    from daemon.configuration.deciding import FOLDER
    from daemon.fs.fswrite import write_atomic
    from daemon.loop import statelock

    svc = make_service()
    mine = svc.settings.outbox.path.joinpath(*FOLDER) / f"{svc.deciding.tag}.json"
    written = mine.read_bytes()
    real = statelock.release

    def release(state_dir: Any) -> None:
        assert not mine.exists()  # withdrawn, while the state dir is still held
        real(state_dir)
        write_atomic(mine, written)  # the next daemon's start, as soon as it may

    monkeypatch.setattr(statelock, "release", release)
    svc._abandon_start()
    assert mine.exists()


def _fingerprint(svc: Any) -> Any:
    from daemon.configuration.deciding import FOLDER

    return svc.settings.outbox.path.joinpath(*FOLDER) / f"{svc.deciding.tag}.json"


def test_a_stop_whose_page_cannot_be_written_still_withdraws_closes_and_releases(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clerks' page failing at the stop (the share gone: OSError) skipped the rest:
    the fingerprint stayed (a daemon that runs no more compared with for a day), the
    journal stayed open and the state dir stayed held. Now the failure is one error line
    naming it, without a traceback, and the fingerprint is withdrawn, the journal
    closed and the state dir released all the same."""
    import errno
    import sqlite3

    from daemon.loop import statelock

    svc = make_service()
    mine, state_dir = _fingerprint(svc), svc._state_dir
    assert mine.exists() and statelock.running(state_dir) is True

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                str(svc.settings.outbox.path / "outboxd-status.html"))

    monkeypatch.setattr(svc.publish, "stopped", stopped)
    svc.request_stop()
    with capture_logs() as logs:
        svc._shutdown()
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "a part of the stop failed; the rest of it goes on"
    assert "outboxd-status.html" in error["error"] and "exc_info" not in error
    assert "Errno" not in error["error"]  # in words: "No such file or directory (…)"
    assert logs[-1]["event"] == "stopped"
    assert not mine.exists()
    with pytest.raises(sqlite3.ProgrammingError):
        svc.journal._db.execute("SELECT 1")
    assert svc._state_dir is None and statelock.running(state_dir) is False


def test_a_stop_that_fails_part_way_withdraws_its_fingerprint_before_it_frees_the_state_dir(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a start given up: also when a part of the stop failed, the fingerprint goes
    while the state dir is held, so the next daemon of this machine, which writes its
    own the moment it holds the state dir, keeps it."""
    from daemon.fs.fswrite import write_atomic
    from daemon.loop import statelock

    svc = make_service()
    mine = _fingerprint(svc)
    written = mine.read_bytes()
    real = statelock.release

    def release(state_dir: Any) -> None:
        real(state_dir)
        write_atomic(mine, written)  # the next daemon's start, as soon as it may

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(statelock, "release", release)
    monkeypatch.setattr(svc.publish, "stopped", stopped)
    svc.request_stop()
    svc._shutdown()
    assert mine.exists()


def test_a_stop_step_that_fails_with_a_bug_still_runs_the_tail_and_raises(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure no one expects (a bug) is not swallowed: the fingerprint is withdrawn
    and the state dir released first, then it is raised (its traceback is the report)."""
    from daemon.loop import statelock

    svc = make_service()
    mine, state_dir = _fingerprint(svc), svc._state_dir

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(svc.publish, "stopped", stopped)
    svc.request_stop()
    with capture_logs() as logs, pytest.raises(KeyError):
        svc._shutdown()
    assert not mine.exists() and statelock.running(state_dir) is False
    assert "stopped" not in [e["event"] for e in logs]
    monkeypatch.undo()  # the fixture's own stop at the end of the test


@pytest.mark.parametrize("failing", ["watcher", "readers"])
def test_a_part_of_the_work_that_fails_to_stop_still_lets_the_deliveries_end_and_the_journal_close(
        make_service: Any, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """The watcher failing to stop skipped the rest of the work's stop: the deliveries
    were never told to end (they went on posting and writing the journal after the
    state dir was released), the readers were never stopped, and a stop whose
    deliveries had all ended said "abandoning deliveries still in flight" and left the
    journal open; the readers failing to stop, after every delivery had ended, did the
    same. Now each part stops on its own: the error is one line, the deliveries get
    their grace period, the readers stop, and the journal is closed."""
    import sqlite3

    svc = make_service()
    order: list[str] = []

    def broken() -> None:
        order.append(f"{failing} failed")
        raise OSError(5, "Input/output error")

    class Readers:
        def drop_reads(self) -> int:
            order.append("reads dropped")
            return 0

        def stop(self) -> None:
            if failing == "readers":
                broken()
            order.append("readers stopped")

    real = svc.workers.stop

    def stop(grace: float) -> bool:
        order.append("deliveries waited for")
        return bool(real(grace))

    if failing == "watcher":
        monkeypatch.setattr(svc.watcher, "stop", broken)
    monkeypatch.setattr(svc, "_readers", Readers())
    monkeypatch.setattr(svc.workers, "stop", stop)
    svc.request_stop()
    with capture_logs() as logs:
        svc._shutdown()
    assert order == (["watcher failed", "reads dropped", "deliveries waited for",
                      "readers stopped"] if failing == "watcher" else
                     ["reads dropped", "deliveries waited for", "readers failed"])
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "a part of the stop failed; the rest of it goes on"
    assert not [e for e in logs if e["log_level"] == "warning"]  # nothing abandoned
    assert logs[-1]["event"] == "stopped"
    with pytest.raises(sqlite3.ProgrammingError):
        svc.journal._db.execute("SELECT 1")


def test_a_start_given_up_stops_its_readers_and_each_part_though_one_fails_with_a_bug(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start given up stops the reader processes it started (left running, the exit
    waits for them for good) and then the watcher, also when the readers' stop fails
    with an error no one expects: that is logged, and the start's own error stays the
    one reported."""
    svc = make_service()
    order: list[str] = []

    class Readers:
        def stop(self) -> None:
            order.append("readers")
            raise RuntimeError("bug")

    monkeypatch.setattr(svc, "_readers", Readers())
    monkeypatch.setattr(svc.watcher, "stop", lambda: order.append("watcher"))
    with capture_logs() as logs:
        svc._abandon_start()
    assert order == ["readers", "watcher"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "could not stop a part started before the failure"]
    monkeypatch.undo()  # the fixture's own stop at the end of the test


def test_a_stop_whose_connection_pool_fails_to_close_still_closes_the_journal(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliverer's connection pool failing to close at the stop is one error line,
    and the journal is closed all the same (its last writes kept, no lock left on it)."""
    import sqlite3

    svc = make_service()

    def close() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(svc.pipeline.finish.d, "close", close)
    svc.request_stop()
    with capture_logs() as logs:
        svc._shutdown()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "a part of the stop failed; the rest of it goes on"]
    with pytest.raises(sqlite3.ProgrammingError):
        svc.journal._db.execute("SELECT 1")


def test_a_stop_names_every_abandoned_bundle_whose_row_it_can_read(
        make_service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row that cannot be read at the stop (the journal's disk failing: sqlite3's
    error) is skipped: the other abandoned bundles are still named, and the stop goes on
    without an error of its own."""
    import sqlite3

    svc = make_service()
    first = svc.journal.create("SLOW-1.xml", "delivering", bundle_id="d" * 64,
                               invoice_ids=["SLOW-1"])
    second = svc.journal.create("SLOW-2.xml", "delivering", bundle_id="e" * 64,
                                invoice_ids=["SLOW-2"])
    real = svc.journal.get

    def get(row_id: int) -> Any:
        if row_id == first:
            raise sqlite3.OperationalError("disk I/O error")
        return real(row_id)

    monkeypatch.setattr(svc.workers, "stop", lambda grace: False)
    monkeypatch.setattr(svc.workers, "running", lambda: {first, second})
    monkeypatch.setattr(svc.journal, "get", get)
    svc.request_stop()
    with capture_logs() as logs:
        svc._shutdown()
    named = [e["invoice_file"] for e in logs
             if e["event"].startswith("delivery abandoned at stop")]
    assert named == ["SLOW-2.xml"]
    assert not [e for e in logs if e["log_level"] == "error"]
