"""Bounded walks and removals: a tree nested deeper than DEPTH_MAX is refused by name."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.fs import fsdepth
from daemon.fs.fsdepth import remove_tree


def test_a_tree_within_the_bound_is_removed(tmp_path: Path, deep_tree: Any) -> None:
    top = tmp_path / "top"
    top.mkdir()
    deep_tree(top, fsdepth.DEPTH_MAX)
    remove_tree(top)
    assert os.listdir(tmp_path) == []


def test_a_tree_deeper_than_the_bound_is_refused_by_name_and_left_whole(
        tmp_path: Path, deep_tree: Any) -> None:
    top = tmp_path / "top"
    top.mkdir()
    deep_tree(top, fsdepth.DEPTH_MAX + 1)
    with pytest.raises(OSError, match="more than 64 deep") as refused:
        remove_tree(top)
    assert refused.value.errno == errno.ELOOP and refused.value.filename == str(top)
    assert (top / ("d/" * (fsdepth.DEPTH_MAX + 1)) / "f.pdf").exists()


def test_a_tree_made_deeper_after_the_look_is_refused_not_a_recursion_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep_tree: Any) -> None:
    """Whoever may write in the tree nests it 1,100 deep between remove_tree's look and
    its removal: shutil.rmtree runs out of Python's recursion limit. That is the same
    refusal by name (an OSError, part of the tree removed), never a RecursionError."""
    top = tmp_path / "top"
    top.mkdir()
    (top / "a").mkdir()
    real = fsdepth.fwalk_bounded

    def looked_then_nested(*args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from real(*args, **kwargs)
        deep_tree(top / "a", 1100)
    monkeypatch.setattr(fsdepth, "fwalk_bounded", looked_then_nested)
    with pytest.raises(OSError, match="more than 64 deep") as refused:
        remove_tree(top)
    assert refused.value.errno == errno.ELOOP and refused.value.filename == str(top)
