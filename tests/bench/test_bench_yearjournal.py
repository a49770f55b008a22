"""bench/yearjournal.py: the journal the bench's journal phase measures `status --json`
on is what the daemon writes — each bundle's history, its sent invoice ids, the receipt
a row held before its archive — and is spread over a year as a busy operator's is."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import Env, Receiver
from helpers import wait_for

from bench import yearjournal
from bench.corpus import write_bundles
from daemon.journal import Journal


def _query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _ages_in_days(path: Path, states: tuple[str, ...]) -> list[float]:
    now = datetime.now(UTC)
    marks = ",".join("?" * len(states))
    return [(now - datetime.fromisoformat(s.replace("Z", "+00:00"))).total_seconds() / 86400
            for (s,) in _query(path, f"SELECT since FROM bundles WHERE state IN ({marks})",
                               *states)]


def _life(path: Path, row: int) -> list[tuple[str | None, str, str]]:
    """(from, to, detail) of a row's transitions, in order."""
    return [(f, t, d or "") for f, t, d in _query(
        path, "SELECT from_state, to_state, detail FROM transitions WHERE bundle_row = ? "
              "ORDER BY id", row)]


def _filled_columns(path: Path, row: int) -> set[str]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        r = db.execute("SELECT * FROM bundles WHERE id = ?", (row,)).fetchone()
    finally:
        db.close()
    return {k for k in r.keys() if r[k] is not None}


def test_the_bench_journal_is_read_by_the_daemons_own_queries(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    counts = yearjournal.fill_journal(str(path), 2000, days=7)
    journal = Journal(path, readonly=True)
    try:
        assert sum(journal.counts().values()) == 2000
        assert journal.counts()["sent"] == counts["sent"] > 1900
        assert len(journal.recent()) == 2000  # every sent row lies within the last week
    finally:
        journal.close()


def test_the_journal_spreads_finished_rows_over_the_given_days_and_keeps_live_ones_recent(
        tmp_path: Path) -> None:
    """A year of sent rows: status lists only the last week's (about 7/365 of them)
    and every live row, so the journal phase measures the query, not a 41 MB dump."""
    path = tmp_path / "journal.sqlite3"
    counts = yearjournal.fill_journal(str(path), 4000, days=365)
    finished = _ages_in_days(path, ("sent", "quarantined"))
    live = _ages_in_days(path, yearjournal.LIVE)
    assert max(finished) <= 365 and min(finished) >= 0
    assert max(finished) > 330 and min(finished) < 30  # the whole year, not one corner
    in_each_quarter = [sum(1 for a in finished if q * 91 <= a < (q + 1) * 91) for q in range(4)]
    assert min(in_each_quarter) > len(finished) / 4 * 0.8  # uniform
    assert live and max(live) <= 7
    journal = Journal(path, readonly=True)
    try:
        listed = journal.recent()
    finally:
        journal.close()
    last_week = sum(1 for a in finished if a < 7)
    assert len(listed) == last_week + len(live)
    assert len(listed) < 0.1 * sum(counts.values())


def test_each_bundle_has_its_history_and_a_sent_one_its_invoice_ids_and_trimmed_answer(
        tmp_path: Path) -> None:
    """Not rows alone (the bench's journal was 60 MB of them, a real year's is more than
    twice that): about five transitions a bundle, each sent bundle's invoice id in
    sent_invoices once, and a sent row keeping only the receiver's answer."""
    path = tmp_path / "journal.sqlite3"
    counts = yearjournal.fill_journal(str(path), 1000, days=30)
    transitions = _query(path, "SELECT COUNT(*) FROM transitions")[0][0]
    assert 4.8 <= transitions / 1000 <= 5.3
    sent_ids = _query(path, "SELECT s.invoice_id, b.invoice_ids FROM sent_invoices AS s "
                            "JOIN bundles AS b ON b.bundle_id = s.bundle_id")
    assert len(sent_ids) == counts["sent"]
    assert all(json.loads(ids) == [i] for i, ids in sent_ids)
    answers = _query(path, "SELECT response FROM bundles WHERE state = 'sent'")
    assert {tuple(json.loads(r)) for r, in answers} == {("response",)}
    assert {json.loads(r)["response"]["status"] for r, in answers} == {201}


def test_the_history_is_of_the_bundles_times_not_of_the_fill(tmp_path: Path) -> None:
    """The journal's clock is the bundle's while its life is written: a row's last
    transition and its updated_at are of its own day, not of the moment the bench ran."""
    path = tmp_path / "journal.sqlite3"
    yearjournal.fill_journal(str(path), 500, days=365)
    rows = _query(path, "SELECT b.since, b.updated_at, MAX(t.at), MIN(t.at) FROM bundles "
                        "AS b JOIN transitions AS t ON t.bundle_row = b.id "
                        "WHERE b.state = 'sent' GROUP BY b.id")
    assert len(rows) > 450
    day = 86400.0

    def apart(a: str, b: str) -> float:
        return abs((datetime.fromisoformat(a.replace("Z", "+00:00"))
                    - datetime.fromisoformat(b.replace("Z", "+00:00"))).total_seconds())

    for since, updated_at, last, first in rows:
        assert apart(since, last) < 300 and apart(since, updated_at) < 300
        assert apart(first, last) < day
    assert max(apart(r[2], rows[0][2]) for r in rows) > 300 * day


def test_a_sent_bundle_has_the_history_and_columns_the_real_daemon_writes(
        lean: Env, receiver: Receiver, start_daemon: Any, tmp_path: Path) -> None:
    """A bundle of the bench's corpus sent by `outboxd run` to the reference receiver,
    beside a sent bundle of the fill that was sent at its first attempt: the same
    transitions (from, to, detail), the same columns filled, a sent row's answer of
    the same keys. When the daemon changes what it writes, this says the bench's
    journal no longer is what it measures."""
    lean.write_config(receiver.url)
    start_daemon()
    write_bundles(lean.outbox, 1)
    wait_for(lambda: len(lean.sent_bundles()) == 1, timeout=60, what="the bundle sent")
    real = lean.state / "journal.sqlite3"
    wait_for(lambda: _query(real, "SELECT state FROM bundles") == [("sent",)],
             timeout=20, what="its row sent")
    filled = tmp_path / "filled.sqlite3"
    yearjournal.fill_journal(str(filled), 300, days=1)
    ids = [r for r, in _query(filled, "SELECT id FROM bundles WHERE state = 'sent' AND "
                                      "attempts = 1")]
    assert ids
    real_row = _query(real, "SELECT id FROM bundles")[0][0]
    assert _life(filled, ids[0]) == _life(real, real_row)
    assert _filled_columns(filled, ids[0]) == _filled_columns(real, real_row)
    answer = {p: json.loads(_query(p, "SELECT response FROM bundles WHERE id = ?", i)[0][0])
              for p, i in ((real, real_row), (filled, ids[0]))}
    assert answer[filled].keys() == answer[real].keys()
    assert answer[filled]["response"].keys() == answer[real]["response"].keys()
