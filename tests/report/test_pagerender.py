"""The status page's content (pagerender.render): sections, escaping, what a clerk is
told to do, the latest of the finished cut to a hundred."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from helpers import Page

from daemon.configuration.config_sections import DeliveryConfig
from daemon.delivery.answers import classify
from daemon.delivery.deliver import HttpDeliverer
from daemon.delivery.pause import HELD_BACK
from daemon.einvoice.transport import bundle_outcome
from daemon.errors import Paused, Retryable
from daemon.journal import Journal, now_iso, parse_iso
from daemon.loop.idlefiles import Idle
from daemon.report import pagehtml, pagerender
from daemon.report.pagerender import render


def fill(j: Journal) -> None:
    j.create("wait.xml", "waiting", invoice_ids=["W-1"], unattached_ids=["W-1"])
    j.create("<b>x&amp;.xml", "held", reasons=[{"code": "empty", "file": "<b>x&amp;/a.pdf",
                                                 "message": "is empty — export it again"}])
    j.create("retry.xml", "retrying", attempts=3, next_attempt_at=now_iso(),
             last_error="HTTP 503")
    j.create("bad.xml", "quarantined", archive_dir="/q/2026-12-01/bad--0123456789ab",
             reasons=[{"code": "encrypted", "file": "bad/c.pdf", "message": "is encrypted"}])
    j.create("ok.xml", "sent", bundle_id="b" * 64, invoice_ids=["OK-1"], receipt_id="rcpt-42")


def test_a_bundle_another_daemon_sent_is_marked_so_under_sent_today(journal: Journal) -> None:
    """The rows of "Sent today" named in `sent_by_others` carry "(sent by another outboxd
    sharing this outbox)" beside the file, as other daemons' quarantines do; the others
    none."""
    theirs = journal.create("THEIRS.xml", "sent", receipt_id="r-1")
    journal.create("OURS.xml", "sent", receipt_id="r-2")
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since), sent_by_others={theirs}))
    sent = page.text["sent"]
    assert f"THEIRS.xml {pagerender.SENT_ELSEWHERE}" in sent
    assert sent.count(pagerender.SENT_ELSEWHERE) == 1
    assert f"OURS.xml {pagerender.SENT_ELSEWHERE}" not in sent


def test_each_bundle_appears_in_its_section_and_names_are_text(journal: Journal) -> None:
    fill(journal)
    rows = journal.recent()
    # "Today" as the rows were written, not as the host's clock says by now (midnight).
    written = parse_iso(next(r.since for r in rows if r.invoice_file == "ok.xml"))
    text = render(rows, [Idle("x.send-anyway", "no invoice file x.*")], written)
    page = Page(text)
    assert "wait.xml" in page.text["waiting"] and "W-1" in page.text["waiting"]
    assert "x.send-anyway" in page.text["waiting"] + page.text["releases"]
    assert "<b>x&amp;.xml" in page.text["held"]  # the name as text, not markup
    assert "is empty — export it again" in page.text["held"]
    assert "retry.xml" in page.text["retrying"] and "HTTP 503" in page.text["retrying"]
    assert "bad--0123456789ab" in page.text["quarantined"]
    assert "is encrypted" in page.text["quarantined"]
    assert "ok.xml" in page.text["sent"] and "rcpt-42" in page.text["sent"]
    # The only <b> elements are the six counts: the file name made none.
    assert len([t for t, _ in page.tags if t == "b"]) == 7
    assert "&lt;b&gt;x&amp;amp;.xml" in text
    # Counts at the top, self-contained, refreshing.
    assert "1 Waiting for attachments" in page.text["top"].replace("\n", "")
    assert ("meta", {"http-equiv": "refresh", "content": "10"}) in page.tags
    assert not [t for t, a in page.tags if t in ("script", "link", "img", "iframe")]
    assert "http://" not in text and "https://" not in text


def test_an_invoice_file_that_cannot_be_read_is_shown_with_its_error(
        journal: Journal) -> None:
    """A bundle stuck settling with an error (its invoice file unreadable: permissions, a
    share gone) is on the page with the error, so the clerk sees why it does not move;
    one settling without an error (a copy at work), or one in flight that the daemon
    retries itself, is not."""
    journal.create("locked.xml", "settling",
                   last_error="[Errno 13] Permission denied: 'locked.xml'")
    journal.create("copying.xml", "settling")
    # In flight with the error of its last try: the daemon retries it itself.
    journal.create("posting.xml", "delivering", last_error="HTTP 503 from the receiver")
    page = Page(render(journal.recent(), [], datetime.now(UTC)))
    assert "locked.xml" in page.text["stuck"] and "Permission denied" in page.text["stuck"]
    assert "copying.xml" not in page.text["stuck"] and "posting.xml" not in page.text["stuck"]
    assert "1 Not moving" in page.text["top"].replace("\n", "")


def test_sent_and_quarantined_of_other_days_are_left_out(journal: Journal) -> None:
    fill(journal)
    page = Page(render(journal.recent(), [], datetime(2001, 1, 1, tzinfo=UTC)))
    assert "ok.xml" not in page.text["sent"] and "bad--" not in page.text["quarantined"]
    assert "wait.xml" in page.text["waiting"]


def test_a_bundle_whose_move_keeps_failing_is_under_retrying(journal: Journal) -> None:
    """A delivered (or quarantining) bundle whose move into sent/ keeps failing is
    retried by the daemon and shown as retrying by `status`: the page lists it there too,
    instead of in no section at all."""
    journal.create("moving.xml", "delivered", last_error="cannot be moved into sent: "
                   "No space left on device", next_attempt_at=now_iso())
    page = Page(render(journal.recent(), [], datetime.now(UTC)))
    assert "moving.xml" in page.text["retrying"] and "No space" in page.text["retrying"]
    assert "1 Retrying" in page.text["top"].replace("\n", "")


def test_a_claimed_bundle_on_its_first_attempt_is_listed_as_being_sent(
        journal: Journal) -> None:
    """A bundle taken from the outbox and on its first attempt (a receiver that takes its
    time answers within timeout_seconds, 60 s by default) was on no section of the page:
    its files gone from the outbox, not sent, not retrying. It is under "Being sent",
    counted at the top, and not under Sent today until it is sent."""
    journal.create("slow.xml", "delivering", bundle_id="c" * 64, invoice_ids=["S-1", "S-2"])
    journal.create("moving.xml", "delivered", bundle_id="d" * 64, invoice_ids=["M-1"])
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since)))
    assert "slow.xml" in page.text["sending"] and "S-2" in page.text["sending"]
    assert "moving.xml" in page.text["sending"]  # received, its move into sent/ to come
    assert "2 Being sent" in page.text["top"]
    assert "slow.xml" not in page.text["sent"] + page.text["retrying"]


def test_a_bundle_on_its_way_to_quarantine_is_not_said_to_be_on_its_way_to_sent(
        journal: Journal) -> None:
    """`status` counts a bundle being moved into quarantine/ (rejected by the receiver,
    or invalid at its claim) as delivering, so the page lists it under "Being sent" too;
    the section said only that such bundles go to Sent today. Each row now says what is
    happening to it: a rejected one goes to quarantine/, a received one to sent/, one
    being claimed is being taken from the outbox."""
    journal.create("bad.xml", "quarantining", bundle_id="e" * 64, invoice_ids=["B-1"],
                   reasons=[{"code": "rejected", "file": "bad.xml", "message": "HTTP 422"}])
    journal.create("invalid.xml", "claiming", bundle_id="f" * 64, invoice_ids=["I-1"],
                   reasons=[{"code": "pdf-encrypted", "file": "a.pdf", "message": "x"}])
    journal.create("ok.xml", "claiming", bundle_id="a" * 64, invoice_ids=["O-1"])
    journal.create("got.xml", "delivered", bundle_id="b" * 64, invoice_ids=["G-1"])
    journal.create("slow.xml", "delivering", bundle_id="c" * 64, invoice_ids=["S-1"])
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since)))
    assert "5 Being sent" in page.text["top"]
    doing = {line.split("\t")[0]: line.split("\t")[2] for line in page.rows["sending"]}
    to_quarantine = "being moved into quarantine/ (see its reasons there)"
    assert doing == {"bad.xml": to_quarantine, "invalid.xml": to_quarantine,
                     "ok.xml": "being taken from the outbox",
                     "got.xml": "received by the receiver; being moved into sent/",
                     "slow.xml": "being delivered"}


def test_a_receivers_control_characters_never_reach_the_page_raw(journal: Journal) -> None:
    """A receiver answered 400/503 with NULs and terminal escape sequences in its body:
    they went raw into the page (not allowed in HTML; `grep` called the page a binary
    file, `type` in a terminal ran them). They are shown as \\xNN, as in `status`; the
    answer to a bundle put off is not shown at all (see below)."""
    body = "\x00bad\x1b[31mred\x1b[0m\x9b"
    journal.create("Q.xml", "quarantined", archive_dir="/q/2026-12-04/Q--0123456789ab",
                   reasons=[{"code": "rejected", "file": "Q.xml", "message": f"HTTP 400: {body}"}])
    journal.create("R.xml", "retrying", attempts=2, next_attempt_at=now_iso(),
                   last_error=f"HTTP 503 from the receiver: {body}")
    rows = journal.recent()
    text = render(rows, [], parse_iso(rows[0].since))
    assert not any(ord(c) < 32 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in text)
    page = Page(text)
    assert "HTTP 400: \\x00bad\\x1b[31mred\\x1b[0m\\x9b" in page.text["quarantined"]
    assert "(HTTP 503)" in page.text["retrying"]
    assert "red" not in page.text["retrying"]


def test_a_file_of_several_invoices_asks_for_each_invoices_own_folder(
        journal: Journal) -> None:
    """Attachments of a file of several invoices go in a subfolder per invoice id (in the
    sidecar root they would be orphans): the page names those folders, with the sidecar
    suffix and the id as a folder name; a file of one invoice names its sidecar."""
    journal.create("batch-42.xml", "waiting", invoice_ids=["A/1", "B-2", "C-3"],
                   unattached_ids=["A/1", "C-3"])
    journal.create("single.xml", "waiting", invoice_ids=["S-1"], unattached_ids=["S-1"])
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since), sidecar_suffix=".att"))
    waiting = page.text["waiting"]
    assert "batch-42.att/A_1" in waiting and "batch-42.att/C-3" in waiting
    assert "batch-42.att/B-2" not in waiting  # it has its attachments
    assert "the folder single.att," in waiting


def test_ids_of_one_folder_are_not_sent_to_make_it(journal: Journal) -> None:
    """A waiting file whose ids have one folder between them (A/1, A:1 and A_1 all A_1;
    INV-7 and inv-7 to Windows) was told to put each one's attachments into
    batch/A_1, batch/A_1, batch/A_1: a clerk who did so got the file stopped as
    id-folder-collision. The row says that those ids share the folder and that the ERP
    must give them distinct ids; a file without such ids is told as before."""
    journal.create("batch.xml", "waiting", invoice_ids=["A/1", "A:1", "A_1", "INV-7",
                                                         "inv-7", "B-2"],
                   unattached_ids=["A/1", "A:1", "A_1", "INV-7", "inv-7", "B-2"])
    journal.create("fine.xml", "waiting", invoice_ids=["C/1", "D-2"],
                   unattached_ids=["C/1", "D-2"])
    rows = journal.recent()
    waiting = Page(render(rows, [], parse_iso(rows[0].since))).text["waiting"]
    assert "A/1 and A:1 and A_1 have one folder, batch/A_1" in waiting
    assert "INV-7 and inv-7 have one folder, batch/INV-7" in waiting
    assert "id-folder-collision" in waiting and "distinct ids" in waiting
    assert waiting.count("have one folder") == 2  # fine.xml's row says nothing of it
    assert "fine/C_1" in waiting


def test_ids_the_matcher_gives_one_folder_are_said_as_it_says_them(journal: Journal) -> None:
    """The row groups ids as the matcher does (reading/idfolders.py), and says when the
    file stops. 'CON' and 'CON_' (both CON_ to a clerk on Windows) were not said, and
    the row sent the clerk to make batch/CON_ twice: the file stops once it is there.
    'Å-1' composed and decomposed were not said either: the matcher takes them for one
    folder, and ids of one folder by folder-convention.md's first rule stop the file as soon as its
    sidecar is there, whatever folder in it the clerk makes (one for B-2 as well), which
    "once that folder is made" hid."""
    nfc, nfd = "\u00c5-1", "A\u030a-1"
    journal.create("win.xml", "waiting", invoice_ids=["CON", "CON_", "B-2"],
                   unattached_ids=["CON", "CON_", "B-2"])
    journal.create("acc.xml", "waiting", invoice_ids=[nfc, nfd, "B-2"],
                   unattached_ids=[nfc, nfd, "B-2"])
    journal.create("rule.xml", "waiting", invoice_ids=["A/1", "A:1", "B-2"],
                   unattached_ids=["A/1", "A:1", "B-2"])
    rows = journal.recent()
    waiting = Page(render(rows, [], parse_iso(rows[0].since))).text["waiting"]
    assert "CON and CON_ have one folder, win/CON_" in waiting
    assert "once that folder is made" in waiting  # only CON_'s folder stops win.xml
    assert f"{nfc} and {nfd} have one folder, acc/{nfc}" in waiting
    for sidecar in ("acc", "rule"):
        assert (f"stops the file as an error (id-folder-collision) as soon as its folder "
                f"{sidecar} is made, whatever is put in it") in waiting
    assert waiting.count("have the ERP give them distinct ids") == 3


def test_no_look_alike_section_without_one(journal: Journal) -> None:
    """Like the other lists of what waits for a person in the outbox, the section is
    there only when something is in it."""
    fill(journal)
    assert 'id="left-behind"' not in render(journal.recent(), [], datetime.now(UTC))


def test_a_name_or_receipt_without_spaces_can_break_and_the_page_stays_in_the_window(
        journal: Journal) -> None:
    """A 250-character file name (no spaces) sat in a first column kept on one line, and
    a receipt id of 256 characters had no place to break either: the table grew wider
    than any window. Each long run gets a place to break every RUN characters (<wbr>,
    which adds no character to a name copied from the page); short names stay on one
    line."""
    long_name = "Rechnung_" + "x" * 241 + ".xml"
    receipt = "rcpt-" + "A" * 251 + "… (cut from 900011 characters)"
    journal.create(long_name, "sent", bundle_id="b" * 64, invoice_ids=["L-1"],
                   receipt_id=receipt)
    journal.create("Räkning-Mars.xml", "sent", bundle_id="c" * 64, invoice_ids=["R-1"],
                   receipt_id="rcpt-1")
    rows = journal.recent()
    html = render(rows, [], parse_iso(rows[0].since))
    page = Page(html)
    # The text is unchanged (copied from the page, a name is the name) ...
    assert long_name in page.text["sent"] and receipt in page.text["sent"]
    # ... but no run of more than RUN characters is left without a place to break.
    cells = html[html.index('id="sent"'):]
    runs = [len(run) for run in re.split(r"<[^>]*>|\s", cells)]
    assert max(runs) <= pagehtml.RUN
    # The long name may break; a short one keeps its line (its cell is class "name").
    classes = [a.get("class") for t, a in page.tags if t == "td"]
    assert classes.count("name") == 1
    assert '<td class="name">Räkning-Mars.xml</td>' in html
    assert "white-space:nowrap" in html and "td:first-child" not in html


def test_a_file_of_thousands_of_invoices_names_the_first_twenty_and_counts_the_rest(
        journal: Journal) -> None:
    """A file of 3,000 invoices made its row 3,000 lines high (and its "How to release"
    named 3,000 folders) under Waiting, and again under Being sent and Sent today: the
    page names the first twenty and says how many more there are."""
    ids = [f"M-{i:04d}" for i in range(3000)]
    journal.create("batch.xml", "waiting", invoice_ids=ids, unattached_ids=ids)
    journal.create("sent.xml", "sent", bundle_id="b" * 64, invoice_ids=ids,
                   receipt_id="rcpt-1")
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since)))
    waiting, sent = page.rows["waiting"][0].split("\t"), page.rows["sent"][0].split("\t")
    assert waiting[1] == "".join(ids[:20]) + "… and 2980 more"
    assert sent[1] == "".join(ids[:20]) + "… and 2980 more"
    assert "batch/M-0019, … and 2980 more)" in waiting[4]
    assert "batch/M-0020" not in waiting[4]
    assert len(render(rows, [], parse_iso(rows[0].since))) < 20_000


def test_a_name_too_long_for_a_release_file_is_told_to_rename_it_first(
        journal: Journal) -> None:
    """A release file is NAME + release_suffix: for an invoice file named with 250
    characters that is longer than a file name may be (255 bytes), so the page asked
    for a file no one can make, and then for `outboxd send`, which writes that very file
    and failed with "File name too long". It says how much shorter to rename the file
    first. At the boundary (a release file of exactly 255 bytes, counted in bytes: "ä"
    is two) the file is still the advice; one byte more, the rename."""
    fits = "ä" * 121 + "x"  # 243 bytes + ".send-anyway" (12) = 255
    over = fits + "y"
    for name in ("R" * 250 + ".xml", fits + ".xml", over + ".xml", "short.xml"):
        journal.create(name, "waiting", invoice_ids=[name[:4]], unattached_ids=[name[:4]])
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since)))
    by_file = {r.split("\t")[0]: r.split("\t")[4] for r in page.rows["waiting"]}
    assert by_file["R" * 250 + ".xml"].endswith(
        "or to send it without them, rename the invoice file (and its folder, if it has "
        "one) to a name at least 7 characters shorter, then drop a release file (its new "
        "name without the extension, then .send-anyway) beside it: a release file for so "
        "long a name would be longer than a file name may be")
    assert "at least 1 character shorter" in by_file[over + ".xml"]
    assert "outboxd send" not in page.text["waiting"]
    assert by_file[fits + ".xml"].endswith(
        f"or drop a file named {fits}.send-anyway beside the invoice to send it without them")
    assert by_file["short.xml"].endswith(
        "or drop a file named short.send-anyway beside the invoice to send it without them")


def test_bidirectional_controls_in_names_are_shown_as_escapes(journal: Journal) -> None:
    """An invoice file named "INV-7" + U+202E + "lmx.pdf" would show on the page as
    "INV-7fdp.xml" (the override reverses what follows it), a PDF posing as an XML; an
    isolate or mark in a folder or an error would reorder its line likewise. Every
    bidirectional control is shown as \\uNNNN wherever a name appears (the file, the
    release file to drop, the sidecar in the folders for attachments, files left alone),
    and none reaches the page raw."""
    journal.create("INV-7\u202elmx.pdf", "waiting", invoice_ids=["A\u2067", "B"],
                   unattached_ids=["A\u2067", "B"])
    journal.create("R\u200f.xml", "retrying", attempts=1, next_attempt_at=now_iso(),
                   last_error="HTTP 503 from the receiver: \u202bbusy")
    text = render(journal.recent(), [Idle("x\u061c.send-anyway", "no invoice file x.*")],
                  datetime.now(UTC), refused={"odd\u202d.xml": "is a symbolic link"})
    page = Page(text)
    assert "INV-7\\u202elmx.pdf" in page.text["waiting"]
    assert "INV-7\\u202elmx.send-anyway" in page.text["waiting"]
    # The id's folder has '_' for the isolate (idnames.folder_name_for_id): that is the
    # folder a clerk can make; the sidecar's own name is the invoice file's.
    assert "INV-7\\u202elmx/A_" in page.text["waiting"]
    assert "R\\u200f.xml" in page.text["retrying"]
    assert "odd\\u202d.xml" in page.text["refused"]
    assert "x\\u061c.send-anyway" in page.text["releases"]
    assert not re.search("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", text)


def _paused_error(answer: httpx.Response) -> str:
    """The last error a paused bundle's row gets for `answer` (finish.py: the error, then
    the receiver's body)."""
    with pytest.raises(Paused) as caught:
        classify(answer)
    exc = caught.value
    return str(exc) + (f": {exc.body[:200]}" if exc.body else "")


def test_a_pause_for_a_configuration_problem_is_said_in_a_clerks_words(
        journal: Journal) -> None:
    """A 401 or 403 (wrong token), a 404 or a redirect (wrong url), a proxy's 407 and a
    request that cannot be made pause deliveries; their errors name settings a clerk
    never sees ("check [delivery] url and token") and the receiver's answer. The page
    says what happened in plain words, that the invoices wait and nothing is lost, and
    to tell the admin, for the bundle paused and for those held back behind it; the
    admin's error stays in the journal (`outboxd status`, the log). An error that is no
    pause is shown as it is."""
    req = httpx.Request("POST", "http://127.0.0.1:9/b")
    body = b'{"error": "token expired for api-user 7"}'
    deliverer = HttpDeliverer(DeliveryConfig(url="http://127.0.0.1:9/b"),
                              transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    errors = {
        "P401.xml": _paused_error(httpx.Response(401, content=body, request=req)),
        "P403.xml": _paused_error(httpx.Response(403, content=body, request=req)),
        "P404.xml": _paused_error(httpx.Response(404, content=body, request=req)),
        "P301.xml": _paused_error(httpx.Response(
            301, headers={"Location": "https://new.example/b"}, request=req)),
        "P304.xml": _paused_error(httpx.Response(304, request=req)),
        "P407.xml": _paused_error(httpx.Response(407, content=body, request=req)),
        "PCONNECT.xml": str(deliverer.failure(httpx.ProxyError("407 Proxy Auth Required"))),
        "PHEADER.xml": str(deliverer.failure(httpx.LocalProtocolError("Illegal header"))),
        "PURL.xml": str(deliverer.failure(httpx.InvalidURL("Invalid port"))),
    }
    errors["HELD.xml"] = f"{HELD_BACK}{errors['P401.xml']} (the answer to P401.xml)"
    with pytest.raises(Paused) as refused:  # ubl-embedded: one document's 401 for the file
        classify(httpx.Response(401, content=body, request=req))
    errors["PDOCS.xml"] = str(bundle_outcome([("INV-1", refused.value)], ["INV-2"]))
    for name, error in errors.items():
        journal.create(name, "retrying", attempts=1, next_attempt_at=now_iso(),
                       last_error=error)
    journal.create("BUSY.xml", "retrying", attempts=2, next_attempt_at=now_iso(),
                   last_error="HTTP 503 from the receiver")
    page = Page(render(journal.recent(), [], datetime.now(UTC)))
    cells = {row.split("\t")[0]: row.split("\t")[3] for row in page.rows["retrying"]}
    for name in errors:
        assert "nothing is lost" in cells[name] and "tell the admin" in cells[name], name
        assert "[delivery]" not in cells[name] and "api-user" not in cells[name], name
    assert cells["P401.xml"].startswith("The operator refused outboxd's credentials "
                                        "(HTTP 401).")
    assert cells["P403.xml"].startswith("The operator refused outboxd's credentials "
                                        "(HTTP 403).")
    assert "fix outboxd's token" in cells["P401.xml"]
    assert cells["HELD.xml"] == cells["P401.xml"]  # held back behind it: told the same
    assert cells["PDOCS.xml"] == cells["P401.xml"]
    assert "was not found (HTTP 404)" in cells["P404.xml"]
    assert "has moved (HTTP 301)" in cells["P301.xml"]
    assert "did not take the file (HTTP 304)" in cells["P304.xml"]
    assert "A proxy server" in cells["P407.xml"] and cells["PCONNECT.xml"] == cells["P407.xml"]
    assert "cannot be used" in cells["PHEADER.xml"] and "cannot be used" in cells["PURL.xml"]
    assert cells["BUSY.xml"].startswith("The operator's server has a problem at the moment "
                                        "(HTTP 503).")
    # The admin's detail is kept where the admin reads it.
    kept = {r.invoice_file: r.last_error for r in journal.recent()}
    assert kept["P401.xml"] == ("HTTP 401: check [delivery] url and token: "
                                '{"error": "token expired for api-user 7"}')


def test_the_receivers_answer_to_a_bundle_put_off_stays_off_the_clerks_page(
        tmp_path: Path) -> None:
    """A bundle put off by the receiver (503, 429 …) is retried with its error and the
    receiver's answer after it ("HTTP 503 from the receiver: <html>…"), as the journal,
    `outboxd status` and the log keep it for the admin. The answer may hold anything (an
    error page, the receiver's internals): the clerks' page shows plain words and the
    status alone, for a
    bundle and for a ubl-embedded file whose documents were put off."""
    from claimed import Scripted, claimed
    req = httpx.Request("POST", "http://127.0.0.1:9/b")
    inside = b"<html><body>Internal error: db=prod-7 user=svc_einvoice</body></html>"
    with pytest.raises(Retryable) as caught:
        classify(httpx.Response(503, content=inside, request=req))
    busy = caught.value
    with pytest.raises(Retryable) as caught:
        classify(httpx.Response(429, content=b'{"detail": "quota of tenant 88"}', request=req))
    documents = bundle_outcome([("INV-1", caught.value), ("INV-2", busy)], ["INV-3"])
    shown: dict[str, str] = {}
    for name, error in (("bundle", busy), ("documents", documents)):
        p, _, row = claimed(tmp_path / name)
        p.finish.d = Scripted(error)
        p.finish.attempt(row)
        [kept] = [r for r in p.j.recent() if r.state == "retrying"]
        assert "prod-7" in (kept.last_error or "") or "tenant 88" in (kept.last_error or "")
        page = Page(render(p.j.recent(), [], datetime.now(UTC)))
        [cells] = [r.split("\t") for r in page.rows["retrying"]]
        shown[name] = cells[3]
        p.j.close()
    assert shown["bundle"].startswith("The operator's server has a problem at the moment "
                                      "(HTTP 503). outboxd tries again by itself")
    assert shown["documents"].startswith("The operator's server is busy and asked outboxd "
                                         "to wait (HTTP 429).")


def test_sent_and_quarantined_today_are_cut_to_the_latest_and_say_how_many_more(
        journal: Journal) -> None:
    """A busy day sends thousands: Sent today and Quarantined today list the latest
    FINISHED_SHOWN, newest first, then say how many more there are and where they all
    are; the counts at the top stay whole."""
    shown = pagerender.FINISHED_SHOWN
    for i in range(shown + 5):
        journal.create(f"ok-{i:04}.xml", "sent", bundle_id=f"{i:064}", receipt_id=f"r-{i}")
        journal.create(f"bad-{i:04}.xml", "quarantined",
                       archive_dir=f"/q/d/bad-{i:04}--0123456789ab",
                       reasons=[{"code": "empty-file", "file": "a.pdf", "message": "empty"}])
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[-1].since)))
    assert len(page.rows["sent"]) == shown and len(page.rows["quarantined"]) == shown
    assert page.rows["sent"][0].startswith(f"ok-{shown + 4:04}.xml")  # the latest first
    assert not any(r.startswith("ok-0004.xml") for r in page.rows["sent"])
    assert "… and 5 more sent today" in page.text["sent"]
    assert "sent/" in page.text["sent"] and "outboxd status --json" in page.text["sent"]
    assert "… and 5 more quarantined today" in page.text["quarantined"]
    assert "REASON.txt" in page.text["quarantined"]
    top = page.text["top"].replace("\n", "")
    assert f"{shown + 5} Sent today" in top and f"{shown + 5} Quarantined today" in top


def test_sent_today_under_the_cut_says_nothing_more(journal: Journal) -> None:
    """Below the cut every bundle is listed and no "… more" line is added."""
    fill(journal)
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[-1].since)))
    assert "more" not in page.text["sent"] and "more" not in page.text["quarantined"]


def test_a_stranded_claim_is_retrying_with_why_and_a_next_try_that_says_by_itself(
        journal: Journal) -> None:
    """A claim kept `claiming` because its work folder is out of sight (stranded.py) has
    no time set for its next try: its Retrying row says it comes by itself instead of
    leaving the cell blank, and says why."""
    journal.create("INV-9.xml", "claiming", bundle_id="9" * 64, invoice_ids=["INV-9"],
                   last_error="its work folder /x is not there (is the share mounted?)")
    page = Page(render(journal.recent(), [], datetime.now(UTC)))
    [row] = page.rows["retrying"]
    name, attempts, next_try, error = row.split("\t")
    assert name == "INV-9.xml" and next_try == "by itself (no set time)"
    assert "is the share mounted?" in error
    assert "INV-9.xml" not in page.text["sending"]


def test_each_section_shows_the_columns_the_contract_names(journal: Journal) -> None:
    """docs/folder-convention.md, The status page: Waiting for attachments shows the file,
    the invoice ids without attachments, since, deadline and how to release (no deadline
    under hold); Retrying the attempts, next try and last error; Sent today the file, its
    invoice ids and the receipt id; Quarantined today the folder and reasons."""
    journal.create("wait.xml", "waiting", invoice_ids=["W-1", "W-2"], unattached_ids=["W-2"],
                   deadline="2031-05-06T12:05:00.000Z")
    journal.create("hold.xml", "waiting", invoice_ids=["H-1"], unattached_ids=["H-1"])
    journal.create("retry.xml", "retrying", attempts=3,
                   next_attempt_at="2031-05-06T12:00:30.000Z", last_error="HTTP 503")
    journal.create("ok.xml", "sent", bundle_id="b" * 64, invoice_ids=["OK-1"],
                   receipt_id="rcpt-42")
    journal.create("bad.xml", "quarantined", archive_dir="/q/2031-05-06/bad--0123456789ab",
                   reasons=[{"code": "encrypted", "file": "bad/c.pdf",
                             "message": "is encrypted"}])
    rows = journal.recent()
    page = Page(render(rows, [], parse_iso(rows[0].since)))
    waiting = page.text["waiting"]
    for heading in ("File", "Invoices without attachments", "Since", "Deadline",
                    "How to release"):
        assert heading in waiting
    row_of = {r.split("\t")[0]: r for r in page.rows["waiting"]}
    wait_row = row_of["wait.xml"]
    assert "W-2" in wait_row and "W-1" not in wait_row
    assert "2031-05-06 12:05:00 UTC" in wait_row and "wait.send-anyway" in wait_row
    hold_row = row_of["hold.xml"]
    assert "none — waits until released" in hold_row and "hold.send-anyway" in hold_row
    retrying = page.text["retrying"]
    for heading in ("Attempts", "Next try", "Last error"):
        assert heading in retrying
    assert "3" in retrying and "2031-05-06 12:00:30 UTC" in retrying and "HTTP 503" in retrying
    sent = page.text["sent"]
    assert "ok.xml" in sent and "OK-1" in sent and "rcpt-42" in sent
    quarantined = page.text["quarantined"]
    assert "bad--0123456789ab" in quarantined and "is encrypted" in quarantined


@pytest.mark.parametrize(("sent", "whole", "shown"), [
    ({"bundle_id": "ab" * 32}, True, "The operator's server answered for another file "
     "(HTTP 201), so this one is not taken as sent yet."),
    (None, False, "The operator's server answered before it had the whole file (HTTP 201), "
     "so it is not taken as sent yet.")])
def test_a_2xx_that_is_no_receipt_is_shown_to_clerks_without_the_receivers_answer(
        journal: Journal, sent: dict[str, str] | None, whole: bool, shown: str) -> None:
    """A 201 naming another bundle, or one that came before the upload ended, is retried
    with the receiver's answer in the admin's error; the clerks' page says what
    happened, without the answer (it may hold anything), as for a 503."""
    req = httpx.Request("POST", "http://127.0.0.1:9/b")
    answer = httpx.Response(201, json={"receipt_id": "R-1", "bundle_id": "cd" * 32,
                                       "debug": "db=prod-7"}, request=req)
    with pytest.raises(Retryable) as caught:
        classify(answer, sent=sent, whole=whole)
    journal.create("ODD.xml", "retrying", attempts=1, next_attempt_at=now_iso(),
                   last_error=f"{caught.value}: {caught.value.body[:200]}")
    page = Page(render(journal.recent(), [], datetime.now(UTC)))
    [cells] = [r.split("\t") for r in page.rows["retrying"]]
    assert cells[3].startswith(shown) and "prod-7" not in cells[3]
    assert "prod-7" in (journal.recent()[0].last_error or "")


def test_folders_without_an_invoice_file_are_listed_and_a_close_one_hinted_at_its_waiting_row(
        journal: Journal) -> None:
    """A folder named close to a waiting invoice file (INV-7100/ for INV-7010.xml) is
    listed under "Folders without an invoice file" with since when and what to do, and
    the waiting row says, as a hint, to rename it if it holds that invoice's attachments."""
    from daemon.watching.lonefolders import LoneFolder
    journal.create("INV-7010.xml", "waiting", invoice_ids=["INV-7010"],
                   unattached_ids=["INV-7010"])
    lone = [LoneFolder("Misc", "2026-05-01T10:00:00.000Z", ()),
            LoneFolder("INV-7100", "2026-05-01T11:00:00.000Z", ("INV-7010.xml",))]
    page = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone,
                       near={"INV-7010.xml": ["INV-7100"]}))
    assert ("a folder INV-7100/ has no invoice file; if it holds INV-7010's attachments, "
            "rename it to INV-7010/; else add the attachments") in page.text["waiting"]
    rows = page.rows["lone"]
    assert rows[0].startswith("Misc/\t2026-05-01 10:00:00 UTC\tput its invoice file")
    assert rows[1].startswith("INV-7100/\t2026-05-01 11:00:00 UTC\tnamed close to "
                              "INV-7010.xml, which waits for attachments: if it holds "
                              "INV-7010's attachments, rename it to INV-7010/; else")
    assert "lone" not in Page(render(journal.recent(), [], datetime.now(UTC))).text


def test_a_folder_named_with_an_invoice_files_extension_is_told_to_drop_it(
        journal: Journal) -> None:
    """A clerk who copied the invoice file's whole name makes the folder INV-1.xml/:
    the invoice file INV-1.xml can then never lie beside it, and "put its invoice file
    (INV-1.xml.xml …) into the outbox" was no fix. The row says to rename the folder
    to INV-1/ first — or, as for any folder without an invoice file, to the name of the
    invoice it is meant for (review53: the first version of this fix dropped that)."""
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder("INV-1.xml", "2026-05-01T10:00:00.000Z", ()),
            LoneFolder("Scan.PDF", "2026-05-01T10:00:00.000Z", ()),
            LoneFolder("v1.2", "2026-05-01T10:00:00.000Z", ())]
    rows = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone)).rows["lone"]
    assert rows[0] == ("INV-1.xml/\t2026-05-01 10:00:00 UTC\tnamed like an invoice file, "
                       "with its extension: the invoice file INV-1.xml cannot be put beside "
                       "a folder of the same name — rename the folder to INV-1 (the invoice "
                       "file's name without its extension), then put INV-1.xml into the "
                       "outbox; or, if it is meant for another invoice, rename it to that "
                       "invoice file's name without its extension")
    assert "rename the folder to Scan " in rows[1]
    assert "put its invoice file (named v1.2 with its extension" in rows[2]


def test_a_folder_named_with_an_invoice_files_extension_goes_by_the_configured_patterns(
        journal: Journal) -> None:
    """Which extension makes a folder "named like an invoice file" is [outbox]
    invoice_patterns' (it was .xml and .pdf whatever they said): with `*.txt` invoice
    files, INV-1.txt/ is told to become INV-1/, and INV-2.xml/ (no invoice file's name
    there) is told as any folder without an invoice file."""
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder("INV-1.txt", "2026-05-01T10:00:00.000Z", ()),
            LoneFolder("INV-2.xml", "2026-05-01T10:00:00.000Z", ())]
    rows = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone,
                       invoice_patterns=["*.txt"])).rows["lone"]
    assert "rename the folder to INV-1 (the invoice file's name" in rows[0]
    assert "put its invoice file (named INV-2.xml with its extension" in rows[1]


def test_a_folder_named_with_an_extension_beside_its_bare_name_is_told_to_move_its_files(
        journal: Journal) -> None:
    """Z-1.xml/ beside a folder Z-1/ already there: "rename the folder to Z-1" fails
    (Explorer offers to merge, a shell refuses); the row says to move its files into
    Z-1/ instead."""
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder("Z-1.xml", "2026-05-01T10:00:00.000Z", ())]
    [row] = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone,
                        taken={"Z-1.xml"})).rows["lone"]
    assert ("cannot be put beside a folder of the same name — a folder Z-1/ is there "
            "already: move the files of this folder into Z-1/ and remove this one, then put "
            "Z-1.xml into the outbox") in row
    assert "rename the folder to" not in row


def test_the_page_lists_the_first_hundred_folders_without_an_invoice_file_and_counts_the_rest(
        journal: Journal) -> None:
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder(f"F-{i:04}", "2026-05-01T10:00:00.000Z", ()) for i in range(130)]
    page = Page(render([], [], datetime.now(UTC), lone=lone))
    assert len(page.rows["lone"]) == pagerender.LONE_SHOWN
    assert "… and 30 more folders without an invoice file" in page.text["lone"]


def test_a_folder_of_outboxds_own_pdfs_moved_back_from_quarantine_is_told_to_go(
        journal: Journal) -> None:
    """A clerk who moves a quarantined bundle back by hand, as REASON.txt says, may move
    INV-1.converted/ too (the PDFs outboxd made of its images, "named like the invoice
    file"). It is never sent and stays: its row told the clerk to put an invoice file
    INV-1.converted.xml beside it, which fits nothing. It says what the folder is likely
    to be and to remove it, before the usual fix."""
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder("INV-1.converted", "2026-05-01T10:00:00.000Z", ())]
    [row] = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone)).rows["lone"]
    assert row.startswith(
        "INV-1.converted/\t2026-05-01 10:00:00 UTC\tif it holds the PDFs outboxd made of "
        "INV-1's images (moved here from quarantine/ or sent/ with that bundle), remove "
        "it: outboxd makes them again when it sends the bundle; else put its invoice file "
        "(named INV-1.converted with its extension")


def test_a_folder_of_sent_documents_moved_back_from_quarantine_is_told_to_go_back(
        journal: Journal) -> None:
    """INV-1.embedded/ (the documents ubl-embedded built and posted, kept with the
    bundle) moved back into the outbox by hand is never sent and stays: its row says what
    it likely is and to put it back with the archive, not to give it an invoice file
    INV-1.embedded.xml."""
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder("INV-1.embedded", "2026-05-01T10:00:00.000Z", ())]
    [row] = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone)).rows["lone"]
    assert row.startswith(
        "INV-1.embedded/\t2026-05-01 10:00:00 UTC\tif it holds the documents outboxd built "
        "of INV-1 and sent to the operator (moved here from quarantine/ or sent/ with that "
        "bundle), move it back there: outboxd builds them again when it sends the bundle; "
        "else put its invoice file")


def test_what_is_left_of_an_archive_folder_moved_back_is_told_to_go_back(
        journal: Journal) -> None:
    """A folder from quarantine/ moved into the outbox whole, its invoice file and folder
    then moved out of it as its row said: what is left (REASON.txt, reason.json) is a
    folder INV-1--0123456789ab/ without an invoice file, whose row told the clerk to put
    an invoice file INV-1--0123456789ab.xml beside it. It says what the folder likely is
    and to move it back where it came from, before the usual fix; a folder of another
    name (an id of 11 characters, no "--") gets the usual fix alone."""
    from daemon.watching.lonefolders import LoneFolder
    lone = [LoneFolder(name, "2026-05-01T10:00:00.000Z", ()) for name in
            ("INV-1--0123456789ab", "INV-2--0123456789ab-2", "INV-3--0123456789a", "Misc")]
    rows = Page(render(journal.recent(), [], datetime.now(UTC), lone=lone)).rows["lone"]
    told = ("if it is a folder from quarantine/ or sent/ (its name ends in -- and the "
            "bundle's id), move the invoice file and its folder out of it into the outbox, "
            "if they are still in it, then move it back where it came from; else put its "
            "invoice file")
    assert [told in row for row in rows] == [True, True, False, False]


def test_each_count_at_the_top_links_to_its_section_and_reads_as_words(tmp_path: Path) -> None:
    """With 2,000 invoices waiting the sections below "Waiting for attachments" begin
    4,000 lines down: each count at the top is a link to its section, so a clerk gets to
    Held or Quarantined today with one click. And a text browser, a screen reader or a
    copy of the page read "0Held" before: the number and its title are apart."""
    j = Journal(tmp_path / "j.sqlite3")
    fill(j)
    with j.batch():  # one commit and sync for the 2,000, not one each (1.4 s of the test)
        for n in range(2000):
            j.create(f"BULK-{n:05d}.xml", "waiting", invoice_ids=[f"B-{n}"],
                     unattached_ids=[f"B-{n}"])
    rows = j.recent()
    j.close()
    page = Page(render(rows, [], parse_iso(rows[0].since)))
    links = [a["href"] for t, a in page.tags if t == "a"]
    sections = [a["id"] for t, a in page.tags if t == "section"]
    assert links == ["#waiting", "#held", "#stuck", "#sending", "#retrying", "#quarantined",
                     "#sent"]
    assert all(link[1:] in sections for link in links)
    top = " ".join(page.text["top"].split())
    assert "2001 Waiting for attachments" in top and "1 Held" in top and "0 Not moving" in top


def test_waiting_invoices_are_listed_longest_waiting_first_those_of_one_second_by_name(
        tmp_path: Path) -> None:
    """An ERP's export of many files starts their waits within one second, and the
    journal has them in the order each was read (C, A, B): listed so, a clerk looking
    for a name among 2,000 found no order. The longest waiting comes first; those of one
    second (as the page shows times) by name."""
    j = Journal(tmp_path / "j.sqlite3")
    since = {"C.xml": "2031-05-06T12:00:01.900Z", "A.xml": "2031-05-06T12:00:01.950Z",
             "B.xml": "2031-05-06T12:00:01.100Z", "Z.xml": "2031-05-06T11:59:59.000Z"}
    for name in since:
        j.create(name, "waiting", invoice_ids=[name[0]], unattached_ids=[name[0]])
    rows = [replace(r, since=since[r.invoice_file]) for r in j.recent()]
    j.close()
    page = Page(render(rows, [], datetime(2031, 5, 6, 12, 1, tzinfo=UTC)))
    assert [r.split("\t")[0] for r in page.rows["waiting"]] == ["Z.xml", "A.xml", "B.xml",
                                                                "C.xml"]


def test_a_waiting_invoice_file_without_an_extension_is_told_to_take_one_for_attachments(
        journal: Journal) -> None:
    """INV-7, an invoice file without an extension (invoice_patterns = ["*"], no sidecar
    suffix), waits under `unattached = "warn"` as any unattached invoice: its row says how
    to give it attachments — an extension first, then the folder INV-7 — never "add the
    attachments to the folder INV-7", a folder of its own name, which cannot lie beside
    it. Its release file stays offered. A file with an extension is told of its folder."""
    journal.create("INV-7", "waiting", invoice_ids=["INV-7"], unattached_ids=["INV-7"])
    journal.create("INV-8.xml", "waiting", invoice_ids=["INV-8"], unattached_ids=["INV-8"])
    page = Page(render(journal.recent(), [], datetime.now(UTC)))
    [bare] = [r for r in page.rows["waiting"] if r.startswith("INV-7\t")]
    assert "add the attachments to the folder INV-7," not in bare
    assert ("INV-7 has no extension, so no folder of attachments can lie beside it under "
            "its name: to send it with attachments, give it its extension (INV-7.xml, "
            "INV-7.pdf …) and put them into the folder INV-7") in bare
    assert "INV-7.send-anyway" in bare
    [named] = [r for r in page.rows["waiting"] if r.startswith("INV-8.xml\t")]
    assert "add the attachments to the folder INV-8, or" in named


def test_a_bundle_whose_move_into_sent_or_quarantine_fails_is_told_in_a_clerks_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle the receiver took, or rejected, whose move into sent/ or quarantine/ is
    refused (a day folder made immutable, a full disk): the row's error names folders,
    their owner and mode, lsattr and ReadWritePaths= for the admin, as `outboxd status`
    and the log keep it. The clerks' page showed that raw under Retrying; it now says
    that the operator has the file (with its receipt) and it is never sent again, or
    that it is to be quarantined, that nothing is lost, and to tell the admin. Likewise
    a bundle whose work folder is gone ("the processing folder … is not there — is the
    share mounted?", which a clerk took for their own share)."""
    import errno

    from claimed import Scripted, claimed

    from daemon.archiving import moves
    from daemon.delivery.answers import Receipt
    from daemon.errors import Rejected

    def refused(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.EPERM, "Operation not permitted", str(tmp_path))
    monkeypatch.setattr(moves, "place", refused)
    answers = {"receipt": Receipt(201, {"receipt_id": "rcpt-77"}, "rcpt-77"),
               "no receipt": None,  # the directory transport: no receipt id
               "rejected": Rejected("the receiver rejected the bundle with HTTP 422", 422,
                                    "no"),
               "gone": None}  # its work folder moved away (its share gone)
    shown: dict[str, str] = {}
    for name, answer in answers.items():
        p, _, row = claimed(tmp_path / name)
        if answer is not None:
            p.finish.d = Scripted(answer)
        if name == "gone":
            work = Path(p.j.get(row).work_dir or "")
            work.rename(tmp_path / name / "away")
        assert p.finish.attempt(row) is not None  # the move is tried again later
        admin = p.j.get(row).last_error or ""
        if name == "gone":
            assert admin == (f"the processing folder {work} or the invoice file in it is "
                             "not there — is the share mounted?")
        else:
            assert "Operation not permitted" in admin and "lsattr" in admin
        page = Page(render(p.j.recent(), [], datetime.now(UTC)))
        [cells] = [r.split("\t") for r in page.rows["retrying"]]
        shown[name] = cells[3]
        p.j.close()
    assert shown["receipt"].startswith("The operator has received this file (receipt "
                                       "rcpt-77), but outboxd cannot put it into sent/ yet")
    assert shown["no receipt"].startswith("The operator has received this file, but ")
    assert "never sent again" in shown["receipt"] and "tell the admin" in shown["receipt"]
    assert shown["rejected"].startswith("This file is to be quarantined, but outboxd "
                                        "cannot put it into quarantine/ yet")
    assert shown["gone"].startswith("outboxd cannot find this file in its work folder on "
                                    "its server")
    for words in shown.values():
        assert "lsattr" not in words and "Operation not permitted" not in words
        assert str(tmp_path) not in words and "share mounted" not in words


def test_ids_that_differ_only_by_a_dot_at_the_end_are_said_to_have_one_folder(
        journal: Journal) -> None:
    """batch.xml holds A-1. and A-1: the row sent the clerk to make batch/A-1_ and
    batch/A-1, though a clerk who types the id A-1. on the share makes A-1 (Windows drops
    the dot) and the file stops as id-folder-collision as soon as its sidecar is there.
    The row says the two have one folder, the one Windows makes of both, A-1."""
    journal.create("batch.xml", "waiting", invoice_ids=["A-1.", "A-1", "B-2"],
                   unattached_ids=["A-1.", "A-1", "B-2"])
    rows = journal.recent()
    waiting = Page(render(rows, [], parse_iso(rows[0].since))).text["waiting"]
    assert "A-1. and A-1 have one folder, batch/A-1," in waiting
    assert ("stops the file as an error (id-folder-collision) as soon as its folder batch "
            "is made, whatever is put in it") in waiting
