"""Watching: events become hints about top-level names; our own reads are not hints."""

from __future__ import annotations

from pathlib import Path

from watchdog.events import (
    DirModifiedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from daemon.watch import Watcher, _Hints, choose_mode


def hints_for(root: Path, *events: object) -> list[str]:
    got: list[str] = []
    handler = _Hints(root, got.append)
    for e in events:
        handler.on_any_event(e)  # type: ignore[arg-type]
    return got


class TestHints:
    def test_a_file_in_a_sidecar_hints_the_sidecar_name(self, tmp_path: Path) -> None:
        """A change deep in a sidecar names the top-level entry to look at again."""
        assert hints_for(tmp_path, FileCreatedEvent(str(tmp_path / "INV-1" / "a.pdf"))) == \
            ["INV-1"]

    def test_a_rename_into_place_hints_the_new_name(self, tmp_path: Path) -> None:
        """Written under a temporary name and renamed: the final name is a hint too."""
        got = hints_for(tmp_path, FileMovedEvent(str(tmp_path / ".INV-1.xml.tmp"),
                                                 str(tmp_path / "INV-1.xml")))
        assert got == ["INV-1.xml"]

    def test_reads_do_not_wake_the_loop(self, tmp_path: Path) -> None:
        """Opening and closing a file without writing (our own hashing) gives no hint, or the
        loop would wake itself in a busy circle."""
        path = str(tmp_path / "INV-1" / "a.pdf")
        assert hints_for(tmp_path, FileOpenedEvent(path), FileClosedNoWriteEvent(path)) == []
        assert hints_for(tmp_path, FileClosedEvent(path)) == ["INV-1"]  # a write finished

    def test_our_own_dot_folder_and_the_root_give_no_hints(self, tmp_path: Path) -> None:
        """.outboxd/processing lives inside the outbox; its churn is not a hint."""
        got = hints_for(tmp_path, FileCreatedEvent(str(tmp_path / ".outboxd" / "p" / "x")),
                        DirModifiedEvent(str(tmp_path)))
        assert got == []


class TestWatcher:
    def test_a_missing_outbox_raises_oserror_for_the_caller_to_log(self, tmp_path: Path) -> None:
        """Starting on a folder that is gone raises OSError (the service logs it and retries
        at the next rescan) instead of killing a thread silently."""
        import pytest
        w = Watcher(tmp_path / "gone", "inotify", 1.0, lambda _: None)
        with pytest.raises(OSError):
            w.ensure_alive()
        w.stop()

    def test_auto_polls_only_on_network_file_systems(self, tmp_path: Path) -> None:
        """watch = "auto" picks inotify for a local temp folder; explicit modes are kept."""
        assert choose_mode("auto", tmp_path) == "inotify"
        assert choose_mode("polling", tmp_path) == "polling"
