"""What several commands share (daemon/actions/common.py): the configuration named on
the command line, loaded, with logging set up from its [log]."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import logs
from daemon.actions.common import settings_of


def test_settings_of_loads_the_named_file_and_logs_in_its_format_and_level(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-c FILE is loaded (its path handed back), and what a command logs from then on
    follows that file's [log]: JSON lines, and nothing under its level."""
    (tmp_path / "outbox").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(f'[outbox]\npath = "{tmp_path / "outbox"}"\n'
                    f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "t"}"\n'
                    '[log]\nformat = "json"\nlevel = "error"\n', encoding="utf-8")
    logs.configure()  # as before a command: info and up, the format of the terminal
    capsys.readouterr()
    try:
        settings, given = settings_of(argparse.Namespace(config=str(path)))
        assert given == path and settings.outbox.path == tmp_path / "outbox"
        logs.get().warning("below the level")
        logs.get().error("at the level", detail="x")
        [line] = capsys.readouterr().err.splitlines()
    finally:
        logs.configure()  # the next test in this process logs at the default level again
    record = json.loads(line)
    assert record["event"] == "at the level" and record["detail"] == "x"


def test_only_run_and_config_check_need_the_token_file_the_service_alone_can_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`token_file = "/run/credentials/outboxd.service/token"`, as docs/operations.md
    sets it, exists only inside the running service. The commands an admin runs beside
    it (status, check, send, attach, retry, config) send nothing and do not need it: they
    work, while `run` and `config --check`, which check what delivering needs, still
    refuse it (exit 2, naming the key)."""
    from daemon.cli import main
    (tmp_path / "outbox").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(f'[outbox]\npath = "{tmp_path / "outbox"}"\n'
                    f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                    '[delivery]\nurl = "http://127.0.0.1:9/bundles"\n'
                    f'token_file = "{tmp_path / "credentials" / "token"}"\n'
                    '[log]\nformat = "json"\n', encoding="utf-8")
    try:
        assert main(["status", "-c", str(path)]) == 0
        assert main(["check", "-c", str(path)]) == 0
        assert main(["config", "-c", str(path)]) == 0
        assert main(["send", "-c", str(path), "INV-1"]) == 1  # no such invoice, not exit 2
        capsys.readouterr()
        assert main(["config", "--check", "-c", str(path)]) == 2
        assert "[delivery] token_file" in capsys.readouterr().err
    finally:
        logs.configure()
    # In a process of its own: `run` blocks the stop signals until its handlers are in.
    done = subprocess.run([sys.executable, "-m", "daemon", "run", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "[delivery] token_file" in done.stderr


def test_a_configuration_file_named_by_the_environment_says_so_when_it_cannot_be_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale $OUTBOXD_CONFIG in an admin's shell: "configuration file X does not exist"
    named a path the admin never typed. The error now says the environment named it;
    with -c the file is the admin's own and nothing is added."""
    from daemon.errors import ConfigError
    missing = tmp_path / "old.toml"
    monkeypatch.setenv("OUTBOXD_CONFIG", str(missing))
    with pytest.raises(ConfigError) as info:
        settings_of(argparse.Namespace(config=None))
    assert info.value.problems[0].startswith(f"configuration file {missing} does not exist")
    assert info.value.problems[-1] == ("(that file is named by $OUTBOXD_CONFIG in this "
                                       "environment; -c FILE names another)")
    with pytest.raises(ConfigError) as info:
        settings_of(argparse.Namespace(config=str(missing)))
    assert len(info.value.problems) == 1


def test_a_read_only_outbox_is_said_as_such_with_when_to_try_again(tmp_path: Path) -> None:
    """A file system mounted read-only (a NAS that turned its share read-only on an
    error) is named as that, with the fix: not the generic "check the file system"."""
    import errno

    from daemon.actions.common import why_not_written
    said = why_not_written(OSError(errno.EROFS, "Read-only file system"), "attach", tmp_path)
    assert said == ("Read-only file system — it is mounted read-only; attach once it may "
                    "be written")
