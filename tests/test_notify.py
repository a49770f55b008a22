"""sd_notify over $NOTIFY_SOCKET: one datagram a message, and never a stalled loop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from daemon.notify import notify


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
        results = [notify(f"STATUS={n} waiting") for n in range(1000)]
    assert results[0] and not all(results)


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not run by systemd: notify() is a no-op that returns False."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
