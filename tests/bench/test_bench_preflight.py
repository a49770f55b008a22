"""The preflight phase's documents: the 5 MB one is really ~5 MB, built by the
daemon's own embed code, and passes the rules it is timed against."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from bench import corpus, delivery
from bench import preflight as phase
from bench.context import Context
from daemon import einvoice


def test_the_embedded_document_is_about_5_mb_carries_the_pdf_and_passes_preflight(
        tmp_path: Path) -> None:
    data = phase.embedded_document(tmp_path)
    assert 4_700_000 <= len(data) <= 5_300_000
    pdf = (tmp_path / "outbox" / phase.BIG_NAME / "drawings.pdf").read_bytes()
    assert 3_500_000 <= len(pdf) <= 3_900_000
    [inside] = re.findall(rb'filename="drawings\.pdf">([A-Za-z0-9+/=]+)<', data)
    assert base64.b64decode(inside) == pdf
    result = einvoice.preflight(data, "big.xml", "error")
    assert result.checked and result.findings == ()


def test_the_invoice_it_times_is_the_corpus_invoice_and_passes_preflight() -> None:
    data = corpus.invoice_xml("INV-B00001")
    result = einvoice.preflight(data, "INV-B00001.xml", "error")
    assert result.checked and result.findings == ()


def test_the_preflight_burst_delivers_every_bundle_with_the_rules_on(tmp_path: Path) -> None:
    """The daemon of throughput-preflight runs the rules (their compiled copy is in its
    state dir) and quarantines none of the bench's invoices."""
    ctx = Context(tmp_path, n=2, backlog_sizes=(), journal_rows=0, corpus_size=2)
    with ctx.phase("throughput-preflight"):
        delivery.throughput_preflight(ctx)
    fig = ctx.results.figures["throughput_preflight_time"]
    assert fig.value is not None and 'preflight = "error"' in fig.note
    base = tmp_path / "throughput-preflight"
    assert list((base / "state" / "einvoice").glob("*.xsl"))
    assert not list((base / "quarantine").glob("*/*"))
    assert len(list(tmp_path.glob("store-throughput-preflight/" + "[0-9a-f]" * 64))) == 2


def test_the_phase_says_where_one_invoices_time_goes_step_by_step(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Parse and split, XSD, Saxon's parse and each rule set the invoice gets are timed
    apart; a plain EN 16931 invoice gets no Peppol figure, since its rules do not run."""
    monkeypatch.setattr(phase, "INVOICE_RUNS", 2)
    steps = ("split", "xsd", "saxon_parse", "cen")
    ctx = Context(tmp_path, 1, (1,), 1)
    phase._steps(ctx, einvoice.load(), corpus.invoice_xml("INV-B00001"))
    figures = ctx.results.figures
    assert all(figures[f"preflight_invoice_{k}"].value > 0 for k in (*steps, "peppol"))
    plain = corpus.invoice_xml("INV-B00002").replace(
        b"#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0", b"")
    ctx = Context(tmp_path, 1, (1,), 1)
    phase._steps(ctx, einvoice.load(), plain)
    assert {k.removeprefix("preflight_invoice_") for k in ctx.results.figures} == set(steps)
