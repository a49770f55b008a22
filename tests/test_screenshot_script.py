"""scripts/screenshot-status-page, which makes the README's picture of the status page,
still runs against the code as it is: it once imported a name the package split had
moved, and the picture stayed days behind the page without anyone seeing the script
fail (it is run by hand, and needs Chromium, which CI does not have)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "screenshot-status-page"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("screenshot_status_page", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_screenshot_script_renders_every_section_the_readme_picture_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The script renders its sample page (Chromium stood in for: the page it is handed
    is kept) with a row in each section and the header a running daemon writes."""
    module = _load()
    pages: list[str] = []

    def chromium(argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        pages.append(Path(argv[-1].removeprefix("file://")).read_text(encoding="utf-8"))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(module.subprocess, "run", chromium)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path / "shot.png")])
    assert module.main() == 0
    [html] = pages
    for section in ("Waiting for attachments", "Held", "Not moving", "Being sent",
                    "Retrying", "Quarantined today", "Sent today",
                    "Release files that do nothing"):
        assert re.search(rf"<h2[^>]*>{re.escape(section)}", html), section
    for row in ("INV-1004.xml", "INV-1003/scan.tif", "INV-1006.xml", "INV-1007.xml",
                "INV-1005.xml", "INV-0999--5d1f0c9a2e77", "rcpt-8f3a21",
                "INV-0042.send-anyway"):
        assert row in html, row
    assert "by outboxd on fin01 (daemon fin01-1a2b3c)" in html
    assert "writes it again by" in html
