"""Another host's work folders in the processing folder (daemon/claiming/foreign.py): listed
by name, with what to do by what each holds; this host's and other entries are not."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import write

from daemon.claiming.foreign import foreign_work
from daemon.claiming.workname import host_tag


def test_another_hosts_work_folders_are_listed_with_the_fix_by_what_they_hold(
        tmp_path: Path) -> None:
    """After a journal loss on a new server the old host's work folders are never taken
    over: each is listed with its host, both cases (that host's outboxd still runs here,
    or not) and, for the second, the fix — put back to send it, or into sent/ (delivered:
    never put back, it would be sent again) or quarantine/ by the paper it holds. This
    host's folders, files, hidden entries and names that are no work folder's are not."""
    processing = tmp_path / "processing"
    write(processing / "INV-1--0123456789ab--oldbox-41-c0ffee123456" / "INV-1.xml", b"x")
    write(processing / "INV-2--0123456789ab--old-box-7-123456" / "receipt.json", b"{}")
    write(processing / "INV-3--0123456789ab--oldbox-9-abcdef" / "reason.json", b"{}")
    write(processing / f"INV-4--0123456789ab--{host_tag()}-5-abcdef" / "INV-4.xml", b"x")
    write(processing / "INV-5--0123456789ab--oldbox-5-abcdef", b"a file, no folder")
    (processing / ".INV-6--0123456789ab--oldbox-5-abcdef").mkdir()
    (processing / "mine").mkdir()
    found = foreign_work(processing, tmp_path / "outbox")  # [paths] processing outside it
    assert [(f.name, f.host) for f in found] == [
        ("INV-1--0123456789ab--oldbox-41-c0ffee123456", "oldbox"),
        ("INV-2--0123456789ab--old-box-7-123456", "old-box"),
        ("INV-3--0123456789ab--oldbox-9-abcdef", "oldbox")]
    put_back, delivered, quarantining = (f.why for f in found)
    assert put_back == (
        "work folder of host oldbox, not ours: outboxd on oldbox took INV-1 for sending and "
        "has not finished it. If outboxd on oldbox still runs on this outbox, it finishes "
        "it (its own status lists it): nothing to do. If not (the outbox moved here from "
        "oldbox), it is never sent from here — to send it, move its files into the outbox "
        "(the sidecar folder first, the invoice file last), then remove the folder; if "
        "that host had sent it already, the receiver recognises it by its bundle id")
    assert delivered.endswith(
        "it was delivered (it holds receipt.json): move the folder into sent/ to keep its "
        "receipt with the others; do not put its files back, they would be sent again")
    assert quarantining.endswith("it was being quarantined (it holds reason.json, which "
                                 "says why): move the folder into quarantine/ beside the "
                                 "others")
    assert foreign_work(tmp_path / "not-made-yet", tmp_path / "outbox") == []


def test_an_invoice_name_holding_dashes_is_named_whole_in_the_fix(tmp_path: Path) -> None:
    """The fix names the invoice the old host took as its work folder's name carries it,
    read from the right: a clerk's file `INV--2026--7.xml` is "INV--2026--7", not "INV"
    (the admin looks for that file among the folder's), and a host holding "--" too
    (xn--mnchen-3ya) is named whole."""
    processing = tmp_path / "processing"
    write(processing / "INV--2026--7--0123456789ab--xn--mnchen-3ya-41-c0ffee123456"
          / "INV--2026--7.xml", b"x")
    [found] = foreign_work(processing, tmp_path / "outbox")
    assert found.host == "xn--mnchen-3ya"
    assert "outboxd on xn--mnchen-3ya took INV--2026--7 for sending" in found.why


def test_a_dot_outboxd_replaced_by_a_link_is_not_followed_to_list_another_folder(
        tmp_path: Path) -> None:
    """Anyone on the share may replace OUTBOX/.outboxd by a link to another folder: its
    work folders (and whether they hold a receipt) were listed as if in the processing
    folder. Inside the outbox no link on the way is followed: nothing is listed."""
    outbox = tmp_path / "outbox"
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "processing" / "INV-1--0123456789ab--oldbox-41-c0ffee" / "receipt.json",
          b"{}")
    outbox.mkdir()
    (outbox / ".outboxd").symlink_to(elsewhere)
    assert foreign_work(outbox / ".outboxd" / "processing", outbox) == []


def test_a_processing_folder_the_admin_put_behind_a_link_outside_the_outbox_is_listed(
        tmp_path: Path) -> None:
    """[paths] processing outside the outbox is the admin's choice: a link on its way
    there is followed, as configured."""
    real = tmp_path / "real"
    write(real / "processing" / "INV-1--0123456789ab--oldbox-41-c0ffee" / "INV-1.xml", b"x")
    (tmp_path / "mnt").symlink_to(real)
    found = foreign_work(tmp_path / "mnt" / "processing", tmp_path / "outbox")
    assert [f.host for f in found] == ["oldbox"]


def test_a_work_folder_swapped_for_a_link_does_not_tell_what_lies_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A work folder swapped for a link after the listing: its papers are looked for in
    it, never through the link (the page would tell whether a receipt.json lies there)."""
    from daemon.claiming import foreign
    outbox = tmp_path / "outbox"
    processing = outbox / ".outboxd" / "processing"
    name = "INV-1--0123456789ab--oldbox-41-c0ffee"
    write(tmp_path / "elsewhere" / "receipt.json", b"{}")
    write(processing / name / "INV-1.xml", b"x")
    real = foreign._papers

    def swapped(fd: int, entry: str) -> set[str]:
        (processing / entry / "INV-1.xml").unlink()
        (processing / entry).rmdir()
        (processing / entry).symlink_to(tmp_path / "elsewhere")
        return real(fd, entry)

    monkeypatch.setattr(foreign, "_papers", swapped)
    [found] = foreign_work(processing, outbox)
    assert "holds receipt.json" not in found.why


def test_a_delivered_folder_whose_receipt_the_share_cannot_look_at_is_not_told_to_go_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another host's work folder holding receipt.json, whose look fails with EIO (the
    share half away): left out of this look, listed again once the share answers. Taken
    for "holds no paper", it was given the fix "to send it, move its files into the
    outbox" — a delivered bundle sent again by the admin who followed it."""
    processing = tmp_path / "processing"
    write(processing / "INV-2--0123456789ab--oldbox-7-123456" / "receipt.json", b"{}")
    real_stat = os.stat

    def failing(path: Any, *args: Any, **kw: Any) -> os.stat_result:
        if path == "receipt.json":
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return real_stat(path, *args, **kw)
    with monkeypatch.context() as m:
        m.setattr(os, "stat", failing)
        assert foreign_work(processing, tmp_path / "outbox") == []
    [found] = foreign_work(processing, tmp_path / "outbox")
    assert "it was delivered (it holds receipt.json)" in found.why
