"""What the daemon shows of itself while it runs: `STATUS=` for systemd (docs/operations.md)
and the status page on the share (docs/folder-convention.md). Each is refreshed only when the
journal changed (or, for the page, a release file, an unusable invoice file, a look-alike
left by a quarantine, a NAME.errors.txt beside no invoice file or a folder of the root came
or went), and when the UTC day ends
("sent today" starts again), each at most at its own pace, from timers on the loop's
heap: an idle daemon publishes nothing else.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Container, Hashable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from daemon.configuration.config import Settings
from daemon.delivery.throttle import THROTTLED
from daemon.invisible import escaped_controls
from daemon.journal import Journal
from daemon.loop.timers import Timers
from daemon.report.clerkwords import pause_of
from daemon.report.notify import notify
from daemon.report.statuspage import StatusPage
from daemon.watching.lonefolders import Lone
from daemon.watching.scan import Candidate

STATUS: Hashable = ("status",)
PAGE: Hashable = ("status-page",)
MIDNIGHT: Hashable = ("midnight",)  # "today" (UTC) ends: the counts of today change
STATUS_EVERY = 1.0  # seconds between STATUS= updates at most
STATUS_ORDER = ("settling", "not moving", "waiting", "held", "delivering", "retrying")
PAUSE_SHOWN = 160  # characters of a pause's error in STATUS= (its receiver's answer after)


def _shown(why: str) -> str:
    """An error as STATUS= quotes it: at most PAUSE_SHOWN characters."""
    return why if len(why) <= PAUSE_SHOWN else why[:PAUSE_SHOWN - 1] + "…"


class Publisher:
    def __init__(self, clock: Callable[[], float],
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        # One wall clock for both views' "today" and the end of the UTC day (tests pin it).
        self.page = StatusPage(clock=clock, wall=wall)
        self.wall = wall
        self._text = ""
        self._status_at = float("-inf")
        self._status_changes = -1
        self._status_failure = ""
        self._page_changes = -1
        self._page_failure = ""  # the journal's failure the page last showed
        self._page_hinted = False
        self._dirs: frozenset[tuple[str, int]] = frozenset()  # the root's folders, last listed
        self._errors: frozenset[str] = frozenset()  # the root's errors files of no bundle, listed
        self._away = False  # the outbox, and so the page in it, cannot be reached
        self._away_since: datetime | None = None  # wall clock, for STATUS= (shown, not kept)
        self._status_hinted = False  # STATUS= reads differently with no change of the journal
        self._lone_version = 0  # the index's folders without an invoice file, last hinted

    def outbox_away(self, away: bool) -> None:
        """The outbox cannot be listed (True) or can again (False). The page is in it: no
        write is tried meanwhile (each would fail, its error a second line for the one
        outage), and once it is back the page is written again at once."""
        if self._away and not away:
            self._page_hinted = True
        if away != self._away:
            # STATUS= says so at once (`systemctl status`): the counts alone would read
            # as an idle daemon while nothing dropped in the outbox can be seen.
            self._away_since = self.wall() if away else None
            self._status_hinted = True
        self._away = away

    @property
    def shown(self) -> str:
        """STATUS= as last sent (the counts), for hangwatch.py to say more before it."""
        return self._text

    def status_again(self) -> None:
        """Any thread: STATUS= is sent again at the loop's next turn, though it may read
        as last sent: something else (hangwatch.py) said more meanwhile."""
        self._text, self._status_hinted = "", True

    def reconfigure(self, old: Settings, new: Settings) -> None:
        """A reload: an old page of another name goes (StatusPage.reconfigure), and the
        page is written again under the new settings, though the journal may not change
        for a long while: a new name (or one turned on) would stay unwritten, and the
        release suffix and the policy the page explains would stay the old ones."""
        self.page.reconfigure(old, new)
        self._page_hinted = True

    def hinted(self) -> None:
        """A release file, an invoice file that cannot be used, or a NAME.errors.txt of no
        bundle came or went: the page shows those."""
        self._page_hinted = True

    def touched(self, names: Iterable[str]) -> None:
        """Root names an event came for, as on disk: a rename or removal of a look-alike
        the page shows as left by a quarantine, or of a folder it lists as one nothing is
        sent from, changes no journal row, but the page. Both are kept as on disk: a name
        with an invisible character (a right-to-left override) is shown as another name
        with its code typed (\\u202e) would be."""
        left, strays = self.page.left_names, self.page.stray_names
        if not (left or strays):
            return
        names = set(names)
        if not left.isdisjoint(names) or not strays.isdisjoint(names):
            self._page_hinted = True

    def listed(self, names: Container[str]) -> None:
        """A full listing's names: a look-alike shown as left by a quarantine that is
        not among them went without an event (polling, lost events)."""
        if any(n not in names for n in self.page.left_names):
            self._page_hinted = True

    def stray_errors(self, names: frozenset[str]) -> None:
        """A full listing's NAME.errors.txt of no bundle (OutboxIndex.stray_errors): one
        that came or went since the last listing did so without an event the loop saw
        (lost events; an event asks for the page itself, changes.py). The page lists
        them, though no journal row changed. A bundle's own, which come and go with its
        holds, ask for nothing here."""
        if names != self._errors:
            self._errors, self._page_hinted = names, True

    def folders(self, stats: Mapping[str, os.stat_result]) -> None:
        """A full listing's stats: a folder of the root that came, went or changed may
        be one that holds invoice files (strays.py), which no journal row tells of."""
        # Not the dot-folders (outboxd's own .outboxd/ among them, whose mtime a claim
        # moves): strays.py passes them over, as litter.
        dirs = frozenset((n, st.st_mtime_ns) for n, st in stats.items()
                         if stat.S_ISDIR(st.st_mode) and not n.startswith("."))
        if dirs != self._dirs:
            self._dirs, self._page_hinted = dirs, True

    def schedule(self, journal: Journal, timers: Timers, now: float) -> None:
        """After a turn: set the timers for what the journal's changes call for, and for
        the end of the UTC day, when "sent today" changes with no change of the journal."""
        if timers.due_at(MIDNIGHT) is None:
            wall = self.wall()
            tomorrow = (wall + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
            # A due time on the loop's clock, worked out from the wall clock once a day.
            timers.at(MIDNIGHT, now + (tomorrow - wall).total_seconds() + 1.0)
        if (journal.changes != self._status_changes or journal.failure != self._status_failure
                or self._status_hinted) and timers.due_at(STATUS) is None:
            timers.at(STATUS, max(now, self._status_at + STATUS_EVERY))
        # The page too says why nothing moves while the journal cannot be written, and
        # stops saying it once it can: neither changes a row.
        # sooner, not at: a turn set already stays, but is brought forward when the page
        # may look earlier now (a reload: 2 s after its last look, whatever the old pace).
        if (journal.changes != self._page_changes or self._page_hinted
                or journal.failure != self._page_failure) and not self._away:
            timers.sooner(PAGE, max(now, self.page.next_at()))
        elif not self._away and timers.due_at(PAGE) is None \
                and self.page.stale_at() != float("inf"):
            # Written again though nothing changed, for the page to show it is not old.
            timers.at(PAGE, max(now, self.page.next_at(), self.page.stale_at()))

    def lone(self, version: int) -> None:
        """The index's folders without an invoice file changed (`version` counts the
        changes): the page lists them, though no journal row changed."""
        if version != self._lone_version:
            self._lone_version, self._page_hinted = version, True

    def fire(self, key: Hashable, journal: Journal, settings: Settings,
             candidates: Mapping[str, Candidate], now: float,
             refused: Mapping[str, str] | None = None, lone: Lone | None = None) -> None:
        """A due timer: ours (STATUS, PAGE, MIDNIGHT) is acted on, any other key ignored."""
        if key == MIDNIGHT:  # both views again, as if the journal had changed
            self._status_changes, self._page_hinted = -1, True
        elif key == STATUS:
            self._status_at = now
            self._publish_status(journal)
        elif key == PAGE and self._away:
            self._page_hinted = True  # set before the outbox went: written once it is back
        elif key == PAGE:
            self._page_changes, self._page_hinted = journal.changes, False
            self._page_failure = journal.failure
            self.page.refresh(journal, settings, candidates, refused, lone)
            # A page that could not be written (a full share) is asked for again, at its
            # pace: else it kept its old news until something else changed.
            self._page_hinted = self.page.failing

    def stopped(self, journal: Journal, settings: Settings,
                candidates: Mapping[str, Candidate],
                refused: Mapping[str, str] | None = None, lone: Lone | None = None) -> None:
        """A clean stop: the page says outboxd is stopped (STOPPING=1 tells systemd).
        Not while the outbox is away, unless it is back since the last look: the write
        would fail, a warning and an error more for the one outage already said."""
        if self._away and not os.path.isdir(settings.outbox.path):
            return
        self.page.stopped(journal, settings, candidates, refused, lone)

    def _publish_status(self, journal: Journal) -> None:
        """STATUS= for systemd: the counts, only when they read differently; first, while
        the journal cannot be written, why (nothing moves then, and the counts alone
        would read as an idle daemon in `systemctl status`), and while the outbox cannot
        be reached, since when."""
        self._status_changes, self._status_failure = journal.changes, journal.failure
        self._status_hinted = False
        counts = journal.summary(self.wall())
        parts = [f"{counts[s]} {s}" for s in STATUS_ORDER if counts.get(s)]
        text = ", ".join([*parts, f"{counts.get('sent today', 0)} sent today"])
        # A configuration problem (401, 407, a redirect …) pauses every delivery: the
        # counts alone read as retrying on their own, without the setting to fix.
        errors = journal.retrying_errors()
        paused = [(e, n) for e, n in errors.items() if pause_of(e)]
        if paused:
            why = _shown(pause_of(max(paused, key=lambda en: en[1])[0]) or "")
            text = (f"deliveries paused ({sum(n for _, n in paused)} bundles wait): {why}; "
                    f"{text}")
        # The receiver asked for time (429/503 with Retry-After): every bundle waits for it,
        # which the counts alone would show as retries going wrong.
        throttled = [(e, n) for e, n in errors.items() if e.startswith(THROTTLED)]
        if throttled and not paused:
            why = _shown(max(throttled, key=lambda en: en[1])[0].removeprefix(THROTTLED))
            text = (f"receiver asked for time ({sum(n for _, n in throttled)} bundles wait): "
                    f"{why}; {text}")
        if journal.failure:
            text = f"journal cannot be written, nothing moves: {journal.failure}; {text}"
        if self._away_since is not None:
            since = self._away_since.astimezone(UTC).strftime("%H:%M:%S")
            text = f"outbox not reachable since {since} UTC; {text}"
        # One line, shown as the log shows it: a line break would end STATUS= and make
        # the rest an assignment of its own to systemd (MAINPID=, READY=), and a receiver's
        # answer or an error quoted in it reaches `systemctl status` on a terminal.
        text = escaped_controls(text)
        if text != self._text:
            self._text = text
            notify(f"STATUS={text}")
