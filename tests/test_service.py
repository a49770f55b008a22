"""The loop's mechanics, without timing: a fake clock, a fake watcher, reads done inline.

What is counted: snapshots taken, SQL statements sent to the journal, bundles
read and validated, and bundles stepped — the work whose cost must follow
what changes, not how much waits in the outbox.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent))

from helpers import pdf_bytes, ubl_invoice, wait_for, write  # noqa: E402

from daemon import pipeline as pipeline_module  # noqa: E402
from daemon import service as service_module  # noqa: E402
from daemon.config import Settings  # noqa: E402
from daemon.journal.records import IN_FLIGHT, STATES  # noqa: E402
from daemon.service import Service  # noqa: E402
from daemon.settle import PACE_PER_ENTRY  # noqa: E402

SETTLE, RESCAN = 5.0, 60.0
ALL_STATES = tuple(dict.fromkeys(STATES + IN_FLIGHT))  # every state a journal row can have


class FakeClock:
    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


class FakeWatcher:
    mode = "fake"
    restarts = 0

    def ensure_alive(self) -> bool:
        return False

    def stop(self) -> None:
        pass


class Inline:
    """An executor that runs each read at once, on the calling thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fn(*args)
        done: Future[Any] = Future()
        done.set_result(None)
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class Counts:
    def __init__(self) -> None:
        self.snapshots = 0
        self.reads = 0
        self.sql: list[str] = []
        self.steps: list[str] = []

    def reset(self) -> None:
        self.snapshots, self.reads = 0, 0
        self.sql.clear()
        self.steps.clear()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    c = Counts()
    for module in (service_module, pipeline_module):
        real_snapshot = module.snapshot

        def counted_snapshot(*a: Any, _real: Any = real_snapshot) -> Any:
            c.snapshots += 1
            return _real(*a)
        monkeypatch.setattr(module, "snapshot", counted_snapshot)
    real_evaluate = service_module.evaluate

    def counted_evaluate(*a: Any) -> Any:
        c.reads += 1
        return real_evaluate(*a)
    monkeypatch.setattr(service_module, "evaluate", counted_evaluate)
    real_step = pipeline_module.Pipeline.step

    def counted_step(self: Any, cand: Any, *a: Any) -> Any:
        c.steps.append(cand.invoice.name)
        return real_step(self, cand, *a)
    monkeypatch.setattr(pipeline_module.Pipeline, "step", counted_step)
    monkeypatch.setattr(Service, "_install_signals", lambda self: None)
    return c


@pytest.fixture(params=[0.0, 1e9], ids=["clock-at-0", "clock-at-1e9"])
def clock(request: pytest.FixtureRequest) -> FakeClock:
    return FakeClock(request.param)


@pytest.fixture
def make_service(tmp_path: Path, clock: FakeClock, counts: Counts) -> Iterator[Any]:
    made: list[Service] = []

    def make(**policy: Any) -> Service:
        outbox = tmp_path / "outbox"
        outbox.mkdir(exist_ok=True)
        s = Settings(outbox={"path": str(outbox), "settle_seconds": SETTLE,
                             "rescan_seconds": RESCAN},
                     paths={"state_dir": str(tmp_path / "state")},
                     policy={"unattached": "hold", **policy},
                     delivery={"transport": "directory", "target": str(tmp_path / "target")})
        svc = Service(s, clock=clock, watcher_factory=lambda s, hint: FakeWatcher(),
                      reader=Inline())
        # Noon: the fake loop clock never reaches the end of the UTC day, whatever the
        # host's time (near midnight its refresh would add queries to the counts).
        svc.publish.wall = lambda: datetime(2031, 5, 6, 12, 0, tzinfo=UTC)
        svc.open()
        svc.journal._db.set_trace_callback(counts.sql.append)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.request_stop()
        svc._shutdown()


def settle_all(svc: Service, clock: FakeClock) -> None:
    """Turn the loop until every bundle is decided and the status timer has fired."""
    for _ in range(6):
        svc.turn()
        clock.t += SETTLE / 2


def test_waiting_bundles_cost_nothing_between_rescans(make_service: Any, clock: FakeClock,
                                                      counts: Counts, tmp_path: Path) -> None:
    """500 invoices waiting for attachments and no events: between rescans the loop takes
    no snapshot, sends no journal query and validates nothing; the rescan compares the
    listing's stats with what each bundle last looked like (no snapshot of its own for
    an invoice file alone) and, as nothing changed, still no query and no validation.
    A file changed without an event is found by the next rescan, and only that one."""
    outbox = tmp_path / "outbox"
    for n in range(500):
        write(outbox / f"INV-{n}.xml", ubl_invoice(f"INV-{n}"))
    svc = make_service()
    settle_all(svc, clock)
    assert svc.journal.summary().get("waiting") == 500
    assert counts.reads == 500  # each settled version read once

    counts.reset()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None and rescan_due - clock.t > 30
    while clock.t < rescan_due - 1:
        assert svc.turn() is not None  # the loop always knows when to wake next
        clock.t += 3.0
    assert (counts.snapshots, len(counts.sql), counts.reads, counts.steps) == (0, 0, 0, [])

    clock.t = rescan_due
    svc.turn()
    assert (counts.snapshots, len(counts.sql), counts.reads, counts.steps) == (0, 0, 0, [])

    changed = outbox / "INV-7.xml"
    changed.write_bytes(ubl_invoice("INV-7") + b"\n")  # no event: the fake watcher is silent
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    counts.reset()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    svc.turn()
    assert counts.snapshots == 1 and counts.steps == ["INV-7.xml"]


def test_an_event_on_one_sidecar_steps_exactly_that_bundle(make_service: Any, clock: FakeClock,
                                                           counts: Counts,
                                                           tmp_path: Path) -> None:
    """A watcher event naming one sidecar folder marks only its bundle dirty: one bundle is
    stepped, the 49 others are not looked at."""
    outbox = tmp_path / "outbox"
    for n in range(50):
        write(outbox / f"INV-{n}.xml", ubl_invoice(f"INV-{n}"))
    svc = make_service()
    settle_all(svc, clock)
    counts.reset()

    write(outbox / "INV-7" / "timesheet.pdf", pdf_bytes())
    svc.hint("INV-7")
    svc.turn()
    assert counts.steps == ["INV-7.xml"]
    assert counts.snapshots == 1


def test_a_settle_deadline_fires_once(make_service: Any, clock: FakeClock, counts: Counts,
                                      tmp_path: Path) -> None:
    """A new bundle is stepped when its event arrives and again exactly once when its quiet
    period can have ended — not on turns in between, and not after."""
    svc = make_service()
    t0 = clock.t
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    svc.turn()  # stepped, and (the first version seen) handed to a reader at once
    assert counts.steps == ["INV-1.xml"] and counts.reads == 1
    assert svc.timers.due_at(("bundle", "INV-1.xml")) == t0 + SETTLE

    for t in (1.0, 2.5, 4.9):  # the read's result comes back: no step before the deadline
        clock.t = t0 + t
        svc.turn()
    assert counts.steps == ["INV-1.xml"]

    clock.t = t0 + SETTLE
    svc.turn()  # the deadline: stepped, found settled and read, decided (waiting, hold)
    assert counts.steps == ["INV-1.xml"] * 2 and counts.reads == 1
    assert svc.timers.due_at(("bundle", "INV-1.xml")) is None
    assert svc.journal.summary().get("waiting") == 1

    for t in (6.0, 30.0, 59.0):
        clock.t = t0 + t
        svc.turn()
    assert counts.steps == ["INV-1.xml"] * 2


def test_the_events_of_a_claim_step_no_bundle_and_a_new_file_of_that_name_is_stepped(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """The claim moves the invoice file and its sidecar out of the outbox; the watcher's
    events for those moves concern no bundle any more (it left with the claim), so the
    loop steps nothing for them. A new invoice file of the same name dropped afterwards
    is a new bundle, stepped at its event."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    svc.hint("INV-1.xml")
    settle_all(svc, clock)
    assert not (outbox / "INV-1.xml").exists()  # claimed
    counts.reset()

    svc.hint("INV-1.xml")
    svc.hint("INV-1")
    svc.turn()
    assert (counts.steps, counts.snapshots) == ([], 0)

    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    svc.turn()
    assert counts.steps == ["INV-1.xml"]


def test_events_on_a_bundle_of_many_files_are_answered_at_a_pace(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """A sidecar copied in one file at a time raises an event a file, and each look walks
    every file. For a bundle of n entries (PACE_FROM or more), events make the loop look
    again no sooner than n × PACE_PER_ENTRY after its last look: one look, at a timer, for
    all the events meanwhile; what changed is seen then, and the quiet period counts from
    then, so the bundle does not settle sooner. A small bundle is not paced."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    for n in range(499):  # a copy under way (fresh files: not read before they settle)
        write(outbox / "INV-1" / f"p{n:03}.pdf", b"%PDF-1.4 a page")
    svc = make_service()
    t0 = clock.t
    svc.turn()
    assert counts.steps == ["INV-1.xml"]  # found at start: looked at at once
    pace = 500 * PACE_PER_ENTRY  # the invoice file and 499 attachments: 50 ms
    for n in range(1, 5):  # four more files within the next 40 ms: each event is paced
        clock.t = t0 + 0.01 * n
        write(outbox / "INV-1" / f"a{n}.pdf", b"%PDF-1.4 one more")
        svc.hint("INV-1")
        svc.turn()
    assert counts.steps == ["INV-1.xml"]
    paced = svc.timers.due_at(("bundle", "INV-1.xml"))
    assert paced == pytest.approx(t0 + pace)

    clock.t = paced
    svc.turn()  # the paced look: every file copied meanwhile is seen
    assert counts.steps == ["INV-1.xml"] * 2
    assert svc.pipeline.tracker.still_since("INV-1.xml") == paced
    assert len(svc.pipeline.tracker.last("INV-1.xml").entries) == 504

    for f in (outbox / "INV-1").iterdir():  # the clerk empties the folder: a small bundle
        f.unlink()
    clock.t = paced + 0.01
    svc.hint("INV-1")
    svc.turn()
    assert counts.steps == ["INV-1.xml"] * 2  # still paced by the last (big) look
    again = svc.timers.due_at(("bundle", "INV-1.xml"))
    assert again == pytest.approx(paced + 504 * PACE_PER_ENTRY)
    clock.t = again
    svc.turn()
    assert counts.steps == ["INV-1.xml"] * 3  # its time has come: a look of one entry
    clock.t += 0.001
    svc.hint("INV-1")
    svc.turn()
    assert counts.steps == ["INV-1.xml"] * 4  # which ended the pacing


def test_a_claim_that_fails_is_retried_on_the_loop_clock(make_service: Any, clock: FakeClock,
                                                         counts: Counts,
                                                         tmp_path: Path) -> None:
    """A claim that cannot move files is retried when a rescan period has passed on the
    loop's own clock (at 0 as at 10⁹), and the bundle is then delivered."""
    svc = make_service()
    processing = svc.settings.processing_dir
    processing.rmdir()
    write(processing, b"not a folder")
    write(tmp_path / "outbox" / "INV-1" / "a.pdf", pdf_bytes())
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    t0 = clock.t
    settle_all(svc, clock)
    due = svc.timers.due_at(("bundle", "INV-1.xml"))
    assert due is not None and t0 + RESCAN <= due <= clock.t + RESCAN
    assert (tmp_path / "outbox" / "INV-1.xml").exists()

    processing.unlink()
    processing.mkdir()
    clock.t = due
    svc.turn()
    assert not (tmp_path / "outbox" / "INV-1.xml").exists()  # claimed

    def sent() -> Any:
        """The bundle's row once it is sent: its state in one read, as a delivery thread
        moves it meanwhile (two reads could see it in two states, or in none)."""
        [row] = [r for r in svc.journal.rows(ALL_STATES) if r.invoice_file == "INV-1.xml"]
        return row if row.state == "sent" else None

    # The worker threads deliver and archive it on their own: no loop turn, no clock step.
    row = wait_for(sent, what="the retried claim to be delivered and archived")
    assert (tmp_path / "target" / row.bundle_id / "INV-1.xml").exists()


def test_the_same_content_twice_in_one_turn_is_one_send_and_one_duplicate(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """Two invoice files with the same bytes (a copy under another name) decided in one
    turn of the loop: the claims are made together at its end, yet the second is still
    seen as a duplicate of the first (duplicates = "quarantine", the default)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(outbox / "INV-1 copy.xml", ubl_invoice("INV-1"))
    svc = make_service(unattached="send")
    settle_all(svc, clock)
    rows = svc.journal.rows(("claiming", "delivering", "delivered", "sent", "quarantining",
                             "quarantined"))
    reasons = {r.invoice_file: [x["code"] for x in r.reasons] for r in rows}
    assert sorted(reasons.values()) == [[], ["duplicate"]], reasons


def test_a_reload_names_the_settings_that_wait_for_the_next_start(
        make_service: Any, tmp_path: Path) -> None:
    """SIGHUP with a new watch mode and concurrency: the watcher and the delivery threads
    are made at start, so the reload logs one warning naming exactly those settings,
    and takes the rest of the file."""
    svc = make_service()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "outbox"}"\nsettle_seconds = {SETTLE}\n'
        f'rescan_seconds = {RESCAN}\nwatch = "polling"\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        '[policy]\nunattached = "hold"\nduplicates = "send"\n'
        f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n'
        'concurrency = 2\n')
    svc.config_path = config
    svc._request_reload()
    with capture_logs() as logs:
        svc.turn()
    [warning] = [e for e in logs if e["event"] == "these settings take effect at the next start"]
    assert warning["settings"] == ["[outbox] watch", "[delivery] concurrency"]
    assert svc.settings.policy.duplicates == "send"


class Held:
    """An executor that keeps each read until the test runs it: a read under way."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.calls.append((fn, args))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for fn, args in calls:
            fn(*args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_a_read_under_way_at_a_reload_is_read_again_under_the_new_settings(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """A reload that changes the channel while a bundle is being read: the result made
    under the old settings is not used; the bundle is read again and decided under the
    new ones (it went out on the old channel before)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1" / "timesheet.pdf", pdf_bytes())
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    svc._reader = held = Held()
    svc.hint("INV-1.xml")
    svc.turn()
    assert len(held.calls) == 1  # read at first sight, while it settles

    config = tmp_path / "config.toml"
    config.write_text(
        f'[outbox]\npath = "{outbox}"\nsettle_seconds = {SETTLE}\nrescan_seconds = {RESCAN}\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n[policy]\nunattached = "hold"\n'
        '[validation]\nchannel = "original-print"\n'
        f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n')
    svc.config_path = config
    svc._request_reload()
    svc.turn()
    held.run()  # the read under way ends, with what the old settings said
    for _ in range(4):
        svc.turn()
        held.run()
        clock.t += SETTLE
    assert counts.reads == 2
    # Delivered (by the delivery threads) on the new channel: the manifest says so.
    [manifest] = wait_for(lambda: list((tmp_path / "target").glob("*/manifest.json")))
    assert json.loads(manifest.read_text())["channel"] == "original-print"


def test_a_stop_asked_for_while_the_readers_start_is_a_clean_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while open() starts the readers (a second or two before READY): the
    daemon's handler is already in place, so the stop is recorded for the loop (a clean
    exit) instead of the signal's default ending the process."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")})
    svc = Service(s, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline())
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                       signal.SIGHUP)}
    # Stands in for the default (death) while the test runs: it would be called instead
    # of the daemon's handler if the signal came before the daemon installed its own.
    signal.signal(signal.SIGTERM, lambda *_: None)
    monkeypatch.setattr(svc, "_start_rules",
                        lambda _s: os.kill(os.getpid(), signal.SIGTERM))
    try:
        svc.open()
        assert svc._stopping
    finally:
        svc._shutdown()
        for sig, handler in before.items():
            signal.signal(sig, handler)
