"""What the journal shows (daemon/journal/views.py): the counts by the states `outboxd
status` names, and the rows the views list."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from test_journal import set_since  # noqa: E402

from daemon.journal import (  # noqa: E402
    CLAIMING,
    DELIVERED,
    ELSEWHERE_DETAIL,
    NEWS_DETAIL,
    QUARANTINING,
    STATES,
    Journal,
)
from daemon.journal.records import BY_ANOTHER_TERMS  # noqa: E402


class TestQueries:
    def test_counts_all_seven_states(self, journal: Journal) -> None:
        """counts() has exactly the seven states `outboxd status` shows, zero when empty."""
        assert journal.counts() == dict.fromkeys(STATES, 0)
        assert list(journal.counts()) == ["settling", "waiting", "held", "delivering",
                                          "retrying", "sent", "quarantined"]

    def test_counts_show_internal_states_by_their_shown_names(self, journal: Journal) -> None:
        """claiming/delivered/quarantining count as delivering (the archive folder is not there
        yet), or as retrying once a move failed (last_error); gone not at all."""
        for state in (CLAIMING, DELIVERED, "delivering", QUARANTINING, "quarantined", "gone",
                      "sent", "waiting"):
            journal.create(f"{state}.xml", state)
        journal.create("stuck.xml", DELIVERED, last_error="No space left on device")
        counts = journal.counts()
        assert counts == {"settling": 0, "waiting": 1, "held": 0, "delivering": 4,
                          "retrying": 1, "sent": 1, "quarantined": 1}
        assert "gone" not in counts and CLAIMING not in counts

    def test_recent_drops_old_final_rows(self, journal: Journal) -> None:
        """recent(): sent/quarantined older than 7 days and gone rows are left out; live and
        in-flight rows are kept however old."""
        old = datetime.now(UTC) - timedelta(days=8)
        fresh = datetime.now(UTC) - timedelta(days=6)
        ids = {}
        for name, state, when in [("old-sent", "sent", old), ("old-q", "quarantined", old),
                                  ("new-sent", "sent", fresh), ("new-q", "quarantined", fresh),
                                  ("old-wait", "waiting", old), ("old-retry", "retrying", old),
                                  ("gone", "gone", fresh)]:
            ids[name] = journal.create(name, state)
            set_since(journal.path, ids[name], when)
        assert {r.invoice_file for r in journal.recent()} == {
            "new-sent", "new-q", "old-wait", "old-retry"}


def test_the_status_line_counts_todays_sent_from_midnight_and_settling_stuck_apart(
        journal: Journal) -> None:
    """summary() for STATUS=: each unfinished state as `status` names it; a settling
    row with an error is "not moving", not settling (it waits for a person); "sent today"
    counts the rows sent from 00:00:00.000 UTC of the day asked for on, the one sent at
    that very millisecond too, not one sent the millisecond before."""
    at = datetime(2031, 5, 6, 15, 30, tzinfo=UTC)
    midnight = datetime(2031, 5, 6, tzinfo=UTC)
    for name, when in [("midnight", midnight), ("noon", midnight + timedelta(hours=12)),
                       ("yesterday", midnight - timedelta(milliseconds=1))]:
        set_since(journal.path, journal.create(f"{name}.xml", "sent"), when)
    journal.create("a.xml", "settling")
    journal.create("b.xml", "settling", last_error="cannot read b.xml")
    journal.create("c.xml", "waiting")
    journal.create("d.xml", CLAIMING)
    journal.create("e.xml", QUARANTINING, last_error="EROFS")
    assert journal.summary(at) == {"sent today": 2, "settling": 1, "not moving": 1,
                                   "waiting": 1, "delivering": 1, "retrying": 1}


def test_the_last_row_of_an_invoice_file_is_its_latest(journal: Journal) -> None:
    """last_row_of_files: each invoice file's latest row (the highest id) among the rows
    the views list: whether a later row has that file."""
    first = journal.create("A.xml", "quarantined")
    later = journal.create("A.xml", "settling")
    only = journal.create("B.xml", "sent")
    assert journal.last_row_of_files() == {"A.xml": later, "B.xml": only}
    assert first < later


def test_sent_by_others_are_the_rows_another_daemon_sent_read_by_the_index(
        journal: Journal) -> None:
    """sent_by_others: of the rows asked for, those learnt from sent/ while the journal
    ran (NEWS_DETAIL) and those on their way here another daemon archived
    (ELSEWHERE_DETAIL); not this daemon's own, not those read back into a journal started
    afresh (they may be its own), not a row not asked for. Looked up in the partial index,
    never by a pass over the whole history."""
    def record(n: int) -> dict[str, object]:
        return {"bundle_id": f"{n:064x}", "invoice_file": f"N{n}.xml", "invoice_ids": [],
                "archive_dir": f"/s/N{n}", "receipt_id": f"r{n}"}

    own = journal.create("OWN.xml", "delivering", bundle_id="c" * 64)
    journal.transition(own, "sent", "delivered and archived")
    journal.import_sent([record(1)])  # read back from sent/
    journal.import_sent([record(2), record(3)], NEWS_DETAIL)
    taken = journal.create("TAKEN.xml", "retrying", bundle_id="d" * 64)
    journal.transition(taken, "sent", f"{ELSEWHERE_DETAIL} /s/TAKEN")
    ids = [r.id for r in journal.rows(("sent",))]
    readback, news, later = ids[1], ids[2], ids[3]
    assert journal.sent_by_others(ids[:3] + [taken]) == {news, taken}
    assert journal.sent_by_others([own, readback]) == set()
    assert journal.sent_by_others([later]) == {later}
    assert journal.sent_by_others([]) == set()
    plan = " ".join(str(tuple(r)) for r in journal._db.execute(
        f"EXPLAIN QUERY PLAN SELECT bundle_row FROM transitions WHERE {BY_ANOTHER_TERMS} "
        "AND bundle_row IN (1, 2)"))
    assert "transitions_by_another" in plan, plan


def test_views_has_no_stand_in_body_for_the_rows_sent_invoice_ids() -> None:
    """Views declares Rows' sent_invoice_ids for mypy only (under TYPE_CHECKING): no stub
    that raises NotImplementedError exists at run time to be called in its place, and
    Journal's is Rows' own."""
    from daemon.journal.rows import Rows
    from daemon.journal.views import Views
    assert "sent_invoice_ids" not in vars(Views)
    assert Journal.sent_invoice_ids is Rows.sent_invoice_ids


def test_rows_and_documents_have_no_stand_in_body_for_the_journals_tx() -> None:
    """Rows and Documents declare Journal's _tx for mypy only (under TYPE_CHECKING): no
    stub that raises NotImplementedError exists at run time to be called in its place,
    and the one Journal runs is its own."""
    from daemon.journal.documents import Documents
    from daemon.journal.rows import Rows
    assert "_tx" not in vars(Rows)
    assert "_tx" not in vars(Documents)
    assert Journal._tx is vars(Journal)["_tx"]


def test_page_like_answers_are_the_weeks_sent_answers_holding_a_page_tag_in_any_case(
        journal: Journal) -> None:
    """page_like_answers (for `outboxd status`): the receiver's answer of each row sent
    in the last 7 days whose stored answer holds `<html` or `<!doctype` in any case (an
    upper-case `<HTML>` too); not a JSON receipt, not a row sent before the week, not a
    quarantined row's answer, and a row whose answer cannot be read is passed over."""
    upper = {"status": 200, "body": "<HTML><BODY>Sign in</BODY></HTML>", "receipt_id": None}
    page = journal.create("A.xml", "sent", response={"response": upper})
    journal.create("B.xml", "sent", response={"response": {"status": 201,
                                                          "body": {"receipt_id": "R"}}})
    old = journal.create("C.xml", "sent", response={"response": upper})
    set_since(journal.path, old, datetime.now(UTC) - timedelta(days=8))
    journal.create("D.xml", "quarantined", response={"response": upper})
    broken = journal.create("E.xml", "sent", response={"response": upper})
    journal._db.execute("UPDATE bundles SET response = '{\"<html' WHERE id = ?", (broken,))
    journal._db.commit()
    assert journal.page_like_answers() == {page: upper}


def _plans_of(journal: Journal, call: Callable[[], object]) -> list[str]:
    """SQLite's plan of each statement `call` runs on the journal that reads
    transitions by row (the last detail of a row)."""
    queries: list[str] = []
    journal._db.set_trace_callback(queries.append)
    try:
        call()
    finally:
        journal._db.set_trace_callback(None)
    plans = []
    for q in queries:
        if "FROM transitions" in q and "bundle_row" in q and "ORDER BY" in q:
            # The SELECT that reads a row's last transition, alone or inside an INSERT.
            select = q[q.index("SELECT"):] if q.lstrip().upper().startswith("SELECT") else \
                q[q.index("(SELECT") + 1:q.index("LIMIT 1)") + len("LIMIT 1")]
            plans.append(" ".join(str(r[-1]) for r in journal._db.execute(
                "EXPLAIN QUERY PLAN " + select.replace("bundles.id", "1"))))
    return plans


def test_a_rows_last_transition_is_read_by_the_index_of_rows_not_the_history(
        journal: Journal) -> None:
    """A journal of a year holds half a million transitions: a row's latest one (what
    recovery asks of each retrying row at a start, and what a transition in the same
    state compares its detail with — every held-back or paused bundle, every failed
    move) is found by the index of transitions by row, not by a scan back through every
    transition written since that row's own (45 ms a look for a row from the start of
    a year). Both statements' plans search that index, and the answers are right."""
    old = journal.create("OLD.xml", "retrying", "paused: fix the configuration")
    for n in range(20):
        journal.create(f"N{n}.xml", "settling")
    assert journal.last_detail(old) == "paused: fix the configuration"
    [plan] = _plans_of(journal, lambda: journal.last_detail(old))
    assert "transitions_by_row" in plan, plan
    [plan] = _plans_of(journal, lambda: journal.transition(old, "retrying", "held back"))
    assert "transitions_by_row" in plan, plan
    assert journal.last_detail(old) == "held back"
    before = journal._db.execute("SELECT COUNT(*) FROM transitions").fetchone()[0]
    journal.transition(old, "retrying", "held back")  # the same detail: no new transition
    assert journal._db.execute("SELECT COUNT(*) FROM transitions").fetchone()[0] == before
