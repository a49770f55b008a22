"""pypdf's reader, with the objects a PDF names but its cross-reference table does not
find looked up in one index of the file rather than searched for one at a time.

pypdf (non-strict, as outboxd opens PDFs) looks for such an object — one the table does
not list, or lists at a place that holds another — by running a regular expression for
"N G obj" over a copy of the whole file, once for each object, and again for each once
invoices.py has dropped what pypdf resolved (page by page). A file of 1 MB whose list of
pages, or a page's /Contents array, named 2,000 objects it does not hold took 5 s to
open or to read; 20,000 in a file of 1.2 MB, 91 s — a reader held to its time limit,
an attachment's page count too. Here the first such object makes one pass of the same
expression over the file, which notes where each object the table does not list begins
(the first place, as pypdf's search finds it), and every later one is answered from
that: the object is read from where pypdf would have found it, or is a missing object,
as pypdf makes it when its search finds nothing.

Files whose table is right never make the pass. Nor does a file whose table pypdf
rebuilt on opening it (one it could not read): the rebuilt table lists every object. The pass
notes only what the table does not list, at most MAX_UNLISTED_HEADERS of them (~180
bytes each, 35 MB and 0.2 s at the limit): a file that holds more, and names one, is
refused (UnlistedObjectsLimit), as no PDF writer leaves most of its objects out of the
table.

It also drops what pypdf resolved, for invoices.py after each page, but the objects of
object streams (drop_resolved), which pypdf parses a whole stream at a time.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError
from pypdf.generic import IndirectObject, PdfObject, StreamObject

# pypdf's own expression for "N G obj" (PdfReader.get_object), for every N and G at once.
# It finds, for each, the place pypdf's search for that one would: a match ends at the
# first "obj" after its start, and nothing in a match but its start can begin another.
_HEADER = re.compile(rb"\s(-?\d+)\s+(-?\d+)\s+obj")
MAX_UNLISTED_HEADERS = 200_000
# The decoded bytes of the object streams whose objects are kept from page to page
# (drop_resolved): a real file's streams hold some 100 to 200 objects each, 10 to 40 KB,
# and all of them a few MB; parsed, they take some 3 to 20 bytes of memory a byte.
MAX_KEPT_STREAM_BYTES = 4_000_000


class UnlistedObjectsLimit(PdfReadError):
    """A PDF that names an object its table does not find, and holds more objects the
    table does not list than are looked through for it (str: that, in a clerk's words)."""


class IndexedReader(PdfReader):
    """PdfReader (non-strict) whose lookups pypdf would answer by searching the whole file
    are answered from one index of it (the module's docstring)."""

    def __init__(self, stream: Any) -> None:
        # Set before pypdf reads the file: opening it looks objects up already.
        self._unlisted: dict[tuple[int, int], int] | None = None
        self._refused: str | None = None
        # (generation, number, place) of headers seen to read as the object listed there:
        # looked at once, though pypdf's resolved objects are dropped page by page.
        self._headers_read: set[tuple[int, int, int]] = set()
        # How many objects of object streams lead `_kept_in` (pypdf's resolved_objects),
        # kept when the others are dropped (drop_resolved), and the decoded size of
        # each stream they come from.
        self._kept = 0
        self._kept_in: dict[Any, Any] | None = None
        self._kept_streams: dict[int, int] = {}
        super().__init__(stream, strict=False)

    def get_object(self, indirect_reference: int | IndirectObject) -> PdfObject | None:
        ref = indirect_reference if isinstance(indirect_reference, IndirectObject) else \
            IndirectObject(indirect_reference, 0, self)
        number, generation = ref.idnum, ref.generation
        if self._searched_for(number, generation):
            place = self._index().get((number, generation))
            if place is None or not self._header_at(place, number, generation):
                # What pypdf's search that finds nothing leaves: a missing object, kept
                # as resolved so that it is not looked for again until dropped.
                self.cache_indirect_object(generation, number, None)
                return None
            # Where pypdf's search would have put it: pypdf reads it from there.
            self.xref.setdefault(generation, {})[number] = place
        return super().get_object(ref)

    def drop_resolved(self) -> None:
        """Drop the objects pypdf resolved (invoices.py, after each page), but those of
        object streams of up to MAX_KEPT_STREAM_BYTES together: pypdf parses every
        object of a stream when one of them is first looked up, so a stream dropped with
        the page was parsed whole again for the next (a page's font in a stream of
        20,000 objects, 0.5 MB: 0.2 s a page, 400 pages 88 s; now 0.6 s). The decoded
        content of pages, which no stream holds, is dropped as before; so are the
        objects of streams past the limit (kept, they would grow with the pages)."""
        resolved = self.resolved_objects
        # What was kept comes first (a dict keeps the order keys came in): only what
        # came after it is looked at, not every kept object at every page.
        if resolved is not self._kept_in or len(resolved) < self._kept:
            self._kept_in, self._kept, self._kept_streams = resolved, 0, {}
        fresh = list(itertools.islice(resolved, self._kept, None))
        # Decided before any is dropped: a stream is looked at in `resolved`.
        for key in [key for key in fresh if not (key[0] == 0 and self._keeps(key[1]))]:
            del resolved[key]
        self._kept = len(resolved)

    def _keeps(self, number: int) -> bool:
        """`number` is of an object stream kept, or one there is room for."""
        stream = self.xref_objStm.get(number, (None, 0))[0]
        if stream is None or stream in self._kept_streams:
            return stream is not None
        found = self.resolved_objects.get((0, stream))
        try:  # decoded already, for its objects: pypdf keeps the decoded data with it
            size = len(found.get_data()) if isinstance(found, StreamObject) else None
        except Exception:  # noqa: BLE001 — pypdf read its objects from it: cannot happen
            size = None
        if size is None or sum(self._kept_streams.values()) + size > MAX_KEPT_STREAM_BYTES:
            return False
        self._kept_streams[stream] = size
        return True

    def check_lookups(self) -> None:
        """Raise UnlistedObjectsLimit again if a lookup met it: pypdf catches and logs
        what some of its lookups raise (non-strict), and reads on."""
        if self._refused is not None:
            raise UnlistedObjectsLimit(self._refused)

    def _searched_for(self, number: int, generation: int) -> bool:
        """pypdf's get_object would search the whole file for this object: the table does
        not list it, or lists it where another object's header (or none) is."""
        if (generation, number) in self.resolved_objects or \
                (generation == 0 and number in self.xref_objStm):
            return False
        listed = self.xref.get(generation, {})
        if number not in listed:
            return True
        if self.xref_free_entry.get(generation, {}).get(number, False):
            return False  # a freed object: pypdf's null, no search
        place = listed[number]
        # A place before the file's start: pypdf's seek fails, before any search.
        return place >= 0 and not self._header_at(place, number, generation)

    def _header_at(self, place: int, number: int, generation: int) -> bool:
        """The object's header is at `place`, as pypdf reads a header there."""
        if (generation, number, place) in self._headers_read:
            return True
        back = self.stream.tell()
        try:
            self.stream.seek(place, 0)
            found = self.read_object_header(self.stream) == (number, generation)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 — what pypdf's own reading of it raises: no header
            found = False
        finally:
            self.stream.seek(back, 0)
        if found:
            self._headers_read.add((generation, number, place))
        return found

    def _index(self) -> dict[tuple[int, int], int]:
        """Where each object the table does not list begins: made once, on first need."""
        self.check_lookups()
        if self._unlisted is None:
            self._unlisted = self._headers_unlisted()
        return self._unlisted

    def _headers_unlisted(self) -> dict[tuple[int, int], int]:
        back = self.stream.tell()
        self.stream.seek(0, 0)
        data = self.stream.read()
        self.stream.seek(back, 0)
        found: dict[tuple[int, int], int] = {}
        unlisted = 0
        for match in _HEADER.finditer(data):
            number, generation = _number(match[1]), _number(match[2])
            place = match.start() + 1  # past the blank before it, as pypdf puts it
            if number is None or generation is None or \
                    self.xref.get(generation, {}).get(number) == place:
                continue  # never asked for (pypdf looks for "12", not "012"), or listed
            unlisted += 1
            if unlisted > MAX_UNLISTED_HEADERS:
                self._refused = (f"it names objects its cross-reference table does not "
                                 f"list, and holds over {MAX_UNLISTED_HEADERS:,} such "
                                 "objects, more than are looked through for them: "
                                 "damaged, or made to hold up its reading")
                self.check_lookups()
            found.setdefault((number, generation), place)
        return found


def _number(digits: bytes) -> int | None:
    """The number as pypdf writes it into its search ("12", "-3"), or None: written
    otherwise ("012"), so no search of pypdf's would find it."""
    value = int(digits)
    return value if str(value).encode() == digits else None
