"""The warnings a sent bundle's "Sent today" row shows, read from the receipt.json in its
folder of sent/ (daemon/report/sentwarnings.py): once for each row, never through a link,
nothing from a receipt that is not outboxd's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daemon.journal import Row
from daemon.report import sentwarnings
from daemon.report.sentwarnings import SentWarnings, warnings_in


def sent_row(row_id: int, folder: Path) -> Row:
    return Row(row_id, "b" * 64, "INV-1.xml", ["INV-1"], "sent", "2031-05-06T12:00:00+00:00",
               None, [], 1, None, None, [], None, str(folder), "rcpt-1", None)


def receipt(folder: Path, warnings: list[dict[str, str | None]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "receipt.json").write_text(json.dumps({"manifest": {"warnings": warnings}}))
    return folder


PNG = {"code": "pdf-recommended", "file": "INV-1/scan.png", "invoice_id": "INV-1",
       "message": "is a PNG image; PDF is recommended"}


def test_each_warning_of_the_receipt_is_said_with_its_file(tmp_path: Path) -> None:
    folder = receipt(tmp_path / "2031-05-06" / "INV-1--aaaa", [
        PNG, {"code": "x", "file": None, "invoice_id": None, "message": "whole bundle"}])
    assert warnings_in(folder) == ("INV-1/scan.png: is a PNG image; PDF is recommended",
                                   "whole bundle")


def test_a_receipt_is_read_once_while_its_row_is_listed_and_again_once_it_was_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page is rewritten every 2 s at most: a receipt does not change, so a listed
    row's is read once; a row no longer listed is forgotten."""
    folder = receipt(tmp_path / "2031-05-06" / "INV-1--aaaa", [PNG])
    reads: list[Path] = []
    real = sentwarnings.warnings_in
    monkeypatch.setattr(sentwarnings, "warnings_in",
                        lambda f: reads.append(f) or real(f))
    seen = SentWarnings()
    row = sent_row(7, folder)
    assert seen.of([row]) == seen.of([row]) == {7: (f"INV-1/scan.png: {PNG['message']}",)}
    assert len(reads) == 1
    seen.of([])
    seen.of([row])
    assert len(reads) == 2


def test_a_receipt_or_entry_that_is_a_link_or_too_large_shows_no_warnings(
        tmp_path: Path) -> None:
    """sent/ is on the share: an entry or receipt.json replaced by a link is not followed,
    and a receipt over the limit is not read."""
    real = receipt(tmp_path / "elsewhere" / "INV-1--aaaa", [PNG])
    day = tmp_path / "2031-05-06"
    day.mkdir()
    (day / "INV-1--bbbb").symlink_to(real)
    assert warnings_in(day / "INV-1--bbbb") == ()
    linked = day / "INV-1--cccc"
    linked.mkdir()
    (linked / "receipt.json").symlink_to(real / "receipt.json")
    assert warnings_in(linked) == ()
    big = receipt(day / "INV-1--dddd", [{**PNG, "message": "x" * sentwarnings.RECEIPT_LIMIT}])
    assert warnings_in(big) == ()
    os.mkfifo(day / "INV-1--eeee")
    assert warnings_in(day / "INV-1--eeee") == ()


def test_warnings_that_are_not_outboxds_shape_are_left_out_and_the_rest_said(
        tmp_path: Path) -> None:
    """A receipt.json edited on the share (or a receiver's echo) whose warnings list holds
    other things — a number, a list, a warning without a text message: those are left
    out, the well-formed ones said, each once; no exception for the page."""
    folder = receipt(tmp_path / "2031-05-06" / "INV-1--aaaa", [
        5, ["x"], {"file": "a.pdf"}, {"message": 7, "file": "b.pdf"}, PNG,  # type: ignore[list-item]
        {"message": "whole bundle", "file": ""}, PNG])
    assert warnings_in(folder) == (f"INV-1/scan.png: {PNG['message']}", "whole bundle")


def test_a_receipt_whose_day_folder_cannot_be_opened_yet_is_read_again_at_the_next_look(
        tmp_path: Path) -> None:
    """A sent row whose day folder cannot be opened now (the share's error, or not there
    yet as the page looks): no warnings shown and nothing remembered, so the next look
    reads the receipt once the folder is there — not a row shown without its warnings for
    as long as it is listed."""
    folder = tmp_path / "2031-05-06" / "INV-1--aaaa"
    seen = SentWarnings()
    row = sent_row(7, folder)
    assert seen.of([row]) == {}
    receipt(folder, [PNG])
    assert seen.of([row]) == {7: (f"INV-1/scan.png: {PNG['message']}",)}


@pytest.mark.parametrize("linked", ["entry", "day folder"])
def test_an_entry_or_day_folder_that_is_a_link_is_read_once_while_its_row_is_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, linked: str) -> None:
    """A sent row whose entry (or day folder) in sent/ is a link: it was taken for "cannot
    be read now", never remembered, and looked at again at every refresh of the page
    (every 2 s) while the row was listed. It is not outboxd's: no warnings, remembered
    so, the link never followed."""
    real = receipt(tmp_path / "elsewhere" / "2031-05-06" / "INV-1--aaaa", [PNG])
    if linked == "entry":
        (tmp_path / "2031-05-06").mkdir()
        (tmp_path / "2031-05-06" / "INV-1--aaaa").symlink_to(real)
    else:
        (tmp_path / "2031-05-06").symlink_to(real.parent)
    reads: list[Path] = []
    real_read = sentwarnings.warnings_in
    monkeypatch.setattr(sentwarnings, "warnings_in",
                        lambda f: reads.append(f) or real_read(f))
    seen = SentWarnings()
    row = sent_row(7, tmp_path / "2031-05-06" / "INV-1--aaaa")
    assert seen.of([row]) == seen.of([row]) == seen.of([row]) == {}
    assert len(reads) == 1
