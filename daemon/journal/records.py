"""What the journal stores: the states, the schema, a row, and its times.

Kept apart from `Journal` (the one owner of the database, in __init__) so
that the shape of the data reads on one page.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.journal import text as stored_text

# States as `outboxd status` names them, plus three short-lived internal ones
# that recovery needs to tell apart.
LIVE = ("settling", "waiting", "held")  # still in the outbox
CLAIMING = "claiming"  # being moved into processing
DELIVERED = "delivered"  # receiver accepted; not yet archived in sent/
QUARANTINING = "quarantining"  # being moved into quarantine/
IN_FLIGHT = (CLAIMING, "delivering", "retrying", DELIVERED, QUARANTINING)
# The states an attempt moves between: one stretch for `since` (Journal.transition).
ATTEMPTING = frozenset({"delivering", "retrying"})
# A bundle is shown as sent or quarantined only once its archive folder is
# there; until then it is on its way, or "retrying" while a move keeps failing
# (last_error says why).
MOVING = (CLAIMING, DELIVERED, QUARANTINING)
# Sent, or claimed and on its way: the same content dropped again is a duplicate.
SENT_OR_GOING = ("sent", DELIVERED, CLAIMING, "delivering", "retrying")
SHOWN_AS = dict.fromkeys(MOVING, "delivering")


def shown_state(state: str, has_error: bool) -> str:
    if state in MOVING and has_error:
        return "retrying"
    return SHOWN_AS.get(state, state)


STATES = ("settling", "waiting", "held", "delivering", "retrying", "sent", "quarantined")

# What the transition to `sent` of a bundle another daemon sharing the outbox sent begins
# with: one learnt from its receipt in sent/ (sentnews.py), or one on its way here that
# the other finished (sentelsewhere.py). The status page marks such rows by it
# (Views.sent_by_others). Journals keep these words, and the index below is made of
# them: changed, rows written before would no longer be marked.
BY_ANOTHER = "sent by another daemon"
NEWS_DETAIL = BY_ANOTHER + ": read from sent/"
ELSEWHERE_DETAIL = BY_ANOTHER + ", which archived it in"
# The index's terms, written out: SQLite uses a partial index only for a query that holds
# them, as literals.
BY_ANOTHER_TERMS = f"substr(detail, 1, {len(BY_ANOTHER)}) = '{BY_ANOTHER}'"

# What `outboxd retry` writes on the quarantined row of a bundle it moves back, before the
# move (state `gone`, the row keeping its quarantine folder in archive_dir); the daemon
# finds the rows of a retry killed before its move by it (archiving/retrykilled.py).
# Journals keep these words: changed, such rows of an earlier retry would not be found.
RETRIED_DETAIL = "retried: moved back into the outbox by outboxd retry"

SCHEMA = """
CREATE TABLE IF NOT EXISTS bundles (
    id INTEGER PRIMARY KEY,
    bundle_id TEXT,
    invoice_file TEXT NOT NULL,
    invoice_ids TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    deadline TEXT,
    unattached_ids TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    reasons TEXT NOT NULL DEFAULT '[]',
    work_dir TEXT,
    archive_dir TEXT,
    receipt_id TEXT,
    response TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bundles_state ON bundles(state);
-- `status` lists the last week's sent and quarantined rows of a journal that
-- keeps years: a range on (state, since), not a scan of every row.
CREATE INDEX IF NOT EXISTS bundles_state_since ON bundles(state, since);
CREATE INDEX IF NOT EXISTS bundles_bundle_id ON bundles(bundle_id);
-- The look-alikes a quarantine left in the outbox (views.quarantined_for, asked at each
-- refresh of the status page): the few quarantined rows with that reason, not the
-- reasons of every row ever quarantined. A query uses it when it holds the same terms.
CREATE INDEX IF NOT EXISTS bundles_sidecar_spelling ON bundles(state, id)
    WHERE instr(reasons, '"code": "sidecar-spelling"') > 0;
-- Invoice ids the receiver has accepted, so "already sent in another bundle"
-- is an index lookup, not a scan of every sent row.
CREATE TABLE IF NOT EXISTS sent_invoices (
    invoice_id TEXT NOT NULL,
    bundle_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_invoices_id ON sent_invoices(invoice_id);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    bundle_row INTEGER NOT NULL REFERENCES bundles(id),
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
-- A row's transitions, its latest first (the rowid ends each key): what recovery asks of
-- each retrying row at a start, and what a transition in the same state compares its
-- detail with (every held-back, paused or failed-to-move bundle). Without it each such
-- look scanned back through every transition written since the row's own: 45 ms for a
-- row from the start of a year of 400 bundles a day (500,000 transitions). 6 MB a
-- year; made once, in 0.3 s on such a journal, by the first open for writing.
CREATE INDEX IF NOT EXISTS transitions_by_row ON transitions(bundle_row);
-- The rows another daemon sent (BY_ANOTHER), for the status page's mark: the few such
-- transitions, not the history of every row. An index only:
-- the schema's version is the same, and an older outboxd reads and writes the journal
-- as before (SQLite keeps the index up to date for it too).
CREATE INDEX IF NOT EXISTS transitions_by_another ON transitions(bundle_row)
    WHERE """ + BY_ANOTHER_TERMS + """;
"""

_SENT_INVOICES_FROM = ("INSERT INTO sent_invoices (invoice_id, bundle_id) SELECT j.value, "
                       "b.bundle_id FROM bundles AS b, json_each(b.invoice_ids) AS j WHERE ")
_JSON_FIELDS = ("invoice_ids", "unattached_ids", "reasons", "response")
_FIELDS = ("bundle_id", "invoice_file", "invoice_ids", "deadline", "unattached_ids",
           "attempts", "next_attempt_at", "last_error", "reasons", "work_dir", "archive_dir",
           "receipt_id", "response", "wait_began", "channel", "claimed_in")

# Schema versions (PRAGMA user_version): 1 sent_invoices; 2 the columns documents
# (ubl-embedded, added unversioned before) and wait_began; 3 channel; 4 claimed_in;
# 5 text as text.stored writes it (a name that is not UTF-8 kept as codes).
VERSION = 5
# PRAGMA application_id of a journal whose rows this version (schema 5 on) has written
# as codes ("obx5"): the header field an older outboxd, and the operations guide's way
# back (columns dropped, user_version set to 0), leave as it is. An upgrade from a
# schema below 5 rewrites the rows as codes (text.escape_earlier) only for a journal
# without it: with it, the rows are codes already, and a second rewrite would read a
# name's byte 0xE9 (stored `\udce9`) as those six characters from then on.
CODES_MARK = 0x6F627835


def upgrade(db: Any, version: int) -> None:
    """Bring a journal of schema `version` up to VERSION, in the caller's transaction."""
    if version < 1:
        # sent_invoices is new in version 1: fill it from the rows already sent.
        db.execute(_SENT_INVOICES_FROM + "state IN ('sent', ?)", (DELIVERED,))
    cols = {r[1] for r in db.execute("PRAGMA table_info(bundles)")}
    for col in ("documents", "wait_began", "channel", "claimed_in"):
        if col not in cols:
            db.execute(f"ALTER TABLE bundles ADD COLUMN {col} TEXT")
    if "wait_began" not in cols:
        # A bundle waiting now began its wait when it entered the state.
        db.execute("UPDATE bundles SET wait_began = since WHERE state = 'waiting'")
    if version < 5 and not marked_as_codes(db):
        stored_text.escape_earlier(db, _TEXT_FIELDS, (*_JSON_FIELDS, "documents"))
    mark_as_codes(db)
    db.execute(f"PRAGMA user_version = {VERSION}")


def marked_as_codes(db: Any) -> bool:
    return bool(db.execute("PRAGMA application_id").fetchone()[0] == CODES_MARK)


def mark_as_codes(db: Any) -> None:
    db.execute(f"PRAGMA application_id = {CODES_MARK}")


def iso_of(at: datetime) -> str:
    """A time as the journal writes it: UTC, milliseconds, 'Z'."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso_of(datetime.now(UTC))


def utc_day(at: str | None = None) -> str:
    """The UTC date (YYYY-MM-DD) of a journal time, or of now: the day folder in sent/ or
    quarantine/ of what happened then, and the "today" the views count by."""
    when = datetime.now(UTC) if at is None else parse_iso(at)
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def iso_in(seconds: float) -> str:
    return iso_of(datetime.now(UTC) + timedelta(seconds=seconds))


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def journal_time(value: object, fallback: str | None = None) -> str:
    """A time from our papers (receipt.json, reason.json) as the journal writes times, so
    that it compares and sorts as they do; `fallback` (a journal time), else now, for one
    that cannot be read (a paper edited by hand must not keep its folder from being
    finished, nor count as "sent today" for good: an unreadable text sorts after every
    date)."""
    try:
        at = parse_iso(str(value))
        # A zone that takes the time past datetime's range in UTC (year 9999, -23:59).
        return iso_of(at) if at.tzinfo is not None else fallback or now_iso()
    except (ValueError, OverflowError):
        return fallback or now_iso()


def seconds_until(iso: str) -> float:
    """Seconds from now (wall clock) to a journal time; negative once it is past."""
    return (parse_iso(iso) - datetime.now(UTC)).total_seconds()


def left_of(iso: str, written: str | None) -> float:
    """Seconds from now (wall clock) to a journal time that a row holds, never more than
    were left when that row was last `written` (its updated_at): a wall clock stepped
    back since then (an NTP step at boot, a VM's clock put right) must not add its step
    to a wait — an hour back held a 300 s back-off an hour longer, a day back kept an
    invoice waiting for attachments until the next day (One clock). A clock stepped
    forward shortens it: past, it is due at once. Negative once it is past."""
    left = seconds_until(iso)
    if written is not None:
        left = min(left, (parse_iso(iso) - parse_iso(written)).total_seconds())
    return left


def readable(iso: str | None) -> str:
    """A journal time as people read it: 'YYYY-MM-DD HH:MM:SS UTC' ('' for none)."""
    if not iso:
        return ""
    return iso.replace("T", " ").split(".")[0].rstrip("Z") + " UTC"


UNREADABLE_REASONS = "unreadable-reasons"


def _reasons(text: str | None, invoice_file: str) -> list[dict[str, Any]]:
    """A row's reasons; for text that is no list of {code, file, message} (a journal
    edited by hand, a damaged page) one reason that says so. Every reader of the rows
    (`status`, the status page, `check`, a restart) then shows the row instead of
    failing on the whole journal."""
    if text is None or text == "[]":
        return []  # most rows: no JSON to parse (status lists a week of 100,000 rows)
    try:
        reasons = stored_text.loads(text)
    except (ValueError, RecursionError):
        reasons = None
    if isinstance(reasons, list) and all(
            isinstance(r, dict) and all(isinstance(r.get(k), str)
                                        for k in ("code", "file", "message"))
            for r in reasons):
        return reasons
    return [{"code": UNREADABLE_REASONS, "file": invoice_file,
             "message": "the journal's reasons for this bundle cannot be read (not a JSON "
                        "list of findings) — outboxd check on the invoice file finds them "
                        "again; for a quarantined bundle REASON.txt in its folder has them"}]


# What an invoice-id column that cannot be read shows instead (status, the page).
UNREADABLE_IDS = "(unreadable in the journal)"


def _loaded(k: str, text: str) -> Any:
    """A JSON column other than reasons, as _reasons reads those: text that is not what
    outboxd writes (a list of ids; the receiver's answer as an object) is shown as such,
    instead of failing every reader of the journal."""
    if text == "[]" and k != "response":
        return []  # most rows' unattached_ids: no JSON to parse
    try:
        value = stored_text.loads(text)
    except (ValueError, RecursionError):
        value = None
    if k == "response":
        if isinstance(value, dict) or text == "null":
            return value
        # A delivered row still goes to sent/, its receipt saying what was lost.
        return {"unreadable": "the journal's copy of the receiver's answer cannot be read"}
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return [UNREADABLE_IDS]


# The columns of a Row that hold text other than the journal's own times and states:
# read back through stored_text (a name that is not UTF-8, kept as codes).
_TEXT_FIELDS = ("bundle_id", "invoice_file", "last_error", "work_dir", "archive_dir",
                "receipt_id", "channel", "claimed_in")


def decoded(d: dict[str, Any]) -> dict[str, Any]:
    """A row's columns with its JSON ones as values (reasons read as _reasons does), and
    its text as it was written (stored_text.read)."""
    for k in _TEXT_FIELDS:
        v = d.get(k)
        if isinstance(v, str) and "\\u" in v:
            d[k] = stored_text.read(v)
    for k in _JSON_FIELDS:
        if k == "reasons":
            d[k] = _reasons(d.get(k), str(d.get("invoice_file", "")))
        elif d.get(k) is not None:
            d[k] = _loaded(k, d[k])
    return d


@dataclass(frozen=True)
class Row:
    id: int
    bundle_id: str | None
    invoice_file: str
    invoice_ids: list[str]
    state: str
    since: str
    deadline: str | None
    unattached_ids: list[str]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    reasons: list[dict[str, Any]]
    work_dir: str | None
    archive_dir: str | None
    receipt_id: str | None
    response: dict[str, Any] | None
    # When the bundle's current wait for attachments began (decide._wait_began): kept
    # while its files settle again in the middle of the wait. None in a journal opened
    # read-only that predates the column.
    wait_began: str | None = None
    # The channel a claimed bundle was checked for (the bundle id does not cover it), so
    # that one read again after a restart is "sent as claimed" only on that channel
    # (recovery.sent_as_claimed). None: claimed before the column, or not claimed.
    channel: str | None = None
    # The processing folder the claim was recorded for, as workfolder.folder_mark gives it
    # (device and inode): a claim cut short before its work folder was made is taken for
    # one that did not happen only where that very folder is found again (recovery). None:
    # claimed before the column, not claimed, or no processing folder at the claim.
    claimed_in: str | None = None

    @property
    def shown_state(self) -> str:
        return shown_state(self.state, self.last_error is not None)


ROW_FIELDS = tuple(f.name for f in fields(Row))
_ROW_FIELDS = frozenset(ROW_FIELDS)
_DEFAULTS = {f.name: f.default for f in fields(Row) if f.default is not MISSING}


def row_of(r: sqlite3.Row) -> Row:
    """The Row of a database row. Only the columns a Row has: updated_at is the
    journal's own, documents is read through accepted_documents(), and a column a later
    outboxd added is its own (a journal it upgraded still reads here, after going back
    to this version)."""
    return rows_of([r])[0]


def rows_of(rs: list[sqlite3.Row]) -> list[Row]:
    """row_of of each of `rs`, the rows of one statement (one set of columns). `status`
    lists a busy week, 100,000 rows: the columns are matched to the fields once, not
    per row, and each Row gets its fields as its __init__ would give them (a default for
    a column the journal has not), without the frozen dataclass's object.__setattr__
    per field, which took a third of the time."""
    if not rs:
        return []
    names = rs[0].keys()
    kept = [(i, k) for i, k in enumerate(names) if k in _ROW_FIELDS]
    absent = {k: v for k, v in _DEFAULTS.items() if k not in names}
    if len(kept) + len(absent) < len(_ROW_FIELDS):
        # A field without a default that the statement did not select: Row's own
        # TypeError, as a statement written wrong deserves.
        return [Row(**decoded({k: r[i] for i, k in kept})) for r in rs]
    out = []
    for r in rs:
        row = object.__new__(Row)
        row.__dict__.update(absent)
        row.__dict__.update(decoded({k: r[i] for i, k in kept}))
        out.append(row)
    return out


@contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off while a list of many rows is built (as cli._import_frozen
    does for imports): the objects made are kept, none is garbage, and the passes their
    number set off, through every row made so far, took half the time of building a
    week's 100,000 rows for `status`. On again after, if it was on (another thread that
    paused it meanwhile finds it off and leaves it as it found it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
