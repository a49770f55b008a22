"""The signals around a command's run (daemon/cmdsignals.py): what a command gets of them
before it runs, and what its caller, or its process, has of them at its end."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from conftest import OUTBOXD, Env

from daemon import GROUP_SIGNALS
from daemon.cli import main


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`run` sets up logging for the process (JSON to stderr): put back after the test."""
    config, handlers, level = structlog.get_config(), logging.root.handlers[:], \
        logging.root.level
    yield
    structlog.configure(**config)
    logging.root.handlers[:], logging.root.level = handlers, level


@pytest.fixture
def services_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The self-pipe of each Service `run` makes in this process, closed after the test:
    the daemon leaves it to the exit that follows its run, a test goes on."""
    from daemon.loop.service import Service
    made: list[Service] = []
    real_init = Service.__init__

    def init(self: Service, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)
    monkeypatch.setattr(Service, "__init__", init)
    yield
    for svc in made:
        svc._wake.close()


def _signals() -> tuple[set[signal.Signals], list[Any]]:
    """Which group signals this thread blocks, and their handlers."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    return ({s for s in GROUP_SIGNALS if s in blocked},
            [signal.getsignal(s) for s in GROUP_SIGNALS])


@pytest.mark.parametrize("blocked_before", [False, True], ids=["none", "sighup-blocked"])
def test_run_with_a_configuration_that_does_not_load_leaves_the_signals_as_it_found_them(
        env: Env, capsys, restored_logging: None, blocked_before: bool) -> None:
    """`main(["run", …])` blocks SIGTERM, SIGHUP and SIGINT while it starts: a
    configuration error (exit 2) used to return with them still blocked, leaving the
    caller unable to be stopped. Now it returns with the mask and handlers it found —
    all unblocked, or a caller's own blocked SIGHUP still blocked."""
    env.write_config("ftp://operator.example/x")
    if blocked_before:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGHUP])
    try:
        before = _signals()
        assert main(["run", "-c", str(env.config)]) == 2
        assert _signals() == before
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)  # as before the test
    assert "configuration error" in capsys.readouterr().err


def test_run_whose_start_fails_leaves_the_signals_as_it_found_them(
        lean: Env, restored_logging: None, services_closed: None) -> None:
    """A start that fails after the service took the signals over (its journal path is
    a folder: exit 1) returns with them unblocked and the caller's handlers back, not
    the stopped service's (a Ctrl-C would have asked a dead service to stop)."""
    lean.write_config("http://127.0.0.1:9/bundles")
    (lean.state / "journal.sqlite3").mkdir(parents=True)
    before = _signals()
    assert main(["run", "-c", str(lean.config)]) == 1
    assert _signals() == before


def test_run_that_ends_with_a_stop_leaves_the_signals_as_it_found_them(
        lean: Env, restored_logging: None, services_closed: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon run in this process and stopped by SIGTERM right after its start (exit 0)
    returns with the signals unblocked and the caller's handlers back."""
    from daemon.loop.service import Service
    lean.write_config("http://127.0.0.1:9/bundles")
    real_open = Service.open

    def open_then_stop(self: Service) -> None:
        real_open(self)
        signal.raise_signal(signal.SIGTERM)  # to this thread: the service's handler
    monkeypatch.setattr(Service, "open", open_then_stop)
    before = _signals()
    assert main(["run", "-c", str(lean.config)]) == 0
    assert _signals() == before


def test_a_ctrl_c_while_run_loads_a_bad_configuration_is_an_interrupt_not_a_traceback(
        env: Env, capsys, restored_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C (SIGINT) that comes while `run` loads a configuration that then fails
    waits, blocked; when main puts the mask back it takes effect as an interrupt:
    exit 130 after the configuration error, no KeyboardInterrupt out of main, SIGINT
    unblocked again."""
    from daemon.actions import common
    env.write_config("ftp://operator.example/x")
    real_load = common.load_settings

    def interrupted_load(*args: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGINT)  # blocked: pending until main returns
        return real_load(*args, **kwargs)
    monkeypatch.setattr(common, "load_settings", interrupted_load)
    before = _signals()
    assert main(["run", "-c", str(env.config)]) == 130
    assert _signals() == before
    assert "configuration error" in capsys.readouterr().err


def _as_from_a_terminal() -> None:
    """SIGHUP as a shell in a terminal leaves it to what it starts: default, unblocked.
    The test's own may be ignored (a run under nohup), and that is inherited."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})


def test_a_hang_up_still_ends_a_command_other_than_run(tmp_path: Any) -> None:
    """Only `run` keeps the SIGHUP the entry point blocked (its reload): `outboxd receiver`,
    like every other command, is ended by a SIGHUP (a closed terminal) as before."""
    receiver = subprocess.Popen(
        [*OUTBOXD, "receiver", "--listen", "127.0.0.1:0", "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=_as_from_a_terminal)
    try:
        assert receiver.stdout is not None
        assert "127.0.0.1" in receiver.stdout.readline().decode()  # past its start
        receiver.send_signal(signal.SIGHUP)
        assert receiver.wait(timeout=20) == -signal.SIGHUP
    finally:
        receiver.kill()
        receiver.wait()


def test_a_command_other_than_run_runs_with_sighup_as_its_caller_had_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point unblocks SIGHUP for `status` (any command but run) before the
    command runs, unless its caller had it blocked already: then it stays blocked."""
    from daemon import entry
    from daemon.actions import status
    seen: list[bool] = []
    monkeypatch.setattr(status, "run", lambda args: seen.append(
        signal.SIGHUP in signal.pthread_sigmask(signal.SIG_BLOCK, ())) or 0)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        assert entry.main(["status"]) == 0
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        assert entry.main(["status"]) == 0
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert seen == [False, True]


# The command as `outboxd` runs it, saying on stderr when the interpreter, the command
# over, begins to wait for its threads (threading's exit callbacks run before the join).
_SAYS_WHEN_IT_WAITS = [
    sys.executable, "-c",
    "import sys, threading\n"
    "from daemon.entry import main\n"
    "code = main(sys.argv[1:])\n"
    "threading._register_atexit(lambda: print('waiting for threads', file=sys.stderr, "
    "flush=True))\n"
    "sys.exit(code)"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_the_exit_waits_for_a_busy_read_ends_it_with_the_commands_code(
        env: Env, stop: signal.Signals) -> None:
    """`check` reading in its own process (`[service] reader_processes = 0`) a PDF that
    keeps pypdf busy for a minute and more, ended by a Ctrl-C (exit 130): the interpreter
    then waits for the read's thread, and a second Ctrl-C or a kill, ignored since the
    command was over, could not end it until the read did. Either ends it at once, with
    the command's exit code (130), not by the signal."""
    from actions.test_reads import endless_invoice_pdf
    from helpers import wait_for, write
    env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"},
                     service={"reader_processes": 0})
    write(env.outbox / "INV-666.pdf", endless_invoice_pdf())
    err = env.root / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen([*_SAYS_WHEN_IT_WAITS, "check", "-c", str(env.config),
                                 str(env.outbox / "INV-666.pdf")], stdout=subprocess.DEVNULL,
                                stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        # Reading: a thread of the pool besides the main one.
        wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) > 1, timeout=30,
                 what="the read under way")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "waiting for threads" in err.read_text(), timeout=30,
                 what="the command over, its exit waiting for the read")
        assert proc.poll() is None, "the read ended: this test shows nothing"
        proc.send_signal(stop)
        assert proc.wait(timeout=10) == 130
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in err.read_text()
