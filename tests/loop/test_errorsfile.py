"""NAME.errors.txt beside a held bundle's invoice file (daemon/loop/errorsfile.py): written
under invalid = "hold", gone with the bundle, never a person's file replaced, never a
FIFO opened; driven through the pipeline with a real journal and real files."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import (  # noqa: E402, F401 - quiet_logs: autouse
    folders,
    make,
    quiet_logs,
    run_once,
    step,
)
from helpers import drop_bundle, pdf_bytes, without_blocking, write  # noqa: E402

from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.directory import DirectoryDeliverer  # noqa: E402
from daemon.loop import errorsfile  # noqa: E402
from daemon.loop.pipeline import IDLE  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


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

    def test_the_errors_file_goes_with_a_held_bundle_changed_then_taken_out_while_stopped(
            self, tmp_path: Path) -> None:
        """A held bundle's file changes (the clerk begins to mend it): it is settling
        again when outboxd stops. Its files are taken out of the outbox meanwhile: the next
        start ends its row and removes INV-1.errors.txt. Only a row still `held` had its
        errors file removed: the file stayed, saying a bundle that is no longer there is
        held, for good."""
        p, s = make(tmp_path, outbox={"settle_seconds": 30}, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        [cand] = list_outbox(s.outbox).candidates.values()
        step(p, cand, 1000.0)
        assert step(p, cand, 1031.0) == IDLE
        assert [r.invoice_file for r in p.j.rows(("held",))] == ["INV-1.xml"]
        assert (s.outbox.path / "INV-1.errors.txt").exists()
        write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes())  # being mended
        step(p, cand, 1040.0)
        assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
        p.j.close()
        for name in ("INV-1.xml", "INV-1"):
            (s.outbox.path / name).rename(tmp_path / name)
        again, _ = make(tmp_path, outbox={"settle_seconds": 30}, policy={"invalid": "hold"})
        again.start(set())
        assert not (s.outbox.path / "INV-1.errors.txt").exists()
        assert again.j.get(1).state == "gone"

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
        the bundle is held and INV-7.errors.txt names INV-7/Bilagor-\\udce5; under
        "quarantine" it is quarantined with that reason and the folder travels with it.
        The raw name once crashed the journal (every start) or the errors file."""
        p, s = make(tmp_path, policy={"invalid": invalid})
        raw = os.path.join(os.fsencode(s.outbox.path), b"INV-7", b"Bilagor-\xe5", b"b.pdf")
        drop_bundle(s.outbox.path, "INV-7", {"a.pdf": pdf_bytes()})
        write(Path(os.fsdecode(raw)), pdf_bytes())
        run_once(p)
        [row] = p.j.rows(("held" if invalid == "hold" else "quarantined",))
        assert [(r["code"], r["file"]) for r in row.reasons] == [
            ("bad-name", "INV-7/Bilagor-\\udce5")]
        if invalid == "hold":
            text = (s.outbox.path / "INV-7.errors.txt").read_text(encoding="utf-8")
            assert "INV-7/Bilagor-\\udce5: the name is not valid UTF-8" in text
        else:
            [q] = folders(s.quarantine_dir)
            assert "INV-7/Bilagor-\\udce5" in (q / "REASON.txt").read_text(encoding="utf-8")
            assert os.path.isfile(os.path.join(os.fsencode(q), b"INV-7", b"Bilagor-\xe5",
                                               b"b.pdf"))
            assert not (s.outbox.path / "INV-7.xml").exists()


def _sections(text: str) -> dict[str, list[str]]:
    """The lines of a NAME.errors.txt under each "== FILE ==" heading."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== ") and line.endswith(" =="):
            current = found.setdefault(line[3:-3], [])
        elif current is not None and line and not line.startswith("# written by outboxd"):
            current.append(line)
    return found


def _two_held(tmp_path: Path) -> tuple[Any, Settings, Path]:
    """Under invalid = "hold", INV-1.xml (empty) and INV-1.pdf (encrypted), no sidecar:
    two bundles of one NAME held for different reasons, one INV-1.errors.txt. Once
    good, a file is sent at once (unattached = "send")."""
    p, s = make(tmp_path, policy={"invalid": "hold", "unattached": "send"})
    write(s.outbox.path / "INV-1.xml", b"")
    write(s.outbox.path / "INV-1.pdf", pdf_bytes(encrypt=True))
    assert run_once(p) == []
    return p, s, s.outbox.path / "INV-1.errors.txt"


XML_LINE = "INV-1.xml: the invoice file is empty — export it again"


class TestOneNameTwoInvoiceFiles:
    """INV-1.xml and INV-1.pdf (the default invoice_patterns take both) share
    INV-1.errors.txt: it explains every held bundle of that NAME, a section for each."""

    def test_both_held_bundles_of_one_name_are_explained_each_under_its_file(
            self, tmp_path: Path) -> None:
        """Held for different reasons, each bundle's errors are in the one errors file,
        under its invoice file's name: neither overwrites the other's."""
        p, _, errors_file = _two_held(tmp_path)
        text = errors_file.read_text("utf-8")
        assert text.startswith(errorsfile.ERRORS_HEADER_MANY)
        sections = _sections(text)
        assert list(sections) == ["INV-1.pdf", "INV-1.xml"]
        assert sections["INV-1.xml"] == [XML_LINE]
        assert len(sections["INV-1.pdf"]) == 1
        assert sections["INV-1.pdf"][0].startswith("INV-1.pdf: is an encrypted PDF")
        assert {r.invoice_file for r in p.j.rows(("held",))} == {"INV-1.xml", "INV-1.pdf"}

    def test_when_one_passes_the_errors_file_still_explains_the_other(
            self, tmp_path: Path) -> None:
        """INV-1.pdf is replaced by a good PDF and passes and is sent:
        INV-1.errors.txt stays, now the single-bundle text for INV-1.xml."""
        p, s, errors_file = _two_held(tmp_path)
        write(s.outbox.path / "INV-1.pdf", pdf_bytes())
        assert len(run_once(p, now=2000.0)) == 1
        assert errorsfile.without_mark(errors_file.read_text("utf-8")) == \
            errorsfile.ERRORS_HEADER + XML_LINE + "\n"
        assert [r.invoice_file for r in p.j.rows(("held",))] == ["INV-1.xml"]

    def test_when_one_leaves_the_outbox_the_errors_file_still_explains_the_other(
            self, tmp_path: Path) -> None:
        """The clerk takes INV-1.pdf out of the outbox: INV-1.errors.txt stays for
        INV-1.xml; once that leaves too, the errors file goes."""
        p, s, errors_file = _two_held(tmp_path)
        cands = list_outbox(s.outbox).candidates
        (s.outbox.path / "INV-1.pdf").rename(tmp_path / "INV-1.pdf")
        assert step(p, cands["INV-1.pdf"], 2000.0).gone
        assert errorsfile.without_mark(errors_file.read_text("utf-8")) == \
            errorsfile.ERRORS_HEADER + XML_LINE + "\n"
        (s.outbox.path / "INV-1.xml").rename(tmp_path / "INV-1.xml")
        assert step(p, cands["INV-1.xml"], 2001.0).gone
        assert not errors_file.exists()

    def test_one_taken_out_while_stopped_leaves_the_others_explanation(
            self, tmp_path: Path) -> None:
        """INV-1.pdf is taken out while the daemon is stopped: the next start rewrites
        INV-1.errors.txt for INV-1.xml, still held, rather than removing it."""
        p, s, errors_file = _two_held(tmp_path)
        (s.outbox.path / "INV-1.pdf").rename(tmp_path / "INV-1.pdf")
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold", "unattached": "send"})
        again.start({"INV-1.xml"})
        assert errorsfile.without_mark(errors_file.read_text("utf-8")) == \
            errorsfile.ERRORS_HEADER + XML_LINE + "\n"
        assert [r.invoice_file for r in again.j.rows(("held",))] == ["INV-1.xml"]

    def test_a_held_file_read_again_after_a_restart_keeps_the_others_section(
            self, tmp_path: Path) -> None:
        """After a restart, INV-1.xml is read again and still held: the errors file keeps
        INV-1.pdf's section, which the journal holds, though INV-1.pdf was not read yet."""
        p, s, errors_file = _two_held(tmp_path)
        before = errors_file.read_text("utf-8")
        errors_file.unlink()  # so that the rewrite is seen
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold", "unattached": "send"})
        again.start({"INV-1.xml", "INV-1.pdf"})
        assert step(again, list_outbox(s.outbox).candidates["INV-1.xml"], 3000.0) == IDLE
        assert errors_file.read_text("utf-8") == before

    def test_a_persons_file_of_the_name_is_left_alone_while_both_are_held(
            self, tmp_path: Path) -> None:
        """A NAME.errors.txt that outboxd did not write stays as it is while two bundles
        of that NAME are held, and after one of them passes."""
        p, s = make(tmp_path, policy={"invalid": "hold", "unattached": "send"})
        mine = write(s.outbox.path / "INV-1.errors.txt", b"my own notes")
        write(s.outbox.path / "INV-1.xml", b"")
        write(s.outbox.path / "INV-1.pdf", pdf_bytes(encrypt=True))
        assert run_once(p) == []
        write(s.outbox.path / "INV-1.pdf", pdf_bytes())
        assert len(run_once(p, now=2000.0)) == 1
        assert mine.read_bytes() == b"my own notes"
        assert [r.invoice_file for r in p.j.rows(("held",))] == ["INV-1.xml"]


def clerk_saves_at_look(monkeypatch: pytest.MonkeyPatch, path: Path, nth: int) -> list[int]:
    """Right after outboxd's `nth` look at NAME.errors.txt from now on (it judged the
    file its own), a clerk saves a file of that name: a new file renamed over it, as an
    editor saves. The looks made."""
    real = errorsfile._judge
    looks: list[int] = []

    def judge(p: Path) -> Any:
        looks.append(1)
        judged = real(p)
        if len(looks) == nth:
            draft = path.with_name("draft.txt")
            draft.write_bytes(b"my own notes")
            os.rename(draft, path)
        return judged

    monkeypatch.setattr(errorsfile, "_judge", judge)
    return looks


class TestErrorsFileRace:
    def test_a_clerks_file_saved_while_the_errors_file_is_rewritten_is_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A held bundle's errors change (another empty attachment): outboxd judges its
        INV-1.errors.txt its own, and a clerk saves a file of that name before the
        rename. The clerk's file stays byte for byte, no temp is left, and the log says
        outboxd's explanation is not written there."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        assert run_once(p) == []
        errors = s.outbox.path / "INV-1.errors.txt"
        assert errors.read_text("utf-8").startswith(errorsfile.ERRORS_HEADER)
        write(s.outbox.path / "INV-1" / "b.pdf", b"")
        looks = clerk_saves_at_look(monkeypatch, errors, nth=2)  # replace_ours's look
        with capture_logs() as logs:
            assert run_once(p, now=2000.0) == []
        assert len(looks) >= 3  # looked at again after the exchange back
        assert errors.read_bytes() == b"my own notes"
        assert sorted(e.name for e in s.outbox.path.iterdir() if e.name.startswith(".")
                      and e.name != ".outboxd") == []
        assert any(e["event"].startswith("not replacing a file outboxd did not write")
                   for e in logs)

    def test_a_clerks_file_saved_while_the_errors_file_is_removed_is_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The held bundle is mended and sent: outboxd judges INV-1.errors.txt its own
        to remove, and a clerk saves a file of that name before the removal. The clerk's
        file stays byte for byte, and nothing else is left beside it."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        assert run_once(p) == []
        errors = s.outbox.path / "INV-1.errors.txt"
        write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes())
        clerk_saves_at_look(monkeypatch, errors, nth=1)
        assert len(run_once(p, now=2000.0)) == 1
        assert errors.read_bytes() == b"my own notes"
        assert sorted(e.name for e in s.outbox.path.iterdir() if e.name != ".outboxd") == \
            ["INV-1.errors.txt"]


def test_the_sections_of_an_errors_file_of_several_held_files_are_in_name_order() -> None:
    """INV-1.xml and INV-1.pdf held: one section each, in name order whichever was held
    first, so the text outboxd writes is the same after a restart that met them the
    other way round (and is not taken for a change to write again)."""
    from daemon.bundle import Finding

    errors = (Finding("empty-file", "INV-1/a.pdf", "the file is empty"),)
    one = errorsfile.errors_text({"INV-1.xml": errors, "INV-1.pdf": errors})
    assert one == errorsfile.errors_text({"INV-1.pdf": errors, "INV-1.xml": errors})
    assert one.index("== INV-1.pdf ==") < one.index("== INV-1.xml ==")
