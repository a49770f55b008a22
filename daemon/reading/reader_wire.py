"""What crosses the pipe between the daemon and a reader process, and how it is
pickled cheaply.

Every Candidate and Bundle carries several `pathlib.Path`s. By default a Path
pickles as its parts and unpickling parses them all again (on Python 3.11 about
12 µs a path, several per bundle, in the daemon's one interpreter lock). Here a
PosixPath travels as its string and is rebuilt from it: on 3.11 from the parts
split off that string (it is already normalised, so nothing needs parsing), on
3.12 and later with the plain constructor, which parses lazily there. The
public types stay as they are; only the pipe's own pickler knows this.

Messages: to a reader `(settings version, settings pickle or None, calls)`, each call
`(call id, Candidate, known Bundle or None (for a check by hashes only its invoice
file's part, match.known_part), work folder or None, a command's job or None
(reader_child.Call.job: a function, pickled by name))` — one call, or the checks of a
claim batch that went to this reader; back, for each call, `(call id, packed
outcome)`, call id 0 being the reader's "ready" with why the engine did not load (or
None).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import sys
from pathlib import PosixPath
from typing import Any

__all__ = ["dumps", "loads"]

if sys.version_info < (3, 12):
    def _path(text: str) -> PosixPath:
        """A PosixPath from str() of one (normalised: no empty or "." part)."""
        if text[:1] == "/" and text[1:2] != "/":  # "//x" keeps its two slashes: parse it
            parts = ["/", *text[1:].split("/")] if len(text) > 1 else ["/"]
            made: PosixPath = PosixPath._from_parsed_parts("", "/", parts)  # type: ignore[attr-defined]
            made._str = text  # type: ignore[attr-defined]  # what str() would join again
            return made
        return PosixPath(text)
else:  # pragma: no cover - parsing is lazy there
    _path = PosixPath


def _reduce_path(path: PosixPath) -> tuple[Any, tuple[str]]:
    return _path, (str(path),)


_TABLE = copyreg.dispatch_table.copy()
_TABLE[PosixPath] = _reduce_path


def dumps(obj: Any) -> bytes:
    """pickle.dumps, with PosixPaths as strings (see the module's docstring)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _TABLE
    pickler.dump(obj)
    return buf.getvalue()


loads = pickle.loads
