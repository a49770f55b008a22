"""NAME.errors.txt beside a held bundle's invoice file (daemon/errorsfile.py): written
under invalid = "hold", gone with the bundle, never a person's file replaced, never a
FIFO opened; driven through the pipeline with a real journal and real files."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent))

from claimed import (  # noqa: E402, F401 - quiet_logs: autouse
    folders,
    make,
    quiet_logs,
    run_once,
    step,
)
from helpers import drop_bundle, pdf_bytes, without_blocking, write  # noqa: E402

from daemon.directory import DirectoryDeliverer  # noqa: E402
from daemon.scan import list_outbox  # noqa: E402


class TestErrorsFile:
    def test_hold_never_overwrites_a_persons_errors_file(self, tmp_path: Path) -> None:
        """Under invalid = "hold", a NAME.errors.txt that outboxd did not write is left as it
        is, and is not removed when the bundle passes."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        mine = write(s.outbox.path / "INV-1.errors.txt", b"my own notes")
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        assert run_once(p) == []
        assert mine.read_bytes() == b"my own notes"
        assert p.j.rows(("held",))

        write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes())
        assert len(run_once(p, now=2000.0)) == 1
        assert mine.read_bytes() == b"my own notes"

    def test_a_names_bidirectional_controls_are_shown_escaped_in_the_errors_file(
            self, tmp_path: Path) -> None:
        """An attachment "scan" + U+202E + "fdp.exe" reads "scanexe.pdf" on screen. The
        page shows the held bundle's error lines "as in NAME.errors.txt" with such a
        character as \\u202e; the errors file, which the clerk opens on the share, had it
        raw. It shows it as the page does."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"scan\u202efdp.exe": b""})
        assert run_once(p) == []
        text = (s.outbox.path / "INV-1.errors.txt").read_text("utf-8")
        assert "INV-1/scan\\u202efdp.exe" in text and "\u202e" not in text
        [row] = p.j.rows(("held",))
        assert any("scan\u202efdp.exe" in r["file"] for r in row.reasons)  # exact in the journal

    def test_the_errors_file_goes_when_the_held_invoice_file_leaves_the_outbox(
            self, tmp_path: Path) -> None:
        """Under invalid = "hold", a clerk who takes the held invoice file and its folder out
        of the outbox leaves no INV-1.errors.txt behind saying a bundle that is no longer
        there is held."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        [cand] = list_outbox(s.outbox).candidates.values()
        assert run_once(p) == []
        assert (s.outbox.path / "INV-1.errors.txt").exists()
        away = tmp_path / "away"
        away.mkdir()
        (s.outbox.path / "INV-1.xml").rename(away / "INV-1.xml")
        (s.outbox.path / "INV-1").rename(away / "INV-1")
        assert step(p, cand, 2000.0).gone
        assert sorted(e.name for e in s.outbox.path.iterdir() if e.name != ".outboxd") == []
        assert sorted(e.name for e in away.iterdir()) == ["INV-1", "INV-1.xml"]

    def test_the_errors_file_goes_when_the_held_invoice_file_left_while_stopped(
            self, tmp_path: Path) -> None:
        """As above, but the clerk took the held invoice file out while the daemon was
        stopped: the next start finds the held row gone and removes its INV-1.errors.txt
        (a person's file of that name is left alone)."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        drop_bundle(s.outbox.path, "INV-2", {"a.pdf": b""})
        assert run_once(p) == []
        assert (s.outbox.path / "INV-1.errors.txt").exists()
        write(s.outbox.path / "INV-2.errors.txt", b"my own notes")
        for name in ("INV-1.xml", "INV-1", "INV-2.xml", "INV-2"):
            (s.outbox.path / name).rename(tmp_path / name)
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold"})
        again.start(set())
        assert sorted(e.name for e in s.outbox.path.iterdir() if e.name != ".outboxd") == \
            ["INV-2.errors.txt"]
        assert [again.j.get(r).state for r in (1, 2)] == ["gone", "gone"]

    def test_a_held_bundle_quarantined_after_a_reload_leaves_no_errors_file(
            self, tmp_path: Path) -> None:
        """A bundle held under invalid = "hold" is quarantined once a reload sets invalid =
        "quarantine", even with its files unchanged; its INV-1.errors.txt does not stay
        behind in the outbox."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        assert run_once(p) == []
        assert (s.outbox.path / "INV-1.errors.txt").exists()
        p.reconfigure(s.model_copy(update={"policy": s.policy.model_copy(
            update={"invalid": "quarantine"})}), DirectoryDeliverer(tmp_path / "target"))
        run_once(p, now=2000.0)
        [q] = folders(s.quarantine_dir)
        assert (q / "INV-1.xml").exists()
        assert not (s.outbox.path / "INV-1.errors.txt").exists()

    def test_a_fifo_where_the_errors_file_goes_is_never_opened(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A FIFO put where NAME.errors.txt goes would block the loop on open (for good, if
        no one writes to it): under invalid = "hold" it is left alone, unopened, and the
        bundle is held. Also when it is swapped in just after a look found a regular file
        there (the audit's race, made certain here by that look answering "a file")."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        fifo = s.outbox.path / "INV-1.errors.txt"
        os.mkfifo(fifo)
        real_is_file = Path.is_file
        monkeypatch.setattr(Path, "is_file", lambda self: self == fifo or real_is_file(self))
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        without_blocking(lambda: run_once(p), fifo, "the loop")
        assert p.j.rows(("held",))
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    def test_a_held_bundle_whose_name_leaves_no_room_for_the_errors_file_is_still_held(
            self, tmp_path: Path) -> None:
        """Under invalid = "hold", an invoice file whose name is so long that
        NAME.errors.txt would pass the file system's 255 bytes: the bundle is held with
        its reasons in the journal (status, status page), one error line says why there
        is no errors file, and no temp file is left in the outbox."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        name = "L" * 246
        drop_bundle(s.outbox.path, name, {"a.pdf": b""})
        with capture_logs() as logs:
            assert run_once(p) == []
        [held] = p.j.rows(("held",))
        assert held.invoice_file == name + ".xml"
        assert [r["code"] for r in held.reasons] == ["empty-file"]
        assert [e.name for e in s.outbox.path.iterdir()
                if ".tmp-" in e.name or e.name.endswith(".errors.txt")] == []
        [line] = [e for e in logs if "errors file" in e["event"]]
        assert line["log_level"] == "error" and line["invoice_file"] == name + ".xml"
        assert "shorten" in line["fix"]
        assert line["bundle_id"] == held.bundle_id and line["invoice_ids"] == [name]

    @pytest.mark.parametrize("invalid", ["hold", "quarantine"])
    def test_a_sidecar_folder_named_in_latin1_holds_or_quarantines_the_bundle(
            self, tmp_path: Path, invalid: str) -> None:
        """A sidecar subfolder whose name is not UTF-8 (b'Bilagor-\\xe5'): under "hold"
        the bundle is held and INV-7.errors.txt names INV-7/Bilagor-\\xe5; under
        "quarantine" it is quarantined with that reason and the folder travels with it.
        The raw name once crashed the journal (every start) or the errors file."""
        p, s = make(tmp_path, policy={"invalid": invalid})
        raw = os.path.join(os.fsencode(s.outbox.path), b"INV-7", b"Bilagor-\xe5", b"b.pdf")
        drop_bundle(s.outbox.path, "INV-7", {"a.pdf": pdf_bytes()})
        write(Path(os.fsdecode(raw)), pdf_bytes())
        run_once(p)
        [row] = p.j.rows(("held" if invalid == "hold" else "quarantined",))
        assert [(r["code"], r["file"]) for r in row.reasons] == [
            ("bad-name", "INV-7/Bilagor-\\xe5")]
        if invalid == "hold":
            text = (s.outbox.path / "INV-7.errors.txt").read_text(encoding="utf-8")
            assert "INV-7/Bilagor-\\xe5: the name is not valid UTF-8" in text
        else:
            [q] = folders(s.quarantine_dir)
            assert "INV-7/Bilagor-\\xe5" in (q / "REASON.txt").read_text(encoding="utf-8")
            assert os.path.isfile(os.path.join(os.fsencode(q), b"INV-7", b"Bilagor-\xe5",
                                               b"b.pdf"))
            assert not (s.outbox.path / "INV-7.xml").exists()
