"""docs/configuration.md's "Every key" tables name every key of
daemon.configuration.config.Settings, and the default each shows is the code's default.

Generic like test_config_example.py: it walks the pydantic models, so a key added
or a default changed later (by any branch) fails here until the page says so.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from helpers import config_sections
from pydantic_core import PydanticUndefined

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
_HEADING = re.compile(r"^### `\[([a-z_]+)\]`\s*$")
_ROW = re.compile(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|")
_PATTERN_BELOW = "the pattern below"


def documented_defaults(text: str) -> dict[str, dict[str, str]]:
    """The default cell of each key's row, per `### [section]` table of "Every key"."""
    body = text[text.index("## Every key"):]
    body = body[:body.index("\n## ", 1)]
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in body.splitlines():
        if m := _HEADING.match(line):
            section = m.group(1)
            out[section] = {}
        elif section and (m := _ROW.match(line)):
            out[section][m.group(1)] = m.group(2).strip()
    return out


def _plain(value: Any) -> Any:
    """A default as TOML would give it: paths as text."""
    return str(value) if isinstance(value, Path) else value


def test_every_key_of_settings_has_a_row_and_no_row_names_an_unknown_key() -> None:
    """Each section model's every field has a row in its section's table, and the tables
    name no section or key the code does not know (a typo, a removed key)."""
    documented = documented_defaults(DOC.read_text(encoding="utf-8"))
    sections = config_sections()
    missing = [f"[{s}] {k}" for s, model in sections.items() for k in model.model_fields
               if k not in documented.get(s, {})]
    unknown = [f"[{s}] {k}" for s, keys in documented.items() for k in keys
               if s not in sections or k not in sections[s].model_fields]
    assert not missing, f"docs/configuration.md has no row for: {', '.join(missing)}"
    assert not unknown, f"docs/configuration.md names unknown keys: {', '.join(unknown)}"


def test_every_documented_default_is_the_codes_default() -> None:
    """A default shown as a TOML value (`5`, `"settle"`, `["*.xml", "*.pdf"]`) equals the
    field's default; one shown in words ("required", "not set …") belongs to a key whose
    default is unset; the PDF id pattern's, shown in a block below its table, is the
    code's pattern character for character."""
    text = DOC.read_text(encoding="utf-8")
    documented = documented_defaults(text)
    wrong = []
    for section, model in config_sections().items():
        for key, field in model.model_fields.items():
            cell = documented.get(section, {}).get(key)
            if cell is None:
                continue  # the test above names it
            if cell == _PATTERN_BELOW:
                block = re.search(rf"^{key} = '(.*)'$", text, re.M)
                shown: Any = block.group(1) if block else None
            elif literal := re.fullmatch(r"`(.+)`", cell):
                shown = tomllib.loads(f"v = {literal.group(1)}")["v"]
            else:
                shown = None
            default = field.default
            expected = None if default is PydanticUndefined else _plain(default)
            if shown != expected:
                wrong.append(f"[{section}] {key}: the page shows {cell!r}, the code's "
                             f"default is {expected!r}")
    assert not wrong, "docs/configuration.md: " + "; ".join(wrong)


def _bounds(field: Any) -> tuple[Any, Any, Any]:
    """(ge, gt, le) of a field's annotated_types metadata, None where absent."""
    ge = gt = le = None
    for m in field.metadata:
        ge = getattr(m, "ge", ge)
        gt = getattr(m, "gt", gt)
        le = getattr(m, "le", le)
    return ge, gt, le


def _words(number: Any) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def test_every_documented_numeric_bound_is_the_codes_bound() -> None:
    """A key the code bounds (`ge`, `gt`, `le`) shows that bound in its "allowed" cell:
    "0 or more", "more than 0", "1 to 64" — a bound changed in the code fails here."""
    text = DOC.read_text(encoding="utf-8")
    body = text[text.index("## Every key"):]
    allowed: dict[tuple[str, str], str] = {}
    section = None
    for line in body.splitlines():
        if m := _HEADING.match(line):
            section = m.group(1)
        elif section and (m := re.match(r"^\| `([a-z_]+)` \|[^|]+\|[^|]+\| ([^|]+) \|", line)):
            allowed[(section, m.group(1))] = m.group(2).strip()
    wrong = []
    for section_name, model in config_sections().items():
        for key, field in model.model_fields.items():
            ge, gt, le = _bounds(field)
            if ge is None and gt is None:
                continue
            if le is not None:
                expected = f"{_words(ge)} to {_words(le)}"
            elif gt is not None:
                expected = f"more than {_words(gt)}"
            else:
                expected = f"{_words(ge)} or more"
            if allowed.get((section_name, key)) != expected:
                wrong.append(f"[{section_name}] {key}: the page allows "
                             f"{allowed.get((section_name, key))!r}, the code {expected!r}")
    assert not wrong, "docs/configuration.md's bounds differ: " + "; ".join(wrong)


_RELOAD_ROW = re.compile(r"^\| `\[([a-z_]+)\] ([a-z_]+)` \| ")


def test_the_reloading_table_says_once_what_a_reload_does_with_each_key() -> None:
    """An admin looks up any key in "Reloading", "Key by key": each key of the code has
    exactly one row there (a new key cannot go undocumented for SIGHUP), and no row
    names a key the code does not know."""
    text = DOC.read_text(encoding="utf-8")
    body = text[text.index("### Key by key"):]
    body = body[:body.index("\n## ", 1)]
    rows = [(m.group(1), m.group(2)) for line in body.splitlines()
            if (m := _RELOAD_ROW.match(line))]
    keys = [(s, k) for s, model in config_sections().items() for k in model.model_fields]
    assert sorted(rows) == sorted(keys)
