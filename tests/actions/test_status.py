"""`outboxd status` text: sections, capped at the 20 most recent sent / quarantined."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Env
from helpers import outboxd_with
from hungshare import hung_share

from daemon.claiming.foreign import foreign_work
from daemon.cli import main
from daemon.journal import Journal
from daemon.journal.records import iso_of


def test_status_text_shows_20_most_recent_sent_and_how_many_more(env: Env, capsys) -> None:
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    for n in range(25):
        j.create(f"S-{n:02}.xml", "sent", bundle_id=f"{n:064x}", invoice_ids=[f"S-{n:02}"])
    j.create("Q.xml", "quarantined", reasons=[{"code": "empty", "file": "Q/a.pdf",
                                               "message": "is empty"}])
    j.create("W.xml", "waiting", unattached_ids=["W"])
    j.close()
    assert main(["status", "-c", str(env.config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("settling: 0  waiting: 1")
    sent = out.split("Sent recently:")[1]
    assert "S-24.xml" in sent and "S-05.xml" in sent and "S-04.xml" not in sent
    assert "… and 5 more" in sent
    assert "Waiting for attachments:" in out and "Q.xml" in out

    assert main(["status", "-c", str(env.config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"counts", "bundles", "lone_folders", "foreign_work_folders",
                         "outbox_listed", "outbox_problem", "daemon"} and len(data["bundles"]) == 27
    assert data["outbox_listed"] is True and data["outbox_problem"] is None
    assert set(data["bundles"][0]) == {"bundle_id", "invoice_file", "invoice_ids", "state",
                                       "since", "deadline", "unattached_ids", "attempts",
                                       "next_attempt_at", "last_error", "reasons",
                                       "receipt_id", "folder", "answer"}


def test_status_without_a_journal_says_so(env: Env, capsys) -> None:
    """No journal at the configured state_dir (the daemon never ran with it, or the path
    is mistyped): the counts are zero and a line on stderr says why, exit 0."""
    env.write_config("http://127.0.0.1:9/bundles")
    assert main(["status", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert "no journal at" in captured.err and "state_dir" in captured.err
    assert captured.out.startswith("settling: 0")
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    daemon = json.loads(capsys.readouterr().out)["daemon"]
    assert daemon["running"] is None and "no journal at" in daemon["notes"][0]


def test_a_negative_limit_is_a_usage_error(env: Env, capsys) -> None:
    """`--limit -1` is refused with exit 2, instead of counting "… and 3 more" of two."""
    env.write_config("http://127.0.0.1:9/bundles")
    assert main(["status", "-c", str(env.config), "--limit", "-1"]) == 2
    assert "below 0" in capsys.readouterr().err


def edit_by_hand(env: Env, *updates: tuple[str, int]) -> None:
    """Change the journal's rows as a person with sqlite3 might: (statement, row id)."""
    import sqlite3
    db = sqlite3.connect(env.state / "journal.sqlite3")
    for sql, row in updates:
        db.execute(sql, (row,))
    db.commit()
    db.close()


def status_of(env: Env, capsys) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """`status` as text and `status --json` (its bundles by invoice file); each exits 0
    without a traceback."""
    assert main(["status", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    return captured.out, {b["invoice_file"]: b for b in out["bundles"]}


def test_rows_with_unreadable_ids_or_answer_are_listed_as_such_not_a_traceback(
        env: Env, capsys) -> None:
    """A journal edited by hand: invoice ids that are not a JSON list of strings, an
    answer that is not an object. `status` lists the row with its ids shown as unreadable
    (text and --json), exit 0, no traceback; the row's answer reads as one saying so."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    row = j.create("W.xml", "waiting", invoice_ids=["W-1"], unattached_ids=["W-1"])
    j.close()
    edit_by_hand(env, ("UPDATE bundles SET invoice_ids = '[\"W-1\"', unattached_ids = '{}', "
                       "response = '[1]' WHERE id = ?", row))
    text, bundles = status_of(env, capsys)
    assert "  W.xml [(unreadable in the journal)] waiting since " in text
    assert "no attachments: (unreadable in the journal)" in text
    b = bundles["W.xml"]
    assert b["invoice_ids"] == b["unattached_ids"] == ["(unreadable in the journal)"]
    j = Journal(env.state / "journal.sqlite3")
    assert "unreadable" in (j.get(row).response or {})
    j.close()


def test_rows_with_unreadable_reasons_are_listed_as_such_not_a_traceback(
        env: Env, capsys) -> None:
    """A journal edited by hand: reasons that are not JSON, or JSON that is no list of
    findings. `status` (text and --json) lists each such row with one reason that says
    so, [unreadable-reasons], and the other rows as ever; exit 0, no traceback."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    bad_json = j.create("H.xml", "held", reasons=[{"code": "empty", "file": "H/a.pdf",
                                                   "message": "is empty"}])
    bad_shape = j.create("Q.xml", "quarantined", reasons=[])
    j.create("R.xml", "quarantined", reasons=[{"code": "empty", "file": "R/b.pdf",
                                               "message": "is empty"}])
    j.close()
    edit_by_hand(env, ("UPDATE bundles SET reasons = '[{\"code\": \"empty\"' WHERE id = ?",
                       bad_json), ("UPDATE bundles SET reasons = '[1]' WHERE id = ?", bad_shape))
    text, bundles = status_of(env, capsys)
    assert "  Q.xml Q.xml: unreadable-reasons" in text
    assert "  R.xml R/b.pdf: empty" in text
    held = text.split("Held (invalid):")[1]
    assert "H.xml: the journal's reasons for this bundle cannot be read" in held
    assert [r["code"] for r in bundles["H.xml"]["reasons"]] == ["unreadable-reasons"]
    assert [r["code"] for r in bundles["Q.xml"]["reasons"]] == ["unreadable-reasons"]
    assert bundles["R.xml"]["reasons"][0]["file"] == "R/b.pdf"


def test_status_says_when_the_state_dir_has_no_room_for_the_journal(
        env: Env, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A full (or read-only) disk under state_dir: the daemon cannot record anything, so
    no count changes and the counts read as an idle daemon. A line on stderr says the
    state dir is full, that nothing moves, and what to do; the counts are still printed,
    exit 0. With room to spare, no such line."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    Journal(env.state / "journal.sqlite3").close()
    real = os.statvfs(env.state)

    def full(path: Any) -> Any:
        fields = list(real)
        fields[4] = 0  # f_bavail: what the daemon's unprivileged user may still use
        return os.statvfs_result(fields)
    monkeypatch.setattr("daemon.actions.status.os.statvfs", full)
    assert main(["status", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert f"the state dir {env.state} has only 0 KB free" in captured.err
    assert "nothing in the outbox moves" in captured.err and "free space" in captured.err
    assert captured.out.startswith("settling: 0")
    # A check that reads only --json sees it too, under "daemon".
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    [note] = json.loads(capsys.readouterr().out)["daemon"]["notes"]
    assert note.startswith(f"the state dir {env.state} has only 0 KB free")
    monkeypatch.undo()
    assert main(["status", "-c", str(env.config)]) == 0
    assert "KB free" not in capsys.readouterr().err
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["daemon"]["notes"] == []


def test_the_text_lists_what_in_the_outbox_nothing_is_sent_from_as_the_page_does(
        env: Env, capsys) -> None:
    """The admin reads `status`, not the page: a file that is no invoice file, an invoice
    file that cannot be used, and attachments that came after their invoice file was sent
    are listed with why, as on the page. `--json` keeps its keys (docs/operations.md),
    these among none of them: attachments that came late are no lone folder."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("L1.xml", "sent", bundle_id="a" * 64, invoice_ids=["L1"])
    j.close()
    (env.outbox / "hours.xlsx").write_bytes(b"PK")
    os.symlink("/etc/hostname", env.outbox / "INV-9.xml")
    (env.outbox / "L1").mkdir()
    (env.outbox / "L1" / "timesheet.pdf").write_bytes(b"%PDF-1.4")
    assert main(["status", "-c", str(env.config)]) == 0
    text = capsys.readouterr().out.split("In the outbox, nothing sent from these")[1]
    assert "  INV-9.xml: is a symbolic link" in text
    assert "  L1/: named as the attachments of L1.xml, which was sent at" in text
    assert "  hours.xlsx: not an invoice file (only names like *.xml, *.pdf are read" in text
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # L1/ is listed as nothing sent from, not as a folder waiting for its invoice file
    assert set(data) == {"counts", "bundles", "lone_folders", "foreign_work_folders",
                         "outbox_listed", "outbox_problem", "daemon"}
    assert data["lone_folders"] == [] and data["outbox_listed"] is True


def test_a_journal_found_damaged_after_its_counts_were_read_is_said_beside_what_was_read(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal found damaged by the read of the outbox's lists (here damaged just
    after the counts were read, as a daemon's checkpoint into a broken file may do):
    status prints the counts and the outbox's lists as far as they go without it, says
    on stderr that the journal is damaged and to move it away, and exits 1 — it ended
    with that one line and nothing else."""
    from daemon.report import status

    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    path = env.state / "journal.sqlite3"
    j = Journal(path)
    for n in range(200):
        j.create(f"S-{n:03}.xml", "sent", bundle_id=f"{n:064x}", invoice_ids=[f"S-{n:03}"])
    j.close()
    (env.outbox / "hours.xlsx").write_bytes(b"PK")
    (env.outbox / "S-001").mkdir()  # came late: asks the journal which invoice file was sent
    (env.outbox / "S-001" / "timesheet.pdf").write_bytes(b"%PDF-1.4")
    real_collect = status.collect

    def collect_then_damage(settings: Any, wait: Any = None) -> dict[str, Any]:
        data = real_collect(settings, wait)
        size = path.stat().st_size
        with path.open("r+b") as f:  # every page but the first: no valid page left
            f.seek(4096)
            f.write(b"\xff" * (size - 4096))
        return data
    monkeypatch.setattr(status, "collect", collect_then_damage)
    assert main(["status", "-c", str(env.config)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("settling: 0  waiting: 0  held: 0  delivering: 0  retrying: 0  "
                          "sent: 200")
    # S-001/ without the journal's word that S-001.xml was sent: a folder without one.
    assert "Folders without an invoice file" in out and "\n  S-001/ since " in out
    text = out.split("In the outbox, nothing sent from these")[1]
    assert "  hours.xlsx: not an invoice file" in text
    assert f"outboxd: the journal {path} is damaged (" in err and "move it away" in err


def test_reasons_an_older_outboxd_recorded_without_invoice_id_show_it_as_null(
        env: Env, capsys) -> None:
    """A journal an outboxd before reasons named their invoice wrote (an upgrade): its
    findings have no `invoice_id`. `status --json` gives each one `invoice_id: null`
    (about the whole file, as far as anyone can tell), so that a script reading the
    documented four keys of every reason does not fail on the rows from before."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("Q.xml", "quarantined", invoice_ids=["Q"], reasons=[])
    j.close()
    edit_by_hand(env, ("UPDATE bundles SET reasons = '[{\"code\": \"unattached-invoice\", "
                       "\"file\": \"Q.xml\", \"message\": \"had no attachments\"}]' "
                       "WHERE id = ?", 1))
    text, bundles = status_of(env, capsys)
    assert "Q.xml: unattached-invoice" in text
    assert bundles["Q.xml"]["reasons"] == [{"code": "unattached-invoice", "file": "Q.xml",
                                            "message": "had no attachments",
                                            "invoice_id": None}]


def test_a_row_whose_reasons_cannot_be_read_has_the_four_keys_too(env: Env, capsys) -> None:
    """The one reason shown for reasons that cannot be read carries `invoice_id: null`
    like every other finding (it is about the whole file)."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    row = j.create("Q.xml", "quarantined", reasons=[])
    j.close()
    edit_by_hand(env, ("UPDATE bundles SET reasons = '[1]' WHERE id = ?", row))
    _, bundles = status_of(env, capsys)
    [reason] = bundles["Q.xml"]["reasons"]
    assert reason["code"] == "unreadable-reasons" and reason["invoice_id"] is None


def test_a_name_with_a_right_to_left_override_is_escaped_in_the_text_exact_in_json(
        env: Env, capsys) -> None:
    """An invoice file named "INV-7" + U+202E + "lmx.pdf" would read "INV-7fdp.xml" on a
    terminal (and its last error may carry one too): the text shows each bidirectional
    control as \\u202e; `--json` keeps the exact name, which a script needs to find the
    file."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    name = "INV-7\u202elmx.pdf"
    j = Journal(env.state / "journal.sqlite3")
    j.create(name, "waiting", invoice_ids=["INV-7"], unattached_ids=["INV-7\u2066"])
    j.close()
    assert main(["status", "-c", str(env.config)]) == 0
    out = capsys.readouterr().out
    assert "  INV-7\\u202elmx.pdf [INV-7] waiting since" in out
    assert "no attachments: INV-7\\u2066;" in out
    assert "\u202e" not in out and "\u2066" not in out
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    [bundle] = json.loads(capsys.readouterr().out)["bundles"]
    assert bundle["invoice_file"] == name and bundle["unattached_ids"] == ["INV-7\u2066"]


def test_sent_and_quarantined_are_listed_most_recent_first_also_under_the_limit(
        env: Env, capsys) -> None:
    """Under the limit the sent list came in journal order (when each file was first
    seen): a bundle that waited and went out last sat above ones sent long before it,
    while over the limit the same list was most recent first. Now always most recent
    first."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    now = datetime.now(UTC)
    for name, hours_ago in (("LATE.xml", 1), ("EARLY.xml", 3), ("MID.xml", 2)):
        j.create(name, "sent", since=iso_of(now - timedelta(hours=hours_ago)),
                 bundle_id=name.ljust(64, "0"), invoice_ids=[name])
    j.close()
    assert main(["status", "-c", str(env.config)]) == 0
    sent = capsys.readouterr().out.split("Sent recently:")[1].splitlines()
    assert [line.split()[0] for line in sent if line.strip()] == [
        "LATE.xml", "MID.xml", "EARLY.xml"]


def test_bundles_being_delivered_are_listed_with_since_when(env: Env, capsys) -> None:
    """The counts said "delivering: 1" and no section said which bundle, nor since when
    (the status page lists them under "Being sent"): a receiver that holds an upload
    showed nowhere until an hour made it "Needs attention". They are now listed."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    since = iso_of(datetime.now(UTC) - timedelta(minutes=5))
    j.create("D-1.xml", "delivering", since=since, invoice_ids=["D-1"], attempts=1)
    j.close()
    assert main(["status", "-c", str(env.config)]) == 0
    out = capsys.readouterr().out
    assert "delivering: 1" in out
    assert f"Delivering:\n  D-1.xml [D-1] delivering since {since}" in out


@pytest.mark.parametrize(("policy", "then"), [
    ("warn", ", then sent without them, with a warning"), ("quarantine", ", then quarantined")])
def test_a_waiting_bundle_says_what_happens_at_its_deadline(env: Env, capsys, policy: str,
                                                           then: str) -> None:
    """"deadline 2026-…" alone left a helpdesk asking whether the invoice will go: the
    line now says what [policy] unattached does then."""
    env.write_config("http://127.0.0.1:9/bundles", policy={"unattached": policy})
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("W.xml", "waiting", invoice_ids=["W"], unattached_ids=["W"],
             deadline="2030-01-01T00:00:00.000Z")
    j.close()
    assert main(["status", "-c", str(env.config)]) == 0
    out = capsys.readouterr().out
    assert f"no attachments: W; deadline 2030-01-01T00:00:00.000Z{then}\n" in out + "\n"


def test_status_reports_from_the_journal_when_the_outbox_is_not_mounted(
        env: Env, capsys) -> None:
    """The outbox's share not mounted (its folder gone): `status` and `status --json` still
    print what the journal holds, exit 0, with one line on stderr naming the outbox and
    what to check; the text repeats it at its top, the JSON stays as docs/operations.md
    shows it."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("W.xml", "waiting", unattached_ids=["W"])
    j.close()
    env.outbox.rmdir()
    assert main(["status", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    away = [line for line in err if str(env.outbox) in line]
    assert len(away) == 1
    assert away[0].startswith(f"outboxd: the outbox {env.outbox} does not exist")
    assert "not mounted" in away[0] and "what the journal holds" in away[0]
    first, rest = captured.out.split("\n", 1)
    assert first == away[0].removeprefix("outboxd: ")
    assert "waiting: 1" in rest and "W.xml" in rest
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["counts"]["waiting"] == 1
    assert sum(str(env.outbox) in line for line in captured.err.splitlines()) == 1


def test_status_says_when_this_user_cannot_list_the_outbox(
        env: Env, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An outbox this user may not list (status run as the admin, not the daemon's user):
    the counts still come, and a line says the outbox cannot be listed and how to look.
    (The tests run as root, who may list anything: the refusal is made here.)"""
    env.write_config("http://127.0.0.1:9/bundles")
    real = os.scandir

    def refuse(path: Any = ".") -> Any:
        if str(path) == str(env.outbox):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr("daemon.actions.status.os.scandir", refuse)
    assert main(["status", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert (f"outboxd: the outbox {env.outbox} cannot be listed by this user "
            "(Permission denied)") in captured.err
    assert "sudo -u outboxd" in captured.err
    assert captured.out.startswith(f"the outbox {env.outbox} cannot be listed")


def test_status_says_nothing_of_the_outbox_when_it_is_there(env: Env, capsys) -> None:
    """The usual case: no line about the outbox, the text begins with the counts."""
    env.write_config("http://127.0.0.1:9/bundles")
    assert main(["status", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert str(env.outbox) not in captured.err
    assert captured.out.startswith("settling: 0")


def test_a_journal_another_process_holds_locked_is_read_as_it_is_within_one_wait(
        env: Env) -> None:
    """`outboxd status`, as a process, while another program holds the journal locked in
    exclusive mode (a sqlite3 shell): it waits the one wait docs/commands.md names
    (test_retry.py checks it is the daemon's; 4 s here) once for the whole command —
    its later looks (the quarantine's folders of a waiting bundle) reuse the verdict
    and read the file as it is at once; each waited again before, twice the wait in
    all — and exits 0 with the counts, no traceback."""
    import sqlite3
    import subprocess
    import time

    busy_seconds = 4
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("W.xml", "waiting", unattached_ids=["W"])
    j.close()
    holder = sqlite3.connect(env.state / "journal.sqlite3", isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE bundles SET attempts = attempts")
        started = time.monotonic()
        done = subprocess.run([*outboxd_with({"daemon.journal.BUSY_SECONDS": busy_seconds}),
                               "status", "-c", str(env.config)],
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("settling: 0  waiting: 1")
    # One wait and a process's start (~1 s; up to the wait again on a loaded machine),
    # never two waits.
    assert busy_seconds <= elapsed < 2 * busy_seconds, elapsed


# How long `status` waits for an outbox that does not answer: the daemon's 5 s
# (test_status_waits_for_the_outbox_as_docs_commands_md_says), 0.5 s in the tests of a hung
# outbox below, which show what it says and prints after the wait, not its length.
ANSWER = 0.5
ANSWERED_SOONER = outboxd_with({"daemon.actions.status.ANSWER_SECONDS": ANSWER})


def test_status_waits_for_the_outbox_as_docs_commands_md_says() -> None:
    """The wait for an outbox that does not answer is the one docs/commands.md names."""
    from daemon.actions.status import ANSWER_SECONDS
    text = " ".join((Path(__file__).parents[2] / "docs" / "commands.md").read_text().split())
    assert f"`status` waits {ANSWER_SECONDS:g} s for the outbox" in text


def test_status_answers_from_the_journal_while_the_outbox_share_hangs(
        env: Env, tmp_path: Path) -> None:
    """The outbox's share hangs (a hard NFS mount to a server that is down; here a FUSE
    mount never served): every look at it blocks, and not even Ctrl-C ends it. `status`
    waits a few seconds for the outbox, then says it does not answer and prints what the
    journal holds, exit 0, instead of hanging with it."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("W.xml", "waiting", unattached_ids=["W"])
    j.close()
    with hung_share(env.outbox):
        began = time.monotonic()
        done = subprocess.run([*ANSWERED_SOONER, "status", "-c", str(env.config)],
                              capture_output=True, text=True, timeout=30, cwd=tmp_path)
        took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert took < ANSWER + 10
    assert (f"outboxd: the outbox {env.outbox} does not answer: a look at it has waited "
            f"{ANSWER:g} s") in done.stderr
    assert "what the journal holds" in done.stderr
    assert done.stdout.startswith(f"the outbox {env.outbox} does not answer")
    assert "waiting: 1" in done.stdout and "W.xml" in done.stdout


def test_status_json_on_a_hung_outbox_says_in_the_json_that_the_outbox_was_not_seen(
        env: Env, tmp_path: Path) -> None:
    """`status --json` while the outbox's share hangs: `lone_folders` is [] for want of a
    look, and the JSON says so itself (`outbox_listed` false, `outbox_problem` the
    reason), for a script that reads only stdout (cron, a pipe) would take [] for "no
    lone folders"; stderr still has its line, the exit is still 0."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    Journal(env.state / "journal.sqlite3").close()
    with hung_share(env.outbox):
        done = subprocess.run([*ANSWERED_SOONER, "status", "--json", "-c", str(env.config)],
                              capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["lone_folders"] == []
    assert data["outbox_listed"] is False
    assert data["outbox_problem"].startswith(f"the outbox {env.outbox} does not answer: a look "
                                             f"at it has waited {ANSWER:g} s")
    assert f"outboxd: the outbox {env.outbox} does not answer" in done.stderr


def test_status_json_on_an_outbox_not_there_says_so_in_the_json(env: Env, capsys) -> None:
    """The outbox's folder is gone (its share not mounted): `outbox_listed` false and the
    same reason as stderr's line in `outbox_problem`, not only an empty list."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.outbox.rmdir()
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    got = capsys.readouterr()
    data = json.loads(got.out)
    assert data["outbox_listed"] is False and data["lone_folders"] == []
    assert data["outbox_problem"].startswith(f"the outbox {env.outbox} ")
    assert f"outboxd: {data['outbox_problem']}" in got.err


def test_work_folders_another_host_left_in_processing_are_listed_with_what_to_do(
        env: Env, capsys) -> None:
    """The outbox moved here from another server, without its journal: that host's work
    folders in .outboxd/processing are never taken over (its name is in theirs), and a
    bundle in one was never sent while nothing said so. `status` lists each with its host
    and the fix; `--json` lists folder and host under foreign_work_folders."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    Journal(env.state / "journal.sqlite3").close()
    work = env.outbox / ".outboxd" / "processing" / "INV-7--0123456789ab--oldbox-41-c0ffee"
    (work / "INV-7").mkdir(parents=True)
    (work / "INV-7.xml").write_bytes(b"<Invoice/>")
    since = foreign_work(work.parent, env.outbox)[0].since  # its ctime: how long it has stayed
    assert main(["status", "-c", str(env.config)]) == 0
    text = capsys.readouterr().out
    assert ("\n\nWork folders of other hosts in the processing folder (the status page lists "
            f"them too):\n  INV-7--0123456789ab--oldbox-41-c0ffee/ since {since}: work "
            "folder of host oldbox, not ours: outboxd on oldbox took INV-7 for sending") in text
    assert "to send it, move its files into the outbox" in text
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["foreign_work_folders"] == [
        {"folder": "INV-7--0123456789ab--oldbox-41-c0ffee", "host": "oldbox", "since": since}]


def test_status_json_on_an_outbox_that_fails_its_listing_after_answering_says_so(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox answered the first look, then its listing failed (the share went
    between the two): `outbox_listed` false with the listing's reason, once on stderr too,
    not `outbox_listed` true beside lists left empty for want of a look."""
    env.write_config("http://127.0.0.1:9/bundles")

    def refused(*_: object) -> None:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr("daemon.report.status.list_outbox", refused)
    assert main(["status", "-c", str(env.config), "--json"]) == 0
    got = capsys.readouterr()
    data = json.loads(got.out)
    assert data["outbox_listed"] is False and data["lone_folders"] == []
    assert data["outbox_problem"].startswith(f"the outbox {env.outbox} cannot be listed: ")
    assert got.err.count(data["outbox_problem"]) == 1


@pytest.mark.parametrize("as_json", [False, True])
def test_an_outbox_that_begins_to_hang_after_its_first_answer_is_said_not_to_answer(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    """The outbox answered status's first look, then its share began to hang while its
    files were listed: status says once that it does not answer and prints what the
    journal holds (exit 0), and --json says the outbox was not seen — not a listing of
    nothing taken for an empty outbox, nor a command hung with the share."""
    import threading

    from daemon.actions import status as status_action
    from daemon.report import status as report_status
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("W.xml", "waiting", unattached_ids=["W"])
    j.close()
    share_back = threading.Event()

    def hangs(*_: object) -> None:
        share_back.wait(60)  # until the test ends: the look never returns in time
    monkeypatch.setattr(report_status, "outbox_view", hangs)
    monkeypatch.setattr(status_action, "ANSWER_SECONDS", 0.2)
    try:
        assert main(["status", "-c", str(env.config), *(["--json"] if as_json else [])]) == 0
    finally:
        share_back.set()
    got = capsys.readouterr()
    said = f"the outbox {env.outbox} does not answer: a look at it has waited 0.2 s"
    assert got.err.count(said) == 1, got.err
    if as_json:
        data = json.loads(got.out)
        assert data["outbox_listed"] is False and data["outbox_problem"].startswith(said)
        assert data["counts"]["waiting"] == 1
    else:
        assert got.out.startswith(said)
        assert "waiting: 1" in got.out and "W.xml" in got.out


def test_a_journal_sqlite_cannot_open_is_one_line_with_the_fix_not_a_traceback(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite refusing the journal outright (its file there, but "unable to open database
    file": a state dir's file system gone read-only and odd, an I/O error): `status` exits
    1 with one line naming the journal, SQLite's words and the fix — move it away, and
    outboxd reads back what was sent from the receipts in sent/."""
    import sqlite3

    from daemon.journal import readonly
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    Journal(env.state / "journal.sqlite3").close()

    def refused(*_: object, **__: object) -> None:
        raise sqlite3.OperationalError("unable to open database file")
    monkeypatch.setattr(readonly, "_opened", refused)
    assert main(["status", "-c", str(env.config)]) == 1
    err = capsys.readouterr().err
    assert err.count("outboxd:") == 1 and "Traceback" not in err
    assert (f"cannot read the journal {env.state / 'journal.sqlite3'}: unable to open "
            "database file — if it is damaged, stop outboxd and move the file away; outboxd "
            "starts a new journal and reads what was sent back from the receipts in sent/"
            ) in err


def test_journal_damage_met_only_by_the_look_for_sidecars_in_quarantine_is_said_once(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The counts read, then the journal's damage met by status's later look (for a
    waiting invoice file's sidecar left in quarantine; a page the counts did not touch):
    the counts and the waiting bundle are still printed, the damage is said on stderr
    once, and the exit is 1 (the journal could not be read whole) — not a view that hides
    that the journal is damaged."""
    from daemon.errors import JournalLost
    from daemon.report import status as report_status
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    j = Journal(env.state / "journal.sqlite3")
    j.create("W.xml", "waiting", unattached_ids=["W"])
    j.close()
    damage = "the journal is damaged (database disk image is malformed); move it away"

    def damaged(*_: object) -> None:
        raise JournalLost(damage)
    monkeypatch.setattr(report_status, "sidecars_in_quarantine", damaged)
    assert main(["status", "-c", str(env.config)]) == 1
    got = capsys.readouterr()
    assert got.err.count(damage) == 1, got.err
    assert "waiting: 1" in got.out and "W.xml" in got.out


def test_a_look_at_the_outbox_that_fails_on_its_own_thread_is_said_on_the_commands(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """status looks at the outbox on a thread of its own (a share may hang it). A look
    that fails there with an error no listing expects (an I/O error where the view is
    built) is not lost with that thread — no view printed as if the outbox were empty:
    it is raised on the command's thread and said as any error of the environment,
    one line naming the file, exit 1."""
    import errno

    from daemon.report import status as report_status
    env.write_config("http://127.0.0.1:9/bundles")
    env.state.mkdir()
    Journal(env.state / "journal.sqlite3").close()

    def fails(*_: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(env.outbox / "INV-1.xml"))
    monkeypatch.setattr(report_status, "outbox_view", fails)
    assert main(["status", "-c", str(env.config)]) == 1
    got = capsys.readouterr()
    assert got.out == ""
    assert got.err.splitlines()[-1].startswith(
        f"outboxd: Input/output error ({env.outbox / 'INV-1.xml'}) — "), got.err
    assert "Traceback" not in got.err
