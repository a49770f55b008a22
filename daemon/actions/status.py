"""`outboxd status [--json]`: what the journal says (daemon/status.py builds it)."""

from __future__ import annotations

import argparse
import sys

from daemon import status
from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of
from daemon.statelock import running


def run(args: argparse.Namespace) -> int:
    settings, _ = settings_of(args)
    if not settings.journal_path.exists():
        # All zeros would look like an idle daemon; a mistyped state_dir is likelier.
        print(f"outboxd: no journal at {settings.journal_path} — outboxd has not run with "
              "this configuration yet, or [paths] state_dir points elsewhere than the "
              "daemon's", file=sys.stderr)
    elif running(settings.paths.state_dir) is False:
        # A stopped daemon's counts read as live ones ("delivering: 6", next tries in
        # the past). On stderr: what --json prints stays as the contract shows it.
        print(f"outboxd: no outboxd is running with the state dir "
              f"{settings.paths.state_dir}; these are the counts it left — start it "
              "(systemctl start outboxd) for them to move", file=sys.stderr)
    data = status.collect(settings)
    print(status.as_json(data) if args.json else status.render(data, limit=args.limit))
    return EXIT_OK
