"""bench/fuzzanswers.py runs the generator of tests/delivery/answerfuzz.py from its own
path (it is run from the checkout, not under pytest): a short sweep ends clean and says
what became of its answers."""

from __future__ import annotations

import sys

import pytest

from bench import fuzzanswers


def test_a_short_sweep_runs_from_the_bench_and_reports_its_outcomes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """60 answers of seed 3: exit 0 (none broke the oracle) and one line counting them
    by outcome; the tests' folder it puts on the path is the checkout's."""
    monkeypatch.setattr(sys, "argv", ["fuzzanswers", "--seed", "3", "--cases", "60"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert fuzzanswers.main() == 0
    said = capsys.readouterr().out
    assert said.startswith("60 answers (seed 3) in ") and " sent" in said
    assert (fuzzanswers.TESTS / "delivery" / "answerfuzz.py").is_file()
