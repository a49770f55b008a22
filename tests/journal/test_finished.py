"""The journal's finished rows looked up (daemon/journal/finished.py): a day's sent or
quarantined rows and their count, the quarantined rows of a rule's code, the week's
finished invoice files of some stems."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from test_journal import set_since  # noqa: E402

from daemon.journal import Journal  # noqa: E402
from daemon.journal.records import UNREADABLE_REASONS  # noqa: E402


def test_quarantined_for_a_code_is_the_quarantined_rows_with_that_reason(
        journal: Journal) -> None:
    """quarantined_for("sidecar-spelling"): the quarantined rows with a reason of that
    code, oldest first, without the receiver's response; not a held row with it, nor
    a quarantined row whose message only mentions the code; one whose reasons hold
    the code but cannot be read is kept."""
    spelling = {"code": "sidecar-spelling", "file": "inv-7", "message": "rename it"}
    other = {"code": "pdf-encrypted", "file": "A/x.pdf",
             "message": 'is encrypted (not "sidecar-spelling")'}
    first = journal.create("A.xml", "quarantined", reasons=[spelling])
    journal.create("B.xml", "held", reasons=[spelling])
    journal.create("C.xml", "quarantined", reasons=[other])
    last = journal.create("D.xml", "quarantined", reasons=[other, spelling],
                          response={"status": 422})
    # Its reasons cut short (a journal edited by hand): kept, for `check` to say that
    # it cannot tell, with the one reason that says they cannot be read.
    cut = journal.create("E.xml", "quarantined", reasons=[spelling])
    journal._db.execute("UPDATE bundles SET reasons = '[{\"code\": \"sidecar-spelling\"' "
                        "WHERE id = ?", (cut,))
    rows = journal.quarantined_for("sidecar-spelling")
    assert [r.id for r in rows] == [first, last, cut]
    assert rows[1].reasons == [other, spelling] and rows[1].response is None
    assert [x["code"] for x in rows[2].reasons] == [UNREADABLE_REASONS]

def test_the_look_alike_question_reads_only_the_rows_with_that_reason(
        journal: Journal) -> None:
    """quarantined_for("sidecar-spelling"), asked at each refresh of the status page,
    is answered from the partial index of those rows: SQLite's plan for the query it
    runs searches that index, not the quarantined rows' reasons one by one."""
    journal.create("A.xml", "quarantined", reasons=[
        {"code": "sidecar-spelling", "file": "inv-7", "message": "rename it"}])
    journal.create("B.xml", "quarantined", reasons=[
        {"code": "pdf-encrypted", "file": "B/x.pdf", "message": "decrypt it"}])
    queries: list[str] = []
    journal._db.set_trace_callback(queries.append)
    try:
        assert [r.invoice_file for r in journal.quarantined_for("sidecar-spelling")] == \
            ["A.xml"]
    finally:
        journal._db.set_trace_callback(None)
    [query] = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
    plan = " ".join(str(r[-1]) for r in journal._db.execute("EXPLAIN QUERY PLAN " + query))
    assert "bundles_sidecar_spelling" in plan, plan


def test_a_days_finished_rows_are_listed_latest_first_up_to_the_limit_and_counted(
        journal: Journal) -> None:
    """finished_on (the page's "sent today"): the rows of that state whose `since` is on
    that day, the latest first, at most `limit` of them (all without one); count_on
    counts them all. Not another day's row, not another state's."""
    day = datetime(2031, 5, 6, tzinfo=UTC)
    made = {}
    for name, state, when in [("early", "sent", day), ("late", "sent", day + timedelta(hours=23)),
                              ("noon", "sent", day + timedelta(hours=12)),
                              ("before", "sent", day - timedelta(milliseconds=1)),
                              ("q", "quarantined", day + timedelta(hours=1))]:
        made[name] = journal.create(f"{name}.xml", state)
        set_since(journal.path, made[name], when)
    assert [r.invoice_file for r in journal.finished_on("sent", "2031-05-06", 2)] == [
        "late.xml", "noon.xml"]
    assert [r.invoice_file for r in journal.finished_on("sent", "2031-05-06")] == [
        "late.xml", "noon.xml", "early.xml"]
    assert journal.count_on("sent", "2031-05-06") == 3


def test_a_code_that_could_change_the_query_is_refused_before_it_reaches_sqlite(
        journal: Journal) -> None:
    """quarantined_for() writes the code into its SQL text (so that SQLite takes the
    partial index): anything but letters, digits and hyphens is refused with ValueError,
    never run — a quote in it would end the string and add terms of its own."""
    journal.create("A.xml", "quarantined", reasons=[{"code": "pdf-encrypted", "file": "x",
                                                     "message": "m"}])
    for code in ("x') OR 1=1 --", 'x" ', "a b", ""):
        with pytest.raises(ValueError, match="not a rule code"):
            journal.quarantined_for(code)
    assert [r.invoice_file for r in journal.quarantined_for("pdf-encrypted")] == ["A.xml"]


class _Fetched:
    """The journal's connection, counting the rows its statements hand back."""

    def __init__(self, db: object) -> None:
        self.db, self.rows = db, 0

    def execute(self, *args: object) -> object:
        fetched = self
        cur = self.db.execute(*args)  # type: ignore[attr-defined]

        class Counted:
            def fetchall(self) -> list[object]:
                rows: list[object] = cur.fetchall()
                fetched.rows += len(rows)
                return rows
        return Counted()

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def _sent_rows(journal: Journal, names: list[str]) -> None:
    """A row sent now for each name, written in one statement (a week of a busy outbox)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    journal._db.executemany(
        "INSERT INTO bundles (invoice_file, state, since, updated_at) VALUES (?, 'sent', ?, ?)",
        [(name, now, now) for name in names])
    journal._db.commit()


def test_finished_files_of_some_stems_hold_every_name_of_those_stems_and_few_others(
        journal: Journal) -> None:
    """finished_files(stems=…) holds every row of the week whose name names.stem gives
    one of the stems: a name with or without an extension, a stem of dots or a leading
    dot, a name of more dots (its stem keeps all but the last), a name that is not UTF-8
    or holds a backslash; of the rest only names that begin as a stem does up to its
    first dot ("L1.b.xml" for "L1"), never a longer name ("L10.xml" for "L1")."""
    from daemon.names import stem
    names = ["L1.xml", "L1.pdf", "L1", "L1.b.xml", "L10.xml", "L1..xml", ".hidden",
             ".hidden.xml", "...", "x.", "L\udce9.xml", "a\\u005cb.xml", "a\\b.xml", "M.xml"]
    for name in names:
        journal.create(name, "sent")
    journal.create("L1.tif", "waiting")  # not finished: never one
    every = journal.finished_files()
    for stems in [{"L1"}, {"L1.b", "L1."}, {".hidden"}, {"..", "x"}, {"L\udce9"},
                  {"a\\u005cb", "a\\b"}, {"nothing"}, set(names)]:
        got = journal.finished_files(stems=frozenset(stems))
        assert [r for r in got if stem(r[0]) in stems] == \
            [r for r in every if stem(r[0]) in stems], stems
        firsts = {s.split(".")[0] for s in stems}
        assert [r for r in every if r[0].split(".")[0] in firsts] == got, stems


def test_a_late_folders_question_fetches_only_the_rows_of_its_stem(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The status page asks, at each refresh while a folder without an invoice file
    waits, whether its invoice file left lately: with a week of 5,000 sent rows, the
    journal hands back the one row of that name, not all 5,000 to be decoded and looked
    through in Python (0.4 s a refresh at 100,000 rows a week)."""
    from daemon.configuration.config_sections import OutboxConfig, ShareConfig
    from daemon.watching.strays import StrayFolders
    _sent_rows(journal, [f"INV-{n}.xml" for n in range(5000)])
    outbox = tmp_path / "outbox"
    (outbox / "INV-77").mkdir(parents=True)
    (outbox / "INV-77" / "timesheet.pdf").write_bytes(b"%PDF-1.4")
    fetched = _Fetched(journal._db)
    monkeypatch.setattr(journal, "_db", fetched)
    [stray] = StrayFolders().find(OutboxConfig(path=outbox), ShareConfig(), [],
                                  lambda stems: journal.finished_files(stems=stems))
    assert stray.name == "INV-77" and "INV-77.xml, which was sent at" in stray.why
    assert fetched.rows == 1
