"""What the end of a PDF tells that pypdf does not say in words a clerk can use.

A PDF cut short inside an update: every later save of a PDF (a signature, a form
filled in and saved, notes) is appended after its %%EOF as an update. A copy stopped
inside the last one leaves a file pypdf still opens, as the revision before it (the
unsigned contract); what follows the file's last %%EOF tells. pdfprobe.py asks this once
pypdf has opened the file.

A cross-reference table (the list, near the end, of where each object of the file
lies) that declares more or fewer entries than it holds: pypdf refuses the file in its
own words ("Declared size 99 exceeds allowed limit of 21!", "Invalid Elementary Object
starting with b'R'"). pdfprobe.py asks this once pypdf has refused the file, to say why.
"""

from __future__ import annotations

import re
from typing import BinaryIO

CUT_INSIDE_UPDATE = "it ends inside an update added after its end marker"

# What starts an update (an incremental save: a signature, a filled-in form, notes): an
# object ("12 0 obj"), a cross-reference table or its trailer, after any whitespace, NULs
# (a copy that sized the file first) and comments. A file cut within the first bytes of
# "12 0 obj" ends in the two numbers; a lone number, like any other junk after the end
# marker (a newline, NULs, a web server's few bytes), is no update. Possessive: no
# backtracking over a tail of a million NULs.
_UPDATE_START = re.compile(
    rb"(?:[\0\t\n\f\r ]++|%[^\r\n]*+)*+"
    rb"(?:\d++[\0\t\n\f\r ]++\d++(?:[\0\t\n\f\r ]++obj|[\0\t\n\f\r ]*+(?:o|ob)?\Z)"
    rb"|xref|trailer|startxref)")
_PDF_WHITESPACE = b"\0\t\n\f\r "
_EOF_MARKER = b"%%EOF"
_TAIL_CHUNK = 4096
# How far back from its end the last %%EOF is looked for: beyond it, as far as a PDF
# held in memory reaches (validate.MAX_IN_MEMORY), a file is not judged by its tail.
_MAX_TAIL = 64 << 20


def ends_inside_update(fh: BinaryIO) -> bool:
    """What follows the file's last %%EOF is the start of an update: a copy stopped
    inside an incremental save (a signature, a filled-in form). pypdf then reads the
    revision before it, as if it were the whole document.

    Only the tail is read, backward from the end in growing chunks, to the last %%EOF
    pypdf would take for one: one that starts a line, or one on the last line. pypdf has
    read the same bytes backward to find it; a whole PDF ends with it, so this is one
    small read."""
    end = fh.seek(0, 2)
    tail, start = b"", end
    while start > 0 and end - start < _MAX_TAIL:
        new_start = max(0, start - max(_TAIL_CHUNK, end - start))  # doubling: O(tail)
        fh.seek(new_start)
        tail = fh.read(start - new_start) + tail
        start = new_start
        marker = _last_marker(tail, whole=start == 0)
        if marker is not None:
            return _UPDATE_START.match(tail, marker + len(_EOF_MARKER)) is not None
    return False


def _last_marker(tail: bytes, whole: bool) -> int | None:
    """Where the last %%EOF of `tail` that pypdf takes for one starts: at the start of a
    line, or anywhere on the last line that is not blank. None: there is none, or its
    line may start before `tail` does (unless `tail` is the `whole` file)."""
    body = tail.rstrip(_PDF_WHITESPACE)
    last_line = max(body.rfind(b"\n"), body.rfind(b"\r"))
    at = len(tail)
    while (at := tail.rfind(_EOF_MARKER, 0, at)) >= 0:
        if at > last_line or (at > 0 and tail[at - 1] in b"\r\n"):
            return at
        if at == 0:
            return 0 if whole else None
    return None


XREF_DAMAGED = ("its cross-reference table, the list of where each part of the file lies, "
                "is damaged: it counts more or fewer entries than it holds")

# pypdf looks for "startxref" in the last 1 KB too.
_STARTXREF = re.compile(rb"startxref[\0\t\n\f\r ]*(\d{1,12})")
_XREF_TAIL = 1024
_SPACE = rb"[\0\t\n\f\r ]*+"
_XREF = re.compile(_SPACE + rb"xref")
# "0 6": the first object's number and how many entries follow.
_SUBSECTION = re.compile(_SPACE + rb"(\d{1,10})[ \t]++(\d{1,10})[ \t]*+(?:\r\n|\r|\n)")
# "0000000015 00000 n": 20 bytes with its end of line, which some writers make one byte.
_ENTRY = re.compile(rb"\d{10} \d{5} [nf](?: \r| \n|\r\n|\r|\n| )")


def xref_miscounted(fh: BinaryIO) -> bool:
    """The classic cross-reference table that the file's last startxref points to has a
    section whose count is not the number of entries that follow it (a table edited by
    hand or a producer's bug: poppler and qpdf rebuild it, pypdf refuses the file). False
    for a table that counts right, a cross-reference stream (PDF 1.5) and anything not
    found: then pypdf's own words are all there is. Reads from the table to the end."""
    end = fh.seek(0, 2)
    fh.seek(max(0, end - _XREF_TAIL))
    found = list(_STARTXREF.finditer(fh.read()))
    if not found or (offset := int(found[-1][1])) >= end:
        return False
    fh.seek(offset)
    table = fh.read()
    pos = _XREF.match(table)
    if pos is None:
        return False
    at = pos.end()
    while (section := _SUBSECTION.match(table, at)) is not None:
        at, declared = section.end(), int(section[2])
        held = 0
        # Entry by entry, not a slice of 20 × declared bytes: a count of a billion costs
        # no more than the entries that are there.
        while held < declared and (entry := _ENTRY.match(table, at)) is not None:
            at, held = entry.end(), held + 1
        if held < declared or _ENTRY.match(table, at) is not None:
            return True
    return False
