"""Layouts `python -m bench.fuzznames` found leaving a file in the outbox with no reason a
clerk could see, each minimised and run through the real daemon and receiver
(docs/development.md, "Fuzzing names and layouts"; docs/folder-convention.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_page", "quick_settle")


def left_alone(env: Env) -> str:
    """The page's "Files in the outbox that are left alone", as text ("" while none)."""
    from report.test_statuspage import Page

    page_file = env.outbox / "outboxd-status.html"
    return Page(page_file.read_text()).text.get("refused", "") if page_file.exists() else ""


def test_a_marker_where_no_marker_is_used_is_listed_and_left_when_its_bundle_goes(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under completion = "settle" (the default) `INV-1.ready` from a sender set up for
    markers does nothing: the bundle goes without it and it stays in the outbox. The
    scanner passed over every `*.ready` as a marker whatever the completion, so it was
    neither logged nor on the page (seed 5 of the fuzzer): now it is listed with why."""
    env.write_config(receiver.url, policy={"unattached": "send"})
    (env.outbox / "INV-1.ready").write_bytes(b"")
    (env.outbox / "ORPHAN-2.ready").write_bytes(b"")
    start_daemon()
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="the bundle in sent/")
    shown = wait_for(lambda: "INV-1.ready" in (text := left_alone(env)) and text,
                     what="the marker on the page")
    assert "ORPHAN-2.ready" in shown
    assert "does not wait for markers" in shown and 'completion = "settle"' in shown
    assert (env.outbox / "INV-1.ready").exists()
    [sent] = env.sent_bundles()
    assert not (sent / "INV-1.ready").exists()


def test_a_marker_under_completion_marker_is_no_file_left_alone(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under completion = "marker" the marker is the bundle's: it goes with it to sent/,
    and one that names no invoice file waits for it unlisted, as before."""
    env.write_config(receiver.url, outbox={"completion": "marker"},
                     policy={"unattached": "send"})
    (env.outbox / "ORPHAN-2.ready").write_bytes(b"")
    start_daemon()
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    (env.outbox / "INV-1.ready").write_bytes(b"")
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/")
    assert (sent / "INV-1.ready").exists()
    wait_for(lambda: (env.outbox / "outboxd-status.html").exists(), what="the page")
    assert "ORPHAN-2.ready" not in left_alone(env)


def test_an_errors_file_beside_no_invoice_file_is_listed_until_it_goes(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """`NAME.errors.txt` is outboxd's name for a held bundle's explanation, so the scanner
    passes over it; one beside no invoice file NAME.* (a clerk's own notes, seed 13 of the
    fuzzer) was on no page. The page lists it with why, there at the start and dropped
    later, not the errors file of a held bundle, and drops it once it is gone."""
    # No rescan in the test's time: the page follows the files' events (the next test).
    env.write_config(receiver.url, outbox={"rescan_seconds": 3600},
                     policy={"unattached": "send", "invalid": "hold"})
    (env.outbox / "NOTES.errors.txt").write_text("my notes\n")
    start_daemon()
    wait_for(lambda: "NOTES.errors.txt" in left_alone(env), what="the first on the page")
    (env.outbox / "MINE.errors.txt").write_text("more notes\n")
    drop_bundle(env.outbox, "INV-1", {"a.pdf": b"not a pdf"})
    wait_for((env.outbox / "INV-1.errors.txt").exists, what="the held bundle's errors file")
    shown = wait_for(lambda: "MINE.errors.txt" in (text := left_alone(env)) and text,
                     what="the one dropped later on the page")
    assert "no invoice file of that name" in shown and "INV-1.errors.txt" not in shown
    (env.outbox / "NOTES.errors.txt").unlink()
    (env.outbox / "MINE.errors.txt").unlink()
    wait_for(lambda: "errors.txt" not in left_alone(env), what="both gone from the page")
    assert (env.outbox / "INV-1.errors.txt").exists()


def test_a_leftover_errors_file_leaves_and_rejoins_the_page_at_its_event_not_a_rescan(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An errors file beside no invoice file changes no journal row, and the page was
    refreshed for it only at the next full rescan (rescan_seconds, a minute by default):
    deleted, it stayed listed meanwhile, and one restored from the recycle bin waited as
    long to be listed. Its events now refresh the page at the page's pace: deleted, moved
    away, moved back in or written anew, each shows within seconds with no rescan due."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 3600})
    notes, away = env.outbox / "NOTES.errors.txt", env.root / "NOTES.errors.txt"
    notes.write_text("my notes\n")
    start_daemon()
    wait_for(lambda: "NOTES.errors.txt" in left_alone(env), what="the file on the page")

    def listed(there: bool, what: str) -> None:
        # Fails at its deadline (wait_for) if the page does not follow within 5 s.
        wait_for(lambda: ("NOTES.errors.txt" in left_alone(env)) == there, timeout=5.0,
                 what=what)
        assert ("NOTES.errors.txt" in left_alone(env)) is there, what

    notes.unlink()
    listed(False, "the deleted file off the page")
    notes.write_text("my notes again\n")
    listed(True, "the file written anew on the page")
    notes.rename(away)
    listed(False, "the file moved away off the page")
    away.rename(notes)
    listed(True, "the file moved back in (a restore) on the page")


def test_an_invoice_file_named_with_a_space_or_dot_at_an_end_is_told_the_name_it_needs(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """`INV-8.xml ` (an ERP's name with a space after it) is no invoice file: the page
    said "only names like *.xml, *.pdf are read as invoice files" beside a name a clerk
    sees as INV-8.xml (seed 27 of the fuzzer). It now says why and the name it needs;
    renamed so, the bundle goes with its folder."""
    env.write_config(receiver.url, policy={"unattached": "send"})
    start_daemon()
    (env.outbox / "INV-8").mkdir()
    (env.outbox / "INV-8" / "a.pdf").write_bytes(pdf_bytes())
    (env.outbox / "INV-8.xml ").write_bytes(ubl_invoice("INV-8"))
    shown = wait_for(lambda: "INV-8.xml" in (text := left_alone(env)) and text,
                     what="the invoice file on the page")
    assert "has a space at the end" in shown and "rename it to INV-8.xml" in shown
    assert "only names like" not in shown
    (env.outbox / "INV-8.xml ").rename(env.outbox / "INV-8.xml")
    [sent] = wait_for(env.sent_bundles, what="the renamed bundle in sent/")
    assert (sent / "INV-8" / "a.pdf").read_bytes() == pdf_bytes()


def test_an_invoice_file_without_an_extension_is_no_sidecar_of_its_own(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under invoice_patterns = ["*"] an invoice file named without an extension (`INV-7`)
    has its own name for its sidecar: no folder can be there. It was held for a sidecar
    that "is not a folder", told to "make it a real folder" — which would take the
    invoice file's name (seed 39 of the fuzzer). It is an invoice without attachments,
    sent as its policy says."""
    env.write_config(receiver.url, outbox={"invoice_patterns": ["*"]},
                     policy={"unattached": "send", "invalid": "hold"})
    start_daemon()
    (env.outbox / ".INV-7.tmp").write_bytes(ubl_invoice("INV-7"))
    (env.outbox / ".INV-7.tmp").rename(env.outbox / "INV-7")
    [sent] = wait_for(env.sent_bundles, what="the invoice in sent/")
    assert (sent / "INV-7").read_bytes() == ubl_invoice("INV-7")
    assert not (env.outbox / "INV-7.errors.txt").exists()


def test_names_that_are_not_utf8_or_shown_alike_travel_to_sent_without_a_traceback(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The real daemon, watching a temp folder, with names no journal write may trip
    over (seed 27 of the fuzzer: a raw non-UTF-8 name failed a row's write, and the loop
    logged a traceback at every rescan):
    - INV-1's sidecar holds a copy still at work under a name of Latin-1 bytes
      (0xE9.pdf.part) and a Mac's litter file of such a name: the bundle waits for the
      copy, named in its row; renamed, the bundle is sent to the receiver on 127.0.0.1
      and archived, the litter with it;
    - X + U+202E + .xml and X\\u202e.xml (the code typed, shown alike) dropped together
      are two bundles, each sent and archived with its own attachment.
    No traceback, no "unexpected" line, every log line JSON."""
    from conftest import journal_states
    from helpers import not_json_lines, outboxd_with

    from daemon.names import printable

    # The copy is shown as stuck after 0.3 s, not 600: its row names it then.
    env.daemon = outboxd_with({"daemon.report.statuspage.MIN_INTERVAL": 0.5,
                               "daemon.loop.pipeline.STUCK_SECONDS": 0.3})
    env.write_config(receiver.url, policy={"unattached": "send"})
    daemon = start_daemon()
    box = os.fsencode(env.outbox)
    # The copy at work first: the bundle can never settle before it is there.
    os.mkdir(box + b"/INV-1")
    (Path(os.fsdecode(box + b"/INV-1/\xe9.pdf.part"))).write_bytes(pdf_bytes())
    (Path(os.fsdecode(box + b"/INV-1/._\xe9.pdf"))).write_bytes(b"\x00\x05\x16\x07")
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    for name, pdf in (("X\u202e", "rlo.pdf"), ("X\\u202e", "typed.pdf")):
        (env.outbox / name).mkdir()
        (env.outbox / name / pdf).write_bytes(pdf_bytes())
        (env.outbox / f"{name}.xml").write_bytes(ubl_invoice(f"ID-{pdf[:3]}"))
    wait_for(lambda: len(env.sent_bundles()) == 2, what="the two bundles shown alike sent")
    error = wait_for(lambda: _settling_error(env, "INV-1.xml"), what="INV-1's copy named")
    assert "waits for INV-1/\\udce9.pdf.part: " in printable(error)
    os.rename(box + b"/INV-1/\xe9.pdf.part", box + b"/INV-1/b.pdf")
    wait_for(lambda: len(env.sent_bundles()) == 3, what="INV-1 sent once its copy ended")
    by_file = {os.fsencode(p.name).split(b"--")[0]: p for p in env.sent_bundles()}
    assert set(by_file) == {b"INV-1", "X\u202e".encode(), b"X\\u202e"}
    inv1 = os.fsencode(by_file[b"INV-1"])
    assert sorted(os.listdir(inv1 + b"/INV-1")) == [b"._\xe9.pdf", b"a.pdf", b"b.pdf"]
    assert os.listdir(by_file["X\u202e".encode()] / "X\u202e") == ["rlo.pdf"]
    assert os.listdir(by_file[b"X\\u202e"] / "X\\u202e") == ["typed.pdf"]
    assert len(receiver.accepted()) == 3
    # The folder is there before the row says so (sent only once it is there).
    wait_for(lambda: [journal_states(env).get(f) for f in (
        "INV-1.xml", "X\u202e.xml", "X\\u202e.xml")] == ["sent"] * 3, what="three rows sent")
    # Shown alike on the page (the override as its code), but two rows, each its own.
    rows = wait_for(lambda: len(r := [x for x in _page_rows(env, "sent")
                                      if x.startswith("X\\u202e.xml\t")]) == 2 and r,
                    what="both listed as sent on the page")
    assert sorted("ID-rlo" in x for x in rows) == [False, True]
    assert sorted("ID-typ" in x for x in rows) == [False, True]
    # `status --json` gives each exact name once parsed.
    shown = subprocess.run([*env.daemon, "status", "--json", "-c", str(env.config)],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    files = sorted(b["invoice_file"] for b in json.loads(shown)["bundles"])
    assert files == ["INV-1.xml", "X\\u202e.xml", "X\u202e.xml"]
    log = daemon.stderr()
    assert "Traceback" not in log and '"unexpected' not in log
    assert not_json_lines(log) == []


def _page_rows(env: Env, section: str) -> list[str]:
    """The rows of a section of the status page (cells joined by tabs), [] before it."""
    from report.test_statuspage import Page

    page_file = env.outbox / "outboxd-status.html"
    return Page(page_file.read_text()).rows.get(section, []) if page_file.exists() else []


def _settling_error(env: Env, invoice_file: str) -> str | None:
    """The error of the row of `invoice_file` settling, as the journal reads it back."""
    from daemon.journal import Journal

    j = Journal(env.state / "journal.sqlite3", readonly=True)
    try:
        return next((r.last_error for r in j.rows(("settling",))
                     if r.invoice_file == invoice_file and r.last_error), None)
    finally:
        j.close()


@pytest.mark.parametrize(("name", "folder"), [
    ("INV-1", "inv-1"), ("INV-1", "INV-1 (1)"), ("R\u00e4kning-1", "Ra\u0308kning-1")],
    ids=["case", "copy", "nfd"])
def test_a_look_alike_sidecar_of_a_bundle_waiting_for_its_marker_is_named_at_once(
        env: Env, receiver: Receiver, start_daemon, name: str, folder: str) -> None:
    """Under completion = "marker" a bundle waits for its marker unread; a folder beside
    it spelled like its sidecar but for case (inv-1/ beside INV-1.xml) or Unicode form (a
    Mac's decomposed "a" + U+0308 beside the ERP's "\u00e4"), or named as a copy of it,
    was named nowhere — not among the folders without an invoice file (a bundle's
    look-alike is told in its errors), and the bundle's errors come only once it is read,
    after the marker. Its row, on the page, now says it with the same words as the
    bundle's `sidecar-spelling` error: the sender can rename it before writing the
    marker."""
    env.write_config(receiver.url, outbox={"completion": "marker"},
                     policy={"unattached": "send"})
    start_daemon()
    (env.outbox / folder).mkdir()
    (env.outbox / folder / "a.pdf").write_bytes(pdf_bytes())
    (env.outbox / f"{name}.xml").write_bytes(ubl_invoice("INV-1"))
    page = env.outbox / "outboxd-status.html"
    wait_for(lambda: page.exists() and f"{name}.ready" in page.read_text(), what="the wait")
    shown = wait_for(lambda: folder in (text := page.read_text()) and text,
                     what=f"{folder} named on the page")
    assert f"looks like the sidecar {name} of {name}.xml" in shown or \
        f"looks like a copy of the sidecar {name} of {name}.xml" in shown