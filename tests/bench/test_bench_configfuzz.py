"""`python -m bench.configfuzz`: the seeded fuzz of the configuration and the command line
(docs/development.md, Fuzzing the configuration). A bounded draw of its cases runs here,
the oracle asserted on every one; the whole sweep (and `run`, and reloads) is the tool's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import configfuzz
from bench.configfuzz import Case, Outcome, verdict


def test_a_seeded_draw_of_bad_configurations_and_command_lines_keeps_the_promises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some 300 cases — every key of the settings model with values of the wrong type, out
    of range, empty, long, Unicode, paths and urls of every odd kind, in the file and from
    the environment; unknown keys, wrong nesting, TOML that is not, colliding folders; and
    each command's argv — through `cli.main`: each exits with a documented code, prints
    no traceback and no secret, and names the key or argument it refuses."""
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    lines: list[str] = []
    found = configfuzz.sweep(tmp_path, seed=46, n_argv=60, daemon=False,
                             report=lines.append, sample=300)
    # Every colliding-folders case too, each under a command of the seed's choice: those
    # that every command must refuse are known to the oracle (configfuzz.R).
    found += configfuzz.sweep(tmp_path, seed=46, n_argv=0, daemon=False,
                              report=lines.append,
                              only=lambda case: case.name.startswith("conflict "))
    assert not found, "\n".join(lines)
    assert time.monotonic() - started < 30  # the bound this draw is sized for, with room


@pytest.mark.parametrize(("outcome", "problem"), [
    (Outcome(3, "", "x\n"), "exit 3 not one of [0, 1, 2]"),
    (Outcome(2, "", "Traceback (most recent call last):\n"), "a traceback"),
    (Outcome(0, f"token {configfuzz.TOKEN}", ""), "a secret printed"),
    (Outcome(2, "", ""), "exit 2 with nothing on stderr"),
    (Outcome(2, "", "outboxd: configuration error in c:\n  [log] format: bad\n"),
     "the error names none of ('[log] level',)"),
    (Outcome(0, "valid", ""), "exit 0 where the configuration must be refused (2)")])
def test_the_oracle_finds_each_broken_promise(outcome: Outcome, problem: str) -> None:
    """Each promise the sweep holds the commands to fails the case that breaks it (an
    oracle that found nothing would pass a sweep of anything)."""
    case = Case("c", b"", names=("[log] level",), refused="refused" in problem)
    assert problem in verdict(case, outcome, "status")


def test_a_line_of_run_that_is_no_json_is_found_but_a_usage_error_is_plain() -> None:
    """Under systemd `run` logs JSON, its refusal of a configuration too; argparse's usage
    error comes before any configuration is read."""
    bad = verdict(Case("c", b""), Outcome(2, "", '{"event": "x"}\nplain line\n'), "run")
    assert any("no JSON" in p for p in bad)
    assert not verdict(Case("c", b""), Outcome(2, "", "usage: outboxd run [-h]\n"
                                                      "outboxd: run: unrecognized\n"), "run")
