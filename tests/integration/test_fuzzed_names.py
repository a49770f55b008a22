"""Layouts `python -m bench.fuzznames` found leaving a file in the outbox with no reason a
clerk could see, each minimised and run through the real daemon and receiver
(docs/development.md, "Fuzzing names and layouts"; docs/folder-convention.md)."""

from __future__ import annotations

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_page")


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
    env.write_config(receiver.url, policy={"unattached": "send", "invalid": "hold"})
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
