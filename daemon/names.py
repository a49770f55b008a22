"""What a name in the outbox means: invoice file, in-progress, litter
(docs/folder-convention.md, section 1).

Pure functions over names, so the scanner, the matcher and `check` agree.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import unicodedata
from collections.abc import Sequence
from enum import Enum

from daemon.invisible import controls_escaped, escape
from daemon.litter import DESKTOP, IN_PROGRESS, LITTER, LOCKS, METADATA

# Unicode's control characters (category Cc): C0, DEL and C1. C1 is no less one than C0
# (U+0085 ends a line, U+009B starts a terminal's escape sequence), so a name or a folder
# holding one is refused as one holding C0 is.
CONTROLS = r"\x00-\x1f\x7f-\x9f"


class NameKind(Enum):
    IN_PROGRESS = "in-progress"
    LITTER = "litter"
    OTHER = "other"


@functools.lru_cache(maxsize=64)
def _pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """All of patterns as one compiled regex: a rescan classifies every name of an
    outbox that may hold 20,000 files, so one match per name, not one per pattern."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


def _match(name: str, patterns: Sequence[str]) -> bool:
    # Windows clients write any case, but our patterns (*.xml, *.pdf, *.tmp …) are
    # lower case extensions, so compare case-insensitively.
    rx = _pattern(tuple(patterns))
    return rx is not None and rx.match(name.lower()) is not None


def classify(name: str, ignore_patterns: Sequence[str] = ()) -> NameKind:
    """The more specific kind wins: in-progress before litter before anything else; but
    a file of another file's metadata is litter whatever its name ends in."""
    if _match(name, IN_PROGRESS) and not _match(name, METADATA):
        return NameKind.IN_PROGRESS
    if _match(name, LITTER) or _match(name, ignore_patterns):
        return NameKind.LITTER
    return NameKind.OTHER


def is_ignored(name: str, ignore_patterns: Sequence[str] = ()) -> bool:
    return classify(name, ignore_patterns) is not NameKind.OTHER


def ignored_as(name: str, ignore_patterns: Sequence[str] = ()) -> str | None:
    """Why `name` is ignored, as classify() finds it: "lock", "in-progress", "desktop"
    (what a client or an editor leaves beside the files), "hidden" (another dot-file) or
    "admin" ([outbox] ignore_patterns alone); None if it is not."""
    kind = classify(name, ignore_patterns)
    if kind is NameKind.IN_PROGRESS:
        return "lock" if _match(name, LOCKS) else "in-progress"
    if kind is NameKind.OTHER:
        return None
    if _match(name, DESKTOP):
        return "desktop"
    return "hidden" if _match(name, (".*",)) else "admin"


# NAME.errors.txt is outboxd's own (errorsfile.py), whatever [outbox] invoice_patterns
# an admin widens: under "*.txt" or "*" it would be read, and sent, as an invoice.
ERRORS_SUFFIX = ".errors.txt"


def errors_named(name: str) -> bool:
    """Whether a root entry's name is one the page and `outboxd status` look at as a
    NAME.errors.txt (not a dot-name: hidden from the clerks, and outboxd's temps)."""
    return name.endswith(ERRORS_SUFFIX) and not name.startswith(".")


# NAME.converted/ beside a claimed sidecar NAME/: the PDFs made of its images
# (validation/convert.py), archived with the bundle.
CONVERTED_SUFFIX = ".converted"
# NAME.embedded/ beside the invoice file NAME.xml: the documents `ubl-embedded` built and
# sent, each kept before its POST (einvoice/transport.py), archived with the bundle.
EMBEDDED_SUFFIX = ".embedded"


def converted_folder(sidecar: str) -> str:
    """``INV-1`` → ``INV-1.converted``: the folder of a bundle's PDFs beside its sidecar."""
    # The sidecar's own name may already fill NAME_MAX; one bundle per work folder, so
    # the cut cannot meet another sidecar's.
    return fit_bytes(sidecar, NAME_MAX - len(CONVERTED_SUFFIX)) + CONVERTED_SUFFIX


def embedded_folder(invoice_file: str, sidecar: str) -> str:
    """``INV-1.xml`` → ``INV-1.embedded``: the folder of a bundle's ubl-embedded documents
    in its work folder and archive entry; never the sidecar's own name (`sidecar`: its
    name, as [outbox] sidecar_suffix makes it), which a sidecar_suffix of ".embedded"
    gives: that bundle's folder is ``INV-1.embedded.embedded``."""
    name = fit_bytes(stem(invoice_file), NAME_MAX - len(EMBEDDED_SUFFIX)) + EMBEDDED_SUFFIX
    return name if name != sidecar else (
        fit_bytes(sidecar, NAME_MAX - len(EMBEDDED_SUFFIX)) + EMBEDDED_SUFFIX)


def is_invoice_name(name: str, invoice_patterns: Sequence[str],
                    ignore_patterns: Sequence[str] = ()) -> bool:
    return not is_ignored(name, ignore_patterns) and _match(name, invoice_patterns) \
        and not name.endswith(ERRORS_SUFFIX)


@functools.lru_cache(maxsize=64)
def _extensions(patterns: tuple[str, ...]) -> tuple[str, ...]:
    # "xml" of "*.xml" and of "INV-*.xml"; none of "*" or "INV-*".
    return tuple(p.rpartition(".")[2] for p in patterns if "." in p)


def extension_pattern(name: str, invoice_patterns: Sequence[str]) -> str | None:
    """The first invoice pattern that spells out the extension `name` ends in (what follows
    its last dot, ignoring case): the "pdf" of "*.pdf" or "INV-*.pdf", not the "*" of
    "*.*", nor "*" or "INV-*", which spell out none. None if no pattern does."""
    dot = name.rfind(".")
    if dot < 0:
        return None
    ext = name[dot + 1:].lower()
    for pattern in invoice_patterns:
        spelled = pattern.rpartition(".")[2] if "." in pattern else ""
        if spelled.strip("*?") and fnmatch.fnmatchcase(ext, spelled.lower()):
            return pattern
    return None


def has_invoice_extension(name: str, invoice_patterns: Sequence[str]) -> bool:
    """`name` matches an invoice pattern by an extension the pattern spells out: only
    then is what follows its last dot an invoice file's extension. Under a pattern
    without one (`*`, `INV-*`) `INV-7.2` is an invoice number, not INV-7 with an
    extension."""
    dot = name.rfind(".")
    return dot > 0 and _match(name, invoice_patterns) and _match(
        name[dot + 1:], _extensions(tuple(invoice_patterns)))


# The pages of other daemons on the same outbox: operations.md has each named after the
# default (outboxd-status-HOST.html), whatever this daemon's own [share] status_page.
# Taken for the clerks' files, each daemon listed the other's page as one to move out of
# the outbox, and under invoice_patterns = ["*"] claimed and quarantined it every write.
OTHER_PAGES = re.compile(r"outboxd-status.*\.html")


def is_share_file(name: str, status_page: str, release_suffix: str) -> bool:
    """outboxd's own files for the people on the share: the status page (this daemon's,
    and any `outboxd-status*.html`: another daemon's on this outbox) and release files
    NAME.send-anyway. Never read as an invoice; not reported as an odd file, except one
    named like another daemon's page that is none (scan.py looks at its first bytes)."""
    return (bool(status_page) and name == status_page) or bool(
        OTHER_PAGES.fullmatch(name)) or (
        bool(release_suffix) and name.endswith(release_suffix) and name != release_suffix)


def stem(name: str) -> str:
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def first_of(items: Sequence[str], limit: int) -> tuple[Sequence[str], str]:
    """The first `limit` of `items` and what to say of the rest ("" for none): a file of
    thousands of invoices is named by its first ids and a count (page, status)."""
    more = len(items) - limit
    return (items[:limit], f"… and {more} more") if more > 0 else (items, "")


_CONTROL = re.compile(f"[{CONTROLS}]")


def printable(name: str) -> str:
    """A name as shown in logs, findings, the journal and the page: control characters
    as \\xNN, the bytes of a name that is not UTF-8 as \\udcNN (invisible.py), bidirectional
    controls as \\uNNNN, so that it can be written as UTF-8, and a name from the share can
    neither break a line of REASON.txt or `outboxd status`, nor send escape sequences to
    the terminal that shows it, nor hide a character from the person reading it. The
    other invisible format characters (U+200B) stay: escaped_controls shows them
    wherever a person reads the name. A backslash stays (escaped, every name the journal
    kept would change), so the byte 0xE5 and `\\udce5` typed both read `\\udce5`: names
    are told apart by the name on disk, never the name shown."""
    # Not escaped_controls: what the journal kept before stays equal to the name
    # found now.
    return controls_escaped(name)


def name_problem(name: str) -> str | None:
    """Why a name on disk cannot be used, or None. Names come from os.listdir (str)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes arrive as lone surrogates (surrogateescape).
        return "the name is not valid UTF-8 — rename the file"
    found = dict.fromkeys(_CONTROL.findall(name))
    if not found:
        return None
    # Shown as codes: the message goes to the log, REASON.txt and the page, where the raw
    # character would break the line or be invisible, and a clerk must find it to rename.
    codes = ", ".join(escape(c) for c in found)
    if len(found) == 1:
        return f"the name holds a control character ({codes}) — rename the file"
    return f"the name holds control characters ({codes}) — rename the file"


def nfc(name: str) -> str:
    """`name` composed (NFC): a Mac writes "ä" in a name as "a" and a combining mark,
    Windows and an ERP as one letter; the two look the same."""
    return unicodedata.normalize("NFC", name)


def fold_key(name: str) -> str:
    """Names that differ only in case or Unicode normalisation fold to one key."""
    return nfc(name).casefold()


# The ends of a name a clerk does not see or cannot keep: a space before or after it
# (a name copied with one; U+00A0 from a web page or a mail), and a dot after it.
# Windows drops a trailing space or dot from what it names, and a Mac's SMB client
# writes them as U+F028 and U+F029 (Samba stores those as they come).
_EDGES = re.compile(r"\A\s+|[\s.\uf028\uf029]+\Z")
# A Mac's dot or space is said as such: beside a sidecar whose name ends in a dot,
# "a dot at the end where the sidecar's name has a dot at the end" would say nothing.
_EDGE_WORDS = {".": "a dot", "\uf029": "a dot as a Mac writes it to a share",
               " ": "a space", "\uf028": "a space as a Mac writes it to a share",
               "\u00a0": "a non-breaking space"}


def trimmed(name: str) -> str:
    """`name` without those ends (itself when nothing else is left of it)."""
    # Most names have none: two character tests, no regex (a rescan keys every name).
    if not (name[:1].isspace() or name[-1:].isspace() or name[-1:] in ".\uf028\uf029"):
        return name
    return _EDGES.sub("", name) or name


def visible(name: str) -> str:
    """`name` in quotes if it has such an end: "rename INV-7  to the sidecar's name"
    reads as renaming INV-7 to itself."""
    return f'"{name}"' if trimmed(name) != name else name


def edge_words(name: str) -> str:
    """What `name` has at its ends that trimmed() takes off, in words ("a space at the
    end", "a space at the start and a dot at the end"), or ""."""
    said = []
    for m in _EDGES.finditer(name):
        if len(m[0]) == len(name):
            break  # nothing but those: trimmed() keeps the name
        kinds = dict.fromkeys(_EDGE_WORDS.get(c, "a blank character") for c in m[0])
        said.append(f"{' and '.join(kinds)} at the {'start' if m.start() == 0 else 'end'}")
    return " and ".join(said)


# How a sidecar-spelling message (match.py) names the difference. REASON.txt picks its
# steps by these words (reasontext.py): a quarantine record keeps the messages, not the
# sidecar's name, and a message says exactly what the daemon found.
CASE_WORDS = "upper and lower case"
FORM_WORDS = "different Unicode characters"
FILE_WORDS = "this file looks like the sidecar"  # a file, where the sidecar is a folder
# A look-alike named otherwise (a space or dot at an end, the invoice file's extension,
# no sidecar suffix): the fix is the sidecar's name, which the message gives.
EXACT_WORDS = "exactly as written here"
# A look-alike named as a second copy of the sidecar is (`INV-7 (1)/`, `INV-7 - Copy/`):
# Windows Explorer and a browser name a second copy so, a Mac's Finder `INV-7 copy/`,
# `INV-7 2/`; a clerk who copied the folder in may not know.
COPY_WORDS = "its name is one Windows or a Mac gives a second copy of a folder"


def _forms(name: str) -> tuple[bool, bool]:
    return unicodedata.is_normalized("NFC", name), unicodedata.is_normalized("NFD", name)


def spelled_otherwise(name: str, right: str) -> tuple[bool, bool]:
    """How `name` differs from `right`, two names of one fold_key: (in upper and lower
    case, in Unicode form). Which it is decides what a clerk is told to do: a case
    mistake (Windows takes `inv-7` and `INV-7` for one name, Linux for two) is mended
    by renaming on any computer, accents written as separate marks only by typing the
    name again on a computer that writes them as one letter."""
    case = unicodedata.normalize("NFC", name) != unicodedata.normalize("NFC", right)
    # A plain ASCII name is in both forms; so are the names of a case mistake alone.
    return case, _forms(name) != _forms(right) or not case


def spelling_twins(name: str) -> tuple[str, ...]:
    """The other ways `name` can be spelled in Unicode that look the same to a person:
    its composed (NFC) and decomposed (NFD) forms, where they differ from it. Mac
    computers write names decomposed, Windows and most ERPs composed; to Linux they are
    different names. A plain ASCII name has none, and a form too long for a file name
    (decomposed accents take more bytes) cannot be on disk: looking it up would fail."""
    if name.isascii():
        return ()
    forms = (unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name))
    return tuple(dict.fromkeys(f for f in forms
                               if f != name and len(os.fsencode(f)) <= NAME_MAX))


NAME_MAX = 255  # bytes in one path component on Linux file systems (ext4, xfs, tmpfs, NFS)
EXT_MAX = 16  # a longer "extension" is part of the name, and may be cut with it


def fit_bytes(name: str, limit: int) -> str:
    """`name` cut to at most `limit` bytes of UTF-8 (or of the raw bytes a non-UTF-8 name
    stands for), never in the middle of a character."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    cut = raw[:limit].decode("utf-8", "ignore").rstrip()
    return os.fsdecode(cut.encode("utf-8")) if cut else "bundle"


def fit_name(name: str, limit: int = NAME_MAX) -> str:
    """`name` as it is if it fits in `limit` bytes; else cut, with '-' and 8 hex digits
    of its SHA-256 before a short extension: the same long name always gives the same
    short one (a retry finds what an earlier attempt wrote), two different ones two."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    tag = hashlib.sha256(raw).hexdigest()[:8]
    base, dot, ext = name.rpartition(".")
    if not (dot and base and len(os.fsencode(ext)) <= EXT_MAX):
        base, ext = name, ""
    tail = f"-{tag}" + (f".{ext}" if ext else "")
    return fit_bytes(base, limit - len(os.fsencode(tail))) + tail
