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

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Env
from helpers import pdf_bytes, pdf_of_objects, ubl_invoice, wait_for, write
from reading.test_readers import alive, child_pids

from daemon.archiving.archive_papers import reason_papers, write_papers

LIMIT = 0.5  # seconds a read may take in these tests (the daemon's: 120)
DEADLINE = 60.0  # seconds a command may take here; a hostile invoice file, longer


def limited(limit: float, thread: bool = False) -> list[str]:
    """The command line as `python -m daemon` runs it, the time limit of a read set
    first; with `thread`, one more thread started (idle) before the command runs."""
    return [sys.executable, "-c",
            "import sys, threading\n"
            "from daemon.reading import reader_deaths\n"
            f"reader_deaths.READ_TIME_LIMIT = {limit}\n"
            + ("threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
               if thread else "")
            + "from daemon.entry import main\n"
            "sys.exit(main(sys.argv[1:]))"]


LIMITED = limited(LIMIT)


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


def _quarantined_duplicate(cfg: Env, attachment: bool) -> tuple[str, Path]:
    """A bundle quarantined as a duplicate of one the journal has as sent, for `retry`:
    its invoice file one that keeps pypdf busy (with a scan.pdf beside it if
    `attachment`); the bundle id and its quarantine folder."""
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
    if attachment:
        write(folder / "INV-666" / "scan.pdf", pdf_bytes())
    write_papers(folder, reason_papers({
        "bundle_id": bid, "invoice_file": "INV-666.pdf", "quarantined_at":
        "2026-11-27T10:00:00Z", "reasons": [{"code": "duplicate", "file": "INV-666.pdf",
                                             "message": "sent before", "invoice_id": None}]}))
    return bid, folder


def test_retry_is_not_held_up_by_a_file_that_keeps_pypdf_busy(cfg: Env) -> None:
    """`retry` of a bundle quarantined as a duplicate reads it to tell whether it is still
    the bundle that was sent ([policy] duplicates = "quarantine"): where a clerk put in a
    file that keeps pypdf busy (here the invoice file), it gives up at the limit and
    moves the bundle back (exit 0): the daemon decides, as for a bundle retry cannot
    read."""
    bid, folder = _quarantined_duplicate(cfg, attachment=True)
    done, _ = run_limited(cfg, "retry", bid[:12])
    assert done.returncode == 0, done.stderr
    assert "back in the outbox" in done.stdout and "Traceback" not in done.stderr
    assert (cfg.outbox / "INV-666.pdf").is_file() and not folder.exists()
    warned = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    ended = [w["file"] for w in warned if w["event"].startswith("a reader ran out of time")]
    assert len(ended) >= 2 and set(ended) == {"INV-666.pdf"}  # tried twice


# -- the reader a command starts: forked from it (see reads.py) ------------------------------
def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def forked_reader(command: subprocess.Popen[str]) -> int | None:
    """The command's reader if it is a fork of it (the same command line), else None."""
    mine = cmdline(command.pid)
    return next((p for p in child_pids(command.pid) if cmdline(p) == mine), None)


def spawned_reader(command: subprocess.Popen[str]) -> int | None:
    """The command's reader if it is a spawned interpreter, else None."""
    return next((p for p in child_pids(command.pid) if b"spawn_main" in cmdline(p)), None)


@pytest.fixture
def started(cfg: Env) -> Iterator[list[subprocess.Popen[str]]]:
    """Commands started in a session of their own (a terminal's process group), killed
    with their group at the end of the test, whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        # The group, whether the command is still there or not: a reader it left
        # would hold the command's stdout and stderr open (communicate would wait).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def start(started: list[subprocess.Popen[str]], env: Env, argv: list[str], *args: str
          ) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*argv, *args, "-c", str(env.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    started.append(proc)
    return proc


def test_a_commands_reader_is_forked_and_its_time_limit_still_ends_it(
        cfg: Env, started: list[subprocess.Popen[str]]) -> None:
    """`check` (one thread) forks its reader instead of spawning an interpreter that
    imports outboxd again (0.3 to 0.4 s of CPU a command); a read past the limit still
    kills it, the read is tried once more in a spawned reader (started by the
    command's collector thread: never forked), and the command reports
    `read-time-limit` (exit 1)."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    # Each reader lives out the limit (CPU-bound, both tries): long enough to be seen
    # by wait_for's 0.05-s polls on a loaded host (twenty of them), not longer.
    proc = start(started, cfg, limited(1.0), "check", str(cfg.outbox / "INV-666.pdf"))
    first = wait_for(lambda: forked_reader(proc), timeout=DEADLINE, what="a forked reader")
    assert spawned_reader(proc) is None
    wait_for(lambda: not alive(first), timeout=DEADLINE, what="the limit to end it")
    wait_for(lambda: spawned_reader(proc), timeout=DEADLINE, what="a spawned replacement")
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 1, err
    assert "[read-time-limit]" in out and "Traceback" not in err


def test_a_command_with_another_thread_spawns_its_reader_and_ctrl_c_ends_both(
        cfg: Env, started: list[subprocess.Popen[str]]) -> None:
    """A command process with a second thread (a fork would copy whatever lock that
    thread holds) spawns its reader; a Ctrl-C (SIGINT to the terminal's process group)
    ends the command (exit 130) and its reader with it, without a traceback."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    proc = start(started, cfg, limited(DEADLINE, thread=True), "check",
                 str(cfg.outbox / "INV-666.pdf"))
    reader = wait_for(lambda: spawned_reader(proc), timeout=DEADLINE, what="a spawned reader")
    assert forked_reader(proc) is None
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 130 and "Traceback" not in err, err
    wait_for(lambda: not alive(reader), what="the reader to end")


def test_ctrl_c_ends_a_command_and_its_forked_reader(
        cfg: Env, started: list[subprocess.Popen[str]]) -> None:
    """`send` by id while its forked reader is deep in a file that keeps pypdf busy: a
    Ctrl-C ends the command (exit 130, no traceback) and leaves no reader behind."""
    write(cfg.outbox / "INV-666.pdf", endless_invoice_pdf())
    proc = start(started, cfg, limited(DEADLINE), "send", "INV-1")
    reader = wait_for(lambda: forked_reader(proc), timeout=DEADLINE, what="a forked reader")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 130 and "Traceback" not in err, err
    wait_for(lambda: not alive(reader), what="the reader to end")


def locks_held(pid: int) -> list[str]:
    """The flock lines of pid's open descriptors (/proc/PID/fdinfo)."""
    found = []
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            found += [line for line in info.read_text().splitlines() if line.startswith("lock:")]
        except OSError:
            pass  # closed meanwhile
    return found


def test_a_forked_reader_holds_none_of_the_commands_locks_and_ends_when_it_is_killed(
        cfg: Env, started: list[subprocess.Popen[str]]) -> None:
    """`retry` holds the quarantine locked while it reads the bundle: its forked reader,
    busy with a file that keeps pypdf busy, holds no copy of that lock (nor of any of the
    command's descriptors), and when the command is killed (SIGKILL, no clean-up) the
    reader sees the end of its pipe and exits — nothing is left holding the quarantine."""
    bid, folder = _quarantined_duplicate(cfg, attachment=False)
    proc = start(started, cfg, limited(DEADLINE), "retry", bid[:12])
    reader = wait_for(lambda: forked_reader(proc), timeout=DEADLINE, what="a forked reader")
    assert locks_held(proc.pid), "retry no longer locks the quarantine: this test shows nothing"
    # Found right after the fork it still holds the command's descriptors, until its
    # start closes them (forked_main): polled, not looked at once — while the command
    # still holds its lock and the reader runs (a zombie shows no descriptors), so that
    # a reader which kept a copy never passes (the copy goes only with the command's).
    wait_for(lambda: alive(reader) and locks_held(reader) == [] and bool(locks_held(proc.pid)),
             timeout=DEADLINE, what="the forked reader to hold none of the command's locks "
             "while the command holds its own")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=DEADLINE)  # not its output: a reader left behind would hold it open
    wait_for(lambda: not alive(reader), timeout=30, what="the orphaned reader to exit")


def _dies_as_out_of_memory(cand: object, settings: object) -> None:
    """A read whose reader the kernel kills (its OOM killer's SIGKILL), every time."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_reader_killed_each_time_it_reads_is_said_in_the_commands_words(
        cfg: Env) -> None:
    """The reader process killed under a command's read each time it is tried (the OOM
    killer on a file that takes all memory): the command's refusal names the invoice file,
    that the reader died each time (out of memory?) and that nothing was changed — not
    the daemon's words about reading the bundle again when it changes."""
    from daemon.actions.reads import CommandReads
    from daemon.configuration.config_load import load_settings
    from daemon.errors import ReaderFailed
    from daemon.watching.scan import candidate_for
    write(cfg.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    settings = load_settings(cfg.config)
    with CommandReads(settings) as reads, pytest.raises(ReaderFailed) as info:
        reads.read(candidate_for(settings.outbox, "INV-1.xml"), settings,
                   _dies_as_out_of_memory)
    assert str(info.value) == ("INV-1.xml: the reader process died while reading it, each "
                               "time it was tried (out of memory?); nothing was changed")
