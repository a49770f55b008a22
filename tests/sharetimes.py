"""Stats as a share shows them, for scan.py's and snapshot.py's looks at real files: one
that keeps no change time of its own (ctime = mtime), one that keeps times to 2 s (a FAT
disk in a NAS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.watching import scan as scan_mod
from daemon.watching import snapshot as snapshot_mod


class NoChangeTime:
    """A stat as a share without change times of its own shows it: ctime = mtime."""

    def __init__(self, st: os.stat_result) -> None:
        self._st = st
        self.st_ctime_ns = st.st_mtime_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._st, name)


_TWO_SECONDS = 2_000_000_000


class FatTimes(NoChangeTime):
    """A stat as a FAT disk behind a share shows it: times kept to 2 s, both of them."""

    def __init__(self, st: os.stat_result) -> None:
        super().__init__(st)
        self.st_mtime_ns = st.st_mtime_ns // _TWO_SECONDS * _TWO_SECONDS
        self.st_ctime_ns = st.st_ctime_ns // _TWO_SECONDS * _TWO_SECONDS


def no_change_times(monkeypatch: pytest.MonkeyPatch, shown_as: type[NoChangeTime] = NoChangeTime
                    ) -> None:
    """scan and snapshot see every lstat (os.lstat, DirEntry.stat) as such a share shows it."""
    real_scandir, real_lstat = os.scandir, os.lstat

    class Entry:
        def __init__(self, entry: os.DirEntry[str]) -> None:
            self._entry, self.name, self.path = entry, entry.name, entry.path

        def stat(self, *, follow_symlinks: bool = True) -> Any:
            return shown_as(self._entry.stat(follow_symlinks=follow_symlinks))

    class Listing:
        def __init__(self, path: Any = ".") -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> Iterator[Entry]:
            return (Entry(e) for e in self._it)

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    shown = SimpleNamespace(**{n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
    shown.scandir = Listing
    shown.lstat = lambda path, **kw: shown_as(real_lstat(path, **kw))
    for module in (scan_mod, snapshot_mod):  # the listing's lstats and the snapshot's
        monkeypatch.setattr(module, "os", shown)
