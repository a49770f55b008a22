"""The loop stuck on a share that hangs: said, and (under systemd) not taken for a dead loop.

A share that hangs (a hard NFS mount to a file server that is down, a FUSE file system
stopped) gives no error: each look at it waits in the kernel until the server answers,
minutes or hours. The loop, and a start before READY=1, then wait with it and log nothing;
systemd's watchdog (or its start timeout) kills the daemon with only "watchdog timeout",
and the restart waits on its first look again.

One thread (`hangwatch`) looks at the clock every few seconds. Once the loop's turn (the
start, or the stop) has lasted half of `after` seconds it looks at each folder the loop
looks at (and at each share mounted in them), each on a thread of its own; a folder whose
look has not answered in the other half hangs: one warning names it with the fix, and
STATUS= says it. A look that answers within that (a share merely slow) is no hang. A
later turn that lasts as long while a folder still hangs (the loop gave up on it and went
on) has the others looked at again: a second share that hangs is named too. While
the loop waits in the kernel (not in a wait of ours, a lock or a sleep: /proc tells which
call it is in) and the folder still does not answer, the watchdog is told the loop lives
(WATCHDOG=1; before READY the start timeout is extended, for START_EXTEND_SECONDS at
most): a restart does not mend a share, and the daemon goes on the moment it answers. A
loop stuck in our own code (or in a wait of its own) gets no ping from here, and neither
does a stop: its time is systemd's stop timeout (stopping.stop_budget), and a stop killed
loses nothing.
When the folder answers again: one info line, and the loop publishes its counts again.
With the loop turning, this thread costs one wake every few seconds and nothing else.
"""

from __future__ import annotations

import os
import platform
import struct
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.configuration.config import Settings
from daemon.invisible import escaped_controls
from daemon.osthreads import show_name
from daemon.report.notify import START_PART_SECONDS, notify
from daemon.watching.mounts import points_below

# Seconds the loop may wait on one turn before the folders are looked at. Far more than
# any look at a share that answers takes (a rescan of 20,000 names on SMB: some seconds),
# well under WatchdogSec=60: said, and the watchdog kept, before systemd kills.
HANG_SECONDS = 20.0
HANG_FIX = ("its share hangs: the file server is down or cannot be reached, and the "
            "mount waits for it — check the file server and the network, then the mount "
            "(`mount`, `dmesg`); outboxd goes on by itself once it answers, nothing is lost")
# How long, in all, the watch extends a start (before READY=1) that waits on a share that
# hangs. Unbounded, a share hung at boot kept the boot "starting" (multi-user.target waits
# for outboxd) and `systemctl start` blocked for the whole outage. After it systemd's start
# timeout ends the start as without the watch (the last extension asked START_PART_SECONDS
# more: 90 s, systemd's default TimeoutStartSec=), and Restart= tries again with back-off.
START_EXTEND_SECONDS = 300.0

# The system calls a loop waits in on a wait of its own, not on a share, by machine, as the
# kernel's tables number them (arch/*/syscall*.tbl, include/uapi/asm-generic/unistd.h): a
# lock (futex), a poll of sockets or pipes, a sleep, a child, a signal. A share's look is
# openat, getdents64, statx, read…: none of these. 64-bit generic machines (aarch64,
# riscv64) have no poll, select, epoll_wait or pause; 32-bit ones also have the 64-bit
# time variants (403-423) that glibc uses first.
_OWN_WAITS: dict[str, dict[str, int]] = {
    "x86_64": dict(futex=202, futex_waitv=449, poll=7, ppoll=271, select=23, pselect6=270,
                   epoll_wait=232, epoll_pwait=281, epoll_pwait2=441, nanosleep=35,
                   clock_nanosleep=230, wait4=61, waitid=247, pause=34, rt_sigsuspend=130,
                   rt_sigtimedwait=128),
    "aarch64": dict(futex=98, futex_waitv=449, ppoll=73, pselect6=72, epoll_pwait=22,
                    epoll_pwait2=441, nanosleep=101, clock_nanosleep=115, wait4=260,
                    waitid=95, rt_sigsuspend=133, rt_sigtimedwait=137),
    "ppc64le": dict(futex=221, futex_waitv=449, poll=167, ppoll=281, _newselect=142,
                    pselect6=280, epoll_wait=238, epoll_pwait=303, epoll_pwait2=441,
                    nanosleep=162, clock_nanosleep=248, wait4=114, waitid=272, pause=29,
                    rt_sigsuspend=178, rt_sigtimedwait=176),
    "s390x": dict(futex=238, futex_waitv=449, poll=168, ppoll=302, select=142, pselect6=301,
                  epoll_wait=251, epoll_pwait=312, epoll_pwait2=441, nanosleep=162,
                  clock_nanosleep=262, wait4=114, waitid=281, pause=29, rt_sigsuspend=179,
                  rt_sigtimedwait=177),
    "i686": dict(futex=240, futex_time64=422, futex_waitv=449, poll=168, ppoll=309,
                 ppoll_time64=414, select=82, _newselect=142, pselect6=308,
                 pselect6_time64=413, epoll_wait=256, epoll_pwait=319, epoll_pwait2=441,
                 nanosleep=162, clock_nanosleep=267, clock_nanosleep_time64=407, wait4=114,
                 waitpid=7, waitid=284, pause=29, sigsuspend=72, rt_sigsuspend=179,
                 rt_sigtimedwait=177, rt_sigtimedwait_time64=421),
    "armv7l": dict(futex=240, futex_time64=422, futex_waitv=449, poll=168, ppoll=336,
                   ppoll_time64=414, _newselect=142, pselect6=335, pselect6_time64=413,
                   epoll_wait=252, epoll_pwait=346, epoll_pwait2=441, nanosleep=162,
                   clock_nanosleep=265, clock_nanosleep_time64=407, wait4=114, waitid=280,
                   pause=29, sigsuspend=72, rt_sigsuspend=179, rt_sigtimedwait=177,
                   rt_sigtimedwait_time64=421),
}
_OWN_WAITS["riscv64"] = _OWN_WAITS["aarch64"]  # both number as asm-generic/unistd.h
_TASKS = "/proc/self/task"  # where the kernel tells each thread's system call


def hang_after(keepalive: float | None) -> float:
    """HANG_SECONDS, or a quarter of WatchdogSec= (keepalive is half of it) when less: the
    loop's last ping may be half of WatchdogSec= old when its turn begins, and the look
    and a check more must fit in the other half."""
    if keepalive is None:
        return HANG_SECONDS
    return min(HANG_SECONDS, max(1.0, keepalive / 2))


def _machine() -> str:
    """The machine whose call numbers /proc gives for this process: a 32-bit Python on a
    64-bit kernel (i686 on x86_64, armhf on aarch64) makes the 32-bit calls, while
    platform.machine() names the kernel's."""
    machine = platform.machine()
    if struct.calcsize("P") == 4:
        return {"x86_64": "i686", "aarch64": "armv7l", "armv8l": "armv7l"}.get(machine,
                                                                              machine)
    return machine


def in_kernel_wait(tid: int) -> bool:
    """The thread waits in a system call that is no wait of our own (_OWN_WAITS), as /proc
    tells: a share's look; False where it cannot be told (not Linux, a machine not known
    here)."""
    own = _OWN_WAITS.get(_machine())
    if own is None:
        return False
    try:
        with open(f"{_TASKS}/{tid}/syscall", encoding="ascii") as f:
            call = f.read().split(maxsplit=1)[0]
    except (OSError, IndexError):
        return False
    # "running" (our own code on the CPU) and "-1" (blocked outside a call) are not numbers.
    return call.isdigit() and int(call) not in own.values()


def looked_at(s: Settings) -> list[tuple[str, Path]]:
    """The folders the loop looks at, as the warning names them: the outbox first; the
    others where they are not in it, or where a share is mounted on them (or on a folder
    between the outbox and them): else the outbox answers for them. Then each share
    mounted below these (on a sidecar, on a day folder of sent/): the outbox answering
    says nothing of them, and the loop waits on them as on the outbox. Not those under a
    dot-folder of the outbox, which the loop leaves alone (a NAS's .snapshot). From the
    mount table: no look at a folder here, which may hang."""
    outbox = s.outbox.path
    inside = points_below(outbox)
    roots = [("outbox", outbox)]
    for what, path in (("processing folder", s.processing_dir), ("sent folder", s.sent_dir),
                       ("quarantine folder", s.quarantine_dir)):
        if not path.is_relative_to(outbox) or any(path.is_relative_to(p) for p in inside):
            roots.append((what, path))
    folders = list(roots)
    for what, root in roots:
        for point in inside if root == outbox else points_below(root):
            if any(f.is_relative_to(point) for _, f in folders):
                continue  # named already, or on the way to one named: its look covers it
            if root == outbox and point.relative_to(outbox).parts[0].startswith("."):
                continue
            folders.append((f"folder in the {what}", point))
    return folders


def _look(path: Path) -> None:
    """What the loop does first with a folder: open it and read its first entries."""
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError:
        pass  # an answer all the same: the outage is Outage's to tell


class HangWatch:
    """Started by `outboxd run` (or Service.run()); `start`/`busy`/`idle` are the loop's
    thread's, the rest this thread's."""

    def __init__(self, folders: Callable[[], Sequence[tuple[str, Path]]], log: Any,
                 keepalive: float | None, clock: Callable[[], float] = time.monotonic,
                 start_cap: float = START_EXTEND_SECONDS) -> None:
        self.folders = folders
        self.log = log
        # Set by the Service once it has its Publisher: STATUS= as the loop last published
        # it, and how to have the loop publish it again (from this thread).
        self.shown: Callable[[], str] = lambda: ""
        self.again: Callable[[], None] = lambda: None
        self._keepalive = keepalive
        self._clock = clock
        self.after = hang_after(keepalive)
        self._every = self.after / 4  # between checks
        # How long a look is given before its folder hangs; the looks begin this long
        # before `after`, so that the warning still comes once the turn has lasted
        # `after`. Half of it, not a check's time: a share that answers slowly (a look
        # of 4 s on a loaded SMB server) must not be said to hang, nor then to answer
        # again, while the warning and a first ping still come in time (hang_after).
        self.look_for = self.after / 2
        self._since: float | None = None  # monotonic: the loop's turn began (loop thread)
        self._starting = True  # before READY=1
        self._stopping = False  # the stop begun (Service._shutdown)
        self._start_cap = start_cap
        self._extended_since: float | None = None  # monotonic: the start's first extension
        self._tid: int | None = None  # the loop's thread, as /proc names it
        # A look per folder under way, and when it began: time.monotonic(), not the
        # clock: a look's time is the share's, real whatever clock the turn is timed by.
        self._looks: dict[Path, tuple[threading.Thread, float]] = {}
        # Each folder hung, in the order found: what, since (monotonic), its STATUS= line.
        self._hung: dict[Path, tuple[str, float, str]] = {}
        self._turns = 0  # turns begun (loop thread): tells a later turn from the one hung
        self._hung_turn = 0  # the turn the latest hang was found in
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hangwatch", daemon=True)

    # -- the loop's thread -----------------------------------------------------------
    def start(self) -> None:
        """From the thread that becomes the loop, as early in the start as may be (`outboxd
        run` before its first look at the outbox): the start is a turn of its own."""
        if self._thread.ident is not None:
            return
        self._tid = threading.get_native_id()
        self._turns += 1
        self._since = self._clock()
        self._thread.start()
        show_name(self._thread)

    def busy(self) -> None:
        self._turns += 1
        self._since = self._clock()

    def idle(self) -> None:
        """Between turns; first called once READY=1 is said."""
        self._since = None
        self._starting = False

    def stopping(self) -> None:
        """As the stop begins (Service._shutdown): a turn of its own, which may wait on
        the share too (the clerks' page is written in the outbox)."""
        self._stopping = True
        self._turns += 1
        self._since = self._clock()

    def stop(self) -> None:
        self._stop.set()

    # -- this thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._check()
            except Exception as exc:  # noqa: BLE001 - a fault here must not end the watch
                self.log.error("unexpected error", exc_info=exc)

    def _check(self) -> None:
        answered = [(folder, what, since) for folder, (what, since, _) in self._hung.items()
                    if not self._looks[folder][0].is_alive()]
        for folder, what, since in answered:
            del self._looks[folder], self._hung[folder]
            self.log.info(f"the {what} answers again", folder=str(folder),
                          hung_seconds=round(self._clock() - since, 1))
        if answered:
            if not self._hung:
                self.again()
                return
            self._say(next(reversed(self._hung.values()))[2])  # the latest still hung
        began, turn = self._since, self._turns
        if began is None or self._clock() - began < self.after - self.look_for or (
                self._hung and turn == self._hung_turn):
            # A short turn (an idle loop costs no look), or the turn a hang was found in,
            # which waits on that share: looked at once.
            if self._hung:
                self._keep_alive()
            return
        # All at once: a share mounted in the outbox that hangs is found in a look's
        # time, however many answer before it. A folder hung already keeps its look: a
        # later turn that waits on another (the loop gave up on the first and went on)
        # is found as the first was, and named.
        looks = [(what, folder, self._looking(folder)) for what, folder in self.folders()
                 if folder not in self._hung]
        for _, _, (look, started) in looks:
            look.join(max(0.0, started + self.look_for - time.monotonic()))
        for what, folder, (look, _) in looks:
            if look.is_alive():
                self._hang(what, folder, began, turn)
                return
            del self._looks[folder]
        if self._hung:
            self._keep_alive()

    def _looking(self, folder: Path) -> tuple[threading.Thread, float]:
        """The look at `folder` under way, or a new one. A look that hangs stays with its
        thread until the share answers: one at most a folder."""
        look = self._looks.get(folder)
        if look is None or not look[0].is_alive():
            thread = threading.Thread(target=_look, args=(folder,), name="hangwatch look",
                                      daemon=True)
            look = self._looks[folder] = thread, time.monotonic()
            thread.start()
        return look

    def _hang(self, what: str, folder: Path, began: float, turn: int) -> None:
        waited = round(self._clock() - began)
        watchdog = None
        if self._stopping:
            watchdog = ("not kept: the stop ends at systemd's stop timeout, nothing is lost "
                        "(the next start resumes what it left)") if self._keepalive else None
        elif self._keepalive and not self._starting:
            watchdog = ("kept: the daemon goes on once it answers" if self._waits_in_kernel()
                        else "not kept: the loop does not wait on the share itself")
        self.log.warning(f"the {what} {folder} does not answer: outboxd has waited "
                         f"{waited} s on it", folder=str(folder), waited_seconds=waited,
                         fix=HANG_FIX, **({"watchdog": watchdog} if watchdog else {}))
        since = (datetime.now(UTC) - timedelta(seconds=waited)).strftime("%H:%M:%S")  # shown
        said = (f"{what} {folder} does not answer since {since} UTC: its share hangs — check "
                "the file server and the network, then the mount")
        if self._starting or self._stopping:
            said = f"{'stopping' if self._stopping else 'starting'}: {said}"
        # One line: a folder's name may hold a line break (counts are escaped already).
        said = escaped_controls(said)
        self._hung[folder] = (what, self._clock(), said)
        self._hung_turn = turn
        self._say(said)
        self._keep_alive()

    def _say(self, said: str) -> None:
        counts = self.shown()
        notify(f"STATUS={said}; {counts}" if counts else f"STATUS={said}")

    def _keep_alive(self) -> None:
        """Tell systemd the loop lives, only while it waits in the kernel: a share's look,
        not a wait of our own (nor our own code on the CPU); a start only up to its cap;
        never a stop."""
        if self._stopping or not self._waits_in_kernel():
            return
        if self._starting:
            now = self._clock()
            if self._extended_since is None:
                self._extended_since = now
            if now - self._extended_since < self._start_cap:
                notify(f"EXTEND_TIMEOUT_USEC={START_PART_SECONDS * 1_000_000}")
        elif self._keepalive:
            notify("WATCHDOG=1")

    def _waits_in_kernel(self) -> bool:
        return self._since is not None and self._tid is not None and in_kernel_wait(self._tid)
