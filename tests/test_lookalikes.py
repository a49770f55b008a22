"""Look-alike sidecars and what each is told (docs/folder-convention.md, section 3): a
folder (or file) named like an invoice file's sidecar but for upper and lower case or
Unicode form. Asked of the outbox as a listing finds it, as the daemon asks it."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import write

from daemon.bundle import Attachment, Bundle, Conversion, InvoiceFile
from daemon.config import OutboxConfig
from daemon.lookalikes import look_alike_findings, sent_names_distinct
from daemon.scan import list_outbox

PDF = b"%PDF-1.4"


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


def told(outbox: Path, invoice_file: str) -> dict[str, str]:
    """Each look-alike of `invoice_file`'s sidecar → its sidecar-spelling message."""
    cand = list_outbox(OutboxConfig(path=outbox)).candidates[invoice_file]
    findings = look_alike_findings(cand)
    assert {f.code for f in findings} <= {"sidecar-spelling"}
    return {f.file: f.message for f in findings}


def test_two_look_alike_folders_are_told_to_merge_not_each_to_be_renamed(
        outbox: Path) -> None:
    """inv-7/ and Inv-7/ both beside INV-7.xml: renamed one by one to INV-7, the second
    rename cannot work. Each finding names the other folder and says to merge them into
    one folder named exactly INV-7 (or remove the extra one), not "rename it to INV-7"."""
    write(outbox / "inv-7" / "a.pdf", PDF)
    write(outbox / "Inv-7" / "b.pdf", PDF)
    write(outbox / "INV-7.xml", b"<Invoice/>")
    found = told(outbox, "INV-7.xml")
    assert set(found) == {"inv-7", "Inv-7"}
    for name, other in (("inv-7", "Inv-7"), ("Inv-7", "inv-7")):
        message = found[name]
        assert message.startswith("this folder looks like the sidecar INV-7 of INV-7.xml, "
                                  "but the two names differ only in upper and lower case")
        assert f"and {other} looks like it too: only one folder can be named INV-7" \
            in message
        assert "merge them into one folder named exactly INV-7: rename one of them to " \
            "INV-7, each letter in upper or lower case as written here, move the files " \
            "of the other into it and remove the emptied folder, or remove the extra " \
            "folder if it holds nothing for this invoice" in message
        assert "rename it to" not in message


def test_look_alikes_in_both_forms_and_in_case_are_told_to_merge_typing_the_name(
        outbox: Path) -> None:
    """Beside the ERP's Räkning-7.xml (composed) and its sidecar: a Mac's Räkning-7/
    (decomposed), a Windows clerk's räkning-7/ (case) and RÄKNING-7/ (case). The three
    are told to merge, naming the other two, and — as one of them differs in Unicode
    form — to make the name by typing it on the computer that named the invoice file;
    into the sidecar that is there too."""
    nfc, nfd = (unicodedata.normalize(f, "Räkning-7") for f in ("NFC", "NFD"))
    write(outbox / nfc / "a.pdf", PDF)
    for name in (nfd, "räkning-7", "RÄKNING-7"):
        write(outbox / name / "b.pdf", PDF)
    write(outbox / f"{nfc}.xml", b"<Invoice/>")
    found = told(outbox, f"{nfc}.xml")
    assert set(found) == {nfd, "räkning-7", "RÄKNING-7"}
    for name, message in found.items():
        others = sorted(set(found) - {name})
        assert f"and {', '.join(others)} look like it too: only one folder can be " \
            f"named {nfc}" in message
        assert f"merge them into one folder named exactly {nfc}: on the computer that " \
            f"named {nfc}.xml, rename one of them by typing its name again as {nfc}, " \
            "move the files of the others into it and remove the emptied folders" in message
        assert f"if the folder {nfc} is there too, move all their files into it" in message
    assert "spelled with different Unicode characters" in found[nfd]
    assert "differ only in upper and lower case" in found["räkning-7"]


def test_a_look_alike_file_beside_a_look_alike_folder_keeps_its_own_fix(
        outbox: Path) -> None:
    """One folder and one file named like the sidecar: only folders are merged, so the
    folder is told to be renamed and the file to go into the sidecar folder, as when
    each is alone."""
    write(outbox / "inv-7" / "a.pdf", PDF)
    write(outbox / "Inv-7", b"%PDF-1.4 saved without extension")
    write(outbox / "INV-7.xml", b"<Invoice/>")
    found = told(outbox, "INV-7.xml")
    assert "rename it to INV-7," in found["inv-7"] and "merge" not in found["inv-7"]
    assert found["Inv-7"].startswith("this file looks like") and "merge" not in found["Inv-7"]


def test_a_folder_with_a_space_beside_one_in_other_case_are_told_to_merge_exactly(
        outbox: Path) -> None:
    """`INV-7 /` and inv-7/ beside INV-7.xml: merged into one folder named exactly INV-7
    — "each letter in upper or lower case" would not mend the space."""
    write(outbox / "INV-7 " / "a.pdf", PDF)
    write(outbox / "inv-7" / "b.pdf", PDF)
    write(outbox / "INV-7.xml", b"<Invoice/>")
    found = told(outbox, "INV-7.xml")
    assert set(found) == {"INV-7 ", "inv-7"}
    for message in found.values():
        assert "merge them into one folder named exactly INV-7: rename one of them to " \
            "INV-7, exactly as written here, move the files of the other into it" in message
    assert found["INV-7 "].startswith("this folder looks like the sidecar INV-7 of "
                                      "INV-7.xml, but its name \"INV-7 \" has a space at the end")


def test_a_file_with_a_dot_at_its_end_is_told_to_go_into_the_sidecar_folder(
        outbox: Path) -> None:
    """A file `INV-7.` beside INV-7.xml (a scan saved without its extension): a sidecar is
    a folder, so the file is told to go into the folder INV-7, as a file in other case is."""
    write(outbox / "INV-7.", b"%PDF-1.4")
    write(outbox / "INV-7.xml", b"<Invoice/>")
    message = told(outbox, "INV-7.xml")["INV-7."]
    assert message.startswith("this file looks like the sidecar INV-7 of INV-7.xml, but its "
                              "name \"INV-7.\" has a dot at the end")
    assert "make the folder INV-7 (its name as written here) and move this file into it" \
        in message


def test_a_macs_dot_beside_a_sidecar_that_ends_in_a_dot_is_told_apart(outbox: Path) -> None:
    """`ACME Inc..xml` (its sidecar `ACME Inc./`) and a folder a Mac made as `ACME Inc.`
    on a share that keeps its dot as U+F029: the message tells the two dots apart, not
    "a dot at the end where the sidecar's name has a dot at the end"."""
    write(outbox / "ACME Inc\uf029" / "a.pdf", PDF)
    write(outbox / "ACME Inc..xml", b"<Invoice/>")
    message = told(outbox, "ACME Inc..xml")["ACME Inc\uf029"]
    assert "has a dot as a Mac writes it to a share at the end where the sidecar's name " \
        "has a dot at the end" in message


def test_a_converted_image_sent_under_another_attachments_name_is_an_error(tmp_path: Path) -> None:
    """After conversion, two attachments of one invoice that would go out under one
    name (here 'scan.png' sent as its PDF 'scan.png.pdf', beside a file of that name)
    are a name-collision naming both; without a conversion nothing is reported."""
    inv = InvoiceFile(tmp_path / "INV-1.xml", "INV-1.xml", 1, "0" * 64, "ubl", ("INV-1",))
    pdf = Attachment(tmp_path / "p", "INV-1/scan.png.pdf", "scan.png.pdf", "INV-1", 1,
                     "1" * 64, "Attachment")
    png = Attachment(tmp_path / "i", "INV-1/scan.png", "scan.png", "INV-1", 1, "2" * 64,
                     "Attachment")
    plain = Bundle(inv, tmp_path / "INV-1", (pdf, png), "external-print")
    assert sent_names_distinct(plain, safe=True) is plain
    conv = replace(png, converted=Conversion("scan.png.pdf", 1, "3" * 64, 1, "image/png"))
    checked = sent_names_distinct(replace(plain, attachments=(pdf, conv)), safe=True)
    assert [(f.code, f.file) for f in checked.errors] == [("name-collision",
                                                           "INV-1/scan.png")]
    assert "'INV-1/scan.png.pdf'" in checked.errors[0].message
