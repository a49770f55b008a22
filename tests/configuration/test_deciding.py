"""The deciding settings' fingerprint on the outbox, and the warning when another daemon's
differs (deciding.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from daemon.configuration.config import Settings
from daemon.configuration.deciding import (
    FOLDER,
    MISMATCH,
    RENEW,
    RETIRED,
    RETIRED_AFTER,
    Deciding,
    fingerprint,
)


def _settings(folder: Path, **sections: dict) -> Settings:
    return Settings(outbox={"path": folder, **sections.pop("outbox", {})},
                    delivery={"url": "http://127.0.0.1:9/"}, **sections)


def test_only_deciding_settings_change_the_fingerprint(tmp_path: Path) -> None:
    """Another unattached policy, channel or invoice pattern changes it, naming that key;
    another state dir, log level, timeout, token, status page name or duplicate window (read
    only when a journal is new: it decides no bundle) does not."""
    base = fingerprint(_settings(tmp_path))
    for sections, key in (({"policy": {"unattached": "hold"}}, "policy.unattached"),
                          ({"validation": {"channel": "original-print"}}, "validation.channel"),
                          ({"outbox": {"invoice_patterns": ["*.xml"]}},
                           "outbox.invoice_patterns")):
        other = fingerprint(_settings(tmp_path, **sections))
        assert [k for k in base if base[k] != other[k]] == [key]
    same = fingerprint(_settings(tmp_path, paths={"state_dir": str(tmp_path / "b")},
                                 log={"level": "debug"}, share={"status_page": ""},
                                 service={"shutdown_grace_seconds": 3},
                                 policy={"duplicate_window_days": 30}))
    assert same == base
    assert "hold" not in json.dumps(fingerprint(_settings(tmp_path, policy={
        "unattached": "hold"})))  # digests, not values (a URL may hold a password)


def test_another_daemons_differing_fingerprint_is_said_once_naming_the_keys(
        tmp_path: Path) -> None:
    """Daemon B (unattached = "hold") finds A's fingerprint at its start and warns with the
    keys and A's file; its next looks (rescans) say nothing more while nothing changes;
    A reloaded to B's settings: nothing said; A stopped cleanly: its file is gone."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    a, b = Deciding("hosta-111111"), Deciding("hostb-222222")
    a.publish(_settings(outbox))
    hold = _settings(outbox, policy={"unattached": "hold"})
    with structlog.testing.capture_logs() as logs:
        b.publish(hold)
        b.compare(hold)
        b.compare(hold)
    said = [e for e in logs if e["event"] == MISMATCH]
    assert len(said) == 1 and said[0]["keys"] == ["policy.unattached"]
    assert said[0]["file"] == str(outbox.joinpath(*FOLDER, "hosta-111111.json"))
    a.publish(hold)
    with structlog.testing.capture_logs() as logs:
        b.compare(hold)
    assert [e for e in logs if e["event"] == MISMATCH] == []
    a.withdraw(hold)
    assert sorted(os.listdir(outbox.joinpath(*FOLDER))) == ["hostb-222222.json"]


def test_a_linked_fingerprint_folder_is_never_written_through(tmp_path: Path) -> None:
    """.outboxd/deciding swapped for a link to a folder outside: nothing is written there,
    the failure is a warning, and nothing raises."""
    outbox = tmp_path / "outbox"
    (outbox / ".outboxd").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, outbox / ".outboxd" / "deciding")
    with structlog.testing.capture_logs() as logs:
        Deciding("hosta-111111").publish(_settings(outbox))
    assert os.listdir(outside) == []
    assert any("fingerprint" in e["event"] for e in logs)


def test_a_dot_outboxd_replaced_by_a_link_is_never_read_nor_removed_through(
        tmp_path: Path) -> None:
    """A share user replaces OUTBOX/.outboxd by a link to another folder holding a
    deciding/ of their making: its files were read and named as other daemons' in the
    admin's log, and a clean stop removed the file of this daemon's name there. Neither
    now: the folder is reached from the outbox, never through a link."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    a = Deciding("hosta-111111")
    a.publish(_settings(outbox))  # .outboxd/deciding made as a folder
    b = Deciding("hostb-222222")
    hold = _settings(outbox, policy={"unattached": "hold"})
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deciding").mkdir(parents=True)
    os.rename(outbox / ".outboxd" / "deciding" / "hosta-111111.json",
              elsewhere / "deciding" / "hosta-111111.json")
    mine = elsewhere / "deciding" / "hostb-222222.json"
    mine.write_text("{}")  # not ours: a share user's file of our name
    os.rmdir(outbox / ".outboxd" / "deciding")
    os.rmdir(outbox / ".outboxd")
    os.symlink(elsewhere, outbox / ".outboxd")
    with structlog.testing.capture_logs() as logs:
        b.publish(hold)
        b.compare(hold)
    assert [e for e in logs if e["event"] == MISMATCH] == []
    b.withdraw(hold)
    assert mine.read_text() == "{}"


def test_the_fingerprint_lets_no_one_on_the_share_check_a_guess_of_the_url_secrets(
        tmp_path: Path) -> None:
    """The fingerprint file is on the share: the url's digest is the same whatever its
    password or access token, so a guess of either cannot be checked against it; another
    host or path still differs."""
    def url_digest(url: str) -> str:
        return fingerprint(Settings(outbox={"path": tmp_path}, delivery={"url": url}))[
            "delivery.url"]
    base = url_digest("https://erp:Winter2024@op.example/in?access_token=s3cr3t")
    assert url_digest("https://erp:Summer2024@op.example/in?access_token=other") == base
    assert url_digest("https://erp:Winter2024@op2.example/in?access_token=s3cr3t") != base


def test_a_fingerprint_not_renewed_for_a_day_is_said_as_probably_retired_naming_the_file(
        tmp_path: Path) -> None:
    """A (unattached "warn") and B ("hold") on one outbox: B says the live difference, its
    fix naming A's file to remove if A runs no more. A is killed for good (its server
    retired): its file stays, a day older than B's, which B renews every RENEW on its
    clock. B then says once that A probably runs no more, naming the file to remove
    (before, the live difference stayed for ever). A back (its file written again): the
    difference is live again, and said so."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    clock_a, clock_b = [0.0], [1e9]
    a = Deciding("hosta-111111", clock=lambda: clock_a[0])
    b = Deciding("hostb-222222", clock=lambda: clock_b[0])
    warn, hold = _settings(outbox), _settings(outbox, policy={"unattached": "hold"})
    theirs = outbox.joinpath(*FOLDER, "hosta-111111.json")
    ours = outbox.joinpath(*FOLDER, "hostb-222222.json")
    a.publish(warn)
    with structlog.testing.capture_logs() as logs:
        b.publish(hold)
    [live] = [e for e in logs if e["event"] == MISMATCH]
    assert str(theirs) in live["fix"]
    written = ours.stat().st_mtime_ns
    clock_b[0] += RENEW - 1
    b.compare(hold)
    assert ours.stat().st_mtime_ns == written  # not renewed before RENEW
    os.utime(ours, ns=(written - 10**9, written - 10**9))
    clock_b[0] += 1
    b.compare(hold)
    assert ours.stat().st_mtime_ns > written - 10**9  # renewed: written again
    now = ours.stat().st_mtime_ns
    old = now - (RETIRED_AFTER + 60) * 10**9  # A killed a day and a minute ago
    os.utime(theirs, ns=(old, old))
    with structlog.testing.capture_logs() as logs:
        b.compare(hold)
        b.compare(hold)
    [gone] = [e for e in logs if e["event"] in (MISMATCH, RETIRED)]
    assert gone["event"] == RETIRED and gone["keys"] == ["policy.unattached"]
    assert gone["file"] == str(theirs) and f"remove {theirs}" in gone["fix"]
    a.publish(warn)  # A runs again
    with structlog.testing.capture_logs() as logs:
        b.compare(hold)
    assert [e["event"] for e in logs] == [MISMATCH]


def test_a_stop_leaves_the_file_another_machines_daemon_of_this_name_rewrote(
        tmp_path: Path) -> None:
    """A twin (another machine, same short name and state dir) rewrote this daemon's
    fingerprint while both ran: this one's clean stop leaves it — it is what refuses the
    next start here while the twin runs on."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = _settings(outbox)
    here = Deciding("fin01-111111")
    here.publish(settings)
    twin = Deciding("fin01-111111")
    twin.machine, twin.machine_name = "m-twin", "fin01.new"
    with structlog.testing.capture_logs():
        twin.publish(settings)
        here.withdraw(settings)
    left = outbox.joinpath(*FOLDER, "fin01-111111.json")
    assert json.loads(left.read_text())["machine"] == "m-twin"


def test_a_daemon_that_wrote_no_fingerprint_removes_none_at_its_stop(tmp_path: Path) -> None:
    """A start refused before it wrote its file (another machine's daemon of this name,
    or a second daemon on this state dir) gives up: the file there is the other's, and
    stays."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = _settings(outbox)
    running = Deciding("fin01-111111")
    running.publish(settings)
    refused = Deciding("fin01-111111")
    refused.withdraw(settings)
    assert outbox.joinpath(*FOLDER, "fin01-111111.json").exists()



def test_a_json_file_in_the_folder_that_is_no_fingerprint_is_never_said_as_a_daemon(
        tmp_path: Path) -> None:
    """Someone on the share saves JSON files into .outboxd/deciding that are no
    fingerprints (no `keys` table, `keys` not a table, not JSON at all): no warning names
    them as a daemon whose settings differ — nothing differs with a file that says
    nothing — and a real daemon's differing fingerprint beside them is still said."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    a, b = Deciding("hosta-111111"), Deciding("hostb-222222")
    a.publish(_settings(outbox))
    folder = outbox.joinpath(*FOLDER)
    (folder / "notes.json").write_text('["not", "a", "fingerprint"]')
    (folder / "keys.json").write_text('{"keys": "policy.unattached"}')
    (folder / "broken.json").write_text('{"keys": {')
    hold = _settings(outbox, policy={"unattached": "hold"})
    with structlog.testing.capture_logs() as logs:
        b.publish(hold)
        b.compare(hold)
    said = [e for e in logs if e["event"] in (MISMATCH, RETIRED)]
    assert [e["file"] for e in said] == [str(folder / "hosta-111111.json")]
