"""Nothing in the repository points outside it: the rules a reader needs are in README.md
and docs/, in the project's own words.

Code, tests and docs once cited the product contract, a file no user or contributor can
open, by its name and section number or by calling a rule the product contract's; they
could as well have named a path on the machine they were written on. Each such pointer
leaves the reader with a rule they cannot look up: the doc that states it is to be named
instead (docs/folder-convention.md section N, protocol.md …), and where no doc states it,
the doc is missing it.

The words searched for are built from parts, so that this file does not trip itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Everything the repository ships or runs; not .git, a venv or the tools' caches.
TREES = ("daemon", "tests", "bench", "systemd", "docs", "examples", "scripts", ".ci")
FILES = ("README.md", "config.example.toml", "pyproject.toml")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# The official e-invoice artefacts, vendored unchanged, speak of procurement contracts;
# docs/benchmarks.md is a log whose old entries keep the words they were written in.
# Both may use the phrase; neither may cite the product contract's file or a path outside.
PHRASE_EXEMPT = (ROOT / "daemon" / "einvoice" / "data", ROOT / "docs" / "benchmarks.md")

NAME = "SP" + "EC"
POINTERS = {
    # Upper case only: in lower case it is also a word (a spec.pdf attachment, a variable).
    "cites the product contract by its name": re.compile(r"\b" + NAME + r"\b"),
    "names the product contract's file": re.compile(NAME + r"\.md", re.IGNORECASE),
    "points at a folder beside the repository": re.compile(
        r"(?<![\w.-])(?:\.\./)+" + "sha" + r"red\b"),
    "names a path on the machine it was written on": re.compile(
        r"(?<![\w.-])/" + "wo" + r"rk/"),
}
PHRASE = re.compile(r"\bthe " + "con" + r"tract\b", re.IGNORECASE)
PHRASE_SAYS = "calls a rule the product contract's instead of naming its doc"


def repository_files() -> Iterator[Path]:
    for name in FILES:
        yield ROOT / name
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*")):
            if path.is_file() and not SKIPPED_DIRS.intersection(path.parts):
                yield path


def checks_for(path: Path) -> dict[str, re.Pattern[str]]:
    exempt = any(path == p or p in path.parents for p in PHRASE_EXEMPT)
    return POINTERS if exempt else {**POINTERS, PHRASE_SAYS: PHRASE}


def pointers_in(path: Path) -> list[str]:
    """Each line of the file that points outside the repository, as `path:line: what`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []  # an image, a binary fixture: no prose in it
    checks = checks_for(path)
    return [f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:120]}"
            for number, line in enumerate(text.splitlines(), 1)
            for what, rx in checks.items() if rx.search(line)]


def test_no_file_points_at_the_product_contract_or_a_path_outside_the_repository() -> None:
    """No file the repository ships (code, tests, bench, systemd units, docs, README,
    examples, scripts) cites the product contract (by name, by its file, or calling a rule
    the product contract's), points at a folder beside the repository or names a path on the
    machine it was written on: each names the repository's doc that states the rule."""
    found = [hit for path in repository_files() for hit in pointers_in(path)]
    assert not found, (
        "pointers outside the repository: name the doc that states the rule "
        "(docs/…, README.md), adding the rule there if no doc says it\n"
        + "\n".join(found))


def test_the_search_finds_each_kind_of_pointer_and_leaves_plain_words_alone() -> None:
    """The patterns catch what they are for, so the test above cannot pass by matching
    nothing: a section citation by name, the file's name, a relative path to the folder
    beside the repository, an absolute path on the machine, a rule called the product contract's;
    and they leave alone a contract.pdf, contract_folder_name, a processing/work/ folder,
    a spec.pdf and a variable named spec."""
    bad = [f"# ({NAME} §8)", f"see {NAME.lower()}.md", "(" + "../../sha" + "red/x)",
           "/" + "work/main/daemon", "by the " + "con" + "tract's rule"]
    good = ["INV-7/contract.pdf", "contract_folder_name(x)", "processing/work/INV-1",
            "specification.pdf", "inspect(spec)"]
    checks = {**POINTERS, PHRASE_SAYS: PHRASE}
    hits = {line: [what for what, rx in checks.items() if rx.search(line)]
            for line in bad + good}
    assert all(hits[line] for line in bad), hits
    assert not any(hits[line] for line in good), hits
