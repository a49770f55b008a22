"""The command line's arguments as cli.py parses them: the value of each kind of argument
(a path, a bundle, an invoice id, a count, a wait), each refused with a line that says
what to give, and an option given at most once — `-c` before and after the command
included. Kept apart from cli.py, which builds the parser and dispatches."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.errors import UsageError, shown


class Once(argparse.Action):
    """An option that takes a value, given at most once (or again with the same value):
    argparse keeps the last of `--type Invoice --type Timesheet` without a word, and a
    script that adds an option a person also gave ran on the other value than meant."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault("_given", {})
        if self.dest in given and given[self.dest] != values:
            # The receiver's --token is a secret: named, never shown.
            both = "" if "token" in self.dest else \
                f", as {shown(str(given[self.dest]))} and {shown(str(values))}"
            parser.error(f"{'/'.join(self.option_strings)} given twice{both} — give it once")
        given[self.dest] = values
        setattr(namespace, self.dest, values)


def path_arg(text: str) -> Path:
    """A path given on the command line. An empty one (`"$FILE"` of a variable not set)
    would be Path("."), the current folder: `check ""` checked whatever folder the admin
    stood in as if it were the outbox."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path — give a file or folder (a shell "
                                         "variable that is not set?)")
    return Path(text)


def _given(what: str, give: str) -> Callable[[str], str]:
    """An argument that must not be empty or blank: a shell variable that is not set
    (`retry "$B"`, `send "$ID"`) was taken for the current folder, or looked for as a
    name, and refused as the subject's failure (exit 1) naming nothing."""
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty {what} — give {give} (a shell "
                                             "variable that is not set?)")
        return text
    return check


bundle_ref = _given("bundle", "a quarantine folder, its name or its 12-character id")
invoice_id = _given("invoice id", "the invoice id, the number inside the invoice file")
invoice_ref = _given("invoice id", "the invoice id or the invoice file's name")


def count(text: str) -> int:
    """A number of bundles to show: 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0 — give 0 or more")
    return value


def seconds(text: str) -> float:
    """A wait given on the command line, as a configuration's durations are: -5 made
    `demo --once --timeout` give up at once and report the samples as failed (exit 1,
    not the usage error it is), and nan or 1e308 made `demo --pace` wait for ever."""
    from daemon.configuration.config_values import MAX_SECONDS  # here: it loads pydantic and httpx
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds from 0 to "
                                         f"{MAX_SECONDS} (one year)")
    return value


def one_config(args: argparse.Namespace) -> None:
    """-c before the command and -c after it: one file, or a usage error naming both."""
    after = getattr(args, "config_after", None)
    if after is not None:
        if getattr(args, "config", None) not in (None, after):
            raise UsageError(f"{args.command}: -c/--config given twice, as "
                             f"{shown(args.config)} (before the command) and {shown(after)} "
                             "(after it) — give it once")
        args.config = after
    vars(args).pop("config_after", None)
    vars(args).pop("_given", None)
