"""`outboxd run`: the daemon in the foreground."""

from __future__ import annotations

import argparse

from daemon import logs, stdio
from daemon.actions import EXIT_FAILED, EXIT_USAGE
from daemon.actions.common import settings_of
from daemon.configuration.config_load import check_outbox, config_path, log_config_anyway
from daemon.errors import ConfigError, NotReady, OutboxdError, refused, unquoted
from daemon.loop.hangwatch import HangWatch, looked_at
from daemon.loop.service import Service  # here, not in run(): cli.py freezes the imports
from daemon.report.notify import watchdog_interval


def run(args: argparse.Namespace) -> int:
    # What ends the daemon is a log event like every other line (JSON under [log]
    # format = "json", and under systemd), not a bare line that a log collector drops:
    # also a configuration that does not load, logged as far as its [log] can be read.
    try:
        try:
            settings, path = settings_of(args, token=True, outbox=False)
        except ConfigError:
            logs.configure(log_config_anyway(config_path(args.config)))
            raise
        # Before the first look at the outbox: a share that hangs already is said too.
        hangs = HangWatch(lambda: looked_at(settings), logs.get(), watchdog_interval())
        hangs.start()
        try:
            check_outbox(settings, path)
            # A library's or native code's own lines on fds 1 and 2 too (JSON logging only).
            stdio.take_native_output()
            service = Service(settings, config_path=path, hangs=hangs)
        except BaseException:
            # The service stops the watch it is given; a start that ends before there is
            # one stops it here (a caller of cli.main, a test, would keep its thread).
            hangs.stop()
            raise
        return service.run()
    except NotReady as exc:
        # A share not mounted yet (not in fstab, a NAS rebooting, a stale NFS handle), a
        # full disk where a folder is to be made: the environment's, which passes: exit 1,
        # which the unit restarts every RestartSec=, where a configuration error's 2 is
        # not restarted at all (the daemon would stay down after the disk was freed).
        logs.get().error(f"outboxd cannot start: {exc.what}; systemd starts it again "
                         "(Restart=on-failure) until it can",
                         source=exc.source or unquoted(str(config_path(args.config))),
                         problems=list(exc.problems))
        return EXIT_FAILED
    except ConfigError as exc:
        logs.get().error("outboxd cannot start: configuration error",
                         source=exc.source or unquoted(str(config_path(args.config))),
                         problems=list(exc.problems))
        return EXIT_USAGE
    except OutboxdError as exc:
        logs.get().error("outboxd stopped", error=str(exc))
        return EXIT_FAILED
    except OSError as exc:  # the environment (a full disk, a path gone), not a bug
        logs.get().error("outboxd stopped", error=refused(exc))
        return EXIT_FAILED
