"""What changed, on the loop without timing (fakeloop): the rescan compares each
bundle's stat-level listing with its last look, a watcher hint steps exactly the
bundle(s) it concerns, and hints on a bundle of many files are answered at a pace.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import (  # noqa: E402
    RESCAN,
    SETTLE,
    Counts,
    FakeClock,
    FakeWatcher,
    Inline,
    settle_all,
    stop,
)
from helpers import Page, pdf_bytes, refuse_stat, ubl_invoice, wait_for, write  # noqa: E402

from daemon import logs  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.loop import changes as changes_module  # noqa: E402
from daemon.loop import service as service_module  # noqa: E402
from daemon.loop.service import Service  # noqa: E402
from daemon.watching import snapshot as snapshot_module  # noqa: E402
from daemon.watching.settle import PACE_PER_ENTRY  # noqa: E402
from daemon.watching.watch import OVERFLOW  # noqa: E402


def test_waiting_bundles_cost_nothing_between_rescans(make_service: Any, clock: FakeClock,
                                                      counts: Counts, tmp_path: Path) -> None:
    """500 invoices waiting for attachments and no events: between rescans the loop takes
    no snapshot, sends no journal query and validates nothing; the rescan compares the
    listing's stats with what each bundle last looked like (no snapshot of its own for
    an invoice file alone) and, as nothing changed, still no query and no validation
    (nor the status page rendered again for a folder the start already saw).
    A file changed without an event is found by the next rescan, and only that one."""
    outbox = tmp_path / "outbox"
    for n in range(500):
        write(outbox / f"INV-{n}.xml", ubl_invoice(f"INV-{n}"))
    # A folder in the root that is no bundle's (the page lists some folders): the start
    # looked at it, and a rescan that finds it unchanged renders no page again.
    write(outbox / "Old invoices 2025" / "INV-2025-1.pdf", pdf_bytes())
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
    clock.t += 3.0  # past the page's pace: a page the rescan asked for is written now
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


def test_unchanged_bundles_with_sidecars_cost_a_snapshot_at_the_rescan_and_nothing_more(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """50 bundles held with their sidecars (the lone-invoice shortcut does not apply to
    them): the rescan snapshots each once, finds it as last stepped and steps none —
    no journal query, no read — and sets the next rescan a whole period later. An event
    on one of them whose files did not change steps that one, from the rows kept in
    memory: still no journal query."""
    outbox = tmp_path / "outbox"
    for n in range(50):
        write(outbox / f"INV-{n}.xml", ubl_invoice(f"INV-{n}"))
        write(outbox / f"INV-{n}" / "scan.pdf", b"")  # empty-file: held, sidecar and all
    svc = make_service(invalid="hold")
    settle_all(svc, clock)
    assert svc.journal.summary().get("held") == 50

    counts.reset()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    svc.turn()
    assert (counts.snapshots, len(counts.sql), counts.reads, counts.steps) == (50, 0, 0, [])
    assert svc.timers.due_at(service_module.RESCAN) == rescan_due + RESCAN

    counts.reset()
    svc.hint("INV-7")
    svc.turn()
    assert (counts.snapshots, counts.steps, counts.reads) == (1, ["INV-7.xml"], 0)
    assert counts.sql == []
    assert svc.pipeline.live["INV-7.xml"].state == "held"


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


def test_a_claim_stranded_while_its_work_folder_was_away_goes_back_at_the_rescan(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The share holding processing/ is away when the claim's check by hashes reads the
    bundle: the claim cannot be undone and stays `claiming`, saying why. The first
    rescan after the work folder is back puts the bundle back into the outbox, where it
    settles again (the claim is not left to a restart, nor the bundle to a person)."""
    outbox, away = tmp_path / "outbox", tmp_path / "away"
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    check = svc.pipeline.assemble_many
    works: list[Path] = []

    def share_gone_first(jobs: list[Any], st: Settings) -> object:
        if not works:
            works.append(jobs[0][0].invoice.parent)  # the moved bundle's work folder
            works[0].rename(away)
        return check(jobs, st)

    monkeypatch.setattr(svc.pipeline, "assemble_many", share_gone_first)
    svc.hint("INV-1.xml")
    settle_all(svc, clock)
    [row] = svc.journal.rows(("claiming",))
    assert "is not there" in (row.last_error or "") and not (outbox / "INV-1.xml").exists()

    away.rename(works[0])  # the share is back
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    svc.turn()
    assert (outbox / "INV-1.xml").exists() and (outbox / "INV-1" / "a.pdf").exists()
    assert svc.journal.get(row.id).state == "settling" and not works[0].exists()


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
    pace = 501 * PACE_PER_ENTRY  # the invoice file, its sidecar, 499 attachments: 50 ms
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
    assert len(svc.pipeline.tracker.last("INV-1.xml").entries) == 505

    for f in (outbox / "INV-1").iterdir():  # the clerk empties the folder: a small bundle
        f.unlink()
    clock.t = paced + 0.01
    svc.hint("INV-1")
    svc.turn()
    assert counts.steps == ["INV-1.xml"] * 2  # still paced by the last (big) look
    again = svc.timers.due_at(("bundle", "INV-1.xml"))
    assert again == pytest.approx(paced + 505 * PACE_PER_ENTRY)
    clock.t = again
    svc.turn()
    assert counts.steps == ["INV-1.xml"] * 3  # its time has come: a look of two entries
    clock.t += 0.001
    svc.hint("INV-1")
    svc.turn()
    assert counts.steps == ["INV-1.xml"] * 4  # which ended the pacing


def _state(svc: Any, key: str) -> tuple[str, list[tuple[str, str]]]:
    row = svc.pipeline.live[key]
    return row.state, [(r["code"], r["file"]) for r in row.reasons or []]


def test_a_folder_named_in_other_case_made_beside_a_waiting_invoice_holds_it_at_its_event(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """INV-7.xml waits for attachments; a Windows clerk then makes inv-7/ (one name to
    Windows, two to Linux) and puts the timesheet in it. The watcher's event on inv-7 —
    no rescan, no listing — steps INV-7.xml, which is held with sidecar-spelling naming
    the folder (invalid = "hold"), instead of waiting on and going out without it."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    write(outbox / "INV-8.xml", ubl_invoice("INV-8"))
    svc = make_service(invalid="hold")
    settle_all(svc, clock)
    assert _state(svc, "INV-7.xml") == ("waiting", [])
    rescan_due = svc.timers.due_at(service_module.RESCAN)

    write(outbox / "inv-7" / "timesheet.pdf", pdf_bytes())
    svc.hint("inv-7")
    counts.reset()
    settle_all(svc, clock)
    assert clock.t < rescan_due  # the event did it, not the rescan
    assert _state(svc, "INV-7.xml") == ("held", [("sidecar-spelling", "inv-7")])
    assert "INV-8.xml" not in counts.steps
    errors = (outbox / "INV-7.errors.txt").read_text(encoding="utf-8")
    assert "inv-7: this folder looks like the sidecar INV-7 of INV-7.xml" in errors


def test_a_folder_named_in_other_case_made_without_an_event_is_found_by_the_rescan(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """The same folder made where the watcher does not see it (polling between polls, a
    lost event): until the rescan the invoice waits; the rescan's listing gives the
    bundle its look-alike, its snapshot changes, and it is held with sidecar-spelling
    (the rescan's shortcut for a lone invoice file does not skip it)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    svc = make_service(invalid="hold")
    settle_all(svc, clock)
    write(outbox / "Inv-7" / "timesheet.pdf", pdf_bytes())  # no hint: the watcher is silent
    settle_all(svc, clock)
    assert _state(svc, "INV-7.xml") == ("waiting", [])

    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    settle_all(svc, clock)
    assert _state(svc, "INV-7.xml") == ("held", [("sidecar-spelling", "Inv-7")])


def test_a_sidecar_file_that_cannot_be_looked_at_ends_neither_the_rescan_nor_the_loop(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """INV-1.xml waits; its sidecar then comes without an event holding a file whose lstat
    is refused (a folder that may be listed but not searched). The rescan that finds it
    goes on to the other bundles, and the loop too: INV-2, also found by it, is decided,
    and INV-1 says in its row why it does not move, naming the file (before: the rescan's
    PermissionError ended the daemon, and every start again)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    settle_all(svc, clock)
    assert _state(svc, "INV-1.xml") == ("waiting", [])
    write(outbox / "INV-1" / "locked.pdf", pdf_bytes())  # no hint: the watcher is silent
    write(outbox / "INV-2.xml", ubl_invoice("INV-2"))
    refuse_stat(monkeypatch, {"locked.pdf"})
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    settle_all(svc, clock)
    assert _state(svc, "INV-2.xml") == ("waiting", [])
    row = svc.pipeline.live["INV-1.xml"]
    assert row.state == "settling" and row.last_error is not None
    assert "Permission denied" in row.last_error and "INV-1/locked.pdf" in row.last_error
    assert "check that outboxd's user may read the file" in row.last_error


@pytest.mark.parametrize("error", [errno.ESTALE, errno.EIO], ids=["ESTALE", "EIO"])
def test_a_root_entry_whose_lstat_fails_is_no_outage_and_its_bundle_is_not_judged_on_it(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        error: int) -> None:
    """At a rescan the lstat of one root entry, INV-1's sidecar, fails as a share's
    trouble makes it (a stale NFS handle, an I/O error). The rescan goes on: INV-2, found
    by it, is decided, and the outbox is not said to be away (before: the whole listing
    failed, "cannot list the outbox", and nothing was found until the entry mended).
    INV-1 is not judged on a listing without its sidecar: its own look fails too, and
    says so for that bundle; once the lstat works again it goes on with its sidecar."""
    # The log to this test's own captured stream, in a known format: a test run before it
    # may have pointed the log at a stream captured for itself (logs.configure()).
    logs.configure(stream=sys.stderr)
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    settle_all(svc, clock)
    assert _state(svc, "INV-1.xml") == ("waiting", [])
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())  # no hint: the watcher is silent
    write(outbox / "INV-2.xml", ubl_invoice("INV-2"))
    refuse_stat(monkeypatch, {"INV-1"}, error)
    real_lstat = os.lstat

    def lstat(path: Any, *a: Any, **kw: Any) -> os.stat_result:
        if os.path.basename(path) == "INV-1":
            raise OSError(error, os.strerror(error), str(path))
        return real_lstat(path, *a, **kw)
    monkeypatch.setattr(os, "lstat", lstat)
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    settle_all(svc, clock)
    logged = "".join(capsys.readouterr())  # the log as configured at the test's start
    assert not svc.outage.on and "cannot list the outbox" not in logged
    assert _state(svc, "INV-2.xml") == ("waiting", [])
    [failed] = [line for line in logged.splitlines() if "cannot look at the bundle" in line]
    assert "INV-1.xml" in failed and os.strerror(error) in failed
    assert _state(svc, "INV-1.xml") == ("waiting", [])  # not judged on the listing

    monkeypatch.undo()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    settle_all(svc, clock)
    assert "INV-1.xml" not in svc.pipeline.live, "claimed with its sidecar"
    assert svc.journal.summary().get("waiting") == 1  # INV-2 alone


def test_a_bundle_another_daemon_claims_during_the_rescan_is_gone_not_an_error(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Another outboxd on the share claims INV-1 (renames the invoice file, then its
    sidecar, into its processing folder) after this daemon's rescan listed the outbox and
    before it looked into the sidecar: the bundle is gone, said at info level at most —
    no error-level line, no "cannot list a folder of the bundle" in its row (before: an
    error naming the sidecar, "No such file or directory", for a bundle that simply left)."""
    logs.configure(stream=sys.stderr)  # as above: this test's own captured stream
    outbox, theirs = tmp_path / "outbox", tmp_path / "other-processing"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    (outbox / "INV-1").mkdir()  # a sidecar, so that the rescan looks into it
    svc = make_service()
    settle_all(svc, clock)
    assert _state(svc, "INV-1.xml") == ("waiting", [])
    row_id = svc.pipeline.live["INV-1.xml"].id
    looked = changes_module.snapshot

    def claimed_first(cand: Any, *a: Any) -> Any:
        if cand.invoice.name == "INV-1.xml" and cand.invoice.exists():
            theirs.mkdir()
            cand.invoice.rename(theirs / cand.invoice.name)  # as claim.claim: invoice first
            cand.sidecar.rename(theirs / cand.sidecar.name)
        return looked(cand, *a)
    monkeypatch.setattr(changes_module, "snapshot", claimed_first)
    capsys.readouterr()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    svc.turn()
    assert theirs.is_dir() and not (outbox / "INV-1.xml").exists()
    logged = capsys.readouterr().err
    assert [line for line in logged.splitlines() if line.startswith("{")
             and json.loads(line)["level"] in ("error", "warning")] == [], logged
    assert "INV-1.xml" not in svc.pipeline.live
    row = svc.journal.get(row_id)
    assert row.state == "gone" and "cannot" not in (row.last_error or "")


def test_a_sidecar_a_clerk_renames_away_as_it_is_looked_at_is_a_change_not_an_error(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """INV-1.xml waits with an empty sidecar; a clerk swaps in the attachments she
    prepared: renames INV-1/ away after the rescan listed the outbox and before its look
    opened the folder, and moves the prepared INV-1/ in after that look — twice, as an
    undecided clerk would (the second time under the settle timer's own look). No event
    comes (the fake watcher is silent). Each such look is a change: no error or warning
    logged, nothing "cannot be looked at" in the row, the bundle looked at again a quiet
    period later (not at once, not at the rescan's pace); then it settles and goes out
    with what is there at the end (before: an error line, "cannot list a folder of the
    bundle", with a fix about the share's permissions, for each such look)."""
    logs.configure(stream=sys.stderr)  # as above: this test's own captured stream
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    (outbox / "INV-1").mkdir()
    svc = make_service()
    settle_all(svc, clock)
    assert _state(svc, "INV-1.xml") == ("waiting", [])
    row_id = svc.pipeline.live["INV-1.xml"].id
    scan = pdf_bytes()
    prepared = write(tmp_path / "prepared" / "INV-1" / "scan.pdf", scan).parent
    went: list[Path] = []  # where the clerk's rename puts INV-1/ at the next look's opening
    real_open = os.open

    def clerk_renames_first(name: Any, *a: Any, **kw: Any) -> int:
        if went and os.path.basename(os.fsdecode(name)) == "INV-1":
            (outbox / "INV-1").rename(went.pop())
        return real_open(name, *a, **kw)
    monkeypatch.setattr(snapshot_module.os, "open", clerk_renames_first)
    capsys.readouterr()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    # The empty folder put aside and the prepared one moved in; then that one put aside
    # and moved back in.
    for aside, incoming in ((tmp_path / "empty", prepared),
                            (tmp_path / "aside", tmp_path / "aside")):
        went.append(aside)
        counts.reset()
        svc.turn()  # the rescan's look, then the settle timer's
        assert not went and counts.steps == ["INV-1.xml"]
        assert _loud(capsys.readouterr().err) == []
        assert not (outbox / "INV-1").exists()
        assert svc.timers.due_at(("bundle", "INV-1.xml")) == clock.t + SETTLE
        assert "cannot" not in (svc.pipeline.live["INV-1.xml"].last_error or "")
        incoming.rename(outbox / "INV-1")  # after the look: its change still unseen
        counts.reset()
        svc.turn()  # no spin: nothing is looked at before its time
        assert counts.steps == []
        clock.t += SETTLE
    for _ in range(6):
        svc.turn()
        clock.t += SETTLE / 2
    row = wait_for(lambda: (r := svc.journal.get(row_id)).state == "sent" and r,
                   what="the bundle delivered and archived")
    sent = tmp_path / "target" / row.bundle_id / "attachments" / "INV-1" / "scan.pdf"
    assert sent.read_bytes() == scan
    assert _loud(capsys.readouterr().err) == []


def _loud(logged: str) -> list[str]:
    """The error and warning lines of what the daemon logged."""
    return [line for line in logged.splitlines()
            if line.startswith("{") and json.loads(line)["level"] in ("error", "warning")]


class _DropsAsItStarts(FakeWatcher):
    """A watcher whose (re)start takes its first look at the outbox, as the poller's first
    walk does, while a clerk drops an invoice file: the watcher takes it for there
    already, and reports no event for it."""

    def __init__(self, outbox: Path, name: str, dead: bool = False) -> None:
        self.outbox, self.name, self.dead = outbox, name, dead

    def ensure_alive(self) -> bool:
        if not self.dead and self.restarts:
            return False
        write(self.outbox / self.name, ubl_invoice(self.name.removesuffix(".xml")))
        self.dead, self.restarts = False, self.restarts + 1
        return True


def test_an_invoice_dropped_while_the_watcher_starts_is_found_without_waiting_for_a_rescan(
        tmp_path: Path, clock: FakeClock, counts: Counts) -> None:
    """The start lists the outbox and starts the watcher: an invoice file dropped as the
    watcher takes its first look was in neither the listing nor an event. The watcher is
    started first, so the listing after it has the file, and the bundle is stepped at
    once rather than a rescan (60 s) later."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    s = Settings(outbox={"path": str(outbox), "settle_seconds": SETTLE, "rescan_seconds": RESCAN},
                 paths={"state_dir": str(tmp_path / "state")}, policy={"unattached": "hold"},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 einvoice={"preflight": "off"})
    svc = Service(s, clock=clock, watcher_factory=lambda s, hint: _DropsAsItStarts(
        outbox, "INV-2.xml"), reader=Inline())
    try:
        svc.open()
        settle_all(svc, clock)
        assert clock.t < svc.timers.due_at(service_module.RESCAN)  # no rescan came yet
        assert svc.journal.summary().get("waiting") == 1
        assert counts.steps[0] == "INV-2.xml"
    finally:
        stop(svc)


def test_an_invoice_dropped_while_the_rescan_restarts_a_dead_watcher_is_found_by_it(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """The rescan restarts a watcher that died (the share went away a while): one dropped
    as the new watcher takes its first look is found by that rescan's listing, not by
    the next rescan's."""
    outbox = tmp_path / "outbox"
    svc = make_service()
    svc.watcher = _DropsAsItStarts(outbox, "INV-3.xml", dead=True)
    clock.t = svc.timers.due_at(service_module.RESCAN)
    settle_all(svc, clock)
    assert svc.watcher.restarts == 1
    assert clock.t < svc.timers.due_at(service_module.RESCAN)  # the next rescan not yet
    assert svc.journal.summary().get("waiting") == 1


def _other_daemons_receipts(sent: Path, count: int) -> list[str]:
    """`count` entries another daemon filed in today's sent/ day folder; their bundle ids."""
    import json
    from datetime import UTC, datetime
    folder = sent / datetime.now(UTC).strftime("%Y-%m-%d")
    ids = []
    for n in range(count):
        bid = f"{n:064x}"
        entry = folder / f"INV-{n}--{bid[:12]}"
        entry.mkdir(parents=True)
        (entry / "receipt.json").write_text(json.dumps({
            "manifest": {"bundle_id": bid, "invoice_file": {"name": f"INV-{n}.xml"},
                         "invoices": [{"id": f"INV-{n}", "attachments": []}]},
            "response": {"status": 201, "receipt_id": f"r-{n}"}, "attempts": 1,
            "delivered_at": "2031-05-06T12:00:00.000Z"}))
        ids.append(bid)
    return ids


def test_receipts_another_daemon_filed_are_read_a_turns_share_at_a_time(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rescan that finds thousands of receipts another daemon filed in sent/ read them
    all on the loop in one go (50,000: 5.5 s on a local disk, more on a share, with no
    keep-alive to systemd's watchdog and no fresh bundle stepped meanwhile). Each turn now
    reads receipts only for its share (NEWS_TURN on the loop's clock), the next turn comes
    at once, and every receipt is read once and learned. Each read here costs 2 ms of the
    fake clock."""
    from daemon.archiving import sentnews
    from daemon.loop import changes
    svc = make_service()
    ids = _other_daemons_receipts(svc.settings.sent_dir, 40)
    read: list[str] = []
    real = sentnews.receipt_record

    def costly(folder: Path, day: str | None = None, at: int | None = None) -> Any:
        read.append(folder.name)
        clock.t += 0.002
        return real(folder, day, at)

    monkeypatch.setattr(sentnews, "receipt_record", costly)
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    turns, per_turn = 0, []
    while turns == 0 or svc.sent_news.pending:
        before, began = len(read), clock.t
        wait = svc.turn()
        turns += 1
        per_turn.append(len(read) - before)
        # The loop's clock moved by the turn's share and one read more at most.
        assert clock.t - began <= changes.NEWS_TURN + 0.002 + 1e-9
        if svc.sent_news.pending:
            assert wait == 0.0  # the rest is read at the next turn, not a rescan later
        assert turns < 100
    assert max(per_turn) <= 3 and sum(per_turn) == 40 and turns >= 14
    assert sorted(read) == sorted(set(read))  # each receipt read once
    assert all(svc.journal.was_sent(b) for b in ids)


def test_reasons_another_daemon_quarantined_are_read_a_turns_share_at_a_time(
        make_service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rescan that finds today's quarantine/ full of entries other daemons (or a share
    user) made read every reason.json on the loop in one go (100,000: 5 s). Each turn
    now reads them only for its share (NEWS_TURN on the loop's clock), the next turn comes
    at once, each is read once, and the page lists them all in the end. Each read here
    costs 2 ms of the fake clock."""
    from daemon.archiving import quarantinenews
    from daemon.loop import changes
    svc = make_service()
    day = svc.settings.quarantine_dir / svc.publish.wall().strftime("%Y-%m-%d")
    for n in range(40):
        entry = day / f"INV-{n}--{n:012x}"
        entry.mkdir(parents=True)
        (entry / "reason.json").write_text(json.dumps({
            "bundle_id": f"{n:064x}", "invoice_file": f"INV-{n}.xml",
            "quarantined_at": "2031-05-06T12:00:00Z",
            "reasons": [{"file": "a.pdf", "message": "not a PDF"}]}))
        (entry / f"INV-{n}.xml").write_bytes(b"<x/>")
    read: list[str] = []
    real = quarantinenews.open_in

    def costly(fd: int, name: str, shown: str) -> Any:
        read.append(shown)
        clock.t += 0.002
        return real(fd, name, shown)

    monkeypatch.setattr(quarantinenews, "open_in", costly)
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    turns, per_turn = 0, []
    while turns == 0 or svc.quarantine_news.pending:
        before, began = len(read), clock.t
        wait = svc.turn()
        turns += 1
        per_turn.append(len(read) - before)
        assert clock.t - began <= changes.NEWS_TURN + 0.002 + 1e-9
        if svc.quarantine_news.pending:
            assert wait == 0.0  # the rest is read at the next turn, not a rescan later
        assert turns < 100
    assert max(per_turn) <= 3 and sum(per_turn) == 40 and turns >= 14
    assert sorted(read) == sorted(set(read))  # each reason.json read once
    assert len(svc.publish.page.elsewhere) == 40


def test_a_sent_folder_off_its_mount_teaches_the_look_nothing(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While sent/ is off the file system it was on at the start (its share unmounted,
    the bare mount point left), a rescan does not look over it: nothing there is read or
    recorded. Once the share is back, the next rescan learns what the other daemons
    filed."""
    svc = make_service()
    sent = svc.settings.sent_dir
    [bid] = _other_daemons_receipts(sent, 1)
    mounts = svc.pipeline.finish.mounts
    real_away = mounts.away
    monkeypatch.setattr(mounts, "away", lambda folder: "share unmounted" if folder == sent
                        else real_away(folder))
    for _ in range(2):
        due = svc.timers.due_at(service_module.RESCAN)
        assert due is not None
        clock.t = due
        svc.turn()
    assert not svc.journal.was_sent(bid) and not svc.sent_news.pending
    monkeypatch.setattr(mounts, "away", real_away)
    due = svc.timers.due_at(service_module.RESCAN)
    assert due is not None
    clock.t = due
    svc.turn()
    assert svc.journal.was_sent(bid)


def test_a_bundle_dropped_again_while_its_receipt_waits_to_be_read_is_a_duplicate(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another daemon filed INV-X in sent/, listed by a look but its receipt still among
    the many waiting for their turn's share; INV-X dropped again here settles and is
    decided meanwhile. Its receipt is read before the decision, so it is quarantined as
    a duplicate, as when a look read every receipt at once — it was sent a second time."""
    import hashlib
    import json
    from datetime import UTC, datetime

    from daemon.archiving import sentnews
    from daemon.manifest import compute_bundle_id
    svc = make_service(unattached="send")
    sent = svc.settings.sent_dir
    _other_daemons_receipts(sent, 40)
    data = ubl_invoice("INV-X")
    bid = compute_bundle_id(hashlib.sha256(data).hexdigest(), [])
    real = sentnews.receipt_record

    def costly(folder: Path, day: str | None = None, at: int | None = None) -> Any:
        clock.t += 0.006  # over a turn's share: one receipt a turn
        return real(folder, day, at)

    monkeypatch.setattr(sentnews, "receipt_record", costly)
    due = svc.timers.due_at(service_module.RESCAN)
    assert due is not None
    clock.t = due
    svc.turn()  # the 40 listed, one read
    # Filed by the other daemon after that look: listed by the next one, behind the rest.
    entry = sent / datetime.now(UTC).strftime("%Y-%m-%d") / f"INV-X--{bid[:12]}"
    entry.mkdir()
    (entry / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": bid, "invoice_file": {"name": "INV-X.xml"},
                     "invoices": [{"id": "INV-X", "attachments": []}]},
        "response": {"status": 201, "receipt_id": "r-x"}, "attempts": 1,
        "delivered_at": "2031-05-06T12:00:00.000Z"}))
    write(tmp_path / "outbox" / "INV-X.xml", data)
    due = svc.timers.due_at(service_module.RESCAN)
    assert due is not None
    clock.t = due
    svc.turn()  # lists the entry and the dropped invoice
    for _ in range(6):  # settled and decided, the receipts still being read
        clock.t += SETTLE / 2
        svc.turn()
    assert svc.sent_news.pending  # the look's queue has not come to INV-X's turn
    assert not (tmp_path / "target" / bid).exists()
    assert [r.invoice_file for r in svc.journal.quarantined_for("duplicate")] == ["INV-X.xml"]


def test_rescans_while_nothing_happens_log_nothing(make_service: Any, clock: FakeClock,
                                                  tmp_path: Path) -> None:
    """A daemon that runs for a year rescans every rescan_seconds (1,440 times a day
    at 60 s): with invoices waiting for attachments and nothing changing, its rescans
    write no log line at any level, so journald holds what happened, not that nothing
    did."""
    outbox = tmp_path / "outbox"
    for n in range(3):
        write(outbox / f"INV-{n}.xml", ubl_invoice(f"INV-{n}"))
    svc = make_service()
    settle_all(svc, clock)
    assert svc.journal.summary().get("waiting") == 3
    with capture_logs() as records:
        for _ in range(3):
            rescan_due = svc.timers.due_at(service_module.RESCAN)
            assert rescan_due is not None
            clock.t = rescan_due
            svc.turn()
            clock.t += 3.0  # past the page's pace
            svc.turn()
    assert records == []


def test_an_invoice_file_taken_away_without_an_event_is_gone_at_the_rescan(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """A waiting invoice file removed where the watcher does not see it (polling between
    polls, a lost event): the rescan's listing no longer has it, so its bundle is
    stepped and its row ends, not shown waiting for good."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    svc = make_service()
    settle_all(svc, clock)
    assert svc.pipeline.live["INV-7.xml"].state == "waiting"
    (outbox / "INV-7.xml").unlink()  # no hint: the watcher is silent
    due = svc.timers.due_at(service_module.RESCAN)
    assert due is not None
    clock.t = due
    svc.turn()
    assert "INV-7.xml" not in svc.pipeline.live
    assert svc.journal.summary().get("waiting") is None


def test_lost_events_have_the_outbox_listed_in_that_turn(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """The watcher lost events (its queue overflowed): the outbox is listed in that very
    turn, not a rescan period later, so an invoice file dropped meanwhile is stepped."""
    svc = make_service()
    settle_all(svc, clock)
    counts.reset()
    write(tmp_path / "outbox" / "INV-9.xml", ubl_invoice("INV-9"))  # its event was lost
    svc.hint(OVERFLOW)
    svc.turn()
    assert counts.steps == ["INV-9.xml"]


def test_a_release_file_for_no_bundle_is_on_the_page_after_its_event(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """A release file naming no invoice file changes no journal row: its event alone has
    the page written again, listing it among the release files that do nothing, before
    any rescan comes."""
    svc = make_service()
    settle_all(svc, clock)
    outbox = tmp_path / "outbox"
    write(outbox / "INV-404.send-anyway", b"")
    svc.hint("INV-404.send-anyway")
    settle_all(svc, clock)
    assert clock.t < svc.timers.due_at(service_module.RESCAN)
    assert "INV-404.send-anyway" in (outbox / svc.settings.share.status_page).read_text()


def test_an_errors_file_of_no_bundle_joins_and_leaves_the_page_at_its_events(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """NOTES.errors.txt beside no invoice file (a clerk's notes, or restored from the
    recycle bin) changes no journal row: its event alone has the page written again,
    listing it among the files left alone, and its deletion's event has it written
    again without it, both before any rescan comes (rescan_seconds, a minute by
    default, was how long the page showed one already deleted)."""
    svc = make_service()
    settle_all(svc, clock)
    outbox = tmp_path / "outbox"
    page = outbox / svc.settings.share.status_page
    write(outbox / "NOTES.errors.txt", b"my notes\n")
    svc.hint("NOTES.errors.txt")
    settle_all(svc, clock)
    assert clock.t < svc.timers.due_at(service_module.RESCAN)
    assert "NOTES.errors.txt" in Page(page.read_text()).text.get("refused", "")
    (outbox / "NOTES.errors.txt").unlink()
    svc.hint("NOTES.errors.txt")
    settle_all(svc, clock)
    assert clock.t < svc.timers.due_at(service_module.RESCAN)
    assert "NOTES.errors.txt" not in Page(page.read_text()).text.get("refused", "")


def test_an_errors_file_of_no_bundle_that_came_or_went_without_an_event_is_seen_by_the_rescan(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """The watcher lost the events of NOTES.errors.txt (beside no invoice file): the next
    full listing has the page written again, with it once it came and without it once
    it went, though no journal row changed (before, it waited for the page's 4-minute
    rewrite, or for something else on the page to change)."""
    svc = make_service()
    settle_all(svc, clock)
    outbox = tmp_path / "outbox"
    page = outbox / svc.settings.share.status_page
    for there in (True, False):
        if there:
            write(outbox / "NOTES.errors.txt", b"my notes\n")
        else:
            (outbox / "NOTES.errors.txt").unlink()
        clock.t = svc.timers.due_at(service_module.RESCAN)
        settle_all(svc, clock)
        shown = Page(page.read_text()).text.get("refused", "")
        assert ("NOTES.errors.txt" in shown) == there


def test_a_sidecar_left_behind_by_its_invoice_file_holds_the_bundle_it_looks_like_at_once(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """INV-7.xml and inv-7.xml (two files to Linux, one name to Windows) wait; INV-7/ is
    the first one's sidecar. The clerk takes INV-7.xml away: INV-7/ stays, a folder named
    like inv-7.xml's sidecar but for case, so inv-7.xml is looked at in the next turn and
    held with sidecar-spelling, not left waiting as if there were no such folder until a
    rescan."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    (outbox / "INV-7").mkdir()  # its attachments not there yet
    write(outbox / "inv-7.xml", ubl_invoice("INV-8"))
    svc = make_service(invalid="hold")
    settle_all(svc, clock)
    assert _state(svc, "inv-7.xml") == _state(svc, "INV-7.xml") == ("waiting", [])
    (outbox / "INV-7.xml").unlink()
    svc.hint("INV-7.xml")
    settle_all(svc, clock)
    assert clock.t < svc.timers.due_at(service_module.RESCAN)
    assert _state(svc, "inv-7.xml") == ("held", [("sidecar-spelling", "INV-7")])


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_look_alike_left_by_a_quarantine_leaves_the_page_at_its_rename(
        make_service: Any, clock: FakeClock, tmp_path: Path, kind: str) -> None:
    """INV-7.xml is quarantined for its look-alike sidecar inv-7 (a folder, or a file),
    which stays in the outbox and is shown on the page as left behind. A clerk renames it
    away: that changes no journal row, yet its event alone has the page written again
    without it, before any rescan comes."""
    outbox = tmp_path / "outbox"
    write(outbox / "inv-7" / "a.pdf" if kind == "folder" else outbox / "inv-7", pdf_bytes())
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    svc = make_service(invalid="quarantine")
    settle_all(svc, clock)
    page = outbox / svc.settings.share.status_page
    assert "INV-7.xml" not in svc.pipeline.live  # quarantined
    assert [row.split("\t")[0] for row in Page(page.read_text()).rows["left-behind"]] \
        == ["inv-7"]
    (outbox / "inv-7").rename(tmp_path / "inv-7 kept")
    svc.hint("inv-7")
    settle_all(svc, clock)
    assert clock.t < svc.timers.due_at(service_module.RESCAN)
    assert "left-behind" not in Page(page.read_text()).text


def test_an_event_on_a_name_that_cannot_be_looked_at_is_said_and_the_rest_go_on(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An event on INV-1.xml, whose lstat the share answers with EIO: an error names the
    file, the share's error and what to check, and says it is looked at again at the next
    rescan (before, "cannot look at the outbox", as if the whole outbox were out). The
    other bundle hinted in the same turn is sent, and once the share answers again the
    rescan finds INV-1 and sends it — nothing is dropped with the event."""
    from daemon.watching import scan as scan_module

    svc = make_service(unattached="send")
    outbox = tmp_path / "outbox"
    for name in ("INV-1", "INV-2"):
        write(outbox / name / "a.pdf", pdf_bytes())
        write(outbox / f"{name}.xml", ubl_invoice(name))
    real = os.lstat

    def eio_for_inv1(path: Any, *a: Any, **kw: Any) -> os.stat_result:
        if os.path.basename(path) == "INV-1.xml":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real(path, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(scan_module.os, "lstat", eio_for_inv1)
        svc.hint("INV-1.xml")
        svc.hint("INV-2.xml")
        with capture_logs() as said:
            svc.turn()
    [error] = [e for e in said if e["log_level"] == "error"]
    assert error["file"] == "INV-1.xml" and "Input/output error" in error["error"]
    assert "looked at again at the next rescan" in error["event"]
    assert "check that the path exists" in error["error"]  # what to check
    settle_all(svc, clock)
    wait_for(lambda: len(list(tmp_path.glob("sent/*/INV-2--*"))) == 1 or None,
             what="INV-2 sent")
    clock.t += RESCAN
    settle_all(svc, clock)
    wait_for(lambda: len(list(tmp_path.glob("sent/*/INV-1--*"))) == 1 or None,
             what="INV-1 sent after the share answers again")


def test_receipts_queued_while_sent_is_off_its_share_wait_for_it_and_are_read_once_back(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another daemon on the outbox sent three bundles; the rescan's look at sent/ reads
    one receipt in its turn's share and queues the rest. sent/ is then off its share (its
    bare mount point in its place): the queued receipts are not looked for there — no
    line says a receipt cannot be used — and once sent/ is back the daemon learns all
    three as sent, so none of them dropped again would be sent twice."""
    from claimed import make, run_once

    svc = make_service()
    svc.turn()
    other, _ = make(tmp_path, paths={"state_dir": str(tmp_path / "state-other")})
    for name in ("INV-1", "INV-2", "INV-3"):
        write(tmp_path / "outbox" / name / "a.pdf", pdf_bytes())
        write(tmp_path / "outbox" / f"{name}.xml", ubl_invoice(name))
    rows = run_once(other)
    ids = [other.j.get(r).bundle_id or "" for r in rows]
    assert len(ids) == 3
    monkeypatch.setattr(changes_module, "NEWS_TURN", -1.0)  # one receipt a turn
    clock.t += RESCAN
    svc.turn()  # the rescan's look: one read, the rest queued
    assert sum(svc.journal.was_sent(i) for i in ids) == 1 and svc.sent_news.pending
    sent = svc.settings.sent_dir
    sent.rename(tmp_path / "sent-away")
    sent.mkdir()  # the bare mount point
    real = svc.pipeline.finish.mounts.away
    with monkeypatch.context() as m:
        m.setattr(svc.pipeline.finish.mounts, "away",
                  lambda folder: "off its share" if folder == sent else real(folder))
        with capture_logs() as said:
            for _ in range(3):
                svc.turn()
        assert not [e for e in said if e["log_level"] in ("warning", "error")], said
        assert sum(svc.journal.was_sent(i) for i in ids) == 1
    sent.rmdir()
    (tmp_path / "sent-away").rename(sent)
    clock.t += RESCAN
    for _ in range(4):
        svc.turn()
    assert all(svc.journal.was_sent(i) for i in ids)


def test_a_folder_named_like_an_errors_file_costs_no_page_at_a_rescan(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """A folder named `OLD.errors.txt` in the outbox (a clerk's, no bundle's) is no errors
    file: the page never lists it as one, so a rescan that finds it as the start did
    renders no page again (no journal query) — it was taken for an errors file of no
    bundle that had come since the last listing, and the page was written again for it."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(outbox / "OLD.errors.txt" / "notes.txt", b"a clerk's folder\n")
    svc = make_service()
    settle_all(svc, clock)
    page = outbox / svc.settings.share.status_page
    assert "OLD.errors.txt" not in Page(page.read_text()).text.get("refused", "")
    counts.reset()
    rescan_due = svc.timers.due_at(service_module.RESCAN)
    assert rescan_due is not None
    clock.t = rescan_due
    svc.turn()
    clock.t += 3.0  # past the page's pace: a page the rescan asked for is written now
    svc.turn()
    assert counts.sql == []
