"""ubl-embedded and [delivery] safe_filenames (docs/einvoice.md, Building the document): an
embedded file's cbc:ID and filename are folded to plain ASCII as a part's filename is, and
names that come to one once folded are an error naming both files."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import pdf_bytes, ubl_invoice, write

from .broken import BASE, EXAMPLES
from .test_embed import NS, built, bundle_of, embedded_check, refs

TIDRAPPORT = "Tidrapport oktober å.pdf"


@pytest.mark.parametrize(("safe_filenames", "sent"), [
    (True, "Tidrapport_oktober_a.pdf"), (False, TIDRAPPORT)], ids=["folded", "as-is"])
def test_an_embedded_files_id_and_filename_are_folded_under_safe_filenames(
        tmp_path: Path, safe_filenames: bool, sent: str) -> None:
    """An attachment 'Tidrapport oktober å.pdf' goes into the document as
    'Tidrapport_oktober_a.pdf' (cbc:ID and filename alike) under the default
    safe_filenames = true, as its multipart part would be named; with
    safe_filenames = false it goes in under its name on disk. The document passes the
    checks either way."""
    b = bundle_of(tmp_path, BASE, {TIDRAPPORT: ("Snippet1", pdf_bytes(), "application/pdf")})
    [doc] = built(b, safe_filenames).documents
    [ref] = refs(doc.data)
    obj = ref.find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", NS)
    assert (ref.findtext("cbc:ID", namespaces=NS), obj.get("filename")) == (sent, sent)
    assert embedded_check(b, safe_filenames) == []


def test_two_attachments_that_fold_to_one_name_are_a_collision_naming_both(
        tmp_path: Path) -> None:
    """'Tidrapport oktober å.pdf' and 'Tidrapport_oktober_a.pdf' would both be embedded
    as 'Tidrapport_oktober_a.pdf': the document is not built, and the error names both
    files and what the name became. Without folding they are two names."""
    b = bundle_of(tmp_path, BASE, {
        TIDRAPPORT: ("Snippet1", pdf_bytes(), "application/pdf"),
        "Tidrapport_oktober_a.pdf": ("Snippet1", pdf_bytes(2), "application/pdf")})
    plan = built(b)
    assert plan.documents == ()
    [f] = plan.findings
    assert (f.code, f.file, f.invoice_id) == (
        "embed-name-collision", "INV/Snippet1/Tidrapport_oktober_a.pdf", "Snippet1")
    assert f.message == (
        f"would be embedded under the same file name as 'INV/Snippet1/{TIDRAPPORT}': "
        "'Tidrapport_oktober_a.pdf' once [delivery] safe_filenames has folded the names to "
        "ASCII, ignoring case; Peppol needs each embedded file name once — rename one of them")
    [doc] = built(b, safe_filenames=False).documents
    assert sorted(r.findtext("cbc:ID", namespaces=NS) for r in refs(doc.data)) == [
        TIDRAPPORT, "Tidrapport_oktober_a.pdf"]


@pytest.mark.parametrize("safe_filenames", [True, False], ids=["folded", "as-is"])
def test_a_name_that_folds_to_one_the_document_embeds_already_is_a_collision(
        tmp_path: Path, safe_filenames: bool) -> None:
    """The official Norwegian example embeds Hours-spent.csv itself. An attachment
    'Hours-spént.csv' folds to that very name: a second file of one name in the
    document, an error naming the attachment and the document's own file. Sent as it
    is (safe_filenames = false), it is another name and goes in beside it."""
    data = (EXAMPLES.parent / "peppol" / "Norwegian-example-1.xml").read_bytes()
    b = bundle_of(tmp_path, data, {"Hours-spént.csv": ("TOSL108", b"a;b\n1;2\n", "text/csv")},
                  ids=("TOSL108",))
    found = embedded_check(b, safe_filenames)
    if safe_filenames:
        [f] = found
        assert (f.code, f.file, f.severity) == (
            "embed-name-collision", "INV/TOSL108/Hours-spént.csv", "error")
        assert f.message.startswith("would be embedded under the same file name as the "
                                    "document's own 'Hours-spent.csv': 'Hours-spent.csv' once "
                                    "[delivery] safe_filenames has folded the names")
    else:
        assert found == []
        [doc] = built(b, safe_filenames=False).documents
        assert [r.findtext("cbc:ID", namespaces=NS) for r in refs(doc.data)][-1] == \
            "Hours-spént.csv"


def test_the_daemons_check_refuses_two_files_that_fold_to_one_name(tmp_path: Path) -> None:
    """Read and checked as the daemon does (finish.evaluate) under ubl-embedded: a
    sidecar holding 'Tidrapport oktober å.pdf' and 'Tidrapport_oktober_a.pdf' is a
    name-collision error naming both files, and nothing else is built from it."""
    from claimed import make

    from daemon.delivery.finish import evaluate
    from daemon.watching.scan import list_outbox

    _, s = make(tmp_path, delivery={"format": "ubl-embedded"})
    write(s.outbox.path / "INV-1" / TIDRAPPORT, pdf_bytes())
    write(s.outbox.path / "INV-1" / "Tidrapport_oktober_a.pdf", pdf_bytes(2))
    write(s.outbox.path / "INV-1.xml", ubl_invoice("INV-1"))
    [cand] = list_outbox(s.outbox).candidates.values()
    bundle = evaluate(cand, s)
    [error] = bundle.errors
    assert (error.code, error.file) == ("name-collision", "INV-1/Tidrapport_oktober_a.pdf")
    assert error.message == (f"differs from 'INV-1/{TIDRAPPORT}' only in characters that are "
                             "folded when sent (both become 'Tidrapport_oktober_a.pdf') — "
                             "rename one of them")
