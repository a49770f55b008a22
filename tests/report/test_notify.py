"""sd_notify over $NOTIFY_SOCKET: one datagram a message, and never a stalled loop."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from daemon.report.notify import notify


def test_a_message_arrives_as_one_datagram(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """notify() sends the message as it is to $NOTIFY_SOCKET and says it did."""
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("STATUS=1 waiting, 0 sent today")
        assert sock.recv(4096) == b"STATUS=1 waiting, 0 sent today"


def test_a_socket_nobody_reads_does_not_block(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """When the supervisor does not drain its socket, messages beyond what the socket
    queues are dropped (notify returns False) instead of stalling the daemon's loop."""
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        results: list[bool] = []
        # On a thread, so that a send that blocks fails this test instead of hanging the suite.
        sender = threading.Thread(target=lambda: results.extend(
            notify(f"STATUS={n} waiting") for n in range(1000)), daemon=True)
        sender.start()
        sender.join(timeout=30)
        assert not sender.is_alive(), "notify() blocked on a socket nobody reads"
    assert results[0] and not all(results)


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not run by systemd: notify() is a no-op that returns False."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_the_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd's WatchdogSec arrives as WATCHDOG_USEC: the daemon pings at half of it, and
    not at all without it or when WATCHDOG_PID names another process (a parent's)."""
    import os

    from daemon.report.notify import watchdog_interval
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None


def test_an_abstract_notify_socket_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """$NOTIFY_SOCKET starting with "@" names a socket in the abstract namespace, as
    systemd may hand it out."""
    import os
    name = f"outboxd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


def test_start_progress_is_said_at_most_once_a_second(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A start step of thousands of quick parts sends EXTEND_TIMEOUT_USEC= once a second,
    not once a part (the socket queues only a few datagrams)."""
    from daemon.report.notify import StartProgress
    now = [100.0]
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        progress = StartProgress("reading", clock=lambda: now[0])
        for part in ("a", "b", "c"):
            progress(part)
            now[0] += 0.6
        got = []
        with pytest.raises(BlockingIOError):
            while True:
                got.append(sock.recv(4096).decode())
    assert [m.splitlines()[0] for m in got] == ["STATUS=starting: reading (a)",
                                                "STATUS=starting: reading (c)"]


def test_a_watchdog_usec_that_is_no_number_asks_for_no_keep_alives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """WATCHDOG_USEC set by hand to something that is no whole number of microseconds
    ("30s", "1.5e7"): no keep-alives are scheduled, and the daemon starts — not a
    ValueError at start."""
    from daemon.report.notify import watchdog_interval
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    for value in ("30s", "1.5e7"):
        monkeypatch.setenv("WATCHDOG_USEC", value)
        assert watchdog_interval() is None
