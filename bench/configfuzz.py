"""`python -m bench.configfuzz [--seed S] [--argv N] [--run | --reload] [--match TEXT]`: a
seeded fuzz of the configuration and the command line (docs/development.md, Fuzzing the
configuration).

Every case (bench/configcases.py: a configuration file or its bytes, environment
overrides and a command line, made from the settings model itself) is run through
`cli.main` in this process, its stdout and stderr captured; with --run also `outboxd
run` as a subprocess, stopped once ready; with --reload given by SIGHUP to one running
daemon. The oracle (`verdict`) holds what docs/commands.md promises of every command: an
exit code that command documents, no traceback, an error on stderr that names the key
or argument at fault, no secret of the case in any output, under JSON logging every
line of `run` JSON, and a started daemon idle while nothing happens.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.configcases import SECRETS, TOKEN, Case, Workspace, cases, toml_text

__all__ = ["TOKEN", "Case", "Outcome", "sweep", "reload_sweep", "verdict"]

# What each command may exit with (docs/commands.md, Exit codes); 130 is Ctrl-C only.
EXITS: dict[str, set[int]] = {"config": {0, 2}, "run": {0, 1, 2}}
DEFAULT_EXITS = {0, 1, 2}


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@contextlib.contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("OUTBOXD")}
    for k in saved:
        del os.environ[k]
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.upper().startswith("OUTBOXD")]:
            del os.environ[k]
        os.environ.update(saved)


def write_case(ws: Workspace, case: Case) -> str:
    if case.path:
        return case.path
    if case.data is None:
        with contextlib.suppress(FileNotFoundError):
            ws.config.unlink()
        return str(ws.config)
    ws.config.write_bytes(case.data)
    ws.config.chmod(0o600)
    return str(ws.config)


def in_process(ws: Workspace, case: Case) -> Outcome:
    """The case through cli.main in this process, its output captured."""
    from daemon import cli
    path = write_case(ws, case)
    out, err = io.StringIO(), io.StringIO()
    with environment(case.env), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = cli.main(["-c", path, *case.argv])
        except SystemExit as exc:  # --help, --version
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # noqa: BLE001 - what escapes main is the finding
            import traceback
            err.write("Traceback (escaped cli.main)\n" + "".join(
                traceback.format_exception(exc)))
            code = -1
    return Outcome(code, out.getvalue(), err.getvalue())


def run_daemon(ws: Workspace, case: Case, timeout: float = 8.0) -> Outcome:
    """`outboxd run` on the case as a subprocess: refused at start, or stopped with SIGTERM
    once ready (its ready file in the state dir)."""
    path = write_case(ws, case)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTBOXD")}
    env.update(case.env)
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "-c", path, "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=ws.root, start_new_session=True)
    try:
        out, err, busy = _watched(proc, ws, timeout)
    except BaseException:
        # Stopped mid-case (SIGTERM, ^C): the daemon, in a session of its own, lived on.
        proc.kill()
        proc.wait()
        raise
    return Outcome(proc.returncode, out.decode(errors="replace"),
                   err.decode(errors="replace") + busy)


def _watched(proc: subprocess.Popen[bytes], ws: Workspace, timeout: float
             ) -> tuple[bytes, bytes, str]:
    """The started daemon's output once stopped, and what it spent idle."""
    deadline = time.monotonic() + timeout
    ready = ws.root / "state" / "outboxd.ready"
    while proc.poll() is None and time.monotonic() < deadline:
        if ready.exists():
            break
        time.sleep(0.05)  # polling a subprocess's file for its readiness, with a deadline
    busy = ""
    if proc.poll() is None and ready.exists():
        # Idle on an empty outbox, the daemon should spend next to no CPU: a setting that
        # makes it spin (a rescan every 1e-300 s) shows here.
        before = _cpu_seconds(proc.pid)
        time.sleep(IDLE_LOOK)  # a measurement over a fixed span, not a wait for an outcome
        spent = _cpu_seconds(proc.pid) - before
        if spent > IDLE_LOOK / 2:
            busy = f"\n(busy while idle: {spent:.2f} s of CPU in {IDLE_LOOK} s)"
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += b"\n(hung: killed)"
    return out, err, busy


IDLE_LOOK = 1.0  # seconds of an idle daemon's CPU looked at


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verdict(case: Case, outcome: Outcome, command: str) -> list[str]:
    """What the oracle finds wrong with an outcome: [] when it holds."""
    bad = []
    allowed = EXITS.get(command, DEFAULT_EXITS)
    text = outcome.out + outcome.err
    if outcome.code not in allowed:
        bad.append(f"exit {outcome.code} not one of {sorted(allowed)}")
    if "Traceback" in text:
        bad.append("a traceback")
    for secret in SECRETS:
        if secret in text:
            bad.append("a secret printed")
    if case.refused and outcome.code != 2 and command != "run":
        bad.append(f"exit {outcome.code} where the configuration must be refused (2)")
    if case.refused and command == "run" and outcome.code == 0:
        bad.append("run started on a configuration that must be refused")
    if outcome.code == 2 and not outcome.err.strip():
        bad.append("exit 2 with nothing on stderr")
    if outcome.code == 2 and case.names and "configuration error" in outcome.err and not any(
            n.lower() in outcome.err.lower() for n in case.names):
        bad.append(f"the error names none of {case.names}")
    if "(busy while idle:" in outcome.err:
        bad.append(outcome.err.rsplit("(", 1)[1].rstrip(")"))
    if command == "run" and not outcome.err.startswith("usage:"):
        # A usage error comes before any configuration is read, its format unknown: plain
        # (docs/commands.md, For every command).
        lines = [line for line in outcome.err.splitlines()
                 if line.strip() and not line.startswith(("(busy while idle:", "(hung:"))]
        for line in lines:
            try:
                json.loads(line)
            except ValueError:
                bad.append(f"a log line of run that is no JSON: {line[:120]!r}")
                break
    if long := [line for line in outcome.err.splitlines() if len(line) > 20_000]:
        bad.append(f"an error line of {len(long[0]):,} characters: {long[0][:300]!r}")
    return bad


def sweep(root: Path, seed: int, n_argv: int, daemon: bool, only: Callable[[Case], bool]
          = lambda c: True, report: Callable[[str], None] = print, sample: int = 0
          ) -> list[tuple[str, str]]:
    """Every case through the oracle (`sample`: that many of them, drawn with the seed);
    (case, finding) of each that breaks it."""
    ws = Workspace(root)
    rng = random.Random(seed)
    found: list[tuple[str, str]] = []
    todo = [c for c in cases(ws, seed, n_argv) if only(c)]
    for case in rng.sample(todo, sample) if 0 < sample < len(todo) else todo:
        outcome = in_process(ws, case)
        command = " ".join(case.argv[:2]) if case.argv[:2] == ["config", "--check"] \
            else case.argv[0]
        for problem in verdict(case, outcome, command):
            found.append((case.name, problem))
            report(f"{case.name} :: {' '.join(case.argv)[:80]} :: exit {outcome.code} :: "
                   f"{problem}\n    {outcome.err[-600:]!r}")
        if not daemon or case.name.startswith("argv "):
            continue
        checked = in_process(ws, Case(case.name, case.data, case.env, ["config", "--check"],
                                      case.names, case.path))
        # Every configuration `config --check` passes must start; of those it refuses, one
        # in ten shows how `run` refuses it (its lines JSON, under systemd).
        if checked.code == 0 or rng.random() < 0.1:
            outcome = run_daemon(ws, Case(case.name, case.data, case.env, ["run"],
                                          case.names, case.path))
            if checked.code == 0 and outcome.code != 0:
                found.append((case.name + " (run)", "config --check passed, run did not"))
                report(f"{case.name} :: run after config --check passed :: exit "
                       f"{outcome.code}\n    {outcome.err[-600:]!r}")
            for problem in verdict(case, outcome, "run"):
                found.append((case.name + " (run)", problem))
                report(f"{case.name} :: run :: exit {outcome.code} :: {problem}\n"
                       f"    {outcome.err[-600:]!r}")
    return found


RELOAD_ENDS = ("configuration reloaded", "configuration not reloaded")


def reload_sweep(root: Path, seed: int, only: Callable[[Case], bool] = lambda c: True,
                 report: Callable[[str], None] = print, limit: int = 0
                 ) -> list[tuple[str, str]]:
    """One daemon, and each file case given to it by SIGHUP: every reload must end in a
    line saying it was done or refused, the daemon still running, its lines JSON, no
    traceback, no secret. (Environment and -c cases need a start of their own: not here.)"""
    ws = Workspace(root)
    base = ws.base()
    base["log"] = {"format": "json"}
    good = toml_text(base).encode()
    ws.config.write_bytes(good)
    ws.config.chmod(0o600)
    log = root / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTBOXD")}
    found: list[tuple[str, str]] = []
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "-c", str(ws.config), "run"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=root,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while b"outboxd running" not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the daemon did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)  # polling its log for the start, with a deadline
            file_cases = [c for c in cases(ws, seed, 0) if not c.env and not c.path
                          and c.data is not None and only(c)]
            for n, case in enumerate(file_cases[:limit or None]):
                before = sum(log.read_text(errors="replace").count(e) for e in RELOAD_ENDS)
                # Written whole before the signal: a reload never reads half a file here.
                tmp = ws.config.with_suffix(".tmp")
                tmp.write_bytes(case.data or b"")
                tmp.chmod(0o600)
                os.replace(tmp, ws.config)
                proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 15
                while sum(log.read_text(errors="replace").count(e)
                          for e in RELOAD_ENDS) <= before:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)  # polling the log for the reload's line, with a deadline
                problem = ("the daemon stopped" if proc.poll() is not None else
                           "" if sum(log.read_text(errors="replace").count(e)
                                     for e in RELOAD_ENDS) > before else
                           "no line said the reload was done or refused within 15 s")
                if problem:
                    found.append((case.name, problem))
                    report(f"{case.name} :: reload :: {problem}\n    "
                           f"{log.read_text(errors='replace')[-800:]!r}")
                    if proc.poll() is not None:
                        break
                if n % 200 == 0:
                    # Back to the good file now and then: a good reload that changed the
                    # folders or patterns must not decide what the next cases meet.
                    ws.config.write_bytes(good)
                    proc.send_signal(signal.SIGHUP)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    outcome = Outcome(proc.returncode, "", log.read_text(errors="replace"))
    for problem in verdict(Case("reloads", None), outcome, "run"):
        found.append(("reloads", problem))
        report(f"reloads :: {problem}")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.configfuzz", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--argv", type=int, default=400, help="argv cases (default %(default)s)")
    p.add_argument("--run", action="store_true", help="also `outboxd run` on each case "
                   "config accepts (slow: a daemon start each)")
    p.add_argument("--reload", action="store_true", help="instead: one daemon given each "
                   "file case by SIGHUP")
    p.add_argument("--match", default="", help="only cases whose name holds this")
    args = p.parse_args(argv)
    # `--run` takes most of an hour and is as often stopped as ended (by `timeout`, say):
    # SIGTERM unwinds as an exit, so no daemon and no temp folder outlives the campaign,
    # and each finding is out as soon as found, not lost in a pipe's buffer.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        if args.reload:
            found = reload_sweep(Path(tmp), args.seed, lambda c: args.match in c.name)
        else:
            found = sweep(Path(tmp), args.seed, args.argv, args.run,
                          lambda c: args.match in c.name)
    print(f"{len(found)} findings")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
