"""`outboxd status`: what the journal says about every bundle, for people and scripts."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.archiving.retrykilled import interrupted_rows
from daemon.bundle import findings_of, reasons_of
from daemon.claiming.foreign import Foreign, foreign_work
from daemon.configuration.config import Settings
from daemon.configuration.daemonuser import daemons_group, daemons_user
from daemon.delivery.answers import web_page_warning
from daemon.errors import JournalError, describe
from daemon.invisible import escaped_controls
from daemon.journal import LIVE, STATES, Journal, Row, parse_iso
from daemon.journal.readonly import OneWait, journal_there, read_journal
from daemon.journal.records import collector_paused, iso_of
from daemon.loop.idlefiles import (
    Idle,
    Suffixed,
    idle_releases,
    marker_misses,
    stray_errors_files,
    suffixed_names,
)
from daemon.loop.leftwords import left_words, quarantined_at
from daemon.loop.unattached import AT_DEADLINE
from daemon.names import first_of, printable, stem
from daemon.report.pagelone import refused_sidecars
from daemon.report.sidecarheld import sidecars_in_quarantine
from daemon.watching.leftalone import not_an_invoice, still_quarantined
from daemon.watching.lonefolders import LoneFolder, hints, listed, lone_in
from daemon.watching.scan import list_outbox
from daemon.watching.strays import StrayFolders


def _bundle(row: Row, page: str | None = None) -> dict[str, Any]:
    """A row as `status --json` lists it; `page`: what to say of a sent bundle whose
    receiver answered with a web page (answers.web_page_warning)."""
    state = row.shown_state
    return {"bundle_id": row.bundle_id, "invoice_file": row.invoice_file,
            "invoice_ids": row.invoice_ids, "state": state, "since": row.since,
            "deadline": row.deadline, "unattached_ids": row.unattached_ids,
            "attempts": row.attempts, "next_attempt_at": row.next_attempt_at,
            "last_error": row.last_error,
            # Every finding with the four keys operations.md names, as reason.json has
            # them: an outboxd before reasons named their invoice recorded none, and a
            # script reading `invoice_id` must not fail on the rows from before an
            # upgrade (null, as for a finding about the whole file).
            "reasons": reasons_of(findings_of(row.reasons)),
            # What a script needs to find the papers of a finished bundle (a name taken
            # gets "-2", a long one is shortened: the folder cannot be guessed reliably).
            # The folder only once the bundle is there: the journal names the target
            # before the move, which may still fail.
            "receipt_id": row.receipt_id,
            "folder": row.archive_dir if state in FINAL_STATES else None,
            # Sent, as the protocol says of any 2xx, but the operator may not have it: the
            # admin who reads status, not only the log, must see which bundles to ask about.
            "answer": page if state == "sent" else None}


def _read(journal: Journal, outbox: Path) -> dict[str, Any]:
    # A busy week is 100,000 rows, each made into a dict: without the collector's passes
    # through all that is kept, as journal.recent() builds its rows.
    with collector_paused():
        return _listed(journal, outbox)


def _listed(journal: Journal, outbox: Path) -> dict[str, Any]:
    at = datetime.now(UTC)
    rows = journal.recent(at=at)
    # A retry killed between its journal mark and its move: the bundle is whole in
    # quarantine/ while its row says it went back, until the daemon's next look records
    # it again (retrykilled.py). Shown as that look will record it, nothing written.
    interrupted = interrupted_rows(journal, outbox, at.timestamp())
    week = iso_of(at - timedelta(days=7))
    rows = sorted(rows + [r for r in interrupted if r.since >= week], key=lambda r: r.id)
    # A quarantined bundle moved back into the outbox by hand, as REASON.txt offers (retry
    # marks its row, a move by hand cannot): listed, it read as quarantined beside its own
    # new row (sent, or waiting again). Not counted or listed, as on the status page.
    kept = still_quarantined(rows, "", outbox)
    counts = journal.counts()
    counts["quarantined"] = max(0, counts["quarantined"] - (len(rows) - len(kept))) \
        + len(interrupted)
    pages = {row_id: said for row_id, answer in journal.page_like_answers(at=at).items()
             if (said := web_page_warning(answer)) is not None}
    return {"counts": counts, "bundles": [_bundle(r, pages.get(r.id)) for r in kept]}


# Whom to run status as where this user cannot enter the state dir: the group the
# daemon's user has may read it (operations.md: the people who read the outbox's folders).
def run_as(state_dir: Path) -> str:
    return (f"run it as the daemon's user (sudo -u {daemons_user(state_dir)} outboxd status) "
            f"or as a member of its group {daemons_group(state_dir)}, which may read the "
            "state dir")


def collect(settings: Settings, wait: OneWait | None = None) -> dict[str, Any]:
    """`wait`: the command's one wait for a journal held locked (readonly.OneWait)."""
    path = settings.journal_path
    if not journal_there(path, run_as(settings.paths.state_dir)):
        return {"counts": dict.fromkeys(STATES, 0), "bundles": []}
    try:
        return read_journal(path, lambda journal: _read(journal, settings.outbox.path), wait)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal {path}: {exc} — if it is damaged, stop "
                           "outboxd and move the file away; outboxd starts a new journal and "
                           "reads what was sent back from the receipts in sent/") from None


FINAL_STATES = ("quarantined", "sent")
SETTLING_TITLE = "Settling (read once their files stay unchanged for settle_seconds)"
ATTENTION_SECONDS = 3600  # one state longer than this: listed under "Needs attention"


def needs_attention(b: dict[str, Any], now: datetime) -> bool:
    """Not final and in one state for over an hour (a wait within its deadline is fine)."""
    if b["state"] in FINAL_STATES:
        return False
    if b["state"] == "waiting" and b["deadline"] and parse_iso(b["deadline"]) > now:
        return False
    return (now - parse_iso(b["since"])).total_seconds() > ATTENTION_SECONDS


NO_SET_TIME = "try by itself (no set time)"
# A sent bundle whose answer was a web page, in the text form; --json's `answer` says it whole.
WEB_PAGE_NOTE = ("the answer was a web page, not the operator's — ask the operator whether "
                 "it has the bundle (receipt.json shows the page)")
SHOWN_REASONS = 3  # a held bundle's messages in the text form; --json has every one
# A bundle's invoice ids in the text form: a file of 3,000 invoices was one line of
# 48,000 characters, its ids twice over; --json has every one.
SHOWN_IDS = 10


def _ids(ids: list[str]) -> str:
    first, rest = first_of(ids, SHOWN_IDS)
    return ", ".join([*first, rest] if rest else first)


def _counted(items: list[str]) -> list[str]:
    """Each distinct item once, in order, with "×N" where it came N times: pre-flight
    gives one finding per rule broken, so a quarantine read "einvoice-rule" ten times."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item] = seen.get(item, 0) + 1
    return [item if n == 1 else f"{item} ×{n}" for item, n in seen.items()]


def _messages(reasons: list[dict[str, Any]]) -> str:
    # With its code, as a quarantined bundle's and as check and REASON.txt give it:
    # the code is what docs/codes.md explains and an admin searches for.
    shown = _counted([f"{r['file']}: {r['message']} [{r['code']}]" for r in reasons])
    more = len(shown) - SHOWN_REASONS
    text = "; ".join(shown[:SHOWN_REASONS])
    return text + (f"; … and {more} more (outboxd status --json or outboxd check lists "
                   "them all)" if more > 0 else "")


def _detail(b: dict[str, Any], unattached: str | None = None,
            near: dict[str, str] | None = None) -> str:
    state = b["state"]
    if state == "waiting":
        then = AT_DEADLINE.get(unattached or "")
        deadline = f"{b['deadline']}, {then}" if b["deadline"] and then else b["deadline"]
        text = (f"no attachments: {_ids(b['unattached_ids'])}; "
                f"deadline {deadline or 'none (hold)'}")
        if hint := (near or {}).get(b["invoice_file"]):
            text += f"; {hint}"
    elif state == "held":
        text = _messages(b["reasons"])
    elif state == "retrying":
        # A stranded claim, a move into sent/ that keeps failing: tried again at the
        # rescan or on the move back-off, which the journal keeps no time of.
        text = f"attempts {b['attempts']}, next " + (b["next_attempt_at"] or NO_SET_TIME)
    elif state == "quarantined":
        return "; ".join(_counted([f"{r['file']}: {r['code']}" for r in b["reasons"]]))
    elif state == "sent":
        return f"at {b['since']}" + (f"; {WEB_PAGE_NOTE}" if b.get("answer") else "")
    else:
        text = ""
    # Every bundle that is not moving says since when and why.
    parts = [f"{state} since {b['since']}"] + ([text] if text else [])
    if b["last_error"]:
        parts.append(f"last error: {b['last_error']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class OutboxView:
    """What the status page lists of the outbox beside its bundles (one listing)."""

    left: list[tuple[str, str]]  # files left alone and folders nothing is sent from (as shown), why
    lone: list[LoneFolder]  # folders without an invoice file, longest unchanged first
    near: dict[str, str]  # waiting invoice file -> the hint of lone folders close to it
    idle: list[Idle] = field(default_factory=list)  # release files that do nothing, why
    # Why the journal could not be read for these lists (found damaged since the counts
    # were read): they are shown without what it would have told, and this said beside.
    unread: str = ""
    # Why the outbox could not be listed (the lists are then empty for want of a look,
    # not of such files); "" when it was.
    unlisted: str = ""
    # Work folders another host's outboxd claimed and has not finished (foreign.py).
    foreign: list[Foreign] = field(default_factory=list)
    # Of the lone folders, the sidecars of invoice files left alone: folder -> that file
    # (as on disk, pagelone.refused_sidecars).
    refused_of: dict[str, str] = field(default_factory=dict)


def outbox_view(settings: Settings, data: dict[str, Any] | None = None,
                wait: OneWait | None = None) -> OutboxView:
    """What the status page lists of the outbox beside its bundles, for the admin, who
    reads this rather than the page: files left alone (invoice files that cannot be
    used, files that are no invoice file) and folders nothing is sent from, each with
    why; folders without an invoice file, and which of them are named close to a waiting
    invoice file of `data` (collect's). Empty where the outbox cannot be listed by this
    user (the counts still say what the journal knows). `wait`: as collect's."""
    try:
        listing = list_outbox(settings.outbox, settings.share)
    except OSError as exc:
        return OutboxView([], [], {}, unlisted=f"the outbox {settings.outbox.path} cannot "
                          f"be listed: {describe(exc)}")
    other = not_an_invoice(settings.outbox.invoice_patterns)
    states = {b["invoice_file"]: b["state"] for b in (data or {}).get("bundles", ())
              if b["state"] in LIVE}
    # As the page words them (LeftAlone.refused: the others, then the refused).
    refused = {**dict.fromkeys(listing.others, other), **dict(listing.refused)}
    quarantined = quarantined_at(((b["invoice_file"], b["state"], b.get("folder"))
                                  for b in (data or {}).get("bundles", ())),
                                 settings.quarantine_dir)
    out = list(left_words(refused, settings.outbox, settings.share, listing.candidates,
                          states, quarantined).items())
    try:
        names = suffixed_names(settings.outbox, settings.share)
    except OSError:
        names = Suffixed([], [])  # gone since it was listed: the line on stderr says so
    out += marker_misses(settings.outbox, settings.share, listing.candidates,
                         names.markers).items()
    out += stray_errors_files(names.errors, [*listing.candidates, *(
        b["invoice_file"] for b in (data or {}).get("bundles", ())
        if b["state"] not in ("sent", "quarantined"))]).items()
    # Each by its name on disk until here (two names shown alike are two lines, each
    # with its why); listed as shown, as the strays below are.
    out = [(printable(n), why) for n, why in out]
    idle = idle_releases(names.releases, settings.share, listing.candidates, states,
                         settings.outbox.path)
    path = settings.journal_path
    unread: list[str] = []

    def finished(stems: frozenset[str]) -> list[tuple[str, str, str, str | None]]:
        try:
            return read_journal(path, lambda j: j.finished_files(stems=stems), wait) \
                if path.exists() else []
        except JournalError as exc:
            # Damaged (JournalLost) where the counts' reads did not meet it, or since
            # they were read: the folders are listed without which came late, and the
            # damage is said, rather than the lists given up for its one line.
            unread.append(str(exc))
            return []
        except (sqlite3.Error, OSError):
            return []  # the counts above say what is wrong with the journal
    strays = StrayFolders().find(settings.outbox, settings.share, listing.candidates,
                                  finished)
    cands = listing.candidates.values()
    lone = lone_in(listing.stats, {c.sidecar.name for c in cands},
                   settings.outbox.ignore_patterns)
    # Told otherwise: a look-alike in its bundle's errors, a stray above.
    told = {n for c in cands for n in c.look_alikes} | {
        n for n in lone if n in {x.on_disk for x in strays}}
    waiting = [b["invoice_file"] for b in (data or {}).get("bundles", ())
               if b["state"] == "waiting"]
    suffix = settings.outbox.sidecar_suffix
    folders, near, _ = listed(lone, waiting, suffix, told)
    said = {f: hints(names, stem(f), stem(f) + suffix) for f, names in near.items()}
    try:  # as the page says it: first, the attachments are likelier there than in a typo
        for f, words in (read_journal(path, lambda j: sidecars_in_quarantine(
                j, waiting, settings.outbox, settings.quarantine_dir), wait)
                if waiting and path.exists() else {}).items():
            said[f] = words + (f"; else {said[f]}" if f in said else "")
    except JournalError as exc:
        unread.append(str(exc))
    except (sqlite3.Error, OSError):
        pass  # the counts above say what is wrong with the journal
    return OutboxView(sorted(out + [(f"{x.name}/", x.why) for x in strays]), folders,
                      said, idle, unread[0] if unread else "",
                      foreign=foreign_work(settings.processing_dir,
                                           settings.outbox.path),
                      refused_of=refused_sidecars(dict(listing.refused), suffix,
                                                  settings.outbox.invoice_patterns))


def left_alone(settings: Settings) -> list[tuple[str, str]]:
    """outbox_view's files left alone and folders nothing is sent from."""
    return outbox_view(settings).left


def render(data: dict[str, Any], limit: int = 20, now: datetime | None = None,
           left: list[tuple[str, str]] | None = None, unattached: str | None = None,
           view: OutboxView | None = None) -> str:
    """The sections docs/commands.md lists for `outboxd status` (waiting, held,
    retrying, quarantined, sent), after "Needs attention" (anything in one state for over an hour);
    of sent and quarantined only the `limit` most recent (a busy week holds thousands),
    with a line saying how many more there are. `unattached`: [policy] unattached, to say
    what happens at a waiting bundle's deadline; `view`: the outbox beside the bundles
    (outbox_view), for the folders without an invoice file and the hints of them."""
    now = now or datetime.now(UTC)
    counts = data["counts"]
    lines = ["  ".join(f"{state}: {n}" for state, n in counts.items())]
    bundles = data["bundles"]
    near = view.near if view else None
    sections: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("Needs attention (in one state for over an hour)", "",
         [b for b in bundles if needs_attention(b, now)]),
        ("Waiting for attachments", "waiting", []), ("Held (invalid)", "held", []),
        ("Retrying", "retrying", []),
        # Counted above: which ones, and since when (the page's "Being sent"), so that a
        # receiver slow to answer is seen before an hour makes it "Needs attention".
        ("Delivering", "delivering", []),
        # Settling with an error waits for a person; one in flight is retried by the daemon.
        ("Not moving (last error)", "", [b for b in bundles if b["last_error"]
                                         and b["state"] == "settling"]),
        # Counted above; without this a stopped daemon's "settling: 3" named none of them.
        (SETTLING_TITLE, "", [b for b in bundles if not b["last_error"]
                              and b["state"] == "settling"]),
        ("Quarantined recently", "quarantined", []), ("Sent recently", "sent", []),
    ]
    for title, state, picked in sections:
        rows = picked if not state else [b for b in bundles if b["state"] == state]
        if not rows:
            continue
        hidden = 0
        if title == SETTLING_TITLE:
            hidden, rows = max(0, len(rows) - limit), rows[:limit]
        if state in FINAL_STATES:
            # Most recent first, however many: rows come in journal order (when outboxd
            # first saw each file), so a bundle retried or sent late sat among old ones.
            # Journal order breaks ties.
            rows = [b for _, b in sorted(enumerate(rows), key=lambda ib: (ib[1]["since"], ib[0]),
                                         reverse=True)]
            hidden, rows = max(0, len(rows) - limit), rows[:limit]
        lines += ["", f"{title}:"]
        for b in rows:
            # Ids not read yet (settling, or a file that cannot be read): no empty "[]".
            ids = f" [{_ids(b['invoice_ids'])}]" if b["invoice_ids"] else ""
            lines.append(escaped_controls(
                f"  {b['invoice_file']}{ids} {_detail(b, unattached, near)}"))
        if hidden:
            lines.append(f"  … and {hidden} more (outboxd status --json lists them all)")
    if view and view.lone:
        lines += ["", "Folders without an invoice file (the status page lists them too):"]
        for x in view.lone[:limit]:
            close_to = f"; named close to {', '.join(x.close_to)}, which wait" \
                f"{'s' if len(x.close_to) == 1 else ''} for attachments" if x.close_to else ""
            if (file := view.refused_of.get(x.on_disk)) is not None:
                close_to += (f"; the sidecar of {printable(file)}, which outboxd leaves "
                             "alone (listed below, with why): mend that file")
            lines.append(escaped_controls(f"  {x.name}/ since {x.since}{close_to}"))
        if len(view.lone) > limit:
            lines.append(f"  … and {len(view.lone) - limit} more (outboxd status --json lists "
                         "them all)")
    if view and view.foreign:
        lines += ["", "Work folders of other hosts in the processing folder (the status "
                  "page lists them too):"]
        lines += [escaped_controls(f"  {x.name}/ since {x.since}: {x.why}")
                  for x in view.foreign]
    if view and view.idle:
        lines += ["", "Release files that do nothing (the status page lists them too):"]
        lines += [escaped_controls(f"  {i.name}: {i.why}") for i in view.idle]
    left = left if left is not None else (view.left if view else None)
    if left:
        lines += ["", "In the outbox, nothing sent from these (the status page lists them "
                  "too):"]
        lines += [escaped_controls(f"  {name}: {why}") for name, why in left]
    return "\n".join(lines)
