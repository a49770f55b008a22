"""The text a clerk typed into a page's form fields or onto it, searched for invoice ids
after the page's content text (pdftext.TextBudget.text_of reads a page's text, this its
fields).

pypdf's extract_text reads a page's content alone, never its annotations: a filled
invoice template (an AcroForm from Acrobat or LibreOffice, the number typed into a
field) shows its number through a widget annotation, and a file of INV-1 in page 1's
text and INV-2 in a field on page 2 went out as INV-1 alone, without a word.

What is read is each field's value (/V), not the text of its appearance stream (/AP /N),
the picture of the value a viewer draws:
- the value is what was typed, and what a viewer shows: one that finds no appearance,
  or a file that says its appearances are to be made again (/NeedAppearances, as
  pypdf and many form fillers write it), draws the field from its value; a filler that
  does not make appearances at all leaves a value and no picture of it;
- an appearance is a form of its own to parse, in a font of its own (a comb field's
  one glyph at a time, a subset font without a character map): its text is the text
  of a content stream, with all of a content stream's costs and damage, where the
  value is a string;
- where the two differ (a number field whose script shows "1,234.00" for "1234"),
  the value is the field's data, which a form's export and any reader of it takes.
Read are the values of text fields (/FT /Tx) and choice fields (/Ch: the text shown
for the option chosen), each inherited up the field's /Parent chain as PDF inherits
them; not those of buttons (a check box's value is a name, no text), of password
fields (shown as dots), nor of widgets neither shown nor printed (/F Hidden, or NoView
without Print). Each value is a line of its own, in the order of the page's /Annots,
then again after the label the page prints to its left, if any (pdflabels.py).

Text typed onto a flat PDF (Acrobat's Fill & Sign, its typewriter tool) is no field's:
it is a FreeText annotation, its text in /Contents, and a clerk who typed the number
onto the page that way lost it. A FreeText shown or printed (the widgets' flags rule) is
read as a widget is, its /Contents a line in the same order, counted alike; its rich
text (/RC) is not read (_typed_text says why).

Bounded as a page's content is: each annotation (all of a page's counted before the
first is read) and each step up a /Parent chain is one operation and one word of
TextBudget's, and one of its form objects, which have a limit of their own (pypdf parses
each from the file, ~90 µs: a page of 100,000 widgets took 9 s); each value's characters
are its bytes; a chain that comes back to a field already met ends there. A widget whose
field's value names an object that is not in the file (its /V, or its /Parent with no
/V before it), or a FreeText whose /Contents does, makes the page one not read
(pdfdamage.py), as text in a lost font does; an /Annots entry that is not in the file
does not (most annotations are links and notes, and which one was lost cannot be told).
"""

from __future__ import annotations

from typing import Any, Protocol

from daemon.reading.pdfdamage import Ledger, names_no_object
from daemon.reading.pdflabels import Counter as LabelCounter
from daemon.reading.pdflabels import Labels

# Annotation flags (/F) and a text field's flag (/Ff): PDF 32000-1, 12.5.3, 12.7.4.3.
_HIDDEN, _PRINT, _NO_VIEW = 1 << 1, 1 << 2, 1 << 5
_PASSWORD = 1 << 13
# The entries a widget takes from the fields above it, when it has none of its own.
_INHERITED = ("/FT", "/V", "/Ff", "/Opt")


class Counter(LabelCounter, Protocol):
    """What counts the objects read (pdftext.TextBudget)."""

    ledger: Ledger

    def take_field(self, objects: int, size: int) -> None: ...

    def lose(self, why: str) -> None: ...


def field_text(page: Any, budget: Counter, labels: Labels | None = None) -> str:
    """The values of the form fields `page` shows, and the text typed onto it, a line
    each ("" for none)."""
    from pypdf.generic import ArrayObject
    try:
        annots = page.get("/Annots")
        annots = annots.get_object() if annots is not None else None
    except Exception as exc:  # noqa: BLE001 — damaged: no annotation a viewer would show
        _past_a_limit(exc)
        return ""
    if not isinstance(annots, ArrayObject):
        return ""
    budget.take_field(len(annots), 0)  # all at once: a page of too many, before any
    found: list[str] = []
    for ref in annots:
        try:
            annot = ref.get_object()
        except Exception as exc:  # noqa: BLE001 — an entry that is no object: the doc
            _past_a_limit(exc)
            continue
        if (text := _annotation_text(annot, budget)) is not None:
            if labels is not None:
                text = labels.before(annot, text, budget)
            budget.take_field(0, len(text))
            found.append(text)
    return "\n".join(found)


def _past_a_limit(exc: Exception) -> None:
    """Raise `exc` again where pypdf stopped at a limit of its own (an array or a
    dictionary of over 100,000 entries, unpacking): the file is refused, as for a page's
    content past it, not read as if the annotations were not there."""
    from daemon.validation.pdfprobe import parse_limit_error, unpack_limit_error
    if parse_limit_error(exc) is not None or unpack_limit_error(exc) is not None:
        raise exc


def _annotation_text(annot: Any, budget: Counter) -> str | None:
    """The text the annotation `annot` shows, if shown or printed: a widget's field
    value, or the text typed onto the page (FreeText); None for any other."""
    from pypdf.generic import DictionaryObject
    if not isinstance(annot, DictionaryObject):
        return None
    subtype = _resolved(annot, "/Subtype")
    if subtype not in ("/Widget", "/FreeText"):
        return None
    flags = _number(_resolved(annot, "/F"))
    if flags & _HIDDEN or flags & _NO_VIEW and not flags & _PRINT:
        return None
    return _widget_text(annot, budget) if subtype == "/Widget" else _typed_text(annot, budget)


def _typed_text(annot: Any, budget: Counter) -> str | None:
    """The plain text of a FreeText annotation (/Contents). Its rich text (/RC, XHTML)
    is not read: PDF makes /Contents the text shown and /RC its styled form, and every
    writer of /RC seen (Acrobat's Fill & Sign, its typewriter) writes /Contents beside
    it; parsing XHTML would be a second parser over hostile input for no more text."""
    if "/Contents" not in annot:
        return None
    contents = dict.__getitem__(annot, "/Contents")
    if names_no_object(contents):
        budget.lose("the text typed onto it is not in the file")
        return None
    return _text(contents, budget)


def _widget_text(annot: Any, budget: Counter) -> str | None:
    """The text the widget annotation `annot` (shown or printed) shows of its field's
    value, or None."""
    entries = _inherited(annot, budget)
    if entries is None:
        return None
    kind, value = _resolved(entries, "/FT"), entries.get("/V")
    if kind == "/Tx" and not _number(_resolved(entries, "/Ff")) & _PASSWORD:
        return _text(value, budget)
    if kind == "/Ch":
        return _chosen(value, entries.get("/Opt"), budget)
    return None


def _resolved(entries: Any, key: str) -> Any:
    """The entry `key` of `entries` (a dictionary), a reference followed (pypdf's get
    does not follow one: a hidden widget's flags written as an object of their own
    were read as none)."""
    value = entries.get(key)
    return value.get_object() if value is not None else None


def _number(value: Any) -> int:
    """Flags as a number: none, or not a whole number, none set."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _inherited(annot: Any, budget: Counter) -> dict[str, Any] | None:
    """The entries of _INHERITED the widget `annot` has, its own or its fields' up the
    /Parent chain (the nearest first), as written; None when the value is lost (the
    page is then one not read: budget.lose)."""
    from pypdf.generic import DictionaryObject
    found: dict[str, Any] = {}
    met: list[Any] = []  # kept, so that an id() is not reused while the chain is walked
    ids: set[int] = set()
    node: Any = annot
    while isinstance(node, DictionaryObject) and id(node) not in ids:
        met.append(node)
        ids.add(id(node))
        for key in _INHERITED:
            if key not in found and key in node:
                found[key] = dict.__getitem__(node, key)  # as written: a reference is kept
        if "/Parent" not in node or len(found) == len(_INHERITED):
            break
        parent = dict.__getitem__(node, "/Parent")
        if names_no_object(parent):
            if "/V" not in found:
                budget.lose("a form field it shows is not in the file")
                return None
            break
        budget.take_field(1, 0)
        node = parent.get_object()
    if "/V" in found and names_no_object(found["/V"]):
        budget.lose("the value of a form field it shows is not in the file")
        return None
    return found


def _text(value: Any, budget: Counter) -> str | None:
    """A text field's value as text: a string, or a stream of one (PDF allows either)."""
    from pypdf.generic import NameObject, StreamObject, create_string_object
    value = value.get_object() if value is not None else None
    if isinstance(value, StreamObject):
        try:
            data = value.get_data()
        except Exception as exc:  # noqa: BLE001 — pypdf's words are of no use to a clerk
            from daemon.validation.pdfprobe import unpack_limit_error
            if unpack_limit_error(exc) is not None:
                raise  # past pypdf's limit: the file is refused, as for a page's content
            budget.lose("the value of a form field it shows cannot be unpacked")
            return None
        budget.take_field(0, len(data))
        # pypdf gives b"" for Flate it cannot unpack, without a word: looked at again, as
        # a page's content is, so a number lost there makes the page one not read.
        budget.ledger.check(value, "the compressed value of a form field it shows")
        value = create_string_object(data)
    if isinstance(value, bytes):  # pypdf's for a string it cannot decode as text
        value = value.decode("latin-1")
    return value if isinstance(value, str) and not isinstance(value, NameObject) and value \
        else None


def _chosen(value: Any, options: Any, budget: Counter) -> str | None:
    """A choice field's value as shown: the text of each option chosen (an option of
    /Opt may be a pair, the value exported and the text shown)."""
    from pypdf.generic import ArrayObject
    value = value.get_object() if value is not None else None
    chosen = [v for v in value if isinstance(v, str)] if isinstance(value, ArrayObject) \
        else [value] if isinstance(value, str) else []
    if not chosen:
        return None
    options = options.get_object() if options is not None else None
    shown: dict[str, str] = {}
    if isinstance(options, ArrayObject):
        budget.take_field(len(options), 0)
        for option in options:
            option = option.get_object()
            if isinstance(option, ArrayObject) and len(option) == 2 and \
                    all(isinstance(part, str) for part in option):
                shown.setdefault(str(option[0]), str(option[1]))
    return "\n".join(shown.get(str(v), str(v)) for v in chosen)
