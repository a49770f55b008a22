"""The bundles `outboxd demo` drops (daemon/actions/demo_samples.py): what each is
expected to end as, and the order its files are written in."""

from __future__ import annotations

import tomllib
from pathlib import Path

from daemon.actions.demo_samples import build


def test_the_released_sample_is_sent_only_where_release_files_are_supported() -> None:
    """INV-4001 is released by a NAME.send-anyway file (with the configured suffix),
    written once it waits: with release support it is expected sent, without it to keep
    waiting, and its line says so."""
    on = {s.invoice_file: s for s in build(".go", True)}["INV-4001.xml"]
    off = {s.invoice_file: s for s in build(".go", False)}["INV-4001.xml"]
    assert on.when_waiting == off.when_waiting == {"INV-4001.go": b""}
    assert (on.expect, off.expect) == ("sent", "waiting")
    assert "not in this build" in off.shows and "not in this build" not in on.shows


def test_each_sample_writes_its_sidecar_first_and_its_invoice_file_last(
        tmp_path: Path) -> None:
    """Written in order as the demo does, every sample's invoice file comes last (the
    daemon would otherwise see an invoice whose attachments are not there yet), and each
    attachments.toml written is TOML naming a file of its folder."""
    for sample in build(".send-anyway", True):
        names = list(sample.files)
        assert names[-1] == sample.invoice_file, sample.invoice_file
        for rel, data in sample.files.items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if path.name == "attachments.toml":
                described = tomllib.loads(path.read_text(encoding="utf-8"))["files"]
                assert all((Path(rel).parent / name).as_posix() in sample.files
                           for name in described), rel


def test_the_quarantined_samples_name_the_reason_quarantine_must_give() -> None:
    """The two samples meant for quarantine carry the reason code their REASON must name
    (the demo checks it); the others carry none."""
    codes = {s.invoice_file: (s.expect, s.expect_code) for s in build(".send-anyway", True)}
    assert codes["INV-5001.xml"] == ("quarantined", "tiff-resolution")
    assert codes["INV-6001.xml"] == ("quarantined", "pdf-encrypted")
    assert all(code is None for expect, code in codes.values() if expect != "quarantined")
