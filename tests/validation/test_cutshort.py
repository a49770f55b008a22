"""A copy that stalls mid-file for longer than settle_seconds (a slow VPN, a laptop gone to
sleep) is read half-written. Under [policy] invalid = "quarantine" a version that fails
only as such a file does is held for a grace period (another settle period, at least
GRACE_SECONDS) and quarantined only if it is still the same then; driven step by step
with a real journal, real files and a clock of our own (no sleeps)."""

from __future__ import annotations

import io
import json
import random
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import folders, make, quiet_logs, run_once, step  # noqa: E402, F401
from fakeloop import SETTLE, Counts, FakeClock  # noqa: E402
from helpers import drop_bundle, office_file, pdf_bytes, ubl_invoice, write  # noqa: E402
from validating import tiff_compressed  # noqa: E402

from daemon.bundle import Finding  # noqa: E402
from daemon.errors import InputError  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.loop.step import IDLE  # noqa: E402
from daemon.reading.invoices import read_invoice_bytes  # noqa: E402
from daemon.validation.cutshort import (  # noqa: E402
    GRACE_SECONDS,
    XML_CUT_SHORT,
    grace_seconds,
    looks_cut_short,
)
from daemon.watching.scan import Candidate, list_outbox  # noqa: E402

T0 = 1000.0
WHOLE_PDF = pdf_bytes(2)
WHOLE_XLSX = office_file("xlsx")
WHOLE_ODS = office_file("ods")


def _signed() -> tuple[bytes, bytes]:
    """A 2-page PDF and the same file with an update appended after its %%EOF, as a
    signature is saved: a third page."""
    update = PdfWriter(io.BytesIO(WHOLE_PDF), incremental=True)
    update.add_blank_page(300, 300)
    out = io.BytesIO()
    update.write(out)
    return WHOLE_PDF, out.getvalue()


UNSIGNED, SIGNED = _signed()
# A copy stalled inside the update: pypdf alone reads the 2 pages before it.
SIGNED_CUT = SIGNED[:(len(UNSIGNED) + len(SIGNED)) // 2]


def _png() -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (64, 64), random.Random(1).randbytes(64 * 64 * 3)).save(out, "PNG")
    return out.getvalue()


def _only(p: Pipeline) -> Candidate:
    [cand] = list_outbox(p.s.outbox).candidates.values()
    return cand


def _reasons(quarantined: Path) -> list[dict[str, Any]]:
    return json.loads((quarantined / "reason.json").read_text())["reasons"]


# What a copy that stalled leaves, and the code it is read as.
CUT_SHORT = {
    "pdf-cut-in-half": ("scan.pdf", WHOLE_PDF[: len(WHOLE_PDF) // 2], "pdf-unreadable"),
    "pdf-sized-first": ("scan.pdf", WHOLE_PDF[:200] + bytes(len(WHOLE_PDF) - 200),
                        "pdf-unreadable"),
    "pdf-cut-in-its-update": ("signed.pdf", SIGNED_CUT, "pdf-unreadable"),
    "png-cut-in-half": ("photo.png", _png()[: len(_png()) // 2], "image-unreadable"),
    "nothing-yet": ("scan.pdf", b"", "empty-file"),
    "xlsx-cut-in-half": ("hours.xlsx", WHOLE_XLSX[: len(WHOLE_XLSX) // 2], "zip-unreadable"),
    "ods-cut-in-half": ("hours.ods", WHOLE_ODS[: len(WHOLE_ODS) // 2], "zip-unreadable"),
    "xlsx-sized-first": ("hours.xlsx", WHOLE_XLSX[:1000] + bytes(len(WHOLE_XLSX) - 1000),
                         "zip-unreadable"),
}


class TestHeldThroughTheGrace:
    @pytest.mark.parametrize("kind", list(CUT_SHORT))
    def test_a_file_cut_short_is_held_through_its_grace_then_quarantined_unchanged(
            self, tmp_path: Path, kind: str) -> None:
        """Settled but cut short: held (NAME.errors.txt and the journal say it looks cut
        short and that it is quarantined after the grace), still held just before the
        grace ends, and quarantined when it ends with the version unchanged — with the
        plain reason, the file as it was, and the errors file gone."""
        name, data, code = CUT_SHORT[kind]
        p, s = make(tmp_path)  # settle_seconds = 0: the grace is GRACE_SECONDS
        outbox = s.outbox.path
        drop_bundle(outbox, "INV-1", {name: data})
        cand = _only(p)

        before = datetime.now(UTC)
        assert step(p, cand, T0).at == T0 + GRACE_SECONDS
        after = datetime.now(UTC)
        [row] = p.j.rows(("held",))
        assert [r["code"] for r in row.reasons] == [code]
        said = re.search(r"it looks cut short — outboxd waits until "
                         r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC in case it is still being "
                         r"copied, and quarantines the bundle if nothing in it has changed "
                         r"by then", row.reasons[0]["message"])
        assert said is not None, row.reasons[0]["message"]
        # The grace's end as a time of day (not "30 s", which a clerk reading the file
        # later would count from then), never before it, at most a second or two after.
        until = datetime.strptime(said[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        grace = timedelta(seconds=GRACE_SECONDS)
        assert before.replace(microsecond=0) + grace <= until <= after + grace + \
            timedelta(seconds=1)
        errors_txt = (outbox / "INV-1.errors.txt").read_text()
        assert f"INV-1/{name}: " in errors_txt and f"waits until {said[1]} UTC" in errors_txt
        assert folders(s.quarantine_dir) == []

        assert step(p, cand, T0 + GRACE_SECONDS - 0.5).at == T0 + GRACE_SECONDS
        assert folders(s.quarantine_dir) == [] and (outbox / "INV-1.xml").exists()
        # The same time when it is looked at again: the words kept do not move.
        [row] = p.j.rows(("held",))
        assert f"waits until {said[1]} UTC" in row.reasons[0]["message"]

        assert step(p, cand, T0 + GRACE_SECONDS) == IDLE
        [q] = folders(s.quarantine_dir)
        [reason] = _reasons(q)
        assert reason["code"] == code and "cut short" not in reason["message"]
        assert (q / "INV-1" / name).read_bytes() == data
        assert not (outbox / "INV-1.errors.txt").exists()
        assert [r.state for r in p.j.rows(("quarantined",))] == ["quarantined"]

    def test_a_pdf_completed_within_the_grace_is_sent(self, tmp_path: Path) -> None:
        """The copy goes on within the grace: the change puts the bundle back to settling,
        the whole file settles, passes and is sent; nothing is quarantined and the errors
        file written during the grace is gone."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        outbox = s.outbox.path
        half = WHOLE_PDF[: len(WHOLE_PDF) // 2]
        drop_bundle(outbox, "INV-1", {"scan.pdf": half})
        cand = _only(p)
        step(p, cand, T0)
        assert step(p, cand, T0 + 5).at == T0 + 5 + GRACE_SECONDS
        assert [r.state for r in p.j.rows(("held",))] == ["held"]
        assert (outbox / "INV-1.errors.txt").exists()

        write(outbox / "INV-1" / "scan.pdf", WHOLE_PDF)  # the copy finishes
        assert step(p, cand, T0 + 10).at == T0 + 15
        assert [r.state for r in p.j.rows(("settling",))] == ["settling"]
        assert run_once(p, now=T0 + 15) != []
        [sent] = folders(s.sent_dir)
        assert (sent / "INV-1" / "scan.pdf").read_bytes() == WHOLE_PDF
        assert folders(s.quarantine_dir) == []
        assert not (outbox / "INV-1.errors.txt").exists()

    def test_a_docx_cut_short_on_a_channel_that_takes_docx_is_held_then_quarantined(
            self, tmp_path: Path) -> None:
        """allowed_types with docx: a half-written DOCX is held through the grace, not
        quarantined as a ZIP archive of the wrong type, then quarantined unchanged."""
        whole = office_file("docx")
        p, s = make(tmp_path, validation={"allowed_types": ["pdf", "docx"]})
        drop_bundle(s.outbox.path, "INV-1", {"letter.docx": whole[:len(whole) // 2]})
        cand = _only(p)
        assert step(p, cand, T0).at == T0 + GRACE_SECONDS
        [row] = p.j.rows(("held",))
        assert [r["code"] for r in row.reasons] == ["zip-unreadable"]
        assert "still being copied" in row.reasons[0]["message"]
        assert folders(s.quarantine_dir) == []
        assert step(p, cand, T0 + GRACE_SECONDS) == IDLE
        [q] = folders(s.quarantine_dir)
        assert [r["code"] for r in _reasons(q)] == ["zip-unreadable"]

    def test_an_xlsx_completed_within_the_grace_is_sent(self, tmp_path: Path) -> None:
        """The copy of a workbook goes on within the grace: the whole XLSX settles, passes
        and is sent as it is; nothing is quarantined."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        outbox = s.outbox.path
        drop_bundle(outbox, "INV-1", {"hours.xlsx": WHOLE_XLSX[:-200]})
        cand = _only(p)
        step(p, cand, T0)
        assert step(p, cand, T0 + 5).at == T0 + 5 + GRACE_SECONDS
        [row] = p.j.rows(("held",))
        assert [r["code"] for r in row.reasons] == ["zip-unreadable"]

        write(outbox / "INV-1" / "hours.xlsx", WHOLE_XLSX)  # the copy finishes
        step(p, cand, T0 + 10)
        assert run_once(p, now=T0 + 15) != []
        [sent] = folders(s.sent_dir)
        assert (sent / "INV-1" / "hours.xlsx").read_bytes() == WHOLE_XLSX
        assert folders(s.quarantine_dir) == []
        assert not (outbox / "INV-1.errors.txt").exists()

    def test_a_signed_pdf_cut_in_its_signature_is_not_sent_and_whole_is_sent_whole(
            self, tmp_path: Path) -> None:
        """A PDF cut inside the update appended after its end marker (its signature) reads
        as the older, unsigned revision: it is held through the grace, not sent; the copy
        finishing within the grace sends the whole file, with the update's 3 pages."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        outbox = s.outbox.path
        drop_bundle(outbox, "INV-1", {"signed.pdf": SIGNED_CUT})
        cand = _only(p)
        step(p, cand, T0)
        assert step(p, cand, T0 + 5).at == T0 + 5 + GRACE_SECONDS
        [row] = p.j.rows(("held",))
        assert [r["code"] for r in row.reasons] == ["pdf-unreadable"]
        assert "ends inside an update added after its end marker" in row.reasons[0]["message"]
        assert folders(s.sent_dir) == [] and folders(s.quarantine_dir) == []

        write(outbox / "INV-1" / "signed.pdf", SIGNED)  # the copy finishes
        assert step(p, cand, T0 + 10).at == T0 + 15
        assert run_once(p, now=T0 + 15) != []
        [sent] = folders(s.sent_dir)
        assert (sent / "INV-1" / "signed.pdf").read_bytes() == SIGNED
        assert len(PdfReader(sent / "INV-1" / "signed.pdf").pages) == 3
        assert folders(s.quarantine_dir) == []

    def test_an_attachments_toml_cut_short_is_held_through_its_grace_then_quarantined(
            self, tmp_path: Path) -> None:
        """attachments.toml that breaks off in a string (a copy stopped mid-file) beside a
        whole PDF: held through the grace, saying it looks cut short, then quarantined
        unchanged with the plain reason."""
        notes = b'[files."scan.pdf"]\ntype = "delivery-note"\nnote = "Signed by the dr'
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"scan.pdf": WHOLE_PDF, "attachments.toml": notes})
        cand = _only(p)
        assert step(p, cand, T0).at == T0 + GRACE_SECONDS
        [row] = p.j.rows(("held",))
        assert [r["code"] for r in row.reasons] == ["attachments-toml-invalid"]
        assert "still being copied" in row.reasons[0]["message"]
        assert folders(s.quarantine_dir) == []

        assert step(p, cand, T0 + GRACE_SECONDS) == IDLE
        [q] = folders(s.quarantine_dir)
        [reason] = _reasons(q)
        assert reason["code"] == "attachments-toml-invalid"
        assert "cut short" not in reason["message"]
        assert (q / "INV-1" / "attachments.toml").read_bytes() == notes

    def test_the_grace_is_another_settle_period_when_that_is_longer(
            self, tmp_path: Path) -> None:
        """With settle_seconds over GRACE_SECONDS, the grace is one more settle period."""
        assert grace_seconds(0) == GRACE_SECONDS == 30.0
        assert grace_seconds(90) == 90.0
        p, s = make(tmp_path, outbox={"settle_seconds": 90})
        drop_bundle(s.outbox.path, "INV-1", {"scan.pdf": b""})
        cand = _only(p)
        step(p, cand, T0)
        assert step(p, cand, T0 + 90).at == T0 + 180


class TestQuarantinedAtOnce:
    @pytest.mark.parametrize("attachments", [
        {"scan.pdf": b"PK\x03\x04" + bytes(200)},
        {"scan.pdf": WHOLE_PDF[:300], "macro.docm": b"PK\x03\x04" + bytes(200)},
    ], ids=["wrong-type", "cut-short-beside-wrong-type"])
    def test_a_file_of_the_wrong_type_is_quarantined_at_once(
            self, tmp_path: Path, attachments: dict[str, bytes]) -> None:
        """A file of the wrong type is no copy at work, and neither is a bundle that has
        such a file beside one cut short: quarantined at its first decision, as before."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", attachments)
        assert run_once(p, now=T0) == []
        [q] = folders(s.quarantine_dir)
        codes = {r["code"] for r in _reasons(q)}
        assert codes & {"extension-mismatch", "type-not-allowed"}
        assert not (s.outbox.path / "INV-1.errors.txt").exists()

    @pytest.mark.parametrize(("name", "data", "code"), [
        ("scan.tif", tiff_compressed(34712), "image-unreadable"),
        ("scan.pdf", WHOLE_PDF.replace(b"xref\n0 6\n", b"xref\n0 9\n", 1), "pdf-unreadable"),
    ], ids=["tiff-in-jpeg-2000", "pdf-xref-miscounted"])
    def test_a_file_whose_header_says_what_is_wrong_is_quarantined_at_once(
            self, tmp_path: Path, name: str, data: bytes, code: str) -> None:
        """A file whose own header tells why it cannot be read, as no copy at work leaves
        it, is not held for the grace nor said to look cut short: quarantined at its
        first decision."""
        p, s = make(tmp_path, validation={"channel": "external-print"})
        drop_bundle(s.outbox.path, "INV-1", {name: data})
        assert run_once(p, now=T0) == []
        [q] = folders(s.quarantine_dir)
        assert [r["code"] for r in _reasons(q)] == [code]
        assert not (s.outbox.path / "INV-1.errors.txt").exists()

    def test_an_attachments_toml_with_a_mistake_in_its_middle_is_quarantined_at_once(
            self, tmp_path: Path) -> None:
        """A value without its quotes, with the rest of the file after it, is no copy at
        work: quarantined at its first decision, told to fix the syntax."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"scan.pdf": WHOLE_PDF, "attachments.toml":
                                             b'[files."scan.pdf"]\ntype = delivery\n'
                                             b'note = "Signed"\n'})
        assert run_once(p, now=T0) == []
        [q] = folders(s.quarantine_dir)
        [reason] = _reasons(q)
        assert reason["code"] == "attachments-toml-invalid"
        assert "— fix the syntax" in reason["message"]

    def test_under_marker_completion_a_cut_short_pdf_is_quarantined_at_once(
            self, tmp_path: Path) -> None:
        """completion = "marker": the marker says the copy is done, so there is no grace."""
        p, s = make(tmp_path, outbox={"completion": "marker"})
        drop_bundle(s.outbox.path, "INV-1", {"scan.pdf": WHOLE_PDF[:300]})
        write(s.outbox.path / "INV-1.ready", b"")
        assert run_once(p, now=T0) == []
        [q] = folders(s.quarantine_dir)
        assert [r["code"] for r in _reasons(q)] == ["pdf-unreadable"]

    def test_under_invalid_hold_a_cut_short_pdf_is_held_as_before(
            self, tmp_path: Path) -> None:
        """[policy] invalid = "hold": held with its plain errors until it changes, no timer,
        nothing about a grace."""
        p, s = make(tmp_path, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"scan.pdf": WHOLE_PDF[:300]})
        cand = _only(p)
        assert step(p, cand, T0) == IDLE
        assert step(p, cand, T0 + 10 * GRACE_SECONDS) == IDLE
        [row] = p.j.rows(("held",))
        assert "cut short" not in row.reasons[0]["message"]
        assert "cut short" not in (s.outbox.path / "INV-1.errors.txt").read_text()
        assert folders(s.quarantine_dir) == []


class TestInvoiceFile:
    def test_xml_cut_mid_element_is_held_but_xml_broken_mid_file_is_quarantined_at_once(
            self, tmp_path: Path) -> None:
        """An invoice file whose XML ends before its document does is one a copy at work
        explains: held through the grace. XML broken in its middle (a bare '&') is not
        (`invalid-xml` either way): quarantined at once."""
        whole = ubl_invoice("INV-1")
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": WHOLE_PDF}, invoice=whole[:-40])
        drop_bundle(s.outbox.path, "INV-2", {"a.pdf": pdf_bytes(3)},
                    invoice=whole.replace(b"</cbc:ID>", b"&amp</cbc:ID>", 1))
        run_once(p, now=T0)
        [q] = folders(s.quarantine_dir)
        assert q.name.startswith("INV-2")
        assert [r["code"] for r in _reasons(q)] == ["invalid-xml"]
        [held] = p.j.rows(("held",))
        assert held.invoice_file == "INV-1.xml"
        assert [r["code"] for r in held.reasons] == ["invalid-xml"]
        assert "ends before its last element is closed" in held.reasons[0]["message"]

        run_once(p, now=T0 + GRACE_SECONDS)
        assert sorted(q.name[:5] for q in folders(s.quarantine_dir)) == ["INV-1", "INV-2"]


class TestRestart:
    def test_a_restart_during_the_grace_holds_it_again_then_quarantines_it(
            self, tmp_path: Path) -> None:
        """A daemon stopped during the grace loses nothing: the next start finds the held
        row and the files where they were, reads the bundle again, holds it through a
        whole new grace (on its own clock), then quarantines it unchanged."""
        p, s = make(tmp_path)
        outbox = s.outbox.path
        drop_bundle(outbox, "INV-1", {"scan.pdf": WHOLE_PDF[:300]})
        step(p, _only(p), T0)
        assert [r.state for r in p.j.rows(("held",))] == ["held"]
        p.j.close()

        again, _ = make(tmp_path)  # the same settings, its journal opened again
        again.start({"INV-1.xml"})
        cand = _only(again)
        assert step(again, cand, 5.0).at == 5.0 + GRACE_SECONDS
        [row] = again.j.rows(("held",))
        assert "still being copied" in row.reasons[0]["message"]
        assert "still being copied" in (outbox / "INV-1.errors.txt").read_text()
        assert folders(s.quarantine_dir) == []

        step(again, cand, 5.0 + GRACE_SECONDS)
        [q] = folders(s.quarantine_dir)
        assert (q / "INV-1" / "scan.pdf").read_bytes() == WHOLE_PDF[:300]
        assert not (outbox / "INV-1.errors.txt").exists()


def test_the_grace_is_a_timer_of_the_loop(make_service: Any, clock: FakeClock,
                                          counts: Counts, tmp_path: Path) -> None:
    """On the loop (fake clock): the bundle settles, is held, its timer is set to the end
    of the grace and fires there with no event; it is quarantined then, not before."""
    svc = make_service()
    t0 = clock.t
    write(tmp_path / "outbox" / "INV-1" / "scan.pdf", WHOLE_PDF[:300])
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    svc.turn()
    clock.t = t0 + SETTLE
    svc.turn()
    assert svc.journal.summary().get("held") == 1
    assert svc.timers.due_at(("bundle", "INV-1.xml")) == t0 + SETTLE + GRACE_SECONDS

    clock.t = t0 + SETTLE + GRACE_SECONDS - 1
    svc.turn()
    assert svc.journal.summary().get("held") == 1

    clock.t = t0 + SETTLE + GRACE_SECONDS
    svc.turn()
    [row] = svc.journal.rows(("quarantining", "quarantined"))
    assert [r["code"] for r in row.reasons] == ["pdf-unreadable"]


@pytest.mark.parametrize(("data", "cut_short"), [
    (ubl_invoice("INV-1")[:-40], True),  # cut mid-element
    (ubl_invoice("INV-1")[:60], True),  # cut mid-tag
    (ubl_invoice("INV-1")[:300] + bytes(400), True),  # sized first, filled up to here
    (b"<a><![CDATA[half", True),
    (ubl_invoice("INV-1").replace(b"</cbc:ID>", b"&amp</cbc:ID>", 1), False),
    (b"<a></b>", False),
], ids=["mid-element", "mid-tag", "zero-tail", "mid-cdata", "bare-ampersand", "mismatched"])
def test_only_xml_that_ends_early_is_said_to_be_cut_short(
        tmp_path: Path, data: bytes, cut_short: bool) -> None:
    """invalid-xml says "ends before its last element is closed" (the mark cutshort.py
    knows it by) for XML whose bytes end before its document does, and only for it."""
    with pytest.raises(InputError) as info:
        read_invoice_bytes(data, "INV-1.xml", "INV-1.xml", r"(\d+)")
    assert info.value.code == "invalid-xml"
    assert info.value.message.startswith(XML_CUT_SHORT) is cut_short
    assert looks_cut_short([Finding("invalid-xml", "INV-1.xml", info.value.message)]) \
        is cut_short
