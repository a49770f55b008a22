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
