"""The loop (or the start) stuck on a share that hangs: said, and the watchdog kept only
while the loop waits on the share (daemon/loop/hangwatch.py)."""

from __future__ import annotations

import contextlib
import os
import platform
import select
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import OUTBOXD, STOP_GRACE, Env, Proc, Receiver, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for
from hungshare import hung_share
from notifysock import Notes, events, notify_socket

from daemon.loop import hangwatch
from daemon.loop.hangwatch import HangWatch, hang_after, in_kernel_wait, looked_at

pytestmark = pytest.mark.usefixtures("lean")

WATCHDOG_SEC = 4.0  # the hang is looked for after a quarter of it: 1 s, the least
# hang_after gives (a check every 0.25 s, a look given 0.5 s): every wait for the watch
# here is a few of its checks, so the smallest WatchdogSec= it scales with is the fastest


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notes]:
    yield from notify_socket(tmp_path, monkeypatch, WATCHDOG_SEC)


def test_the_loop_stuck_on_a_hung_outbox_says_so_keeps_the_watchdog_and_goes_on_after(
        env: Env, receiver: Receiver, start_daemon: Any, notes: Notes) -> None:
    """The outbox's share hangs under a running daemon (its rescan waits in the kernel):
    within seconds one warning names the outbox and the fix, STATUS= says it, and WATCHDOG=1
    goes on (a restart would not mend the share). Once the share is released: one info
    line, STATUS= back to the counts, and a bundle dropped then is sent."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 1})
    daemon = start_daemon()
    wait_for(lambda: "READY=1" in notes(), what="READY=1")
    wait_for(lambda: notes.statuses(), what="the first STATUS=")
    with hung_share(env.outbox):
        [warning] = wait_for(lambda: events(daemon, "does not answer"), timeout=30,
                             what="the warning that the outbox does not answer")
        assert warning["level"] == "warning"
        assert warning["event"].startswith(f"the outbox {env.outbox} does not answer")
        assert warning["folder"] == str(env.outbox)
        assert "check the file server and the network, then the mount" in warning["fix"]
        wait_for(lambda: any(s.startswith(f"outbox {env.outbox} does not answer since ")
                             and "check the file server" in s for s in notes.statuses()),
                 what="STATUS= saying the outbox does not answer")
        # Kept alive while hung: pings after the warning, the loop itself stuck.
        seen = len(notes())
        wait_for(lambda: notes()[seen:].count("WATCHDOG=1") >= 3, timeout=3 * WATCHDOG_SEC,
                 what="WATCHDOG=1 while the share hangs")
        assert not events(daemon, "answers again")
    wait_for(lambda: events(daemon, "the outbox answers again"), what="the info line")
    wait_for(lambda: "does not answer" not in notes.statuses()[-1],
             what="STATUS= back to the counts")
    assert len(events(daemon, "does not answer")) == 1
    drop_bundle(env.outbox, "INV-H1", {"a.pdf": pdf_bytes()})
    wait_for(lambda: journal_states(env).get("INV-H1.xml") == "sent", timeout=30,
             what="a bundle sent after the share answers")
    assert "Traceback" not in daemon.stderr()


def test_a_running_daemon_stuck_on_a_hung_sidecar_share_names_that_folder(
        env: Env, receiver: Receiver, start_daemon: Any, notes: Notes) -> None:
    """A share mounted on a sidecar folder inside the outbox hangs, the outbox itself
    answers, and the loop waits on the sidecar once its invoice file comes: the warning
    and STATUS= name the sidecar folder, not the outbox; released, one info line says it
    answers again, and the daemon stops cleanly."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 1})
    daemon = start_daemon()
    wait_for(lambda: "READY=1" in notes(), what="READY=1")
    sidecar = env.outbox / "INV-M1"
    with hung_share(sidecar):
        drop_bundle(env.outbox, "INV-M1", {})
        [warning] = wait_for(lambda: events(daemon, "does not answer"), timeout=30,
                             what="the warning that the sidecar's share does not answer")
        assert warning["event"].startswith(f"the folder in the outbox {sidecar} does not "
                                           "answer"), warning
        assert warning["folder"] == str(sidecar)
        wait_for(lambda: any(s.startswith(f"folder in the outbox {sidecar} does not answer")
                             for s in notes.statuses()), what="STATUS= naming the sidecar")
    wait_for(lambda: events(daemon, "the folder in the outbox answers again"),
             what="the info line")
    assert "Traceback" not in daemon.stderr()


def test_a_start_on_a_hung_outbox_says_so_and_asks_for_more_time(
        env: Env, receiver: Receiver, notes: Notes, tmp_path: Path) -> None:
    """The outbox hangs before `outboxd run` begins: the start (before READY=1) says which
    folder does not answer, in the log and in STATUS=, and extends systemd's start timeout
    while it waits in the kernel, rather than being killed and started again meanwhile.
    Released (the mount gone, its look failed), the start ends as for a share not mounted:
    exit 1, said, for systemd to start it again."""
    env.write_config(receiver.url)
    with hung_share(env.outbox):
        daemon = Proc([*OUTBOXD, "run", "-c", str(env.config)], tmp_path / "daemon.log")
        try:
            wait_for(lambda: events(daemon, "does not answer"), timeout=60,
                     what="the warning that the outbox does not answer")
            wait_for(lambda: any(s.startswith(f"starting: outbox {env.outbox} does not answer")
                                 for s in notes.statuses()), what="STATUS= saying so")
            wait_for(lambda: any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in notes()),
                     what="the start timeout extended")
            assert "READY=1" not in notes()
        except BaseException:
            daemon.stop(signal.SIGKILL)
            raise
    assert daemon.popen.wait(timeout=STOP_GRACE) == 1
    assert events(daemon, "outboxd cannot start"), daemon.stderr()
    assert "Traceback" not in daemon.stderr()
    daemon.stop()


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    info = error = warning


@pytest.mark.parametrize("stuck_on", ["lock", "share"])
def test_the_watch_pings_only_for_a_loop_that_waits_on_the_share(
        tmp_path: Path, notes: Notes, stuck_on: str) -> None:
    """A loop waiting on a lock of ours gets no WATCHDOG=1 from the watch, even while the
    folder hangs too: systemd's watchdog is how such a loop is caught. A loop waiting on
    the hung folder itself does. The warning names the folder either way."""
    log = Log()
    lock = threading.Lock()
    lock.acquire()
    where = tmp_path / "share"
    checks: list[None] = []
    with hung_share(where):
        watch = HangWatch(lambda: [("outbox", where)], log, keepalive=WATCHDOG_SEC / 2)
        check = watch._check
        watch._check = lambda: (check(), checks.append(None))  # type: ignore[method-assign]

        def loop() -> None:
            watch.start()
            watch.idle()  # as after READY=1, then a turn that waits
            watch.busy()
            if stuck_on == "lock":
                lock.acquire()
            else:
                with contextlib.suppress(OSError):
                    os.listdir(where)
        threading.Thread(target=loop, daemon=True).start()
        wait_for(lambda: log.lines, timeout=hang_after(WATCHDOG_SEC / 2) * 4,
                 what="the warning")
        assert log.lines[0][1]["folder"] == str(where)
        assert log.lines[0][1]["watchdog"].startswith(
            "not kept" if stuck_on == "lock" else "kept")
        seen = len(checks)
        wait_for(lambda: len(checks) >= seen + 4, what="four checks more")
        watch.stop()
        lock.release()
    pings = notes().count("WATCHDOG=1")
    assert (pings == 0) if stuck_on == "lock" else (pings >= 4), notes()


@pytest.mark.parametrize(("machine", "reading", "on_the_share"), [
    ("x86_64", "257 0xffffff9c 0x7f3a2c1e4010 0x90000 0x0 0x0 0x0 0x7ffd 0x7f3a", True),  # openat
    ("x86_64", "217 0x3 0x55d0 0x8000 0x0 0x0 0x0 0x7ffd 0x7f3a", True),  # getdents64
    ("x86_64", "202 0x7f3a 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f3a", False),  # futex: a lock
    ("x86_64", "7 0x7ffd 0x2 0x1388 0x0 0x0 0x0 0x7ffd 0x7f3a", False),  # poll
    ("x86_64", "23 0x5 0x7ffd 0x0 0x0 0x7ffd 0x0 0x7ffd 0x7f3a", False),  # select
    ("x86_64", "232 0x4 0x7ffd 0x8 0xffffffff 0x0 0x0 0x7ffd 0x7f3a", False),  # epoll_wait
    ("x86_64", "230 0x1 0x0 0x7ffd 0x0 0x0 0x0 0x7ffd 0x7f3a", False),  # clock_nanosleep
    ("x86_64", "61 0x1f4 0x7ffd 0x0 0x0 0x0 0x0 0x7ffd 0x7f3a", False),  # wait4: a child
    ("x86_64", "128 0x7ffd 0x0 0x7ffd 0x8 0x0 0x0 0x7ffd 0x7f3a", False),  # rt_sigtimedwait
    ("x86_64", "running", False),  # our own code on the CPU
    ("x86_64", "-1 0x7ffd 0x7f3a", False),  # blocked outside a system call
    ("aarch64", "73 0x7ffd 0x2 0x0 0x0 0x0 0x0 0x7ffd 0x7f3a", False),  # ppoll
    ("i686", "422 0xf7a0 0x80 0x0 0x0 0x0 0x0 0xffd0 0xf7b0", False),  # futex_time64
    ("mips", "257 0xffffff9c 0x7f3a 0x90000 0x0 0x0 0x0 0x7ffd 0x7f3a", False),  # not known
])
def test_the_loop_waits_on_the_share_only_in_a_call_that_is_no_wait_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str, reading: str,
        on_the_share: bool) -> None:
    """What /proc says the loop's thread is in decides whether the watch keeps it alive: a
    look at a folder (openat, getdents64) may be the share's; a lock, a poll, a sleep, a
    wait for a child or a signal is a wait of ours, never the share's; our own code on the
    CPU, or a machine whose numbers are not known here, neither."""
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "syscall").write_text(reading + "\n", encoding="ascii")
    monkeypatch.setattr(hangwatch, "_TASKS", str(tmp_path))
    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert in_kernel_wait(4242) is on_the_share


@pytest.mark.parametrize(("kernel", "reading"), [
    ("x86_64", "240 0xf7a0 0x80 0x0 0x0 0x0 0x0 0xffd0 0xf7b0"),  # i386's futex
    ("aarch64", "240 0xf7a0 0x80 0x0 0x0 0x0 0x0 0xffd0 0xf7b0"),  # arm's futex
])
def test_a_32_bit_python_on_a_64_bit_kernel_is_told_by_its_own_call_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: str, reading: str) -> None:
    """platform.machine() names the kernel's machine, but /proc gives a 32-bit process's
    calls in the 32-bit numbering: read with the 64-bit table, i386's futex (240) was a
    call "on the share", and a loop stuck on a lock of ours was kept alive."""
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "syscall").write_text(reading + "\n", encoding="ascii")
    monkeypatch.setattr(hangwatch, "_TASKS", str(tmp_path))
    monkeypatch.setattr(platform, "machine", lambda: kernel)
    monkeypatch.setattr(hangwatch.struct, "calcsize", lambda fmt: 4)
    assert in_kernel_wait(4242) is False


def test_a_thread_in_select_is_told_from_one_reading_a_pipe() -> None:
    """On this machine, as /proc really tells it: a thread waiting in select() on a pipe
    waits on its own (no ping for it), one blocked reading the pipe is in a call a share's
    look could be."""
    if hangwatch._machine() not in hangwatch._OWN_WAITS:
        pytest.skip(f"system call numbers not known for {hangwatch._machine()}")
    r, w = os.pipe()
    tids: dict[str, int] = {}

    def waits(how: str) -> None:
        tids[how] = threading.get_native_id()
        if how == "select":
            select.select([r], [], [], 30)
        else:
            os.read(r, 1)

    def in_a_call(tid: int) -> bool:
        with open(f"/proc/self/task/{tid}/syscall", encoding="ascii") as f:
            return f.read().split()[0].isdigit()

    threads = [threading.Thread(target=waits, args=(how,), daemon=True)
               for how in ("select", "read")]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(tids) == 2 and all(in_a_call(tid) for tid in tids.values()),
                 what="both threads in their call")
        assert not in_kernel_wait(tids["select"])
        assert in_kernel_wait(tids["read"])
    finally:
        os.write(w, b"xy")
        for t in threads:
            t.join(5)
        os.close(w)
        os.close(r)


def test_a_start_on_a_hung_share_is_extended_only_up_to_its_cap(
        tmp_path: Path, notes: Notes) -> None:
    """Before READY=1 the start waits on a share that hangs: the watch extends systemd's
    start timeout while it waits, but for `start_cap` seconds in all; then it asks no more,
    and systemd's start timeout ends the start as without the watch (Restart= tries again),
    rather than a boot or `systemctl start` waiting for the whole outage."""
    now = [0.0]  # the watch's clock, moved by the test
    log = Log()
    where = tmp_path / "share"
    checks: list[None] = []

    def extensions() -> int:
        return sum(m.startswith("EXTEND_TIMEOUT_USEC=") for m in notes())

    def checks_more(n: int) -> None:
        seen = len(checks)
        wait_for(lambda: len(checks) >= seen + n, what=f"{n} checks more")

    with hung_share(where):
        watch = HangWatch(lambda: [("outbox", where)], log, keepalive=WATCHDOG_SEC / 2,
                          clock=lambda: now[0], start_cap=60.0)
        check = watch._check
        watch._check = lambda: (check(), checks.append(None))  # type: ignore[method-assign]

        def start() -> None:
            watch.start()  # and no idle(): READY=1 is not said
            with contextlib.suppress(OSError):
                os.listdir(where)
        threading.Thread(target=start, daemon=True).start()
        wait_for(lambda: watch._since is not None, what="the start begun")
        now[0] = 10.0  # past hang_after: the first extension is at 10
        wait_for(lambda: log.lines, timeout=10, what="the warning")
        wait_for(lambda: extensions() >= 2, what="the start extended while it waits")
        now[0] = 69.0  # just within the cap: still extended
        checks_more(2)
        before = extensions()
        wait_for(lambda: extensions() > before, what="an extension just within the cap")
        now[0] = 71.0  # past the cap
        checks_more(2)  # the check under way when the clock moved is over
        stopped = extensions()
        checks_more(4)
        assert extensions() == stopped, notes()
        assert "READY=1" not in notes()
        watch.stop()


def test_the_first_turn_after_ready_stuck_on_the_share_is_kept_alive_as_any_turn(
        tmp_path: Path, notes: Notes, monkeypatch: pytest.MonkeyPatch) -> None:
    """READY=1 said, the loop's first turn (the one that reads what the start found) waits
    on the outbox's share that now hangs: the watch treats it as a running loop, not a
    start: WATCHDOG=1 while it waits in the kernel (no EXTEND_TIMEOUT_USEC, which systemd
    ignores once started), a warning that says whether the watchdog is kept, and no
    'starting:' in STATUS=."""
    from fakeloop import FakeWatcher, Inline

    from daemon.configuration.config import Settings
    from daemon.loop.service import Service
    monkeypatch.setattr(Service, "_install_signals", lambda self: None)  # not the main thread
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 einvoice={"preflight": "off"})
    log = Log()
    svc = Service(s, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline(),
                  hangs=HangWatch(lambda: [], log, keepalive=WATCHDOG_SEC / 2))
    hung = threading.Event()

    def first_turn() -> float | None:
        hung.wait(30)
        with contextlib.suppress(OSError):
            os.listdir(outbox)  # waits until the share is released
        svc._stopping = True
        return None
    monkeypatch.setattr(svc, "turn", first_turn)
    ran = threading.Thread(target=svc.run, daemon=True)
    ran.start()
    wait_for(lambda: "READY=1" in notes(), what="READY=1")
    with hung_share(outbox):
        hung.set()
        wait_for(lambda: log.lines, timeout=hang_after(WATCHDOG_SEC / 2) * 4,
                 what="the warning")
        seen = len(notes())
        wait_for(lambda: notes()[seen:].count("WATCHDOG=1") >= 2, timeout=3 * WATCHDOG_SEC,
                 what="WATCHDOG=1 while the first turn waits on the share")
    ran.join(STOP_GRACE)
    assert not ran.is_alive()
    assert log.lines[0][1]["watchdog"].startswith("kept"), log.lines[0]
    running = notes()[:notes().index("STOPPING=1")]  # the stop extends its own timeout
    assert not [m for m in running if m.startswith("EXTEND_TIMEOUT_USEC=")], notes()
    assert not [s for s in notes.statuses() if s.startswith("starting:")], notes()


def _settings(tmp_path: Path, **paths: str) -> Any:
    from daemon.configuration.config import Settings
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    return Settings(outbox={"path": str(outbox)},
                    paths={"state_dir": str(tmp_path / "state"), **paths},
                    delivery={"transport": "directory", "target": str(tmp_path / "target")},
                    einvoice={"preflight": "off"})


@pytest.mark.parametrize(("inside", "what"), [("INV-1", "folder in the outbox"),
                                              ("sent", "sent folder")])
def test_a_hung_share_mounted_in_the_outbox_is_named_while_the_outbox_answers(
        tmp_path: Path, notes: Notes, inside: str, what: str) -> None:
    """A share mounted on a sidecar folder, or on sent/ inside the outbox, hangs while
    the outbox itself answers, and the loop waits on it: the warning and STATUS= name
    that folder (not the outbox, which answers, nor nothing at all)."""
    s = _settings(tmp_path, sent=str(tmp_path / "outbox" / "sent"))
    where = s.outbox.path / inside
    log = Log()
    with hung_share(where):
        watch = HangWatch(lambda: looked_at(s), log, keepalive=WATCHDOG_SEC / 2)

        def loop() -> None:
            watch.start()
            watch.idle()
            watch.busy()
            with contextlib.suppress(OSError):
                os.listdir(where)  # the loop reading the folder: waits on its share
        threading.Thread(target=loop, daemon=True).start()
        wait_for(lambda: log.lines, timeout=hang_after(WATCHDOG_SEC / 2) * 4,
                 what="the warning")
        event, fields = log.lines[0]
        assert event.startswith(f"the {what} {where} does not answer: outboxd has waited ")
        assert fields["folder"] == str(where)
        assert "check the file server and the network" in fields["fix"]
        wait_for(lambda: any(x.startswith(f"{what} {where} does not answer since ")
                             for x in notes.statuses()), what="STATUS= naming the folder")
        watch.stop()
    assert not [e for e, _ in log.lines if "outbox " + str(s.outbox.path) + " " in e]


@pytest.mark.parametrize("sidecar_listed_first", [False, True])
def test_a_share_that_hangs_after_another_still_hung_is_named_too(
        tmp_path: Path, notes: Notes, sidecar_listed_first: bool) -> None:
    """A sidecar's share hangs and is said; the loop gives up on it (its read's limit) and
    goes on, and later waits on the outbox, whose share hangs too: a second warning names
    the outbox and STATUS= says the outbox (it went on naming the sidecar, the outbox's
    hang never said), whichever of the two is listed first — the one hung already is not
    looked at again. The sidecar answering first: its info line, STATUS= still the
    outbox's (the loop still waits there)."""
    outbox, side = tmp_path / "outbox", tmp_path / "side"
    log = Log()
    listed = [("outbox", outbox), ("folder in the outbox", side)]
    if sidecar_listed_first:
        listed.reverse()
    with contextlib.ExitStack() as sidecar_share, contextlib.ExitStack() as outbox_share:
        sidecar_share.enter_context(hung_share(side))
        watch = HangWatch(lambda: listed, log, keepalive=WATCHDOG_SEC / 2)
        moved_on, second = threading.Event(), threading.Event()

        def loop() -> None:
            watch.start()
            watch.idle()
            watch.busy()
            read = threading.Thread(target=lambda: _listdir(side), daemon=True)
            read.start()  # the loop's read of the sidecar, given up on below
            second.wait(30)
            watch.idle()
            moved_on.set()
            watch.busy()
            _listdir(outbox)  # waits on the outbox's share
        threading.Thread(target=loop, daemon=True).start()
        wait_for(lambda: log.lines, timeout=hang_after(WATCHDOG_SEC / 2) * 4,
                 what="the sidecar's warning")
        assert log.lines[0][0].startswith(f"the folder in the outbox {side} does not answer")
        outbox_share.enter_context(hung_share(outbox))
        second.set()
        wait_for(moved_on.is_set, what="the loop on")
        [_, (event, fields)] = wait_for(lambda: log.lines[1:] and log.lines, timeout=hang_after(
            WATCHDOG_SEC / 2) * 4, what="the outbox's warning")
        assert event.startswith(f"the outbox {outbox} does not answer"), event
        assert fields["folder"] == str(outbox)
        wait_for(lambda: notes.statuses()[-1].startswith(f"outbox {outbox} does not answer "),
                 what="STATUS= naming the outbox")
        sidecar_share.close()
        wait_for(lambda: len(log.lines) == 3, what="the sidecar's info line")
        assert log.lines[2][0] == "the folder in the outbox answers again", log.lines
        assert notes.statuses()[-1].startswith(f"outbox {outbox} does not answer "), notes()
        outbox_share.close()
        wait_for(lambda: len(log.lines) == 4, what="the outbox's info line")
        assert log.lines[3][0] == "the outbox answers again", log.lines
    watch.stop()


def _listdir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        os.listdir(folder)


def test_shares_mounted_in_the_outbox_are_looked_at_but_not_under_a_dot_folder(
        tmp_path: Path) -> None:
    """looked_at takes the mounts below the outbox from the mount table (no look at a
    folder that may hang): a sidecar's share is looked at after the outbox; one under a
    dot-folder (a NAS's .snapshot), which the loop leaves alone, is not; a processing
    folder in the outbox is named as such once a share is mounted on the way to it."""
    s = _settings(tmp_path)
    outbox = s.outbox.path
    with hung_share(outbox / "INV-2"), hung_share(outbox / ".snapshot" / "hourly.0"), \
            hung_share(outbox / ".outboxd"):
        folders = looked_at(s)
    assert folders[0] == ("outbox", outbox)
    assert ("processing folder", s.processing_dir) in folders
    assert ("folder in the outbox", outbox / "INV-2") in folders
    assert not [f for _, f in folders if ".snapshot" in f.parts]
    # .outboxd itself: the processing folder's look covers it
    assert len(folders) == 3 + 2, folders  # outbox, sent, quarantine, processing, INV-2


def test_a_stop_stuck_on_a_hung_share_says_so_and_is_not_kept_alive(
        tmp_path: Path, notes: Notes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox's share hangs as the daemon stops: the stop (which writes the clerks'
    page into the outbox) waits on it. The watch says so as for a turn — a warning naming
    the outbox, STATUS= beginning "stopping:" — but sends no WATCHDOG=1 and asks for no
    more time: the stop's time is systemd's stop timeout. Released, the stop ends."""
    from fakeloop import FakeWatcher, Inline

    from daemon.loop.service import Service
    monkeypatch.setattr(Service, "_install_signals", lambda self: None)  # not the main thread
    s = _settings(tmp_path)
    outbox = s.outbox.path
    log = Log()
    svc = Service(s, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline(),
                  hangs=HangWatch(lambda: [], log, keepalive=WATCHDOG_SEC / 2))
    hung = threading.Event()

    def turn() -> float | None:
        hung.wait(30)
        svc.request_stop()  # as SIGTERM: the stop begins with the share already hung
        return None
    monkeypatch.setattr(svc, "turn", turn)
    ran = threading.Thread(target=svc.run, daemon=True)
    ran.start()
    wait_for(lambda: "READY=1" in notes(), what="READY=1")
    with hung_share(outbox):
        hung.set()
        wait_for(lambda: log.lines, timeout=hang_after(WATCHDOG_SEC / 2) * 4,
                 what="the warning")
        event, fields = log.lines[0]
        assert event.startswith(f"the outbox {outbox} does not answer")
        assert fields["watchdog"].startswith("not kept")
        wait_for(lambda: any(x.startswith(f"stopping: outbox {outbox} does not answer since ")
                             for x in notes.statuses()), what="STATUS= saying the stop waits")
        assert ran.is_alive()
    ran.join(STOP_GRACE)
    assert not ran.is_alive()
    stop = notes()[notes().index("STOPPING=1") + 1:]
    assert "WATCHDOG=1" not in stop, stop
    assert [m for m in stop if m.startswith("EXTEND_TIMEOUT_USEC=")] == [stop[0]], stop


def test_a_share_that_answers_slowly_is_not_said_to_hang(tmp_path: Path, notes: Notes) -> None:
    """A look that takes longer than a check's time but answers within the look's
    limit (a loaded share, here one that answers after 1 s against a limit of 1.5 s, where
    a check comes every 0.75 s) is no hang: no "does not answer" and then "answers again"
    pair, no ping."""
    now = [0.0]  # the turn's clock, moved by the test; a look's time is real
    log = Log()
    where = tmp_path / "share"
    keepalive = 6.0  # after: 3 s; a check every 0.75 s; a look is given 1.5 s
    checks: list[None] = []
    with hung_share(where):
        watch = HangWatch(lambda: [("outbox", where)], log, keepalive=keepalive,
                          clock=lambda: now[0])
        check = watch._check
        watch._check = lambda: (check(), checks.append(None))  # type: ignore[method-assign]

        begun = threading.Event()

        def loop() -> None:
            watch.start()
            watch.idle()
            watch.busy()
            begun.set()
            with contextlib.suppress(OSError):
                os.listdir(where)
        threading.Thread(target=loop, daemon=True).start()
        wait_for(begun.is_set, what="the turn begun")
        now[0] = hang_after(keepalive)  # the turn has lasted `after`: the folder is looked at
        wait_for(lambda: watch._looks, what="the look begun")
        # The share's own slowness, not a wait for the code under test.
        threading.Event().wait(1.0)
    seen = len(checks)
    wait_for(lambda: len(checks) >= seen + 2, what="two checks more")
    watch.stop()
    assert log.lines == []
    assert "WATCHDOG=1" not in notes()


@pytest.mark.parametrize(("watchdog_sec", "after"), [(None, 20.0), (120.0, 20.0), (60.0, 15.0),
                                                     (8.0, 2.0), (2.0, 1.0)])
def test_a_turn_is_looked_into_after_a_quarter_of_the_watchdogs_time_at_most(
        watchdog_sec: float | None, after: float) -> None:
    """The loop's last ping may be half of WatchdogSec= old when a turn begins: the
    warning comes after HANG_SECONDS, or a quarter of WatchdogSec= when less (a second at
    least), so that the look and the first ping fit before systemd kills the daemon."""
    assert hang_after(None if watchdog_sec is None else watchdog_sec / 2) == after


def test_the_folders_are_looked_at_from_halfway_through_a_turns_time(tmp_path: Path) -> None:
    """The looks begin once a turn has lasted half of `after` and are given the other
    half, so that a hang is said when the turn has lasted `after` — not half of it later,
    when the watchdog may have killed the daemon already."""
    now = [0.0]
    watch = HangWatch(lambda: [("outbox", tmp_path)], Log(), keepalive=None,
                      clock=lambda: now[0])
    looked: list[float] = []
    real = watch._looking
    watch._looking = lambda folder: (looked.append(now[0]), real(folder))[1]  # type: ignore[method-assign]
    watch.busy()
    for now[0] in (watch.after / 2 - 0.1, watch.after / 2):
        watch._check()
    assert looked == [watch.after / 2] and watch._hung == {}


def test_the_turn_a_hang_was_found_in_has_no_more_looks_and_a_later_long_one_has(
        tmp_path: Path) -> None:
    """Once a folder hangs, the rest of that turn waits on it: the other folders are not
    looked at again at each check (a thread each time, for nothing). A later turn that
    lasts as long has them looked at again (the loop may wait on another share now)."""
    import time

    now = [0.0]
    hung, other = tmp_path / "hung", tmp_path / "other"
    watch = HangWatch(lambda: [("outbox", hung), ("sent folder", other)], Log(),
                      keepalive=2.0, clock=lambda: now[0])  # a look is given 0.5 s
    looked: list[str] = []
    gate = threading.Event()

    def looking(folder: Path) -> tuple[threading.Thread, float]:
        looked.append(folder.name)
        look = threading.Thread(target=gate.wait if folder == hung else lambda: None,
                                daemon=True)
        look.start()
        watch._looks[folder] = (look, time.monotonic())
        return watch._looks[folder]

    watch._looking = looking  # type: ignore[method-assign]
    try:
        watch.busy()
        for _ in range(2):  # the turn hangs, and goes on hanging
            now[0] += watch.after
            watch._check()
        assert looked == ["hung", "other"] and list(watch._hung) == [hung]
        watch.busy()
        now[0] += watch.after
        watch._check()
        assert looked == ["hung", "other", "other"]
    finally:
        gate.set()


def test_a_check_that_fails_unexpectedly_is_logged_and_the_watch_goes_on(
        tmp_path: Path) -> None:
    """A bug in one check (the folders to look at cannot be told, once): an error line
    with its traceback, and the watch goes on — the loop stuck on a hung share after it
    is still named in the warning, not left to systemd's watchdog alone."""
    log = Log()
    where = tmp_path / "share"
    asked: list[None] = []

    def folders() -> list[tuple[str, Path]]:
        asked.append(None)
        if len(asked) == 1:
            raise RuntimeError("a bug in one check")
        return [("outbox", where)]

    with hung_share(where):
        watch = HangWatch(folders, log, keepalive=None)
        watch.after, watch._every, watch.look_for = 1.0, 0.25, 0.5

        def loop() -> None:
            watch.start()
            watch.idle()
            watch.busy()
            with contextlib.suppress(OSError):
                os.listdir(where)
        threading.Thread(target=loop, daemon=True).start()
        wait_for(lambda: [e for e, _ in log.lines if "does not answer" in e], timeout=30,
                 what="the warning after the failed check")
        watch.stop()
    [(event, fields)] = [line for line in log.lines if line[0] == "unexpected error"]
    assert isinstance(fields["exc_info"], RuntimeError)
    assert log.lines.index((event, fields)) == 0


@pytest.mark.parametrize("reading", [None, ""], ids=["thread-gone", "empty"])
def test_a_loop_thread_proc_cannot_tell_of_is_never_taken_for_one_on_the_share(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reading: str | None) -> None:
    """/proc has no syscall file for the loop's thread (gone, or /proc restricted), or an
    empty one: the watch cannot tell that the loop waits on the share, so it is not kept
    alive by the watch — systemd's watchdog decides, as for any loop stuck elsewhere."""
    if reading is not None:
        (tmp_path / "4242").mkdir()
        (tmp_path / "4242" / "syscall").write_text(reading, encoding="ascii")
    monkeypatch.setattr(hangwatch, "_TASKS", str(tmp_path))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert in_kernel_wait(4242) is False
