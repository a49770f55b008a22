"""The SQLite journal (daemon/journal/): transitions recorded and committed, queries,
faults, the index of sent invoice ids. (What it shows: journal/test_views.py; a row
and its shown state: journal/test_records.py; a bundle's documents:
journal/test_documents.py.)"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.errors import JournalError, JournalLost
from daemon.journal import CLAIMING, DELIVERED, SCHEMA, Journal
from daemon.journal import rows as rows_module

BID_A = "a" * 64
BID_B = "b" * 64


def record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fsync from now on, as the path of what was synced (and still synced)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def transitions(path: Path, row_id: int) -> list[tuple[str | None, str, str]]:
    db = sqlite3.connect(path)
    try:
        return list(db.execute("SELECT from_state, to_state, detail FROM transitions "
                               "WHERE bundle_row = ? ORDER BY id", (row_id,)))
    finally:
        db.close()


def set_since(path: Path, row_id: int, when: datetime) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("UPDATE bundles SET since = ? WHERE id = ?",
                       (when.isoformat(timespec="milliseconds").replace("+00:00", "Z"), row_id))
    finally:
        db.close()


class TestTransitions:
    def test_create_records_transition_from_nothing(self, journal: Journal) -> None:
        """create() inserts the row and a transition NULL -> state."""
        rid = journal.create("INV-1.xml", "settling", "found")
        assert transitions(journal.path, rid) == [(None, "settling", "found")]
        row = journal.get(rid)
        assert row.state == "settling" and row.invoice_file == "INV-1.xml"

    def test_transition_records_from_and_to(self, journal: Journal) -> None:
        """Each state change adds a transition with the previous and the new state."""
        rid = journal.create("INV-1.xml", "settling")
        journal.transition(rid, CLAIMING, "claim", bundle_id=BID_A)
        journal.transition(rid, "delivering", "claimed")
        assert [(f, t) for f, t, _ in transitions(journal.path, rid)] == [
            (None, "settling"), ("settling", CLAIMING), (CLAIMING, "delivering")]
        assert journal.get(rid).bundle_id == BID_A

    def test_several_rows_move_together_each_with_its_own_fields(
            self, journal: Journal) -> None:
        """transitions() moves several rows in one commit: each gets its own values, its
        own transition from its own state, and `since` as transition() sets it (kept
        while retrying becomes delivering, new on a change of state); a row that does not
        exist writes nothing for any of them."""
        a = journal.create("INV-1.xml", "settling")
        b = journal.create("INV-2.xml", "retrying", since="2026-01-01T00:00:00.000Z")
        before = journal.changes
        journal.transitions([(a, {"bundle_id": BID_A, "work_dir": "/w/a"}),
                             (b, {"bundle_id": BID_B, "work_dir": "/w/b"})], "delivering",
                            "claimed")
        assert journal.changes == before + 1
        ra, rb = journal.get(a), journal.get(b)
        assert (ra.state, ra.bundle_id, ra.work_dir) == ("delivering", BID_A, "/w/a")
        assert (rb.state, rb.bundle_id, rb.work_dir) == ("delivering", BID_B, "/w/b")
        assert rb.since == "2026-01-01T00:00:00.000Z" and ra.since != rb.since
        assert transitions(journal.path, a)[-1] == ("settling", "delivering", "claimed")
        assert transitions(journal.path, b)[-1] == ("retrying", "delivering", "claimed")
        with pytest.raises(JournalError, match="does not exist"):
            journal.transitions([(a, {}), (999, {})], "retrying")
        assert journal.get(a).state == "delivering" and len(transitions(journal.path, a)) == 2
        with pytest.raises(ValueError):
            journal.transitions([(a, {"attempts": 1}), (b, {})], "retrying")

    def test_a_row_given_twice_is_refused_as_such(self, journal: Journal) -> None:
        """The same row twice in one transitions() is the caller's mistake, refused
        before anything is written, not reported as a row that does not exist."""
        a = journal.create("INV-1.xml", "settling")
        with pytest.raises(ValueError, match="each row once"):
            journal.transitions([(a, {"attempts": 1}), (a, {"attempts": 2})], "retrying")
        assert journal.get(a).state == "settling" and len(transitions(journal.path, a)) == 1

    def test_temporary_data_stays_in_memory(self, journal: Journal) -> None:
        """A statement that moves many rows keeps what it changed for its own rollback;
        past 64 KiB (a batch of 32 claims) SQLite would spill it into a temporary file in
        /var/tmp or /tmp, outside the state dir a locked-down service may write. The
        journal keeps it in memory, and a batch of 32 claims goes through."""
        assert journal._db.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        rows = [journal.create(f"INV-{i}.xml", "settling") for i in range(32)]
        journal.transitions([(r, {"bundle_id": BID_A, "work_dir": f"/w/{r}",
                                  "reasons": [], "invoice_ids": [f"INV-{r}"]})
                             for r in rows], CLAIMING)
        assert [r.id for r in journal.rows((CLAIMING,))] == rows

    def test_same_state_updates_fields_without_transition(self, journal: Journal) -> None:
        """transition() to the current state changes fields but records no transition
        and keeps `since`."""
        rid = journal.create("INV-1.xml", "retrying", attempts=1)
        since = journal.get(rid).since
        journal.transition(rid, "retrying", attempts=2, last_error="HTTP 503")
        row = journal.get(rid)
        assert row.attempts == 2 and row.last_error == "HTTP 503" and row.since == since
        assert len(transitions(journal.path, rid)) == 1

    def test_same_state_with_a_new_reason_records_it(self, journal: Journal) -> None:
        """A transition to the current state with a detail other than the row's last one
        is recorded (why the row is there changed: a pause, then a failed move), keeping
        `since`; the same detail again is not recorded twice."""
        rid = journal.create("INV-1.xml", "delivering")
        journal.transition(rid, "retrying", "paused: configuration problem")
        since = journal.get(rid).since
        for _ in range(2):
            journal.transition(rid, "retrying", "bundle cannot be moved; will retry",
                               last_error="No space left on device")
        assert journal.last_detail(rid) == "bundle cannot be moved; will retry"
        assert transitions(journal.path, rid)[-2:] == [
            ("delivering", "retrying", "paused: configuration problem"),
            ("retrying", "retrying", "bundle cannot be moved; will retry")]
        assert journal.get(rid).since == since

    def test_state_change_moves_since(self, journal: Journal) -> None:
        """`since` is the time of the last state change."""
        rid = journal.create("INV-1.xml", "settling")
        set_since(journal.path, rid, datetime(2020, 1, 1, tzinfo=UTC))
        journal.transition(rid, "waiting")
        assert not journal.get(rid).since.startswith("2020")

    def test_attempts_in_flight_keep_since(self, journal: Journal) -> None:
        """Each retry passes retrying → delivering → retrying: `since` stays the start of
        the stretch in flight, so a bundle failing for days shows as failing for days
        (and `status` flags it); the transitions are still recorded, and leaving flight
        moves `since`."""
        rid = journal.create("INV-1.xml", "delivering")
        set_since(journal.path, rid, datetime(2020, 1, 1, tzinfo=UTC))
        journal.transition(rid, "retrying", last_error="HTTP 503")
        journal.transition(rid, "delivering", attempts=2)
        journal.transition(rid, "retrying", last_error="HTTP 503")
        assert journal.get(rid).since.startswith("2020")
        assert len(transitions(journal.path, rid)) == 4
        journal.transition(rid, "quarantining")
        assert not journal.get(rid).since.startswith("2020")

    def test_json_fields_round_trip(self, journal: Journal) -> None:
        """List and dict fields come back as Python values."""
        reasons = [{"code": "too-large", "file": "INV-1/a.pdf", "message": "Å too big"}]
        rid = journal.create("INV-1.xml", "held", invoice_ids=["INV-1", "INV-2"],
                             unattached_ids=["INV-2"], reasons=reasons)
        journal.update(rid, response={"status": 201, "receipt_id": "r1"})
        row = journal.get(rid)
        assert row.invoice_ids == ["INV-1", "INV-2"] and row.unattached_ids == ["INV-2"]
        assert row.reasons == reasons and row.response == {"status": 201, "receipt_id": "r1"}

    def test_transition_of_missing_row_raises(self, journal: Journal) -> None:
        """A transition of a row that does not exist is a JournalError, not a silent no-op."""
        with pytest.raises(JournalError):
            journal.transition(999, "sent")

    def test_unknown_field_raises(self, journal: Journal) -> None:
        """Field names not in the schema raise (create, transition, update) and write nothing."""
        with pytest.raises(ValueError):
            journal.create("INV-1.xml", "settling", colour="red")
        rid = journal.create("INV-1.xml", "settling")
        with pytest.raises(ValueError):
            journal.transition(rid, "waiting", colour="red")
        with pytest.raises(ValueError):
            journal.update(rid, nonsense=1)
        assert journal.get(rid).state == "settling"
        assert len(transitions(journal.path, rid)) == 1

    def test_committed_before_return(self, journal: Journal) -> None:
        """A transition is visible from a second, read-only connection as soon as the call
        returns (written before the move or POST it announces)."""
        rid = journal.create("INV-1.xml", "settling")
        reader = Journal(journal.path, readonly=True)
        try:
            journal.transition(rid, CLAIMING, bundle_id=BID_A, work_dir="/w")
            row = reader.get(rid)
            assert row.state == CLAIMING and row.work_dir == "/w"
            assert [t for _, t, _ in transitions(journal.path, rid)][-1] == CLAIMING
        finally:
            reader.close()

    def test_a_durable_write_syncs_the_wal_file_and_covers_earlier_writes(
            self, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
        """A durable transition returns only after the WAL file was synced; writes that
        announce nothing are not synced on their own but ride on that sync."""
        synced = record_syncs(monkeypatch)
        rid = journal.create("INV-1.xml", "settling", durable=False)
        journal.transition(rid, "waiting", durable=False)
        assert synced == []
        journal.transition(rid, CLAIMING, bundle_id=BID_A, work_dir="/w")
        assert synced == [f"{journal.path}-wal"]
        journal._sync(1)  # already covered: no second sync
        assert len(synced) == 1

    def test_make_durable_syncs_what_was_committed_without_a_sync(
            self, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
        """A receipt committed without a sync (its archive comes later) is on disk once
        make_durable() returns: one sync of the WAL file, none when all is covered."""
        synced = record_syncs(monkeypatch)
        rid = journal.create("INV-1.xml", "delivering", durable=False)
        journal.transition(rid, "delivered", durable=False)
        assert synced == []
        journal.make_durable()
        journal.make_durable()
        assert len(synced) == 1

    def test_a_new_process_syncs_what_an_earlier_one_left_unsynced(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A daemon killed while archives waited left receipts in the WAL, unsynced: the
        next process's first make_durable() syncs them before its first archive moves."""
        path = tmp_path / "journal.sqlite3"
        first = Journal(path)
        first.create("INV-1.xml", "delivered", durable=False)
        synced = record_syncs(monkeypatch)
        second = Journal(path)
        opened = len(synced)  # opening may sync the state dir
        second.make_durable()
        assert synced[opened:] == [os.path.realpath(f"{path}-wal")]
        first.close()
        second.close()

    def test_a_failed_sync_stops_the_journal_for_good(
            self, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
        """A durable write whose sync fails raises JournalLost, and so does every later
        use: Linux reports a lost write-back once, so no retry may pass for durable."""
        rid = journal.create("INV-1.xml", "settling", durable=False)

        def failing(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(JournalLost, match="could not be synced"):
            journal.transition(rid, CLAIMING, bundle_id=BID_A, work_dir="/w")
        monkeypatch.undo()
        with pytest.raises(JournalLost):
            journal.transition(rid, "settling", durable=False)
        with pytest.raises(JournalLost):
            journal.check()
        with pytest.raises(JournalLost):  # an archive waiting for its receipt moves nothing
            journal.make_durable()

    def test_a_batch_is_one_commit(self, journal: Journal) -> None:
        """Writes inside batch() are committed together, and not at all if one fails."""
        a = journal.create("INV-1.xml", "settling")
        before = journal.changes
        with journal.batch():
            journal.transition(a, CLAIMING, bundle_id=BID_A, work_dir="/w")
            b = journal.create("INV-2.xml", CLAIMING, bundle_id=BID_B, work_dir="/v")
        assert journal.changes == before + 1
        assert journal.get(a).state == CLAIMING and journal.get(b).state == CLAIMING
        with pytest.raises(JournalError), journal.batch():
            journal.create("INV-3.xml", CLAIMING, bundle_id=BID_A, work_dir="/x")
            journal.transition(10_000, CLAIMING)  # no such row: the whole batch is undone
        assert [r.invoice_file for r in journal.rows((CLAIMING,))] == ["INV-1.xml", "INV-2.xml"]

    def test_survives_reopen(self, tmp_path: Path) -> None:
        """Rows persist across closing and opening the database (a restart)."""
        path = tmp_path / "j.sqlite3"
        j = Journal(path)
        rid = j.create("INV-1.xml", DELIVERED, bundle_id=BID_A)
        j.close()
        j2 = Journal(path)
        try:
            assert j2.get(rid).state == DELIVERED
        finally:
            j2.close()

    def test_readonly_cannot_write(self, journal: Journal) -> None:
        """A read-only journal (status) refuses writes."""
        journal.create("INV-1.xml", "settling")
        reader = Journal(journal.path, readonly=True)
        try:
            with pytest.raises(JournalError):
                reader.create("INV-2.xml", "settling")
        finally:
            reader.close()

    def test_unopenable_path_is_journal_error(self, tmp_path: Path) -> None:
        """A state_dir that does not exist gives a JournalError naming the path."""
        with pytest.raises(JournalError, match="state_dir"):
            Journal(tmp_path / "missing" / "j.sqlite3")


class TestQueries:
    def test_rows_by_state(self, journal: Journal) -> None:
        """rows() returns the rows in the given internal states, in creation order."""
        a = journal.create("a.xml", CLAIMING)
        journal.create("b.xml", "sent")
        c = journal.create("c.xml", "retrying")
        assert [r.id for r in journal.rows((CLAIMING, "retrying"))] == [a, c]
        assert journal.rows(("quarantined",)) == []

    def test_quarantined_lately_is_each_wanted_files_weeks_latest_quarantine(
            self, journal: Journal) -> None:
        """quarantined_lately(): of the files `wanted` takes, those quarantined in the
        last 7 days whose latest row is that quarantine, with its folder (the later of two
        quarantines); not one sent or dropped again since, not one of 8 days ago, not
        one `wanted` refuses. By the (state, since) index, then the wanted files' later
        rows by row id, all in one statement — never a scan of the table."""
        now = datetime.now(UTC)
        for name, folder, days in [("A.xml", "/q/A-1", 5), ("A.xml", "/q/A-2", 2),
                                   ("B.xml", "/q/B", 3), ("C.xml", "/q/C", 3),
                                   ("D.xml", "/q/D", 8), ("E.xml", "/q/E", 1)]:
            set_since(journal.path, journal.create(name, "quarantined", archive_dir=folder),
                      now - timedelta(days=days))
        journal.create("B.xml", "sent", archive_dir="/s/B")
        journal.create("C.xml", "waiting")
        queries: list[str] = []
        journal._db.set_trace_callback(queries.append)
        try:
            got = journal.quarantined_lately("ABCDE", lambda f: f != "E.xml")
        finally:
            journal._db.set_trace_callback(None)
        assert got == {"A.xml": "/q/A-2"}
        plans = [" ".join(str(r[-1]) for r in journal._db.execute("EXPLAIN QUERY PLAN " + q))
                 for q in queries if q.lstrip().upper().startswith("SELECT")]
        assert len(plans) == 2  # the week's quarantined rows, then A, B and C's latest
        assert "bundles_state_since" in plans[0], plans
        assert all("SCAN bundles" not in p and "INTEGER PRIMARY KEY" in p
                   for p in plans[1:]), plans

    def test_was_sent(self, journal: Journal) -> None:
        """was_sent is true for a bundle on its way (claimed, delivering, retrying), delivered
        but not yet archived, or sent; not for a quarantined or merely waiting one."""
        a = journal.create("a.xml", "waiting", bundle_id=BID_A)
        assert not journal.was_sent(BID_A)
        journal.transition(a, CLAIMING)
        assert journal.was_sent(BID_A)
        journal.transition(a, "delivering")
        assert journal.was_sent(BID_A)
        journal.transition(a, "retrying")
        assert journal.was_sent(BID_A)
        journal.transition(a, DELIVERED)
        assert journal.was_sent(BID_A)
        journal.transition(a, "sent")
        assert journal.was_sent(BID_A)
        q = journal.create("b.xml", "quarantined", bundle_id=BID_B)
        assert q and not journal.was_sent(BID_B)

    def test_in_flight_is_the_bundles_rows_delivering_or_retrying(
            self, journal: Journal) -> None:
        """in_flight(bundle id): its rows on their way to the receiver (delivering,
        retrying), in journal order; not one still being claimed, delivered, sent or of
        another bundle."""
        rows = {state: journal.create(f"{state}.xml", state, bundle_id=BID_A)
                for state in ("retrying", CLAIMING, "delivering", DELIVERED, "sent")}
        journal.create("other.xml", "delivering", bundle_id=BID_B)
        assert [r.id for r in journal.in_flight(BID_A)] == [rows["retrying"],
                                                            rows["delivering"]]

    def test_sent_invoice_ids_other_bundles_only(self, journal: Journal) -> None:
        """sent_invoice_ids lists ids already sent in *another* bundle, in the order asked."""
        journal.create("a.xml", "sent", bundle_id=BID_A, invoice_ids=["INV-1", "INV-2"])
        journal.create("q.xml", "quarantined", bundle_id="c" * 64, invoice_ids=["INV-3"])
        assert journal.sent_invoice_ids(["INV-3", "INV-2", "INV-1"], BID_B) == ["INV-2", "INV-1"]
        assert journal.sent_invoice_ids(["INV-1"], BID_A) == []

    def test_sent_elsewhere_answers_many_rows_as_sent_invoice_ids_answers_each(
            self, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
        """sent_elsewhere: of each row, its ids sent in another bundle, as
        sent_invoice_ids says row by row, in a few statements however many rows (the
        status page asks it for every waiting row at each refresh); ids beyond one
        statement's variables are asked in parts."""
        monkeypatch.setattr(rows_module, "SQL_VARIABLES", 2)
        journal.create("a.xml", "sent", bundle_id=BID_A, invoice_ids=["INV-1", "INV-2"])
        journal.create("x.xml", "sent", bundle_id="c" * 64, invoice_ids=["INV-5"])
        waiting = [journal.get(journal.create(f"{n}.xml", "waiting", bundle_id=bid,
                                              invoice_ids=ids))
                   for n, bid, ids in (("b", BID_B, ["INV-3", "INV-2", "INV-1"]),
                                       ("a2", BID_A, ["INV-1"]),  # its own bundle: no
                                       ("n", None, ["INV-5", "INV-4"]),
                                       ("e", BID_B, []))]
        assert journal.sent_elsewhere(waiting) == {"b.xml": ["INV-2", "INV-1"],
                                                   "n.xml": ["INV-5"]}
        assert journal.sent_elsewhere(waiting) == {
            r.invoice_file: sent for r in waiting
            if (sent := journal.sent_invoice_ids(list(r.invoice_ids), r.bundle_id or ""))}

    def test_delivered_counts_as_sent_invoice_id(self, journal: Journal) -> None:
        """An invoice id in a bundle the receiver accepted (archive pending) was sent."""
        journal.create("a.xml", DELIVERED, bundle_id=BID_A, invoice_ids=["INV-1"])
        assert journal.sent_invoice_ids(["INV-1"], BID_B) == ["INV-1"]


class TestFaults:
    def test_write_failure_names_the_real_error_and_backs_off(self, journal: Journal) -> None:
        """A failing write raises JournalError with SQLite's own message (not a failed
        ROLLBACK), marked as reported; the next write within the back-off is not tried."""
        journal._db.execute("CREATE TRIGGER full BEFORE INSERT ON bundles "
                            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        with pytest.raises(JournalError, match="database or disk is full") as first:
            journal.create("a.xml", "settling")
        assert first.value.reported
        journal._db.execute("DROP TRIGGER full")
        with pytest.raises(JournalError, match="disk is full"):
            journal.create("a.xml", "settling")  # still backing off: not tried
        journal._failing_until = 0.0
        row = journal.create("a.xml", "settling")
        assert journal.get(row).state == "settling" and not journal._db.in_transaction

    def test_a_write_that_keeps_failing_backs_off_doubling_and_is_said_once(
            self, journal: Journal) -> None:
        """Each failed write doubles the wait before the next try, from 0.5 s up to 30 s
        (an error said once per kind, not at every try: a full disk for an hour would
        flood the log); the first write that works clears the failure and says so once."""
        said: list[tuple[str, str]] = []

        class Said:
            def error(self, event: str, **_: object) -> None:
                said.append(("error", event))

            def info(self, event: str, **_: object) -> None:
                said.append(("info", event))

        journal.log = Said()
        journal._db.execute("CREATE TRIGGER full BEFORE INSERT ON bundles "
                            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        waits = []
        for _ in range(9):
            journal._failing_until = 0.0  # the back-off over: the write is tried
            before = time.monotonic()
            with pytest.raises(JournalError):
                journal.create("a.xml", "settling")
            after = time.monotonic()
            wait = journal._failing_until - before
            assert journal._failing_until - after <= wait
            waits.append(round(wait * 2) / 2)  # the time the try took is no part of it
        assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
        assert said == [("error", "journal cannot be written; retrying with back-off")]
        assert "disk is full" in journal.failure
        journal._db.execute("DROP TRIGGER full")
        journal._failing_until = 0.0
        journal.create("a.xml", "settling")
        journal.create("b.xml", "settling")
        assert said[1:] == [("info", "journal writable again")]
        assert journal.failure == "" and journal._failing_until == 0.0

    def test_a_lock_another_process_holds_is_said_as_a_lock_not_as_free_space(
            self, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
        """A write that waits out BUSY_SECONDS for another connection's lock (a sqlite3
        shell, a backup, an `outboxd retry`) names the lock, how long it waited and to
        try again once that program ends, not free space and permissions; and a command
        asks can_write() first, with the same answer, before it changes anything."""
        import daemon.journal
        monkeypatch.setattr(daemon.journal, "BUSY_SECONDS", 0.2)
        locked = Journal(journal.path)  # opened with the short wait
        holder = sqlite3.connect(journal.path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(JournalError) as first:
                locked.can_write()
            locked._failing_until = 0.0
            with pytest.raises(JournalError) as write:
                locked.create("a.xml", "settling")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            locked.close()
        for error in (first.value, write.value):
            assert "locked by another process (waited 0.2 s for it)" in str(error)
            assert "let it end, then try again" in str(error)
            assert "free space" not in str(error) and "permissions" not in str(error)
        assert str(first.value).startswith(f"the journal {journal.path} cannot be written")

    def test_a_lock_said_by_an_extended_code_is_said_as_a_lock(self, tmp_path: Path) -> None:
        """sqlite3 reports SQLite's extended codes: a write on a snapshot another
        connection's commit made stale fails with SQLITE_BUSY_SNAPSHOT (517), a lock, not
        a matter of free space and permissions (517 is no SQLITE_BUSY, 5, exactly)."""
        from daemon.journal import sqlite_failure
        path = tmp_path / "j.sqlite3"
        writer = sqlite3.connect(path, isolation_level=None, timeout=0.1)
        reader = sqlite3.connect(path, isolation_level=None, timeout=0.1)
        try:
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute("CREATE TABLE t (x)")
            reader.execute("BEGIN")
            reader.execute("SELECT * FROM t").fetchall()  # its snapshot, from now on old
            writer.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(sqlite3.OperationalError) as stale:
                reader.execute("INSERT INTO t VALUES (2)")
            reader.execute("ROLLBACK")
        finally:
            reader.close()
            writer.close()
        assert stale.value.sqlite_errorcode == 517  # SQLITE_BUSY_SNAPSHOT
        said = sqlite_failure(stale.value, "check free space and permissions")
        assert said.startswith("locked by another process") and "free space" not in said

    def test_a_table_lock_is_said_as_a_lock(self) -> None:
        """SQLITE_LOCKED (a table locked by a statement still reading it), like
        SQLITE_BUSY, is a lock to wait out, never a matter of free space and
        permissions."""
        from daemon.journal import sqlite_failure
        db = sqlite3.connect(":memory:", isolation_level=None)
        try:
            db.execute("CREATE TABLE t (x)")
            db.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            reading = db.execute("SELECT x FROM t")
            reading.fetchone()
            with pytest.raises(sqlite3.OperationalError) as locked:
                db.execute("DROP TABLE t")
        finally:
            db.close()
        assert locked.value.sqlite_errorcode == sqlite3.SQLITE_LOCKED
        said = sqlite_failure(locked.value, "check free space and permissions")
        assert said.startswith("locked by another process") and "free space" not in said

    def test_a_wal_file_made_anew_is_the_one_synced(self, journal: Journal) -> None:
        """The WAL file's descriptor is kept open between syncs; once the file at its
        path is another (SQLite made it anew), the next sync opens and syncs that one,
        never the old file no reader looks at any more."""
        journal.create("a.xml", "settling")  # durable: the WAL file opened and synced
        wal = Path(f"{journal.path}-wal")
        first = journal._wal()
        assert os.fstat(first).st_ino == wal.stat().st_ino
        assert journal._wal() == first  # the same file: kept open, not opened again
        anew = wal.with_name("anew")
        anew.write_bytes(wal.read_bytes())
        os.replace(anew, wal)
        assert os.fstat(journal._wal()).st_ino == wal.stat().st_ino

    def test_deleted_or_replaced_journal_is_noticed(self, tmp_path: Path) -> None:
        """check() and every durable write raise JournalLost once the file at the path is
        not the one we opened (deleted, or replaced by another file)."""
        from daemon.errors import JournalLost
        path = tmp_path / "j.sqlite3"
        j = Journal(path)
        try:
            j.check()
            path.unlink()
            with pytest.raises(JournalLost, match="deleted or replaced"):
                j.check()
            path.write_bytes(b"")
            with pytest.raises(JournalLost):
                j.create("a.xml", "settling")
        finally:
            j.close()

    def test_only_what_comes_before_an_effect_looks_at_the_journal_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A write that announces nothing (durable=False) does not stat the journal file
        (the loop and the workers make many: each look hands the interpreter lock over);
        a durable write does, and so does make_durable(), which makes such writes durable
        before an archive moves: a journal replaced after them stops the daemon there
        (JournalLost) instead of syncing the deleted file's WAL and moving on."""
        path = tmp_path / "j.sqlite3"
        j = Journal(path)
        looks: list[None] = []
        real = j._look
        monkeypatch.setattr(j, "_look", lambda: looks.append(None) or real())
        try:
            rid = j.create("a.xml", "settling", durable=False)
            j.transition(rid, "waiting", durable=False)
            with j.batch(durable=False):
                j.transition(rid, "settling", durable=False)
            assert looks == []
            j.transition(rid, CLAIMING, bundle_id=BID_A, work_dir="/w")
            assert len(looks) == 1
            j.transition(rid, DELIVERED, durable=False)  # a receipt before its archive
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink()
            path.write_bytes(b"")
            with pytest.raises(JournalLost, match="deleted or replaced"):
                j.make_durable()
        finally:
            j.close()

    def test_an_update_of_no_fields_changes_nothing(self, journal: Journal) -> None:
        """update() with no fields is no statement at all: the row stays as written
        (not an SQL error that a caller would take for a write failure)."""
        row = journal.create("a.xml", "settling")
        before = journal.written_at(row)
        journal.update(row)
        assert journal.written_at(row) == before and journal.failure == ""

    def test_archived_since_includes_a_row_sent_at_that_very_time(
            self, journal: Journal) -> None:
        """archived_since(at): the archive folders of rows sent or delivered at `at` or
        later, the one sent at that very millisecond too; not one sent before, not one
        without a folder."""
        at = datetime(2026, 3, 1, 12, tzinfo=UTC)
        rows = {}
        for name, state, when, folder in [
                ("same", "sent", at, "/s/same"), ("later", DELIVERED, at.replace(hour=13),
                                                  "/s/later"),
                ("before", "sent", at.replace(hour=11), "/s/before"),
                ("nofolder", "sent", at, None)]:
            rows[name] = journal.create(f"{name}.xml", state, archive_dir=folder)
            set_since(journal.path, rows[name], when)
        assert sorted(journal.archived_since("2026-03-01T12:00:00.000Z")) == [
            "/s/later", "/s/same"]

    def test_import_sent_makes_duplicates_known(self, journal: Journal) -> None:
        """Rows read back from sent/ count as sent for was_sent and since the delivery."""
        assert journal.is_empty()
        journal.import_sent([{"bundle_id": BID_A, "invoice_file": "a.xml",
                              "invoice_ids": ["INV-1"], "archive_dir": "/s/x",
                              "receipt_id": "r1", "delivered_at": "2026-01-02T03:04:05.000Z"}])
        assert journal.was_sent(BID_A) and not journal.is_empty()
        [row] = journal.rows(("sent",))
        assert row.since == "2026-01-02T03:04:05.000Z" and row.receipt_id == "r1"
        assert journal.sent_invoice_ids(["INV-1"], BID_B) == ["INV-1"]


class TestSentInvoicesIndex:
    def test_an_old_journal_is_migrated_with_its_sent_ids(self, tmp_path: Path) -> None:
        """A journal written before sent_invoices existed gets it filled from its sent rows
        when opened, so "already sent in another bundle" still holds for them."""
        path = tmp_path / "j.sqlite3"
        old = Journal(path)
        old.create("a.xml", "sent", bundle_id=BID_A, invoice_ids=["INV-1"])
        old.close()
        db = sqlite3.connect(path)
        db.execute("DROP TABLE sent_invoices")
        db.execute("PRAGMA user_version = 0")
        db.commit()
        db.close()
        migrated = Journal(path)
        try:
            assert migrated.sent_invoice_ids(["INV-1", "INV-9"], BID_B) == ["INV-1"]
        finally:
            migrated.close()

    def test_an_old_journal_keeps_when_its_waits_began(self, tmp_path: Path) -> None:
        """A journal written before wait_began existed gets the column, filled for the
        bundles waiting in it (their wait began when they entered the state), so a change
        of their files after the upgrade begins no new wait; opened read-only before
        that (`outboxd status` beside a stopped old daemon) it reads as before."""
        path = tmp_path / "j.sqlite3"
        db = sqlite3.connect(path)
        db.executescript(SCHEMA)
        db.execute("PRAGMA user_version = 1")
        for name, state in (("w.xml", "waiting"), ("s.xml", "settling")):
            db.execute("INSERT INTO bundles (invoice_file, state, since, updated_at) VALUES "
                       "(?, ?, '2031-05-06T10:00:00.000Z', '2031-05-06T10:00:00.000Z')",
                       (name, state))
        db.commit()
        db.close()
        old = Journal(path, readonly=True)
        try:
            assert {r.invoice_file: r.wait_began for r in old.recent()} == {
                "w.xml": None, "s.xml": None}
        finally:
            old.close()
        j = Journal(path)
        try:
            assert {r.invoice_file: r.wait_began for r in j.recent()} == {
                "w.xml": "2031-05-06T10:00:00.000Z", "s.xml": None}
        finally:
            j.close()

    def test_a_journal_a_later_version_added_a_column_to_still_reads(
            self, tmp_path: Path) -> None:
        """Going back to this version after a later one upgraded the journal (a column
        added) keeps the daemon and `status` reading it, instead of failing on every row
        with a TypeError, as a daemon before schema 2 does on wait_began."""
        path = tmp_path / "j.sqlite3"
        Journal(path).close()
        db = sqlite3.connect(path)
        db.execute("ALTER TABLE bundles ADD COLUMN colour TEXT")
        db.commit()
        db.close()
        j = Journal(path)
        try:
            rid = j.create("INV-1.xml", "waiting", bundle_id=BID_A)
            assert j.get(rid).state == "waiting"
            assert [r.invoice_file for r in j.rows(("waiting",))] == ["INV-1.xml"]
        finally:
            j.close()
        ro = Journal(path, readonly=True)
        try:
            assert [r.invoice_file for r in ro.recent()] == ["INV-1.xml"]
        finally:
            ro.close()

    def test_a_row_becoming_delivered_records_its_ids(self, journal: Journal) -> None:
        """The ids of a row are recorded as sent when the receiver accepts it."""
        row = journal.create("a.xml", "delivering", bundle_id=BID_A, invoice_ids=["INV-7"])
        assert journal.sent_invoice_ids(["INV-7"], BID_B) == []
        journal.transition(row, DELIVERED)
        assert journal.sent_invoice_ids(["INV-7"], BID_B) == ["INV-7"]
