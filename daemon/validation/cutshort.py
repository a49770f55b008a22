"""A settled version that looks cut short: a copy that stalled mid-file for longer than
settle_seconds (a slow VPN, a laptop gone to sleep) leaves a file that ends early, and
it is read as it is. Under [policy] invalid = "quarantine" such a bundle is not moved
to quarantine at once, where the copy would go on writing into it: it is held for a
grace period and quarantined only if that very version still fails then
(docs/folder-convention.md, section 4).

Which findings a still-running copy explains, by the codes of docs/codes.md: a file
with nothing in it yet, or only the zeros of a copy that sized it first (`empty-file`);
a PDF that cannot be read or shows no pages (`pdf-unreadable`, `pdf-no-pages`: pypdf
finds neither the end nor the pages of a PDF cut short; one cut inside an update after
its %%EOF, which pypdf would read as the revision before, pdftail.py finds; but not one
whose cross-reference table counts wrong, which a copy cut short never shows); an image
that cannot be read or ends before its data does (`image-unreadable`, but not a TIFF
compressed in a way outboxd cannot read: its header says so); an XLSX, DOCX or
ODS (any ZIP) without the end record such a file closes with (`zip-unreadable`); XML
that ends before its last element is closed (`invalid-xml` with XML_CUT_SHORT, not
every `invalid-xml`); an attachments.toml that breaks off at its end
(`attachments-toml-invalid` with TOML_CUT_SHORT, notes.py). A file
of the wrong type, or any other finding beside these, is no half-written copy: such a
bundle is quarantined at once, as before.
"""

from __future__ import annotations

from dataclasses import replace

from daemon.bundle import Finding
from daemon.validation.pdftail import XREF_DAMAGED
from daemon.validation.tiffdirs import UNREADABLE_COMPRESSION

# The start of the invalid-xml message for XML that ends before its document does
# (invoices.py): the one invalid-xml a copy still at work explains.
XML_CUT_SHORT = "is not well-formed XML: it ends before its last element is closed"

# The same for attachments.toml (notes.py): TOML that fails only where its text ends.
TOML_CUT_SHORT = "cannot be read as TOML: it breaks off at its end"

CUT_SHORT_CODES = frozenset({"empty-file", "pdf-unreadable", "pdf-no-pages",
                             "image-unreadable", "zip-unreadable"})

# The least grace, whatever settle_seconds: a copy that stalled past a settle period of
# 5 s has often stalled for longer, and the grace costs only a late quarantine.
GRACE_SECONDS = 30.0


def looks_cut_short(errors: tuple[Finding, ...] | list[Finding]) -> bool:
    """Every error is one a copy still at work would explain (and there is one)."""
    return bool(errors) and all(
        f.code in CUT_SHORT_CODES and not _said_otherwise(f.message)
        or (f.code == "invalid-xml" and f.message.startswith(XML_CUT_SHORT))
        or (f.code == "attachments-toml-invalid" and f.message.startswith(TOML_CUT_SHORT))
        for f in errors)


def _said_otherwise(message: str) -> bool:
    """The message names a damage no copy at work leaves: the last startxref of a file
    cut short is gone with its end, and a TIFF's header holds its compression."""
    return XREF_DAMAGED in message or UNREADABLE_COMPRESSION in message


def grace_seconds(settle_seconds: float) -> float:
    """How long a version that looks cut short is held before it is quarantined:
    another settle period, at least GRACE_SECONDS."""
    return max(float(settle_seconds), GRACE_SECONDS)


def while_held(errors: tuple[Finding, ...], until: str) -> tuple[Finding, ...]:
    """The errors as NAME.errors.txt, the status page and `outboxd status` show them
    during the grace: each saying why the bundle is not quarantined yet, and when it
    will be. `until`: the grace's end as a time of day ("2026-03-09 14:03:12 UTC", as
    the page's other times): a file read minutes after it was written must not count
    "30 s" from the moment it is read."""
    words = (f"; it looks cut short — outboxd waits until {until} in case it is "
             "still being copied, and quarantines the bundle if nothing in it has "
             "changed by then")
    return tuple(replace(f, message=f.message + words) for f in errors)
