"""docs/codes.md lists every finding code the daemon can give a bundle, and no other.

Generic: it reads the codes out of daemon/'s source (the first argument, or `code=`, of
each Finding, InputError and the like, and every kebab-case string literal that is no
known non-code), so a code added later fails here until the page explains it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "codes.md"
DAEMON = ROOT / "daemon"

# Calls whose first argument is a finding's code.
_MAKERS = {"Finding", "InputError", "HostileInput", "UnusablePdf", "_err", "_error", "finding"}
_KEBAB = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)+$")
# Kebab-case literals in daemon/ that are no finding code: channels, formats, encodings,
# headers, thread, file and section names.
NOT_CODES = {
    "e-invoice", "external-print", "original-print", "ubl-embedded", "utf-8", "utf-16",
    "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le", "latin-1",
    "content-disposition", "content-type", "form-data", "demo-owner", "failed-assert",
    "successful-report", "in-progress", "left-behind", "outboxd-reader", "outboxd-receiver",
    "outboxd-saxon-reports", "peppol-bis-invoice-3", "receiver-store", "sent-news",
    "quarantine-news", "status-page", "unreadable-reasons", "watcher-poll", "x-gzip",
}


def codes_in_source() -> tuple[set[str], set[str]]:
    """(the codes daemon/ gives findings, every string literal in daemon/)."""
    codes: set[str] = set()
    literals: set[str] = set()
    for path in DAEMON.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
                if _KEBAB.match(node.value) and node.value not in NOT_CODES:
                    codes.add(node.value)
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                args = [k.value for k in node.keywords if k.arg == "code"]
                if name in _MAKERS and node.args:
                    args.append(node.args[0])
                codes.update(a.value for a in args
                             if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return codes, literals


def documented_codes(text: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.M))


def test_every_code_the_daemon_gives_is_on_the_codes_page_and_no_other() -> None:
    """A code in daemon/ without a row on docs/codes.md, or a row for a code that no
    line of daemon/ gives (renamed, removed, a typo), fails."""
    produced, literals = codes_in_source()
    documented = documented_codes(DOC.read_text(encoding="utf-8"))
    missing = sorted(produced - documented)
    unknown = sorted(c for c in documented if c not in literals)
    assert not missing, f"docs/codes.md does not explain: {', '.join(missing)}"
    assert not unknown, f"docs/codes.md lists codes daemon/ never gives: {', '.join(unknown)}"
