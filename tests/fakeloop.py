"""The loop without timing, shared by the loop's tests (test_service.py,
test_changes.py, test_offloop.py, test_outage.py, test_stopping.py): a fake clock, a
fake watcher, reads done inline, and counts of the work whose cost must follow what
changes — snapshots taken, SQL statements sent to the journal, bundles read and
validated, bundles stepped.

A test module takes the fixtures by importing them (`from fakeloop import …`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.configuration.config import Settings
from daemon.loop import changes as changes_module
from daemon.loop import offloop as offloop_module
from daemon.loop import pipeline as pipeline_module
from daemon.loop import stepping as stepping_module
from daemon.loop.service import Service

SETTLE, RESCAN = 5.0, 60.0


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
    for module in (stepping_module, changes_module, pipeline_module):  # all that take one
        real_snapshot = module.snapshot

        def counted_snapshot(*a: Any, _real: Any = real_snapshot) -> Any:
            c.snapshots += 1
            return _real(*a)
        monkeypatch.setattr(module, "snapshot", counted_snapshot)
    real_evaluate = offloop_module.evaluate

    def counted_evaluate(*a: Any) -> Any:
        c.reads += 1
        return real_evaluate(*a)
    monkeypatch.setattr(offloop_module, "evaluate", counted_evaluate)
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
                     delivery={"transport": "directory", "target": str(tmp_path / "target")},
                     # What is counted is the loop's work; pre-flight, inside each read,
                     # would only add ~10 ms of Saxon a read (5 s for 500 invoices).
                     einvoice={"preflight": "off"})
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
        stop(svc)


def stop(svc: Service) -> None:
    """Stop a service a test made, as a stop at the end of its run does, and close its
    self-pipe, which the daemon leaves to the exit that follows (a test goes on)."""
    svc.request_stop()
    svc._shutdown()
    svc._wake.close()


def settle_all(svc: Service, clock: FakeClock) -> None:
    """Turn the loop until every bundle is decided and the status timer has fired."""
    for _ in range(6):
        svc.turn()
        clock.t += SETTLE / 2

