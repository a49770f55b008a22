"""The folders a configuration names (daemon/config_folders.py): created and writable
at start, never through a link, the processing folder on the outbox's file system;
`config --check` finds the same without creating anything."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.config_folders import folder_problems, prepare_folders
from daemon.errors import ConfigError


def test_processing_on_another_file_system_than_the_outbox_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claims are renames: a [paths] processing folder on another file system
    than the outbox (another st_dev) is a configuration error at start, not a claim
    failing forever; the default, inside the outbox, is fine."""
    outbox, processing = tmp_path / "outbox", tmp_path / "elsewhere" / "processing"
    outbox.mkdir()
    real = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real(path, *args, **kwargs)
        if Path(path) != processing:
            return st
        fields = list(st)
        fields[2] += 1  # st_dev: another file system
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "processing": str(processing)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert "another file system" in str(info.value) and "processing" in str(info.value)
    prepare_folders(s.model_copy(update={"paths": s.paths.model_copy(
        update={"processing": None})}))


def test_a_folder_that_exists_but_refuses_writes_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sent/ that exists but cannot be written (a read-only mount, a folder outside the
    unit's ReadWritePaths=, another owner; faked here, as root may write anywhere): run
    refuses at start naming the key, instead of failing at every archive later."""
    outbox, sent = tmp_path / "outbox", tmp_path / "sent"
    outbox.mkdir()
    sent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != sent
                        and real(path, mode, **kw))
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(sent)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert f"[paths] sent: cannot write in {sent}" in str(info.value)
    assert "read-only" in str(info.value) and "ReadWritePaths=" in str(info.value)


@pytest.mark.parametrize("linked", ["sent", ".outboxd"])
def test_a_folder_the_daemon_writes_that_is_a_link_stops_the_start(
        tmp_path: Path, linked: str) -> None:
    """sent/ (or .outboxd in the outbox, where the default processing folder lies) as a
    symbolic link would send bundles wherever it leads: run refuses at start, naming the
    link and the key, and config --check finds it without creating anything."""
    outbox, elsewhere = tmp_path / "outbox", tmp_path / "elsewhere"
    outbox.mkdir()
    elsewhere.mkdir()
    link = tmp_path / "sent" if linked == "sent" else outbox / ".outboxd"
    link.symlink_to(elsewhere)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(tmp_path / "sent")},
                 delivery={"url": "http://127.0.0.1:9/x"})
    key = "[paths] sent" if linked == "sent" else "[paths] processing"
    [problem] = folder_problems(s)
    assert problem.startswith(f"{key}: {link} is a symbolic link")
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert f"{link} is a symbolic link" in str(info.value)
    assert list(elsewhere.iterdir()) == []
