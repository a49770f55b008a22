"""The `outboxd` command's entry point (pyproject.toml, [project.scripts]; also
`python -m daemon`): SIGHUP blocked before anything else is imported.

SIGHUP's default action ends the process, and `outboxd run` installs its handler (a
reload) only once its modules are imported and its configuration read; the command line
is parsed, and `run` blocks its stop and reload signals (daemon.cmdsignals), only after
daemon.cli and its imports are in, some 0.1 s after exec. A `kill -HUP` in that time
ended the daemon instead of being a reload, and systemd takes an end by SIGHUP for a
clean one: Restart=on-failure does not start it again. Blocked here, a few milliseconds
after exec (the interpreter's own start is the window left), a SIGHUP waits and is
handled as a reload once the service's handler is in. Under systemd this mattered for
`kill -HUP` (and `systemctl kill -s HUP`) only: `systemctl reload` never sends the signal
to a daemon still starting, since systemd runs ExecReload= only for an active unit and
a Type=notify unit is active from READY=1 on.

SIGTERM and SIGINT stay as they are until the command is known: a stop sent that early
still ends the process, as a stop should (a Ctrl-C is a KeyboardInterrupt). Every
command but `run` gets SIGHUP unblocked at once after parsing (daemon.cmdsignals), so a closed
terminal ends `status` or `receiver` as it did. `run` leaves it blocked until
Service._install_signals unblocks it with its handler in place; reader processes spawned
with it blocked unblock it themselves once they ignore it (reader_process.main). If
`run` fails before that, the process exits with its own code (1 or 2), not by a pending
SIGHUP: the mask is not restored on the way out."""

from __future__ import annotations

import atexit
import contextlib
import signal
from collections.abc import Sequence

from daemon import leave_unused_unloaded


def main(argv: Sequence[str] | None = None) -> int:
    """Block SIGHUP, then hand over to the command line (daemon.cli.main)."""
    # First registered, so run last of all: from here on to the process's end a stop is
    # ignored (daemon.cmdsignals._stops_end_with: the interpreter then puts Python's handlers
    # back to the default, and a stop would end the process by the signal).
    atexit.register(_stops_ignored)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    # The process is outboxd's: what the libraries would load for nothing is left out.
    leave_unused_unloaded()
    from daemon import cli  # the heavy imports, from here on with SIGHUP blocked

    # A SIGHUP its parent had blocked stays blocked for every command.
    return cli.main(argv, hup_blocked_here=signal.SIGHUP not in before, whole_process=True)


def _stops_ignored() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # main called on another thread: not ours
            signal.signal(sig, signal.SIG_IGN)
