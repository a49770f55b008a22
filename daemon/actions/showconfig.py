"""`outboxd config [--check]`: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import json

from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of
from daemon.config import Settings
from daemon.config_load import folder_problems
from daemon.errors import ConfigError, unquoted


def _problems(settings: Settings) -> list[str]:
    """What `run` would refuse that the loading does not see: folders it cannot create
    or write in, and (HTTP) a CA bundle or client certificate that does not load. Found
    without sending or writing anything, as the user running the check sees it."""
    problems = folder_problems(settings)
    if settings.delivery.transport == "http":  # built as run builds it (a directory one writes)
        from daemon.deliver import make_deliverer
        try:
            make_deliverer(settings.delivery).close()
        except ConfigError as exc:
            problems += exc.problems
    return problems


def run(args: argparse.Namespace) -> int:
    settings, path = settings_of(args, token=args.check)
    if args.check:
        if problems := _problems(settings):
            raise ConfigError(problems, source=unquoted(str(path)))
        print(f"{path}: configuration is valid")
    else:
        print(json.dumps(settings.masked(), indent=2))
    return EXIT_OK
