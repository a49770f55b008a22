"""The status page: the share as the clerk's screen (docs/folder-convention.md, section 6).

What it says is pagerender.py's (`render()`, pure); this module keeps the file up to
date. `StatusPage.refresh()` gathers what the page shows (journal rows, release files
that do nothing, look-alikes left by a quarantine, folders nothing is sent from) and
rewrites the file atomically, only when its content changed and at most every
`MIN_INTERVAL` seconds, or `PAGE_PACE` times the last refresh's CPU when
that is longer, at most `PAGE_PACE_MAX` (the clocks are injected for tests).
`StatusPage.stopped()` writes it once more at a clean stop, saying so at its top.
What the admin's log says of it and of the files it shows is pagelog.py's.
"Today" is the UTC date, as in the archive folders' names.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from daemon import logs
from daemon.archiving.quarantinenews import Elsewhere
from daemon.claiming.claim import copy_tag
from daemon.claiming.foreign import foreign_work
from daemon.claiming.workname import host_tag
from daemon.configuration.config import Settings
from daemon.errors import OutboxdError, describe, failure_key, in_words
from daemon.fs.ourfiles import remove_ours, replace_ours
from daemon.fs.temps import Listed, drop_unfinished, drop_unfinished_named
from daemon.journal import IN_FLIGHT, LIVE, Journal, Row
from daemon.loop.idlefiles import (
    Idle,
    idle_releases,
    marker_misses,
    stray_errors_files,
    suffixed_names,
)
from daemon.loop.leftwords import left_words, named_after
from daemon.names import OTHER_PAGES, stem
from daemon.report.pagefile import PageFile, old_page, running_pages
from daemon.report.pagehtml import page
from daemon.report.pagelog import PageLog, not_written
from daemon.report.pagelone import named_as_file
from daemon.report.pagerender import LONE_SHOWN, render
from daemon.report.pagerows import page_rows
from daemon.report.sentwarnings import SentWarnings
from daemon.report.sidecarheld import QuarantinedSidecars
from daemon.watching.leftalone import SPELLING, MovedBackToday, left_behind, shared_name
from daemon.watching.lonefolders import Lone, LoneFolder, Near, listed, lone_in
from daemon.watching.scan import list_outbox
from daemon.watching.strays import StrayFolders

MIN_INTERVAL = 2.0  # the folder convention's "at most every 2 s"
# The next refresh waits at least this many times the last one's cost: with 20,000
# bundles waiting a refresh takes about half a second (reading and decoding the
# rows, a 6 MB page), and every 2 s it would take a quarter of a core whenever
# anything changes; paced so, the page costs at most a twentieth.
PAGE_PACE = 20.0
PAGE_PACE_MAX = 60.0  # seconds: however costly, the clerks' page is never older than this
# A running daemon writes its page again after this long though nothing on it changed,
# and the page says by when the next write is due (SHOWN_DUE after this one): a page left
# by a daemon that died (kill -9, power loss) or whose loop is stuck then shows that it
# is old. The page runs no script (docs/folder-convention.md, The status page), and HTML
# alone cannot compare a time with the reader's clock, so the clerk does. With 2,000
# waiting such a rewrite costs some 50 ms of CPU.
HEARTBEAT = 240.0
SHOWN_DUE = timedelta(seconds=300)  # HEARTBEAT and PAGE_PACE_MAX: the latest it comes


class _Whose(TypedDict):
    host: str
    daemon: str


def _whose(settings: Settings) -> _Whose:
    """The page's daemon as its files on the share name it (claim.copy_tag), no pid."""
    return {"host": host_tag(), "daemon": copy_tag(settings.paths.state_dir)}


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
        self._looked_at = float("-inf")  # monotonic: when the last refresh looked
        self._written_at = float("inf")  # monotonic: when this run last wrote it (inf: not)
        self._last_body: str | None = None
        self._last_error = ""
        self._log = PageLog()  # what the log says once of the files the page shows
        self._swept: Path | None = None  # the page whose leftover temp files are gone
        self._file = PageFile()  # a clerk's file of the page's name is never replaced
        self._strays = StrayFolders()
        self._near: Near | None = None  # the lone folders' names, as last asked
        self._moved_back = MovedBackToday()  # the folders of today's quarantined, looked at
        self._sent_warnings = SentWarnings()  # of the listed sent rows, from their receipts
        self._quarantined_sidecars = QuarantinedSidecars()  # of the waiting, looked at
        # Look-alikes shown as left by a quarantine (as on disk, as events name them): a
        # rename or removal of one changes no journal row, so its event must ask for a
        # refresh.
        self.left_names: frozenset[str] = frozenset()
        # The folders listed as strays (holding invoice files, or come too late), as on disk.
        self.stray_names: frozenset[str] = frozenset()
        # Today's entries of quarantine/ that other daemons filed, as the loop's last look
        # at quarantine/ found them (quarantinenews.py): never looked for by a refresh.
        # The latest only, as the page lists them; the earlier ones are counted.
        self.elsewhere: Sequence[Elsewhere] = ()
        self.elsewhere_more = 0
        # The UTC day whose quarantine/ folder they were listed from: after midnight the
        # page's own entries of the day before leave it at once (its MIDNIGHT refresh),
        # and so must these, not at the next rescan's look (up to rescan_seconds later).
        self.elsewhere_day = ""

    def next_at(self) -> float:
        """The earliest monotonic time the next refresh may look."""
        return self._next_at

    def stale_at(self) -> float:
        """When the page is written again though nothing on it changed (monotonic; inf
        while this run has not written it, or it is off)."""
        return self._written_at + HEARTBEAT

    def refresh(self, journal: Journal, settings: Settings,
                invoice_files: Iterable[str] | None = None,
                refused: Mapping[str, str] | None = None, lone: Lone | None = None) -> bool:
        """Rewrite the page if it is due and its content changed; True if written.

        Looks at most every MIN_INTERVAL seconds, or PAGE_PACE times the CPU the last
        look cost when that is longer (at most PAGE_PACE_MAX). A page that cannot be written
        (a full disk, permissions) is logged once per distinct error and never
        stops the caller: the page is a view, the journal is the record.
        """
        if not settings.share.status_page:
            self._last_error = ""  # off: nothing is failing, nothing to ask for again
            return False
        if self.clock() < self._next_at:
            return False
        began, cpu = self.clock(), self.cpu()
        self._looked_at = began
        self._next_at = began + MIN_INTERVAL
        try:
            written = self._refresh(journal, settings, invoice_files, refused, lone)
        # UnicodeError: a name that reached the page unescaped must cost the page, never the
        # daemon (it would fail again at every start, and nothing would be delivered).
        except (OSError, OutboxdError, UnicodeError) as exc:
            if failure_key(exc) != self._last_error:
                self._last_error = failure_key(exc)
                logs.get().error("cannot write the status page", **not_written(
                    settings.outbox.path / settings.share.status_page, exc))
            # Tried again (the publisher asks while it fails) at the pace its CPU sets, as
            # a written one: a full share must not cost a big page's gathering every 2 s.
            self._next_at = began + self._pace(cpu)
            return False
        self._next_at = began + self._pace(cpu)
        self._last_error = ""
        return written

    @property
    def failing(self) -> bool:
        """The last refresh could not write the page (it is to be tried again)."""
        return self._last_error != ""

    def _pace(self, cpu_before: float) -> float:
        return min(PAGE_PACE_MAX, max(MIN_INTERVAL, PAGE_PACE * (self.cpu() - cpu_before)))

    def reconfigure(self, old: Settings, new: Settings) -> None:
        """A reload: the next refresh may look MIN_INTERVAL after the last, not after the
        pace a costly one set (up to a minute: an admin who renames or turns on the
        page, or changes the policy it explains, looks for it right away; reloads are
        rare); never sooner, as the folder convention promises. One that turns the page
        off or renames it: the old page goes, when it is ours (a clerk's file of that
        name stays), instead of staying on the share with content that no longer
        changes."""
        self._next_at = min(self._next_at, self._looked_at + MIN_INTERVAL)
        before = old.share.status_page and old.outbox.path / old.share.status_page
        after = new.share.status_page and new.outbox.path / new.share.status_page
        if not before or before == after:
            return
        # The failure was the old file's: kept, a page turned off would be asked for at
        # every turn (the publisher asks again while it fails), a core spun for nothing.
        self._last_body, self._last_error, self._written_at = None, "", float("inf")
        try:
            remove_ours(before, lambda: old_page(before))
        except OSError as exc:  # a view: never a reason to refuse a reload
            logs.get().warning("the old status page could not be removed", file=str(before),
                               error=describe(exc))

    def stopped(self, journal: Journal, settings: Settings,
                invoice_files: Iterable[str] | None = None,
                refused: Mapping[str, str] | None = None, lone: Lone | None = None) -> bool:
        """At a clean stop: the page once more, whatever its pace, saying at its top that
        outboxd is stopped since now; else it would go on showing everything as moving.
        The lists as the journal has them at the stop, or, where it cannot be read (the
        journal lost under the daemon), as the page last showed them. Never raises: the
        stop goes on."""
        if not settings.share.status_page:
            return False
        now = self.wall()
        try:
            body = self._body(journal, settings, invoice_files, refused, now, lone)
        except (OSError, OutboxdError, UnicodeError, sqlite3.Error) as exc:
            logs.get().warning("status page at the stop shows the lists as last written",
                               error=in_words(exc))
            body = self._last_body or ""
        path = settings.outbox.path / settings.share.status_page
        try:
            self._write(path, page(body, now, stopped_at=now, others=running_pages(
                settings.outbox.path, settings.share.status_page), **_whose(settings)))
        except (OSError, OutboxdError) as exc:
            if failure_key(exc) != self._last_error:  # said by the last refresh already
                logs.get().error("cannot write the status page", **not_written(path, exc))
            return False
        self._last_body = None  # running again, the page is written again whatever it holds
        self._written_at = float("inf")  # and a stopped page is not written over meanwhile
        return True

    def _refresh(self, journal: Journal, settings: Settings,
                 invoice_files: Iterable[str] | None, refused: Mapping[str, str] | None,
                 lone: Lone | None) -> bool:
        now = self.wall()
        body = self._body(journal, settings, invoice_files, refused, now, lone)
        path = settings.outbox.path / settings.share.status_page
        if body == self._last_body and self._file.unchanged(path) \
                and self.clock() < self.stale_at():
            return False
        if self._swept != path:  # unless the start's listing served (swept)
            self._sweep(path)
        self._write(path, page(body, now, due=now + SHOWN_DUE,  # rendered once, here
                               **_whose(settings)))
        self._written_at = self.clock()
        self._last_body = body
        return True

    def swept(self, settings: Settings, listed: Listed) -> None:
        """At a start, by the start's listing of the outbox (`listed`: scan.Listing.stats,
        which the errors files' sweep takes too): what _sweep removes. Where it fails,
        the first refresh sweeps again, and says why if it fails too. With the page off,
        the temps of outboxd-status….html pages."""
        with contextlib.suppress(OSError):
            if settings.share.status_page:
                self._sweep(settings.outbox.path / settings.share.status_page, listed)
            else:
                # Turned off across a restart, a write killed midway left its temp, which no
                # refresh sweeps now. The name the page had is not known: the temps of
                # the names outboxd keeps for its pages (the default's among them) go; a
                # writer's still under way (another daemon's on the share) is locked, kept.
                # Only this user's: another host's daemon under its own account writes its
                # page through a temp this one may not open, and so whose lock it cannot
                # ask (removed unlocked, that daemon's write failed); it sweeps its own.
                me = os.geteuid()
                drop_unfinished_named(settings.outbox.path, OTHER_PAGES, {
                    n: st for n, st in listed.items() if st.st_uid == me})

    def _sweep(self, path: Path, listed: Listed | None = None) -> None:
        """A kill between a write's temp file and its rename left that file in the
        outbox, where the clerks see it: removed once a start, or once the page has
        another name (one listing of the root)."""
        drop_unfinished(path.parent, [path.name], listed)
        self._swept = path

    def _write(self, path: Path, html: str) -> None:
        """The page written at path, only over a page of outboxd's (PageFile.judge:
        NotOurs else), and remembered as written, to tell a person's change of it."""
        self._file.wrote(replace_ours(path, html.encode("utf-8"),
                                      lambda: self._file.judge(path, logs.get())))

    def _body(self, journal: Journal, settings: Settings, invoice_files: Iterable[str] | None,
              refused: Mapping[str, str] | None, now: datetime, lone: Lone | None = None
              ) -> str:
        """The page's body (without the time it is written) as of `now`. `lone`: the
        folders without an invoice file as the loop's index has them (name -> ctime_ns);
        without the invoice files either, both from one listing."""
        share = settings.share
        today = now.astimezone(UTC).strftime("%Y-%m-%d")
        rows, more, others = page_rows(journal, now, today, settings.outbox.path,
                                       self._moved_back)
        idle: list[Idle] = []
        # Names only; an lstat for each beside an invoice file (idle_releases).
        names = suffixed_names(settings.outbox, share)
        # The loop passes the invoice files it knows; listing is the fallback.
        if invoice_files is None:
            listing = list_outbox(settings.outbox, share)
            invoice_files = listing.candidates
            if lone is None:
                lone = lone_in(listing.stats, {c.sidecar.name for c in
                                               listing.candidates.values()},
                               settings.outbox.ignore_patterns)
        files = list(invoice_files)
        strays = self._strays.find(settings.outbox, share, files,
                                   lambda stems: journal.finished_files(stems=stems))
        self.stray_names = frozenset(x.on_disk for x in strays)
        left = left_behind(journal.quarantined_for(SPELLING), settings.outbox.path,
                           settings.quarantine_dir)
        lone_folders, near = self._lone(rows, lone or {}, invoice_files, settings,
                                        {x.on_disk for x in left})
        states = {r.invoice_file: r.state for r in rows if r.state in LIVE}
        if names.releases:
            idle = idle_releases(names.releases, share, files, states, settings.outbox.path)
        if refused:  # a clerk's near miss of a release or marker file: the name it needs
            # Quarantined over the week `status` tells, not the page's latest 100 of today:
            # of the invoice files these names may be named after only.
            after = named_after(refused, settings.outbox)
            refused = left_words(refused, settings.outbox, share, files, states, {
                f: shared_name(Path(folder), settings.quarantine_dir) for f, folder in
                journal.quarantined_lately(after, lambda f: stem(f) in after).items()})
        if misses := marker_misses(settings.outbox, share, files, names.markers):
            refused = {**(refused or {}), **misses}
        if strays_named := stray_errors_files(names.errors, [*files, *(
                r.invoice_file for r in rows if r.state not in ("sent", "quarantined"))]):
            refused = {**(refused or {}), **strays_named}
        self._log.bad_names(idle)
        self.left_names = self._log.left(left)
        sent_ids = journal.sent_elsewhere(r for r in rows if r.state == "waiting")
        # One of ours between its move into quarantine/ and its row's is listed as ours:
        # known by its bundle id while in flight, by its folder once quarantined. Not by
        # any row's id: a bundle we sent, dropped again and quarantined by another daemon
        # as a `duplicate`, is that daemon's entry, and was left off every page of ours.
        moving = {r.bundle_id for r in rows if r.state in IN_FLIGHT}
        filed = {Path(r.archive_dir).name for r in rows if r.state == "quarantined"
                 and r.archive_dir and Path(r.archive_dir).parent.name == today}
        of_today = self.elsewhere_day == today
        elsewhere = [e for e in self.elsewhere if of_today and e.folder not in filed
                     and not (e.bundle_id and e.bundle_id in moving)]
        if of_today and self.elsewhere_more:  # counted as our earlier rows, not listed
            more = {**more, "quarantined": more.get("quarantined", 0) + self.elsewhere_more}
        out = settings.outbox
        # A folder named like an invoice file (Z-1.xml/) is told to become Z-1/: unless
        # Z-1/ is there already (one lstat for each of those rare folders). By the names
        # on disk: Z\x85-1.xml/ (the control character) was looked for as Z\x85-1/ typed.
        taken = {x.on_disk for x in lone_folders[:LONE_SHOWN]
                 if (t := named_as_file(x, out.sidecar_suffix, out.invoice_patterns))
                 and os.path.lexists(out.path / t)}
        kept = self._quarantined_sidecars.of(journal, [r.invoice_file for r in rows if r.state
                                                       == "waiting"], out, settings.quarantine_dir)
        return render(rows, idle, now, share.release_suffix, body_only=True, refused=refused,
                      sidecar_suffix=out.sidecar_suffix, left=left, strays=strays,
                      foreign=foreign_work(settings.processing_dir, out.path),
                      unattached=settings.policy.unattached, more=more,
                      journal_failure=journal.failure, lone=lone_folders, near=near,
                      sent_ids=sent_ids, invoice_patterns=out.invoice_patterns, taken=taken,
                      elsewhere=elsewhere, sent_by_others=others,
                      sent_warnings=self._sent_warnings.of(rows), in_quarantine=kept)

    def _lone(self, rows: Sequence[Row], lone: Lone, invoice_files: Iterable[str],
              settings: Settings, left: AbstractSet[str] = frozenset()
              ) -> tuple[list[LoneFolder], dict[str, list[str]]]:
        """The folders without an invoice file the page lists, and of each waiting invoice
        file the lone folders named close to it. Not those the page tells otherwise: a
        folder holding invoice files (strays), a look-alike of a bundle's sidecar (told
        in that bundle's errors) or one a quarantine left behind (`left`, as on disk:
        listed twice, it had two fixes, and "put its invoice file into the outbox"
        skipped the renaming its quarantine waits for)."""
        if not lone:
            return [], {}
        told = {n for c in invoice_files.values() for n in c.look_alikes} \
            if isinstance(invoice_files, Mapping) else set()
        told |= {n for n in lone if n in self.stray_names} | left
        waiting = [r.invoice_file for r in rows if r.state == "waiting"]
        folders, near, self._near = listed(lone, waiting, settings.outbox.sidecar_suffix,
                                           told, self._near)
        return folders, near
