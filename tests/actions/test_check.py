"""`outboxd check`: the daemon's own reading and validation, printed; nothing written."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import unicodedata
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env
from helpers import (
    UBL_NS,
    drop_bundle,
    fake_mountinfo,
    looks_fail,
    pdf_bytes,
    ubl_invoice,
    write,
)
from PIL import Image, TiffImagePlugin
from pypdf import PdfWriter
from reading.test_invoices import damaged, flate_pdf_pages, text_run

from daemon.actions.reads import CommandReads
from daemon.cli import main


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.encrypt(user_password="", owner_password="x")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def image(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (16, 16), 255).save(buf, fmt, **kw)
    return buf.getvalue()


def tiff(*dpis: int) -> bytes:
    buf = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buf, new=True) as tf:
        for dpi in dpis:
            Image.new("L", (16, 16), 255).save(tf, "TIFF", dpi=(dpi, dpi))
            tf.newFrame()
    return buf.getvalue()


def batch_xml(*ids: str) -> bytes:
    inner = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ids)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>{inner}</Batch>\n'.encode()


def check(env: Env, capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str]:
    code = main(["check", "-c", str(env.config), *map(str, paths)])
    out = capsys.readouterr().out
    return code, out


def by_file(out: str) -> dict[str, str]:
    """check's report of several invoice files, cut into each one's block (its head
    line and the indented lines under it), by its invoice file's name."""
    blocks: dict[str, str] = {}
    name = ""
    for line in out.splitlines(keepends=True):
        if line.strip() and not line.startswith(" "):
            name = line.split("  (", 1)[0]
        blocks[name] = blocks.get(name, "") + line
    return blocks


@pytest.fixture(autouse=True)
def _rules_off_unless_named(env: Env) -> None:
    """Each check loads the e-invoice rules in its reader when pre-flight is on (~0.8 s
    of CPU, most of a test here): a test about them names `preflight` in write_config."""
    env.extra.setdefault("einvoice", {})["preflight"] = "off"


def test_valid_bundle_exits_0_and_lists_its_attachments(cfg: Env, capsys) -> None:
    """A valid bundle: exit 0; the invoice, each attachment with type, pages and verdict."""
    inv = drop_bundle(cfg.outbox, "INV-1001", {"timesheet.pdf": pdf_bytes(2),
                                               "hours.csv": b"a;b\n1;2\n"})
    code, out = check(cfg, capsys, inv)
    assert code == 0
    assert "invoice INV-1001: 2 attachment(s)" in out
    assert "INV-1001/timesheet.pdf  [Attachment, application/pdf, 2 pages]  ok" in out
    # Warnings do not fail the check, and are printed as FILE: message  [code].
    assert "INV-1001/hours.csv: " in out and "[pdf-recommended]" in out
    assert "=> valid (0 error(s), 1 warning(s))" in out


def test_a_bundle_held_by_a_lock_file_in_its_folder_says_so(cfg: Env, capsys) -> None:
    """Word keeps ~$port.docx beside report.docx while it is open: the daemon does not
    send the bundle until it is gone, and `check` called it valid and said nothing of
    it (the page tells it only after 10 minutes unchanged). The note names the lock
    file and how to end the wait; the verdict stays valid."""
    inv = drop_bundle(cfg.outbox, "INV-1001", {"timesheet.pdf": pdf_bytes()})
    write(cfg.outbox / "INV-1001" / "~$report.docx", b"\x0banna" + bytes(150))
    code, out = check(cfg, capsys, inv)
    assert code == 0 and "=> valid" in out
    assert ("  note: not sent while INV-1001/~$report.docx is in its folder: an "
            "in-progress name — a lock file that Word, Excel or LibreOffice keeps while "
            "the document is open — close the document there") in out
    (cfg.outbox / "INV-1001" / "~$report.docx").unlink()
    assert "not sent while" not in check(cfg, capsys, inv)[1]

def test_200_dpi_tiff_on_external_print_channel_fails_naming_file_rule_and_fix(
        cfg: Env, capsys) -> None:
    """The channel override in attachments.toml is honoured, as by the daemon."""
    inv = drop_bundle(cfg.outbox, "INV-2001", {
        "scan.tif": tiff(300, 200), "attachments.toml": b'channel = "external-print"\n'})
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert "channel external-print" in out
    [line] = [ln for ln in out.splitlines() if "INV-2001/scan.tif:" in ln]
    assert "200 DPI" in line and "300 DPI" in line and "rescan" in line
    assert line.rstrip().endswith("]")
    assert "INV-2001/scan.tif  [" in out and "ERROR" in out


@pytest.mark.parametrize("name,data,words", [
    ("contract.pdf", encrypted_pdf(), ("encrypt",)),
    ("photo.pdf", image("PNG"), ("PNG", ".pdf")),
])
def test_bad_attachment_exits_1_naming_the_file(cfg: Env, capsys, name: str, data: bytes,
                                               words: tuple[str, ...]) -> None:
    inv = drop_bundle(cfg.outbox, "INV-3001", {name: data})
    code, out = check(cfg, capsys, inv)
    assert code == 1
    # The first finding of the file is its error; a PNG also gets the e-invoice warning.
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"INV-3001/{name}:"))
    assert all(w.lower() in line.lower() for w in words), line
    assert "—" in line  # the fix follows the rule


def test_multi_invoice_file_with_orphan_subfolder_fails_naming_the_ids(cfg: Env, capsys) -> None:
    inv = write(cfg.outbox / "batch-42.xml", batch_xml("INV-1", "INV-2"))
    write(cfg.outbox / "batch-42" / "INV-1" / "a.pdf", pdf_bytes())
    write(cfg.outbox / "batch-42" / "INV-9" / "b.pdf", pdf_bytes())
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert "invoice INV-1: 1 attachment(s)" in out and "invoice INV-2: no attachments" in out
    [line] = [ln for ln in out.splitlines() if "batch-42/INV-9:" in ln]
    assert "INV-1, INV-2" in line and "[orphan-attachment]" in line


def test_sidecar_folder_path_checks_its_invoice_file(cfg: Env, capsys) -> None:
    drop_bundle(cfg.outbox, "INV-1001", {"t.pdf": pdf_bytes()})
    code, out = check(cfg, capsys, cfg.outbox / "INV-1001")
    assert code == 0 and out.startswith("INV-1001.xml")


def test_an_attachment_path_checks_the_bundle_it_belongs_to_not_a_new_invoice(
        cfg: Env, capsys) -> None:
    """A PDF in a sidecar (or in its invoice-id subfolder) is an attachment to the daemon:
    `check INV-1001/scan.pdf` says whose it is and reports that bundle, with the
    attachment's own error, instead of calling the PDF a valid invoice that waits for
    attachments of its own."""
    drop_bundle(cfg.outbox, "INV-1001", {"timesheet.pdf": pdf_bytes(),
                                         "scan.pdf": encrypted_pdf()})
    code, out = check(cfg, capsys, cfg.outbox / "INV-1001" / "scan.pdf")
    assert code == 1
    assert out.startswith("INV-1001/scan.pdf: an attachment of INV-1001.xml")
    assert "invoice INV-1001: 2 attachment(s)" in out and "[pdf-encrypted]" in out
    assert "invoice scan:" not in out
    write(cfg.outbox / "batch-42.xml", batch_xml("INV-1", "INV-2"))
    write(cfg.outbox / "batch-42" / "INV-1" / "a.pdf", pdf_bytes())
    write(cfg.outbox / "batch-42" / "INV-2" / "notes.txt", b"plain text\n")
    code, out = check(cfg, capsys, cfg.outbox / "batch-42" / "INV-2" / "notes.txt")
    assert code == 1 and out.startswith("batch-42/INV-2/notes.txt: an attachment of batch-42.xml")
    assert "invoice INV-1: 1 attachment(s)" in out and "[type-not-allowed]" in out


def test_an_invoices_subfolder_in_a_sidecar_checks_its_bundle_not_invoices_of_its_own(
        cfg: Env, capsys) -> None:
    """`check batch-42/INV-2` (the folder of one invoice of a multi-invoice file) says
    whose it is and reports that bundle: taken for an outbox of its own, its INV-2.pdf
    was called a valid PDF invoice that waits for attachments."""
    write(cfg.outbox / "batch-42.xml", batch_xml("INV-1", "INV-2"))
    write(cfg.outbox / "batch-42" / "INV-1" / "a.pdf", pdf_bytes())
    write(cfg.outbox / "batch-42" / "INV-2" / "INV-2.pdf", encrypted_pdf())
    code, out = check(cfg, capsys, cfg.outbox / "batch-42" / "INV-2")
    assert code == 1
    assert out.startswith("batch-42/INV-2/: a folder in the sidecar of batch-42.xml; "
                          "checked with its bundle\nbatch-42.xml  (ubl")
    assert "invoice INV-2: 1 attachment(s)" in out and "[pdf-encrypted]" in out
    assert "INV-2.pdf  (pdf" not in out and "1 bundle(s) checked, 1 invalid" in out


def test_an_attachment_in_an_outbox_configured_through_a_link_is_checked_with_its_bundle(
        cfg: Env, capsys) -> None:
    """[outbox] path may reach the share through a link (/srv/invoices → a mount): an
    attachment named under it is told relative to the outbox, with its bundle, as in
    any outbox (it ended in a traceback: the resolved path was not below the
    configured one)."""
    drop_bundle(cfg.outbox, "INV-1001", {"scan.pdf": pdf_bytes()})
    link = cfg.root / "share-link"
    link.symlink_to(cfg.outbox)
    cfg.write_config("http://127.0.0.1:9/bundles", outbox={"path": str(link)})
    code, out = check(cfg, capsys, link / "INV-1001" / "scan.pdf")
    assert code == 0
    assert out.startswith("INV-1001/scan.pdf: an attachment of INV-1001.xml; checked with "
                          "its bundle\nINV-1001.xml")
    assert "invoice INV-1001: 1 attachment(s)" in out


def snapshot_tree(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath, n)
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def test_whole_outbox_of_mixed_bundles_reports_each_and_writes_nothing(cfg: Env,
                                                                        capsys) -> None:
    """Every bundle is reported; exit 1 because one is bad; the tree (names, sizes, mtimes)
    is unchanged and no state dir, journal, errors file or processing folder appears.
    The status page and a release file are neither invoices nor odd files."""
    drop_bundle(cfg.outbox, "good", {"t.pdf": pdf_bytes()})
    drop_bundle(cfg.outbox, "bad", {"x.pdf": image("PNG")})
    drop_bundle(cfg.outbox, "bare", {})
    write(cfg.outbox / "outboxd-status.html", b"<html></html>")
    write(cfg.outbox / "bare.send-anyway", b"")
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"invalid": "hold"})
    before = snapshot_tree(cfg.root)
    code, out = check(cfg, capsys)  # no PATH: the configured outbox
    assert code == 1
    assert snapshot_tree(cfg.root) == before
    assert not cfg.state.exists()
    assert "3 bundle(s) checked, 1 invalid" in out
    assert "bare.xml" in out and "without attachments" in out
    assert "outboxd-status.html" not in out and "send-anyway" not in out.split("note:")[0]


def test_missing_path_is_a_usage_error(cfg: Env, capsys) -> None:
    code = main(["check", "-c", str(cfg.config), str(cfg.outbox / "nope.xml")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.xml does not exist" in err and err.count("outboxd:") == 1


def test_a_path_the_share_fails_to_look_at_is_not_said_missing(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """check INV-1.xml whose look the share fails (EIO): exit 1 with the share's error on
    the file, never the usage error "does not exist" (exit 2) of a file that is there."""
    invoice = write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    looks_fail(monkeypatch, invoice)
    code = main(["check", "-c", str(cfg.config), str(invoice)])
    err = capsys.readouterr().err
    assert code == 1 and "Input/output error" in err and "does not exist" not in err


def test_rules_flag_prints_the_pinned_rule_versions(capsys) -> None:
    assert main(["check", "--rules"]) == 0
    out = capsys.readouterr().out
    assert "artefacts sha256: " in out and "EN 16931" in out


def test_empty_outbox_is_valid_and_says_so_in_one_line(cfg: Env, capsys) -> None:
    """Nothing above the summary, so no blank line sets it apart: the whole output is
    the one line."""
    code, out = check(cfg, capsys)
    assert code == 0
    assert out == "0 bundle(s) checked, 0 invalid (no invoice files found)\n"


def test_the_summary_is_set_apart_from_the_bundles_by_one_blank_line(cfg: Env,
                                                                     capsys) -> None:
    drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    code, out = check(cfg, capsys)
    assert code == 0
    *above, blank, summary = out.splitlines()
    assert (above[0], blank, summary) == ("INV-1.xml  (ubl, channel e-invoice)", "",
                                          "1 bundle(s) checked, 0 invalid")
    assert "" not in above


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_only_on_a_terminal(cfg: Env) -> None:
    """Long runs show `checked N/M` on stderr when it is a terminal, and nothing otherwise;
    stdout carries only the report."""
    from daemon.actions.check import check as run_check
    from daemon.configuration.config_load import load_settings

    for n in range(3):
        drop_bundle(cfg.outbox, f"INV-{n}", {"t.pdf": pdf_bytes()})
    settings = load_settings(cfg.config)
    out, tty, pipe = io.StringIO(), _Tty(), io.StringIO()
    assert run_check([cfg.outbox], settings, out=out, err=tty) == 0
    assert "checked 1/3" in tty.getvalue() and "checked 1/" not in out.getvalue()
    assert run_check([cfg.outbox], settings, out=io.StringIO(), err=pipe) == 0
    assert pipe.getvalue() == ""


def test_a_file_that_is_not_an_invoice_name_is_not_called_valid(env: Env, capsys) -> None:
    """`check README.md`: the daemon ignores files outside invoice_patterns, so check says
    so (exit 2) instead of "valid … goes out"."""
    env.write_config("http://127.0.0.1:9/bundles")
    write(env.outbox / "README.md", b"# notes\n")
    assert main(["check", "-c", str(env.config), str(env.outbox / "README.md")]) == 2
    err = capsys.readouterr().err
    assert "not an invoice file" in err and "invoice_patterns" in err


def test_library_warnings_during_check_follow_the_log_format(env: Env) -> None:
    """Under [log] format = "json", logging is set up from [log] before `check` reads: what
    pypdf says about a damaged PDF ("incorrect startxref pointer") goes through it (as in
    the daemon, pypdf's warnings are quieted there), and no bare line reaches stderr."""
    import re
    import subprocess

    env.write_config("http://127.0.0.1:9/bundles")  # the test config logs JSON
    damaged = re.sub(rb"startxref\n\d+", b"startxref\n9", pdf_bytes())
    drop_bundle(env.outbox, "INV-1", {"scan.pdf": damaged})
    done = subprocess.run([*OUTBOXD, "check", "-c", str(env.config),
                           str(env.outbox / "INV-1.xml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("{") for line in done.stderr.splitlines()), done.stderr


def test_a_hidden_file_is_refused_as_ignored_not_as_a_pattern_mismatch(env: Env,
                                                                       capsys) -> None:
    """`check .INV-2.xml` matches *.xml; the daemon ignores it as a hidden file, and the
    refusal says that rather than blaming invoice_patterns."""
    env.write_config("http://127.0.0.1:9/bundles")
    write(env.outbox / ".INV-2.xml", b"<Invoice/>")
    assert main(["check", "-c", str(env.config), str(env.outbox / ".INV-2.xml")]) == 2
    err = capsys.readouterr().err
    assert "daemon ignores it" in err and "matches none of" not in err


@pytest.mark.parametrize("name", ["INV-7.ready", "INV-7.errors.txt"])
def test_a_marker_or_errors_file_is_refused_as_what_it_is_under_a_pattern_taking_all(
        env: Env, capsys, name: str) -> None:
    """Under invoice_patterns = ["*"] and completion = "marker", `check INV-7.ready`
    checked the marker as an invoice file of its own (an empty one), and so did `check
    INV-7.errors.txt`, outboxd's own list of errors: the daemon takes neither for an
    invoice, and check refuses them saying what they are."""
    env.write_config("http://127.0.0.1:9/bundles",
                     outbox={"invoice_patterns": ["*"], "completion": "marker"})
    write(env.outbox / "INV-7", ubl_invoice("INV-7"))
    write(env.outbox / name, b"")
    assert main(["check", "-c", str(env.config), str(env.outbox / name)]) == 2
    captured = capsys.readouterr()
    assert "is not an invoice file for outboxd" in captured.err
    assert ("it is a marker" in captured.err and "it releases INV-7)" in captured.err) \
        if name.endswith(".ready") else "errors outboxd writes" in captured.err
    assert "invoice INV-7" not in captured.out


def test_a_marker_names_the_invoice_files_it_releases_with_their_extension(
        env: Env, capsys) -> None:
    """`check INV-7.ready` beside INV-7.xml and INV-7.pdf said "the invoice file it
    releases is INV-7", a file the clerk does not see: it names the files themselves,
    and where none is there yet, what their name will be."""
    env.write_config("http://127.0.0.1:9/bundles", outbox={"completion": "marker"})
    write(env.outbox / "INV-7.xml", ubl_invoice("INV-7"))
    write(env.outbox / "INV-7.pdf", pdf_bytes())
    write(env.outbox / "INV-7.ready", b"")
    write(env.outbox / "INV-8.ready", b"")
    assert main(["check", "-c", str(env.config), str(env.outbox / "INV-7.ready")]) == 2
    assert "it releases INV-7.pdf, INV-7.xml)" in capsys.readouterr().err
    assert main(["check", "-c", str(env.config), str(env.outbox / "INV-8.ready")]) == 2
    assert ("it releases an invoice file named INV-8 with its extension (none is in the "
            "outbox now))") in capsys.readouterr().err


@pytest.mark.parametrize("name", ["INV-7.send-anyway", "outboxd-status.html"])
def test_a_release_file_or_the_status_page_is_refused_as_what_it_is_under_a_pattern_taking_all(
        env: Env, capsys, name: str) -> None:
    """Under invoice_patterns = ["*"] the daemon takes neither a release file nor the
    status page for an invoice (they are outboxd's files for the share), but `check` on
    one checked it as an invoice file of its own; it refuses it, saying what it is."""
    env.write_config("http://127.0.0.1:9/bundles", outbox={"invoice_patterns": ["*"]})
    write(env.outbox / "INV-7", ubl_invoice("INV-7"))
    write(env.outbox / name, b"")
    assert main(["check", "-c", str(env.config), str(env.outbox / name)]) == 2
    captured = capsys.readouterr()
    assert "is not an invoice file for outboxd" in captured.err
    assert ("it sends INV-7 without attachments" in captured.err) \
        if name.endswith(".send-anyway") \
        else "the status page outboxd writes" in captured.err
    assert f"invoice {name}" not in captured.out and "empty" not in captured.out


SVEFAKTURA = (b'<?xml version="1.0"?>\n<Invoice xmlns="urn:sfti:documents:BasicInvoice:1:0">'
              b'<ID>SV-1</ID></Invoice>\n')


def test_an_invoice_the_rules_do_not_check_gets_a_not_preflighted_note(
        cfg: Env, capsys) -> None:
    """`check` says which invoices the e-invoice rules did not look at (a Svefaktura file;
    a UBL invoice without an EN 16931 CustomizationID), as a note that fails nothing; a
    Peppol BIS 3 invoice gets none, and with pre-flight off no invoice does."""
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "error"})
    sv = drop_bundle(cfg.outbox, "SV-1", {"a.pdf": pdf_bytes()}, invoice=SVEFAKTURA)
    plain = drop_bundle(cfg.outbox, "INV-1", {"a.pdf": pdf_bytes()}, invoice=(
        f'<?xml version="1.0"?>\n<Invoice {UBL_NS}><cbc:ID>INV-1</cbc:ID></Invoice>\n'
    ).encode())
    peppol = drop_bundle(cfg.outbox, "PEP-1", {"a.pdf": pdf_bytes()})  # Peppol BIS 3
    # One check of the three (each check loads the rules in its reader: ~1 s), read
    # bundle by bundle; exit 0: none of the notes fails its bundle.
    code, out = check(cfg, capsys, sv, plain, peppol)
    shown = by_file(out)
    assert code == 0 and "  notes:\n    SV-1.xml: not checked against the e-invoice rules " \
        "(only EN 16931 UBL is): the invoice file is a Svefaktura 1.0 invoice " \
        "(urn:sfti:documents:BasicInvoice:1:0)  [not-preflighted]" in shown["SV-1.xml"]
    assert "=> valid (0 error(s), 0 warning(s))" in shown["SV-1.xml"]
    assert "invoice INV-1: it has no CustomizationID  [not-preflighted]" in shown["INV-1.xml"]
    assert "PEP-1/a.pdf" in shown["PEP-1.xml"] and "not-preflighted" not in shown["PEP-1.xml"]

    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    code, out = check(cfg, capsys, sv)
    assert code == 0 and "not-preflighted" not in out


CII = (b'<?xml version="1.0" encoding="UTF-8"?>\n<rsm:CrossIndustryInvoice xmlns:rsm='
       b'"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"><rsm:ExchangedDocument/>'
       b"</rsm:CrossIndustryInvoice>\n")


def test_an_invoice_file_read_as_other_is_shown_as_what_it_is(cfg: Env, capsys) -> None:
    """A CII invoice and a UBL Order in the outbox: `check`'s head line and its
    not-preflighted note say what each file is, in not-ubl's words, where they said
    reading's internal "other" and "a non-UBL invoice file" — neither told a clerk which
    export made it. A UBL invoice keeps the manifest's word (ubl)."""
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "error"})
    cii = drop_bundle(cfg.outbox, "CII-1", {"a.pdf": pdf_bytes()}, invoice=CII)
    order = drop_bundle(cfg.outbox, "ORD-1", {"a.pdf": pdf_bytes()}, invoice=(
        b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>'))
    # One check of both (each check loads the rules in its reader: ~1 s), read bundle
    # by bundle.
    code, out = check(cfg, capsys, cii, order)
    shown = by_file(out)
    kind = ("a UN/CEFACT CII invoice (CrossIndustryInvoice, as Factur-X, ZUGFeRD 2 and "
            "XRechnung CII write it)")
    assert code == 0 and shown["CII-1.xml"].startswith(
        f"CII-1.xml  ({kind}, channel e-invoice)\n"), out
    assert "CII-1.xml: not checked against the e-invoice rules (only EN 16931 UBL is): the " \
        f"invoice file is {kind}  [not-preflighted]" in shown["CII-1.xml"]
    assert shown["ORD-1.xml"].startswith("ORD-1.xml  (a UBL Order, channel e-invoice)\n"), out
    assert "the invoice file is a UBL Order  [not-preflighted]" in shown["ORD-1.xml"]
    assert "(other," not in out and "non-UBL" not in out


def test_a_pdf_of_invoices_with_a_page_whose_text_cannot_be_read_is_the_daemons_error(
        cfg: Env, capsys) -> None:
    """`check` reads the invoice file as the daemon does: a PDF holding INV-1 and INV-2
    and a damaged third page is the error naming the page and the ids (it went out as
    the invoice "print", none of the three); one damaged page and no id is valid, sent
    under its stem, with the warning that its number was not looked for."""
    write(cfg.outbox / "print" / "a.pdf", pdf_bytes())
    inv = write(cfg.outbox / "print.pdf", flate_pdf_pages([
        text_run("Invoice number: INV-1"), text_run("Invoice number: INV-2"),
        damaged("Invoice number: INV-3")]))
    code, out = check(cfg, capsys, inv)
    assert code == 1, out
    [line] = [ln for ln in out.splitlines() if "[pdf-text-unreadable]" in ln]
    assert line.strip().startswith("print.pdf: holds the invoices INV-1, INV-2, but the text "
                                   "of page 3 could not be read (pypdf: ")
    assert "split it into one file per invoice" in line
    assert "=> INVALID (1 error(s), 0 warning(s))" in out
    write(cfg.outbox / "INV-8" / "a.pdf", pdf_bytes())
    inv = write(cfg.outbox / "INV-8.pdf", flate_pdf_pages([damaged("Invoice number: A-1")]))
    code, out = check(cfg, capsys, inv)
    assert code == 0, out
    assert "invoice INV-8: 1 attachment(s)" in out
    [line] = [ln for ln in out.splitlines() if "[pdf-text-unreadable]" in ln]
    assert line.strip().startswith("INV-8.pdf: the text of page 1 could not be read (pypdf: ")
    assert "=> valid (0 error(s), 1 warning(s))" in out


def test_a_ubl_batch_that_cannot_be_read_is_not_called_non_ubl(cfg: Env, capsys) -> None:
    """Two Peppol invoices with one id in one file: the file is an error (the id twice),
    and its not-preflighted note said "a non-UBL invoice file", sending the clerk to
    look at the format. It says the file could not be read."""
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "error"})
    body = ubl_invoice("DUP-1").split(b"?>", 1)[-1]
    batch = drop_bundle(cfg.outbox, "batch-1", {}, invoice=b"<Batch>" + body + body +
                        b"</Batch>")
    code, out = check(cfg, capsys, batch)
    assert code == 1 and "[duplicate-invoice-id]" in out
    assert out.startswith("batch-1.xml  (could not be read, channel e-invoice)"), out
    assert "non-UBL" not in out
    assert "batch-1.xml: not checked against the e-invoice rules: the invoice file could " \
        "not be read (see its error)  [not-preflighted]" in out


def _spellings(name: str) -> tuple[str, str]:
    """`name` composed (as an ERP writes it) and decomposed (as a Mac writes it)."""
    return unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)


def test_a_look_alike_sidecar_folder_reports_the_invoice_it_holds_back(cfg: Env, capsys) -> None:
    """A Mac made Räkning-7/ (accents decomposed) beside the ERP's Räkning-7.xml: the
    daemon holds the invoice for sidecar-spelling. `check` given the folder says the same
    as given the invoice file or the whole outbox — that invoice's report with the error
    naming the folder and the fix, exit 1 — instead of reading the folder as an outbox
    of its own and calling its PDF a valid invoice file."""
    nfc, nfd = _spellings("Räkning-7")
    inv = write(cfg.outbox / f"{nfc}.xml", ubl_invoice("R7"))
    write(cfg.outbox / nfd / "timesheet.pdf", pdf_bytes())
    code, out = check(cfg, capsys, cfg.outbox / nfd)
    assert code == 1
    assert out.startswith(f"{nfc}.xml  (ubl,")
    assert f"    {nfd}: this folder looks like the sidecar {nfc} of {nfc}.xml" in out
    assert "rename it by typing its name again" in out and "[sidecar-spelling]" in out
    assert "timesheet.pdf  (" not in out
    assert out.endswith("1 bundle(s) checked, 1 invalid\n")
    assert check(cfg, capsys, inv) == (1, out)
    assert check(cfg, capsys) == (1, out)


def test_a_look_alike_sidecar_file_reports_the_invoice_it_holds_back(cfg: Env, capsys) -> None:
    """A file (not a folder) named like the sidecar in the other Unicode form also holds
    the invoice (match.py: "this file looks like …"). `check` given that file reports the
    invoice with that error and exits 1, as for the invoice file, instead of refusing the
    file as no invoice name (exit 2)."""
    nfc, nfd = _spellings("Räkning-7")
    inv = write(cfg.outbox / f"{nfc}.xml", ubl_invoice("R7"))
    write(cfg.outbox / nfd, b"notes")
    code, out = check(cfg, capsys, cfg.outbox / nfd)
    assert code == 1
    assert f"    {nfd}: this file looks like the sidecar {nfc} of {nfc}.xml" in out
    assert check(cfg, capsys, inv) == (1, out)


def test_a_folder_that_is_one_invoices_sidecar_and_looks_like_anothers_reports_both(
        cfg: Env, capsys) -> None:
    """The Mac's Räkning-7.pdf owns its Räkning-7/ (both decomposed); the ERP's
    Räkning-7.xml (composed) has no sidecar, and the Mac's folder looks like it: the
    daemon holds the .xml for sidecar-spelling. `check` given the folder reports both
    invoice files, as for the whole outbox."""
    nfc, nfd = _spellings("Räkning-7")
    write(cfg.outbox / f"{nfc}.xml", ubl_invoice("R7"))
    write(cfg.outbox / f"{nfd}.pdf", pdf_bytes())
    write(cfg.outbox / nfd / "timesheet.pdf", pdf_bytes(2))  # not a copy of the invoice
    code, out = check(cfg, capsys, cfg.outbox / nfd)
    assert code == 1
    assert f"{nfd}: this folder looks like the sidecar {nfc} of {nfc}.xml" in out
    assert f"{nfd}.pdf  (pdf," in out and "2 bundle(s) checked, 1 invalid" in out
    assert check(cfg, capsys) == (1, out)


def test_a_folder_named_in_other_case_is_reported_for_the_invoice_the_folder_and_the_outbox(
        cfg: Env, capsys) -> None:
    """A Windows clerk made inv-1001/ beside the ERP's INV-1001.xml: the daemon holds the
    invoice for sidecar-spelling. `check` says so, with the case difference, whether
    given the invoice file, the folder or the whole outbox — the same report, exit 1 —
    and does not read the folder as an outbox of its own."""
    inv = write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    write(cfg.outbox / "inv-1001" / "timesheet.pdf", pdf_bytes())
    code, out = check(cfg, capsys, inv)
    assert code == 1 and out.startswith("INV-1001.xml  (ubl,")
    assert "    inv-1001: this folder looks like the sidecar INV-1001 of INV-1001.xml, but " \
        "the two names differ only in upper and lower case" in out
    assert "[sidecar-spelling]" in out and "timesheet.pdf  (" not in out
    assert out.endswith("1 bundle(s) checked, 1 invalid\n")
    assert check(cfg, capsys, cfg.outbox / "inv-1001") == (1, out)
    assert check(cfg, capsys) == (1, out)


def test_two_folders_named_in_other_case_are_told_to_merge_given_either_or_the_outbox(
        cfg: Env, capsys) -> None:
    """inv-1001/ and Inv-1001/ beside INV-1001.xml: `check` reports both with the advice
    to merge them into one folder named exactly INV-1001 (they cannot both be renamed to
    it), the same given either folder, the invoice file or the outbox."""
    inv = write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    write(cfg.outbox / "inv-1001" / "timesheet.pdf", pdf_bytes())
    write(cfg.outbox / "Inv-1001" / "contract.pdf", pdf_bytes(2))
    code, out = check(cfg, capsys, inv)
    assert code == 1 and out.count("[sidecar-spelling]") == 2
    assert "    Inv-1001: this folder looks like the sidecar INV-1001 of INV-1001.xml" in out
    assert "    inv-1001: this folder looks like the sidecar INV-1001 of INV-1001.xml" in out
    assert out.count("merge them into one folder named exactly INV-1001") == 2
    assert "rename it to INV-1001" not in out
    for given in ((cfg.outbox / "inv-1001",), (cfg.outbox / "Inv-1001",), ()):
        assert check(cfg, capsys, *given) == (1, out)


def test_the_sidecar_of_an_invoice_file_named_in_other_case_is_no_look_alike(
        cfg: Env, capsys) -> None:
    """INV-7.xml and inv-7.xml are two bundles on Linux; inv-7/ is the second one's
    sidecar, not a look-alike of the first: both check valid. Beside them INV-8.xml with
    only inv-8/ is the one reported."""
    write(cfg.outbox / "INV-7.xml", ubl_invoice("INV-7"))
    write(cfg.outbox / "inv-7.xml", ubl_invoice("inv-7"))
    write(cfg.outbox / "inv-7" / "timesheet.pdf", pdf_bytes())
    write(cfg.outbox / "INV-8.xml", ubl_invoice("INV-8"))
    write(cfg.outbox / "inv-8" / "timesheet.pdf", pdf_bytes())
    code, out = check(cfg, capsys)
    assert code == 1 and out.count("[sidecar-spelling]") == 1
    assert "    inv-8: this folder looks like the sidecar INV-8 of INV-8.xml" in out
    assert "3 bundle(s) checked, 1 invalid" in out


def test_a_file_named_as_a_sidecar_reports_the_invoice_it_holds_back(cfg: Env, capsys) -> None:
    """A file INV-1 where the folder INV-1/ belongs is an error of INV-1.xml (not-a-folder);
    `check INV-1` reports that invoice with it and exits 1, instead of refusing the file
    as no invoice name."""
    inv = drop_bundle(cfg.outbox, "INV-1", {})
    write(cfg.outbox / "INV-1", b"notes")
    code, out = check(cfg, capsys, cfg.outbox / "INV-1")
    assert code == 1 and "    INV-1: the sidecar is not a folder" in out
    assert check(cfg, capsys, inv) == (1, out)


def test_a_folder_that_cannot_be_listed_keeps_each_path_checked_as_itself(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder one may enter but not list (mode 0711; the listing looks for look-alike
    sidecars): a name that is no invoice file is still the usage error (exit 2, "not an
    invoice file"), and an invoice file in it is still read and checked (exit 0)."""
    import daemon.actions.check_targets as check_module

    def unlistable(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", str(cfg.outbox))
    drop_bundle(cfg.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    write(cfg.outbox / "notes.txt", b"notes\n")
    monkeypatch.setattr(check_module, "list_outbox", unlistable)
    assert main(["check", "-c", str(cfg.config), str(cfg.outbox / "notes.txt")]) == 2
    assert "not an invoice file" in capsys.readouterr().err
    code, out = check(cfg, capsys, cfg.outbox / "INV-1.xml")
    assert code == 0 and "a.pdf" in out


def _quarantined_for_inv_7(cfg: Env, mark: str = "", other: str = "other") -> Path:
    """INV-7.xml quarantined for inv-7/ (made on Windows), which stayed in the outbox;
    and `other`/, a folder no quarantine left. `mark` follows INV-7 and inv-7 in every
    name. The journal's path."""
    from daemon.configuration.config_load import load_settings
    from daemon.journal import Journal
    s = load_settings(cfg.config)
    invoice, side = f"INV-7{mark}.xml", f"inv-7{mark}"
    folder = write(s.quarantine_dir / "2026-11-26" / "INV-7--3f2a9c01b7e4" / invoice,
                   ubl_invoice("INV-7")).parent
    write(cfg.outbox / side / "timesheet.pdf", pdf_bytes())
    write(cfg.outbox / other / "readme.txt", b"no invoice")
    s.journal_path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(s.journal_path)
    journal.create(invoice, "quarantined", archive_dir=str(folder), reasons=[
        {"code": "sidecar-spelling", "file": side,
         "message": f"this folder looks like the sidecar INV-7{mark} of {invoice} — "
                    "rename it"}])
    journal.close()
    return s.journal_path


def test_a_look_alike_a_quarantine_left_in_the_outbox_is_reported_as_such(
        cfg: Env, capsys) -> None:
    """INV-7.xml was quarantined for inv-7/ (made on Windows), which stayed in the outbox:
    check given the folder says so, from the journal, with the quarantine folder and the
    order of the fix, and exits 1 — not that a sidecar waits for its invoice file. With
    no such row (a folder no quarantine left) the old note stands."""
    _quarantined_for_inv_7(cfg)
    code, out = check(cfg, capsys, cfg.outbox / "inv-7")
    assert code == 1
    assert out.startswith("inv-7/: INV-7.xml was quarantined because of it and waits in "
                          "quarantine/2026-11-26/INV-7--3f2a9c01b7e4: this folder looks like")
    assert "Mend it in the outbox first" in out and "[sidecar-spelling]" in out
    code, out = check(cfg, capsys, cfg.outbox / "other")
    assert code == 0 and "a sidecar without its invoice file waits for it" in out


def test_a_folder_shown_like_a_look_alike_a_quarantine_left_is_not_taken_for_it(
        cfg: Env, capsys) -> None:
    """INV-7 + U+202E + .xml was quarantined for inv-7 + U+202E (made on Windows), which
    stayed in the outbox; a folder named inv-7\\u202e (the code typed) is shown alike but
    is another folder: check given it says what it is (a sidecar waiting for its invoice
    file), not that the quarantine waits for it to be mended. The look-alike itself still
    is reported as such. Before, the left look-alikes were matched by the name as shown."""
    _quarantined_for_inv_7(cfg, mark="\u202e", other="inv-7\\u202e")
    code, out = check(cfg, capsys, cfg.outbox / "inv-7\\u202e")
    assert "was quarantined because of it" not in out
    assert code == 0 and "a sidecar without its invoice file waits for it" in out
    code, out = check(cfg, capsys, cfg.outbox / "inv-7\u202e")
    assert code == 1 and "was quarantined because of it" in out


def _unwritable(path: Path, monkeypatch: pytest.MonkeyPatch, opens: list[str],
                immutable_too: bool = False) -> None:
    """The state dir as one the user may not write to: mode 0555, or, for root (whom the
    mode does not stop), SQLite's open failing as it does there unless it is immutable
    (or failing always). `opens`: the database URIs SQLite was asked to open."""
    import sqlite3
    real = sqlite3.connect

    def connect(database: object, *args: object, **kw: object) -> sqlite3.Connection:
        opens.append(str(database))
        if os.geteuid() == 0 and (immutable_too or "immutable=1" not in str(database)):
            raise sqlite3.OperationalError("unable to open database file")
        return real(database, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", connect)
    if os.geteuid() != 0:
        path.chmod(0o555)


def test_check_in_a_read_only_state_dir_reads_the_journal_immutable(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where SQLite cannot open the journal as usual (it wants its -wal and -shm files in
    a state dir the user may not write to), check reads it again read-only and
    immutable, and still reports the look-alike a quarantine left (exit 1)."""
    state = _quarantined_for_inv_7(cfg).parent
    opens: list[str] = []
    _unwritable(state, monkeypatch, opens)
    try:
        code, out = check(cfg, capsys, cfg.outbox / "inv-7")
    finally:
        state.chmod(0o755)
    assert code == 1, out
    assert out.startswith("inv-7/: INV-7.xml was quarantined because of it")
    assert "note:" not in out
    assert any("mode=ro&immutable=1" in uri for uri in opens)


def test_check_without_a_journal_it_can_open_says_so_in_one_line_and_goes_on(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """When not even the immutable open works, check goes on without the journal: one
    note names the journal and the fix, the folder is checked as without a journal
    (a folder of the outbox without its invoice file, as the whole outbox's check says
    it; exit 0), and no traceback."""
    journal = _quarantined_for_inv_7(cfg)
    if os.geteuid() != 0:
        journal.chmod(0)  # the file itself unreadable: immutable does not help either
    _unwritable(journal.parent, monkeypatch, [], immutable_too=True)
    try:
        code = main(["check", "-c", str(cfg.config), str(cfg.outbox / "inv-7")])
    finally:
        journal.parent.chmod(0o755)
        journal.chmod(0o644)
    captured = capsys.readouterr()
    assert code == 0
    notes = [line for line in captured.out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and str(journal) in notes[0] and "state_dir" in notes[0]
    assert "check goes on without what the daemon knows" in notes[0]
    assert "inv-7/: no invoice file of that name beside it" in captured.out
    assert "Traceback" not in captured.err


def test_a_journal_row_with_unreadable_reasons_is_named_not_a_traceback(
        cfg: Env, capsys) -> None:
    """A quarantined row whose reasons are not JSON (the journal edited by hand): check
    names the invoice file, the rule and where its reasons are, then checks the folder
    as without that row (exit 0), with no traceback."""
    import sqlite3
    journal = _quarantined_for_inv_7(cfg)
    db = sqlite3.connect(journal)
    db.execute("""UPDATE bundles SET reasons = '[{"code": "sidecar-spelling", "file": '""")
    db.commit()
    db.close()
    code = main(["check", "-c", str(cfg.config), str(cfg.outbox / "inv-7")])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    [note] = [line for line in captured.out.splitlines() if line.startswith("note: ")]
    assert note.startswith("note: INV-7.xml: the journal's reasons for its quarantine "
                           "cannot be read")
    assert note.endswith("INV-7--3f2a9c01b7e4 says  [unreadable-reasons]")


def test_control_characters_from_the_share_never_reach_the_terminal(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names on the share may hold C1 controls (U+009B starts an escape sequence on some
    terminals; such a name is a usable one), invoice ids C0 and C1 ones: every line check
    prints shows them as \\xNN — the report, a folder's note, and the lines of a bundle
    whose invoice file cannot be read (here: replaced by a link after the listing)."""
    from daemon.actions.reads import CommandReads
    from daemon.errors import HostileInput
    out_dir = cfg.outbox
    write(out_dir / "B\x9b2J.xml", batch_xml("B-1\x9b31m", "B-2\x85"))
    write(out_dir / "B\x9b2J" / "B-1\x9b31m" / "a.pdf", pdf_bytes())
    write(out_dir / "L\x9b2J" / "notes.txt", b"x")
    code, out = check(cfg, capsys, out_dir / "B\x9b2J.xml", out_dir / "L\x9b2J")
    assert "\x9b" not in out and "\x1b" not in out
    assert "B\\x9b2J.xml" in out and "L\\x9b2J/: no invoice file of that name" in out
    assert "invoice B-1\\x9b31m" in out

    def swapped(reads, cand, settings):
        raise HostileInput("symlink", cand.invoice.name, "is a symbolic link; outboxd "
                           "never follows links — put the file itself in the folder")
    monkeypatch.setattr(CommandReads, "evaluate", swapped)
    code, out = check(cfg, capsys, out_dir / "B\x9b2J.xml")
    assert code == 1 and "\x9b" not in out
    assert "B\\x9b2J.xml: is a symbolic link" in out


def test_a_bundle_waiting_for_its_marker_is_valid_with_a_note_saying_it_waits(
        env: Env, capsys) -> None:
    """completion = "marker": a valid bundle without NAME.ready is valid (exit 0), and a
    note says it waits for that file, so "valid" is no promise that it goes; with the
    marker there, no note."""
    env.write_config("http://127.0.0.1:9/bundles", outbox={"completion": "marker"})
    inv = drop_bundle(env.outbox, "INV-1001", {"a.pdf": pdf_bytes()})
    code, out = check(env, capsys, inv)
    assert code == 0 and "=> valid" in out
    assert "note: waits for its marker file INV-1001.ready" in out
    write(env.outbox / "INV-1001.ready", b"")
    code, out = check(env, capsys, inv)
    assert code == 0 and "marker" not in out


def test_a_check_of_the_whole_outbox_names_sidecars_without_their_invoice_file(
        cfg: Env, capsys) -> None:
    """A folder in the outbox that is no bundle's sidecar (its invoice file not there yet,
    or a folder put there by mistake) is named, with what it waits for; sidecars of
    bundles, their look-alikes (told with the bundle) and outboxd's own folder are not."""
    drop_bundle(cfg.outbox, "INV-1001", {"a.pdf": pdf_bytes()})
    write(cfg.outbox / "INV-1002" / "b.pdf", pdf_bytes())
    write(cfg.outbox / "inv-1001" / "c.pdf", pdf_bytes())  # a look-alike of INV-1001/
    (cfg.outbox / ".outboxd").mkdir()
    code, out = check(cfg, capsys, cfg.outbox)
    assert "INV-1002/: no invoice file of that name beside it; a sidecar without its " \
        "invoice file waits for it" in out
    assert "inv-1001/: no invoice file" not in out and ".outboxd" not in out
    assert "INV-1001/: no invoice file" not in out
    assert code == 1  # the look-alike stops INV-1001 ([sidecar-spelling]), not the note


def test_a_check_of_the_outbox_tells_attachments_that_came_after_their_invoice_was_sent(
        cfg: Env, capsys) -> None:
    """A folder named like the sidecar of an invoice file the journal has as sent: not
    "a sidecar waits for its invoice file" (it would wait for good) but what the status
    page says — it came late, and what to do."""
    from daemon.journal import Journal

    cfg.state.mkdir(exist_ok=True)
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("L1.xml", "sent", bundle_id="a" * 64, invoice_ids=["L1"])
    j.close()
    write(cfg.outbox / "L1" / "timesheet.pdf", pdf_bytes())
    code, out = check(cfg, capsys, cfg.outbox)
    assert "L1/: named as the attachments of L1.xml, which was sent at " in out
    assert "waits for it" not in out and code == 0


def test_an_invoice_file_that_is_a_link_or_fifo_is_reported_as_not_a_file_not_a_bad_name(
        cfg: Env, capsys) -> None:
    """A link and a FIFO in an invoice file's place are refused under their own rule
    (not-a-file), and a name with control characters under bad-name: the code tells the
    reader what to fix, as in REASON.txt for the same things in a sidecar."""
    out_dir = cfg.outbox
    (out_dir / "L.xml").symlink_to("/etc/passwd")
    os.mkfifo(out_dir / "F.xml")
    write(out_dir / "N\x07.xml", batch_xml("N-1"))
    code, out = check(cfg, capsys, out_dir)
    assert code == 1
    assert "L.xml: is a symbolic link, not a regular file; outboxd never follows or opens " \
           "it — put the invoice file itself there  [not-a-file]" in out
    assert "F.xml: is a FIFO, not a regular file;" in out and "there  [not-a-file]" in out
    assert "N\\x07.xml: the name holds a control character (\\x07) — rename the file  " \
           "[bad-name]" in out
    assert "L.xml: is a symbolic link, not a regular file; outboxd never follows or opens " \
           "it — put the invoice file itself there  [bad-name]" not in out


def test_two_unusable_invoice_files_shown_alike_are_two_lines_each_with_its_rule(
        cfg: Env, capsys) -> None:
    """A link named X\\u202e.xml (the six characters typed) and a FIFO named X + U+202E
    + .xml: check of the outbox names each, shown alike as X\\u202e.xml, with its own
    why, and no raw U+202E reaches the terminal (the listing holds names as on disk)."""
    (cfg.outbox / "X\\u202e.xml").symlink_to("/etc/passwd")
    os.mkfifo(cfg.outbox / "X\u202e.xml")
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 1 and "\u202e" not in out
    assert "X\\u202e.xml: is a symbolic link, not a regular file;" in out
    assert "X\\u202e.xml: is a FIFO, not a regular file;" in out


def test_check_of_outboxds_own_folders_is_a_usage_error_not_a_waiting_sidecar(
        cfg: Env, capsys) -> None:
    """`check OUTBOX/.outboxd`, its processing/ folder or a bundle being delivered in it:
    not "a sidecar without its invoice file waits for it" (nothing will come) but that it
    is outboxd's own working folder, exit 2; the whole outbox still passes over it."""
    work = cfg.processing / "INV-1001--0123456789ab"
    write(work / "INV-1001.xml", ubl_invoice("INV-1001"))
    for path, what in ((cfg.outbox / ".outboxd", "is outboxd's own working folder"),
                       (cfg.processing, "is outboxd's processing folder"),
                       (work, "is in outboxd's processing folder"),
                       (work / "INV-1001.xml", "is in outboxd's processing folder")):
        assert main(["check", "-c", str(cfg.config), str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"outboxd: check: {path} {what}")
        assert "not something to check" in captured.err
        assert "waits for it" not in captured.out + captured.err
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 0 and ".outboxd" not in out and "processing" not in out


def test_two_invoice_files_with_one_sidecar_are_reported_as_the_daemon_holds_them(
        cfg: Env, capsys) -> None:
    """INV-1.xml and its print INV-1.pdf beside INV-1/: the daemon holds both
    (`sidecar-shared`). `check` says so for either file, the folder or the whole outbox:
    both files invalid, exit 1. Without the folder the two are valid invoices."""
    xml = write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(cfg.outbox / "INV-1.pdf", pdf_bytes(3))
    code, out = check(cfg, capsys)
    assert code == 0 and "[sidecar-shared]" not in out
    write(cfg.outbox / "INV-1" / "timesheet.pdf", pdf_bytes(2))
    code, out = check(cfg, capsys, xml)
    assert code == 1 and out.startswith("INV-1.xml  (ubl,")
    assert "    INV-1: INV-1.pdf and INV-1.xml both have the attachments folder INV-1/" in out
    assert "[sidecar-shared]" in out and out.endswith("1 bundle(s) checked, 1 invalid\n")
    code, out = check(cfg, capsys)
    assert code == 1 and out.count("[sidecar-shared]") == 2
    assert out.endswith("2 bundle(s) checked, 2 invalid\n")
    assert check(cfg, capsys, cfg.outbox / "INV-1") == (1, out)


def test_under_warn_a_rule_an_embedded_document_breaks_is_listed_once_as_the_error(
        cfg: Env, capsys) -> None:
    """ubl-embedded never sends a document that breaks a fatal rule, even under
    `preflight = "warn"`; `check` listed such a rule twice, as pre-flight's warning and
    as the embedded document's error. It is listed once, as the error; a warning-level
    rule stays a warning. When no document can be built (a TIFF inside), pre-flight's
    warning is kept: nothing else names the rule then."""
    cfg.write_config("http://127.0.0.1:9/bundles", delivery={"format": "ubl-embedded"},
                     einvoice={"preflight": "warn"})
    bad = ubl_invoice("INV-1").replace(
        b'<cbc:PayableAmount currencyID="EUR">125.00<',
        b'<cbc:PayableAmount currencyID="EUR">9.00<').replace(
        b"<cbc:IssueDate>", b"<cbc:UUID>u-1</cbc:UUID><cbc:IssueDate>", 1)
    inv = drop_bundle(cfg.outbox, "INV-1", {"a.pdf": pdf_bytes()}, bad)
    code, out = check(cfg, capsys, inv)
    assert code == 1 and out.count("[BR-CO-16]") == 1
    assert "INV-1.xml: invoice INV-1 breaks [BR-CO-16]" in out.split("  warnings:")[0]
    assert "INV-1.xml: [UBL-CR-005] A UBL invoice should not include the UUID" in \
        out.split("  warnings:")[1]
    assert "=> INVALID (1 error(s), 1 warning(s))" in out

    cfg.write_config("http://127.0.0.1:9/bundles", delivery={"format": "ubl-embedded"},
                     einvoice={"preflight": "warn"},
                     validation={"allowed_types": ["pdf", "tiff"]})
    write(cfg.outbox / "INV-1" / "scan.tif", tiff(300))
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "[embed-type-not-allowed]" in out
    assert "INV-1.xml: [BR-CO-16]" in out.split("  warnings:")[1]


@pytest.mark.parametrize("policy, verdict, code, kind", [
    ("send", "=> valid (0 error(s), 1 warning(s))", 0, "warnings"),
    ("warn", "=> valid (0 error(s), 1 warning(s))", 0, "warnings"),
    ("hold", "=> valid (0 error(s), 1 warning(s))", 0, "warnings"),
    ("quarantine", "=> INVALID (1 error(s), 0 warning(s))", 1, "errors"),
])
def test_an_invoice_without_attachments_is_counted_as_the_daemon_will_end_it(
        cfg: Env, capsys, policy: str, verdict: str, code: int, kind: str) -> None:
    """An invoice without attachments gets the `unattached-invoice` finding the daemon
    will give it, as a line with its code and in the count: a warning where it is sent
    without them ("send" at once, "warn" after its wait, "hold" once a person releases
    it), an error where "quarantine" quarantines it after its wait (exit 1, as for a file
    that looks cut short: check says how the bundle ends as it lies); the note says the
    wait."""
    bare = drop_bundle(cfg.outbox, "INV-1", {})
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"unattached": policy})
    got, out = check(cfg, capsys, bare)
    assert got == code
    assert "  invoice INV-1: no attachments" in out
    assert f'[policy] unattached = "{policy}"' in out
    block = out.split(f"  {kind}:\n")[1]
    line = block.splitlines()[0]
    assert line.startswith("    INV-1.xml: invoice INV-1 ")
    assert line.endswith("  [unattached-invoice]")
    assert verdict in out
    if policy == "quarantine":
        assert "quarantined" in line and "INV-1.send-anyway" in line
        assert "1 bundle(s) checked, 1 invalid" in out
    # Its one error is the wait's own outcome: no other error to mend first.
    assert "once its errors are mended" not in out


def test_a_released_invoice_without_attachments_is_a_warning_naming_the_release(
        cfg: Env, capsys) -> None:
    """With a release file beside it the invoice goes out at once, whatever the policy:
    check counts the warning the manifest will carry, naming the release, and its note
    says it goes out at once, not that it waits."""
    bare = drop_bundle(cfg.outbox, "INV-1", {})
    write(cfg.outbox / "INV-1.send-anyway", b"")
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"unattached": "quarantine"})
    got, out = check(cfg, capsys, bare)
    assert got == 0
    assert "note: INV-1 without attachments: released by INV-1.send-anyway — it goes " \
        "out at once with a warning" in out
    assert "    INV-1.xml: invoice INV-1 is sent without attachments (released by " \
        "INV-1.send-anyway" in out
    assert "=> valid (0 error(s), 1 warning(s))" in out


def test_an_unattached_invoice_beside_other_errors_is_shown_but_not_counted(
        cfg: Env, capsys) -> None:
    """A file of two invoices, one without attachments and one with a bad one: the
    daemon stops the bundle for the error at once, without waiting, so check counts that
    error alone, under every policy — but it shows the missing attachments too, as a
    note and in the note line, so that the clerk mends everything in one go (check left
    them out: the clerk mended the error and only then learned of the wait)."""
    bundle = drop_bundle(cfg.outbox, "batch", {"A-1/x.pdf": b""},
                         invoice=batch_xml("A-1", "A-2"))
    for policy in ("warn", "quarantine"):
        cfg.write_config("http://127.0.0.1:9/bundles", policy={"unattached": policy})
        got, out = check(cfg, capsys, bundle)
        assert got == 1
        assert "=> INVALID (1 error(s), 0 warning(s))" in out
        assert (f'  note: A-2 without attachments: [policy] unattached = "{policy}" — once '
                "its errors are mended, it waits 1 s for attachments, then ") in out
        notes = out.split("  notes:\n")[1]
        line = notes.splitlines()[0]
        assert line.startswith("    batch.xml: once its errors are mended: invoice A-2 ")
        assert line.endswith("  [unattached-invoice]")


def test_an_invalid_invoice_file_without_attachments_shows_the_wait_under_hold(
        cfg: Env, capsys) -> None:
    """An invoice file that is no well-formed XML, without attachments, under [policy]
    unattached = "hold": check showed the XML error alone, where a valid one gets the
    note that it waits until released; now both are shown, the error counted alone."""
    bare = drop_bundle(cfg.outbox, "INV-2", {}, invoice=b'<?xml version="1.0"?><Invoice><x')
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"unattached": "hold"})
    got, out = check(cfg, capsys, bare)
    assert got == 1 and "[invalid-xml]" in out
    assert ('  note: INV-2 without attachments: [policy] unattached = "hold" — once its '
            "errors are mended, it waits for attachments until released") in out
    assert "[unattached-invoice]" in out.split("  notes:\n")[1]
    assert "=> INVALID (1 error(s), 0 warning(s))" in out


SENT_AT = "2026-11-26T09:30:00.000Z"


def _sent_before(cfg: Env, invoice_file: str, invoice_ids: list[str], bundle_id: str,
                 state: str = "sent") -> Path:
    """The daemon's journal holding one bundle sent (or, by `state`, on its way) at
    SENT_AT, archived in sent/2026-11-26/; the journal's path."""
    from daemon.configuration.config_load import load_settings
    from daemon.journal import Journal
    s = load_settings(cfg.config)
    folder = s.sent_dir / "2026-11-26" / f"{Path(invoice_file).stem}--{bundle_id[:12]}"
    s.journal_path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(s.journal_path)
    journal.create(invoice_file, state, since=SENT_AT, bundle_id=bundle_id,
                   invoice_ids=invoice_ids, archive_dir=str(folder))
    journal.close()
    return s.journal_path


def _bundle_id(cfg: Env, invoice: Path) -> str:
    """The bundle's id as the daemon computes it from what it reads."""
    from daemon.configuration.config_load import load_settings
    from daemon.delivery.finish import evaluate
    from daemon.manifest import bundle_id_of
    from daemon.watching.scan import candidate_for
    s = load_settings(cfg.config)
    return bundle_id_of(evaluate(candidate_for(s.outbox, invoice.name), s))


def test_a_bundle_sent_before_is_the_duplicate_error_naming_when_and_its_sent_folder(
        cfg: Env, capsys) -> None:
    """The exact bundle the journal has as sent: under [policy] duplicates = "quarantine"
    (the default) check gives the `duplicate` error the daemon quarantines it for,
    naming when it was sent (the journal's time, as status shows it) and its folder in
    sent/, exit 1; and it reads the journal without writing anything beside it."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    bid = _bundle_id(cfg, inv)
    journal = _sent_before(cfg, "INV-1.xml", ["INV-1"], bid)
    before = snapshot_tree(cfg.root)
    code, out = check(cfg, capsys, inv)
    assert code == 1, out
    assert (f"    INV-1.xml: this exact bundle ({bid[:12]}) was sent at {SENT_AT} (folder "
            f"sent/2026-11-26/INV-1--{bid[:12]}) — remove it, or, if it is meant to be a "
            "new bundle, change a file") in out
    assert out.count("[duplicate]") == 1 and "[invoice-id-already-sent]" not in out
    assert "=> INVALID (1 error(s), 0 warning(s))" in out and "note:" not in out
    assert snapshot_tree(cfg.root) == before
    assert sorted(p.name for p in journal.parent.iterdir()) == ["journal.sqlite3"]


def test_a_bundle_being_sent_is_a_duplicate_without_a_folder_yet(cfg: Env, capsys) -> None:
    """The same bundle claimed and still being delivered is a duplicate to the daemon
    too: check says it is being sent since when, and names no folder in sent/ (there is
    none yet)."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    bid = _bundle_id(cfg, inv)
    _sent_before(cfg, "INV-1.xml", ["INV-1"], bid, state="retrying")
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert (f"this exact bundle ({bid[:12]}) was being sent since {SENT_AT} (outboxd "
            "status lists it) — remove it") in out
    assert "folder sent/" not in out and "[duplicate]" in out


def test_under_duplicates_send_a_bundle_sent_before_gets_no_finding(cfg: Env, capsys) -> None:
    """Under [policy] duplicates = "send" the daemon sends the same bundle again with no
    finding (the same bundle is no "other bundle" for its invoice id): check says
    nothing either, exit 0."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"duplicates": "send"})
    _sent_before(cfg, "INV-1.xml", ["INV-1"], _bundle_id(cfg, inv))
    code, out = check(cfg, capsys, inv)
    assert code == 0, out
    assert "[duplicate]" not in out and "[invoice-id-already-sent]" not in out
    assert "=> valid (0 error(s), 0 warning(s))" in out


def test_an_invoice_id_sent_in_another_bundle_is_the_warning_naming_that_bundle(
        cfg: Env, capsys) -> None:
    """A corrected INV-1.xml whose id the journal has as sent in another bundle: the
    `invoice-id-already-sent` warning the daemon sends it with, naming the other
    bundle's file, when it was sent and its folder; a warning, so exit 0."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    _sent_before(cfg, "INV-1.xml", ["INV-1"], "b" * 64)
    code, out = check(cfg, capsys, inv)
    assert code == 0, out
    assert (f"    INV-1.xml: invoice INV-1 was already sent in another bundle (INV-1.xml, "
            f"sent at {SENT_AT}, folder sent/2026-11-26/INV-1--bbbbbbbbbbbb)  "
            "[invoice-id-already-sent]") in out
    assert "[duplicate]" not in out
    assert "=> valid (0 error(s), 1 warning(s))" in out


def test_an_already_sent_id_is_not_warned_of_for_a_bundle_the_daemon_will_not_send(
        cfg: Env, capsys) -> None:
    """The daemon warns of an id already sent only in what it sends: a bundle it
    quarantines (here: no attachments under unattached = "quarantine") gets that error
    alone."""
    inv = drop_bundle(cfg.outbox, "INV-1", {})
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"unattached": "quarantine"})
    _sent_before(cfg, "INV-1.xml", ["INV-1"], "b" * 64)
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert "[unattached-invoice]" in out and "[invoice-id-already-sent]" not in out


def test_without_a_journal_check_says_once_that_sent_before_was_not_checked(
        cfg: Env, capsys) -> None:
    """A fresh install (no journal): every bundle is checked, and one note says that
    whether a bundle or an invoice id was sent before was not checked, and why."""
    for name in ("INV-1", "INV-2"):
        drop_bundle(cfg.outbox, name, {"t.pdf": pdf_bytes()})
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 0
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1
    assert notes[0].startswith(f"note: there is no journal at {cfg.state / 'journal.sqlite3'}")
    assert "whether a bundle or an invoice id was sent before (duplicate, " \
        "invoice-id-already-sent)" in notes[0]
    assert "2 bundle(s) checked, 0 invalid" in out
    assert not cfg.state.exists()


def test_a_journal_a_clerk_may_not_read_skips_the_sent_checks_in_one_note(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clerk's account that may not enter the state dir (stat fails with EACCES):
    check does not fail; one note names the journal, why, and the checks skipped, and
    the bundles are checked as without a journal."""
    import errno
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    drop_bundle(cfg.outbox, "INV-2", {"t.pdf": pdf_bytes()})
    journal = _sent_before(cfg, "INV-1.xml", ["INV-1"], _bundle_id(cfg, inv))
    real_stat, real_lstat = os.stat, os.lstat

    def denied(real):  # type: ignore[no-untyped-def]
        def stat(path, *args, **kw):  # type: ignore[no-untyped-def]
            if Path(path).parent == journal.parent:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kw)
        return stat

    monkeypatch.setattr(os, "stat", denied(real_stat))
    monkeypatch.setattr(os, "lstat", denied(real_lstat))
    code = main(["check", "-c", str(cfg.config), str(cfg.outbox)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    notes = [line for line in captured.out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1
    assert notes[0].startswith(f"note: cannot read the journal {journal}: Permission denied")
    assert "whether a bundle or an invoice id was sent before" in notes[0]
    assert "[duplicate]" not in captured.out and "Traceback" not in captured.err


def test_a_journal_sqlite_cannot_open_skips_the_sent_checks_in_one_note(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal that cannot be opened even immutable (unreadable to this user): one
    note for the run, naming the checks skipped; exit 0."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": pdf_bytes()})
    journal = _sent_before(cfg, "INV-1.xml", ["INV-1"], _bundle_id(cfg, inv))
    if os.geteuid() != 0:
        journal.chmod(0)
    _unwritable(journal.parent, monkeypatch, [], immutable_too=True)
    try:
        code = main(["check", "-c", str(cfg.config), str(inv)])
    finally:
        journal.parent.chmod(0o755)
        journal.chmod(0o644)
    captured = capsys.readouterr()
    assert code == 0
    [note] = [line for line in captured.out.splitlines() if line.startswith("note: ")]
    assert str(journal) in note and "sent before (duplicate, invoice-id-already-sent)" in note
    assert "[duplicate]" not in captured.out and "Traceback" not in captured.err


def test_a_check_of_a_whole_outbox_opens_the_journal_once(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """`outboxd check` of an outbox of 60 bundles reads what was sent before for each
    from one open of the journal (it opened it once a bundle, about 0.2 ms each: 4 s for
    20,000), and still finds the one sent in another bundle, checked last; it leaves no
    file beside the journal."""
    from daemon.journal import Journal, readonly
    for n in range(1, 61):
        drop_bundle(cfg.outbox, f"INV-{n:02d}", {"t.pdf": pdf_bytes()})
    journal = _sent_before(cfg, "INV-60.xml", ["INV-60"], "b" * 64)
    opened: list[Path] = []

    class Counted(Journal):
        def __init__(self, path: Path, **kw: bool) -> None:
            opened.append(path)
            super().__init__(path, **kw)

    monkeypatch.setattr(readonly, "Journal", Counted)
    code, out = check(cfg, capsys)
    assert code == 0, out
    assert "60 bundle(s) checked, 0 invalid" in out
    assert out.count("[invoice-id-already-sent]") == 1
    assert "INV-60.xml: invoice INV-60 was already sent in another bundle" in out
    assert opened == [journal]
    assert sorted(p.name for p in journal.parent.iterdir()) == ["journal.sqlite3"]


def test_an_outbox_on_a_share_caching_longer_than_the_settle_time_is_a_warning_of_check(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox on NFS at its defaults (a minute's cache; settle_seconds = 0.3): check
    prints one warning naming the outbox's mount, the values, the settle time and the
    fix, and still exits 0 for a valid bundle (a warning, not an error). On a local disk,
    no such line."""
    inv = drop_bundle(cfg.outbox, "INV-1001", {"timesheet.pdf": pdf_bytes(1)})
    code, out = check(cfg, capsys, inv)
    assert code == 0 and "settle_seconds" not in out
    outbox = os.path.realpath(cfg.outbox)
    fake_mountinfo(monkeypatch, "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                   f"40 22 0:51 / {outbox} rw,relatime - nfs4 srv:/finance rw,vers=4.2,"
                   "hard,proto=tcp\n")
    code, out = check(cfg, capsys, inv)
    assert code == 0 and "=> valid" in out
    [line] = [x for x in out.splitlines() if x.startswith("warning: ")]
    assert f"is on nfs4 srv:/finance mounted at {outbox}" in line
    assert "up to 60 s late (acregmin=3 (default)" in line
    assert "settle_seconds = 0.3" in line and "set [outbox] settle_seconds above 60" in line


def test_check_tells_entries_of_attachments_toml_where_their_files_are(cfg: Env) -> None:
    """`outboxd check`, run as the admin runs it, on a file of invoices A and B whose
    INV-9/attachments.toml names a hidden file of INV-9/A/, a file of INV-9/A/ in other
    upper and lower case, and the folder B: each line says where the file is and why it
    is not taken, where every one said "not in the folder — add the file"; the daemon,
    `attach` and `retry` read the bundle with the same matcher."""
    import subprocess

    write(cfg.outbox / "INV-9" / "A" / ".hours.pdf", pdf_bytes())
    write(cfg.outbox / "INV-9" / "A" / "timesheet.pdf", pdf_bytes())
    write(cfg.outbox / "INV-9" / "B" / "contract.pdf", pdf_bytes())
    write(cfg.outbox / "INV-9" / "attachments.toml",
          b'[files.".hours.pdf"]\ntype = "X"\n[files."Timesheet.PDF"]\ntype = "X"\n'
          b'[files."B"]\ntype = "X"\n')
    write(cfg.outbox / "INV-9.xml", batch_xml("A", "B"))
    done = subprocess.run([*OUTBOXD, "check", "-c", str(cfg.config),
                           str(cfg.outbox / "INV-9.xml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stdout.splitlines()
             if line.endswith("[attachments-toml-missing-file]")]
    assert len(lines) == 3, done.stdout
    assert not any("add the file" in line for line in lines), lines
    said = "\n".join(lines)
    assert "names '.hours.pdf', which is not in this folder but in INV-9/A/, where it is " \
        "ignored for its name: a hidden file" in said
    assert "names 'Timesheet.PDF', which is not in this folder; 'timesheet.pdf' is in " \
        "INV-9/A/, written in other upper and lower case" in said
    assert "names 'B', which is a folder, not a file" in said


def test_an_attachment_over_the_limit_is_said_in_kb_or_mb_with_its_bytes(env: Env,
                                                                         capsys) -> None:
    """A clerk compares with Windows Explorer: the size and the limit in KB or MB (of
    1,000 and 1,000,000 bytes, as max_attachment_bytes counts), the exact bytes beside
    the size."""
    env.write_config("http://127.0.0.1:9/bundles", validation={"max_attachment_bytes": 1500})
    big = pdf_bytes(1)
    big += b"%" * (2500 - len(big) - 1) + b"\n"
    drop_bundle(env.outbox, "INV-1", {"scan.pdf": big})
    code, out = check(env, capsys)
    assert code == 1
    assert ("    INV-1/scan.pdf: is 2.5 KB (2,500 bytes); at most 1.5 KB is taken "
            "([validation] max_attachment_bytes) — compress it") in out


@pytest.mark.parametrize("dpi,page", [(300, "21.0 × 29.7 cm"), (None, "65.6 × 92.8 cm")])
def test_an_image_converted_for_print_is_shown_as_the_pdf_and_page_it_goes_out_as(
        env: Env, capsys, dpi: int | None, page: str) -> None:
    """With convert_images the daemon sends a PDF in the image's place: check says so,
    with the page's size, so that a scan saved without its resolution (taken at 96 DPI on
    original print) shows before it is sent as the poster-sized page it makes."""
    env.write_config("http://127.0.0.1:9/bundles",
                     validation={"channel": "original-print", "convert_images": True})
    buf = io.BytesIO()
    Image.new("L", (2480, 3508), 255).save(buf, "PNG", **({"dpi": (dpi, dpi)} if dpi else {}))
    inv = drop_bundle(env.outbox, "INV-4001", {"scan.png": buf.getvalue()})
    code, out = check(env, capsys, inv)
    assert code == 0
    lines = out.splitlines()
    at = lines.index("    INV-4001/scan.png  [Attachment, image/png]  ok")
    assert lines[at + 1] == (f"      sent as scan.pdf: a PDF of 1 page, {page}, made from "
                             "the image ([validation] convert_images)")


def test_a_converted_image_is_shown_under_the_name_its_pdf_is_sent_as(env: Env,
                                                                      capsys) -> None:
    """[delivery] safe_filenames (the default) folds the PDF's name as it folds every
    name sent: check shows the name the receiver gets, not the one before folding."""
    env.write_config("http://127.0.0.1:9/bundles",
                     validation={"channel": "original-print", "convert_images": True})
    buf = io.BytesIO()
    Image.new("L", (300, 300), 255).save(buf, "PNG", dpi=(300, 300))
    inv = drop_bundle(env.outbox, "INV-4002", {"Räkning 1.png": buf.getvalue()})
    code, out = check(env, capsys, inv)
    assert code == 0
    assert "      sent as Rakning_1.pdf: a PDF of 1 page, 2.5 × 2.5 cm, made from" in out


def test_a_batch_refused_as_too_many_attachments_is_not_said_to_have_none(
        cfg: Env, capsys) -> None:
    """A sidecar refused from its listing (too-many-attachments) was never read: its
    invoices are told as not read, not as without attachments, and check foretells no
    wait or release for them — each has a file; the one fix is the error's."""
    cfg.write_config("http://127.0.0.1:9/bundles", validation={"max_attachments": 2})
    inv = write(cfg.outbox / "batch-9.xml", batch_xml("P-100", "P-101", "2026/7"))
    for folder in ("P-100", "P-101", "2026_7"):
        write(cfg.outbox / "batch-9" / folder / "a.pdf", pdf_bytes())
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "[too-many-attachments]" in out
    assert "invoice P-100: attachments not read (see the errors)" in out
    assert "without attachments" not in out and "no attachments" not in out
    assert "[unattached-invoice]" not in out
    assert "=> INVALID (1 error(s), 0 warning(s))" in out


def test_a_sidecar_that_is_a_link_is_not_said_to_have_no_attachments(
        cfg: Env, capsys, tmp_path: Path) -> None:
    """A sidecar that is a link is refused unread: what it leads to may hold the
    invoice's attachments, so "has no attachments" would send the clerk the wrong way."""
    inv = drop_bundle(cfg.outbox, "INV-5", {})
    write(tmp_path / "elsewhere" / "a.pdf", pdf_bytes())
    os.symlink(tmp_path / "elsewhere", cfg.outbox / "INV-5")
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "[not-a-folder]" in out
    assert "invoice INV-5: attachments not read (see the errors)" in out
    assert "no attachments" not in out and "[unattached-invoice]" not in out


def test_a_channel_set_for_one_invoice_of_a_batch_is_shown_in_error_not_as_taken(
        cfg: Env, capsys) -> None:
    """T-1's attachments.toml sets external-print for T-1 alone in a file of T-1 and T-2:
    an error, and the header said "channel external-print" as if it were taken."""
    inv = write(cfg.outbox / "batch-3.xml", batch_xml("T-1", "T-2"))
    write(cfg.outbox / "batch-3" / "T-1" / "a.pdf", pdf_bytes())
    write(cfg.outbox / "batch-3" / "T-1" / "attachments.toml", b'channel = "external-print"\n')
    write(cfg.outbox / "batch-3" / "T-2" / "b.pdf", pdf_bytes())
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "sets channel = 'external-print' for T-1 only" in out
    header = out.splitlines()[0]
    assert "channel in error: see attachments.toml below" in header
    assert "external-print" not in header


def test_a_channel_that_is_no_channel_shows_the_default_it_falls_back_to(
        cfg: Env, capsys) -> None:
    """channel = "print" is no channel: the header names the configured one and that the
    one set is in error, as the error line says."""
    inv = drop_bundle(cfg.outbox, "INV-8", {"a.pdf": pdf_bytes(),
                                           "attachments.toml": b'channel = "print"\n'})
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "channel = 'print' is not a channel" in out
    assert out.splitlines()[0] == ("INV-8.xml  (ubl, channel e-invoice, the default: the one "
                                   "set is in error (below))")


def test_an_invoices_folder_refused_for_its_name_is_not_said_to_have_no_attachments(
        cfg: Env, capsys) -> None:
    """B-2\\x85's folder named as versions before C1 characters were replaced named it
    (the raw id): refused unread for its name (bad-name, rename it to B-2_). Check said
    "once its errors are mended: … B-2\\x85 has no attachments", though once renamed it has
    them: it says the folder's attachments were not read, and no unattached note."""
    inv = write(cfg.outbox / "batch-4.xml", batch_xml("B-1", "B-2\x85"))
    write(cfg.outbox / "batch-4" / "B-1" / "a.pdf", pdf_bytes())
    write(cfg.outbox / "batch-4" / "B-2\x85" / "b.pdf", pdf_bytes())
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "rename the folder to B-2_  [bad-name]" in out
    assert "invoice B-1: 1 attachment(s)" in out
    assert "invoice B-2\\x85: attachments not read (see the errors)" in out
    assert "no attachments" not in out and "without attachments" not in out
    assert "[unattached-invoice]" not in out


def test_a_bundle_named_twice_is_checked_and_counted_once(cfg: Env, capsys) -> None:
    """`check OUTBOX OUTBOX/INV-1.xml` (a folder and a file in it, as a script may
    give them) reports the bundle once and counts it once."""
    bundle = drop_bundle(cfg.outbox, "INV-1", {"INV-1/a.pdf": pdf_bytes()})
    got, out = check(cfg, capsys, cfg.outbox, bundle)
    assert got == 0 and out.count("INV-1.xml  (") == 1
    assert out.endswith("1 bundle(s) checked, 0 invalid\n")


def test_a_bundle_the_reader_could_not_check_fails_the_run_without_a_verdict(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that died under a bundle each time gives no verdict ("not checked", no
    code), but check exits 1: a script must not read "nothing invalid" as all checked."""
    from daemon.actions.reads import CommandReads
    from daemon.errors import ReaderFailed

    def died(*_: object) -> None:
        raise ReaderFailed("INV-1.xml: a reader process died under it each time")
    monkeypatch.setattr(CommandReads, "evaluate", died)
    bundle = drop_bundle(cfg.outbox, "INV-1", {"INV-1/a.pdf": pdf_bytes()})
    got, out = check(cfg, capsys, bundle)
    assert got == 1 and "  => not checked" in out and "INVALID" not in out


def test_a_bundle_with_errors_sent_before_is_given_its_errors_not_the_duplicate_too(
        cfg: Env, capsys) -> None:
    """The daemon stops a bundle with errors for those, before it asks the journal
    whether it was sent: check gives the bundle's own errors alone, with no
    `duplicate` beside it (a clerk would mend a file and still read "sent before")."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"t.pdf": b"not a PDF at all"})
    _sent_before(cfg, "INV-1.xml", ["INV-1"], _bundle_id(cfg, inv))
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "[type-not-allowed]" in out and "[duplicate]" not in out


@pytest.mark.parametrize(("attachment", "verdict"), [(b"", 1), (pdf_bytes(1), 0)],
                         ids=["invalid", "valid"])
def test_check_into_a_reader_gone_before_its_end_still_exits_with_its_verdict(
        cfg: Env, attachment: bytes, verdict: int) -> None:
    """`outboxd check INV.xml | head -1` (or `| less`, quit early): the reader goes away
    before the report's end. The exit code is still the check's verdict on every bundle
    — 1 for an invalid one, not 0 for a report nobody read to the end — and no
    traceback: a script reading the exit code (pipefail) must not take an empty file
    for valid."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"scan.pdf": attachment})
    r, w = os.pipe()
    os.close(r)  # the reader is gone before check writes its first line
    try:
        out = subprocess.run([*OUTBOXD, "check", "-c", str(cfg.config), str(inv)], stdout=w,
                             stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert out.returncode == verdict


def test_an_invoice_file_whose_marker_name_is_too_long_is_still_checked(
        env: Env, capsys) -> None:
    """completion = "marker": an invoice file whose name takes 254 bytes has a marker
    name (NAME.ready) longer than a file name may be; the look for a lock file in its
    folder (the busy note) looked at the marker and failed
    (ENAMETOOLONG), and check stopped there, no bundle checked and exit 1. Checked,
    with what its read says."""
    env.write_config("http://127.0.0.1:9/bundles", outbox={"completion": "marker"})
    inv = write(env.outbox / ("I" * 250 + ".xml"), ubl_invoice("INV-1"))
    code, out = check(env, capsys, inv)
    assert code == 0 and "=> valid" in out and "1 bundle(s) checked" in out


@pytest.mark.parametrize("to", ["file", "folder"])
def test_a_link_named_as_the_path_to_check_is_refused_and_never_followed(
        cfg: Env, capsys, to: str) -> None:
    """`outboxd check LINK` (an invoice file's name, or a sidecar's, that is a symbolic
    link to a file or folder elsewhere): exit 2 naming the path and that outboxd never
    follows links, nothing of the target read — as the daemon never follows one out of
    the outbox."""
    elsewhere = cfg.root / "elsewhere"
    target = (write(elsewhere / "INV-1.xml", ubl_invoice("INV-1")) if to == "file"
              else write(elsewhere / "INV-1" / "scan.pdf", pdf_bytes()).parent)
    link = cfg.outbox / ("INV-1.xml" if to == "file" else "INV-1")
    link.symlink_to(target)
    before = os.stat(target).st_atime_ns, sorted(os.listdir(elsewhere))
    code = main(["check", "-c", str(cfg.config), str(link)])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert f"check: {link} is a symbolic link; outboxd never follows links — name the file " \
        "or folder itself" in captured.err
    assert "INV-1" not in captured.out
    assert (os.stat(target).st_atime_ns, sorted(os.listdir(elsewhere))) == before


def test_a_fifo_named_as_the_path_to_check_is_refused_without_opening_it(
        cfg: Env, capsys) -> None:
    """`outboxd check` of a named pipe where an invoice file is expected: exit 2, "neither
    a file nor a folder", at once — opened, the command would hang until a writer came."""
    fifo = cfg.outbox / "INV-1.xml"
    os.mkfifo(fifo)
    code = main(["check", "-c", str(cfg.config), str(fifo)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"check: {fifo} is neither a file nor a folder" in err
    assert err.count("outboxd:") == 1


@pytest.mark.parametrize(("attachment", "verdict"), [(b"", 1), (pdf_bytes(1), 0)],
                         ids=["invalid", "valid"])
def test_a_reader_gone_as_the_buffered_report_is_flushed_leaves_the_verdict(
        cfg: Env, attachment: bytes, verdict: int) -> None:
    """The report held in the stream's buffer until the end, and the reader gone by then
    (`| head` that read nothing yet, a pager quit): the final flush's broken pipe ends
    the report quietly, and check's result is still its verdict on the bundle — not a
    BrokenPipeError that cli.main would take for exit 0, an invalid bundle for valid."""
    from daemon.actions.check import check as run_check
    from daemon.configuration.config_load import load_settings

    class GoneAtTheFlush(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")
    inv = drop_bundle(cfg.outbox, "INV-1", {"scan.pdf": attachment})
    out = GoneAtTheFlush()
    assert run_check([inv], load_settings(cfg.config), out=out, err=io.StringIO()) == verdict
    assert "1 bundle(s) checked" in out.getvalue()


@pytest.mark.parametrize("given", ["INV-2001", "INV-2001/INV-2001", "INV-2001/timesheet.pdf",
                                   "INV-2001/INV-2001/contract.pdf"])
def test_a_sidecar_in_the_outbox_without_its_invoice_file_is_no_folder_of_invoices(
        cfg: Env, capsys, given: str) -> None:
    """The ERP writes INV-2001/ first and its invoice file last (docs/commands.md: a
    sidecar folder with no invoice file yet waits for it). `check` given that folder, an invoice's
    subfolder in it or a file in it says what the daemon makes of it — a sidecar waiting
    for its invoice file — exit 0, and calls none of its PDFs an invoice. It checked the
    folder as an outbox of its own: timesheet.pdf was "valid", an invoice "timesheet"
    that "goes out with a warning" after the wait, which the daemon never sends."""
    write(cfg.outbox / "INV-2001" / "timesheet.pdf", pdf_bytes())
    write(cfg.outbox / "INV-2001" / "INV-2001" / "contract.pdf", pdf_bytes())
    code, out = check(cfg, capsys, cfg.outbox / given)
    assert code == 0, out
    waits = ("INV-2001/: no invoice file of that name beside it; a sidecar without its "
             "invoice file waits for it")
    assert out.splitlines()[0] == (waits if given == "INV-2001" else
                                   f"{given}{'/' if '.' not in given else ''}: no "
                                   f"{'invoice file' if '.' in given else 'bundle of its own'}"
                                   f": it is in {waits}")
    assert "invoice timesheet" not in out and "invoice contract" not in out
    assert "0 bundle(s) checked" in out


def test_a_folder_outside_the_outbox_is_still_checked_as_a_folder_of_invoice_files(
        cfg: Env, capsys, tmp_path: Path) -> None:
    """An ERP's export folder outside the configured outbox, checked before the files are
    dropped: its invoice files are checked as the daemon would check them in the outbox
    (the note for a sidecar waiting for its invoice file is the outbox's alone)."""
    export = tmp_path / "export"
    drop_bundle(export, "INV-3001", {"a.pdf": pdf_bytes()})
    code, out = check(cfg, capsys, export)
    assert code == 0, out
    assert out.startswith("INV-3001.xml  (ubl, channel e-invoice)")
    assert "1 bundle(s) checked, 0 invalid" in out


def test_an_outbox_configured_as_a_link_is_checked_whole_and_by_its_configured_path(
        env: Env, capsys, tmp_path: Path) -> None:
    """[outbox] path may be a link (to a share's mount point, say): the daemon watches the
    folder it leads to. `check` without a PATH, and with the configured path, checks
    that outbox's bundles (exit 0 for a valid one); both were refused as "a symbolic
    link" (exit 2), so a configuration the daemon runs with could not be checked at all.
    Another link to the same folder is still refused: outboxd follows none it was not
    configured with."""
    real = tmp_path / "share" / "outbox"
    real.parent.mkdir()
    env.outbox.rename(real)
    env.outbox.symlink_to(real)
    env.write_config("http://127.0.0.1:9/bundles")
    drop_bundle(env.outbox, "INV-7001", {"a.pdf": pdf_bytes()})
    for given in ([], [str(env.outbox)]):
        code = main(["check", "-c", str(env.config), *given])
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.startswith("INV-7001.xml  (ubl, channel e-invoice)")
        assert "1 bundle(s) checked, 0 invalid" in out
    other = tmp_path / "other-link"
    other.symlink_to(real)
    assert main(["check", "-c", str(env.config), str(other)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err


def test_a_file_in_a_look_alike_a_quarantine_left_is_told_with_that_folder_not_checked(
        cfg: Env, capsys) -> None:
    """INV-7.xml was quarantined for inv-7/, which stayed in the outbox with its
    timesheet.pdf. `check inv-7/timesheet.pdf` says what the folder is — left by that
    quarantine, to be mended first — exit 1 as for the folder itself, and calls the PDF
    no invoice: it was checked as an invoice "timesheet" that goes out after the wait."""
    _quarantined_for_inv_7(cfg)
    code, out = check(cfg, capsys, cfg.outbox / "inv-7" / "timesheet.pdf")
    assert code == 1, out
    assert out.startswith("inv-7/timesheet.pdf: no invoice file: it is in inv-7/: INV-7.xml "
                          "was quarantined because of it and waits in quarantine/2026-11-26/"
                          "INV-7--3f2a9c01b7e4: this folder looks like")
    assert "[sidecar-spelling]" in out and "invoice timesheet" not in out


def test_a_check_of_the_whole_outbox_tells_a_look_alike_a_quarantine_left_as_such(
        cfg: Env, capsys) -> None:
    """INV-7.xml was quarantined for inv-7/, which stayed in the outbox: a check of the
    whole outbox says of inv-7/ what a check of that folder and the status page say —
    left by that quarantine, mend it first (exit 1) — not that it is a sidecar waiting
    for its invoice file (exit 0), which waits in quarantine for it. A folder no
    quarantine left keeps that note."""
    _quarantined_for_inv_7(cfg)
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 1, out
    assert out.startswith("inv-7/: INV-7.xml was quarantined because of it and waits in "
                          "quarantine/2026-11-26/INV-7--3f2a9c01b7e4: this folder looks like")
    assert "inv-7/: no invoice file of that name" not in out
    assert ("other/: no invoice file of that name beside it; a sidecar without its invoice "
            "file waits for it") in out


def test_a_ubl_invoice_with_two_numbers_of_its_own_fails_check_with_preflight_off(
        cfg: Env, capsys) -> None:
    """With pre-flight off nothing else reads the document: a UBL invoice with two
    cbc:IDs of its own was valid to `check` (and sent by the daemon) as the invoice of
    the first alone. Now an error naming the file, both numbers and the fix; exit 1."""
    doc = ubl_invoice("INV-1").replace(b"<cbc:ID>INV-1</cbc:ID>",
                                       b"<cbc:ID>INV-1</cbc:ID><cbc:ID>INV-2</cbc:ID>", 1)
    inv = drop_bundle(cfg.outbox, "INV-1", {"a.pdf": pdf_bytes()}, invoice=doc)
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert "INV-1.xml: a UBL Invoice has 2 cbc:ID elements of its own ('INV-1', 'INV-2')" \
        in out and "[invoice-two-ids]" in out


def test_check_of_a_sidecar_whose_invoice_file_is_refused_says_the_refusal(
        cfg: Env, capsys) -> None:
    """`check OUTBOX/INV-1` where INV-1.xml is a symbolic link: it said "no invoice file of
    that name beside it; a sidecar without its invoice file waits for it" — there is one,
    refused, and waiting changes nothing. It says that invoice file's refusal and its
    rule (exit 1); a check of the whole outbox, which says the refusal on a line of its
    own, says of the folder that it is that file's sidecar, not a waiting one."""
    (cfg.outbox / "INV-1.xml").symlink_to("/etc/passwd")
    write(cfg.outbox / "INV-1" / "a.pdf", pdf_bytes())
    code, out = check(cfg, capsys, cfg.outbox / "INV-1")
    assert code == 1
    assert ("INV-1/: the sidecar of INV-1.xml, which outboxd refuses: is a symbolic link, "
            "not a regular file; outboxd never follows or opens it — put the invoice file "
            "itself there  [not-a-file]") in out
    assert "no invoice file of that name" not in out
    code, out = check(cfg, capsys, cfg.outbox / "INV-1" / "a.pdf")
    assert code == 1 and "INV-1/a.pdf: no invoice file: it is in INV-1/: the sidecar of " \
        "INV-1.xml, which outboxd refuses" in out
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 1 and out.count("[not-a-file]") == 1
    assert "INV-1/: the sidecar of INV-1.xml, which outboxd refuses (above)" in out
    assert "no invoice file of that name" not in out


def test_check_counts_a_refused_invoice_file_in_its_summary(cfg: Env, capsys) -> None:
    """A refused invoice file (a FIFO) is an error of no bundle: the summary said
    "0 bundle(s) checked, 0 invalid (no invoice files found)" beside exit 1. It counts
    the error outside bundles, once (the whole outbox's check says it of the file and,
    "(above)", of its sidecar), and a bundle checked beside it keeps its own count."""
    os.mkfifo(cfg.outbox / "INV-1.xml")
    write(cfg.outbox / "INV-1" / "a.pdf", pdf_bytes())
    summary = "0 bundle(s) checked, 0 invalid, 1 error(s) outside bundles (above)\n"
    code, out = check(cfg, capsys, cfg.outbox / "INV-1")
    assert code == 1 and out.endswith(summary)
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 1 and out.endswith(summary)
    drop_bundle(cfg.outbox, "INV-2", {"b.pdf": pdf_bytes()})
    code, out = check(cfg, capsys, cfg.outbox)
    assert code == 1
    assert out.endswith("1 bundle(s) checked, 0 invalid, 1 error(s) outside bundles (above)\n")


@pytest.mark.parametrize("folder,why", [
    (".stversions", "its name begins with a dot"),
    ("x.tmp", "its name is one a copy, a download or an editor gives while still at work")])
def test_check_of_a_folder_the_daemon_ignores_says_so_and_reads_nothing_in_it(
        cfg: Env, capsys, folder: str, why: str) -> None:
    """A sync tool's `.stversions/` or a copy under way, `x.tmp/`, holding PDFs: the
    daemon never looks into it, yet `check` of it (or of a file in it) called each PDF a
    valid invoice. It says the folder is ignored and why, checks nothing in it, exit 0
    (an ignored name is never an error)."""
    write(cfg.outbox / folder / "INV-9.pdf", pdf_bytes())
    for path, shown in ((cfg.outbox / folder, f"{folder}/"),
                        (cfg.outbox / folder / "INV-9.pdf", f"{folder}/INV-9.pdf")):
        code, out = check(cfg, capsys, path)
        assert code == 0, out
        assert f"{shown}: the daemon ignores the folder {folder}/ and all in it: {why}" in out
        assert "INV-9.pdf  (" not in out and "=> valid" not in out


def test_an_attachment_left_out_for_its_name_is_counted_and_listed_with_its_bundle(
        cfg: Env, capsys) -> None:
    """report.pdf and REPORT.pdf in one folder are one name to Windows (name-collision,
    the second left out): the header said "1 attachment(s)", though the bundle holds two
    and the error names the other. It counts both and lists the one left out as an
    error."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"report.pdf": pdf_bytes(),
                                            "REPORT.pdf": pdf_bytes()})
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert "invoice INV-1: 2 attachment(s)" in out
    collided = [line for line in out.splitlines() if "[name-collision]" in line]
    assert len(collided) == 1
    left_out = collided[0].split(":", 1)[0].strip()
    assert f"    {left_out}  [left out: name-collision]  ERROR" in out


@pytest.mark.parametrize("folder", [".drafts", "INV-9.tmp"])
@pytest.mark.parametrize("inside", [False, True])
def test_a_folder_of_the_outbox_the_daemon_ignores_is_no_folder_of_invoices(
        cfg: Env, capsys, folder: str, inside: bool) -> None:
    """A folder of the outbox whose name the daemon ignores (hidden, or a copy still in
    progress) is read by it neither as a sidecar nor as invoices: `check` given that
    folder, or an invoice file in it, says so (exit 0, nothing checked) — it checked the
    folder as an outbox of its own, and called INV-5.xml in it a valid invoice, which
    the daemon never sends."""
    write(cfg.outbox / folder / "INV-5.xml", ubl_invoice("INV-5"))
    given = cfg.outbox / folder / "INV-5.xml" if inside else cfg.outbox / folder
    code, out = check(cfg, capsys, given)
    assert code == 0, out
    shown = f"{folder}/INV-5.xml" if inside else f"{folder}/"
    first = out.splitlines()[0]
    assert first.startswith(f"{shown}: the daemon ignores the folder {folder}/ and all in "
                            "it: "), first
    assert "nothing in it is read or sent — to send a file from it, move it out" in first
    assert "=> valid" not in out and "0 bundle(s) checked" in out


def test_invoices_whose_ids_share_one_folder_are_not_said_to_have_no_attachments(
        cfg: Env, capsys) -> None:
    """A file of A-1 and A-1. (one folder to Windows: id-folder-collision) with a PDF in
    batch/A-1/. The folder is read for neither invoice, yet `check` said "invoice A-1:
    no attachments" and "once its errors are mended: invoice A-1 is sent without
    attachments" — with the ids made distinct, A-1 goes with its PDF. Now each says its
    attachments were not read, as for a folder refused unread."""
    inv = drop_bundle(cfg.outbox, "batch", {"A-1/x.pdf": pdf_bytes()},
                      invoice=batch_xml("A-1", "A-1."))
    code, out = check(cfg, capsys, inv)
    assert code == 1 and "[id-folder-collision]" in out
    assert "invoice A-1: attachments not read (see the errors)" in out
    assert "invoice A-1.: attachments not read (see the errors)" in out
    assert "invoice A-1: no attachments" not in out
    assert "invoice A-1 is sent without attachments" not in out


@pytest.mark.parametrize(("err", "line"), [
    (errno.EIO, "  INV-1/scan.pdf: could not be read just now (Input/output error) — is the "
     "share still mounted? Check it, then run outboxd check again\n  => not checked\n"),
    (errno.EACCES, "    INV-1/scan.pdf: cannot be read (Permission denied) — check that "
     "outboxd's user, and the user running check, may read the file and open its folder  "
     "[unreadable]\n"),
    # A folder listed a moment before and a file at the open of what was in it (a clerk
    # replacing it, a share that blinked): a change under way, as a file gone (ENOENT)
    # and as the daemon's snapshot takes it; it said INVALID and "run check again".
    (errno.ENOTDIR, "  INV-1/scan.pdf: could not be read just now (Not a directory) — it "
     "changed while it was checked, or the share lost it for a moment; run outboxd check "
     "again\n  => not checked\n"),
])
def test_a_file_the_os_will_not_read_is_named_with_the_os_error_and_its_fix(
        cfg: Env, capsys, monkeypatch, err: int, line: str) -> None:
    """An OSError while reading a bundle was always "INV-1.xml: cannot be read (…) —
    check the file's permissions", naming the invoice file whatever failed, also for an
    I/O error of a share that went away. The line names the file that failed, by its
    path in the outbox, what the OS said, and the fix for that kind (exit 1): a share's
    error says nothing of the bundle (no verdict), a refusal is the file's."""
    inv = drop_bundle(cfg.outbox, "INV-1", {"scan.pdf": pdf_bytes()})
    failed = str(cfg.outbox / "INV-1" / "scan.pdf")

    def refused(*_: object) -> None:
        raise OSError(err, os.strerror(err), failed)

    monkeypatch.setattr(CommandReads, "evaluate", refused)
    code, out = check(cfg, capsys, inv)
    assert code == 1
    assert line in out
    assert "INV-1.xml: cannot be read" not in out


def _share_fails_to_open(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Every open of `name` by its bare name (in its folder, held) fails as a share that
    went away fails it: EIO."""
    import daemon.fs.fsops as fsops
    real_open = os.open

    def share_fails(path: object, *args: object, **kw: object) -> int:
        if path == name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fsops.os, "open", share_fails)


def test_an_attachment_the_share_fails_to_open_is_named_by_its_path_in_the_outbox(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attachment whose open the share fails (EIO) is opened by its name in its
    folder, so the OS's error named only "scan.pdf": check said "scan.pdf: could not be
    read just now", which a clerk with several folders holding a scan.pdf cannot find
    (and the daemon's line on the page the same). It names INV-1/scan.pdf, as every other
    line of check names an attachment."""
    env.write_config("http://127.0.0.1:9/bundles", service={"reader_processes": 0})
    inv = drop_bundle(env.outbox, "INV-1", {"scan.pdf": pdf_bytes()})
    _share_fails_to_open(monkeypatch, "scan.pdf")
    code, out = check(env, capsys, inv)
    assert code == 1
    assert ("  INV-1/scan.pdf: could not be read just now (Input/output error) — is the "
            "share still mounted?") in out
    assert "=> not checked" in out


def test_a_bundle_not_checked_is_counted_apart_from_the_invalid_ones(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle given no verdict (a file the share failed to open) was summed up as
    invalid: "=> not checked" above, "1 bundle(s) checked, 1 invalid" below. The summary
    counts it apart, so that exit 1 still has a count that says why."""
    env.write_config("http://127.0.0.1:9/bundles", service={"reader_processes": 0})
    inv = drop_bundle(env.outbox, "INV-1", {"scan.pdf": pdf_bytes()})
    _share_fails_to_open(monkeypatch, "scan.pdf")
    code, out = check(env, capsys, inv)
    assert code == 1
    assert "=> not checked" in out
    assert out.endswith("1 bundle(s) checked, 0 invalid, 1 not checked (above: run check "
                        "again)\n")


def test_a_file_the_share_loses_while_check_reads_it_is_not_checked_not_a_permissions_error(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attachment listed and then gone at its open (a share that blinks, a clerk's
    rename, the daemon taking the bundle meanwhile) says nothing of the bundle: `check`
    names that file, says it could not be read just now and to run check again, and gives
    no verdict ("not checked", exit 1 as for any bundle not found valid). It said
    "INV-1.xml: cannot be read (No such file or directory) — check the file's
    permissions [unreadable]", INVALID: the wrong file, and a fix for a file that was
    there all along."""
    from swaps import when_opened
    env.write_config("http://127.0.0.1:9/bundles", service={"reader_processes": 0})
    inv = drop_bundle(env.outbox, "INV-1", {"scan.pdf": pdf_bytes()})
    scan, aside = env.outbox / "INV-1" / "scan.pdf", env.root / "aside.pdf"
    with when_opened("scan.pdf", lambda: scan.rename(aside)) as done:
        code, out = check(env, capsys, inv)
    assert done
    assert code == 1
    assert "permissions" not in out and "INVALID" not in out and "[unreadable]" not in out
    [said] = [ln for ln in out.splitlines() if "INV-1/scan.pdf" in ln]
    assert "could not be read just now" in said and "run outboxd check again" in said
    assert "=> not checked" in out
    aside.rename(scan)  # the share is back: checked as it is
    assert check(env, capsys, inv)[0] == 0


def test_an_attachment_the_share_fails_in_the_middle_of_its_read_is_the_one_named(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The share fails a read of an attachment once it is open (EIO from read(2), which
    names no file): check names INV-1/scan.pdf and gives no verdict. It named the
    invoice file INV-1.xml, which was read whole, sending the clerk to the wrong file."""
    import daemon.fs.namedreads as namedreads
    env.write_config("http://127.0.0.1:9/bundles", service={"reader_processes": 0})
    inv = drop_bundle(env.outbox, "INV-1", {"scan.pdf": pdf_bytes()})
    real = namedreads._readinto

    def share_fails(fh: object, buffer: object) -> int | None:
        if getattr(fh, "shown", "").endswith("scan.pdf"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))  # as read(2): no file name
        return real(fh, buffer)  # type: ignore[arg-type]

    monkeypatch.setattr(namedreads, "_readinto", share_fails)
    code, out = check(env, capsys, inv)
    assert code == 1
    assert ("  INV-1/scan.pdf: could not be read just now (Input/output error) — is the "
            "share still mounted?") in out
    assert "INV-1.xml: could not be read" not in out and "=> not checked" in out

