"""A journal an earlier outboxd left, opened by this one (docs/operations.md, "Upgrade").

Each file in schemas/ is the journal as outboxd made it at one point of its history (the
SCHEMA text of that commit, verbatim, and what its open added). The rows written into it
hold the columns every one of those schemas has, as the outboxd of that time wrote them.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import Idempotent, folders, make, quiet_logs, run_once  # noqa: E402, F401
from helpers import drop_bundle, pdf_bytes  # noqa: E402

from daemon import journal as journal_module  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.journal import VERSION, Journal, iso_in, now_iso  # noqa: E402
from daemon.manifest import bundle_id_of  # noqa: E402
from daemon.watching.scan import candidate_for  # noqa: E402

SCHEMAS = sorted((Path(__file__).parent / "schemas").glob("*.sql"))
# The journal of the build a day before the index of transitions by row: the version
# it has is this one's, so only what every open for writing does brings the index.
SCHEMA_4 = Path(__file__).parent / "schemas" / "4-claimed-in.sql"
BID = "ab" * 32
# The policy the earlier outboxd ran under, and this one after the upgrade.
POLICY = {"unattached": "warn", "attachment_wait_seconds": 86400, "invalid": "hold"}
REJECTED = [{"code": "rejected", "file": "INV-Q.xml",
             "message": "HTTP 422 from the receiver: unknown buyer — fix what the receiver "
                        "names, then move the bundle back into the outbox"}]
HELD = [{"code": "type-not-allowed", "file": "INV-H/notes.txt",
         "message": "is a plain text file; the e-invoice channel allows PDF — export it as "
                    "PDF and put that file here"}]


def old_journal(path: Path, schema: Path, rows: list[dict[str, Any]]) -> None:
    """The journal `schema` describes, with `rows` in it, each with the transition that
    created it (its invoice ids in sent_invoices once the receiver had it, and when a
    waiting one's wait began, where the schema has those), as the earlier outboxd wrote
    them."""
    db = sqlite3.connect(path)
    try:
        db.executescript(schema.read_text())
        has_sent_ids = db.execute("SELECT 1 FROM sqlite_master WHERE name = "
                                  "'sent_invoices'").fetchone() is not None
        has_wait_began = "wait_began" in {r[1] for r in db.execute("PRAGMA table_info(bundles)")}
        for row in rows:
            row = {"invoice_ids": "[]", "unattached_ids": "[]", "reasons": "[]",
                   "updated_at": row["since"], **row}
            if has_wait_began and row["state"] == "waiting":
                row["wait_began"] = row["since"]  # a wait begun in this state
            cur = db.execute(f"INSERT INTO bundles ({', '.join(row)}) VALUES "
                             f"({', '.join('?' for _ in row)})", list(row.values()))
            db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state) "
                       "VALUES (?, ?, NULL, ?)", (cur.lastrowid, row["since"], row["state"]))
            if has_sent_ids and row["state"] in ("sent", "delivered"):
                # A schema with the table filled it when the receiver accepted the bundle.
                db.executemany("INSERT INTO sent_invoices VALUES (?, ?)", [
                    (i, row["bundle_id"]) for i in json.loads(row["invoice_ids"])])
        db.commit()
    finally:
        db.close()


def columns(path: Path) -> tuple[int, set[str], list[tuple[str, str]]]:
    db = sqlite3.connect(path)
    try:
        return (db.execute("PRAGMA user_version").fetchone()[0],
                {r[1] for r in db.execute("PRAGMA table_info(bundles)")},
                sorted(db.execute("SELECT invoice_id, bundle_id FROM sent_invoices")))
    finally:
        db.close()


@pytest.mark.parametrize("schema", SCHEMAS, ids=[p.stem for p in SCHEMAS])
def test_a_journal_of_each_earlier_schema_is_upgraded_once_and_reads_as_written(
        tmp_path: Path, schema: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only (`outboxd status` before the restart) it reads as it is; the first open
    for writing upgrades it to this schema: the invoice ids of what the receiver has
    (sent, delivered) known as sent, the wait of a waiting bundle begun when it entered
    the state, every row as the earlier outboxd wrote it. A second open changes nothing."""
    path = tmp_path / "journal.sqlite3"
    waiting = {"invoice_file": "W.xml", "state": "waiting", "since": "2031-05-06T10:00:00.000Z",
               "deadline": "2031-05-07T10:00:00.000Z", "invoice_ids": '["W-1"]',
               "unattached_ids": '["W-1"]', "bundle_id": BID}
    sent = {"invoice_file": "S.xml", "state": "sent", "since": "2031-05-05T09:00:00.000Z",
            "invoice_ids": '["S-1", "S-2"]', "bundle_id": "cd" * 32, "receipt_id": "r-S",
            "attempts": 1}
    delivered = {"invoice_file": "V.xml", "state": "delivered", "bundle_id": "ef" * 32,
                 "since": "2031-05-06T09:00:00.000Z", "invoice_ids": '["V-1"]',
                 "response": json.dumps(receipt_record("ef" * 32, "V-1",
                                                       "2031-05-06T09:00:00.000Z"))}
    retrying = {"invoice_file": "R.xml", "state": "retrying", "bundle_id": "12" * 32,
                "since": "2031-05-06T09:30:00.000Z", "invoice_ids": '["R-1"]', "attempts": 3,
                "next_attempt_at": "2031-05-06T09:35:00.000Z", "last_error": "HTTP 503"}
    held = {"invoice_file": "H.xml", "state": "held", "since": "2031-05-06T08:00:00.000Z",
            "reasons": json.dumps(HELD)}
    old_journal(path, schema, [waiting, sent, delivered, retrying, held])
    as_left = path.read_bytes()

    before = Journal(path, readonly=True)
    try:
        assert {r.invoice_file: r.state for r in before.rows(("waiting", "sent", "held"))} == {
            "W.xml": "waiting", "S.xml": "sent", "H.xml": "held"}
    finally:
        before.close()
    assert path.read_bytes() == as_left  # read only: not upgraded

    j = Journal(path)
    try:
        version, cols, sent_ids = columns(path)
        assert version == VERSION and {"documents", "wait_began", "channel", "claimed_in"} <= cols
        assert sent_ids == [("S-1", "cd" * 32), ("S-2", "cd" * 32), ("V-1", "ef" * 32)]
        rows = {r.invoice_file: r for r in j.rows(
            ("waiting", "sent", "delivered", "retrying", "held"))}
        assert (rows["W.xml"].since, rows["W.xml"].deadline, rows["W.xml"].wait_began) == (
            "2031-05-06T10:00:00.000Z", "2031-05-07T10:00:00.000Z", "2031-05-06T10:00:00.000Z")
        assert rows["W.xml"].unattached_ids == ["W-1"]
        assert rows["S.xml"].receipt_id == "r-S" and rows["S.xml"].wait_began is None
        assert rows["V.xml"].response == receipt_record("ef" * 32, "V-1",
                                                        "2031-05-06T09:00:00.000Z")
        assert (rows["R.xml"].attempts, rows["R.xml"].next_attempt_at,
                rows["R.xml"].last_error) == (3, "2031-05-06T09:35:00.000Z", "HTTP 503")
        assert rows["H.xml"].reasons == HELD
        assert j.accepted_documents("ef" * 32) == {}
    finally:
        j.close()

    def upgraded_again(db: Any, version: int) -> None:
        raise AssertionError(f"upgraded again from schema {version}")

    monkeypatch.setattr(journal_module, "upgrade", upgraded_again)
    again = Journal(path)
    try:
        assert again.get(1).wait_began == "2031-05-06T10:00:00.000Z"
    finally:
        again.close()
    assert columns(path) == (version, cols, sent_ids)


def receipt_record(bid: str, name: str, at: str) -> dict[str, Any]:
    """What the journal keeps of a bundle the receiver accepted (its receipt.json)."""
    return {"manifest": {"manifest_version": 1, "bundle_id": bid, "created_at": at,
                         "channel": "e-invoice", "invoice_file": {"name": f"{name}.xml"},
                         "invoices": [{"id": name, "attachments": []}], "warnings": []},
            "response": {"status": 201, "body": {"receipt_id": f"r-{name}"},
                         "receipt_id": f"r-{name}"},
            "attempts": 1, "delivered_at": at}


def claimed_before(s: Settings, name: str, pages: int) -> tuple[str, Path]:
    """A bundle the earlier outboxd read and claimed: its bundle id and its work folder."""
    drop_bundle(s.outbox.path, name, {"a.pdf": pdf_bytes(pages)})
    bid = bundle_id_of(evaluate(candidate_for(s.outbox, f"{name}.xml"), s))
    work = s.processing_dir / f"{name}--{bid[:12]}--vm-1-abc123"
    work.mkdir()
    for part in (f"{name}.xml", name):
        (s.outbox.path / part).rename(work / part)
    return bid, work


@pytest.mark.parametrize("schema", SCHEMAS, ids=[p.stem for p in SCHEMAS])
def test_the_bundles_of_each_earlier_schema_resume_where_they_were(
        tmp_path: Path, schema: Path) -> None:
    """Every state an earlier outboxd left, in its journal and folders, resumes after the
    upgrade: the claimed, the delivering and the retrying bundle are sent (the retrying
    one when its next attempt is due, not before), each POSTed once with the id it was
    claimed with; the one the receiver already had (delivered) is archived with its
    receipt and never POSTed; the one being quarantined gets its REASON.txt; the sent
    one's receipt stays as it was; the waiting one waits on with its deadline and since;
    the held one stays held with its errors file."""
    p, s = make(tmp_path, policy=POLICY)  # the folders the earlier outboxd made
    p.j.close()
    for f in s.paths.state_dir.iterdir():
        f.unlink()
    ids = {name: claimed_before(s, name, n) for n, name in enumerate(
        ("INV-C", "INV-D", "INV-R", "INV-V", "INV-Q"), start=1)}
    drop_bundle(s.outbox.path, "INV-W", {})
    drop_bundle(s.outbox.path, "INV-H", {"notes.txt": b"plain text is not allowed"})
    held_bid = bundle_id_of(evaluate(candidate_for(s.outbox, "INV-H.xml"), s))
    (s.outbox.path / "INV-H.errors.txt").write_text("INV-H/notes.txt: is a plain text file\n")
    # Sent yesterday: the rows are taken from recent() (the last 7 days), so a fixed day
    # failed from a week after it.
    sent_at = iso_in(-86400)
    receipt = s.sent_dir / sent_at[:10] / f"INV-S--{'cd' * 6}" / "receipt.json"
    receipt.parent.mkdir(parents=True)
    receipt.write_text('{"manifest": {}, "response": {"receipt_id": "r-S"}}')
    since, deadline = iso_in(-600), iso_in(7200)

    def in_flight(name: str, state: str, **row: Any) -> dict[str, Any]:
        bid, work = ids[name]
        return {"invoice_file": f"{name}.xml", "state": state, "since": since,
                "bundle_id": bid, "invoice_ids": json.dumps([name]),
                "work_dir": str(work), **row}

    old_journal(s.journal_path, schema, [
        {"invoice_file": "INV-S.xml", "state": "sent", "since": sent_at,
         "bundle_id": "cd" * 32, "invoice_ids": '["INV-S"]', "receipt_id": "r-S",
         "archive_dir": str(receipt.parent), "attempts": 1},
        in_flight("INV-C", "claiming"),
        in_flight("INV-D", "delivering", attempts=1),
        in_flight("INV-R", "retrying", attempts=2, next_attempt_at=iso_in(3600),
                  last_error="HTTP 503 from the receiver"),
        in_flight("INV-V", "delivered", attempts=1, receipt_id="r-V",
                  response=json.dumps(receipt_record(ids["INV-V"][0], "INV-V", since))),
        in_flight("INV-Q", "quarantining", attempts=1, reasons=json.dumps(REJECTED)),
        {"invoice_file": "INV-W.xml", "state": "waiting", "since": since, "bundle_id": BID,
         "deadline": deadline, "invoice_ids": '["INV-W"]', "unattached_ids": '["INV-W"]'},
        {"invoice_file": "INV-H.xml", "state": "held", "since": since, "bundle_id": held_bid,
         "reasons": json.dumps(HELD)},
    ])

    p, s = make(tmp_path, policy=POLICY)  # this outboxd, started on them
    rows = {r.invoice_file: r.id for r in p.j.recent()}
    due = dict(p.finish.recover())
    assert set(due) == {rows[f"INV-{x}.xml"] for x in "CDRVQ"}
    assert due[rows["INV-R.xml"]] > 3500 and due[rows["INV-D.xml"]] == 0.0
    p.finish.d = receiver = Idempotent(*(Receipt(201, {"receipt_id": f"r-{x}"}, f"r-{x}")
                                         for x in "CDR"))
    for x in "CDVQR":
        assert p.finish.attempt(rows[f"INV-{x}.xml"]) is None
    got = {name: p.j.get(rid) for name, rid in rows.items()}
    assert {n: r.state for n, r in got.items()} == {
        "INV-S.xml": "sent", "INV-C.xml": "sent", "INV-D.xml": "sent", "INV-R.xml": "sent",
        "INV-V.xml": "sent", "INV-Q.xml": "quarantined", "INV-W.xml": "waiting",
        "INV-H.xml": "held"}
    assert receiver.posts == 3
    assert {x: got[f"INV-{x}.xml"].bundle_id for x in "CDRV"} == {
        x: ids[f"INV-{x}"][0] for x in "CDRV"}
    receipts = {f.name.split("--")[0]: json.loads((f / "receipt.json").read_text())
                for f in folders(s.sent_dir)}
    assert sorted(receipts) == ["INV-C", "INV-D", "INV-R", "INV-S", "INV-V"]
    assert receipts["INV-V"] == receipt_record(ids["INV-V"][0], "INV-V", since)
    assert receipts["INV-S"] == {"manifest": {}, "response": {"receipt_id": "r-S"}}
    [quarantined] = folders(s.quarantine_dir)
    assert "HTTP 422 from the receiver: unknown buyer" in (
        quarantined / "REASON.txt").read_text()

    p.start({"INV-W.xml", "INV-H.xml"})
    assert run_once(p) == []
    waiting, held = p.j.get(rows["INV-W.xml"]), p.j.get(rows["INV-H.xml"])
    assert (waiting.state, waiting.since, waiting.deadline, waiting.wait_began) == (
        "waiting", since, deadline, since)
    assert held.state == "held" and (s.outbox.path / "INV-H.errors.txt").exists()
    assert now_iso() < deadline


def test_the_upgrade_is_logged_once_and_a_journal_of_a_newer_outboxd_with_a_warning(
        tmp_path: Path) -> None:
    """The admin sees in the log that the first start upgraded the journal, from which
    schema to which, and nothing of it at the next start (nor at the first start of all,
    which makes a new journal). A journal a newer outboxd
    upgraded (an admin who went back to this version) is opened with a warning naming
    both schemas and what to do, instead of silently."""
    with capture_logs() as records:
        Journal(tmp_path / "new.sqlite3").close()
    assert records == []  # a new journal is made, not upgraded
    path = tmp_path / "journal.sqlite3"
    old_journal(path, SCHEMAS[0], [])
    for _ in range(2):
        with capture_logs() as records:
            Journal(path).close()
        if _ == 0:
            [upgraded] = [r for r in records if r["event"].startswith("journal upgraded")]
            assert (upgraded["log_level"], upgraded["from_schema"], upgraded["to_schema"]) == (
                "info", 0, VERSION)
    assert [r["event"] for r in records] == []
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.commit()
    db.close()
    with capture_logs() as records:
        j = Journal(path)
    try:
        [newer] = records
        assert newer["log_level"] == "warning"
        assert (newer["schema"], newer["known_schema"]) == (VERSION + 1, VERSION)
        assert "section Upgrade" in newer["event"] and "newer outboxd" in newer["event"]
        assert j.get(j.create("a.xml", "settling")).state == "settling"
    finally:
        j.close()
    assert columns(path)[0] == VERSION + 1  # never "upgraded" down


def test_a_journal_without_the_index_of_others_sends_gets_it_and_keeps_its_schema(
        tmp_path: Path) -> None:
    """A journal an outboxd before the status page's "sent by another outboxd" mark wrote
    (it learnt from sent/ what other daemons sent, with the same transition detail, but
    made no index of them) gets the index at the next open for writing, and the rows it
    learnt are marked; the schema's version stays, so an older build reads and writes it
    as before, and what it learns meanwhile is marked once this one runs again."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.import_sent([{"bundle_id": BID, "invoice_file": "N.xml", "invoice_ids": ["N-1"],
                    "archive_dir": "/s/N", "receipt_id": "r-N"}],
                  journal_module.NEWS_DETAIL)
    j.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX transitions_by_another")  # as the earlier build left it
    db.commit()
    db.close()
    j = Journal(path)
    try:
        [learnt] = [r.id for r in j.rows(("sent",))]
        assert j.sent_by_others([learnt]) == {learnt}
    finally:
        j.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        # An older build's row learnt from sent/, written as it writes one.
        cur = db.execute("INSERT INTO bundles (bundle_id, invoice_file, state, since, "
                         "updated_at) VALUES (?, 'M.xml', 'sent', ?, ?)",
                         ("cd" * 32, now_iso(), now_iso()))
        db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, detail) "
                   "VALUES (?, ?, NULL, 'sent', ?)",
                   (cur.lastrowid, now_iso(), journal_module.NEWS_DETAIL))
        db.commit()
        later = cur.lastrowid
    finally:
        db.close()
    j = Journal(path)
    try:
        assert j.sent_by_others([learnt, later]) == {learnt, later}
    finally:
        j.close()


def test_a_journal_without_the_index_of_transitions_by_row_gets_it_at_its_first_open(
        tmp_path: Path) -> None:
    """A journal the build before the index left (schemas/4-claimed-in.sql) has no index
    of transitions by row: read-only (`outboxd status` beside it) it is left as it is;
    the first open for writing adds the index (an older build reads and writes the
    journal as before, SQLite keeping the index up to date), and a row's last detail
    reads from it. Nothing is said of it: the admin who upgraded is told of the upgrade
    of the schema only (4 to 5, the journal's text, docs/operations.md, Upgrade)."""
    path = tmp_path / "journal.sqlite3"
    old_journal(path, SCHEMA_4, [
        {"invoice_file": "R.xml", "state": "retrying", "bundle_id": "12" * 32,
         "since": "2031-05-06T09:30:00.000Z", "attempts": 3, "last_error": "HTTP 503"}])

    def indexes() -> set[str]:
        db = sqlite3.connect(path)
        try:
            return {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'")}
        finally:
            db.close()

    assert "transitions_by_row" not in indexes()
    Journal(path, readonly=True).close()
    assert "transitions_by_row" not in indexes()
    with capture_logs() as records:
        j = Journal(path)
    try:
        assert [(r["event"], r["from_schema"]) for r in records] == [
            ("journal upgraded", 4)]
        [row] = j.rows(("retrying",))
        assert j.last_detail(row.id) is None  # the old build wrote no detail
    finally:
        j.close()
    assert "transitions_by_row" in indexes()
    assert columns(path)[0] == VERSION
