"""The bundles every phase sends: built once, the same N for every contender.

Each bundle is what an ERP drops: a Peppol BIS 3 invoice (the official example
kept in tests/fixtures, with its own invoice number, so it also passes the
EN 16931 / Peppol rules if preflight is on), a sidecar with a ~100 KB PDF made
with pypdf and a ~50 KB PNG made with Pillow. Content is seeded by the bundle
number, so every run of the bench sends the same bytes.

Manifests and multipart bodies come from the daemon's own code
(`finish.evaluate` reads and validates, `manifest.build_manifest` describes),
so the reference receiver, which recomputes the bundle id and checks every
hash, accepts what the baseline and the peer script send.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, NameObject

from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.delivery.finish import evaluate
from daemon.manifest import build_manifest
from daemon.watching.scan import candidate_for

REPO = Path(__file__).resolve().parent.parent
PEPPOL_EXAMPLE = REPO / "tests" / "fixtures" / "peppol" / "base-example.xml"
PDF_BYTES = 100_000
PNG_SIDE = (128, 130)  # 128 x 130 RGB noise: ~50 KB, since noise does not compress
INVOICE_TYPE = "application/xml"


def invoice_xml(invoice_id: str) -> bytes:
    """The official Peppol example with invoice number `invoice_id` (its first cbc:ID)."""
    text = PEPPOL_EXAMPLE.read_text("utf-8")
    return text.replace("<cbc:ID>Snippet1</cbc:ID>", f"<cbc:ID>{invoice_id}</cbc:ID>", 1).encode()


def pdf_attachment(seed: int, size: int = PDF_BYTES, pages: int = 4) -> bytes:
    """A valid PDF of about `size` bytes: pages of filled rectangles (real drawing
    operators, uncompressed), so pypdf opens it and the bytes are really there."""
    rng = random.Random(seed)
    per_page = size // pages
    writer = PdfWriter()
    for _ in range(pages):
        ops: list[str] = []
        length = 0
        while length < per_page - 600:  # leave room for the page objects and xref
            op = (f"{rng.random():.3f} {rng.random():.3f} {rng.random():.3f} rg "
                  f"{rng.uniform(0, 560):.1f} {rng.uniform(0, 800):.1f} "
                  f"{rng.uniform(2, 40):.1f} {rng.uniform(2, 40):.1f} re f\n")
            ops.append(op)
            length += len(op)
        page = writer.add_blank_page(595, 842)
        stream = DecodedStreamObject()
        stream.set_data("".join(ops).encode("ascii"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def png_attachment(seed: int) -> bytes:
    rng = random.Random(seed)
    w, h = PNG_SIDE
    img = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Item:
    """One bundle of the corpus, with what the daemon would send for it."""

    name: str  # NAME: invoice file NAME.xml, sidecar NAME/
    bundle_id: str
    manifest: bytes  # JSON, as the daemon would send it
    body: bytes  # the whole multipart body (parts as in docs/protocol.md)
    content_type: str  # multipart/form-data; boundary=…


@dataclass(frozen=True)
class Corpus:
    root: Path  # holds NAME.xml and NAME/ for every item
    items: tuple[Item, ...]

    def stage(self, dest: Path, items: tuple[Item, ...] | None = None,
              extras: bool = False) -> None:
        """Fresh copies of the bundles in `dest` (same filesystem as the watched folder),
        ready to be renamed in. extras: also NAME.manifest.json and NAME.id (the peer)."""
        dest.mkdir(parents=True, exist_ok=True)
        for item in items or self.items:
            shutil.copytree(self.root / item.name, dest / item.name)
            shutil.copyfile(self.root / f"{item.name}.xml", dest / f"{item.name}.xml")
            if extras:
                (dest / f"{item.name}.manifest.json").write_bytes(item.manifest)
                (dest / f"{item.name}.id").write_text(item.bundle_id)
        os.sync()  # nothing left to write back while a contender is timed


def write_bundles(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        name = f"INV-B{i:05d}"
        side = root / name
        side.mkdir()
        (side / "timesheet.pdf").write_bytes(pdf_attachment(i))
        (side / "photo.png").write_bytes(png_attachment(i))
        (root / f"{name}.xml").write_bytes(invoice_xml(name))


def _settings_for(root: Path, work: Path) -> Settings:
    config = work / "corpus-config.toml"
    config.write_text(f'[outbox]\npath = {json.dumps(str(root))}\n'
                      f'[paths]\nstate_dir = {json.dumps(str(work / "corpus-state"))}\n'
                      '[delivery]\nurl = "http://127.0.0.1:9/bundles"\n')
    return load_settings(config)


def build(work: Path, n: int) -> Corpus:
    """Write n bundles under work/corpus and precompute each one's manifest and body."""
    root = work / "corpus"
    write_bundles(root, n)
    settings = _settings_for(root, work)
    items: list[Item] = []
    for i in range(1, n + 1):
        name = f"INV-B{i:05d}"
        bundle = evaluate(candidate_for(settings.outbox, f"{name}.xml"), settings)
        if bundle.errors:
            raise RuntimeError(f"bench bundle {name} is not valid: "
                               + "; ".join(f.line() for f in bundle.errors))
        manifest = build_manifest(bundle, safe_filenames=True, warnings=bundle.warnings)
        raw = json.dumps(manifest, ensure_ascii=False).encode("utf-8")
        files: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("manifest", (None, raw, "application/json")),
            ("invoice", (manifest["invoice_file"]["name"],
                         (root / f"{name}.xml").read_bytes(), INVOICE_TYPE)),
        ]
        for entry in manifest["invoices"][0]["attachments"]:
            files.append((entry["part"], (entry["name"],
                                          (root / name / entry["original_name"]).read_bytes(),
                                          entry["content_type"])))
        # httpx encodes the multipart body exactly as the daemon's client does.
        request = httpx.Request("POST", "http://127.0.0.1/", files=files)
        items.append(Item(name, manifest["bundle_id"], raw, request.read(),
                          request.headers["Content-Type"]))
    return Corpus(root, tuple(items))
