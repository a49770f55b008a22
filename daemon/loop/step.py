"""What one step of the pipeline hands back, and what it remembers about a bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon.bundle import Bundle, Finding
from daemon.journal import Row
from daemon.watching.scan import Candidate
from daemon.watching.snapshot import Snapshot


@dataclass(frozen=True)
class Next:
    """What a step asks of the loop: deliver a claimed row, look again at a
    monotonic time, or read and validate a settled version off the loop."""

    claimed: int | None = None
    at: float | None = None
    read: Snapshot | None = None
    gone: bool = False  # the invoice file is no longer in the outbox


IDLE = Next()


@dataclass(frozen=True)
class Claim:
    """A claim decided in this turn of the loop, not yet made."""

    cand: Candidate
    known: Known
    row: Row | None
    reasons: list[Finding]
    work: Path


@dataclass
class Known:
    """What a settled snapshot was found to be, so it is read only once."""

    snap: Snapshot
    bundle: Bundle | None  # None: the invoice file itself could not be read
    bundle_id: str
    # NAME.errors.txt for this snapshot: written (True, held) or cleared (False: it
    # passes or is quarantined), None not yet; a reload may turn one into the other.
    errors_file_done: bool | None = None
    # Why NAME.errors.txt could not be written for this snapshot (said once, not at each
    # try again); "" when it was, or was not tried yet.
    errors_file_error: str = ""
    # Why the last claim of this snapshot failed, as (cause, error line): said once per
    # cause while the claim is tried every rescan_seconds (a full share may last hours),
    # and once more when a claim then works; None: no claim of it failed.
    claim_failure: tuple[str, str] | None = None
    error: str | None = None  # why the bundle could not be read (shown by status)
    # When to read it again (monotonic): a fault of the machine or the share, which
    # brings no event when it passes. None: read again when the files change.
    retry_at: float | None = None
    # When this version, which looks cut short, is quarantined (monotonic; cutshort.py);
    # None: not decided as one yet.
    grace_until: float | None = None
    # The same as the clerks read it (wall-clock, UTC), fixed once: the errors file
    # and the journal keep the words, which must not change at every look.
    grace_said: str = ""
