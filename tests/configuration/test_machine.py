"""This machine's id as the settings fingerprint names it (machine.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.configuration import machine


def test_the_machine_id_is_stable_differs_by_machine_and_never_shows_the_raw_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two machine-id files give two ids, the same file the same id each time; the id
    written on the share is a keyed hash, not the machine-id (systemd's rule: it is the
    machine's secret)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    b.write_text("9b1c0ffee0ddf00d9b1c0ffee0ddf00d\n")
    monkeypatch.setattr(machine, "MACHINE_ID_FILES", (str(a),))
    first = machine.machine_id()
    assert first == machine.machine_id() and len(first) == 16
    assert first not in a.read_text()
    monkeypatch.setattr(machine, "MACHINE_ID_FILES", (str(b),))
    assert machine.machine_id() != first


def test_without_a_machine_id_file_the_full_host_name_stands_for_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No /etc/machine-id nor dbus's (or an empty one, or a FIFO, which is never opened):
    the id is the full host name's, so fin01.old and fin01.new (both short name fin01)
    are still told apart, and the same name gives the same id at each start."""
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setattr(machine, "MACHINE_ID_FILES", (str(tmp_path / "none"), str(empty)))
    monkeypatch.setattr(machine, "machine_name", lambda: "fin01.old.example")
    old = machine.machine_id()
    assert old == machine.machine_id()
    monkeypatch.setattr(machine, "machine_name", lambda: "fin01.new.example")
    assert machine.machine_id() != old


def test_a_machine_id_path_that_is_no_file_is_passed_over_not_a_failed_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/etc/machine-id as a folder (what `docker run -v /etc/machine-id:/etc/machine-id`
    makes of a host without the file), a FIFO (never opened: it would block) or a file far
    too large: the next file is read, else the host name stands for the machine. Never
    the reader's NotAFile up through Deciding(), which ended the start with a traceback
    and `outboxd status` with it."""
    folder, fifo, big = tmp_path / "machine-id", tmp_path / "fifo", tmp_path / "big"
    folder.mkdir()
    os.mkfifo(fifo)
    big.write_bytes(b"0" * 5000)
    good = tmp_path / "dbus-machine-id"
    good.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    monkeypatch.setattr(machine, "MACHINE_ID_FILES", (str(good),))
    expected = machine.machine_id()
    monkeypatch.setattr(machine, "MACHINE_ID_FILES", (str(folder), str(fifo), str(big),
                                                      str(good)))
    assert machine.machine_id() == expected
    monkeypatch.setattr(machine, "MACHINE_ID_FILES", (str(folder), str(fifo), str(big)))
    monkeypatch.setattr(machine, "machine_name", lambda: "fin01.old.example")
    assert len(machine.machine_id()) == 16
