"""Whether the outbox's share may show a change later than `[outbox] settle_seconds`.

An NFS or CIFS client caches a folder's listing and a file's size and times, and sees
what another machine wrote only once its cache of them runs out. Settling counts from
the last change outboxd saw: an attachment written into a sidecar on another machine
just after the invoice file can stay out of sight for the whole cache time, and a
bundle whose settle time is shorter settles and goes without it. The outbox alone is
looked at: settling lists the outbox and its sidecars, and never sent/, quarantine/ or
processing/.

Read from the mount table once per start and reload (service.py, reload.py) and by
`outboxd check` and `outboxd config`: a warning, since the admin may know that every
writer is on this machine; nothing per bundle.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from daemon.watching.mounts import Mount, mount_with_options, shown

# The event of the log line; its fields say the rest (LateShare.fields).
LATE_SHARE = "the outbox's share may show files written elsewhere later than settle_seconds"

NFS = frozenset({"nfs", "nfs4"})
CIFS = frozenset({"cifs", "smb3"})
# nfs(5), unchanged in every kernel: the table leaves out the values at their default.
NFS_DEFAULTS = {"acregmin": 3.0, "acregmax": 60.0, "acdirmin": 30.0, "acdirmax": 60.0}
# mount.cifs(8): actimeo is 1 s unless set (a fixed 1 s before Linux 2.6.37, when the
# option came); acregmax and acdirmax (Linux 5.12) split it for files and folders, each
# 1 s unless set. The table names them at every kernel that has them.
CIFS_DEFAULT = 1.0


@dataclass(frozen=True)
class Caching:
    """How long a share's client may show a listing or a file's size and times stale."""

    seconds: float  # the longest: a change may be seen this late
    options: str  # the options that make it, for the admin: "acregmax=60 (default), …"


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def caching(fs_type: str, options: tuple[str, ...]) -> Caching | None:
    """The caching of a mount of `fs_type` with `options` (mount point's and file
    system's, as the table lists them); None for a file system that caches no listings
    kept by another machine (a local disk), or one this does not know."""
    if fs_type in NFS:
        return _nfs(options)
    if fs_type in CIFS:
        return _cifs(options)
    return None


def _nfs(options: tuple[str, ...]) -> Caching:
    values, given = dict(NFS_DEFAULTS), set()
    noac, lookupcache = False, None
    for option in options:  # in order: a later option overrides an earlier one
        name, _, value = option.partition("=")
        if name in ("ac", "noac"):
            noac = name == "noac"
        elif name == "lookupcache":
            lookupcache = value
        elif (seconds := _seconds(value)) is not None and (
                name == "actimeo" or name in values):
            names = list(values) if name == "actimeo" else [name]
            values.update(dict.fromkeys(names, seconds))
            given.update(names)
    if noac:
        return Caching(0.0, "noac")
    if lookupcache == "none":
        # Every look at a name asks the server, and the answer brings the name's
        # attributes with it: a sidecar's listing and a file's size and times are fresh.
        return Caching(0.0, "lookupcache=none")
    shown_values = [f"{name}={seconds:g}" + ("" if name in given else " (default)")
                    for name, seconds in values.items()]
    if lookupcache is not None:
        shown_values.append(f"lookupcache={lookupcache}")
    return Caching(max(values.values()), ", ".join(shown_values))


def _cifs(options: tuple[str, ...]) -> Caching:
    files = folders = CIFS_DEFAULT
    given = False
    for option in options:  # in order: Linux 5.12 lists actimeo=, then acdirmax=
        name, _, value = option.partition("=")
        if (seconds := _seconds(value)) is None:
            continue
        if name in ("actimeo", "acregmax"):
            files, given = seconds, True
        if name in ("actimeo", "acdirmax"):
            folders, given = seconds, True
    words = (f"actimeo={files:g}" if files == folders
             else f"acregmax={files:g}, acdirmax={folders:g}")
    return Caching(max(files, folders), words + ("" if given else " (default)"))


@dataclass(frozen=True)
class LateShare:
    """The outbox on a share whose client may show a change no sooner than the bundle
    settles."""

    outbox: Path
    mount: Mount
    caching: Caching
    settle_seconds: float

    def fix(self) -> str:
        cache = self.caching.seconds
        if self.mount.type in NFS:
            # actimeo=1 is no cure for a settle time of 1 s or less: no caching then.
            mount = ("actimeo=1 (or lookupcache=none)" if self.settle_seconds > 1
                     else "lookupcache=none (or noac)")
        else:
            mount = "actimeo=1" if self.settle_seconds > 1 else "actimeo=0"
        return (f"set [outbox] settle_seconds above {cache:g}, or mount the share with "
                f"{mount}; a reload (systemctl reload outboxd) checks again")

    def words(self) -> str:
        """The whole warning in one line, as `outboxd check` prints it."""
        return (f"the outbox {self.outbox} is on {shown(self.mount)}, whose client may "
                f"show a file written on another machine, or its new size and times, up to "
                f"{self.caching.seconds:g} s late ({self.caching.options}); with [outbox] "
                f"settle_seconds = {self.settle_seconds:g}, a bundle can settle and be sent "
                f"before an attachment written there is seen — {self.fix()}")

    def fields(self) -> dict[str, object]:
        """The log line's fields (its event is LATE_SHARE)."""
        return {"outbox": str(self.outbox), "mount": shown(self.mount),
                "cache_seconds": self.caching.seconds, "options": self.caching.options,
                "settle_seconds": self.settle_seconds, "fix": self.fix()}


def late_share(outbox: Path, settle_seconds: float) -> LateShare | None:
    """The outbox's share, if its client may show a change `settle_seconds` late or
    later (at exactly that time too: the attachment is seen as the bundle settles, or
    just after); None on a local disk, a share that caches less, or a mount not known."""
    # A share mounted on demand shows its automounter's entry until something looks
    # inside it (as mounts.on_network_share). An error leaves the table as it is.
    with contextlib.suppress(OSError):
        os.stat(outbox)
    found = mount_with_options(outbox)
    if found is None:
        return None
    mount, options = found
    cache = caching(mount.type, options)
    if cache is None or cache.seconds == 0 or cache.seconds < settle_seconds:
        return None
    return LateShare(outbox, mount, cache, settle_seconds)
