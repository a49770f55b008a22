"""Text shown in a font pypdf does not have, which it reads past without a word (the
third kind of damage pdfdamage.py's docstring lists): the font a page's or a form's
"Tf" selects, followed by pdftext.TextBudget's visitor, looked up here as pypdf's text
extraction looks it up — lost where pypdf would read no text, or a "\ufffd" or a control
character for each character; and the font's character map, which pypdf reads its text
through, handed to the file's ledger (pdfdamage.Ledger) to be unpacked again."""

from __future__ import annotations

from typing import Any

from daemon.reading.pdfdamage import names_no_object

# The encodings of a composite font whose codes are glyph numbers, not characters.
_IDENTITY = ("/Identity-H", "/Identity-V")

# The operators that show text, as pypdf's text extraction reads them.
SHOWS_TEXT = frozenset((b"Tj", b"TJ", b"'", b'"'))


def font_damage(resources: Any, operands: Any, whose: str) -> str | None:
    """Why the font a "Tf" of `operands` selects from `resources` (a page's or a form's,
    a dictionary) is none pypdf reads text in, or None. `whose`: what shows the text, in
    the words said ("it", "a form it draws")."""
    from pypdf.generic import DictionaryObject
    name = operands[0] if isinstance(operands, list) and operands else None
    font = f"the font {name[:40]}" if isinstance(name, str) and name else "a font"
    try:
        fonts = resources.get("/Font")
        if names_no_object(fonts):
            return f"the fonts {whose} shows text in are not in the file"
        fonts = fonts.get_object() if fonts is not None else None
        if not isinstance(fonts, DictionaryObject) or not isinstance(name, str) \
                or name not in fonts:
            return f"{font} {whose} shows text in is not among its fonts"
        entry = dict.__getitem__(fonts, name)  # as written: a reference is kept
        if names_no_object(entry):
            return f"{font} {whose} shows text in is not in the file"
        if not isinstance(entry.get_object(), DictionaryObject):
            return f"{font} {whose} shows text in is not a font"
        if (part := _lost_part(entry.get_object())) is not None:
            return f"{part} of {font} {whose} shows text in is not in the file"
        if not _pypdf_reads(entry.get_object()):
            return f"{font} {whose} shows text in cannot be read"
        if _glyph_numbers(entry.get_object()):
            return f"{font} {whose} shows text in has no character map"
    except Exception:  # noqa: BLE001 — damaged past this: pypdf raises on it itself
        return None
    return None


def _pypdf_reads(font: Any) -> bool:
    """Whether pypdf's text extraction makes a font of the font dictionary `font`: it
    drops one on which it meets an AttributeError or a TypeError (a part elsewhere than
    _lost_part looks, its descriptor, a Type1 font file, a descendant's widths, naming
    no object), and reads "\ufffd" for each character without a word. Asked of pypdf
    itself, as its text extraction asks it (pypdf's own module: none other says it)."""
    try:
        from pypdf.generic._font import Font
    except ImportError:  # a pypdf that keeps it elsewhere: not asked
        return True
    try:
        Font.from_font_resource(font)
    except (AttributeError, TypeError):
        return False
    except Exception:  # noqa: BLE001 — pypdf raises it from the page too, which is said
        return True
    return True


def _glyph_numbers(font: Any) -> bool:
    """Whether the font dictionary `font` is a composite font of glyph numbers
    (Identity-H or -V, its CIDs the glyphs' own numbers: no /CIDToGIDMap stream from
    CIDs to glyphs) without a character map stream (none, null, a name): pypdf reads
    each character as the control character or letter of its glyph's number, without
    a word (a writer whose CIDs are the characters' own codes maps them to glyphs by a
    /CIDToGIDMap stream, and pypdf reads its text right)."""
    from pypdf.generic import ArrayObject, StreamObject

    def resolved(value: Any) -> Any:
        return value.get_object() if value is not None else None
    if font.get("/Subtype") != "/Type0" or font.get("/Encoding") not in _IDENTITY or \
            isinstance(resolved(font.get("/ToUnicode")), StreamObject):
        return False
    descendants = resolved(font.get("/DescendantFonts"))
    if not isinstance(descendants, ArrayObject) or not descendants:
        return False  # no glyphs at all: pypdf's own error, said for the page
    return not isinstance(resolved(resolved(descendants[0]).get("/CIDToGIDMap")), StreamObject)


def _lost_part(font: Any) -> str | None:
    """The part of the font dictionary `font` that names no object of the file, where
    pypdf then drops the whole font and reads "\ufffd" for each character without a word
    (tried one by one: its /Encoding or the encoding's /Differences, its /Widths or one
    width, its descriptor's /FontFile2, a Type0's /DescendantFonts, and the /ToUnicode
    of a Type0 of glyph numbers, Identity-H or -V, which pypdf reads as control
    characters without it); None if none is. Another font's lost /ToUnicode (pypdf reads
    its encoding), /FontBBox and the like change nothing pypdf reads: not looked at."""
    from pypdf.generic import ArrayObject, DictionaryObject

    def written(d: Any, key: str) -> Any:
        return dict.__getitem__(d, key) if isinstance(d, DictionaryObject) and key in d \
            else None  # as written: a reference is kept

    for key, said in (("/Encoding", "the encoding"), ("/Widths", "the widths"),
                      ("/DescendantFonts", "the descendant font")):
        if names_no_object(written(font, key)):
            return said
    if names_no_object(written(font, "/ToUnicode")) and font.get("/Subtype") == "/Type0" \
            and font.get("/Encoding") in _IDENTITY:
        return "the character map"  # of glyph numbers: no text without it
    encoding = font.get("/Encoding")
    if names_no_object(written(encoding.get_object() if encoding is not None else None,
                               "/Differences")):
        return "the encoding's differences"
    widths = font.get("/Widths")
    widths = widths.get_object() if widths is not None else None
    if isinstance(widths, ArrayObject) and any(
            names_no_object(width) for width in list.__iter__(widths)):
        return "a width"
    descriptor = font.get("/FontDescriptor")
    if names_no_object(written(descriptor.get_object() if descriptor is not None else None,
                               "/FontFile2")):
        return "the embedded font file"
    return None


def shows_text(contents: Any) -> bool:
    """Whether the content `contents` (pypdf's ContentStream) shows text."""
    data = contents.get_data()
    if not any(operator in data for operator in SHOWS_TEXT):
        return False  # at C speed: the content of most such pages is never parsed
    return any(operator in SHOWS_TEXT for _, operator in contents.operations)


def font_map(resources: Any, operands: Any, whose: str) -> tuple[Any, str] | None:
    """The character map (/ToUnicode stream) of the font a "Tf" of `operands` selects
    from `resources`, which pypdf reads the font's text through, and what it is in a
    reason (Ledger.check unpacks it, as a page's content); None: none, or no stream."""
    from pypdf.generic import StreamObject
    name = operands[0] if isinstance(operands, list) and operands else None
    try:
        cmap = resources["/Font"][name].get_object().get("/ToUnicode")
        cmap = cmap.get_object() if cmap is not None else None
    except Exception:  # noqa: BLE001 — no such font: font_damage says so
        return None
    if not isinstance(cmap, StreamObject) or not isinstance(name, str):
        return None
    return cmap, f"the compressed character map of the font {name[:40]} {whose} shows text in"


def fontless_damage(page: Any, contents: Any, whose: str = "it") -> str | None:
    """Why the text `page` shows is lost, on a page without resources (none, none of
    the file's objects, or no dictionary): pypdf reads no text there, nor parses its
    content. None when its content (`contents`, pypdf's) shows none: a page of lines
    or images needs no font, and loses nothing. `whose`: a form a page draws, in the
    words said ("a form it draws"), which pypdf reads as it reads a page."""
    if not shows_text(contents):
        return None
    if names_no_object(page.get("/Resources")):  # its own, or what _inherit put there
        return "its resources are not in the file" if whose == "it" else \
            f"the resources of {whose} are not in the file"
    return f"{whose} shows text but has no fonts"
