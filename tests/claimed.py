"""A pipeline on real folders, a bundle dropped, read and claimed by it, ready for its
delivery attempt (the directory transport), and stand-in deliverers that answer as
scripted: what tests of pipeline.py, claims.py, finish.py and moves.py start from."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import drop_bundle, looks_fail, pdf_bytes  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.delivery.directory import DirectoryDeliverer  # noqa: E402
from daemon.delivery.finish import Finisher, evaluate  # noqa: E402
from daemon.journal import DELIVERED, Journal  # noqa: E402
from daemon.loop.pipeline import Next, Pipeline  # noqa: E402
from daemon.watching.scan import Candidate, list_outbox  # noqa: E402


def make(tmp_path: Path, **sections: dict[str, Any]) -> tuple[Pipeline, Settings]:
    outbox = tmp_path / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    data: dict[str, dict[str, Any]] = {
        "outbox": {"path": str(outbox), "settle_seconds": 0, "rescan_seconds": 30},
        "paths": {"state_dir": str(tmp_path / "state")},
        "delivery": {"transport": "directory", "target": str(tmp_path / "target")},
    }
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    s = Settings(**data)
    for folder in (s.sent_dir, s.quarantine_dir, s.processing_dir, s.paths.state_dir,
                   tmp_path / "target"):
        folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(s.journal_path)
    _made.append(journal)
    return Pipeline(s, journal, DirectoryDeliverer(tmp_path / "target")), s


# The journals make() opened for the test under way, closed after it (conftest.py): its
# WAL descriptor is a plain number, which no collector closes.
_made: list[Journal] = []


def close_made() -> None:
    """Close what make() opened (again, for a test that closed it itself)."""
    while _made:
        _made.pop().close()


def step(p: Pipeline, cand: Candidate, now: float) -> Next:
    """One step of one bundle, with a read it asks for done inline (as a reader would)."""
    nxt = p.step(cand, now)
    if nxt.read is not None:
        p.took_read(cand.invoice.name, nxt.read, evaluate(cand, p.s))
        nxt = p.step(cand, now)
    return nxt


def run_once(p: Pipeline, now: float = 1000.0) -> list[int]:
    """Step every candidate once and deliver whatever was claimed; the rows claimed."""
    claimed = []
    for cand in list_outbox(p.s.outbox).candidates.values():
        row = step(p, cand, now).claimed
        if row is not None:
            claimed.append(row)
            assert p.finish.attempt(row) is None
    return claimed


def folders(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


@pytest.fixture(autouse=True)
def quiet_logs() -> None:
    """Logging configured as the daemon does (autouse where imported)."""
    from daemon import logs
    logs.configure()


class NeverPost:
    """A deliverer for the restarted daemon: a delivered bundle is never sent again."""

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        raise AssertionError("posted a bundle the receiver already has")

    def close(self) -> None:
        pass


def three_claimed(tmp_path: Path) -> tuple[Pipeline, Settings, list[int]]:
    """A pipeline with three bundles, INV-1, INV-2 and INV-3, claimed (not yet
    delivered)."""
    p, s = make(tmp_path)
    for name in ("INV-1", "INV-2", "INV-3"):
        drop_bundle(s.outbox.path, name, {"a.pdf": pdf_bytes(1, name)})
    rows = [step(p, cand, 1000.0).claimed
            for _, cand in sorted(list_outbox(s.outbox).candidates.items())]
    assert None not in rows
    return p, s, [row for row in rows if row is not None]


def claimed(tmp_path: Path, attachments: dict[str, bytes] | None = None,
            validation: dict[str, Any] | None = None,
            delivery: dict[str, Any] | None = None,
            name: str = "INV-1", invoice: bytes | None = None
            ) -> tuple[Pipeline, Settings, int]:
    """A pipeline with one bundle dropped, read and claimed (not yet delivered);
    `invoice`: the invoice file's bytes, if not one UBL invoice of id `name`."""
    p, s = make(tmp_path, validation=validation or {}, delivery=delivery or {})
    drop_bundle(s.outbox.path, name, attachments or {"a.pdf": pdf_bytes()}, invoice)
    [cand] = list_outbox(s.outbox).candidates.values()
    nxt = p.step(cand, 1000.0)
    assert nxt.read is not None
    p.took_read(cand.invoice.name, nxt.read, evaluate(cand, s))
    row = p.step(cand, 1000.0).claimed
    assert row is not None
    return p, s, row


def delivered_unarchived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "INV-1"
                         ) -> tuple[Pipeline, Settings, int, Path, Path]:
    """A bundle delivered whose move into sent/ died (to be tried again), as a crash or an
    older version left it: its pipeline, settings, row, work folder and the archive folder
    journaled. Undoes the test's monkeypatches made so far."""
    from daemon.archiving import archive

    p, s, row = claimed(tmp_path, name=name)

    def died(*_: Any, **__: Any) -> Path:
        raise OSError(5, "the daemon died here")
    monkeypatch.setattr(archive, "move_into_place", died)
    assert p.finish.attempt(row) is not None  # delivered; the move is to be tried again
    monkeypatch.undo()
    delivered = p.j.get(row)
    assert delivered.state == DELIVERED and delivered.work_dir and delivered.archive_dir
    return p, s, row, Path(delivered.work_dir), Path(delivered.archive_dir)


def restart(p: Pipeline, s: Settings, row: int) -> Finisher:
    """A new start on the same journal: recovery hands the row to a delivery attempt."""
    fin = Finisher(s, p.j, NeverPost())
    assert [r for r, _ in fin.recover()] == [row]
    return fin


class Scripted:
    """A deliverer that answers each POST with the next outcome of its script."""

    def __init__(self, *outcomes: Exception | Receipt) -> None:
        self.outcomes = list(outcomes)
        self.posts = 0

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.posts += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


class Idempotent(Scripted):
    """A deliverer whose repeats the receiver recognises, as HTTP's Idempotency-Key."""

    idempotent = True


def claims_refused_first(monkeypatch: pytest.MonkeyPatch, causes: list[int]) -> list[int]:
    """claims.claim refuses with NothingClaimed (an OSError of each errno in `causes`, in
    turn, naming the work folder), then claims as it does; the causes not used yet."""
    import os

    from daemon.claiming import claims as claims_module
    from daemon.errors import NothingClaimed
    real_claim, left = claims_module.claim, list(causes)

    def refused_then_claimed(c: Candidate, work: Path, *args: object, **kwargs: object
                             ) -> Candidate:
        if left:
            cause = left.pop(0)
            raise NothingClaimed(OSError(cause, os.strerror(cause), str(work)))
        return real_claim(c, work, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(claims_module, "claim", refused_then_claimed)
    return left


@contextmanager
def started_while_work_looks_fail(p: Pipeline, s: Settings, work: str,
                                  stuck: int) -> Iterator[Candidate]:
    """`p` started on `s` while the share fails every look at the work folder `work`
    (open, stat, lstat: EIO), the claim it was cut short in left waiting; its one bundle's
    candidate, stepped at three times with none of them claiming it (nor a row made,
    settling or quarantined, beside the claim's row `stuck`). The looks fail until the
    block ends."""
    with pytest.MonkeyPatch.context() as m:
        looks_fail(m, work, calls=("open", "stat", "lstat"))
        assert p.finish.recover() == []
        listing = list_outbox(s.outbox)
        p.start(set(listing.candidates), listing.stats)
        [cand] = listing.candidates.values()
        for now in (2000.0, 2001.0, 2002.0):
            assert step(p, cand, now).claimed is None
        assert [r.id for r in p.j.rows(("settling", "waiting", "held", "quarantining",
                                        "quarantined"))] == []
        assert p.j.get(stuck).state == "claiming" and folders(s.quarantine_dir) == []
        yield cand

