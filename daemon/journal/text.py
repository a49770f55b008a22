"""Every text the journal writes and reads back, in one place: a name from the share that
is not UTF-8 (Linux names are bytes; Python gives each undecodable byte as a lone
surrogate, U+DC80-U+DCFF) cannot be written to SQLite as it is — sqlite3 raised
UnicodeEncodeError, and whichever caller passed it failed, the loop with a traceback at
every rescan. So the journal keeps each lone surrogate as its code, `\\udcNN`, and a
backslash that would begin such a code (or the code of a backslash, `\\u005c`) as
`\\u005c`: a mapping without loss, so that a row read back — after a restart too — holds
the very name os.listdir gives, and a name that holds the six characters `\\udce9` typed
by a clerk is never taken for the byte 0xE9. Any other text is stored as it is: the
journal of an earlier version reads the same (docs/changes.md says what differs).

Each string inside a JSON column goes through the same mapping, before json.dumps: a
JSON escape of a lone surrogate would reach SQLite's json_each (the invoice ids sent) as
bytes that are not UTF-8, and fail every read of them.
"""

from __future__ import annotations

import json
import re
from typing import Any

# What stored() writes as a code: a lone surrogate, and a backslash before text that
# read() would take for a code.
_TO_CODE = re.compile(r"[\ud800-\udfff]|\\(?=u(?:005c|d[89a-f][0-9a-f]{2}))")
# What read() takes back: only the codes stored() writes (lower case hex), so that text
# with `\uDCE9` or `\u00e9` in it is read as it was written.
_CODE = re.compile(r"\\u(005c|d[89a-f][0-9a-f]{2})")
_BACKSLASH = "\\u005c"
_LONE = re.compile("[\ud800-\udfff]")


# The part of a stored invoice_file before its first dot (all of it without one): the
# same for a name and its stem (names.stem cuts at the last dot), so that the invoice
# files of some stems are picked out in SQL by it (a string function a row, nothing
# decoded), and the few it lets through ("S.b.xml" for "S") matched by stem after. A
# code stored() writes holds no dot.
BEFORE_FIRST_DOT = "substr(invoice_file, 1, instr(invoice_file || '.', '.') - 1)"


def _code(m: re.Match[str]) -> str:
    return _BACKSLASH if m[0] == "\\" else f"\\u{ord(m[0]):04x}"


def stored(text: str) -> str:
    """`text` as the journal writes it: always valid UTF-8, read() gives `text` back."""
    if text.isascii() and "\\" not in text:
        return text  # nearly every value: no pass of the regex
    return _TO_CODE.sub(_code, text)


def read(text: str) -> str:
    """A text the journal holds as it was given to stored()."""
    if "\\u" not in text:
        return text
    return _CODE.sub(lambda m: chr(int(m[1], 16)), text)


def read_or_none(text: str | None) -> str | None:
    return None if text is None else read(text)


def stored_value(value: Any) -> Any:
    """A JSON value (dicts, lists, strings …) with each string, keys too, stored()."""
    if isinstance(value, str):
        return stored(value)
    if isinstance(value, dict):
        return {stored(k) if isinstance(k, str) else k: stored_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stored_value(v) for v in value]
    return value


def read_value(value: Any) -> Any:
    """stored_value's reverse, of a JSON value as json.loads gives it."""
    if isinstance(value, str):
        return read(value)
    if isinstance(value, dict):
        return {read(k): read_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [read_value(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """A JSON column's text as the journal writes it."""
    plain = json.dumps(value, ensure_ascii=False)
    # No backslash in the JSON text: no string in it holds one (nor a control character,
    # which JSON writes as \uNNNN). Then only a lone surrogate needs stored(): the walk
    # through every value is for those few texts only (a delivered bundle's receipt keeps
    # a manifest of thousands of attachments).
    if "\\" not in plain and (plain.isascii() or not _LONE.search(plain)):
        return plain
    return json.dumps(stored_value(value), ensure_ascii=False)


def loads(text: str) -> Any:
    """A JSON column's value (ValueError, RecursionError as json.loads raises them)."""
    value = json.loads(text)
    return value if "\\u" not in text else read_value(value)


def escape_earlier(db: Any, text_columns: tuple[str, ...], json_columns: tuple[str, ...]
                   ) -> None:
    """Rewrite, in the caller's transaction, what a journal of an earlier version holds
    as stored() writes it: its text is what it is (it could hold no lone surrogate), but
    read() would take a `\\udcNN` or `\\u005c` in it — six characters a clerk typed into
    a name, or a code an earlier version wrote into a message — for a code, and the name
    of a row would no longer be the file's. Only rows holding `\\u` are read: at an
    upgrade, once."""
    have = {r[1] for r in db.execute("PRAGMA table_info(bundles)")}
    cols = [c for c in (*text_columns, *json_columns) if c in have]
    where = " OR ".join(f"instr({c}, '\\u') > 0" for c in cols)
    for row in db.execute(f"SELECT id, {', '.join(cols)} FROM bundles WHERE {where}"
                          ).fetchall():
        values = [_escaped(c in json_columns, v) for c, v in zip(cols, row[1:], strict=True)]
        db.execute(f"UPDATE bundles SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                   (*values, row[0]))
    for table, col in (("transitions", "detail"), ("sent_invoices", "invoice_id")):
        for rowid, value in db.execute(f"SELECT rowid, {col} FROM {table} WHERE "
                                       f"instr({col}, '\\u') > 0").fetchall():
            db.execute(f"UPDATE {table} SET {col} = ? WHERE rowid = ?",
                       (stored(value), rowid))


def _escaped(is_json: bool, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not is_json:
        return stored(value)
    try:
        return dumps(json.loads(value))
    except (ValueError, RecursionError):
        return value  # edited by hand: records shows it as unreadable, as before
