"""The manifest and the bundle id (docs/protocol.md, sections 2 and 3)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.bundle import Attachment, Bundle, Finding, InvoiceFile
from daemon.manifest import (
    build_manifest,
    bundle_id_from_manifest,
    bundle_id_of,
    ordered_attachments,
    safe_filename,
)

INVOICE_SHA = "a" * 64


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def att(invoice_id: str, name: str, doc_type: str = "Attachment", note: str = "",
        content: str | None = None, pages: int | None = None) -> Attachment:
    return Attachment(Path("/outbox/x") / name, f"x/{name}", name, invoice_id, 100,
                      sha(content if content is not None else f"{invoice_id}/{name}"),
                      doc_type, note, "application/pdf", pages)


def bundle(ids: tuple[str, ...], attachments: list[Attachment],
           invoice_name: str = "batch-42.xml", invoice_sha: str = INVOICE_SHA) -> Bundle:
    inv = InvoiceFile(Path("/outbox") / invoice_name, invoice_name, 1234, invoice_sha, "ubl", ids)
    return Bundle(inv, Path("/outbox/batch-42"), tuple(attachments), "e-invoice")


def protocol_bundle_id(invoice_sha256: str, rows: list[list[str]]) -> str:
    """The bundle id exactly as docs/protocol.md writes it, computed independently of daemon
    code."""
    canonical = json.dumps({"invoice_sha256": invoice_sha256, "attachments": rows},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def two_invoice_bundle() -> Bundle:
    # Deliberately out of order on input: the manifest order must not depend on it.
    return bundle(("INV-2001", "INV-2002"), [
        att("INV-2002", "spec.pdf", "Specification", "Räkning ✓"),
        att("INV-2001", "contract.pdf", "Contract", "Signed"),
        att("INV-2001", "a.pdf"),
        att("INV-2001", "B.pdf", "Timesheet"),
    ])


class TestBundleId:
    def test_matches_the_protocol_formula(self) -> None:
        """bundle_id is sha256 of the protocol's canonical JSON, rows in manifest order."""
        b = two_invoice_bundle()
        expected = protocol_bundle_id(INVOICE_SHA, [
            ["INV-2001", "B.pdf", sha("INV-2001/B.pdf"), "Timesheet", ""],
            ["INV-2001", "a.pdf", sha("INV-2001/a.pdf"), "Attachment", ""],
            ["INV-2001", "contract.pdf", sha("INV-2001/contract.pdf"), "Contract", "Signed"],
            ["INV-2002", "spec.pdf", sha("INV-2002/spec.pdf"), "Specification", "Räkning ✓"],
        ])
        assert bundle_id_of(b) == expected
        assert re.fullmatch(r"[0-9a-f]{64}", expected)

    def test_no_attachments(self) -> None:
        """A bundle without attachments hashes an empty attachment list."""
        assert bundle_id_of(bundle(("INV-1",), [])) == protocol_bundle_id(INVOICE_SHA, [])

    def test_order_follows_the_invoice_file_not_the_input(self) -> None:
        """Invoices go in the order the file holds them: swapping the file's order changes rows."""
        b = two_invoice_bundle()
        swapped = replace(b, invoice_file=replace(b.invoice_file,
                                                  invoice_ids=("INV-2002", "INV-2001")))
        assert [a.invoice_id for a in ordered_attachments(swapped)][0] == "INV-2002"
        assert bundle_id_of(swapped) != bundle_id_of(b)

    def test_attachments_sorted_by_code_point(self) -> None:
        """Within an invoice, attachments sort by original name in code points (B < a)."""
        names = [a.original_name for a in ordered_attachments(two_invoice_bundle())]
        assert names == ["B.pdf", "a.pdf", "contract.pdf", "spec.pdf"]

    def test_same_content_same_id(self) -> None:
        """The id depends on content only: the same files in another order, path or size agree."""
        b = two_invoice_bundle()
        again = bundle(b.invoice_ids, [replace(a, path=Path("/processing") / a.original_name,
                                               content_type="image/png", pages=7)
                                       for a in reversed(b.attachments)])
        assert bundle_id_of(again) == bundle_id_of(b)

    @pytest.mark.parametrize("change", [
        lambda a: replace(a, document_type="Contract2"),
        lambda a: replace(a, note="changed"),
        lambda a: replace(a, sha256=sha("other bytes")),
        lambda a: replace(a, original_name="renamed.pdf"),
        lambda a: replace(a, invoice_id="INV-2002"),
    ])
    def test_any_change_changes_the_id(self, change) -> None:  # type: ignore[no-untyped-def]
        """Changing one attachment's type, note, hash, name or invoice gives another id."""
        b = two_invoice_bundle()
        changed = bundle(b.invoice_ids, [change(a) if a.original_name == "contract.pdf" else a
                                         for a in b.attachments])
        assert bundle_id_of(changed) != bundle_id_of(b)

    def test_invoice_hash_changes_the_id(self) -> None:
        """Another invoice file (another hash) gives another id."""
        b = two_invoice_bundle()
        other = bundle(b.invoice_ids, list(b.attachments), invoice_sha="b" * 64)
        assert bundle_id_of(other) != bundle_id_of(b)

    def test_receiver_recomputes_the_id_from_the_manifest(self) -> None:
        """bundle_id_from_manifest(build_manifest(b)) == bundle_id_of(b), also with safe names."""
        b = two_invoice_bundle()
        for safe in (True, False):
            m = build_manifest(b, safe_filenames=safe)
            assert bundle_id_from_manifest(m) == bundle_id_of(b) == m["bundle_id"]

    def test_recomputed_from_json_round_trip(self) -> None:
        """The manifest as sent (JSON text) still yields the id; non-ASCII notes survive."""
        b = two_invoice_bundle()
        m = json.loads(json.dumps(build_manifest(b)))
        assert bundle_id_from_manifest(m) == bundle_id_of(b)


class TestManifest:
    def test_shape(self) -> None:
        """The manifest has the fields of docs/protocol.md (section 2), parts numbered in
        manifest order."""
        b = two_invoice_bundle()
        warn = Finding("unattached-invoice", "batch-42.xml", "no attachments", "warning",
                       "INV-2003")
        m = build_manifest(b, warnings=[warn], created_at="2026-11-26T17:00:00Z")
        assert m["manifest_version"] == 1
        assert m["created_at"] == "2026-11-26T17:00:00Z"
        assert m["channel"] == "e-invoice"
        assert m["invoice_file"] == {"name": "batch-42.xml", "original_name": "batch-42.xml",
                                     "size": 1234, "sha256": INVOICE_SHA, "format": "ubl"}
        assert [i["id"] for i in m["invoices"]] == ["INV-2001", "INV-2002"]
        parts = [(a["part"], a["original_name"]) for i in m["invoices"] for a in i["attachments"]]
        assert parts == [("attachment-1", "B.pdf"), ("attachment-2", "a.pdf"),
                         ("attachment-3", "contract.pdf"), ("attachment-4", "spec.pdf")]
        contract = m["invoices"][0]["attachments"][2]
        assert contract["document_type"] == "Contract" and contract["note"] == "Signed"
        assert contract["sha256"] == sha("INV-2001/contract.pdf")
        assert contract["size"] == 100 and contract["content_type"] == "application/pdf"
        assert m["warnings"] == [{"code": "unattached-invoice", "invoice_id": "INV-2003",
                                  "file": "batch-42.xml", "message": "no attachments"}]

    def test_unattached_invoice_has_empty_list(self) -> None:
        """An invoice without attachments is listed with an empty attachment list."""
        m = build_manifest(bundle(("INV-1", "INV-2"), [att("INV-1", "x.pdf")]))
        assert m["invoices"][1] == {"id": "INV-2", "attachments": []}

    def test_pages_only_when_known(self) -> None:
        """pages is present when validation counted them, absent otherwise."""
        m = build_manifest(bundle(("INV-1",), [att("INV-1", "a.pdf", pages=3),
                                               att("INV-1", "b.csv")]))
        a, b = m["invoices"][0]["attachments"]
        assert a["pages"] == 3
        assert "pages" not in b

    def test_safe_names_and_original_names(self) -> None:
        """With safe_filenames the sent name is folded; original_name is always the name on disk."""
        b = bundle(("Å-1",), [att("Å-1", "Tidrapport oktober.pdf")],
                   invoice_name="Faktura Å-1.xml")
        m = build_manifest(b)
        a = m["invoices"][0]["attachments"][0]
        assert (a["name"], a["original_name"]) == ("Tidrapport_oktober.pdf",
                                                   "Tidrapport oktober.pdf")
        assert m["invoice_file"]["name"] == "Faktura_A-1.xml"
        assert m["invoice_file"]["original_name"] == "Faktura Å-1.xml"
        assert m["invoices"][0]["id"] == "Å-1"  # the real id, never folded

    def test_names_kept_without_safe_filenames(self) -> None:
        """With safe_filenames = false the sent name is the name on disk (and original_name)."""
        m = build_manifest(bundle(("INV-1",), [att("INV-1", "Tidrapport oktober.pdf")],
                                  invoice_name="Faktura Å.xml"), safe_filenames=False)
        a = m["invoices"][0]["attachments"][0]
        assert a["name"] == a["original_name"] == "Tidrapport oktober.pdf"
        assert m["invoice_file"]["name"] == m["invoice_file"]["original_name"] == "Faktura Å.xml"


class TestSafeFilename:
    @pytest.mark.parametrize("name,expected", [
        ("Tidrapport oktober.pdf", "Tidrapport_oktober.pdf"),
        ("Å", "A"),
        ("Räkning för Öland.pdf", "Rakning_for_Oland.pdf"),
        ("INV-1001.xml", "INV-1001.xml"),
        ("a/b\\c.pdf", "a_b_c.pdf"),
        ("weird  &  name!.pdf", "weird_name_.pdf"),
    ])
    def test_examples(self, name: str, expected: str) -> None:
        """The examples of docs/protocol.md (File names) fold as stated; runs of other
        characters become one '_'."""
        assert safe_filename(name) == expected

    @pytest.mark.parametrize("name", ["", ".", "..", "日本語", "日本.pdf", "🙂", "/",
                                      "../../etc/passwd",
                                      "...", "a\x00b", "ﬁle ⑴.pdf"])
    def test_always_a_plain_name(self, name: str) -> None:
        """The result is never empty, '.', '..', hidden or a path: only [A-Za-z0-9._-]."""
        out = safe_filename(name)
        assert re.fullmatch(r"[A-Za-z0-9._-]+", out), out
        assert out not in (".", "..")
        assert not out.startswith(".")
        assert "/" not in out and "\\" not in out

    @pytest.mark.parametrize("name,expected", [
        ("Счёт.pdf", "file-2eb0a6b9.pdf"),
        ("Отчёт March.pdf", "March-31c03100.pdf"),
        ("日本.tar.gz", "file-46e2a081.tar.gz"),
        ("Rechnung 100€.pdf", "Rechnung_100-2f28fb05.pdf"),
    ])
    def test_a_name_with_letters_that_have_no_ascii_form_is_tagged(self, name: str,
                                                                   expected: str) -> None:
        """Letters, digits or symbols with no ASCII form are not just dropped: the stem
        gets '-' and 8 hex digits of the SHA-256 of the name, before the extension."""
        assert safe_filename(name) == expected
        tag = hashlib.sha256(name.encode()).hexdigest()[:8]
        assert tag in expected

    def test_names_in_another_script_stay_distinct_and_stable(self) -> None:
        """Two Cyrillic names fold to two names (not both 'file.pdf'); the same name, NFC
        or NFD as a Mac writes it, always folds to the same one (every attempt, every
        daemon)."""
        names = ["Счёт.pdf", "Акт.pdf", "Τιμολόγιο.pdf", "日本.pdf", "日本語.pdf"]
        folded = [safe_filename(n) for n in names]
        assert len(set(folded)) == len(names)
        assert all(f.endswith(".pdf") for f in folded)
        assert safe_filename(unicodedata.normalize("NFD", "Счёт.pdf")) == folded[0]

    def test_accents_and_punctuation_alone_add_no_tag(self) -> None:
        """Accents fold to their letter and punctuation to '_' or nothing, as before: only
        what would otherwise vanish is tagged."""
        assert safe_filename("Invoice – March.pdf") == "Invoice_March.pdf"
        assert safe_filename("Örebro Kund’s.pdf") == "Orebro_Kunds.pdf"

    @pytest.mark.parametrize("name,expected", [
        ("Kjøp.pdf", "Kjop.pdf"), ("Straße.pdf", "Strasse.pdf"), ("Æble.pdf", "AEble.pdf"),
        ("Łódź.pdf", "Lodz.pdf"),
    ])
    def test_latin_letters_without_an_accent_to_drop_are_spelt_out(self, name: str,
                                                                   expected: str) -> None:
        """ø, ß, æ, ł have no ASCII form under NFKD; they are spelt out as the usual ASCII
        letters rather than dropped or tagged."""
        assert safe_filename(name) == expected

    @pytest.mark.parametrize("name", ["a" * 245 + "Я.pdf", "㎉" * 85, "a." + "b" * 250,
                                      "x" * 251 + ".pdf"])
    def test_a_folded_name_never_exceeds_what_a_file_system_takes(self, name: str) -> None:
        """Folding can lengthen a name (NFKD, the tag): the result is cut to NAME_MAX
        (255) characters, keeps its extension when it has a short one, and is tagged so
        that two long names cut alike stay apart."""
        out = safe_filename(name)
        assert len(out.encode()) <= 255
        assert re.fullmatch(r"[A-Za-z0-9._-]+", out) and not out.startswith(".")
        if name.endswith(".pdf"):
            assert out.endswith(".pdf")

    def test_two_long_names_cut_alike_stay_apart(self) -> None:
        """Two names that fold past 255 characters and differ only after the cut go out
        under two names."""
        one, two = safe_filename("㎉" * 85 + ".pdf"), safe_filename("㎉" * 84 + "㎈.pdf")
        assert one != two and len(one) <= 255 and len(two) <= 255

    def test_keeps_the_extension_of_a_non_latin_name(self) -> None:
        """'日本.pdf' keeps its extension and does not become the hidden name '.pdf'."""
        assert safe_filename("日本.pdf").endswith(".pdf")
        assert safe_filename("日本.pdf") != ".pdf"
