"""The mutations of bench/fuzz.py: each is a function (data, rng, other) -> bytes, where
`other` is another seed (of any kind) to splice from. A case applies one to three of
them, drawn from its own random generator, so that it is reproduced by its number.

Generic: byte flips, bytes set to edge values, truncation, a chunk removed, duplicated
or replaced by random bytes, a splice of two seeds, an ASCII integer edited (a PDF's
/Length, /Size, /Count, xref offsets and startxref, an XML's digits), a binary integer
edited at a random place. Format-aware: a PDF stream replaced by one token repeated
millions of times (Flate keeps the file small), a TIFF's IFD entries (tag, type, count, value
or offset; the next-IFD offset), a PNG chunk's length or IHDR width/height, and for XML
entity and DOCTYPE declarations, deep nesting, huge attributes and text, wrong
namespaces, byte-order marks and declared encodings that lie, NULs, invalid UTF-8,
invoice ids removed, doubled, made long or given control characters.
"""

from __future__ import annotations

import random
import re
import struct
import zlib
from collections.abc import Callable

Mutation = Callable[[bytes, random.Random, bytes], bytes]

# Integers at the edges parsers get wrong.
EDGES = (0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
         0x80000000, 0xFFFFFFFF)


def _at(data: bytes, rng: random.Random) -> int:
    return rng.randrange(len(data)) if data else 0


def flip(data: bytes, rng: random.Random, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[_at(data, rng)] ^= 1 << rng.randrange(8)
    return bytes(out)


def edge_byte(data: bytes, rng: random.Random, other: bytes) -> bytes:
    out = bytearray(data)
    if out:
        out[_at(data, rng)] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x20, 0x0A))
    return bytes(out)


def truncate(data: bytes, rng: random.Random, other: bytes) -> bytes:
    return data[:_at(data, rng)]


def cut_tail(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """A few bytes off the end, where the structures that tie a file together lie."""
    return data[:max(0, len(data) - rng.randint(1, 64))]


def remove_chunk(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _at(data, rng)
    return data[:at] + data[at + rng.randint(1, max(1, len(data) // 8)):]


def duplicate_chunk(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _at(data, rng)
    chunk = data[at:at + rng.randint(1, max(1, len(data) // 4))]
    where = _at(data, rng)
    return data[:where] + chunk * rng.choice((1, 2, 50)) + data[where:]


def random_bytes(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _at(data, rng)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return data[:at] + junk + data[at + rng.randint(0, 32):]


def splice(data: bytes, rng: random.Random, other: bytes) -> bytes:
    return data[:_at(data, rng)] + other[_at(other, rng):]


_DIGITS = re.compile(rb"-?\d{1,18}(?!\d)")


def ascii_integer(data: bytes, rng: random.Random, other: bytes) -> bytes:
    found = list(_DIGITS.finditer(data[:1 << 20]))
    if not found:
        return flip(data, rng, other)
    m = rng.choice(found)
    value = int(m[0])
    new = rng.choice((0, -1, 1, value + 1, value - 1, value * 1000, 2 ** 31 - 1, 2 ** 32,
                      2 ** 63, 10 ** 30, rng.choice(EDGES)))
    return data[:m.start()] + str(new).encode() + data[m.end():]


def binary_integer(data: bytes, rng: random.Random, other: bytes) -> bytes:
    if len(data) < 4:
        return data + data
    width, order = rng.choice((2, 4)), rng.choice(("<", ">"))
    at = rng.randrange(len(data) - width + 1)
    value = rng.choice(EDGES) & ((1 << (8 * width)) - 1)
    return data[:at] + value.to_bytes(width, "little" if order == "<" else "big") + \
        data[at + width:]


# --------------------------------------------------------------------- TIFF / PNG


def tiff_entry(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """One field of one entry of the first IFD (tag, type, count, value/offset), or the
    next-IFD offset, set to an edge value."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return binary_integer(data, rng, other)
    e = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(e + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return binary_integer(data, rng, other)
    count = struct.unpack(e + "H", data[ifd:ifd + 2])[0]
    out = bytearray(data)
    entry = rng.randrange(count + 1)
    if entry == count:  # the next IFD's offset
        at = ifd + 2 + 12 * count
        if at + 4 <= len(out):
            out[at:at + 4] = struct.pack(e + "I", rng.choice((0, ifd, 8, 0xFFFFFFFF,
                                                              len(data) - 2)))
        return bytes(out)
    at = ifd + 2 + 12 * entry
    if at + 12 > len(out):
        return bytes(out)
    field = rng.choice(("tag", "type", "count", "value"))
    if field == "tag":
        out[at:at + 2] = struct.pack(e + "H", rng.choice((256, 257, 258, 259, 262, 273, 277,
                                                          278, 279, 282, 283, 296, 317,
                                                          322, 323, 324, 325, 330, 338,
                                                          34665, 700, 0xFFFF)))
    elif field == "type":
        out[at + 2:at + 4] = struct.pack(e + "H", rng.choice((0, 1, 2, 3, 4, 5, 7, 10, 11,
                                                              12, 13, 16, 17, 18, 99)))
    elif field == "count":
        out[at + 4:at + 8] = struct.pack(e + "I", rng.choice(EDGES))
    else:
        out[at + 8:at + 12] = struct.pack(e + "I", rng.choice(EDGES + (len(data),)))
    return bytes(out)


def png_chunk(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """IHDR's width, height, depth or colour type, or a chunk's length, set to an edge."""
    if not data.startswith(b"\x89PNG") or len(data) < 33:
        return binary_integer(data, rng, other)
    out = bytearray(data)
    choice = rng.randrange(4)
    if choice < 2:  # width, height
        at = 16 + 4 * choice
        out[at:at + 4] = struct.pack(">I", rng.choice(EDGES + (100_000,)))
    elif choice == 2:  # bit depth and colour type
        out[24], out[25] = rng.choice((1, 2, 4, 8, 16, 3, 0)), rng.choice((0, 2, 3, 4, 6, 7))
    else:
        starts = [m.start() - 4 for m in re.finditer(rb"(IDAT|acTL|fcTL|pHYs|IEND|fdAT)",
                                                     data)]
        if starts:
            at = rng.choice(starts)
            out[at:at + 4] = struct.pack(">I", rng.choice(EDGES))
    return bytes(out)


_PDF_STREAM = re.compile(rb"<< /Length (\d+)([^>]*)>>\nstream\n")
# Tokens pypdf's content parser reads in Python, each cheap to write many times.
_CONTENT_TOKENS = (b"/", b"/a", b"(a", b"<41", b"<<", b"[", b"0 ", b"q ", b"/Fm0 Do ",
                   b"BT (x) Tj ET ", b"\x80", b"%c\n")


def pdf_content(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """A stream (a page's content, a form, an object stream) replaced by one token
    repeated up to millions of times, Flate-compressed to a few KB: the hostile content
    a byte flip never writes. Offsets move; pypdf (non-strict) finds the objects again."""
    found = list(_PDF_STREAM.finditer(data))
    if not found:
        return ascii_integer(data, rng, other)
    body = zlib.compress(rng.choice(_CONTENT_TOKENS) * rng.choice((1_000, 300_000, 3_000_000)))
    head = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body)
    # One stream, or every one (each page of a many-page seed: what a limit per page
    # lets through, a file of such pages may not).
    for m in reversed(found) if rng.random() < 0.3 else [rng.choice(found)]:
        data = data[:m.start()] + head + body + data[m.end() + int(m[1]):]
    return data


# --------------------------------------------------------------------------- XML

_DECL = re.compile(rb"^(\xef\xbb\xbf)?<\?xml[^>]*\?>")


def _after_decl(data: bytes) -> int:
    m = _DECL.match(data)
    return m.end() if m else 0


def _insert_prolog(data: bytes, text: bytes) -> bytes:
    at = _after_decl(data)
    return data[:at] + text + data[at:]


_DOCTYPES = (
    b'<!DOCTYPE Invoice [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    b'<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:9/x.dtd">',
    b'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    b'<!DOCTYPE Invoice [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]>',
    b"<!DOCTYPE Invoice>",
    b"<!DOCTYPE Invoice PUBLIC \"-//x//y\" \"\">",
    b"<!DOCTYPE Invoice [<!ELEMENT Invoice ANY>]>",
    b"<!DOCTYPE Invoice [<!ATTLIST Invoice a CDATA \"d\">]>",
)


def doctype(data: bytes, rng: random.Random, other: bytes) -> bytes:
    out = _insert_prolog(data, b"\n" + rng.choice(_DOCTYPES) + b"\n")
    if rng.random() < 0.5:  # and a reference to an entity in the text
        out = out.replace(b"</cbc:Note>", b"&b;&xxe;</cbc:Note>", 1)
    return out


def _tag_point(data: bytes, rng: random.Random) -> int:
    """Just after a start tag's '>' (a place where content may go), or the end."""
    ends = [m.end() for m in re.finditer(rb"<[A-Za-z][^<>]*>", data[:1 << 20])]
    return rng.choice(ends) if ends else len(data)


def deep_nesting(data: bytes, rng: random.Random, other: bytes) -> bytes:
    depth = rng.choice((300, 3000, 50_000, 300_000))
    at = _tag_point(data, rng)
    return data[:at] + b"<a>" * depth + b"</a>" * depth + data[at:]


def huge_attribute(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _tag_point(data, rng)
    size = rng.choice((10_000, 1_000_000, 8_000_000))
    return data[:at - 1] + b' x="' + b"A" * size + b'"' + data[at - 1:]


def huge_text(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _tag_point(data, rng)
    return data[:at] + rng.choice((b"x", b"\xc3\xa9", b"&amp;", b" ")) * \
        rng.choice((100_000, 5_000_000)) + data[at:]


def many_attributes(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _tag_point(data, rng)
    attrs = b"".join(b' a%d="1"' % i for i in range(rng.choice((100, 50_000))))
    return data[:at - 1] + attrs + data[at - 1:]


_NAMESPACES = (b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
               b"urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
               b"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
               b"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2")


def namespace(data: bytes, rng: random.Random, other: bytes) -> bytes:
    which = rng.choice(_NAMESPACES)
    to = rng.choice((b"urn:wrong", b"", which.replace(b"Invoice", b"CreditNote"),
                     which + b" ", b"urn:oasis:names:specification:ubl:schema:xsd:Order-2",
                     b"urn:sfti:documents:BasicInvoice:1:0"))
    return data.replace(which, to, rng.choice((1, -1)))


def bom_and_encoding(data: bytes, rng: random.Random, other: bytes) -> bytes:
    boms = (b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00",
            b"\x00\x00\xfe\xff")
    names = (b"UTF-8", b"UTF-16", b"UTF-16LE", b"UTF-32", b"ISO-8859-1", b"windows-1252",
             b"US-ASCII", b"UTF-7", b"EBCDIC-CP-US", b"cp037", b"nonsense", b"", b"shift_jis",
             b"utf-8\x00")
    out = re.sub(rb'encoding="[^"]*"', b'encoding="' + rng.choice(names) + b'"', data, count=1)
    if rng.random() < 0.2:
        out = out.decode("utf-8", "replace").encode(rng.choice(("utf-16-le", "utf-16-be",
                                                                "utf-32-le", "latin-1")),
                                                      "replace")
    return rng.choice(boms) + out.lstrip(b"\xef\xbb\xbf")


def nul_or_invalid(data: bytes, rng: random.Random, other: bytes) -> bytes:
    at = _at(data, rng)
    bad = rng.choice((b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                      b"\xc0\xaf", b"\x0b", b"\x1b", b"&#0;", b"&#xFFFE;", b"\x00\x00\x00\x00"))
    return data[:at] + bad + data[at:]


_ID = re.compile(rb"<cbc:ID>([^<]*)</cbc:ID>")


def invoice_id(data: bytes, rng: random.Random, other: bytes) -> bytes:
    m = _ID.search(data)
    if m is None:
        return nul_or_invalid(data, rng, other)
    new = rng.choice((b"", b" ", b"\t\n", b"X" * 300, b"INV\x85-1", b"a/b\\c:d*e?f",
                      b"CON", b"INV-7.", b"&#x1;", b"\xe2\x80\xa8", b"\xef\xbf\xbe",
                      b"<![CDATA[INV-9]]>", b"INV<!--c-->-9", b"..", b"."))
    if rng.random() < 0.2:  # removed
        return data[:m.start()] + data[m.end():]
    if rng.random() < 0.2:  # a second invoice of the same id in a wrapper
        body = data[_after_decl(data):]
        return data[:_after_decl(data)] + b"<W>" + body + body + b"</W>"
    return data[:m.start(1)] + new + data[m.end(1):]


def markup(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """Comments, PIs, CDATA and stray markup where they are allowed and where not."""
    bits = (b"<!-- c -->", b"<?pi x?>", b"<![CDATA[x]]>", b"<?xml version=\"1.0\"?>", b"<",
            b"]]>", b"</x>", b"<x/>", b"<!---->", b"<!-- -- -->", b"&lt;", b"&unknown;")
    where = rng.choice((0, _at(data, rng), len(data)))
    return data[:where] + rng.choice(bits) + data[where:]


def toml_value(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """A line of attachments.toml added: values nested deep, numbers of thousands of
    digits, long strings, keys twice, unquoted names with dots, odd escapes."""
    depth = rng.choice((10, 1000, 100_000))
    line = rng.choice((
        b"x = " + b"[" * depth + b"]" * depth, b"x = " + b"{a=" * depth + b"1" + b"}" * depth,
        b"x = " + b"9" * rng.choice((4300, 4301, 100_000)), b"x = 1e" + b"9" * 5000,
        b'note = "' + b"a" * rng.choice((2000, 2001, 1_100_000)) + b'"',
        b'[files."ok.pdf"]\ntype = "A"', b"[files.ok.pdf]\ntype = \"A\"",
        b'channel = "fax"', b'[files."ok.pdf"]\ntpye = "A"', b'x = "\\uD800"',
        b'x = "\\U0010FFFF\\u0000"', b"x = 1979-05-27T07:32:00Z", b"x = nan", b"x = inf",
        b"[[files]]", b"files = 1", b'[files."ok.pdf"]\ntype = 1', b"\x00", b"\xef\xbb\xbf",
        b'x = """' + b"\\\n" * 1000 + b'"""'))
    where = rng.choice((0, len(data)))
    return data[:where] + b"\n" + line + b"\n" + data[where:]


GENERIC: tuple[Mutation, ...] = (flip, edge_byte, truncate, cut_tail, remove_chunk,
                                 duplicate_chunk, random_bytes, splice, ascii_integer,
                                 binary_integer)
XML: tuple[Mutation, ...] = (doctype, deep_nesting, huge_attribute, huge_text, many_attributes,
                             namespace, bom_and_encoding, nul_or_invalid, invoice_id, markup)
BY_KIND: dict[str, tuple[Mutation, ...]] = {
    "pdf": GENERIC + (ascii_integer,) * 3,  # PDFs are held together by ASCII numbers
    "pdfinvoice": GENERIC + (ascii_integer,) * 3 + (pdf_content,) * 3,
    "tiff": GENERIC + (tiff_entry,) * 4,
    "png": GENERIC + (png_chunk,) * 2,
    "xml": GENERIC + XML * 2,
    "toml": GENERIC + (toml_value,) * 6,
}


def png_crcs(data: bytes) -> bytes:
    """Every chunk's CRC made right again, as far as the chunk lengths lead: a PNG whose
    CRC is wrong is refused before anything else of it is looked at (its pixels are only
    decoded when it is converted), so most mutated PNGs get this."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out, at = bytearray(data), 8
    while at + 12 <= len(out):
        length = struct.unpack(">I", out[at:at + 4])[0]
        end = at + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(out[at + 4:end]))
        at = end + 4
    return bytes(out)


def mutate(kind: str, data: bytes, rng: random.Random, other: bytes) -> tuple[bytes, list[str]]:
    """`data` mutated one to three times; the names of the mutations applied."""
    choices = BY_KIND.get(kind, GENERIC)
    names: list[str] = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        how = rng.choice(choices)
        data = how(data, rng, other)
        names.append(how.__name__)
    if kind == "png" and rng.random() < 0.7:
        data = png_crcs(data)
        names.append("png_crcs")
    return data, names
