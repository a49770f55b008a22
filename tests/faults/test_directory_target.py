"""The directory transport's target on a mount of its own (daemon/delivery/directory.py,
docs/protocol.md section 7), with the real kernel: the share a transfer agent reads, unmounted
while outboxd runs, must not have bundles written onto the local disk under its empty mount point
(which no agent sees, and which the share hides for good once it is mounted again)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import Mounts, bundle_of, no_traceback

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_a_target_whose_share_is_unmounted_gets_nothing_until_it_is_mounted_again(
        env: Env, mounts: Mounts, start_daemon) -> None:
    """The target's file system unmounted under a running daemon: a bundle dropped then is
    not written into the bare mount point but waits (`retrying`, the error saying the
    target is not on the file system it was on), and goes out into the share, once, as
    soon as a share is mounted there again."""
    target = mounts.tmpfs(env.root / "target", "8m")
    env.write_config("http://127.0.0.1:9/unused", delivery={
        "transport": "directory", "target": str(target)}, policy={"unattached": "send"})
    daemon = start_daemon()
    mounts.lazy_unmount(target)

    _waits_off_its_share(env, target)

    mounts.tmpfs(target, "8m")  # the share back (another device number, as a remount gets)
    _sent_into_the_share(env, target)
    assert env.sent_bundles() and env.quarantined() == []
    no_traceback(daemon.stderr())


def test_a_reload_during_the_targets_outage_keeps_the_share_as_its_home(
        env: Env, mounts: Mounts, start_daemon) -> None:
    """A reload (SIGHUP: a new log level, say) made while the target's share is unmounted
    does not take the bare mount point for the target: a bundle dropped after it still
    waits, nothing is written onto the local disk, and it goes out into the share once that
    is mounted again — as sent/ and quarantine/ do (docs/protocol.md, section 7)."""
    target = mounts.tmpfs(env.root / "target", "8m")
    delivery = {"transport": "directory", "target": str(target)}
    env.write_config("http://127.0.0.1:9/unused", delivery=delivery,
                     policy={"unattached": "send"})
    daemon = start_daemon()
    mounts.lazy_unmount(target)
    env.write_config("http://127.0.0.1:9/unused", delivery=delivery,
                     policy={"unattached": "send"}, log={"level": "debug"})
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), timeout=30,
             what="the reload")

    _waits_off_its_share(env, target)

    mounts.tmpfs(target, "8m")
    _sent_into_the_share(env, target)
    assert env.sent_bundles() and env.quarantined() == []
    no_traceback(daemon.stderr())


def test_a_reload_while_the_share_is_away_makes_no_folder_on_its_bare_mount_point(
        env: Env, mounts: Mounts, start_daemon) -> None:
    """sent/, quarantine/ and the target below one share (/share/out/…): a reload made
    while it is unmounted is applied but makes none of them again under the bare mount
    point on the local disk, where the remount would hide them."""
    share = mounts.tmpfs(env.root / "share", "8m")
    out = share / "out"
    paths = {"state_dir": str(env.state), "sent": str(out / "sent"),
             "quarantine": str(out / "quarantine")}
    delivery = {"transport": "directory", "target": str(out / "target")}
    env.write_config("http://127.0.0.1:9/unused", delivery=delivery, paths=paths)
    daemon = start_daemon()
    assert sorted(os.listdir(out)) == ["quarantine", "sent", "target"]
    mounts.lazy_unmount(share)
    env.write_config("http://127.0.0.1:9/unused", delivery=delivery, paths=paths,
                     log={"level": "debug"})
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), timeout=30,
             what="the reload")
    assert os.listdir(share) == [], "folders made on the local disk under the mount point"
    no_traceback(daemon.stderr())


def _waits_off_its_share(env: Env, target: Path) -> None:
    """INV-1 dropped while the target's share is away: it waits as retrying, naming the
    target, and nothing is written onto the local disk under the bare mount point."""
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    # Polled for the state, not for an error alone: the next attempt (a second or two
    # later) is "delivering" again with the last one's error still shown, and a poll
    # that came then on a loaded host read that for the outcome.
    row = wait_for(lambda: (lambda b: b if b["state"] in ("retrying", "sent") else None)(
        bundle_of(env.config, "INV-1.xml")), timeout=30, what="a delivery attempt")
    assert row["state"] == "retrying", row
    assert "file system" in row["last_error"] and str(target) in row["last_error"], row
    assert os.listdir(target) == [], "written onto the local disk under the mount point"


def _sent_into_the_share(env: Env, target: Path) -> None:
    """INV-1 goes out once the share is back: one bundle folder in it, whole."""
    wait_for(lambda: bundle_of(env.config, "INV-1.xml")["state"] == "sent", timeout=30,
             what="the bundle sent once the share is back")
    [published] = os.listdir(target)
    assert (Path(target) / published / "manifest.json").is_file()
