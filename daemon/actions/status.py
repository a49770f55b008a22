"""`outboxd status [--json]`: what the journal says (daemon/status.py builds it)."""

from __future__ import annotations

import argparse

from daemon import status
from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of


def run(args: argparse.Namespace) -> int:
    settings, _ = settings_of(args)
    data = status.collect(settings)
    print(status.as_json(data) if args.json else status.render(data, limit=args.limit))
    return EXIT_OK
