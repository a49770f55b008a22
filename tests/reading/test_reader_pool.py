"""The reader processes' plumbing (daemon/reading/reader_pool.py): routing to the least busy
child, a reload that keeps answering, a child that talks nonsense, a collector that
fails. (A child that dies or overruns: test_reader_deaths.py.) Real spawned children; a
child is paused (SIGSTOP) to hold a call outstanding, never a sleep."""

from __future__ import annotations

import inspect
import multiprocessing
import os
import pickle
import signal
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

import reader_targets  # noqa: E402
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.reading import reader_child, reader_lifecycle, reader_pool, reader_process  # noqa: E402
from daemon.reading.reader_pool import Call, Pool, Restarts  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from daemon.watching.scan import Candidate, candidate_for  # noqa: E402
from reading.test_readers import (  # noqa: E402
    alive,
    in_child,
    one_reader,
    settings_for,
    warnings_of,
)

Answers = dict[str, "Bundle | BaseException"]


def bundles(s: Settings, *names: str) -> list[Candidate]:
    for name in names:
        drop_bundle(s.outbox.path, name, {"a.pdf": pdf_bytes()}, ubl_invoice(name))
    return [candidate_for(s.outbox, f"{name}.xml") for name in names]


def submit(r: Readers, cand: Candidate, s: Settings, answers: Answers) -> None:
    r.submit(cand, s, lambda result: answers.__setitem__(cand.name, result))


def test_a_call_goes_to_the_child_with_the_fewest_calls(two: tuple[Readers, Settings]
                                                        ) -> None:
    """Both readers paused with one call each; one resumes and answers. The next calls
    all go to it, since the other still has a call outstanding: they are answered
    while the other stays paused (handing out in turn would give it one of them)."""
    r, s = two
    b0, b1, b2, b3 = bundles(s, "B0", "B1", "B2", "B3")
    p, q = r.pids()
    for pid in (p, q):
        os.kill(pid, signal.SIGSTOP)
    answers: Answers = {}
    submit(r, b0, s, answers)
    submit(r, b1, s, answers)
    os.kill(p, signal.SIGCONT)
    wait_for(lambda: len(answers) == 1, what="the resumed reader's answer")
    for cand in (b2, b3):
        assert in_child(r, cand, s) == evaluate(cand, s)
    assert len(answers) == 1
    os.kill(q, signal.SIGCONT)
    wait_for(lambda: len(answers) == 2, what="the other reader's answer")
    assert answers == {c.name: evaluate(c, s) for c in (b0, b1)}


def test_a_call_does_not_queue_behind_a_call_that_has_run_long(
        two: tuple[Readers, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """One reader holds a call past LONG_CALL (paused: a batch file of thousands of
    invoices pre-flighted takes minutes), the other a call just begun: new calls go
    behind the short one, not the long one, though both hold as many calls (with
    fewest-calls alone the next went to the first reader and waited the big read out:
    a small bundle dropped after a 15 MB batch was sent 32 s later instead of 6)."""
    monkeypatch.setattr(reader_child, "LONG_CALL", 0.5)
    r, s = two
    b0, b1, b2, b3 = bundles(s, "L0", "L1", "L2", "L3")
    p, q = r.pids()
    for pid in (p, q):
        os.kill(pid, signal.SIGSTOP)
    answers: Answers = {}
    submit(r, b0, s, answers)  # to the first reader: both are idle
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since > 1.0, what="the first call to run long")
    for cand in (b1, b2, b3):
        submit(r, cand, s, answers)
    os.kill(q, signal.SIGCONT)
    wait_for(lambda: len(answers) == 3, timeout=10, what="the calls behind the short one")
    assert answers == {c.name: evaluate(c, s) for c in (b1, b2, b3)}
    os.kill(p, signal.SIGCONT)
    wait_for(lambda: "L0" in answers, what="the long call's answer")
    assert answers["L0"] == evaluate(b0, s)


def test_a_call_does_not_queue_behind_the_older_call_before_it_counts_as_long(
        two: tuple[Readers, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """Both readers hold one call, neither yet past LONG_CALL: a new call goes behind
    the one that began last, not behind the first reader's older one. A big batch's
    read counts as long only after LONG_CALL, and the second small bundle dropped in
    that time went behind it on a tie (the first reader first) and waited the whole
    batch out, minutes of pre-flight."""
    monkeypatch.setattr(reader_child, "LONG_CALL", 600.0)  # neither counts as long
    r, s = two
    b0, b1, b2 = bundles(s, "T0", "T1", "T2")
    p, q = r.pids()
    for pid in (p, q):
        os.kill(pid, signal.SIGSTOP)
    answers: Answers = {}
    submit(r, b0, s, answers)  # to the first reader: both are idle
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since > 0.2, what="the first call to be the older")
    submit(r, b1, s, answers)  # to the second: it holds fewer
    submit(r, b2, s, answers)  # a tie: behind the call that began last
    os.kill(q, signal.SIGCONT)
    wait_for(lambda: len(answers) == 2, timeout=10, what="the calls on the second reader")
    assert answers == {c.name: evaluate(c, s) for c in (b1, b2)}
    os.kill(p, signal.SIGCONT)
    wait_for(lambda: "T0" in answers, what="the older call's answer")
    assert answers["T0"] == evaluate(b0, s)


def test_a_reload_to_a_new_shape_still_answers_calls_on_the_old_children(
        two: tuple[Readers, Settings], tmp_path: Path) -> None:
    """configure() with another number of readers starts new children and takes new
    calls there at once; a call the old ones hold is still answered, and then the
    old children exit."""
    r, s = two
    b0, b1 = bundles(s, "R0", "R1")
    old = r.pids()
    for pid in old:
        os.kill(pid, signal.SIGSTOP)
    answers: Answers = {}
    submit(r, b0, s, answers)
    r.configure(settings_for(tmp_path, einvoice={"preflight": "off"},
                             service={"reader_processes": 1}))
    assert len(r.pids()) == 1 and not set(r.pids()) & set(old)
    assert in_child(r, b1, s) == evaluate(b1, s)
    assert not answers
    for pid in old:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: answers, what="the old reader's answer")
    assert answers == {"R0": evaluate(b0, s)}
    wait_for(lambda: not any(alive(p) for p in old), what="the old readers to exit")


def test_the_collector_survives_a_child_that_sends_garbage(tmp_path: Path) -> None:
    """A reader answers its first call with bytes that are no message: the collector
    logs an error, ends and replaces that reader and repeats the call there (its real
    result); the pool goes on answering."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    cache = tmp_path / "cache"
    cache.mkdir()
    b0, b1 = bundles(s, "G0", "G1")
    blob = pickle.dumps(s)
    restarts = Restarts(limit=5)
    errors: list[str] = []

    class Log:
        def error(self, event: str, **kw: Any) -> None:
            errors.append(event)

        def warning(self, event: str, **kw: Any) -> None:
            pass

    pool = Pool(multiprocessing.get_context("spawn"), 1, False, cache, s.log,
                reader_process.unpack, restarts, route=lambda call: pool.send(call, 1, blob),
                give_up=lambda pool, why: errors.append(why), target=reader_targets.garbage_once)
    pool.log = Log()  # type: ignore[assignment]
    pool.start(60)
    try:
        for cand in (b0, b1):
            box: Future[Bundle | BaseException] = Future()
            assert pool.send(Call(cand, s, box.set_result, None, 3), 1, blob)
            assert box.result(timeout=60) == evaluate(cand, s)
        assert restarts.total == 1
        assert errors == ["a reader process sent a message that cannot be read; ending it"]
    finally:
        pool.stop()


def test_an_engine_that_cannot_load_in_the_children_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Pre-flight on, and the rule engine breaks in the reader processes (here a
    saxonche that cannot be imported, on the path they inherit): configure() raises
    ConfigError with the engine's reason, like a broken install in the daemon, and
    leaves no child behind."""
    from daemon.errors import ConfigError
    pytest.importorskip("saxonche")  # loaded here first: only the children meet the fake
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "saxonche.py").write_text('raise ImportError("saxonche is broken here")\n')
    monkeypatch.syspath_prepend(str(fake))
    before = {p.pid for p in multiprocessing.active_children()}
    s = settings_for(tmp_path, service={"reader_processes": 2})
    r = Readers(tmp_path / "state" / "einvoice")
    with pytest.raises(ConfigError, match="saxonche is broken here"):
        r.configure(s)
    assert not r.processes and r.pids() == []
    assert {p.pid for p in multiprocessing.active_children()} <= before
    r.stop()


def _pool(tmp_path: Path, s: Settings, target: Any, restarts: Restarts,
          warnings: list[dict[str, Any]]) -> Pool:
    """One reader process running `target`, its warnings kept."""
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    blob = pickle.dumps(s)

    class Log:
        def error(self, event: str, **kw: Any) -> None:
            warnings.append({"event": event, **kw})

        warning = error

    pool = Pool(multiprocessing.get_context("spawn"), 1, False, cache, s.log,
                reader_process.unpack, restarts, route=lambda call: pool.send(call, 1, blob),
                give_up=lambda pool, why: warnings.append({"event": why}), target=target)
    pool.log = Log()  # type: ignore[assignment]
    pool.start(60)
    return pool


def test_a_collector_that_fails_hands_its_calls_to_threads(
        monkeypatch: pytest.MonkeyPatch, two: tuple[Readers, Settings]) -> None:
    """A bug in the collector (here: its deadline check raises) must not lose the calls
    the children hold: reading moves to threads in the daemon, with an error line, and
    the call comes back with its real result."""
    from daemon.reading import reader_pool
    r, s = two
    [cand] = bundles(s, "F1")

    def broken(self: Pool) -> int | None:
        raise RuntimeError("a bug in the collector")

    monkeypatch.setattr(reader_pool.Pool, "_until_overdue", broken)
    answers: Answers = {}
    submit(r, cand, s, answers)
    wait_for(lambda: answers, timeout=60, what="the call's answer")
    assert answers == {"F1": evaluate(cand, s)}
    wait_for(lambda: not r.processes, what="reading to move to threads")
    assert in_child(r, cand, s) == evaluate(cand, s)


def test_a_reader_whose_plugin_warm_up_fails_still_starts_and_reads_images(
        tmp_path: Path) -> None:
    """Loading Pillow's plugins before "ready" is only a warm-up: when it fails (here with
    an OSError, which its ImportError guard does not catch) the reader still says ready,
    is not replaced, and reads a bundle with an image as a reader in this process does."""
    from PIL import Image
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    png = tmp_path / "scan.png"
    Image.new("RGB", (850, 1100), "white").save(png, dpi=(100, 100))
    drop_bundle(s.outbox.path, "IMG1", {"scan.png": png.read_bytes()}, ubl_invoice("IMG1"))
    cand = candidate_for(s.outbox, "IMG1.xml")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_targets.warm_up_fails, restarts, warnings)
    try:
        box: Future[Bundle | BaseException] = Future()
        assert pool.send(Call(cand, s, box.set_result, None, 3), 1, pickle.dumps(s))
        answer = box.result(timeout=60)
        assert answer == evaluate(cand, s)
        assert isinstance(answer, Bundle) and [a.original_name for a in answer.attachments] \
            == ["scan.png"]
        assert restarts.total == 0 and warnings == [] and not pool.ended
    finally:
        pool.stop()


def test_no_method_is_defined_by_two_parts_of_the_pool() -> None:
    """Pool is made of parts (Deaths, and the pool itself): a method one part needs of the
    other is declared for mypy only, never defined as a stand-in, which would hide the
    real one if the bases were put in another order (or the real one left)."""
    owners: dict[str, list[str]] = {}
    for part in Pool.__mro__:
        for name, value in vars(part).items():
            if (inspect.isfunction(value) or isinstance(value, staticmethod | classmethod)
                    ) and not name.startswith("__"):
                owners.setdefault(name, []).append(part.__name__)
    assert {name: parts for name, parts in owners.items() if len(parts) > 1} == {}


def _hanging_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every reader process spawned from now on is stopped (SIGSTOP) at once, before it
    can say "ready": a start that hangs, as one loading from a mount that hangs does.
    Their pids, in order."""
    from daemon.reading import reader_pool
    real = reader_pool.Pool._spawn
    stopped: list[int] = []

    def spawn_stopped(self: Pool) -> Any:
        child = real(self)
        os.kill(child.proc.pid, signal.SIGSTOP)
        stopped.append(child.proc.pid)
        return child

    monkeypatch.setattr(reader_pool.Pool, "_spawn", spawn_stopped)
    return stopped


# Seconds a start or reload waits here for readers that hang while loading (stopped).
HUNG_WAIT = 1.0


def _within(seconds: float, work: Any, stopped: list[int]) -> float:
    """Run work() on a thread; its seconds, or fail if it has not returned in `seconds`
    (the children it stopped are then let go on, so that it ends)."""
    import threading
    done: list[float] = []
    start = time.monotonic()
    thread = threading.Thread(target=lambda: (work(), done.append(time.monotonic() - start)))
    thread.start()
    thread.join(seconds)
    if not done:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        thread.join(120)
        pytest.fail(f"a start whose readers hang still waited after {seconds} s")
    return done[0]


def test_a_reload_whose_new_readers_hang_at_start_keeps_the_running_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload to 2 readers whose new children hang while loading (stopped here): the
    reload gives up on them after RELOAD_WAIT (not the whole watchdog's time), kills them,
    keeps the reader running, calls `tick` (the loop's WATCHDOG=1) meanwhile, and says in
    one warning why, what they were doing (stopped) and what to look at. Reads go on in
    the reader kept; the next reload tries again."""
    s, r, said = one_reader(tmp_path)
    try:
        [pid] = r.pids()
        # Stopped children never load, whatever the wait: a second shows it as well as
        # the 20 s shipped (3 s here before), a tick every quarter of it.
        monkeypatch.setattr(reader_lifecycle, "RELOAD_WAIT", HUNG_WAIT)
        monkeypatch.setattr(reader_pool, "TICK_SECONDS", HUNG_WAIT / 4)
        stopped = _hanging_starts(monkeypatch)
        more = settings_for(tmp_path, einvoice={"preflight": "off"},
                            service={"reader_processes": 2})
        ticks: list[float] = []
        took = _within(30, lambda: r.configure(more, reload=True,
                                               tick=lambda: ticks.append(time.monotonic())),
                       stopped)
        assert HUNG_WAIT <= took < 15
        assert len(stopped) == 2 and len(ticks) >= 2
        wait_for(lambda: not any(alive(p) for p in stopped), what="the hung readers to end")
        assert r.processes and r.pids() == [pid]
        [(event, fields)] = said
        assert event == ("reader processes not changed: new reader processes did not load "
                         "in time (ended); the ones running go on")
        assert fields["error"] == ("2 of 2 new reader processes did not say they were "
                                   f"ready within {HUNG_WAIT:g} s (2 stopped)")
        assert fields["running"] == 1 and "einvoice/" in fields["fix"]
        [cand] = bundles(s, "H1")
        assert r.read(cand, more, reader_targets.pid_of_reader) == pid
        monkeypatch.undo()
        r.configure(more, reload=True)
        assert len(r.pids()) == 2 and pid not in r.pids()
    finally:
        r.stop()


def test_a_start_whose_readers_hang_reads_in_the_daemons_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a start (no reader running yet) whose children hang while loading: after
    START_WAIT they are killed and reading goes on in the daemon's own process, with one
    warning saying why and what to look at — not a start that waits until systemd's start
    timeout kills it."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 2})
    r = Readers(tmp_path / "state" / "einvoice")
    said = warnings_of(r)
    monkeypatch.setattr(reader_lifecycle, "START_WAIT", HUNG_WAIT)
    stopped = _hanging_starts(monkeypatch)
    try:
        took = _within(30, lambda: r.configure(s), stopped)
        assert HUNG_WAIT <= took < 15 and len(stopped) == 2
        wait_for(lambda: not any(alive(p) for p in stopped), what="the hung readers to end")
        assert not r.processes and r.pids() == []
        [(event, fields)] = said
        assert event == ("reading and pre-flight run in the daemon's own process: new "
                         "reader processes did not load in time (ended)")
        assert fields["error"].endswith(f"within {HUNG_WAIT:g} s (2 stopped)")
        assert "SIGSTOP" in fields["fix"]
        [cand] = bundles(s, "H2")
        assert r.read(cand, s, reader_targets.pid_of_reader) == os.getpid()
    finally:
        r.stop()


def test_a_reader_started_again_that_hangs_while_loading_is_replaced_in_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one reader dies (SIGKILL) and the process started in its place hangs while
    loading (stopped): past LOAD_LIMIT it is killed with a warning and started again, and
    the read sent to it meanwhile is answered by that next one with its real result — not
    held for ever, and not counted as a read its reader died under."""
    from daemon.reading import reader_deaths
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    [cand] = bundles(s, "L1")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_process.main, restarts, warnings)
    real = reader_pool.Pool._spawn
    stopped: list[int] = []

    def first_stopped(self: Pool) -> Any:
        # LOAD_LIMIT is read as the child spawned here is taken in: a second for the one
        # stopped (the 2 s it had before were waited out in full), and the shipped minute
        # for the one after it, a real load that a loaded host may make slow.
        monkeypatch.setattr(reader_deaths, "LOAD_LIMIT", 60.0 if stopped else 1.0)
        child = real(self)
        if not stopped:
            os.kill(child.proc.pid, signal.SIGSTOP)
            stopped.append(child.proc.pid)
        return child

    monkeypatch.setattr(reader_pool.Pool, "_spawn", first_stopped)
    try:
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: stopped and pool.pids() == stopped, what="the stopped replacement")
        box: Future[Bundle | BaseException] = Future()
        assert pool.send(Call(cand, s, box.set_result, None, 1), 1, pickle.dumps(s))
        assert box.result(timeout=60) == evaluate(cand, s)
        assert restarts.total == 2 and not alive(stopped[0])
        assert [w["event"] for w in warnings] == [
            "a reader process died; started again",
            "a reader process started again did not load in time; ending it",
            "a reader process died; started again"]
    finally:
        for p in stopped:
            if alive(p):
                os.kill(p, signal.SIGCONT)
        pool.stop()
