"""What the status page says (docs/folder-convention.md, section 6): `render()`, a pure
function from journal rows (plus the release files that do nothing, the files left
alone, the look-alikes a quarantine left and the folders nothing is sent from) to one
self-contained HTML file: counts at the top, a section per state, what a clerk does
about each bundle, every name HTML-escaped (pagehtml.py). statuspage.py decides when
it is written, gathers what it shows and writes it.
"Today" is the UTC date, as in the archive folders' names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from pathlib import Path

from daemon.archiving.quarantinenews import Elsewhere
from daemon.claiming.foreign import Foreign
from daemon.idnames import attachment_folders
from daemon.journal import CLAIMING, DELIVERED, QUARANTINING, Row, readable
from daemon.loop.idlefiles import Idle
from daemon.loop.release import overlong, rename_shorter
from daemon.loop.unattached import AT_DEADLINE
from daemon.names import (
    first_of,
    printable,
    stem,
)
from daemon.reading.idfolders import one_folder_words
from daemon.report.clerkwords import for_clerks, unrecorded_for_clerks
from daemon.report.pagehtml import ids, lines, page, section, shown, table, text, warned
from daemon.report.pagelone import DEFAULT_PATTERNS, lone_fix, refused_sidecars
from daemon.watching.leftalone import LeftBehind
from daemon.watching.lonefolders import LoneFolder, hints
from daemon.watching.strays import Stray

# Of Sent today and Quarantined today, the page lists the latest this many: a busy day
# sends thousands, each a row of the page rewritten every few seconds, where the clerk
# looks for the last few. The counts at the top stay whole.
FINISHED_SHOWN = 100
# Said of an entry of today's quarantine/ another daemon sharing the outbox filed: its
# reasons are its reason.json's, read by this one (quarantinenews.py).
ELSEWHERE = "(quarantined by another outboxd sharing this outbox)"
# Said of a bundle of "Sent today" another daemon sharing the outbox sent, which this one
# learnt from sent/ (Journal.sent_by_others): its sent/ entry and receipt are that one's.
SENT_ELSEWHERE = "(sent by another outboxd sharing this outbox)"
# Of the folders without an invoice file, the page lists the longest unchanged this many.
LONE_SHOWN = 100

def sections(rows: Sequence[Row], today: str) -> dict[str, list[Row]]:
    """The rows of each section; `today` is YYYY-MM-DD (UTC)."""
    return {
        # The longest waiting first, those of one second (the page's times are to the
        # second) by name: in journal order an ERP's 2,000 files of one export came in
        # the order each was read, BULK-00000, BULK-00012, BULK-00002 …
        "waiting": sorted((r for r in rows if r.state == "waiting"),
                          key=lambda r: (r.since[:19], r.invoice_file)),
        "held": [r for r in rows if r.state == "held"],
        # Settling with an error: the invoice file cannot be read (permissions, a share
        # gone). It waits for a change like a held bundle, and the clerk must see why.
        # (A bundle in flight with an error is retried by the daemon: "Retrying".)
        "stuck": [r for r in rows if r.last_error and r.state == "settling"],
        # As `status` shows them: a delivered or quarantining bundle whose move keeps
        # failing is retried too (shown_state), and must not vanish from the page.
        "retrying": [r for r in rows if r.shown_state == "retrying"],
        # Claimed (gone from the outbox) and on their way: a first attempt may take up to
        # [delivery] timeout_seconds, more behind others; without this section the files
        # would be nowhere on the page meanwhile, as if lost.
        "sending": [r for r in rows if r.shown_state == "delivering"],
        "quarantined": [r for r in rows if r.state == "quarantined"
                        and r.since.startswith(today)],
        "sent": [r for r in rows if r.state == "sent" and r.since.startswith(today)],
    }


def latest(rows: Sequence[Row], more: int = 0) -> tuple[list[Row], int]:
    """The FINISHED_SHOWN latest of `rows` (journal order), newest first, and how many
    are left out (with `more`, those not given: earlier ones). Journal order is when
    outboxd first saw each file: a bundle retried or sent late sat among old ones."""
    ordered = [r for _, r in sorted(enumerate(rows), key=lambda ir: (ir[1].since, ir[0]),
                                    reverse=True)]
    return ordered[:FINISHED_SHOWN], max(0, len(ordered) - FINISHED_SHOWN) + more


def _more(hidden: int, what: str, where: str) -> str:
    return f'<p class="none">… and {hidden} more {text(what)} ({text(where)})</p>' \
        if hidden else ""


def _on_its_way(row: Row) -> str:
    """What a bundle of "Being sent" is doing: `status` counts all of them as delivering,
    but one the receiver rejected, or found invalid at its claim, is on its way to
    quarantine/, never to Sent today."""
    if row.state == QUARANTINING or (row.state == CLAIMING and row.reasons):
        return "being moved into quarantine/ (see its reasons there)"
    if row.state == CLAIMING:
        return "being taken from the outbox"
    if row.state == DELIVERED:
        return "received by the receiver; being moved into sent/"
    return "being delivered"


def _how_to_add(row: Row, sidecar_suffix: str) -> str:
    """How a clerk gives a waiting invoice its attachments (HTML)."""
    name = row.invoice_file
    if stem(name) + sidecar_suffix != name:
        return f"add the attachments to {_where_attachments_go(row, sidecar_suffix)}"
    # No extension and no sidecar suffix (invoice_patterns = ["*"]): its sidecar's name
    # is its own, which no folder beside it can have (match._sidecar reads none).
    return text(f"{name} has no extension, so no folder of attachments can lie beside it "
                f"under its name: to send it with attachments, give it its extension "
                f"({name}.xml, {name}.pdf …) and put them into the folder {name}")


def _where_attachments_go(row: Row, sidecar_suffix: str) -> str:
    """The folder(s) a clerk puts the missing attachments in: the sidecar for a file of
    one invoice; for a file of several, each invoice's own subfolder (files in the
    sidecar's root are then an error), the first SHOWN_IDS of them by name."""
    sidecar = stem(row.invoice_file) + sidecar_suffix
    if len(row.invoice_ids) < 2:
        return f"the folder <code>{text(sidecar)}</code>"
    first, rest = shown(row.unattached_ids)
    folders = ", ".join([f"<code>{text(f)}</code>"
                         for f in attachment_folders(sidecar, row.invoice_ids, first)]
                        + ([text(rest)] if rest else []))
    return (f"each invoice's own folder, named after its invoice id ({folders})"
            + _one_folder_for_several(row, sidecar))


def _one_folder_for_several(row: Row, sidecar: str) -> str:
    """Ids of the file whose folder, the one the row names, is one between them
    (idfolders.one_folder_words): the row must not send the clerk to make that folder."""
    words = one_folder_words(sidecar, row.invoice_ids, row.unattached_ids,
                             name=lambda n: f"<code>{text(n)}</code>", word=text)
    return f" — but {words}" if words else ""


def _how_to_release(row: Row, release_suffix: str) -> str:
    """The release file to drop; or, where its name would be longer than a file name
    may be (an invoice file named with 250 characters), how much shorter the invoice file
    must be named first: no file, and no `outboxd send` (it writes that file), can
    release it under its name."""
    name = stem(row.invoice_file)
    over = overlong(name, release_suffix)
    if not over:
        return (f"drop a file named <code>{text(name + release_suffix)}</code> beside the "
                "invoice to send it without them")
    return (f"to send it without them, {rename_shorter(over)}, then drop a release file "
            f"(its new name without the extension, then <code>{text(release_suffix)}</code>) "
            "beside it: a release file for so long a name would be longer than a file name "
            "may be")


def render(rows: Sequence[Row], idle: Sequence[Idle], written_at: datetime,
           release_suffix: str = ".send-anyway", body_only: bool = False,
           refused: Mapping[str, str] | None = None, sidecar_suffix: str = "",
           left: Sequence[LeftBehind] = (), strays: Sequence[Stray] = (),
           foreign: Sequence[Foreign] = (),
           unattached: str | None = None, more: Mapping[str, int] | None = None,
           journal_failure: str = "", lone: Sequence[LoneFolder] = (),
           near: Mapping[str, Sequence[str]] | None = None,
           sent_ids: Mapping[str, Sequence[str]] | None = None,
           invoice_patterns: Sequence[str] = DEFAULT_PATTERNS,
           taken: AbstractSet[str] = frozenset(), elsewhere: Sequence[Elsewhere] = (),
           sent_by_others: AbstractSet[int] = frozenset(),
           sent_warnings: Mapping[int, Sequence[str]] | None = None,
           in_quarantine: Mapping[str, str] | None = None) -> str:
    """The whole page. With body_only the time written is left out (for change checks).
    `refused`: root files left alone, invoice files that cannot be used and files that
    are no invoice file (the name on disk → why; `text` shows it printable); `left`: the
    look-alike sidecars a quarantine left in the outbox; `strays`: folders that hold
    invoice files, from which nothing is sent; `foreign`: work folders another host's
    outboxd claimed and has not finished (foreign.py); `unattached`: [policy] unattached, to say
    what happens at a waiting bundle's deadline; `more`: of the sections "sent" and
    "quarantined", how many rows of today earlier than those in `rows` (which then hold
    at least the latest FINISHED_SHOWN of each): counted, never listed;
    `journal_failure`: why the journal cannot be written ("" while it can), said first in
    a clerk's words; `lone`: the folders without an invoice file, longest unchanged
    first; `near`: of a waiting invoice file, the lone folders named close to it (as on
    disk), told in its row as a hint; `sent_ids`: of a waiting invoice file, its invoice
    ids the receiver already has from another bundle, told in its row first;
    `invoice_patterns`: [outbox] invoice_patterns, and `taken`: the lone folders (as on
    disk) whose name as an invoice file's stem is a folder there already
    (pagelone.named_as_file), for the fix of a folder named with an invoice file's
    extension; `elsewhere`: today's entries
    of quarantine/ other daemons sharing the outbox filed (quarantinenews.py), latest
    first, listed among "Quarantined today"; `sent_by_others`: the ids of the rows of
    "Sent today" another daemon sharing the outbox sent, each marked so; `sent_warnings`:
    of those, the warnings each was sent with (sentwarnings.py), told under its ids;
    `in_quarantine`: of a waiting invoice file, where a quarantined bundle of it holds
    its sidecar and what to do (sidecarheld.py), told in its row first."""
    today = written_at.astimezone(UTC).strftime("%Y-%m-%d")
    sec = sections(rows, today)
    more, near, sent_ids = more or {}, near or {}, sent_ids or {}
    # With each its section's id: 2,000 waiting put the sections below 4,000 lines down,
    # and a count is a link to its section.
    counts = [("waiting", "Waiting for attachments", len(sec["waiting"])),
              ("held", "Held", len(sec["held"])), ("stuck", "Not moving", len(sec["stuck"])),
              ("sending", "Being sent", len(sec["sending"])),
              ("retrying", "Retrying", len(sec["retrying"])),
              ("quarantined", "Quarantined today", len(sec["quarantined"])
               + more.get("quarantined", 0) + len(elsewhere)),
              ("sent", "Sent today", len(sec["sent"]) + more.get("sent", 0))]
    parts: list[str] = []
    if (unrecorded := unrecorded_for_clerks(journal_failure)) is not None:
        parts.append(f'<p class="stopped">{text(unrecorded)}</p>')
    # The space: a text browser or a screen reader read "0Held" (the style puts the
    # number on a line of its own, which only a graphical browser shows).
    parts.append('<ul class="counts">' + "".join(
        f'<li><a href="#{key}"><b>{n}</b> {text(title)}</a></li>' for key, title, n in counts)
        + "</ul>")

    waiting = []
    for r in sec["waiting"]:
        how = (f"{_how_to_add(r, sidecar_suffix)}, or {_how_to_release(r, release_suffix)}")
        if folders := near.get(r.invoice_file):
            name = stem(r.invoice_file)
            how = (f'<span class="err">{text(hints(folders, name, name + sidecar_suffix))}'
                   f"</span>; else {how}")
        if kept := (in_quarantine or {}).get(r.invoice_file):
            how = f'<span class="err">{text(kept)}</span>; else {how}'
        if already := sent_ids.get(r.invoice_file):
            # A copy of a sent invoice file ("INV-1 - Copy.xml") waits like any invoice;
            # released, or at its deadline, the customer would get the invoice twice.
            shown, rest = first_of(already, 20)
            how = (f'<span class="err">{text(", ".join([*shown, rest] if rest else shown))} '
                   f'{"was" if len(already) == 1 else "were"} already sent in another bundle, '
                   "which sent/ holds: if this file is a copy, remove it instead of sending "
                   f"it</span>; if it is a correction, {how}")
        # With what happens then: a clerk read a bare time, not whether the invoice goes
        # out without its attachments or into quarantine/ at it.
        then = AT_DEADLINE.get(unattached or "")
        deadline = readable(r.deadline) + (f", {then}" if then else "")
        waiting.append([text(r.invoice_file), ids(r.unattached_ids), text(readable(r.since)),
                        text(deadline) if r.deadline else "none — waits until released",
                        how])
    parts.append(section("waiting", "Waiting for attachments", table(
        ["File", "Invoices without attachments", "Since", "Deadline", "How to release"],
        waiting)))

    if lone:
        refused_of = refused_sidecars(refused or {}, sidecar_suffix, invoice_patterns)
        parts.append(section("lone", "Folders without an invoice file (each waits for the "
                              "invoice file of its name; nothing in it is sent until then)",
                              table(["Folder", "Since (its last change)", "What to do"], [
                                  [text(x.name + "/"), text(readable(x.since)),
                                   text(lone_fix(x, sidecar_suffix, invoice_patterns, taken,
                                                 refused_of))]
                                  for x in lone[:LONE_SHOWN]]) + _more(
                                      max(0, len(lone) - LONE_SHOWN), "folders without an "
                                      "invoice file", "changed last; outboxd status --json "
                                      "lists them all")))

    held = [[text(r.invoice_file), '<span class="err">' + lines(
        [f"{x['file']}: {x['message']}" for x in r.reasons]) + "</span>"]
        for r in sec["held"]]
    parts.append(section("held", "Held (fix the errors; checked again on every change)",
                          table(["File", "Errors (as in NAME.errors.txt)"], held)))

    stuck = [[text(r.invoice_file), text(readable(r.since)),
              f'<span class="err">{text(r.last_error)}</span>'] for r in sec["stuck"]]
    parts.append(section("stuck", "Not moving (fix what the error says; checked again on "
                          "every change)", table(["File", "Since", "Error"], stuck)))

    sending = [[text(r.invoice_file), ids(r.invoice_ids), text(_on_its_way(r)),
                text(readable(r.since))] for r in sec["sending"]]
    parts.append(section("sending", "Being sent (taken from the outbox; listed under Sent "
                          "today once the receiver has it and it is in sent/, under "
                          "Quarantined today once in quarantine/)", table(
                              ["File", "Invoices", "Now", "Since"], sending)))

    # A pause for a configuration problem in a clerk's words, and never the receiver's
    # answer; the admin's own (the setting to fix, what the receiver said) stays in
    # `outboxd status` and the log.
    # No next try set: a stranded claim (tried at each rescan), a move that keeps failing.
    retrying = [[text(r.invoice_file), text(r.attempts),
                 text(readable(r.next_attempt_at) or "by itself (no set time)"),
                 text(for_clerks(r.last_error))]
                for r in sec["retrying"]]
    parts.append(section("retrying", "Retrying (outboxd tries again by itself; nothing is "
                          "lost)", table(["File", "Attempts", "Next try", "Last error"],
                                         retrying)))

    shown_q, hidden_q = latest(sec["quarantined"], more.get("quarantined", 0))
    # Ours and the other daemons' by when each was quarantined, the latest first.
    mine = [(r.since, Path(r.archive_dir).name if r.archive_dir else r.invoice_file,
             lines([f"{x['file']}: {x['message']}" for x in r.reasons])) for r in shown_q]
    theirs = [(e.since, printable(e.folder), lines([*e.reasons, ELSEWHERE]) if e.reasons
               else text(f"see its REASON.txt; {ELSEWHERE}")) for e in elsewhere]
    listed_q = sorted(mine + theirs, key=lambda q: q[0], reverse=True)
    hidden_q += max(0, len(listed_q) - FINISHED_SHOWN)
    quarantined = [[text(folder), reasons] for _, folder, reasons in listed_q[:FINISHED_SHOWN]]
    parts.append(section("quarantined", "Quarantined today (see REASON.txt in each folder)",
                          table(["Folder", "Reasons"], quarantined) + _more(
                              hidden_q, "quarantined today", "the earliest; each has its "
                              "folder in today's folder of quarantine/, with its REASON.txt")))

    shown_s, hidden_s = latest(sec["sent"], more.get("sent", 0))
    sent = [[text(r.invoice_file) + (f" {text(SENT_ELSEWHERE)}" if r.id in sent_by_others
                                     else ""),
             ids(r.invoice_ids) + warned((sent_warnings or {}).get(r.id, ())),
             text(r.receipt_id),
             text(readable(r.since))] for r in shown_s]
    parts.append(section("sent", "Sent today", table(
        ["File", "Invoices", "Receipt", "Sent at"], sent) + _more(
            hidden_s, "sent today", "the earliest; today's folder in sent/ holds them all, "
            "and outboxd status --json lists them")))

    if refused:
        parts.append(section("refused", "Files in the outbox that are left alone (until "
                              "they change)", table(["File", "Why"], [
                                  [text(name), f'<span class="err">{text(why)}</span>']
                                  for name, why in sorted(refused.items())])))

    if strays:
        parts.append(section("strays", "Folders nothing is sent from (invoice files "
                              "inside a folder, attachments that came too late)", table(
                                  ["Folder", "Why, and what to do"], [
                                  [text(x.name), f'<span class="err">{text(x.why)}</span>']
                                  for x in strays])))

    if foreign:
        # Nothing a clerk can do but tell the admin, who needs the host and the fix.
        parts.append(section("foreign", "Taken for sending by another server and not "
                              "finished (tell the admin of one that stays)", table(
                                  ["Work folder", "Since", "Why, and what the admin does"], [
                                  [text(x.name), text(readable(x.since)),
                                   f'<span class="err">{text(x.why)}</span>']
                                  for x in foreign])))

    if left:
        parts.append(section("left-behind", "Left in the outbox by a quarantine (mend each in "
                              "the outbox first, then move its invoice file back)", table(
                                  ["Name", "Why, and what to do"],
                                  [[text(x.name), f'<span class="err">{text(x.why)}</span>']
                                   for x in left])))

    if idle:
        parts.append(section("releases", "Release files that do nothing", table(
            ["File", "Why"], [[text(i.name), text(i.why)] for i in idle])))

    body = "\n".join(parts)
    return body if body_only else page(body, written_at)
