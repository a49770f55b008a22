"""Another machine's outboxd under this daemon's name (the same short host name and state
dir path): this one does not start, and takes none of its work folders (samename.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import structlog

from daemon.claiming.claim import copy_tag, owner_of
from daemon.claiming.orphans import sweep
from daemon.claiming.samename import RETIRED_TWIN, check_name, twin_of
from daemon.claiming.workname import host_tag
from daemon.configuration.config import Settings
from daemon.configuration.deciding import FOLDER, RETIRED_AFTER, TWIN, Deciding
from daemon.errors import NameInUse
from daemon.journal import Journal

OLD, NEW = "0123456789abcdef", "fedcba9876543210"  # two machines' ids (machine.machine_id)


def _daemon(settings: Settings, machine: str, name: str) -> Deciding:
    """The deciding of a daemon of this state dir on the machine `machine` (`name`)."""
    d = Deciding(copy_tag(settings.paths.state_dir))
    d.machine, d.machine_name = machine, name
    return d


def _file(settings: Settings) -> Path:
    return settings.outbox.path.joinpath(*FOLDER, f"{copy_tag(settings.paths.state_dir)}.json")


def _old_daemons_work_folder(settings: Settings) -> Path:
    """A work folder the old server's daemon claimed and is retrying: our very name, a
    process id that is not running here."""
    p = subprocess.Popen(["true"])
    p.wait()
    work = settings.processing_dir / (f"INV-7--{'ab' * 6}--{host_tag()}-{p.pid}-"
                                      f"{owner_of(settings.paths.state_dir)}123456")
    work.mkdir()
    (work / "INV-7.xml").write_bytes(b"<Invoice/>")
    return work


def test_a_live_daemon_of_our_name_on_another_machine_stops_the_start_and_keeps_its_folders(
        settings: Settings) -> None:
    """fin01.old runs (its fingerprint renewed just now); fin01.new, the same short name and
    state dir, starts on a new journal: NameInUse naming both machines, the processing
    folder with the count of that name's work folders, and the fix. The old daemon's work
    folder is untouched and its fingerprint not replaced. Without the check, the orphan
    sweep of the new journal puts that bundle back into the outbox (the trial's bug)."""
    _daemon(settings, OLD, "fin01.old.example").publish(settings)
    before = _file(settings).read_bytes()
    work = _old_daemons_work_folder(settings)
    new = _daemon(settings, NEW, "fin01.new.example")
    with pytest.raises(NameInUse) as raised:
        check_name(settings, new)
    [said] = raised.value.problems
    assert f"on the machine fin01.old.example (machine {OLD}) runs on this outbox" in said
    assert f"as this machine, fin01.new.example (machine {NEW})" in said
    assert f"{settings.processing_dir} (NAME--ID--{host_tag()}-PID-" in said and ", 1 now)" in said
    assert "its own short host name (hostnamectl hostname) or its own [paths] state_dir" in said
    assert f"remove {_file(settings)}" in said
    assert raised.value.source == str(_file(settings))
    assert _file(settings).read_bytes() == before and (work / "INV-7.xml").exists()
    # What the check keeps from happening: the new journal's sweep takes the folder.
    assert sweep(Journal(settings.journal_path), settings) == 1
    assert (settings.outbox.path / "INV-7.xml").exists() and not work.exists()


def test_our_own_machines_file_an_older_builds_and_none_let_the_start_go_on(
        settings: Settings) -> None:
    """A fingerprint of our name that this machine wrote (a daemon killed, started again),
    one of a build before machines were named (read as before: no machine to compare),
    and none at all: no twin, the start goes on."""
    assert twin_of(settings, copy_tag(settings.paths.state_dir), NEW) is None
    _daemon(settings, NEW, "fin01.new.example").publish(settings)
    check_name(settings, _daemon(settings, NEW, "fin01.new.example"))
    data = json.loads(_file(settings).read_text())
    assert (data["machine"], data["machine_name"]) == (NEW, "fin01.new.example")
    del data["machine"], data["machine_name"]
    _file(settings).write_text(json.dumps(data))  # as an older build writes it
    check_name(settings, _daemon(settings, OLD, "fin01.old.example"))


def test_a_twin_not_renewed_for_over_a_day_is_taken_for_retired_and_said(
        settings: Settings) -> None:
    """fin01.old's fingerprint last renewed over a day ago by the share's clock (its server
    off without a clean stop): the start goes on with a warning naming both machines and
    the file, and the name is ours from then on (our file replaces it, no TWIN error)."""
    _daemon(settings, OLD, "fin01.old.example").publish(settings)
    old = time.time() - RETIRED_AFTER - 600
    os.utime(_file(settings), (old, old))
    new = _daemon(settings, NEW, "fin01.new.example")
    with structlog.testing.capture_logs() as logs:
        check_name(settings, new)
        new.publish(settings)
    [said] = [e for e in logs if e["event"] == RETIRED_TWIN]
    assert (said["other_machine"], said["machine"]) == ("fin01.old.example",
                                                       "fin01.new.example")
    assert said["file"] == str(_file(settings)) and "fin01.old.example" in said["fix"]
    assert [e for e in logs if e["event"] == TWIN] == []
    assert json.loads(_file(settings).read_text())["machine"] == NEW
    # The temp file that told the share's time is gone.
    assert os.listdir(_file(settings).parent) == [_file(settings).name]


def test_a_rewrite_of_our_fingerprint_by_another_machine_while_we_run_is_said_once(
        settings: Settings) -> None:
    """Both started at once (neither found the other's file): the other's write of our
    name's file is found at our next look and said once at error, naming both machines
    and the fix; our own renewals are no such rewrite."""
    ours = _daemon(settings, NEW, "fin01.new.example")
    ours.publish(settings)
    with structlog.testing.capture_logs() as logs:
        ours.compare(settings)
        ours.publish(settings)  # a reload: written again by us
    assert [e for e in logs if e["event"] == TWIN] == []
    _daemon(settings, OLD, "fin01.old.example").publish(settings)
    with structlog.testing.capture_logs() as logs:
        ours.compare(settings)
        ours.compare(settings)
    [said] = [e for e in logs if e["event"] == TWIN]
    assert (said["machine"], said["other_machine"]) == ("fin01.new.example",
                                                       "fin01.old.example")
    assert said["log_level"] == "error" and "state_dir" in said["fix"]


def test_a_forged_fingerprint_is_shown_cut_and_without_control_characters(
        settings: Settings) -> None:
    """Anyone on the share may write a file of our name: its machine and name reach the
    log and `status` as printable text of 64 characters at most, never a terminal's
    escape sequence, and the fix names the file to remove."""
    _file(settings).parent.mkdir(parents=True)
    _file(settings).write_text(json.dumps({"machine": "m" * 5000,
                                           "machine_name": "evil\x1b[2Jhost" + "x" * 500}))
    twin = twin_of(settings, copy_tag(settings.paths.state_dir), NEW)
    assert twin is not None and not twin.retired
    assert "\x1b" not in twin.machine and twin.machine.startswith("evil")
    assert len(twin.machine_id) <= 64 and len(twin.machine) <= 64 * 4


def test_a_server_rebuilt_under_its_own_full_name_is_told_it_is_that_case(
        settings: Settings) -> None:
    """Disaster recovery: fin01.example died without a clean stop and was reinstalled
    under the same full host name (a new machine-id). Its old fingerprint is renewed
    within the day, so the start is refused; the refusal says that a server of this
    very name rebuilt has no daemon left on the old machine, and to remove the file —
    not only "stop outboxd on fin01.example", which names the machine the admin is on."""
    _daemon(settings, OLD, "fin01.example").publish(settings)
    with pytest.raises(NameInUse) as raised:
        check_name(settings, _daemon(settings, NEW, "fin01.example"))
    [said] = raised.value.problems
    assert "The other machine has this one's full host name: if this server was rebuilt" \
        in said
    assert said.endswith(f"remove {_file(settings)} and start outboxd again")
    _daemon(settings, OLD, "fin01.old.example").publish(settings)  # another name: not said
    with pytest.raises(NameInUse) as raised:
        check_name(settings, _daemon(settings, NEW, "fin01.new.example"))
    assert "full host name" not in raised.value.problems[0]
