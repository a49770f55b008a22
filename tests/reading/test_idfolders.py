"""Which subfolder of a sidecar is which invoice's folder (daemon/reading/idfolders.py;
docs/folder-convention.md, section 3), asked through the matcher as the daemon asks it:
an id's folder under the Windows-safe name a clerk makes and the first rule's name an
ERP may make, in either Unicode form; one id with two folders (`id-two-folders`); and ids
that share a folder (`id-folder-collision`)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from helpers import ubl_invoice, write
from matching import PDF, batch_xml, codes, finding, layout, match


class TestWhichFolderIsWhichIds:
    """The folder that is an id's, under either of its names."""

    @pytest.mark.parametrize("ids", [("Fäktura-8",), ("Fäktura-8", "Fäktura-9")])
    def test_id_folder_written_by_a_mac_is_that_invoices(self, outbox: Path,
                                                          ids: tuple[str, ...]) -> None:
        """A Mac writes the folder it names with its accents decomposed (NFD), the ERP the
        id composed (NFC): the folder looks the same and is that invoice's folder, not an
        orphan whose fix ("rename it to Fäktura-8") a clerk could not follow."""
        for i in ids:
            write(outbox / "batch" / unicodedata.normalize("NFD", i) / "tid.pdf", PDF)
        b = match(outbox, "batch.xml", batch_xml(*ids) if len(ids) > 1 else ubl_invoice(ids[0]))
        assert b.errors == ()
        assert layout(b) == {i: ["tid.pdf"] for i in ids}

    def test_a_folder_named_by_the_rule_before_c1_is_only_the_id_it_named(self) -> None:
        """Older versions kept a C1 control character of an id in its folder's name:
        INV-<U+0085>8/ was invoice INV-<U+0085>8's folder, and never INV-_8's, though the
        rule now gives both the folder INV-_8."""
        from daemon.reading.idfolders import IdFolders
        assert IdFolders(["INV-7", "INV-\x858"]).owner_before_c1("INV-\x858") == "INV-\x858"
        assert IdFolders(["INV-7", "INV-_8"]).owner_before_c1("INV-\x858") is None
        assert IdFolders(["INV-\x858"]).owner_before_c1("INV-\x868") is None
        assert IdFolders(["INV-\x858"]).owner_before_c1("INV-_8") is None  # no C1: today's

    def test_unsafe_id_matches_its_folder_name(self, outbox: Path) -> None:
        """An id with '/' and '|' matches the folder with those replaced; the manifest keeps it."""
        gr = "061828591|01/10/2020|0|1.1|0|1"
        write(outbox / "gr" / "061828591_01_10_2020_0_1.1_0_1" / "a.pdf", PDF)
        write(outbox / "gr" / "INV-2" / "b.pdf", PDF)
        b = match(outbox, "gr.xml", batch_xml(gr, "INV-2"))
        assert b.errors == ()
        assert layout(b) == {gr: ["a.pdf"], "INV-2": ["b.pdf"]}

    def test_the_folder_of_an_id_that_begins_with_a_dot_is_that_invoices(
            self, outbox: Path) -> None:
        """An invoice id that begins with a dot names a folder that reads as a dot-file: it
        is still that invoice's folder, so its attachments are matched, not left out and
        the invoice taken for one without attachments. Another dot-folder stays litter."""
        write(outbox / "dots" / "..secret" / "a.pdf", PDF)
        write(outbox / "dots" / ".._.._etc" / "b.pdf", PDF)
        write(outbox / "dots" / ".thumbnails" / "c.png", PDF)
        b = match(outbox, "dots.xml", batch_xml("..secret", "../../etc"))
        assert b.errors == ()
        assert layout(b) == {"..secret": ["a.pdf"], "../../etc": ["b.pdf"]}
        assert b.unattached_ids == ()

    def test_an_id_ending_in_a_dot_has_a_folder_a_windows_clerk_can_make(
            self, outbox: Path) -> None:
        """Windows drops the dot at the end of "INV-1.": the clerk's folder for that id
        would come out as "INV-1", which names no invoice. The id's folder is "INV-1_"
        (as for a '/' in an id), and that is where the status page sends the clerk."""
        from daemon.idnames import attachment_folders
        write(outbox / "b" / "INV-1_" / "a.pdf", PDF)
        write(outbox / "b" / "INV-2" / "b.pdf", PDF)
        b = match(outbox, "b.xml", batch_xml("INV-1.", "INV-2"))
        assert b.errors == ()
        assert layout(b) == {"INV-1.": ["a.pdf"], "INV-2": ["b.pdf"]}
        assert attachment_folders("b", b.invoice_ids, ("INV-1.",)) == ["b/INV-1_"]

    def test_a_device_name_or_invisible_character_in_an_id_gives_a_folder_a_clerk_can_make(
            self, outbox: Path) -> None:
        """Windows cannot make or open a folder CON (nor nul.txt): the id CON's folder is
        CON_, nul.txt's nul_.txt. An id holding a zero-width space would give a folder
        that looks like another id's: its folder shows '_' there. Those folders are the
        ids' attachments, and the status page names them."""
        from daemon.idnames import attachment_folders
        ids = ("CON", "nul.txt", "INV-\u200b7")
        write(outbox / "b" / "CON_" / "a.pdf", PDF)
        write(outbox / "b" / "nul_.txt" / "b.pdf", PDF)
        write(outbox / "b" / "INV-_7" / "c.pdf", PDF)
        b = match(outbox, "b.xml", batch_xml(*ids))
        assert b.errors == ()
        assert layout(b) == {"CON": ["a.pdf"], "nul.txt": ["b.pdf"], "INV-\u200b7": ["c.pdf"]}
        assert attachment_folders("b", b.invoice_ids, ids) == [
            "b/CON_", "b/nul_.txt", "b/INV-_7"]

    @pytest.mark.parametrize("invoice_id,folder", [
        ("CON", "CON_"), ("CON", "CON"), ("INV-7.", "INV-7_"), ("INV-7.", "INV-7."),
        ("INV-\u200b7", "INV-_7"), ("INV-\u200b7", "INV-\u200b7"),
        ("nul.txt", "nul_.txt"), ("nul.txt", "nul.txt"),
        ("COM0", "COM0_"), ("COM0", "COM0"), ("CONIN$", "CONIN$_"), ("CONIN$", "CONIN$"),
        ("LPT\u00b9", "LPT\u00b9_"), ("LPT\u00b9", "LPT\u00b9")])
    def test_an_ids_folder_is_found_under_the_contracts_name_and_the_windows_safe_one(
            self, outbox: Path, invoice_id: str, folder: str) -> None:
        """An ERP on Linux that makes the folders by the first rule (only
        / \\ : * ? " < > | and control characters replaced) makes batch/CON/, batch/INV-7./
        and a folder with the zero-width space itself; a Windows clerk makes CON_, INV-7_,
        INV-_7. Either is the invoice's folder, and the status page still names the one a
        Windows clerk can make."""
        from daemon.idnames import attachment_folders, folder_name_for_id
        write(outbox / "batch" / folder / "a.pdf", PDF)
        write(outbox / "batch" / "X-2" / "b.pdf", PDF)
        b = match(outbox, "batch.xml", batch_xml(invoice_id, "X-2"))
        assert b.errors == ()
        assert layout(b) == {invoice_id: ["a.pdf"], "X-2": ["b.pdf"]}
        assert attachment_folders("batch", (invoice_id, "X-2"), (invoice_id,)) == [
            f"batch/{folder_name_for_id(invoice_id)}"]

    @pytest.mark.parametrize("folder", ["CON", "CON_"])
    def test_a_one_invoice_file_takes_its_ids_folder_under_either_name_beside_the_root(
            self, outbox: Path, folder: str) -> None:
        """A file of one invoice: its attachments may lie in the sidecar itself or in the
        folder of its id, under either name."""
        write(outbox / "one" / "root.pdf", PDF)
        write(outbox / "one" / folder / "sub.pdf", PDF)
        b = match(outbox, "one.xml", ubl_invoice("CON"))
        assert b.errors == ()
        assert layout(b) == {"CON": ["root.pdf", "sub.pdf"]}


class TestOneIdTwoFolders:
    """One id's folder there under both its names."""

    @pytest.mark.parametrize("invoice_id,contract,safe", [
        ("CON", "CON", "CON_"), ("INV-7.", "INV-7.", "INV-7_"),
        ("INV-\u200b7", "INV-\u200b7", "INV-_7")])
    def test_an_ids_folder_under_both_its_names_is_an_error_naming_both(
            self, outbox: Path, invoice_id: str, contract: str, safe: str) -> None:
        """batch/CON/ (made by the ERP) and batch/CON_/ (made by a clerk) are both the
        folder of CON: taking one would leave the other's files behind. An error naming
        both folders and the fix, for a file of several invoices and for one of one."""
        write(outbox / "batch" / contract / "a.pdf", PDF)
        write(outbox / "batch" / safe / "b.pdf", PDF)
        f = finding(match(outbox, "batch.xml", batch_xml(invoice_id, "X-2")), "id-two-folders")
        assert f.file == f"batch/{contract}" and f.invoice_id == invoice_id
        assert f"and so is batch/{safe} (folder {safe}, or " in f.message
        assert "move the files of one into the other" in f.message

        single = match(outbox, "batch.xml", batch_xml(invoice_id))
        assert codes(single) == ["id-two-folders"]


class TestIdFolderCollisions:
    """Ids whose folders are one: by the first rule, to Windows, or by a folder
    that is there (`id-folder-collision`)."""

    def test_ids_that_differ_only_in_how_accents_are_written_collide_and_say_so(
            self, outbox: Path) -> None:
        """An id's folder is matched in either Unicode form, so two ids of one file that
        differ only in that (they print the same) would share one folder: the error says
        how they differ, not "'Å-1' and 'Å-1' map to the same folder name"."""
        nfc, nfd = (unicodedata.normalize(f, "Å-1") for f in ("NFC", "NFD"))
        write(outbox / "coll" / nfc / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml(nfc, nfd))
        f = finding(b, "id-folder-collision")
        assert f.file == "coll"
        assert "differ only in how accents are written" in f.message
        assert "give the invoices distinct ids" in f.message

    def test_id_folder_collision(self, outbox: Path) -> None:
        """Ids that map to one folder name ('A/1' and 'A:1') are an error naming both."""
        write(outbox / "coll" / "A_1" / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("A/1", "A:1"))
        f = finding(b, "id-folder-collision")
        assert "'A/1'" in f.message and "'A:1'" in f.message and "A_1" in f.message
        assert f.file == "coll"

    def test_ids_that_meet_only_in_their_windows_names_are_an_error_only_by_a_shared_folder(
            self, outbox: Path) -> None:
        """'CON' and 'CON_' are two ids by the first rule (CON's folder is CON, or CON_ as a
        Windows clerk makes it; CON_'s is CON_). Without a folder CON_ nothing is
        ambiguous: CON's files in CON/ are its own. A folder CON_ could be either's: an
        id-folder-collision naming it, the ids, and where CON's files go instead; its
        files are taken as no invoice's."""
        (outbox / "coll").mkdir()
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"))
        assert b.errors == () and layout(b) == {"CON": [], "CON_": []}
        write(outbox / "coll" / "CON" / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"))
        assert b.errors == () and layout(b) == {"CON": ["a.pdf"], "CON_": []}

        write(outbox / "coll" / "CON_" / "b.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"))
        [f] = b.errors
        assert (f.code, f.file) == ("id-folder-collision", "coll/CON_")
        assert "'CON' (folder CON_, or CON as a program on the server may name it)" \
            in f.message and "'CON_' (folder CON_)" in f.message
        assert f.message.endswith(
            "— move those of invoice 'CON' into a folder CON (a name a clerk cannot make on "
            "Windows: make it on the server), and remove the emptied folder CON_; invoice "
            "'CON_' has no other folder name, so for its files give the invoices distinct ids")
        assert layout(b) == {"CON": ["a.pdf"], "CON_": []}

    @pytest.mark.parametrize("ids,shared", [
        (("A.", "A_"), "A_"), (("INV\u200b7", "INV_7"), "INV_7")])
    def test_other_ids_that_meet_in_a_windows_name_collide_only_by_the_folder_there(
            self, outbox: Path, ids: tuple[str, str], shared: str) -> None:
        """'A.' and 'A_' (Windows drops the dot), 'INV' + U+200B + '7' and 'INV_7': distinct
        by the first rule, one Windows name. No error until that folder is there."""
        (outbox / "coll").mkdir()
        assert match(outbox, "coll.xml", batch_xml(*ids)).errors == ()
        write(outbox / "coll" / shared / "a.pdf", PDF)
        f = finding(match(outbox, "coll.xml", batch_xml(*ids)), "id-folder-collision")
        assert f.file == f"coll/{shared}" and f"{ids[0]!r}" in f.message
        assert "is the folder of more than one invoice of this file" in f.message

    def test_ids_equal_by_the_contracts_rule_collide_whatever_folders_are_there(
            self, outbox: Path) -> None:
        """'A/1' and 'A:1' both become A_1 by the first rule: an error
        (docs/folder-convention.md, section 3) even with no folder of theirs in the
        sidecar."""
        write(outbox / "coll" / "other.pdf", PDF)
        f = finding(match(outbox, "coll.xml", batch_xml("A/1", "A:1", "B")),
                    "id-folder-collision")
        assert f.file == "coll" and "map to the same folder name 'A_1'" in f.message

    def test_ids_that_differ_only_in_case_collide_as_one_folder_on_the_share(
            self, outbox: Path) -> None:
        """'INV-1' and 'inv-1' in one file: Windows, and so a clerk on the share, takes
        their folders for one, so the second can never be made there (and a file put in
        the one the clerk sees could be meant for either invoice). An error naming both
        ids and why, as for ids that map to one folder name; ids whose folder names
        differ only in case after the mapping ('A/2' and 'a:2') say those names."""
        write(outbox / "coll" / "INV-1" / "a.pdf", PDF)
        write(outbox / "coll" / "inv-1" / "b.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("INV-1", "inv-1", "A/2", "a:2"))
        found = [f for f in b.findings if f.code == "id-folder-collision"]
        assert [f.file for f in found] == ["coll", "coll"]
        assert found[0].message == (
            "invoice ids 'INV-1' and 'inv-1' differ only in upper and lower case: Windows, "
            "and so the share, takes the two folders for one, so only one of them can be "
            "made there — give the invoices distinct ids")
        assert "'A/2' and 'a:2' map to the folder names 'A_2' and 'a_2', which differ only "\
            "in upper and lower case" in found[1].message


class TestIdsOfOneFolderByTheirEnds:
    """Ids whose folder names differ only in dots or spaces at the end: Windows drops
    those from a name it makes, so the share has one folder for both
    (`id-folder-collision`, as for ids that differ only in case)."""

    @pytest.mark.parametrize("ids,typed", [
        (("A-1.", "A-1"), "A-1"), (("A-1", "A-1.."), "A-1"), (("A-1..", "a-1."), "A-1")])
    def test_ids_that_differ_only_by_a_dot_or_space_at_the_end_collide(
            self, outbox: Path, ids: tuple[str, str], typed: str) -> None:
        """batch.xml holds A-1. and A-1: a Windows clerk who makes the folder A-1. for the
        first gets A-1, the second's folder, and its attachments went out with A-1. The
        file is an error naming both ids and why, and no file of that folder is taken as
        either invoice's."""
        write(outbox / "coll" / typed / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml(*ids))
        f = finding(b, "id-folder-collision")
        assert f.file == "coll"
        assert f"invoice ids {ids[0]!r} and {ids[1]!r} differ only in dots or spaces at " \
            "the end" in f.message
        assert "Windows, and so the share, drops those from a folder's name" in f.message
        assert f"come out as {typed!r}" in f.message or f"comes out as {typed!r}" in f.message
        assert f.message.endswith("— give the invoices distinct ids")
        assert all(not files for files in layout(b).values())

    def test_a_space_at_the_end_of_an_id_is_dropped_as_a_dot_is(self) -> None:
        """An id read with a space at its end (XML ids are read without one): Windows drops
        the space as it does a dot."""
        from daemon.reading.idfolders import IdFolders
        [f] = IdFolders(["A-1 ", "A-1"]).collisions("coll")
        assert "a folder 'A-1 ' made there comes out as 'A-1'" in f.message
        [f] = IdFolders(["A-1 ", "A-1."]).collisions("coll")
        assert "folders 'A-1 ' and 'A-1.' made there both come out as 'A-1'" in f.message

    def test_ids_that_differ_at_the_end_collide_with_no_folder_of_theirs_there(
            self, outbox: Path) -> None:
        """As for ids of one folder by the first rule, the error does not wait for a clerk
        to make the folder: any sidecar of the file stops it."""
        write(outbox / "coll" / "B-2" / "b.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("A-1.", "A-1", "B-2"))
        assert codes(b) == ["id-folder-collision"]

    @pytest.mark.parametrize("ids", [("CON", "CON.txt"), ("A.", "A_"), (".", "..")])
    def test_ids_whose_folders_windows_cannot_make_at_all_are_no_collision_of_their_own(
            self, outbox: Path, ids: tuple[str, str]) -> None:
        """A device name (CON, CON.txt on Windows 10) is no folder on Windows whatever
        follows it, and an id of dots alone names no folder: each of those ids has a
        Windows name of its own (CON_, CON_.txt; _, __), so nothing a clerk makes is both
        ids'. A. and A_ meet only in the Windows name A_, an error while it is there."""
        (outbox / "coll").mkdir()
        assert match(outbox, "coll.xml", batch_xml(*ids)).errors == ()
