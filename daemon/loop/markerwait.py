"""What a bundle waiting for its marker (`[outbox] completion = "marker"`) is said to wait
for: its marker, and what would hold it once the marker comes but can be mended now — a
folder beside it spelled like its sidecar but not quite (`sidecar-spelling`). Such a
bundle is not read until its marker is there, so its errors, which name the look-alike,
came only then; the look-alike itself is no folder without an invoice file (told in the
bundle's errors), and was named nowhere while the sender waited."""

from __future__ import annotations

from daemon.configuration.config import Settings
from daemon.names import printable
from daemon.reading.lookalikes import look_alikes_said
from daemon.watching.scan import Candidate, marker_wait


def marker_wait_said(cand: Candidate, settings: Settings) -> str:
    """marker_wait(cand), with each look-alike of its sidecar as its error will say it:
    an lstat or a few, only for a bundle that has one (lookalikes.look_alike_sidecars)."""
    said = marker_wait(cand)
    found = look_alikes_said(cand, settings)
    if not found:
        return said
    return "; ".join([said, *(f"before the marker: {printable(f.file)}: {f.message}"
                              for f in found)])
