"""docs/architecture.md's module table names every module of daemon/ and none that is gone.

Generic like test_config_example.py: it lists the package, so a module added, split or
removed later (by any branch) fails here until the table says so.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
DAEMON = ROOT / "daemon"
_ROW = re.compile(r"^\| `([^`]+)`[^|]*\| (.*) \|$")


def module_rows(text: str) -> list[tuple[str, str]]:
    """(first cell, rest) of each row of the "| module | owns |" table."""
    body = text[text.index("| module | owns |"):]
    rows = []
    for line in body.splitlines()[2:]:
        if not line.startswith("|"):
            break
        if m := _ROW.match(line):
            rows.append((m.group(1), m.group(2)))
    return rows


def test_every_module_of_daemon_has_its_row_and_no_row_names_a_module_that_is_gone() -> None:
    """A module directly in daemon/ has a row of its own (`name.py`); one in a subpackage
    has one too (`watching/scan.py`), or is named, `file.py`, in its package's row
    (`journal/`, `actions/` …). A row or a package row's `file.py` that names no module
    (renamed, split, removed) fails too."""
    rows = module_rows(DOC.read_text(encoding="utf-8"))
    own = {first for first, _ in rows if first.endswith(".py")}
    in_package: dict[str, set[str]] = {}
    for first, rest in rows:
        if first.endswith("/"):
            in_package.setdefault(first, set()).update(re.findall(r"`([a-z_]+\.py)`", rest))
    missing, gone = [], []
    for path in sorted(DAEMON.rglob("*.py")):
        rel = path.relative_to(DAEMON)
        if rel.as_posix() in own:
            continue  # its own row: `name.py`, or `package/name.py` in a package's group
        if len(rel.parts) == 1 or rel.name not in in_package.get(f"{rel.parts[0]}/", set()):
            missing.append(str(rel))
    for name in own:
        if not (DAEMON / name).is_file():
            gone.append(name)
    for package, names in in_package.items():
        gone += [f"{package}{n}" for n in names
                 if not (DAEMON / package / n).is_file() and not (DAEMON / n).is_file()]
    assert not missing, f"docs/architecture.md's module table lacks: {', '.join(missing)}"
    assert not gone, f"docs/architecture.md's module table names what is gone: {', '.join(gone)}"
