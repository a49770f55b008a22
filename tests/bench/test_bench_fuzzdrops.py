"""The drops of `python -m bench.fuzznames`: a seed makes the same drops again (a failure
is reproduced from its seed), they hold the kinds the oracle accounts for, and the
generator writes nothing outside the outbox and its staging folder."""

from __future__ import annotations

import collections
import os
import random
import stat
from pathlib import Path

import pytest

from bench.fuzzdrops import Drops, make_outside, snapshot_outside
from bench.fuzzmake import Input
from bench.fuzzoracle import sha_file, walk


def _drops(root: Path, seed: int, n: int = 25) -> Drops:
    """n drops of the seed into a fresh outbox, no daemon running."""
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


# Without root's rights a file or folder of mode 000 is not to be read: left out.
ROOT = os.geteuid() == 0


def _on_disk(drops: Drops) -> collections.Counter[str]:
    """The hash of every non-empty file in the outbox, as often as a name holds it: what
    the oracle counts (a file of two names counts twice)."""
    return collections.Counter(sha_file(p) for p, st in walk(drops.outbox)
                               if stat.S_ISREG(st.st_mode) and st.st_size
                               and (ROOT or st.st_mode & 0o777))


def _recorded(drops: Drops) -> collections.Counter[str]:
    return collections.Counter(i.sha for i in drops.inputs
                               if i.kind == "file" and (ROOT or "mode 000" not in i.note))


@pytest.mark.parametrize("seed", [9, 11, 12])
def test_what_the_record_says_each_name_holds_is_what_the_outbox_holds(
        tmp_path: Path, seed: int) -> None:
    """With no daemon taking anything, the oracle's count of each content (as many
    names as were made with it) is what is in the outbox: nothing the drops did to a
    file, through any of its names, goes unrecorded."""
    drops = _drops(tmp_path, seed, n=150)
    assert _recorded(drops) == _on_disk(drops)


@pytest.mark.parametrize("how", ["direct", "slow", "keep-times"])
def test_a_write_through_a_hard_link_changes_both_names_in_the_record(
        tmp_path: Path, how: str) -> None:
    """A clerk's client writing over a file in place (as an SMB overwrite opens it)
    writes into the one file both names are: the other name's record holds the new
    bytes, the old ones are nowhere to be found (fuzznames seed 9: its hard link was
    counted LOST)."""
    drops = _drops(tmp_path, 1, n=0)
    drops.write(drops.outbox, "a.xml", b"first " * 20, "direct")
    drops.hard_link(drops.outbox / "a.xml", drops.outbox, "b.pdf")
    drops.write(drops.outbox, "a.xml", b"second " * 20, how)
    assert (drops.outbox / "b.pdf").read_bytes() == b"second " * 20
    assert {i.rel: i.sha for i in drops.inputs} == {
        "a.xml": sha_file(drops.outbox / "a.xml"), "b.pdf": sha_file(drops.outbox / "b.pdf")}
    assert _recorded(drops) == _on_disk(drops)
    assert any("rewritten 'b.pdf'" in line for line in drops.log), drops.log


def test_a_file_renamed_over_one_name_of_a_hard_link_leaves_the_other_as_it_was(
        tmp_path: Path) -> None:
    """Written under a temp name and renamed over, the new file replaces that name
    only: the other name keeps the old bytes, and the record says so."""
    drops = _drops(tmp_path, 1, n=0)
    drops.write(drops.outbox, "a.xml", b"first " * 20, "direct")
    drops.hard_link(drops.outbox / "a.xml", drops.outbox, "b.pdf")
    drops.write(drops.outbox, "a.xml", b"second " * 20, "rename")
    assert (drops.outbox / "b.pdf").read_bytes() == b"first " * 20
    assert _recorded(drops) == _on_disk(drops)


def test_a_name_unlinked_behind_the_drops_stays_recorded_when_its_twin_is_rewritten(
        tmp_path: Path) -> None:
    """The record follows a write through a hard link only as far as the file has
    names: one unlinked by someone else (a daemon losing a file) keeps its old record,
    so the oracle still finds it missing."""
    drops = _drops(tmp_path, 1, n=0)
    drops.write(drops.outbox, "a.xml", b"first " * 20, "direct")
    drops.hard_link(drops.outbox / "a.xml", drops.outbox, "b.pdf")
    (drops.outbox / "b.pdf").unlink()  # not by a drop: the oracle must see it gone
    drops.write(drops.outbox, "a.xml", b"second " * 20, "direct")
    assert _recorded(drops) != _on_disk(drops)
    assert [i.rel for i in drops.inputs if i.sha == sha_file(drops.outbox / "a.xml")] \
        == ["a.xml"]


def test_no_write_goes_through_a_hard_link_to_a_file_outside_the_outbox(
        tmp_path: Path) -> None:
    """A name in the outbox that is one file with one beside it (a drop's hard link to
    outside/linked.pdf) is not written over in place: that would change what nothing
    may change, and the oracle would blame the daemon."""
    drops = _drops(tmp_path, 1, n=0)
    before = snapshot_outside(drops.outside)
    drops.hard_link(drops.outside / "linked.pdf", drops.outbox, "x.pdf")
    drops.write(drops.outbox, "x.pdf", b"over it " * 20, "direct")
    assert snapshot_outside(drops.outside) == before
    assert drops.skipped == {"a hard link out of the outbox": 1}
