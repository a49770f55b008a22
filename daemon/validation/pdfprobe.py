"""The PDF probe: open a PDF once with pypdf (non-strict) and turn what it finds into
plain facts (PdfFacts): its pages, whether it is encrypted, why it cannot be read.
pypdf's exceptions are mapped here and nowhere else, so the validation rules only ever
look at dataclasses. Images are imageprobe.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from daemon.errors import library_fault
from daemon.fs.fsops import read_again_later
from daemon.validation.pdftail import (
    CUT_INSIDE_UPDATE,
    XREF_DAMAGED,
    ends_inside_update,
    xref_miscounted,
)

if TYPE_CHECKING:
    from pypdf import PdfReader
    from pypdf.generic import IndirectObject

    from daemon.validation.pdfobjects import IndexedReader


# Why pypdf refused a PDF when the file itself shows nothing more precise (pdftail.py):
# pypdf's reasons ("Stream has ended unexpectedly", "Invalid Elementary Object") are
# its parser's, which a clerk cannot act on; the fix is the same for all of them.
DAMAGED = "the file is damaged, or is not really a PDF"
# How much of pypdf's words the message keeps: enough for the admin to search for them.
_DETAIL_CHARS = 100


@dataclass(frozen=True)
class PdfFacts:
    pages: int = 0
    encrypted: bool = False
    error: str | None = None  # why pypdf could not open it, in a clerk's words
    # pypdf's own words for it, shortened: for the admin, after the clerk's words (a
    # clerk cannot act on "Stream has ended unexpectedly"); None where `error` says all.
    detail: str | None = None
    cut_short: bool = False  # it ends inside an update that follows its last %%EOF

    def problem(self) -> tuple[str, str] | None:
        """(code, message) when no one can use this PDF: encrypted in any
        way, not readable, or without pages; None when it is a usable PDF."""
        if self.encrypted:
            return ("pdf-encrypted", "is an encrypted PDF; no encryption is allowed, not "
                    "even one that opens without a password — save a copy without "
                    "password or security settings")
        if self.cut_short:
            return ("pdf-unreadable", f"is not a readable PDF: {CUT_INSIDE_UPDATE}, as a copy "
                    "stopped before its end leaves it — copy the file again")
        if self.error == DAMAGED:
            said = f" ({self.detail})" if self.detail else ""
            return ("pdf-unreadable", f"is not a readable PDF: {DAMAGED}{said} — export or "
                    "print it to PDF again from the program that made it")
        if self.error is not None:
            return ("pdf-unreadable", f"is not a readable PDF ({self.error}) — export or "
                    "print the document to PDF again")
        if self.pages == 0:
            return ("pdf-no-pages", "is a PDF with no pages — export the document to PDF "
                    "again")
        return None


def probe_pdf(fh: BinaryIO) -> PdfFacts:
    """Open with pypdf (non-strict) and count pages; pypdf's errors end here."""
    try:
        return open_pdf(fh)[1]
    finally:
        fh.seek(0)


def open_pdf(fh: BinaryIO) -> tuple[IndexedReader | None, PdfFacts]:
    """The reader (None unless the PDF is usable) and what was found; pypdf's errors
    end here."""
    # Imported here, not with this module (~35 ms): the daemon whose reader processes
    # read, and a command that opens no PDF, never need pypdf (warm_up loads it ahead).
    from pypdf.errors import DependencyError, LimitReachedError

    from daemon.validation.pdfobjects import IndexedReader, UnlistedObjectsLimit
    fh.seek(0)
    try:
        reader = IndexedReader(fh)
        if ends_inside_update(fh):
            return None, PdfFacts(error=CUT_INSIDE_UPDATE, cut_short=True)
        # pypdf opens owner-password-only PDFs silently (empty user password):
        # ask, and never look further into an encrypted file.
        if reader.is_encrypted:
            return None, PdfFacts(encrypted=True)
        pages = _declared_pages(reader) or len(reader.pages)
        reader.check_lookups()
        return (reader if pages else None), PdfFacts(pages=pages)
    except UnlistedObjectsLimit as exc:
        return None, PdfFacts(error=str(exc))
    except DependencyError as exc:
        # pypdf only needs optional crypto packages for AES-encrypted files.
        return None, PdfFacts(encrypted=True, error=str(exc))
    except LimitReachedError as exc:
        if (error := unpack_limit_error(exc)) is not None:
            return None, PdfFacts(error=error)
        return None, _refused(fh, exc)
    except RecursionError:
        return None, PdfFacts(error=DAMAGED, detail="pypdf: its object tree loops")
    except Exception as exc:  # noqa: BLE001 — corrupt PDFs raise anything, not just PyPdfError
        if read_again_later(exc):
            # A share that failed a read under pypdf (a large file is read from it): its
            # fault, read again later, never "damaged" — a good PDF was quarantined so.
            raise
        return None, _refused(fh, exc)


def _refused(fh: BinaryIO, exc: Exception) -> PdfFacts:
    """Why pypdf refused the PDF: in words, where the file shows it; else that it is
    damaged, with pypdf's own words, shortened, for the admin (none where pypdf failed
    in its own code: errors.library_fault, logged)."""
    if xref_miscounted(fh):
        # pypdf's words for it ("Declared size 99 exceeds allowed limit of 21!", "Could
        # not read Null object") name neither the part nor the damage.
        return PdfFacts(error=XREF_DAMAGED)
    return PdfFacts(error=DAMAGED, detail=None if _logged(exc) else pypdfs_words(exc))


_INDIRECT_REPR = re.compile(r"IndirectObject\((\d+), (\d+), \d+\)")
# For a part of a PDF pypdf failed on in its own code (library_fault): what the message
# says in place of its words ("the text of page 3 could not be read (…)").
DAMAGED_THERE = "the PDF is damaged there"


def _logged(exc: Exception) -> bool:
    """Whether pypdf failed on the file in its own code (errors.library_fault): its words
    are then logged, for the admin, and kept out of the clerk's message."""
    if not library_fault(exc):
        return False
    from daemon import logs
    logs.get().info("pypdf failed in its own code on a PDF, which is said to be damaged",
                    error=f"{type(exc).__name__}: {_one_line(exc)}")
    return True


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:_DETAIL_CHARS * 4]


def pypdfs_words(exc: Exception) -> str:
    """pypdf's reason, on one line and cut short, for the admin; DAMAGED_THERE where pypdf
    failed in its own code ("pypdf: AssertionError" told a clerk nothing; logged)."""
    if _logged(exc):
        return DAMAGED_THERE
    words = " ".join((str(exc) or type(exc).__name__).split())
    # An object as the file numbers it: pypdf's repr adds its reader's address in memory,
    # another at every read, so the same file got another message each time.
    words = _INDIRECT_REPR.sub(r"object \1 \2", words)
    if len(words) > _DETAIL_CHARS:
        words = words[:_DETAIL_CHARS - 1] + "…"
    return f"pypdf: {words}"


def unpack_limit_error(exc: Exception) -> str | None:
    """What a PDF error says when pypdf stopped unpacking at its limit, or None when
    `exc` is anything else (any step that unpacks a part of a PDF may meet this)."""
    # A few KB of Flate can unpack to gigabytes; pypdf stops at its limit and says so
    # in its own words ("Limit reached while decompressing. 899062 bytes remaining."),
    # which tell a clerk neither what nor how much.
    from pypdf import get_configuration
    from pypdf.errors import LimitReachedError
    if not isinstance(exc, LimitReachedError) or "decompress" not in str(exc):
        return None
    limit = get_configuration().zlib_maximum_output_length
    return (f"part of it unpacks to more than {limit:,} bytes, the most outboxd unpacks: "
            "damaged, or made to fill memory")


def lookup_limit_error(exc: Exception) -> str | None:
    """What a PDF error says when the lookups of objects its table does not list met
    their limit (pdfobjects.py), or None when `exc` is anything else."""
    from daemon.validation.pdfobjects import UnlistedObjectsLimit
    return str(exc) if isinstance(exc, UnlistedObjectsLimit) else None


def parse_limit_error(exc: Exception) -> str | None:
    """pypdf's own words, shortened, when it stopped parsing at one of its limits other
    than unpacking ("Reached maximum array element count."); None for anything else."""
    from pypdf.errors import LimitReachedError
    if not isinstance(exc, LimitReachedError) or unpack_limit_error(exc) is not None:
        return None
    return pypdfs_words(exc)


def _declared_pages(reader: PdfReader) -> int | None:
    """The page tree root's /Count, when it can be right; None: walk the tree instead.

    Walking the tree (pypdf's len(reader.pages)) parses every page object —
    most of the CPU of probing a PDF — to learn one number the root already
    states. Like poppler, we take /Count unless it cannot be right: not a
    whole number, below 1 (a "no pages" verdict is always walked), more than
    the file has objects, fewer than the root's /Kids, /Kids that are not
    distinct references to objects in the file, or a first kid that does not
    lead down to a real /Page. So a PDF without pages never passes on its
    /Count; one whose /Count passes these checks and still lies can only
    misstate `pages` in the manifest, as it would in a viewer.
    """
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject  # see open_pdf
    try:
        root = reader.root_object.get("/Pages")
        if not isinstance(root, IndirectObject):
            return None
        pages = root.get_object()
        if not isinstance(pages, DictionaryObject) or pages.get("/Type", "/Pages") != "/Pages":
            return None
        count = pages.get("/Count")
        kids = pages.get("/Kids")
        if type(count) is bool or not isinstance(count, int) or \
                not isinstance(kids, ArrayObject) or not 1 <= len(kids) <= count:
            return None
        objects = sum(len(entries) for entries in reader.xref.values()) + \
            len(reader.xref_objStm)
        if count > objects:
            return None
        seen = {(root.idnum, root.generation)}
        for kid in kids:
            if not isinstance(kid, IndirectObject) or (kid.idnum, kid.generation) in seen \
                    or not _in_file(reader, kid):
                return None
            seen.add((kid.idnum, kid.generation))
        return int(count) if _leads_to_page(reader, kids[0], seen) else None
    except Exception:  # noqa: BLE001 — any doubt: the full walk decides, and reports
        return None


# Real page trees are a few levels deep; a deeper first branch is left to the full walk.
_MAX_DEPTH = 32


def _leads_to_page(reader: PdfReader, node: IndirectObject, seen: set[tuple[int, int]]
                   ) -> bool:
    """Following first kids from `node` reaches a /Page: the tree has at least one page."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject  # see open_pdf
    for _ in range(_MAX_DEPTH):
        obj = node.get_object()
        if not isinstance(obj, DictionaryObject):
            return False
        kind = obj.get("/Type")
        kids = obj.get("/Kids")
        if kind == "/Page" or (kind is None and kids is None):
            return True
        if kind not in (None, "/Pages") or not isinstance(kids, ArrayObject) or not kids:
            return False
        node = kids[0]
        if not isinstance(node, IndirectObject) or (node.idnum, node.generation) in seen \
                or not _in_file(reader, node):
            return False
        seen.add((node.idnum, node.generation))
    return False


def _in_file(reader: PdfReader, ref: IndirectObject) -> bool:
    """An object the cross-reference table lists as in use."""
    if ref.generation == 0 and ref.idnum in reader.xref_objStm:
        return True
    return ref.idnum in reader.xref.get(ref.generation, {}) and \
        not reader.xref_free_entry.get(ref.generation, {}).get(ref.idnum, False)
