"""What every section of the configuration shares (config_sections.py's models derive from
`Section`): unknown keys refused, each key's value checked even at its default, a word
taken in any case, a value that is no UTF-8 text refused, and no input shown in a
ValidationError's own text."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


def _words(annotation: Any) -> set[str]:
    """The words a key of this type may be (a Literal's, also inside a union)."""
    if get_origin(annotation) is Literal:
        return {a for a in get_args(annotation) if isinstance(a, str)}
    return set().union(*(_words(a) for a in get_args(annotation)))


def _not_utf8(value: Any) -> bool:
    """Whether a text, or a text in a list, holds a lone surrogate (see Section._utf8)."""
    if isinstance(value, list):
        return any(_not_utf8(item) for item in value)
    return isinstance(value, str) and any("\ud800" <= ch <= "\udfff" for ch in value)


class Section(BaseModel):
    # hide_input_in_errors: a ValidationError printed as it is (a section built
    # directly) must not show a token or a url's password; load_settings words
    # its own lines from .errors(), which keeps the input for _show to mask.
    model_config = ConfigDict(extra="forbid", validate_default=True, hide_input_in_errors=True)

    @field_validator("*", mode="before")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        """A value from an environment variable set in another encoding than UTF-8 (a
        Latin-1 "ä") reaches Python with each such byte as a lone surrogate ("\\udce4"),
        which no journal row, JSON log line or HTTP header can hold: a url failed with
        the codec's "surrogates not allowed", a suffix, page name or pattern passed. Said
        here, naming the key; the file cannot hold one (TOML is UTF-8)."""
        if _not_utf8(value):
            raise ValueError("holds bytes that are not UTF-8 text (the variable was set in "
                             "another encoding) — set it again as UTF-8")
        return value

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        """A key that takes one of a few words takes it in any case: admins used to
        Python's and journald's spellings write level = "DEBUG", format = "JSON". Only a
        word that is then allowed is lowered, so an error still shows what was written."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is not None and isinstance(value, str) \
                    and value.lower() in _words(field.annotation):
                out[name] = value.lower()
        return out
