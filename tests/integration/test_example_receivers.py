"""examples/receivers/: the Flask and Starlette receivers take what the real daemon sends,
with safe_filenames on and off and non-ASCII names, and check every part."""

from __future__ import annotations

import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Env
from helpers import manifest_schema_problems, text_pdf, wait_for, write

from daemon.actions.samples import peppol_batch, peppol_invoice

# Daemons here start lean (conftest.LEAN): these tests are about the example receivers.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "receivers"
KINDS = ["flask", "starlette"]


class Example:
    def __init__(self, kind: str, store: Path, log: Path) -> None:
        self._log = open(log, "wb")
        self.store = store
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{kind}_receiver.py"), "--listen", "127.0.0.1:0",
             "--store", str(store)], stdout=subprocess.PIPE, stderr=self._log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"{kind} receiver did not start: {line!r} {log.read_text()}"
        self.url = f"http://127.0.0.1:{match.group(1)}/bundles"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log.close()


@pytest.fixture(params=KINDS)
def example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Example]:
    r = Example(request.param, tmp_path / "store", tmp_path / "example.log")
    yield r
    r.stop()


NAMES = {  # invoice id -> attachment names on disk
    "INV-7001": ["Tidrapport åäö.pdf", 'Offert "A".pdf'],
    "INV-7002": ["Ünïcödé ñ.pdf", "data.csv"],
}


def _drop(env: Env) -> None:
    for inv, names in NAMES.items():
        for name in names:
            data = b"a;b\n1;2\n" if name.endswith(".csv") else text_pdf([f"{inv} {name}"])
            write(env.outbox / "batch-7" / inv / name, data)
    write(env.outbox / "Fäktura 7100" / "Följesedel ÅÄÖ.pdf", text_pdf(["Följesedel"]))
    write(env.outbox / ".batch.tmp", peppol_batch(list(NAMES))).rename(
        env.outbox / "batch-7.xml")
    write(env.outbox / ".single.tmp", peppol_invoice("INV-7100")).rename(
        env.outbox / "Fäktura 7100.xml")


def _original(bundle_dir: Path, stem: str, invoice_id: str, name: str) -> Path:
    nested = bundle_dir / stem / invoice_id / name
    return nested if nested.exists() else bundle_dir / stem / name


@pytest.mark.parametrize("safe", [True, False], ids=["safe_filenames", "raw_filenames"])
def test_daemon_delivers_every_bundle_to_the_example_receiver(
        env: Env, example: Example, start_daemon, safe: bool) -> None:
    """Both bundles (a two-invoice file, and a single invoice with Swedish names) are
    accepted with 201; the receiver stored each part byte for byte as the original file,
    and each manifest it stored matches docs/manifest.schema.json."""
    env.write_config(example.url, delivery={"safe_filenames": safe})
    start_daemon()
    _drop(env)
    wait_for(lambda: len(env.sent_bundles()) == 2, timeout=30, what="both bundles in sent/")
    assert env.quarantined() == []
    for bundle_dir in env.sent_bundles():
        receipt = json.loads((bundle_dir / "receipt.json").read_text())
        assert receipt["response"]["status"] == 201 and receipt["response"]["receipt_id"]
        manifest = receipt["manifest"]
        stored = example.store / manifest["bundle_id"]
        assert manifest_schema_problems(
            json.loads((stored / "manifest.json").read_text())) == []
        stem = Path(manifest["invoice_file"]["original_name"]).stem
        assert (stored / "invoice").read_bytes() == \
            (bundle_dir / manifest["invoice_file"]["original_name"]).read_bytes()
        for inv in manifest["invoices"]:
            assert sorted(a["original_name"] for a in inv["attachments"]) == \
                sorted(NAMES.get(inv["id"], ["Följesedel ÅÄÖ.pdf"]))
            for att in inv["attachments"]:
                assert (stored / att["part"]).read_bytes() == \
                    _original(bundle_dir, stem, inv["id"], att["original_name"]).read_bytes()
                assert (att["name"] == att["original_name"]) is (
                    not safe or att["original_name"].isascii() and " " not in
                    att["original_name"] and '"' not in att["original_name"])


def test_example_receiver_takes_a_bundle_whose_manifest_is_over_a_mebibyte(
        env: Env, example: Example, start_daemon) -> None:
    """300 attachments, each with a type and a note of 2,000 characters (attachments.toml
    allows that much): a manifest of about 1.3 MB, which the examples refused (1 MiB,
    Flask's own limit and Starlette's default for a field), so the bundle was quarantined
    as rejected. Both take it with 201 and store every part."""
    env.write_config(example.url)
    start_daemon()
    ids = ["INV-7201", "INV-7202"]
    for inv in ids:
        entries = []
        for i in range(150):
            write(env.outbox / "batch-72" / inv / f"rows-{i:03}.csv", f"a;b\n{i};2\n".encode())
            entries.append(f'[files."rows-{i:03}.csv"]\ntype = "{"T" * 2000}"\n'
                           f'note = "{"n" * 2000}"\n')
        write(env.outbox / "batch-72" / inv / "attachments.toml", "".join(entries).encode())
    write(env.outbox / ".batch.tmp", peppol_batch(ids)).rename(env.outbox / "batch-72.xml")
    wait_for(lambda: env.sent_bundles() or env.quarantined(), timeout=60,
             what="the bundle in sent/ or quarantine/")
    assert env.quarantined() == []
    receipt = json.loads((env.sent_bundles()[0] / "receipt.json").read_text())
    assert receipt["response"]["status"] == 201
    stored = example.store / receipt["manifest"]["bundle_id"]
    assert (stored / "manifest.json").stat().st_size > 1 << 20
    assert (stored / "attachment-300").read_bytes() == b"a;b\n149;2\n"


def _post(url: str, manifest: dict, files: list[tuple[str, str, bytes, str]],
          key: str | None = None) -> httpx.Response:
    parts = [("manifest", (None, json.dumps(manifest).encode(), "application/json"))]
    parts += [(part, (name, data, ctype)) for part, name, data, ctype in files]
    return httpx.post(url, files=parts, headers={"Idempotency-Key": key or manifest["bundle_id"]})


def test_example_receiver_answers_repeats_200_and_refuses_what_breaks_the_manifest(
        env: Env, example: Example, start_daemon) -> None:
    """After a delivery: the same request again gets 200 with the first body; a part whose
    bytes differ from the manifest's sha256, parts out of order, or a key of other content
    are refused (400/422) and nothing new is stored."""
    env.write_config(example.url, delivery={"safe_filenames": False})
    start_daemon()
    _drop(env)
    wait_for(lambda: len(env.sent_bundles()) == 2, timeout=30, what="both bundles in sent/")
    receipt = next(json.loads((d / "receipt.json").read_text()) for d in env.sent_bundles()
                   if d.name.startswith("batch-7"))
    manifest = receipt["manifest"]
    stored = example.store / manifest["bundle_id"]
    files = [("invoice", manifest["invoice_file"]["name"], (stored / "invoice").read_bytes(),
              "application/xml")]
    files += [(a["part"], a["name"], (stored / a["part"]).read_bytes(), a["content_type"])
              for inv in manifest["invoices"] for a in inv["attachments"]]

    again = _post(example.url, manifest, files)
    assert again.status_code == 200 and again.json() == receipt["response"]["body"]

    tampered = [*files[:1], (files[1][0], files[1][1], files[1][2] + b"x", files[1][3]),
                *files[2:]]
    assert _post(example.url, manifest, tampered).status_code == 400
    assert _post(example.url, manifest, [files[0], files[2], files[1], *files[3:]]
                 ).status_code == 400
    other = json.loads(json.dumps(manifest))
    other["invoices"][0]["attachments"][0]["note"] = "changed"
    assert _post(example.url, other, files, key=manifest["bundle_id"]).status_code == 422
    assert sorted(p.name for p in example.store.iterdir()) == sorted(
        json.loads((d / "receipt.json").read_text())["manifest"]["bundle_id"]
        for d in env.sent_bundles())


def _bundle_check():  # noqa: ANN202 - the example module, imported as a receiver would
    sys.path.insert(0, str(EXAMPLES))
    try:
        import bundle_check
    finally:
        sys.path.remove(str(EXAMPLES))
    return bundle_check


def test_the_example_store_has_a_bundle_on_disk_before_its_2xx(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the examples store is synced before they answer 2xx (docs/protocol.md,
    section 4): manifest.json and response.json, the bundle's folder before its rename,
    the store after it. Else a power loss after the answer lost the bundle, and the
    sender's next repeat of its key was stored again under a new receipt."""
    check = _bundle_check()
    synced: list[str] = []
    real = os.fsync

    def noted(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)
    monkeypatch.setattr(os, "fsync", noted)
    store = check.Store(tmp_path / "store")
    key = "a" * 64
    staging = store.begin(key)
    store.commit(key, staging, b'{"manifest_version": 1}')
    store.end(key, staging)
    final = tmp_path / "store" / key
    assert {str(staging / "manifest.json"), str(staging / "response.json"), str(staging),
            str(tmp_path / "store")} <= set(synced)
    assert json.loads((final / "response.json").read_bytes())["bundle_id"] == key


def test_the_example_token_check_compares_in_constant_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bearer token is compared with hmac.compare_digest (as the reference receiver
    does): a plain != answers a near miss later than a wild guess, and a guesser times
    it. The right token passes, a wrong or missing one is 401."""
    check = _bundle_check()
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest",
                        lambda a, b: compared.append((a, b)) or real(a, b))
    check.check_token("Bearer s3cret", "s3cret")
    for wrong in ("Bearer s3creX", None):
        with pytest.raises(check.Refusal) as info:
            check.check_token(wrong, "s3cret")
        assert info.value.status == 401
    assert compared == [(b"Bearer s3cret", b"Bearer s3cret"), (b"Bearer s3creX", b"Bearer s3cret"),
                        (b"", b"Bearer s3cret")]
