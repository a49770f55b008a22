"""SIGHUP: the configuration read again and applied to the running daemon, or
refused as a whole (the old one stays in force). A part of `Service` (a mixin:
the reload replaces the loop's settings, deliverer and readers' configuration,
so it shares the loop's state).

What a reload changes beyond the settings: every bundle is read and decided
again (patterns, rules and policies may differ), the next rescan comes at once,
and deliveries paused for a configuration problem are tried at once — the
reload is how an admin says the url or token is fixed — as are those failed on
a receiver's certificate not trusted, when the reload changes what is trusted
([delivery] verify, client_cert, client_key, or their files, or the CAs the
environment names for verify = true).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import logs, stdio
from daemon.configuration.config import Settings
from daemon.configuration.config_credentials import plain_http_warning
from daemon.configuration.config_folders import folder_problems, outbox_missing, prepare_folders
from daemon.configuration.config_load import load_settings
from daemon.configuration.config_warnings import list_warnings
from daemon.configuration.secret_files import exposure_warnings
from daemon.delivery.deliver import Deliverer
from daemon.delivery.scrub import short_secrets_warning
from daemon.errors import ConfigError, double_quoted, unquoted
from daemon.fs.fscopy import Identity, identity
from daemon.watching.sharecache import LATE_SHARE, late_share

if TYPE_CHECKING:
    from daemon.configuration.deciding import Deciding
    from daemon.loop.pipeline import Pipeline
    from daemon.loop.timers import Waker
    from daemon.report.publish import Publisher
    from daemon.watching.index import OutboxIndex

NOT_RELOADED = "configuration not reloaded; keeping the old one"
# The outbox in force is away (a share not mounted, a NAS rebooting): the file is not at
# fault, and the admin who reloaded it (a new token, say) should not have to notice and
# reload again once the share is back.
RELOAD_WHEN_BACK = ("configuration not reloaded yet: the outbox is away; it is "
                    "reloaded once the outbox is back")
# Read once at start (the watcher, the delivery threads): a SIGHUP says so instead.
RESTART_ONLY = (("outbox", "watch"), ("outbox", "poll_interval_seconds"),
                ("delivery", "concurrency"))
# Read only when the journal is new (readback.restore_sent, at a first start or one after
# the journal was lost): a change would otherwise do nothing without a word, and neither
# would a restart.
NEW_JOURNAL_ONLY = (("policy", "duplicate_window_days"),)
JOURNAL_IS_NOT_NEW = ("these settings are read only when the journal is new (a first start, "
                      "or one after the journal was lost): the change does nothing now")


def _moved(new: Settings, running: Settings) -> list[str]:
    """The lines for a new outbox or state_dir: the watcher and the journal are there
    already, so either needs a restart."""
    return [f"{key} = {double_quoted(str(now))}: a new {what} needs a restart (systemctl "
            f"restart outboxd); or set it back to {double_quoted(str(was))}"
            for key, what, now, was in (
                ("[outbox] path", "outbox", new.outbox.path, running.outbox.path),
                ("[paths] state_dir", "state_dir", new.paths.state_dir,
                 running.paths.state_dir))
            if now != was]


# Keys whose value in force is derived where the file leaves them out (sent/ beside the
# outbox …): a file that spells out that default changes nothing.
_DERIVED = {("paths", "sent"): "sent_dir", ("paths", "quarantine"): "quarantine_dir",
            ("paths", "processing"): "processing_dir"}


def _effective(s: Settings, sec: str, key: str) -> object:
    derived = _DERIVED.get((sec, key))
    return getattr(s, derived) if derived else getattr(getattr(s, sec), key)


def _changed(keys: tuple[tuple[str, str], ...], new: Settings, running: Settings) -> list[str]:
    """The names of those keys whose value in force differs in the new settings."""
    return [f"[{sec}] {key}" for sec, key in keys
            if _effective(new, sec, key) != _effective(running, sec, key)]


def _changes(new: Settings, running: Settings, token_changed: bool) -> list[str]:
    """The names of the keys whose value in force the reload changes, never their values
    (a token is among them): the admin reads in the log what the reload took. A token
    file rewritten in place is a change of what it holds, the key unchanged. The keys
    only a new journal reads are not: the reload changes nothing for them (their own
    warning says so)."""
    changed = _changed(tuple((sec, key) for sec in type(new).model_fields
                             if getattr(new, sec) != getattr(running, sec)
                             for key in type(getattr(new, sec)).model_fields
                             if (sec, key) not in NEW_JOURNAL_ONLY), new, running)
    if token_changed and not {"[delivery] token", "[delivery] token_file"} & set(changed):
        changed.append("[delivery] token_file (the token it holds)")
    return changed


def _receiver(s: Settings) -> tuple[object, ...]:
    """Where bundles go: when this changes, no earlier answer decides the next attempt."""
    return s.delivery.transport, s.delivery.url, s.delivery.target


def trusts_as(s: Settings) -> tuple[object, ...]:
    """What decides whether the receiver's certificate is trusted (and ours presented):
    the settings and, of each file they name (and, for verify = true, of the one
    SSL_CERT_FILE or SSL_CERT_DIR names), its identity and time — a CA bundle replaced
    in place at the same path is a change too, as is a CA file of SSL_CERT_DIR's folder.
    Looked at, never opened."""
    d = s.delivery
    files = [f for f in (d.verify, d.client_cert, d.client_key) if isinstance(f, (str, Path))]
    cas: tuple[object, ...] = ()
    if d.verify is True:
        # httpx's CAs, with or without client_cert (tls.py): the file or folder the
        # environment names (the file first, as httpx) is read again by the reload's
        # deliverer, so replacing it counts.
        named = [os.environ[k] for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(k)]
        cas = _folder_identity(named[0]) if named else ()
    return (d.verify, d.client_cert, d.client_key, *map(_file_identity, files), cas)


# More entries than a CA folder holds (/etc/ssl/certs: a few hundred): past them a folder
# named by mistake costs a reload no more than this many stat() calls.
_CA_FOLDER_ENTRIES = 10_000


def _folder_identity(path: str) -> tuple[object, ...]:
    """A file's identity; for a folder (SSL_CERT_DIR), its own and each entry's, by name.
    A CA file written over in place leaves the folder's times as they were; OpenSSL reads
    the entries through their hash links (`openssl rehash`), so each is followed."""
    own = _file_identity(path)
    try:
        with os.scandir(path) as entries:
            found = [(e.name, _file_identity(e.path)) for _, e in
                     zip(range(_CA_FOLDER_ENTRIES), entries, strict=False)]
    except OSError:  # a file, or nothing there: its identity says it
        return (own,)
    return (own, *sorted(found))


def _file_identity(path: str | Path) -> Identity | None:
    try:
        return identity(os.stat(path))
    except OSError:
        return None


def sends_as(s: Settings) -> tuple[object, ...]:
    """What a receiver's 401, 403 or 404 answered: where bundles go and the token they
    carry. The token only as a digest: this is kept to compare at the next reload, and
    never shown. ConfigError: the token file cannot be read."""
    token = s.delivery.bearer_token()
    return (*_receiver(s), hashlib.sha256(token.encode()).hexdigest() if token else None)


# A reload is how an admin says the url or token is fixed; one that brings the same
# ones (a systemd credential copied only at start, a token in the service's environment)
# would otherwise only earn the paused bundles the same answer again, unexplained.
SAME_CREDENTIALS = ("deliveries paused by the receiver's answer are tried again, but the "
                    "reload brought the same [delivery] url and token")
SAME_CREDENTIALS_FIX = (
    "if they are refused again: put the receiver's token in the file token_file names (or "
    "[delivery] token), or fix [delivery] url, and reload. A token_file under "
    "/run/credentials (systemd LoadCredential=, as the shipped unit passes "
    "/etc/outboxd/token) and OUTBOXD_DELIVERY__TOKEN are read from what the service got "
    "at its start: after changing them, run systemctl restart outboxd")


def _in_force(new: Settings, running: Settings) -> tuple[Settings, list[str]]:
    """`new` with the running daemon's values of RESTART_ONLY, and the names of those the
    file sets otherwise. The settings then say what is in force: a deliverer made from
    them pools as many connections as there are delivery threads (not fewer, which would
    make the threads wait for each other), and a file put back to the running value is
    not reported as waiting for the next start."""
    later: list[str] = []
    sections: dict[str, Any] = {}
    for sec, key in RESTART_ONLY:
        have = getattr(getattr(running, sec), key)
        if getattr(getattr(new, sec), key) != have:
            later.append(f"[{sec}] {key}")
            sections[sec] = sections.get(sec, getattr(new, sec)).model_copy(update={key: have})
    return (new.model_copy(update=sections) if sections else new), later


class Reloading:
    settings: Settings
    config_path: Path | None
    log: Any
    index: OutboxIndex
    pipeline: Pipeline
    publish: Publisher
    deciding: Deciding
    _make_deliverer: Callable[[Settings], Deliverer]
    _reload: bool
    _relist: bool
    _sends_as: tuple[object, ...] | None  # sends_as() of the settings in force
    _trusts_as: tuple[object, ...] | None  # trusts_as() of the settings in force
    _reload_when_back: bool  # a reload waits for the outbox in force to be back
    _wake: Waker

    if TYPE_CHECKING:
        # Other parts of the service's: declared for mypy only, so that no stand-in
        # here can come before them in the service's bases, whatever their order.
        def _start_rules(self, s: Settings) -> None: ...

        def _mark(self, key: str) -> None: ...

        def schedule(self, row_id: int, delay: float) -> None: ...

        def rescan_soon(self) -> None: ...

    def outbox_back(self) -> None:
        """The outbox was listed and watched: a reload that waited for it is done now."""
        if self._reload_when_back:
            self._reload_when_back = False
            self._reload = True
            self._wake.set()  # this turn has passed its reload: the next one does it

    def _do_reload(self) -> None:
        self._reload = False
        self._reload_when_back = False
        if self.config_path is None:
            return
        try:
            # The outbox is looked at below: one away is waited for, not refused.
            new = load_settings(self.config_path, outbox=False)
            # Before a folder is made: a refused reload leaves nothing behind, neither in
            # an outbox (or state dir) the daemon does not watch nor beside the old ones
            # (a new sent/ made before the new quarantine/ turned out impossible).
            source = unquoted(str(self.config_path))
            if moved := _moved(new, self.settings):
                raise ConfigError(moved, source=source)
            if (missing := outbox_missing(new.outbox.path)) is not None:
                # The outbox in force is away: nothing made (prepare_folders would create
                # its processing folder on the local disk under a missing mount point),
                # nothing applied, and done by itself once the outbox is listed again.
                self.log.warning(RELOAD_WHEN_BACK, outbox=str(new.outbox.path),
                                 error=f"the outbox {missing}")
                self._reload_when_back = True
                self.rescan_soon()  # the outage, and its end, seen within seconds
                return
            if problems := folder_problems(new):
                raise ConfigError(problems, source=source)
            new_sends_as = sends_as(new)
            prepare_folders(new, self.settings)
        except ConfigError as exc:
            self.log.error(NOT_RELOADED, error=str(exc))
            return
        # Made before the deliverer: its connection pool is sized for the threads in force.
        new, later = _in_force(new, self.settings)
        deliverer: Deliverer | None = None
        try:
            deliverer = self._make_deliverer(new)
            self._start_rules(new)
        except ConfigError as exc:
            if deliverer is not None:
                deliverer.close()  # its connection pool: one refused reload each SIGHUP
            self.log.error(NOT_RELOADED, error=str(exc))
            return
        # First: the reload's own lines are in the [log] format it brings (after a switch
        # to json, every line is JSON).
        logs.configure(new.log)
        # A switch from console to json: what native code and libraries write to fds 1
        # and 2 themselves becomes log events from now on too, not bare lines.
        stdio.after_reload()
        if later:
            # The watcher and the delivery threads are made once, at start.
            self.log.warning("these settings take effect at the next start", settings=later)
        if unread := _changed(NEW_JOURNAL_ONLY, new, self.settings):
            self.log.warning(JOURNAL_IS_NOT_NEW, settings=unread)
        self.publish.reconfigure(self.settings, new)
        receiver_changed = _receiver(new) != _receiver(self.settings)
        changed = _changes(new, self.settings, token_changed=new_sends_as[-1] != (
            self._sends_as[-1] if self._sends_as else None))
        self.settings = new
        self.deciding.publish(new)  # the other daemons compare with the new settings
        self.index.cfg, self.index.share = new.outbox, new.share
        self.index.rebuild()  # the bundles' sidecars and markers as the new names say
        self.pipeline.reconfigure(new, deliverer)
        # Patterns, rules and policies may differ now: every bundle is read and
        # decided again, and the next rescan comes at once.
        self.pipeline.known.clear()
        self._relist = True
        for key in self.index.candidates:
            self._mark(key)
        self.rescan_soon()
        new_trusts_as = trusts_as(new)
        now = self.pipeline.finish.after_reload(
            receiver_changed, trust_changed=new_trusts_as != self._trusts_as)
        for row_id in now:
            self.schedule(row_id, 0.0)
        # What changed and what it did to the bundles under way: read and decided again
        # (those in the outbox), tried at once (paused, or put off by another receiver).
        self.log.info("configuration reloaded", changed=changed,
                      bundles_read_again=len(self.index.candidates),
                      deliveries_tried_now=len(now))
        if warning := plain_http_warning(new.delivery):
            self.log.warning(warning)
        if warning := short_secrets_warning(new.delivery):
            self.log.warning(warning)
        for warning in exposure_warnings(new, self.config_path):
            self.log.warning(warning)
        for warning in list_warnings(new):  # as `outboxd config` says them
            self.log.warning(warning)
        # A new settle_seconds, or the share mounted again with other options.
        if late := late_share(new.outbox.path, new.outbox.settle_seconds):
            self.log.warning(LATE_SHARE, **late.fields())
        if self.pipeline.finish.paused and new_sends_as == self._sends_as:
            self.log.warning(SAME_CREDENTIALS, bundles=len(self.pipeline.finish.paused),
                             fix=SAME_CREDENTIALS_FIX)
        self._sends_as = new_sends_as
        self._trusts_as = new_trusts_as

