"""What a finance team's trial found the status page telling clerks wrongly or not at all,
with the real daemon, the real watchdog observer and the reference receiver on 127.0.0.1:
a file in the sidecar's place told twice with advice that did not fit, a re-dropped
invoice whose attachments wait in a quarantine folder, a sent bundle's warnings, a file
named like an invoice file that went into quarantine."""

from __future__ import annotations

import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_since, journal_states
from helpers import Page, drop_bundle, pdf_bytes, wait_for
from PIL import Image

# Daemons here start lean (conftest.LEAN) and their page is paced at 0.5 s
# (conftest.quick_page): these tests read it.
pytestmark = pytest.mark.usefixtures("lean", "quick_page", "quick_settle")


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    return buf.getvalue()


def page_of(env: Env) -> Page:
    path = env.outbox / "outboxd-status.html"
    return Page(path.read_text() if path.exists() else "")


def test_a_file_or_link_in_the_sidecars_place_is_told_once_under_held_with_its_fix(
        env: Env, receiver: Receiver, start_daemon, tmp_path: Path) -> None:
    """A plain file INV-SY1 beside INV-SY1.xml, and a link INV-SY2 beside INV-SY2.xml,
    hold their invoices (`not-a-folder`): the page tells each under Held, and not again
    under the files left alone with "an attachment goes into the folder of its invoice
    file" — advice that, for the sidecar's own name, reads as "put it into itself"."""
    env.write_config(receiver.url, policy={"invalid": "hold"})
    start_daemon()
    (env.outbox / "INV-SY1").write_bytes(b"notes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (env.outbox / "INV-SY2").symlink_to(elsewhere)
    drop_bundle(env.outbox, "INV-SY1", {})
    drop_bundle(env.outbox, "INV-SY2", {})
    wait_for(lambda: {journal_states(env).get(f) for f in ("INV-SY1.xml", "INV-SY2.xml")}
             == {"held"}, what="both invoices held")

    def told() -> bool:
        held = page_of(env).text.get("held", "")
        return "INV-SY1.xml" in held and "INV-SY2.xml" in held
    wait_for(told, what="both held bundles on the page")
    wait_for(lambda: "INV-SY" not in page_of(env).text.get("refused", ""),
             what="a page that does not list the sidecars' names as left alone too")
    page = page_of(env)
    assert page.text["held"].count("the sidecar is not a folder") == 2
    assert "INV-SY" not in page.text.get("refused", "")
    assert "an attachment goes into the folder" not in "".join(page.text.values())
    assert receiver.requests() == []


def test_a_bundle_sent_with_a_warning_shows_it_on_its_sent_today_row(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A CSV sent on the e-invoice channel (`pdf-recommended`) and an invoice sent without
    attachments (`unattached-invoice`) reached only the log and receipt.json: the clerks
    never saw them. Their rows of "Sent today" say them, each name HTML-escaped; a bundle
    sent without warnings says none."""
    env.write_config(receiver.url, policy={"attachment_wait_seconds": 0.3})
    start_daemon()
    drop_bundle(env.outbox, "INV-W1", {"<b>orders.csv": b"Ordernummer\r\n4711\r\n"})
    drop_bundle(env.outbox, "INV-W2", {"a.pdf": pdf_bytes()})
    drop_bundle(env.outbox, "INV-W3", {})  # sent at its deadline (0.3 s), as "warn" does
    wait_for(lambda: len(env.sent_bundles()) == 3, what="the three bundles in sent/")
    sent_rows = "sent today" if all(
        s.startswith(datetime.now(UTC).strftime("%Y-%m-%d"))
        for s in journal_since(env, "sent")) else ""
    if not sent_rows:
        pytest.skip("sent across UTC midnight: the page lists today's sent bundles only")

    def rows() -> dict[str, str]:
        return {r.split("\t")[0]: r for r in page_of(env).rows.get("sent", [])}
    wait_for(lambda: {"INV-W1.xml", "INV-W2.xml", "INV-W3.xml"} <= rows().keys(),
             what="the three bundles under Sent today")
    w1, w2, w3 = rows()["INV-W1.xml"], rows()["INV-W2.xml"], rows()["INV-W3.xml"]
    assert "Sent with a warning:" in w1
    assert "INV-W1/<b>orders.csv: is " in w1 and "PDF is recommended" in w1
    assert "warning" not in w2
    assert "Sent with a warning:" in w3
    assert "INV-W3.xml: invoice INV-W3 is sent without attachments" in w3
    html = (env.outbox / "outboxd-status.html").read_text()
    assert "INV-W1/&lt;b&gt;orders.csv" in html and "<b>orders" not in html


def test_an_invoice_dropped_again_is_told_its_attachments_wait_in_its_quarantine_folder(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """INV-Z.xml is quarantined together with its sidecar INV-Z/ (a PNG named ts.pdf);
    dropped again, mended, it waits for attachments that lie in that quarantine folder.
    Its row — on the status page and in `outboxd status` — names the folder and what to
    do; a waiting invoice with no quarantined bundle says nothing of quarantine/."""
    env.write_config(receiver.url, policy={"unattached": "hold"})
    start_daemon()
    drop_bundle(env.outbox, "INV-Z", {"ts.pdf": png()})
    [folder] = wait_for(env.quarantined, what="INV-Z in quarantine/")
    wait_for(lambda: journal_states(env).get("INV-Z.xml") == "quarantined",
             what="INV-Z.xml's row quarantined")
    assert (folder / "INV-Z").is_dir()
    drop_bundle(env.outbox, "INV-Z", {})
    drop_bundle(env.outbox, "INV-Y", {})
    wait_for(lambda: {journal_states(env).get(f) for f in ("INV-Z.xml", "INV-Y.xml")}
             == {"waiting"}, what="both waiting")
    where = f"quarantine/{folder.parent.name}/{folder.name}/"
    said = (f"a quarantined bundle of INV-Z.xml holds a folder INV-Z, in {where}: if it "
            "holds this invoice's attachments, move INV-Z from there into the outbox")
    retry = f"outboxd retry {folder.name}"

    def rows() -> dict[str, str]:
        return {r.split("\t")[0]: r for r in page_of(env).rows.get("waiting", [])}
    wait_for(lambda: said in rows().get("INV-Z.xml", ""),
             what="INV-Z.xml's waiting row pointing at its quarantine folder")
    assert retry in rows()["INV-Z.xml"]
    assert "quarantine" not in rows()["INV-Y.xml"]
    status = subprocess.run([*OUTBOXD, "status", "-c", str(env.config)], capture_output=True,
                            text=True, timeout=60)
    [line] = [x for x in status.stdout.splitlines()
              if x.startswith("  INV-Z.xml") and "waiting since" in x]
    assert said in line and retry in line
    [other] = [x for x in status.stdout.splitlines()
               if x.startswith("  INV-Y.xml") and "waiting since" in x]
    assert "quarantine" not in other


def test_a_file_named_like_a_quarantined_invoice_file_is_told_where_that_invoice_went(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under `[policy] invalid = "quarantine"`: INV-Q2.xml is quarantined with its sidecar
    INV-Q2/ (a PNG named ts.pdf), beside which a clerk dropped INV-Q2.tif, named like it,
    into the outbox root. That file stays in the outbox (nothing is deleted). The page
    listed it with "an attachment goes into the folder of its invoice file", but that
    invoice file is in quarantine now: it names the quarantine folder INV-Q2.xml went to
    and what to do — move it into the folder of attachments there before INV-Q2.xml goes
    back, or out of the outbox. Another file keeps the usual words."""
    env.write_config(receiver.url, policy={"invalid": "quarantine"})
    start_daemon()
    drop_bundle(env.outbox, "INV-Q2", {"ts.pdf": png()})
    (env.outbox / "INV-Q2.tif").write_bytes(png())
    (env.outbox / "notes.txt").write_bytes(b"")
    [folder] = wait_for(env.quarantined, what="INV-Q2 in quarantine/")
    wait_for(lambda: journal_states(env).get("INV-Q2.xml") == "quarantined",
             what="INV-Q2.xml's row quarantined")
    assert (folder / "INV-Q2").is_dir()
    shown = f"quarantine/{folder.parent.name}/{folder.name}"

    def rows() -> dict[str, str]:
        return dict(r.split("\t", 1) for r in page_of(env).rows.get("refused", []))
    wait_for(lambda: shown in rows().get("INV-Q2.tif", ""),
             what="INV-Q2.tif told where INV-Q2.xml went")
    said = rows()
    assert said["INV-Q2.tif"] == (
        "not an invoice file (only names like *.xml, *.pdf are read as invoice files), so "
        f"it is never sent — INV-Q2.xml, the invoice file named like it, was quarantined (in "
        f"{shown}): if this file is one of its attachments, move it into its folder of "
        "attachments INV-Q2 there (make that folder if there is none) before INV-Q2.xml "
        "goes back into the outbox; anything else, move it out of the outbox")
    assert "an attachment goes into the folder" in said["notes.txt"]
    assert (env.outbox / "INV-Q2.tif").is_file()
    assert receiver.requests() == []
