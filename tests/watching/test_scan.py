"""Scan: what counts as an invoice file in the outbox, and what the listing hands the snapshot
settling compares (docs/folder-convention.md, sections 1 and 4; the snapshot itself:
test_snapshot.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from daemon.configuration.config import OutboxConfig
from daemon.watching import scan as scan_mod
from daemon.watching.scan import Candidate, candidate_for, list_outbox, look, refused_code
from daemon.watching.sidecarnames import alike_kind
from daemon.watching.snapshot import snapshot
from tests.helpers import refuse_stat


def cfg_for(outbox: Path, **kw: object) -> OutboxConfig:
    return OutboxConfig(path=outbox, **kw)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    o = tmp_path / "outbox"
    o.mkdir()
    return o


class TestListOutbox:
    def test_default_patterns_find_xml_and_pdf(self, outbox: Path) -> None:
        """Files matching the default invoice patterns (*.xml, *.pdf) are candidates."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-2.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert sorted(listing.candidates) == ["INV-1.xml", "INV-2.pdf"]
        assert listing.others == ()

    def test_candidate_knows_sidecar_and_marker_paths(self, outbox: Path) -> None:
        """The sidecar is the stem (+ sidecar_suffix), the marker NAME + marker_suffix."""
        touch(outbox / "INV-1.xml")
        cand = list_outbox(cfg_for(outbox, sidecar_suffix=".att")).candidates["INV-1.xml"]
        assert cand == Candidate("INV-1", outbox / "INV-1.xml", outbox / "INV-1.att",
                                 outbox / "INV-1.ready")

    def test_the_wait_for_a_marker_too_long_to_create_says_to_rename_the_invoice_file(
            self, outbox: Path) -> None:
        """Under completion = "marker" an invoice file's name at the limit (255 bytes) has
        a marker no file can be named: the status page, `status` and `check` said to
        "create that empty file", which fails. Now they say to rename the invoice file
        shorter by what the marker's name is over (as for a release file of such a name),
        then create it; a name with room keeps the words it had."""
        name = "A" * 251 + ".xml"
        touch(outbox / name)
        touch(outbox / "INV-1.xml")
        listing = list_outbox(cfg_for(outbox, completion="marker"))
        long_words = scan_mod.marker_wait(listing.candidates[name])
        assert f"waits for its marker file {'A' * 251}.ready" in long_words
        assert "longer than a file name may be (255 bytes), so it cannot be created" \
            in long_words
        assert "to a name at least 2 characters shorter" in long_words
        assert "create that empty file" not in long_words
        assert scan_mod.marker_wait(listing.candidates["INV-1.xml"]).endswith(
            "— if it is, create that empty file")

    def test_patterns_match_case_insensitively(self, outbox: Path) -> None:
        """Windows clients write upper-case extensions: INV.XML and Scan.Pdf are invoices."""
        touch(outbox / "INV-3.XML")
        touch(outbox / "Scan.Pdf")
        listing = list_outbox(cfg_for(outbox))
        assert sorted(listing.candidates) == ["INV-3.XML", "Scan.Pdf"]
        assert listing.candidates["INV-3.XML"].sidecar == outbox / "INV-3"

    @pytest.mark.parametrize("patterns", [["*.xml", "*.txt"], ["*"]])
    def test_outboxds_own_errors_file_is_no_invoice_under_wide_patterns(
            self, outbox: Path, patterns: list[str]) -> None:
        """An admin who adds "*.txt" (or "*") to invoice_patterns does not make the
        INV-7.errors.txt outboxd wrote beside a held bundle an invoice of its own, to be
        read and sent; a clerk's notes.txt is one, as the patterns say."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "INV-7.errors.txt")
        touch(outbox / "notes.txt")
        listing = list_outbox(cfg_for(outbox, invoice_patterns=patterns))
        assert sorted(listing.candidates) == ["INV-7.xml", "notes.txt"]
        assert "INV-7.errors.txt" not in listing.others

    @pytest.mark.parametrize("completion", ["settle", "marker"])
    def test_is_invoice_file_says_what_the_listing_takes_for_an_invoice_file(
            self, outbox: Path, completion: str) -> None:
        """check, retry, orphans and look-alikes ask is_invoice_file whether a name is an
        invoice file; under invoice_patterns = ["*"] it answers as the daemon's listing
        does for every kind of root file: the status page, a release file, a marker,
        the errors file, a hidden or temporary file and a plain invoice file."""
        names = ["INV-7", "INV-7.xml", "INV-7.ready", "INV-7.errors.txt",
                 "INV-7.send-anyway", "outboxd-status.html", ".hidden.xml", "INV-7.xml.part"]
        for name in names:
            touch(outbox / name)
        cfg = cfg_for(outbox, invoice_patterns=["*"], completion=completion)
        listed = set(list_outbox(cfg).candidates)
        assert {n for n in names if scan_mod.is_invoice_file(cfg, n)} == listed
        assert "INV-7.send-anyway" not in listed and "outboxd-status.html" not in listed

    def test_a_marker_is_no_invoice_under_a_pattern_that_takes_every_name(
            self, outbox: Path) -> None:
        """With completion = "marker" and invoice_patterns = ["*"], INV-7.ready is the
        marker of the invoice file INV-7, not a second invoice file waiting for its own.
        Under completion = "settle" there are no markers: it is an invoice file as any
        other name is under that pattern."""
        touch(outbox / "INV-7")
        touch(outbox / "INV-7.ready")
        listing = list_outbox(cfg_for(outbox, invoice_patterns=["*"], completion="marker"))
        assert list(listing.candidates) == ["INV-7"]
        assert listing.others == ()
        listing = list_outbox(cfg_for(outbox, invoice_patterns=["*"]))
        assert sorted(listing.candidates) == ["INV-7", "INV-7.ready"]

    def test_custom_patterns_replace_the_default(self, outbox: Path) -> None:
        """invoice_patterns decides: with ["*.xml"] a PDF is just another root file."""
        touch(outbox / "a.xml")
        touch(outbox / "b.pdf")
        listing = list_outbox(cfg_for(outbox, invoice_patterns=["*.xml"]))
        assert list(listing.candidates) == ["a.xml"]
        assert listing.others == ("b.pdf",)

    @pytest.mark.parametrize("name", [
        ".hidden.xml", "~$INV.xml", "._INV.xml", "INV.xml.tmp", "INV.xml.temp", "INV.xml.part",
        "INV.pdf.partial", "INV.pdf.crdownload", ".INV.xml.swp", ".~lock.INV.xml#",
        "Thumbs.db", "desktop.ini", ".DS_Store", ".syncthing.INV.xml.tmp",
    ])
    def test_ignored_and_in_progress_names_are_skipped(self, outbox: Path, name: str) -> None:
        """Ignored and in-progress names are neither candidates nor reported as others."""
        touch(outbox / name)
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates == {}
        assert listing.others == ()

    def test_ignore_patterns_from_config(self, outbox: Path) -> None:
        """[outbox] ignore_patterns are litter too, even when they match an invoice pattern."""
        touch(outbox / "draft-1.xml")
        touch(outbox / "INV-1.xml")
        listing = list_outbox(cfg_for(outbox, ignore_patterns=["draft-*"]))
        assert list(listing.candidates) == ["INV-1.xml"]
        assert listing.others == ()

    def test_folders_are_not_candidates_or_others(self, outbox: Path) -> None:
        """Folders (sidecars, even one named like an invoice) are never listed themselves."""
        (outbox / "INV-1").mkdir()
        (outbox / "folder.xml").mkdir()
        (outbox / ".outboxd" / "processing").mkdir(parents=True)
        touch(outbox / "INV-1" / "nested.xml")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates == {}
        assert listing.others == ()

    def test_other_root_files_are_reported(self, outbox: Path) -> None:
        """Root files that are neither invoices nor ignored are reported in `others`."""
        touch(outbox / "readme.txt")
        touch(outbox / "INV-1.xml")
        touch(outbox / "notes.docx")
        listing = list_outbox(cfg_for(outbox))
        assert list(listing.candidates) == ["INV-1.xml"]
        assert listing.others == ("notes.docx", "readme.txt")

    def test_markers_and_error_files_are_not_others(self, outbox: Path) -> None:
        """Under completion = "marker" the marker beside an invoice and our own
        NAME.errors.txt are not 'other' files."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.ready")
        touch(outbox / "INV-1.errors.txt")
        listing = list_outbox(cfg_for(outbox, completion="marker"))
        assert listing.others == ()

    def test_a_marker_where_no_marker_is_used_is_another_file(self, outbox: Path) -> None:
        """Under completion = "settle" a NAME.ready does nothing and stays when its bundle
        goes: it is a file left alone, listed (by the listing and by an event's look) like
        any other, where it was passed over unseen as a marker (found by bench.fuzznames)."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.ready")
        touch(outbox / "INV-1.errors.txt")
        cfg = cfg_for(outbox)
        assert list_outbox(cfg).others == ("INV-1.ready",)
        assert look(cfg, "INV-1.ready").others == ("INV-1.ready",)
        assert look(cfg_for(outbox, completion="marker"), "INV-1.ready").others == ()

    def test_symlink_is_never_an_invoice(self, outbox: Path, tmp_path: Path) -> None:
        """A symbolic link named like an invoice (even to a real XML file) is not a candidate."""
        real = touch(tmp_path / "elsewhere.xml")
        (outbox / "INV-9.xml").symlink_to(real)
        (outbox / "dangling.pdf").symlink_to(tmp_path / "missing.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates == {}

    def test_fifo_is_never_an_invoice(self, outbox: Path) -> None:
        """A FIFO named like an invoice is not a candidate (listing never opens it)."""
        os.mkfifo(outbox / "pipe.xml")
        assert list_outbox(cfg_for(outbox)).candidates == {}


class TestLookAlikesInTheListing:
    def test_a_folder_named_like_the_sidecar_in_other_case_is_found(self, outbox: Path) -> None:
        """A Windows clerk made inv-7/ beside the ERP's INV-7.xml: to Windows one name, to
        Linux two. The listing gives the candidate that folder as a look-alike (and an
        Inv-7 file too); a bundle without one has none, and the sidecar itself is none."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "inv-7" / "a.pdf")
        touch(outbox / "Inv-7")
        touch(outbox / "INV-8.xml")
        touch(outbox / "INV-8" / "a.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ("Inv-7", "inv-7")
        assert listing.candidates["INV-8.xml"].look_alikes == ()

    def test_the_sidecar_of_an_invoice_file_named_in_other_case_is_none(
            self, outbox: Path) -> None:
        """INV-7.xml and inv-7.xml are two bundles on Linux, and inv-7/ is the second
        one's sidecar: no look-alike of either. Of another extension (inv-7.pdf) it
        stays one: to a person it is the folder of both files, as A/ is of A.xml and
        A.pdf (the rule of the Unicode forms, match.py)."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "inv-7.xml")
        touch(outbox / "inv-7" / "a.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ()
        assert listing.candidates["inv-7.xml"].look_alikes == ()
        (outbox / "inv-7.xml").rename(outbox / "inv-7.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ("inv-7",)
        assert listing.candidates["inv-7.pdf"].look_alikes == ()

    @pytest.mark.parametrize("folder", ["INV-7 ", "INV-7.", " INV-7", "\u00a0INV-7",
                                        "INV-7\u00a0", "inv-7 ", "INV-7\uf028"])
    def test_a_folder_named_like_the_sidecar_but_for_a_space_or_dot_at_an_end_is_found(
            self, outbox: Path, folder: str) -> None:
        """`INV-7 /` (a name copied with its space; a Mac's, stored as U+F028 by Samba),
        `INV-7./`, ` INV-7/` and the non-breaking space beside INV-7.xml: the listing gives
        the candidate that folder as a look-alike, as it does one in other case."""
        touch(outbox / "INV-7.xml")
        touch(outbox / folder / "a.pdf")
        touch(outbox / "INV-70" / "a.pdf")
        assert list_outbox(cfg_for(outbox)).candidates["INV-7.xml"].look_alikes == (folder,)

    def test_the_sidecar_of_an_invoice_file_with_a_space_in_its_name_is_none(
            self, outbox: Path) -> None:
        """`INV-7 .xml` beside INV-7.xml: two bundles on Linux, and `INV-7 /` is the
        first one's sidecar, INV-7/ the second's — neither is a look-alike of the other."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "INV-7 .xml")
        touch(outbox / "INV-7 " / "a.pdf")
        touch(outbox / "INV-7" / "b.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ()
        assert listing.candidates["INV-7 .xml"].look_alikes == ()

    def test_a_folder_named_with_an_invoice_extension_is_found(self, outbox: Path) -> None:
        """A folder made by copying an invoice file's name, extension and all (INV-7.XML/,
        INV-7.pdf/ beside INV-7.xml): a look-alike; one with another extension is not,
        nor is the sidecar of the invoice file INV-7.pdf.xml."""
        touch(outbox / "INV-7.xml")
        for folder in ("INV-7.XML", "INV-7.pdf", "INV-7.doc", "INV-8.pdf"):
            touch(outbox / folder / "a.pdf")
        assert list_outbox(cfg_for(outbox)).candidates["INV-7.xml"].look_alikes == (
            "INV-7.XML", "INV-7.pdf")
        touch(outbox / "INV-7.pdf.xml")
        assert list_outbox(cfg_for(outbox)).candidates["INV-7.xml"].look_alikes == (
            "INV-7.XML",)

    @pytest.mark.parametrize("folder", [
        "INV-7 (1)", "INV-7 (2)", "INV-7 - Copy", "INV-7 - Copy (2)", "INV-7 - Kopia",
        "INV-7 - Kopie", "INV-7 - Copie", "INV-7 copy", "INV-7 copy 2", "INV-7 2",
        "inv-7 - copy", "INV-7 - Copy - Copy", "INV-7.xml (1)"])
    def test_a_folder_named_as_a_copy_of_the_sidecar_is_found(
            self, outbox: Path, folder: str) -> None:
        """The names Windows Explorer (in English, Swedish, German, French), a browser or
        a Mac's Finder gives a second copy of INV-7/ beside INV-7.xml, a copy of a copy,
        and a copy of a look-alike: the listing gives the candidate that folder as a
        look-alike (before, it was a folder of another name, and INV-7.xml went without
        the files in it)."""
        touch(outbox / "INV-7.xml")
        touch(outbox / folder / "a.pdf")
        touch(outbox / "INV-70 (1)" / "a.pdf")
        assert list_outbox(cfg_for(outbox)).candidates["INV-7.xml"].look_alikes == (folder,)

    @pytest.mark.parametrize("folder", ["INV-7 1", "INV-7-2", "INV-7 (100)", "INV-7 (0)",
                                        "INV-72", "INV-7 copies", "INV-7 - Copy of"])
    def test_a_folder_of_another_name_ending_in_a_number_is_no_copy(
            self, outbox: Path, folder: str) -> None:
        """Only the ends a copy gets (a Finder numbers its copies from 2, Windows' counts stay
        small): INV-7-2/, INV-7 1/ or INV-7 (100)/ are folders of other names, and do not
        hold INV-7.xml back."""
        touch(outbox / "INV-7.xml")
        touch(outbox / folder / "a.pdf")
        assert list_outbox(cfg_for(outbox)).candidates["INV-7.xml"].look_alikes == ()

    def test_the_sidecar_of_an_invoice_file_named_as_a_copy_is_its_own(
            self, outbox: Path) -> None:
        """`INV-7 (1).xml` (a second download of an invoice, or so named by the ERP) with its
        own sidecar `INV-7 (1)/` beside INV-7.xml: the folder is that file's exact sidecar,
        no copy of INV-7/; and `INV-7 (1) - Copy/` is a copy of it, not of INV-7/. Without
        `INV-7 (1).xml` both are INV-7.xml's."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "INV-7 (1)" / "a.pdf")
        touch(outbox / "INV-7 (1) - Copy" / "a.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ("INV-7 (1)", "INV-7 (1) - Copy")
        touch(outbox / "INV-7 (1).xml")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ()
        assert listing.candidates["INV-7 (1).xml"].look_alikes == ("INV-7 (1) - Copy",)

    def test_a_copy_of_a_look_alike_is_a_look_alike_of_both_bundles(self, outbox: Path) -> None:
        """INV-7.xml and inv-7.xml (two bundles on Linux) with `inv-7 (1)/` beside them: a
        copy of inv-7/, which to a clerk on Windows is one name with INV-7/, so whose copy
        it is cannot be told — it holds both back, and is not taken for inv-7.xml's alone
        because inv-7/ would be that file's exact sidecar."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "inv-7.xml")
        touch(outbox / "inv-7 (1)" / "a.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["INV-7.xml"].look_alikes == ("inv-7 (1)",)
        assert listing.candidates["inv-7.xml"].look_alikes == ("inv-7 (1)",)

    def test_a_copy_of_a_folder_named_with_an_extension_is_told_as_a_copy(
            self, outbox: Path) -> None:
        """`INV-7.xml (1)/` is a second copy of `INV-7.xml/`, not a folder with the
        extension ".xml (1)": its kind (what the clerk is told of it) is a copy's."""
        cand = candidate_for(cfg_for(outbox), "INV-7.xml")
        assert alike_kind(cand, "INV-7.xml (1)") == "copy"
        assert alike_kind(cand, "INV-7.XML") == "invoice"

    @pytest.mark.parametrize("owner", ["Faktura 2.xml", "Faktura 2.pdf", "Faktura 2.PDF"])
    def test_the_sidecar_of_an_invoice_file_of_another_extension_is_no_copy(
            self, outbox: Path, owner: str) -> None:
        """Under the default patterns (*.xml, *.pdf), `Faktura 2/` beside Faktura.xml and
        `Faktura 2.pdf` is the exact sidecar of Faktura 2.pdf, as it is of Faktura 2.xml:
        no copy of Faktura/, so it holds Faktura.xml back for nothing (before, only an
        invoice file of Faktura.xml's own extension made it its own). A copy of it,
        `Faktura 2 (1)/`, is Faktura 2.pdf's look-alike, not Faktura.xml's."""
        touch(outbox / "Faktura.xml")
        touch(outbox / owner)
        touch(outbox / "Faktura 2" / "a.pdf")
        touch(outbox / "Faktura 2 (1)" / "a.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates["Faktura.xml"].look_alikes == ()
        assert listing.candidates[owner].look_alikes == ("Faktura 2 (1)",)

    def test_a_file_of_no_invoice_pattern_owns_no_copy(self, outbox: Path) -> None:
        """`Faktura 2.txt` is no invoice file under *.xml and *.pdf: `Faktura 2/` beside it
        is still a copy's name to Faktura.xml."""
        touch(outbox / "Faktura.xml")
        touch(outbox / "Faktura 2.txt")
        touch(outbox / "Faktura 2" / "a.pdf")
        assert list_outbox(cfg_for(outbox)).candidates["Faktura.xml"].look_alikes == (
            "Faktura 2",)

    def test_under_a_sidecar_suffix_only_the_suffixed_folder_is_the_other_files(
            self, outbox: Path) -> None:
        """Where sidecars are NAME.att, the sidecar of Faktura 2.pdf is `Faktura 2.att/`:
        `Faktura 2/` is a copy of Faktura/ (itself Faktura.att/ without the suffix) and
        holds Faktura.xml back, however Faktura 2.pdf is there; `Faktura 2.att/` does
        not."""
        touch(outbox / "Faktura.xml")
        touch(outbox / "Faktura 2.pdf")
        touch(outbox / "Faktura 2" / "a.pdf")
        touch(outbox / "Faktura 2.att" / "a.pdf")
        listing = list_outbox(cfg_for(outbox, sidecar_suffix=".att"))
        assert listing.candidates["Faktura.xml"].look_alikes == ("Faktura 2",)
        assert listing.candidates["Faktura 2.pdf"].look_alikes == ("Faktura 2",)

    def test_a_backlog_of_numbered_invoice_files_has_no_copies(self, outbox: Path) -> None:
        """`Faktura.xml` beside `Faktura 2.xml` … `Faktura 12.xml`, each with its sidecar:
        every folder is its own invoice file's, none a copy of Faktura/."""
        for name in ("Faktura", *(f"Faktura {i}" for i in range(2, 13))):
            touch(outbox / f"{name}.xml")
            touch(outbox / name / "a.pdf")
        listing = list_outbox(cfg_for(outbox))
        assert {k: c.look_alikes for k, c in listing.candidates.items() if c.look_alikes} == {}

    @pytest.mark.parametrize("patterns", [["*"], ["INV-*"]])
    def test_under_patterns_without_an_extension_a_dotted_invoice_number_is_no_look_alike(
            self, outbox: Path, patterns: list[str]) -> None:
        """invoice_patterns = ["*"] (or "INV-*"): INV-7.2/ and INV-7.old/ beside INV-7.xml
        are folders of other names, not INV-7 with an invoice file's extension — INV-7.xml
        is not held for them. A case variant still is a look-alike."""
        touch(outbox / "INV-7.xml")
        for folder in ("INV-7.2", "INV-7.old", "inv-7"):
            touch(outbox / folder / "a.pdf")
        cand = list_outbox(cfg_for(outbox, invoice_patterns=patterns)).candidates["INV-7.xml"]
        assert cand.look_alikes == ("inv-7",)

    def test_under_a_sidecar_suffix_the_bare_stem_folder_is_found(self, outbox: Path) -> None:
        """[outbox] sidecar_suffix = ".att": INV-7.xml's sidecar is INV-7.att/, and a folder
        INV-7/ beside it (as without the suffix) is a look-alike, as are inv-7.ATT/ and
        INV-7.att / — the sidecar itself is not."""
        touch(outbox / "INV-7.xml")
        for folder in ("INV-7", "INV-7.att", "inv-7.ATT", "INV-7.att ", "INV-70"):
            touch(outbox / folder / "a.pdf")
        cand = list_outbox(cfg_for(outbox, sidecar_suffix=".att")).candidates["INV-7.xml"]
        assert cand.look_alikes == ("INV-7", "INV-7.att ", "inv-7.ATT")

    def test_a_suffix_in_other_case_is_no_invoice_files_sidecar(self, outbox: Path) -> None:
        """sidecar_suffix = ".att" with INV-7.xml and inv-7.xml: inv-7.ATT/ is the sidecar
        of neither (that of inv-7.xml is inv-7.att/), so it is a look-alike of both, not
        taken for inv-7.xml's and left unsaid."""
        touch(outbox / "INV-7.xml")
        touch(outbox / "inv-7.xml")
        touch(outbox / "inv-7.ATT" / "a.pdf")
        listing = list_outbox(cfg_for(outbox, sidecar_suffix=".att"))
        assert listing.candidates["INV-7.xml"].look_alikes == ("inv-7.ATT",)
        assert listing.candidates["inv-7.xml"].look_alikes == ("inv-7.ATT",)

    def test_a_known_candidate_takes_the_look_alikes_of_the_new_listing(
            self, outbox: Path) -> None:
        """A rescan keeps the candidates it knows, but their look-alikes are those of the
        listing it takes now: one made or renamed without an event is found."""
        touch(outbox / "INV-7.xml")
        cfg = cfg_for(outbox)
        first = list_outbox(cfg)
        touch(outbox / "inv-7" / "a.pdf")
        again = list_outbox(cfg, known=first.candidates)
        assert again.candidates["INV-7.xml"].look_alikes == ("inv-7",)
        (outbox / "inv-7").rename(outbox / "INV-7")
        third = list_outbox(cfg, known=again.candidates)
        assert third.candidates["INV-7.xml"].look_alikes == ()

    def test_the_snapshot_holds_the_look_alike(self, outbox: Path) -> None:
        """Its coming and going changes the bundle: the snapshot lists it by name (its
        files are not walked), from its own lstat or the listing's stats alike."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-7.xml")
        before = snapshot(list_outbox(cfg).candidates["INV-7.xml"], cfg)
        touch(outbox / "inv-7" / "a.pdf")
        listing = list_outbox(cfg)
        cand = listing.candidates["INV-7.xml"]
        after = snapshot(cand, cfg)
        assert after is not None and [e[0] for e in after.entries] == ["INV-7.xml", "inv-7"]
        assert after.entries[1][1] == "d" and after != before
        assert snapshot(cand, cfg, listing.stats) == after



class TestSharersInTheListing:
    def test_invoice_files_of_one_stem_share_the_sidecar(self, outbox: Path) -> None:
        """INV-1.xml and its print INV-1.pdf have one sidecar INV-1/: each candidate
        names the other as a sharer; a file of another stem shares nothing."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.pdf")
        touch(outbox / "INV-2.xml")
        cands = list_outbox(cfg_for(outbox)).candidates
        assert cands["INV-1.xml"].sharers == ("INV-1.pdf",)
        assert cands["INV-1.pdf"].sharers == ("INV-1.xml",)
        assert cands["INV-2.xml"].sharers == ()

    def test_under_a_sidecar_suffix_they_share_the_suffixed_folder(self, outbox: Path) -> None:
        """With sidecar_suffix ".att" both files' sidecar is INV-1.att/, and they share it."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.pdf")
        cands = list_outbox(cfg_for(outbox, sidecar_suffix=".att")).candidates
        assert cands["INV-1.xml"].sidecar.name == cands["INV-1.pdf"].sidecar.name == "INV-1.att"
        assert cands["INV-1.xml"].sharers == ("INV-1.pdf",)

    def test_an_ignored_file_or_one_outside_the_patterns_shares_nothing(
            self, outbox: Path) -> None:
        """INV-1.pdf under ignore_patterns, or INV-1.txt (no invoice pattern), is no
        invoice file, so INV-1.xml has the folder to itself."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.pdf")
        touch(outbox / "INV-1.txt")
        cands = list_outbox(cfg_for(outbox, ignore_patterns=["*.pdf"])).candidates
        assert list(cands) == ["INV-1.xml"] and cands["INV-1.xml"].sharers == ()

    def test_a_known_candidate_takes_the_sharers_of_the_new_listing(
            self, outbox: Path) -> None:
        """A rescan hands back the known candidates, each with the sharers there now."""
        touch(outbox / "INV-1.xml")
        cfg = cfg_for(outbox)
        first = list_outbox(cfg)
        touch(outbox / "INV-1.pdf")
        again = list_outbox(cfg, known=first.candidates)
        assert again.candidates["INV-1.xml"].sharers == ("INV-1.pdf",)
        (outbox / "INV-1.pdf").unlink()
        third = list_outbox(cfg, known=again.candidates)
        assert third.candidates["INV-1.xml"].sharers == ()

    def test_the_snapshot_holds_a_sharer_only_while_the_sidecar_is_there(
            self, outbox: Path) -> None:
        """Without the folder the two are plain invoices, each snapshot its own file; with
        it, the other file is in the snapshot, so its going changes the bundle (from its
        own lstat or the listing's stats alike)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.pdf")
        cand = list_outbox(cfg).candidates["INV-1.xml"]
        alone = snapshot(cand, cfg)
        assert alone is not None and [e[0] for e in alone.entries] == ["INV-1.xml"]
        touch(outbox / "INV-1" / "a.pdf")
        listing = list_outbox(cfg)
        shared = snapshot(cand, cfg)
        assert shared is not None and [e[0] for e in shared.entries] == [
            "INV-1.xml", "INV-1", "INV-1/a.pdf", "INV-1.pdf"]
        assert snapshot(cand, cfg, listing.stats) == shared
        (outbox / "INV-1.pdf").rename(outbox / "INV-1" / "INV-1.pdf")
        moved = snapshot(cand, cfg)
        assert moved is not None and "INV-1.pdf" not in [e[0] for e in moved.entries]
        assert moved != shared


class TestRefusedInvoiceNames:
    def test_a_symlinked_invoice_is_refused_with_a_reason(self, outbox: Path,
                                                         tmp_path: Path) -> None:
        """An invoice-pattern name that is a link is not a candidate; it is listed as refused,
        saying it is never followed."""
        target = touch(tmp_path / "elsewhere.xml")
        (outbox / "INV-1.xml").symlink_to(target)
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates == {}
        [(name, why)] = listing.refused
        assert name == "INV-1.xml" and "symbolic link" in why and "never follows" in why

    def test_a_name_that_is_not_utf8_is_refused(self, outbox: Path) -> None:
        """A file name that is not valid UTF-8 is refused, never read; listed by its name
        as the OS gives it (shown escaped where it is shown)."""
        os.close(os.open(os.path.join(os.fsencode(outbox), b"INV-\xff.xml"),
                         os.O_CREAT | os.O_WRONLY, 0o644))
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates == {}
        [(name, why)] = listing.refused
        assert "UTF-8" in why and name == os.fsdecode(b"INV-\xff.xml")


    @pytest.mark.parametrize("name", ["INV-\x07.xml", "INV-\u009b.xml", "INV-\u0085.pdf"])
    def test_a_name_with_a_control_character_is_refused_as_bad_name(
            self, outbox: Path, name: str) -> None:
        """An invoice file whose name holds a control character, C0 or C1 (U+009B, U+0085
        alike), is refused under bad-name, the why naming the character's code, never
        read nor sent; listed by its name on disk."""
        touch(outbox / name)
        listing = list_outbox(cfg_for(outbox))
        assert listing.candidates == {}
        [(on_disk, why)] = listing.refused
        code = f"\\x{ord(name[4]):02x}"
        assert on_disk == name and refused_code(why) == "bad-name"
        assert f"control character ({code})" in why and "rename" in why

    def test_an_invoice_file_named_like_an_archive_paper_is_refused_as_paper_name(
            self, outbox: Path) -> None:
        """Under invoice_patterns "*" an invoice file REASON.txt, reason.json or
        receipt.json would lie in its archive entry where outboxd writes that paper, which
        it never writes over: it is left alone with `paper-name`, saying to rename it.
        Other names stay invoice files."""
        for name in ("REASON.txt", "reason.json", "receipt.json", "REASON.txt.xml",
                     "INV-1.xml"):
            touch(outbox / name)
        listing = list_outbox(cfg_for(outbox, invoice_patterns=["*"]))
        assert sorted(listing.candidates) == ["INV-1.xml", "REASON.txt.xml"]
        refused = dict(listing.refused)
        assert sorted(refused) == ["REASON.txt", "reason.json", "receipt.json"]
        for why in refused.values():
            assert "outboxd keeps for its own papers" in why and "rename the file" in why
            assert refused_code(why) == "paper-name"
        assert look(cfg_for(outbox, invoice_patterns=["*"]), "reason.json").refused == (
            ("reason.json", refused["reason.json"]),)


    @pytest.mark.parametrize("name", ["reason.txt", "Reason.TXT", "REASON.JSON",
                                      "Receipt.Json"])
    def test_a_papers_name_in_other_case_is_refused_as_paper_name_too(
            self, outbox: Path, name: str) -> None:
        """On a case-insensitive share (SMB, a Mac) Reason.TXT is REASON.txt: outboxd's
        paper would land on the clerk's invoice file. Refused like the exact name, the
        message saying which paper it meets and why case does not help."""
        touch(outbox / name)
        listing = list_outbox(cfg_for(outbox, invoice_patterns=["*"]))
        assert listing.candidates == {}
        [(refused, why)] = listing.refused
        assert refused == name and refused_code(why) == "paper-name"
        assert "written in other upper and lower case" in why and "rename the file" in why


class TestRescanFromTheListing:
    def test_a_snapshot_from_the_listing_equals_one_taken_on_its_own(self, outbox: Path) -> None:
        """The rescan takes snapshots from the stats its listing already holds; they are
        the same snapshots the bundle's own lstat calls give (sidecar, marker included)."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "a.pdf")
        touch(outbox / "INV-1.ready")
        touch(outbox / "INV-2.xml")
        cfg = cfg_for(outbox, completion="marker")
        listing = list_outbox(cfg)
        for cand in listing.candidates.values():
            assert snapshot(cand, cfg, listing.stats) == snapshot(cand, cfg)

    def test_known_candidates_are_kept_and_a_changed_kind_is_classified_again(
            self, outbox: Path) -> None:
        """A name that was a candidate and is still a regular file is taken as it was;
        one that became something else (a folder) is classified again, not kept."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-2.xml")
        cfg = cfg_for(outbox)
        first = list_outbox(cfg)
        (outbox / "INV-2.xml").unlink()
        (outbox / "INV-2.xml").mkdir()
        again = list_outbox(cfg, known=first.candidates)
        assert again.candidates["INV-1.xml"] is first.candidates["INV-1.xml"]
        assert "INV-2.xml" not in again.candidates


def test_a_clerks_file_named_like_a_status_page_is_reported_and_a_daemons_page_is_not(
        tmp_path: Path) -> None:
    """Another daemon's page (outboxd-status-hostb.html, as outboxd writes it, running or
    stopped) is never listed; a clerk's file of such a name that is no outboxd page is:
    under patterns that take it, as an invoice file that cannot be used with the rename to
    make; under others, as a file that is not an invoice file. Never silently ignored."""
    from datetime import UTC, datetime

    from daemon.report.pagehtml import page
    now = datetime(2031, 5, 6, 12, 0, tzinfo=UTC)
    (tmp_path / "outboxd-status-hostb.html").write_text(page("", now))
    (tmp_path / "outboxd-status-hostc.html").write_text(page("", now, stopped_at=now))
    (tmp_path / "outboxd-status-report.html").write_text("<html>my report</html>")
    os.mkfifo(tmp_path / "outboxd-status-pipe.html")
    listing = list_outbox(OutboxConfig(path=tmp_path, invoice_patterns=["*"]))
    assert listing.candidates == {} and listing.others == ()
    assert [n for n, _ in listing.refused] == ["outboxd-status-pipe.html",
                                                "outboxd-status-report.html"]
    assert "no such page — rename it" in dict(listing.refused)["outboxd-status-report.html"]
    listing = list_outbox(OutboxConfig(path=tmp_path, invoice_patterns=["*.xml"]))
    assert listing.others == ("outboxd-status-pipe.html", "outboxd-status-report.html")
    assert look(OutboxConfig(path=tmp_path, invoice_patterns=["*.xml"]),
                "outboxd-status-hostb.html").others == ()


def test_a_page_of_another_daemon_that_cannot_be_opened_is_taken_for_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """outboxd-status-hostb.html whose open is refused (made unreadable to this daemon's
    user, or replaced by a rename as the listing looked): taken for the other daemon's
    page and left alone, not said to the clerks as a file of theirs."""
    (tmp_path / "outboxd-status-hostb.html").write_text("<html>")
    real_open = os.open

    def refused(path: object, flags: int, *a: object, **kw: object) -> int:
        if str(path).endswith("outboxd-status-hostb.html"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(os, "open", refused)
    listing = list_outbox(OutboxConfig(path=tmp_path, invoice_patterns=["*.xml"]))
    assert listing.others == () and listing.refused == ()


def test_an_invoice_name_that_cannot_be_used_is_no_bundle_when_its_lstat_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a start, the share answers EIO to the lstat of INV-1.xml and of a name with a
    control character: INV-1.xml stays a bundle (looked at on its own), the other is no
    bundle whatever its lstat says — its name is refused once it can be looked at."""
    for name in ("INV-1.xml", "INV-\x07.xml"):
        touch(tmp_path / name)
    refuse_stat(monkeypatch, {"INV-1.xml", "INV-\x07.xml"}, errno.EIO)
    listing = list_outbox(OutboxConfig(path=tmp_path))
    assert list(listing.candidates) == ["INV-1.xml"]
    assert listing.unlooked == {"INV-1.xml", "INV-\x07.xml"}


def test_a_look_at_a_name_of_an_outbox_replaced_by_a_file_finds_nothing(tmp_path: Path) -> None:
    """An event's look at INV-1.xml once the outbox's path is a file (the folder moved
    aside, a file put there): nothing there, as for a name gone — the rescan says the
    outbox is away; the event's look raises nothing into the loop."""
    outbox = touch(tmp_path / "outbox")
    listing = look(OutboxConfig(path=outbox), "INV-1.xml")
    assert listing.candidates == {} and listing.stats == {}
