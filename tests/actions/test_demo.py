"""`outboxd demo`: a --dir it cannot use is a usage error, said in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main


def test_a_dir_that_cannot_be_created_is_one_line_naming_it_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dir below a plain file: exit 2 with one line naming the folder, the OS error and
    the fix — no traceback, and nothing is started."""
    (tmp_path / "afile").write_text("x")
    wanted = tmp_path / "afile" / "sub"
    assert main(["demo", "--dir", str(wanted), "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("outboxd: --dir ") and str(wanted) in line
    assert "Not a directory" in line and "leave out --dir" in line
    assert (tmp_path / "afile").read_text() == "x"
