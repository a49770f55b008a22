"""What the reader pool keeps of each child (daemon/reading/reader_child.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

from daemon.reading.reader_child import Child, call_under_way


def test_the_call_under_way_is_the_first_written_not_the_oldest_id() -> None:
    """Ids are taken in one order and written by several threads in another (the loop's
    check, the collector's next read): a dead child's call under way is the first of its
    open calls that went down the pipe; calls never written cost no try."""
    child = Child(proc=None, conn=None)
    child.calls = {1: object(), 2: object(), 3: object()}  # type: ignore[dict-item]
    assert call_under_way(child) is None  # none written yet
    child.written.extend([2, 1])
    assert call_under_way(child) == 2
    del child.calls[2]  # answered
    assert call_under_way(child) == 1
    child.written.clear()
    child.written.extend([5, 3])  # 5 answered and gone from calls
    assert call_under_way(child) == 3


def may_fork_in_a_fresh_process(before: str) -> str:
    """may_fork() in a new interpreter, after `before` ran there (pytest's own process
    may hold threads of other tests)."""
    done = subprocess.run([sys.executable, "-c", before + "\n"
                           "from daemon.reading.reader_child import may_fork\n"
                           "print(may_fork())"],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_a_reader_may_be_forked_only_from_a_process_with_one_thread_and_no_engine() -> None:
    """A fork copies the memory of every thread, locks they hold included: a command's
    reader may be forked only while its process has one thread (counted by the kernel,
    a native library's too) and has not loaded the e-invoice engine (a native runtime
    with threads of its own)."""
    assert may_fork_in_a_fresh_process("pass") == "True"
    assert may_fork_in_a_fresh_process(
        "import threading\nthreading.Thread(target=threading.Event().wait, daemon=True)"
        ".start()") == "False"
    assert may_fork_in_a_fresh_process("import saxonche") == "False"
    # A thread the interpreter does not know of: counted all the same.
    assert may_fork_in_a_fresh_process(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None)\n"
        "tid = ctypes.c_ulong()\n"
        "pause = ctypes.cast(libc.pause, ctypes.c_void_p)\n"
        "assert libc.pthread_create(ctypes.byref(tid), None, pause, None) == 0") == "False"


def test_a_reader_is_spawned_with_the_group_signals_blocked_even_by_the_first_spawn() -> None:
    """A reader spawned by a process that never spawned one before comes to life with
    SIGINT, SIGHUP and SIGTERM blocked, until its main() ignores them: else a Ctrl-C in
    its first moments kills it mid-import with a traceback. (The first spawn launches
    multiprocessing's resource tracker, whose launch unblocks SIGINT and SIGTERM.)"""
    done = subprocess.run([sys.executable, "-c",
                           "import multiprocessing, signal\n"
                           "from daemon.reading.reader_child import signals_blocked\n"
                           "from tests.reading.test_reader_child import blocked_here\n"
                           "ctx = multiprocessing.get_context('spawn')\n"
                           "ours, theirs = ctx.Pipe()\n"
                           "proc = ctx.Process(target=blocked_here, args=(theirs,))\n"
                           "with signals_blocked(spawning=True):\n"
                           "    proc.start()\n"
                           "print(ours.recv())\n"
                           "proc.join()\n"
                           "print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, ())))"],
                          capture_output=True, text=True, timeout=120, check=True)
    in_the_reader, after = done.stdout.splitlines()
    assert in_the_reader == "['SIGHUP', 'SIGINT', 'SIGTERM']", done.stdout
    assert after == "[]"  # the spawning thread's mask as it was


def blocked_here(conn: Any) -> None:
    """A spawned child's target: the names of the signals it was started with blocked."""
    conn.send(sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, ())))


def test_a_ctrl_c_while_a_reader_starts_waits_until_it_has_started() -> None:
    """In a process with another thread, a group signal blocked on the thread starting a
    reader goes to the other thread, and Python raised KeyboardInterrupt in the middle of
    the start anyway (the new reader, without its start-up data, died with a traceback).
    The start now finishes first; the Ctrl-C is raised right after it."""
    done = subprocess.run([sys.executable, "-c",
                           "import os, select, signal, threading\n"
                           "from daemon.reading.reader_child import signals_blocked\n"
                           "r, w = os.pipe()\n"
                           "os.set_blocking(w, False)\n"
                           "signal.set_wakeup_fd(w)\n"
                           "threading.Thread(target=threading.Event().wait, daemon=True)"
                           ".start()\n"
                           "try:\n"
                           "    with signals_blocked(spawning=False):\n"
                           "        os.kill(os.getpid(), signal.SIGINT)\n"
                           "        assert select.select([r], [], [], 60)[0]\n"
                           "        print('the start went on', flush=True)\n"
                           "    print('no Ctrl-C')\n"
                           "except KeyboardInterrupt:\n"
                           "    print('Ctrl-C after it')\n"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines() == ["the start went on", "Ctrl-C after it"], done


def test_a_ctrl_c_as_the_handlers_come_back_leaves_none_deferring_and_nothing_blocked() -> None:
    """A Ctrl-C another thread takes the moment SIGINT's own handler is back raises
    KeyboardInterrupt there, in the middle of putting things back: SIGHUP's and SIGTERM's
    handlers are back already, and the thread's mask is as it was all the same. (Simulated:
    putting SIGINT's handler back raises, as the Ctrl-C would just after.)"""
    done = subprocess.run([sys.executable, "-c",
                           "import signal\n"
                           "from daemon.reading.reader_child import signals_blocked\n"
                           "mine = {signal.SIGHUP: lambda *_: None, "
                           "signal.SIGTERM: lambda *_: None}\n"
                           "for s, h in mine.items():\n"
                           "    signal.signal(s, h)\n"
                           "real = signal.signal\n"
                           "def putting_back(sig, handler):\n"
                           "    old = real(sig, handler)\n"
                           "    if handler is signal.default_int_handler:\n"
                           "        raise KeyboardInterrupt\n"
                           "    return old\n"
                           "signal.signal = putting_back\n"
                           "try:\n"
                           "    with signals_blocked(spawning=False):\n"
                           "        pass\n"
                           "except KeyboardInterrupt:\n"
                           "    print('Ctrl-C')\n"
                           "signal.signal = real\n"
                           "print(all(signal.getsignal(s) is h for s, h in mine.items()))\n"
                           "print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, ())))"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines() == ["Ctrl-C", "True", "[]"], done
