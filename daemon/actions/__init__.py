"""One module per command of `outboxd` (docs/commands.md): the work behind each command line.

`cli.py` parses and dispatches; each module here has `run(args) -> exit code`
and raises OutboxdError kinds for expected failures (cli turns them into one
or two lines on stderr).
"""

import contextlib
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of a stdout that
    cannot be written (its reader went away) does not complain a second time."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
