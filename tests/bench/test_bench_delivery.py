"""Where the bursts' CPU is counted: the baseline's client, and outboxd's own process
apart from its readers. Real receivers and daemons on 127.0.0.1, two bundles each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def test_a_burst_counts_outboxds_own_process_apart_from_its_readers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both figures come from the same two readings of the daemon's process tree, one
    before the first rename and one once the receiver holds every bundle."""
    readings = iter(((1.0, 3.0), (1.5, 4.5)))
    pids: list[int] = []

    def split(pid: int) -> tuple[float, float]:
        pids.append(pid)
        return next(readings)

    monkeypatch.setattr(delivery, "tree_cpu_split", split)
    ctx = _ctx(tmp_path)
    with ctx.phase("throughput"):
        delivery.throughput(ctx)
    assert len(pids) == 2 and pids[0] == pids[1]
    own, whole = (ctx.results.figures[f"throughput_{k}"] for k in ("main_cpu", "cpu"))
    assert own.value == pytest.approx(0.5) and whole.value == pytest.approx(1.5)
    assert own.text() == "the loop, the deliveries, the watcher; 250.0 ms a bundle"
    assert whole.text() == "750.0 ms a bundle"
    assert len(list(tmp_path.glob("store-throughput/" + "[0-9a-f]" * 64))) == 2
