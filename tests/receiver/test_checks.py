"""What the reference receiver checks in a manifest before it stores a byte
(daemon/receiver/checks.py): sent file names that are not plain basenames are refused;
driven over real HTTP by httpx."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import make_sent, post, stored_bundles


class TestRefusing:
    @pytest.mark.parametrize("name", ["../evil.pdf", "..", "a\\b.pdf", ""])
    def test_hostile_filenames_are_400(self, tmp_path: Path, store: Path, url: str,
                                       name: str) -> None:
        """Sent names that are not plain basenames never reach the file system."""
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
