"""`outboxd demo`: a --dir it cannot use is a usage error, said in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.cli import main


def test_a_dir_that_cannot_be_created_is_one_line_naming_it_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dir below a plain file: exit 2 with one line naming the folder, the OS error and
    the fix — no traceback, and nothing is started."""
    (tmp_path / "afile").write_text("x")
    wanted = tmp_path / "afile" / "sub"
    assert main(["demo", "--dir", str(wanted), "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("outboxd: --dir ") and str(wanted) in line
    assert "Not a directory" in line and "leave out --dir" in line
    assert (tmp_path / "afile").read_text() == "x"


def test_the_live_table_shows_every_sample_on_an_80_by_24_terminal(
        tmp_path: Path) -> None:
    """On an 80 x 24 terminal the table with each sample's description and full detail
    (receipt id, archive folder, quarantine reason) is some 50 lines: the live view would
    cut it after the third sample, hiding the two quarantined ones. It is shown one line a
    sample instead, every sample and state on the screen; when the demo stops, the whole
    table (descriptions and full details) is printed."""
    import io

    from rich.console import Console

    from daemon.actions import demo_samples
    from daemon.actions.demo_views import Seen, TableView
    screen = io.StringIO()
    console = Console(file=screen, width=80, height=24, force_terminal=True,
                      color_system=None)
    samples = demo_samples.build(".send-anyway", True)
    seen = {s.invoice_file: Seen(s.expect, f"receipt rcpt-{'c' * 32} → sent/2026-12-04/"
                                 f"{s.invoice_file[:-4]}--32e36a3cb92f"
                                 if s.expect == "sent" else
                                 f"{s.invoice_file[:-4]}/x.pdf: a reason of several words "
                                 "that needs more than one line in its column to be read")
            for s in samples}
    view = TableView(console)
    with view:
        view.show(samples, seen)
        live = console.render_lines(view.live.renderable, pad=False)
        shown = "\n".join("".join(seg.text for seg in line) for line in live)
        assert len(live) <= 23
        for sample in samples:
            assert sample.invoice_file in shown
        assert shown.count("quarantined") == 2 * sum(s.expect == "quarantined"
                                                     for s in samples)
    printed = screen.getvalue()
    assert " shows " in printed and printed.count("\n") > 24  # the whole table


def test_the_status_command_it_suggests_runs_as_typed_from_a_venv_not_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started as the README says (`.venv/bin/outboxd demo`, not on PATH), the closing
    "Where to look" gives `.venv/bin/outboxd status -c …`, which runs where a bare
    `outboxd status` is "command not found"; an outboxd on PATH is named bare."""
    import io

    from daemon.actions.demo import Workspace, where_to_look
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "outboxd").write_text("#!/bin/sh\n")
    (venv_bin / "outboxd").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setattr("sys.argv", [".venv/bin/outboxd", "demo"])
    ws = Workspace(tmp_path / "ws")
    out = io.StringIO()
    where_to_look(ws, None, out)
    [line] = [ln for ln in out.getvalue().splitlines() if ln.strip().startswith("status ")]
    assert line.split(None, 1)[1] == f".venv/bin/outboxd status -c {ws.config}"
    monkeypatch.setenv("PATH", str(venv_bin))
    out = io.StringIO()
    where_to_look(ws, None, out)
    [line] = [ln for ln in out.getvalue().splitlines() if ln.strip().startswith("status ")]
    assert line.split(None, 1)[1] == f"outboxd status -c {ws.config}"


def test_a_sent_bundle_s_line_shows_the_warning_it_went_with(tmp_path: Path) -> None:
    """The journal keeps no warnings, but the README promises INV-4001 ends "sent, with
    the warning saying who released it": the demo's line for a sent bundle shows its
    receipt.json's warnings ahead of the receipt id and folder; one without warnings
    shows the receipt id and folder alone."""
    import io
    import json

    from daemon.actions import demo_samples
    from daemon.actions.demo import Workspace, observe
    from daemon.actions.demo_views import LineView
    from daemon.configuration.config_load import load_settings
    from daemon.journal import Journal
    from daemon.loop.release import warning_text
    ws = Workspace.make(tmp_path / "demo")
    ws.outbox.mkdir()
    ws.write_config("http://127.0.0.1:9/bundles", True)
    settings = load_settings(ws.config)
    release = ws.outbox / "INV-4001.send-anyway"
    release.write_bytes(b"")
    folders = {}
    for name, warnings in (("INV-4001", [warning_text("INV-4001", release)]),
                           ("INV-1001", [])):
        folders[name] = folder = ws.sent / "2026-12-05" / f"{name}--0123456789ab"
        folder.mkdir(parents=True)
        (folder / "receipt.json").write_text(json.dumps({"manifest": {"warnings": [
            {"code": "unattached-invoice", "invoice_id": name, "file": f"{name}.xml",
             "message": w} for w in warnings]}}))
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(settings.journal_path)
    try:
        for name, folder in folders.items():
            journal.create(f"{name}.xml", "sent", bundle_id=name * 4, receipt_id=f"r-{name}",
                           archive_dir=str(folder))
    finally:
        journal.close()
    seen = observe(settings)
    assert seen["INV-4001.xml"].detail.startswith(
        "warning: invoice INV-4001 is sent without attachments (released by "
        "INV-4001.send-anyway")
    assert seen["INV-4001.xml"].detail.endswith(
        "receipt r-INV-4001 → sent/2026-12-05/INV-4001--0123456789ab")
    assert seen["INV-1001.xml"].detail == \
        "receipt r-INV-1001 → sent/2026-12-05/INV-1001--0123456789ab"
    screen = io.StringIO()
    samples = [s for s in demo_samples.build(".send-anyway", True)
               if s.invoice_file == "INV-4001.xml"]
    LineView(screen).show(samples, seen)
    [line] = screen.getvalue().splitlines()
    assert "INV-4001.xml" in line and "sent" in line and "released by INV-4001.send-anyway" \
        in line


def test_a_dir_that_is_not_empty_is_one_line_naming_it_and_the_fix_and_is_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dir naming a folder with files in it: exit 2 with one line naming the folder and
    the fix (a new or empty folder, or no --dir), never telling the user to remove it
    (its files are theirs); nothing in it is touched and nothing is started."""
    (tmp_path / "old.txt").write_text("x")
    assert main(["demo", "--dir", str(tmp_path), "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"outboxd: --dir {tmp_path}: not an empty folder")
    assert "name a new or empty folder, or leave out --dir" in line
    assert "remove" not in line
    assert os.listdir(tmp_path) == ["old.txt"] and (tmp_path / "old.txt").read_text() == "x"


def test_a_receipt_the_demo_cannot_read_as_one_shows_no_warnings_without_a_traceback_or_hang(
        tmp_path: Path) -> None:
    """receipt.json in sent/ lies on the share, where anyone may replace it: a link, a
    FIFO, a file over the 4 MiB the demo reads, bad JSON, JSON nested too deep for the
    parser, or another shape: the sent bundle's line shows no warnings, the demo neither
    raises nor blocks."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent.parent))
    from helpers import without_blocking

    from daemon.actions.demo import Receipts
    _warnings_of = Receipts(tmp_path).warnings_of
    outside = tmp_path / "outside.json"
    outside.write_text('{"manifest": {"warnings": [{"message": "from outside"}]}}')
    bodies: dict[str, bytes] = {
        "huge": b" " * (5 << 20) + b"{}",
        "bad-json": b"{not json",
        "deep": b"[" * 200_000,
        "shape": b'{"manifest": {"warnings": "text"}}',
        "not-an-object": b"[1, 2]",
    }
    for name, body in bodies.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "receipt.json").write_bytes(body)
        assert _warnings_of(tmp_path / name) == [], name
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "receipt.json").symlink_to(outside)
    assert _warnings_of(tmp_path / "link") == []
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "receipt.json")
    assert without_blocking(lambda: _warnings_of(tmp_path / "fifo"),
                            tmp_path / "fifo" / "receipt.json", "the demo's receipt read") == []


def _sent_folder(sent: Path, name: str, warning: str) -> Path:
    import json
    folder = sent / "2026-12-05" / f"{name}--0123456789ab"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "receipt.json").write_text(json.dumps({"manifest": {"warnings": [
        {"code": "unattached-invoice", "message": warning}]}}))
    return folder


def test_the_demo_never_reads_a_receipt_through_a_link_in_a_folder_above_it(
        tmp_path: Path) -> None:
    """A day folder of sent/, or a bundle's folder in it, that is a link to a folder
    outside holding a receipt.json with warnings: the demo shows none of them (nothing
    below its own sent/ is reached through a link); the real folder's warning is shown."""
    from daemon.actions.demo import Receipts
    sent, outside = tmp_path / "sent", tmp_path / "outside"
    real = _sent_folder(sent, "INV-1", "the real one")
    _sent_folder(outside, "INV-2", "from outside")
    (sent / "2026-12-06").symlink_to(outside / "2026-12-05")
    (sent / "2026-12-05" / "INV-3--0123456789ab").symlink_to(
        outside / "2026-12-05" / "INV-2--0123456789ab")
    receipts = Receipts(sent)
    assert receipts.warnings_of(sent / "2026-12-06" / "INV-2--0123456789ab") == []
    assert receipts.warnings_of(sent / "2026-12-05" / "INV-3--0123456789ab") == []
    assert receipts.warnings_of(real) == ["the real one"]
    assert receipts.warnings_of(outside / "2026-12-05" / "INV-2--0123456789ab") == []


def test_the_warnings_read_are_one_run_s_and_never_shown_by_the_next(tmp_path: Path) -> None:
    """The demo's view keeps the warnings it read for its own run only: a receipt read
    again by a second run in the same process (the same folder, another receipt) shows
    that run's warning, not the first one's; within a run each receipt is read once."""
    from daemon.actions.demo import Receipts, Workspace, observe
    from daemon.configuration.config_load import load_settings
    from daemon.journal import Journal
    ws = Workspace.make(tmp_path / "demo")
    ws.outbox.mkdir()
    ws.write_config("http://127.0.0.1:9/bundles", True)
    settings = load_settings(ws.config)
    folder = _sent_folder(settings.sent_dir, "INV-1", "first run")
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(settings.journal_path)
    try:
        journal.create("INV-1.xml", "sent", bundle_id="a" * 64, receipt_id="r",
                       archive_dir=str(folder))
    finally:
        journal.close()
    first = Receipts(settings.sent_dir)
    assert observe(settings, first)["INV-1.xml"].detail.startswith("warning: first run; ")
    _sent_folder(settings.sent_dir, "INV-1", "second run")
    assert observe(settings, first)["INV-1.xml"].detail.startswith("warning: first run; ")
    assert observe(settings)["INV-1.xml"].detail.startswith("warning: second run; ")
    assert observe(settings, Receipts(settings.sent_dir))["INV-1.xml"].detail.startswith(
        "warning: second run; ")


def test_a_stuck_bundle_shows_in_the_demo_as_status_shows_it_with_its_error(
        tmp_path: Path) -> None:
    """A delivered bundle whose move into sent/ keeps failing shows as retrying with the
    error (as `status` and the page show it), not as delivering; a settling bundle that
    cannot be read shows why it does not move, not a bare "settling"; a held one the
    findings that hold it."""
    from daemon.actions.demo import Workspace, observe
    from daemon.configuration.config_load import load_settings
    from daemon.journal import Journal
    ws = Workspace.make(tmp_path / "demo")
    ws.outbox.mkdir()
    ws.write_config("http://127.0.0.1:9/bundles", True)
    settings = load_settings(ws.config)
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(settings.journal_path)
    try:
        journal.create("INV-1.xml", "delivered", bundle_id="a" * 64, receipt_id="r", attempts=1,
                       last_error="delivered (receipt r), but cannot be archived in sent/: "
                                  "No space left on device")
        journal.create("INV-2.xml", "settling",
                       last_error="cannot be read: Permission denied")
        journal.create("INV-3.xml", "delivered", bundle_id="b" * 64, receipt_id="r3")
        journal.create("INV-4.xml", "held", reasons=[
            {"code": "empty-file", "file": "INV-4/a.pdf", "message": "the file is empty"}])
    finally:
        journal.close()
    seen = observe(settings)
    assert seen["INV-1.xml"].state == "retrying"
    assert "No space left on device" in seen["INV-1.xml"].detail
    assert seen["INV-2.xml"].state == "settling"
    assert seen["INV-2.xml"].detail == "cannot be read: Permission denied"
    assert seen["INV-3.xml"].state == "delivering"  # on its way, no error: as before
    # Held in the outbox ([policy] invalid = "hold"): why, as a quarantined one says it.
    assert seen["INV-4.xml"].detail == "INV-4/a.pdf: the file is empty"


def test_on_a_terminal_the_line_after_the_samples_is_printed_above_the_live_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, "Every sample reached its end … drop your own files …" was written
    to stdout past rich's live table, whose next refresh (8 a second) drew itself over
    it: a newcomer who ran the README's command never saw where to drop files or how to
    follow them, only a table with its old title left above it. The line goes through
    the console that draws the live view, which prints it above the table."""
    import io

    from rich.console import Console

    from daemon.actions import demo, demo_samples
    from daemon.actions.demo_views import Seen, TableView
    from daemon.configuration.config_load import load_settings
    ws = demo.Workspace.make(tmp_path / "demo")
    ws.outbox.mkdir()
    ws.write_config("http://127.0.0.1:9/bundles", True)
    settings = load_settings(ws.config)
    samples = demo_samples.build(".send-anyway", True)
    console = Console(file=io.StringIO(), width=1000, height=60, force_terminal=True,
                      color_system=None, record=True)
    # Six rounds drop the six samples, one more sees them done; three after the line let
    # the live table redraw (8 a second) over anything written past it. Each round is
    # the demo's 0.2-s pause: twenty rounds were 4 s.
    looks = iter(range(10))

    def observe(*_: object) -> dict[str, Seen]:
        if next(looks, None) is None:
            raise KeyboardInterrupt  # as Ctrl-C ends the demo
        return {s.invoice_file: Seen(s.expect, "", (s.expect_code,) if s.expect_code
                                     else ()) for s in samples}
    monkeypatch.setattr(demo, "observe", observe)
    monkeypatch.setattr(demo, "_drop", lambda *_: None)
    monkeypatch.setattr(demo, "view_for", lambda _out: TableView(console))
    out = io.StringIO()
    page = ws.outbox / "outboxd-status.html"
    with pytest.raises(KeyboardInterrupt):
        demo._watch(ws, settings, samples, False, 0, 60, out, {"done": False},
                    demo.Receipts(settings.sent_dir), page)
    shown = console.export_text()
    assert "Every sample reached its end" in shown and str(page) in shown
    assert f"status -c {ws.config}" in shown
    assert out.getvalue() == ""  # nothing written past the live view


def test_a_demo_whose_samples_did_not_all_reach_their_end_exits_1_naming_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--once: "exit 0 if each reached the expected one, 1 otherwise". Every sample
    settled (the watch is over) but none where expected: exit 1, each named with the end
    it should have reached. (Receiver, daemon and the watch stood in for.)"""
    import io

    from daemon.actions import demo

    def watched(*args: object) -> None:
        progress = next(a for a in args if isinstance(a, dict) and "done" in a)
        progress["done"] = True  # the watch ended with every sample settled
    monkeypatch.setattr(demo, "start_receiver", lambda *_: "http://127.0.0.1:9/bundles")
    monkeypatch.setattr(demo, "start_daemon", lambda *_: None)
    monkeypatch.setattr(demo, "_watch", watched)
    monkeypatch.setattr(demo, "observe_safely", lambda *_: {})
    out = io.StringIO()
    assert demo.run(tmp_path / "demo", once=True, pace=0, timeout=1, out=out) == 1
    assert "Not at their expected end: INV-1001.xml (expected sent)" in out.getvalue()


def test_a_temporary_folder_that_cannot_be_made_is_one_line_naming_tmp_and_dir_as_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`outboxd demo` without --dir where TMPDIR is not writable (full, read-only, or not
    there): exit 2 with one line naming the temporary folder, the OS error and the fix
    (--dir) — no traceback, nothing started."""
    import tempfile
    missing = tmp_path / "no-such-tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    assert main(["demo", "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"outboxd: cannot create a temporary folder for the demo in "
                                f"{missing} (No such file or directory) — name a folder with "
                                "--dir"]
    assert not missing.exists()


def test_a_daemon_that_ends_at_its_start_is_said_with_its_log_not_waited_for(
        tmp_path: Path) -> None:
    """The demo's daemon ends at its start (here a configuration it refuses): the demo says
    the daemon did not start and names its log, which holds why — at once, not after the
    30 s it would wait for a slow start; stopping the children then passes over the
    process that already ended."""
    import time

    from daemon.actions.demo import Children, Workspace, start_daemon
    from daemon.errors import OutboxdError
    ws = Workspace.make(tmp_path / "demo")
    ws.config.write_text("[outbox]\npath = 5\n")
    children = Children()
    began = time.monotonic()
    try:
        with pytest.raises(OutboxdError) as info:
            start_daemon(ws, children, timeout=120)
    finally:
        children.stop()
    assert time.monotonic() - began < 60
    assert str(info.value) == f"the daemon did not start; see {ws.daemon_log}"
    assert "[outbox] path" in ws.daemon_log.read_text()
    assert children.procs == []


def test_a_dir_that_is_a_file_is_said_to_be_a_file_not_a_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dir naming a regular file: it said "not an empty folder", sending the user to
    look for files in a folder that is none. Exit 2 with one line that says it is a
    file, not a folder, and the fix; the file is left as it was."""
    given = tmp_path / "notes.txt"
    given.write_text("x")
    assert main(["demo", "--dir", str(given), "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"outboxd: --dir {given}: is a file, not a folder — name a new or empty folder, "
        "or leave out --dir for a temporary one"]
    assert given.read_text() == "x"
