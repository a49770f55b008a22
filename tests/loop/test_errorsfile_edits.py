"""NAME.errors.txt's loose ends (daemon/loop/errorsfile.py): a clerk's notes typed into it are
kept as NAME.errors.txt.edited before outboxd replaces or removes it; the temps a kill
left of it are swept at start; a file saved at its name while outboxd replaces or removes
its own is reported as kept, not as a full share. Real journal, real files."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import make, quiet_logs, run_once, step  # noqa: E402, F401 - quiet_logs: autouse
from helpers import drop_bundle, pdf_bytes, temps_locked_as_made, write  # noqa: E402

from daemon import logs  # noqa: E402
from daemon.fs import ourfiles  # noqa: E402
from daemon.fs.temps import create_locked, temp_prefix  # noqa: E402
from daemon.journal import Journal  # noqa: E402
from daemon.loop import errorsfile  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402

NOTES = "\nmy note: Jane will send the signed PDF on Monday\n"


def _held(tmp_path: Path) -> tuple[Pipeline, Path, Path]:
    """A held INV-1 (an empty attachment): the pipeline, the outbox, its errors file."""
    p, s = make(tmp_path, policy={"invalid": "hold"})
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
    assert run_once(p) == []
    errors = s.outbox.path / "INV-1.errors.txt"
    assert errors.read_text("utf-8").startswith(errorsfile.ERRORS_HEADER)
    return p, s.outbox.path, errors


def _hidden(outbox: Path) -> list[str]:
    return sorted(e.name for e in outbox.iterdir() if e.name.startswith(".")
                  and e.name != ".outboxd")


class TestEditedErrorsFile:
    def test_notes_typed_into_the_errors_file_are_kept_when_it_is_rewritten(
            self, tmp_path: Path) -> None:
        """A clerk types a note below outboxd's lines in INV-1.errors.txt; then the held
        bundle's errors change. outboxd writes its new explanation there, and the clerk's
        edited file is kept beside it as INV-1.errors.txt.edited, with a warning naming
        both. Before, the note was replaced without a word."""
        p, outbox, errors = _held(tmp_path)
        edited = errors.read_text("utf-8") + NOTES
        errors.write_text(edited, "utf-8")
        write(outbox / "INV-1" / "b.pdf", b"")  # another error: the file is rewritten
        with capture_logs() as said:
            assert run_once(p, now=2000.0) == []
        assert (outbox / "INV-1.errors.txt.edited").read_text("utf-8") == edited
        now = errors.read_text("utf-8")
        assert now.startswith(errorsfile.ERRORS_HEADER) and "b.pdf" in now and NOTES not in now
        [warned] = [e for e in said if e["event"].startswith("the errors file was edited")]
        assert warned["file"] == "INV-1.errors.txt"
        assert warned["kept_as"] == "INV-1.errors.txt.edited"
        assert warned["log_level"] == "warning"
        assert _hidden(outbox) == []

    def test_notes_typed_into_the_errors_file_are_kept_when_the_bundle_passes(
            self, tmp_path: Path) -> None:
        """The clerk's note is in INV-1.errors.txt when the bundle is mended and sent: the
        errors file goes, and the edited copy stays as INV-1.errors.txt.edited."""
        p, outbox, errors = _held(tmp_path)
        edited = errors.read_text("utf-8") + NOTES
        errors.write_text(edited, "utf-8")
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        assert len(run_once(p, now=2000.0)) == 1
        assert not errors.exists()
        assert (outbox / "INV-1.errors.txt.edited").read_text("utf-8") == edited

    def test_an_earlier_kept_copy_is_never_replaced(self, tmp_path: Path) -> None:
        """A copy kept earlier (INV-1.errors.txt.edited) stays as it is; the next edited
        file is kept at a free name beside it."""
        p, outbox, errors = _held(tmp_path)
        write(outbox / "INV-1.errors.txt.edited", b"kept last week")
        edited = errors.read_text("utf-8") + NOTES
        errors.write_text(edited, "utf-8")
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        assert len(run_once(p, now=2000.0)) == 1
        assert (outbox / "INV-1.errors.txt.edited").read_bytes() == b"kept last week"
        assert (outbox / "INV-1.errors.txt.edited-2").read_text("utf-8") == edited

    def test_an_unedited_errors_file_goes_without_a_copy(self, tmp_path: Path) -> None:
        """The errors file as outboxd wrote it is removed when the bundle passes, with no
        copy and no warning: only an edit is kept."""
        p, outbox, errors = _held(tmp_path)
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        with capture_logs() as said:
            assert len(run_once(p, now=2000.0)) == 1
        assert sorted(e.name for e in outbox.iterdir() if e.name != ".outboxd") == []
        assert not [e for e in said if e["log_level"] == "warning"]

    def test_notes_typed_while_outboxd_was_stopped_are_kept(self, tmp_path: Path) -> None:
        """outboxd knows what it wrote from its journal: a note typed into INV-1.errors.txt
        while it was stopped is kept when, after the start, the bundle passes; and when
        the held invoice file was taken out meanwhile, the start keeps it too."""
        p, outbox, errors = _held(tmp_path)
        drop_bundle(outbox, "INV-2", {"a.pdf": b""})
        assert run_once(p) == []
        for name in ("INV-1", "INV-2"):
            path = outbox / f"{name}.errors.txt"
            path.write_text(path.read_text("utf-8") + NOTES, "utf-8")
        for name in ("INV-2.xml", "INV-2"):
            (outbox / name).rename(tmp_path / name)
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold"})
        again.start({"INV-1.xml"})
        assert not (outbox / "INV-2.errors.txt").exists()
        assert (outbox / "INV-2.errors.txt.edited").read_text("utf-8").endswith(NOTES)
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        assert len(run_once(again, now=2000.0)) == 1
        assert not errors.exists()
        assert (outbox / "INV-1.errors.txt.edited").read_text("utf-8").endswith(NOTES)

    def test_an_errors_file_unedited_across_a_restart_goes_without_a_copy(
            self, tmp_path: Path) -> None:
        """After a restart, outboxd's own unedited errors file is still known as its own
        (by the journal): removed once the bundle passes, with no copy."""
        p, outbox, errors = _held(tmp_path)
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold"})
        again.start({"INV-1.xml"})
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        assert len(run_once(again, now=2000.0)) == 1
        assert sorted(e.name for e in outbox.iterdir() if e.name != ".outboxd") == []


    def test_an_errors_file_that_says_what_it_should_is_not_written_again_at_a_restart(
            self, tmp_path: Path) -> None:
        """A restart decides the held bundle again with the same errors: the file, which
        says that already, stays as it is (the same file, untouched), not replaced by a
        copy of itself at every start."""
        p, outbox, errors = _held(tmp_path)
        before = os.stat(errors)
        p.j.close()
        again = _restarted(tmp_path, outbox)
        assert run_once(again, now=2000.0) == []
        after = os.stat(errors)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    def test_an_earlier_versions_errors_file_showing_a_zero_width_space_raw_is_no_edit(
            self, tmp_path: Path) -> None:
        """An earlier version wrote a zero-width space in a name into NAME.errors.txt as it
        is (invisible); this one writes it as \\u200b. After the upgrade that file is still
        outboxd's unedited text: rewritten with no .edited copy and no warning telling
        the clerks it was edited."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a\u200b.pdf": b""})
        assert run_once(p) == []
        errors = s.outbox.path / "INV-1.errors.txt"
        now = errors.read_text("utf-8")
        assert "a\\u200b.pdf" in now and "\u200b" not in now
        errors.write_text(now.replace("\\u200b", "\u200b"), "utf-8")  # as it was written
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold"})
        again.start({"INV-1.xml"})
        write(s.outbox.path / "INV-1" / "b.pdf", b"")  # another error: the file is rewritten
        with capture_logs() as said:
            assert run_once(again, now=2000.0) == []
        assert "b.pdf" in errors.read_text("utf-8")
        assert not (s.outbox.path / "INV-1.errors.txt.edited").exists()
        assert not [e for e in said if e["event"].startswith("the errors file was edited")]


class Killed(BaseException):
    """The daemon's end at the crash point, as SIGKILL would end it there."""


SETTLING = {"policy": {"invalid": "hold"}, "outbox": {"settle_seconds": 5}}


def _killed_before_the_held_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   settle: float = 0) -> tuple[Path, Path]:
    """INV-1 (an empty attachment) decided held: its errors file is written, and the daemon
    dies before the journal records the held state (with `settle`, the row says
    "settling"; with none there is no row yet). The outbox and the errors file."""
    p, s = make(tmp_path, policy={"invalid": "hold"}, outbox={"settle_seconds": settle})
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
    if settle:
        assert run_once(p, now=1000.0 - settle) == []
        assert [r.state for r in p.j.rows(("settling",))] == ["settling"]
    recorded = Pipeline._live

    def live(self: Pipeline, row: Any, key: str, state: str, *args: Any, **kw: Any) -> None:
        if state == "held":
            raise Killed
        recorded(self, row, key, state, *args, **kw)

    monkeypatch.setattr(Pipeline, "_live", live)
    with pytest.raises(Killed):
        run_once(p)
    monkeypatch.setattr(Pipeline, "_live", recorded)
    p.j.close()
    errors = s.outbox.path / "INV-1.errors.txt"
    assert errors.read_text("utf-8").startswith(errorsfile.ERRORS_HEADER)
    journal = Journal(s.journal_path)
    assert journal.rows(("held",)) == []  # the crash point: no record of it
    journal.close()
    return s.outbox.path, errors


def _restarted(tmp_path: Path, outbox: Path, settle: float = 0) -> Pipeline:
    again, _ = make(tmp_path, policy={"invalid": "hold"}, outbox={"settle_seconds": settle})
    again.start({e.name for e in outbox.glob("*.xml")})
    return again


class TestAfterACrashBeforeTheRecord:
    """A crash between writing NAME.errors.txt and the journal's record of the held state
    leaves outboxd's text there with no record of it: outboxd still knows it as its own
    (by its mark), so it keeps no .edited copy of it, and takes it away."""

    def test_its_errors_file_goes_without_a_copy_when_the_mended_bundle_passes(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The clerk mends the bundle while outboxd is down: at the next start it passes
        and is sent, and the errors file goes with no INV-1.errors.txt.edited and no
        warning (before: a copy of outboxd's own text, "edited")."""
        outbox, errors = _killed_before_the_held_record(tmp_path, monkeypatch)
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        again = _restarted(tmp_path, outbox)
        with capture_logs() as said:
            assert len(run_once(again, now=2000.0)) == 1
        assert sorted(e.name for e in outbox.iterdir() if e.name != ".outboxd") == []
        assert not [e for e in said if e["log_level"] == "warning"]

    def test_its_errors_file_goes_when_the_bundle_left_the_outbox_meanwhile(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The clerk takes INV-1 out while outboxd is down: the start removes the errors
        file no row explains (before: it said "held" for good), with no copy."""
        outbox, errors = _killed_before_the_held_record(tmp_path, monkeypatch)
        for name in ("INV-1.xml", "INV-1"):
            (outbox / name).rename(tmp_path / name)
        _restarted(tmp_path, outbox)
        assert sorted(e.name for e in outbox.iterdir() if e.name != ".outboxd") == []

    def test_its_errors_file_goes_when_the_bundle_leaves_the_outbox_after_the_start(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Its row says "settling" (no reasons) after the restart; the clerk then takes
        INV-1.xml out: the errors file goes with it (before: only a held row's did)."""
        outbox, errors = _killed_before_the_held_record(tmp_path, monkeypatch, settle=5)
        again = _restarted(tmp_path, outbox, settle=5)
        [cand] = list_outbox(again.s.outbox).candidates.values()
        (outbox / "INV-1.xml").rename(tmp_path / "INV-1.xml")
        assert step(again, cand, 2000.0).gone
        assert not errors.exists()
        assert sorted(e.name for e in outbox.iterdir() if e.name != ".outboxd") == ["INV-1"]

    def test_notes_typed_into_it_are_still_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A note typed above the mark makes the text no longer outboxd's: kept as
        INV-1.errors.txt.edited when the mended bundle passes; and an errors file no row
        explains with a note in it stays where it is at a start, as the clerk left it."""
        outbox, errors = _killed_before_the_held_record(tmp_path, monkeypatch)
        text = errors.read_text("utf-8")
        at = text.index("\n# written by outboxd")
        edited = text[:at] + NOTES + text[at:]
        errors.write_text(edited, "utf-8")
        write(outbox / "INV-2.errors.txt", edited.encode())
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        again = _restarted(tmp_path, outbox)
        assert len(run_once(again, now=2000.0)) == 1
        assert not errors.exists()
        assert (outbox / "INV-1.errors.txt.edited").read_text("utf-8") == edited
        assert (outbox / "INV-2.errors.txt").read_text("utf-8") == edited


def test_an_errors_file_written_before_marks_is_known_by_the_journal(tmp_path: Path) -> None:
    """An outboxd before marks wrote the errors file without one: after the upgrade its
    text is still known as outboxd's by the journal, and removed with no copy once the
    bundle passes."""
    p, outbox, errors = _held(tmp_path)
    errors.write_text(errorsfile.without_mark(errors.read_text("utf-8")), "utf-8")
    p.j.close()
    again = _restarted(tmp_path, outbox)
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    assert len(run_once(again, now=2000.0)) == 1
    assert sorted(e.name for e in outbox.iterdir() if e.name != ".outboxd") == []


class TestLeftoverTemps:
    def test_a_killed_writers_temp_is_swept_and_look_alikes_and_live_temps_stay(
            self, tmp_path: Path) -> None:
        """A temp of INV-1.errors.txt left unlocked (its writer was killed) is removed; a
        clerk's `.INV-1.errors.txt.notes`, a temp a live writer holds (locked), and the
        status page's own temps are left alone. A NAME long enough that its temp name is
        cut is swept by its invoice file's name."""
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        left = write(outbox / ".INV-1.errors.txt.tmp-0123456789ab", b"# outboxd: half")
        gone_name = write(outbox / ".INV-9.errors.txt.tmp-abcdefabcdef", b"")  # file gone
        notes = write(outbox / ".INV-1.errors.txt.notes", b"mine")
        other = write(outbox / ".INV-1.errors.txt.tmp-0123", b"not outboxd's shape")
        long_name = "L" * 230 + ".xml"
        cut = write(outbox / f"{temp_prefix('L' * 230 + '.errors.txt')}00112233aabb", b"")
        assert not cut.name.endswith(".errors.txt.tmp-00112233aabb")  # cut to fit
        live = outbox / ".INV-2.errors.txt.tmp-fedcba987654"
        fd = create_locked(live)
        try:
            errorsfile.drop_unfinished_errors(outbox, ["INV-1.xml", long_name])
            assert live.exists()
        finally:
            os.close(fd)
        assert not left.exists() and not gone_name.exists() and not cut.exists()
        assert notes.read_bytes() == b"mine" and other.exists()

    def test_a_start_works_out_temp_names_only_for_names_long_enough_to_be_cut(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """20,000 invoice files of usual names (and one of 45 characters, 41 of them of 4
        UTF-8 bytes: as long as a name surely whole may be) cost no temp name at start:
        only a name longer than that has its two worked out, and a NAME whose temp names
        are cut is still swept by them (182 bytes before .errors.txt.edited fit in 200,
        183 do not)."""
        worked_out: list[str] = []

        def counted(name: str) -> str:
            worked_out.append(name)
            return temp_prefix(name)

        monkeypatch.setattr(errorsfile, "temp_prefix", counted)
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        fits, cut = "L" * 182 + ".xml", "L" * 183 + ".xml"
        cut_temp = write(outbox / f"{temp_prefix(cut[:-4] + '.errors.txt')}00112233aabb", b"")
        names = [f"INV-{n:06d}.xml" for n in range(20_000)] + ["\U0001d11e" * 41 + ".xml"]
        errorsfile.drop_unfinished_errors(outbox, names, listed={})
        assert worked_out == []
        errorsfile.drop_unfinished_errors(outbox, [*names, fits, cut])
        assert sorted(worked_out) == sorted(n[:-4] + errorsfile.ERRORS_SUFFIX + edited
                                            for n in (fits, cut)
                                            for edited in ("", errorsfile.EDITED_SUFFIX))
        assert not cut_temp.exists()

    def test_a_killed_write_of_an_edited_copy_leaves_no_temp(self, tmp_path: Path) -> None:
        """The copy of an edited errors file is written under a temp name too
        (`.INV-1.errors.txt.edited.tmp-…`, or `….edited-2.tmp-…` beside an earlier
        copy): one a kill left is swept like the errors file's own, for any NAME and for
        a NAME long enough that its temp name is cut; the kept copies themselves stay."""
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        left = write(outbox / ".INV-1.errors.txt.edited.tmp-0123456789ab", b"# outboxd: x")
        second = write(outbox / ".INV-9.errors.txt.edited-2.tmp-abcdefabcdef", b"")
        long_name = "L" * 230 + ".xml"
        cut = write(outbox / f"{temp_prefix('L' * 230 + '.errors.txt.edited')}00112233aabb",
                    b"")
        kept = write(outbox / "INV-1.errors.txt.edited", b"# outboxd: mine")
        kept2 = write(outbox / "INV-1.errors.txt.edited-2", b"# outboxd: mine too")
        errorsfile.drop_unfinished_errors(outbox, ["INV-1.xml", long_name])
        assert not left.exists() and not second.exists() and not cut.exists()
        assert kept.exists() and kept2.exists()

    def test_a_start_sweeps_the_temps_a_killed_errors_file_write_left(
            self, tmp_path: Path) -> None:
        """The pipeline's start (the daemon's, after its listing) removes a temp of an
        errors file that a kill mid-write left in the outbox, and leaves a clerk's file
        of a like name."""
        p, outbox, _errors = _held(tmp_path)
        left = write(outbox / ".INV-1.errors.txt.tmp-0123456789ab", b"# outboxd: half")
        notes = write(outbox / ".INV-1.errors.txt.notes", b"mine")
        p.j.close()
        again, _ = make(tmp_path, policy={"invalid": "hold"})
        again.start({"INV-1.xml"})
        assert not left.exists()
        assert notes.read_bytes() == b"mine"


class TestSavedMeanwhile:
    def test_two_files_saved_while_the_errors_file_is_removed_are_reported_as_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The held bundle is mended: outboxd moves its INV-1.errors.txt aside to remove
        it, but a clerk had saved a file there just before, and saves another right after.
        Both are kept; the log says so and what to do (rename the kept one if it should
        not be there), not "check the outbox's free space and permissions"."""
        p, outbox, errors = _held(tmp_path)
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        real = ourfiles.rename_noreplace
        calls: list[Path] = []

        def clerk_saves_around(src: Path, dst: Path) -> None:
            calls.append(src)
            if len(calls) == 1 and src == errors:
                write(errors, b"first save")  # after outboxd's look: not the file judged
                real(src, dst)
                write(errors, b"second save")  # before the rename back
                return
            real(src, dst)

        monkeypatch.setattr(ourfiles, "rename_noreplace", clerk_saves_around)
        with capture_logs() as said:
            assert len(run_once(p, now=2000.0)) == 1
        assert errors.read_bytes() == b"second save"
        assert (outbox / "INV-1.errors.txt-2").read_bytes() == b"first save"
        [told] = [e for e in said if e.get("file") == "INV-1.errors.txt"]
        assert told["log_level"] == "warning"
        assert "kept" in told["event"] and "INV-1.errors.txt-2" in told["error"]
        assert "rename or remove the kept file" in told["fix"]
        assert "free space" not in told["fix"]

    def test_an_errors_file_failure_of_the_share_still_says_to_check_it(
            self, tmp_path: Path) -> None:
        """A full outbox or a quota says to free space or raise the quota there; any other
        failure of the share (here: permission denied) to check its free space and
        permissions; a name too long says to shorten it."""
        with capture_logs() as said:
            for code in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.ENAMETOOLONG):
                errorsfile.report_failure(logs.get(), tmp_path / "INV-1.errors.txt",
                                          OSError(code, os.strerror(code)))
        fixes = [e["fix"] for e in said]
        assert all(e["log_level"] == "error" for e in said)
        for full in fixes[:2]:
            assert "free space on the outbox's file system" in full and "quota" in full
            assert "by itself" in full
        assert fixes[2] == ("check the outbox's free space and permissions; outboxd tries "
                            "again by itself")
        assert fixes[3] == "shorten the invoice file's name"


class TestAfterAFailedWrite:
    @pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
    def test_an_errors_file_the_full_share_refused_is_written_once_space_is_back(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """The outbox is full (or the quota used up) when a bundle is held: its errors
        file cannot be written, which is said once. The bundle does not change, so no
        event comes; once space is back the file is written all the same, by the try
        that the step asked for rescan_seconds later (a stand-in for the full disk,
        injected where the file is written: tests/faults/test_full_share.py has it on
        a real full file system)."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        errors = s.outbox.path / "INV-1.errors.txt"
        real = errorsfile.replace_ours

        def full(*args: object, **kwargs: object) -> os.stat_result:
            raise OSError(code, os.strerror(code), str(errors))

        monkeypatch.setattr(errorsfile, "replace_ours", full)
        [cand] = list_outbox(s.outbox).candidates.values()
        with capture_logs() as said:
            first = step(p, cand, 1000.0)
            again = step(p, cand, first.at or 1000.0)  # still full: tried, not said again
        assert first.at == again.at - 30.0 == 1000.0 + 30.0  # rescan_seconds on
        assert not errors.exists()
        told = [e for e in said if "errors file" in e["event"]]
        assert len(told) == 1 and os.strerror(code) in told[0]["error"], said
        assert [r.state for r in p.j.unfinished()] == ["held"]
        monkeypatch.setattr(errorsfile, "replace_ours", real)
        with capture_logs() as said:
            done = step(p, cand, again.at or 0.0)
        assert errors.read_text("utf-8").startswith(errorsfile.ERRORS_HEADER)
        assert done.at is None  # written: nothing more to try
        assert [e["event"] for e in said] == [
            "errors file beside the invoice file written now"]

    @pytest.mark.parametrize("code", [errno.EAGAIN, errno.ENAMETOOLONG])
    def test_an_errors_file_failure_that_time_does_not_mend_sets_no_timer(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """A file changed at each try (EAGAIN) or a name too long is not tried again on
        a timer, as a full share is: the same try would fail the same way every
        rescan_seconds. It is tried at the bundle's next change."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})

        def failing(*args: object, **kwargs: object) -> os.stat_result:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(errorsfile, "replace_ours", failing)
        [cand] = list_outbox(s.outbox).candidates.values()
        assert step(p, cand, 1000.0).at is None
        assert [r.state for r in p.j.unfinished()] == ["held"]

    def test_an_errors_file_refused_while_a_cut_short_bundle_has_its_grace_is_tried_within_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bundle that looks cut short is held through its grace (here the settle
        period, 120 s) with an errors file saying so: one the full share refused is tried
        again rescan_seconds on, while the bundle is still held, not only when the grace
        ends and the bundle goes to quarantine."""
        p, s = make(tmp_path, outbox={"settle_seconds": 120})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})

        def full(*args: object, **kwargs: object) -> os.stat_result:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(errorsfile, "replace_ours", full)
        [cand] = list_outbox(s.outbox).candidates.values()
        assert step(p, cand, 1000.0).claimed is None  # not settled yet
        held = step(p, cand, 1120.0)
        assert [r.state for r in p.j.unfinished()] == ["held"]
        assert held.at == 1120.0 + 30.0  # rescan_seconds on: the grace ends at 1240

    def test_an_errors_file_whose_temp_another_process_locks_neither_stalls_the_loop(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Anyone who may read the outbox may flock a temp of outboxd's there the instant it
        is made (a clerk's process on this host that watches the share). The loop thread
        waited for that lock up to folderlocks.LOCK_WAIT_SECONDS (120 s) for each errors file
        written, every other bundle and the systemd watchdog (WatchdogSec=60) with it. The
        step now gives up within 50 ms, leaves no temp of its own in the outbox, and the file is
        written by the try that the step asks for rescan_seconds later."""
        import fcntl
        import time

        from daemon.fs import folderlocks, temps
        monkeypatch.setattr(folderlocks, "LOCK_WAIT_SECONDS", 20.0)  # bounds the old wait here
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        errors = s.outbox.path / "INV-1.errors.txt"
        real_flock, theirs = fcntl.flock, []

        def locked_first(fd: int, op: int) -> None:
            # Their lock is on a descriptor of their own, taken before outboxd's.
            made = os.readlink(f"/proc/self/fd/{fd}")
            if ".tmp-" in made and not any(os.fstat(t).st_ino == os.fstat(fd).st_ino
                                           for t in theirs):
                theirs.append(os.open(made, os.O_RDONLY))
                real_flock(theirs[-1], fcntl.LOCK_EX)
            real_flock(fd, op)

        monkeypatch.setattr(temps.fcntl, "flock", locked_first)
        [cand] = list_outbox(s.outbox).candidates.values()
        started = time.monotonic()
        try:
            with capture_logs() as said:
                first = step(p, cand, 1000.0)
        finally:
            took = time.monotonic() - started
            for fd in theirs:
                os.close(fd)
        assert took < 2.0, f"the step waited {took:.1f} s for another process's lock"
        assert theirs and not errors.exists()
        assert [n for n in os.listdir(s.outbox.path) if ".tmp-" in n] == []
        assert first.at == 1000.0 + 30.0  # tried again rescan_seconds on
        [told] = [e for e in said if "errors file" in e["event"]]
        assert "locked" in told["error"] and "lsof +L1" in told["fix"], told
        monkeypatch.setattr(temps.fcntl, "flock", real_flock)
        done = step(p, cand, first.at)
        assert errors.read_text("utf-8").startswith(errorsfile.ERRORS_HEADER)
        assert done.at is None

    def test_an_errors_file_whose_temps_another_process_locks_for_hours_is_said_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A clerk's process that flocks every new file in the outbox, for hours: each try
        of the errors file (every rescan_seconds) makes a temp of a new name, given up at
        once. That failure is logged once while it lasts, as a full share's is — the error
        named the new temp each time, so every retry was a new error line (2,880 a day at
        rescan_seconds 30)."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        [cand] = list_outbox(s.outbox).candidates.values()
        with temps_locked_as_made(monkeypatch) as theirs, capture_logs() as said:
            at = 1000.0
            for _ in range(3):
                nxt = step(p, cand, at)
                assert nxt.at == at + 30.0  # tried again rescan_seconds on
                at = nxt.at
        assert len(theirs) == 3  # each try made (and gave up) a temp of its own
        told = [e for e in said if "errors file" in e["event"]]
        assert len(told) == 1 and "locked" in told[0]["error"], told
        assert not (s.outbox.path / "INV-1.errors.txt").exists()
        done = step(p, cand, at)
        assert errorsfile.ERRORS_HEADER in (s.outbox.path / "INV-1.errors.txt").read_text()
        assert done.at is None

    def test_an_errors_file_whose_temp_another_outboxd_holds_for_an_instant_is_written_now(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Another outboxd on the share (or an `attach`) cleaning up its litter locks a temp
        made that instant and lets go a few ms later: the errors file is written at this
        step. It was given up at once, and the clerks waited rescan_seconds for it."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        [cand] = list_outbox(s.outbox).candidates.values()
        with temps_locked_as_made(monkeypatch, let_go_after=0.005) as theirs, \
                capture_logs() as said:
            done = step(p, cand, 1000.0)
        assert len(theirs) == 1  # held as made, once
        assert errorsfile.ERRORS_HEADER in (s.outbox.path / "INV-1.errors.txt").read_text()
        assert done.at is None
        assert not [e for e in said if e["log_level"] == "error"], said

    def test_a_clerks_file_put_at_the_name_while_the_share_was_full_is_kept_not_said_written(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The share is full when a bundle is held; meanwhile a clerk saves a file of
        their own at NAME.errors.txt. The try once space is back leaves it as it is and
        says so; it logged "errors file beside the invoice file written now" as well,
        which it was not."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        errors = s.outbox.path / "INV-1.errors.txt"
        real = errorsfile.replace_ours

        def full(*args: object, **kwargs: object) -> os.stat_result:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(errors))

        monkeypatch.setattr(errorsfile, "replace_ours", full)
        [cand] = list_outbox(s.outbox).candidates.values()
        first = step(p, cand, 1000.0)
        errors.write_text("my own notes\n", "utf-8")
        monkeypatch.setattr(errorsfile, "replace_ours", real)
        with capture_logs() as said:
            step(p, cand, first.at or 0.0)
        assert errors.read_text("utf-8") == "my own notes\n"
        events = [e["event"] for e in said]
        assert "errors file beside the invoice file written now" not in events, events
        assert any(e.startswith("not replacing a file outboxd did not write") for e in events)

    def test_an_errors_file_a_failed_rewrite_left_is_not_taken_for_an_edit(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The held bundle's errors change while the share is full: the rewrite fails and
        outboxd's earlier text stays. At the next change it is rewritten without an
        "edited" copy or warning: that text is outboxd's own, not a clerk's edit."""
        p, outbox, errors = _held(tmp_path)
        real = errorsfile.replace_ours

        def share_full(*args: object, **kwargs: object) -> os.stat_result:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(errorsfile, "replace_ours", share_full)
        write(outbox / "INV-1" / "b.pdf", b"")
        assert run_once(p, now=2000.0) == []
        assert "b.pdf" not in errors.read_text("utf-8")
        monkeypatch.setattr(errorsfile, "replace_ours", real)
        write(outbox / "INV-1" / "c.pdf", b"")
        with capture_logs() as said:
            assert run_once(p, now=3000.0) == []
        assert "c.pdf" in errors.read_text("utf-8")
        assert not (outbox / "INV-1.errors.txt.edited").exists()
        assert not [e for e in said if e["log_level"] == "warning"]


class TestEditedCopyNameTaken:
    """The edited copy's name taken between outboxd's choice of it and its rename; a
    clerk's edit saved in another encoding than UTF-8: the clerk's text is never lost."""

    def test_a_file_saved_at_the_edited_copys_name_meanwhile_sends_the_copy_to_the_next_name(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file comes at INV-1.errors.txt.edited just as outboxd keeps the clerk's copy
        there: that file stays as it is, and the copy goes to the next free name
        (INV-1.errors.txt.edited-2), named in the warning."""
        p, outbox, errors = _held(tmp_path)
        edited = errors.read_text("utf-8") + NOTES
        errors.write_text(edited, "utf-8")
        theirs = outbox / "INV-1.errors.txt.edited"
        real = errorsfile.rename_noreplace

        def someone_first(src: Path, dst: Path) -> None:
            if dst == theirs and not theirs.exists():
                theirs.write_text("their own file\n", "utf-8")
            real(src, dst)

        monkeypatch.setattr(errorsfile, "rename_noreplace", someone_first)
        write(outbox / "INV-1" / "b.pdf", b"")  # another error: the file is rewritten
        with capture_logs() as said:
            assert run_once(p, now=2000.0) == []
        assert theirs.read_text("utf-8") == "their own file\n"
        assert (outbox / "INV-1.errors.txt.edited-2").read_text("utf-8") == edited
        [warned] = [e for e in said if e["event"].startswith("the errors file was edited")]
        assert warned["kept_as"] == "INV-1.errors.txt.edited-2"
        assert "b.pdf" in errors.read_text("utf-8")
        assert _hidden(outbox) == []

    def test_no_free_name_for_the_edited_copy_leaves_the_clerks_file_in_place(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every name outboxd draws for the edited copy is taken as it renames: the
        clerk's edited INV-1.errors.txt is neither replaced nor removed, no temp is left,
        and the error names the file and says it is tried again at the next change — not
        (as before) that a person's file was kept under the name given; the bundle stays
        held."""
        p, outbox, errors = _held(tmp_path)
        edited = errors.read_text("utf-8") + NOTES
        errors.write_text(edited, "utf-8")

        def always_taken(src: Path, dst: Path) -> None:
            raise FileExistsError(errno.EEXIST, "File exists", str(dst))

        monkeypatch.setattr(errorsfile, "rename_noreplace", always_taken)
        write(outbox / "INV-1" / "b.pdf", b"")
        with capture_logs() as said:
            assert run_once(p, now=2000.0) == []
        assert errors.read_text("utf-8") == edited
        assert not list(outbox.glob("*.edited*"))
        assert _hidden(outbox) == []
        [failed] = [e for e in said if e["event"].startswith("cannot write or remove the "
                                                             "errors file")]
        assert failed["file"] == "INV-1.errors.txt" and "edited copy" in failed["error"]
        # The fix does not say the file "was changed each time outboxd tried": it was not.
        assert "tries again at the bundle's next change" in failed["fix"]
        assert "changed each time" not in failed["fix"]
        assert [r.state for r in p.j.unfinished()] == ["held"]

    @pytest.mark.parametrize("saved", [
        pytest.param(lambda text: text.encode("utf-8") + "Grüße\n".encode("cp1252"),
                     id="windows-1252"),
        pytest.param(lambda text: text.encode("utf-8") + b"x" * (1 << 20), id="over-1-MiB"),
    ])
    def test_an_errors_file_saved_as_no_text_outboxd_reads_is_kept_as_it_is(
            self, tmp_path: Path, saved: Any) -> None:
        """A clerk saves INV-1.errors.txt in Windows-1252 (an umlaut in a note), or makes
        it larger than any errors file outboxd writes: outboxd cannot read it as its own,
        so it is neither replaced when the errors change nor removed when the bundle is
        sent — the error names the file and says to rename or remove it."""
        p, outbox, errors = _held(tmp_path)
        data = saved(errors.read_text("utf-8"))
        errors.write_bytes(data)
        write(outbox / "INV-1" / "b.pdf", b"")
        with capture_logs() as said:
            assert run_once(p, now=2000.0) == []
        assert errors.read_bytes() == data
        [refused] = [e for e in said if e["event"].startswith("not replacing a file")]
        assert refused["file"] == "INV-1.errors.txt"
        write(outbox / "INV-1" / "a.pdf", pdf_bytes())
        (outbox / "INV-1" / "b.pdf").unlink()
        assert len(run_once(p, now=3000.0)) == 1
        assert errors.read_bytes() == data


@pytest.mark.parametrize("code", [errno.EEXIST, errno.EIO])
def test_a_persons_file_stranded_under_a_temp_name_is_told_to_be_renamed_back(
        tmp_path: Path, code: int) -> None:
    """A file a person saved at INV-1.errors.txt while outboxd replaced its own could not
    be put back (Stranded: it is at the temp's name, which is never removed): the error
    says to rename it back, is not tried again by itself, and — whatever the errno, EEXIST
    too — never says "nothing was lost" as a file kept under a free name does."""
    from daemon.fs.fswrite import Stranded
    stranded = Stranded(code, "a file put at INV-1.errors.txt while outboxd replaced its "
                        "own is at .INV-1.errors.txt.tmp-x and could not be put back — "
                        "rename it back", str(tmp_path / "INV-1.errors.txt"))
    with capture_logs() as said:
        errorsfile.report_failure(logs.get(), tmp_path / "INV-1.errors.txt", stranded)
    [told] = said
    assert told["log_level"] == "error" and told["file"] == "INV-1.errors.txt"
    assert told["fix"] == "rename the file named here back, as it says"
    assert "nothing was lost" not in str(told)
    assert errorsfile.tried_again(stranded) is False


def test_a_held_bundle_taken_out_keeps_the_clerks_notes_when_their_copy_cannot_be_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clerk typed notes into INV-1.errors.txt, then took INV-1 out of the outbox;
    the copy of the notes cannot be made (every name drawn for it taken as it is renamed):
    the errors file, the only place the notes are, is not removed — an error names it —
    and the bundle ends gone all the same."""
    import shutil
    p, outbox, errors = _held(tmp_path)
    edited = errors.read_text("utf-8") + NOTES
    errors.write_text(edited, "utf-8")
    [cand] = list_outbox(p.s.outbox).candidates.values()

    def always_taken(src: Path, dst: Path) -> None:
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))

    monkeypatch.setattr(errorsfile, "rename_noreplace", always_taken)
    (outbox / "INV-1.xml").unlink()
    shutil.rmtree(outbox / "INV-1")
    with capture_logs() as said:
        assert step(p, cand, 2000.0).gone
    assert errors.read_text("utf-8") == edited
    [failed] = [e for e in said if e["event"].startswith("cannot write or remove the "
                                                         "errors file")]
    assert failed["file"] == "INV-1.errors.txt" and failed["invoice_file"] == "INV-1.xml"
    assert not [r for r in p.j.unfinished() if r.state == "held"]
    assert _hidden(outbox) == []


def test_an_errors_file_failure_is_said_in_words_not_as_an_errno(tmp_path: Path) -> None:
    """The error of an errors file that could not be written is said in words, as
    archiving/ says an OSError: a file changed at each try is "changed by someone else…",
    not "[Errno 11] changed by someone else…"; a refused write names its file in
    brackets, not as Python's "[Errno 13] Permission denied: '…'"."""
    path = tmp_path / "INV-1.errors.txt"
    changed = OSError(errno.EAGAIN, "changed by someone else at each of 3 tries")
    refused = PermissionError(errno.EACCES, "Permission denied", str(path))
    with capture_logs() as said:
        errorsfile.report_failure(logs.get(), path, changed)
        errorsfile.report_failure(logs.get(), path, refused)
    assert [e["error"] for e in said] == ["changed by someone else at each of 3 tries",
                                          f"Permission denied ({path})"]
