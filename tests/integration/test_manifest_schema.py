"""docs/manifest.schema.json describes the manifests the daemon really sends."""

from __future__ import annotations

import json

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, manifest_schema_problems, pdf_bytes, wait_for, write

from daemon.actions.samples import peppol_batch, tiff_scan

# Daemons here start lean (conftest.LEAN): the manifests' shape does not depend on pre-flight or
# where bundles are read.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_manifests_of_delivered_bundles_match_the_schema(env: Env, receiver: Receiver,
                                                         start_daemon) -> None:
    """Manifests with pages, a TIFF on external print, a CSV (pdf-recommended warning), a
    multi-invoice file with an unattached invoice (unattached-invoice warning) and a bundle
    without any attachment all validate against the schema, strictly (no undeclared property)."""
    env.write_config(receiver.url, policy={"unattached": "send"})
    start_daemon()
    drop_bundle(env.outbox, "INV-S1", {"a.pdf": pdf_bytes(3),
                                      "hours.csv": b"day;hours\nmon;8\n"})
    drop_bundle(env.outbox, "INV-S5", {"scan.tif": tiff_scan(300, 2),
                                      "attachments.toml": b'channel = "external-print"\n'})
    write(env.outbox / "batch-S" / "INV-S2" / "contract.pdf", pdf_bytes())
    write(env.outbox / ".b.tmp", peppol_batch(["INV-S2", "INV-S3"])).rename(
        env.outbox / "batch-S.xml")
    drop_bundle(env.outbox, "INV-S4", {})
    wait_for(lambda: len(env.sent_bundles()) == 4, timeout=30, what="four bundles sent")
    manifests = [json.loads((d / "receipt.json").read_text())["manifest"]
                 for d in env.sent_bundles()]
    manifests += [json.loads(p.read_text()) for p in receiver.store.glob("*/manifest.json")]
    assert len(manifests) == 8
    for manifest in manifests:
        assert manifest_schema_problems(manifest) == [], manifest
    codes = {w["code"] for m in manifests for w in m["warnings"]}
    assert {"unattached-invoice", "pdf-recommended"} <= codes
    assert any(a.get("pages") == 2 and a["content_type"] == "image/tiff"
               for m in manifests for i in m["invoices"] for a in i["attachments"])


def test_schema_rejects_a_manifest_that_breaks_it() -> None:
    """The schema has teeth: a short bundle id, an unknown channel and an undeclared field
    are each reported."""
    bad = {"manifest_version": 1, "bundle_id": "abc", "created_at": "2026-11-26T17:00:00Z",
           "channel": "fax", "invoice_file": {"name": "a.xml", "original_name": "a.xml",
                                              "size": 1, "sha256": "0" * 64, "format": "ubl"},
           "invoices": [{"id": "A", "attachments": []}], "warnings": [], "extra": 1}
    problems = "\n".join(manifest_schema_problems(bad))
    assert "bundle_id" in problems and "channel" in problems and "extra" in problems
