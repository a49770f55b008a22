"""`outboxd status --json`: the journal's view and the outbox's lists as one JSON object,
one line a bundle (docs/operations.md, "outboxd status --json for scripts"). Names are
exact: a character that could drive a terminal or break a line is written as JSON's own
escape (invisible.json_escaped), so a parser gives the name on disk back."""

from __future__ import annotations

import json
from typing import Any

from daemon.claiming.foreign import Foreign
from daemon.invisible import json_escaped
from daemon.watching.lonefolders import LoneFolder


def lone_json(lone: list[LoneFolder]) -> list[dict[str, Any]]:
    """`status --json`'s `lone_folders`: each folder by its exact name (a control
    character in it written as JSON's escape by as_json), as a script finds it on disk;
    one whose name is not UTF-8 as shown, which JSON of UTF-8 text cannot carry."""
    return [{"folder": x.on_disk if x.on_disk.isascii() or _is_utf8(x.on_disk) else x.name,
             "since": x.since, "close_to": list(x.close_to)} for x in lone]


def _is_utf8(name: str) -> bool:
    try:
        name.encode()  # a byte that is not UTF-8 is a lone surrogate here: refused
    except UnicodeEncodeError:
        return False
    return True


def foreign_json(foreign: list[Foreign]) -> list[dict[str, Any]]:
    """`status --json`'s `foreign_work_folders`."""
    return [{"folder": x.name, "host": x.host, "since": x.since} for x in foreign]


# json.dumps(v, ensure_ascii=False), without an encoder made for each of a week's
# 100,000 bundles (json.dumps caches only the one of its default arguments).
_dumps = json.JSONEncoder(ensure_ascii=False).encode


def as_json(data: dict[str, Any]) -> str:
    """Pretty enough to read, fast enough for a journal of years: one line per bundle.

    json's indent= runs its pure-Python encoder (a third of a second for the last
    week of a busy journal); each line here is one call of the C encoder.
    """
    def value(v: Any) -> str:
        if isinstance(v, list):
            items = ",\n    ".join(json_escaped(_dumps(x)) for x in v)
            return f"[\n    {items}\n  ]" if v else "[]"
        return json_escaped(_dumps(v))
    body = ",\n".join(f"  {json.dumps(k)}: {value(v)}" for k, v in data.items())
    return "{\n" + body + "\n}"
