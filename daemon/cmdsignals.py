"""The signals around a command's run (`cli.main`, which parses and dispatches): what
the command needs of them before it runs (`run` keeps the stop and reload signals
blocked until its service's handlers are in; every other command gets back the SIGHUP
the entry point blocked), and at its end the mask and handlers its caller had, or, in a
process of the command's own, a stop that ends the process with the command's exit
code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from daemon import GROUP_SIGNALS


def as_the_command_needs(command: str, hup_blocked_here: bool) -> None:
    """Before `command` runs, once it is parsed. hup_blocked_here: the `outboxd`
    command's entry point (daemon.entry) blocked SIGHUP before importing the command
    line."""
    if hup_blocked_here and command != "run":
        # Only `run` reloads on SIGHUP: the others end by it, as they always did.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    if command == "run":
        # A stop or reload asked for while the daemon still starts (importing it and
        # loading the configuration take a second or more) waits, blocked, for the
        # handlers Service installs, instead of ending the process with the signal's
        # default (killed by SIGTERM: not the clean stop, exit 0, a stop promises).
        signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)


def around(command: Callable[[], int], whole_process: bool) -> int:
    """`command` run, and its exit code. whole_process: the process is the command's
    alone (daemon.entry, not a caller that embeds cli.main)."""
    # `run` blocks the group signals (as_the_command_needs) and the service unblocks
    # them and installs its own handlers; a caller that embeds main (a test, a wrapper)
    # gets back what it had on every way out — a config error, a failed start, a stop —
    # and stays interruptible. A signal that came while blocked is delivered to it then.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    handlers = {sig: signal.getsignal(sig) for sig in GROUP_SIGNALS}
    try:
        code = command()
    except BaseException:
        _restore_signals(mask, handlers, whole_process)
        raise
    try:
        _restore_signals(mask, handlers, whole_process, code)
    except KeyboardInterrupt:
        code = 130  # a Ctrl-C that came while they were blocked: as one during the command
        if whole_process and threading.current_thread() is threading.main_thread():
            _stops_end_with(code)
    return code


def _restore_signals(mask: set[int | signal.Signals],
                     handlers: dict[signal.Signals, Any], whole_process: bool,
                     code: int | None = None) -> None:
    """The mask as it was, and the handlers for a caller that embeds cli.main. In a process
    of the command's own the command is over, and its exit code (`code`; None: an
    exception, whose own it is) is the process's: a stop from now on ends the process
    with it at once (_stops_end_with), or is ignored. Given back their default, a second
    SIGTERM or Ctrl-C during `run`'s clean stop that came after its "stopped" ended the
    process by the signal (exit -15, or -2 with a traceback) instead of the stop's 0."""
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and not whole_process:
        for sig, handler in handlers.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one that waited is delivered here
    if main_thread and whole_process:
        if code is None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
        else:
            _stops_end_with(code)


def _stops_end_with(code: int) -> None:
    """A stop (SIGTERM, Ctrl-C) after the command's end ends the process at once with
    the command's exit code. Ignored, one that came while the interpreter waited at exit
    for a thread (an in-process read still busy: `[service] reader_processes = 0`, or no
    child could start) left a foreground command that neither Ctrl-C nor kill could end
    until the read did. The interpreter puts a Python handler back to the default late
    in its exit, where the stop would end the process by the signal: the entry point's
    first atexit callback, the last to run, ignores stops before that
    (daemon.entry._stops_ignored)."""
    def end(_signum: int, _frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken pipe: nothing to add
                stream.flush()
        stdio = sys.modules.get("daemon.stdio")  # `run`: native output still in its pipe
        if stdio is not None:
            with contextlib.suppress(Exception):
                stdio.release()
        os._exit(code)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, end)
