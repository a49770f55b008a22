"""What a work folder's name says of who claimed it (daemon/claiming/workname.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from daemon.claiming import claim, workname
from daemon.claiming.workname import work_host


@pytest.mark.parametrize("host", ["oldbox", "erp-host-2", "x"])
def test_the_host_a_work_folder_was_claimed_on_is_read_back_from_its_name(
        host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name work_dir_for makes carries the claiming host, read back whole, however many
    "-" the host's name holds and whatever the invoice file's name holds ("--" too)."""
    monkeypatch.setattr(workname.socket, "gethostname", lambda: f"{host}.example.org")
    for name in ("INV-1", "INV--7 - Copy", "Fakt\u00fcra"):
        work = claim.work_dir_for(Path("/p"), name, "ab" * 32, "c0ffee")
        assert work_host(work.name) == host


@pytest.mark.parametrize("name", ["INV-1", "INV-1--0123456789ab", "a--b--c", "a--b--host-x-r",
                                  "a--b--host-12-"])
def test_a_name_that_is_no_work_folders_names_no_host(name: str) -> None:
    """A folder a person named (no HOST-PID-RAND tag after two "--") is no work folder:
    no host is read from it."""
    assert work_host(name) is None


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_work_folder_is_ours_to_finish_only_of_this_host_our_state_dir_and_a_process_gone(
        ) -> None:
    """whose: ours when its name carries this host, our state dir (or none, as before
    owners) and our pid or one no longer running; a sibling's when only the state dir
    differs; not ours for another host, a live process (pid 1, or a pid whose process
    outboxd may not signal: another user's) or no work folder name."""
    here, dead = workname.host_tag(), _dead_pid()
    mine, other = "c0ffee", "beef00"

    def named(host: str, pid: int, owner: str) -> str:
        return f"INV--1--{'ab' * 6}--{host}-{pid}-{owner}123456"

    assert workname.whose(named(here, dead, mine), mine) == workname.OURS
    assert workname.whose(named(here, os.getpid(), mine), mine) == workname.OURS
    assert workname.whose(named(here, dead, ""), mine) == workname.OURS
    assert workname.whose(named(here, dead, other), mine) == workname.SIBLING
    assert workname.whose(named(f"not-{here}", dead, mine), mine) == workname.NOT_OURS
    assert workname.whose(named(here, 1, mine), mine) == workname.NOT_OURS

    def another_users(pid: int, sig: int) -> None:  # as a daemon not run as root meets it
        raise PermissionError(1, "Operation not permitted")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(workname.os, "kill", another_users)
        assert workname.whose(named(here, 4242, mine), mine) == workname.NOT_OURS
    for name in ("INV-1", "INV-1--ab--host-x-r", f"INV-1--ab--{here}"):
        assert workname.whose(name, mine) == workname.NOT_OURS
    assert workname.has_owner(named(here, dead, mine))
    assert not workname.has_owner(named(here, dead, ""))


@pytest.mark.parametrize("invoice", ["INV-1", "a--b--c", "x" * 300])
def test_the_bundle_a_work_folder_was_claimed_for_is_read_back_from_its_name(
        invoice: str) -> None:
    """A name work_dir_for makes carries the first 12 hex digits of its bundle's id, read
    back whatever the invoice file's name holds ("--" too) or however long it is; a name
    that carries none (a folder someone made) gives None."""
    bid = "0123456789abcdef" * 4
    made = claim.work_dir_for(Path("processing"), invoice, bid, "abc123")
    assert workname.work_bundle(made.name) == bid[:12]
    assert workname.work_bundle("mine") is None
    assert workname.work_bundle("INV-1--not-an-id!--host-1-abcdef") is None


@pytest.mark.parametrize("host", ["xn--mnchen-3ya", "web--1", "a--0123456789ab"])
def test_a_host_named_with_a_double_hyphen_finds_its_own_work_folders(
        host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short host name holding "--" (an IDN host, xn--…, or one named web--1): the
    folders work_dir_for makes there are read back as this host's, ours to finish, with
    their bundle's ID12 and owner. Split at the last "--", such a folder read as another
    host's ("mnchen-3ya"): a crash's work folders were never finished (not ours), and
    the orphan sweep found no bundle id in the name to prove a receipt by."""
    monkeypatch.setattr(workname.socket, "gethostname", lambda: f"{host}.example.org")
    bid = "0123456789abcdef" * 4
    for invoice in ("INV-1", "a--b--c", "INV--fedcba987654--x"):
        made = claim.work_dir_for(Path("processing"), invoice, bid, "c0ffee")
        assert work_host(made.name) == host
        assert workname.work_bundle(made.name) == bid[:12]
        assert workname.whose(made.name, "c0ffee") == workname.OURS  # our own pid
        assert workname.whose(made.name, "beef00") == workname.SIBLING
        assert workname.has_owner(made.name)
