"""Thread names as the OS shows them (osthreads.py)."""

from __future__ import annotations

import threading
from pathlib import Path

from daemon.osthreads import show_name
from tests.helpers import needs_proc, os_thread_name

pytestmark = needs_proc


def test_a_started_thread_shows_its_python_name_or_the_one_given_cut_to_15_bytes() -> None:
    """`top -H` and /proc show the name: the thread's own, or the one given, cut where
    the kernel cuts (15 bytes); the process's own name is left alone."""
    before = Path("/proc/self/comm").read_text()
    release = threading.Event()
    threads = [threading.Thread(target=release.wait, name=name)
               for name in ("deliver-3", "a-name-longer-than-fifteen")]
    for t in threads:
        t.start()
    try:
        show_name(threads[0])
        show_name(threads[1])
        assert [os_thread_name(t) for t in threads] == ["deliver-3", "a-name-longer-t"]
        show_name(threads[0], "watcher")
        assert os_thread_name(threads[0]) == "watcher"
        assert Path("/proc/self/comm").read_text() == before
    finally:
        release.set()
        for t in threads:
            t.join()


def test_naming_a_thread_not_started_or_ended_does_nothing() -> None:
    """Best effort: a thread without an OS thread (not started, or gone) raises nothing,
    and no thread of the process is given its name."""
    before = {t.native_id: os_thread_name(t) for t in threading.enumerate()}
    idle = threading.Thread(target=lambda: None, name="never")
    show_name(idle)
    assert idle.native_id is None
    idle.start()
    idle.join()
    show_name(idle)
    assert {t.native_id: os_thread_name(t) for t in threading.enumerate()} == before
