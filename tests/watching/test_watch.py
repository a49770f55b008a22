"""Watching: events become hints about top-level names, in inotify mode from our own watches,
in polling mode from the poller (its own tests: test_poll.py)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import fake_mount_table, needs_proc, os_thread_name  # noqa: E402

from daemon.watching.watch import OVERFLOW, ROOT_LOST, Watcher, choose_mode  # noqa: E402


class TestWatcher:
    @pytest.mark.parametrize("mode", ["inotify", "polling"])
    def test_a_missing_outbox_raises_oserror_for_the_caller_to_log(self, tmp_path: Path,
                                                                   mode: str) -> None:
        """Starting on a folder that is gone raises OSError (the service logs it and retries
        at the next rescan) instead of killing a thread silently."""
        w = Watcher(tmp_path / "gone", mode, 1.0, lambda _: None)
        with pytest.raises(OSError):
            w.ensure_alive()
        assert not w.alive()
        w.stop()

    def test_a_poller_whose_share_went_away_is_restarted_when_it_is_back(
            self, tmp_path: Path) -> None:
        """Polling mode: the outbox gone ends the poller's thread, so the watcher is not
        alive; while it stays gone ensure_alive() raises OSError (logged by the loop), and
        once it is back ensure_alive() restarts the poller, which hints again."""
        from helpers import wait_for
        root = tmp_path / "outbox"
        root.mkdir()
        got: list[str] = []
        w = Watcher(root, "polling", 0.05, got.append)
        assert w.ensure_alive()
        try:
            root.rmdir()
            wait_for(lambda: not w.alive(), what="the poller to end")
            with pytest.raises(OSError):
                w.ensure_alive()
            root.mkdir()
            assert w.ensure_alive() and w.alive() and w.restarts == 3
            assert not w.ensure_alive()
            (root / "INV-1.xml").write_text("<Invoice/>")
            wait_for(lambda: "INV-1.xml" in got, what="a hint from the restarted poller")
        finally:
            w.stop()

    def test_auto_polls_only_on_network_file_systems(self, tmp_path: Path) -> None:
        """watch = "auto" picks inotify for a local temp folder; explicit modes are kept."""
        assert choose_mode("auto", tmp_path) == "inotify"
        assert choose_mode("polling", tmp_path) == "polling"

    def test_auto_polls_on_each_network_file_system_the_contract_names(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """docs/configuration.md, `[outbox] watch`: "auto" polls where the outbox is on
        NFS, SMB/CIFS, sshfs or 9p, where inotify sees no remote writes, and uses inotify
        on a local one. The mount holding the outbox is the longest mount point above it in
        the mount table (a name with a space is written there as \\040), not one that
        merely starts with the same letters."""
        table = ("/dev/sda1 / ext4 rw 0 0\n"
                 "srv:/export /srv/nfs nfs rw 0 0\n"
                 "srv:/export4 /srv/nfs4 nfs4 rw 0 0\n"
                 "//fs/finance /srv/finance\\040share cifs rw 0 0\n"
                 "//fs/smb3 /srv/smb3 smb3 rw 0 0\n"
                 "me@host:/x /srv/sshfs fuse.sshfs rw 0 0\n"
                 "hostshare /srv/9p 9p rw 0 0\n"
                 "/dev/sdb1 /srv/nfs/local ext4 rw 0 0\n")

        fake_mount_table(monkeypatch, table)
        for outbox in ("/srv/nfs/outbox", "/srv/nfs4/outbox", "/srv/finance share/outbox",
                       "/srv/smb3/outbox", "/srv/sshfs/outbox", "/srv/9p/outbox"):
            assert choose_mode("auto", Path(outbox)) == "polling", outbox
        for outbox in ("/srv/nfs/local/outbox", "/srv/nfs-copy/outbox", "/var/outbox"):
            assert choose_mode("auto", Path(outbox)) == "inotify", outbox
        assert choose_mode("inotify", Path("/srv/nfs/outbox")) == "inotify"

    @pytest.mark.parametrize("kind", ["virtiofs", "vboxsf", "fuse.vmhgfs-fuse", "lustre",
                                      "gpfs", "fuse.s3fs", "ocfs2", "gfs2"])
    def test_auto_polls_on_shared_and_cluster_file_systems_inotify_cannot_see_into(
            self, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
        """A VM host's shared folder (virtiofs, VirtualBox, VMware), a cluster or parallel
        file system (Lustre, GPFS, OCFS2, GFS2) and an S3 bucket (s3fs): writes made by the
        host or another node raise no inotify event here, so "auto" polls there too."""
        fake_mount_table(monkeypatch, "/dev/sda1 / ext4 rw 0 0\n"
                                      f"share /srv/shared {kind} rw 0 0\n")
        assert choose_mode("auto", Path("/srv/shared/outbox")) == "polling"
        assert choose_mode("auto", Path("/var/outbox")) == "inotify"

    def test_auto_polls_on_a_share_whose_mount_point_holds_a_tab_newline_or_backslash(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The kernel writes a tab, newline and backslash in a mount point as the octal
        escapes \\011, \\012 and \\134 (as a space is \\040); each is decoded, so an
        outbox on such a share is known to be on a network file system and polled."""
        from daemon.watching import mounts
        table = ("/dev/sda1 / ext4 rw 0 0\n"
                 "//fs/a /srv/tab\\011share cifs rw 0 0\n"
                 "srv:/b /srv/new\\012line nfs4 rw 0 0\n"
                 "//fs/c /srv/back\\134slash smb3 rw 0 0\n"
                 "//fs/d /srv/all\\040\\011\\012\\134 cifs rw 0 0\n")

        fake_mount_table(monkeypatch, table)
        for outbox in ("/srv/tab\tshare/outbox", "/srv/new\nline/outbox",
                       "/srv/back\\slash/outbox", "/srv/all \t\n\\/outbox"):
            assert mounts.fs_type(Path(outbox)) in mounts.NETWORK_FS, repr(outbox)
            assert choose_mode("auto", Path(outbox)) == "polling", repr(outbox)
        assert choose_mode("auto", Path("/srv/tab/outbox")) == "inotify"

    def test_auto_polls_on_a_share_mounted_over_another_mount_at_the_same_point(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A share mounted on top of another mount at the same mount point is the one the
        outbox is on: the mount table lists it later. An NFS or SMB share mounted on
        demand (fstab's x-systemd.automount) sits over its autofs mount, and a share
        mounted over the outbox's folder after the start may sit over a local mount there;
        "auto" must poll both, not take the hidden mount's type and use inotify. A local
        disk mounted over a share the same way is watched with inotify."""
        from daemon.watching import mounts
        table = ("/dev/sda1 / ext4 rw 0 0\n"
                 "systemd-1 /srv/invoices autofs rw 0 0\n"
                 "srv:/invoices /srv/invoices nfs4 rw 0 0\n"
                 "/dev/sdb1 /srv/local ext4 rw 0 0\n"
                 "//fs/finance /srv/local cifs rw 0 0\n"
                 "srv:/export /srv/other nfs4 rw 0 0\n"
                 "/dev/sdc1 /srv/other ext4 rw 0 0\n")

        fake_mount_table(monkeypatch, table)
        assert mounts.fs_type(Path("/srv/invoices/outbox")) == "nfs4"
        assert mounts.fs_type(Path("/srv/invoices")) == "nfs4"
        assert mounts.fs_type(Path("/srv/local/outbox")) == "cifs"
        assert choose_mode("auto", Path("/srv/invoices/outbox")) == "polling"
        assert choose_mode("auto", Path("/srv/local")) == "polling"
        assert choose_mode("auto", Path("/srv/other/outbox")) == "inotify"

    def test_auto_polls_on_a_share_mounted_on_demand_that_is_not_mounted_yet(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An outbox on a share mounted on demand (x-systemd.automount) whose mount
        table holds only the automounter's autofs entry, even after a look into the
        folder (the automounter slow, or the look refused), is polled: what is behind
        it is a share whose type cannot be known yet, not a local disk."""
        import errno

        from daemon.watching import watch
        fake_mount_table(monkeypatch, "/dev/sda1 / ext4 rw 0 0\n"
                                  "systemd-1 /srv/invoices autofs rw 0 0\n")
        assert choose_mode("auto", Path("/srv/invoices/outbox")) == "polling"

        def refused(path: object, *args: object, **kwargs: object) -> os.stat_result:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        monkeypatch.setattr(watch.os, "stat", refused)
        assert choose_mode("auto", Path("/srv/invoices/outbox")) == "polling"
        assert choose_mode("auto", Path("/var/outbox")) == "inotify"

    def test_auto_looks_into_the_outbox_before_reading_the_mount_table(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A look into the outbox folder makes the automounter mount a share mounted on
        demand; "auto" looks before it reads the mount table, so it chooses by the
        file system really mounted there (here a local disk mounted on demand: inotify),
        not by the automounter's entry the table held before the look."""
        from daemon.watching import watch
        table = ["/dev/sda1 / ext4 rw 0 0\n"
                 "systemd-1 /srv/invoices autofs rw 0 0\n"]
        real_stat = os.stat
        looked: list[str] = []

        def stat(path: str | os.PathLike[str], *args: object,
                 **kwargs: object) -> os.stat_result:
            if os.fspath(path).startswith("/srv/invoices"):
                looked.append(os.fspath(path))
                table.append("/dev/sdb1 /srv/invoices ext4 rw 0 0\n")  # mounted now
                return real_stat("/")
            return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(watch.os, "stat", stat)
        fake_mount_table(monkeypatch, lambda: "".join(table))
        assert choose_mode("auto", Path("/srv/invoices/outbox")) == "inotify"
        assert looked == ["/srv/invoices/outbox"]

    def test_auto_looks_again_at_the_file_system_when_the_watcher_is_restarted(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A share mounted over the outbox's folder after the start (the daemon began on
        the empty mount point) makes the watcher dead (another folder is there now); its
        restart polls, as "auto" does on a network file system, instead of keeping an
        inotify watch that sees no remote writes, and a file dropped there is hinted."""
        from helpers import wait_for

        from daemon.watching import mounts
        kind = {"fs": "ext4"}
        monkeypatch.setattr(mounts, "fs_type", lambda path: kind["fs"])
        root = tmp_path / "outbox"
        root.mkdir()
        got: list[str] = []
        w = Watcher(root, "auto", 0.05, got.append)
        try:
            assert w.ensure_alive() and w.mode == "inotify"
            root.rename(tmp_path / "mountpoint.old")
            root.mkdir()  # the share, mounted in its place
            kind["fs"] = "cifs"
            wait_for(lambda: not w.alive(), what="the watcher to notice")
            assert w.ensure_alive() and w.alive()
            assert w.mode == "polling"
            got.clear()
            (root / "INV-1.xml").write_bytes(b"x")
            wait_for(lambda: "INV-1.xml" in got, what="a hint from the poller")
        finally:
            w.stop()


    def test_auto_reads_the_mount_table_once_at_each_start(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """watch = "auto" reads the mount table once when the watcher starts (not also
        when it is made), and once again at each restart, which chooses anew."""
        import io

        from daemon.watching import mounts
        reads: list[str] = []

        def mount_table(path: str, *args: object, **kwargs: object) -> io.BytesIO:
            reads.append(path)
            return io.BytesIO(os.fsencode(f"30 1 8:1 / {tmp_path} rw - ext4 /dev/sda1 rw\n"))
        monkeypatch.setattr(mounts, "open", mount_table, raising=False)
        root = tmp_path / "outbox"
        root.mkdir()
        w = Watcher(root, "auto", 0.05, lambda _: None)
        try:
            assert w.ensure_alive() and w.mode == "inotify"
            assert reads == ["/proc/self/mountinfo"]
            w.stop()
            assert w.ensure_alive() and w.mode == "inotify"
            assert reads == ["/proc/self/mountinfo"] * 2
        finally:
            w.stop()


def test_polling_never_follows_a_symlink_out_of_the_outbox(tmp_path: Path) -> None:
    """watch = "polling" (what "auto" picks on network shares): a link in the outbox to
    a folder outside it is not walked: a change out there gives no hint for the link,
    while a change in the outbox itself (polled after it) does."""
    from helpers import wait_for
    outbox, outside = tmp_path / "outbox", tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    outbox.mkdir()
    (outbox / "evil").symlink_to(outside, target_is_directory=True)
    got: list[str] = []
    w = Watcher(outbox, "polling", 0.05, got.append)
    w.ensure_alive()
    try:
        (outside / "deep" / "secret.txt").write_text("x")
        (outbox / "INV-1.xml").write_text("<Invoice/>")
        wait_for(lambda: "INV-1.xml" in got, what="the hint for the outbox's own file")
        assert "evil" not in got
    finally:
        w.stop()


class TestOutboxInotify:
    """The inotify watcher with its own watches: root and sidecars, never .outboxd/."""

    def watch(self, root: Path) -> tuple[Watcher, list[str]]:
        got: list[str] = []
        w = Watcher(root, "inotify", 1.0, got.append)
        w.ensure_alive()
        return w, got

    @staticmethod
    def claim_away(root: Path, name: str, got: list[str]) -> None:
        """Move a sidecar into .outboxd/ as a claim does; wait for its hint, then forget it."""
        from helpers import wait_for
        (root / name).rename(root / ".outboxd" / name)
        wait_for(lambda: name in got, what="the move hint")
        got.clear()

    def test_files_in_a_new_sidecar_and_its_subfolder_hint_the_sidecar(self,
                                                                        tmp_path: Path) -> None:
        """A sidecar folder created after the start is watched, and so is its invoice
        subfolder: a file written two levels down hints the sidecar's name."""
        from helpers import wait_for
        w, got = self.watch(tmp_path)
        try:
            (tmp_path / "batch-1").mkdir()
            wait_for(lambda: "batch-1" in got, what="the mkdir hint")
            (tmp_path / "batch-1" / "INV-2").mkdir()
            got.clear()
            (tmp_path / "batch-1" / "INV-2" / "a.pdf").write_bytes(b"%PDF-1.4")
            wait_for(lambda: got, what="the file hint")
            assert set(got) == {"batch-1"}
        finally:
            w.stop()

    def test_our_processing_folder_is_not_watched(self, tmp_path: Path) -> None:
        """Work in .outboxd/ (claims, archiving) raises no hints at all."""
        from helpers import wait_for
        (tmp_path / ".outboxd" / "processing").mkdir(parents=True)
        w, got = self.watch(tmp_path)
        try:
            (tmp_path / ".outboxd" / "processing" / "x").write_bytes(b"x")
            (tmp_path / "INV-1.xml").write_bytes(b"<x/>")
            wait_for(lambda: "INV-1.xml" in got, what="the invoice hint")
            assert set(got) == {"INV-1.xml"}
        finally:
            w.stop()

    def test_a_dot_name_in_the_root_is_never_hinted(self, tmp_path: Path) -> None:
        """A dot-name made in the outbox root (the page's temp file as it is written, a
        clerk's hidden file, .outboxd/ itself) is no bundle's: no hint, no loop turn."""
        from helpers import wait_for
        w, got = self.watch(tmp_path)
        try:
            (tmp_path / ".outboxd-status.html.tmp-x1").write_bytes(b"x")
            (tmp_path / ".hidden").mkdir()
            (tmp_path / "INV-1.xml").write_bytes(b"<x/>")
            wait_for(lambda: "INV-1.xml" in got, what="the invoice hint")
            assert set(got) == {"INV-1.xml"}
        finally:
            w.stop()

    def test_a_new_folder_deeper_than_the_watched_depth_is_not_watched(
            self, tmp_path: Path) -> None:
        """Folders made after the start are watched down to the depth the poller walks
        (WATCHED_DEPTH): a folder made at that depth is hinted, but what is written inside
        it is not (no watch for it: the watch limit is spent only where a bundle can be;
        the rescan's look goes one level deeper)."""
        from helpers import wait_for
        w, got = self.watch(tmp_path)
        try:
            folder = tmp_path
            for name in ("batch-1", "INV-2", "deep", "deeper"):
                folder = folder / name
                folder.mkdir()
                wait_for(lambda: "batch-1" in got, what=f"the hint of {name}/")
                got.clear()
            (folder / "a.pdf").write_bytes(b"%PDF-1.4")
            (tmp_path / "INV-3.xml").write_bytes(b"<x/>")
            wait_for(lambda: "INV-3.xml" in got, what="a later hint")
            assert set(got) == {"INV-3.xml"}
        finally:
            w.stop()

    def test_a_sidecar_moved_away_is_no_longer_watched(self, tmp_path: Path) -> None:
        """After a sidecar is moved out (as a claim does), writes inside it at its new place
        are not hinted under its old name."""
        from helpers import wait_for
        (tmp_path / "INV-1").mkdir()
        (tmp_path / ".outboxd").mkdir()
        w, got = self.watch(tmp_path)
        try:
            self.claim_away(tmp_path, "INV-1", got)
            (tmp_path / ".outboxd" / "INV-1" / "late.pdf").write_bytes(b"x")
            (tmp_path / "INV-2.xml").write_bytes(b"<x/>")
            wait_for(lambda: "INV-2.xml" in got, what="a later hint")
            assert "INV-1" not in got
        finally:
            w.stop()

    def test_moving_one_sidecar_away_keeps_the_watches_of_the_others(self,
                                                                     tmp_path: Path) -> None:
        """Dropping a claimed sidecar's watches leaves those of other sidecars, even one
        whose name starts with the same letters, down to their invoice subfolders; and a
        sidecar moved back is watched again."""
        from helpers import wait_for
        for name in ("INV-1", "INV-10"):
            (tmp_path / name / "A").mkdir(parents=True)
        (tmp_path / ".outboxd").mkdir()
        w, got = self.watch(tmp_path)
        try:
            self.claim_away(tmp_path, "INV-1", got)
            (tmp_path / "INV-10" / "A" / "a.pdf").write_bytes(b"x")
            wait_for(lambda: got, what="the hint from the other sidecar")
            assert set(got) == {"INV-10"}
            (tmp_path / ".outboxd" / "INV-1").rename(tmp_path / "INV-1")
            wait_for(lambda: "INV-1" in got, what="the move-back hint")
            got.clear()
            (tmp_path / "INV-1" / "A" / "b.pdf").write_bytes(b"x")
            wait_for(lambda: got, what="the hint from the sidecar moved back")
            assert set(got) == {"INV-1"}
        finally:
            w.stop()

    def test_a_watcher_whose_outbox_went_away_is_not_alive(self, tmp_path: Path) -> None:
        """When the watched outbox itself is removed, the watcher reports itself dead, so
        the next rescan restarts it (or logs why it cannot)."""
        from helpers import wait_for
        root = tmp_path / "outbox"
        root.mkdir()
        w, _ = self.watch(root)
        try:
            root.rmdir()
            wait_for(lambda: not w.alive(), what="the watcher to notice")
            assert not w.alive()
        finally:
            w.stop()

    def test_an_outbox_removed_is_hinted_at_once(self, tmp_path: Path) -> None:
        """The watched outbox removed (or unmounted): the loop is told at once (ROOT_LOST,
        it logs it and rescans), not first at the next rescan."""
        from helpers import wait_for
        root = tmp_path / "outbox"
        root.mkdir()
        w, got = self.watch(root)
        try:
            root.rmdir()
            wait_for(lambda: ROOT_LOST in got, what="the hint that the outbox went")
            assert not w.alive()
        finally:
            w.stop()

    def test_an_outbox_moved_aside_and_made_again_is_watched_again(self,
                                                                   tmp_path: Path) -> None:
        """An admin moves the outbox aside and makes a new one in its place (or a share is
        mounted anew): the watch followed the old folder, where nobody drops anything. The
        loop is told at once (ROOT_LOST), the watcher is not alive, and the restart the
        rescan makes watches the new folder: a file dropped there is hinted."""
        from helpers import wait_for
        root = tmp_path / "outbox"
        root.mkdir()
        w, got = self.watch(root)
        try:
            root.rename(tmp_path / "outbox.old")
            root.mkdir()
            wait_for(lambda: ROOT_LOST in got, what="the hint that the outbox moved")
            assert not w.alive()
            assert w.ensure_alive() and w.alive()
            got.clear()
            (root / "INV-1.xml").write_bytes(b"x")
            wait_for(lambda: "INV-1.xml" in got, what="a hint from the new outbox")
            assert "INV-1.xml" in got
        finally:
            w.stop()

    def test_a_watcher_stopped_to_be_restarted_says_nothing_of_its_own_stop(
            self, tmp_path: Path) -> None:
        """The outbox moved aside: hinted once (ROOT_LOST). The restart the loop makes stops
        the old watcher, whose watches all go with it: that is no second ROOT_LOST (before,
        the log said twice that the outbox went, and the loop looked again at once,
        outside its outage's back-off)."""
        from helpers import wait_for
        root = tmp_path / "outbox"
        root.mkdir()
        w, got = self.watch(root)
        try:
            root.rename(tmp_path / "outbox.old")
            wait_for(lambda: ROOT_LOST in got, what="the hint that the outbox moved")
            with pytest.raises(OSError):
                w.ensure_alive()  # stops the old watcher; the new one finds no outbox
            w.stop()
            assert got.count(ROOT_LOST) == 1
        finally:
            w.stop()


@needs_proc
def test_the_watcher_threads_show_as_watcher_to_the_os(tmp_path: Path) -> None:
    """`top -H` shows the watching threads as "watcher" (inotify) or "watcher-poll"
    (polling; osthreads.py): the names of the threads this watcher started, not of any
    thread in the process. Looked at once the watcher has passed on an event: watchdog
    7.1.1 and later read inotify on one thread and call us on a second, which it starts
    itself; that one is named when it first calls."""
    from helpers import wait_for
    for mode, names in (("inotify", {"watcher"}), ("polling", {"watcher-poll"})):
        before = {t.native_id for t in threading.enumerate()}
        got: list[str] = []
        w = Watcher(tmp_path, mode, 0.05, got.append)
        w.ensure_alive()
        try:
            name = f"INV-{mode}.xml"
            (tmp_path / name).write_bytes(b"x")
            wait_for(lambda got=got, name=name: name in got, what=f"the {mode} watcher's hint")
            started = [t for t in threading.enumerate() if t.native_id not in before]
            shown = {os_thread_name(t) for t in started}
            assert shown == names, (mode, [t.name for t in started])
        finally:
            w.stop()


def test_an_inotify_queue_overflow_is_hinted_and_the_watcher_keeps_watching(
        tmp_path: Path) -> None:
    """The kernel's queue overflowed (events were lost): the loop is told (OVERFLOW, it
    rescans at once) and the watcher goes on. watchdog 7.1.1 and later call
    `on_events_lost` after `on_queue_overflow`; without it the dispatch failed and the
    watcher stopped until the next rescan."""
    from helpers import wait_for
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent
    got: list[str] = []
    w = Watcher(tmp_path, "inotify", 1.0, got.append)
    w.ensure_alive()
    try:
        inotify = w._observer._fd  # type: ignore[union-attr]
        inotify.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
        assert OVERFLOW in got and w.alive()
        (tmp_path / "INV-1.xml").write_bytes(b"x")
        wait_for(lambda: "INV-1.xml" in got, what="a hint after the overflow")
    finally:
        w.stop()



def test_watching_a_folder_again_logs_no_library_warning(tmp_path: Path) -> None:
    """A sidecar written with its subfolder at once (mkdir -p, a DMS) is watched twice:
    once as the subfolder of the new sidecar, once at the subfolder's own event. The
    kernel hands out the same watch descriptor and watchdog warns that our callback is
    registered again — its own bookkeeping, which reached the daemon's log as a
    RuntimeWarning naming watchdog's internals: the filter meant for it named watchdog's
    module, but the warning is raised in the name of its caller, daemon.watching.watch. In a
    process of its own, as the daemon (pytest resets the filters a module sets at its
    import)."""
    import subprocess
    (tmp_path / "batch-1" / "INV-2").mkdir(parents=True)
    code = ("import sys\nfrom pathlib import Path\n"
            "from daemon.watching.watch import _OutboxInotify\n"
            "w = _OutboxInotify(Path(sys.argv[1]), lambda hint: None)\n"
            "w._add('batch-1/INV-2')\nw._add_tree('batch-1')\nw.stop()\nprint('done')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "Callback with id" not in done.stderr
    assert done.stderr == ""


def test_a_sidecar_made_while_events_were_lost_is_watched_after_the_overflow(
        tmp_path: Path) -> None:
    """The kernel's queue overflowed and the creation of a sidecar was among the events
    lost: no watch was added for it. After the overflow the watcher watches the outbox's
    folders again as they are, so a file written into that sidecar later is hinted at
    once, not only at a rescan a period later (the rescan the overflow asks for finds the
    sidecar, but a watch is the watcher's to add). Lost events are made by dropping every
    event for a while; the overflow is the kernel's event, handed to the real observer."""
    from helpers import wait_for
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent
    got: list[str] = []
    w = Watcher(tmp_path, "inotify", 1.0, got.append)
    w.ensure_alive()
    try:
        inotify = w._observer  # type: ignore[union-attr]
        real_on_event = inotify.on_event
        dropped: list[bytes] = []
        inotify.on_event = lambda event: dropped.append(event.name)  # type: ignore[method-assign]
        (tmp_path / "batch-9" / "INV-9").mkdir(parents=True)
        wait_for(lambda: b"batch-9" in dropped, what="the sidecar's event, dropped")
        inotify.on_event = real_on_event  # type: ignore[method-assign]
        inotify._fd.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
        assert OVERFLOW in got and w.alive()
        got.clear()
        (tmp_path / "batch-9" / "INV-9" / "a.pdf").write_bytes(b"%PDF")
        wait_for(lambda: "batch-9" in got, timeout=5,
                 what="a hint from the sidecar made while events were lost")
        assert set(got) == {"batch-9"}
    finally:
        w.stop()


def _watch_limit_below_the_root(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """inotify's watch limit (fs.inotify.max_user_watches) reached once the outbox root
    is watched: every further watch fails as the kernel fails it. The sysctl is the whole
    host's, so it is not lowered for a test."""
    import errno

    from watchdog.observers.inotify_c import InotifyFD
    real = InotifyFD.add_callback

    def add_callback(self: InotifyFD, path: bytes, *a: object) -> object:
        if path != os.fsencode(root):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return real(self, path, *a)  # type: ignore[arg-type]
    monkeypatch.setattr(InotifyFD, "add_callback", add_callback)


def test_a_sidecar_that_cannot_be_watched_at_start_fails_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the watch limit a sidecar there at start cannot be watched: the start fails with
    that error (the loop says "cannot watch the outbox" with the fix, and lists the outbox
    every few seconds meanwhile) instead of running with the sidecar unwatched, its
    changes unseen until a rescan and nobody told."""
    import errno
    (tmp_path / "INV-1").mkdir()
    _watch_limit_below_the_root(monkeypatch, tmp_path)
    w = Watcher(tmp_path, "inotify", 1.0, lambda _: None)
    with pytest.raises(OSError) as raised:
        w.ensure_alive()
    assert raised.value.errno == errno.ENOSPC
    assert not w.alive()
    w.stop()


def test_a_new_sidecar_that_cannot_be_watched_makes_the_watcher_dead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar made once the watch limit is reached cannot be watched: the watcher
    says events are lost (the loop rescans at once) and is dead from then, so that the
    rescan restarts it, or says why it cannot, instead of files in that sidecar
    changing unseen."""
    from helpers import wait_for
    got: list[str] = []
    w = Watcher(tmp_path, "inotify", 1.0, got.append)
    w.ensure_alive()
    try:
        _watch_limit_below_the_root(monkeypatch, tmp_path)
        (tmp_path / "INV-1").mkdir()
        wait_for(lambda: OVERFLOW in got, what="the lost watch said")
        assert not w.alive()
    finally:
        w.stop()


def test_a_sidecar_made_while_events_were_lost_that_cannot_be_watched_makes_the_watcher_dead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's queue overflowed while a sidecar was made, and the watch limit is
    reached when the watcher watches the outbox's folders again: the overflow is hinted
    (the loop rescans at once) and the watcher is dead from then, so the rescan restarts
    it or says why it cannot — the sidecar's files never change unseen. An outbox that
    cannot be listed at the overflow leaves the watcher alive (its own watch's deletion,
    or the rescan, says so)."""
    import errno

    from helpers import refuse_listing, wait_for
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

    from daemon.watching import watch
    got: list[str] = []
    w = Watcher(tmp_path, "inotify", 1.0, got.append)
    w.ensure_alive()
    try:
        inotify = w._observer  # type: ignore[union-attr]
        with monkeypatch.context() as m:
            refuse_listing(m, {tmp_path.name}, errno.EIO, module=watch)
            inotify._fd.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
        assert OVERFLOW in got and w.alive()
        got.clear()
        inotify.on_event = lambda event: None  # type: ignore[method-assign]
        (tmp_path / "INV-1").mkdir()  # its event lost with the others
        _watch_limit_below_the_root(monkeypatch, tmp_path)
        inotify._fd.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
        wait_for(lambda: OVERFLOW in got, what="the overflow hinted")
        assert not w.alive()
    finally:
        w.stop()
