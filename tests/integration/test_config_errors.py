"""A bad configuration stops `outboxd run` with exit 2 and a line naming the key; an outbox
that is not there (a share not mounted yet), or a journal that cannot be used, with exit 1,
which systemd restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OUTBOXD, START_DEADLINE, Env, Proc
from helpers import wait_for

# Daemons here start lean (conftest.LEAN): the errors of a start; the one about a start failing
# after the readers started asks for them (READERS).
pytestmark = pytest.mark.usefixtures("lean")


# Reader processes as shipped ("auto"), without the e-invoice rules each would load for
# seconds first: what is shown is a start that fails once they are up, whatever they load.
READERS = {"service": {"reader_processes": "auto"}, "einvoice": {"preflight": "off"}}


def run(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTBOXD, *args], capture_output=True, text=True, timeout=60)


def test_unknown_key_exits_2_naming_the_key(env: Env) -> None:
    """An unknown key is named, with the keys that are allowed; no traceback."""
    env.write_config("http://127.0.0.1:9/x", outbox={"settle_secs": 1})
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 2
    assert "[outbox] settle_secs = 1: unknown key" in r.stderr
    assert "settle_seconds" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_value_exits_2_naming_key_and_value(env: Env) -> None:
    """settle_seconds = "soon" is refused naming the key, the value and what is allowed."""
    env.write_config("http://127.0.0.1:9/x", outbox={"settle_seconds": "soon"})
    r = run(env, "-c", str(env.config), "run")
    assert r.returncode == 2
    assert "[outbox] settle_seconds = 'soon'" in r.stderr
    assert "number" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_config_file_is_an_error(env: Env) -> None:
    """A config file that does not exist is an error, not silently an empty config."""
    r = run(env, "run", "-c", str(env.root / "nope.toml"))
    assert r.returncode == 2
    assert "nope.toml does not exist" in r.stderr
    # Under JSON logging (off a terminal) `source` is the file it looked for.
    assert json.loads(r.stderr.splitlines()[-1])["source"] == str(env.root / "nope.toml")
    # A command's line names the file; no "in the configuration" heading without one.
    r = run(env, "status", "-c", str(env.root / "nope.toml"))
    assert r.returncode == 2
    assert r.stderr.startswith("outboxd: configuration error:\n")
    assert "nope.toml does not exist" in r.stderr


def test_a_missing_outbox_stops_the_start_with_exit_1_which_systemd_restarts(
        env: Env) -> None:
    """An outbox that does not exist (a share not mounted yet, a NAS rebooting) stops the
    start with exit 1, not the 2 of a configuration error: the unit restarts a 1
    (Restart=on-failure) but not a 2 (RestartPreventExitStatus=2), and a share that comes
    up a minute late must not leave outboxd dead until an admin notices. One JSON line
    (off a terminal) naming the path and the mount, no traceback; nothing is created."""
    gone = env.root / "gone"
    env.write_config("http://127.0.0.1:9/x", outbox={"path": str(gone)})
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 1
    [line] = _json_lines(r.stderr)
    assert line["event"].startswith("outboxd cannot start: the outbox is not reachable")
    assert "configuration error" not in line["event"]
    [problem] = line["problems"]
    assert problem.startswith(f'[outbox] path = "{gone}": the outbox does not exist')
    assert "is its share not mounted? Mount it" in problem
    assert line["source"] == str(env.config)
    assert "Traceback" not in r.stderr
    assert not gone.exists() and not (env.root / "sent").exists()


def test_a_configuration_error_beside_a_missing_outbox_still_exits_2(env: Env) -> None:
    """A bad key is a configuration error even while the outbox's share is away: exit 2
    (not restarted), naming the key — a 1 would have systemd start a configuration that
    can never work over and over, for ever."""
    env.write_config("http://127.0.0.1:9/x",
                     outbox={"path": str(env.root / "gone"), "settle_secs": 1})
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 2
    [line] = _json_lines(r.stderr)
    assert line["event"] == "outboxd cannot start: configuration error"
    assert any("[outbox] settle_secs = 1: unknown key" in p for p in line["problems"])
    assert "Traceback" not in r.stderr


def test_config_check_still_refuses_a_missing_outbox_with_exit_2(env: Env) -> None:
    """`config --check` answers an admin at the prompt, who is told at once (exit 2, the
    path and the mount named): only `run` treats a missing outbox as a failure to retry."""
    env.write_config("http://127.0.0.1:9/x", outbox={"path": str(env.root / "gone")})
    r = run(env, "config", "--check", "-c", str(env.config))
    assert r.returncode == 2
    assert r.stderr.startswith(f"outboxd: configuration error in {env.config}:\n")
    assert f'[outbox] path = "{env.root / "gone"}": the outbox does not exist' in r.stderr
    assert "share not mounted? Mount it" in r.stderr and "Traceback" not in r.stderr


def test_python_runs_the_same_cli() -> None:
    """`python -m daemon --help` lists the commands (the console script is the same main)."""
    r = subprocess.run([sys.executable, "-m", "daemon", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for command in ("run", "status", "receiver", "config"):
        assert command in r.stdout


def test_a_start_that_fails_after_the_readers_started_ends_the_process(env: Env) -> None:
    """A journal that is not a database is found after the reader processes are up: `run`
    still exits (1, naming the journal) instead of waiting on its readers forever; and
    takes back the settings fingerprint it wrote on the share before, as a clean stop
    does — left, a new server of this name would be refused for a day (samename.py)."""
    env.write_config("http://127.0.0.1:9/x", **READERS)
    env.state.mkdir(parents=True, exist_ok=True)
    (env.state / "journal.sqlite3").write_bytes(b"not a database, " * 512)
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 1
    assert "journal" in r.stderr and "not a database" in r.stderr
    assert "Traceback" not in r.stderr
    fingerprints = env.outbox / ".outboxd" / "deciding"
    assert fingerprints.is_dir()  # written, then taken back
    assert [p.name for p in fingerprints.iterdir() if p.suffix == ".json"] == []


def test_a_directory_target_that_cannot_be_made_is_named_as_such(env: Env) -> None:
    """transport = "directory" with a target below a regular file: `run` exits 2 naming
    the target and the path, not (as before) "TLS settings cannot be used"."""
    blocker = env.root / "a-file"
    blocker.write_text("x\n")
    env.write_config("http://127.0.0.1:9/x", delivery={
        "transport": "directory", "target": str(blocker / "target")})
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 2
    assert f"[delivery] target: cannot create {blocker / 'target'}: {blocker}, on its path, " \
        "is a file, not a folder — move that file away" in r.stderr
    assert "TLS" not in r.stderr and "Traceback" not in r.stderr


def _json_lines(stderr: str) -> list[dict]:
    import json
    return [json.loads(line) for line in stderr.splitlines()]


def test_a_configuration_that_does_not_load_is_reported_as_json_under_json_logging(
        env: Env) -> None:
    """Under [log] format = "json" (and "auto" off a terminal: systemd) the error that
    stops the start is one JSON line like every other, not bare text a log collector
    drops; also when [log] itself holds a bad value beside the format."""
    for log in ({"format": "json"}, {"format": "auto"}, {"format": "json", "level": "loud"}):
        env.write_config("http://127.0.0.1:9/x", outbox={"settle_seconds": "soon"}, log=log)
        r = run(env, "run", "-c", str(env.config))
        assert r.returncode == 2
        [line] = _json_lines(r.stderr)
        assert line["event"] == "outboxd cannot start: configuration error"
        assert any("[outbox] settle_seconds = 'soon'" in p for p in line["problems"])


def test_a_missing_configuration_is_reported_as_json_off_a_terminal(env: Env) -> None:
    """No file, so no [log]: the default ("auto") applies, which is JSON off a terminal."""
    r = run(env, "run", "-c", str(env.root / "nope.toml"))
    assert r.returncode == 2
    [line] = _json_lines(r.stderr)
    assert "nope.toml does not exist" in line["problems"][0]


def test_a_huge_configuration_path_is_logged_cut(env: Env,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """OUTBOXD_CONFIG of 5,000 characters (a value pasted wrong): the JSON line that stops
    the start names it by its first 200 characters and its length, in its source and its
    problem, not twice whole."""
    path = "/" + "c" * 4_999
    monkeypatch.setenv("OUTBOXD_CONFIG", path)
    r = run(env, "run")
    assert r.returncode == 2
    [line] = _json_lines(r.stderr)
    assert line["source"] == f"{path[:200]}… (5,000 characters)"
    assert line["problems"] == [
        f"cannot read {path[:200]}… (5,000 characters): File name too long — pass -c FILE "
        "with the path of the configuration file (see config.example.toml)",
        "(that file is named by $OUTBOXD_CONFIG in this environment; -c FILE names another)"]


def _emptied_beside_its_wal(env: Env) -> tuple[Path, bytes]:
    """The pair a journal emptied under its daemon leaves (truncate -s 0, the daemon
    stopped keeping both): a 0-byte journal.sqlite3 beside a WAL holding a bundle's row.
    Returns the journal's path and the WAL's bytes."""
    from daemon.journal import Journal
    env.state.mkdir(parents=True, exist_ok=True)
    path = env.state / "journal.sqlite3"
    j = Journal(path)
    j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
    wal = Path(f"{path}-wal").read_bytes()
    j.close()  # checkpoints and removes the WAL: both put back as the stop leaves them
    os.truncate(path, 0)
    Path(f"{path}-wal").write_bytes(wal)
    return path, wal


def test_a_start_on_a_journal_emptied_beside_its_wal_refuses_and_keeps_the_wal(
        env: Env) -> None:
    """A 0-byte journal with a WAL that holds its last writes: `run` exits 1 saying it is
    damaged, to be moved away with its -wal and -shm (as `outboxd status` says), without
    a traceback, and leaves both files as they were. It opened the journal, and SQLite
    deleted the WAL beside the empty file: the rows written since the last checkpoint
    were lost, and the daemon began afresh as if they had never been."""
    env.write_config("http://127.0.0.1:9/x")
    path, wal = _emptied_beside_its_wal(env)
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 1, r.stderr
    assert (f"the journal {path} is damaged (0 bytes, beside a journal.sqlite3-wal file of "
            f"{len(wal):,} bytes that holds its last writes); outboxd cannot go on with it "
            "— move it away, with the journal.sqlite3-wal and journal.sqlite3-shm files "
            "beside it") in r.stderr
    assert "Traceback" not in r.stderr
    assert path.stat().st_size == 0
    assert Path(f"{path}-wal").read_bytes() == wal


def test_a_start_on_a_journal_of_0_bytes_without_a_wal_takes_it_as_new(env: Env) -> None:
    """A 0-byte journal with no WAL (`touch`, or emptied after a clean stop) holds nothing
    to lose: `run` takes it as a new journal, as `outboxd status` tells the admin it will."""
    from daemon.journal import Journal
    env.write_config("http://127.0.0.1:9/x")
    env.state.mkdir(parents=True, exist_ok=True)
    path = env.state / "journal.sqlite3"
    path.touch()
    p = Proc([*OUTBOXD, "run", "-c", str(env.config)], env.root / "daemon.log")
    try:
        wait_for(lambda: "outboxd running" in p.stderr() or p.popen.poll() is not None,
                 timeout=START_DEADLINE, what="the daemon to start")
        assert p.popen.poll() is None, p.stderr()
    finally:
        assert p.stop() == 0, p.stderr()
    j = Journal(path)
    try:
        assert j.counts()["waiting"] == 0
    finally:
        j.close()


def test_a_start_on_a_journal_damaged_past_its_header_names_it_and_the_fix(env: Env) -> None:
    """A journal whose header fits but a page past it is damaged, as a copy taken with
    `cp` while the daemon wrote leaves it once restored: `run` exits 1 at its start with
    one line that names the file, what SQLite's quick_check found and the fix (move it
    away with its -wal and -shm, or put a `.backup` copy in its place), without a
    traceback, and leaves the file as it was. It started on it, and the first read of
    the bad page stopped it wherever that came, mid-delivery too."""
    from journal.test_guarded import torn_journal
    env.write_config("http://127.0.0.1:9/x")  # JSON logging: the line's fields are read
    env.state.mkdir(parents=True, exist_ok=True)
    path = env.state / "journal.sqlite3"
    torn_journal(path)
    before = path.read_bytes()
    r = run(env, "run", "-c", str(env.config))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    last = json.loads(r.stderr.strip().splitlines()[-1])
    assert last["event"] == "outboxd stopped", last
    assert last["error"].startswith(f"the journal {path} is damaged (SQLite's quick_check: ")
    assert ("move it away, with the journal.sqlite3-wal and journal.sqlite3-shm files "
            "beside it") in last["error"]
    assert "sent/" in last["error"] and "sqlite3's .backup" in last["error"]
    assert path.read_bytes() == before


# `outboxd` on one CPU of this host, whatever it has: what it takes is then the same on
# every machine (config_readers.ceiling: 2 readers).
ONE_CPU = [sys.executable, "-c", "import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity"
           "(0))}); os.execv(sys.executable, [sys.executable, '-m', 'daemon', *sys.argv[1:]])"]


def test_more_readers_than_the_host_takes_stop_the_start_and_fail_the_check(env: Env) -> None:
    """reader_processes = 3 on one CPU (2 taken): `outboxd run` exits 2 before any reader
    starts and `config --check` exits 2, each with the line naming the key, the value, the
    limit and the fix; no traceback. 2 passes the check there."""
    env.write_config("http://127.0.0.1:9/x", service={"reader_processes": 3})
    line = ('[service] reader_processes = 3: this host takes at most 2 reader processes (2 '
            'for each CPU outboxd may use, 1 here)')
    for args in (("run",), ("config", "--check")):
        r = subprocess.run([*ONE_CPU, *args, "-c", str(env.config)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert line in r.stderr and "set reader_processes to 2 or less, or to" in r.stderr
        assert "Traceback" not in r.stderr
    env.write_config("http://127.0.0.1:9/x", service={"reader_processes": 2})
    r = subprocess.run([*ONE_CPU, "config", "--check", "-c", str(env.config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
