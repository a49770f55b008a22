"""A look-alike of the sidecar of a bundle whose copy is still at work (an in-progress
name in its sidecar): shown with the settling bundle from the first look, in the words
its reasons will have, not only once the copy ends and the bundle is read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import make, quiet_logs, step  # noqa: E402, F401 - quiet_logs: autouse
from fakeloop import FakeClock  # noqa: E402
from helpers import drop_bundle, pdf_bytes, write  # noqa: E402

from daemon.loop.pipeline import STUCK_SECONDS  # noqa: E402
from daemon.reading.lookalikes import look_alike_findings  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


def test_a_look_alike_of_a_settling_bundles_sidecar_is_shown_at_once_and_gone_when_renamed(
        tmp_path: Path) -> None:
    """`INV-1 (1)/` beside INV-1.xml, whose sidecar holds a `.part` copy at work: the
    bundle cannot be read until the copy ends (up to STUCK_SECONDS with a killed copy),
    and the look-alike is left off the lone folders (its bundle's errors tell it). It
    was shown nowhere meanwhile; now the settling row says it at the first look, as the
    bundle's reasons will (`file: message`). Once it is renamed away the row says
    nothing again; once the copy stops it says both."""
    p, s = make(tmp_path, outbox={"settle_seconds": 5})
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    write(s.outbox.path / "INV-1" / "scan.pdf.part", pdf_bytes())
    alike = s.outbox.path / "INV-1 (1)"
    write(alike / "b.pdf", pdf_bytes())
    cand = next(iter(list_outbox(s.outbox).candidates.values()))
    [finding] = look_alike_findings(cand, s)
    step(p, cand, 0.0)
    [row] = p.j.rows(("settling",))
    assert f"INV-1 (1): {finding.message}" in (row.last_error or "")
    assert "looks like a copy of the sidecar INV-1 of INV-1.xml" in (row.last_error or "")

    away = s.outbox.path / "elsewhere"
    alike.rename(away)
    step(p, next(iter(list_outbox(s.outbox).candidates.values())), 1.0)
    [row] = p.j.rows(("settling",))
    assert not row.last_error  # a copy at work, and nothing else to say

    away.rename(alike)
    cand = next(iter(list_outbox(s.outbox).candidates.values()))
    step(p, cand, 2.0)
    [row] = p.j.rows(("settling",))
    assert f"INV-1 (1): {finding.message}" in (row.last_error or "")

    # The copy stopped (unchanged since the look-alike came back, which the bundle's
    # looks see): what it waits for and the look-alike, both.
    assert step(p, cand, 2.0 + STUCK_SECONDS).at is None
    [row] = p.j.rows(("settling",))
    assert (row.last_error or "").startswith("waits for INV-1/scan.pdf.part: ")
    assert f"INV-1 (1): {finding.message}" in (row.last_error or "")


def test_a_look_alike_made_while_the_copy_is_at_work_is_shown_at_its_event(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """The look-alike comes after the bundle was first seen, while the copy in its
    sidecar goes on: the loop's next turn after its event shows it on the bundle's row,
    long before the copy could be called stuck — as folder-convention.md promises ("found
    as soon as outboxd sees it come")."""
    svc = make_service()
    outbox = tmp_path / "outbox"
    drop_bundle(outbox, "INV-1", {"a.pdf": pdf_bytes()})
    write(outbox / "INV-1" / "scan.pdf.tmp", pdf_bytes())
    svc.hint("INV-1.xml")
    svc.turn()
    [row] = svc.journal.rows(("settling",))
    assert not row.last_error

    clock.t += 1.0
    write(outbox / "INV-1 (1)" / "b.pdf", pdf_bytes())
    svc.hint("INV-1 (1)")
    svc.turn()
    [row] = svc.journal.rows(("settling",))
    assert (row.last_error or "").startswith("will be held once its copy ends: INV-1 (1): "
                                             "this folder looks like a copy of the sidecar")


def test_the_look_alike_line_goes_once_the_copy_ends_and_the_look_alike_is_gone(
        tmp_path: Path) -> None:
    """The copy ends (its `.part` renamed to its name) and the look-alike is moved away:
    while the bundle settles, its row no longer says it "will be held once its copy
    ends" for a look-alike that is not there (the busy step that said it is not taken
    again: nothing took the line back until the bundle was read)."""
    p, s = make(tmp_path, outbox={"settle_seconds": 5})
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    write(s.outbox.path / "INV-1" / "scan.pdf.part", pdf_bytes())
    alike = s.outbox.path / "INV-1 (1)"
    write(alike / "b.pdf", pdf_bytes())
    step(p, next(iter(list_outbox(s.outbox).candidates.values())), 0.0)
    [row] = p.j.rows(("settling",))
    assert "INV-1 (1)" in (row.last_error or "")

    (s.outbox.path / "INV-1" / "scan.pdf.part").rename(s.outbox.path / "INV-1" / "scan.pdf")
    alike.rename(s.outbox.path / "elsewhere")
    assert step(p, next(iter(list_outbox(s.outbox).candidates.values())), 1.0).at is not None
    [row] = p.j.rows(("settling",))
    assert not row.last_error


def test_a_stopped_copy_that_ends_beside_a_look_alike_still_there_says_the_look_alike(
        tmp_path: Path) -> None:
    """The copy had stopped (the row said what it waits for and the look-alike), then
    ends: while the bundle settles, its row says the look-alike, still there, and no
    longer that it waits for a `.part` file that is gone."""
    p, s = make(tmp_path, outbox={"settle_seconds": 5})
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    write(s.outbox.path / "INV-1" / "scan.pdf.part", pdf_bytes())
    write(s.outbox.path / "INV-1 (1)" / "b.pdf", pdf_bytes())
    cand = next(iter(list_outbox(s.outbox).candidates.values()))
    [finding] = look_alike_findings(cand, s)
    step(p, cand, 0.0)
    step(p, cand, STUCK_SECONDS + 1.0)
    [row] = p.j.rows(("settling",))
    assert (row.last_error or "").startswith("waits for INV-1/scan.pdf.part: ")

    (s.outbox.path / "INV-1" / "scan.pdf.part").rename(s.outbox.path / "INV-1" / "scan.pdf")
    step(p, next(iter(list_outbox(s.outbox).candidates.values())), STUCK_SECONDS + 2.0)
    [row] = p.j.rows(("settling",))
    assert "scan.pdf.part" not in (row.last_error or "")
    assert f"INV-1 (1): {finding.message}" in (row.last_error or "")
