"""`outboxd run`: the daemon in the foreground."""

from __future__ import annotations

import argparse

from daemon import logs
from daemon.actions.common import settings_of


def run(args: argparse.Namespace) -> int:
    from daemon.service import Service
    settings, path = settings_of(args)
    logs.configure(settings.log)
    return Service(settings, config_path=path).run()
