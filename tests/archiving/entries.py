"""An archive entry's name and what a folder holds, for the tests of what the archive finds
at that name (test_copyfound.py, test_kept.py)."""

from __future__ import annotations

from pathlib import Path


def tree(root: Path) -> dict[str, bytes]:
    """Each file under `root` by its relative path, with its bytes; links left out (a link
    is never taken for a file of the bundle)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def entry_target(root: Path) -> Path:
    """The sent/ entry name of the INV-1 work folder under `root`, its day folder made."""
    target = root / "outbox" / "sent" / "2026-01-01" / "INV-1--0123456789ab"
    target.parent.mkdir(parents=True)
    return target
