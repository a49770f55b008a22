"""The names the OS shows for the daemon's threads (`top -H`, `ps -L`,
/proc/PID/task/TID/comm).

Python 3.11 keeps a thread's name to itself: the OS shows every thread under
the process's name. Named, an admin looking at a busy daemon sees which of them
works (the delivery workers, the readers' collector, the watcher), and the bench
can split the daemon's CPU by them. The loop is the process's main thread.
"""

from __future__ import annotations

import threading

COMM_LIMIT = 15  # bytes the kernel keeps of a thread's name


def show_name(thread: threading.Thread, name: str | None = None) -> None:
    """Give a started thread of this process its name (or `name`) as the OS shows it.
    Best effort: without /proc (not Linux) or once the thread has ended, nothing."""
    tid = thread.native_id
    if tid is None:
        return
    try:
        # Linux lets any thread of a process rename the others, through /proc.
        with open(f"/proc/self/task/{tid}/comm", "w", encoding="ascii",
                  errors="replace") as comm:
            comm.write((name or thread.name)[:COMM_LIMIT])
    except OSError:
        pass
