"""A bundle whose archive entry name was taken by someone else's entry, after a kill of
an archive on another file system: the retry goes beside it (NAME-2 …) and leaves
nothing of its own behind at the name taken, nor blames anyone for what was its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import claimed, restart  # noqa: E402
from exdev import exdev_for, killed_at  # noqa: E402
from helpers import pdf_bytes  # noqa: E402

from daemon.archiving.copyfound import KEPT  # noqa: E402
from daemon.fs import fsmove  # noqa: E402


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
    done = p.j.get(row)
    beside = journaled.with_name(f"{journaled.name}-2")
    assert (done.state, done.archive_dir) == ("sent", str(beside))
    assert sorted(os.listdir(journaled.parent)) == [journaled.name, beside.name]
    assert (beside / "INV-1" / "a.pdf").read_bytes() == pdf_bytes()
    assert KEPT not in os.listdir(beside) and not work.exists()
    assert json.loads(theirs.read_text()) == {"bundle_id": "f" * 64}
    assert [e["event"] for e in logged if e["log_level"] in ("warning", "error")] == []
