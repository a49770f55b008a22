"""How an error line about the configuration names a key and shows its value: the
value masked where it might be a secret and cut where long, and the environment
variable named where one set the key (config_load.py's lines, config_across.py's)."""

from __future__ import annotations

from typing import Any

from daemon.configuration.config_values import MASK, looks_secret, mask_secrets
from daemon.errors import SHOWN_CHARS, shown, unquoted


def value_shown(key: str, value: Any) -> str:
    """A value for an error line; anything that might be a secret (a typo of `token`
    included) is masked, since these lines reach logs and terminals, and a long value
    is cut (errors.shown)."""
    if looks_secret(key):
        return "''" if value == "" else f"'{MASK}'"  # an empty value gives nothing away
    if isinstance(value, list | dict):
        # A url written as a list or a table (a wrong type) still shows its parts; as many
        # as fit in about one cut value, then how many there are.
        items = list(value.values() if isinstance(value, dict) else value)
        parts: list[str] = []
        for item in items:
            if sum(len(p) + 2 for p in parts) > SHOWN_CHARS:
                parts.append(f"… ({len(items):,} items)")
                break
            parts.append(value_shown(key, item))
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, str):
        # A url (under any key, a typo of `url` too, mistyped before its "//") may carry
        # a password or a token in its query, any value an Authorization header; an
        # over-masked line is better than a leaked one. Masked before the cut, which may
        # cut off the "@".
        return shown(mask_secrets(value))
    return unquoted(repr(value))


def env_origin(section: str, key: str, env: dict[str, dict[str, Any]] | None) -> str:
    """" (from OUTBOXD_SECTION__KEY)" where the environment set the key, else "": such a
    value is not in the file the error is headed with, and people would search the file
    for a key that is not there."""
    if key not in (env or {}).get(section, {}):
        return ""
    return f" (from {unquoted(f'OUTBOXD_{section.upper()}__{key.upper()}')})"
