"""The command line's help and usage errors (docs/commands.md)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import OUTBOXD, Env

from daemon.cli import COMMANDS, build_parser, main
from daemon.errors import UsageError


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


def _doc_examples(command: str) -> list[str]:
    """The command lines of the sh blocks in docs/commands.md's section for COMMAND, as a
    person types them: `sudo -u outboxd ` (the user the docs run it as) and `.venv/bin/`
    (the demo's checkout) left out, a comment after `#` too."""
    doc = (Path(__file__).parents[1] / "docs" / "commands.md").read_text(encoding="utf-8")
    section = doc.split(f"\n## `outboxd {command}`\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in section.split("```sh\n")[1:]:
        for line in block.split("\n```", 1)[0].splitlines():
            line = line.split("  #", 1)[0].strip()
            lines.append(line.removeprefix("sudo -u outboxd ").removeprefix(".venv/bin/"))
    return lines


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"help"}))
def test_help_example_is_one_the_commands_doc_gives(command: str, capsys) -> None:
    """Each line of `outboxd help CMD`'s example is one of docs/commands.md's examples for
    CMD (or its start): the help's attach example copied a file from ~/, which the daemon's
    user — whom the docs say to run attach as — may not read, so it was refused."""
    with pytest.raises(SystemExit):
        main(["help", command])
    example = capsys.readouterr().out.split("example:\n", 1)[1]
    documented = _doc_examples(command)
    for line in (raw.strip() for raw in example.splitlines() if raw.strip()):
        line = line.split("  #", 1)[0].strip().removeprefix("sudo -u outboxd ")
        assert any(doc.startswith(line) for doc in documented), (line, documented)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_explains_every_positional_argument(command: str, capsys) -> None:
    """`outboxd CMD --help` gives each positional argument a line of its own that says
    what to put there (attach's INVOICE_ID and FILE were shown bare)."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    section = out.split("positional arguments:")[1].split("options:")[0] \
        if "positional arguments:" in out else ""
    bare = [line.strip() for line in section.splitlines()
            if line.strip() and line.startswith("  ") and line.strip().isupper()]
    assert not bare, f"outboxd {command} --help leaves unexplained: {bare}"


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


@pytest.mark.parametrize("argv", [["status", "--bogus"], ["run", "extra"],
                                  ["check", "--frob", "x.xml"]])
def test_an_option_a_command_does_not_know_is_told_with_that_commands_usage(
        argv: list[str], capsys) -> None:
    """`outboxd status --bogus` showed the top-level usage ("outboxd [-h] … COMMAND
    …"), none of status's options, and did not name the command; now the command's own
    usage and "outboxd: status: unrecognized arguments: --bogus", exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"usage: outboxd {argv[0]} " in err
    assert f"outboxd: {argv[0]}: unrecognized arguments: {argv[1]}" in err
    assert err.count("outboxd: ") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--bogus", "status"], ["--bogus", "status", "--json"],
                                  ["-c", "x.toml", "--frob", "check", "x.xml"]])
def test_an_option_before_the_command_that_outboxd_does_not_know_gets_the_top_level_usage(
        argv: list[str], capsys) -> None:
    """An unknown option before the command is one of `outboxd` itself (docs/commands.md,
    For every command): told with the top-level usage ("usage: outboxd [-h] …") and no
    command's name — not with the usage of the command after it, which has no such
    place for it and whose options would not help. Exit 2."""
    bad = next(a for a in argv if a in ("--bogus", "--frob"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: outboxd [-h]")
    assert f"outboxd: unrecognized arguments: {bad}\n" in err
    assert err.count("outboxd: ") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["demo", "--once", "--timeout", "-5"], ["demo", "--pace", "nan"],
    ["demo", "--pace", "1e308"], ["demo", "--pace", "soon"],
    ["receiver", "--store", "st", "--hold-first", "-1"],
    ["receiver", "--store", "st", "--retry-after", "inf"]])
def test_a_wait_on_the_command_line_that_is_no_duration_is_a_usage_error(
        argv: list[str], capsys) -> None:
    """A wait of demo or receiver that is negative, nan, inf or beyond a year is a usage
    error (exit 2, main() maps it) found by parsing, before anything starts: `demo --once
    --timeout -5` ran the demo, gave up at once and reported its samples as failed
    (exit 1), `--pace nan` waited for ever, and the receiver took `--hold-first -1` and
    `--retry-after inf`. Parsed only, so that a regression fails here instead of starting
    a demo or a receiver that never ends."""
    with pytest.raises(UsageError) as refused:
        build_parser().parse_args(argv)
    assert str(refused.value).startswith(f"{argv[0]}: argument {argv[-2]}: ")
    assert "seconds" in str(refused.value)
    assert capsys.readouterr().err.startswith(f"usage: outboxd {argv[0]} ")


def test_the_least_a_count_or_a_wait_may_be_is_0(tmp_path) -> None:
    """0 is a count and a wait like any other: `status --limit 0` (the counts alone),
    `demo --pace 0` (no pause between samples), `receiver --hold-first 0`."""
    assert build_parser().parse_args(["status", "--limit", "0"]).limit == 0
    demo = build_parser().parse_args(["demo", "--pace", "0", "--timeout", "0"])
    assert (demo.pace, demo.timeout) == (0.0, 0.0)
    assert build_parser().parse_args(["receiver", "--store", str(tmp_path),
                                      "--hold-first", "0"]).hold_first == 0.0


@pytest.mark.parametrize("argv", [["run"], ["receiver", "--store", "st"], ["demo"]])
def test_a_broken_pipe_in_a_command_that_serves_is_a_fault_not_a_reader_gone(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`outboxd status | head`: the reader went away, exit 0 in silence. `run`,
    `receiver` and `demo` write to pipes and sockets of their own: a broken pipe there is
    a fault, raised (exit 1, which systemd's Restart=on-failure restarts), never taken
    for the end of their output and ended with exit 0."""
    module = importlib.import_module(f"daemon.actions.{argv[0]}")

    def broken(*_args: object, **_kwargs: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(module, "run", broken)
    with pytest.raises(BrokenPipeError):
        main(argv)


def test_a_refusal_quoting_a_path_shows_its_control_characters_as_codes(
        env: Env, capsys) -> None:
    """A usage error names what was given (here attach's FILE, a clerk's file name) as
    the admin's terminal may show it: an escape sequence in it is shown as its code,
    never sent to the terminal."""
    env.write_config("http://127.0.0.1:9/bundles")
    missing = env.root / "scan\x1b[2J.pdf"
    assert main(["attach", "-c", str(env.config), "INV-1", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "\x1b" not in err and "\\x1b[2J" in err


def test_help_for_an_unknown_topic_is_a_usage_error(capsys) -> None:
    assert main(["help", "nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_an_os_error_in_a_command_is_one_line_not_a_traceback(capsys, monkeypatch) -> None:
    """A command that meets the environment (no permission, a full disk) ends with exit 1
    and one line naming the path and what to check."""
    from daemon.actions import status

    def denied(_args: object) -> int:
        raise PermissionError(13, "Permission denied", "/srv/invoices/state")
    monkeypatch.setattr(status, "run", denied)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Permission denied (/srv/invoices/state)" in err and "may read and write" in err


def test_output_to_a_full_device_is_one_line(tmp_path) -> None:
    """`outboxd config > /dev/full`: stdout cannot be written; exit 1 with one line on
    stderr, and no second complaint from the interpreter's last flush."""
    import subprocess
    import sys
    (tmp_path / "outbox").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[outbox]\npath = "{tmp_path / "outbox"}"\n[paths]\nstate_dir = '
                      f'"{tmp_path / "state"}"\n[delivery]\nurl = "http://127.0.0.1:9/b"\n')
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "daemon", "config", "-c", str(config)],
                              stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr


def test_the_one_shot_commands_import_no_watcher_and_no_xslt_engine() -> None:
    """check, send, status, retry and attach are run by people and scripts, often: they
    import neither watchdog (the daemon's watcher; send and check reached it through
    the directory transport) nor saxonche (loaded only when e-invoice rules are run).
    A fresh interpreter, so that what other tests imported does not count."""
    code = ("import sys\n"
            "import daemon.actions.check, daemon.actions.send, daemon.actions.status\n"
            "import daemon.actions.retry, daemon.actions.attach\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'watchdog', 'saxonche'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_command_imports_neither_rich_nor_httpxs_command_line_client(env: Env) -> None:
    """rich is the demo's, httpx's own command-line client (click, pygments) nobody's:
    `outboxd status`, `config` and `check` load neither (structlog.dev imported rich for
    them, ~0.1 s of each). Python's import log of each lists a blocked `import rich` by
    the name asked for, and no module of rich, click or pygments beyond it."""
    import os
    import re
    env.write_config("http://127.0.0.1:9/x")
    for command in (["status"], ["config"], ["check", str(env.outbox)]):
        done = subprocess.run([*OUTBOXD, *command, "-c", str(env.config)],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
        assert done.returncode == 0, done.stderr
        imported = re.findall(r"\| +([\w.]+)$", done.stderr, re.M)
        assert "structlog.dev" in imported, command
        assert {m for m in imported if m.split(".")[0] in ("rich", "click", "pygments")} \
            <= {"rich", "rich.console"}, command


def test_the_entry_point_freezes_the_imports_out_of_the_collector_an_embedding_caller_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`outboxd` (daemon.entry) moves what the imports made out of the garbage collector's
    passes before the command runs, and the command runs with the collector on: the
    collection at exit went through all of it, some 0.15 s at the end of each command
    and each stop of the daemon. cli.main called by a program of its own (this test)
    leaves that program's heap as it was."""
    import gc
    code = ("import gc, sys\n"
            "from daemon.actions import status\n"
            "status.run = lambda args: print(gc.get_freeze_count(), gc.isenabled()) or 0\n"
            "from daemon.entry import main\n"
            "sys.exit(main(['status']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    frozen, enabled = done.stdout.split()
    assert int(frozen) > 10_000 and enabled == "True"
    from daemon.actions import status
    seen: list[int] = []
    monkeypatch.setattr(status, "run", lambda args: seen.append(gc.get_freeze_count()) or 0)
    before = gc.get_freeze_count()
    assert main(["status"]) == 0
    assert seen == [before]


@pytest.mark.parametrize("argv", [["check", ""], ["check", "/tmp", " "], ["attach", "INV-1", ""],
                                  ["status", "-c", ""],
                                  ["-c", "", "status"]])
def test_an_empty_path_argument_is_a_usage_error_not_the_current_folder(
        argv: list[str], capsys, tmp_path, monkeypatch) -> None:
    """`outboxd check "$FILE"` with FILE not set checked the folder the admin stood in
    as if it were the outbox (Path("") is "."), `receiver --store ""` stored there and
    `demo --dir ""` worked there (the same argument type, not run here: unfixed they
    would run on), and `-c ""` fell back to /etc/outboxd/config.toml. An empty path is
    now refused, exit 2, naming the argument."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "an empty path — give a file or folder (a shell variable that is not set?)" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["retry", ""], ["retry", "3f2a9c01b7e4", " "]])
def test_an_empty_bundle_for_retry_is_a_usage_error_naming_what_to_give(
        argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`outboxd retry "$ID"` with ID not set was taken for the current folder and refused
    as "retry:  is not in the quarantine folder …", naming nothing (explore-admin). Now
    exit 2 before anything is looked at, saying what to give."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "an empty bundle — give a quarantine folder, its name or its 12-character id" in err
    assert "Traceback" not in err and "is not in the quarantine folder" not in err


@pytest.mark.parametrize("argv", [["check"], ["send", "INV-1", "--without-attachments"],
                                  ["attach", "INV-1", "/etc/hostname"], ["retry", "abc"]])
def test_commands_that_act_on_the_outbox_refuse_a_missing_one_naming_it_and_the_mount(
        env: Env, capsys, argv: list[str]) -> None:
    """check, send, attach and retry act on the outbox: with its share not mounted they
    refuse (exit 2), naming the outbox and asking whether its share is mounted — not only
    "create it", which would put the clerks' files on the local disk."""
    env.write_config("http://127.0.0.1:9/bundles")
    env.outbox.rmdir()
    assert main([*argv, "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert f'[outbox] path = "{env.outbox}": the outbox does not exist' in err
    assert "share not mounted? Mount it" in err
    assert "only if the outbox is a plain local one" in err


def test_the_entry_point_imports_nothing_heavy_before_it_blocks_sighup() -> None:
    """The `outboxd` command's entry point (pyproject.toml [project.scripts], and `python -m
    daemon`) is daemon.entry: importing it loads neither the command line nor argparse, so
    the SIGHUP it blocks first thing is blocked a few milliseconds after exec, not after
    the ~0.1 s those imports take. A fresh interpreter, so that what other tests imported
    does not count."""
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["outboxd"] == "daemon.entry:main"
    assert "from daemon.entry import main" in (root / "daemon" / "__main__.py").read_text()
    code = ("import sys, daemon.entry\n"
            "print(sorted({'daemon.cli', 'argparse', 'daemon.actions'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_the_configuration_is_c_before_or_after_the_command_else_outboxd_config_else_etc(
        tmp_path, monkeypatch, capsys) -> None:
    """docs/configuration.md, Where it comes from: `-c FILE` (before or after the command)
    wins over $OUTBOXD_CONFIG, which wins over /etc/outboxd/config.toml; `outboxd config`
    shows which file was read by the outbox it names."""
    from daemon.configuration.config import DEFAULT_CONFIG_PATH
    files = {}
    for name in ("given", "environment"):
        (tmp_path / name / "outbox").mkdir(parents=True)
        files[name] = Env(tmp_path / name).write_config("http://127.0.0.1:9/bundles")

    def outbox_shown(argv: list[str]) -> str:
        assert main(argv) == 0
        return str(json.loads(capsys.readouterr().out)["outbox"]["path"])

    monkeypatch.setenv("OUTBOXD_CONFIG", str(files["environment"]))
    given = str(tmp_path / "given" / "outbox")
    assert outbox_shown(["-c", str(files["given"]), "config"]) == given
    assert outbox_shown(["config", "-c", str(files["given"])]) == given
    assert outbox_shown(["config"]) == str(tmp_path / "environment" / "outbox")
    monkeypatch.delenv("OUTBOXD_CONFIG")
    if DEFAULT_CONFIG_PATH.exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this host")
    assert main(["config"]) == 2
    assert f"configuration file {DEFAULT_CONFIG_PATH} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["receiver", "--store", "/tmp/x"], ["demo"], ["help"]],
                         ids=["receiver", "demo", "help"])
def test_c_after_a_command_that_reads_no_configuration_is_accepted_as_before_it(
        argv: list[str]) -> None:
    """docs/commands.md, For every command: `-c FILE` goes before or after the command. A
    script that appends `-c /etc/outboxd/config.toml` to each outboxd command line must
    not be refused by `receiver`, `demo` or `help`, which take it before the command and
    read no configuration either way."""
    parser = build_parser()
    before = parser.parse_args(["-c", "/etc/outboxd/config.toml", *argv])
    after = parser.parse_args([*argv, "-c", "/etc/outboxd/config.toml"])
    assert vars(before) == vars(after)


@pytest.mark.parametrize("argv", [["status", "x" * 100_000], ["config", "--" + "x" * 100_000],
                                  ["help", "x" * 100_000]])
def test_a_very_long_argument_is_quoted_cut_in_its_refusal(argv: list[str], capsys) -> None:
    """An argument of 100,000 characters (a variable holding a file's content, not its
    name) was echoed whole: one line of 100,000 characters on stderr. Now its start and
    its length, as the configuration's lines cut a value (found by bench/configfuzz.py)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "xxxxx… (100,00" in err and "characters)" in err
    assert max(len(line) for line in err.splitlines()) < 1_000


def test_a_missing_path_of_100_000_characters_is_named_cut(tmp_path: Path, capsys) -> None:
    """`check` of a path that does not exist names it, cut when it is past what any path
    may be, still saying that it does not exist."""
    config = tmp_path / "config.toml"
    (tmp_path / "outbox").mkdir()
    config.write_text(f'[outbox]\npath = "{tmp_path}/outbox"\n[delivery]\n'
                      f'url = "http://127.0.0.1:9/in"\n[paths]\nstate_dir = "{tmp_path}/s"\n'
                      '[einvoice]\npreflight = "off"\n')
    assert main(["check", "-c", str(config), "/" + "x" * 100_000]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outboxd: check: /xxx") and line.endswith(
        "… (100,001 characters) does not exist")


@pytest.mark.parametrize(("argv", "said"), [
    (["-c", "/a.toml", "status", "-c", "/b.toml"],
     "outboxd: status: -c/--config given twice, as '/a.toml' (before the command) and "
     "'/b.toml' (after it) — give it once"),
    (["config", "-c", "/a.toml", "--config", "/b.toml"],
     "outboxd: config: -c/--config given twice, as '/a.toml' and '/b.toml' — give it once"),
    (["status", "--limit", "3", "--limit", "5"],
     "outboxd: status: --limit given twice, as '3' and '5' — give it once"),
    (["attach", "INV-1", "/f.pdf", "--type", "Timesheet", "--type", "Receipt"],
     "outboxd: attach: --type given twice, as 'Timesheet' and 'Receipt' — give it once")])
def test_an_option_given_twice_with_two_values_is_a_usage_error(
        argv: list[str], said: str, capsys) -> None:
    """argparse kept the last of two values without a word: `outboxd -c A status -c B`
    (a wrapper adding -c to every command line, and a person's own) read B, `attach
    --type Timesheet --type Receipt` recorded Receipt. Now exit 2 naming both — the
    receiver's token only by name (found by bench/configfuzz.py)."""
    assert main(argv) == 2
    assert said in capsys.readouterr().err.splitlines()


def test_the_receivers_token_given_twice_is_refused_naming_it_only(capsys) -> None:
    """The receiver's --token twice is refused the same way, without showing either
    value. Parsed only: a regression must fail here, not start a receiver that never
    ends."""
    with pytest.raises(UsageError) as refused:
        build_parser().parse_args(["receiver", "--store", "/s", "--token", "s3cr3t-a",
                                   "--token", "s3cr3t-b"])
    assert str(refused.value) == "receiver: --token given twice — give it once"
    assert "s3cr3t" not in capsys.readouterr().err


def test_an_option_given_twice_with_one_value_is_taken(tmp_path: Path, capsys) -> None:
    """The same file before and after the command, or the same count twice, is one."""
    config = tmp_path / "c.toml"
    config.write_text("")
    args = build_parser().parse_args(["-c", str(config), "status", "-c", str(config),
                                      "--limit", "3", "--limit", "3"])
    assert args.limit == 3
    assert main(["-c", str(config), "config", "--config", str(config)]) == 2  # empty: no outbox
    assert "given twice" not in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "what"), [
    (["send", ""], "FILE_OR_INVOICE_ID: an empty invoice id — give the invoice id or the "
                   "invoice file's name"),
    (["attach", " ", "/f.pdf"], "INVOICE_ID: an empty invoice id — give the invoice id, the "
                                "number inside the invoice file")])
def test_an_empty_invoice_id_is_a_usage_error_that_suspects_a_shell_variable(
        argv: list[str], what: str, capsys) -> None:
    """`outboxd send "$ID"` with ID not set was looked for as an id and refused with exit 1
    ("no invoice file or invoice id ''"), the subject's failure; as for `check ""` and
    `retry ""`, it is the command line's (exit 2), said with its likely cause (found by
    bench/configfuzz.py)."""
    assert main(argv) == 2
    assert f"outboxd: {argv[0]}: argument {what} (a shell variable that is not set?)" in \
        capsys.readouterr().err.splitlines()


def test_help_without_a_command_prints_the_overview_and_exits_0(capsys) -> None:
    """`outboxd help` alone shows what `outboxd --help` shows, on stdout, exit 0 — not a
    usage error for a missing topic."""
    assert main(["help"]) == 0
    via_help = capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--help"])
    assert via_help.out == capsys.readouterr().out and via_help.err == ""
    assert "usage: outboxd" in via_help.out


def test_a_limit_that_is_no_whole_number_is_a_usage_error_naming_it(capsys) -> None:
    """`outboxd status --limit ten` (or 2.5): exit 2 with one line saying the value is not
    a whole number, no traceback."""
    for value in ("ten", "2.5"):
        assert main(["status", "--limit", value]) == 2
        err = capsys.readouterr().err
        assert f"{value!r} is not a whole number" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["status", "run", "config"])
def test_c_given_before_and_after_the_command_is_told_with_the_commands_usage(
        command: str, capsys) -> None:
    """`outboxd -c A run -c B` is a usage error before any configuration is read: its two
    lines plain text, the command's usage then the refusal, as every other usage error of
    a command is (`run --bogus`, `config -c A -c B`). It printed the refusal alone, so
    `run`'s stderr held a line that was neither JSON nor a usage error's (found by
    bench/configfuzz.py, seed 11)."""
    assert main(["-c", "/a.toml", command, "-c", "/b.toml"]) == 2
    usage, said = capsys.readouterr().err.splitlines()
    assert usage.startswith(f"usage: outboxd {command} ")
    assert said == (f"outboxd: {command}: -c/--config given twice, as '/a.toml' (before "
                    "the command) and '/b.toml' (after it) — give it once")


@pytest.mark.parametrize("argv", [["attach", "--", "INV-1", "--"], ["attach", "INV-1", "--", "--"]])
def test_a_double_dash_after_the_end_of_options_is_the_file_named_so_not_a_traceback(
        argv: list[str]) -> None:
    """After `--` every argument is an operand, a second `--` too (POSIX): `attach -- INV-1 --`
    attaches the file named `--`. Python's argparse (3.11 to at least 3.13.0) dropped it and
    gave the command an empty list, so attach raised a TypeError with a traceback (configfuzz
    seeds 13 and 16)."""
    args = build_parser().parse_args(argv)
    assert (args.invoice_id, args.file) == ("INV-1", Path("--"))


def test_the_attach_example_copies_the_file_for_the_daemons_user_alone(capsys) -> None:
    """The file an admin attaches goes through /tmp (their home folder is closed to the
    daemon's user): the help's and the docs' example make that copy the daemon user's
    alone (owner outboxd, mode 0600). They said `install -m 0644`: an invoice's time
    sheet anyone on the host could read."""
    with pytest.raises(SystemExit):
        main(["help", "attach"])
    example = capsys.readouterr().out.split("example:\n", 1)[1]
    for where, lines in (("help", example.splitlines()), ("docs", _doc_examples("attach"))):
        copies = [line for line in lines if "install" in line or " cp " in f" {line}"]
        assert copies, where
        for line in copies:
            assert "-o outboxd" in line and "-m 0600" in line, (where, line)
