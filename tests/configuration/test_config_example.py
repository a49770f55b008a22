"""config.example.toml documents every key of daemon.configuration.config.Settings, with its
default.

Generic on purpose: it walks the pydantic models, so a section or key added
later (by any branch) fails here until the example documents it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from helpers import config_sections

from daemon.configuration.config import Settings

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "config.example.toml"
_SECTION = re.compile(r"^\s*#?\s*\[([A-Za-z_]+)\]\s*$")
_KEY = re.compile(r"^\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


def documented_keys(text: str) -> dict[str, set[str]]:
    """Keys per section, set (`key = …`) or shown commented out (`# key = …`)."""
    keys: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section = m.group(1)
            keys.setdefault(section, set())
        elif section and (m := _KEY.match(line)):
            keys[section].add(m.group(1))
    return keys


def test_example_documents_every_section_and_key_of_settings() -> None:
    """Every field of every section model appears in config.example.toml, set or commented."""
    documented = documented_keys(EXAMPLE.read_text(encoding="utf-8"))
    missing = [f"[{section}] {key}" for section, model in config_sections().items()
               for key in model.model_fields if key not in documented.get(section, set())]
    assert not missing, f"config.example.toml does not document: {', '.join(missing)}"


def test_example_names_no_key_that_settings_does_not_know() -> None:
    """A key in the example that the schema lacks (a typo, a removed key) is caught too."""
    documented = documented_keys(EXAMPLE.read_text(encoding="utf-8"))
    sections = config_sections()
    unknown = [f"[{s}] {k}" for s, keys in documented.items() for k in keys
               if s not in sections or k not in sections[s].model_fields]
    assert not unknown, f"config.example.toml names unknown keys: {', '.join(unknown)}"


# Set in the example for the trial on one machine (README), not to their defaults.
TRIAL_VALUES = {("outbox", "path"), ("paths", "state_dir"), ("delivery", "url")}


def test_example_loads_and_every_value_it_sets_is_the_default() -> None:
    """The example is valid TOML that Settings accepts, and a value it sets (other than
    the trial's outbox, state_dir and url) is the key's default — so it documents them."""
    raw: dict[str, Any] = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    settings = Settings(**raw)
    defaults = {s: m.model_fields for s, m in config_sections().items()}
    wrong = []
    for section, values in raw.items():
        for key, value in values.items():
            if (section, key) in TRIAL_VALUES:
                continue
            default = defaults[section][key].default
            shown = getattr(getattr(settings, section), key)
            if shown != default:
                wrong.append(f"[{section}] {key} = {value!r} (default {default!r})")
    assert not wrong, f"config.example.toml sets non-defaults: {', '.join(wrong)}"


def _bound_words(field: Any) -> str | None:
    """A field's numeric bounds as the example's comments write them: ">= 0", "> 0",
    "0 to 36500"; None for a field without."""
    ge = gt = le = None
    for m in field.metadata:
        ge, gt, le = getattr(m, "ge", ge), getattr(m, "gt", gt), getattr(m, "le", le)

    def n(x: Any) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)
    if le is not None:
        return f"{n(ge if ge is not None else gt)} to {n(le)}"
    if gt is not None:
        return f"> {n(gt)}"
    return None if ge is None else f">= {n(ge)}"


def test_the_bound_beside_each_bounded_key_is_the_codes_bound() -> None:
    """An admin reads a key's bounds from the comment beside it (`rescan_seconds = 60
    # > 0`): each key the code bounds carries its bound there, and it is the code's
    (a bound changed in the code, or a comment never written, fails here)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    wrong = []
    for section, model in config_sections().items():
        for key, field in model.model_fields.items():
            bound = _bound_words(field)
            if bound is None:
                continue
            line = re.search(rf"^{key} = [^#\n]*#\s*(.*)$", text, re.M)
            comment = line.group(1) if line else ""
            if not re.match(rf"{re.escape(bound)}(?:;|$)", comment.strip()):
                wrong.append(f"[{section}] {key}: the example says {comment.strip()!r}, the "
                             f"code {bound!r}")
    assert not wrong, "config.example.toml's bounds differ: " + "; ".join(wrong)


def test_a_key_shown_commented_out_shows_its_default_where_it_has_one() -> None:
    """A key the example leaves commented out (`# pdf_id_pattern = '…'`) is shown with
    its default, where it has one (those without, such as `token`, show an example), and
    the header's longest duration is the code's."""
    from daemon.configuration.config_values import MAX_SECONDS
    text = EXAMPLE.read_text(encoding="utf-8")
    wrong = []
    section = None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section = m.group(1)
        elif section and (m := re.match(r"^#\s*([a-z_]+)\s*=\s*(.*)$", line)):
            field = config_sections()[section].model_fields[m.group(1)]
            if field.default is not None and \
                    tomllib.loads(f"v = {m.group(2)}")["v"] != field.default:
                wrong.append(f"[{section}] {m.group(1)}")
    assert not wrong, f"config.example.toml shows other than the default: {wrong}"
    assert f"at most {MAX_SECONDS}" in " ".join(text.split())
