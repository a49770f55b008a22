"""The label a page prints to the left of a form field or of text typed onto it, searched
with the value it labels (pdffields.py reads the values, pdftext.py the page's text).

A template prints "Invoice number:" and the clerk types `INV-2` into the field beside
it: the page's text holds the label, the field's value the number, and each value was
searched as a line of its own after the page's text, so the default pattern (a label
before the id) found nothing, and the file went out under its stem. So the text runs
pypdf reads are kept with where each starts (pypdf's visitor_text: the text matrix in
the current transformation, and the forms' matrices pypdf leaves out, in the page's
default space, as the annotation's /Rect is), and a value's line is followed by a line
of the run nearest to the left of its /Rect on the same line, the runs on that baseline
before it, and the value again: "INV-2\nInvoice number: INV-2".

Which run is on the field's line: one whose baseline lies between the bottom of the
/Rect (less _BELOW, for a field drawn tight around its text) and its top. A label above
its field, or one to the right, is not looked for: a column of labels beside a column
of fields, each on its baseline, is the layout of a template. Only what is to the
left, so no run of the field's own appearance (pypdf reads no annotation) nor any text
to its right is joined to it.

Bounded: runs are kept only on a page of annotations, at most one a text operation
pypdf reads (counted already); they are sorted once a page, each field's band found by
bisection, and each run looked at there one operation of the budget (a page of every
run on one baseline beside every field is refused, not searched for minutes); what is
put before a value is at most _MAX_CHARS characters (its bytes counted as a value's).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any, Protocol

_BELOW = 3.0  # points: a baseline this far below a field's /Rect is still its line
_SAME_LINE = 1.0  # points: runs within this of the label's baseline are its line
_MAX_CHARS = 255  # the longest invoice id: a label is far shorter


class Counter(Protocol):
    """What counts the runs looked at (pdftext.TextBudget)."""

    def take_steps(self, steps: int) -> None: ...


class Labels:
    """The text runs of a page where pypdf reads them (visit), and the label to the left
    of an annotation's /Rect (before)."""

    def __init__(self) -> None:
        self._runs: list[tuple[float, float, str]] = []  # (baseline y, x, text)
        self._sorted = False
        # From the space of each form being drawn to the page's, innermost last: pypdf
        # reads a form's text from an identity matrix, its /Matrix and the matrix it
        # is drawn in left out (a label in a form was placed as if drawn at 0 0).
        self._spaces: list[list[float]] = [list(_IDENTITY)]

    def enter(self, form: Any, cm: Any) -> None:
        """A "Do" draws `form` (None: an image, or no form) in the matrix `cm`: its
        text is in its own space until leave()."""
        matrix = _matrix(form.get("/Matrix") if form is not None else None)
        self._spaces.append(_times(_times(matrix, _matrix(cm)), self._spaces[-1]))

    def leave(self) -> None:
        if len(self._spaces) > 1:
            self._spaces.pop()

    def visit(self, text: str, cm: Any, tm: Any, *_: Any) -> None:
        """pypdf's visitor_text: `text` starts at the text matrix's origin `tm` in the
        current transformation `cm`."""
        words = " ".join(text.split())
        if not words:
            return
        space = _times(_matrix(cm), self._spaces[-1])
        tm = _matrix(tm)
        x = tm[4] * space[0] + tm[5] * space[2] + space[4]
        y = tm[4] * space[1] + tm[5] * space[3] + space[5]
        if not (_finite(x) and _finite(y)):  # no place on the page: sorts nowhere
            return
        self._runs.append((float(y), float(x), words))
        self._sorted = False

    def before(self, annot: Any, value: str, budget: Counter) -> str:
        """`value`, and if a label is printed to the left of `annot`, a line of the label
        and `value` after it."""
        rect = _rect(annot)
        if rect is None or not self._runs:
            return value
        if not self._sorted:
            self._runs.sort()
            self._sorted = True
        left, bottom, _, top = rect
        start = bisect_left(self._runs, (bottom - _BELOW,))
        end = bisect_right(self._runs, (top, float("inf")))
        budget.take_steps(end - start)
        beside = [run for run in self._runs[start:end] if run[1] < left]
        if not beside:
            return value
        line = max(beside, key=lambda run: run[1])[0]
        label = " ".join(text for _, _, text in sorted(
            (run for run in beside if abs(run[0] - line) <= _SAME_LINE),
            key=lambda run: run[1]))[-_MAX_CHARS:]
        # The value alone first, as it was searched before labels were read: what a
        # pattern found in it (one anchored at a line's start) is found as before.
        return f"{value}\n{label} {value}"


def _rect(annot: Any) -> tuple[float, float, float, float] | None:
    """The annotation's /Rect, its corners in order (PDF allows any two opposite ones),
    or None when it is not four numbers."""
    try:
        rect = annot["/Rect"].get_object()  # none: a KeyError, no place
        x0, y0, x1, y1 = (float(v.get_object()) for v in rect)
    except Exception:  # noqa: BLE001 — no place to look: the value is read alone
        return None
    if not all(_finite(v) for v in (x0, y0, x1, y1)):
        return None
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _matrix(value: Any) -> list[float]:
    """`value` as a matrix of six numbers (PDF's a b c d e f); the identity for anything
    else (a form's /Matrix missing or damaged: a viewer draws it so too)."""
    try:
        value = value.get_object() if hasattr(value, "get_object") else value
        if not isinstance(value, list) or len(value) != 6:  # counted first: a form of a
            return list(_IDENTITY)  # /Matrix of 100,000 entries is drawn 5,000 times
        numbers = [float(v.get_object() if hasattr(v, "get_object") else v) for v in value]
    except Exception:  # noqa: BLE001 — no matrix: the identity
        return list(_IDENTITY)
    return numbers if all(map(_finite, numbers)) else list(_IDENTITY)


def _times(a: list[float], b: list[float]) -> list[float]:
    """The matrix of `a` then `b` (PDF's row vectors: a point times a, times b)."""
    return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
            a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
