"""The outbox away (a share unmounted or gone, the folder moved aside or made unreadable,
the watcher unable to start): said once, and looked at again within seconds.

While the rescan can neither list the outbox nor start its watcher, the loop looks again
on a short back-off (1 s, 2 s, 4 s … at most min(rescan_seconds, 30 s)) on its timer heap,
instead of a whole rescan period later: bundles dropped once the outbox is back go out
within seconds. The log says the outage once when it begins (what failed, the fix), again
only when its error changes (another errno, or the listing works again but the watcher
still cannot start), and once when it is over, with how long it lasted. Each look costs a
failed open or two; with the outbox there nothing here runs.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

from daemon.delivery.backoff import backoff_ceiling
from daemon.errors import describe

FIRST_LOOK = 1.0  # seconds after the first failed look
LONGEST_LOOK = 30.0  # at most this between looks (or rescan_seconds, when shorter)

LIST_FIX = ("mount the share, or put the folder back where [outbox] path says, and let "
            "outboxd's user read it; outboxd looks again by itself within seconds and goes "
            "on where it stopped (nothing in the outbox is lost meanwhile)")
WATCH_FIX = ("if the error is 'No space left on device' or 'Too many open files', raise "
             "fs.inotify.max_user_watches or fs.inotify.max_user_instances (sysctl), or set "
             "[outbox] watch = \"polling\"; meanwhile outboxd lists the outbox every few "
             "seconds instead, so bundles still go out")


def _what(exc: OSError) -> Hashable:
    """What makes two failures the same one: the errno (the text names the same path)."""
    return exc.errno if exc.errno is not None else type(exc).__name__


class Outage:
    """The outbox's outage as the loop sees it (the loop's thread only)."""

    def __init__(self, log: Any, outbox: Path) -> None:
        self.log = log
        self.outbox = outbox
        self.since: float | None = None  # monotonic: when the first look failed
        self._said: tuple[str, Hashable] | None = None  # the failure the log last told of
        self._unlisted = False  # the listing failed at some look of this outage
        self._looks = 0  # failed looks in this outage

    @property
    def on(self) -> bool:
        return self.since is not None

    def failed(self, now: float, listing: OSError | None, watching: OSError | None,
               rescan_seconds: float) -> float:
        """A look at which the listing (or, if that worked, the watcher) failed: logged
        when the outage begins or its error changes; the seconds until the next look."""
        failure = ("list", listing) if listing is not None else ("watch", watching)
        what, exc = failure
        assert exc is not None
        said = (what, _what(exc))
        if self.since is None:
            self.since = now
        if said != self._said:
            self._said = said
            fields: dict[str, Any] = {"outbox": str(self.outbox), "error": describe(exc)}
            if what == "list":
                self._unlisted = True
                if watching is not None and describe(watching) != fields["error"]:
                    fields["watcher_error"] = describe(watching)
                self.log.error("cannot list the outbox; looking again every few seconds "
                               "until it is back", fix=LIST_FIX, **fields)
            else:
                self.log.error("cannot watch the outbox; listing it every few seconds "
                               "until the watcher starts", fix=WATCH_FIX, **fields)
        self._looks += 1
        return backoff_ceiling(self._looks, FIRST_LOOK, min(rescan_seconds, LONGEST_LOOK))

    def over(self, now: float) -> None:
        """A look at which the outbox was listed and watched: the outage, if any, ends."""
        if self.since is None:
            return
        lasted = round(now - self.since, 1)
        if self._unlisted:
            self.log.info("the outbox is there again; watching it", outbox=str(self.outbox),
                             away_seconds=lasted)
        else:
            self.log.info("the outbox is watched again", outbox=str(self.outbox),
                             unwatched_seconds=lasted)
        self.since, self._said, self._unlisted, self._looks = None, None, False, 0
