"""What a bundle held by a copy or an editor at work in its sidecar (an in-progress name,
docs/folder-convention.md section 1) is said to wait for: the names, what ends the wait,
and since when the bundle is unchanged. The loop says it under "Not moving" once such a
name has not changed for a while (pipeline.py); `outboxd check` says it at once, where
"valid" alone promised the bundle goes."""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.bundle import Finding
from daemon.journal.records import iso_of, readable
from daemon.names import NameKind, classify, printable
from daemon.watching.snapshot import CTIME, MTIME, Snapshot


def in_progress(snap: Snapshot, ignore_patterns: list[str]) -> list[str]:
    """The in-progress names in the bundle's sidecar (paths as in the snapshot)."""
    return [e[0] for e in snap.entries  # in the sidecar: not the folder itself
            if "/" in e[0]
            and classify(e[0].rsplit("/", 1)[-1], ignore_patterns) is NameKind.IN_PROGRESS]


def unchanged_since(snap: Snapshot, seen: float, now: float, wall: float) -> float:
    """Since when (monotonic) a bundle unchanged since this process's first look at it
    (`seen`) has not changed: `seen`, or earlier where its files' newest modification or
    change time says so — a lock file Word left days ago is that old at a start too, not
    new at each. The files' times are the file server's wall-clock: their age (`wall`: time.time()
    at this look) is converted into the loop's clock here, once a look; one ahead of
    `wall` (a fast server clock) counts as no age, never as a wait longer than seen."""
    newest = max((max(e[MTIME], e[CTIME]) for e in snap.entries), default=None)
    if newest is None:
        return seen
    return min(seen, now - max(0.0, wall - newest / 1e9))


# What only stuck_said's words hold (said_stuck tells them from a row's other whys).
_UNCHANGED = ": an in-progress name, unchanged since "


def stuck_said(names: list[str], unchanged_at: float) -> str:
    """The row's why for a bundle held by these in-progress names, unchanged since
    `unchanged_at` (wall-clock seconds): since when, not for how long — written once,
    "unchanged for 10 minutes" stood on the page for hours."""
    at = readable(iso_of(datetime.fromtimestamp(unchanged_at, UTC)))
    return f"waits for {shown_names(names)}{_UNCHANGED}{at} — {busy_fix(names)}"


def said_stuck(why: str | None) -> bool:
    """Whether a row's why is stuck_said's: true only while the bundle stays unchanged."""
    return why is not None and why.startswith("waits for ") and _UNCHANGED in why


def shown_names(names: list[str]) -> str:
    """The first three, then how many more; each as the journal keeps names (a raw one
    that is not UTF-8 cannot be written)."""
    return ", ".join(printable(n) for n in names[:3]) + (
        f" and {len(names) - 3} more" if len(names) > 3 else "")


def busy_fix(names: list[str]) -> str:
    """What ends the wait for these in-progress names."""
    base = [n.rsplit("/", 1)[-1] for n in names]
    if all(b.startswith(("~$", ".~lock.")) for b in base):
        # An office program's lock file: "give the file its final name" would make an
        # attachment of the lock; closing the document removes it.
        return ("a lock file that Word, Excel or LibreOffice keeps while the document is "
                "open — close the document there (the lock file then goes by itself); if no "
                "one has it open, remove the lock file")
    return ("if no copy is still running, give the file its final name or remove it "
            "(.NAME.xxxxxxxx.tmp: run the same outboxd attach again)")


# How look_alike_said's words begin (said_look_alike tells them from a row's other whys).
_HELD_AFTER = "will be held once its copy ends: "


def look_alike_said(findings: list[Finding]) -> str:
    """The row's why for a bundle that cannot be read yet (a copy at work) beside a
    look-alike of its sidecar: the look-alike as the bundle's reasons will say it once it
    is read (`file: message`), so the clerk can rename it now, not after the copy; as
    markerwait.py says it of a bundle waiting for its marker."""
    return _HELD_AFTER + "; ".join(f"{printable(f.file)}: {f.message}" for f in findings)


def said_look_alike(why: str | None) -> bool:
    """Whether a row's why is look_alike_said's (alone, or after stuck_said's)."""
    return why is not None and (why.startswith(_HELD_AFTER) or f"; {_HELD_AFTER}" in why)
