"""README.md stays true to the code: its set-up commands are the first a reader meets and
the test command is what CI runs; its "Commands" section names every command and option
the parser has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from daemon.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _section(text: str, title: str) -> str:
    body = text[text.index(f"\n## {title}\n"):]
    return body[:body.index("\n## ", 1)]


def _sh_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_the_first_two_commands_are_the_demo_and_exactly_the_ci_test_command() -> None:
    """The README's first shell block installs and runs the demo; its second installs the
    test extras and runs the tests, and is word for word the command .ci/run ends with."""
    blocks = _sh_blocks(README.read_text(encoding="utf-8"))
    demo, tests = blocks[0], blocks[1]
    assert demo.startswith("python3 -m venv .venv && ") and demo.endswith("outboxd demo")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert tests == ci[-1]
    assert tests.endswith(".venv/bin/pytest") and "'.[test]'" in tests


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_commands_section_names_every_command_and_each_of_its_options() -> None:
    """Each subcommand has a row starting "`outboxd NAME", and each of its long options
    (other than --help and -c/--config, explained below the table) is in that row;
    --version is in the table too."""
    commands = _section(README.read_text(encoding="utf-8"), "Commands")
    rows = [line for line in commands.splitlines() if line.startswith("| `outboxd")]
    missing = []
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        mine = [r for r in rows if r.startswith(f"| `outboxd {name}")]
        if not mine:
            missing.append(name)
            continue
        for action in sub._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt not in ("--help", "--config") \
                        and not any(opt in r for r in mine):
                    missing.append(f"{name} {opt}")
    assert "`outboxd --version`" in commands
    assert not missing, f"README.md, Commands, does not name: {', '.join(missing)}"
    assert "-c/--config FILE" in commands


def test_the_exit_code_table_names_a_demo_dir_that_cannot_be_used_as_a_usage_error() -> None:
    """`outboxd demo --dir` with a folder that is not empty (or cannot be made) exits 2:
    the exit-code table's row for 2 says so, as it does for the other commands' usage
    errors."""
    commands = _section(README.read_text(encoding="utf-8"), "Commands")
    [row] = [line for line in commands.splitlines() if line.startswith("| 2 |")]
    assert "`--dir` for `demo` that is not an empty folder" in row


def test_the_readme_says_which_invoices_preflight_checks_as_the_code_decides() -> None:
    """Pre-flight checks a UBL invoice only when its CustomizationID names EN 16931
    (einvoice/artefacts.rule_sets_for). The Configuration section said "every UBL
    invoice is checked"; it names the prefix, and says that invoices outside EN 16931
    are not checked and that `check` notes them as `not-preflighted`."""
    from daemon.einvoice.artefacts import EN16931, PEPPOL_BIS3, rule_sets_for

    assert rule_sets_for(EN16931) is not None and rule_sets_for(PEPPOL_BIS3) is not None
    assert rule_sets_for("urn:www.cenbii.eu:transaction:biitrns010:ver2.0") is None
    assert rule_sets_for(None) is None
    text = README.read_text(encoding="utf-8")
    paragraph = " ".join(_section(text, "Configuration").split())
    assert "every ubl invoice is checked" not in " ".join(text.split()).lower()
    assert f"`{EN16931}…`" in paragraph
    assert "Invoices outside EN 16931 by their CustomizationID" in paragraph
    assert "are not checked against these rules" in paragraph
    assert "`not-preflighted`" in paragraph
