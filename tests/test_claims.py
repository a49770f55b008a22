"""Claims (daemon/claims.py): a bundle the loop decided to send is recorded, moved into
processing and checked again, or put back when the move cannot be made; driven step by
step with a real journal, real files and the directory transport."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from claimed import folders, make, quiet_logs, step  # noqa: E402, F401 - quiet_logs: autouse
from helpers import drop_bundle, pdf_bytes, write  # noqa: E402

from daemon.scan import list_outbox  # noqa: E402


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


class TestUndoneClaim:
    def test_a_file_that_reappears_during_an_undone_claim_is_not_replaced(
            self, tmp_path: Path) -> None:
        """When a claim must be undone but a new file with the same name arrived meanwhile,
        the new file stays in the outbox and ours is quarantined beside it, not lost."""
        from daemon.claim import claim, work_dir_for
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()}, b"<Inv>old</Inv>")
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        work = work_dir_for(s.processing_dir, "INV-1", "ab" * 32)
        row = p.j.create("INV-1.xml", "claiming", bundle_id="ab" * 32, work_dir=str(work))
        claim(cand, work, with_marker=False)
        write(s.outbox.path / "INV-1.xml", b"<Inv>new</Inv>")  # the ERP drops a new version
        p._undo_claim(cand, row, work, "changed while being claimed")
        assert (s.outbox.path / "INV-1.xml").read_bytes() == b"<Inv>new</Inv>"
        [q] = folders(s.quarantine_dir)
        assert (q / "INV-1.xml").read_bytes() == b"<Inv>old</Inv>"
        assert (q / "INV-1" / "a.pdf").exists()  # its sidecar stays with it
        assert not (s.outbox.path / "INV-1").exists()
        assert json.loads((q / "reason.json").read_text())["reasons"][0]["code"] == \
            "changed-during-claim"
