"""The reads' turns (daemon/reading/reader_turns.py): a few reads in the readers at once,
the rest waiting in order; at a stop the loop's waiting reads dropped, a delivery's kept.

Driven through Readers with its routing replaced by a list: what is handed to a reader
is seen, and answered by the test.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import wait_for  # noqa: E402

from daemon.bundle import Bundle, InvoiceFile  # noqa: E402
from daemon.errors import ReaderFailed  # noqa: E402
from daemon.reading import reader_turns  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from daemon.watching.scan import candidate_for  # noqa: E402
from reading.test_readers import settings_for  # noqa: E402


def test_drop_reads_drops_the_loops_queued_reads_but_not_a_deliverys(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """At a stop, drop_reads() answers the loop's reads still waiting for a reader
    (the daemon is stopping) so that the children do not work through them in the grace
    period; a delivery's read waiting among them keeps its turn and gets its result, a
    delivery's conversion and a check after a claim still reach a reader, and a read
    the loop asks for afterwards is answered at once."""
    r = Readers(tmp_path)
    handed: list[Any] = []  # calls handed to a reader (not run: answered below)
    monkeypatch.setattr(r, "_route", handed.append)  # a check's, a conversion's
    monkeypatch.setattr(r._turns, "_route", handed.append)  # a read's, in its turn
    s = settings_for(tmp_path)
    cand = candidate_for(s.outbox, "INV-1.xml")
    loop: list[Future[Any]] = [Future() for _ in range(6)]
    for box in loop:
        r.submit(cand, s, box.set_result)
    assert len(handed) == reader_turns.READS_AHEAD * 2  # the rest wait for a slot
    delivery: Future[Any] = Future()
    threading.Thread(target=lambda: delivery.set_result(r.evaluate(cand, s)),
                     daemon=True).start()
    wait_for(lambda: r._turns.waiting() == 3, what="the delivery's read queued")

    assert r.drop_reads() == 2
    for box in loop[4:]:
        assert isinstance(box.result(timeout=5), ReaderFailed)
    assert not any(box.done() for box in loop[:4])  # in a reader: they run out
    late: Future[Any] = Future()
    r.submit(cand, s, late.set_result)
    assert isinstance(late.result(timeout=5), ReaderFailed)
    assert len(handed) == 4 and not delivery.done()

    bundle = object()
    handed[0].done(bundle)  # a slot frees: the delivery's read is handed on, not dropped
    assert len(handed) == 5 and handed[4].known is None
    handed[4].done(bundle)
    assert delivery.result(timeout=5) is bundle
    converted: Future[Any] = Future()
    threading.Thread(target=lambda: converted.set_result(
        r.materialise(cand, bundle, tmp_path / "work", s)),  # type: ignore[arg-type]
        daemon=True).start()
    wait_for(lambda: len(handed) == 6, what="the conversion handed to a reader")
    checked = Bundle(InvoiceFile(cand.invoice, "INV-1.xml", 1, "a" * 64, "ubl", ("INV-1",)),
                     None, (), "e-invoice")
    r.submit(cand, s, lambda result: None, known=checked)
    assert len(handed) == 7 and handed[6].known == checked
    handed[5].done(bundle)
    assert converted.result(timeout=5) is bundle
