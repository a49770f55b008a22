"""Within one command, an invoice file that ran a reader out of time is not read again
(daemon/actions/reads.py): `send NAME` looks into every invoice file for NAME as an
invoice id, then evaluates NAME's bundle; a NAME that keeps pypdf busy cost two reads
of it, each tried twice — four time limits (8 minutes at the shipped 120 s) before the
refusal, instead of two. A file changed since is read again.

On the hostile PDF invoice file of test_reads.py (pypdf: a minute and more).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Env
from helpers import pdf_bytes, write

from actions.test_reads import (
    DEADLINE,
    _quarantined_duplicate,
    endless_invoice_pdf,
    limited,
    run_limited,
)
from daemon.actions.reads import CommandReads, _looked
from daemon.configuration.config_load import load_settings
from daemon.errors import ReadTimedOut
from daemon.reading import reader_deaths
from daemon.reading.readers import Readers
from daemon.watching.scan import candidate_for

# Seconds a read may take here: long enough that the command's time tells how many reads
# ran out of it (each takes the limit at least) from what a command costs besides.
LIMIT = 2.0


def _overruns(stderr: str) -> list[str]:
    """The files the command's log says a reader ran out of time on, one per kill."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [w["file"] for w in lines if w["event"].startswith("a reader ran out of time")]


def test_send_of_a_pdf_that_keeps_pypdf_busy_reads_it_once_tried_twice(env: Env) -> None:
    """`send INV-666.pdf --without-attachments` on an invoice file that keeps pypdf busy:
    the file is given up after one read tried twice (two kills for time, not four: the
    look for NAME as an id in it and the bundle's evaluate were each tried twice), so
    the refusal comes in under four limits' time, which four kills took at the least;
    its words are unchanged (file, rule, fix) and nothing is released."""
    env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"},
                     service={"reader_processes": "auto"})
    write(env.outbox / "INV-666.pdf", endless_invoice_pdf())
    started = time.monotonic()
    done = subprocess.run([*limited(LIMIT), "send", "INV-666.pdf", "--without-attachments",
                           "-c", str(env.config)], capture_output=True, text=True,
                          timeout=DEADLINE, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert _overruns(done.stderr) == ["INV-666.pdf", "INV-666.pdf"]
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        "outboxd: INV-666.pdf cannot be read: INV-666.pdf: reading this bundle took longer "
        f"than {LIMIT:g} s each time it was tried")
    assert "replace that file" in last and "Traceback" not in done.stderr
    assert took < 4 * LIMIT, took  # four kills for time took four limits at the least
    assert sorted(p.name for p in env.outbox.iterdir()) == ["INV-666.pdf"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each read a reader is asked for ("read" or "evaluate"), in order; the read time
    limit 0.5 s."""
    monkeypatch.setattr(reader_deaths, "READ_TIME_LIMIT", 0.5)
    asked: list[str] = []
    for name in ("read", "evaluate"):
        real = getattr(Readers, name)

        def count(self: Readers, *args: Any, _real: Any = real, _name: str = name) -> Any:
            asked.append(_name)
            return _real(self, *args)
        monkeypatch.setattr(Readers, name, count)
    return asked


def test_a_file_that_overran_is_answered_at_once_until_it_changes(
        env: Env, counted: list[str], tmp_path: Path) -> None:
    """In one CommandReads: the ids of an invoice file that keeps pypdf busy run out of
    time; its bundle's evaluate then raises the same ReadTimedOut (file, limit) without
    asking a reader, as do its ids again. Saved again (its mtime changes), or replaced
    by another file, it is read again."""
    settings = load_settings(env.write_config(
        "http://127.0.0.1:9/bundles", einvoice={"preflight": "off"},
        service={"reader_processes": "auto"}))
    path = write(env.outbox / "INV-666.pdf", endless_invoice_pdf())
    cand = candidate_for(settings.outbox, "INV-666.pdf")
    with CommandReads(settings) as reads:
        with pytest.raises(ReadTimedOut) as first:
            reads.invoice_ids(cand, settings)
        assert counted == ["read"]
        with pytest.raises(ReadTimedOut) as again:
            reads.evaluate(cand, settings)
        with pytest.raises(ReadTimedOut):
            reads.invoice_ids(cand, settings)
        assert counted == ["read"]
        assert (again.value.file, again.value.limit, str(again.value)) == \
            (first.value.file, first.value.limit, str(first.value))
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        with pytest.raises(ReadTimedOut):
            reads.evaluate(cand, settings)
        assert counted == ["read", "evaluate"]
        # Replaced (a rename over it) by the same bytes, mtime and all: another inode.
        other = write(tmp_path / "new.pdf", path.read_bytes())
        st = os.stat(path)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, path)
        with pytest.raises(ReadTimedOut):
            reads.invoice_ids(cand, settings)
        assert counted == ["read", "evaluate", "read"]


def test_a_bundle_that_overran_is_answered_at_once_until_a_file_of_it_changes(
        env: Env, counted: list[str]) -> None:
    """In a command that looks at a bundle twice (retry), a bundle whose evaluate ran out
    of time is answered at once by its next evaluate until a file is added to its
    sidecar; and it tells
    nothing of its invoice file alone (what held the reader may be an attachment, or
    the pre-flight): its ids are still read."""
    settings = load_settings(env.write_config(
        "http://127.0.0.1:9/bundles", einvoice={"preflight": "off"},
        service={"reader_processes": "auto"}))
    write(env.outbox / "INV-666.pdf", endless_invoice_pdf())
    cand = candidate_for(settings.outbox, "INV-666.pdf")
    with CommandReads(settings, looks_twice=True) as reads:
        for _ in range(2):
            with pytest.raises(ReadTimedOut):
                reads.evaluate(cand, settings)
        assert counted == ["evaluate"]
        write(env.outbox / "INV-666" / "scan.pdf", pdf_bytes())
        with pytest.raises(ReadTimedOut):
            reads.evaluate(cand, settings)
        with pytest.raises(ReadTimedOut):
            reads.invoice_ids(cand, settings)
        assert counted == ["evaluate", "evaluate", "read"]


def test_retry_of_a_bundle_that_keeps_pypdf_busy_reads_it_once_tried_twice(env: Env) -> None:
    """`retry` of a quarantined duplicate whose invoice file keeps pypdf busy reads it
    before any move and again just before its own: the second look answers from the
    first (two kills for time, not four), and the bundle still goes back (exit 0)."""
    _, folder = _quarantined_duplicate(env, attachment=True)
    done, _ = run_limited(env, "retry", folder.name)
    assert done.returncode == 0, done.stderr
    assert "back in the outbox" in done.stdout and "Traceback" not in done.stderr
    assert _overruns(done.stderr) == ["INV-666.pdf", "INV-666.pdf"]
    assert (env.outbox / "INV-666.pdf").is_file() and not folder.exists()


def test_the_look_at_a_bundle_never_follows_its_sidecar_out_of_the_outbox(
        env: Env, tmp_path: Path) -> None:
    """What retry's second look compares is the outbox's own entries: a sidecar that is
    a link to a folder elsewhere is looked at as the link, and nothing in that folder is
    listed (a file added there leaves the look as it was); one added in a real sidecar,
    two levels down, changes it."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "INV-1.pdf", b"%PDF-1.7\n")
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "a.pdf", b"x")
    os.symlink(elsewhere, env.outbox / "INV-1")
    cand = candidate_for(settings.outbox, "INV-1.pdf")
    before = _looked(cand, "bundle")
    write(elsewhere / "b.pdf", b"y")
    assert _looked(cand, "bundle") == before
    os.unlink(env.outbox / "INV-1")
    write(env.outbox / "INV-1" / "INV-1" / "a.pdf", b"x")
    before = _looked(cand, "bundle")
    write(env.outbox / "INV-1" / "INV-1" / "b.pdf", b"y")
    assert _looked(cand, "bundle") != before
