"""`outboxd config [--check]`: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of
from daemon.config import Settings
from daemon.errors import ConfigError


def _transport_usable(settings: Settings, path: Path) -> None:
    """What `run` would refuse when it builds the HTTP transport (a CA bundle or client
    certificate that does not load), found without sending or writing anything."""
    cfg = settings.delivery
    if cfg.transport != "http":
        return  # the directory transport creates its target: nothing to try here
    from daemon.deliver import tls_verify
    try:
        tls_verify(cfg)  # the one step of building the transport that reads files
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=str(path)) from None


def run(args: argparse.Namespace) -> int:
    settings, path = settings_of(args)
    if args.check:
        _transport_usable(settings, path)
        print(f"{path}: configuration is valid")
    else:
        print(json.dumps(settings.masked(), indent=2))
    return EXIT_OK
