"""A bundle whose read failed (Pipeline.took_read): what its status shows, the one log
line said for it, and whether it is read again after a while or only when one of its
files changes.

An input error (a file the clerk can fix) and a file outboxd's user may not read wait
for a change; what is nobody's fault (no descriptors left, a share that timed out)
brings no event when it passes, so it is read again after the rescan period. A bundle
claimed meanwhile by another daemon on the share is normal work, no error.
"""

from __future__ import annotations

from typing import Any

from daemon import logs
from daemon.claiming.claim import taken_meanwhile
from daemon.configuration.config import Settings
from daemon.errors import ConfigError, InputError, ReaderFailed, describe
from daemon.fs.fsops import read_again_later
from daemon.watching.scan import candidate_for


def read_failed(result: BaseException, key: str, settings: Settings, log_to: Any,
                now: float | None) -> tuple[str | None, float | None]:
    """What the failed read `result` of the invoice file `key` is shown as (None: nothing
    wrong with it), and the monotonic time to read it again at (None: when it changes);
    its log line said on `log_to`. `now`: the loop's monotonic time, if known."""
    error: str | None = None
    retry_at: float | None = None
    log = logs.bundle_log(log_to, key, None, ())  # not read: no id yet
    if isinstance(result, InputError | OSError) and taken_meanwhile(
            candidate_for(settings.outbox, key)):
        # Another daemon on the share claimed it while we read: normal work.
        log.info("bundle left the outbox while being read (claimed by another daemon, "
                 "or the share went away)")
    elif isinstance(result, InputError):
        # Logged once per snapshot: it is read again only when something changes.
        error = str(result)
        log.error("bundle cannot be read", error=error)
    elif isinstance(result, OSError) and read_again_later(result):
        # No descriptors left, a share that timed out, a file listed a moment before and
        # gone at its open (fsops.open_in: a share that blinked, or a change whose look
        # is on its way): nothing a clerk did, and nothing that need bring an event when
        # it passes. Read again after a while (at once on a change).
        error = f"cannot be read: {describe(result)} — outboxd tries again"
        retry_at = None if now is None else now + settings.outbox.rescan_seconds
        log.error("bundle cannot be read; will try again", error=error,
                  retry_in=settings.outbox.rescan_seconds)
    elif isinstance(result, OSError):
        error = (f"cannot be read: {describe(result)} — check that outboxd's user may "
                 "read the file and open its folder")
        log.error("bundle cannot be read", error=error)
    elif isinstance(result, ConfigError):
        # The rule engine stopped loading under a running daemon (a broken upgrade): the
        # admin's to fix, its cause and fix already in the words; no traceback to add.
        error = (f"cannot be read: {result}; after a reinstall reload outboxd (`systemctl "
                 "reload outboxd`: the reader processes start again) or restart it, and it is "
                 "read again")
        log.error("bundle cannot be read: outboxd cannot check it", error=error)
    else:
        log.error("unexpected error reading bundle", exc_info=result)
        # Not the bundle's fault (a reader that died each time, a bug), so never an
        # input error; but a bundle left settling without why looked like one that
        # would move any moment, in status and on the page, for good.
        first = str(result).split("\n", 1)[0]
        error = first if isinstance(result, ReaderFailed) and "read again" in first else (
            f"cannot be read ({type(result).__name__}: {first}), not for a fault of the "
            "bundle — it is read again when one of its files changes; the log has the "
            "details")
    return error, retry_at
