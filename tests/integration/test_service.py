"""Service behaviour of `outboxd run` under systemd: sd_notify and a clean SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import OUTBOXD, Env, Proc, Receiver, journal_since, journal_states
from helpers import drop_bundle, outboxd_with, pdf_bytes, ubl_invoice, wait_for

# Daemons here start lean (conftest.LEAN): the service's signals, reloads and files; the tests
# about the readers ask for reader processes, without pre-flight (whose rules they do not need).
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def log_events(daemon: Any, about: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The daemon's JSON log lines so far whose event text `about` picks."""
    events = [json.loads(line) for line in daemon.stderr().splitlines()]
    return [e for e in events if about(e["event"])]


def logged_again_at_reload(daemon: Any, about: Callable[[str], bool]) -> None:
    """SIGHUP: the daemon reloads and logs the one event `about` picks a second time."""
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), what="the reload")
    wait_for(lambda: len(log_events(daemon, about)) == 2,
             what="the warning again after the reload")


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A socket as systemd's: $NOTIFY_SOCKET names it for the daemon started after;
    recv() waits up to 20 s for each message."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        yield sock
    finally:
        sock.close()


def test_ready_after_startup_and_stopping_on_sigterm(env: Env, receiver: Receiver, start_daemon,
                                                     notify_socket: socket.socket) -> None:
    """With $NOTIFY_SOCKET set, the daemon sends READY=1 once it watches the outbox and
    STOPPING=1 on SIGTERM, then exits 0."""
    env.write_config(receiver.url)
    daemon = start_daemon()
    messages = [notify_socket.recv(4096).decode()]
    assert messages == ["READY=1"]
    assert daemon.stop(signal.SIGTERM) == 0
    while "STOPPING=1" not in messages:
        messages.append(notify_socket.recv(4096).decode())


def test_ready_comes_once_the_outbox_is_listed_and_the_watcher_sees_what_comes_after(
        env: Env, receiver: Receiver, start_daemon, notify_socket: socket.socket) -> None:
    """READY=1 means what systemd's units after outboxd rely on: the startup scan has
    listed the outbox (both bundles dropped while it was down are counted in the start's
    line, logged before READY=1), and the watcher already runs (a bundle dropped just
    after READY=1 is sent on its event, not at a rescan an hour later)."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 3600, "watch": "inotify"},
                     policy={"unattached": "send"})
    drop_bundle(env.outbox, "INV-D1", {"a.pdf": pdf_bytes()})
    drop_bundle(env.outbox, "INV-D2", {"a.pdf": pdf_bytes()})
    daemon = start_daemon()
    assert notify_socket.recv(4096).decode() == "READY=1"
    [running] = log_events(daemon, lambda event: event == "outboxd running")
    assert running["bundles"] == 2
    drop_bundle(env.outbox, "INV-D3", {"a.pdf": pdf_bytes()})
    wait_for(lambda: len(env.sent_bundles()) == 3, what="the three bundles in sent/")


def test_a_stop_asks_systemd_for_its_grace_beyond_the_units_stop_timeout(
        env: Env, receiver: Receiver, start_daemon, notify_socket: socket.socket) -> None:
    """A shutdown_grace_seconds raised in the configuration alone (45 s, above the unit's
    TimeoutStopSec=30) is not cut short by systemd's kill: at SIGTERM the daemon sends
    EXTEND_TIMEOUT_USEC= for the grace plus what its readers, page and journal take."""
    env.write_config(receiver.url, service={"shutdown_grace_seconds": 45})
    daemon = start_daemon()
    assert notify_socket.recv(4096).decode() == "READY=1"
    assert daemon.stop(signal.SIGTERM) == 0
    messages: list[str] = []
    while not any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in messages):
        messages.append(notify_socket.recv(4096).decode())
    [extend] = [m for m in messages if m.startswith("EXTEND_TIMEOUT_USEC=")]
    assert "STOPPING=1" in messages
    assert int(extend.partition("=")[2]) >= (45 + 20) * 1_000_000


def test_sighup_reloads_a_good_config_and_keeps_the_old_on_a_bad_one(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """SIGHUP with a bad new config logs it and keeps running on the old one; SIGHUP with a
    good one applies it (here: unattached "hold" → "send" releases a waiting invoice)."""
    from helpers import drop_bundle, wait_for
    env.write_config(receiver.url, policy={"unattached": "hold"})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-R1", {})
    wait_for(lambda: '"waiting"' in json.dumps(journal_states(env)), what="the invoice to wait")

    good = env.config.read_text()
    env.config.write_text(good + "[bogus]\nx = 1\n")
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded" in daemon.stderr(), what="the refusal")
    assert daemon.popen.poll() is None and env.sent_bundles() == []

    env.write_config(receiver.url, policy={"unattached": "send"})
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), what="the reload")
    wait_for(env.sent_bundles, what="the released invoice in sent/")


def _until(sock: socket.socket, wanted: str) -> list[str]:
    """The notify messages up to and with the first that is `wanted` (recv() waits up to
    the fixture's 20 s for each)."""
    seen: list[str] = []
    while wanted not in seen:
        seen.append(sock.recv(4096).decode())
    return seen


def test_a_reload_tells_systemd_reloading_then_ready_also_when_the_new_config_is_refused(
        env: Env, receiver: Receiver, start_daemon, notify_socket: socket.socket) -> None:
    """SIGHUP: the daemon sends RELOADING=1 with MONOTONIC_USEC= (what systemd's reload
    tracking asks for), then READY=1 once the reload is done, so `systemctl reload` and
    `systemctl status` do not leave the unit "reloading". A refused configuration keeps
    the old one, and the unit is ready again all the same."""
    env.write_config(receiver.url)
    daemon = start_daemon()
    assert notify_socket.recv(4096).decode() == "READY=1"
    good = env.config.read_text()
    for config, logged in ((good + "[bogus]\nx = 1\n", "configuration not reloaded"),
                           (good, "configuration reloaded")):
        env.config.write_text(config)
        before = time.monotonic_ns() // 1000
        daemon.popen.send_signal(signal.SIGHUP)
        seen = _until(notify_socket, "READY=1")
        [reloading] = [m for m in seen if m.startswith("RELOADING=1\nMONOTONIC_USEC=")]
        stamp = int(reloading.rpartition("=")[2])
        assert before <= stamp <= time.monotonic_ns() // 1000
        wait_for(lambda logged=logged: logged in daemon.stderr(), what=logged)
        assert daemon.popen.poll() is None
    assert daemon.stop(signal.SIGTERM) == 0


def test_a_secret_allowed_over_plain_http_is_warned_of_at_the_start_and_each_reload(
        env: Env, start_daemon) -> None:
    """[delivery] allow_plain_http = true with a token to a receiver reached by a name
    over plain http:// (a container network): the daemon starts, and logs one warning
    that the token travels unencrypted, again after a reload; the token is in no line."""
    env.write_config("http://receiver.invalid:8080/bundles",
                     delivery={"token": "s3cret-token", "allow_plain_http": True})
    daemon = start_daemon()

    def about(event: str) -> bool:
        return "allow_plain_http" in event

    [warning] = log_events(daemon, about)
    assert warning["level"] == "warning"
    assert warning["event"].startswith("[delivery] allow_plain_http = true: the token goes "
                                       "to http://receiver.invalid:8080/bundles over plain "
                                       "http://, unencrypted")
    logged_again_at_reload(daemon, about)
    assert "s3cret-token" not in daemon.stderr()


def test_a_key_in_the_urls_query_allowed_over_plain_http_is_warned_of_without_its_value(
        env: Env, start_daemon) -> None:
    """A url to another machine over plain http:// whose query holds a key
    (`?access_token=`): with allow_plain_http the daemon starts and logs that the key
    travels unencrypted, naming the parameter, never its value, again at a reload. It
    started without a word (and without the key it would not start now)."""
    env.write_config("http://receiver.invalid:8080/bundles?access_token=QSECRET-12345&sig=s1g",
                     delivery={"allow_plain_http": True})
    daemon = start_daemon()

    def about(event: str) -> bool:
        return "allow_plain_http" in event

    [warning] = log_events(daemon, about)
    assert warning["level"] == "warning"
    assert warning["event"].startswith(
        "[delivery] allow_plain_http = true: the value of the url's query parameters "
        "'access_token', 'sig' (named like a secret) goes to "
        "http://receiver.invalid:8080/bundles over plain http://, unencrypted")
    logged_again_at_reload(daemon, about)
    assert "QSECRET-12345" not in daemon.stderr() and "s1g" not in daemon.stderr()


# The url of the next tests: a password (Basic auth), a key in the query long enough to
# be looked for in any text, and one too short for that, found by its name alone.
URL_SECRETS = ("Pa55-w0rd", "QSECRET-12345", "s1g")
SECRET_QUERY = "access_token=QSECRET-12345&tenant=7&sig=s1g"


def _statuses(sock: socket.socket, into: list[str]) -> list[str]:
    """The STATUS= texts come so far on the notify socket (kept in `into`)."""
    while True:
        try:
            msg = sock.recv(4096).decode()
        except (BlockingIOError, TimeoutError):
            return into
        if msg.startswith("STATUS="):
            into.append(msg.removeprefix("STATUS="))


@pytest.mark.usefixtures("quick_page")
@pytest.mark.parametrize("receiver_answers", ["a redirect to our url", "nothing"])
def test_no_surface_shows_a_secret_of_the_url_when_deliveries_fail(
        env: Env, start_daemon, notify_socket: socket.socket, receiver_answers: str) -> None:
    """A url with a password and keys in its query; the receiver redirects every POST to
    the https:// form of the very url, query and all (as an http-to-https redirect
    does), or nothing listens on its port (a connection error). The log (JSON), STATUS=,
    `outboxd status` and the clerks' status page say what happened, and none shows the
    password or a key's value. The redirect's address showed a short key (`sig=s1g`,
    too short to be looked for in any text) in the log, `outboxd status` and STATUS=;
    it is masked by its name now, as `outboxd config` masks it."""
    from delivery.test_answer_deadline import RawReceiver

    redirect = receiver_answers == "a redirect to our url"
    with contextlib.ExitStack() as stack:
        if redirect:
            port = stack.enter_context(RawReceiver(lambda rx, conn, n: conn.sendall(
                (f"HTTP/1.1 301 Moved Permanently\r\nLocation: https://127.0.0.1:{rx.port}"
                 f"/bundles?{SECRET_QUERY}\r\nContent-Length: 0\r\n\r\n").encode()))).port
        else:
            with socket.create_server(("127.0.0.1", 0)) as gone:
                port = gone.getsockname()[1]  # closed again: connections are refused
        env.write_config(f"http://bob:Pa55-w0rd@127.0.0.1:{port}/bundles?{SECRET_QUERY}")
        notify_socket.settimeout(0)
        daemon = start_daemon()
        for n in (1, 2):  # two in a row: a redirect pauses every delivery
            drop_bundle(env.outbox, f"INV-{n}", {"a.pdf": pdf_bytes(n)})
        said = (f"redirect to https://127.0.0.1:{port}/bundles?" if redirect
                else f"cannot reach the receiver at 127.0.0.1:{port}")
        wait_for(lambda: said in daemon.stderr(), what="the failure in the log")
        statuses: list[str] = []
        if redirect:
            wait_for(lambda: any("301" in s for s in _statuses(notify_socket, statuses)),
                     what="STATUS= saying why nothing moves")
        # `status` first: it runs while the page waits out its refresh interval.
        status = subprocess.run([*OUTBOXD, "status", "-c", str(env.config)],
                                capture_output=True, text=True, timeout=60)
        page = env.outbox / "outboxd-status.html"
        wait_for(lambda: page.exists() and "INV-2.xml" in page.read_text(),
                 what="the status page listing the bundles")
    assert said in status.stdout
    shown = {"log": daemon.stderr(), "STATUS=": "\n".join(_statuses(notify_socket, statuses)),
             "outboxd status": status.stdout + status.stderr, "page": page.read_text()}
    assert {(where, secret) for where, text in shown.items() for secret in URL_SECRETS
            if secret in text} == set()
    assert "Traceback" not in shown["log"]
    if redirect:  # where it goes is still said, the keys' values masked
        assert f"{said}access_token=********&tenant=7&sig=********" in status.stdout


def test_a_token_in_a_configuration_every_user_may_read_is_warned_of_at_the_start(
        env: Env, start_daemon) -> None:
    """[delivery] token in a configuration file of mode 0644: the daemon starts and logs
    one warning naming the file, its mode and the fix, again at a reload; the token is
    in no line."""
    env.write_config("http://127.0.0.1:9/bundles", delivery={"token": "s3cret-token"})
    env.config.chmod(0o644)
    daemon = start_daemon()

    def about(event: str) -> bool:
        return event.startswith("the configuration file")

    [warning] = log_events(daemon, about)
    assert warning["level"] == "warning"
    assert warning["event"].startswith(f"the configuration file {env.config} holds "
                                       "[delivery] token, and every user of this machine "
                                       "may read it (mode 0644)")
    logged_again_at_reload(daemon, about)
    assert "s3cret-token" not in daemon.stderr()


def test_status_line_on_the_notify_socket_follows_the_counts(
        env: Env, receiver: Receiver, start_daemon, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUS= carries the counts (docs/operations.md) and follows the journal: after a
    delivery the latest line says "1 sent today", with a waiting invoice "1 waiting, 1 sent
    today"; no two STATUS= lines in a row are the same. "Today" is the UTC day as the
    journal's rows and the host's clock say at each look (a run across midnight expects
    the count of the new day, which the daemon publishes at midnight)."""
    from helpers import drop_bundle, pdf_bytes, wait_for
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    statuses: list[str] = []

    def latest_status() -> str | None:
        while True:
            try:
                msg = sock.recv(4096).decode()
            except BlockingIOError:
                break
            if msg.startswith("STATUS="):
                statuses.append(msg.removeprefix("STATUS="))
        return statuses[-1] if statuses else None

    def sent_today() -> int:
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        return sum(1 for since in journal_since(env, "sent") if since.startswith(today))

    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        env.write_config(receiver.url, policy={"unattached": "hold"})
        start_daemon()
        drop_bundle(env.outbox, "INV-S1", {"a.pdf": pdf_bytes()})
        wait_for(lambda: journal_states(env).get("INV-S1.xml") == "sent", what="INV-S1 sent")
        wait_for(lambda: latest_status() == f"{sent_today()} sent today",
                 what="STATUS=1 sent today")
        drop_bundle(env.outbox, "INV-S2", {})
        wait_for(lambda: latest_status() == f"1 waiting, {sent_today()} sent today",
                 what="STATUS=1 waiting, 1 sent today")
    finally:
        sock.close()
    assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False))


def _children(pid: int) -> list[int]:
    """The daemon's child processes (its readers, multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _importing_reader(pid: int) -> int | None:
    """A reader process in the middle of its imports: pydantic's extension mapped (the
    package's configuration module), lxml not yet (the e-invoice rules, loaded last)."""
    for child in _children(pid):
        with contextlib.suppress(OSError):
            maps = Path(f"/proc/{child}/maps").read_text()
            if "pydantic_core" in maps and "lxml" not in maps:
                return child
    return None


def _ignored(pid: int) -> set[int]:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                if x.startswith("SigIgn:"))
    mask = int(line.split()[1], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


def test_ctrl_c_while_the_readers_start_prints_no_traceback(env: Env) -> None:
    """A reader ignores the signals a terminal or `kill -- -PGID` sends the whole group
    from the moment it imports the package, long before its main() runs; a Ctrl-C
    then, while it is still importing, leaves only the daemon's own JSON lines on
    stderr (before, a reader's KeyboardInterrupt traceback, and no reader)."""
    # Readers as shipped, without pre-flight: what the test shows is over once a reader is
    # past its imports, and loading the rules only kept the stop waiting for the readers
    # (some 3 CPU-s a run; the daemon joins them at its stop).
    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"},
                     service={"reader_processes": "auto"})
    proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        reader = wait_for(lambda: _importing_reader(proc.pid) or proc.poll() is not None,
                          interval=0.001, what="a reader process importing the package")
        assert reader is not True, "the daemon ended before a reader started"
        ignored = _ignored(reader)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert {signal.SIGINT, signal.SIGHUP, signal.SIGTERM} <= ignored
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert all(line.startswith("{") for line in err.splitlines()), err


def _loaded(pid: int, library: str) -> bool:
    """Process pid has mapped a shared library whose path holds `library` (it imported
    the module); False once the process is gone."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux /proc")
def test_sigterm_while_the_daemon_still_imports_is_a_clean_stop(env: Env) -> None:
    """A SIGTERM that comes while `outboxd run` is still importing its modules and
    loading the configuration (pydantic_core just loaded, a second or more before the
    service installs its handlers) ends the daemon with a clean stop, exit 0, as
    systemd stopping a service that has just started would ask; before, it killed the
    process (exit -15)."""
    env.write_config("http://127.0.0.1:9/x")
    proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _loaded(proc.pid, "pydantic_core") or proc.poll() is not None,
                 interval=0.001, what="the daemon to load the configuration's library")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert '"stopped"' in err and "Traceback" not in err


def test_sighup_from_the_first_imports_until_ready_neither_kills_nor_is_lost(
        env: Env, notify_socket: socket.socket) -> None:
    """`kill -HUP` sent again and again from the moment `outboxd run` has imported
    argparse (a few milliseconds after the interpreter started, before the command line is
    even parsed) until READY=1: the daemon still starts, says READY and keeps running, and
    the SIGHUPs that came meanwhile are not lost but one reload after READY. Before, one in
    that first ~0.1 s ended the process by SIGHUP's default action, an end systemd takes
    for a clean one and does not restart."""
    env.write_config("http://127.0.0.1:9/x")
    # -X importtime: a line on stderr as each module is imported, the earliest sign that
    # the interpreter runs outboxd's own code.
    proc = subprocess.Popen([OUTBOXD[0], "-X", "importtime", *OUTBOXD[1:], "run", "-c",
                             str(env.config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    argparse_in = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.rpartition("|")[2].strip() == "argparse":
                argparse_in.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    sent, ready = 0, False
    try:
        assert argparse_in.wait(20) or proc.poll() is not None
        notify_socket.settimeout(0.001)  # a SIGHUP about every millisecond until READY
        deadline = time.monotonic() + 30
        while not ready and proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGHUP)
            sent += 1
            with contextlib.suppress(TimeoutError):
                ready = notify_socket.recv(4096) == b"READY=1"
        alive_at_ready = proc.poll() is None
        wait_for(lambda: proc.poll() is not None
                 or any("configuration reloaded" in line for line in lines),
                 what="the reload the early SIGHUPs ask for")
        running_after_reload = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ready and alive_at_ready, f"exit {proc.returncode}: {''.join(lines)[-1500:]}"
    assert sent > 1 and running_after_reload
    assert any("configuration reloaded" in line for line in lines)
    assert code == 0 and not any("Traceback" in line for line in lines)


SLOW = {"token": "wrong", "retry_max_seconds": 3600}  # a pause would last an hour
SEND_AT_ONCE = {"unattached": "send"}  # an invoice without attachments goes once settled


def _paused_by_the_token(env: Env, start_receiver: Any, start_daemon: Any
                         ) -> tuple[Receiver, Any]:
    """A daemon whose bundle the receiver refused with 401 (a wrong token), paused for an
    hour; the receiver and the daemon."""
    from helpers import drop_bundle
    receiver = start_receiver("--token", "right")
    # unattached = "send": the invoice goes as soon as it settles, not after the
    # attachment wait, which these tests are not about.
    env.write_config(receiver.url, delivery=SLOW, policy=SEND_AT_ONCE)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-P1", {})
    wait_for(lambda: any(r["status"] == 401 for r in receiver.requests()),
             what="the receiver to refuse the wrong token")
    wait_for(lambda: journal_states(env).get("INV-P1.xml") == "retrying",
             what="the bundle to be paused")
    assert env.sent_bundles() == []
    env.write_config(receiver.url, delivery={**SLOW, "token": "right"},
                     policy=SEND_AT_ONCE)  # the fix
    return receiver, daemon


def test_a_reload_that_fixes_the_token_delivers_paused_bundles_at_once(
        env: Env, start_receiver, start_daemon) -> None:
    """A bundle paused by a 401 (next attempt in retry_max_seconds, here an hour) is
    tried again as soon as a reload brings the right token, not an hour later."""
    receiver, daemon = _paused_by_the_token(env, start_receiver, start_daemon)
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(env.sent_bundles, what="the paused bundle in sent/ after the reload")
    assert [r["status"] for r in receiver.requests()][-1] == 201


def test_a_restart_tries_a_paused_bundle_at_once(env: Env, start_receiver,
                                                 start_daemon) -> None:
    """A restart after the token is fixed delivers a paused bundle at once: the pause
    is journaled, so the next start does not wait out retry_max_seconds."""
    _, daemon = _paused_by_the_token(env, start_receiver, start_daemon)
    assert daemon.stop(signal.SIGTERM) == 0
    start_daemon()
    wait_for(env.sent_bundles, what="the paused bundle in sent/ after the restart")


def test_a_reload_to_another_receiver_retries_at_once_despite_the_old_retry_after(
        env: Env, start_receiver, start_daemon, tmp_path: Path) -> None:
    """A bundle the old receiver put off for an hour (503, Retry-After: 3600) goes to
    the new url at once when a reload changes it; the old answer binds only its sender."""
    from helpers import drop_bundle
    busy = start_receiver("--fail-first", ",".join(["503"] * 5), "--retry-after", "3600",
                          store=tmp_path / "busy")
    env.write_config(busy.url, policy=SEND_AT_ONCE)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-P1", {})
    wait_for(lambda: journal_states(env).get("INV-P1.xml") == "retrying",
             what="the bundle to be put off")
    assert [r["status"] for r in busy.requests()] == [503]

    other = start_receiver(store=tmp_path / "other")
    env.write_config(other.url, policy=SEND_AT_ONCE)
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(env.sent_bundles, what="the bundle in sent/ after the reload")
    assert [r["status"] for r in other.requests()] == [201]


def test_the_loop_sends_watchdog_keepalives_when_systemd_asks(
        env: Env, receiver: Receiver, start_daemon, notify_socket: socket.socket,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With WatchdogSec set (WATCHDOG_USEC; here 0.4 s) the running daemon sends
    WATCHDOG=1 on $NOTIFY_SOCKET again and again after READY=1, at half the interval."""
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    # Each message's gap is taken from the kernel's arrival stamp (SO_TIMESTAMPNS), not
    # from when this test got round to recv(): held up by a loaded host, the test took two
    # queued pings back to back (0.06 s "apart") and failed "never a burst".
    notify_socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    env.write_config(receiver.url)
    start_daemon()
    messages = [_stamped(notify_socket)[0]]
    assert messages == ["READY=1"]
    pings: list[float] = []
    while len(pings) < 4:
        message, arrived = _stamped(notify_socket)
        if message == "WATCHDOG=1":
            pings.append(arrived)
    # About 0.2 s apart (half of 0.4 s), never a burst; the upper bound is loose, as a
    # busy test machine may hold the loop up for a moment.
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert all(0.1 < g < 2.0 for g in gaps), gaps


# <asm-generic/socket.h> (x86_64, arm64 …); the socket module does not name it.
SO_TIMESTAMPNS = 35


def _stamped(sock: socket.socket) -> tuple[str, float]:
    """The next datagram and when the kernel queued it (seconds on its wall clock, used
    only for gaps a second apart at most)."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16))
    [(level, kind, stamp)] = ancillary
    assert (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS)
    seconds, nanoseconds = struct.unpack("qq", stamp)
    return data.decode(), seconds + nanoseconds / 1e9


def test_files_the_daemon_creates_are_never_readable_by_others(
        env: Env, receiver: Receiver) -> None:
    """outboxd sets umask 027 itself (the journal and the folders it creates hold
    money-bearing documents): started with umask 000, nothing it creates in a real run
    is readable by others or writable by the group — the state, sent and quarantine
    folders, the journal with its -wal and -shm, the pid and ready files, the compiled
    rules, the day and entry folders, receipt.json, reason.json, REASON.txt, the
    ubl-embedded documents kept in NAME.embedded/ and that folder, NAME.errors.txt, the
    status page and the work folders of .outboxd/. What the clerks dropped keeps the
    mode they gave it (a rename keeps it)."""
    from conftest import OUTBOXD
    env.write_config(receiver.url, delivery={"format": "ubl-embedded"},
                     policy={"unattached": "send"}, service={"reader_processes": 0})
    cmd = ["sh", "-c", 'umask 000 && exec "$@"', "sh", *OUTBOXD, "run", "-c", str(env.config)]
    daemon = Proc(cmd, env.root / "umask.log")
    try:
        journal = env.state / "journal.sqlite3"
        wait_for(lambda: "outboxd running" in daemon.stderr() and journal.exists(),
                 what="the daemon to start and make its journal")
        drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()}, ubl_invoice("INV-1"))  # sent
        drop_bundle(env.outbox, "INV-2", {"x.exe": b"MZ" + b"\0" * 64},
                    ubl_invoice("INV-2"))  # quarantined
        # Held with NAME.errors.txt whatever the policy: its sidecar has a paper's name.
        drop_bundle(env.outbox, "REASON.txt", {"a.pdf": pdf_bytes()}, ubl_invoice("INV-3"))
        page = env.outbox / "outboxd-status.html"
        wait_for(lambda: env.sent_bundles() and env.quarantined() and page.exists()
                 and (env.outbox / "REASON.txt.errors.txt").exists(),
                 what="one bundle sent, one quarantined, one held, and the page")
        [sent], [quarantined] = env.sent_bundles(), env.quarantined()
        wait_for(lambda: (sent / "receipt.json").exists()
                 and (quarantined / "REASON.txt").exists(), what="the papers")
        made = [journal, env.state, env.sent, env.quarantine, env.processing, page,
                sent.parent, sent, sent / "receipt.json", sent / "INV-1.embedded",
                sent / "INV-1.embedded" / "INV-1--INV-1.xml", quarantined.parent,
                quarantined, quarantined / "reason.json", quarantined / "REASON.txt",
                env.outbox / "REASON.txt.errors.txt", env.state / "outboxd.ready",
                journal.with_name("journal.sqlite3-wal"), *env.state.rglob("*"),
                *(env.outbox / ".outboxd").rglob("*")]
        for path in made:
            mode = os.lstat(path).st_mode
            assert mode & 0o027 == 0, f"{path}: {oct(mode)}"
    finally:
        assert daemon.stop() == 0


def test_a_second_daemon_on_the_state_dir_stops_and_status_tells_a_stopped_one(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An admin runs `outboxd run` in a shell while the service runs: the second stops at
    once with exit 1 and a line naming the first, no traceback, and the first goes on.
    Once the daemon is stopped, `status` says on stderr that no daemon runs (its counts
    are what it left); stdout stays as it was."""
    env.write_config(receiver.url)
    first = start_daemon()
    # The second gives up after 0.2 s, not the 2 s it tries for a lock a `status` holds
    # a moment (statelock.TAKE_SECONDS): the first holds it for good either way.
    second = subprocess.run([*outboxd_with({"daemon.loop.statelock.TAKE_SECONDS": 0.2}),
                             "run", "-c", str(env.config)], capture_output=True,
                            text=True, timeout=60)
    assert second.returncode == 1
    assert f"another outboxd (process {first.popen.pid}) runs with the state dir" in \
        second.stderr and "Traceback" not in second.stderr
    assert first.popen.poll() is None
    live = subprocess.run([*OUTBOXD, "status", "-c", str(env.config)], capture_output=True,
                          text=True, timeout=60)
    assert live.returncode == 0 and "no outboxd is running" not in live.stderr
    wait_for(lambda: (env.state / "outboxd.ready").exists(), what="READY recorded")
    live_json = subprocess.run([*OUTBOXD, "status", "--json", "-c", str(env.config)],
                               capture_output=True, text=True, timeout=60).stdout
    assert first.stop() == 0
    stopped = subprocess.run([*OUTBOXD, "status", "-c", str(env.config)],
                             capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and stopped.stdout == live.stdout
    assert "no outboxd is running with the state dir" in stopped.stderr
    # The same for a monitoring check that reads only --json: "daemon" says it.
    live_daemon = json.loads(live_json)["daemon"]
    assert live_daemon.pop("started").endswith("Z")
    assert live_daemon == {"running": True, "ready": True, "notes": []}
    daemon = json.loads(subprocess.run(
        [*OUTBOXD, "status", "--json", "-c", str(env.config)], capture_output=True,
        text=True, timeout=60).stdout)["daemon"]
    assert daemon["running"] is False and daemon["ready"] is None
    assert "no outboxd is running with the state dir" in daemon["notes"][0]


# `outboxd run` whose start, past taking the state dir, waits (as on a share that hangs
# while sent/ is read back) until the file named by argv[1] exists.
_START_WAITS = [
    sys.executable, "-c",
    "import os, sys, threading\n"
    "from daemon.loop import service\n"
    "go = sys.argv.pop(1)\n"
    "real = service.restore_sent\n"
    "def waits(*args, **kwargs):\n"
    "    while not os.path.exists(go):\n"
    "        threading.Event().wait(0.05)\n"
    "    return real(*args, **kwargs)\n"
    "service.restore_sent = waits\n"
    "from daemon.entry import main\n"
    "sys.exit(main(sys.argv[1:]))"]


def test_status_tells_a_daemon_still_starting_from_one_ready(
        env: Env, receiver: Receiver) -> None:
    """A daemon stuck before READY=1 (here its start waits while it reads back sent/, as
    on a share that hangs; or one systemd keeps restarting) holds the state dir:
    `status --json` said `running: true` with no note, and a monitoring check said OK.
    It says `ready: false`, when it started, and a note that it is not ready yet; once
    the start goes on, `ready: true` and no note."""
    env.write_config(receiver.url)
    go = env.root / "go"
    daemon = Proc([*_START_WAITS, str(go), "run", "-c", str(env.config)],
                  env.root / "daemon.log")
    try:
        wait_for(lambda: (env.state / "outboxd.pid").exists(), what="the state dir held")

        def status() -> dict[str, Any]:
            done = subprocess.run([*OUTBOXD, "status", "--json", "-c", str(env.config)],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return dict(json.loads(done.stdout)["daemon"])
        starting = status()
        assert starting["running"] is True and starting["ready"] is False
        assert starting["started"].endswith("Z")
        [note] = starting["notes"]
        assert note.startswith(f"outboxd started at {starting['started']} but is not ready "
                               "yet"), note
        go.touch()
        ready = wait_for(lambda: (d := status())["ready"] and d, what="ready: true")
        assert ready["running"] is True and ready["notes"] == []
        assert ready["started"] == starting["started"]
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()


def test_run_and_its_reader_processes_never_import_rich(
        env: Env, start_daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """rich is the demo's: structlog.dev would import it (and pygments) in the daemon and
    in each reader process wherever it is installed, ~5 MB each. Python's import log
    (inherited by the spawned readers) of a start shows structlog imported by all three
    processes and no module of rich: a blocked `import rich` is listed by the name asked
    for (rich, rich.console) and goes no further."""
    import re
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    # Console logging: the readers' lines stay bare lines (JSON logging wraps them).
    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"},
                     service={"reader_processes": 2}, log={"format": "console"})
    daemon = start_daemon()
    imported = lambda: re.findall(r"\| +([\w.]+)$", daemon.stderr(), re.M)  # noqa: E731
    wait_for(lambda: imported().count("structlog") == 3, what="the two readers' imports")
    assert {m for m in imported() if m.split(".")[0] == "rich"} <= {"rich", "rich.console"}
