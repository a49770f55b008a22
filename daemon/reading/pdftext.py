"""What the search of a PDF invoice file's text reads, counted against limits, so that a
hostile file of a few KB is refused (invoice-too-large) in seconds rather than holding a
reader to its time limit (invoices.py searches; pypdf parses).

pypdf parses page content in Python, twice per page (the operators, then the text): a
10 KB file whose Flate decodes to megabytes of text operators, or whose pages draw one
large form again and again, held a read (and `outboxd check`) for minutes. A dense page
of invoice lines (120 rows of 6 cells, each its own text run, and rules) holds about
14,000 words, 4,400 operations and 45 KB and is searched in ~45 ms: the limits let some
200 such pages through (a long itemised invoice), and bound a hostile file to ~10-20 s.

Words are counted by the blanks between them and by the slash that starts a name
("/a/b/c" is three, with no blank: pypdf takes ~3 µs a name, and a page of megabytes of
slashes took minutes), before pypdf parses the page. Bytes bound the rest: pypdf reads
any content at 0.1 to 0.5 µs a byte (a string without blanks a byte at a time: 20 MB in
~8 s; runs of "<<" alike), all but an inline image's data, which it skips at C speed
(a scan's page of 20 MB is no hostile file). So the bytes of content less those of the
inline images pypdf found are counted once the page is parsed (or a form, when a page
draws it): one page's parse at most (a part unpacks to 75 MB at most, pdfprobe.py) is
paid before a file of such pages is refused. A form XObject's content counts at each
draw, before pypdf parses it (a page of a few bytes drawing a form of megabytes of names
five times took 15 s).
"""

from __future__ import annotations

from typing import Any

MAX_PDF_CONTENT_WORDS = 3_000_000
MAX_PDF_CONTENT_BYTES = 30_000_000
MAX_PDF_TEXT_OPERATORS = 1_000_000
_WORD_STARTS = (b" ", b"\n", b"\r", b"\t", b"/")


class TextTooLarge(Exception):
    """The PDF's pages hold more than its text is searched in (str: how much)."""


def _words(data: bytes) -> int:
    return sum(data.count(start) for start in _WORD_STARTS)


class TextBudget:
    """What the search reads, counted against the limits above (TextTooLarge): each
    page's content (take_content), and through pypdf's visitors (visit_before,
    visit_after) each operation and each form a page draws."""

    def __init__(self) -> None:
        self.words = 0
        self.bytes = 0  # of content parsed, less its inline images' data
        self.operators = 0
        # The resources of the page, and of each form being drawn inside it, innermost
        # last: where the name a "Do" draws is looked up, as pypdf looks it up.
        self._resources: list[Any] = []

    def page(self, page: Any) -> None:
        """A new page's search starts: its content is taken next."""
        self._resources = [_resources_of(page)]

    def take_content(self, data: bytes) -> None:
        """Content pypdf parses next: its words are checked now, its bytes by check()
        once its inline images are known (after the page, or at a form's draw)."""
        self.words += _words(data)
        self.bytes += len(data)
        self._check_words()

    def check(self) -> None:
        """Raise TextTooLarge once anything counted is over its limit. Asked after each
        page too: pypdf catches (and logs) what a visitor raises inside a form."""
        if self.bytes > MAX_PDF_CONTENT_BYTES:
            raise TextTooLarge(f"over {MAX_PDF_CONTENT_BYTES:,} bytes of page content "
                               "(besides images) to search for its invoice number")
        self._check_words()

    def _check_words(self) -> None:
        if self.words > MAX_PDF_CONTENT_WORDS:
            raise TextTooLarge(f"over {MAX_PDF_CONTENT_WORDS:,} words of page content "
                               "to search for its invoice number")
        if self.operators > MAX_PDF_TEXT_OPERATORS:
            raise TextTooLarge(f"over {MAX_PDF_TEXT_OPERATORS:,} drawing operations "
                               "to search for its invoice number")

    def visit_before(self, operator: object, operands: object, *_: object) -> None:
        self.operators += 1  # those of the forms a page draws included
        if operator == b"INLINE IMAGE" and isinstance(operands, dict):
            data = operands.get("data")
            self.bytes -= len(data) if isinstance(data, bytes) else 0
        if operator != b"Do":
            self._check_words()
            return
        form = self._form(operands)
        resources = None if form is None else _resources_of(form)
        if form is not None and resources:  # pypdf parses no form without resources
            try:
                data = form.get_data()  # kept on the form: pypdf decodes it no second time
            except Exception:  # noqa: BLE001 — pypdf fails on it the same way, and skips it
                data = b""
            self.take_content(data)
            self.check()
        # Pushed once charged (a raise above leaves the stack as it was), popped by the
        # visit after this same "Do", which pypdf makes whatever the form held.
        self._resources.append(resources)

    def visit_after(self, operator: object, *_: object) -> None:
        if operator == b"Do" and len(self._resources) > 1:
            self._resources.pop()

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


def _resources_of(obj: Any) -> Any | None:
    """A page's or form's resources as pypdf's search takes them (a page's inherited
    from its parents); None when there are none or they are no dictionary."""
    from pypdf.generic import DictionaryObject
    try:
        found = obj.get_inherited("/Resources", None) if hasattr(obj, "get_inherited") \
            else obj.get("/Resources")
        found = found.get_object() if found is not None else None
    except Exception:  # noqa: BLE001 — damaged: pypdf takes it for none too
        return None
    return found if isinstance(found, DictionaryObject) and found else None
