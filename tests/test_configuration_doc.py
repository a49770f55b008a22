"""docs/configuration.md's "Every key" tables name every key of daemon.config.Settings,
and the default each shows is the code's default.

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
