"""What the reference receiver makes of a POST's body (daemon/receiver/receive.py): a
bundle checked part by part against its manifest and stored as sent, a repeat answered
with the stored body, another content under the same key refused; driven over real
HTTP by httpx."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from .conftest import UBL, log_lines, make_sent, post, stored_bundles


class TestAccepting:
    def test_valid_bundle_is_stored_byte_identical_and_answered_201(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A valid bundle gets 201 with a receipt and lands in STORE/BUNDLE_ID/ as sent."""
        sent = make_sent(tmp_path)
        resp = post(url, sent)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["bundle_id"] == sent.key and body["receipt_id"].startswith("rcpt-")
        assert resp.headers["content-type"] == "application/json"
        folder = store / sent.key
        assert (folder / "manifest.json").read_bytes() == sent.manifest_bytes()
        assert (folder / "response.json").read_bytes() == resp.content
        assert (folder / "batch-42.xml").read_bytes() == UBL
        pdf = folder / "attachments" / "INV-2001" / "Tidrapport_oktober.pdf"
        assert pdf.read_bytes() == sent.files[1][2].read_bytes()
        assert (folder / "attachments" / "INV_7_1" / "scan.bin").read_bytes() == \
            sent.files[2][2].read_bytes()
        assert stored_bundles(store) == [sent.key]  # no staging dir left behind
        [line] = log_lines(store)
        assert line["status"] == 201 and line["idempotency_key"] == sent.key
        assert "error" not in line


class TestIdempotency:
    def test_repeat_with_same_content_gets_200_and_the_first_body(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A repeated key with the same content answers 200 with the stored 201 body."""
        sent = make_sent(tmp_path)
        first = post(url, sent)
        again = replace(sent, manifest={**sent.manifest, "created_at": "2030-01-01T00:00:00Z",
                                        "warnings": []})
        second = post(url, again)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.content == first.content
        assert [line["status"] for line in log_lines(store)] == [201, 200]
        assert stored_bundles(store) == [sent.key]

    def test_same_key_with_other_content_gets_422(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A key reused for a bundle whose content differs is refused with 422."""
        sent = make_sent(tmp_path)
        assert post(url, sent).status_code == 201
        other = make_sent(tmp_path / "other", note="Unsigned")
        assert other.key != sent.key
        resp = post(url, other, key=sent.key)
        assert resp.status_code == 422 and "other content" in resp.json()["error"]
        assert stored_bundles(store) == [sent.key]


class TestRefusing:
    def test_hash_mismatch_is_400_and_nothing_is_stored(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A part whose bytes differ from the manifest is refused; no bundle, no staging dir."""
        sent = make_sent(tmp_path)
        pdf = sent.files[1][2]
        pdf.write_bytes(pdf.read_bytes().replace(b"%%EOF", b"%%EOX"))  # same size, new hash
        resp = post(url, sent)
        assert resp.status_code == 400
        assert "attachment-1" in resp.json()["error"] and "sha256" in resp.json()["error"]
        assert stored_bundles(store) == []
        assert log_lines(store)[0]["error"] == resp.json()["error"]

    def test_size_mismatch_is_400(self, tmp_path: Path, store: Path, url: str) -> None:
        """A truncated invoice part is refused and named."""
        sent = make_sent(tmp_path)
        sent.files[0][2].write_bytes(UBL[:-1])
        resp = post(url, sent)
        assert resp.status_code == 400 and "'invoice'" in resp.json()["error"]
        assert stored_bundles(store) == []

    @pytest.mark.parametrize("order, expected", [
        ([1, 0, 2, 3], "first part must be 'manifest'"),
        ([0, 2, 1, 3], "expected part 'invoice'"),
        ([0, 1, 3, 2], "expected part 'attachment-1', got 'attachment-2'"),
        ([0, 1, 2], "part 'attachment-2' is missing"),
        ([0, 1, 2, 3, 3], "unexpected part 'attachment-2'"),
    ])
    def test_parts_out_of_order_missing_or_extra_are_400(
            self, tmp_path: Path, store: Path, url: str, order: list[int], expected: str) -> None:
        """Only manifest, invoice, attachment-1..N in that order are accepted."""
        sent = make_sent(tmp_path)
        with ExitStack() as stack:
            parts = sent.parts(stack)
            resp = post(url, sent, files=[parts[i] for i in order])
        assert resp.status_code == 400 and expected in resp.json()["error"]
        assert stored_bundles(store) == []

    def test_manifest_bundle_id_must_match_its_content(self, tmp_path: Path, url: str) -> None:
        """A manifest whose bundle_id is not the hash of its content is refused."""
        sent = make_sent(tmp_path)
        sent.manifest["bundle_id"] = "f" * 64
        resp = post(url, sent, key="f" * 64)
        assert resp.status_code == 400 and "not the id of its content" in resp.json()["error"]

    def test_a_size_the_manifest_misstates_is_400_though_the_hash_matches(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """The size is checked on its own: a manifest whose sha256 is right but whose
        size is not (the bundle id does not hold the size) is refused, naming both."""
        sent = make_sent(tmp_path)
        entry = sent.manifest["invoices"][0]["attachments"][0]
        entry["size"] += 1
        resp = post(url, sent)
        assert resp.status_code == 400
        assert f"manifest says {entry['size']}" in resp.json()["error"]
        assert stored_bundles(store) == []

    def test_an_attachment_sent_under_another_content_type_than_its_manifest_is_400(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """An attachment's part must carry the Content-Type its manifest entry gives."""
        sent = make_sent(tmp_path)
        part, name, path, _ctype = sent.files[1]
        sent.files[1] = (part, name, path, "application/octet-stream")
        resp = post(url, sent)
        assert resp.status_code == 400 and "Content-Type" in resp.json()["error"]
        assert stored_bundles(store) == []

    def test_a_manifest_over_its_limit_is_413(self, tmp_path: Path, store: Path, url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        """The manifest part is held in memory, so past MAX_MANIFEST it is refused 413
        (the limit lowered here: the real one is 64 MiB)."""
        from daemon.receiver import receive
        monkeypatch.setattr(receive, "MAX_MANIFEST", 1000)
        resp = post(url, make_sent(tmp_path, note="n" * 1000))
        assert resp.status_code == 413 and "'manifest'" in resp.json()["error"]
        assert stored_bundles(store) == []

    @pytest.mark.parametrize("pdf_name", ['Offer 10%22 off.pdf', 'Offert "A".pdf'])
    def test_names_with_quotes_or_a_literal_percent_22_are_accepted_as_sent(
            self, tmp_path: Path, store: Path, url: str, pdf_name: str) -> None:
        """With safe_filenames = false a name may hold '"' (httpx sends it as %22, as
        HTML5 says) or a literal '%22': both match the manifest's name, and the file is
        stored; the receiver does not decode %22 in a name that means it literally."""
        sent = make_sent(tmp_path, pdf_name=pdf_name, safe_filenames=False)
        assert pdf_name in [f[1] for f in sent.files]
        resp = post(url, sent)
        assert resp.status_code == 201, resp.text
        assert stored_bundles(store) == [sent.key]

    @pytest.mark.parametrize("manifest", [b"{not json", b'{"manifest_version": 2}', b"[]",
                                          b"[" * 100_000 + b"]" * 100_000,
                                          b'{"a": ' * 100_000 + b"1" + b"}" * 100_000])
    def test_bad_manifest_is_400(self, tmp_path: Path, url: str, manifest: bytes) -> None:
        """A manifest that is not JSON, not an object or not version 1 is refused; so is
        one nested deeper than the JSON parser goes (a malformed request, not a 500)."""
        sent = make_sent(tmp_path)
        with ExitStack() as stack:
            parts = sent.parts(stack)
            parts[0] = ("manifest", (None, manifest, "application/json"))
            resp = post(url, sent, files=parts)
        assert resp.status_code == 400 and "manifest" in resp.json()["error"]


class TestDocuments:
    def test_a_ubl_document_is_stored_by_its_key_and_a_repeat_gets_the_first_body(
            self, store: Path, url: str) -> None:
        """ubl-embedded: an application/xml POST keyed by the sha256 of its bytes is stored
        as STORE/documents/KEY.xml and answered 201 with a receipt; the same document
        again gets 200 and the first body byte for byte; a key that is not the document's
        sha256 gets 400 and stores nothing."""
        import hashlib

        import httpx
        key = hashlib.sha256(UBL).hexdigest()
        bid = "b" * 64

        def send(data: bytes, k: str) -> httpx.Response:
            return httpx.post(url, content=data, headers={
                "Content-Type": "application/xml", "Idempotency-Key": k,
                "X-Outboxd-Bundle-Id": bid})

        first, again = send(UBL, key), send(UBL, key)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.content == first.content
        assert first.json()["receipt_id"].startswith("rcpt-")
        assert first.json()["bundle_id"] == bid
        assert (store / "documents" / f"{key}.xml").read_bytes() == UBL
        wrong = send(UBL.replace(b"INV-2001", b"INV-2002"), "c" * 64)
        assert wrong.status_code == 400 and "sha256" in wrong.json()["error"]
        assert sorted(p.name for p in (store / "documents").glob("*.xml")) == [f"{key}.xml"]

    @pytest.mark.parametrize("key", [None, "../../etc", "A" * 64, "0" * 63])
    def test_a_document_whose_key_is_not_64_lowercase_hex_is_told_what_the_key_must_be(
            self, store: Path, url: str, key: str | None) -> None:
        """A document POST (ubl-embedded) without an Idempotency-Key of 64 lowercase hex
        digits gets 400 saying the key is the sha256 of the document's bytes (a document
        has no bundle id), and nothing is stored."""
        import httpx
        headers = {"Content-Type": "application/xml"}
        if key is not None:
            headers["Idempotency-Key"] = key
        resp = httpx.post(url, content=UBL, headers=headers)
        error = resp.json()["error"]
        assert resp.status_code == 400
        assert "sha256 of the document's bytes (64 lowercase hex digits)" in error, error
        assert "bundle id" not in error
        assert list((store / "documents").glob("*.xml")) == []

    def test_a_document_key_reused_with_other_bytes_gets_422_and_the_first_stays(
            self, store: Path, url: str) -> None:
        """The same idempotency semantics as for bundles: once a document is stored under
        its key, other bytes sent under that key get 422 (the key was used with another
        payload), not 400, and STORE/documents/KEY.xml and its answer stay the first's;
        the first document again still gets 200 with the first body."""
        import hashlib

        import httpx
        key = hashlib.sha256(UBL).hexdigest()

        def send(data: bytes) -> httpx.Response:
            return httpx.post(url, content=data, headers={
                "Content-Type": "application/xml", "Idempotency-Key": key})

        first = send(UBL)
        other = send(UBL.replace(b"INV-2001", b"INV-2009"))
        again = send(UBL)
        assert (first.status_code, other.status_code, again.status_code) == (201, 422, 200)
        assert "other content" in other.json()["error"]
        assert again.content == first.content
        assert (store / "documents" / f"{key}.xml").read_bytes() == UBL
        assert (store / "documents" / f"{key}.response.json").read_bytes() == first.content
        assert [line["status"] for line in log_lines(store)] == [201, 422, 200]


class TestHalfStoredState:
    """What a store may hold that is not a whole answer (a receiver of an older version or
    a second one on the same store killed mid-store, a copy made by hand): that key
    counts as not received, so the sender's retry is stored again and answered, instead
    of a 500 for every repeat for good."""

    @pytest.mark.parametrize("answer", [None, b'{"receipt_id": "rc', b"", "folder",
                                        b'{"bundle_id": "x"}'])
    def test_a_key_folder_without_a_whole_answer_is_stored_again_and_answered_201(
            self, tmp_path: Path, store: Path, url: str, answer: bytes | str | None) -> None:
        """STORE/KEY/ with no response.json, a cut one, an empty one, a folder in its
        place, or a JSON object without a receipt_id: the repeat of that key gets 201
        with a new receipt, STORE/KEY/ then holds the whole bundle and its answer, and
        the next repeat gets 200 with that answer."""
        sent = make_sent(tmp_path)
        half = store / sent.key
        (half / "attachments").mkdir(parents=True)
        (half / "batch-42.xml").write_bytes(UBL[:10])
        if answer == "folder":
            (half / "response.json").mkdir()
        elif isinstance(answer, bytes):
            (half / "response.json").write_bytes(answer)
        first = post(url, sent)
        assert first.status_code == 201, first.text
        assert first.json()["receipt_id"].startswith("rcpt-")
        assert (half / "response.json").read_bytes() == first.content
        assert (half / "batch-42.xml").read_bytes() == UBL
        assert (half / "manifest.json").read_bytes() == sent.manifest_bytes()
        assert (half / "attachments" / "INV_7_1" / "scan.bin").read_bytes() == \
            sent.files[2][2].read_bytes()
        again = post(url, sent)
        assert again.status_code == 200 and again.content == first.content
        assert sorted(p.name for p in store.iterdir()) == [sent.key, "requests.jsonl"]

    def test_a_key_another_receiver_stored_whole_meanwhile_is_answered_with_its_answer(
            self, tmp_path: Path, store: Path, url: str,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """Two receivers on one store, the same key at once: each found no answer and
        stored the bundle; the second found STORE/KEY/ there at its rename and took it
        for half stored, replacing the first's whole bundle and answer, so the first
        sender's receipt no longer matched the store. A whole answer found there at
        that moment is the key's answer: 200 with it, the store left as it is."""
        from daemon.receiver import receive
        sent = make_sent(tmp_path)
        theirs = b'{"receipt_id": "rcpt-theirs", "bundle_id": "%s"}' % sent.key.encode()
        real_rename = receive.rename_noreplace
        raced: list[Path] = []

        def other_receiver_first(src: Path, dst: Path) -> None:
            if dst == store / sent.key and not raced:
                raced.append(dst)
                shutil.copytree(src, dst)
                (dst / "response.json").write_bytes(theirs)
            real_rename(src, dst)

        monkeypatch.setattr(receive, "rename_noreplace", other_receiver_first)
        answer = post(url, sent)
        assert answer.status_code == 200 and answer.content == theirs
        assert (store / sent.key / "response.json").read_bytes() == theirs
        assert post(url, sent).content == theirs
        assert sorted(p.name for p in store.iterdir()) == [sent.key, "requests.jsonl"]

    def test_a_document_without_a_whole_answer_is_stored_again(
            self, store: Path, url: str) -> None:
        """STORE/documents/KEY.xml cut short and KEY.response.json half written: the
        repeat of that document is stored whole and answered 201, then 200."""
        import hashlib

        import httpx
        key = hashlib.sha256(UBL).hexdigest()
        folder = store / "documents"
        folder.mkdir(parents=True)
        (folder / f"{key}.xml").write_bytes(UBL[:20])
        (folder / f"{key}.response.json").write_bytes(b'{"receipt_')

        def send() -> httpx.Response:
            return httpx.post(url, content=UBL, headers={
                "Content-Type": "application/xml", "Idempotency-Key": key})

        first = send()
        assert first.status_code == 201, first.text
        assert (folder / f"{key}.xml").read_bytes() == UBL
        assert (folder / f"{key}.response.json").read_bytes() == first.content
        again = send()
        assert again.status_code == 200 and again.content == first.content
