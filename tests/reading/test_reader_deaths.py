"""What the reader pool does when a child dies or overruns (daemon/reading/reader_deaths.py): a
dead child replaced and its calls repeated (only the one under way counts as tried), a
read past the time limit killed, tried once more, then answered ReadTimedOut, and what
is not killed for time. Real spawned children; a child is paused (SIGSTOP) to hold a
call outstanding, never a sleep."""

from __future__ import annotations

import functools
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

import reader_targets  # noqa: E402
from helpers import raised, wait_for  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.errors import InputError, ReaderFailed  # noqa: E402
from daemon.reading import reader_process, readers  # noqa: E402
from daemon.reading.match import assemble, known_part  # noqa: E402
from daemon.reading.reader_pool import Call, Restarts  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from daemon.validation import convert  # noqa: E402
from reading.test_reader_pool import Answers, _pool, bundles, submit  # noqa: E402
from reading.test_readers import alive, in_child, not_here, print_bundle, settings_for  # noqa: E402


def test_calls_outstanding_on_killed_children_are_repeated_on_their_replacements(
        two: tuple[Readers, Settings]) -> None:
    """Each reader holds a call it has not answered (paused) when both are killed: each
    is replaced (two restarts) and both calls come back with their real results."""
    r, s = two
    b0, b1 = bundles(s, "K0", "K1")
    pids = r.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    answers: Answers = {}
    submit(r, b0, s, answers)
    submit(r, b1, s, answers)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(answers) == 2, timeout=120, what="the repeated calls")
    assert answers == {c.name: evaluate(c, s) for c in (b0, b1)}
    assert r.restarts == 2
    assert len(r.pids()) == 2 and not set(r.pids()) & set(pids)


def test_a_claim_batchs_checks_on_a_killed_reader_are_all_repeated_on_its_replacement(
        tmp_path: Path) -> None:
    """Four checks after a claim written to a paused reader as one message: it is
    killed with none answered; its replacement answers all four, each equal to the
    check in this process, with one restart and each check repeated (only the first
    was under way, so only it spent a try)."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    cands = bundles(s, "D0", "D1", "D2", "D3")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_process.main, restarts, warnings)
    try:
        [pid] = pool.pids()
        os.kill(pid, signal.SIGSTOP)
        before = [evaluate(c, s) for c in cands]
        boxes: list[Future[Bundle | BaseException]] = [Future() for _ in cands]
        calls = [Call(c, s, box.set_result, known_part(b), 3)
                 for c, b, box in zip(cands, before, boxes, strict=True)]
        assert pool.send_all(calls, 1, pickle.dumps(s))
        [child] = pool._children
        assert list(child.written) == sorted(child.calls) and len(child.calls) == 4
        os.kill(pid, signal.SIGKILL)
        got = [box.result(timeout=120) for box in boxes]
        assert got == [assemble(c, s, known=b) for c, b in zip(cands, before, strict=True)]
        assert restarts.total == 1 and pool.pids() != [pid]
        assert [call.tries for call in calls] == [2, 3, 3, 3]
    finally:
        pool.stop()


def test_a_call_whose_reader_dies_every_time_is_answered_not_lost(
        monkeypatch: pytest.MonkeyPatch, two: tuple[Readers, Settings]) -> None:
    """With TRIES = 1 a call whose reader dies under it is not repeated: it is answered
    ReaderFailed (logged; read again when the bundle changes), and the replaced
    readers answer the next call."""
    monkeypatch.setattr(readers, "TRIES", 1)
    r, s = two
    [cand] = bundles(s, "T0")
    pids = r.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    answers: Answers = {}
    submit(r, cand, s, answers)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: answers, timeout=60, what="the call's answer")
    assert isinstance(answers["T0"], ReaderFailed)
    assert "reader process died" in str(answers["T0"])
    assert in_child(r, cand, s) == evaluate(cand, s)


def one_reader(tmp_path: Path) -> tuple[Readers, Settings]:
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 1})
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    return r, s


def test_only_the_call_under_way_counts_as_a_death_under_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A reader holding three calls (paused) is killed, with TRIES = 1: the first, the
    one it had under way, is answered ReaderFailed; the two waiting behind it were
    never read, so they are repeated on the replacement and come back real."""
    monkeypatch.setattr(readers, "TRIES", 1)
    r, s = one_reader(tmp_path)
    try:
        cands = bundles(s, "Q0", "Q1", "Q2")
        [pid] = r.pids()
        os.kill(pid, signal.SIGSTOP)
        answers: Answers = {}
        for cand in cands:
            submit(r, cand, s, answers)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(answers) == 3, timeout=60, what="the answers")
        assert isinstance(answers.pop("Q0"), ReaderFailed)
        assert answers == {c.name: evaluate(c, s) for c in cands[1:]}
        assert r.restarts == 1
    finally:
        r.stop()


def test_calls_sent_while_the_only_reader_is_replaced_are_answered_by_the_replacement(
        tmp_path: Path) -> None:
    """One reader, killed while idle; calls submitted at once (to the dead reader, while
    it is replaced, or to the replacement) come back with their real results."""
    r, s = one_reader(tmp_path)
    try:
        cands = bundles(s, "P0", "P1", "P2")
        [pid] = r.pids()
        os.kill(pid, signal.SIGKILL)
        answers: Answers = {}
        for cand in cands:
            submit(r, cand, s, answers)
        wait_for(lambda: len(answers) == 3, timeout=60, what="the answers")
        assert answers == {c.name: evaluate(c, s) for c in cands}
        assert r.processes and r.restarts == 1
    finally:
        r.stop()


def test_calls_sent_while_the_only_child_is_being_replaced_wait_for_the_replacement(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The pool's one reader died and its replacement is still starting (held here
    until the calls are in): calls sent meanwhile are taken (send is True, nothing
    raised, nothing answered yet) and wait; once the replacement is in, each comes back
    with its real result, with one restart."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    cands = bundles(s, "W0", "W1")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_process.main, restarts, warnings)
    spawning, go = threading.Event(), threading.Event()
    real_spawn = pool._spawn

    def held_spawn() -> Any:
        spawning.set()
        go.wait(60)
        return real_spawn()

    monkeypatch.setattr(pool, "_spawn", held_spawn)
    try:
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        assert spawning.wait(60), "the dead reader was not replaced"
        assert pool.pids() == []
        boxes: list[Future[Bundle | BaseException]] = [Future() for _ in cands]
        blob = pickle.dumps(s)
        assert pool.send(Call(cands[0], s, boxes[0].set_result, None, 3), 1, blob)
        assert pool.send_all([Call(cands[1], s, boxes[1].set_result, None, 3)], 1, blob)
        assert not any(box.done() for box in boxes)
        go.set()
        assert [box.result(timeout=60) for box in boxes] == [evaluate(c, s) for c in cands]
        assert restarts.total == 1 and not pool.ended
    finally:
        go.set()
        pool.stop()


def test_the_readers_move_to_threads_only_after_more_deaths_in_a_row_than_the_limit(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """RESTARTS_IN_ROW = 1: the reader's first death is replaced (one death in a row is
    within the limit); its replacement's death, with no result between, is one more than
    the limit, and reading moves to threads here, still answering."""
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 1)
    r, s = one_reader(tmp_path)
    try:
        [cand] = bundles(s, "R1")
        [first] = r.pids()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: [p for p in r.pids() if p != first] or not r.processes,
                 what="the reader's replacement")
        assert r.processes and r.restarts == 1
        [second] = r.pids()
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: not r.processes, what="reading to move to threads")
        assert r.restarts == 1 and r.pids() == []
        assert in_child(r, cand, s) == evaluate(cand, s)
    finally:
        r.stop()


def test_a_reader_killed_for_time_as_its_read_came_back_is_no_death_in_a_row(
        tmp_path: Path) -> None:
    """The collector judged a read overdue and marked its reader to be killed, and the
    answer came back just before the kill (the state _end_overdue leaves is set here):
    the reader then dies under the next call, which had barely started. That death is
    outboxd's doing, not a sign that readers keep dying: with no death in a row allowed
    (limit 0) the reader is still replaced, not given up for threads, and the call is
    repeated on the replacement, not answered."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    fine, loop = bundles(s, "A1", "LOOP1")
    restarts = Restarts(limit=0)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_targets.hangs_on_loop_files, restarts, warnings)
    try:
        blob = pickle.dumps(s)
        answered: Future[Bundle | BaseException] = Future()
        assert pool.send(Call(fine, s, answered.set_result, None, 3), 1, blob)
        assert answered.result(timeout=60) == evaluate(fine, s)
        looping: Future[Bundle | BaseException] = Future()
        assert pool.send(Call(loop, s, looping.set_result, None, 3), 1, blob)
        [child] = pool._children
        [pid] = pool.pids()
        with pool._lock:
            [loop_id] = child.calls
            child.killed_for = loop_id - 1  # the read answered just now, A1's
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: warnings, what="the reader's death dealt with")
        assert [w["event"] for w in warnings] == ["a reader process died; started again"]
        assert restarts.total == 1 and len(pool.pids()) == 1 and pool.pids() != [pid]
        assert not looping.done() and not pool.ended
    finally:
        pool.stop()


def test_a_read_that_runs_past_the_time_limit_is_tried_once_more_then_an_input_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A read that never ends (a PDF that makes a library loop) has its reader killed at
    the time limit, is tried once more on the replacement (not three times: a kill for
    time is the file's doing), then answered ReadTimedOut, an input error naming the
    invoice file, the limit and what to do. The read queued behind it was never started:
    it comes back real from the replacement, and the kills do not count as deaths in a
    row, so the pool stays."""
    from daemon.errors import InputError, ReadTimedOut
    from daemon.reading import reader_deaths
    monkeypatch.setattr(reader_deaths, "READ_TIME_LIMIT", 0.5)
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    loop, fine = bundles(s, "LOOP1", "OK1")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    in_row_then: list[int] = []  # deaths in a row counted when LOOP1 was answered

    def loop_answered(result: Bundle | BaseException) -> None:
        in_row_then.append(restarts.in_row)
        boxes["LOOP1"].set_result(result)

    pool = _pool(tmp_path, s, reader_targets.hangs_on_loop_files, restarts, warnings)
    try:
        boxes: dict[str, Future[Bundle | BaseException]] = {"LOOP1": Future(), "OK1": Future()}
        assert pool.send(Call(loop, s, loop_answered, None, 3), 1, pickle.dumps(s))
        assert pool.send(Call(fine, s, boxes["OK1"].set_result, None, 3), 1, pickle.dumps(s))
        answer = boxes["LOOP1"].result(timeout=60)
        assert isinstance(answer, ReadTimedOut) and isinstance(answer, InputError)
        assert answer.code == "read-time-limit" and answer.file == "LOOP1.xml"
        assert "longer than 0.5 s" in answer.message and "replace that file" in answer.message
        assert boxes["OK1"].result(timeout=60) == evaluate(fine, s)
        assert restarts.total == 2 and in_row_then == [0] and not pool.ended
        timed_out = [w for w in warnings if w["event"].startswith("a reader ran out of time")]
        assert [w["file"] for w in timed_out] == ["LOOP1.xml", "LOOP1.xml"]
    finally:
        pool.stop()


def test_a_read_gets_more_time_for_a_larger_invoice_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Pre-flight of a batch file takes time in proportion to its invoices (a 45 MB
    batch: 60 to 140 s on a busy host, past the 120 s that ends a looping read): a read
    gets SECONDS_PER_MB more for each MB of its invoice file, so a big batch is read,
    not killed twice and reported as a file that makes the readers loop. A small file
    still gets the bare limit, and a read past it is still ended."""
    from daemon.errors import ReadTimedOut
    from daemon.reading import reader_deaths
    monkeypatch.setattr(reader_deaths, "READ_TIME_LIMIT", 0.1)
    monkeypatch.setattr(reader_deaths, "SECONDS_PER_MB", 10.0)
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    big, small = bundles(s, "SLOW-BIG", "SLOW-SMALL")
    invoice = big.invoice.read_bytes()
    big.invoice.write_bytes(invoice.replace(b"<cbc:ID>", b"<!--" + b" " * 300_000 + b"-->"
                                            b"<cbc:ID>", 1))  # 0.3 MB: 3 s more
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_targets.slow_reads, restarts, warnings)
    try:
        boxes: dict[str, Future[Bundle | BaseException]] = {"SLOW-BIG": Future(),
                                                            "SLOW-SMALL": Future()}
        for cand in (big, small):
            assert pool.send(Call(cand, s, boxes[cand.name].set_result, None, 3), 1,
                             pickle.dumps(s))
        assert boxes["SLOW-BIG"].result(timeout=60) == evaluate(big, s)
        assert isinstance(boxes["SLOW-SMALL"].result(timeout=60), ReadTimedOut)
        timed_out = [w["file"] for w in warnings if w["event"].startswith("a reader ran out")]
        assert timed_out == ["SLOW-SMALL.xml", "SLOW-SMALL.xml"]
    finally:
        pool.stop()


def test_a_check_after_a_claim_is_never_killed_for_time(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The check after a claim only hashes files: one that runs past the read time limit
    (a share that stalls) is left to finish, its reader not killed, nothing answered."""
    from daemon.reading import reader_deaths
    monkeypatch.setattr(reader_deaths, "READ_TIME_LIMIT", 0.3)
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    [cand] = bundles(s, "C1")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_targets.hangs_on_checks, restarts, warnings)
    try:
        [pid] = pool.pids()
        box: Future[Bundle | BaseException] = Future()
        assert pool.send(Call(cand, s, box.set_result, evaluate(cand, s), 3), 1,
                         pickle.dumps(s))
        [child] = pool._children
        wait_for(lambda: child.busy_since is None, timeout=30,
                 what="the collector to pass the check's deadline")
        assert pool.pids() == [pid] and alive(pid)
        assert not box.done() and restarts.total == 0 and warnings == []
    finally:
        pool.stop()


def test_a_reader_busy_longer_than_the_limit_in_all_is_not_killed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The limit is per read: a reader given six reads of 0.2 s each at once (1.2 s of
    work under a 0.5 s limit) answers all of them, killed never, since its clock starts
    again with each answer."""
    from daemon.reading import reader_deaths
    monkeypatch.setattr(reader_deaths, "READ_TIME_LIMIT", 0.5)
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    cands = bundles(s, *(f"SLOW{n}" for n in range(6)))
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_targets.slow_reads, restarts, warnings)
    try:
        boxes: list[Future[Bundle | BaseException]] = []
        for cand in cands:
            boxes.append(Future())
            assert pool.send(Call(cand, s, boxes[-1].set_result, None, 3), 1, pickle.dumps(s))
        assert [box.result(timeout=60) for box in boxes] == [evaluate(c, s) for c in cands]
        assert restarts.total == 0 and warnings == []
    finally:
        pool.stop()


def test_a_read_answered_in_time_while_the_collector_was_held_up_is_not_killed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The collector is held up (a caller's slow callback) past a read's deadline while
    that read's answer (0.2 s of work under a 1 s limit) already waits in the pipe: the
    answer is read, nobody is killed, no try is lost."""
    from daemon.reading import reader_deaths
    monkeypatch.setattr(reader_deaths, "READ_TIME_LIMIT", 1.0)
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    first, slow = bundles(s, "A1", "SLOW1")
    restarts = Restarts(limit=5)
    warnings: list[dict[str, Any]] = []
    pool = _pool(tmp_path, s, reader_targets.slow_reads, restarts, warnings)
    try:
        [child] = pool._children
        held: Future[Bundle | BaseException] = Future()
        answered: Future[Bundle | BaseException] = Future()

        def hold_up(result: Bundle | BaseException) -> None:
            # Called by the collector after it started SLOW1's clock: keep it here until
            # SLOW1's deadline has passed.
            started = child.busy_since
            assert started is not None
            wait_for(lambda: time.monotonic() > started + 1.1, what="SLOW1's deadline")
            held.set_result(result)

        blob = pickle.dumps(s)
        assert pool.send(Call(first, s, hold_up, None, 3), 1, blob)
        assert pool.send(Call(slow, s, answered.set_result, None, 1), 1, blob)
        assert held.result(timeout=60) == evaluate(first, s)
        assert answered.result(timeout=60) == evaluate(slow, s)
        assert restarts.total == 0 and warnings == []
    finally:
        pool.stop()


def test_a_conversion_whose_reader_dies_is_repeated_then_answered_not_converted_here(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A claimed bundle's conversion held by a reader (paused) that is killed, as the OOM
    killer would: it is repeated on the replacement and the PDF is written, leaving no
    half-written file beside it. With TRIES = 1 it is answered ReaderFailed saying that
    a conversion died and the delivery is tried again: never an input error, and never
    converted in this process instead."""
    r, _ = one_reader(tmp_path)
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 1},
                     validation={"convert_images": True})
    made = {name: print_bundle(s, name) for name in ("D1", "D2")}
    monkeypatch.setattr(convert, "image_to_pdf", not_here)
    try:
        for tries, name in ((readers.TRIES, "D1"), (1, "D2")):
            monkeypatch.setattr(readers, "TRIES", tries)
            cand, bundle, work = made[name]
            [pid] = r.pids()
            os.kill(pid, signal.SIGSTOP)
            worker, answers = waiting_worker(functools.partial(r.materialise, cand, bundle,
                                                               work, s))
            wait_for(lambda: any(c.written for c in r._pool._children),  # type: ignore[union-attr]
                     what="the conversion sent to the reader")
            os.kill(pid, signal.SIGKILL)
            worker.join(120)
            if tries > 1:
                assert answers == [None]
                assert [p.name for p in (work / f"{name}.converted").iterdir()] == ["scan.pdf"]
            else:
                [answer] = answers
                assert isinstance(answer, ReaderFailed) and not isinstance(answer, InputError)
                assert "while converting its images" in str(answer), answer
                assert not (work / f"{name}.converted" / "scan.pdf").exists()
        assert r.processes and r.restarts == 2
    finally:
        r.stop()


def waiting_worker(call: Callable[[], object]) -> tuple[threading.Thread, list[Exception | None]]:
    """call() on a thread of its own, as a delivery worker waits on a reader; what it
    raised (or None) is in the list once the thread has ended."""
    answers: list[Exception | None] = []
    worker = threading.Thread(target=lambda: answers.append(raised(call)))
    worker.start()
    return worker, answers


def test_the_time_a_read_gets_for_its_invoice_file_stops_growing_at_the_largest_read(
        tmp_path: Path) -> None:
    """A read gets SECONDS_PER_MB more for each MB of its invoice file, up to the largest
    invoice file read (invoices.MAX_INVOICE_BYTES, 64 MiB: 13 minutes in all): a larger
    one is refused by its size or only hashed. A 1 TB file (sparse: no room on the disk)
    got 10,000,000 s, so a file that made pypdf loop, or a share that fed bytes for
    ever, held a reader for months, and two such files all reading."""
    from daemon.reading import invoices, reader_deaths
    from daemon.watching.scan import candidate_for
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    with open(Path(s.outbox.path) / "HUGE.xml", "wb") as fh:
        fh.truncate(1 << 40)
    largest = reader_deaths.READ_TIME_LIMIT + round(
        reader_deaths.SECONDS_PER_MB * invoices.MAX_INVOICE_BYTES / 1_000_000)
    assert reader_deaths.time_limit(candidate_for(s.outbox, "HUGE.xml")) == largest == 791
