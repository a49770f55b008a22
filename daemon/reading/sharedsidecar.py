"""Two or more invoice files with one sidecar (`sidecar-shared`,
docs/folder-convention.md, section 3): an ERP that exports the UBL file and its PDF
print, INV-1.xml and INV-1.pdf, beside the folder INV-1/.

Whichever of them were claimed first would take the folder, and the other would go
without its attachments (or be quarantined for want of them): which file gets the
time sheets would depend on the order of the claims, and the invoice could go out
twice. So while the folder is there, none of them is claimed: each is held where it
is, whatever `[policy] invalid` says (decide.py) — moving one with the folder would
take the attachments from the other. The matcher reports it with the bundle; `check`,
`attach` and `retry` ask the same rule of the outbox as it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from daemon.bundle import Finding
from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.names import stem
from daemon.watching.scan import Candidate, is_invoice_file

CODE = "sidecar-shared"


def sidecar_sharers(cand: Candidate) -> list[str]:
    """The other invoice files of cand's sidecar (Candidate.sharers) that are still
    regular files beside it: one renamed, moved into the folder or deleted since the
    listing no longer shares it. An lstat each, only for a bundle that has them."""
    found = []
    for name in cand.sharers:
        try:
            mode = os.lstat(cand.invoice.with_name(name)).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode):
            found.append(name)
    return found


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def shared_message(cand: Candidate, others: list[str]) -> str:
    """What the clerk reads: the same words for each file of the clash (they share
    NAME.errors.txt as they share the folder), the files in name order."""
    files = sorted([cand.invoice.name, *others])
    side = f"{cand.sidecar.name}/"
    named = " and ".join(files) if len(files) == 2 else \
        ", ".join(files[:-1]) + f" and {files[-1]}"
    pdfs = [f for f in files if f.lower().endswith(".pdf")]
    rest = [f for f in files if f not in pdfs]
    if len(files) == 2 and len(pdfs) == 1:
        print_of = (f"if {pdfs[0]} is the print of {rest[0]}, move {pdfs[0]} into {side} "
                    "as an attachment (or out of the outbox)")
    else:
        print_of = (f"if one of them is a print or copy of another, move it into {side} as an "
                    "attachment (or out of the outbox)")
    two = "the two" if len(files) == 2 else "them"
    return (f"{named} {'both' if len(files) == 2 else 'all'} have the attachments folder "
            f"{side}; only one invoice file can "
            f"take it, so none of them is sent until that is mended — {print_of}; "
            f"otherwise rename one of {two} and give it its own folder of the new name")


def shared_sidecar_findings(cand: Candidate) -> list[Finding]:
    """The `sidecar-shared` error of a bundle whose sidecar folder is there and shared
    with another invoice file in the outbox now; none otherwise (without the folder
    each is a plain invoice without attachments). Named by the folder: the finding is
    the same for each file of the clash."""
    others = sidecar_sharers(cand)
    if not others or not _is_folder(cand.sidecar):
        return []
    return [Finding(CODE, cand.sidecar.name, shared_message(cand, others))]


def is_shared(findings: tuple[Finding, ...] | list[Finding]) -> bool:
    """Whether the bundle is held for `sidecar-shared`, which no policy quarantines."""
    return any(f.code == CODE for f in findings)


def sharers_listed(cfg: OutboxConfig, share: ShareConfig | None, invoice: str) -> tuple[str, ...]:
    """The other invoice files of the outbox root whose sidecar is that of the invoice
    file `invoice`, by a listing of the root (for the commands, which have no index:
    `attach`, `retry`). Only regular files that are invoice files under cfg's patterns
    and ignore patterns count: those are the daemon's bundles."""
    name = stem(invoice)
    with os.scandir(cfg.path) as it:
        return tuple(sorted(
            e.name for e in it if e.name != invoice and e.name.startswith(name)
            and stem(e.name) == name and is_invoice_file(cfg, e.name, share)
            and e.is_file(follow_symlinks=False)))
