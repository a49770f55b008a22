"""`check`, `send`, `attach` and `retry` read bundles in a reader process under the
daemon's time limit for a read (daemon/actions/reads.py): a file that keeps pypdf busy
ends the command within the limit, with the daemon's words (`read-time-limit`) and the
command's exit code, instead of holding a clerk's command or an ERP's scheduled job for
as long as the file takes.

Real commands in subprocesses on real files made here: a 4 KB PDF invoice file whose
page tree lists 99,000 pages (pypdf: 80 to 100 s of CPU to look for its invoice number),
and a 4 KB PDF attachment whose page tree lists as many (1.5 to 3 s to probe). The commands run
as `python -m daemon` does, but with the read time limit set to LIMIT seconds (it is the
daemon's constant, not a setting): each must end within DEADLINE, which one hostile
invoice file alone takes longer than without the limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from conftest import Env
from helpers import pdf_bytes, pdf_of_objects, ubl_invoice, write

from daemon.archiving.archive_papers import reason_papers, write_papers

LIMIT = 0.5  # seconds a read may take in these tests (the daemon's: 120)
DEADLINE = 60.0  # seconds a command may take here; a hostile invoice file, longer
# The command line as `python -m daemon` runs it, the time limit of a read set first.
LIMITED = [sys.executable, "-c",
           "import sys\n"
           "from daemon.reading import reader_deaths\n"
           f"reader_deaths.READ_TIME_LIMIT = {LIMIT}\n"
           "from daemon.entry import main\n"
           "sys.exit(main(sys.argv[1:]))"]


def endless_invoice_pdf() -> bytes:
    """A 4 KB PDF invoice file whose page tree lists 99,000 pages (one page object, 300 ×
    330 references, each with a few text operators): looking for its invoice number,
    pypdf sets up and extracts each page's text, 80 to 100 s of CPU (within every limit
    of invoices.py, so nothing but the time limit stops it)."""
    content = zlib.compress(b"BT /F1 1 Tf ET", 9)
    return pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join([b"3 0 R"] * 300) + b"] /Count 0 >>",
        b"<< /Type /Pages /Kids [" + b" ".join([b"4 0 R"] * 330) + b"] /Count 0 >>",
        b"<< /Type /Page /MediaBox [0 0 612 792] /Contents 5 0 R "
        b"/Resources << /Font << /F1 6 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])


def huge_page_tree_pdf() -> bytes:
    """A 4 KB PDF whose page tree lists 99,000 pages of 20 entries each (one page object,
    300 × 330 references: within pypdf's limits of 100,000 entries in a page tree and
    2,000,000 in its pages), which pypdf walks whole to count them: 1.5 to 3 s and 130 MB
    to probe."""
    keys = b" ".join(b"/K%d %d" % (n, n) for n in range(18))
    return pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join([b"3 0 R"] * 300) + b"] /Count 0 >>",
        b"<< /Type /Pages /Kids [" + b" ".join([b"4 0 R"] * 330) + b"] /Count 0 >>",
        b"<< /Type /Page /MediaBox [0 0 612 792] " + keys + b" >>"])


def run_limited(env: Env, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The command on env's configuration, and the seconds it took; TimeoutExpired (the
    test fails) past DEADLINE."""
    started = time.monotonic()
    done = subprocess.run([*LIMITED, *args, "-c", str(env.config)], capture_output=True,
                          text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL)
    return done, time.monotonic() - started


@pytest.fixture
def cfg(env: Env) -> Env:
    # One reader process, as a command starts; no pre-flight (nothing here is UBL's
    # business), so that a test's time is the hostile files' and the limit's.
    env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"},
                     service={"reader_processes": "auto"})
    return env


def test_check_of_a_pdf_that_keeps_pypdf_busy_reports_the_read_time_limit(cfg: Env) -> None:
    """`check` on a PDF invoice file that pypdf would read for a minute and more ends
    within the limit (tried twice, as the daemon does) and reports it as the daemon
    quarantines it: INVALID with `read-time-limit` naming the file, exit 1. The bundle
    beside it is still checked."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    done, _ = run_limited(cfg, "check", str(cfg.outbox / "INV-666.pdf"),
                          str(cfg.outbox / "INV-1.xml"))
    assert done.returncode == 1, done.stderr
    assert (f"INV-666.pdf: reading this bundle took longer than {LIMIT:g} s each time it "
            "was tried") in done.stdout
    assert "[read-time-limit]" in done.stdout and "Traceback" not in done.stderr
    assert "INV-1.xml  (ubl" in done.stdout
    assert "2 bundle(s) checked, 1 invalid" in done.stdout


def test_send_of_a_pdf_that_keeps_pypdf_busy_is_refused_releasing_nothing(cfg: Env) -> None:
    """`send NAME --without-attachments` on that file: refused within the limit (exit 1)
    with the daemon's reason, and no release file written — not released after a minute
    and more into a bundle the daemon will hold for it."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    done, _ = run_limited(cfg, "send", "INV-666.pdf", "--without-attachments")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "outboxd: INV-666.pdf cannot be read: INV-666.pdf: reading this bundle took longer "
        f"than {LIMIT:g} s each time it was tried")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-666.pdf"]


def test_send_by_invoice_id_is_not_held_up_by_other_invoice_files(cfg: Env) -> None:
    """`send INV-1` looks into every invoice file for the id: one beside it that keeps
    pypdf busy (a minute and more without the limit) is given up at the limit, and
    INV-1's bundle is answered as without it (no attachments: refused, exit 1)."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    done, _ = run_limited(cfg, "send", "INV-1")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "outboxd: INV-1.xml: invoice(s) INV-1 have no attachments")
    assert "Traceback" not in done.stderr


def test_attach_is_not_held_up_by_other_invoice_files(cfg: Env, tmp_path: Path) -> None:
    """`attach INV-1 FILE` beside an invoice file that keeps pypdf busy: attached within
    the limit (exit 0); an attach to that file's id is refused (exit 1) naming it,
    `read-time-limit`, as a file whose ids are unknown."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    sheet = write(tmp_path / "sheet.pdf", pdf_bytes())
    done, _ = run_limited(cfg, "attach", "INV-1", str(sheet))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "INV-1: attached as INV-1/sheet.pdf"
    assert (cfg.outbox / "INV-1" / "sheet.pdf").read_bytes() == sheet.read_bytes()
    done, _ = run_limited(cfg, "attach", "INV-666", str(sheet))
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert "no invoice file in" in last and "1 invoice file(s) could not be read" in last
    assert (f"INV-666.pdf: reading this bundle took longer than {LIMIT:g} s each time it "
            "was tried") in last and "[read-time-limit]" in last
    assert not (cfg.outbox / "INV-666").exists()


def test_attach_of_a_file_that_keeps_pypdf_busy_is_refused_copying_nothing(
        cfg: Env, tmp_path: Path) -> None:
    """`attach INV-1 FILE` where FILE is a PDF whose page tree takes pypdf seconds to walk
    (longer than the limit here): refused (exit 1) naming FILE, the limit and
    `read-time-limit`; nothing is copied and no sidecar made."""
    write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    hostile = write(tmp_path / "pages.pdf", huge_page_tree_pdf())
    done, _ = run_limited(cfg, "attach", "INV-1", str(hostile))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"outboxd: {hostile}: checking it as an attachment of INV-1.xml took longer than "
        f"{LIMIT:g} s each time it was tried")
    assert done.stderr.rstrip().endswith("nothing was changed: open it in a viewer and "
                                         "export or scan it again  [read-time-limit]")
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1.xml"]


def test_retry_is_not_held_up_by_a_file_that_keeps_pypdf_busy(cfg: Env) -> None:
    """`retry` of a bundle quarantined as a duplicate reads it to tell whether it is still
    the bundle that was sent ([policy] duplicates = "quarantine"): where a clerk put in a
    file that keeps pypdf busy (here the invoice file), it gives up at the limit and
    moves the bundle back (exit 0): the daemon decides, as for a bundle retry cannot
    read."""
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"},
                     service={"reader_processes": "auto"}, policy={"duplicates": "quarantine"})
    from daemon.journal import Journal
    bid = "3f2a9c01b7e4" + "0" * 52
    cfg.state.mkdir()
    journal = Journal(cfg.state / "journal.sqlite3")
    journal.create("INV-666.pdf", "sent", bundle_id=bid, invoice_ids=["INV-666"])
    journal.close()
    folder = cfg.quarantine / "2026-11-27" / f"INV-666--{bid[:12]}"
    write(folder / "INV-666.pdf", endless_invoice_pdf())
    write(folder / "INV-666" / "scan.pdf", pdf_bytes())
    write_papers(folder, reason_papers({
        "bundle_id": bid, "invoice_file": "INV-666.pdf", "quarantined_at":
        "2026-11-27T10:00:00Z", "reasons": [{"code": "duplicate", "file": "INV-666.pdf",
                                             "message": "sent before", "invoice_id": None}]}))
    done, _ = run_limited(cfg, "retry", bid[:12])
    assert done.returncode == 0, done.stderr
    assert "back in the outbox" in done.stdout and "Traceback" not in done.stderr
    assert (cfg.outbox / "INV-666.pdf").is_file() and not folder.exists()
    warned = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    ended = [w["file"] for w in warned if w["event"].startswith("a reader ran out of time")]
    assert len(ended) >= 2 and set(ended) == {"INV-666.pdf"}  # tried twice, each look
