"""`outboxd config [--check]`: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import json

from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of


def run(args: argparse.Namespace) -> int:
    settings, path = settings_of(args)
    if args.check:
        print(f"{path}: configuration is valid")
    else:
        print(json.dumps(settings.masked(), indent=2))
    return EXIT_OK
