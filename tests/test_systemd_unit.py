"""systemd/: the unit is a hardened Type=notify service (exposure at most 1.5 by
`systemd-analyze security`), with sysusers and tmpfiles snippets for its user and folders."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon import cli, logs
from daemon.actions import EXIT_FAILED, EXIT_USAGE
from daemon.configuration.config import ServiceConfig

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "outboxd.service"


def _settings() -> dict[str, list[str]]:
    """Each key of the unit with its values, in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_is_a_notify_service_with_watchdog_reload_and_umask() -> None:
    """Type=notify (READY=1 from the daemon), a watchdog, reload by SIGHUP, files created
    group-readable at most (UMask=0027), and a stop timeout longer than the default
    shutdown grace, so systemd does not kill deliveries the daemon is still finishing."""
    unit = _settings()
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert re.fullmatch(r"\S*outboxd run( .*)?", unit["ExecStart"][0])
    assert "-HUP" in unit["ExecReload"][0]
    assert unit["UMask"] == ["0027"]
    assert float(unit["WatchdogSec"][0]) > 0
    grace = ServiceConfig.model_fields["shutdown_grace_seconds"].default
    assert float(unit["TimeoutStopSec"][0]) > grace


def test_sysusers_and_tmpfiles_make_the_user_and_the_folders_the_unit_uses() -> None:
    """The snippets create the user and group the unit runs as, its state directory and
    the outbox tree the unit may write."""
    unit = _settings()
    sysusers = (SYSTEMD / "outboxd.sysusers.conf").read_text(encoding="utf-8")
    tmpfiles = (SYSTEMD / "outboxd.tmpfiles.conf").read_text(encoding="utf-8")
    assert re.search(rf"^u {unit['User'][0]}\b", sysusers, re.M)
    assert re.search(rf"^g {unit['Group'][0]}\b", sysusers, re.M)
    assert re.search(rf"^d /var/lib/{unit['StateDirectory'][0]}\s", tmpfiles, re.M)
    for folder in unit["ReadWritePaths"]:
        assert re.search(rf"^d {re.escape(folder)}\s", tmpfiles, re.M), folder


def test_systemd_analyze_rates_the_unit_at_most_1_5() -> None:
    """`systemd-analyze security` gives the unit an overall exposure of 1.5 or less."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("needs systemd-analyze")
    done = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {done.stderr[:200]}")
    assert float(match.group(1)) <= 1.5, done.stdout


OPERATIONS = SYSTEMD.parent / "docs" / "operations.md"


def test_the_credential_file_the_unit_loads_is_made_before_the_first_start() -> None:
    """systemd does not start a unit whose LoadCredential= file is missing (exit code 243,
    EXIT_CREDENTIALS, before outboxd runs: outboxd logs nothing). operations.md makes
    that very file in its install steps, says it must exist before the first start and
    what a start without it looks like, and the unit says so beside the line."""
    [credential] = _settings()["LoadCredential"]
    name, _, source = credential.partition(":")
    assert name == "token" and source.startswith("/")
    guide = OPERATIONS.read_text(encoding="utf-8")
    assert f"install -m 0600 /dev/null {source}" in guide
    assert f"**`{source}` must exist before the first start**" in guide
    assert "exit code 243" in guide and "`EXIT_CREDENTIALS`" in guide
    assert "| the service does not start, exit code 243 (`EXIT_CREDENTIALS`)" in guide
    unit = UNIT.read_text(encoding="utf-8")
    assert f"# {source} MUST EXIST before the first start" in unit
    assert "exit code 243 (EXIT_CREDENTIALS" in unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong in the unit. ExecStart= names this
    test's own outboxd: verify checks that the command exists, and /usr/bin/outboxd is
    where a package installs it, not where the tests run. A systemd older than 254 names
    the restart back-off's two keys as unknown and ignores them, and says nothing else:
    the unit loads there too (restarting every RestartSec=, as docs/operations.md says)."""
    tool = shutil.which("systemd-analyze")
    outboxd = shutil.which("outboxd") or str(Path(sys.executable).parent / "outboxd")
    if tool is None or not Path(outboxd).is_file():
        pytest.skip("needs systemd-analyze and an installed outboxd")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/bin/outboxd", outboxd),
                    encoding="utf-8")
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    if _systemd_version(tool) >= 254:
        assert done.stderr == "", done.stderr
    else:
        # Before 254 the restart back-off's keys are unknown: each is named, ignored (so
        # the unit loads, restarting every RestartSec=), and nothing else is said.
        lines = sorted(line.partition(": ")[2] for line in done.stderr.splitlines())
        assert lines == [f"Unknown key '{key}' in section [Service], ignoring."
                         for key in BACKOFF_KEYS], done.stderr


BACKOFF_KEYS = ("RestartMaxDelaySec", "RestartSteps")  # systemd 254 and later


def _systemd_version(tool: str) -> int:
    """The version of systemd that `tool` (systemd-analyze) belongs to, e.g. 252."""
    done = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    match = re.match(r"systemd (\d+)", done.stdout)
    assert match, done.stdout
    return int(match.group(1))


def _seconds(span: str) -> float:
    """A systemd time span as the unit writes them ("5", "300s", "5min") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?", span)
    assert match, span
    unit = {"ms": 0.001, "min": 60, "m": 60, "h": 3600}.get(match.group(2) or "s", 1)
    return float(match.group(1)) * unit


def _restart_delays(settings: dict[str, list[str]], count: int) -> list[float]:
    """The waits before the first `count` restarts in a row, as systemd computes them
    (service_restart_usec_next in src/core/service.c): RestartSec= first, then up to
    RestartMaxDelaySec= in RestartSteps= geometric steps, then that for ever."""
    first = _seconds(settings["RestartSec"][0])
    top = _seconds(settings["RestartMaxDelaySec"][0])
    steps = int(settings["RestartSteps"][0])
    return [first if n <= 1 else top if n > steps else first * (top / first) ** ((n - 1) / steps)
            for n in range(1, count + 1)]


def test_a_configuration_error_is_not_restarted_but_other_failures_are(tmp_path: Path,
                                                                      capsys: Any) -> None:
    """`outboxd run` on a bad configuration exits with a code the unit does not restart
    (it would fail the same way every RestartSec= for ever), while an exit of a failure
    that may pass (1: the environment, e.g. the state dir held by another daemon) is
    restarted by Restart=on-failure."""
    bad = tmp_path / "config.toml"
    bad.write_text('[outbox]\npath = "/nonexistent/outbox"\nno_such_key = 1\n', encoding="utf-8")
    code = cli.main(["run", "-c", str(bad)])
    assert "no_such_key" in capsys.readouterr().err
    unit = _settings()
    assert unit["Restart"] == ["on-failure"]
    prevented = {int(c) for v in unit.get("RestartPreventExitStatus", []) for c in v.split()}
    assert code == EXIT_USAGE and code in prevented
    assert EXIT_FAILED not in prevented


def test_the_unit_waits_for_the_mounts_of_every_folder_it_may_write() -> None:
    """RequiresMountsFor= names the outbox and the folders beside it (not only their
    parent): a share mounted on the outbox folder itself is waited for, and a share that
    failed to mount keeps outboxd from starting on the empty mount point."""
    unit = _settings()
    required = {p for v in unit["RequiresMountsFor"] for p in v.split()}
    tmpfiles = (SYSTEMD / "outboxd.tmpfiles.conf").read_text(encoding="utf-8")
    for folder in ("outbox", "sent", "quarantine"):
        path = f"{unit['ReadWritePaths'][0]}/{folder}"
        assert path in required, path
        assert re.search(rf"^d {re.escape(path)}\s", tmpfiles, re.M), path


def test_an_outbox_not_there_at_start_is_restarted_until_its_share_is(tmp_path: Path,
                                                                     capsys: Any) -> None:
    """`outboxd run` with a valid configuration whose outbox is not there (a share mounted
    a minute late, a NAS rebooting) exits 1, which Restart=on-failure restarts and
    RestartPreventExitStatus= does not prevent: outboxd starts once the share is up,
    instead of staying dead. The unit's comment beside RestartPreventExitStatus=2 says so,
    not (as before) that a missing outbox is a 2 that is not restarted."""
    config = tmp_path / "config.toml"
    config.write_text(f'[outbox]\npath = "{tmp_path / "gone"}"\n[delivery]\n'
                      f'url = "http://127.0.0.1:9/x"\n[paths]\n'
                      f'state_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    try:
        code = cli.main(["run", "-c", str(config)])
    finally:
        logs.configure()  # `run` set up the process's logging from the configuration
    err = capsys.readouterr().err
    assert "the outbox does not exist" in err and "Mount it" in err
    unit = _settings()
    prevented = {int(c) for v in unit.get("RestartPreventExitStatus", []) for c in v.split()}
    assert code == EXIT_FAILED and code not in prevented
    assert unit["Restart"] == ["on-failure"]
    why = _comment_above("RestartPreventExitStatus")
    assert "An outbox that is not there at start" in why and "exit 1, restarted" in why
    assert "missing outbox" not in why


def test_a_full_disk_where_a_folder_is_made_at_start_is_restarted_until_there_is_room(
        tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`outboxd run` whose processing folder a full disk refuses (ENOSPC injected;
    tests/faults/test_full_share.py on a real full ext4) exits 1, which the unit restarts,
    not the 2 of a configuration error that RestartPreventExitStatus= leaves down after
    the disk is freed; its line names the folder, "No space left on device" and the fix."""
    (tmp_path / "outbox").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[outbox]\npath = "{tmp_path / "outbox"}"\n[delivery]\n'
                      f'url = "http://127.0.0.1:9/x"\n[paths]\n'
                      f'state_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    real, processing = Path.mkdir, tmp_path / "outbox" / ".outboxd" / "processing"

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == processing:
            raise OSError(28, "No space left on device", str(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    try:
        code = cli.main(["run", "-c", str(config)])
    finally:
        logs.configure()  # `run` set up the process's logging from the configuration
    err = capsys.readouterr().err
    assert "cannot start: a folder it writes to cannot be made" in err, err
    assert f"[paths] processing: cannot create {processing}: No space left" in err, err
    assert "free space on that file system" in err and "configuration error" not in err, err
    unit = _settings()
    prevented = {int(c) for v in unit.get("RestartPreventExitStatus", []) for c in v.split()}
    assert code == EXIT_FAILED and code not in prevented


def _comment_above(key: str) -> str:
    """The comment lines right above the unit's first `key=` line, joined by spaces."""
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
    above: list[str] = []
    while at > 0 and lines[at - 1].startswith("#"):
        at -= 1
        above.insert(0, lines[at].lstrip("# "))
    return " ".join(above)


def test_restarts_back_off_to_at_most_5_minutes_as_the_guide_says() -> None:
    """A share away for a night at start: the first try again comes after 5 s (a share
    mounted a little late is picked up at once), later ones back off to one every 5
    minutes, so an hour of it logs some 12 tries, not 720, and a share that comes back is
    picked up within 5 minutes. operations.md and the unit's comment give that bound, and
    say what a systemd older than 254 (the keys unknown) does."""
    unit = _settings()
    delays = _restart_delays(unit, 1000)
    assert delays[0] == 5
    assert delays == sorted(delays) and max(delays) == 300
    first_hour = next(n for n in range(len(delays)) if sum(delays[:n + 1]) > 3600)
    night = next(n for n in range(len(delays)) if sum(delays[:n + 1]) > 12 * 3600)
    assert first_hour <= 20 and night <= 160
    guide = OPERATIONS.read_text(encoding="utf-8")
    assert "**outboxd still runs within\n  5 minutes of the share coming back**" in guide
    assert "`RestartSteps=6`, `RestartMaxDelaySec=5min`" in guide
    assert "systemd 254 or later" in guide and "Unknown key 'RestartSteps'" in guide
    why = _comment_above("RestartSec")
    assert "picked up within 5 min" in why and "need systemd 254" in why
    assert "then every 5 min" in why
