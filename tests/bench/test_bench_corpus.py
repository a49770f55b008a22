"""The bench's bundles and the peer script: what they send is what the reference
receiver accepts, and they are the sizes issue 5 names."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pypdf import PdfReader

from bench import corpus, delivery
from bench.context import Context


def test_attachments_are_valid_files_of_about_100_and_50_kb() -> None:
    pdf = corpus.pdf_attachment(7)
    png = corpus.png_attachment(7)
    assert 90_000 <= len(pdf) <= 110_000
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 4
    assert 45_000 <= len(png) <= 55_000
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_bundles_are_the_same_bytes_on_every_run() -> None:
    assert corpus.pdf_attachment(3) == corpus.pdf_attachment(3)
    assert corpus.png_attachment(3) == corpus.png_attachment(3)
    assert corpus.pdf_attachment(3) != corpus.pdf_attachment(4)


def test_the_reference_receiver_stores_a_precomputed_body(tmp_path: Path,
                                                          receiver: Any) -> None:
    """Manifest and body come from the daemon's code: the receiver recomputes the
    bundle id, checks every hash, and stores the bundle under that id."""
    built = corpus.build(tmp_path, 2)
    item = built.items[1]
    r = httpx.post(receiver.url, content=item.body,
                   headers={"Content-Type": item.content_type, "Idempotency-Key": item.bundle_id})
    assert r.status_code == 201, r.text
    stored = receiver.store / item.bundle_id
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert (digest(stored / "attachments" / item.name / "timesheet.pdf")
            == digest(built.root / item.name / "timesheet.pdf"))
    assert digest(stored / f"{item.name}.xml") == digest(built.root / f"{item.name}.xml")


@pytest.mark.skipif(shutil.which("inotifywait") is None or shutil.which("curl") is None,
                    reason="needs inotify-tools and curl (apt-get install -y inotify-tools)")
def test_the_peer_script_delivers_every_dropped_bundle(tmp_path: Path) -> None:
    ctx = Context(tmp_path, n=3, backlog_sizes=(), journal_rows=0, corpus_size=3)
    with ctx.phase("peer"):
        delivery.peer(ctx)
    fig = ctx.results.figures["peer_time"]
    assert fig.value is not None and fig.value > 0
    assert len(list(tmp_path.glob("store-peer/" + "[0-9a-f]" * 64))) == 3


def test_without_inotifywait_the_peer_is_skipped_with_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery.shutil, "which", lambda name: None)
    ctx = Context(tmp_path, n=3, backlog_sizes=(), journal_rows=0, corpus_size=3)
    with ctx.phase("peer"):
        delivery.peer(ctx)
    fig = ctx.results.figures["peer_time"]
    assert fig.value is None
    assert "apt-get install -y inotify-tools" in fig.note
