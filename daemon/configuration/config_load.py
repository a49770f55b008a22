"""Reading the configuration: which file, loading it through the schema in
config.py (file → environment overrides → validation → the checks that need
the disk), and the error lines people read. The folders the daemon writes to are
config_folders.py's; the checks across keys config_across.py's; how a line names a
key and shows its value config_keys.py's.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daemon.configuration.config import (
    DEFAULT_CONFIG_PATH,
    SECTIONS,
    LogConfig,
    Settings,
    environment_overrides,
)
from daemon.configuration.config_across import across_problems
from daemon.configuration.config_folders import outbox_missing
from daemon.configuration.config_keys import env_origin, value_shown
from daemon.configuration.config_sections import URL_EXAMPLE
from daemon.errors import (
    ConfigError,
    OutboxNotReachable,
    double_quoted,
    not_utf8,
    unquoted,
)
from daemon.fs.fsread import NotAFile, read_admin_file


def config_path(cli_value: str | None) -> Path:
    if cli_value:
        return Path(cli_value)
    if os.environ.get("OUTBOXD_CONFIG"):
        return Path(os.environ["OUTBOXD_CONFIG"])
    return DEFAULT_CONFIG_PATH


# A configuration file is a few KB; the bound keeps /dev/zero-like mistakes finite.
CONFIG_LIMIT = 1 << 20


def _describe(err: ErrorDetails, env: dict[str, dict[str, Any]] | None = None) -> str:
    loc = [str(p) for p in err["loc"]]
    section, key = (loc[0], ".".join(loc[1:])) if loc else ("", "")
    # A mistyped key may be as long as a value: cut as one.
    where = f"[{unquoted(section)}] {unquoted(key)}".strip() if key else (
        f"[{unquoted(section)}]" if section else "config")
    msg = err["msg"].removeprefix("Value error, ")
    origin = env_origin(section, loc[1], env) if len(loc) > 1 else ""
    if origin and origin.removeprefix(" (from ").removesuffix(")") not in msg:
        where = f"{where}{origin}"
    if err["type"] == "extra_forbidden" and not key and not isinstance(err.get("input"), dict):
        return _outside_sections(section, err.get("input"))
    if err["type"] == "extra_forbidden":
        known = _known_keys(section) if key else list(SECTIONS)
        what = "key" if key else "section"
        value = err.get("input")
        part = f" = {value_shown(key, value)}" if key and not isinstance(value, dict) else ""
        return f"{where}{part}: unknown {what}; allowed: {', '.join(known)}"
    if err["type"] == "missing":
        return REQUIRED_SECTION.get(section, f"{where}: required but not set — add it "
                                    "(config.example.toml shows each key)") if not key \
            else f"{where}: required but not set — add it (config.example.toml shows it)"
    if not key and err["type"] in ("model_type", "dict_type"):
        return (f"{where}: must be a section — write [{unquoted(section)}] on a line of its "
                "own and its keys below it, one per line (see config.example.toml)")
    msg = PLAIN_MESSAGES.get(err["type"], msg.replace("Input should be", "must be"))
    if err["type"] == "string_too_short":  # pydantic's "String should have at least …"
        least = err.get("ctx", {}).get("min_length", 1)
        msg = "must not be empty" if least == 1 else f"must be at least {least} characters"
    value = err.get("input")
    if key and value is not None and not isinstance(value, dict):
        return f"{where} = {value_shown(key, value)}: {msg}"
    return f"{where}: {msg}"


# The two sections without which nothing can start, said with the key they need: pydantic
# names only the section ("[delivery]: required"), and an admin looks for a key to set.
REQUIRED_SECTION = {
    "outbox": '[outbox] path: required but not set — add a section [outbox] with path = '
              '"/srv/invoices/outbox", the folder people drop invoices into',
    "delivery": f"[delivery] url: required but not set — add a section [delivery] with "
                f"{URL_EXAMPLE}",
}

# pydantic's wording for a wrong type names Python's classes ("a valid path for <class
# 'pathlib.Path'>") and its parser ("unable to parse string"): an admin needs what to write.
PLAIN_MESSAGES = {
    "path_type": 'must be a path in quotes, e.g. "/srv/invoices/outbox"',
    "list_type": 'must be a list in square brackets, e.g. ["*.xml", "*.pdf"] (from the '
                 "environment: as JSON)",
    "float_parsing": "must be a number, e.g. 5 or 0.5",
    "float_type": "must be a number, e.g. 5 or 0.5",
    "int_parsing": "must be a whole number, e.g. 4",
    "int_type": "must be a whole number, e.g. 4",
    "int_from_float": "must be a whole number, e.g. 4",
    # Past 4,300 digits (from the environment: the file's are tomllib's to refuse).
    "int_parsing_size": "is a number of thousands of digits, far past what any setting "
                        "takes — give a whole number such as 4",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text in quotes",
}


# pydantic reports each bad item of a list, and each unknown key, on its own: a list of
# 10,000 bad items from one variable would be 10,000 lines. A few show what is wrong;
# the rest are counted.
LINES_PER_KEY = 5
MAX_LINES = 50


def _problem_lines(errors: list[ErrorDetails], env: dict[str, dict[str, Any]]) -> list[str]:
    """One line per problem, at most LINES_PER_KEY for one key and MAX_LINES in all, each
    followed by one that counts the rest."""
    lines: list[str] = []
    per_key: dict[tuple[str, ...], int] = {}
    for err in _one_per_union(errors):
        key = tuple(str(p) for p in err["loc"][:2])
        per_key[key] = per_key.get(key, 0) + 1
        if per_key[key] <= LINES_PER_KEY:
            lines.append(_describe(err, env))
    for key, count in per_key.items():
        if count > LINES_PER_KEY:
            where = f"[{unquoted(key[0])}] {unquoted(key[1])}" if len(key) > 1 else \
                f"[{unquoted(key[0])}]"
            lines.append(f"{where}: {count - LINES_PER_KEY:,} more problems like the ones "
                         "above")
    if len(lines) > MAX_LINES:
        lines[MAX_LINES - 1:] = [f"{len(lines) - MAX_LINES + 1:,} more problems — fix the "
                                 "ones above and check again"]
    return lines


def _one_per_union(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """A key of several types (`verify`: true/false or a path) fails once per type, each
    error's location ending in the type's tag ("verify.bool", "verify.str"): one error
    for the key, whose message lists what each type would take."""
    out: list[ErrorDetails] = []
    merged: dict[tuple[Any, ...], ErrorDetails] = {}
    for err in errors:
        loc = err["loc"]
        if len(loc) < 3 or not isinstance(loc[2], str):
            out.append(err)
            continue
        plain = PLAIN_MESSAGES.get(err["type"], err["msg"].replace("Input should be",
                                                                   "must be"))
        if loc[:2] in merged:
            first = merged[loc[:2]]
            first["msg"] = f"{first['msg']}, or {plain.removeprefix('must be ')}"
            continue
        merged[loc[:2]] = ErrorDetails(type="union", loc=loc[:2], msg=plain,
                                       input=err.get("input"))
        out.append(merged[loc[:2]])
    return out


def _outside_sections(name: str, value: Any) -> str:
    """The line for a key written above the first [section] line (`foo = 1`): called
    "[foo]: unknown section", it sent the admin looking for a section header that is
    not there. Where the key is one of a section's, that section is named."""
    homes = [f"[{section}]" for section in SECTIONS if name in _known_keys(section)]
    move = (f"move it below {' or '.join(homes)}" if homes else
            "move it below the section it belongs to, or remove it")
    return (f"{unquoted(name)} = {value_shown(name, value)}: a key outside any section (above "
            "the first [section] line), where no key may be; the sections: "
            f"{', '.join(f'[{section}]' for section in SECTIONS)} — {move}")


def _known_keys(section: str) -> list[str]:
    field = Settings.model_fields.get(section)
    model = field.annotation if field else None
    return list(getattr(model, "model_fields", {}))


# Where tomllib's message says it stopped ("… (at line 2, column 8)").
_AT = re.compile(r"^Invalid value \(at line (\d+), column (\d+)\)$")
# A word that begins as a TOML value does ("info" as inf, "nano" as nan, "trueish" as
# true): tomllib reads that value, then stops after it, at the word's rest.
_AFTER = re.compile(r"^Expected newline or end of document after a statement "
                    r"\(at line (\d+), column (\d+)\)$")
_WORD_AFTER_VALUE = re.compile(r"(?:[+-]?(?:inf|nan)|true|false)[A-Za-z_]")


def _unquoted_hint(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """The fix for the commonest mistake, a string written without quotes (`path =
    /srv/outbox`, `unattached = warn`): tomllib says only "Invalid value"; "" where the
    value at that place does not start like a word or a path."""
    lines = text.split("\n")  # as tomllib counts them
    at = _AT.match(str(exc)) or _AFTER.match(str(exc))
    if not at or int(at[1]) > len(lines):
        return ""
    line = lines[int(at[1]) - 1]
    column = int(at[2])
    if at.re is _AFTER:
        # `level = info`: tomllib took "inf" for a number and stopped at "o". The value
        # starts after the "=" (a key's whole value, as below, or no hint).
        key_part, eq, rest = line.partition("=")
        column = len(key_part) + len(eq) + len(rest) - len(rest.lstrip()) + 1
        if not (eq and _WORD_AFTER_VALUE.match(rest.lstrip())):
            return ""
    before, value = line[:column - 1].rstrip(), line[column - 1:]
    key = before.removesuffix("=").strip()
    # Only a key's whole value: inside an array the rest of the line is no string's.
    if not (before.endswith("=") and key and value) or value[0].isdigit() \
            or value[0] in "\"'[{+-#" or value[0].isspace():
        return ""
    value = value.split(" #")[0].strip()
    # Backslashes (a Windows path) would be escapes in double quotes: single ones keep them.
    quoted = f"'{value}'" if "\\" in value or '"' in value else f'"{value}"'
    kind = "double" if quoted.startswith('"') else "single"
    return f" — strings need {kind} quotes: {unquoted(f'{key} = {quoted}')}"


def _read_toml(path: Path) -> dict[str, Any]:
    """The configuration file's tables; ConfigError saying what keeps it from being read.
    (pydantic-settings skips a missing TOML file silently; a daemon must not.)"""
    where = unquoted(str(path))
    text = ""
    try:
        # A byte-order mark, which Notepad writes at the start of a file saved as UTF-8,
        # is no TOML; tomllib stopped at it ("Invalid statement (at line 1, column 1)"),
        # pointing at nothing the admin can see. Read past, as attachments.toml's is.
        text = read_admin_file(path, CONFIG_LIMIT).decode("utf-8").removeprefix("\ufeff")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {where} does not exist — pass -c FILE, set "
                          "OUTBOXD_CONFIG, or create it (see config.example.toml)") from None
    except NotAFile as exc:
        raise ConfigError(f"configuration file {where} {exc} — pass -c FILE with the file "
                          "itself (see config.example.toml)") from None
    except PermissionError:
        raise ConfigError(f"cannot read {where}: permission denied — outboxd runs as its own "
                          "user: give the file to the group outboxd runs as (chgrp outboxd, "
                          "chmod 0640; keep a token in token_file, not here: the people in "
                          "that group may read the file), or run as a user that may read "
                          "it") from None
    except OSError as exc:
        # strerror, not the OSError: its text repeats the path whole.
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc} — pass -c FILE with "
                          "the path of the configuration file (see config.example.toml)"
                          ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} {not_utf8(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}{_unquoted_hint(text, exc)}"
                          ) from None
    except RecursionError:
        # tomllib parses nested arrays and tables recursively; no setting nests past two.
        raise ConfigError(f"{where} is not valid TOML: its values are nested too deeply for "
                          "a configuration — see config.example.toml") from None
    except ValueError:
        # Valid TOML that Python's int() refuses: a whole number past 4,300 digits.
        raise ConfigError(f"{where} is not valid TOML for outboxd: it holds a number of "
                          "thousands of digits, which no setting takes — see "
                          "config.example.toml") from None


def check_outbox(settings: Settings, path: Path) -> None:
    """Refuse an outbox that is not a folder, as OutboxNotReachable. `outboxd run` asks
    apart, once the loop's hang watch runs: an outbox whose share hangs waits here."""
    if missing := outbox_missing(settings.outbox.path):
        key = f"[outbox] path{env_origin('outbox', 'path', environment_overrides())}"
        raise OutboxNotReachable(f"{key} = {double_quoted(str(settings.outbox.path))}: the "
                                 f"outbox {missing}", source=unquoted(str(path)))


def load_settings(path: Path, token: bool = True, outbox: bool = True) -> Settings:
    """Read, override, validate. Raises ConfigError naming every bad key. `token`: read
    [delivery] token_file too, as delivering needs it (a systemd credential, which only
    the running service can read: the commands that send nothing leave it). `outbox`:
    refuse an outbox that is not a folder, as OutboxNotReachable (`status` reports from
    the journal without it: a share not mounted is when an admin needs to see what is
    stuck)."""
    raw = _read_toml(path)
    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        env = environment_overrides()
        raise ConfigError(_problem_lines(exc.errors(), env),
                          source=unquoted(str(path))) from None
    env = environment_overrides()
    if problems := across_problems(settings, env):
        raise ConfigError(problems, source=unquoted(str(path)))
    if outbox:
        check_outbox(settings, path)
    # An unreadable or unusable token_file stops the start, not a POST.
    if token and (problems := token_problems(settings, path)):
        raise ConfigError(problems, source=unquoted(str(path)))
    return settings


def token_problems(settings: Settings, config: Path | None = None) -> list[str]:
    """What keeps [delivery] token (or token_file) from being used, each line naming the
    key and the fix; empty if nothing does. `config`: the file `settings` came from."""
    try:
        settings.delivery.bearer_token(config)
    except ConfigError as exc:
        key = "[delivery] token_file"
        origin = env_origin("delivery", "token_file", environment_overrides())
        return [p.replace(key, key + origin, 1) for p in exc.problems]
    return []


def log_config_anyway(path: Path) -> LogConfig:
    """The [log] settings of a configuration that did not load, as far as they can be
    read (the environment over the file's [log] table), else the defaults: the error
    that stops `run` then comes out in the format the service's logs are read in
    (JSON under systemd), not as bare lines a log collector drops."""
    raw: dict[str, Any] = {}
    try:
        table = _read_toml(path).get("log")
        raw.update(table if isinstance(table, dict) else {})
    except ConfigError:
        pass
    raw.update(environment_overrides().get("log", {}))
    # Each key alone: a bad level must not cost the format.
    good = {}
    for key in ("format", "level"):
        try:
            LogConfig(**{key: raw[key]})
            good[key] = raw[key]
        except (KeyError, ValidationError):
            pass
    return LogConfig(**good)
