"""Two invoice files of one stem, INV-1.xml and INV-1.pdf (the default invoice_patterns
take both), held under [policy] invalid = "hold" for different reasons: their one
INV-1.errors.txt explains both, each under its file's name, and keeps explaining the
one still held when the other passes. The real daemon, watchdog observer and
reference receiver."""

from __future__ import annotations

import pytest
from conftest import Env, Receiver, journal_states
from helpers import pdf_bytes, wait_for, write

from daemon.loop.errorsfile import ERRORS_HEADER, ERRORS_HEADER_MANY, without_mark

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


@pytest.mark.usefixtures("quick_page")
def test_one_errors_file_explains_both_held_files_of_a_name_until_none_is_held(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """INV-1.xml (empty) and INV-1.pdf (encrypted), no sidecar: both held, the errors file
    has a section for each and the status page lists both under Held. The clerk
    replaces the PDF with a good one: it is sent, and INV-1.errors.txt stays, now the
    one-bundle text for INV-1.xml (it used to be removed). Once INV-1.xml is taken out,
    the errors file goes."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600},
                     policy={"invalid": "hold", "unattached": "send"})
    start_daemon()
    write(env.outbox / "INV-1.pdf", pdf_bytes(encrypt=True))
    write(env.outbox / "INV-1.xml", b"")
    errors_file = env.outbox / "INV-1.errors.txt"
    wait_for(lambda: journal_states(env) == {"INV-1.xml": "held", "INV-1.pdf": "held"},
             what="both files held")
    wait_for(lambda: errors_file.exists()
             and errors_file.read_text("utf-8").startswith(ERRORS_HEADER_MANY),
             what="the errors file for both")
    text = errors_file.read_text("utf-8")
    pdf_at, xml_at = text.index("\n== INV-1.pdf ==\n"), text.index("\n== INV-1.xml ==\n")
    assert pdf_at < xml_at
    assert "INV-1.pdf: is an encrypted PDF" in text[pdf_at:xml_at]
    assert without_mark(text)[xml_at:] == "\n== INV-1.xml ==\nINV-1.xml: the invoice file " \
        "is empty — export it again\n"
    page = env.outbox / "outboxd-status.html"
    wait_for(lambda: page.exists() and "INV-1.pdf: is an encrypted PDF" in page.read_text(
        "utf-8"), what="the status page with both held")
    held = page.read_text("utf-8").split('id="held"', 1)[1].split("</section>", 1)[0]
    assert "INV-1.xml: the invoice file is empty" in held and "INV-1.pdf" in held

    write(env.outbox / "INV-1.pdf", pdf_bytes())  # the clerk's fix of the PDF
    [sent] = wait_for(env.sent_bundles, what="INV-1.pdf in sent/")
    assert (sent / "INV-1.pdf").exists()
    assert without_mark(errors_file.read_text("utf-8")) == ERRORS_HEADER + \
        "INV-1.xml: the invoice file is empty — export it again\n"
    assert journal_states(env)["INV-1.xml"] == "held"

    (env.outbox / "INV-1.xml").rename(env.root / "INV-1.xml")  # taken out of the outbox
    wait_for(lambda: not errors_file.exists(), what="INV-1.errors.txt removed")
    assert len(receiver.accepted()) == 1 and env.quarantined() == []
