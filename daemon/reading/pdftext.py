"""What the search of a PDF invoice file's text reads, counted against limits, so that a
hostile file of a few KB is refused (invoice-too-large) in seconds rather than holding a
reader to its time limit (invoices.py walks the pages, TextBudget.text_of reads one;
pypdf parses).

pypdf parses page content in Python, twice per page (the operators, then the text): a
10 KB file whose Flate decodes to megabytes of text operators, or whose pages draw one
large form again and again, held a read (and `outboxd check`) for minutes. A dense page
of invoice lines (120 rows of 6 cells, each its own text run, and rules) holds about
14,000 words, 4,400 operations and 45 KB and is searched in ~35 ms: the limits let some
200 such pages through (a long itemised invoice), and bound a hostile file to ~10-20 s.

Everything is counted before pypdf parses it, in the decoded bytes (at C speed), each
stream pypdf parses on its own: a page's content, and a form at each draw (a page of a
few bytes drawing a form of megabytes of names five times took 15 s).

Words bound the objects pypdf makes: one is counted at each blank (the six bytes PDF
takes for one) and at each byte that starts or ends a name, string, array or dictionary
("/a/a" is two, "(a)(a)" four), at least one for every two objects of the content. One
page's objects are all held at once (pypdf's list of its operations): a page of
3,000,000 names held a reader 300 MB higher for 6 s, and pypdf's own limit (2,000,000
objects a stream, an error the stem stood in for) let a page of "(a)q" take 340 MB for
7 s. A page is refused past 500,000 words (at most ~90 MB and ~2 s: "(a)q" +87 MB, names
+75 MB), well above real pages: a dense invoice page 14,400, a drawn table of 3,000
cells 63,000, a chart of 20,000 points 60,000, a page of 11,700 glyphs each placed on
its own 260,000 (made with reportlab and fpdf2).

Bytes bound the rest: pypdf reads some content a byte at a time in Python (a string, a
hexadecimal one 0.5 µs a byte; runs of "<<"), an inline image's data too (a JPEG's,
and any other's made of "E"s: 0.54 µs a byte) — only raw image data of a stated size is
skipped at C speed. So all of a stream's bytes count, inline images included, before it
is parsed: a page of 75 MB (the most pypdf unpacks a part to, pdfprobe.py) took 40 s to
parse before the limit was checked after it.

A page's form fields, whose values are searched after its text (pdffields.py), are
counted too: each annotation and field an operation and a word, and a form object, of
which a file has a limit of its own (pypdf parses each from the file, ~90 µs).
Each text run looked at for the label beside a field (pdflabels.py) is an operation.
"""

from __future__ import annotations

from typing import Any

from daemon.reading.pdfdamage import BLANKS, Ledger, PageDamaged
from daemon.reading.pdffields import field_text
from daemon.reading.pdffonts import (
    SHOWS_TEXT,
    font_damage,
    font_map,
    fontless_damage,
    shows_text,
)
from daemon.reading.pdflabels import Labels
from daemon.reading.pdfresources import Inherited, maps_size, resources_of

MAX_PDF_CONTENT_WORDS = 3_000_000
MAX_PDF_PAGE_WORDS = 500_000  # of one stream parsed: a page's content, or a form's
MAX_PDF_CONTENT_BYTES = 30_000_000
MAX_PDF_TEXT_OPERATORS = 1_000_000
# Annotations, and form fields above them, whose values are searched (pdffields.py): a
# form holds tens to hundreds a page; 100,000 take pypdf ~10 s to parse.
MAX_PDF_FORM_OBJECTS = 100_000
# PDF's six blanks, and the bytes that start or end a name, string, array or dictionary.
_WORD_BYTES = (b" ", b"\n", b"\r", b"\t", b"\0", b"\f", b"/", b"(", b")", b"<", b">", b"[", b"]")
# The operators whose font matters to pypdf's text: "Tf" selects one, "q" and "Q" save
# and restore it (pypdf's text extraction does so too), the others show text in it.
_FONT_OPERATORS = SHOWS_TEXT | {b"Tf", b"q", b"Q"}


_Font = str | tuple[Any, str] | None


class TextTooLarge(Exception):
    """The PDF's pages hold more than its text is searched in (str: how much)."""


def _words(data: bytes) -> int:
    return sum(data.count(byte) for byte in _WORD_BYTES)


class TextBudget:
    """What the search reads, counted against the limits above (TextTooLarge), page by
    page (text_of): each page's content (take_content), and through pypdf's visitors
    (visit_before, visit_after) each operation and each form a page draws; what is found
    damaged on the way is kept in the file's ledger (ledger, pdfdamage.py)."""

    def __init__(self) -> None:
        self.words = 0
        self.bytes = 0  # of content parsed, inline images' data included
        self.operators = 0
        self.pages = 0
        # Why the search is over, once it is: kept, because pypdf catches (and logs)
        # what a visitor raises inside a form, and check() raises it again after the page.
        self._over: str | None = None
        # The resources of the page, and of each form being drawn inside it, innermost
        # last: where the name a "Do" draws is looked up, as pypdf looks it up.
        self._resources: list[Any] = []
        # The Flate streams checked in this file, the forms a page draws among them,
        # and what was found wrong on the page (pdfdamage.py: its content, a form's,
        # text shown in a lost font): kept, not raised, as pypdf catches what a visitor
        # raises inside a form.
        self.ledger = Ledger()
        # The /Resources the nodes of the page tree pass down (pdfresources.py).
        self._inherited = Inherited()
        # Why the font of the text pypdf reads is lost (pdffonts.font_damage; None: not
        # lost), in the page and in each form being drawn inside it, innermost last (pypdf
        # reads a form with a font of its own): the current one last, those "q" saved
        # before it; and what each name a "Tf" selected there was found to be (a page
        # selects the same few fonts again at each run of text).
        # A font's entry: why it is lost, or its character map and what it is in a reason
        # (pdffonts.font_map: unpacked once a page where text is shown through it, its
        # id kept in _maps), or None.
        self._fonts: list[tuple[list[_Font], dict[str, _Font]]] = []
        self._maps: set[int] = set()
        # The forms being drawn (by id, as pypdf tells one drawn inside itself; 0: none),
        # innermost last, how many forms pypdf entered on the page (those past its count,
        # _forms_read, it skips with no more than a log line), and its reader.
        self._drawing: list[int] = []
        # The operations pypdf began and finished visiting in the page and in each form
        # being drawn, innermost last, and the form pypdf parses with its content (_left).
        self._steps: list[list[Any]] = []
        # pypdf's error at its limit of unpacking, met in a form (_undecoded).
        self._unpacked_over: Exception | None = None
        self._entered = 0
        self._forms_read = 0
        self.form_objects = 0  # take_field's
        # Why the text of each form pypdf does not parse is lost (None: it shows none).
        self._unread_forms: dict[int, str | None] = {}
        self._pdf: Any = None
        self.labels: Labels | None = None  # the page's text runs, on a page of fields

    def _start(self, page: Any) -> bool:
        """A new page's search starts: its content is taken next. False when the page
        has no resources, so no font: pypdf reads no text on it (and is not asked to)."""
        self.pages += 1
        self.ledger.page()
        if "/Resources" not in page:
            self._inherited.put_on(page)
        self._resources = [resources_of(page)]
        self._fonts = [([None], {})]
        self._drawing = [0]
        self._steps = [[0, 0, None]]
        self._entered = 0
        self._unread_forms = {}
        self._maps = set()
        self._pdf = getattr(page, "pdf", None)
        from pypdf import get_configuration
        # (A pypdf without the count enters them all: none is past it.)
        self._forms_read = getattr(get_configuration(),
                                   "xform_maximum_invocations_per_extraction", 1 << 62)
        return self._resources[0] is not None

    def text_of(self, page: Any) -> str:
        """The text of one page (invoices.py walks them), its content counted before
        pypdf parses it. PageDamaged where pypdf read past damage that loses text, after
        pypdf's reading (a limit it meets refuses the file first); a page whose only fault
        is a wrong checksum is read, held in doubt by the ledger until the file is read."""
        can_hold_text = self._start(page)
        labels = self.labels = Labels() if "/Annots" in page else None  # pdflabels.py
        contents = page.get_contents()
        self.take_content(contents.get_data() if contents is not None else b"")
        text = ""
        if not can_hold_text:
            # No font: pypdf reads no text on it, and any text it shows is lost.
            if contents is not None and (why := fontless_damage(page, contents)) is not None:
                raise PageDamaged(why)
        else:
            self.take_maps(self._resources[0])
            text = page.extract_text(visitor_operand_before=self.visit_before,
                                     visitor_operand_after=self.visit_after,
                                     visitor_text=labels.visit if labels else None) or ""
            self.check()
            self.ledger.check_contents(page)
        # The values typed into its form fields, which pypdf's text leaves out: after
        # the content's text, a line each, and text typed onto the page (pdffields.py; an
        # annotation draws its own font).
        fields = field_text(page, self, labels)
        if self.ledger.damage is not None:
            raise PageDamaged(self.ledger.damage)
        return f"{text}\n{fields}" if fields else text

    def take_content(self, data: bytes) -> None:
        """Content pypdf parses next (a page's, or a form's at a draw): counted and
        checked now, before pypdf parses it."""
        words = _words(data)
        self.words += words
        self.bytes += len(data)
        if words > MAX_PDF_PAGE_WORDS:
            self._over = (f"over {MAX_PDF_PAGE_WORDS:,} words of content on page "
                          f"{self.pages:,} alone to search for its invoice number")
        self.check()

    def take_field(self, objects: int, size: int) -> None:
        """Objects of the page's form fields read (pdffields.py: annotations, fields up
        a /Parent chain, options), each an operation and a word, and `size` bytes of
        their values. pypdf parses each such object from the file (~90 µs, a hundred
        times an operation's cost): they have a limit of their own too."""
        self.operators += objects
        self.words += objects
        self.bytes += size
        self.form_objects += objects
        if self.form_objects > MAX_PDF_FORM_OBJECTS:
            self._over = (f"over {MAX_PDF_FORM_OBJECTS:,} annotations and form fields "
                          "to search for its invoice number")
        self.check()

    def take_steps(self, steps: int) -> None:
        """Text runs looked at for the label beside a field (pdflabels.py), each an
        operation."""
        self.operators += steps
        self.check()

    def lose(self, why: str) -> None:
        """What the page shows is lost (why, in a few words): the page is not read."""
        self.ledger.damage = self.ledger.damage or why

    def take_maps(self, resources: Any) -> None:
        """The fonts' character maps pypdf parses in `resources` (a page's, or a form's
        at a draw) before it reads any of it: counted as content, each time."""
        self.bytes += maps_size(resources)
        self.check()

    def check(self) -> None:
        """Raise TextTooLarge once anything counted is over its limit."""
        if self._over is None:
            if self.bytes > MAX_PDF_CONTENT_BYTES:
                self._over = (f"over {MAX_PDF_CONTENT_BYTES:,} bytes of page content "
                              "(images drawn inline and fonts' character maps included) "
                              "to search for its invoice number")
            elif self.words > MAX_PDF_CONTENT_WORDS:
                self._over = (f"over {MAX_PDF_CONTENT_WORDS:,} words of page content to "
                              "search for its invoice number")
            elif self.operators > MAX_PDF_TEXT_OPERATORS:
                self._over = (f"over {MAX_PDF_TEXT_OPERATORS:,} drawing operations to "
                              "search for its invoice number")
        if self._over is not None:
            raise TextTooLarge(self._over)
        if self._unpacked_over is not None:
            raise self._unpacked_over

    def visit_before(self, operator: object, operands: object, cm: object = None,
                     *_: object) -> None:
        self.operators += 1  # those of the forms a page draws included
        self._steps[-1][0] += 1
        if operator != b"Do":
            if operator in _FONT_OPERATORS:
                self._font(operator, operands)
            self.check()
            return
        form = self._form(operands)
        resources = None if form is None else resources_of(form)
        # pypdf enters a form not being drawn already, up to its count a page; it parses
        # none without resources (no font, it says), nor any past its count.
        entered = form is not None and id(form) not in self._drawing
        self._entered += entered
        parsed: tuple[Any, bytes] | None = None  # the form pypdf parses now, and its content
        if entered and (not resources or self._entered > self._forms_read):
            self._unread(form, resources)
        elif form is not None and resources:
            try:  # pypdf's decoding, within its limit; kept on the form: not done twice
                data = form.get_data()
            except Exception as exc:  # noqa: BLE001 — pypdf fails the same way, and skips it
                self.ledger.damage = self.ledger.damage or self._undecoded(exc)
            else:
                self.take_content(data)
                # Unpacked again only once pypdf has, within its limit, and counted.
                self.ledger.check(form, "the compressed content of a form it draws")
                if entered:
                    parsed = (form, data)
                    self.take_maps(resources)
        # Pushed once charged (a raise above leaves the stack as it was), popped by the
        # visit after this same "Do", which pypdf makes whatever the form held.
        self._resources.append(resources)
        if self.labels is not None:
            self.labels.enter(form, cm)
        self._fonts.append(([None], {}))
        self._drawing.append(id(form) if form is not None else 0)
        self._steps.append([0, 0, parsed])

    def visit_after(self, operator: object, *_: object) -> None:
        if operator == b"Do" and len(self._resources) > 1:
            if self.labels is not None:
                self.labels.leave()
            self._resources.pop()
            self._fonts.pop()
            self._drawing.pop()
            self._left(*self._steps.pop())
        self._steps[-1][1] += 1

    def _left(self, begun: int, ended: int, parsed: tuple[Any, bytes] | None) -> None:
        """pypdf left a form it parsed (`parsed`, with its content), of which it visited
        `begun` operations and finished `ended`. What pypdf meets inside a form (content
        that does not parse, a font it cannot make) it catches with a log line, and reads
        on without the form's text, where on a page it raises: an operation begun and not
        finished, or none begun in content that holds some, is a form whose text was lost
        (the ledger's damage)."""
        if parsed is None or begun == ended and (begun or not parsed[1].strip(BLANKS)):
            return
        why = "pypdf stopped reading a form it draws"
        if not begun:  # none begun: content of comments alone holds none
            from pypdf.generic import ContentStream

            from daemon.validation.pdfprobe import pypdfs_words
            try:
                if not ContentStream(parsed[0], self._pdf).operations:
                    return
            except Exception as exc:  # noqa: BLE001 — what pypdf met, in its words
                why = f"a form it draws could not be read, {pypdfs_words(exc)}"
        self.ledger.damage = self.ledger.damage or why

    def _undecoded(self, exc: Exception) -> str:
        """Why a form pypdf cannot unpack loses its text (pypdf skips it with a log
        line). Past pypdf's limit of unpacking the file is refused, as for a page's
        content past it: kept, as pypdf catches what is raised inside a form, and raised
        again by check()."""
        from daemon.validation.pdfprobe import pypdfs_words, unpack_limit_error
        if unpack_limit_error(exc) is not None:
            self._unpacked_over = exc
            raise exc
        return f"a form it draws cannot be unpacked, {pypdfs_words(exc)}"

    def _unread(self, form: Any, resources: Any | None) -> None:
        """A form pypdf does not parse: text it shows is lost (the ledger's damage).
        Looked at once a page: a chart's marker drawn thousands of times past pypdf's
        count is one form."""
        if id(form) not in self._unread_forms:
            self._unread_forms[id(form)] = self._unread_why(form, resources)
        self.ledger.damage = self.ledger.damage or self._unread_forms[id(form)]

    def _unread_why(self, form: Any, resources: Any | None) -> str | None:
        from pypdf.generic import ContentStream
        try:
            contents = ContentStream(form, self._pdf)
            data = contents.get_data()
        except Exception as exc:  # noqa: BLE001 — undecoded: any text of it lost
            return self._undecoded(exc)
        if not any(operator in data for operator in SHOWS_TEXT):
            # Lines and images, never parsed; but unpacked here, where pypdf does not:
            # counted (a page of a form that unpacks to 75 MB, on each of 1,000 pages).
            self.bytes += len(data)
            self.check()
            return None
        self.take_content(data)  # parsed here, where pypdf does not
        whose = "a form it draws"
        try:
            if not resources:
                return fontless_damage(form, contents, whose)
            return f"{whose} after its first {self._forms_read:,} shows text, which is " \
                "not read" if shows_text(contents) else None
        except Exception:  # noqa: BLE001 — content that does not parse, text in it unread
            return f"{whose} shows text that cannot be read"

    def _font(self, operator: object, operands: object) -> None:
        """Follow the font pypdf reads text in, and take text shown in a lost one for a
        page not read whole (the ledger's damage)."""
        saved, known = self._fonts[-1]
        if operator == b"q":
            saved.append(saved[-1])
        elif operator == b"Q":
            if len(saved) > 1:  # one too many: pypdf keeps the font it has
                saved.pop()
        elif operator == b"Tf":
            name = operands[0] if isinstance(operands, list) and operands else None
            if isinstance(name, str) and name in known:
                saved[-1] = known[name]
                return
            resources = self._resources[-1]
            whose = "it" if len(self._resources) == 1 else "a form it draws"
            saved[-1] = None if resources is None else \
                font_damage(resources, operands, whose) or \
                font_map(resources, operands, whose)
            if isinstance(name, str):
                known[name] = saved[-1]
        elif isinstance(saved[-1], str):
            self.ledger.damage = self.ledger.damage or saved[-1]
        elif saved[-1] is not None and id(saved[-1][0]) not in self._maps:
            self._maps.add(id(saved[-1][0]))  # unpacked once a page
            self.ledger.check(*saved[-1])

    def _form(self, operands: object) -> Any | None:
        """The form XObject a "Do" of these operands draws (None: an image, or a name
        the current resources do not hold, which pypdf skips too)."""
        from pypdf.generic import DictionaryObject, StreamObject
        resources = self._resources[-1] if self._resources else None
        if not isinstance(operands, list) or not operands or resources is None:
            return None
        try:
            xobjects = resources.get("/XObject")
            xobjects = xobjects.get_object() if xobjects is not None else None
            if not isinstance(xobjects, DictionaryObject) or operands[0] not in xobjects:
                return None
            form = xobjects[operands[0]].get_object()
            if isinstance(form, StreamObject) and form.get("/Subtype") == "/Form":
                return form
        except Exception:  # noqa: BLE001 — a damaged resource: pypdf fails on it too, and skips it
            return None
        return None
