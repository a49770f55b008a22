"""The status page: the share as the clerk's screen (docs/folder-convention.md, section 6).

`render()` is a pure function from journal rows (plus the release files that
do nothing) to one self-contained HTML file: no scripts, no external
resources, a meta refresh of 10 s, counts at the top, the time it was
written, and every name HTML-escaped. `StatusPage.refresh()` rewrites the
file atomically, only when its content changed and at most every
`MIN_INTERVAL` seconds, or `PAGE_PACE` times the last refresh's CPU when
that is longer, at most `PAGE_PACE_MAX` (the clocks are injected for tests).
`StatusPage.stopped()` writes it once more at a clean stop, saying so at its top.
"Today" is the UTC date, as in the archive folders' names.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from daemon import logs
from daemon.clerkwords import for_clerks
from daemon.config import Settings
from daemon.errors import OutboxdError
from daemon.journal import CLAIMING, DELIVERED, LIVE, QUARANTINING, Journal, Row, readable
from daemon.leftalone import SPELLING, LeftBehind, left_behind, still_quarantined
from daemon.names import attachment_folders, stem
from daemon.ourfiles import remove_ours, replace_ours
from daemon.pagefile import PageFile, old_page
from daemon.pagehtml import ids, lines, page, section, shown, table, text
from daemon.release import (
    Idle,
    idle_releases,
    overlong,
    release_names,
    rename_shorter,
)
from daemon.scan import list_outbox
from daemon.strays import Stray, StrayFolders
from daemon.temps import drop_unfinished

MIN_INTERVAL = 2.0
# The next refresh waits at least this many times the last one's cost: with 20,000
# bundles waiting a refresh takes about half a second (reading and decoding the
# rows, a 6 MB page), and every 2 s it would take a quarter of a core whenever
# anything changes; paced so, the page costs at most a twentieth.
PAGE_PACE = 20.0
PAGE_PACE_MAX = 60.0  # seconds: however costly, the clerks' page is never older than this
# Of Sent today and Quarantined today, the page lists the latest this many: a busy day
# sends thousands, each a row of the page rewritten every few seconds, where the clerk
# looks for the last few. The counts at the top stay whole.
FINISHED_SHOWN = 100

def sections(rows: Sequence[Row], today: str) -> dict[str, list[Row]]:
    """The rows of each section; `today` is YYYY-MM-DD (UTC)."""
    return {
        "waiting": [r for r in rows if r.state == "waiting"],
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


def latest(rows: Sequence[Row]) -> tuple[list[Row], int]:
    """The FINISHED_SHOWN latest of `rows` (journal order), newest first, and how many
    are left out. Journal order is when outboxd first saw each file: a bundle retried
    or sent late sat among old ones."""
    ordered = [r for _, r in sorted(enumerate(rows), key=lambda ir: (ir[1].since, ir[0]),
                                    reverse=True)]
    return ordered[:FINISHED_SHOWN], max(0, len(ordered) - FINISHED_SHOWN)


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
    return f"each invoice's own folder, named after its invoice id ({folders})"


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
           left: Sequence[LeftBehind] = (), strays: Sequence[Stray] = ()) -> str:
    """The whole page. With body_only the time written is left out (for change checks).
    `refused`: root files left alone, invoice files that cannot be used and files that
    are no invoice file (name as shown → why); `left`: the
    look-alike sidecars a quarantine left in the outbox; `strays`: folders that hold
    invoice files, from which nothing is sent."""
    today = written_at.astimezone(UTC).strftime("%Y-%m-%d")
    sec = sections(rows, today)
    counts = [("Waiting for attachments", len(sec["waiting"])), ("Held", len(sec["held"])),
              ("Not moving", len(sec["stuck"])), ("Being sent", len(sec["sending"])),
              ("Retrying", len(sec["retrying"])),
              ("Quarantined today", len(sec["quarantined"])),
              ("Sent today", len(sec["sent"]))]
    parts: list[str] = []
    parts.append('<ul class="counts">' + "".join(
        f"<li><b>{n}</b>{text(title)}</li>" for title, n in counts) + "</ul>")

    waiting = []
    for r in sec["waiting"]:
        how = (f"add the attachments to {_where_attachments_go(r, sidecar_suffix)}, or "
               f"{_how_to_release(r, release_suffix)}")
        waiting.append([text(r.invoice_file), ids(r.unattached_ids), text(readable(r.since)),
                        text(readable(r.deadline)) if r.deadline else "none — waits until "
                        "released", how])
    parts.append(section("waiting", "Waiting for attachments", table(
        ["File", "Invoices without attachments", "Since", "Deadline", "How to release"],
        waiting)))

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

    shown_q, hidden_q = latest(sec["quarantined"])
    quarantined = [[text(Path(r.archive_dir).name if r.archive_dir else r.invoice_file),
                    lines([f"{x['file']}: {x['message']}" for x in r.reasons])]
                   for r in shown_q]
    parts.append(section("quarantined", "Quarantined today (see REASON.txt in each folder)",
                          table(["Folder", "Reasons"], quarantined) + _more(
                              hidden_q, "quarantined today", "the earliest; each has its "
                              "folder in today's folder of quarantine/, with its REASON.txt")))

    shown_s, hidden_s = latest(sec["sent"])
    sent = [[text(r.invoice_file), ids(r.invoice_ids), text(r.receipt_id),
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


class StatusPage:
    """Keeps OUTBOX/[share] status_page up to date; call refresh() as often as you like."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 cpu: Callable[[], float] = time.thread_time) -> None:
        self.clock = clock
        self.wall = wall
        # A refresh's cost is the CPU it took on this thread: a share that stalls the
        # write, or other threads holding the interpreter lock, cost the daemon nothing.
        self.cpu = cpu
        self._next_at = float("-inf")  # monotonic: when the next refresh may look
        self._last_body: str | None = None
        self._last_error = ""
        self._reported_bad: set[str] = set()
        self._swept: Path | None = None  # the page whose leftover temp files are gone
        self._file = PageFile()  # a clerk's file of the page's name is never replaced
        self._strays = StrayFolders()
        self._said_left: set[tuple[str, str]] = set()
        # Look-alikes shown as left by a quarantine (as shown: printable): a rename or
        # removal of one changes no journal row, so its event must ask for a refresh.
        self.left_names: frozenset[str] = frozenset()
        self.stray_names: frozenset[str] = frozenset()  # folders shown holding invoice files

    def next_at(self) -> float:
        """The earliest monotonic time the next refresh may look."""
        return self._next_at

    def refresh(self, journal: Journal, settings: Settings,
                invoice_files: Iterable[str] | None = None,
                refused: Mapping[str, str] | None = None) -> bool:
        """Rewrite the page if it is due and its content changed; True if written.

        Looks at most every MIN_INTERVAL seconds, or PAGE_PACE times the CPU the last
        look cost when that is longer (at most PAGE_PACE_MAX). A page that cannot be written
        (a full disk, permissions) is logged once per distinct error and never
        stops the caller: the page is a view, the journal is the record.
        """
        if not settings.share.status_page or self.clock() < self._next_at:
            return False
        began, cpu = self.clock(), self.cpu()
        # A failed refresh is tried again after MIN_INTERVAL, however long it took to fail.
        self._next_at = began + MIN_INTERVAL
        try:
            written = self._refresh(journal, settings, invoice_files, refused)
        # UnicodeError: a name that reached the page unescaped must cost the page, never the
        # daemon (it would fail again at every start, and nothing would be delivered).
        except (OSError, OutboxdError, UnicodeError) as exc:
            if str(exc) != self._last_error:
                self._last_error = str(exc)
                logs.get().error("cannot write the status page", error=str(exc))
            return False
        pace = min(PAGE_PACE_MAX, max(MIN_INTERVAL, PAGE_PACE * (self.cpu() - cpu)))
        self._next_at = began + pace
        self._last_error = ""
        return written

    def reconfigure(self, old: Settings, new: Settings) -> None:
        """A reload that turns the page off or renames it: the old page goes, when it
        is ours (a clerk's file of that name stays), instead of staying on the share
        with content that no longer changes."""
        before = old.share.status_page and old.outbox.path / old.share.status_page
        after = new.share.status_page and new.outbox.path / new.share.status_page
        if not before or before == after:
            return
        self._last_body = None
        try:
            remove_ours(before, lambda: old_page(before))
        except OSError as exc:  # a view: never a reason to refuse a reload
            logs.get().warning("the old status page could not be removed", file=str(before),
                               error=str(exc))

    def stopped(self, journal: Journal, settings: Settings,
                invoice_files: Iterable[str] | None = None,
                refused: Mapping[str, str] | None = None) -> bool:
        """At a clean stop: the page once more, whatever its pace, saying at its top that
        outboxd is stopped since now; else it would go on showing everything as moving.
        The lists as the journal has them at the stop, or, where it cannot be read (the
        journal lost under the daemon), as the page last showed them. Never raises: the
        stop goes on."""
        if not settings.share.status_page:
            return False
        now = self.wall()
        try:
            body = self._body(journal, settings, invoice_files, refused, now)
        except (OSError, OutboxdError, UnicodeError, sqlite3.Error) as exc:
            logs.get().warning("status page at the stop shows the lists as last written",
                               error=str(exc))
            body = self._last_body or ""
        path = settings.outbox.path / settings.share.status_page
        try:
            self._write(path, page(body, now, stopped_at=now))
        except (OSError, OutboxdError) as exc:
            if str(exc) != self._last_error:  # said by the last refresh already
                logs.get().error("cannot write the status page", error=str(exc))
            return False
        self._last_body = None  # running again, the page is written again whatever it holds
        return True

    def _refresh(self, journal: Journal, settings: Settings,
                 invoice_files: Iterable[str] | None, refused: Mapping[str, str] | None
                 ) -> bool:
        now = self.wall()
        body = self._body(journal, settings, invoice_files, refused, now)
        path = settings.outbox.path / settings.share.status_page
        if body == self._last_body and self._file.unchanged(path):
            return False
        if self._swept != path:
            # A kill between a write's temp file and its rename left that file in the
            # outbox, where the clerks see it: once a start (one listing of the root).
            drop_unfinished(path.parent, [path.name])
            self._swept = path
        self._write(path, page(body, now))  # rendered once, here
        self._last_body = body
        return True

    def _write(self, path: Path, html: str) -> None:
        """The page written at path, only over a page of outboxd's (PageFile.judge:
        NotOurs else), and remembered as written, to tell a person's change of it."""
        self._file.wrote(replace_ours(path, html.encode("utf-8"),
                                      lambda: self._file.judge(path, logs.get())))

    def _body(self, journal: Journal, settings: Settings, invoice_files: Iterable[str] | None,
              refused: Mapping[str, str] | None, now: datetime) -> str:
        """The page's body (without the time it is written) as of `now`."""
        share = settings.share
        today = now.astimezone(UTC).strftime("%Y-%m-%d")
        rows = still_quarantined(journal.recent(days=1), today, settings.outbox.path)
        idle: list[Idle] = []
        names = release_names(settings.outbox.path, share)  # names only: no stat
        # The loop passes the invoice files it knows; listing is the fallback.
        files = list(invoice_files if invoice_files is not None else list_outbox(
            settings.outbox, share).candidates)
        strays = self._strays.find(settings.outbox, share, files, journal.finished_files)
        self.stray_names = frozenset(x.name for x in strays)
        if names:
            states = {r.invoice_file: r.state for r in rows if r.state in LIVE}
            idle = idle_releases(names, share, files, states)
            self._report_bad_names(idle)
        left = left_behind(journal.quarantined_for(SPELLING), settings.outbox.path,
                           settings.quarantine_dir)
        self._report_left(left)
        return render(rows, idle, now, share.release_suffix, body_only=True, refused=refused,
                      sidecar_suffix=settings.outbox.sidecar_suffix, left=left, strays=strays)

    def _report_left(self, left: Sequence[LeftBehind]) -> None:
        """A look-alike left in the outbox by a quarantine, logged once for as long as it
        is shown; the names shown, for the loop to know an event on one (a rename) calls
        for a refresh."""
        said = {(x.name, x.quarantine) for x in left}
        for x in left:
            if (x.name, x.quarantine) not in self._said_left:
                logs.bundle_log(logs.get(), x.invoice_file, x.bundle_id, x.invoice_ids).warning(
                    "look-alike sidecar left in the outbox by a quarantine; waits for a "
                    "person", file=x.name, quarantine=x.quarantine, error=f"{x.name}: {x.why}")
        self._said_left = said
        # As on disk: the loop compares them with the names of events and listings.
        self.left_names = frozenset(x.on_disk for x in left)

    def _report_bad_names(self, idle: Iterable[Idle]) -> None:
        """A release file whose name can never be used, logged once per name: the scanner
        leaves release files to the page, so this is the only place that sees them."""
        for i in idle:
            if i.bad_name and i.name not in self._reported_bad:
                self._reported_bad.add(i.name)
                logs.get().error("release file cannot be used; left alone", file=i.name,
                                 error=f"{i.name}: {i.why}")
