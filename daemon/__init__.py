"""outboxd: a shared folder as a reliable outbox for invoices."""

import gc
import signal
import sys

# The one place the version is written; pyproject.toml reads it from here. A
# literal, not importlib.metadata: that lookup cost every command ~0.2 s.
__version__ = "0.1.0"

__all__ = ["GROUP_SIGNALS", "__version__", "keep_rich_out", "leave_unused_unloaded"]

# What a terminal (Ctrl-C, hang-up) or a stop sent to the whole process group or cgroup
# delivers to every process in it: reader processes ignore these, the daemon decides.
GROUP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


def keep_rich_out() -> None:
    """Make `import rich` fail in this process from here on, unless structlog is in
    already. structlog.dev imports rich (and pygments) whenever it is installed, for a
    traceback formatter logs.py does not use (plain_traceback: rich's shows frame
    locals): some 65 modules, ~5 MB and ~0.1 s in the daemon and in each reader process.
    Only `outboxd demo` draws with rich; `run`, every other command the `outboxd`
    command runs (cli.py) and the readers call this."""
    if "structlog" not in sys.modules:
        # None in sys.modules is the import system's own "not importable" mark: an
        # ImportError, which structlog.dev (and httpx's optional CLI) take as "no rich".
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]


def leave_unused_unloaded() -> None:
    """In a process of outboxd's own (the `outboxd` command, a spawned reader), before
    the libraries come in: httpx's command-line client (`httpx._main`, which imports
    click and pygments, ~15 ms of every start) is marked not importable, which httpx
    takes as "no CLI"; outboxd never runs it. A no-op where httpx is in already."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def _set_up_a_spawned_reader() -> None:
    """A reader process imports this package while multiprocessing unpickles its target
    (`_inheriting`), a second or so before reader_process.main() can ignore the signals
    a terminal or `kill -- -PGID` sends the whole group. Ignored from here on, a Ctrl-C
    during a start no longer kills a reader mid-import with a traceback on stderr; the
    daemon decides, and stops its readers itself. And rich is kept out, as in `run`, and
    what else no reader uses (leave_unused_unloaded); its imports and the engine come in
    with the garbage collector off (reader_process.main turns it on, what they made
    frozen out of its passes, before the reader says it is ready)."""
    process = sys.modules.get("multiprocessing.process")
    if process is None or not getattr(process.current_process(), "_inheriting", False):
        return  # the daemon, a command, a test: signals as they are
    for sig in GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    keep_rich_out()
    leave_unused_unloaded()
    gc.disable()


_set_up_a_spawned_reader()
