"""The command line's help and usage errors (SPEC §7)."""

from __future__ import annotations

import pytest

from daemon.cli import COMMANDS, main


def test_help_lists_every_command_with_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("run", "status", "check", "send", "attach", "retry", "config", "receiver",
                 "help"):
        assert any(line.strip().startswith(name + " ") for line in out.splitlines()), name


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"help"}))
def test_help_command_and_command_help_show_options_and_an_example(command: str,
                                                                   capsys) -> None:
    with pytest.raises(SystemExit):
        main(["help", command])
    via_help = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([command, "--help"])
    direct = capsys.readouterr().out
    assert via_help == direct
    assert f"usage: outboxd {command}" in direct and "example:" in direct
    assert f"outboxd {command}" in direct.split("example:")[1]


def test_unknown_command_says_outboxd_once(capsys) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    [message] = [line for line in err.splitlines() if not line.startswith("usage:")]
    assert message.startswith("outboxd: ") and message.count("outboxd:") == 1
    assert "frobnicate" in message and "outboxd --help" in message


def test_subcommand_usage_error_names_the_command(capsys) -> None:
    assert main(["attach", "INV-1"]) == 2
    err = capsys.readouterr().err
    assert "outboxd: attach: " in err and err.count("outboxd: ") == 1


def test_help_for_an_unknown_topic_is_a_usage_error(capsys) -> None:
    assert main(["help", "nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
