"""Folders without an invoice file: which are lone, and which are named close to an
invoice file (daemon/watching/lonefolders.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write

from daemon.watching.lonefolders import Near, close, hint, listed, lone_in


@pytest.mark.parametrize(("folder", "stem"), [
    ("INV-7100", "INV-7010"),  # two neighbours swapped
    ("INV-7011", "INV-7010"),  # one digit wrong
    ("INV-701", "INV-7010"),  # one left out
    ("INV-70100", "INV-7010"),  # one added
    ("inv-7100", "INV-7010"),  # a swap, in other case
    ("Räkning-71", "Ra\u0308kning-17"),  # a swap, in the other Unicode form
    ("INV1", "INV2"),  # as short as MIN_LENGTH allows
])
def test_one_edit_or_one_swap_is_close(folder: str, stem: str) -> None:
    assert close(folder, stem) and close(stem, folder)


@pytest.mark.parametrize(("folder", "stem"), [
    ("INV-7010", "INV-7010"),  # its own sidecar
    ("inv-7010", "INV-7010"),  # a look-alike, told as sidecar-spelling
    ("INV-1070", "INV-7010"),  # two digits changed
    ("INV-7101", "INV-7010"),  # a swap and a change
    ("INV-701000", "INV-7010"),  # two added
    ("abcd", "bcda"),  # shifted: shares a deletion, yet two edits apart
    ("ab1", "ab2"),  # shorter than MIN_LENGTH: one edit from too many names
])
def test_two_edits_equal_names_and_short_names_are_not_close(folder: str, stem: str) -> None:
    assert not close(folder, stem) and not close(stem, folder)


def test_near_finds_the_close_folders_and_leaves_out_the_invoices_own_look_alikes() -> None:
    near = Near(["INV-7100", "INV-7011", "INV-9999", "INV-7010 "])
    assert near.of("INV-7010", leave_out=["INV-7010 "]) == ["INV-7011", "INV-7100"]
    assert near.of("INV-5555") == []
    assert Near([]).of("INV-7010") == []


def test_near_asked_with_and_without_look_alikes_to_leave_out_answers_each_as_asked() -> None:
    """What a stem found is kept for the next ask without leave_out (the page asks again
    at each refresh), but never handed to an ask that leaves a look-alike out, nor what
    such an ask found to one that does not."""
    near = Near(["INV-7011", "INV-7010 "])
    assert near.of("INV-7010") == ["INV-7010 ", "INV-7011"]
    assert near.of("INV-7010", leave_out=["INV-7010 "]) == ["INV-7011"]
    assert near.of("INV-7010") == ["INV-7010 ", "INV-7011"]


def test_near_compares_a_folder_by_its_name_without_the_sidecar_suffix() -> None:
    near = Near(["INV-7100_att", "INV-7011"], suffix="_att")
    assert near.of("INV-7010") == ["INV-7011", "INV-7100_att"]


def test_the_hint_names_the_folder_and_the_name_to_give_it() -> None:
    assert hint("INV-7100", "INV-7010", "INV-7010") == (
        "a folder INV-7100/ has no invoice file; if it holds INV-7010's attachments, "
        "rename it to INV-7010/")


def test_lone_are_the_root_folders_that_are_no_sidecar_nor_ignored(tmp_path: Path) -> None:
    for name in ("INV-1", "INV-7100", ".outboxd", "copy.part"):
        (tmp_path / name).mkdir()
    write(tmp_path / "INV-2", b"a file, no folder")
    stats = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(tmp_path)}
    lone = lone_in(stats, {"INV-1"})
    assert lone == {"INV-7100": stats["INV-7100"].st_ctime_ns}


def test_listed_longest_unchanged_first_each_with_the_waiting_files_it_is_close_to() -> None:
    lone = {"INV-7100": 2_000_000_000_000_000_000, "Misc": 1_000_000_000_000_000_000,
            "INV-7010 (1)": 0}
    folders, near, asked = listed(lone, ["INV-7010.xml", "INV-7101.pdf"],
                                  leave_out=["INV-7010 (1)"])
    assert [(x.name, x.close_to) for x in folders] == [
        ("Misc", ()), ("INV-7100", ("INV-7010.xml", "INV-7101.pdf"))]
    assert folders[0].since == "2001-09-09T01:46:40.000Z"
    assert near == {"INV-7010.xml": ["INV-7100"], "INV-7101.pdf": ["INV-7100"]}
    # Asked again with the same folders, the same Near serves; with another, a new one.
    assert listed(lone, [], leave_out=["INV-7010 (1)"], last=asked)[2] is asked
    assert listed({"INV-7011": 0}, ["INV-7010.xml"], last=asked)[1] == {
        "INV-7010.xml": ["INV-7011"]}


def test_a_near_brought_up_to_date_a_name_at_a_time_finds_what_a_new_one_finds() -> None:
    """The index keeps one Near as its lone folders come and go, and the page brings its
    last one up to date: a folder added is found, one taken away is not, and what a stem
    found before the change is not handed back after it."""
    near = Near(["INV-7100", "INV-7011"], "_att")
    assert near.of("INV-7010") == ["INV-7011", "INV-7100"]
    near.discard("INV-7100")
    near.add("INV-701_att")
    near.add("INV-701_att")  # twice: once
    assert near.of("INV-7010") == Near(["INV-7011", "INV-701_att"], "_att").of("INV-7010") \
        == ["INV-7011", "INV-701_att"]
    near.discard("INV-7011")
    near.discard("INV-701_att")
    near.discard("INV-9999")  # never there
    assert near.of("INV-7010") == [] and not near.names
    folders, _, kept = listed({"INV-7100": 1}, ["INV-7010.xml"], "", (), near)
    assert kept is not near and [x.name for x in folders] == ["INV-7100"]  # another suffix
    _, by_file, kept = listed({"INV-7100": 1}, ["INV-7010.xml"])
    _, by_file, again = listed({"INV-7011": 2}, ["INV-7010.xml"], last=kept)
    assert again is kept and by_file == {"INV-7010.xml": ["INV-7011"]}
