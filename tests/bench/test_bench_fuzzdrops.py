"""The drops of `python -m bench.fuzznames`: a seed makes the same drops again (a failure
is reproduced from its seed), they hold the kinds the oracle accounts for, and the
generator writes nothing outside the outbox and its staging folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

from bench.fuzzdrops import Drops, Input, make_outside, snapshot_outside


def _drops(root: Path, seed: int, n: int = 25) -> Drops:
    outbox, stage, outside = root / "outbox", root / "stage", root / "outside"
    outbox.mkdir(parents=True)
    stage.mkdir()
    before = make_outside(outside)
    drops = Drops(outbox, stage, outside, random.Random(seed), pace=0.0)
    for _ in range(n):
        drops.one()
    assert snapshot_outside(outside) == before, "a drop wrote outside the outbox"
    return drops


def _kept(inputs: list[Input]) -> list[tuple[str, str, str]]:
    return [(i.rel, i.kind, i.sha) for i in inputs]


def test_a_seed_makes_the_same_drops_and_another_seed_others(tmp_path: Path) -> None:
    one = _drops(tmp_path / "a", 3)
    again = _drops(tmp_path / "b", 3)
    other = _drops(tmp_path / "c", 4)
    assert _kept(one.inputs) == _kept(again.inputs)
    assert _kept(one.inputs) != _kept(other.inputs)


def test_every_input_recorded_is_there_as_recorded(tmp_path: Path) -> None:
    """With no daemon taking anything, each input is in the outbox as the oracle expects
    to find it: a file with its content, an empty file, a link, a FIFO, a folder."""
    drops = _drops(tmp_path, 11, n=60)
    assert {"file", "empty", "symlink"} <= {i.kind for i in drops.inputs}
    for i in drops.inputs:
        if "mode 000" not in i.note:  # not to be looked into without root's rights
            assert os.path.lexists(drops.outbox / i.rel), i
