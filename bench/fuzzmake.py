"""How `python -m bench.fuzznames` makes an entry in the outbox (or its staging folder)
the ways clerks' clients do, and the record of it the oracle goes by: what each name
holds, kept true when a write through one name of a file changes its others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class Input:
    """One entry a drop made: where (relative to the outbox), what, and its content's hash."""

    rel: str
    kind: str  # "file", "empty", "symlink", "fifo", "dir"
    sha: str = ""
    note: str = ""
    # (st_dev, st_ino) of a file when made: the names of one file (hard links) share it,
    # so a write into one of them in place is known to have changed them all.
    inode: tuple[int, int] | None = None


# A file found where a write goes, and the inputs that are its content (Maker._replacing).
Before = tuple[os.stat_result, list[Input]] | None


@dataclass
class Maker:
    """Entries made in the outbox, and their record (inputs, log)."""

    outbox: Path
    stage: Path  # on the outbox's file system: folders built here are moved in whole
    outside: Path  # beside the outbox: links point here; nothing in it may change
    rng: random.Random
    inputs: list[Input] = field(default_factory=list)
    made: int = 0
    log: list[str] = field(default_factory=list)  # every entry made, in order
    pace: float = 0.05  # seconds between the pieces of a slow write
    skipped: dict[str, int] = field(default_factory=dict)

    def _record(self, rel: str, kind: str, data: bytes = b"", note: str = "",
                at: Path | None = None, how: str = "") -> None:
        sha = hashlib.sha256(data).hexdigest() if kind == "file" else ""
        inode = None
        if at is not None:
            with contextlib.suppress(OSError):
                st = at.lstat()
                inode = (st.st_dev, st.st_ino)
        self.note(f"{kind} {rel!r} {len(data)} {sha[:12]} {how} {note}".rstrip())
        self.inputs.append(Input(rel, kind if data or kind != "file" else "empty", sha, note,
                                 inode))

    def note(self, what: str) -> None:
        """A line of the trace (drops.txt): what was done to the outbox, in order."""
        self.log.append(f"{time.monotonic():.2f} {what}")

    def _try(self, what: str, fn: object, *args: object) -> bool:
        try:
            fn(*args)  # type: ignore[operator]
            return True
        except OSError as e:  # a name the file system refuses (too long, "." ...)
            self.skip(f"{what}: {e.strerror}")
            return False

    def _through_link(self, path: Path) -> bool:
        """A folder on the way is a link a drop made (a sidecar linked elsewhere): a
        clerk's copy would go where it points, out of the oracle's sight."""
        there = path.parent
        while not os.path.lexists(there):  # the folders mkdir would make: none yet
            there = there.parent
        if os.path.realpath(there) == os.path.abspath(there):
            return False
        self.skip("through a link")
        return True

    def write(self, base: Path, rel: str, data: bytes, how: str, note: str = "") -> None:
        """One file at base/rel, made `how`: written in place, under a dot-name renamed,
        slowly in pieces, or with old times kept (cp -p, robocopy /COPY:T)."""
        path = base / rel
        if self._through_link(path) or not self._try("mkdir", path.parent.mkdir, 0o777,
                                                     True, True):
            return
        before = self._replacing(path)
        if before is False:
            return
        if how == "rename":
            tmp = path.with_name(f".{self.made}.fuzz.tmp")
            if self._try("write", tmp.write_bytes, data) and self._try("rename", tmp.rename,
                                                                         path):
                self._replaced(rel, path, before, data, renamed=True)
                self._record(rel, "file", data, note, path, how)
            else:
                tmp.unlink(missing_ok=True)
            return
        if how == "slow" and len(data) > 64:
            try:
                with open(path, "wb") as fh:
                    step = max(1, len(data) // 4)
                    for at in range(0, len(data), step):
                        fh.write(data[at:at + step])
                        fh.flush()
                        time.sleep(self.pace)  # a client's pace between pieces, not a wait
            except OSError as e:
                self.skip(f"write: {e.strerror}")
                return
        elif not self._try("write", path.write_bytes, data):
            return
        self._replaced(rel, path, before, data, renamed=False)
        if how == "keep-times":
            old = time.time() - self.rng.uniform(86400, 86400 * 3000)
            os.utime(path, (old, old))
        self._record(rel, "file", data, note, path, how)

    def _replacing(self, path: Path) -> Before | Literal[False]:
        """Before a write onto path: the file there (None if none) and the inputs that are
        its content under any of its names; False if no write may go there: a special
        file, or one file with something outside the outbox (a hard link a drop made),
        which nothing may change."""
        try:
            st = path.lstat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            # A FIFO would block the write (no reader), a link would be followed.
            self.skip("taken by a special file")
            return False
        if st.st_nlink > 1 and any(os.path.samestat(st, os.lstat(os.path.join(folder, f)))
                                   for folder, _, files in os.walk(self.outside)
                                   for f in files):
            self.skip("a hard link out of the outbox")
            return False
        try:
            with open(path, "rb") as fh:
                old: str | None = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError:
            old = None  # unreadable (mode 000 without root): known by its inode alone
        # The content too: an inode number is used again once a file is gone.
        return st, [i for i in self.inputs if i.inode == (st.st_dev, st.st_ino)
                    and (old is None or i.sha == old)]

    def _replaced(self, rel: str, path: Path, before: Before, data: bytes,
                  renamed: bool) -> None:
        """After a write onto a file that was there: what that name held is gone by the
        clerk's hand, not the daemon's. Written in place (a client opening it for
        writing, as an SMB overwrite does), the file keeps its inode, so every other name
        of it (a hard link) now holds the new bytes too; renamed over, the other names
        keep the old ones. Written in place but there a file anew: the daemon took the
        old one away first, and has it."""
        if before is None:
            return
        st, names = before
        try:
            in_place = os.path.samestat(st, path.lstat())
        except OSError:
            in_place = False
        if not (in_place or renamed) or not names:
            return
        # One name of the file was written over: its record goes (the one of that name,
        # or one of them if that name came by a move the records do not follow).
        gone = next((i for i in names if i.rel == rel), names[0])
        self.inputs.remove(gone)
        if not in_place:
            return
        sha = hashlib.sha256(data).hexdigest()
        # No more names than the file has: a record beyond them is of a name that was
        # unlinked (by no drop: a loss), and must stay as it was for the oracle to see.
        for i in [i for i in names if i is not gone][:st.st_nlink - 1]:
            i.sha, i.kind = sha, "file" if data else "empty"
            i.note = f"{i.note}; rewritten through {rel!r}".lstrip("; ")
            self.note(f"rewritten {i.rel!r} {len(data)} {sha[:12]} through {rel!r} "
                      f"(one file, {st.st_nlink} names)")

    def hard_link(self, source: Path, base: Path, rel: str) -> None:
        """base/rel made a second name of the file at source (a hard link): one file."""
        path = base / rel
        if self._try("link", os.link, source, path):
            self._record(rel, "file", source.read_bytes(), "hard link", path)

    def skip(self, why: str) -> None:
        """An entry not made, counted by why (printed with the outcome)."""
        self.skipped[why] = self.skipped.get(why, 0) + 1
