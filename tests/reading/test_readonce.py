"""A bundle's files opened and read once per evaluation (readonce.py, finish.evaluate):
what matching hashed is what validation judges, within a bounded memory."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import drop_bundle, pdf_bytes, ubl_invoice
from PIL import Image
from swaps import opened_in

from daemon.configuration.config import Settings
from daemon.delivery.finish import evaluate
from daemon.fs import fsread
from daemon.manifest import bundle_id_of
from daemon.reading import readonce
from daemon.reading.match import assemble
from daemon.reading.readonce import hash_keeping, keeping_reads, kept_read
from daemon.validation.validate import validate_bundle
from daemon.watching.scan import candidate_for


def png(side: int = 40) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (20, 120, 200)).save(buf, "PNG", dpi=(300, 300))
    return buf.getvalue()


def xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


def csv_1252() -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=";").writerows([["Name", "Betrag"], ["Müller", "12,50"]])
    return out.getvalue().encode("cp1252")


def settings_for(outbox: Path, max_attachment_bytes: int = 5_000_000,
                 delivery_format: str = "bundle") -> Settings:
    return Settings(outbox={"path": str(outbox)},
                    paths={"state_dir": str(outbox.parent / "state")},
                    delivery={"url": "http://127.0.0.1:9/x", "format": delivery_format},
                    validation={"max_attachment_bytes": max_attachment_bytes,
                                "allowed_types": ["pdf", "png", "csv", "xlsx"]})


@pytest.mark.parametrize("delivery_format", ["bundle", "ubl-embedded"])
def test_evaluate_opens_each_file_of_a_bundle_once(tmp_path: Path,
                                                   delivery_format: str) -> None:
    """finish.evaluate of a bundle (a UBL invoice, a PDF and a PNG; pre-flight on, as by
    default) opens each of its files once, as the kernel sees it (inotify): the files
    are hashed by matching, and the attachments sniffed and probed by validation, the
    invoice pre-flighted and (ubl-embedded) the documents built from that one read; the
    outbox and the sidecar are opened once, not again for each of those steps."""
    outbox = tmp_path / "outbox"
    drop_bundle(outbox, "INV-1", {"timesheet.pdf": pdf_bytes(2), "photo.png": png()})
    s = settings_for(outbox, delivery_format=delivery_format)
    with opened_in(outbox) as in_outbox, opened_in(outbox / "INV-1") as in_sidecar:
        bundle = evaluate(candidate_for(s.outbox, "INV-1.xml"), s)
    assert bundle.errors == ()
    assert [(a.content_type, a.pages) for a in bundle.attachments] == [
        ("image/png", None), ("application/pdf", 2)]
    assert Counter(in_sidecar) == {"": 1, "photo.png": 1, "timesheet.pdf": 1}
    assert Counter(in_outbox) == {"": 1, "INV-1.xml": 1, "INV-1": 1}


def test_evaluate_on_a_print_channel_converting_images_opens_the_image_once(
        tmp_path: Path) -> None:
    """On a print channel with convert_images, evaluate converts the PNG to PDF from the
    bytes matching kept (those validation probed), not from a second open of the image
    (inotify counts the opens)."""
    outbox = tmp_path / "outbox"
    drop_bundle(outbox, "INV-1", {"photo.png": png()})
    s = settings_for(outbox)
    s = s.model_copy(update={"validation": s.validation.model_copy(
        update={"channel": "external-print", "convert_images": True})})
    with opened_in(outbox / "INV-1") as in_sidecar:
        bundle = evaluate(candidate_for(s.outbox, "INV-1.xml"), s)
    [photo] = bundle.attachments
    assert photo.converted is not None and photo.converted.pages == 1
    assert bundle.errors == ()
    assert Counter(in_sidecar) == {"": 1, "photo.png": 1}


def test_evaluate_judges_every_kind_of_file_as_validation_of_the_opened_file_does(
        tmp_path: Path) -> None:
    """Validated from the bytes matching kept, a bundle gets the very content types,
    pages and findings (codes, files, messages) that validating it by opening each file
    again gives: PDF, PNG, XLSX, a Windows-1252 CSV, an empty file, an exe named .pdf
    and a file over the size limit."""
    outbox = tmp_path / "outbox"
    files = {"a.pdf": pdf_bytes(3), "b.png": png(), "c.xlsx": xlsx(), "d.csv": csv_1252(),
             "e.pdf": b"", "f.pdf": b"MZ\x90\x00" + bytes(200), "g.pdf": pdf_bytes(9)}
    drop_bundle(outbox, "INV-1", files)
    s = settings_for(outbox, max_attachment_bytes=len(files["g.pdf"]) - 1)
    cand = candidate_for(s.outbox, "INV-1.xml")
    kept = evaluate(cand, s)
    opened = validate_bundle(assemble(cand, s), s.validation)  # no keeping_reads: reopened
    assert kept.attachments == opened.attachments
    assert kept.findings == opened.findings
    assert {f.code for f in kept.findings} >= {"empty-file", "extension-mismatch",
                                              "too-large", "csv-windows-1252"}


def test_what_is_validated_is_what_was_hashed_even_if_the_file_changes_between(
        tmp_path: Path) -> None:
    """Within keeping_reads, an attachment changed on disk after matching hashed it is
    validated as the bytes its size and hash describe (the PDF hashed), never as the
    new content: the bundle id and the findings speak of one and the same file."""
    outbox = tmp_path / "outbox"
    drop_bundle(outbox, "INV-1", {"a.pdf": pdf_bytes(2)})
    s = settings_for(outbox)
    cand = candidate_for(s.outbox, "INV-1.xml")
    with keeping_reads(readonce.KEPT_BYTES):
        bundle = assemble(cand, s)
        (outbox / "INV-1" / "a.pdf").write_bytes(b"MZ\x90\x00" + bytes(500))
        checked = validate_bundle(bundle, s.validation)
    [att] = checked.attachments
    assert checked.findings == ()
    assert (att.content_type, att.pages) == ("application/pdf", 2)
    assert att.sha256 == hashlib.sha256(pdf_bytes(2)).hexdigest()


def test_only_up_to_the_limit_is_kept_and_the_rest_is_hashed_in_chunks(
        tmp_path: Path) -> None:
    """keeping_reads keeps files while their total fits its limit; a file beyond it is
    hashed in chunks all the same (its right size and hash), not kept, so validation
    opens it again; outside keeping_reads nothing is kept."""
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"s" * 100)
    large.write_bytes(b"l" * 200)
    with keeping_reads(250):
        for path in (small, large):
            with path.open("rb") as fh:
                assert hash_keeping(fh, path) == (path.stat().st_size, hashlib.sha256(
                    path.read_bytes()).hexdigest())
        assert kept_read(small) == b"s" * 100
        assert kept_read(large) is None
    assert kept_read(small) is None
    with small.open("rb") as fh:
        assert hash_keeping(fh, small)[0] == 100
    assert kept_read(small) is None


def test_a_file_that_grows_past_the_limit_while_read_is_hashed_from_its_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that grows past the room left after its size was looked at (fstat) is
    not kept, and its size and hash are of every byte from where it was opened, as
    hash_of gives them: the part read for keeping is not left out of the hash."""
    path = tmp_path / "growing"
    path.write_bytes(b"y" * 10_000)
    real_fstat = os.fstat

    def looked_at_while_small(fd: int) -> object:
        return SimpleNamespace(st_size=100) if fd == fh.fileno() else real_fstat(fd)

    with keeping_reads(200), path.open("rb") as fh:
        monkeypatch.setattr(fsread.os, "fstat", looked_at_while_small)
        size, digest = hash_keeping(fh, path)
        monkeypatch.undo()
        assert kept_read(path) is None
    assert (size, digest) == (10_000, hashlib.sha256(b"y" * 10_000).hexdigest())


def _bytes_read() -> int:
    """What this process has read by read(2) so far (/proc/self/io `rchar`)."""
    with open("/proc/self/io", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that takes no room on the disk but its head."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def test_a_file_refused_by_its_size_is_not_read_whole(tmp_path: Path) -> None:
    """An attachment over max_attachment_bytes (too-large) and an XML invoice file over
    64 MiB (invoice-too-large) are refused by their size whatever they hold: evaluating
    their bundles reads a few MB, not the 2 GB of each. Both were hashed whole first
    (a 100 GB attachment held a reader to its time limit twice and was then said to
    make the readers loop, a 50 GB invoice file a reader for minutes: the time limit
    grows with its size); the bundle id still tells one version from another."""
    outbox = tmp_path / "outbox"
    drop_bundle(outbox, "INV-1", {"scan.pdf": pdf_bytes(1)})
    big = _sparse(outbox / "INV-1" / "video.pdf", 2 << 30, pdf_bytes(1))
    _sparse(outbox / "INV-2.xml", 2 << 30, ubl_invoice("INV-2"))
    s = settings_for(outbox)
    before = _bytes_read()
    first = evaluate(candidate_for(s.outbox, "INV-1.xml"), s)
    invoice = evaluate(candidate_for(s.outbox, "INV-2.xml"), s)
    assert _bytes_read() - before < 50_000_000
    assert [(f.code, f.file) for f in first.errors] == [("too-large", "INV-1/video.pdf")]
    assert [(f.code, f.file) for f in invoice.errors] == [("invoice-too-large", "INV-2.xml")]
    assert bundle_id_of(evaluate(candidate_for(s.outbox, "INV-1.xml"), s)) == bundle_id_of(first)
    with open(big, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(b"x")  # its last byte: another version, another bundle id
    assert bundle_id_of(evaluate(candidate_for(s.outbox, "INV-1.xml"), s)) != bundle_id_of(first)


def test_a_file_of_exactly_the_refused_size_or_the_room_left_is_hashed_whole_and_kept(
        tmp_path: Path) -> None:
    """A size rule refuses what is over its limit: a file of exactly `refused_over`
    bytes gets its SHA-256, read whole, and one that fills the room left exactly is
    kept."""
    path = tmp_path / "exact"
    path.write_bytes(b"e" * 100)
    with keeping_reads(100), path.open("rb") as fh:
        assert hash_keeping(fh, path, refused_over=100) == (
            100, hashlib.sha256(b"e" * 100).hexdigest())
        assert kept_read(path) == b"e" * 100


def test_the_sampled_digest_of_files_alike_at_both_ends_differs_by_their_size(
        tmp_path: Path) -> None:
    """A file refused by its size is told from another version by its size and its first
    and last MiB: two files with the same first and last MiB but of other sizes (a
    middle grown) have other digests, and neither is a SHA-256 of what was sampled."""
    ends = b"h" * readonce.SAMPLED
    digests = []
    for middle in (0, 1, 2):
        path = tmp_path / f"big{middle}"
        path.write_bytes(ends + b"\0" * middle + ends)
        with path.open("rb") as fh:
            digests.append(readonce.sampled_digest(fh))
    assert len({d for _size, d in digests}) == 3
    assert digests[0][1] != hashlib.sha256(ends * 2).hexdigest()
