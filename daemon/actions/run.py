"""`outboxd run`: the daemon in the foreground."""

from __future__ import annotations

import argparse

from daemon import logs
from daemon.actions import EXIT_FAILED, EXIT_USAGE
from daemon.actions.common import settings_of
from daemon.errors import ConfigError, OutboxdError, refused


def run(args: argparse.Namespace) -> int:
    from daemon.service import Service
    settings, path = settings_of(args)  # a bad file: cli says so, logging is not set yet
    try:
        return Service(settings, config_path=path).run()
    # Once logging is set, what ends the daemon is a log event like every other line
    # (JSON under [log] format = "json"), not a bare line that a log collector drops.
    except ConfigError as exc:
        logs.get().error("outboxd cannot start: configuration error",
                         source=str(exc.source or "the configuration"),
                         problems=list(exc.problems))
        return EXIT_USAGE
    except OutboxdError as exc:
        logs.get().error("outboxd stopped", error=str(exc))
        return EXIT_FAILED
    except OSError as exc:  # the environment (a full disk, a path gone), not a bug
        logs.get().error("outboxd stopped", error=refused(exc))
        return EXIT_FAILED
