"""The kind a file's name promises (docs/folder-convention.md, the types table)."""

from __future__ import annotations

import pytest

from daemon.validation.filetypes import kind_for_extension


class TestExtensions:
    @pytest.mark.parametrize("name,expected", [
        ("a.pdf", "pdf"), ("A.PDF", "pdf"), ("scan.tif", "tiff"), ("scan.TIFF", "tiff"),
        ("p.png", "png"), ("p.jpg", "jpeg"), ("p.JPEG", "jpeg"), ("p.jpe", "jpeg"),
        ("g.gif", "gif"), ("b.bmp", "bmp"), ("w.webp", "webp"), ("t.csv", "csv"),
        ("t.txt", "text"), ("x.xlsx", "xlsx"), ("o.ods", "ods"), ("d.docx", "docx"),
        ("archive.tar.PDF", "pdf"), ("dir.v2/readme", None), ("noext", None),
        ("data.xml", None), ("x.doc", None), ("trailingdot.", None),
        ("pdf", None), ("scans/TIFF", None),  # a name without a dot promises nothing
    ])
    def test_extension_table(self, name: str, expected: str | None) -> None:
        """The types table of docs/folder-convention.md, case-insensitive; unknown or missing
        gives None."""
        assert kind_for_extension(name) == expected
