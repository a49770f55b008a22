"""Claims left waiting for their work folder (daemon/claiming/stranded.py), ended at a rescan: the
row handed back to the pipeline is the one row that stands for its bundle. Driven with a
real journal, real folders, a pipeline started as the daemon starts one, and the
directory transport."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import quiet_logs, run_once, step  # noqa: E402, F401 - quiet_logs: autouse
from helpers import drop_bundle, looks_fail, pdf_bytes  # noqa: E402

from daemon.configuration.config import Settings  # noqa: E402
from daemon.configuration.config_folders import prepare_folders  # noqa: E402
from daemon.delivery.directory import DirectoryDeliverer  # noqa: E402
from daemon.journal import IN_FLIGHT, LIVE, Journal  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


def _settings(tmp_path: Path, settle_seconds: int = 0) -> Settings:
    (tmp_path / "outbox").mkdir()
    (tmp_path / "target").mkdir()
    return Settings(
        outbox={"path": str(tmp_path / "outbox"), "settle_seconds": settle_seconds,
                "rescan_seconds": 30},
        paths={"state_dir": str(tmp_path / "state")},
        delivery={"transport": "directory", "target": str(tmp_path / "target")})


def _start(s: Settings) -> Pipeline:
    """A start of outboxd on its journal, in the daemon's order: folders prepared, the
    claims it finds recovered (none ready for delivery here), the live rows taken over
    for what the outbox holds."""
    prepare_folders(s)
    p = Pipeline(s, Journal(s.journal_path), DirectoryDeliverer(s.delivery.target or Path()))
    assert p.finish.recover() == []
    p.start(set(list_outbox(s.outbox).candidates))
    return p


def _claim_cut_short(s: Settings) -> int:
    """INV-1 claimed as the loop claims it (its journal row, with the processing folder it
    was recorded in), then a stop before its work folder was made: the bundle is still in
    the outbox."""
    p = _start(s)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    [cand] = list_outbox(s.outbox).candidates.values()
    if s.outbox.settle_seconds:  # first seen a settling period ago
        step(p, cand, 1000.0 - s.outbox.settle_seconds)
    p.hold_claims()
    assert step(p, cand, 1000.0).claimed is None  # held for the end of the turn
    [row] = p._record_claims(p._held or [])
    p.j.close()
    return row


def _standing(p: Pipeline) -> list[tuple[int, str]]:
    """The rows that stand for a bundle: in the outbox, on its way, or sent."""
    return [(r.id, r.state) for r in sorted(p.j.rows(LIVE + IN_FLIGHT + ("sent",)),
                                            key=lambda r: r.id)]


def _bundle_really_gone(s: Settings, row: int) -> Path:
    """The claim's bundle moved into its work folder, then that processing folder removed
    by hand while outboxd was stopped (operations.md's example): the start after makes a
    new processing folder, not the one the claim was recorded in, so the claim waits for
    its work folder, for good. Its work folder's path."""
    j = Journal(s.journal_path)
    work = Path(j.get(row).work_dir or "")
    j.close()
    work.mkdir()
    (s.outbox.path / "INV-1.xml").rename(work / "INV-1.xml")
    (s.outbox.path / "INV-1").rename(work / "INV-1")
    s.processing_dir.rename(s.processing_dir.with_name("removed"))
    return work


def _dropped_again_while_the_claim_waits(tmp_path: Path) -> tuple[Settings, int, Path, Pipeline]:
    """A claim cut short whose bundle is really gone, waiting for a work folder that is
    nowhere (`work`, not there); the clerk has dropped the bundle again, and it is still
    settling in a started pipeline (its own row, live)."""
    s = _settings(tmp_path, settle_seconds=30)
    row = _claim_cut_short(s)
    work = _bundle_really_gone(s, row)
    p = _start(s)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(text_marker="corrected")})
    [cand] = list_outbox(s.outbox).candidates.values()
    assert step(p, cand, 1000.0).claimed is None  # settling, not yet settled
    return s, row, work, p


class TestStrandedClaimEndedAtARescan:
    def test_a_claim_whose_share_comes_back_settles_and_is_sent_as_its_one_row(
            self, tmp_path: Path) -> None:
        """A stop cut a claim short before anything moved; outboxd starts while the share
        is away (an empty folder where it is mounted), so the claim waits, `claiming`.
        The share comes back, the bundle in it as it was: the rescan settles the claim's
        row again and that row goes on, is claimed and sent. It used to be settled in the
        journal only: the pipeline did not know it, gave the bundle a second row and sent
        that, and the first showed `settling` (status, page, STATUS= counts) until the
        next restart."""
        s = _settings(tmp_path)
        row = _claim_cut_short(s)
        away = tmp_path / "away"
        s.outbox.path.rename(away)  # the share is away: an empty folder where it was
        s.outbox.path.mkdir()
        p = _start(s)
        assert (p.j.get(row).state, p.j.get(row).shown_state) == ("claiming", "retrying")
        s.outbox.path.rename(tmp_path / "mountpoint")
        away.rename(s.outbox.path)  # the share is back, nothing of the bundle moved
        assert p.retry_stranded() == []
        assert p.j.get(row).state == "settling"
        assert p.live["INV-1.xml"].id == row
        assert run_once(p, 2000.0) == [row]
        assert _standing(p) == [(row, "sent")]
        assert p.j.counts()["settling"] == 0 and p.j.counts()["sent"] == 1

    def test_the_documented_way_out_ends_the_claim_and_the_bundle_dropped_again_is_sent(
            self, tmp_path: Path) -> None:
        """A claim waits for a work folder that is nowhere (its processing folder removed
        by hand); the clerk drops the bundle again (corrected), which is claimed and waits
        behind the earlier version. The admin makes an empty folder under the work folder's name
        (operations.md): at the next rescan the claim ends as one that did not happen,
        `gone`, the folder removed, and the bundle dropped again is sent. The old row
        went `settling` though its invoice file was in no outbox, shown so until a
        restart."""
        s = _settings(tmp_path)
        row = _claim_cut_short(s)
        work = _bundle_really_gone(s, row)
        p = _start(s)
        assert (p.j.get(row).state, p.j.get(row).shown_state) == ("claiming", "retrying")
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(text_marker="corrected")})
        [cand] = list_outbox(s.outbox).candidates.values()
        again = step(p, cand, 1000.0).claimed
        assert again is not None and again != row
        assert p.finish.attempt(again) is not None  # waits for the earlier claim
        work.mkdir()  # the way out
        assert p.retry_stranded() == []
        r = p.j.get(row)
        assert (r.state, r.work_dir, r.last_error) == ("gone", None, None)
        assert "claim did not happen" in (p.j.last_detail(row) or "")
        assert not work.exists() and "INV-1.xml" not in p.live
        assert p.finish.attempt(again) is None
        assert p.j.get(row).state == "gone" and _standing(p) == [(again, "sent")]
        assert p.j.counts()["settling"] == 0

    def test_a_claim_ended_while_its_bundle_has_a_row_already_leaves_that_row_alone(
            self, tmp_path: Path) -> None:
        """The bundle dropped again is still settling, its row live in the pipeline, when
        the rescan ends the waiting claim (the documented empty folder; or the share back
        with the bundle, stepped on an event before the rescan). One row stands for the
        bundle in the outbox: the live one goes on and is sent, the claim's ends `gone`
        saying which row goes on. Both showed `settling` before, the claim's until a
        restart."""
        s, row, work, p = _dropped_again_while_the_claim_waits(tmp_path)
        live = p.live["INV-1.xml"]
        assert live.id != row and live.state == "settling"
        work.mkdir()  # the way out
        assert p.retry_stranded() == []
        assert p.j.get(row).state == "gone"
        assert f"row {live.id}" in (p.j.last_detail(row) or "")
        assert p.live["INV-1.xml"].id == live.id
        assert run_once(p, 2000.0) == [live.id]
        assert p.j.get(row).state == "gone" and _standing(p) == [(live.id, "sent")]
        assert p.j.counts()["settling"] == 0

    def test_a_claim_whose_work_folder_comes_back_without_the_bundle_ends_gone(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The share holding processing/ goes away in the middle of a claim (the check
        after the move cannot read the bundle): the claim waits for its work folder.
        The bundle turns out to be lost with that folder, and the admin takes
        operations.md's way out: an empty folder under the work folder's name. At the
        next rescan the claim ends `gone` ("claim did not happen"), the folder removed.
        It was put in the pipeline as `settling`, though no invoice file of that name
        was in the outbox: shown so in status, on the page and in STATUS= until a
        restart, and logged as "bundle put back into the outbox"."""
        s = _settings(tmp_path)
        p = _start(s)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        work = s.processing_dir / "INV-1--fixed"
        monkeypatch.setattr("daemon.claiming.claims.work_dir_for", lambda *_: work)
        check = p.assemble_many

        def share_gone_first(jobs: list[Any], st: Settings) -> object:
            work.rename(tmp_path / "away")  # out of sight, and later lost with the share
            return check(jobs, st)

        monkeypatch.setattr(p, "assemble_many", share_gone_first)
        assert step(p, cand, 1000.0).claimed is None
        [row] = p.j.rows(("claiming",))
        work.mkdir()  # the way out
        with capture_logs() as logged:
            assert p.retry_stranded() == []
        r = p.j.get(row.id)
        assert (r.state, r.work_dir, r.last_error) == ("gone", None, None)
        assert "claim did not happen" in (p.j.last_detail(row.id) or "")
        assert not work.exists() and "INV-1.xml" not in p.live
        assert p.j.counts()["settling"] == 0
        assert not any("put back into the outbox" in e["event"] for e in logged)
        [said] = [e for e in logged if e.get("work_dir") == str(work)]
        assert "not in the outbox" in said["event"]

    def test_a_restart_after_the_way_out_leaves_one_row_for_the_bundle_dropped_again(
            self, tmp_path: Path) -> None:
        """A claim waits for a work folder that is nowhere; the clerk drops the bundle
        again, still settling when outboxd stops. The admin makes the empty folder of
        operations.md's way out and restarts outboxd instead of waiting for a rescan: the
        claim ends at the start, with the bundle dropped again in the outbox under its
        name, which has its own row. One row stands for that bundle and is sent; the
        claim's row ends `gone` naming it. Both were taken over as `settling`, and the
        claim's showed so (status, page, STATUS= counts) after the other was sent, until
        the next restart."""
        s, row, work, p = _dropped_again_while_the_claim_waits(tmp_path)
        live = p.live["INV-1.xml"].id
        p.j.close()
        work.mkdir()  # the way out, then a restart
        again = _start(s)
        assert again.j.get(row).state == "gone"
        assert f"row {live}" in (again.j.last_detail(row) or "")
        assert again.live["INV-1.xml"].id == live
        assert [r.id for r in again.j.rows(LIVE)] == [live]
        [cand] = list_outbox(s.outbox).candidates.values()
        step(again, cand, 2000.0)
        assert run_once(again, 2100.0) == [live]
        assert _standing(again) == [(live, "sent")]
        assert again.j.counts()["settling"] == 0

    def test_a_row_handed_back_that_the_pipeline_already_follows_goes_on(
            self, tmp_path: Path) -> None:
        """A settling row handed back to the pipeline that already follows that very row
        under its name (handed back twice: by the undo, then by the rescan's retry):
        it goes on as the one row of its bundle; only another row under the name ends
        it (`gone`, beside that one)."""
        s = _settings(tmp_path)
        p = _start(s)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        row = p.j.create("INV-1.xml", "settling", "claim did not happen")
        p._take_back(p.j.get(row))
        p._take_back(p.j.get(row))
        assert p.j.get(row).state == "settling" and p.live["INV-1.xml"].id == row
        assert _standing(p) == [(row, "settling")]


class TestEndRefusedByTheJournal:
    def test_a_claim_whose_end_beside_the_live_row_is_refused_ends_at_the_next_rescan(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The rescan ends a waiting claim (the documented empty folder) while the bundle
        dropped again has its own live row, but the journal refuses the claim row's
        `gone` (one full disk). Said, not raised: the rescan goes on, and the next one
        ends the row beside the live one, which is sent as the bundle's one row. Raised,
        it ended that rescan, and the claim's row, out of the claims tried again, stayed a
        second `settling` row of the name (status, page) until a restart."""
        s, row, work, p = _dropped_again_while_the_claim_waits(tmp_path)
        live = p.live["INV-1.xml"]
        refused = gone_refused(p, row, monkeypatch, 2)  # at two rescans
        work.mkdir()  # the way out
        said = []
        for _ in refused[:]:
            with capture_logs() as logged:
                assert p.retry_stranded() == []  # said, not raised: the rescan goes on
            assert p.j.get(row).state == "settling"
            said += [e for e in logged if e.get("row") == live.id and e["log_level"] == "error"]
        assert not refused and len(said) == 1  # said once, not at each refused rescan
        assert p.retry_stranded() == []  # the next rescan ends it
        assert p.j.get(row).state == "gone"
        assert f"row {live.id}" in (p.j.last_detail(row) or "")
        assert p.live["INV-1.xml"].id == live.id
        assert run_once(p, 2000.0) == [live.id]
        assert _standing(p) == [(live.id, "sent")] and p.j.counts()["settling"] == 0

    def test_a_refused_end_whose_other_row_took_the_bundle_ends_as_not_happened(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """As above, but before the next rescan the live row was claimed and sent (no row
        of the name live, no invoice file of that name in the outbox): the claim's row
        ends `gone` as a claim that did not happen, never taken back as a bundle in the
        outbox."""
        s, row, work, p = _dropped_again_while_the_claim_waits(tmp_path)
        live = p.live["INV-1.xml"]
        gone_refused(p, row, monkeypatch, 1)
        work.mkdir()  # the way out
        assert p.retry_stranded() == []
        assert run_once(p, 2000.0) == [live.id]
        assert "INV-1.xml" not in p.live
        assert p.retry_stranded() == []
        assert p.j.get(row).state == "gone" and "INV-1.xml" not in p.live
        assert _standing(p) == [(live.id, "sent")] and p.j.counts()["settling"] == 0


class TestEndRefusedAtAStart:
    @staticmethod
    def _start_refusing(s: Settings, monkeypatch: pytest.MonkeyPatch, row: int,
                        refusals: int) -> Pipeline:
        """_start, with the journal refusing `refusals` times to end `row` (one full disk)."""
        prepare_folders(s)
        p = Pipeline(s, Journal(s.journal_path), DirectoryDeliverer(s.delivery.target or Path()))
        assert p.finish.recover() == []
        gone_refused(p, row, monkeypatch, refusals)
        p.start(set(list_outbox(s.outbox).candidates))
        return p

    @pytest.mark.parametrize("refusals", [1, 2])
    def test_a_start_whose_end_of_a_second_row_is_refused_comes_up_and_ends_it_later(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
        """A start finds two live rows for one invoice file (the claim ended at this start
        as one that did not happen, beside the bundle dropped again), and the journal
        refuses the older row's end (one full disk). The daemon comes up all the same and
        says once what it could not tidy; the pipeline follows only the later row, which is
        the one claimed and sent, once; a rescan ends the older row `gone` beside it (the
        second one, for `refusals` 2). The start stopped there before, for systemd to start
        it again."""
        s, row, work, p = _dropped_again_while_the_claim_waits(tmp_path)
        live = p.live["INV-1.xml"].id
        p.j.close()
        work.mkdir()  # the way out, then a restart
        with capture_logs() as logged:
            again = self._start_refusing(s, monkeypatch, row, refusals)
        said = [e for e in logged if e.get("row") == live and e["log_level"] == "error"]
        assert len(said) == 1 and said[0]["invoice_file"] == "INV-1.xml"
        assert again.j.get(row).state == "settling"
        assert again.live["INV-1.xml"].id == live
        [cand] = list_outbox(s.outbox).candidates.values()
        step(again, cand, 2000.0)
        for _ in range(refusals):
            with capture_logs() as logged:
                assert again.retry_stranded() == []
            assert not [e for e in logged if e["log_level"] == "error"]  # said once
        assert again.j.get(row).state == "gone"
        assert f"row {live}" in (again.j.last_detail(row) or "")
        assert run_once(again, 2100.0) == [live]
        assert _standing(again) == [(live, "sent")]
        assert again.j.counts()["settling"] == 0

    def test_a_refused_end_at_a_start_of_a_waiting_row_is_ended_at_a_rescan_too(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The older of two live rows for one name found at a start is `waiting` (not
        settling), and its end is refused: a rescan still ends it, beside the row the
        pipeline follows. Only settling rows were ended so, and a waiting one stayed a
        second row of its name until a restart."""
        s = _settings(tmp_path)
        prepare_folders(s)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        j = Journal(s.journal_path)
        older = j.create("INV-1.xml", "waiting", "", durable=False)
        later = j.create("INV-1.xml", "settling", "", durable=False)
        j.close()
        p = self._start_refusing(s, monkeypatch, older, 1)
        assert p.j.get(older).state == "waiting" and p.live["INV-1.xml"].id == later
        assert p.retry_stranded() == []
        assert p.j.get(older).state == "gone" and p.live["INV-1.xml"].id == later
        assert run_once(p, 2000.0) == [later]
        assert _standing(p) == [(later, "sent")]


def test_a_claim_taken_back_before_an_error_at_its_rescan_stays_the_bundles_one_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim waiting for its work folder (its share gone in the middle of the claim):
    the rescan that finds the folder again moves the bundle back, settles the row again
    and hands it back to the pipeline, then an error no claim expects ends that retry.
    The row, settling and followed, stays the bundle's one row and is the one sent: the
    error's handling (as a claim cut short) leaves a row no longer `claiming` followed —
    dropped, the next look gave the bundle a second row, and the first showed `settling`
    until a restart."""
    s = _settings(tmp_path)
    p = _start(s)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    [cand] = list_outbox(s.outbox).candidates.values()
    work = s.processing_dir / "INV-1--fixed"
    with monkeypatch.context() as m:
        m.setattr("daemon.claiming.claims.work_dir_for", lambda *_: work)
        check = p.assemble_many

        def share_gone_first(jobs: list[Any], st: Settings) -> object:
            work.rename(tmp_path / "away")  # out of sight
            return check(jobs, st)

        m.setattr(p, "assemble_many", share_gone_first)
        assert step(p, cand, 1000.0).claimed is None
    [row] = [r.id for r in p.j.rows(("claiming",))]
    (tmp_path / "away").rename(work)  # the share is back
    real_get = p.j.get
    settled_gets: list[int] = []

    def failing_once_handed_back(row_id: int) -> Any:
        got = real_get(row_id)
        if row_id == row and got.state == "settling":
            settled_gets.append(row_id)
            if len(settled_gets) == 2:  # the first is the hand-back's own
                raise RuntimeError("a fault nobody foresaw")
        return got

    with monkeypatch.context() as m:
        m.setattr(p.j, "get", failing_once_handed_back)
        assert p.retry_stranded() == []
    assert len(settled_gets) >= 2
    assert p.j.get(row).state == "settling" and p.live["INV-1.xml"].id == row
    assert run_once(p, 2000.0) == [row]
    assert _standing(p) == [(row, "sent")] and p.j.counts()["settling"] == 0


@pytest.mark.parametrize("state", ["waiting", "held"])
def test_a_second_waiting_or_held_row_ended_at_a_start_says_so_not_a_claim(
        tmp_path: Path, state: str) -> None:
    """A start finds two live rows for one invoice file, the older `waiting` or `held`:
    it ends `gone` beside the later one, and its detail (what `outboxd history` shows)
    says it was a second row of the name, ended beside the row that goes on. No claim
    was made from it: "claim did not happen" was not true."""
    s = _settings(tmp_path)
    prepare_folders(s)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    j = Journal(s.journal_path)
    older = j.create("INV-1.xml", state, "", durable=False)
    later = j.create("INV-1.xml", "settling", "", durable=False)
    j.close()
    p = _start(s)
    assert p.j.get(older).state == "gone" and p.live["INV-1.xml"].id == later
    detail = p.j.last_detail(older) or ""
    assert "claim" not in detail
    assert detail == (f"a second row of this invoice file ({state}); the bundle now in the "
                      f"outbox under this name goes on as row {later}")


def test_a_refused_end_of_a_waiting_row_whose_other_row_took_the_bundle_says_second_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The older of two live rows found at a start is `waiting` and its end is refused;
    the later row is then claimed and sent (no invoice file of the name left): the
    rescan ends the older row `gone` saying it was a second row of the name, not that a
    claim did not happen — none was made from it."""
    from daemon.claiming.recovery import NOT_HAPPENED_GONE
    s = _settings(tmp_path)
    prepare_folders(s)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    j = Journal(s.journal_path)
    older = j.create("INV-1.xml", "waiting", "", durable=False)
    later = j.create("INV-1.xml", "settling", "", durable=False)
    j.close()
    p = TestEndRefusedAtAStart._start_refusing(s, monkeypatch, older, 1)
    assert p.j.get(older).state == "waiting"
    assert run_once(p, 2000.0) == [later] and p.j.get(later).state == "sent"
    assert p.retry_stranded() == []
    assert p.j.get(older).state == "gone"
    detail = p.j.last_detail(older)
    assert detail != NOT_HAPPENED_GONE
    assert detail == ("a second row of this invoice file (waiting); the invoice file is no "
                      "longer in the outbox")


def gone_refused(p: Pipeline, row: int, monkeypatch: pytest.MonkeyPatch,
                 times: int) -> list[int]:
    """The journal refuses the next `times` writes ending `row` `gone` (a full disk); the
    list empties as they are refused."""
    from daemon.errors import JournalError
    real_transition = p.j.transition
    refused = [1] * times

    def full(row_id: int, state: str, *args: Any, **kwargs: Any) -> Any:
        if row_id == row and state == "gone" and refused:
            refused.pop()
            raise JournalError("cannot write the journal: disk full")
        return real_transition(row_id, state, *args, **kwargs)

    monkeypatch.setattr(p.j, "transition", full)
    return refused


class TestAnInvoiceFileTheShareCannotLookAt:
    """A claim undone, its bundle back in the outbox, whose look at the invoice file
    fails with EIO (a share half away): the row settles and the pipeline follows it (its
    next look at the files decides), never ended `gone` for that look."""

    @staticmethod
    def _undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Pipeline, int]:
        s = _settings(tmp_path)
        p = _start(s)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32,
                         work_dir=str(s.processing_dir / "INV-1--abababababab--x"))
        looks_fail(monkeypatch, s.outbox.path / "INV-1.xml")
        return p, row

    def test_a_claim_undone_settles_again(self, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """Its files just put back: the row settles, followed by the pipeline. Ended
        `gone`, it said the invoice file was no longer in the outbox, where it lay."""
        p, row = self._undone(tmp_path, monkeypatch)
        p._settle_again(row, "INV-1.xml", "claim failed")
        assert p.j.get(row).state == "settling" and p.live["INV-1.xml"].id == row

    def test_a_row_handed_back_is_followed(self, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
        """A row settling again handed back to the pipeline (its read refused before):
        followed, not ended `gone`."""
        p, row = self._undone(tmp_path, monkeypatch)
        p.j.transition(row, "settling", "claim failed", work_dir=None)
        p._take_back(p.j.get(row))
        assert p.j.get(row).state == "settling" and p.live["INV-1.xml"].id == row
