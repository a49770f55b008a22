"""NAME.errors.txt beside a held bundle's invoice file ([policy] invalid = "hold"): the
clerk's copy of why it does not move. Only a file that starts with one of our headers
is ours to replace or remove; a person's file of that name is left alone.

Invoice files of one stem (INV-1.xml and its print INV-1.pdf under the default
invoice_patterns) have one NAME.errors.txt: it explains every held bundle of that NAME,
each in a section headed by its invoice file's name when there are more than one, and
goes away only once none of them is held (`HeldErrors`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.bundle import Finding
from daemon.errors import NotOurs
from daemon.names import ERRORS_SUFFIX, escaped_controls
from daemon.ourfiles import Judged, opened, remove_ours, replace_ours
from daemon.scan import Candidate

ERRORS_HEADER = ("# outboxd: this bundle is held because of the errors below. Fix them;\n"
                 "# it is checked again on every change and this file goes away once it passes.\n")
ERRORS_HEADER_MANY = (
    "# outboxd: these invoice files of one name are held, each because of the errors\n"
    "# under its name below. Fix them; each is checked again on every change and this\n"
    "# file goes away once none of them is held.\n")
_OURS = (ERRORS_HEADER, ERRORS_HEADER_MANY)


def errors_file_for(cand: Candidate) -> Path:
    return cand.invoice.with_name(cand.name + ERRORS_SUFFIX)


def _judge(path: Path) -> tuple[Judged | None, str]:
    """What is at NAME.errors.txt: (the file, open, and its text) if it is ours, one that
    starts with one of our headers; (None, "") if nothing is there; NotOurs if anything
    else is (OSError: it cannot be looked at). Looked at as an input is (never opened if
    a link, a FIFO or a device: one swapped in would block the loop), and read only up
    to 1 MiB: ours is a few lines."""
    file = opened(path, lambda what: NotOurs(f"{path.name}: {what}"))
    if file is None:
        return None, ""
    try:
        size = file.st.st_size
        text = os.pread(file.fd, size + 1, 0).decode("utf-8") if size <= 1 << 20 else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if not text.startswith(_OURS):
        os.close(file.fd)
        raise NotOurs(f"{path.name}: not written by outboxd")
    return file, text


def _ours(path: Path) -> Judged | None:
    """NAME.errors.txt, open, if it is ours to remove; None if nothing of ours is there."""
    try:
        return _judge(path)[0]
    except NotOurs:
        return None


def _lines(errors: tuple[Finding, ...]) -> str:
    # As the page shows these lines: a name's bidirectional controls (U+202E) as \u202e.
    return "".join(f"{escaped_controls(f.line())}\n" for f in errors)


def errors_text(held: Mapping[str, tuple[Finding, ...]]) -> str:
    """The file's text for the held bundles of one NAME, by invoice file: one bundle's
    lines under the one-bundle header, or a section for each, in name order."""
    if len(held) == 1:
        [errors] = held.values()
        return ERRORS_HEADER + _lines(errors)
    return ERRORS_HEADER_MANY + "".join(
        f"\n== {escaped_controls(name)} ==\n{_lines(held[name])}" for name in sorted(held))


def write_errors_file(path: Path, held: Mapping[str, tuple[Finding, ...]], log: Any) -> None:
    """Write the errors of the held bundles of path's NAME, by invoice file (or, with
    none, remove our file); OSError if that fails. `log` is bound to the invoice file
    whose change this follows."""
    if not held:
        remove_ours(path, lambda: _ours(path))
        return
    text = errors_text(held)
    try:
        file, current = _judge(path)
        if file is not None:
            os.close(file.fd)
        if current != text:
            replace_ours(path, text.encode("utf-8"), lambda: _judge(path)[0])
    except NotOurs:
        log.error("not replacing a file outboxd did not write: rename or remove it to see "
                  "outboxd's explanation of the held bundle there", file=path.name)


class HeldErrors:
    """What each NAME.errors.txt is to explain: the held bundles of that NAME, by
    invoice file, with their errors (loop thread only). Kept here rather than asked of
    the other files each time: a file of the NAME not read again since a start is
    known only by its journal row (`remember`)."""

    def __init__(self) -> None:
        self._held: dict[Path, dict[str, tuple[Finding, ...]]] = {}

    def remember(self, cand: Candidate, errors: tuple[Finding, ...]) -> None:
        """A bundle held as its journal row says (taken over at start), file untouched."""
        if errors:
            self._held.setdefault(errors_file_for(cand), {})[cand.invoice.name] = errors

    def explains(self, cand: Candidate) -> bool:
        return cand.invoice.name in self._held.get(errors_file_for(cand), {})

    def update(self, cand: Candidate, errors: tuple[Finding, ...], log: Any) -> None:
        """cand's bundle is held with `errors`, or (none) no longer held: its NAME's
        errors file rewritten for all of that NAME still held, or removed once none
        is. OSError if it cannot be written."""
        path = errors_file_for(cand)
        held = self._held.setdefault(path, {})
        if errors:
            held[cand.invoice.name] = errors
        else:
            held.pop(cand.invoice.name, None)
        if not held:
            del self._held[path]
        write_errors_file(path, held, log)
