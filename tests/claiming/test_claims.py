"""Claims (daemon/claiming/claims.py): a bundle the loop decided to send is recorded, moved into
processing and checked again, or put back when the move cannot be made; driven step by
step with a real journal, real files and the directory transport."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import claims_refused_first, folders, make, quiet_logs, step  # noqa: E402, F401 - quiet_logs: autouse
from helpers import drop_bundle, looks_fail, pdf_bytes, write  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.watching.scan import Candidate, list_outbox  # noqa: E402


class TestClaimFailure:
    @pytest.mark.parametrize("start", [0.0, 1e9])
    def test_a_claim_that_cannot_move_files_leaves_them_and_retries_later(
            self, tmp_path: Path, start: float) -> None:
        """If the processing folder cannot be used, the bundle stays in the outbox, the
        journal says settling with the error, and the claim is retried once a rescan period
        has passed on the loop's clock, not before and not on every step, whatever that
        clock reads (0 or 10⁹: nothing depends on the host's uptime)."""
        p, s = make(tmp_path)
        processing = s.processing_dir
        processing.rmdir()
        write(processing, b"a file where the processing folder should be")
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        nxt = step(p, cand, start)
        assert nxt.claimed is None and nxt.at == start + s.outbox.rescan_seconds
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        [row] = p.j.rows(("settling",))
        assert "cannot move into processing" in (row.last_error or "")
        assert p.j.rows(("claiming",)) == []

        processing.unlink()
        processing.mkdir()
        assert step(p, cand, start + 1).at == start + s.outbox.rescan_seconds  # still paused
        row_id = step(p, cand, start + s.outbox.rescan_seconds).claimed
        assert row_id is not None and p.finish.attempt(row_id) is None
        assert p.j.get(row_id).state == "sent"

    def test_no_claim_is_made_while_the_processing_folders_share_is_off_its_mount(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The share holding the processing folder unmounted (the mounts say it is away):
        no work folder is made on the bare mount point, where the remount would hide the
        bundle; the bundle stays in the outbox, its row settling with why, and the claim
        is tried again a rescan period later."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        away = "is no longer on the file system it was on at the start (its share unmounted?)"
        monkeypatch.setattr(p.finish.mounts, "away",
                            lambda folder: away if folder == s.processing_dir else None)
        nxt = step(p, cand, 0.0)
        assert nxt.claimed is None and nxt.at == s.outbox.rescan_seconds
        assert list(s.processing_dir.iterdir()) == []
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        [row] = p.j.rows(("settling",))
        assert "its share unmounted" in (row.last_error or "")

    def test_a_claim_whose_syncs_fail_puts_the_bundle_back_and_tries_again_later(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The renames went through but the syncs that make them durable failed (EIO from
        the share): the claim is undone as a failed move — the bundle is back in the
        outbox, whole, its row settling with why and naming no work folder, no work folder
        is left — and it is claimed and sent a rescan period later. Taken for "nothing
        moved", the row settled while the bundle lay in a work folder no row names."""
        from daemon.claiming import claims as claims_module
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        real_sync = claims_module.sync_claimed
        failures = [1]

        def failing_once(*args: Any) -> None:
            if failures[0]:
                failures[0] -= 1
                raise OSError(errno.EIO, "Input/output error", str(s.processing_dir))
            real_sync(*args)

        monkeypatch.setattr(claims_module, "sync_claimed", failing_once)
        nxt = step(p, cand, 0.0)
        assert nxt.claimed is None and nxt.at == s.outbox.rescan_seconds
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        assert list(s.processing_dir.iterdir()) == []
        [row] = p.j.rows(("settling",))
        assert row.work_dir is None and "Input/output error" in (row.last_error or "")

        row_id = step(p, cand, s.outbox.rescan_seconds).claimed
        assert row_id == row.id and p.finish.attempt(row_id) is None
        assert p.j.get(row_id).state == "sent"

    def test_a_folder_outboxd_may_not_move_is_said_with_the_fix(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A sidecar that outboxd's user may not move (no write access to the folder
        itself, as when another user copied it in; the test runs as root, so the
        refusal is put in the move's place): the bundle stays in the outbox, and the
        journal's error, which status and the page on the share show, names the folder,
        says permission denied and what access is needed, without the server's paths."""
        from daemon.claiming import claims
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        sidecar = s.outbox.path / "INV-1"

        def refused(cand: Candidate, work: Path, *_: object, **__: object) -> None:
            work.mkdir()  # as claim() does before its first rename
            raise PermissionError(13, "Permission denied", str(sidecar),
                                  str(s.processing_dir / "INV-1"))

        monkeypatch.setattr(claims, "claim", refused)
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, 0.0).claimed is None
        assert (sidecar / "a.pdf").exists()
        [row] = p.j.rows(("settling",))
        error = row.last_error or ""
        assert error.startswith("cannot move INV-1 into processing: permission denied — ")
        assert "write access to the outbox and to the bundle's folders themselves" in error
        assert str(s.outbox.path) not in error and "Errno" not in error

    def test_a_claim_that_keeps_failing_is_said_once_per_cause_and_once_when_it_works(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A share that stays full for hours fails the claim at every rescan, each time
        with another work folder in the line: "cannot claim bundle" is logged (an error)
        at the first try only, again when the cause changes (full → permission denied),
        and once at info when a claim works ("bundle claimed now"); the journal's error
        (status, the page) stays each try's. Injected here (the work folder's mkdir
        refused); tests/faults/test_full_share.py fills a real ext4."""
        import errno

        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        claims_refused_first(monkeypatch, [errno.ENOSPC, errno.ENOSPC, errno.ENOSPC,
                                           errno.EACCES, errno.EACCES])
        period = s.outbox.rescan_seconds
        with capture_logs() as logs:
            for turn in range(5):
                assert step(p, cand, turn * period).claimed is None
                [row] = p.j.rows(("settling",))
                assert os.strerror(errno.ENOSPC if turn < 3 else errno.EACCES).lower() in (
                    row.last_error or "").lower()
            row_id = step(p, cand, 5 * period).claimed
        assert row_id is not None
        said = [(e["event"], e["log_level"], e.get("error", "")) for e in logs
                if "claim" in e["event"] and e["event"] != "bundle claimed"]
        assert [(event, level) for event, level, _ in said] == [
            ("cannot claim bundle; will try again", "error"),
            ("cannot claim bundle; will try again", "error"),
            ("bundle claimed now; its claim had failed before", "info")], said
        assert "No space left on device" in said[0][2] and "free space" in said[0][2]
        assert "permission denied" in said[1][2] and "permission denied" in said[2][2]

    def test_a_claim_undone_for_a_folder_it_may_not_move_is_retried_without_a_read(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The invoice file moved into processing and back, as a sidecar outboxd may not
        move is refused (another user's folder; the test runs as root, so the refusal
        is put in the rename's place): the renames change the change times of what they
        moved, and nothing else. The retry a rescan period later claims the bundle as it
        was read, without reading it again; each retry of a claim refused for hours
        read the whole bundle once more. A file changed meanwhile is read again."""
        import os

        from daemon.claiming import claim as claim_module
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)})
        sidecar = s.outbox.path / "INV-1"
        rename = os.rename
        refusals = [2]

        def refusing(src: object, dst: object, *args: object, **kw: object) -> None:
            if Path(str(src)) == sidecar and refusals[0] > 0:
                refusals[0] -= 1
                raise PermissionError(13, "Permission denied", str(src), str(dst))
            rename(src, dst, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(claim_module.os, "rename", refusing)
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        invoice_ctime = (s.outbox.path / "INV-1.xml").stat().st_ctime_ns
        first = step(p, cand, 0.0)
        assert first.claimed is None and first.at == s.outbox.rescan_seconds
        assert (s.outbox.path / "INV-1.xml").stat().st_ctime_ns != invoice_ctime  # moved back

        again = p.step(cand, s.outbox.rescan_seconds)
        assert again.read is None and again.claimed is None and refusals == [0]
        edited = pdf_bytes(3)
        (sidecar / "b.pdf").write_bytes(edited)  # a change: read again
        changed = p.step(cand, 2 * s.outbox.rescan_seconds)
        assert changed.read is not None
        p.took_read(cand.invoice.name, changed.read, evaluate(cand, p.s))
        row_id = p.step(cand, 2 * s.outbox.rescan_seconds).claimed
        assert row_id is not None and p.finish.attempt(row_id) is None
        [sent] = folders(s.sent_dir)
        assert (sent / "INV-1" / "b.pdf").read_bytes() == edited

    def test_a_link_put_in_place_of_the_outboxd_folder_is_never_claimed_through(
            self, tmp_path: Path) -> None:
        """.outboxd lies in the outbox, where anyone on the share may replace it with a
        link: no bundle is moved through it (it stays in the outbox, with the link named
        in the journal), nothing is written where it leads, and claims resume once the
        link is gone."""
        p, s = make(tmp_path)
        dot = s.processing_dir.parent
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        s.processing_dir.rmdir()
        dot.rmdir()
        dot.symlink_to(elsewhere)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, 0.0).claimed is None
        assert (s.outbox.path / "INV-1.xml").exists() and list(elsewhere.iterdir()) == []
        [row] = p.j.rows(("settling",))
        assert str(dot) in (row.last_error or "") and "symbolic link" in (row.last_error or "")

        dot.unlink()
        row_id = step(p, cand, s.outbox.rescan_seconds).claimed
        assert row_id is not None and p.finish.attempt(row_id) is None
        assert p.j.get(row_id).state == "sent"
        assert list(elsewhere.iterdir()) == []


    def test_a_work_folder_swapped_for_a_dangling_link_during_the_claim_is_reported_stuck(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The new work folder moved aside and replaced by a link that leads nowhere just
        before the invoice file is renamed into it: the bundle stays together in the
        folder claimed, and its row says quarantining with the link named — not
        settling with no work folder, as though nothing had been claimed, while its
        files lay in a folder no row knows. The log says so, once, at error, naming the
        link; never "cannot claim bundle; will try again", which it will not; and its
        reason names the work folder, not new files in the outbox."""
        import io

        from swaps import swap_when_opened

        from daemon import logs
        from daemon.configuration.config import LogConfig
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        work = s.processing_dir / "INV-1--fixed"
        monkeypatch.setattr("daemon.claiming.claims.work_dir_for", lambda *_: work)
        out = io.StringIO()
        logs.configure(LogConfig(format="json"), out)
        with swap_when_opened("INV-1.xml", work, tmp_path / "nowhere",
                              renamed=True) as swapped:
            assert step(p, cand, 0.0).claimed is not None
        logged = [json.loads(line) for line in out.getvalue().splitlines()]  # each line JSON
        [real] = swapped
        assert sorted(os.listdir(real)) == ["INV-1", "INV-1.xml"]
        assert not (s.outbox.path / "INV-1.xml").exists()
        [row] = p.j.rows(("quarantining",))
        assert row.work_dir == str(work)
        assert str(work) in (row.last_error or "") and "symbolic link" in (row.last_error or "")
        [reason] = row.reasons
        assert reason["code"] == "processing-damaged" and work.name in reason["message"]
        events = [e["event"] for e in logged]
        assert not any("will try again" in e or "settling again" in e for e in events), events
        [said] = [e for e in logged if e["event"].startswith("work folder")]
        assert said["event"] == "work folder is a symbolic link; the bundle is reported stuck"
        assert said["level"] == "error" and said["work_dir"] == str(work)
        assert said["invoice_file"] == "INV-1.xml"

    def test_a_new_work_folder_swapped_for_a_link_before_anything_moved_leaves_the_bundle_to_settle(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The work folder just made is swapped for a link before outboxd holds it: no
        file left the outbox, so the row settles again with the error and the claim is
        retried later — not quarantined as stuck (its quarantine would retry for ever on
        a link while the bundle lies in the outbox). The link is left alone."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        work = s.processing_dir / "INV-1--fixed"
        monkeypatch.setattr("daemon.claiming.claims.work_dir_for", lambda *_: work)
        real_mkdir = os.mkdir

        def made_then_swapped(path: Any, *args: Any, **kwargs: Any) -> None:
            real_mkdir(path, *args, **kwargs)
            if path == work.name:
                work.rename(tmp_path / "moved-aside")
                work.symlink_to(tmp_path / "moved-aside")

        monkeypatch.setattr(os, "mkdir", made_then_swapped)
        nxt = step(p, cand, 0.0)
        assert nxt.claimed is None and nxt.at == s.outbox.rescan_seconds
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        [row] = p.j.rows(("settling",))
        assert "symbolic link" in (row.last_error or "") and row.work_dir is None
        assert p.j.rows(("quarantining", "quarantined")) == []
        assert work.is_symlink()

    @pytest.mark.parametrize("share_away", [True, False], ids=["share-away", "taken"])
    def test_an_invoice_file_gone_under_the_claim_is_another_daemons_only_if_the_share_stayed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share_away: bool) -> None:
        """The invoice file is gone when the claim renames it (ENOENT). With the share
        away (an unmount between the claim's record and its move: the processing folder
        found is not the one recorded), nothing moved: the log says the outbox went away
        and the row ends as a claim that did not happen (the bundle gets a row of its own
        when the share is back) — the soak saw such bundles logged "taken by another
        daemon", their rows ended as claimed by one. With the processing folder the same
        (another daemon took the file), that is what happened, and is said so."""
        from daemon.claiming import claims as claims_module
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        real_claim = claims_module.claim

        def file_gone_then_claim(c: Candidate, *args: object, **kwargs: object) -> Candidate:
            if share_away:  # the mount point's own (new, empty) folder where processing was
                s.processing_dir.rename(tmp_path / "processing-of-the-share")
                s.processing_dir.mkdir()
            (s.outbox.path / "INV-1.xml").rename(tmp_path / "INV-1.xml")
            return real_claim(c, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(claims_module, "claim", file_gone_then_claim)
        with capture_logs() as logs:
            nxt = step(p, cand, 0.0)
        events = [e["event"] for e in logs]
        [row] = p.j.rows(("gone",))
        assert nxt.claimed is None
        if share_away:
            # The invoice file is not in the outbox's place (the mount point's): the claim
            # did not happen; the bundle gets a row of its own when the share is back.
            assert "claim did not happen" in (p.j.last_detail(row.id) or "")
            [failed] = [e for e in logs if e["event"] == "cannot claim bundle; will try again"]
            assert "the outbox went away" in failed["error"]
            assert "bundle taken by another daemon" not in events
            assert nxt.at == s.outbox.rescan_seconds
        else:
            assert p.j.last_detail(row.id) == "claimed by another daemon"
            assert "bundle taken by another daemon" in events
            assert row.work_dir is None  # its folder, made for nothing, removed again

    def test_an_invoice_file_taken_while_a_removed_processing_folder_is_made_again_is_anothers(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The processing folder was removed by hand (the claim makes it again), so the
        claim's record names no processing folder, and another daemon takes the invoice
        file before our rename: nothing tells of a share gone away, so the row ends as
        claimed by another daemon — not as a failed claim retried for a bundle that is
        no longer ours to send."""
        from daemon.claiming import claims as claims_module
        p, s = make(tmp_path)
        s.processing_dir.rmdir()
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        real_claim = claims_module.claim

        def taken_then_claim(c: Candidate, *args: object, **kwargs: object) -> Candidate:
            (s.outbox.path / "INV-1.xml").rename(tmp_path / "INV-1.xml")
            return real_claim(c, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(claims_module, "claim", taken_then_claim)
        with capture_logs() as logs:
            nxt = step(p, cand, 0.0)
        [row] = p.j.rows(("gone",))
        assert nxt.claimed is None and row.claimed_in is None
        assert p.j.last_detail(row.id) == "claimed by another daemon"
        assert "bundle taken by another daemon" in [e["event"] for e in logs]
        assert list(s.processing_dir.iterdir()) == []

    def test_a_work_folder_swapped_for_a_link_before_the_check_is_logged_as_stuck(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The work folder swapped for a link after the bundle was moved into it and
        before the check by hashes: the check cannot match it again, and the bundle
        cannot go back (nothing is moved through the link), so it is reported stuck
        (quarantining, the link named). The log says that, at error, naming the link —
        not "bundle changed while being claimed; settling again", which it does not."""
        from swaps import swap_for_link
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        work = s.processing_dir / "INV-1--fixed"
        monkeypatch.setattr("daemon.claiming.claims.work_dir_for", lambda *_: work)
        outside = tmp_path / "outside"
        outside.mkdir()
        check = p.assemble_many
        real: list[Path] = []

        def swapped_first(jobs: list[tuple[Candidate, Bundle]], st: Settings) -> object:
            real.append(swap_for_link(work, outside))
            return check(jobs, st)

        monkeypatch.setattr(p, "assemble_many", swapped_first)
        with capture_logs() as logged:
            assert step(p, cand, 0.0).claimed is not None
        assert sorted(os.listdir(real[0])) == ["INV-1", "INV-1.xml"]
        assert list(outside.iterdir()) == [] and not (s.outbox.path / "INV-1.xml").exists()
        [row] = p.j.rows(("quarantining",))
        assert str(work) in (row.last_error or "") and "symbolic link" in (row.last_error or "")
        events = [e["event"] for e in logged]
        assert not any("settling again" in e or "will try again" in e for e in events), events
        [said] = [e for e in logged if e["event"].startswith("work folder")]
        assert said["event"] == "work folder is a symbolic link; the bundle is reported stuck"
        assert said["log_level"] == "error" and said["work_dir"] == str(work)


class TestUndoneClaim:
    def test_a_file_that_reappears_during_an_undone_claim_is_not_replaced(
            self, tmp_path: Path) -> None:
        """When a claim must be undone but a new file with the same name arrived meanwhile,
        the new file stays in the outbox and ours is quarantined beside it, not lost."""
        from daemon.claiming.claim import claim, work_dir_for
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()}, b"<Inv>old</Inv>")
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        work = work_dir_for(s.processing_dir, "INV-1", "ab" * 32)
        row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32, work_dir=str(work))
        claim(cand, work, with_marker=False)
        write(s.outbox.path / "INV-1.xml", b"<Inv>new</Inv>")  # the ERP drops a new version
        p._undo_claim(cand, row, work, "changed while being claimed", p.log)
        assert (s.outbox.path / "INV-1.xml").read_bytes() == b"<Inv>new</Inv>"
        [q] = folders(s.quarantine_dir)
        assert (q / "INV-1.xml").read_bytes() == b"<Inv>old</Inv>"
        assert (q / "INV-1" / "a.pdf").exists()  # its sidecar stays with it
        assert not (s.outbox.path / "INV-1").exists()
        assert json.loads((q / "reason.json").read_text())["reasons"][0]["code"] == \
            "changed-during-claim"


    def test_an_undone_claim_whose_emptied_work_folder_cannot_be_removed_settles_again(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every file went back into the outbox, but a file dropped into the work folder
        kept it from being removed: the row settles again (not quarantined: the bundle is
        in the outbox, a quarantine would have nothing) and the leftover is logged."""

        from daemon.claiming import claim as claim_module
        from daemon.claiming.claim import LEFTOVER
        p, s, cand, work, row = claimed_row(tmp_path)
        real_fsync = claim_module.fsync_dir

        def dropped_in_then_fsync(folder: Path) -> None:
            write(work / "late.pdf", b"dropped in")
            real_fsync(folder)

        monkeypatch.setattr(claim_module, "fsync_dir", dropped_in_then_fsync)
        with capture_logs() as logged:
            assert p._undo_claim(cand, row, work, "changed while being claimed", p.log) is None
        got = p.j.get(row)
        assert got.state == "settling" and got.work_dir is None
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        assert folders(s.quarantine_dir) == []
        assert sorted(x.name for x in work.iterdir()) == [LEFTOVER, "late.pdf"]
        [said] = [e for e in logged if e["event"].startswith("bundle put back")]
        assert said["work_dir"] == str(work)

    @pytest.mark.parametrize("late_file", [False, True])
    def test_a_claim_undone_while_its_work_folder_is_away_waits_for_it_and_then_goes_back(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late_file: bool) -> None:
        """The share holding processing/ goes away between the claim's renames and the
        check by hashes (soak: `umount -l` of the outbox): the check cannot read the
        bundle, and the undo cannot see the work folder. Nothing is back in the outbox,
        so the row stays `claiming` and says why (not "settling", then "gone", with the
        bundle left in a folder no row names); once the folder is there again, the
        undo at a rescan puts the bundle back into the outbox to settle again, once: a file
        dropped into the work folder as it is emptied (`late_file`) keeps it, marked as a
        leftover, and later rescans undo nothing again (the bundle back in the outbox
        would have the leftover taken for a same-named newcomer's rival and quarantined)."""
        p, s, work, away, logged = claimed_as_the_share_went_away(tmp_path, monkeypatch)
        [row] = p.j.rows(("claiming",))
        assert row.work_dir == str(work) and "is not there" in (row.last_error or "")
        assert not (s.outbox.path / "INV-1.xml").exists()
        assert sorted(x.name for x in away.iterdir()) == ["INV-1", "INV-1.xml"]
        assert any(e["event"].startswith("claim cannot be undone") for e in logged)
        assert p.retry_stranded() == [] and p.j.get(row.id).state == "claiming"
        away.rename(work)  # the share is back
        if late_file:
            from daemon.claiming import claim as claim_module
            real_fsync = claim_module.fsync_dir

            def dropped_in_then_fsync(folder: Path) -> None:
                write(work / "late.pdf", b"dropped in")
                real_fsync(folder)

            monkeypatch.setattr(claim_module, "fsync_dir", dropped_in_then_fsync)
        assert p.retry_stranded() == []
        if late_file:
            monkeypatch.undo()
            assert p.retry_stranded() == []
            assert sorted(x.name for x in work.iterdir()) == [".outboxd-put-back", "late.pdf"]
        back = p.j.get(row.id)
        assert back.state == "settling" and back.work_dir is None and back.last_error is None
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        assert work.exists() == late_file and folders(s.quarantine_dir) == []

    def test_a_stranded_claim_whose_undo_the_journal_refuses_is_sent_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim stranded while its work folder was out of sight; the share is back, and
        the rescan's undo puts the bundle back into the outbox, but the journal refuses
        the row's `settling` (one full disk). The rescan goes on, and the claim is
        finished at the next one as a crash's is; meanwhile its invoice file is not
        decided on. Before, the error ended the rescan, the claim was no longer retried,
        and the bundle back in the outbox was quarantined as a duplicate of itself."""
        p, s, work, away, _ = claimed_as_the_share_went_away(tmp_path, monkeypatch)
        monkeypatch.undo()  # the claim's own stand-ins: the check by hashes reads again
        [row] = p.j.rows(("claiming",))
        away.rename(work)  # the share is back
        settling_refused(p, monkeypatch)
        assert p.retry_stranded() == []  # said, not raised: the rescan goes on
        assert (s.outbox.path / "INV-1.xml").exists()
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        period = s.outbox.rescan_seconds
        sent: list[int] = []
        for t in (1.0, period / 2, period + 1, 2 * period + 1):
            nxt = step(p, cand, t)
            sent += [nxt.claimed] if nxt.claimed is not None else []
            sent += p.retry_stranded()  # each rescan's
        for row_id in sent:
            assert p.finish.attempt(row_id) is None
        assert folders(s.quarantine_dir) == [] and len(folders(s.sent_dir)) == 1
        assert p.j.rows(("claiming",)) == []

    def test_a_stranded_claim_whose_quarantine_must_wait_is_handed_to_the_workers(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim stranded while its work folder was out of sight, and meanwhile a new
        INV-1.xml dropped into the outbox: once the folder is back, the undo cannot put
        the bundle back, so it is quarantined beside the newcomer; with quarantine/ off
        its share that move waits, and the row is handed to the delivery workers, whose
        back-off tries the move again (left out, it waited in `quarantining` until a
        restart)."""
        p, s, work, away, _ = claimed_as_the_share_went_away(tmp_path, monkeypatch)
        [row] = p.j.rows(("claiming",))
        write(s.outbox.path / "INV-1.xml", b"<Inv>new</Inv>")
        monkeypatch.setattr(p.finish.mounts, "away", lambda folder: (
            "is no longer on the file system it was on at the start"
            if folder == s.quarantine_dir else None))
        away.rename(work)  # the share is back
        assert p.retry_stranded() == [row.id]
        assert p.j.get(row.id).state == "quarantining"
        assert sorted(x.name for x in work.iterdir()) == ["INV-1", "INV-1.xml"]
        assert (s.outbox.path / "INV-1.xml").read_bytes() == b"<Inv>new</Inv>"

    def test_an_undo_whose_renames_back_fail_half_way_keeps_the_row_and_is_retried(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The undo of a claim moves the sidecar back, then the share refuses the rename of
        the invoice file (EIO). What did not go back is still in the work folder: the row
        stays `claiming` naming it, says why (retrying; written and said once, not at each
        rescan that is refused again), and the next rescan's retry puts the rest back; the
        bundle settles again, every file in the outbox. Raised instead, the row stayed
        `claiming` unexplained and nothing tried again until a restart."""
        from daemon.claiming import claim as claim_module
        p, s, cand, work, row = claimed_row(tmp_path)
        real = claim_module.rename_noreplace

        def invoice_refused(src: Path, dst: Path) -> None:
            if src.name == "INV-1.xml":
                raise OSError(5, "Input/output error", str(src))
            real(src, dst)

        monkeypatch.setattr(claim_module, "rename_noreplace", invoice_refused)
        assert p._undo_claim(cand, row, work, "changed while being claimed", p.log) is not None
        r = p.j.get(row)
        assert (r.state, r.work_dir, r.shown_state) == ("claiming", str(work), "retrying")
        assert "cannot move the bundle back" in (r.last_error or "")
        assert "Input/output error" in (r.last_error or "")
        assert (work / "INV-1.xml").exists() and (s.outbox.path / "INV-1" / "a.pdf").exists()
        changes = p.j.changes
        with capture_logs() as logged:
            assert p.retry_stranded() == []  # still refused: the same why, not said again
        assert p.j.changes == changes and p.j.get(row).last_error == r.last_error
        assert not any(e["event"].startswith("claim cannot be undone") for e in logged)

        monkeypatch.setattr(claim_module, "rename_noreplace", real)  # the share is back
        assert p.retry_stranded() == []
        r = p.j.get(row)
        assert (r.state, r.work_dir, r.last_error) == ("settling", None, None)
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists() and not work.exists()


def claimed_row(tmp_path: Path) -> tuple[Pipeline, Settings, Candidate, Path, int]:
    """A bundle INV-1 with one PDF claimed into its work folder, its row `claiming`: what
    an undo starts from."""
    from daemon.claiming.claim import claim, work_dir_for
    p, s = make(tmp_path)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    cand = next(iter(list_outbox(s.outbox).candidates.values()))
    work = work_dir_for(s.processing_dir, "INV-1", "ab" * 32)
    row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32, work_dir=str(work))
    claim(cand, work, with_marker=False)
    return p, s, cand, work, row


E_INVOICE = b'channel = "e-invoice"\n'
ORIGINAL_PRINT = b'channel = "original-print"\n'


class TestChangedWhileClaimed:
    """What the bundle id does not cover but decides what is validated and sent
    (attachments.toml, what else lies in the sidecar) changed after the bundle was read
    and before its claim: the check after the claim puts it back to settle, it is read
    again and goes (or not) as it now is, never as it was validated."""

    @pytest.mark.parametrize(("notes", "files", "change", "outcome"), [
        # The channel: sent as original-print, not validated and sent as e-invoice.
        ("attachments.toml", {"a.pdf": pdf_bytes()}, ORIGINAL_PRINT, "sent: original-print"),
        # The same in the invoice's subfolder (either form of a sidecar is accepted).
        ("INV-1/attachments.toml", {"INV-1/a.pdf": pdf_bytes()}, ORIGINAL_PRINT,
         "sent: original-print"),
        # A CSV is fine for e-invoice; original print takes PDF only.
        ("attachments.toml", {"hours.csv": b"day;hours\nmon;8\n"}, ORIGINAL_PRINT,
         "quarantined: type-not-allowed"),
        # A notes file broken meanwhile: its error, not the notes as they were.
        ("attachments.toml", {"a.pdf": pdf_bytes()}, b'channel = "e-invoice"\nchanel = "x"\n',
         "quarantined: attachments-toml-invalid"),
    ], ids=["channel", "channel-in-the-invoice-subfolder", "channel-refuses-an-attachment",
            "notes-broken"])
    def test_a_notes_file_changed_before_the_claim_is_read_again(
            self, tmp_path: Path, notes: str, files: dict[str, bytes], change: bytes,
            outcome: str) -> None:
        """attachments.toml said e-invoice when the bundle was read and says otherwise at
        its claim (claims are made at the end of the loop's turn): the bundle goes back to
        the outbox, settling ("changed while being claimed"), nothing delivered; read
        again, it is sent on the channel the file now names, or quarantined for what the
        file now makes wrong."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {**files, notes: E_INVOICE})
        path = s.outbox.path / "INV-1" / notes
        row_id = self._changed_during_claim(p, lambda: path.write_bytes(change))
        assert p.j.last_detail(row_id) == "changed while being claimed"
        end, what = outcome.split(": ")
        assert self._read_again_ends(p, s, row_id) == (end, what)

    def test_a_link_put_into_the_sidecar_before_the_claim_is_read_again(
            self, tmp_path: Path) -> None:
        """A symbolic link is no attachment (the bundle id does not change) but an error:
        one that came after the bundle was read is seen at its claim, and the bundle is
        quarantined for it instead of sent."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        link = s.outbox.path / "INV-1" / "b.pdf"
        row_id = self._changed_during_claim(p, lambda: link.symlink_to(tmp_path / "x.pdf"))
        assert p.j.last_detail(row_id) == "changed while being claimed"
        assert self._read_again_ends(p, s, row_id) == ("quarantined", "not-a-file")

    def test_a_copy_begun_in_the_sidecar_before_the_claim_keeps_the_bundle_settling(
            self, tmp_path: Path) -> None:
        """A file that a copy is still writing under an in-progress name (`b.pdf.part`),
        begun in the sidecar after the bundle was read and before its claim, is a change:
        the bundle goes back to the outbox to settle (the copy then ends there, and the
        bundle is sent with the new file), instead of being sent without it and taking
        the copy's half-written file into sent/ with the bundle."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        part = s.outbox.path / "INV-1" / "b.pdf.part"
        row_id = self._changed_during_claim(p, lambda: part.write_bytes(b"%PDF-1.4 half"))
        assert p.j.last_detail(row_id) == "changed while being claimed"
        assert part.read_bytes() == b"%PDF-1.4 half"  # the copy goes on where it began
        [cand] = list_outbox(s.outbox).candidates.values()
        assert step(p, cand, 1.0).claimed is None  # not while the copy is at work
        part.write_bytes(pdf_bytes(2))
        part.rename(part.with_name("b.pdf"))  # the copy ends
        assert self._read_again_ends(p, s, row_id) == ("sent", "e-invoice")
        [entry] = folders(s.sent_dir)
        assert sorted(f.name for f in (entry / "INV-1").iterdir()) == ["a.pdf", "b.pdf"]

    @staticmethod
    def _changed_during_claim(p: Pipeline, change: Callable[[], object]) -> int:
        """Read and decide the one bundle with its claim held for the end of the turn,
        `change` its files, then claim: its row, back to settling, the outbox as it was."""
        [cand] = list_outbox(p.s.outbox).candidates.values()
        p.hold_claims()
        assert step(p, cand, 0.0).claimed is None  # held for the end of the turn
        change()
        [(key, nxt)] = list(p.claim_held(0.0))
        assert key == "INV-1.xml" and nxt.claimed is None
        [row] = p.j.rows(("settling",))
        assert p.j.last_detail(row.id) == "changed while being claimed"
        assert (p.s.outbox.path / "INV-1.xml").exists()
        assert list(p.s.processing_dir.iterdir()) == []
        assert list((p.s.outbox.path.parent / "target").iterdir()) == []
        return row.id

    @staticmethod
    def _read_again_ends(p: Pipeline, s: Settings, row_id: int) -> tuple[str, str]:
        """Step the bundle put back once more: how it ends, ("sent", the channel of its
        manifest) or ("quarantined", the first reason's code), as its folder and its row
        agree (one folder, in sent/ or in quarantine/, none in the other)."""
        [cand] = list_outbox(s.outbox).candidates.values()
        claimed = step(p, cand, 1.0).claimed  # a quarantine at the claim is made at once
        assert claimed is None or p.finish.attempt(claimed) is None
        sent, quarantined = folders(s.sent_dir), folders(s.quarantine_dir)
        assert len(sent) + len(quarantined) == 1
        if sent:
            end = "sent"
            what = json.loads((sent[0] / "receipt.json").read_text())["manifest"]["channel"]
        else:
            end = "quarantined"
            what = json.loads((quarantined[0] / "reason.json").read_text())["reasons"][0][
                "code"]
        assert p.j.get(row_id).state == end
        return end, what


class TestABatchOfClaims:
    """The claims of one loop turn, made together (claim_held): what the loop's thread
    spends on the journal for them, and when delivery gets the first."""

    @staticmethod
    def _held(tmp_path: Path, n: int) -> Pipeline:
        """n bundles settling (each its live row, as in the daemon), read, and decided in
        one turn: their claims held."""
        p, s = make(tmp_path, outbox={"settle_seconds": 1})
        pdf = pdf_bytes()
        for i in range(n):
            drop_bundle(s.outbox.path, f"INV-{i}", {"a.pdf": pdf})
        cands = list(list_outbox(s.outbox).candidates.values())
        for cand in cands:
            assert step(p, cand, 0.0).claimed is None  # settling
        p.hold_claims()
        for cand in cands:
            assert step(p, cand, 5.0).claimed is None  # held for the end of the turn
        return p

    def test_the_same_content_twice_in_one_turn_is_sent_once_the_other_a_duplicate(
            self, tmp_path: Path) -> None:
        """The same bundle dropped under two names (a clerk's copy), both decided in one
        turn while their claims wait for its end: the second is a duplicate of the claim
        held for the first, as it would be once that claim is journaled; quarantined,
        not sent a second time."""
        p, s = make(tmp_path, outbox={"settle_seconds": 1})
        pdf = pdf_bytes()
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf})
        drop_bundle(s.outbox.path, "INV-1 - Copy", {"a.pdf": pdf},
                    (s.outbox.path / "INV-1.xml").read_bytes())
        cands = sorted(list_outbox(s.outbox).candidates.values(), key=lambda c: c.name)
        for cand in cands:
            assert step(p, cand, 0.0).claimed is None  # settling
        p.hold_claims()
        for cand in cands:
            assert step(p, cand, 5.0).claimed is None  # held for the end of the turn
        results = dict(p.claim_held(5.0))
        assert not any(isinstance(n, Exception) for n in results.values())
        for row in (r for n in results.values() if (r := n.claimed) is not None):
            assert p.finish.attempt(row) is None
        assert len(folders(s.sent_dir)) == 1
        [quarantined] = folders(s.quarantine_dir)
        assert "duplicate" in (quarantined / "reason.json").read_text()

    def test_a_batch_costs_few_commits_statements_and_looks_at_the_journal_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """32 claims: one durable commit records them all, and the bundles found unchanged
        go to delivery in groups of 1, 2, 4, ... (6 commits), each commit two statements
        for all its rows besides BEGIN and COMMIT: fewer than one statement a bundle, and
        one look at the journal file (before the durable commit) — where each transition
        read its row first and wrote it by itself, and each hand-over was its own commit
        with its own look (8 statements a bundle). Every bundle is still recorded
        settling → claiming → delivering ("claimed") and handed to delivery."""
        from daemon.claiming.claims import CLAIM_BATCH
        p = self._held(tmp_path, CLAIM_BATCH)
        statements: list[str] = []
        looks: list[None] = []
        real = p.j._look
        monkeypatch.setattr(p.j, "_look", lambda: looks.append(None) or real())
        commits = p.j.changes
        p.j._db.set_trace_callback(statements.append)
        results = list(p.claim_held(5.0))
        p.j._db.set_trace_callback(None)
        rows = [nxt.claimed for _, nxt in results if not isinstance(nxt, Exception)]
        assert len(results) == CLAIM_BATCH and None not in rows
        assert p.j.changes - commits == 1 + 6
        assert len(statements) == 4 * (1 + 6) < CLAIM_BATCH, statements
        assert len(looks) == 1
        db = sqlite3.connect(p.s.journal_path)
        try:
            for row_id in rows:
                assert p.j.get(row_id).state == "delivering"
                assert list(db.execute(
                    "SELECT from_state, to_state, detail FROM transitions WHERE bundle_row = ? "
                    "ORDER BY id", (row_id,))) == [
                    (None, "settling", ""), ("settling", "claiming", ""),
                    ("claiming", "delivering", "claimed")]
        finally:
            db.close()
        assert all(p.finish.attempt(row_id) is None for row_id in rows)
        assert len(folders(p.s.sent_dir)) == CLAIM_BATCH

    def test_a_hand_over_whose_commit_fails_is_delivered_once_the_journal_writes_again(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The journal refuses the commit that hands a group of claimed bundles to
        delivery (a full disk): the claims stand (`claiming`, files in processing) and
        each is still handed over; its attempt records `delivering` itself before
        anything is sent (a JournalError while the journal still fails, which the
        workers retry), and the bundles are sent once it writes again — not left
        `claiming`, shown as being sent, until a restart."""
        from daemon.errors import JournalError
        p = self._held(tmp_path, 3)
        real = p.j.transitions
        failing = [True]

        def refuse(rows: list[tuple[int, dict[str, object]]], state: str, *a: object,
                   **kw: object) -> None:
            if state == "delivering" and failing[0]:
                raise JournalError("journal write failed: disk full", reported=True)
            real(rows, state, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(p.j, "transitions", refuse)
        results = list(p.claim_held(5.0))
        assert [isinstance(n, Exception) for _, n in results] == [False] * 3
        rows = [n.claimed for _, n in results if not isinstance(n, Exception)]
        assert None not in rows
        assert all(p.j.get(r).state == "claiming" for r in rows if r is not None)
        with pytest.raises(JournalError):
            p.finish.attempt(rows[0] or 0)
        assert folders(p.s.sent_dir) == []
        failing[0] = False
        assert all(p.finish.attempt(r) is None for r in rows if r is not None)
        assert all(p.j.get(r).state == "sent" for r in rows if r is not None)
        assert len(folders(p.s.sent_dir)) == 3

    def test_a_hand_over_that_finds_the_journal_lost_hands_nothing_over(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The commit that hands claimed bundles to delivery finds the journal lost
        (deleted, damaged): unlike a write that fails, that is no reason to go on: each
        bundle's answer is the JournalLost that stops the daemon, and none is handed to
        the workers (its row stays `claiming`, finished by recovery at the restart)."""
        from daemon.errors import JournalLost
        p = self._held(tmp_path, 2)
        real = p.j.transitions
        handed: list[int] = []

        def lost(rows: list[tuple[int, dict[str, object]]], state: str, *a: object,
                 **kw: object) -> None:
            if state == "delivering":
                raise JournalLost("the journal was deleted", reported=True)
            real(rows, state, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(p.j, "transitions", lost)
        monkeypatch.setattr(p.finish, "hand_over", lambda row, _b, _c=0: handed.append(row))
        results = list(p.claim_held(5.0))
        assert len(results) == 2 and all(isinstance(n, JournalLost) for _, n in results)
        assert handed == [] and len(p.j.rows(("claiming",))) == 2

    def test_a_hand_over_whose_commit_fails_is_delivered_after_a_switch_of_format_too(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """As above, and a reload switches [delivery] format before the attempts (their
        checks are dropped, to be made again): the rows still `claiming` are recorded
        `delivering` by their attempt, read again and sent — not left `claiming`, shown
        as being sent, with no attempt, until a restart."""
        from daemon.errors import JournalError
        p = self._held(tmp_path, 2)
        real = p.j.transitions

        def refuse(rows: list[tuple[int, dict[str, object]]], state: str, *a: object,
                   **kw: object) -> None:
            if state == "delivering":
                raise JournalError("journal write failed: disk full", reported=True)
            real(rows, state, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(p.j, "transitions", refuse)
        results = list(p.claim_held(5.0))
        monkeypatch.setattr(p.j, "transitions", real)
        rows = [n.claimed for _, n in results if not isinstance(n, Exception)]
        assert len(rows) == 2 and None not in rows
        assert all(p.j.get(r).state == "claiming" for r in rows if r is not None)
        p.finish.read_claimed_again()  # a reload switched the format
        assert all(p.finish.attempt(r) is None for r in rows if r is not None)
        assert all(p.j.get(r).state == "sent" for r in rows if r is not None)
        assert len(folders(p.s.sent_dir)) == 2

    def test_a_work_folder_moved_away_before_the_syncs_fails_no_other_claim_of_the_batch(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """One work folder of a batch moved out of processing (by a person on the share)
        after its renames and before the batch's syncs: the other bundles' claims stand
        and they go to delivery (their folders are synced through the descriptors held
        since the renames), not put back into the outbox and paused for a rescan period
        for a folder that is not theirs. The moved bundle keeps its files where it went."""
        from daemon.claiming import claims
        p = self._held(tmp_path, 3)
        aside = tmp_path / "aside"
        real_claim = claims.claim

        def claimed_then_moved_away(cand: Candidate, work: Path, *a: object,
                                    **kw: object) -> Candidate:
            moved = real_claim(cand, work, *a, **kw)  # type: ignore[arg-type]
            if cand.invoice.name == "INV-0.xml":
                work.rename(aside)
            return moved

        monkeypatch.setattr(claims, "claim", claimed_then_moved_away)
        results = dict(p.claim_held(5.0))
        for key in ("INV-1.xml", "INV-2.xml"):
            nxt = results[key]
            assert not isinstance(nxt, Exception) and nxt.claimed is not None, nxt
            assert p.j.get(nxt.claimed).state == "delivering"
            assert not (p.s.outbox.path / key).exists()
        assert sorted(x.name for x in aside.iterdir()) == ["INV-0", "INV-0.xml"]
        assert (aside / "INV-0" / "a.pdf").exists()
        gone = results["INV-0.xml"]
        assert not isinstance(gone, Exception) and gone.claimed is None

    def test_a_work_folder_swapped_for_a_link_before_the_syncs_is_synced_not_the_link(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """One work folder of a batch swapped for a link to a folder outside (by a person
        on the share) after its renames and before the batch's syncs: the folder the
        parts were renamed into is synced, wherever it went, and what the link leads to
        never is (nothing outboxd does goes through a link in the outbox)."""
        from daemon.claiming import claims
        p = self._held(tmp_path, 2)
        aside, outside = tmp_path / "aside", tmp_path / "outside"
        outside.mkdir()
        real_claim, real_fsync = claims.claim, os.fsync
        synced: list[str] = []

        def claimed_then_swapped(cand: Candidate, work: Path, *a: object,
                                 **kw: object) -> Candidate:
            moved = real_claim(cand, work, *a, **kw)  # type: ignore[arg-type]
            if cand.invoice.name == "INV-0.xml":
                work.rename(aside)
                work.symlink_to(outside)
            return moved

        def noted(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(claims, "claim", claimed_then_swapped)
        monkeypatch.setattr(os, "fsync", noted)
        results = dict(p.claim_held(5.0))
        monkeypatch.setattr(os, "fsync", real_fsync)
        assert str(aside) in synced
        assert str(outside) not in synced
        assert list(outside.iterdir()) == []
        kept = results["INV-1.xml"]
        assert not isinstance(kept, Exception) and kept.claimed is not None
        assert p.j.get(kept.claimed).state == "delivering"

    def test_the_first_of_a_batch_goes_to_delivery_before_the_rest_is_checked(
            self, tmp_path: Path) -> None:
        """The check after the move comes back bundle by bundle (from the readers): the
        first bundle found unchanged is handed to delivery before the second one's check
        is even taken, so delivery starts while the rest of the batch is checked."""
        from daemon.reading.match import assemble
        p = self._held(tmp_path, 4)
        taken: list[int] = []

        def one_by_one(jobs: list[tuple[Candidate, Bundle]], settings: Settings
                       ) -> Iterator[Bundle]:
            for i, (cand, known) in enumerate(jobs):
                taken.append(i)
                yield assemble(cand, settings, known=known)

        p.assemble_many = one_by_one
        held = p.claim_held(5.0)
        _, first = next(held)
        assert not isinstance(first, Exception) and first.claimed is not None
        assert taken == [0]
        assert p.j.get(first.claimed).state == "delivering"
        rest = list(held)
        assert taken == [0, 1, 2, 3] and len(rest) == 3
        assert all(not isinstance(n, Exception) and n.claimed is not None for _, n in rest)


def claimed_as_the_share_went_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                   ) -> tuple[Pipeline, Settings, Path, Path, list[Any]]:
    """INV-1 claimed into its work folder, which then went out of sight (moved to `away`,
    as an unmount hides it) before the check by hashes: (pipeline, settings, work folder,
    away, the claim's log)."""
    p, s = make(tmp_path)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    cand = next(iter(list_outbox(s.outbox).candidates.values()))
    work = s.processing_dir / "INV-1--fixed"
    monkeypatch.setattr("daemon.claiming.claims.work_dir_for", lambda *_: work)
    away = tmp_path / "away"  # where the unmounted share's folder is out of sight
    check = p.assemble_many

    def share_gone_first(jobs: list[tuple[Candidate, Bundle]], st: Settings) -> object:
        work.rename(away)
        return check(jobs, st)

    monkeypatch.setattr(p, "assemble_many", share_gone_first)
    with capture_logs() as logged:
        assert step(p, cand, 0.0).claimed is None
    return p, s, work, away, logged


class TestOneClaimOfABatchFailingUnexpectedly:
    """A batch of claims (claim_held) where one bundle's claim raises what no claim
    expects (a bug, or a race none foresaw): that error is the one bundle's, handed to
    the loop for it; the others of the batch are claimed and delivered, and that one is
    sent once its claim is finished at the next rescan."""

    def test_an_unexpected_error_in_one_claims_move_leaves_the_others_delivered(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from daemon.claiming import claims
        p = TestABatchOfClaims._held(tmp_path, 3)
        real_claim = claims.claim

        def failing_for_inv0(cand: Candidate, work: Path, *a: object, **kw: object
                             ) -> Candidate:
            if cand.invoice.name == "INV-0.xml":
                raise RuntimeError("a claim nobody foresaw")
            return real_claim(cand, work, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(claims, "claim", failing_for_inv0)
        results = dict(p.claim_held(5.0))
        failed = results["INV-0.xml"]
        assert isinstance(failed, RuntimeError) and "nobody foresaw" in str(failed)
        assert (p.s.outbox.path / "INV-0.xml").exists()
        assert (p.s.outbox.path / "INV-0" / "a.pdf").exists()
        for key in ("INV-1.xml", "INV-2.xml"):
            nxt = results[key]
            assert not isinstance(nxt, Exception) and nxt.claimed is not None, nxt
            assert p.finish.attempt(nxt.claimed) is None
            assert p.j.get(nxt.claimed).state == "sent"
        assert len(folders(p.s.sent_dir)) == 2
        # Its row, left `claiming` by the error, is finished at the next rescan as a claim
        # a crash cut short: the bundle is sent then, never its own duplicate.
        monkeypatch.undo()
        cand = list_outbox(p.s.outbox).candidates["INV-0.xml"]
        period = p.s.outbox.rescan_seconds
        assert step(p, cand, 6.0).claimed is None  # not decided before that rescan
        assert p.retry_stranded() == []
        row_id = step(p, cand, 5.0 + period).claimed
        assert row_id is not None and p.finish.attempt(row_id) is None
        assert folders(p.s.quarantine_dir) == [] and len(folders(p.s.sent_dir)) == 3
        assert p.j.rows(("claiming",)) == []


class TestAClaimCutShortByAnError:
    """A claim whose failure could not be recorded (the journal refusing writes while the
    claim is undone: one full disk holding the outbox and the state folder) leaves its
    row `claiming`, counted as on its way. That row must not make the bundle in the
    outbox a duplicate of itself: the claim is finished as one a crash cut short, and
    the bundle is sent once."""

    @pytest.mark.parametrize("failure", ["move-refused", "processing-share-away"])
    @pytest.mark.parametrize("refusals", [1, 2])
    def test_a_failed_claim_whose_undo_cannot_be_journaled_is_sent_not_a_duplicate(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusals: int,
            failure: str) -> None:
        """`refusals` 2: the journal refuses the first rescan's finish of the claim too;
        that rescan goes on (the claim kept for the next), and the next finishes it.
        `failure`: the claim's move refused (a full disk), or the processing folder's
        share found off its mount before any move (the batch's check)."""
        from daemon.errors import JournalError
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        if failure == "move-refused":
            claims_refused_first(monkeypatch, [errno.ENOSPC])
        else:
            away = ["its share unmounted?"]
            monkeypatch.setattr(p.finish.mounts, "away", lambda folder: (
                away.pop() if away and folder == s.processing_dir else None))
        settling_refused(p, monkeypatch, refusals)
        try:
            first = step(p, cand, 0.0)
        except JournalError:
            first = None  # as the loop's _step_failed takes it: stepped again later
        assert first is None or first.claimed is None
        assert (s.outbox.path / "INV-1.xml").exists()
        assert (s.outbox.path / "INV-1" / "a.pdf").exists()
        period = s.outbox.rescan_seconds
        sent: list[int] = []
        for t in (1.0, period / 2, period, period + 1, 2 * period + 1):
            sent += p.retry_stranded()  # each rescan's
            nxt = step(p, cand, t)
            if nxt.claimed is not None:
                sent.append(nxt.claimed)
        for row_id in sent:
            assert p.finish.attempt(row_id) is None
        assert folders(s.quarantine_dir) == []
        assert len(folders(s.sent_dir)) == 1
        assert p.j.counts()["sent"] == 1 and p.j.rows(("claiming",)) == []

    def test_a_claim_quarantine_cut_short_after_its_row_said_quarantining_is_finished(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bundle quarantined at its claim, on one full disk under outbox and state
        folder: its row is `quarantining` (durable), then the papers cannot be written and
        the journal refuses that failure's record. The row is past `claiming`, so the claim
        is not finished again; it is handed to the delivery workers at the next rescan, which
        quarantine it once the disk has room — left so, it said `quarantining` with its
        bundle in its work folder until a restart."""
        from daemon.archiving import moves
        from daemon.errors import JournalError
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"hours.csv": b"day;hours\nmon;8\n"})
        write(s.outbox.path / "INV-1" / "attachments.toml", ORIGINAL_PRINT)
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        real_place, real_update = moves.place, p.j.update

        def disk_full(*args: Any, **kwargs: Any) -> Path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "reason.json")

        def refused(row_id: int, **fields: Any) -> None:
            if "last_error" in fields:
                raise JournalError("cannot write the journal: disk full")
            real_update(row_id, **fields)

        monkeypatch.setattr(moves, "place", disk_full)
        monkeypatch.setattr(p.j, "update", refused)
        with pytest.raises(JournalError):
            step(p, cand, 0.0)
        [row] = p.j.rows(("quarantining",))
        monkeypatch.setattr(moves, "place", real_place)
        monkeypatch.setattr(p.j, "update", real_update)
        assert p.retry_stranded() == [row.id]
        later = p.finish.clock() + 3600.0  # past the failed move's back-off
        p.finish.clock = lambda: later
        assert p.finish.attempt(row.id) is None
        assert p.j.get(row.id).state == "quarantined"
        [folder] = folders(s.quarantine_dir)
        assert (folder / "INV-1.xml").exists() and (folder / "INV-1" / "hours.csv").exists()


class TestBytesChangedWhileClaimed:
    """An attachment saved anew after the bundle was read and before its claim (held for
    the end of the loop's turn): its bytes, which the bundle id covers, are not those
    validated, so the check after the claim puts the bundle back to settle; read again,
    it is sent with the bytes it now has, never with a manifest of the old ones."""

    def test_an_attachment_saved_anew_before_the_claim_is_sent_as_it_now_is(
            self, tmp_path: Path) -> None:
        import hashlib
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        path = s.outbox.path / "INV-1" / "a.pdf"
        row_id = TestChangedWhileClaimed._changed_during_claim(
            p, lambda: path.write_bytes(pdf_bytes(2)))
        assert TestChangedWhileClaimed._read_again_ends(p, s, row_id) == ("sent", "e-invoice")
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf_bytes(2)
        manifest = json.loads((entry / "receipt.json").read_text())["manifest"]
        assert hashlib.sha256(pdf_bytes(2)).hexdigest() in json.dumps(manifest)


class TestAClaimCutShortShownAsOneRow:
    def test_a_bundle_changed_while_its_cut_short_claim_waits_has_its_one_row_saying_why(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim raises what no claim expects (nothing moved); the clerk then saves
        another file into the sidecar. Until the rescan finishes the claim, the bundle has
        its one row, `claiming`, saying why it waits (shown retrying), and no second row
        is made for the new look at its files; at the rescan that row settles again and
        is the one sent. The new look made a second row, `settling` without a reason,
        shown beside the claim's until the rescan ended the claim's `gone`."""
        from daemon.claiming import claims
        p, s = make(tmp_path, outbox={"settle_seconds": 30})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, 0.0).claimed is None  # settling
        [row] = p.j.rows(("settling",))

        def unforeseen(*a: object, **kw: object) -> Candidate:
            raise RuntimeError("a claim nobody foresaw")

        with monkeypatch.context() as m:
            m.setattr(claims, "claim", unforeseen)
            with pytest.raises(RuntimeError, match="nobody foresaw"):
                step(p, cand, 31.0)
        assert p.j.get(row.id).state == "claiming"
        write(s.outbox.path / "INV-1" / "b.pdf", pdf_bytes(text_marker="later"))
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, 32.0).claimed is None
        shown = [(r.id, r.state, r.shown_state) for r in p.j.rows(
            ("settling", "claiming", "waiting", "held"))]
        assert shown == [(row.id, "claiming", "retrying")], shown
        assert "finished at the next rescan" in (p.j.get(row.id).last_error or "")
        assert p.retry_stranded() == []  # the rescan: nothing had moved, it settles again
        back = p.j.get(row.id)
        assert (back.state, back.last_error) == ("settling", None)
        assert p.live["INV-1.xml"].id == row.id
        claimed = step(p, cand, 63.0).claimed
        assert claimed == row.id and p.finish.attempt(row.id) is None
        assert p.j.get(row.id).state == "sent" and len(folders(s.sent_dir)) == 1
        assert [r.id for r in p.j.rows(("gone",))] == []


class TestAClaimCutShortBeforeItsMove:
    """A claim cut short before any file moved (the processing folder's share found off
    its mount, and the journal refusing the undo's record: one full disk), decided from a
    row that was `waiting`: until the rescan finishes the claim, that row is `claiming`
    and the pipeline must not take it for the `waiting` row it decided from. It kept that
    row in its live map, and the next look at the invoice file wrote over the claim's
    state from there: a clerk's edit made it `settling`, a clerk taking the file back made
    it `gone`, each still saying the claim would be finished at the next rescan, and the
    claim was never finished (the rescan found the row no longer `claiming`)."""

    @staticmethod
    def _cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> tuple[Pipeline, Settings, int]:
        """`batch.xml` (invoices A, attached, and B, not) waited for B's attachments under
        "warn" until its deadline; then its claim is cut short before the move."""
        from matching import batch_xml

        from daemon.errors import JournalError
        from daemon.journal import iso_in
        p, s = make(tmp_path, outbox={"settle_seconds": 30},
                    policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "batch", {"A/a.pdf": pdf_bytes()}, batch_xml("A", "B"))
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, 0.0).claimed is None  # settling
        assert step(p, cand, 31.0).claimed is None  # settled: it waits
        [row] = p.j.rows(("waiting",))
        p.j.update(row.id, deadline=iso_in(-60))  # the wait is over
        p.live["batch.xml"] = p.j.get(row.id)  # the pipeline keeps its live rows in memory
        away = ["is no longer on the file system it was on at the start (share unmounted?)"]
        monkeypatch.setattr(p.finish.mounts, "away", lambda folder: (
            away.pop() if away and folder == s.processing_dir else None))
        settling_refused(p, monkeypatch)
        with pytest.raises(JournalError):
            step(p, cand, 32.0)
        assert p.j.get(row.id).state == "claiming"
        assert (s.outbox.path / "batch.xml").exists()
        return p, s, row.id

    @staticmethod
    def _shown(p: Pipeline) -> list[tuple[int, str, str]]:
        return [(r.id, r.state, r.shown_state) for r in sorted(p.j.rows(
            ("settling", "claiming", "waiting", "held", "gone")), key=lambda r: r.id)]

    def test_a_clerks_edit_leaves_the_claim_as_it_is_until_the_rescan_finishes_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The clerk saves B's attachment before the rescan: the row stays `claiming`,
        shown retrying with why, the one row of the bundle; the rescan settles it again,
        and it is sent once, with B's attachment."""
        p, s, row = self._cut_short(tmp_path, monkeypatch)
        write(s.outbox.path / "batch" / "B" / "b.pdf", pdf_bytes(text_marker="B"))
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, 33.0).claimed is None
        assert self._shown(p) == [(row, "claiming", "retrying")]
        assert "finished at the next rescan" in (p.j.get(row).last_error or "")
        assert p.retry_stranded() == []  # the rescan: nothing had moved, it settles again
        back = p.j.get(row)
        assert (back.state, back.last_error) == ("settling", None)
        assert p.live["batch.xml"].id == row
        from claimed import run_once
        assert run_once(p, 33.0) == []  # its edit settles first
        assert run_once(p, 64.0) == [row]
        assert self._shown(p) == [] and p.j.get(row).state == "sent"
        [archived] = folders(s.sent_dir)
        assert (archived / "batch" / "B" / "b.pdf").exists()

    def test_the_invoice_file_taken_back_ends_the_claim_at_the_rescan_as_not_happened(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The clerk takes the invoice file back before the rescan: the row stays
        `claiming` saying why until the rescan, which ends it `gone` as a claim that did
        not happen, no longer saying it waits."""
        from daemon.claiming.recovery import NOT_HAPPENED_GONE
        p, s, row = self._cut_short(tmp_path, monkeypatch)
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        (s.outbox.path / "batch.xml").rename(tmp_path / "batch.xml")
        assert step(p, cand, 33.0).gone
        assert self._shown(p) == [(row, "claiming", "retrying")]
        assert p.retry_stranded() == []
        ended = p.j.get(row)
        assert (ended.state, ended.last_error) == ("gone", None)
        assert p.j.last_detail(row) == NOT_HAPPENED_GONE
        assert "batch.xml" not in p.live

    def test_taken_back_after_a_rescan_that_could_not_finish_it_still_ends_the_claim(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first rescan cannot finish the claim (the journal refuses its row's
        `settling` again); the clerk then takes the invoice file back: the next rescan
        ends it `gone` as a claim that did not happen, not waiting for a work folder never
        made, with the sidecar left in the outbox."""
        from daemon.claiming.recovery import NOT_HAPPENED_GONE
        p, s, row = self._cut_short(tmp_path, monkeypatch)
        refused = settling_refused(p, monkeypatch)
        assert p.retry_stranded() == []
        assert not refused and p.j.get(row).state == "claiming"
        (s.outbox.path / "batch.xml").rename(tmp_path / "batch.xml")
        assert p.retry_stranded() == []
        ended = p.j.get(row)
        assert (ended.state, ended.last_error) == ("gone", None)
        assert p.j.last_detail(row) == NOT_HAPPENED_GONE


    def test_an_invoice_file_the_share_cannot_look_at_at_the_rescan_is_not_taken_back(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The rescan's look at the invoice file fails with EIO (the share half away):
        the claim waits, `claiming`, and settles again at the rescan after, once the share
        answers. Taken for the clerk taking the file back, it ended `gone` ("the invoice
        file is no longer in the outbox") while the file lay in the outbox."""
        p, s, row = self._cut_short(tmp_path, monkeypatch)
        with monkeypatch.context() as m:
            looks_fail(m, s.outbox.path / "batch.xml")
            assert p.retry_stranded() == []
        assert p.j.get(row).state == "claiming"
        assert p.retry_stranded() == []
        assert p.j.get(row).state == "settling" and p.live["batch.xml"].id == row

class TestAClaimCutShortBeforeItsMoveAcrossARestart:
    """The note that a claim was cut short before any of its files moved outlives the
    process: a restart before the rescan that would finish the claim knows that no work
    folder was ever made."""

    def test_its_invoice_file_taken_back_before_a_restart_ends_it_gone_not_waiting(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The clerk takes the invoice file back (its sidecar left in the outbox), and
        outboxd restarts before the rescan: the start ends the claim `gone` ("claim did
        not happen; the invoice file is no longer in the outbox"), the sidecar untouched.
        The note lived in memory only: the start took the claim for a crash's, whose
        invoice file may sit in a work folder out of sight, and it waited "is the share
        mounted?" until the sidecar went or the invoice file came back."""
        from daemon.claiming.recovery import NOT_HAPPENED_GONE
        from daemon.delivery.directory import DirectoryDeliverer
        from daemon.journal import Journal
        p, s, row = TestAClaimCutShortBeforeItsMove._cut_short(tmp_path, monkeypatch)
        monkeypatch.undo()
        (s.outbox.path / "batch.xml").rename(tmp_path / "batch.xml")
        p.j.close()
        again = Pipeline(s, Journal(s.journal_path), DirectoryDeliverer(tmp_path / "target"))
        try:
            assert again.finish.recover() == []
            ended = again.j.get(row)
            assert (ended.state, ended.last_error, ended.work_dir) == ("gone", None, None)
            assert again.j.last_detail(row) == NOT_HAPPENED_GONE
            assert (s.outbox.path / "batch" / "A" / "a.pdf").exists()
            assert os.listdir(s.processing_dir) == []
        finally:
            again.j.close()

    def test_a_later_claims_work_folder_moved_away_by_hand_is_taken_as_moved_by_hand(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The claim cut short before its move is finished at the rescan (settling again),
        and the bundle is claimed again: a stop comes after that claim moved the invoice
        file into its work folder, which someone then moves out of the processing folder
        by hand, the sidecar still in the outbox. The start ends the claim `gone`, as a
        work folder moved away by hand always is (docs/operations.md, "Claims cut
        short"), touching nothing of the folder moved nor of the sidecar: the invoice
        file is where they put it, to be put back into the outbox to be sent."""
        from daemon.claiming.recovery import NOT_HAPPENED_GONE
        from daemon.delivery.directory import DirectoryDeliverer
        from daemon.journal import Journal
        p, s, row = TestAClaimCutShortBeforeItsMove._cut_short(tmp_path, monkeypatch)
        monkeypatch.undo()
        assert p.retry_stranded() == []
        assert p.j.get(row).state == "settling"
        [cand] = list_outbox(s.outbox).candidates.values()
        p.hold_claims()
        for now in (33.0, 64.0, 95.0):
            step(p, cand, now)
            if p._held:
                break
        assert [c.row.id for c in p._held or [] if c.row is not None] == [row]
        assert p._record_claims(p._held or []) == [row]
        work = Path(p.j.get(row).work_dir or "")
        work.mkdir()
        (s.outbox.path / "batch.xml").rename(work / "batch.xml")  # then the stop
        p.j.close()
        work.rename(tmp_path / "moved-by-hand")
        again = Pipeline(s, Journal(s.journal_path), DirectoryDeliverer(tmp_path / "target"))
        try:
            assert again.finish.recover() == []
            ended = again.j.get(row)
            assert (ended.state, ended.last_error, ended.work_dir) == ("gone", None, None)
            assert again.j.last_detail(row) == NOT_HAPPENED_GONE
            assert os.listdir(tmp_path / "moved-by-hand") == ["batch.xml"]
            assert (s.outbox.path / "batch" / "A" / "a.pdf").exists()
        finally:
            again.j.close()


class TestAClaimSettledAgainWhoseRowCannotBeReadBack:
    """A failed claim is undone and its row written `settling`; then the read of that row,
    for its hand-over to the pipeline, fails (the journal refusing a read). The row must
    still be the bundle's one row: it stands for the bundle until the next rescan hands
    it back, said once, and is the row sent."""

    def test_the_row_is_handed_back_at_the_rescan_and_no_look_makes_a_second_row(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Raised, the read left the row settling, followed by nobody and no claim to
        finish any more: the next look at the invoice file gave the bundle a second row
        (sent), the first showing `settling` until a restart."""
        from daemon.errors import JournalError
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        claims_refused_first(monkeypatch, [errno.ENOSPC])
        refuse = read_refused_once_settled(p, monkeypatch)
        with capture_logs() as logs:
            try:
                first = step(p, cand, 0.0).claimed
            except JournalError:
                first = None  # as the loop's _step_failed takes it: stepped again later
        assert first is None and len(refuse) == 2
        assert step(p, cand, 1.0).claimed is None  # a look before the rescan
        assert len(p.j.rows(("settling", "waiting", "held", "claiming"))) == 1
        [row] = p.j.rows(("settling",))
        said = [e for e in logs if e["event"].startswith("cannot read back a claim's row")]
        assert len(said) == 1 and said[0]["row"] == row.id
        period = s.outbox.rescan_seconds
        with capture_logs() as logs:
            assert p.retry_stranded() == []
        assert p.live["INV-1.xml"].id == row.id and logs == []
        claimed = step(p, cand, period + 1).claimed
        assert claimed == row.id and p.finish.attempt(row.id) is None
        assert p.j.get(row.id).state == "sent" and len(folders(s.sent_dir)) == 1
        assert p.j.rows(("settling", "gone")) == []

    def test_a_claim_cut_short_settled_at_a_rescan_whose_read_fails_is_handed_back_later(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A claim cut short before its move is finished at the rescan (its row written
        `settling`), but the read of that row for its hand-over fails. The next rescan
        hands it back; meanwhile it stands for the bundle, and it is the row sent.
        Kept only as a claim to finish, it was dropped at the next rescan as no longer
        `claiming`: followed by nobody, shown `settling` until a restart, while a look at
        the invoice file gave the bundle a second row."""
        p, s, row = TestAClaimCutShortBeforeItsMove._cut_short(tmp_path, monkeypatch)
        monkeypatch.undo()
        refuse = read_refused_once_settled(p, monkeypatch)
        assert p.retry_stranded() == []
        assert len(refuse) == 2 and p.j.get(row).state == "settling"
        [cand] = list_outbox(s.outbox).candidates.values()
        assert step(p, cand, 33.0).claimed is None  # a look before the next rescan
        assert [r.id for r in p.j.rows(("settling", "waiting", "held", "claiming"))] == [row]
        assert p.retry_stranded() == []
        assert p.live["batch.xml"].id == row
        from claimed import run_once
        sent = [r for now in (64.0, 95.0, 126.0) for r in run_once(p, now)]
        assert sent == [row] and p.j.get(row).state == "sent"
        assert len(folders(s.sent_dir)) == 1 and p.j.rows(("settling", "gone")) == []


class TestAClaimCutShortWhereItsWorkFolderCouldNotBeMade:
    """One full disk under the outbox and the state folder: the work folder cannot be
    made (nothing leaves the outbox), and the journal refuses the record of that failed
    claim's undo. The claim is cut short before its move, and known so: the clerk who
    takes the invoice file back, leaving its attachments' folder, has the claim end
    `gone` at the next rescan, or at a start if outboxd stopped first."""

    @pytest.mark.parametrize("then", ["rescan", "restart"])
    def test_its_invoice_file_taken_back_ends_it_gone_not_waiting_for_a_work_folder(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str) -> None:
        """It was cut short as a claim that may have moved files: it waited, retrying
        with "the work folder is not there … (is the share mounted?)", until the sidecar
        went or the invoice file came back."""
        from daemon.claiming.recovery import NOT_HAPPENED_GONE
        from daemon.delivery.directory import DirectoryDeliverer
        from daemon.errors import JournalError
        from daemon.journal import Journal
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        claims_refused_first(monkeypatch, [errno.ENOSPC])
        settling_refused(p, monkeypatch)
        with pytest.raises(JournalError):
            step(p, cand, 0.0)
        monkeypatch.undo()
        [row] = p.j.rows(("claiming",))
        (s.outbox.path / "INV-1.xml").rename(tmp_path / "INV-1.xml")  # the clerk's
        if then == "rescan":
            assert p.retry_stranded() == []
            j = p.j
        else:
            p.j.close()
            j = Journal(s.journal_path)
            again = Pipeline(s, j, DirectoryDeliverer(tmp_path / "target"))
            assert again.finish.recover() == []
        try:
            ended = j.get(row.id)
            assert (ended.state, ended.last_error, ended.work_dir) == ("gone", None, None)
            assert j.last_detail(row.id) == NOT_HAPPENED_GONE
            assert (s.outbox.path / "INV-1" / "a.pdf").exists()
            assert os.listdir(s.processing_dir) == []
        finally:
            j.close()


class TestTheHandOverIsDurableBeforeAnyPost:
    def test_each_bundles_delivering_is_on_disk_before_its_first_post(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The hand-over's `delivering` commit is made without a sync of its own; before
        the first POST of each bundle it handed over it is on disk (a power cut after a
        POST must not bring the row back `claiming`, which recovery takes for a claim that
        sent nothing). The sync is one for the group, shared, not one a bundle."""
        p = TestABatchOfClaims._held(tmp_path, 3)
        handed_at: list[int] = []
        real = p.j.transitions

        def note(rows: list[tuple[int, dict[str, object]]], state: str, *a: object,
                 **kw: object) -> None:
            real(rows, state, *a, **kw)  # type: ignore[arg-type]
            if state == "delivering":
                handed_at.append(p.j._committed)

        monkeypatch.setattr(p.j, "transitions", note)
        rows = [n.claimed for _, n in p.claim_held(5.0) if not isinstance(n, Exception)]
        assert len(rows) == 3 and None not in rows and handed_at
        syncs: list[int] = []
        real_sync = p.j._sync
        monkeypatch.setattr(p.j, "_sync", lambda c: syncs.append(c) or real_sync(c))
        real_take = p.finish.deliverers.take
        synced_at_post: list[int] = []
        wrapped: set[int] = set()

        def take() -> Any:
            deliverer = real_take()
            if id(deliverer) not in wrapped:  # a deliverer is taken again, given back
                wrapped.add(id(deliverer))
                deliver = deliverer.deliver
                monkeypatch.setattr(deliverer, "deliver", lambda *a, **kw: (
                    synced_at_post.append(p.j._synced), deliver(*a, **kw))[1])
            return deliverer

        monkeypatch.setattr(p.finish.deliverers, "take", take)
        assert all(p.finish.attempt(r) is None for r in rows if r is not None)
        assert len(synced_at_post) == 3
        assert min(synced_at_post) >= max(handed_at)
        assert len([c for c in syncs if c <= max(handed_at)]) <= len(handed_at)
        assert all(p.j.get(r).state == "sent" for r in rows if r is not None)


class TestARowHandedBackAfterItsInvoiceFileLeft:
    """A failed claim is undone and its row written `settling`, but the read of that row
    for its hand-over is refused: the row waits for the next rescan to hand it back.
    Meanwhile the clerk takes the invoice file back, and its look finds it gone (the
    loop then drops the name from its index, so nothing steps it again)."""

    def test_the_rescan_ends_it_gone_rather_than_following_a_bundle_not_there(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Handed back all the same, the row was followed as the bundle's, `settling`, for
        a bundle no longer in the outbox, and shown so until a restart; it ends `gone`
        as a claim that did not happen, as one whose work folder came back empty does."""
        from daemon.claiming.recovery import NOT_HAPPENED_GONE
        from daemon.errors import JournalError
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        claims_refused_first(monkeypatch, [errno.ENOSPC])
        read_refused_once_settled(p, monkeypatch)
        try:
            step(p, cand, 0.0)
        except JournalError:
            pass  # as the loop's _step_failed takes it
        [row] = p.j.rows(("settling",))
        (s.outbox.path / "INV-1.xml").unlink()  # the clerk takes the invoice back
        assert step(p, cand, 1.0).gone
        assert p.retry_stranded() == []
        assert "INV-1.xml" not in p.live
        after = p.j.get(row.id)
        assert after.state == "gone" and p.j.last_detail(row.id) == NOT_HAPPENED_GONE
        assert p.j.rows(("settling", "waiting", "held", "claiming")) == []


def moved_yet_nothing_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """claims.claim makes the work folder and renames the invoice file into it, then
    raises NothingClaimed, once: a rename that failed and happened all the same (a
    network share's) that the claim did not see happen."""
    from daemon.claiming import claims as claims_module
    from daemon.errors import NothingClaimed
    real_claim, once = claims_module.claim, [1]

    def moved_then_refused(c: Candidate, work: Path, *args: object, **kwargs: object
                           ) -> Candidate:
        if once:
            once.pop()
            work.mkdir()
            os.rename(c.invoice, work / c.invoice.name)
            raise NothingClaimed(OSError(errno.EIO, os.strerror(errno.EIO), str(work)))
        return real_claim(c, work, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(claims_module, "claim", moved_then_refused)


class TestAClaimWhoseRenameFailedYetHappened:
    """A claim that failed "before any file moved" while its invoice file sits in its
    work folder: the row is never ended as a claim that did not happen, which left the
    invoice file in a folder no row named (the orphan sweep only logs such a folder)."""

    def test_what_moved_is_put_back_and_the_bundle_is_sent_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Its work folder is there, so what is in it goes back into the outbox and the
        bundle settles again (one row), then is claimed and sent once."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        moved_yet_nothing_claimed(monkeypatch)
        assert step(p, cand, 0.0).claimed is None
        assert (s.outbox.path / "INV-1.xml").exists()
        assert os.listdir(s.processing_dir) == []
        [row] = p.j.rows(("settling",))
        from claimed import run_once
        assert run_once(p, 31.0) == [row.id]
        assert p.j.get(row.id).state == "sent" and len(folders(s.sent_dir)) == 1
        assert p.j.rows(("gone",)) == []

    def test_cut_short_it_is_finished_as_a_crashs_claim_not_ended_gone(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Its undo cut short too (the journal refusing its record): the rescan finds
        the invoice file gone from the outbox and, before ending the claim as one that
        did not happen, its work folder there: the claim is finished as a crash's (the
        rest moved in, checked) and the bundle sent, no longer noted as cut short before
        any file moved."""
        from daemon.claiming.recovery import CUT_BEFORE_MOVE
        from daemon.errors import JournalError
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        moved_yet_nothing_claimed(monkeypatch)

        def refused(*args: object, **kwargs: object) -> Any:
            raise JournalError("cannot write the journal: disk full")

        monkeypatch.setattr(p, "_claim_failed", refused)
        with pytest.raises(JournalError):
            step(p, cand, 0.0)
        monkeypatch.undo()
        [row] = p.j.rows(("claiming",))
        assert p.j.last_detail(row.id) == CUT_BEFORE_MOVE
        assert not (s.outbox.path / "INV-1.xml").exists()
        assert p.retry_stranded() == [row.id]
        assert p.j.get(row.id).state == "delivering"
        assert p.j.last_detail(row.id) != CUT_BEFORE_MOVE
        assert p.finish.attempt(row.id) is None
        assert p.j.get(row.id).state == "sent"
        [archived] = folders(s.sent_dir)
        assert (archived / "INV-1.xml").exists() and (archived / "INV-1" / "a.pdf").exists()
        assert list(s.outbox.path.iterdir()) == [s.outbox.path / ".outboxd"]


def test_a_work_folder_never_made_on_a_share_gone_away_is_no_claim_to_wait_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The share holding the processing folder goes away as a claim makes its work
    folder (EIO: nothing made, nothing moved), and the look for a folder left behind
    fails the same way. Nothing moved, so the row settles again, its invoice file still
    in the outbox, and the bundle is claimed and sent once the share is back. Taken for
    a claim whose folder is out of sight, the row stayed `claiming`, waiting at every
    rescan for a work folder that was never made, the bundle never sent."""
    from daemon.claiming import claims as claims_module
    from daemon.errors import NothingClaimed
    from daemon.fs import workfolder
    p, s = make(tmp_path)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    [cand] = list_outbox(s.outbox).candidates.values()
    gone = OSError(errno.EIO, os.strerror(errno.EIO))

    def share_gone(*args: object, **kwargs: object) -> Any:
        raise gone

    def not_made(*args: object, **kwargs: object) -> Any:
        raise NothingClaimed(gone)

    with monkeypatch.context() as away:
        away.setattr(claims_module, "claim", not_made)
        away.setattr(workfolder, "hold_folder", share_gone)
        assert step(p, cand, 0.0).claimed is None
    [row] = p.j.rows(("settling",))
    assert (s.outbox.path / "INV-1.xml").exists()
    from claimed import run_once
    assert run_once(p, 31.0) == [row.id]
    assert p.j.get(row.id).state == "sent" and len(folders(s.sent_dir)) == 1


def test_a_cut_short_claims_folder_that_cannot_be_looked_at_is_looked_at_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim cut short before any of its files moved, its invoice file taken back by
    the clerk (the sidecar left), and the rescan's look for its work folder fails (the
    share away for a moment, EIO): that look cannot tell, so the claim keeps its note
    that nothing moved, and the next rescan, the share back and no folder there, ends
    it `gone` as a claim that did not happen. Taken for a folder there, the note was
    dropped, and the claim waited "is the share mounted?" at every rescan while the
    sidecar stayed, for a work folder never made."""
    from daemon.claiming.recovery import NOT_HAPPENED_GONE
    from daemon.fs import workfolder
    p, s, row = TestAClaimCutShortBeforeItsMove._cut_short(tmp_path, monkeypatch)
    monkeypatch.undo()
    (s.outbox.path / "batch.xml").rename(tmp_path / "batch.xml")
    real_hold = workfolder.hold_folder

    def share_away(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as away:
        away.setattr(workfolder, "hold_folder", share_away)
        p.retry_stranded()
    assert workfolder.hold_folder is real_hold
    p.retry_stranded()
    ended = p.j.get(row)
    assert ended.state == "gone" and p.j.last_detail(row) == NOT_HAPPENED_GONE
    assert (s.outbox.path / "batch").is_dir()


def read_refused_once_settled(p: Pipeline, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The journal refuses the first read of the first row written `settling` after this,
    once (a disk I/O error): the list holds that row's id, then -1 once refused."""
    from daemon.errors import JournalError
    real_transition, real_get = p.j.transition, p.j.get
    refuse: list[int] = []

    def settled(row_id: int, state: str, *args: Any, **kwargs: Any) -> Any:
        real_transition(row_id, state, *args, **kwargs)
        if state == "settling" and not refuse:
            refuse.append(row_id)

    def read_refused(row_id: int) -> Any:
        if refuse == [row_id]:
            refuse.append(-1)  # once
            raise JournalError("cannot read the journal: disk I/O error")
        return real_get(row_id)

    monkeypatch.setattr(p.j, "transition", settled)
    monkeypatch.setattr(p.j, "get", read_refused)
    return refuse


def settling_refused(p: Pipeline, monkeypatch: pytest.MonkeyPatch, times: int = 1) -> list[int]:
    """The journal refuses the next `times` writes of a row `settling` (a full disk); the
    list empties as they are refused."""
    from daemon.errors import JournalError
    real_transition = p.j.transition
    refused = [1] * times

    def full_once(row_id: int, state: str, *args: Any, **kwargs: Any) -> Any:
        if state == "settling" and refused:
            refused.pop()
            raise JournalError("cannot write the journal: disk full")
        return real_transition(row_id, state, *args, **kwargs)

    monkeypatch.setattr(p.j, "transition", full_once)
    return refused
