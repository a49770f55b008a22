"""What a name in the outbox means: in-progress, litter, invoice, folder
(docs/folder-convention.md, sections 1 and 3)."""

from __future__ import annotations

import unicodedata

import pytest

from daemon.idnames import (
    attachment_folders,
    contract_folder_name,
    folder_name_for_id,
    id_folder_names,
)
from daemon.invisible import escaped_controls
from daemon.names import (
    NAME_MAX,
    NameKind,
    classify,
    edge_words,
    extension_pattern,
    first_of,
    fit_bytes,
    fit_name,
    fold_key,
    has_invoice_extension,
    ignored_as,
    is_ignored,
    is_invoice_name,
    is_share_file,
    name_problem,
    printable,
    spelled_otherwise,
    spelling_twins,
    stem,
    trimmed,
)

PATTERNS = ["*.xml", "*.pdf"]


class TestClassify:
    @pytest.mark.parametrize("name", [
        "INV-1.xml.tmp", "scan.TEMP", "big.pdf.part", "x.partial", "dl.pdf.crdownload",
        ".INV-1.xml.swp", "~$Contract.docx", ".~lock.sheet.ods#", ".syncthing.INV-1.xml.tmp",
        "#attachments.toml#", "~WRL1234.tmp",
    ])
    def test_in_progress_names(self, name: str) -> None:
        """Copies and editors at work are in-progress — even when they also start with '.'."""
        assert classify(name) is NameKind.IN_PROGRESS
        assert is_ignored(name)

    @pytest.mark.parametrize("name", [
        "Thumbs.db", "thumbs.db", "desktop.ini", "Desktop.ini", ".DS_Store", "._INV-1.pdf",
        ".hidden", ".outboxd", "Icon\r", "INV-1.pdf:Zone.Identifier",
        "INV-1.pdf\uf03aZone.Identifier", "INV-1.pdf:Zone.Identifier:$DATA",
        "scan.pdf\uf03aAFP_Resource", "scan.pdf:com.apple.quarantine", "attachments.toml~",
        "INV-1.xml~", "INV-1.pdf\uf022Zone.Identifier", "scan.pdf\uf022AFP_AfpInfo",
        "INV-1.pdf\uf022Zone.Identifier\uf022$DATA", "INV-1.pdf\uf03aZone.Identifier\uf03a$DATA",
        "Thumbs.db:encryptable", "Thumbs.db\uf022encryptable", "Icon\uf00d",
    ])
    def test_litter_names(self, name: str) -> None:
        """Desktop litter and other dot-files are litter: ignored, never in-progress."""
        assert classify(name) is NameKind.LITTER
        assert is_ignored(name)

    @pytest.mark.parametrize("name", ["INV-1.xml", "timesheet.pdf", "notes.txt", "tmp",
                                      "report.tmp.pdf", "a~$b.pdf", "Thumbs.db.pdf",
                                      "Icon", "Meeting 10\uf03a30.pdf", "a~b.pdf", "#7.pdf",
                                      "Zone.Identifier.pdf", "Meeting 10\uf02230.pdf"])
    def test_other_names(self, name: str) -> None:
        """Ordinary names (even with 'tmp' or '~$' inside) are neither in-progress nor litter."""
        assert classify(name) is NameKind.OTHER
        assert not is_ignored(name)

    @pytest.mark.parametrize("name", ["._INV-1.pdf.part", "._scan.tif.tmp", "._~$a.docx",
                                      "._INV-1.xml.swp", "a.pdf:com.apple.x.tmp"])
    def test_a_file_of_another_files_metadata_is_litter_whatever_it_ends_in(
            self, name: str) -> None:
        """A Mac's AppleDouble `._NAME` (or a stream shown as a file) holds another file's
        metadata, never a copy under way: an orphaned `._INV-1.pdf.part` is litter, so
        it cannot keep a sidecar from settling."""
        assert classify(name) is NameKind.LITTER
        assert ignored_as(name) == "desktop"

    @pytest.mark.parametrize("name", ["$RECYCLE.BIN", "$Recycle.Bin", "RECYCLER",
                                      "System Volume Information", "ehthumbs.db",
                                      "ehthumbs_vista.db"])
    def test_windows_system_folders_and_caches_are_desktop_litter(self, name: str) -> None:
        """What Windows makes at the top of a share mapped as a drive (its recycle bin, its
        restore points) and its Media Center thumbnail caches are litter like Thumbs.db:
        not a folder without an invoice file, not a file left alone."""
        assert classify(name) is NameKind.LITTER
        assert ignored_as(name) == "desktop"

    @pytest.mark.parametrize("name", ["@eaDir", "@EADIR"])
    def test_a_synology_index_folder_is_desktop_litter(self, name: str) -> None:
        """`@eaDir`, the thumbnails and metadata a Synology NAS keeps in every folder it
        indexes, is litter like Thumbs.db, in any case, with no ignore_patterns set."""
        assert classify(name) is NameKind.LITTER
        assert ignored_as(name) == "desktop"

    def test_configured_ignore_patterns_are_litter(self) -> None:
        """[outbox] ignore_patterns add litter names; without them the name is ordinary."""
        assert classify("export.log", ["*.log"]) is NameKind.LITTER
        assert classify("export.log") is NameKind.OTHER

    def test_an_office_lock_file_is_ignored_as_a_lock_not_as_a_copy_in_progress(
            self) -> None:
        """ignored_as tells a lock (~$INV.docx, .~lock.INV.ods#: someone has the file
        open) from a copy still being written (*.tmp): each is said in its own words."""
        assert ignored_as("~$INV-1.docx") == "lock"
        assert ignored_as(".~lock.INV-1.ods#") == "lock"
        assert ignored_as("INV-1.xml.tmp") == "in-progress"

    def test_in_progress_beats_configured_litter(self) -> None:
        """The more specific kind wins: an in-progress name stays in-progress if also ignored."""
        assert classify("INV-1.xml.part", ["INV-*"]) is NameKind.IN_PROGRESS


class TestInvoiceName:
    @pytest.mark.parametrize("name,expected", [
        ("INV-1001.xml", True), ("INV-1002.pdf", True), ("notes.txt", False),
        ("INV-1001.ready", False), (".INV-1001.xml", False), ("INV-1001.xml.tmp", False),
        ("~$INV.xml", False), ("._INV-1001.pdf", False),
    ])
    def test_patterns_and_ignores(self, name: str, expected: bool) -> None:
        """An invoice name matches invoice_patterns and no ignore pattern."""
        assert is_invoice_name(name, PATTERNS) is expected

    def test_ignore_patterns_exclude_invoices(self) -> None:
        """A configured ignore pattern removes a name that would otherwise be an invoice."""
        assert is_invoice_name("draft-1.xml", PATTERNS)
        assert not is_invoice_name("draft-1.xml", PATTERNS, ["draft-*"])

    def test_extension_case_does_not_matter(self) -> None:
        """Windows clients write 'INV.PDF': it is an invoice like 'INV.pdf'."""
        assert is_invoice_name("INV-9.PDF", PATTERNS)

    def test_an_extension_is_one_a_pattern_spells_out_not_a_wildcard(self) -> None:
        """extension_pattern names the pattern that spells out the name's extension:
        "*.pdf", never the "*" of "*.*", which spells out none."""
        assert extension_pattern("INV-1.pdf", ["*.*"]) is None
        assert extension_pattern("INV-1.pdf", ["*.*", "*.PDF"]) == "*.PDF"

    def test_a_dot_file_has_no_invoice_extension(self) -> None:
        """.xml is a hidden file's whole name, not an empty name with the extension xml."""
        assert has_invoice_extension("INV-1.xml", ["*.xml"])
        assert not has_invoice_extension(".xml", ["*.xml"])

    @pytest.mark.parametrize("name,expected", [
        ("INV-1001.xml", "INV-1001"), ("batch.42.xml", "batch.42"), ("README", "README"),
        (".profile", ".profile"),
    ])
    def test_stem(self, name: str, expected: str) -> None:
        """The stem drops the last extension only; a leading dot is not an extension."""
        assert stem(name) == expected


class TestFolderNameForId:
    @pytest.mark.parametrize("invoice_id,folder", [
        ("INV-2001", "INV-2001"),
        ("A/1", "A_1"), ("A:1", "A_1"), ('a\\b*c?d"e<f>g|h', "a_b_c_d_e_f_g_h"),
        ("061828591|01/10/2020|0|1.1|0|1", "061828591_01_10_2020_0_1.1_0_1"),
        ("tab\there", "tab_here"), ("nl\nx\x7f", "nl_x_"),
        ("Faktura Å-1", "Faktura Å-1"),
    ])
    def test_unsafe_characters_become_underscore(self, invoice_id: str, folder: str) -> None:
        """Each of / \\ : * ? \" < > | and control characters becomes '_'; the rest stays."""
        assert folder_name_for_id(invoice_id) == folder

    @pytest.mark.parametrize("invoice_id,folder", [
        ("INV-7.", "INV-7_"), ("INV-7. .", "INV-7___"), ("INV 7.5", "INV 7.5"),
        (".5", ".5"), ("..", "__")])
    def test_dots_and_spaces_at_the_end_become_underscore(self, invoice_id: str,
                                                          folder: str) -> None:
        """Windows drops a dot or space at the end of a name: the folder "INV-7." made on
        the share is "INV-7", so the id's folder would be one no clerk can make. Those
        ends become '_', as the characters that cannot stand in a folder name do; a dot
        or space inside the id stays."""
        assert folder_name_for_id(invoice_id) == folder

    @pytest.mark.parametrize("invoice_id,folder", [
        ("CON", "CON_"), ("con", "con_"), ("Prn", "Prn_"), ("AUX", "AUX_"), ("nul", "nul_"),
        ("COM1", "COM1_"), ("com9", "com9_"), ("LPT1", "LPT1_"), ("lpt9", "lpt9_"),
        ("COM\u00b9", "COM\u00b9_"), ("COM\u00b2", "COM\u00b2_"), ("COM\u00b3", "COM\u00b3_"),
        ("LPT\u00b9", "LPT\u00b9_"), ("lpt\u00b2", "lpt\u00b2_"), ("LPT\u00b3", "LPT\u00b3_"),
        ("COM0", "COM0_"), ("lpt0", "lpt0_"), ("CONIN$", "CONIN$_"), ("conout$", "conout$_"),
        ("CON.txt", "CON_.txt"), ("nul.tar", "nul_.tar"), ("com1.tar.gz", "com1_.tar.gz"),
        ("COM0.xml", "COM0_.xml"), ("CONIN$.txt", "CONIN$_.txt"),
        ("LPT\u00b9.pdf", "LPT\u00b9_.pdf"), ("CONOUT$ .log", "CONOUT$ _.log"),
        ("CON .txt", "CON _.txt"), ("CON.", "CON_"), ("AUX:1", "AUX_1")])
    def test_a_windows_device_name_gets_an_underscore_after_it(self, invoice_id: str,
                                                               folder: str) -> None:
        """Windows takes a folder named CON, PRN, AUX, NUL, COM0…COM9 or LPT0…LPT9 (also
        with ¹ ² ³ for the digit), CONIN$ or CONOUT$, in any case and with any extension,
        for a device: a clerk can neither make nor open it on the share. '_' after the
        device name makes a folder Windows takes as any other."""
        assert folder_name_for_id(invoice_id) == folder

    @pytest.mark.parametrize("invoice_id", [
        "CONSOLE", "CONX", "XCON", "COM10", "COM", "LPT", "NULL", "INV-CON", ".CON",
        "CON-1", "COM\u2074", "COM\u2070", "COM00", "LPT01", "CONIN", "CONOUT", "CON$",
        "CONIN$$", "CONOUT$1", "INV-CONIN$"])
    def test_names_that_only_start_like_a_device_stay_as_they_are(self,
                                                                  invoice_id: str) -> None:
        """Only the device name itself (before any dot) is a device: ids that merely
        begin or end with one keep their folder name, so their folders made before
        stay theirs."""
        assert folder_name_for_id(invoice_id) == invoice_id

    @pytest.mark.parametrize("char", [
        "\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u2060", "\u202a",
        "\u202e", "\u2066", "\u2069", "\u200e", "\u061c", "\x85", "\x9b"])
    def test_invisible_characters_become_underscore(self, char: str) -> None:
        """A zero-width space, joiner, byte-order mark, soft hyphen, bidirectional control
        or C1 control character in an id becomes '_': INV-7 and INV- + U+200B + 7 would
        otherwise give two folders that look the same on the share (and one no clerk can
        type); with '_' the folder shows where the id holds one."""
        assert folder_name_for_id(f"INV-{char}7") == "INV-_7"
        assert folder_name_for_id(f"INV-{char}7") != folder_name_for_id("INV-7")

    def test_distinct_ids_can_collide(self) -> None:
        """'A/1' and 'A:1' map to one folder name (match reports that as an error)."""
        assert folder_name_for_id("A/1") == folder_name_for_id("A:1")


class TestContractFolderName:
    @pytest.mark.parametrize("invoice_id,folder", [
        ("INV-2001", "INV-2001"), ("A/1", "A_1"), ('a\\b*c?d"e<f>g|h', "a_b_c_d_e_f_g_h"),
        ("tab\there", "tab_here"), ("nl\nx\x7f", "nl_x_"),
        ("CON", "CON"), ("nul.txt", "nul.txt"), ("INV-7.", "INV-7."), ("INV-7 ", "INV-7 "),
        ("INV-\u200b7", "INV-\u200b7"), ("INV-\x857", "INV-_7"), ("INV-\x9b7", "INV-_7")])
    def test_only_the_listed_characters_and_control_characters_become_underscore(
            self, invoice_id: str, folder: str) -> None:
        """The first rule (docs/folder-convention.md, section 3), which an ERP on Linux may
        follow when it makes the folders: / \\ : * ? " < > | and control characters become
        '_', nothing else — a device name, a dot or space at the end and an invisible
        character stay as they are. Control characters are Unicode's (Cc), C1
        (U+0080–U+009F) with C0: a folder named with one is a bad name, so the first
        rule's name must not keep it."""
        assert contract_folder_name(invoice_id) == folder

    @pytest.mark.parametrize("invoice_id,names", [
        ("INV-2001", ("INV-2001",)), ("A/1", ("A_1",)), ("CON", ("CON_", "CON")),
        ("INV-7.", ("INV-7_", "INV-7.")), ("INV-\u200b7", ("INV-_7", "INV-\u200b7")),
        ("nul.txt", ("nul_.txt", "nul.txt")), ("COM0", ("COM0_", "COM0")),
        ("CONIN$", ("CONIN$_", "CONIN$")), ("LPT\u00b2", ("LPT\u00b2_", "LPT\u00b2")),
        (".", ("_",)), ("..", ("__",)), ("", ("_",))])
    def test_an_id_has_its_windows_safe_folder_name_first_then_the_contracts(
            self, invoice_id: str, names: tuple[str, ...]) -> None:
        """Both names are the invoice's folder; the Windows-safe one, which a clerk is told
        to make, comes first. A contract name that cannot be a folder (".", "..", "": the
        sidecar itself or the outbox) is none of its names."""
        assert id_folder_names(invoice_id) == names


class TestFitName:
    def test_a_name_that_fits_is_kept(self) -> None:
        """Up to the limit, in bytes of UTF-8, the name is unchanged."""
        assert fit_name("a" * 255) == "a" * 255
        assert fit_name("Å" * 127) == "Å" * 127  # 254 bytes

    def test_a_name_that_fits_in_bytes_keeps_even_a_space_at_its_end(self) -> None:
        """fit_bytes cuts (and trims) only a name over the limit."""
        assert fit_bytes("INV-7 ", 6) == "INV-7 "
        assert fit_bytes("INV-7 x", 6) == "INV-7"

    def test_an_extension_of_sixteen_bytes_is_kept_a_longer_one_is_cut_with_the_name(
            self) -> None:
        """EXT_MAX is 16: an extension of 16 bytes stays after the tag, one of 17 is
        taken for part of the name."""
        assert fit_name("x" * 300 + "." + "e" * 16).endswith("." + "e" * 16)
        assert not fit_name("x" * 300 + "." + "e" * 17).endswith("e" * 17)

    def test_a_longer_name_is_cut_and_tagged_keeping_its_extension(self) -> None:
        """Over the limit: cut on a character boundary, '-' and 8 hex digits before the
        extension; the same name always gives the same result, two names two."""
        one, two = fit_name("Å" * 200 + ".xml"), fit_name("Å" * 199 + "B.xml")
        assert len(one.encode()) <= NAME_MAX and one.endswith(".xml") and one != two
        assert one == fit_name("Å" * 200 + ".xml")
        assert len(fit_name("x" * 300, 100).encode()) <= 100

    def test_a_very_long_invoice_id_gives_a_folder_name_that_fits(self) -> None:
        """An invoice id is data and may be 1,000 characters long; its folder name (the
        directory transport's attachments/ID/) fits in NAME_MAX and stays distinct."""
        a, b = folder_name_for_id("7" * 1000), folder_name_for_id("7" * 999 + "8")
        assert len(a.encode()) <= NAME_MAX and len(b.encode()) <= NAME_MAX and a != b


class TestFoldKey:
    def test_nfc_and_nfd_fold_together(self) -> None:
        """A name in NFC and the same name in NFD (macOS) fold to one key."""
        nfc = unicodedata.normalize("NFC", "Räkning.pdf")
        nfd = unicodedata.normalize("NFD", "Räkning.pdf")
        assert nfc != nfd
        assert fold_key(nfc) == fold_key(nfd)

    def test_case_folds_together(self) -> None:
        """Names differing only in case fold to one key (Windows/SMB clients see one file)."""
        assert fold_key("Scan.PDF") == fold_key("scan.pdf")
        assert fold_key("ÅSA.pdf") == fold_key(unicodedata.normalize("NFD", "åsa.pdf"))

    def test_different_names_stay_apart(self) -> None:
        """Names that really differ keep different keys."""
        assert fold_key("scan1.pdf") != fold_key("scan2.pdf")
        assert fold_key("a.pdf") != fold_key("ä.pdf")


class TestSpellingTwins:
    def test_a_name_with_accents_has_its_other_unicode_form(self) -> None:
        """Räkning composed (as an ERP writes it) and decomposed (as a Mac does) are each
        other's twin: they look the same and are different names on disk."""
        nfc = unicodedata.normalize("NFC", "Räkning-1")
        nfd = unicodedata.normalize("NFD", "Räkning-1")
        assert spelling_twins(nfc) == (nfd,)
        assert spelling_twins(nfd) == (nfc,)

    def test_a_form_too_long_for_a_file_name_is_no_twin(self) -> None:
        """Å takes 2 bytes composed and 3 decomposed: a 246-byte composed name would be
        266 bytes decomposed, which no file system holds (lstat fails with "name too
        long", and the bundle could never be stepped)."""
        name = "Å" * 20 + "B" * 206
        assert len(name.encode()) == 246 and spelling_twins(name) == ()
        assert spelling_twins("Å" * 10) == (unicodedata.normalize("NFD", "Å" * 10),)

    def test_a_form_of_exactly_name_max_bytes_is_a_twin(self) -> None:
        """85 Å decomposed take 255 bytes, which a file name may: still a twin."""
        nfd = unicodedata.normalize("NFD", "Å" * 85)
        assert len(nfd.encode()) == NAME_MAX and spelling_twins("Å" * 85) == (nfd,)

    def test_ascii_names_and_names_without_combining_letters_have_none(self) -> None:
        assert spelling_twins("INV-1") == ()
        assert spelling_twins("Счёт-1") != () and spelling_twins("請求書-1") == ()


class TestSpelledOtherwise:
    def test_a_sidecar_named_in_other_case_differs_in_case_only(self) -> None:
        """inv-1001 made on Windows beside the ERP's INV-1001.xml folds like the sidecar
        INV-1001 and differs from it in upper and lower case alone: (case, not form)."""
        assert fold_key("inv-1001") == fold_key("INV-1001")
        assert spelled_otherwise("inv-1001", "INV-1001") == (True, False)
        nfc_lower, nfc = (unicodedata.normalize("NFC", n) for n in ("räkning-7", "Räkning-7"))
        assert spelled_otherwise(nfc_lower, nfc) == (True, False)

    def test_accents_written_otherwise_differ_in_form(self) -> None:
        """A Mac's decomposed Räkning-7 beside the ERP's composed one: (not case, form);
        decomposed and lower case as well: both."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-7") for f in ("NFC", "NFD"))
        assert spelled_otherwise(nfd, nfc) == (False, True)
        assert spelled_otherwise(nfc, nfd) == (False, True)
        lower_nfd = unicodedata.normalize("NFD", "räkning-7")
        assert fold_key(lower_nfd) == fold_key(nfc)
        assert spelled_otherwise(lower_nfd, nfc) == (True, True)


    def test_names_of_mixed_forms_that_compose_alike_differ_in_form(self) -> None:
        """é composed and ö decomposed beside é decomposed and ö composed: neither name
        is in either form, both compose to one; they differ in form, not case."""
        one, two = "\u00e9o\u0308-7", "e\u0301\u00f6-7"
        assert fold_key(one) == fold_key(two) and one != two
        assert spelled_otherwise(one, two) == (False, True)


class TestNameProblem:
    def test_plain_names_are_fine(self) -> None:
        """Ordinary names, including non-ASCII ones, have no problem."""
        assert name_problem("Tidrapport oktober – Åsa.pdf") is None

    def test_undecodable_bytes(self) -> None:
        """A name with bytes that are not UTF-8 (surrogate-escaped) is reported."""
        bad = b"scan\xff.pdf".decode("utf-8", "surrogateescape")
        assert "UTF-8" in (name_problem(bad) or "")

    @pytest.mark.parametrize(("name", "code"), [
        ("scan\n.pdf", "\\x0a"), ("scan\x7f.pdf", "\\x7f"), ("INV-\u0080.xml", "\\x80"),
        ("INV-\u009b.xml", "\\x9b"), ("a\u0085b.pdf", "\\x85"), ("a\u009f.pdf", "\\x9f")])
    def test_control_characters(self, name: str, code: str) -> None:
        """A name holding a control character, C0 or DEL or C1 (U+0080–U+009F: U+009B
        starts an escape sequence on some terminals, U+0085 ends a line), is reported,
        the character shown as its code, with the fix."""
        problem = name_problem(name) or ""
        assert f"holds a control character ({code})" in problem and "rename" in problem

    def test_several_control_characters_are_each_named_once(self) -> None:
        """Each control character of the name is shown, once, in the order found."""
        assert name_problem("a\x1b[2J\x1b\u0085.pdf") == (
            "the name holds control characters (\\x1b, \\x85) — rename the file")

    def test_undecodable_bytes_are_not_taken_for_c1_control_characters(self) -> None:
        """The byte 0x85 of a name that is not UTF-8 (surrogate-escaped, U+DC85) is a name
        that is not UTF-8, not one with the character U+0085 (which UTF-8 writes as
        C2 85): the fix differs (save the name as UTF-8 on the computer that made it)."""
        bad = b"scan\x85.pdf".decode("utf-8", "surrogateescape")
        assert name_problem(bad) == "the name is not valid UTF-8 — rename the file"


class TestPrintable:
    def test_plain_names_are_shown_as_they_are(self) -> None:
        """A UTF-8 name without control characters is shown unchanged."""
        assert printable("Tidrapport oktober – Åsa.pdf") == "Tidrapport oktober – Åsa.pdf"

    def test_undecodable_bytes_are_escaped(self) -> None:
        """The bytes of a name that is not UTF-8 are shown as \\udcNN (NN: the byte), as
        Python writes the character os.fsdecode gives such a byte."""
        assert printable(b"scan\xff.pdf".decode("utf-8", "surrogateescape")) == \
            "scan\\udcff.pdf"

    def test_an_undecodable_byte_and_the_c1_character_of_its_value_look_different(
            self) -> None:
        """The byte 0x85 of a name that is not UTF-8 and the character U+0085 were both
        shown as \\x85: two different files, refused for different reasons, looked like
        one name in the log, REASON.txt and on the page. They are shown apart."""
        byte = b"scan\x85.pdf".decode("utf-8", "surrogateescape")
        assert printable(byte) != printable("scan\u0085.pdf") == "scan\\x85.pdf"
        assert printable(byte) == "scan\\udc85.pdf"

    @pytest.mark.parametrize(("name", "shown"), [
        ("a\nb.pdf", "a\\x0ab.pdf"),
        ("\x1b[2J\x1b[31mOWNED.pdf", "\\x1b[2J\\x1b[31mOWNED.pdf"),
        ("tab\there\x7f.pdf", "tab\\x09here\\x7f.pdf"),
    ])
    def test_control_characters_are_escaped(self, name: str, shown: str) -> None:
        """A control character in a name from the share is shown as \\xNN: it must not
        break a line of REASON.txt or `outboxd status`, nor reach a terminal as an
        escape sequence."""
        assert printable(name) == shown

    @pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
                                      "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
                                      "\u200f", "\u061c"])
    def test_bidirectional_controls_are_shown_as_escapes(self, char: str) -> None:
        """A bidirectional control reorders what follows it on screen: "INV" + U+202E +
        "lmx.pdf" shows as "INVfdp.xml", a PDF posing as an XML. Shown as \\uNNNN, so
        the name reads in the order its characters are; Hebrew and Arabic letters,
        which are no controls, stay as they are."""
        assert printable(f"INV{char}lmx.pdf") == f"INV\\u{ord(char):04x}lmx.pdf"
        assert escaped_controls(f"last error: {char}x") == f"last error: \\u{ord(char):04x}x"
        assert printable("חשבונית-فاتورة.pdf") == "חשבונית-فاتورة.pdf"


class TestInvisibleFormatCharactersShown:
    """escaped_controls, for what people read (page, `outboxd status`, REASON.txt,
    NAME.errors.txt), shows the other invisible format characters too; printable, which
    the journal keeps, does not."""

    @pytest.mark.parametrize(("char", "code"), [
        ("\u200b", "\\u200b"), ("\u200c", "\\u200c"), ("\u200d", "\\u200d"),
        ("\u2060", "\\u2060"), ("\ufeff", "\\ufeff"), ("\u00ad", "\\xad"),
        ("\u180e", "\\u180e"), ("\u0600", "\\u0600"), ("\ufff9", "\\ufff9"),
        ("\U000e0001", "\\U000e0001"), ("\U0001d173", "\\U0001d173")])
    def test_a_format_character_is_shown_as_its_code(self, char: str, code: str) -> None:
        """INV-1 and INV-1 + U+200B looked like one id to a clerk: the format character
        shows as its code, as Python writes it (\\UNNNNNNNN beyond U+FFFF, so the code
        ends where it says), and the two read apart."""
        assert escaped_controls(f"INV-1{char}") == f"INV-1{code}"
        assert escaped_controls(f"Åsa {char}7") == f"Åsa {code}7"
        assert escaped_controls(f"INV-1{char}") != escaped_controls("INV-1")

    def test_printable_keeps_them_as_they_are(self) -> None:
        """What the journal keeps of a name (printable) is unchanged: a row written before
        still names the file found now, and JSON (`status --json`, reason.json) carries
        the exact id."""
        assert printable("INV-1\u200b.xml") == "INV-1\u200b.xml"
        assert printable("Åsa\ufeff.pdf") == "Åsa\ufeff.pdf"

    def test_escaping_what_is_already_shown_changes_nothing(self) -> None:
        """A journal's printable name or message, shown again, only gains the codes of its
        format characters: its \\u202e stays one code, not \\\\u202e."""
        kept = printable("a\u202eb\u200b\x1b.pdf")
        assert escaped_controls(kept) == "a\\u202eb\\u200b\\x1b.pdf"
        assert escaped_controls(escaped_controls(kept)) == escaped_controls(kept)

    @pytest.mark.parametrize("name", [
        "x👨\u200d👩\u200d👧.pdf", "❤\ufe0f\u200d🔥.pdf", "🏃\u200d♀\ufe0f.pdf",
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f.pdf"])
    def test_a_joiner_inside_an_emoji_and_a_flags_tags_are_kept(self, name: str) -> None:
        """Where a person sees what a format character does — a zero-width joiner between
        two emoji makes one picture, tags after the black flag make England's — it
        stays: the page has always shown such names whole."""
        assert escaped_controls(name) == name

    @pytest.mark.parametrize(("name", "shown"), [
        ("INV-1\u200d", "INV-1\\u200d"), ("👨\u200d.pdf", "👨\\u200d.pdf"),
        ("\u200d👨", "\\u200d👨"), ("Å\u200dä", "Å\\u200dä"),
        ("A\U000e0067", "A\\U000e0067")])
    def test_a_joiner_or_tag_elsewhere_is_shown(self, name: str, shown: str) -> None:
        """A joiner not between two emoji, or a tag not after the black flag, shows nothing
        on screen: shown as its code."""
        assert escaped_controls(name) == shown


def test_ids_of_only_dots_never_name_the_folder_or_its_parent() -> None:
    """An invoice id "." or ".." becomes "_" / "__": used as attachments/ID/ it must not
    point at the folder itself or escape to its parent (directory transport, receiver)."""
    from daemon.idnames import folder_name_for_id
    assert folder_name_for_id("..") == "__" and folder_name_for_id(".") == "_"
    assert folder_name_for_id("") == "_"
    assert folder_name_for_id("a..b") == "a..b"


class TestEdges:
    @pytest.mark.parametrize("name", ["INV-7 ", "INV-7.", " INV-7", "\u00a0INV-7",
                                      "INV-7\u00a0", "INV-7. ", "INV-7\uf028", "INV-7\uf029"])
    def test_a_space_or_dot_a_clerk_does_not_see_is_trimmed_off(self, name: str) -> None:
        """A space before or after a name (a plain or a non-breaking one), a dot after it,
        and the characters a Mac's SMB client writes for a trailing space or dot: the name
        without them is the one the clerk meant."""
        assert trimmed(name) == "INV-7"

    def test_a_dot_before_a_name_and_a_name_of_nothing_else_are_kept(self) -> None:
        """A leading dot makes a hidden name, not a slip; "." and "  " are no names to
        trim to nothing."""
        assert trimmed(".INV-7") == ".INV-7"
        assert trimmed(".") == "." and trimmed("  ") == "  "

    def test_edge_words_say_what_is_at_which_end(self) -> None:
        """What the sidecar-spelling message names: each kind once, at the start or end."""
        assert edge_words("INV-7 ") == "a space at the end"
        assert edge_words("INV-7.") == "a dot at the end"
        assert edge_words(" INV-7. ") == "a space at the start and a dot and a space at the end"
        assert edge_words("\u00a0INV-7") == "a non-breaking space at the start"
        assert edge_words("INV-7") == "" and edge_words("  ") == ""


def test_another_daemons_status_page_is_a_share_file_whatever_ours_is_called() -> None:
    """Several daemons on one outbox each write outboxd-status-HOST.html (operations.md):
    each is a share file for every daemon (never an invoice, never litter), also one
    whose own page is off; a clerk's other .html file is not."""
    for ours in ("outboxd-status-a.html", "", "status.html"):
        assert is_share_file("outboxd-status-b.html", ours, ".send-anyway")
        assert is_share_file("outboxd-status.html", ours, ".send-anyway")
        assert not is_share_file("outboxd-status-b.html.xml", ours, ".send-anyway")
        assert not is_share_file("report.html", ours, ".send-anyway")


def test_attachments_go_in_the_sidecar_for_one_invoice_and_in_id_folders_for_several(
        ) -> None:
    """A file of one invoice takes its attachments in the sidecar itself; a file of
    several in each missing invoice's own subfolder."""
    assert attachment_folders("INV-1", ["INV-1"], ["INV-1"]) == ["INV-1"]
    assert attachment_folders("batch", ["A-1", "CON"], ["CON"]) == ["batch/CON_"]


def test_first_of_says_how_many_more_only_when_there_are_more() -> None:
    """Exactly `limit` items are all shown, with nothing said of more."""
    assert first_of(["a", "b"], 2) == (["a", "b"], "")
    assert first_of(["a", "b", "c"], 2) == (["a", "b"], "… and 1 more")


@pytest.mark.parametrize("name", ["INV-1.xml", "INV-1", "scan.pdf"])
def test_a_name_outboxd_does_not_ignore_has_no_reason_to_be_ignored(name: str) -> None:
    """ignored_as says why a name is ignored, and None for one outboxd reads (an invoice
    file, a sidecar, an attachment): never a reason made up for a file it reads."""
    from daemon.names import ignored_as
    assert ignored_as(name) is None
    assert ignored_as("~$" + name) == "lock" and ignored_as("." + name) == "hidden"
