"""How much of what pypdf parsed from object streams an invoice's text search keeps from
page to page (daemon/validation/pdfobjects.py, IndexedReader.drop_resolved): the
streams up to MAX_KEPT_STREAM_BYTES together, the limit itself included, and the kept
objects not gone through again at every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import write
from pypdf import PdfReader
from reading.test_invoices import read

from daemon.validation import pdfobjects
from daemon.validation.pdfobjects import IndexedReader
from validation.test_pdfobjects import in_object_stream


def in_two_object_streams(pages: int, others: int) -> tuple[bytes, list[int]]:
    """A PDF whose pages name two fonts, /F1 in one object stream (3) and /F2 in another
    (4), each stream with `others` objects besides, and the decoded size of each stream:
    page n reads "Invoice number: INV-n"."""
    out, places = bytearray(b"%PDF-1.5\n"), {}
    first = 5 + 2 * (others + 1)  # the first page: after the streams' objects
    numbers = [first + 2 * i for i in range(pages)]
    members: dict[int, int] = {}  # object number: its stream

    def add(number: int, body: bytes) -> None:
        places[number] = len(out)
        out.extend(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    add(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    add(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % n for n in numbers), pages))
    sizes = []
    for stream, start in ((3, 5), (4, 5 + others + 1)):
        objects = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"] + \
            [b"<< /A %d >>" % i for i in range(others)]
        starts = [sum(len(m) + 1 for m in objects[:i]) for i in range(len(objects))]
        head = b" ".join(b"%d %d" % (start + i, at) for i, at in enumerate(starts)) + b"\n"
        data = head + b"\n".join(objects)
        sizes.append(len(data))
        members.update({start + i: stream for i in range(len(objects))})
        add(stream, b"<< /Type /ObjStm /N %d /First %d /Length %d >>\nstream\n%s\nendstream"
            % (len(objects), len(head), len(data), data))
    for n, number in enumerate(numbers, 1):
        content = b"BT /F1 12 Tf 72 720 Td (Invoice number: INV-%d) Tj ET" % n
        add(number, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 5 0 R /F2 %d 0 R >> >> >>"
            % (number + 1, 5 + others + 1))
        add(number + 1, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    table = numbers[-1] + 2
    index = {n: i for stream in (3, 4)
             for i, n in enumerate(sorted(k for k, s in members.items() if s == stream))}
    rows = b"".join(
        b"\x01" + places[n].to_bytes(4, "big") + b"\0\0" if n in places else
        b"\x02" + members[n].to_bytes(4, "big") + index[n].to_bytes(2, "big")
        if n in members else b"\x01" + len(out).to_bytes(4, "big") + b"\0\0" if n == table
        else b"\0\0\0\0\0\xff\xff" for n in range(table + 1))
    start = len(out)
    out += b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\n" \
        b"stream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % (
            table, table + 1, len(rows), rows, start)
    return bytes(out), sizes


@pytest.fixture
def streams_parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of the stream of each object pypdf looked up in an object stream."""
    parsed: list[int] = []
    lookup = PdfReader._get_object_from_stream

    def spy(self: PdfReader, ref: Any) -> Any:
        parsed.append(self.xref_objStm[ref.idnum][0])
        return lookup(self, ref)
    monkeypatch.setattr(PdfReader, "_get_object_from_stream", spy)
    return parsed


@pytest.mark.parametrize("both", [False, True], ids=["one-stream", "both-exactly"])
def test_streams_are_kept_up_to_the_limit_together(
        streams_parsed: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        both: bool) -> None:
    """Room for one stream and a half: the first kept, the second looked up again at each
    page; room for exactly both (the limit is the most kept, not less): both kept."""
    data, sizes = in_two_object_streams(5, 50)
    room = sizes[0] + (sizes[1] if both else sizes[1] // 2)
    monkeypatch.setattr(pdfobjects, "MAX_KEPT_STREAM_BYTES", room)
    found = read(write(tmp_path / "print.pdf", data))
    assert found.invoice_ids == tuple(f"INV-{n}" for n in range(1, 6))
    assert (streams_parsed.count(3), streams_parsed.count(4)) == \
        ((1, 1) if both else (1, 5))


def test_kept_objects_are_not_gone_through_again_at_every_page(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """40 pages whose font is in a stream of 5,000 objects: each object is asked whether
    it is kept once, when pypdf first resolved it — not the 5,000 kept again at every
    page (400 pages of a stream of 20,000: 8,000,000 questions)."""
    asked: list[int] = []
    keeps = IndexedReader._keeps

    def spy(self: IndexedReader, number: int) -> bool:
        asked.append(number)
        return keeps(self, number)
    monkeypatch.setattr(IndexedReader, "_keeps", spy)
    found = read(write(tmp_path / "print.pdf", in_object_stream(40, 5_000)))
    assert len(found.invoice_ids) == 40
    assert len(asked) < 5_001 + 40 * 10
