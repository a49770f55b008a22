"""`outboxd config [--check]`: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.actions import EXIT_OK
from daemon.actions.common import settings_of
from daemon.actions.status import same_name
from daemon.configuration.config import Settings
from daemon.configuration.config_credentials import plain_http_warning
from daemon.configuration.config_folders import folder_problems
from daemon.configuration.config_load import token_problems
from daemon.configuration.config_warnings import list_warnings
from daemon.configuration.secret_files import exposure_warnings
from daemon.delivery.scrub import short_secrets_warning
from daemon.errors import ConfigError, unquoted
from daemon.watching.sharecache import late_share


def _problems(settings: Settings) -> list[str]:
    """What `run` would refuse that the loading does not see: folders it cannot create
    or write in, another machine's outboxd under this daemon's name, and (HTTP) a CA
    bundle or client certificate that does not load. Found without sending or writing
    anything, as the user running the check sees it."""
    problems = folder_problems(settings)
    # Another machine's daemon under our name: `run` stops at it (NameInUse). Told by
    # this host's clock, as status tells it: nothing is written on the share.
    if (twin := same_name(settings)) is not None:
        problems.append(twin)
    if settings.delivery.transport == "http":  # built as run builds it (a directory one writes)
        from daemon.delivery.deliver import make_deliverer
        try:
            make_deliverer(settings.delivery).close()
        except ConfigError as exc:
            problems += exc.problems
    return problems


def run(args: argparse.Namespace) -> int:
    settings, path = settings_of(args, token=args.check)
    if warning := plain_http_warning(settings.delivery):
        # Valid, and said as `run` says it at each start.
        print(f"outboxd: warning: {warning}", file=sys.stderr)
    if warning := short_secrets_warning(settings.delivery, token_file=args.check):
        print(f"outboxd: warning: {warning}", file=sys.stderr)
    for warning in exposure_warnings(settings, path):
        print(f"outboxd: warning: {warning}", file=sys.stderr)
    if late := late_share(settings.outbox.path, settings.outbox.settle_seconds):
        print(f"outboxd: warning: {late.words()}", file=sys.stderr)
    for warning in list_warnings(settings):
        print(f"outboxd: warning: {warning}", file=sys.stderr)
    if args.check:
        if problems := _problems(settings):
            raise ConfigError(problems, source=unquoted(str(path)))
        print(f"{path}: configuration is valid")
    else:
        print(json.dumps(settings.masked(), indent=2))
        # Printed as asked, but not in silence: `run` refuses to start on it.
        for problem in token_problems(settings, path):
            print(f"outboxd: warning: {problem}; outboxd run "
                  "does not start until this is fixed (outboxd config --check checks "
                  "everything run needs)", file=sys.stderr)
    return EXIT_OK

