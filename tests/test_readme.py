"""README.md and docs/commands.md stay true to the code: the README's set-up commands are
the first a reader meets and the test command is what CI runs; its "Commands" section has
a line for every command the parser has, and docs/commands.md a section naming each of
its options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from daemon.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMANDS = ROOT / "docs" / "commands.md"
EINVOICE = ROOT / "docs" / "einvoice.md"


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
    """Each subcommand has a row starting "`outboxd NAME" in the README's Commands table,
    and a section "## `outboxd NAME`" in docs/commands.md that names each of its long
    options (other than --help and -c/--config, explained once for every command);
    --version is in both, and both explain -c/--config FILE."""
    commands = _section(README.read_text(encoding="utf-8"), "Commands")
    rows = [line for line in commands.splitlines() if line.startswith("| `outboxd")]
    reference = COMMANDS.read_text(encoding="utf-8") + "\n## "
    missing = []
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        if not any(r.startswith(f"| `outboxd {name}") for r in rows):
            missing.append(f"README.md: {name}")
        heading = next((h for h in (f"`outboxd {name}`", f"`outboxd {name}` and ")
                        if f"\n## {h}" in reference), None)
        if heading is None:
            missing.append(f"docs/commands.md: {name}")
            continue
        body = reference[reference.index(f"\n## {heading}"):]
        body = body[:body.index("\n## ", 1)]
        for action in sub._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt not in ("--help", "--config") \
                        and opt not in body:
                    missing.append(f"docs/commands.md: {name} {opt}")
    assert "`outboxd --version`" in commands and "`outboxd --version`" in reference
    assert not missing, f"not named: {', '.join(missing)}"
    assert "-c/--config FILE" in commands and "-c/--config FILE" in reference


def test_the_exit_code_table_names_a_demo_dir_that_cannot_be_used_as_a_usage_error() -> None:
    """`outboxd demo --dir` with a folder that is not empty (or cannot be made) exits 2:
    the full list of exit code 2's cases (docs/commands.md) says so, as it does for the
    other commands' usage errors; the README's short table has a row for each code."""
    reference = _section(COMMANDS.read_text(encoding="utf-8") + "\n## ", "Exit codes")
    two = reference[reference.index("\n### Exit code 2\n"):]
    assert "for `demo`, a `--dir` that is not an empty folder" in " ".join(two.split())
    short = _section(README.read_text(encoding="utf-8"), "Commands")
    for code in ("0", "1", "2", "130"):
        assert f"\n| {code} | " in short, code


def test_the_docs_say_which_invoices_preflight_checks_as_the_code_decides() -> None:
    """Pre-flight checks a UBL invoice only when its CustomizationID names EN 16931
    (einvoice/artefacts.rule_sets_for). The README's Configuration section once said
    "every UBL invoice is checked"; neither the README nor docs/einvoice.md, which now
    holds the detail, says so: einvoice.md names the prefix, says that invoices outside
    EN 16931 are not checked and that `check` notes them as `not-preflighted`."""
    from daemon.einvoice.artefacts import EN16931, PEPPOL_BIS3, rule_sets_for

    assert rule_sets_for(EN16931) is not None and rule_sets_for(PEPPOL_BIS3) is not None
    assert rule_sets_for("urn:www.cenbii.eu:transaction:biitrns010:ver2.0") is None
    assert rule_sets_for(None) is None
    for doc in (README, EINVOICE):
        text = " ".join(doc.read_text(encoding="utf-8").split())
        assert "every ubl invoice is checked" not in text.lower(), doc.name
    section = " ".join(_section(EINVOICE.read_text(encoding="utf-8"),
                                "What pre-flight checks — `[einvoice] preflight`").split())
    assert f"`{EN16931}" in section
    assert "anything else; Svefaktura, PDF and other files | not checked" in section
    assert "`not-preflighted`" in section


def test_the_quick_start_tells_required_keys_from_strongly_advised_ones(tmp_path: Path) -> None:
    """Quick start step 2 once said "set at least" four keys, while outboxd needs only
    the outbox and the url: it now says which are required and which strongly advised,
    and why. The required ones are what the code requires: a file with only
    [outbox] path and [delivery] url loads, and leaving out either is refused naming it."""
    from daemon.configuration.config_load import load_settings
    from daemon.errors import ConfigError

    quick = _section(README.read_text(encoding="utf-8"), "For administrators: quick start")
    step = " ".join(quick[quick.index("2. **Configure**"):quick.index("3. **Check")].split())
    assert "set at least" not in step
    required = step[step.index("**required**"):step.index("**strongly advised**")]
    advised = step[step.index("**strongly advised**"):]
    assert "`[outbox] path`" in required and "`[delivery] url`" in required
    assert "`[paths] state_dir" in advised and "`[delivery] token_file" in advised
    assert "PrivateTmp=" in advised and "401" in advised  # the why of each
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    keys = {"path": f'[outbox]\npath = "{outbox}"\n',
            "url": '[delivery]\nurl = "https://operator.invalid/bundles"\n'}
    config = tmp_path / "config.toml"
    config.write_text("".join(keys.values()), encoding="utf-8")
    load_settings(config, token=False)
    for left_out in keys:
        config.write_text("".join(v for k, v in keys.items() if k != left_out),
                          encoding="utf-8")
        with pytest.raises(ConfigError, match=rf"\] {left_out}\b"):
            load_settings(config, token=False)
