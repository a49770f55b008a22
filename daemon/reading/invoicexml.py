"""Parse an XML invoice file safely (docs/folder-convention.md, section 2): whether
content starts as XML, in which wide encoding, and its tree. Entity declarations,
external entities and DTDs are refused, never expanded or fetched. Which invoices the
tree holds is invoices.py's.

Two XML parsers, one answer. The usual invoice (UTF-8 or ASCII, no DOCTYPE,
no NUL byte) is parsed by lxml (libxml2, C) with entities, DTDs and the
network off: about eight times less CPU than defusedxml, whose tree is built
in Python. Everything else — a DOCTYPE anywhere in the bytes, another
encoding, and any document lxml does not accept — goes through defusedxml
exactly as before, so what is refused and every error text stay the same.
"""

from __future__ import annotations

import codecs
import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser
from lxml import etree

from daemon.errors import HostileInput, InputError
from daemon.validation.cutshort import XML_CUT_SHORT

# White space as XML has it (S in the XML 1.0 grammar): all an id's text is trimmed of.
XML_SPACE = " \t\r\n"

# What expat says of XML whose bytes end before its document does: cut mid-element, mid-
# tag, mid-character or mid-CDATA.
_ENDS_EARLY = frozenset(expat_errors.codes[m] for m in (
    expat_errors.XML_ERROR_NO_ELEMENTS, expat_errors.XML_ERROR_UNCLOSED_TOKEN,
    expat_errors.XML_ERROR_PARTIAL_CHAR, expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION))
# A copy that sizes the file first and fills it afterwards leaves zeros at its end; four
# of them, as no text in UTF-8 or UTF-16 ends.
_ZERO_TAIL = b"\0\0\0\0"
# What expat says of a declared encoding it will not read: one Python knows but whose
# ASCII letters are other bytes (EBCDIC: cp037, cp500), and one a UTF-8 byte order mark
# contradicts (encoding="UTF-16").
_UNKNOWN_ENCODING = expat_errors.codes[expat_errors.XML_ERROR_UNKNOWN_ENCODING]
_INCORRECT_ENCODING = expat_errors.codes[expat_errors.XML_ERROR_INCORRECT_ENCODING]
_REFUSED_ENCODING = frozenset((_UNKNOWN_ENCODING, _INCORRECT_ENCODING))


# An internal subset with nothing in it, from its `[` to the DOCTYPE's end.
_EMPTY_SUBSET = re.compile(rb"\[[ \t\r\n]*\][ \t\r\n]*>")


class _BareDoctypeParser(DefusedXMLParser):
    """Allows `<!DOCTYPE x>` alone, or with an empty internal subset (`<!DOCTYPE x []>`,
    as .NET's XmlWriter writes it): neither declares nor points at anything. Refuses a
    DOCTYPE that points at or declares anything; `data`: the whole document, whose bytes
    tell an empty subset (without them any subset is refused)."""

    def __init__(self, *args: Any, data: bytes = b"", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data = data

    def defused_start_doctype_decl(self, name: str, sysid: str | None, pubid: str | None,
                                   has_internal_subset: bool) -> None:
        # Judged by its bytes before expat reads on: a declaration or reference in it
        # is never seen by the parser, nor an error of its own ("undefined entity").
        # Expat is at the subset's `[` here; in UTF-16 no byte pattern matches.
        if sysid or pubid or has_internal_subset and not _EMPTY_SUBSET.match(
                self._data, self.parser.CurrentByteIndex):
            raise DTDForbidden(name, sysid, pubid)


# Elements nested deeper than this are no invoice (UBL nests a dozen levels; the e-invoice
# rules read 100, lxml's parser 256). ElementTree keeps ~0.4 KB a level open: a file of
# 2,000,000 nested tags (invoices.MAX_XML_TAGS, 14 MB) took a reader past 850 MB before
# it was refused, where a flat one of as many tags takes a third of that.
MAX_XML_DEPTH = 1000
NESTED_TOO_DEEP = "nests elements too deeply to be an invoice — export the invoice again"


class _TooDeep(Exception):
    pass


class _DepthLimited(TreeBuilder):
    """ElementTree's tree builder, stopping (_TooDeep) at an element nested deeper than
    MAX_XML_DEPTH, before the levels above it cost their memory. A Python subclass makes
    the parser call it per element (~1 µs): only for what lxml does not parse."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth > MAX_XML_DEPTH:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return super().end(tag)


def _parse_xml(data: bytes) -> Element:
    # forbid_dtd=True installs the doctype handler (defusedxml only hooks it then);
    # the override above lets a bare `<!DOCTYPE x>` through.
    parser = _BareDoctypeParser(target=_DepthLimited(), forbid_dtd=True, forbid_entities=True,
                                forbid_external=True, data=data)
    parser.feed(data)
    root: Element = parser.close()
    return root


class _RootSeen(Exception):
    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class _FirstStart:
    """A parser target that stops the parse at the root element's start tag."""

    def start(self, tag: str, _attrib: object) -> None:
        raise _RootSeen(tag)

    def close(self) -> None:
        return None


def root_tag(data: bytes, rel: str) -> str:
    """The root element's tag (`{ns}local`), parsed only as far as its start tag: what a
    file is needs no more, and parsed whole a second time (outboxd check's head line, in
    the command's own process) a 64 MB export took seconds and GBs of memory outside the
    reader's limits. A DTD or entity before the root is refused as parse_defused does."""
    parser = _BareDoctypeParser(target=_FirstStart(), forbid_dtd=True,
                                forbid_entities=True, forbid_external=True, data=data)
    try:
        for at in range(0, len(data), 1 << 16):
            parser.feed(data[at:at + (1 << 16)])
        parser.close()
    except _RootSeen as seen:
        return seen.tag
    except _PARSE_FAULTS as exc:
        raise refused(data, rel, exc) from None
    raise InputError("invalid-xml", rel, "holds no XML element")


# An encoding declaration in the XML declaration, e.g. encoding="UTF-8".
_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")
_LXML_ENCODINGS = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii"})


def lxml_root(data: bytes) -> Any | None:
    """The document parsed by lxml, or None where defusedxml must decide.

    Declarations can only come in a DOCTYPE, and a DOCTYPE is refused (or,
    bare, allowed) by the defusedxml path: lxml only sees bytes with no
    `<!DOCTYPE` in them at all. Checking bytes is only sound in an
    ASCII-compatible encoding, so UTF-16/32 (NUL bytes) and declared
    encodings other than UTF-8/ASCII go the other way too. The parser
    resolves no entity, loads no DTD and opens no connection regardless.
    """
    if b"<!DOCTYPE" in data or b"\x00" in data:
        return None
    declared = _ENCODING.match(data.lstrip(b"\xef\xbb\xbf \t\r\n")[:512])
    if declared and declared[1].lower() not in _LXML_ENCODINGS:
        return None
    # encoding="utf-8": whatever the declaration says further on (padding can push it
    # past the bytes looked at above), these bytes are read as UTF-8 and nothing else,
    # so a DOCTYPE cannot hide in another encoding (UTF-7, say).
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True,
                             encoding="utf-8")
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError):
        # Not well-formed, or beyond libxml2's limits (256 levels deep without
        # huge_tree): defusedxml gives the error, or the answer, as before.
        return None
    if root.getroottree().docinfo.doctype:
        return None  # cannot happen without "<!DOCTYPE" in the bytes; never trust it
    return root


# XML in UTF-16 or UTF-32 must start with its byte-order mark (XML 1.0, F.1); UTF-32
# first, as its little-endian mark begins with UTF-16's.
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
             (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def wide_encoding(data: bytes) -> tuple[str, bool] | None:
    """("utf-16" or "utf-32", whether a byte order mark says so) when the file is encoded
    so, else None. Without the mark, a NUL among the first bytes tells (XML 1.0,
    appendix F), and expat reads it so too."""
    for bom, codec in WIDE_BOMS:
        if data.startswith(bom):
            return codec[:6], True
    if b"\x00" not in data[:4]:
        return None
    return ("utf-32" if data[:4] in (b"\x00\x00\x00<", b"<\x00\x00\x00") else "utf-16"), False


def is_xml(head: bytes) -> bool:
    """Whether the content starts as XML: `<` after blanks and a UTF-8 byte-order
    mark, or the same in UTF-16/32 (an invoice saved as "Unicode") after their mark or,
    without it, in either byte order: an ASCII character's NULs come after it in
    little-endian and before it in big-endian, so a NUL first byte tells big-endian."""
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return True
    for bom, codec in WIDE_BOMS:
        if head.startswith(bom):
            return _starts_with_tag(head[len(bom):], codec)
    wide = wide_encoding(head)
    order = "-be" if head.startswith(b"\x00") else "-le"
    return wide is not None and _starts_with_tag(head, wide[0] + order)


def _starts_with_tag(data: bytes, codec: str) -> bool:
    return data.decode(codec, "ignore").lstrip(" \t\r\n").startswith("<")


def xml_fault(data: bytes) -> str | None:
    """What is wrong with XML that did not parse, in words that lead to the export
    setting to change, when it is one of two faults an ERP's export makes in every
    file: bytes in another encoding than declared, or something written before the XML
    declaration. None for any other fault (the parser's own words stand)."""
    return misencoded(data) or misplaced_declaration(data)


# An XML declaration: "<?xml" then a blank ("<?xml-stylesheet" is another thing).
_DECLARATION = re.compile(rb"<\?xml[ \t\r\n]")


def misplaced_declaration(data: bytes) -> str | None:
    """The declaration must be the file's very first bytes (after a byte order mark);
    an export that writes a blank line before it ("XML or text declaration not at start
    of entity"), or a batch made by joining invoice files each with its own, is made so
    every time: the fix is the ERP's, not another export."""
    if wide_encoding(data) is not None:
        return None
    text = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    found = _DECLARATION.search(text, 1)  # on the error path only: one pass at most
    if found is None:
        return None
    before = text[:found.start()]
    line = before.count(b"\n") + 1
    fix = "then export the invoice again"
    # Joined files only where there are two declarations: a comment an export writes
    # before its one declaration was called "a second XML declaration".
    if _DECLARATION.match(text) or _DECLARATION.search(text, found.end()):
        return (f"is not well-formed XML: line {line} holds a second XML declaration "
                "(<?xml …?>), which only the very start of a file may have (a file made "
                "by joining invoice files keeps each one's) — have the ERP write one "
                f"declaration, at the start, {fix}")
    what = "blank lines or spaces come" if not before.strip(b" \t\r\n") else \
        "other text (a comment, a tag) comes"
    return (f"is not well-formed XML: its XML declaration (<?xml …?>) must be the very "
            f"first thing in the file, and {what} before it (it is on line {line}) "
            f"— have the ERP write nothing before the declaration, {fix}")


def encoding_refused(data: bytes, exc: Exception) -> str | None:
    """Why the parser refused the encoding the XML declaration names (`exc`), for the
    clerk's error file: one no codec knows, or one of several bytes a character, which
    expat does not read but for UTF-8 and UTF-16 (an ERP writing Shift_JIS), one whose
    letters are not ASCII's bytes (EBCDIC), or UTF-16 after a UTF-8 byte order mark. None
    for any other refusal (the parser's own words stand). Its words were "LookupError:
    unknown encoding: …", "ValueError: multi-byte encodings are not supported" and "not
    well-formed XML (unknown encoding …)": no rule a clerk could follow."""
    said = _ENCODING.match(data.lstrip(b"\xef\xbb\xbf \t\r\n")[:512])
    if said is None:
        return None
    name = said[1].decode("ascii", "backslashreplace")
    try:
        # A codec Python has that decodes no text byte by byte ("undefined", "idna",
        # "punycode") fails the parser with UnicodeError: no encoding for a file either.
        known = (isinstance(exc, ValueError) and not isinstance(exc, UnicodeError)
                 and codecs.lookup(name) is not None)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        known = False
    code = getattr(exc, "code", None)
    if code == _INCORRECT_ENCODING:
        if not data.startswith(b"\xef\xbb\xbf"):
            return None  # the parser's own words stand
        return (f'says encoding="{name}" in its XML declaration but starts with the byte '
                "order mark of UTF-8 — export the invoice as UTF-8, or have the ERP name "
                "the encoding it writes in the XML declaration")
    if code == _UNKNOWN_ENCODING:
        # expat reads a declared encoding of one byte a character only where its ASCII
        # letters are ASCII's bytes, as the declaration itself must be.
        why = ("which outboxd cannot read (an encoding whose letters are not ASCII's "
               "bytes, such as IBM's EBCDIC)")
    elif known and "multi-byte encodings" not in str(exc):
        return None
    else:
        why = ("which outboxd cannot read (of the encodings of several bytes a character "
               "it reads UTF-8 and UTF-16)") if known else "which is no encoding outboxd knows"
    return (f'its XML declaration names the encoding "{name}", {why} — export the invoice '
            "as UTF-8, or have the ERP name the encoding it writes in the XML declaration")


def misencoded(data: bytes) -> str | None:
    """Why XML that did not parse is in another encoding than it is read in, for the
    clerk's error file; None when its bytes are that encoding (the error is elsewhere).

    An ERP that writes Windows-1252 under encoding="UTF-8" (or UTF-8 under "US-ASCII")
    got the parser's "invalid token" at some line, and "export the invoice again" only
    made the same file again: the fix is in the export's encoding setting.
    """
    wide = wide_encoding(data)
    if wide is not None:
        order = "-be" if data.startswith((b"\xfe\xff", b"\x00")) else "-le"
        head = data[:512].decode(wide[0] + order, "ignore").lstrip("\ufeff \t\r\n")
        said = _ENCODING.match(head.encode("ascii", "ignore"))
        family = wide[0].replace("-", "").encode()  # b"utf16": "UTF-16LE", "utf_16" agree
        if said and not said[1].lower().replace(b"-", b"").replace(b"_", b"").startswith(
                family):
            return (f"says encoding=\"{said[1].decode()}\" in its XML declaration but is "
                    f"{wide[0].upper()} — export the invoice as UTF-8")
        return None
    bom = data.startswith(b"\xef\xbb\xbf")
    said = _ENCODING.match(data.lstrip(b"\xef\xbb\xbf \t\r\n")[:512])
    name = "UTF-8" if bom or not said else said[1].decode("ascii", "replace")
    try:
        data.decode(name)
        return None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
    except (LookupError, ValueError):
        # An encoding Python does not know, or cannot take by that name (a NUL in it:
        # "embedded null character"; "undefined", which refuses every byte): the
        # parser's own words stand.
        return None
    try:
        data.decode("utf-8")
        other = "UTF-8"
    except UnicodeDecodeError:
        other = "Windows-1252 (\"ANSI\")"
    how = ("as its byte order mark says" if bom else "as its XML declaration says"
           if said else "as XML without an encoding in its declaration must be")
    return (f"is not {name} text, {how}: line {line} holds the byte 0x{byte:02x}, so it "
            f"was saved in another encoding, such as {other} — export the invoice as "
            "UTF-8, or have the ERP name the encoding it writes in the XML declaration")


def parse_defused(data: bytes, rel: str) -> Element:
    """defusedxml's parse, its refusals and errors mapped to ours."""
    try:
        return _parse_xml(data)
    except _PARSE_FAULTS as exc:
        raise refused(data, rel, exc) from None


# What the defusedxml parse raises for a document it does not take.
_PARSE_FAULTS = (_TooDeep, DefusedXmlException, ParseError, LookupError, ValueError,
                 RecursionError)


def refused(data: bytes, rel: str, exc: Exception) -> InputError:
    """The error for `data`, which the defusedxml parse refused with `exc`: the rule and
    the fix in the clerk's words, the same whether the whole file was parsed or only as
    far as its first element (root_tag)."""
    if isinstance(exc, _TooDeep):
        return InputError("invalid-xml", rel, NESTED_TOO_DEEP)
    if isinstance(exc, DefusedXmlException):
        # Not defusedxml's class name (DTDForbidden...): it means nothing to a clerk, and
        # our parser refuses an internal subset as a DTD before its entities are seen.
        return HostileInput("hostile-xml", rel, "the XML declares entities or a DTD; "
                            "outboxd never expands or fetches them — export the invoice "
                            "without a DTD")
    if isinstance(exc, ParseError):
        if exc.code in _ENDS_EARLY or data.endswith(_ZERO_TAIL):
            # Told apart: a copy still at work explains it (cutshort.py), so the bundle
            # is looked at once more before it is quarantined.
            return InputError("invalid-xml", rel, f"{XML_CUT_SHORT} ({exc}), as a copy "
                              "stopped before its end leaves it — copy or export the "
                              "invoice again")
        declared = encoding_refused(data, exc) if exc.code in _REFUSED_ENCODING else None
        return InputError("invalid-xml", rel, xml_fault(data) or declared
                          or f"is not well-formed XML ({exc}) — export the invoice again")
    # An encoding the parser does not read, or nesting deep enough to exhaust the stack.
    return InputError("invalid-xml", rel, encoding_refused(data, exc) or
                      f"cannot be read as XML ({type(exc).__name__}: {str(exc)[:200]}) "
                      "— export the invoice again as UTF-8")
