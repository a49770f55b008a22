"""systemd/: the unit is a hardened Type=notify service (exposure at most 1.5 by
`systemd-analyze security`), with sysusers and tmpfiles snippets for its user and folders."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.config import ServiceConfig

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
