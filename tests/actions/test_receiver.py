"""`outboxd receiver` (daemon/actions/receiver.py): the command line of the reference
receiver, read before anything listens."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_receiver


class TestStartUpErrors:
    @pytest.mark.parametrize("value", ["503,later", "pass,429:soon", "429:-1", "-", "201:"])
    def test_a_fail_first_it_cannot_read_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path, value: str) -> None:
        """An entry of --fail-first that is neither a status, STATUS:SECONDS (whole
        seconds) nor pass: one line naming the value and the forms; exit 2, nothing listening."""
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(tmp_path / "s"),
                            f"--fail-first={value}")
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert repr(value) in line and "STATUS:SECONDS" in line
