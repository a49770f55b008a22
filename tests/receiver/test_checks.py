"""What the reference receiver checks in a manifest before it stores a byte
(daemon/receiver/checks.py): sent file names that are not plain basenames are refused;
driven over real HTTP by httpx."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sent, make_sent, post, stored_bundles


class TestRefusing:
    @pytest.mark.parametrize("name", ["../evil.pdf", "..", "a\\b.pdf", "", "a\x7fb.pdf",
                                      "ä" * 126 + ".pdf"])
    def test_hostile_filenames_are_400(self, tmp_path: Path, store: Path, url: str,
                                       name: str) -> None:
        """Sent names that are not plain basenames (a DEL is a control character too;
        over 255 bytes in UTF-8, here 256, is no Linux file name) never reach the file
        system."""
        sent = make_sent(tmp_path)
        sent.manifest["invoices"][0]["attachments"][0]["name"] = name
        part, _old, path, ctype = sent.files[1]
        sent.files[1] = (part, name, path, ctype)
        resp = post(url, sent)
        assert resp.status_code == 400 and "filename" in resp.json()["error"]
        assert stored_bundles(store) == [] and not (tmp_path / "evil.pdf").exists()


def test_a_manifest_over_eight_mebibytes_is_stored_not_refused(tmp_path: Path, store: Path,
                                                                url: str) -> None:
    """Some 1,900 attachments with two 2,000-character notes each make a manifest of over
    8 MiB, the reference receiver's old limit (answered 413: outboxd quarantined such a
    bundle). The size is what is checked, so one long note stands in for the many
    entries here: a 9 MiB manifest is stored and answered 201."""
    sent = make_sent(tmp_path, note="n" * (9 << 20))
    resp = post(url, sent)
    assert resp.status_code == 201, resp.text
    assert stored_bundles(store) == [sent.key]


def _refused(url: str, sent: Sent, store: Path) -> str:
    resp = post(url, sent)
    assert resp.status_code == 400 and stored_bundles(store) == []
    return str(resp.json()["error"])


@pytest.mark.parametrize("name", ["manifest.json", "response.json", "attachments"])
def test_an_invoice_file_named_as_the_store_layout_is_400(
        tmp_path: Path, store: Path, url: str, name: str) -> None:
    """An invoice file named manifest.json, response.json or attachments would be stored
    over (or under) the receiver's own files in STORE/KEY/: refused."""
    sent = make_sent(tmp_path)
    sent.manifest["invoice_file"]["name"] = name
    sent.files[0] = ("invoice", name, *sent.files[0][2:])
    assert "clashes with the store layout" in _refused(url, sent, store)


def test_two_attachments_stored_under_one_name_are_400(tmp_path: Path, store: Path,
                                                       url: str) -> None:
    """Two files of the manifest that would land at one path of STORE/KEY/ (one file
    over the other): refused before anything is stored."""
    sent = make_sent(tmp_path)
    [first], [second] = (i["attachments"] for i in sent.manifest["invoices"])
    sent.manifest["invoices"][1]["id"] = sent.manifest["invoices"][0]["id"]
    second["name"] = first["name"]
    assert "same name" in _refused(url, sent, store)


def test_a_size_that_is_a_boolean_is_400(tmp_path: Path, store: Path, url: str) -> None:
    """JSON's true is no size, though Python's bool is an int."""
    sent = make_sent(tmp_path)
    sent.manifest["invoices"][0]["attachments"][0]["size"] = True
    assert "needs int field 'size'" in _refused(url, sent, store)


@pytest.mark.parametrize(("change", "said"), [
    (lambda m: m["invoices"][0]["attachments"].__setitem__(0, "scan.pdf"),
     "attachment of 'INV-2001' is not an object"),
    (lambda m: m["invoices"][0]["attachments"][0].__setitem__("part", "attachment-2"),
     "manifest names part 'attachment-2' where 'attachment-1' belongs"),
    (lambda m: m.pop("invoices"), "lacks or mistypes a field: KeyError('invoices')"),
], ids=["entry-no-object", "parts-out-of-order", "no-invoices"])
def test_a_manifest_entry_of_the_wrong_shape_or_order_is_400_saying_which(
        tmp_path: Path, store: Path, url: str, change: Any, said: str) -> None:
    """A manifest whose attachment entry is no object, whose parts are not numbered in
    the order they come, or that lacks its invoices, is a 400 naming what is wrong;
    nothing is stored."""
    sent = make_sent(tmp_path)
    change(sent.manifest)
    assert said in _refused(url, sent, store)


def test_a_manifest_part_that_is_not_json_by_its_type_is_400(
        tmp_path: Path, store: Path, url: str) -> None:
    """The manifest part must say Content-Type application/json: one sent as text/plain
    is a 400 quoting the type it had; nothing is stored."""
    sent = make_sent(tmp_path)
    with ExitStack() as stack:
        files = sent.parts(stack)
        files[0] = ("manifest", (None, sent.manifest_bytes(), "text/plain"))
        resp = post(url, sent, files=files)
    assert resp.status_code == 400 and stored_bundles(store) == []
    assert "Content-Type must be application/json, got 'text/plain'" in resp.json()["error"]


def test_a_file_part_named_otherwise_than_its_manifest_entry_is_400(
        tmp_path: Path, store: Path, url: str) -> None:
    """A part whose filename is not the name its manifest entry gives (the file would be
    stored under a name the manifest does not say) is a 400 naming both; nothing is
    stored."""
    sent = make_sent(tmp_path)
    part, name, path, ctype = sent.files[1]
    sent.files[1] = (part, "other.pdf", path, ctype)
    error = _refused(url, sent, store)
    assert f"part {part!r}: filename 'other.pdf' is not the manifest's name {name!r}" in error
