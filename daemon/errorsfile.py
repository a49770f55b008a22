"""NAME.errors.txt beside a held bundle's invoice file ([policy] invalid = "hold"): the
clerk's copy of why it does not move. Only a file that starts with our header is ours
to replace or remove; a person's file of that name is left alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from daemon.bundle import Finding
from daemon.errors import InputError
from daemon.fsops import read_regular
from daemon.fswrite import write_atomic
from daemon.names import ERRORS_SUFFIX, escaped_controls
from daemon.scan import Candidate

ERRORS_HEADER = ("# outboxd: this bundle is held because of the errors below. Fix them;\n"
                 "# it is checked again on every change and this file goes away once it passes.\n")


def errors_file_for(cand: Candidate) -> Path:
    return cand.invoice.with_name(cand.name + ERRORS_SUFFIX)


def _text(path: Path) -> str | None:
    """NAME.errors.txt if it is a regular file we can read, else None. Opened as an
    input is (never a link, a FIFO or a device: one swapped in would block the loop),
    and at most 1 MiB: ours is a few lines."""
    try:
        data = read_regular(path, limit=1 << 20)
        return data.decode("utf-8") if data is not None else None
    except (InputError, OSError, UnicodeDecodeError):
        return None


def write_errors_file(path: Path, errors: tuple[Finding, ...], log: Any) -> None:
    """Write the errors (or, with none, remove our file); OSError if that fails. `log`
    is bound to the invoice file."""
    current = _text(path)
    ours = current is not None and current.startswith(ERRORS_HEADER)
    if not errors:
        if ours:
            path.unlink()
        return
    # As the page shows these lines: a name's bidirectional controls (U+202E) as \u202e.
    text = ERRORS_HEADER + "".join(f"{escaped_controls(f.line())}\n" for f in errors)
    if os.path.lexists(path) and not ours:
        log.error("not replacing a file outboxd did not write", file=path.name)
    elif current != text:
        write_atomic(path, text.encode("utf-8"))
