"""sent/, quarantine/ and processing/ on shares of their own (daemon/watching/foldermounts.py,
docs/operations.md), with the real kernel: a share unmounted while outboxd runs must not
have archive entries (or claims) written onto the local disk under its empty mount point
(where no clerk looks, and which the share hides for good once it is mounted again); the
bundle waits and goes on into the share once it is back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import Mounts, bundle_of, no_traceback, status_json

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def _row(env: Env, invoice_file: str) -> dict[str, Any]:
    """The bundle's row in `outboxd status`; empty while it has none."""
    rows = [b for b in status_json(env.config)["bundles"] if b["invoice_file"] == invoice_file]
    return rows[-1] if rows else {}


def _attempted(env: Env, invoice_file: str):  # type: ignore[no-untyped-def]
    """The bundle's row once it has an error or is done."""
    return lambda: (lambda b: b if b.get("last_error") or b.get("state") in (
        "sent", "quarantined") else None)(_row(env, invoice_file))


def test_sent_whose_share_is_unmounted_gets_nothing_until_it_is_mounted_again(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """sent/'s file system unmounted under a running daemon: a bundle delivered then is not
    archived into the bare mount point (nor recorded sent) but waits as `retrying`, the
    error naming sent/ and the mount it was on; once a share is mounted there again it is
    archived into it, without a second POST."""
    sent = mounts.tmpfs(env.root / "sent", "8m")
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "sent": str(sent)})
    daemon = start_daemon()
    mounts.lazy_unmount(sent)

    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    row = wait_for(_attempted(env, "INV-1.xml"), timeout=30, what="an archive attempt")
    assert row["state"] == "retrying", row
    assert str(sent) in row["last_error"] and "tmpfs" in row["last_error"], row
    assert os.listdir(sent) == [], "archived onto the local disk under the mount point"

    mounts.tmpfs(sent, "8m")  # the share back (another device number, as a remount gets)
    wait_for(lambda: bundle_of(env.config, "INV-1.xml")["state"] == "sent", timeout=30,
             what="the bundle archived once the share is back")
    [archived] = env.sent_bundles()
    assert (archived / "INV-1.xml").is_file() and (archived / "receipt.json").is_file()
    assert len(receiver.requests()) == 1
    assert list(env.processing.iterdir()) == []
    no_traceback(daemon.stderr())


def test_sent_with_another_share_mounted_in_its_place_gets_nothing_until_its_own_is_back(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """sent/'s share unmounted and another share of the same type mounted at its point
    (the wrong //server/share): a bundle delivered then is not archived into that share
    but waits as `retrying`, the error naming both shares; once sent/'s own share is
    mounted there again, it is archived into it, without a second POST."""
    sent = mounts.tmpfs(env.root / "sent", "8m", source="//fs/finance")
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "sent": str(sent)})
    daemon = start_daemon()
    mounts.lazy_unmount(sent)
    mounts.tmpfs(sent, "8m", source="//fs/hr")

    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    row = wait_for(_attempted(env, "INV-1.xml"), timeout=30, what="an archive attempt")
    assert row["state"] == "retrying", row
    assert f"tmpfs //fs/finance mounted at {sent}; now tmpfs //fs/hr mounted at {sent}" \
        in row["last_error"], row
    assert os.listdir(sent) == [], "archived into another share"

    mounts.lazy_unmount(sent)
    mounts.tmpfs(sent, "8m", source="//fs/finance")
    wait_for(lambda: bundle_of(env.config, "INV-1.xml")["state"] == "sent", timeout=30,
             what="the bundle archived once its own share is back")
    [archived] = env.sent_bundles()
    assert (archived / "INV-1.xml").is_file() and (archived / "receipt.json").is_file()
    assert len(receiver.requests()) == 1
    no_traceback(daemon.stderr())


def test_quarantine_whose_share_is_unmounted_gets_nothing_until_it_is_mounted_again(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """quarantine/'s file system unmounted under a running daemon: an invalid bundle is not
    moved with its REASON.txt into the bare mount point (nor recorded quarantined) but
    waits, the error naming quarantine/ and its mount, and is quarantined into the share
    once it is back; nothing is posted."""
    quarantine = mounts.tmpfs(env.root / "quarantine", "8m")
    env.write_config(receiver.url,
                     paths={"state_dir": str(env.state), "quarantine": str(quarantine)})
    daemon = start_daemon()
    mounts.lazy_unmount(quarantine)

    drop_bundle(env.outbox, "INV-2", {"scan.pdf": b"not a pdf at all\n" * 200})
    row = wait_for(_attempted(env, "INV-2.xml"), timeout=30, what="a quarantine attempt")
    assert row["state"] in ("delivering", "retrying", "quarantining"), row
    assert str(quarantine) in row["last_error"] and "tmpfs" in row["last_error"], row
    assert os.listdir(quarantine) == [], "quarantined onto the local disk under the mount point"

    mounts.tmpfs(quarantine, "8m")
    wait_for(lambda: bundle_of(env.config, "INV-2.xml")["state"] == "quarantined", timeout=30,
             what="the bundle quarantined once the share is back")
    [entry] = env.quarantined()
    assert (entry / "REASON.txt").is_file()
    assert receiver.requests() == []
    no_traceback(daemon.stderr())


def test_sent_inside_a_share_that_is_unmounted_is_not_made_again_on_the_local_disk(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """sent/ a folder inside a share (not its mount point): with the share unmounted the
    folder is missing, and the archive must not create it (and the day folder) on the
    local disk under the bare mount point; the bundle waits, naming the folder."""
    share = mounts.tmpfs(env.root / "archive", "8m")
    sent = share / "sent"
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "sent": str(sent)})
    daemon = start_daemon()
    mounts.lazy_unmount(share)

    drop_bundle(env.outbox, "INV-3", {"a.pdf": pdf_bytes()})
    row = wait_for(_attempted(env, "INV-3.xml"), timeout=30, what="an archive attempt")
    assert row["state"] == "retrying", row
    assert str(sent) in row["last_error"], row
    assert os.listdir(share) == [], "sent/ made again on the local disk under the mount point"

    mounts.tmpfs(share, "8m")
    sent.mkdir()  # the share back, with its sent/ folder (a fresh tmpfs starts empty)
    wait_for(lambda: bundle_of(env.config, "INV-3.xml")["state"] == "sent", timeout=30,
             what="the bundle archived once the share is back")
    assert len(env.__class__(env.root).sent_bundles()) == 0  # not in the default sent/
    assert [p.parent.parent for p in Path(sent).glob("*/*")] == [sent]
    no_traceback(daemon.stderr())


def test_no_claim_into_a_processing_folder_whose_share_is_unmounted(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """The outbox's share (holding the processing folder) unmounted under a running daemon,
    and a bundle written into the bare mount point left there: it is not claimed into a
    processing folder made anew on the local disk (where the remount would hide it while
    the journal has it in flight) but waits, its row naming [paths] processing and the
    mount it was on; once the share is back, bundles dropped there are sent."""
    backing = env.root / "backing"
    backing.mkdir()
    mounts.bind(backing, env.outbox)
    # A bundle in the bare mount point, and in the share bound again, is found by a rescan
    # (the watch stays on the folder it was put on): every half second, not every 5 s.
    env.write_config(receiver.url, outbox={"rescan_seconds": 0.5})
    daemon = start_daemon()
    mounts.lazy_unmount(env.outbox)

    drop_bundle(env.outbox, "INV-4", {"a.pdf": pdf_bytes()})
    row = wait_for(_attempted(env, "INV-4.xml"), timeout=30, what="a claim attempt")
    assert row["state"] not in ("sent", "delivering", "retrying"), row
    assert "[paths] processing" in row["last_error"] and "bind" not in row["last_error"], row
    assert str(env.outbox) in row["last_error"], row
    assert not (env.outbox / ".outboxd").exists(), "processing made on the bare mount point"
    assert receiver.requests() == []

    mounts.bind(backing, env.outbox)
    drop_bundle(env.outbox, "INV-5", {"a.pdf": pdf_bytes()})
    wait_for(lambda: _row(env, "INV-5.xml").get("state") == "sent", timeout=30,
             what="a bundle dropped into the share once it is back sent")
    no_traceback(daemon.stderr())


def test_sent_bind_mounted_from_the_same_disk_is_waited_for_when_the_bind_goes(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """sent/ a bind mount of a folder on the very file system its mount point is on (the
    share's folder exported from /data, bound at /srv): the device number does not change
    when the bind is unmounted, the folder does. A bundle delivered then waits as
    `retrying`, not archived into the bare mount point the clerks never see; bound again,
    it is archived into the bound folder."""
    source = env.root / "data-sent"
    source.mkdir()
    sent = mounts.bind(source, env.root / "sent")
    env.write_config(receiver.url, paths={"state_dir": str(env.state), "sent": str(sent)})
    daemon = start_daemon()
    mounts.lazy_unmount(sent)

    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    row = wait_for(_attempted(env, "INV-1.xml"), timeout=30, what="an archive attempt")
    assert row["state"] == "retrying", row
    assert str(sent) in row["last_error"], row
    assert os.listdir(sent) == [], "archived onto the bare mount point"

    mounts.bind(source, sent)
    wait_for(lambda: bundle_of(env.config, "INV-1.xml")["state"] == "sent", timeout=30,
             what="the bundle archived once the bind is back")
    [day] = os.listdir(source)
    assert [p.name.split("--")[0] for p in (source / day).iterdir()] == ["INV-1"]
    assert len(receiver.requests()) == 1
    no_traceback(daemon.stderr())
