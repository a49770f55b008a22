"""What crosses a reader's pipe (daemon/reading/reader_wire.py): paths travel as strings and
come back as the same PosixPath in every respect; Bundles and Candidates round-trip
equal."""

from __future__ import annotations

from pathlib import Path, PosixPath

import pytest

from daemon.bundle import Attachment, Bundle, Conversion, Finding, InvoiceFile
from daemon.reading import reader_wire
from daemon.watching.scan import Candidate


@pytest.mark.parametrize("text", ["/", "/a", "/tmp/out box/INV-1/é ü.pdf", "/x/../y",
                                  "//net/share/a", "rel/x.xml", ".", "a"])
def test_a_path_comes_back_as_the_same_posix_path(text: str) -> None:
    """Equal, same type, str, parts, hash, parent and name, and it joins and
    compares as the original does (absolute, relative, two leading slashes)."""
    path = Path(text)
    back = reader_wire.loads(reader_wire.dumps(path))
    assert type(back) is PosixPath
    assert back == path and hash(back) == hash(path)
    assert str(back) == str(path) and back.parts == path.parts
    assert back.parent == path.parent and back.name == path.name
    assert back / "z.pdf" == path / "z.pdf" and str(back / "z") == str(path / "z")
    assert back.is_absolute() == path.is_absolute()


def test_a_bundle_and_its_candidate_round_trip_equal(tmp_path: Path) -> None:
    """Every Path inside (invoice, sidecar, attachments, a conversion's PDF) comes back
    equal; the Bundle and Candidate compare equal to what was sent."""
    out = tmp_path / "outbox"
    cand = Candidate("INV-1", out / "INV-1.xml", out / "INV-1", out / "INV-1.ready")
    bundle = Bundle(
        invoice_file=InvoiceFile(out / "INV-1.xml", "INV-1.xml", 10, "a" * 64, "ubl", ("INV-1",)),
        sidecar=out / "INV-1",
        attachments=(Attachment(out / "INV-1" / "scan.png", "INV-1/scan.png", "scan.png", "INV-1",
                                5, "b" * 64, "Attachment",
                                converted=Conversion("scan.pdf", 7, "c" * 64, 1, "image/png",
                                                     out / "processing" / "scan.pdf")),),
        channel="e-invoice",
        findings=(Finding("x", "INV-1.xml", "a message", "warning"),),
    )
    back_cand, back_bundle = reader_wire.loads(reader_wire.dumps((cand, bundle)))
    assert back_cand == cand and back_bundle == bundle
    assert back_bundle.attachments[0].converted.path == out / "processing" / "scan.pdf"


def test_a_candidate_takes_its_look_alike_sidecars_to_the_reader(tmp_path: Path) -> None:
    """The look-alikes a listing found (inv-1/ beside INV-1.xml) cross the pipe with the
    candidate: the reader reports them without listing the outbox."""
    out = tmp_path / "outbox"
    cand = Candidate("INV-1", out / "INV-1.xml", out / "INV-1", out / "INV-1.ready",
                     ("Inv-1", "inv-1"))
    back = reader_wire.loads(reader_wire.dumps(cand))
    assert back.look_alikes == ("Inv-1", "inv-1") and back == cand
