"""The settings that decide what becomes of a bundle (`DECIDING`), and the check that every
daemon on one outbox has the same (docs/operations.md, Several daemons on one share).

Whichever daemon settles a bundle first decides it alone, by its own settings: two with
another `[policy] unattached` give one bundle two fates. Each daemon writes a fingerprint
of its deciding settings, `OUTBOX/.outboxd/deciding/HOST-OWNER.json` (one digest a key:
the share's users may read it; the URL's secrets masked first), at its start and
each reload, and removes it at a clean stop; at its start, each reload and each rescan it
reads the others' that changed (an lstat each otherwise), and says once at warning which
keys differ from its own, naming the other daemon's file.

A daemon killed for good (its server retired) cannot remove its file, and its difference
was warned of for ever. So each daemon writes its file again an hour (`RENEW`, on the
loop's clock: its RENEWAL timer and each rescan look) after it last did, and one whose
file is older than ours by over a day (`RETIRED`: both times the share's, so no two
hosts' clocks are compared) is said as probably retired, naming the file to remove, not
as a live difference.

Each file also names the machine that wrote it (machine.py: a keyed hash of its
machine-id, and its full host name): a new server with the old one's short host name
and state dir path has the very same HOST-OWNER, and so the same file name. At its start
a daemon reads the file of its own name before writing it (claiming/samename.py); while
it runs, a rewrite of that file by another machine is said once, at error (`TWIN`). A
file without `machine` (a build before it) is read as before: no machine to compare.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.configuration.config import Settings
from daemon.configuration.config_values import mask_url
from daemon.configuration.machine import machine_id, machine_name
from daemon.errors import InputError, describe
from daemon.fs.fsops import folder_below, open_in
from daemon.fs.fsread import read_bounded
from daemon.fs.fswrite import held_path, make_folders_below, write_atomic

# Whole sections, and single keys of the others: what a bundle's outcome depends on. Not
# the paths (each host may mount the share elsewhere), the state dir, the token, the
# timeouts, the log, the service, the status page's name, nor the watching's pace.
DECIDING_SECTIONS = ("invoices", "attachments", "validation", "policy", "einvoice")
# Of those sections, keys that decide no bundle: `[policy] duplicate_window_days` is read
# only when a journal is new (how many days of sent/ to read back), and two daemons that
# differ there alone were warned they "decide bundles by other settings".
NOT_DECIDING = ("policy.duplicate_window_days",)
DECIDING_KEYS = ("outbox.invoice_patterns", "outbox.ignore_patterns", "outbox.sidecar_suffix",
                 "outbox.completion", "outbox.settle_seconds", "outbox.marker_suffix",
                 "delivery.transport", "delivery.format", "delivery.url", "delivery.target",
                 "delivery.safe_filenames", "share.release_suffix")
FOLDER = (".outboxd", "deciding")
_LIMIT = 1 << 16  # bytes: a fingerprint is a few KB; a bigger file is none of ours
MISMATCH = ("another outboxd on this outbox decides bundles by other settings: a bundle's "
            "fate depends on which daemon takes it first")
MISMATCH_FIX = ("give every daemon on the outbox the same values for these keys, then "
                "reload each (systemctl reload outboxd); if that daemon runs no more, "
                "remove {file}")
RENEW = 3600.0  # seconds (monotonic) between the writes of our file while we run
RETIRED_AFTER = 86400  # seconds another's file may be older than ours: far over RENEW
RETIRED = ("another outboxd on this outbox decides bundles by other settings, but has not "
           "renewed its settings fingerprint for over a day: that daemon probably runs no "
           "more")
RETIRED_FIX = ("if that daemon is retired, remove {file}; if it is to run again, give it the "
               "same values for these keys before it starts")
TWIN = ("another machine's outboxd runs on this outbox under this daemon's name: it "
        "rewrote this daemon's settings fingerprint — the two take each other's work "
        "folders for their own")
TWIN_FIX = ("give each server its own short host name or its own [paths] state_dir, then "
            "restart both; until then stop one of them")


def fingerprint(settings: Settings) -> dict[str, str]:
    """Each deciding key ("section.key") → a digest of its value."""
    dumped = settings.model_dump(mode="json")
    values = {f"{sec}.{key}": v for sec in DECIDING_SECTIONS
              for key, v in dumped[sec].items() if f"{sec}.{key}" not in NOT_DECIDING}
    for name in DECIDING_KEYS:
        sec, key = name.split(".")
        values[name] = dumped[sec][key]
    # The url's password and secret query values masked: a digest of a share-readable
    # file lets anyone on the share test guesses of them offline, and no bundle's fate
    # depends on them (a wrong one fails every delivery alike).
    if isinstance(values["delivery.url"], str):
        values["delivery.url"] = mask_url(values["delivery.url"])
    return {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16]
            for k, v in sorted(values.items())}


def differing(ours: Mapping[str, str], theirs: Mapping[str, str]) -> list[str]:
    """The keys whose values differ (one only one side knows, from another version,
    is not counted: its default may well be the other's value)."""
    return sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])


class Deciding:
    """This daemon's fingerprint on the outbox, and what it said of the others'."""

    def __init__(self, tag: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.tag = tag  # HOST-OWNER (claim.copy_tag): this daemon's file name
        self.clock = clock
        self._ours: dict[str, str] = {}
        self._written = float("-inf")  # on `clock`: when our file was last written
        # Another's file → its lstat when read, and the keys that differ from ours.
        self._seen: dict[str, tuple[object, tuple[str, ...]]] = {}
        # Another's file → the keys said, and whether as probably retired.
        self._said: dict[str, tuple[tuple[str, ...], bool]] = {}
        self.machine, self.machine_name = machine_id(), machine_name()
        self._mine: object = None  # our file's lstat as we wrote it
        self._twin_said: str | None = None  # the other machine TWIN was said of

    def publish(self, settings: Settings) -> None:
        """Write our fingerprint (start, reload) and compare the others' with it anew.
        A failure is said and costs nothing else: the check is advice."""
        self._ours = fingerprint(settings)
        self._seen, self._said = {}, {}
        self._write(settings)
        self.compare(settings)

    def _write(self, settings: Settings) -> None:
        self._written = self.clock()
        data = json.dumps({"daemon": self.tag, "written_at": datetime.now(UTC).isoformat(),
                           "machine": self.machine, "machine_name": self.machine_name,
                           "keys": self._ours}, indent=1).encode()
        try:
            fd = make_folders_below(settings.outbox.path, FOLDER)
            try:
                # Before ours replaces it: a rewrite by another machine since our last.
                self._twin(fd, settings.outbox.path.joinpath(*FOLDER))
                write_atomic(held_path(fd) / f"{self.tag}.json", data)
                self._mine = _lstat(fd, f"{self.tag}.json")
            finally:
                os.close(fd)
        except OSError as exc:
            logs.get().warning("cannot write this daemon's settings fingerprint; other "
                               "daemons on the outbox cannot compare theirs with it",
                               folder=str(settings.outbox.path.joinpath(*FOLDER)),
                               error=describe(exc, writing=True))

    def compare(self, settings: Settings) -> None:
        """Read the others' fingerprints that changed since the last look; say each that
        differs from ours, once until what differs changes, or it turns probably retired.
        Our own written again first when RENEW is up (also one removed by hand). The
        folder is reached from the outbox, never through a link: a share user who puts
        `.outboxd` back as a link to another folder would have its files read and named
        as daemons."""
        if self.clock() - self._written >= RENEW:
            self._write(settings)
        folder = settings.outbox.path.joinpath(*FOLDER)
        try:
            with folder_below(settings.outbox.path, "/".join(FOLDER)) as fd:
                self._compare(fd, folder)
        except (OSError, InputError):
            self._compare(None, folder)  # none to compare with: all forgotten

    def _compare(self, fd: int | None, folder: Path) -> None:
        names = _names(fd) if fd is not None else set()
        for gone in set(self._seen) - names:
            self._seen.pop(gone, None)
            self._said.pop(gone, None)
        ours = _mtime(fd, f"{self.tag}.json") if fd is not None else None
        if fd is not None:
            self._twin(fd, folder)
        for name in names - {f"{self.tag}.json"}:
            assert fd is not None
            seen = _lstat(fd, name)
            if seen is None:
                continue
            if name not in self._seen or self._seen[name][0] != seen:
                self._seen[name] = (seen, tuple(differing(self._ours, _keys(fd, name))))
            keys = self._seen[name][1]
            # Not renewed for long: its daemon is gone (a stopped one removes its file).
            retired = ours is not None and ours - seen[2] > RETIRED_AFTER * 10**9
            if keys and self._said.get(name) != (keys, retired):
                file = str(folder / name)
                if retired:
                    logs.get().warning(RETIRED, file=file, keys=list(keys),
                                       renewed_at=utc_of(seen[2]),
                                       fix=RETIRED_FIX.format(file=file))
                else:
                    logs.get().warning(MISMATCH, file=file, keys=list(keys),
                                       fix=MISMATCH_FIX.format(file=file))
            self._said[name] = (keys, retired)

    def _twin(self, fd: int, folder: Path) -> None:
        """Our own file rewritten since we wrote it, by another machine: a daemon of our
        name that started while we ran (at the same moment as us, or a build that does
        not look before it writes). Said once a machine; the next renewal writes ours
        again, the other's start then refuses."""
        name = f"{self.tag}.json"
        now = _lstat(fd, name)
        # Before our first write, what is there is the start's to judge (samename.py).
        if self._mine is None or now is None or now == self._mine:
            return
        self._mine = now  # read once a change
        other = written_by(fd, name)
        if other is None or other[0] == self.machine or other[0] == self._twin_said:
            return
        self._twin_said = other[0]
        logs.get().error(TWIN, file=str(folder / name), machine=self.machine_name,
                         other_machine=other[1], fix=TWIN_FIX)

    def withdraw(self, settings: Settings) -> None:
        """At a clean stop (or a start given up after it was written): our file goes, so
        a daemon that runs no more is compared with no longer (one killed leaves it: it
        is to start again). Only a file this daemon wrote, and this machine's: a start
        refused for another machine's daemon of our name (samename.py) wrote none, and a
        twin that rewrote it since runs on — its file is what keeps the next start here
        from taking its work folders. Never through a link: a `.outboxd` made a link
        would have a file of our name removed elsewhere."""
        if self._mine is None:
            return
        name = f"{self.tag}.json"
        with contextlib.suppress(OSError, InputError), \
                folder_below(settings.outbox.path, "/".join(FOLDER)) as fd:
            other = written_by(fd, name)
            if other is None or other[0] == self.machine:
                os.unlink(name, dir_fd=fd)


def _mtime(fd: int, name: str) -> int | None:
    """The mtime (ns) of the file `name` in the folder open at `fd`; None without one."""
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime_ns
    except OSError:
        return None


def _lstat(fd: int, name: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def written_by(fd: int, name: str) -> tuple[str, str] | None:
    """(machine, its name) the fingerprint `name` in the folder open at `fd` says wrote
    it; None where it says none (a build before `machine`) or is no fingerprint."""
    data = _read(fd, name)
    machine = data.get("machine") if isinstance(data, dict) else None
    if not isinstance(machine, str) or not machine:
        return None
    named = data.get("machine_name")
    return machine, named if isinstance(named, str) and named else "unknown"


def utc_of(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def _names(fd: int) -> set[str]:
    """The fingerprints in the folder open at `fd` (not dot-names: a write under way);
    none when it cannot be listed."""
    try:
        with os.scandir(fd) as it:
            return {e.name for e in it if e.name.endswith(".json")
                    and not e.name.startswith(".") and e.is_file(follow_symlinks=False)}
    except OSError:
        return set()


def _keys(fd: int, name: str) -> dict[str, str]:
    """Another daemon's digests, of the file `name` in the folder open at `fd`; none from
    a file that is no fingerprint."""
    data = _read(fd, name)
    keys: Any = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        return {}
    return {str(k): str(v) for k, v in keys.items()}


def _read(fd: int, name: str) -> Any:
    """The JSON of the file `name` in the folder open at `fd`; None for none, one too big
    or no JSON. Never through a link (open_in), nor a FIFO's wait."""
    try:
        with open_in(fd, name, name) as fh:
            data = read_bounded(fh, _LIMIT)
        return json.loads(data) if data is not None else None
    except (OSError, InputError, ValueError, RecursionError):
        return None
