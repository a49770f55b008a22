"""Every text the journal writes goes through one mapping (daemon/journal/text.py): a name
that is not UTF-8 (a lone surrogate in Python's str) is kept without loss, so that no
caller can fail a write with it and a row read back — after a reopen too — names the very
file on disk; a name holding the characters of a code is never taken for another."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from daemon.journal import DELIVERED, Journal
from daemon.journal import text as stored_text
from daemon.journal.records import UNREADABLE_REASONS

BID = "c" * 64
# Latin-1 "é" (0xE9) as os.listdir gives it, and the same six characters typed.
RAW = os.fsdecode(b"Rechnung-\xe9.xml")
TYPED = "Rechnung-\\udce9.xml"
CODES = [RAW, TYPED, "a\\u005cb", "\\", "x\\udcff\\u005c\udcff", "\ud800", "Счёт \u202e.pdf",
         "INV-1.xml", "back\\slash", "\\uDCE9 upper case"]


@pytest.mark.parametrize("name", CODES)
def test_stored_text_is_utf8_and_read_gives_it_back(name: str) -> None:
    """stored() of any str is valid UTF-8, and read() gives the very same str back."""
    kept = stored_text.stored(name)
    kept.encode("utf-8")
    assert stored_text.read(kept) == name


def test_a_byte_and_its_code_typed_are_kept_apart() -> None:
    """The byte 0xE9 of a name and the six characters `\\udce9` typed into one are two
    names in the journal, not one."""
    assert stored_text.stored(RAW) != stored_text.stored(TYPED)


def test_ordinary_text_is_stored_as_it_is() -> None:
    """A name without lone surrogates or code-like text is stored unchanged: what an
    earlier version wrote reads the same."""
    for name in ("INV-1.xml", "Счёт №1.pdf", "a\\b", "\\u00e9", "C:\\Users\\x"):
        assert stored_text.stored(name) == name


def test_a_name_that_is_not_utf8_is_written_and_read_back_as_the_file_after_a_reopen(
        tmp_path: Path) -> None:
    """A row created, moved and updated with a name of non-UTF-8 bytes (in the row's
    file, its error, its reasons, its invoice ids and the transition's detail) is written
    — before, sqlite3 raised UnicodeEncodeError (surrogates not allowed) — and read back
    after the journal is closed and opened again as the very name os.listdir gives for
    the file on disk."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / RAW).write_bytes(b"<x/>")
    [on_disk] = os.listdir(outbox)
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    rid = j.create(on_disk, "settling", f"found {on_disk}", invoice_ids=[on_disk])
    j.transition(rid, "held", f"held: {on_disk}", last_error=f"{on_disk}: bad",
                 reasons=[{"code": "bad-name", "file": on_disk, "message": "rename it"}])
    j.update(rid, archive_dir=str(outbox / on_disk))
    j.close()
    j = Journal(path)
    try:
        [row] = j.rows(("held",))
        assert row.invoice_file == on_disk and row.invoice_file in os.listdir(outbox)
        assert row.invoice_ids == [on_disk]
        assert row.last_error == f"{on_disk}: bad"
        assert row.reasons == [{"code": "bad-name", "file": on_disk, "message": "rename it"}]
        assert row.archive_dir == str(outbox / on_disk)
        assert j.last_detail(rid) == f"held: {on_disk}"
        assert j.last_row_of_files() == {on_disk: rid}
    finally:
        j.close()


def test_a_typed_code_and_the_byte_are_two_rows_each_read_as_its_own(tmp_path: Path) -> None:
    """Two files, one named with the byte 0xE9 and one with `\\udce9` typed, are two rows
    that each read back as their own name, never as the other's."""
    j = Journal(tmp_path / "journal.sqlite3")
    try:
        a = j.create(RAW, "settling")
        b = j.create(TYPED, "settling")
        assert (j.get(a).invoice_file, j.get(b).invoice_file) == (RAW, TYPED)
        assert j.last_row_of_files() == {RAW: a, TYPED: b}
    finally:
        j.close()


def test_an_invoice_id_that_is_not_utf8_is_recorded_as_sent_and_found_again(
        tmp_path: Path) -> None:
    """An invoice id with a lone surrogate (a PDF's text can hold one) goes into the index
    of sent ids through SQLite's json_each as text it can read back: found as sent in
    another bundle, with the row that sent it — a JSON escape of the surrogate became
    bytes that are not UTF-8 there, and every read of the index failed."""
    j = Journal(tmp_path / "journal.sqlite3")
    try:
        rid = j.create("a.pdf", "delivering", bundle_id=BID, invoice_ids=[RAW, TYPED])
        j.transition(rid, DELIVERED)
        j.transition(rid, "sent")
        assert j.sent_invoice_ids([RAW, TYPED, "other"], "d" * 64) == [RAW, TYPED]
        later = j.create("b.pdf", "settling", bundle_id="d" * 64, invoice_ids=[RAW])
        assert j.sent_elsewhere([j.get(later)]) == {"b.pdf": [RAW]}
        found = j.sent_in([TYPED], "d" * 64)
        assert list(found) == [TYPED] and found[TYPED] is not None
        assert found[TYPED].id == rid
    finally:
        j.close()


def test_a_journal_of_schema_4_with_code_like_text_reads_as_written_after_the_upgrade(
        tmp_path: Path) -> None:
    """A name an earlier version kept with the characters `\\udce9` or `\\u005c` in it
    (typed by a clerk, or a code written into a message) reads as those characters after
    the upgrade: never as the byte 0xE9 or a backslash, which would no longer be the file
    on disk."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    rid = j.create("plain.xml", "held")
    j.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE bundles SET invoice_file = ?, last_error = ?, invoice_ids = ? "
                   "WHERE id = ?", (TYPED, "waits for a/\\u005c.part", '["I\\\\udce9"]', rid))
        db.execute("UPDATE transitions SET detail = ?", ("x \\udce9",))
        db.execute("PRAGMA user_version = 4")
        db.execute("PRAGMA application_id = 0")  # as schema 4 wrote it: no codes mark
    db.close()
    j = Journal(path)
    try:
        row = j.get(rid)
        assert row.invoice_file == TYPED
        assert row.last_error == "waits for a/\\u005c.part"
        assert row.invoice_ids == ["I\\udce9"]
        assert j.last_detail(rid) == "x \\udce9"
    finally:
        j.close()


def _downgraded_by_the_guide(path: Path) -> None:
    """The operations guide's way back to an older version: its columns dropped and the
    schema set to 0, so that the next upgrade fills in what the older one did not keep."""
    db = sqlite3.connect(path)
    with db:
        for col in ("wait_began", "channel", "claimed_in"):
            db.execute(f"ALTER TABLE bundles DROP COLUMN {col}")
        db.execute("PRAGMA user_version = 0")
    db.close()


@pytest.mark.parametrize("earlier_build", [False, True])
def test_a_name_stored_as_codes_reads_as_its_file_after_the_guides_way_back_and_forth(
        tmp_path: Path, earlier_build: bool) -> None:
    """A journal this version wrote (a file named with the byte 0xE9, stored as its code,
    and one with `\\udce9` typed), taken back by the operations guide's recipe and
    upgraded again, reads each row as its own file still: the upgrade's rewrite of an
    earlier schema's text is not done a second time over rows already written as codes —
    the byte's name read as the six characters `\\udce9` from then on, no longer its
    file, and the typed one gained a `\\u005c`. `earlier_build`: the journal was
    upgraded to schema 5 by a build from before the journal's mark, which its next open
    adds."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    a = j.create(RAW, "waiting", f"found {RAW}", invoice_ids=[RAW])
    b = j.create(TYPED, "waiting", invoice_ids=[TYPED])
    j.close()
    if earlier_build:
        db = sqlite3.connect(path)
        with db:
            db.execute("PRAGMA application_id = 0")
        db.close()
        Journal(path).close()  # the first open of this version
    _downgraded_by_the_guide(path)
    j = Journal(path)
    try:
        assert (j.get(a).invoice_file, j.get(b).invoice_file) == (RAW, TYPED)
        assert (j.get(a).invoice_ids, j.get(b).invoice_ids) == ([RAW], [TYPED])
        assert j.last_detail(a) == f"found {RAW}"
        assert j.last_row_of_files() == {RAW: a, TYPED: b}
    finally:
        j.close()


def test_a_json_column_edited_by_hand_into_no_json_survives_the_upgrade_as_it_was(
        tmp_path: Path) -> None:
    """A journal of schema 4 whose reasons column an admin edited by hand into text that
    is no JSON (cut short) but holds `\\u`: the upgrade does not stop on it (every start
    would), the text stays as it was, and the row reads with its reasons shown as
    unreadable while its other columns read as written."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    rid = j.create("plain.xml", "quarantined")
    j.close()
    cut = '[{"code": "x\\u00e9'
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE bundles SET reasons = ?, last_error = ? WHERE id = ?",
                   (cut, "waits for a/\\u005c.part", rid))
        db.execute("PRAGMA user_version = 4")
        db.execute("PRAGMA application_id = 0")  # as schema 4 wrote it: no codes mark
    db.close()
    j = Journal(path)
    try:
        row = j.get(rid)
        assert row.invoice_file == "plain.xml"
        assert row.last_error == "waits for a/\\u005c.part"
        assert [r["code"] for r in row.reasons] == [UNREADABLE_REASONS]
    finally:
        j.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT reasons FROM bundles WHERE id = ?", (rid,)).fetchone() == (
            cut,)
    finally:
        db.close()
