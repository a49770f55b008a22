"""What `outboxd attach` says once the file is in (daemon/actions/attach_report.py): "attached
as" alone for a bundle that goes out as it is, else the bundle's errors as `outboxd check`
words them, or what an attached image goes out as."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env
from helpers import drop_bundle, pdf_bytes, ubl_invoice, write
from PIL import Image

from actions.test_attach import _rules_off, attach  # noqa: F401 - _rules_off: autouse


def test_attach_into_a_bundle_with_a_bad_file_attaches_and_says_what_is_still_wrong(
        cfg: Env, timesheet: Path, capsys) -> None:
    """The sidecar already holds a file the channel refuses (an executable): attach said
    "attached as …" alone, and the clerk believed the invoice would now go out. It still
    attaches (exit 0: the clerk may mend the bundle one file at a time), and says in the
    same output that the bundle has errors, with `outboxd check`'s report of them."""
    drop_bundle(cfg.outbox, "INV-1001", {"tool.exe": b"MZ\x90\x00" + b"\x00" * 200})
    assert attach(cfg, "INV-1001", str(timesheet)) == 0
    out = capsys.readouterr().out
    assert (cfg.outbox / "INV-1001" / "timesheet.pdf").read_bytes() == timesheet.read_bytes()
    lines = out.splitlines()
    assert lines[0] == "INV-1001: attached as INV-1001/timesheet.pdf"
    assert lines[1] == ("but INV-1001.xml still has errors, and the daemon does not send it "
                        "while they remain — mend them (outboxd check "
                        f"{cfg.outbox / 'INV-1001.xml'} shows them again):")
    assert "    INV-1001/tool.exe: is a Windows executable" in out and "[type-not-allowed]" in out
    assert "    INV-1001/timesheet.pdf  [Attachment, application/pdf, 2 pages]  ok" in out
    assert lines[-1] == "  => INVALID (1 error(s), 0 warning(s))"


def test_attach_to_an_invoice_the_e_invoice_rules_refuse_says_so(
        cfg: Env, timesheet: Path, capsys) -> None:
    """An invoice file whose ids can be read but that breaks an EN 16931 rule (a wrong
    total): the daemon stops the bundle for it, so attach says so after attaching, the
    rule named, as `outboxd check` reads it (pre-flight on, in attach's reader)."""
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "error"})
    wrong = ubl_invoice("INV-1002").replace(b'<cbc:PayableAmount currencyID="EUR">125.00',
                                            b'<cbc:PayableAmount currencyID="EUR">9.99')
    assert wrong != ubl_invoice("INV-1002")
    write(cfg.outbox / "INV-1002.xml", wrong)
    assert attach(cfg, "INV-1002", str(timesheet)) == 0
    out = capsys.readouterr().out
    assert out.startswith("INV-1002: attached as INV-1002/timesheet.pdf\nbut INV-1002.xml "
                          "still has errors")
    assert "[BR-CO-16]" in out and "=> INVALID" in out


def test_attach_into_a_valid_bundle_says_attached_alone(cfg: Env, timesheet: Path,
                                                        capsys) -> None:
    """Where the bundle has no errors once the file is in, attach says "attached as" and
    nothing more: the daemon sends it once its files settle."""
    drop_bundle(cfg.outbox, "INV-1003", {"delivery.pdf": pdf_bytes(1)})
    assert attach(cfg, "INV-1003", str(timesheet)) == 0
    assert capsys.readouterr().out == "INV-1003: attached as INV-1003/timesheet.pdf\n"


def test_a_bundle_claimed_while_attach_reads_it_again_is_no_error(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon may claim the bundle as soon as it settles after the copy, while
    attach reads it to say what is still wrong: the read then fails for want of the
    invoice file, which is no error of the bundle — attach says "attached as" alone."""
    from daemon.actions.reads import CommandReads
    write(cfg.outbox / "INV-1004.xml", ubl_invoice("INV-1004"))
    claimed = cfg.outbox / ".outboxd" / "processing"

    def claimed_first(self: CommandReads, cand, settings):  # noqa: ANN001, ANN202
        claimed.mkdir(parents=True, exist_ok=True)
        cand.invoice.rename(claimed / cand.invoice.name)
        raise FileNotFoundError(2, "No such file or directory", str(cand.invoice))
    monkeypatch.setattr(CommandReads, "evaluate", claimed_first)
    assert attach(cfg, "INV-1004", str(timesheet)) == 0
    assert capsys.readouterr().out == "INV-1004: attached as INV-1004/timesheet.pdf\n"


def test_a_bundle_the_share_fails_to_read_is_said_not_checked_not_taken_for_claimed(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The share fails (EIO) as attach reads the bundle again, and fails the look at its
    invoice file too: os.path.lexists took that for "claimed by the daemon", and attach
    said "attached as" alone, as of a bundle on its way. A look that cannot tell is no
    claim: attach says the bundle could not be checked now, and why."""
    import errno

    from daemon.actions.reads import CommandReads
    write(cfg.outbox / "INV-1006.xml", ubl_invoice("INV-1006"))
    real_lstat = os.lstat

    def share_away(self: CommandReads, cand, settings):  # noqa: ANN001, ANN202
        def lstat(path, *args, **kw):  # noqa: ANN001, ANN202
            if Path(path) == cand.invoice:
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
            return real_lstat(path, *args, **kw)
        monkeypatch.setattr(os, "lstat", lstat)
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(cand.invoice))
    monkeypatch.setattr(CommandReads, "evaluate", share_away)
    assert attach(cfg, "INV-1006", str(timesheet)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"INV-1006: attached as INV-1006/{timesheet.name}"
    assert lines[1].startswith("but INV-1006.xml could not be checked now")
    assert "is the share still mounted?" in lines[-2]
    assert lines[-1] == "  => not checked"


def test_attach_attaches_where_the_e_invoice_engine_cannot_load(
        cfg: Env, timesheet: Path, tmp_path: Path) -> None:
    """Pre-flight on and the engine's package broken (a partial upgrade): attach needs
    no engine to attach, and did so before it learned to read the bundle again; that
    read must not refuse the attach (exit 2, nothing attached — an ERP's scheduled
    attach lost its file's place). It attaches, exit 0, and says the bundle could not
    be checked, and why."""
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "error"})
    write(cfg.outbox / "INV-1005.xml", ubl_invoice("INV-1005"))
    broken = tmp_path / "broken" / "saxonche"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('saxonche removed')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(broken.parent), str(Path(__file__).resolve().parents[2])]))
    done = subprocess.run([*OUTBOXD, "attach", "-c", str(cfg.config), "INV-1005",
                           str(timesheet)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (cfg.outbox / "INV-1005" / timesheet.name).read_bytes() == timesheet.read_bytes()
    lines = done.stdout.splitlines()
    assert lines[0] == f"INV-1005: attached as INV-1005/{timesheet.name}"
    assert lines[1].startswith("but INV-1005.xml could not be checked now (outboxd check ")
    assert "the e-invoice rule engine cannot load (saxonche removed)" in done.stdout
    assert lines[-1] == "  => not checked"


def test_attach_of_an_image_converted_for_print_says_it_goes_out_as_a_pdf(
        cfg: Env, tmp_path: Path, capsys) -> None:
    """Under [validation] convert_images on a print channel, an attached PNG goes out as
    a PDF made of it: attach says so, in the words and name `outboxd check` uses (folded
    by safe_filenames), not "attached as" alone, which had the clerk look for a PNG at
    the receiver. A PDF attached beside it gets no such line."""
    cfg.write_config("http://127.0.0.1:9/bundles",
                     validation={"channel": "external-print", "convert_images": True})
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    buf = io.BytesIO()
    Image.new("RGB", (600, 300)).save(buf, "PNG", dpi=(300, 300))
    scan = write(tmp_path / "home" / "Räkning 1.png", buf.getvalue())
    assert attach(cfg, "INV-1001", str(scan)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "INV-1001: attached as INV-1001/Räkning 1.png",
        "  sent as Rakning_1.pdf: a PDF of 1 page, 5.1 × 2.5 cm, made from the image "
        "([validation] convert_images)"]
    assert attach(cfg, "INV-1001", str(write(tmp_path / "home" / "t.pdf", pdf_bytes()))) == 0
    assert capsys.readouterr().out.splitlines() == ["INV-1001: attached as INV-1001/t.pdf"]
