"""A sidecar that vanished while its invoice file stayed (daemon/watching/vanished.py), on the
loop without timing (fakeloop) with the directory transport: a share's client that
caches a failed lookup of the folder is never taken for a clerk who removed it."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import RESCAN, SETTLE, FakeClock  # noqa: E402
from helpers import pdf_bytes, refuse_stat, ubl_invoice, wait_for, write  # noqa: E402

from daemon.loop.service import Service  # noqa: E402

KEY = "INV-1.xml"
CLAIMED = ("claiming", "delivering", "delivered", "sent")


def negative_lookup(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """What an NFS client that cached a failed lookup of `name` answers while the folder
    is there: its lstat, stat and open say ENOENT, yet a listing of the outbox has it."""
    refuse_stat(monkeypatch, {name}, errno.ENOENT)
    for call in ("lstat", "stat", "open"):
        real = getattr(os, call)

        def refused(path: Any, *a: Any, _real: Any = real, **kw: Any) -> Any:
            if isinstance(path, str | Path) and os.path.basename(path) == name:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
            return _real(path, *a, **kw)
        monkeypatch.setattr(os, call, refused)


def _turns(svc: Service, clock: FakeClock, seconds: float) -> float | None:
    """Turn the loop for `seconds` of its clock; when INV-1 was claimed (None: not)."""
    end = clock.t + seconds
    while clock.t < end:
        svc.turn()
        if KEY not in svc.pipeline.live:
            return clock.t
        clock.t += SETTLE / 5
    return None


def _sent_pdfs(svc: Service, tmp_path: Path) -> list[str]:
    [row] = svc.journal.rows(CLAIMED)
    sent = wait_for(lambda: (d := tmp_path / "target" / row.bundle_id).is_dir() and d,
                    what="the bundle delivered to the target")
    return sorted(str(p.relative_to(sent)) for p in sent.rglob("*.pdf"))


def _held_by_a_copy(tmp_path: Path, make_service: Any, clock: FakeClock) -> Service:
    """INV-1 with its sidecar, held from settling by a copy at work in it, under
    unattached = "send"."""
    outbox = tmp_path / "outbox"
    write(outbox / KEY, ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "a.pdf.part", pdf_bytes())
    svc = make_service(unattached="send")
    assert _turns(svc, clock, 3 * SETTLE) is None
    return svc


def test_a_sidecar_a_share_caches_as_missing_never_lets_the_invoice_go_without_it(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """INV-1's sidecar was seen; then the share's client answers its lstat and open with
    ENOENT while the outbox's listing still shows it. Under unattached = "send" the
    invoice is not sent alone: after settling it waits a rescan, the listing then shows
    the folder, and it stays settling, saying so, for as long as that lasts (before: sent
    without its attachments a quiet period after the folder seemed to go). Once the
    folder can be looked at again, it is sent with its attachment."""
    svc = _held_by_a_copy(tmp_path, make_service, clock)
    with monkeypatch.context() as m:
        negative_lookup(m, "INV-1")
        svc.hint("INV-1")  # the poller saw the folder's entries go
        assert _turns(svc, clock, 4 * RESCAN) is None, "not claimed without its folder"
        row = svc.pipeline.live[KEY]
        assert row.state == "settling" and row.last_error is not None
        assert "its folder INV-1 is in the outbox's listing but cannot be looked at" in \
            row.last_error and "No such file or directory" in row.last_error
    os.rename(tmp_path / "outbox" / "INV-1" / "a.pdf.part", tmp_path / "outbox" / "INV-1" / "a.pdf")
    svc.hint("INV-1")
    assert _turns(svc, clock, 2 * RESCAN) is not None
    assert _sent_pdfs(svc, tmp_path) == ["attachments/INV-1/a.pdf"]


def test_a_sidecar_a_clerk_removed_lets_the_invoice_go_one_rescan_later(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """The clerk removes INV-1's sidecar on purpose: once the bundle has settled without
    it, its claim waits one rescan period, saying why, and a fresh listing of the outbox
    then confirms the folder is gone: the invoice is sent alone (unattached = "send")."""
    svc = _held_by_a_copy(tmp_path, make_service, clock)
    shutil.rmtree(tmp_path / "outbox" / "INV-1")
    svc.hint("INV-1")
    removed = clock.t
    svc.turn()
    claimed = _turns(svc, clock, SETTLE + RESCAN / 2)
    assert claimed is None, "not at the end of its quiet period: a rescan later"
    row = svc.pipeline.live[KEY]
    assert row.last_error is not None and "its folder INV-1 went away" in row.last_error
    claimed = _turns(svc, clock, RESCAN)
    assert claimed is not None and removed + SETTLE + RESCAN <= claimed
    assert claimed <= removed + SETTLE + RESCAN + SETTLE
    assert _sent_pdfs(svc, tmp_path) == []


def test_a_sidecar_the_start_lists_but_cannot_look_at_is_not_taken_for_none(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At the start the listing has INV-1's sidecar by name, but its lstat says ENOENT
    (no earlier look to compare with): the invoice is not sent alone under unattached =
    "send"; once the folder can be looked at, it is sent with its attachment."""
    outbox = tmp_path / "outbox"
    write(outbox / KEY, ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    with monkeypatch.context() as m:
        negative_lookup(m, "INV-1")
        svc = make_service(unattached="send")
        assert _turns(svc, clock, 3 * RESCAN) is None, "not claimed without its folder"
        last_error = svc.pipeline.live[KEY].last_error
        assert last_error is not None and "in the outbox's listing" in last_error
    assert _turns(svc, clock, 2 * RESCAN) is not None
    assert _sent_pdfs(svc, tmp_path) == ["attachments/INV-1/a.pdf"]


def test_a_sidecar_the_confirming_listing_finds_back_holds_the_claim(tmp_path: Path) -> None:
    """The step's look found INV-1's sidecar gone; when its claim's wait is over, the fresh
    listing of the outbox has it again, a folder (put back between the look and the
    listing): the claim does not go on without it, the bundle is looked at again at once
    (its next look sees the folder: a change), and a rescan period later at the earliest
    would the listing be asked again."""
    from daemon.configuration.config import OutboxConfig
    from daemon.watching.scan import candidate_for
    from daemon.watching.vanished import Vanished
    cand = candidate_for(OutboxConfig(path=str(tmp_path)), KEY)
    v = Vanished()
    v.noted(KEY)
    first = v.wait(cand, 100.0, RESCAN)
    assert first is not None and first.at == 100.0 + RESCAN
    (tmp_path / "INV-1").mkdir()
    back = v.wait(cand, first.at, RESCAN)
    assert back is not None and back.at == first.at and "is back" in back.why
    later = v.wait(cand, first.at + 1, RESCAN)
    assert later is not None and later.at == first.at + RESCAN


def test_a_file_in_the_place_of_the_sidecar_confirms_it_gone(tmp_path: Path) -> None:
    """INV-1's sidecar went, and a file of its name is in the outbox when the confirming
    listing comes (a clerk's "INV-1" export, no folder): no sidecar, so the claim goes on
    without one, rather than waiting for a folder that a file stands in for, for good."""
    from daemon.configuration.config import OutboxConfig
    from daemon.watching.scan import candidate_for
    from daemon.watching.vanished import Vanished
    cand = candidate_for(OutboxConfig(path=str(tmp_path)), KEY)
    v = Vanished()
    v.noted(KEY)
    first = v.wait(cand, 100.0, RESCAN)
    assert first is not None
    write(tmp_path / "INV-1", b"not a folder")
    assert v.wait(cand, first.at, RESCAN) is None


def test_a_sidecar_gone_whose_confirming_listing_fails_is_never_taken_for_removed(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """INV-1's sidecar went; when its claim would go on without it, the fresh listing of
    the outbox that is to confirm it gone fails (EIO from the share, injected where the
    confirmation lists): the invoice is not sent alone — it stays settling, its row saying
    its folder went away, the outbox cannot be listed to confirm it (with the error),
    and outboxd tries again; once the listing works, the folder is confirmed gone and
    the invoice goes."""
    from helpers import refuse_listing

    from daemon.watching import vanished
    svc = _held_by_a_copy(tmp_path, make_service, clock)
    shutil.rmtree(tmp_path / "outbox" / "INV-1")
    svc.hint("INV-1")
    with monkeypatch.context() as m:
        refuse_listing(m, {"outbox"}, errno.EIO, module=vanished)
        assert _turns(svc, clock, SETTLE + 3 * RESCAN) is None, "not claimed unconfirmed"
        row = svc.pipeline.live[KEY]
        assert row.state == "settling" and row.last_error is not None
        assert "its folder INV-1 went away, and the outbox cannot be listed to confirm it " \
               "(Input/output error) — outboxd tries again" in row.last_error
    assert _turns(svc, clock, 2 * RESCAN) is not None
    assert _sent_pdfs(svc, tmp_path) == []
