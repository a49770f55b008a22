"""Damage pypdf reads past without a word: a page whose text it silently loses. invoices.py
takes such a page for one whose text could not be read (pdf-text-unreadable), as it does a
page on which pypdf raises, for a lost page of a file of several invoices is a lost invoice.

pypdf (non-strict, as outboxd opens PDFs) recovers in four places where text goes missing:
- Flate content that zlib refuses: its `decompress` skips the bytes that fail and keeps
  what came before, or cuts up to 8 bytes off the end until zlib takes it; data cut short
  it takes as it is. A byte flipped in a page of INV-3 read ('INV-1', 'INV-2'), no error.
  So each Flate content stream is unpacked again here with zlib (C speed; its size is
  already bounded by pdftext.TextBudget, which counted pypdf's output), only to learn
  whether it is whole: the text is pypdf's, never this unpacking's;
- a /Contents that is not a stream (or a reference to no object): pypdf logs it and
  reads no text;
- a /Kids entry of the page tree that is no object of the file: the page is left out of
  the list of pages, without a word;
- text shown in a font pypdf does not have: a page whose /Resources are no object of the
  file, or none at all, it reads no text on; a "Tf" selecting a font its resources do not
  hold (their /Font no object, the name not in it, or naming no object) it reads the
  text after in "�" for each character. Only a page that shows text loses any: one that
  draws only lines and images with such a reference is read as it was. The font is
  followed where pypdf walks the operators for its text (pdftext.TextBudget's visitor),
  and so are the forms a page draws that pypdf never parses: one without resources
  (PDF 1.1's used the page's), any past pypdf's count of forms a page (5,000), and
  one pypdf fails to read — it catches the error and skips the form (pdftext.py). A
  font's character map (/ToUnicode), which pypdf reads its text through, is checked as
  a content stream is when text is shown in the font (pdffonts.font_map, Ledger.check).
  The fonts are looked at in pdffonts.py.
pypdf logs the first two as warnings, but outboxd keeps the "pypdf" logger at ERROR
(logs.py: it chatters about every damaged PDF) and a log is no answer to a caller: the
damage is looked for in the file itself.

A wrong checksum after data that unpacked whole, with no zlib error, is the only sign of
a changed byte that still unpacks ("12" read as "6j"); but some writers get the checksum
of every stream wrong (jsPDF 1.x, pypdf issue #422), and pypdf reads all their text. So
a page whose only fault is that is held in doubt (Ledger) until the file is read: it is
a page not read only where the same file holds a Flate stream, checked while reading it,
whose checksum is right — one wrong among right ones is a changed byte; a writer whose
checksums are all wrong harms nothing. The limit: a file of one Flate stream (or of none
with a right checksum) with a changed byte that still unpacks is read as it unpacks.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

# What may follow a Flate stream's last block without damage to it (PDF's blanks: an
# end of line a writer counted in /Length), and how far from that end its checksum may
# be found: early Distiller and PitStop files put a CR among the last bytes and count
# it, some Adobe writers leave off the checksum's last byte (pypdf cuts up to 8 bytes
# for them). A checksum that is nowhere there, over bytes that are not blanks, is a
# stream that did not unpack to what was written (a flipped byte of a literal unpacks
# without an error, to other text) — or a writer's that gets them all wrong (Ledger).
BLANKS = b" \t\r\n\f\0"
_CHECKSUM_WITHIN = 12
_CHUNK = 1 << 20  # unpacked a MiB at a time: the output is only counted, never kept
# How data a writer flushed but never finished ends (an empty stored block: Z_SYNC_FLUSH,
# Z_FULL_FLUSH), with no last block nor checksum after it: Acrobat Reader's saved forms,
# for which pypdf recovers "incomplete or truncated stream". All that was written
# unpacks, at a whole byte; data cut short by chance ends so once in 2**32.
_FLUSHED = b"\x00\x00\xff\xff"
_FLATE = ("/FlateDecode", "/Fl")
# The ASCII filters a writer may put before Flate, by pypdf's class decoding each.
_ASCII = {"/ASCII85Decode": "ASCII85Decode", "/ASCIIHexDecode": "ASCIIHexDecode"}


class PageDamaged(Exception):
    """A page whose text pypdf reads only in part, or not at all, without raising (str:
    why, in a few words)."""


class _Unpacked(NamedTuple):
    """What unpacking a Flate stream again found: why it does not unpack whole (None:
    whole), and its checksum: right (True), wrong over data that unpacked whole (False,
    `damage` then says so), or none to tell by (None: none written, too little of it,
    not Flate)."""

    damage: str | None
    checksum: bool | None


_WHOLE = _Unpacked(None, None)
_RIGHT = _Unpacked(None, True)


def _flate(stream: Any) -> _Unpacked:
    """What the Flate data of `stream` (its first filter, or the one after an ASCII
    filter: ReportLab writes every page's content ASCII85 then Flate) unpacks to: other
    filters are pypdf's alone."""
    filters = stream.get("/Filter")
    filters = filters.get_object() if filters is not None else None
    chain = list(filters) if isinstance(filters, list) else [filters]
    raw = getattr(stream, "_data", b"") or b""
    if len(chain) > 1 and chain[0] in _ASCII and chain[1] in _FLATE and raw:
        from pypdf import filters as pypdfs
        try:  # pypdf's own decoding, as it decodes it for the text
            raw = getattr(pypdfs, _ASCII[chain[0]]).decode(raw)
        except Exception:  # noqa: BLE001 — pypdf raises on it too, and says so for the page
            return _WHOLE
        chain = chain[1:]
    if not chain or chain[0] not in _FLATE or not raw:  # `/Filter []`: no filter
        return _WHOLE
    if raw[:2] == b"\x1f\x8b":  # gzip's header: off the standard, but pypdf unpacks it
        return _unpacked_whole(zlib.decompressobj(zlib.MAX_WBITS | 16), raw, gzip=True)
    if len(raw) < 2 or raw[0] & 0x0F != 8 or (raw[0] << 8 | raw[1]) % 31:
        return _Unpacked("does not begin as Flate data does", None)
    # Raw deflate after the two bytes of zlib's header: the checksum after it is looked
    # at here, as writers get it wrong in ways that harm nothing (above).
    return _unpacked_whole(zlib.decompressobj(-zlib.MAX_WBITS), raw[2:], gzip=False)


def _unpacked_whole(unpacker: Any, data: bytes, gzip: bool) -> _Unpacked:
    flushed = data.rstrip(BLANKS).endswith(_FLUSHED)
    if flushed:
        data = data.rstrip(BLANKS)  # an end of line counted after it: no block to start
    checksum = 1
    try:
        while not unpacker.eof:
            out = unpacker.decompress(data, _CHUNK)
            checksum = zlib.adler32(out, checksum)
            data = unpacker.unconsumed_tail
            if not out and not data:
                break
    except zlib.error as exc:
        # "Error -3 while decompressing data: invalid distance too far back": the reason.
        return _Unpacked(f"is damaged, zlib: {str(exc).rsplit(': ', 1)[-1]}", None)
    if not unpacker.eof:
        return _WHOLE if flushed else _Unpacked("is cut short", None)
    if gzip:
        return _RIGHT  # zlib checked gzip's own checksum (a wrong one is its error)
    rest = unpacker.unused_data
    if not rest.strip(BLANKS):
        return _WHOLE  # no checksum at all, or only an end of line after the data
    want = checksum.to_bytes(4, "big")
    if want[:3] in rest[:_CHECKSUM_WITHIN]:
        return _RIGHT
    if len(rest) < 3 and want.startswith(rest):
        # Accepted, as a writer may cut it; one byte of it proves nothing (1 in 256).
        return _RIGHT if len(rest) == 2 else _WHOLE
    return _Unpacked("does not match its checksum", False)


def names_no_object(ref: Any) -> bool:
    """Whether `ref`, an entry as written, is a reference to an object the file does not
    hold — not a null written there, which names nothing and loses nothing (pypdf's
    is_null_or_none takes the two for the same)."""
    from pypdf.generic import IndirectObject, NullObject
    if not isinstance(ref, IndirectObject):
        return False
    target = ref.get_object()
    return target is None or isinstance(target, NullObject)


class Ledger:
    """The Flate streams one PDF file's search checks (one ledger a file: kept by
    pdftext.TextBudget), and the ids it finds page by page: the page being read is
    either damaged (`damage`: its text lost, it is not read — by its content, a form's,
    or text shown in a lost font, which TextBudget follows with pdffonts.font_damage) or
    only doubted (`doubt`: a checksum wrong, all else whole), and a doubted page's ids
    are kept until the end of the file decides (decided(), the module's doc)."""

    def __init__(self) -> None:
        self.right = False  # a stream checked in this file had its checksum right
        self.damage: str | None = None  # of the page being read
        self.doubt: str | None = None  # of the page being read
        # Each page read, in page order: its ids in order of first appearance, and
        # whether it is held in doubt (decided() keeps its ids, or takes it for unread).
        self._pages: list[tuple[dict[str, None], bool]] = []
        self._doubted: dict[int, str] = {}

    def page(self) -> None:
        """A new page's search starts."""
        self.damage = self.doubt = None

    def check(self, stream: Any, what: str) -> None:
        """Unpacks the Flate data of `stream` again, only to learn whether it is whole
        (the text is pypdf's); `what`: the stream in a reason ("its compressed content")."""
        found = _flate(stream)
        self.right = self.right or bool(found.checksum)
        if found.damage is None:
            return
        if found.checksum is False:
            self.doubt = self.doubt or f"{what} {found.damage}"
        else:
            self.damage = self.damage or f"{what} {found.damage}"

    def check_contents(self, page: Any) -> None:
        """Checks the content of `page` (all its parts: a wrong checksum in one must not
        hide other damage in another): a part that is no stream, a reference to no
        object, Flate that does not unpack whole."""
        # Not pypdf's is_null_or_none, which takes a reference to no object for a null.
        from pypdf.generic import ArrayObject, NullObject, StreamObject
        raw = page.get("/Contents")
        if raw is None or isinstance(raw, NullObject):
            return  # a page without content: nothing on it is lost
        target = raw.get_object()
        many = isinstance(target, ArrayObject)
        whose = "a part of its content" if many else "its content"
        for part in (target if many else [raw]):
            stream = part.get_object()
            if isinstance(stream, StreamObject):
                self.check(stream, "a compressed part of its content" if many else
                           "its compressed content")
            elif stream is not None and not isinstance(stream, NullObject):
                self.damage = self.damage or f"{whose} is not a stream"
            elif names_no_object(part):
                self.damage = self.damage or f"{whose} is not in the file"
            # else a null written in an array of parts: pypdf skips it, and nothing is lost

    def read(self, number: int, ids: Iterable[str]) -> None:
        """The page `number` was read, whole or in doubt, and holds `ids`."""
        found = dict.fromkeys(ids)
        if found:  # a page of no ids adds none: not kept (a scan of 20,000 pages)
            self._pages.append((found, self.doubt is not None))
        if self.doubt is not None:
            self._doubted[number] = self.doubt

    def decided(self, unread: dict[int, str]
                ) -> tuple[list[str], dict[int, str], list[str]]:
        """The file's ids, in order of first appearance, and its pages not read (by
        number, in order) with why: `unread` and, where a checksum in the file was
        right, the doubted pages — else those are read, and their ids kept. And the
        ids read on doubted pages not read, but not on others: the file holds invoice
        numbers, whether or not these are theirs."""
        lost = self.right and bool(self._doubted)
        ids: dict[str, None] = {}
        doubtful: dict[str, None] = {}
        for found, doubted in self._pages:
            (doubtful if doubted and lost else ids).update(found)  # first place kept
        if lost:
            unread = dict(sorted({**unread, **self._doubted}.items()))
        return list(ids), unread, [i for i in doubtful if i not in ids]


_END = object()


def lost_page(reader: Any) -> str | None:
    """Why pypdf's list of the pages of `reader` lacks one, or None: an entry of a
    /Kids array that is no object of the file (or one that is no dictionary), which
    pypdf leaves out without a word. The tree is walked as pypdf walks it, once pypdf
    has listed the pages: so it has not looped (pypdf raises), it is no deeper and holds
    no more entries than pypdf's limits let through, each of its objects is in pypdf's
    cache, and this walk stops at the first such entry."""
    try:
        return _walk_for_lost(reader)
    except Exception:  # noqa: BLE001 — pypdf walked this tree without an error: no more said
        return None


def _walk_for_lost(reader: Any) -> str | None:
    from pypdf.generic import DictionaryObject, NullObject, is_null_or_none
    root = reader.root_object.get("/Pages")
    root = root.get_object() if root is not None else None
    if not isinstance(root, DictionaryObject):
        return None  # pypdf could not list the pages at all: said otherwise
    pages = 0
    stack = [iter(_kids(root))]
    while stack:
        kid: Any = next(stack[-1], _END)
        if kid is _END:
            stack.pop()
            continue
        if isinstance(kid, NullObject):
            continue  # a null written in the array, as in /Contents: no page of it is lost
        node = kid.get_object()
        if isinstance(node, DictionaryObject) and not node:
            continue  # pypdf skips an empty dictionary: no page, nothing on it lost
        # As pypdf tells a page from a node of pages; any other /Type it skips, as it
        # skips what is no dictionary: a page with "/Type /Pag" is as lost.
        kind = None if not isinstance(node, DictionaryObject) else \
            node.get("/Type", "/Page" if "/Kids" not in node else "/Pages")
        if kind == "/Pages":
            stack.append(iter(_kids(node)))
        elif kind == "/Page":
            pages += 1
        else:
            where = f"after page {pages:,}" if pages else "before its first page"
            what = "not in the file" if is_null_or_none(node) else "not a page"
            return f"the entry {where} is {what}"
    return None


def _kids(node: Any) -> Any:
    from pypdf.generic import ArrayObject
    kids = node.get("/Kids")
    kids = kids.get_object() if kids is not None else None
    return kids if isinstance(kids, ArrayObject) else ()
