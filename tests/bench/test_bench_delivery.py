"""Where the bursts' CPU is counted: the baseline's client, and outboxd's own process
apart from its readers. Real receivers and daemons on 127.0.0.1, two bundles each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import delivery
from bench.context import Context


def _ctx(tmp_path: Path) -> Context:
    return Context(tmp_path, n=2, backlog_sizes=(), journal_rows=0, corpus_size=2)


def test_the_baseline_client_cpu_leaves_out_making_the_clients(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's CPU is this process's CPU while the POSTs run, taken after the four
    clients were made (loading the CA store is not a POST's cost), and shown per bundle."""
    events: list[str] = []
    made = httpx.Client.__init__

    def client(self: httpx.Client, *args: object, **kwargs: object) -> None:
        events.append("client")
        made(self, *args, **kwargs)  # type: ignore[arg-type]

    readings: Iterator[float] = iter((10.0, 10.6))

    def cpu() -> float:
        events.append("cpu")
        return next(readings)

    monkeypatch.setattr(httpx.Client, "__init__", client)
    monkeypatch.setattr(delivery, "process_cpu", cpu)
    ctx = _ctx(tmp_path)
    with ctx.phase("baseline"):
        delivery.baseline(ctx)
    assert events == ["client"] * delivery.THREADS + ["cpu", "cpu"]
    fig = ctx.results.figures["baseline_client_cpu"]
    assert fig.value == pytest.approx(0.6)
    assert fig.text() == "what the POSTs alone cost the sender; 300.0 ms a bundle"


def _readings(monkeypatch: pytest.MonkeyPatch, reader: str, values: tuple[Any, ...]
              ) -> list[int]:
    """delivery.`reader` answers `values` in turn; the pids it was asked for."""
    answers = iter(values)
    pids: list[int] = []

    def read(pid: int) -> Any:
        pids.append(pid)
        return next(answers)

    monkeypatch.setattr(delivery, reader, read)
    return pids


def test_a_burst_counts_outboxds_own_process_apart_from_its_readers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both figures come from the same two readings of the daemon's process tree, one
    before the first rename and one once the receiver holds every bundle."""
    pids = _readings(monkeypatch, "tree_cpu_split", ((1.0, 3.0), (1.5, 4.5)))
    ctx = _ctx(tmp_path)
    with ctx.phase("throughput"):
        delivery.throughput(ctx)
    assert len(pids) == 2 and pids[0] == pids[1]
    own, whole = (ctx.results.figures[f"throughput_{k}"] for k in ("main_cpu", "cpu"))
    assert own.value == pytest.approx(0.5) and whole.value == pytest.approx(1.5)
    assert own.text() == "the loop, the deliveries, the watcher; 250.0 ms a bundle"
    assert whole.text() == "750.0 ms a bundle"
    assert len(list(tmp_path.glob("store-throughput/" + "[0-9a-f]" * 64))) == 2


def test_a_burst_splits_outboxds_process_by_its_named_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's own process is split by thread from two readings of its threads, one
    before the first rename and one at the end: the loop, the delivery workers (summed),
    the readers' collector and the watcher, per bundle; its context switches a bundle."""
    pids = _readings(monkeypatch, "thread_split", (
        {"loop": (1.0, 100), "deliver": (2.0, 400), "readers": (0.1, 50), "watcher": (0.1, 10)},
        {"loop": (1.2, 160), "deliver": (2.6, 700), "readers": (0.2, 90), "watcher": (0.1, 14),
         "other": (0.0, 6)}))
    ctx = _ctx(tmp_path)
    with ctx.phase("throughput"):
        delivery.throughput(ctx)
    assert len(pids) == 2 and pids[0] == pids[1]
    shown = {k: ctx.results.figures[f"throughput_{k}_cpu"].text()
             for k in ("loop", "deliver", "readers", "watcher")}
    assert shown == {"loop": "100.0 ms a bundle", "deliver": "300.0 ms a bundle",
                     "readers": "50.0 ms a bundle", "watcher": "0.0 ms a bundle"}
    # Every thread counts, one without a name of ours too: (970 - 560) / 2.
    assert ctx.results.figures["throughput_switches"].value == pytest.approx(205)


def test_a_running_daemons_threads_are_found_by_the_names_it_gives_them(
        tmp_path: Path) -> None:
    """thread_split on a real daemon: its main thread counts as the loop, and the names it
    gives its threads (osthreads.py) are what the burst's rows look up."""
    from bench.procs import Receiver, thread_split
    ctx = _ctx(tmp_path)
    with ctx.phase("names"):
        rec = ctx.start(Receiver(ctx.work, "names"))
        daemon = delivery.start_daemon(ctx, "names", rec)
        found = thread_split(daemon.pid)
    assert {name for name, _ in delivery.THREAD_ROWS} <= set(found)
    # A thread started a moment ago may not have been switched out yet (it failed so
    # once on a loaded host): every row is read, and the loop has run.
    assert all(cpu >= 0 and switches >= 0 for cpu, switches in found.values())
    assert found["loop"][1] > 0
