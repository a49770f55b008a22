"""Stand-ins for reader_process.main that the reader-pool tests spawn (a spawned child
imports its target by name, so they live in a module of their own)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.reading import reader_process


class _GarbageOnce:
    """A connection that replaces the first answer after "ready" with bytes that are
    no pickle, once per marker file (a replacement child then answers properly)."""

    def __init__(self, conn: Any, marker: Path) -> None:
        self._conn, self._marker, self._sent = conn, marker, 0

    def recv_bytes(self) -> bytes:
        data: bytes = self._conn.recv_bytes()
        return data

    def send_bytes(self, data: bytes) -> None:
        self._sent += 1
        if self._sent == 2:
            try:
                self._marker.touch(exist_ok=False)
            except FileExistsError:
                pass
            else:
                data = b"\x80\x05 this is not a pickle"
        self._conn.send_bytes(data)


def garbage_once(conn: Any, cache_dir: str, engine: bool, log: Any) -> None:
    marker = Path(cache_dir) / "garbage-sent"
    reader_process.main(_GarbageOnce(conn, marker), cache_dir, engine, log)  # type: ignore[arg-type]


def _hang() -> None:
    """A library caught in a loop that no exception ends (here: one that never returns)."""
    threading.Event().wait()


def _main_with(pause: Callable[[Any, Any], None], conn: Any, cache_dir: str, engine: bool,
               log: Any) -> None:
    """reader_process.main, with pause(cand, known) before each call's work."""
    real = reader_process.run

    def run(cand: Any, settings: Any, known: Any, cache: Any, *more: Any) -> Any:
        pause(cand, known)
        return real(cand, settings, known, cache, *more)

    reader_process.run = run  # type: ignore[assignment]
    reader_process.main(conn, cache_dir, engine, log)


def _loop_files(cand: Any, known: Any) -> None:
    if cand.invoice.name.startswith("LOOP"):
        _hang()


def _checks(cand: Any, known: Any) -> None:
    if known is not None:
        _hang()


def _slow_files(cand: Any, known: Any) -> None:
    if cand.invoice.name.startswith("SLOW"):
        threading.Event().wait(0.2)


def hangs_on_loop_files(conn: Any, cache_dir: str, engine: bool, log: Any) -> None:
    """Reads of bundles named LOOP… never end, as in a PDF built to make pypdf loop."""
    _main_with(_loop_files, conn, cache_dir, engine, log)


def hangs_on_checks(conn: Any, cache_dir: str, engine: bool, log: Any) -> None:
    """Checks after a claim (a known bundle) never end, as hashing on a share that stalls."""
    _main_with(_checks, conn, cache_dir, engine, log)


def slow_reads(conn: Any, cache_dir: str, engine: bool, log: Any) -> None:
    """Reads of bundles named SLOW… take 0.2 s each: work, not a loop."""
    _main_with(_slow_files, conn, cache_dir, engine, log)


def warm_up_fails(conn: Any, cache_dir: str, engine: bool, log: Any) -> None:
    """Loading Pillow's plugins ahead fails with what an import can raise besides
    ImportError (a damaged extension module: OSError)."""
    from daemon.validation import imageprobe

    def fails() -> None:
        raise OSError("cannot load PIL/_imaging: file too short")

    imageprobe.warm_up = fails  # type: ignore[assignment]
    reader_process.main(conn, cache_dir, engine, log)


def pid_of_reader(cand: Any, settings: Any) -> int:
    """A command's job (Readers.read): the process it ran in."""
    import os
    return os.getpid()


def refuses(cand: Any, settings: Any) -> None:
    """A command's job that finds the file breaks a rule."""
    from daemon.errors import InputError
    raise InputError("pdf-unreadable", cand.invoice.name, "is not a readable PDF")


def gc_of_reader(cand: Any, settings: Any) -> tuple[bool, int]:
    """A command's job (Readers.read): whether the reader's garbage collector is on, and
    how many objects it has frozen out of its passes."""
    import gc
    return gc.isenabled(), gc.get_freeze_count()
