"""`outboxd status` (docs/commands.md; docs/operations.md): counts per state and the
bundles of the journal, for scripts."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.configuration.config import DeliveryConfig, OutboxConfig, PathsConfig, Settings
from daemon.journal import CLAIMING, DELIVERED, Journal
from daemon.report.status import collect, render
from daemon.report.statusjson import as_json

STATES_SHOWN = ["settling", "waiting", "held", "delivering", "retrying", "sent", "quarantined"]
JSON_BUNDLE_KEYS = {"bundle_id", "invoice_file", "invoice_ids", "state", "since", "deadline",
                    "unattached_ids", "attempts", "next_attempt_at", "last_error", "reasons",
                    "receipt_id", "folder", "answer"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "outbox").mkdir()
    (tmp_path / "state").mkdir()
    return Settings(outbox=OutboxConfig(path=tmp_path / "outbox"),
                    paths=PathsConfig(state_dir=tmp_path / "state"),
                    delivery=DeliveryConfig(url="http://127.0.0.1:9/x"))


def fill(settings: Settings) -> dict[str, int]:
    j = Journal(settings.journal_path)
    try:
        ids = {
            "wait": j.create("INV-1.xml", "waiting", bundle_id="a" * 64, invoice_ids=["INV-1"],
                             unattached_ids=["INV-1"], deadline="2030-01-01T00:00:00.000Z"),
            "retry": j.create("INV-2.xml", "retrying", bundle_id="b" * 64,
                              invoice_ids=["INV-2"], attempts=3, last_error="HTTP 503",
                              next_attempt_at="2030-01-01T00:00:05.000Z"),
            "claim": j.create("INV-3.xml", CLAIMING, bundle_id="c" * 64),
            "q": j.create("INV-4.xml", "quarantined", bundle_id="d" * 64, reasons=[
                {"code": "too-large", "file": "INV-4/a.pdf", "message": "too big"}]),
            "sent": j.create("INV-5.xml", "sent", bundle_id="e" * 64, invoice_ids=["INV-5"]),
            "old": j.create("INV-6.xml", "sent", bundle_id="f" * 64),
            "gone": j.create("INV-7.xml", "gone"),
        }
    finally:
        j.close()
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    db = sqlite3.connect(settings.journal_path)
    with db:
        db.execute("UPDATE bundles SET since = ? WHERE id = ?", (old, ids["old"]))
    db.close()
    return ids


class TestCollect:
    def test_empty_state_dir(self, settings: Settings) -> None:
        """No journal yet: zero for each of the seven states shown, no bundles, and nothing
        created (status writes nothing)."""
        data = collect(settings)
        assert data == {"counts": dict.fromkeys(STATES_SHOWN, 0), "bundles": []}
        assert list(data["counts"]) == STATES_SHOWN
        assert list(settings.paths.state_dir.iterdir()) == []

    def test_a_state_dir_this_user_may_not_enter_is_one_journal_error_saying_whom_to_run_as(
            self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        """A state dir the user may not enter (stat of the journal fails with EACCES, as
        for a clerk's account): Path.exists() raised PermissionError out of collect. It is
        a JournalError (exit 1, one line) naming the state dir, why and whom to run
        status as."""
        import errno
        import os

        from daemon.errors import JournalError
        fill(settings)
        real_stat = os.stat

        def denied(path: str | os.PathLike[str], *args: object,
                   **kwargs: object) -> os.stat_result:
            if Path(path).parent == settings.paths.state_dir:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(os, "stat", denied)
        with pytest.raises(JournalError) as info:
            collect(settings)
        assert str(info.value) == (
            f"cannot look into the state dir {settings.paths.state_dir} for the journal "
            "(Permission denied); run it as the daemon's user (sudo -u outboxd outboxd "
            "status) or as a member of its group outboxd, which may read the state dir")

    def test_an_empty_journal_file_is_said_to_be_empty_with_the_fix(
            self, settings: Settings) -> None:
        """A journal of 0 bytes (emptied; `touch`): status says so and what to do, not
        'near ",": syntax error' from the list of columns of a table that is not there,
        and changes nothing; a database that is not outboxd's is named so."""
        from daemon.errors import JournalError
        settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
        journal = settings.journal_path
        journal.touch()
        with pytest.raises(JournalError) as info:
            collect(settings)
        assert str(info.value).startswith(f"the journal {journal} is empty (0 bytes)")
        assert "start outboxd" in str(info.value) and "sent/" in str(info.value)
        assert "syntax error" not in str(info.value)
        assert sorted(p.name for p in settings.paths.state_dir.iterdir()) == [journal.name]
        assert journal.stat().st_size == 0
        db = sqlite3.connect(journal)
        db.execute("CREATE TABLE other (a)")
        db.commit()
        db.close()
        with pytest.raises(JournalError, match=r"is damaged \(it holds no table of bundles: "
                           r"not a journal of outboxd's\).*move it away"):
            collect(settings)

    def test_counts_with_rows(self, settings: Settings) -> None:
        """Counts use the names shown (claiming → delivering); old
        sent rows still count, gone rows do not."""
        fill(settings)
        assert collect(settings)["counts"] == {
            "settling": 0, "waiting": 1, "held": 0, "delivering": 1, "retrying": 1,
            "sent": 2, "quarantined": 1}

    def test_bundles_are_recent_with_shown_states(self, settings: Settings) -> None:
        """Bundles list live/in-flight rows and sent/quarantined of the last 7 days, states
        shown by the names `outboxd status` uses."""
        fill(settings)
        bundles = collect(settings)["bundles"]
        assert [(b["invoice_file"], b["state"]) for b in bundles] == [
            ("INV-1.xml", "waiting"), ("INV-2.xml", "retrying"), ("INV-3.xml", "delivering"),
            ("INV-4.xml", "quarantined"), ("INV-5.xml", "sent")]

    def test_readonly_while_daemon_holds_it(self, settings: Settings) -> None:
        """status reads the journal while the daemon has it open, and sees committed rows."""
        j = Journal(settings.journal_path)
        try:
            j.create("INV-1.xml", "settling")
            assert collect(settings)["counts"]["settling"] == 1
        finally:
            j.close()


class TestJson:
    def test_exact_keys_of_the_json_format(self, settings: Settings) -> None:
        """as_json: top-level counts and bundles; each bundle has exactly the keys
        docs/operations.md lists."""
        fill(settings)
        data = json.loads(as_json(collect(settings)))
        assert set(data) == {"counts", "bundles"}
        assert data["bundles"]
        for b in data["bundles"]:
            assert set(b) == JSON_BUNDLE_KEYS

    def test_values(self, settings: Settings) -> None:
        """Field values come through as JSON types (lists, ints, null)."""
        fill(settings)
        data = json.loads(as_json(collect(settings)))
        by_file = {b["invoice_file"]: b for b in data["bundles"]}
        wait, retry = by_file["INV-1.xml"], by_file["INV-2.xml"]
        assert wait["unattached_ids"] == ["INV-1"] and wait["invoice_ids"] == ["INV-1"]
        assert wait["deadline"] == "2030-01-01T00:00:00.000Z" and wait["bundle_id"] == "a" * 64
        assert retry["attempts"] == 3 and retry["last_error"] == "HTTP 503"
        assert retry["next_attempt_at"] == "2030-01-01T00:00:05.000Z"
        assert by_file["INV-4.xml"]["reasons"] == [
            {"code": "too-large", "file": "INV-4/a.pdf", "message": "too big",
             "invoice_id": None}]  # recorded without one: shown as null, a key of each
        assert by_file["INV-3.xml"]["deadline"] is None

    def test_a_finished_bundle_names_its_receipt_and_its_folder(
            self, settings: Settings) -> None:
        """A script finds a sent bundle's receipt id and the folder of its papers
        (receipt.json, reason.json) in status --json, without guessing the folder name
        (a name taken gets -2, a long one is shortened). A bundle still being moved
        names no folder yet (the journal holds the target before the move is done), but
        its receipt id once the receiver gave one."""
        # A quarantined bundle is listed while its invoice file is in its folder.
        q_folder = settings.outbox.path.parent / "quarantine/2031-05-06/Q--bbbbbbbbbbbb"
        q_folder.mkdir(parents=True)
        (q_folder / "Q.xml").write_bytes(b"<Invoice/>")
        j = Journal(settings.journal_path)
        try:
            j.create("S.xml", "sent", bundle_id="a" * 64, invoice_ids=["S"],
                     receipt_id="rcpt-1", archive_dir="/srv/sent/2031-05-06/S--aaaaaaaaaaaa-2")
            j.create("Q.xml", "quarantined", bundle_id="b" * 64, archive_dir=str(q_folder))
            j.create("D.xml", DELIVERED, bundle_id="c" * 64, receipt_id="rcpt-2",
                     archive_dir="/srv/sent/2031-05-06/D--cccccccccccc")
        finally:
            j.close()
        by_file = {b["invoice_file"]: b
                   for b in json.loads(as_json(collect(settings)))["bundles"]}
        assert by_file["S.xml"]["receipt_id"] == "rcpt-1"
        assert by_file["S.xml"]["folder"] == "/srv/sent/2031-05-06/S--aaaaaaaaaaaa-2"
        assert by_file["Q.xml"]["folder"] == str(q_folder)
        assert by_file["Q.xml"]["receipt_id"] is None
        assert by_file["D.xml"]["state"] == "delivering"
        assert by_file["D.xml"]["folder"] is None and by_file["D.xml"]["receipt_id"] == "rcpt-2"

    def test_render_for_people(self, settings: Settings) -> None:
        """The text form shows counts and the waiting/retrying/quarantined details."""
        fill(settings)
        text = render(collect(settings))
        for needle in ("waiting: 1", "retrying: 1", "INV-1.xml", "no attachments: INV-1",
                       "attempts 3", "HTTP 503", "INV-4/a.pdf: too-large"):
            assert needle in text

    def test_the_text_lists_what_the_contract_names_in_its_order(
            self, settings: Settings) -> None:
        """docs/commands.md, `outboxd status`: counts per state, then waiting for
        attachments (file, the invoice ids without attachments, since, deadline), held,
        retrying (attempts, next try, last error), quarantined and sent recently, in that
        order."""
        fill(settings)
        j = Journal(settings.journal_path)
        try:
            j.create("INV-8.xml", "held", bundle_id="9" * 64, invoice_ids=["INV-8"],
                     reasons=[{"code": "too-large", "file": "INV-8/a.pdf",
                               "message": "too big"}])
        finally:
            j.close()
        lines = render(collect(settings)).splitlines()
        assert lines[0].split("  ") == ["settling: 0", "waiting: 1", "held: 1",
                                        "delivering: 1", "retrying: 1", "sent: 2",
                                        "quarantined: 1"]
        heads = [line for line in lines[1:] if line and not line.startswith(" ")]
        assert heads == ["Waiting for attachments:", "Held (invalid):", "Retrying:",
                         "Delivering:", "Quarantined recently:", "Sent recently:"]

        def under(head: str) -> str:
            return lines[lines.index(head) + 1]
        waiting = under("Waiting for attachments:")
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
        assert re.match(rf"  INV-1\.xml \[INV-1\] waiting since {stamp}; ", waiting)
        assert "no attachments: INV-1" in waiting
        assert "deadline 2030-01-01T00:00:00.000Z" in waiting
        assert re.match(rf"  INV-8\.xml \[INV-8\] held since {stamp}; ", under("Held (invalid):"))
        assert "INV-8/a.pdf: too big [too-large]" in under("Held (invalid):")
        retrying = under("Retrying:")
        assert re.match(rf"  INV-2\.xml \[INV-2\] retrying since {stamp}; ", retrying)
        assert "attempts 3, next 2030-01-01T00:00:05.000Z; last error: HTTP 503" in retrying
        assert under("Quarantined recently:") == "  INV-4.xml INV-4/a.pdf: too-large"
        assert re.fullmatch(rf"  INV-5\.xml \[INV-5\] at {stamp}", under("Sent recently:"))


class TestAttention:
    def test_stuck_bundles_are_listed_with_error_and_since(self) -> None:
        """A bundle in one state for over an hour is under "Needs attention"; every bundle
        that is not moving shows since when and its last error; a wait within its deadline
        and final states are not listed there."""
        now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        old, fresh = "2026-05-01T10:00:00.000Z", "2026-05-01T11:59:00.000Z"

        def b(name: str, state: str, since: str, **kw: object) -> dict:
            return {"bundle_id": None, "invoice_file": name, "invoice_ids": [], "state": state,
                    "since": since, "deadline": None, "unattached_ids": [], "attempts": 0,
                    "next_attempt_at": None, "last_error": None, "reasons": [], **kw}

        data = {"counts": {}, "bundles": [
            b("stuck.xml", "retrying", old, last_error="No space left on device"),
            b("unreadable.xml", "settling", fresh, last_error="cannot be read (Permission "
              "denied)"),
            b("waits.xml", "waiting", old, deadline="2026-05-01T13:00:00.000Z"),
            b("done.xml", "sent", old)]}
        text = render(data, now=now)
        head, _, rest = text.partition("Needs attention")
        attention = rest.split("\n\n")[0]
        assert "stuck.xml" in attention and "No space left on device" in attention
        assert "retrying since 2026-05-01T10:00:00.000Z" in attention
        assert "waits.xml" not in attention and "done.xml" not in attention
        assert "unreadable.xml" not in attention
        assert "unreadable.xml settling since 2026-05-01T11:59:00.000Z; last error: " \
               "cannot be read (Permission denied)" in text


def test_not_moving_lists_bundles_settling_with_an_error_not_those_in_flight() -> None:
    """"Not moving" is what waits for a person (an invoice file that cannot be read); a
    bundle in flight whose last try failed is retried by the daemon and is not there."""
    from datetime import UTC, datetime
    def b(name: str, state: str, error: str) -> dict:
        return {"bundle_id": None, "invoice_file": name, "invoice_ids": [], "state": state,
                "since": "2026-05-01T11:59:00.000Z", "deadline": None, "unattached_ids": [],
                "attempts": 1, "next_attempt_at": None, "last_error": error, "reasons": []}
    text = render({"counts": {}, "bundles": [
        b("locked.xml", "settling", "Permission denied"),
        b("posting.xml", "delivering", "HTTP 503 from the receiver")]},
        now=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    stuck = text.partition("Not moving")[2].split("\n\n")[0]
    assert "locked.xml" in stuck and "posting.xml" not in stuck
    # Its ids were never read: no empty "[]" after the name.
    assert "  locked.xml settling since 2026-05-01T11:59:00.000Z; last error: " \
        "Permission denied" in stuck


def test_settling_bundles_are_named_not_only_counted_and_cut_at_the_limit() -> None:
    """A bundle settling without an error is listed under "Settling" with since when —
    a stopped daemon's "settling: 3" named none of them — after those that need a
    person; the list is cut at `limit` with how many more."""
    text = render({"counts": {"settling": 3}, "bundles": [
        _row(f"S{i}.xml", "settling", "2026-05-01T11:59:00.000Z", invoice_ids=[])
        for i in range(3)] + [
        _row("locked.xml", "settling", "2026-05-01T11:00:00.000Z",
             last_error="Permission denied")]},
        limit=2, now=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    heads = [line for line in text.splitlines() if line and not line.startswith(" ")][1:]
    assert heads[-2:] == ["Not moving (last error):",
                          "Settling (read once their files stay unchanged for "
                          "settle_seconds):"]
    settling = text.partition("Settling (")[2].splitlines()[1:]
    assert settling == ["  S0.xml settling since 2026-05-01T11:59:00.000Z",
                        "  S1.xml settling since 2026-05-01T11:59:00.000Z",
                        "  … and 1 more (outboxd status --json lists them all)"]


def test_an_id_or_an_answer_with_control_characters_cannot_break_or_drive_the_terminal(
        ) -> None:
    """Invoice ids come from the invoice's XML, errors from a receiver's answer: a
    newline or an escape sequence in either is shown as \\xNN, one bundle one line."""
    from datetime import UTC, datetime
    text = render({"counts": {}, "bundles": [{
        "bundle_id": None, "invoice_file": "INV-1.xml", "invoice_ids": ["INV-1\nINV-2"],
        "state": "settling", "since": "2026-05-01T11:59:00.000Z", "deadline": None,
        "unattached_ids": [], "attempts": 0, "next_attempt_at": None,
        "last_error": "refused \x1b[2J\x9b31m", "reasons": []}]},
        now=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    [line] = [x for x in text.splitlines() if "INV-1.xml" in x]
    assert "INV-1\\x0aINV-2" in line and "\\x1b[2J\\x9b31m" in line
    assert "\x1b" not in text and "\x9b" not in text


def test_a_held_bundle_shows_its_invoice_ids_and_which_file_each_error_is_about(
        tmp_path: Path) -> None:
    """A bundle held for errors (invalid = "hold") is listed with the invoice ids of its
    file, and each error with the file it names: "INV-1/a.pdf: …", not the bare rule."""
    from helpers import drop_bundle, pdf_bytes

    from daemon.delivery.finish import evaluate
    from daemon.loop.pipeline import Pipeline
    from daemon.watching.scan import list_outbox

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    s = Settings(outbox={"path": str(outbox), "settle_seconds": 0},
                 paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 policy={"invalid": "hold"})
    s.paths.state_dir.mkdir()
    p = Pipeline(s, Journal(s.journal_path), None)  # type: ignore[arg-type]
    drop_bundle(outbox, "INV-1", {"a.pdf": b"", "b.pdf": pdf_bytes()})
    [cand] = list_outbox(s.outbox).candidates.values()
    read = p.step(cand, 1000.0).read
    assert read is not None
    p.took_read(cand.invoice.name, read, evaluate(cand, s))
    p.step(cand, 1000.0)

    [held] = collect(s)["bundles"]
    assert held["state"] == "held" and held["invoice_ids"] == ["INV-1"]
    line = render({"counts": {}, "bundles": [held]}, now=datetime.now(UTC))
    assert "INV-1/a.pdf: " in line


def test_a_held_bundle_shows_each_message_with_its_code_as_a_quarantined_one_does(
        ) -> None:
    """A held bundle's line gives each finding's code beside its message (the code is
    what docs/codes.md explains), as a quarantined bundle's line gives its codes; the same
    finding twice is still listed once with "×2"."""
    from datetime import UTC, datetime

    def b(name: str, state: str, reasons: list[dict]) -> dict:
        return {"bundle_id": "a" * 64, "invoice_file": name, "invoice_ids": ["X"],
                "state": state, "since": "2026-05-01T11:59:00.000Z", "deadline": None,
                "unattached_ids": [], "attempts": 0, "next_attempt_at": None,
                "last_error": None, "reasons": reasons}
    reasons = [{"file": "H/a.pdf", "code": "pdf-encrypted", "message": "encrypted"},
               {"file": "H.xml", "code": "einvoice-rule", "message": "BR-CO-15 broken"},
               {"file": "H.xml", "code": "einvoice-rule", "message": "BR-CO-15 broken"}]
    text = render({"counts": {}, "bundles": [b("H.xml", "held", reasons),
                                             b("Q.xml", "quarantined", reasons[:1])]},
                  now=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    [h] = [x for x in text.splitlines() if "H.xml [" in x]
    [q] = [x for x in text.splitlines() if "Q.xml [" in x]
    assert h.endswith("H/a.pdf: encrypted [pdf-encrypted]; "
                      "H.xml: BR-CO-15 broken [einvoice-rule] ×2")
    assert q.endswith("H/a.pdf: pdf-encrypted")


def test_a_rule_broken_many_times_is_listed_once_with_its_count_and_long_lists_are_cut(
        ) -> None:
    """Pre-flight gives one finding per rule broken: a quarantine lists each file and
    code once with "×N", not "einvoice-rule" ten times; a held bundle shows its first
    three messages and says how many more there are and where to see them."""
    from datetime import UTC, datetime

    def b(name: str, state: str, reasons: list[dict]) -> dict:
        return {"bundle_id": "a" * 64, "invoice_file": name, "invoice_ids": ["X"],
                "state": state, "since": "2026-05-01T11:59:00.000Z", "deadline": None,
                "unattached_ids": [], "attempts": 0, "next_attempt_at": None,
                "last_error": None, "reasons": reasons}
    rule = {"file": "Q.xml", "code": "einvoice-rule", "message": "BR-CO-15 broken"}
    other = {"file": "Q/a.pdf", "code": "pdf-encrypted", "message": "encrypted"}
    held = [{"file": "H.xml", "code": "einvoice-rule", "message": f"BR-{i} broken"}
            for i in range(5)]
    text = render({"counts": {}, "bundles": [
        b("Q.xml", "quarantined", [rule] * 10 + [other]), b("H.xml", "held", held)]},
        now=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    [q] = [x for x in text.splitlines() if "Q.xml [" in x]
    assert q.endswith("Q.xml: einvoice-rule ×10; Q/a.pdf: pdf-encrypted")
    [h] = [x for x in text.splitlines() if "H.xml [" in x]
    assert ("BR-0 broken [einvoice-rule]; H.xml: BR-1 broken [einvoice-rule]; "
            "H.xml: BR-2 broken [einvoice-rule]; … and 2 more") in h
    assert "BR-3" not in h


def test_a_file_of_thousands_of_invoices_is_one_readable_line_with_a_count() -> None:
    """A file of 3,000 invoices waiting for attachments was one line of 48,000
    characters in `outboxd status` (its ids twice over, in the brackets and after "no
    attachments"): each list names its first ten ids and how many more there are;
    --json keeps every one."""
    from datetime import UTC, datetime

    ids = [f"M-{i:04d}" for i in range(3000)]
    bundle = {"bundle_id": "a" * 64, "invoice_file": "batch.xml", "invoice_ids": ids,
              "state": "waiting", "since": "2026-05-01T11:59:00.000Z", "deadline": None,
              "unattached_ids": ids, "attempts": 0, "next_attempt_at": None,
              "last_error": None, "reasons": []}
    data = {"counts": {}, "bundles": [bundle]}
    text = render(data, now=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    [line] = [x for x in text.splitlines() if "batch.xml" in x]
    first_ten = ", ".join(ids[:10])
    assert line == (f"  batch.xml [{first_ten}, … and 2990 more] waiting since "
                    f"2026-05-01T11:59:00.000Z; no attachments: {first_ten}, … and 2990 "
                    "more; deadline none (hold)")
    assert json.loads(as_json(data))["bundles"][0]["invoice_ids"] == ids


def test_status_lists_a_folder_moved_back_without_the_shares_custom_release_file(
        settings: Settings) -> None:
    """`outboxd status` names the invoice files of a folder nothing is sent from with the
    configured `[share]` names: under invoice_patterns = ["*"] a release file Q1.go
    (release_suffix = ".go") is no invoice file to move into the outbox."""
    from helpers import write

    from daemon.configuration.config import ShareConfig
    from daemon.report.status import left_alone
    s = settings.model_copy(update={
        "outbox": settings.outbox.model_copy(update={"invoice_patterns": ["*"]}),
        "share": ShareConfig(release_suffix=".go")})
    box = s.outbox.path / "Q1--0123456789ab"
    for name in ("Q1.xml", "reason.json", "Q1.go"):
        write(box / name, b"x")
    rows = dict(left_alone(s))
    assert rows["Q1--0123456789ab/"].startswith("holds the invoice file Q1.xml, but")


def test_a_quarantined_bundle_moved_back_by_hand_is_neither_listed_nor_counted(
        settings: Settings) -> None:
    """REASON.txt offers to move a fixed bundle back by hand (retry marks its row, a move
    by hand cannot): `status` went on listing and counting it as quarantined beside its
    new row, sent. As the status page does, a quarantined row whose invoice file has
    left its folder is left out; one whose folder holds it stays."""
    quarantine = settings.outbox.path.parent / "quarantine" / "2031-05-06"
    moved, kept = quarantine / "M--aaaaaaaaaaaa", quarantine / "K--bbbbbbbbbbbb"
    moved.mkdir(parents=True)
    kept.mkdir()
    (moved / "REASON.txt").write_text("why")  # the papers stay behind
    (kept / "K.xml").write_bytes(b"<Invoice/>")
    j = Journal(settings.journal_path)
    try:
        j.create("M.xml", "quarantined", bundle_id="a" * 64, archive_dir=str(moved))
        j.create("K.xml", "quarantined", bundle_id="b" * 64, archive_dir=str(kept))
        j.create("M.xml", "sent", bundle_id="c" * 64, invoice_ids=["M"])
    finally:
        j.close()
    data = collect(settings)
    assert data["counts"]["quarantined"] == 1 and data["counts"]["sent"] == 1
    assert [(b["invoice_file"], b["state"]) for b in data["bundles"]] == [
        ("K.xml", "quarantined"), ("M.xml", "sent")]


def test_a_quarantined_bundle_out_of_its_folder_but_not_moved_back_stays_listed_and_counted(
        settings: Settings) -> None:
    """Only a bundle moved back into the outbox leaves `status`: its invoice file in the
    outbox, or a later row of it. One whose quarantine folder a clerk renamed, or whose
    quarantine/ is on a share not mounted (the folder not there at all), still waits for
    a person; it vanished from the list and the count while nothing had moved it back.
    One moved back while no daemon runs (in the outbox, no new row yet) is left out."""
    quarantine = settings.outbox.path.parent / "quarantine" / "2031-05-06"
    renamed, away, back = (quarantine / f"{n}--{c * 12}" for n, c in
                           (("R", "a"), ("A", "b"), ("B", "c")))
    renamed.mkdir(parents=True)
    (renamed / "R.xml").write_bytes(b"<Invoice/>")
    renamed.rename(quarantine / "R -- looked at by Anna")  # the clerk renames the folder
    back.mkdir()
    (settings.outbox.path / "B.xml").write_bytes(b"<Invoice/>")  # moved back by hand
    j = Journal(settings.journal_path)
    try:
        for name, folder, c in (("R.xml", renamed, "a"), ("A.xml", away, "b"),
                                ("B.xml", back, "c")):
            j.create(name, "quarantined", bundle_id=c * 64, archive_dir=str(folder))
    finally:
        j.close()
    data = collect(settings)
    assert data["counts"]["quarantined"] == 2
    assert sorted(b["invoice_file"] for b in data["bundles"]) == ["A.xml", "R.xml"]
    assert all(b["state"] == "quarantined" for b in data["bundles"])


def test_a_stranded_claim_says_it_is_tried_again_by_itself_not_next_none(
        settings: Settings) -> None:
    """A claim kept `claiming` because its work folder is out of sight (stranded.py), or a
    bundle whose move into sent/ keeps failing, is retrying with no time set for its next
    try (the rescan, the move back-off): status says it is tried again by itself, with
    why, never "next None"."""
    j = Journal(settings.journal_path)
    try:
        j.create("INV-9.xml", CLAIMING, bundle_id="9" * 64, invoice_ids=["INV-9"],
                 last_error="its work folder /x is not there (is the share mounted?)")
        j.create("INV-8.xml", DELIVERED, bundle_id="8" * 64, invoice_ids=["INV-8"],
                 attempts=1, last_error="No space left on device")
    finally:
        j.close()
    text = render(collect(settings))
    retrying = text.partition("Retrying:")[2].split("\n\n")[0]
    assert "INV-9.xml" in retrying and "INV-8.xml" in retrying
    assert "None" not in text
    assert "next try by itself (no set time)" in retrying
    assert "is the share mounted?" in retrying and "No space left on device" in retrying


def test_status_lists_folders_without_an_invoice_file_and_hints_the_close_one_at_its_wait(
        settings: Settings) -> None:
    """`outboxd status` lists the folders in the outbox without an invoice file (not a
    sidecar, a dot-folder or a look-alike told in its bundle's errors) with since when,
    and the waiting line of an invoice whose name one such folder is close to says so;
    --json's `lone_folders` has each with `folder`, `since` and `close_to`."""
    from helpers import write

    from daemon.report.status import outbox_view
    from daemon.report.statusjson import lone_json
    fill(settings)
    box = settings.outbox.path
    write(box / "INV-1.xml", b"<x/>")
    for folder in ("INV-11", ".outboxd", "INV-1 (1)", "Misc"):
        (box / folder).mkdir()
    data = collect(settings)
    view = outbox_view(settings, data)
    assert [x.name for x in view.lone] in (["INV-11", "Misc"], ["Misc", "INV-11"])
    assert view.near == {"INV-1.xml": "a folder INV-11/ has no invoice file; if it holds "
                         "INV-1's attachments, rename it to INV-1/"}
    text = render(data, view=view)
    assert ("INV-1.xml [INV-1] waiting since" in text and "deadline 2030-01-01T00:00:00.000Z; "
            "a folder INV-11/ has no invoice file; if it holds INV-1's attachments, rename "
            "it to INV-1/") in text
    assert "Folders without an invoice file (the status page lists them too):" in text
    assert re.search(r"^  INV-11/ since \S+Z; named close to INV-1.xml, which waits for "
                     r"attachments$", text, re.M)
    shape = json.loads(as_json({**data, "lone_folders": lone_json(view.lone)}))
    by_name = {x["folder"]: x for x in shape["lone_folders"]}
    assert set(by_name) == {"INV-11", "Misc"}
    assert set(by_name["INV-11"]) == {"folder", "since", "close_to"}
    assert by_name["INV-11"]["close_to"] == ["INV-1.xml"] and by_name["Misc"]["close_to"] == []


def test_a_folder_close_to_a_waiting_invoice_is_listed_beside_a_stray_shown_alike(
        settings: Settings) -> None:
    """A folder named INV-1 + U+202E (close to the waiting INV-1.xml, no invoice file) is
    listed and hinted at INV-1.xml's wait, although a folder named with the six characters
    `\\u202e` typed, which holds invoice files (a stray, told with its own fix), is shown
    by the same text: the folders told as strays are known by their names on disk. Before,
    they were known by their names as shown, and the folder close to INV-1.xml was taken
    for the stray and named nowhere."""
    from helpers import write

    from daemon.report.status import outbox_view
    fill(settings)
    box = settings.outbox.path
    (box / "INV-1\u202e").mkdir()
    write(box / "INV-1\\u202e" / "Q1.xml", b"<x/>")
    (box / "INV-1\\u202e" / "Q1").mkdir()
    data = collect(settings)
    view = outbox_view(settings, data)
    assert [x.name for x in view.lone] == ["INV-1\\u202e"]
    assert view.near == {"INV-1.xml": "a folder INV-1\\u202e/ has no invoice file; if it "
                         "holds INV-1's attachments, rename it to INV-1/"}
    assert [name for name, why in view.left if "holds the invoice file Q1.xml" in why
            ] == ["INV-1\\u202e/"]


def test_windows_system_folders_and_caches_in_the_outbox_are_not_listed(
        settings: Settings) -> None:
    """A recycle bin, restore points and a thumbnail cache Windows made in the outbox
    (`$RECYCLE.BIN/`, `System Volume Information/`, `ehthumbs.db`) are litter like
    Thumbs.db: not listed as folders without an invoice file (a clerk told to give
    `$RECYCLE.BIN` an invoice file), nor as files left alone; a clerk's folder and file
    still are. So is the `@eaDir/` a Synology NAS makes in every folder it indexes."""
    from helpers import write

    from daemon.report.status import outbox_view
    fill(settings)
    box = settings.outbox.path
    for folder in ("$RECYCLE.BIN", "System Volume Information", "@eaDir", "Misc"):
        (box / folder).mkdir()
    write(box / "ehthumbs.db", b"cache")
    write(box / "hours.xlsx", b"sheet")
    data = collect(settings)
    view = outbox_view(settings, data)
    assert [x.name for x in view.lone] == ["Misc"]
    text = render(data, view=view)
    assert "hours.xlsx" in text
    assert "RECYCLE" not in text and "System Volume" not in text and "ehthumbs" not in text
    assert "eaDir" not in text


def test_status_names_the_exact_release_file_for_a_near_miss_of_one(settings: Settings
                                                                    ) -> None:
    """`outboxd status` lists a clerk's INV-1.send-anyway.txt (Windows hid the .txt) with
    the name that would release INV-1.xml, as the status page does, not as a stray file
    that belongs in a sidecar."""
    from helpers import write

    from daemon.report.status import outbox_view
    box = settings.outbox.path
    write(box / "INV-1.xml", b"<x/>")
    write(box / "INV-1.send-anyway.txt", b"")
    write(box / "notes.txt", b"x")
    left = dict(outbox_view(settings).left)
    assert "rename it to INV-1.send-anyway " in left["INV-1.send-anyway.txt"]
    assert "release" not in left["notes.txt"]


def test_status_lists_a_marker_named_with_the_invoice_files_extension(tmp_path: Path
                                                                      ) -> None:
    """M-3.xml.ready leaves M-3.xml waiting for M-3.ready: listed with the name it needs,
    as the page lists it; the real marker N-1.ready is not."""
    from helpers import write

    from daemon.report.status import outbox_view
    box = tmp_path / "outbox"
    for name in ("M-3.xml", "N-1.xml"):
        write(box / name, b"<x/>")
    for name in ("M-3.xml.ready", "N-1.ready"):
        write(box / name, b"")
    s = Settings(outbox=OutboxConfig(path=box, completion="marker"),
                 paths=PathsConfig(state_dir=tmp_path), delivery=DeliveryConfig(
                     url="http://127.0.0.1:9/x"))
    left = dict(outbox_view(s).left)
    assert "N-1.ready" not in left
    assert "M-3.xml still waits for its marker — rename it to M-3.ready " in left[
        "M-3.xml.ready"]


def test_status_lists_markers_where_none_is_used_and_errors_files_beside_no_invoice(
        settings: Settings) -> None:
    """As the page does (found by bench.fuzznames): under completion = "settle" a
    NAME.ready is told that it does nothing; NOTES.errors.txt, beside no invoice file
    NOTES.*, that it explains nothing; INV-1.errors.txt beside INV-1.xml is outboxd's, and
    so is GONE-2.errors.txt while the journal's bundle GONE-2.xml is being delivered.
    Files left alone of a stray's stem — NOTES.Send-Anyway (seed 8 of the fuzzer), an
    invoice file with a bad name (seed 49) — do not make it outboxd's: neither is held."""
    from helpers import write

    from daemon.report.status import outbox_view
    box = settings.outbox.path
    write(box / "INV-1.xml", b"<x/>")
    write(box / "BAD\x1b.xml", b"<x/>")
    for name in ("INV-1.ready", "INV-1.errors.txt", "NOTES.errors.txt", "GONE-2.errors.txt",
                 "NOTES.Send-Anyway", "BAD\x1b.errors.txt"):
        write(box / name, b"")
    data = {"bundles": [{"invoice_file": "GONE-2.xml", "state": "delivering"}]}
    left = dict(outbox_view(settings, data).left)
    assert "does not wait for markers" in left["INV-1.ready"]
    assert "no invoice file of that name" in left["NOTES.errors.txt"]
    assert "no invoice file of that name" in left["BAD\\x1b.errors.txt"]
    assert "INV-1.errors.txt" not in left and "GONE-2.errors.txt" not in left


def test_status_lists_the_release_files_that_do_nothing_as_the_page_does(
        settings: Settings) -> None:
    """The page lists INV-9.send-anyway (no invoice file INV-9.*) and INV-1.send-anyway
    beside the held INV-1.xml under "Release files that do nothing", with why; the admin's
    `outboxd status` did not list them at all. It does, with the page's words; a release
    beside a waiting invoice (being released) is not listed."""
    from helpers import write

    from daemon.loop.idlefiles import idle_releases
    from daemon.report.status import outbox_view
    box = settings.outbox.path
    for name in ("INV-1.xml", "INV-2.xml"):
        write(box / name, b"<x/>")
    for name in ("INV-1.send-anyway", "INV-2.send-anyway", "INV-9.send-anyway"):
        write(box / name, b"")
    j = Journal(settings.journal_path)
    try:
        j.create("INV-1.xml", "held", bundle_id="a" * 64, invoice_ids=["INV-1"])
        j.create("INV-2.xml", "waiting", bundle_id="b" * 64, invoice_ids=["INV-2"],
                 unattached_ids=["INV-2"])
    finally:
        j.close()
    data = collect(settings)
    view = outbox_view(settings, data)
    page = idle_releases(["INV-1.send-anyway", "INV-2.send-anyway", "INV-9.send-anyway"],
                         settings.share, ["INV-1.xml", "INV-2.xml"],
                         {"INV-1.xml": "held", "INV-2.xml": "waiting"})
    assert view.idle == page and [i.name for i in page] == ["INV-1.send-anyway",
                                                            "INV-9.send-anyway"]
    text = render(data, view=view)
    assert "\nRelease files that do nothing (the status page lists them too):\n" in text
    for i in page:
        assert f"  {i.name}: {i.why}" in text


def test_a_sent_invoice_dropped_again_with_its_release_is_still_settling_not_released(
        settings: Settings) -> None:
    """outboxd is stopped; INV-5.xml was sent (its journal row says so) and a clerk drops
    it again with INV-5.send-anyway. The file in the outbox is a new version the daemon
    has not looked at yet: `status` says the release applies once it has settled, not
    that there is nothing to release (which is the sent row's state, not the file's)."""
    from helpers import write

    from daemon.report.status import outbox_view
    box = settings.outbox.path
    j = Journal(settings.journal_path)
    try:
        j.create("INV-5.xml", "sent", bundle_id="e" * 64, invoice_ids=["INV-5"])
    finally:
        j.close()
    write(box / "INV-5.xml", b"<x/>")
    write(box / "INV-5.send-anyway", b"")
    data = collect(settings)
    [idle] = outbox_view(settings, data).idle
    assert (idle.name, idle.why) == (
        "INV-5.send-anyway", "INV-5.xml is still settling; the release applies once it has")


def test_status_names_the_exact_marker_for_a_near_miss_of_one(tmp_path: Path) -> None:
    """Under completion = "marker" the row of INV-1.xml says it waits for INV-1.ready; a
    clerk who makes it on Windows gets INV-1.ready.txt, which is listed with the name
    the bundle waits for instead of as a stray file that belongs in a sidecar. Without
    markers such a name is only a stray file."""
    from helpers import write

    from daemon.report.status import outbox_view
    box = tmp_path / "outbox"
    write(box / "INV-1.xml", b"<x/>")
    write(box / "INV-1.ready.txt", b"")

    def left(completion: str) -> str:
        s = Settings(outbox=OutboxConfig(path=box, completion=completion),
                     paths=PathsConfig(state_dir=tmp_path),
                     delivery=DeliveryConfig(url="http://127.0.0.1:9/x"))
        return dict(outbox_view(s).left)["INV-1.ready.txt"]
    assert "INV-1.xml still waits for its marker — rename it to INV-1.ready " in left("marker")
    assert "marker" not in left("settle")


def test_status_lists_the_outbox_root_once_for_release_files_and_markers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under completion = "marker" `outboxd status` listed the outbox root once for the
    release files and again for the markers (20,000 names twice a run); one listing now
    gives both, and each is still told: an idle release and a marker's near miss."""
    from helpers import count_listings, write

    from daemon.loop import idlefiles
    from daemon.report.status import outbox_view
    box = tmp_path / "outbox"
    write(box / "M-3.xml", b"<x/>")
    for name in ("M-3.xml.ready", "Z-9.send-anyway"):
        write(box / name, b"")
    s = Settings(outbox=OutboxConfig(path=box, completion="marker"),
                 paths=PathsConfig(state_dir=tmp_path), delivery=DeliveryConfig(
                     url="http://127.0.0.1:9/x"))
    listed = count_listings(monkeypatch, idlefiles)
    view = outbox_view(s)
    assert listed == [str(box)]
    assert "rename it to M-3.ready " in dict(view.left)["M-3.xml.ready"]
    assert [i.name for i in view.idle] == ["Z-9.send-anyway"]


def _row(name: str, state: str, since: str, **kw: object) -> dict:
    """A bundle as collect() lists it, for render()."""
    return {"bundle_id": "a" * 64, "invoice_file": name, "invoice_ids": ["X"], "state": state,
            "since": since, "deadline": None, "unattached_ids": [], "attempts": 0,
            "next_attempt_at": None, "last_error": None, "reasons": [], **kw}


def test_needs_attention_begins_after_an_hour_in_one_state_not_at_it() -> None:
    """"Over an hour" (docs/commands.md): a bundle retrying for exactly 3600 s is not yet
    under "Needs attention"; one second more and it is."""
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    text = render({"counts": {}, "bundles": [
        _row("hour.xml", "retrying", "2026-05-01T11:00:00.000Z"),
        _row("more.xml", "retrying", "2026-05-01T10:59:59.000Z")]}, now=now)
    attention = text.partition("Needs attention")[2].split("\n\n")[0]
    assert "more.xml" in attention and "hour.xml" not in attention


def test_lists_cut_at_their_limit_say_more_only_when_there_is_more() -> None:
    """A held bundle with exactly three messages shows all three with no "… and 0
    more"; exactly `limit` folders without an invoice file are listed with no "… and 0
    more" line either (one more, and the line says 1)."""
    from daemon.report.status import OutboxView
    from daemon.watching.lonefolders import LoneFolder
    held = [{"file": "H.xml", "code": "einvoice-rule", "message": f"BR-{i} broken"}
            for i in range(3)]
    data = {"counts": {}, "bundles": [_row("H.xml", "held", "2026-05-01T11:59:00.000Z",
                                           reasons=held)]}
    lone = [LoneFolder(f"F{i}", "2026-05-01T11:00:00.000Z", ()) for i in range(4)]
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    text = render(data, limit=4, now=now, view=OutboxView([], lone, {}))
    assert "BR-2 broken [einvoice-rule]" in text and "more" not in text
    text = render(data, limit=3, now=now, view=OutboxView([], lone, {}))
    assert "  … and 1 more (outboxd status --json lists them all)" in text


def test_two_files_left_alone_shown_alike_are_two_lines_each_with_its_why(
        settings: Settings, tmp_path: Path) -> None:
    """A symbolic link named X\\u202e.xml (the six characters typed) and a FIFO named
    X + U+202E + .xml: `outboxd status` lists both, shown alike as X\\u202e.xml, each
    with its own why, and no raw U+202E reaches the terminal. Keyed as shown, one line
    was left, with the FIFO's why. (`status --json` lists no files left alone: the
    page's are text only.)"""
    import os

    from daemon.report.status import outbox_view
    box = settings.outbox.path
    (box / "X\\u202e.xml").symlink_to(tmp_path / "elsewhere.xml")
    os.mkfifo(box / "X\u202e.xml")
    data = collect(settings)
    view = outbox_view(settings, data)
    whys = sorted(why for _, why in view.left)
    assert len(whys) == 2 and whys[0].startswith("is a FIFO")
    assert whys[1].startswith("is a symbolic link")
    text = render(data, view=view)
    lines = [x for x in text.splitlines() if x.startswith("  X\\u202e.xml: ")]
    assert len(lines) == 2 and "\u202e" not in text
    assert "is a FIFO" in "".join(lines) and "is a symbolic link" in "".join(lines)


def test_status_tells_a_file_in_a_quarantined_invoice_files_sidecar_place_what_it_is(
        settings: Settings) -> None:
    """`outboxd status` lists the file INV-SY1, which got INV-SY1.xml quarantined
    (`not-a-folder`) and stayed in the outbox, as the page does: named like the folder of
    attachments of the quarantined INV-SY1.xml, where that waits, and what to do — not
    "an attachment goes into the folder of its invoice file"."""
    from helpers import write

    from daemon.report.status import outbox_view
    folder = settings.quarantine_dir / "2026-12-04" / "INV-SY1--aaaaaaaaaaaa"
    write(folder / "INV-SY1.xml", b"<Invoice/>")
    j = Journal(settings.journal_path)
    try:
        j.create("INV-SY1.xml", "quarantined", archive_dir=str(folder), reasons=[
            {"code": "not-a-folder", "file": "INV-SY1", "message": "not a folder"}])
    finally:
        j.close()
    write(settings.outbox.path / "INV-SY1", b"an attachment")
    data = collect(settings)
    said = dict(outbox_view(settings, data).left)["INV-SY1"]
    shown = f"{settings.quarantine_dir.name}/2026-12-04/INV-SY1--aaaaaaaaaaaa"
    assert said.startswith(f"named like the folder of attachments of INV-SY1.xml, which was "
                           f"quarantined (in {shown}), but it is a file: a folder of "
                           "attachments must be a real folder")
    assert said.endswith("make a real folder INV-SY1 holding them in its place")
    assert f"  INV-SY1: {said}" in render(data, view=outbox_view(settings, data))


def test_json_lists_a_lone_folder_by_its_exact_name_and_one_not_utf8_as_shown(
        settings: Settings) -> None:
    """`status --json`'s `lone_folders` gives a folder whose name holds a control
    character by its exact name (the character as JSON's own escape, so the output stays
    safe on a terminal and a parser gives back the name on disk — a script can find it);
    before, it gave the name as shown (`\\x0d` as four characters), which no folder on
    disk has. A name that is not UTF-8 cannot be carried by JSON text: it is shown."""
    from daemon.report.status import outbox_view
    from daemon.report.statusjson import lone_json
    fill(settings)
    box = settings.outbox.path
    os.mkdir(box / "sca\rn-255")
    os.mkdir(bytes(box) + b"/r\xe5w")
    view = outbox_view(settings, collect(settings))
    text = as_json({"lone_folders": lone_json(view.lone)})
    assert "\r" not in text  # JSON writes it as its own escape
    folders = {x["folder"] for x in json.loads(text)["lone_folders"]}
    assert folders == {"sca\rn-255", "r\\udce5w"}
    assert (box / "sca\rn-255").is_dir()


def test_status_says_the_folder_of_a_refused_invoice_file_is_its_sidecar(
        settings: Settings) -> None:
    """INV-1.xml is a symbolic link (left alone) and INV-1/ holds its attachments: the
    line of INV-1/ among the folders without an invoice file says it is the sidecar of
    INV-1.xml, which is left alone and listed below with why, as the status page and
    `outboxd check` say; a folder of no such file says nothing of the kind."""
    from helpers import write

    from daemon.report.status import outbox_view
    fill(settings)
    box = settings.outbox.path
    write(box / "INV-1" / "a.pdf", b"%PDF-1.4")
    (box / "INV-1.xml").symlink_to(box.parent / "elsewhere.xml")
    (box / "Misc").mkdir()
    data = collect(settings)
    text = render(data, view=outbox_view(settings, data))
    assert re.search(r"^  INV-1/ since \S+Z; the sidecar of INV-1.xml, which outboxd leaves "
                     r"alone \(listed below, with why\): mend that file$", text, re.M)
    assert re.search(r"^  Misc/ since \S+Z$", text, re.M)
    assert re.search(r"^  INV-1.xml: .*symbolic link", text, re.M)


def test_a_bundle_a_killed_retry_left_whole_in_quarantine_is_shown_quarantined(
        settings: Settings, tmp_path: Path) -> None:
    """A retry killed between its journal mark and its move: the row says `gone`
    (retried), the bundle lies whole in quarantine/. Until the daemon's next look
    records it again, `status` shows it as that look will — quarantined, since its
    quarantine, counted — and writes nothing; while a retry holds its folder (moving it
    now) it is left out, as before."""
    import fcntl

    from daemon.journal import RETRIED_DETAIL
    folder = tmp_path / "quarantine" / "2026-12-01" / "INV-8--888888888888"
    folder.mkdir(parents=True)
    (folder / "INV-8.xml").write_bytes(b"<Invoice/>")
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    j = Journal(settings.journal_path)
    try:
        row_id = j.create("INV-8.xml", "quarantined", bundle_id="8" * 64, since=since,
                          archive_dir=str(folder), reasons=[
                              {"code": "too-large", "file": "INV-8/a.pdf", "message": "big"}])
        j.transition(row_id, "gone", RETRIED_DETAIL)
    finally:
        j.close()
    before = settings.journal_path.read_bytes()
    data = collect(settings)
    [shown] = [b for b in data["bundles"] if b["invoice_file"] == "INV-8.xml"]
    assert (shown["state"], shown["folder"]) == ("quarantined", str(folder))
    assert [r["code"] for r in shown["reasons"]] == ["too-large"]
    assert data["counts"]["quarantined"] == 1
    assert settings.journal_path.read_bytes() == before

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = collect(settings)
    finally:
        os.close(fd)
    assert "INV-8.xml" not in [b["invoice_file"] for b in data["bundles"]]
    assert data["counts"]["quarantined"] == 0
