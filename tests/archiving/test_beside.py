"""A bundle whose archive entry name was taken by someone else's entry, after a kill of
an archive on another file system: the retry goes beside it (NAME-2 …) and leaves
nothing of its own behind at the name taken, nor blames anyone for what was its own."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import claimed, delivered_unarchived, restart  # noqa: E402
from exdev import exdev_for, killed_at  # noqa: E402
from helpers import pdf_bytes  # noqa: E402

from daemon.archiving.copyfound import KEPT  # noqa: E402
from daemon.fs import fsmove  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402


class _Killed(BaseException):
    """SIGKILL: nothing on the way catches it."""


def test_a_retry_beside_a_name_taken_after_a_kill_before_the_rename_leaves_nothing_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on another file system: the daemon is SIGKILLed with its complete copy made
    (`.NAME.TAG.partial`) and the work folder marked for NAME, before the copy's rename;
    meanwhile someone else's entry takes NAME. The retry archives the bundle once at
    NAME-2, the journal naming it, and leaves no copy of its own under way in the day
    folder (a whole bundle's bytes hidden in sent/ for good), nor a warning that the
    work folder's mark was not outboxd's (it was: its own, for NAME)."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    killed_at(monkeypatch, work, "marked", _Killed())
    # A SIGKILL runs no clean-up: the copy under way stays where it was made.
    monkeypatch.setattr(fsmove, "remove_made", lambda *_: None)
    with pytest.raises(_Killed):
        p.finish.attempt(row)
    monkeypatch.undo()
    journaled = Path(p.j.get(row).archive_dir or "")
    assert (work / KEPT).read_bytes() == os.fsencode(journaled)
    assert [n for n in os.listdir(journaled.parent) if n.endswith(".partial")]
    theirs = journaled / "receipt.json"  # another bundle's entry took the name meanwhile
    theirs.parent.mkdir()
    theirs.write_text(json.dumps({"bundle_id": "f" * 64}))

    exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        assert restart(p, s, row).attempt(row) is None
    beside = _archived_once_beside(p, row, journaled)
    assert KEPT not in os.listdir(beside) and not work.exists()
    assert json.loads(theirs.read_text()) == {"bundle_id": "f" * 64}
    assert [e["event"] for e in logged if e["log_level"] in ("warning", "error")] == []


def _archived_once_beside(p: Pipeline, row: int, journaled: Path) -> Path:
    """Asserts the row sent, archived at NAME-2 beside the entry at `journaled` (another
    bundle's), the day folder holding those two and nothing else, the bundle's file
    whole; NAME-2."""
    done = p.j.get(row)
    beside = journaled.with_name(f"{journaled.name}-2")
    assert (done.state, done.archive_dir) == ("sent", str(beside))
    assert sorted(os.listdir(journaled.parent)) == [journaled.name, beside.name]
    assert (beside / "INV-1" / "a.pdf").read_bytes() == pdf_bytes()
    return beside


def _someone_elses(entry: Path) -> Path:
    """Another bundle's entry at `entry`; its receipt."""
    entry.mkdir(parents=True)
    (entry / "receipt.json").write_text(json.dumps({"bundle_id": "f" * 64}))
    return entry / "receipt.json"


@pytest.mark.parametrize("suffix", ["-2", "-3"], ids=["beside", "past-a-removed-entry"])
def test_an_older_versions_copy_under_way_under_a_suffixed_name_is_removed_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    """Upgrade: a version before the per-daemon copy names found the sent/ folder it had
    journaled (NAME) taken by another bundle's entry, so it copied into NAME-2
    (`.NAME-2.partial`) — or, NAME-2 taken too, into NAME-3, NAME-2 removed since — and
    was killed mid-copy. The new version removed the older copy under the plain name
    only, and then looked no further than the first free NAME-N: the copy stayed in
    sent/ for good, a whole bundle's bytes hidden in the archive. It is removed, with its
    log line; the bundle is archived once, at NAME-2, the other entry kept as it is."""
    p, s, row, work, journaled = delivered_unarchived(tmp_path, monkeypatch)
    other = _someone_elses(journaled)
    left = journaled.with_name(f".{journaled.name}{suffix}.partial")
    (left / "INV-1").mkdir(parents=True)
    (left / "INV-1" / "a.pdf").write_bytes(b"half a copy")
    exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        assert restart(p, s, row).attempt(row) is None
    _archived_once_beside(p, row, journaled)
    assert json.loads(other.read_text()) == {"bundle_id": "f" * 64}
    assert [e["partial"] for e in logged
            if e["event"] == "removed the copy an older outboxd left under way"] == [str(left)]


def test_an_older_versions_copy_beside_cut_short_in_its_removal_is_taken_as_the_bundles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upgrade: a version that went beside a taken entry name without journaling the
    name beside, and marked nothing before its removal, copied the bundle into NAME-2 on
    another file system while a clerk saved a file into its sidecar folder, and was
    killed part-way through removing the work folder. Its copy at NAME-2 was taken for
    the bundle's only when whole: the bundle was archived a second time at NAME-3, the
    clerk's never-sent file in it shown as sent. Now NAME-2 is the bundle's one entry,
    the journal naming it, and the clerk's file is kept in processing and said."""
    p, s, row, work, journaled = delivered_unarchived(tmp_path, monkeypatch)
    _someone_elses(journaled)
    copy = journaled.with_name(f"{journaled.name}-2")
    shutil.copytree(work, copy)  # the older version's copy, renamed into place
    (work / "INV-1" / "late.pdf").write_bytes(b"%PDF-late")  # saved during the copy
    (work / "INV-1" / "a.pdf").unlink()  # its removal, cut short
    exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        assert restart(p, s, row).attempt(row) is None
    done = p.j.get(row)
    assert (done.state, done.archive_dir) == ("sent", str(copy))
    assert sorted(os.listdir(journaled.parent)) == [journaled.name, copy.name]
    assert sorted(os.listdir(copy / "INV-1")) == ["a.pdf"]
    assert (work / "INV-1" / "late.pdf").read_bytes() == b"%PDF-late"
    assert not (work / "INV-1.xml").exists() and not (work / "receipt.json").exists()
    [said] = [e for e in logged if e.get("kept")]
    assert said["kept"] == [str(work / "INV-1" / "late.pdf")] and said["archive"] == str(copy)
