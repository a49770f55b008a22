"""Stand-ins for reader_process.main that the reader-pool tests spawn (a spawned child
imports its target by name, so they live in a module of their own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon import reader_process


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
