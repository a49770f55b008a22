"""The snapshot settling compares (docs/folder-convention.md, section 4): what of a
bundle it holds, that it changes when the bundle does, never through a link, and what a
folder it cannot look at or list makes of it."""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.configuration.config import OutboxConfig
from daemon.watching import snapshot as snapshot_mod
from daemon.watching.scan import Candidate, list_outbox
from daemon.watching.settle import SettleTracker
from daemon.watching.snapshot import Entry, coarse_seconds, snapshot
from tests.helpers import refuse_listing, refuse_stat, wait_for
from tests.sharetimes import FatTimes, no_change_times


def cfg_for(outbox: Path, **kw: object) -> OutboxConfig:
    return OutboxConfig(path=outbox, **kw)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path

@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    o = tmp_path / "outbox"
    o.mkdir()
    return o


class TestSnapshot:
    def _cand(self, outbox: Path, cfg: OutboxConfig, name: str = "INV-1.xml") -> Candidate:
        return list_outbox(cfg).candidates[name]

    def test_gone_invoice_gives_none(self, outbox: Path) -> None:
        """A snapshot of an invoice file that vanished is None."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        cand = self._cand(outbox, cfg)
        (outbox / "INV-1.xml").unlink()
        assert snapshot(cand, cfg) is None

    def test_same_folder_same_snapshot(self, outbox: Path) -> None:
        """Nothing changed: two snapshots are equal (so settling can compare them)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg)
        first = snapshot(cand, cfg)
        assert first is not None and not first.busy
        assert [e[0] for e in first.entries] == ["INV-1.xml", "INV-1", "INV-1/a.pdf"]
        assert snapshot(cand, cfg) == first

    def test_the_files_with_other_names_are_noted_from_the_same_looks(
            self, outbox: Path, tmp_path: Path) -> None:
        """The invoice file, the marker and a file deep in the sidecar that have a second
        name (a hard link, here outside the outbox) are noted as linked, by the looks the
        snapshot takes anyway (as a rescan's listing gives the root's, too); a file of one
        name, a folder and a symbolic link are not. The note is no part of what settling
        compares: a link made or removed changes the file's change time, which is."""
        cfg = cfg_for(outbox, completion="marker")
        elsewhere = tmp_path / "erp"
        elsewhere.mkdir()
        for rel in ("INV-1.xml", "INV-1.ready", "INV-1/INV-1/b.pdf"):
            os.link(touch(outbox / rel), elsewhere / rel.replace("/", "_"))
        touch(outbox / "INV-1" / "a.pdf")
        (outbox / "INV-1" / "c.pdf").symlink_to(outbox / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg)
        for snap in (snapshot(cand, cfg), snapshot(cand, cfg, list_outbox(cfg).stats)):
            assert snap is not None
            assert sorted(snap.linked) == ["INV-1.ready", "INV-1.xml", "INV-1/INV-1/b.pdf"]
        one = snapshot(cand, cfg)
        assert one is not None
        os.link(outbox / "INV-1" / "a.pdf", elsewhere / "a.pdf")
        other = snapshot(cand, cfg)
        assert other is not None and "INV-1/a.pdf" in other.linked and other != one
        assert one == type(one)(one.entries, one.busy, one.unlisted, one.moved, ())

    def test_no_sidecar(self, outbox: Path) -> None:
        """Without a sidecar folder the snapshot holds only the invoice file."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        snap = snapshot(self._cand(outbox, cfg), cfg)
        assert snap is not None
        assert [e[0] for e in snap.entries] == ["INV-1.xml"]

    def test_a_folder_spelled_like_the_sidecar_in_another_unicode_form_is_part_of_it(
            self, outbox: Path) -> None:
        """A look-alike of the missing sidecar (composed vs decomposed accents) is an
        error of the bundle (match.py): its coming and going must change the snapshot,
        or a bundle decided before the clerk made it would never be read again. Its
        files are not walked; it is there beside a sidecar spelled right too."""
        cfg = cfg_for(outbox)
        nfc, nfd = (unicodedata.normalize(f, "Räkning-1") for f in ("NFC", "NFD"))
        touch(outbox / f"{nfc}.xml")
        cand = list_outbox(cfg).candidates[f"{nfc}.xml"]
        before = snapshot(cand, cfg)
        touch(outbox / nfd / "a.pdf")
        after = snapshot(cand, cfg)
        assert after is not None and [e[0] for e in after.entries] == [f"{nfc}.xml", nfd]
        assert after != before
        assert snapshot(cand, cfg, list_outbox(cfg).stats) == after  # the rescan's way too
        touch(outbox / nfc / "b.pdf")  # the right sidecar too: both are part of it
        snap = snapshot(cand, cfg)
        assert snap is not None
        assert [e[0] for e in snap.entries] == [f"{nfc}.xml", nfc, f"{nfc}/b.pdf", nfd]

    def test_sidecar_file_size_change(self, outbox: Path) -> None:
        """A sidecar file that grows changes the snapshot (even with the same mtime)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        f = touch(outbox / "INV-1" / "a.pdf", b"1234")
        st = f.stat()
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        f.write_bytes(b"123456")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert snapshot(cand, cfg) != before

    def test_sidecar_file_mtime_change(self, outbox: Path) -> None:
        """A sidecar file rewritten with the same size but a new mtime changes the snapshot."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        f = touch(outbox / "INV-1" / "a.pdf", b"1234")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert snapshot(cand, cfg) != before

    @pytest.mark.parametrize("where", ["INV-1.xml", "INV-1/a.pdf"])
    def test_a_file_replaced_with_its_size_and_mtime_kept_changes_the_snapshot(
            self, outbox: Path, where: str) -> None:
        """An invoice file or attachment replaced by other bytes of the same size with its
        modification time kept (a sync tool copying the source's time, renamed over it)
        changes the snapshot by its change time: else a bundle held or waiting on what was
        read before would never be read again."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml", b"<a>1</a>")
        f = touch(outbox / "INV-1" / "a.pdf", b"1234")
        f = outbox / where
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        st = os.lstat(f)

        def replaced() -> bool:
            tmp = touch(f.with_name(".sync"), bytes(reversed(f.read_bytes())))
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            tmp.rename(f)
            # Until the kernel's clock for change times has moved on since the first write.
            return os.lstat(f).st_ctime_ns != st.st_ctime_ns
        wait_for(replaced, timeout=5, interval=0.001, what="a change time of its own")
        after_st = os.lstat(f)
        assert (after_st.st_size, after_st.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert snapshot(cand, cfg) != before
        assert snapshot(cand, cfg, list_outbox(cfg).stats) != before  # the rescan's way too

    @pytest.mark.parametrize("where", ["INV-1.xml", "INV-1"])
    def test_a_file_or_folder_replaced_on_a_share_without_change_times_changes_the_snapshot(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
        """On a share that keeps no change time of its own (a CIFS server that reports the
        modification time as the change time), the invoice file or the sidecar replaced
        by another of the same size and times changes the snapshot by its inode: else the
        bundle went on as read before (a held one was never read again; one read while
        settling failed its claim's check and was never sent). An attachment replaced
        shows in its folder's modification time."""
        no_change_times(monkeypatch)
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml", b"<a>1</a>")
        touch(outbox / "INV-1" / "a.pdf", b"1234")
        old = outbox / where
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        new = outbox.parent / "new"
        if old.is_dir():
            touch(new / "a.pdf", b"4321")
            os.utime(new / "a.pdf", ns=(0, os.lstat(old / "a.pdf").st_mtime_ns))
        else:
            touch(new, bytes(reversed(old.read_bytes())))
        st = os.lstat(old)
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
        old.rename(outbox.parent / "away")
        new.rename(old)
        assert snapshot(cand, cfg) != before
        assert snapshot(cand, cfg, list_outbox(cfg).stats) != before  # the rescan's way too

    def test_a_sidecar_renamed_away_and_back_changes_the_snapshot(self, outbox: Path) -> None:
        """A sidecar renamed to another name and back (a clerk's slip undone, between two
        polls) keeps its entries as they were; the folder's change time shows it, so a read
        taken meanwhile, which found no sidecar, is not taken for this version."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        side = outbox / "INV-1"
        ctime = os.lstat(side).st_ctime_ns

        def away_and_back() -> bool:
            side.rename(outbox / "elsewhere")
            (outbox / "elsewhere").rename(side)
            return os.lstat(side).st_ctime_ns != ctime
        wait_for(away_and_back, timeout=5, interval=0.001, what="a change time of its own")
        after = snapshot(cand, cfg)
        assert after is not None and before is not None
        assert [e[0] for e in after.entries] == [e[0] for e in before.entries]
        assert after != before

    def test_sidecar_file_rename(self, outbox: Path) -> None:
        """A sidecar file renamed (same size, same mtime) changes the snapshot."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        f = touch(outbox / "INV-1" / "a.pdf", b"1234")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        f.rename(f.with_name("b.pdf"))
        after = snapshot(cand, cfg)
        assert after != before
        assert any(e[0] == "INV-1/b.pdf" for e in after.entries)

    def test_nested_invoice_subfolder_changes_count(self, outbox: Path) -> None:
        """A file added in SIDECAR/INVOICE_ID/ (multi-invoice layout) changes the snapshot."""
        cfg = cfg_for(outbox)
        touch(outbox / "batch.xml")
        touch(outbox / "batch" / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg, "batch.xml")
        before = snapshot(cand, cfg)
        touch(outbox / "batch" / "INV-2" / "b.pdf")
        assert snapshot(cand, cfg) != before

    def test_snapshot_goes_one_level_deeper_than_the_watchers(self, outbox: Path) -> None:
        """Entries down to SNAPSHOT_DEPTH (the root's entries are depth 1: a/b/c/d/e is
        depth 5), one level deeper than the watchers report, are in the snapshot: a
        copy still writing at that depth (an in-progress name) keeps the bundle busy
        instead of its being quarantined (nested too deep) while the copy writes."""
        cfg = cfg_for(outbox)
        touch(outbox / "batch.xml")
        touch(outbox / "batch" / "INV-1" / "x" / "y" / "z.pdf.part")
        touch(outbox / "batch" / "INV-1" / "x" / "y" / "w" / "deeper.pdf")
        snap = snapshot(self._cand(outbox, cfg, "batch.xml"), cfg)
        assert snapshot_mod.SNAPSHOT_DEPTH == snapshot_mod.WATCHED_DEPTH + 1 == 5
        assert [e[0] for e in snap.entries] == [
            "batch.xml", "batch", "batch/INV-1", "batch/INV-1/x", "batch/INV-1/x/y",
            "batch/INV-1/x/y/w", "batch/INV-1/x/y/z.pdf.part"]
        assert snap.busy

    def test_invoice_change(self, outbox: Path) -> None:
        """The invoice file itself rewritten with other content changes the snapshot."""
        cfg = cfg_for(outbox)
        inv = touch(outbox / "INV-1.xml", b"<a/>")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        inv.write_bytes(b"<a>longer</a>")
        assert snapshot(cand, cfg) != before

    def test_in_progress_name_makes_it_busy(self, outbox: Path) -> None:
        """An in-progress name in the sidecar (x.pdf.part) marks the snapshot busy."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "x.pdf.part")
        assert snapshot(self._cand(outbox, cfg), cfg).busy

    def test_in_progress_name_deep_makes_it_busy(self, outbox: Path) -> None:
        """An in-progress name inside an invoice-id subfolder also marks it busy."""
        cfg = cfg_for(outbox)
        touch(outbox / "batch.xml")
        touch(outbox / "batch" / "INV-1" / "~$contract.docx")
        assert snapshot(self._cand(outbox, cfg, "batch.xml"), cfg).busy

    def test_litter_is_not_busy(self, outbox: Path) -> None:
        """Desktop litter (Thumbs.db, .DS_Store) in the sidecar does not make it busy."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "Thumbs.db")
        touch(outbox / "INV-1" / ".DS_Store")
        assert not snapshot(self._cand(outbox, cfg), cfg).busy

    def test_busy_clears_when_copy_finishes(self, outbox: Path) -> None:
        """Renaming x.pdf.part to x.pdf ends busy and changes the snapshot."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        part = touch(outbox / "INV-1" / "x.pdf.part")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        part.rename(part.with_name("x.pdf"))
        after = snapshot(cand, cfg)
        assert before.busy and not after.busy and after != before

    def test_marker_is_part_of_snapshot_in_marker_mode(self, outbox: Path) -> None:
        """With completion = "marker" the marker's appearance changes the snapshot."""
        cfg = cfg_for(outbox, completion="marker")
        touch(outbox / "INV-1.xml")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        touch(outbox / "INV-1.ready", b"")
        after = snapshot(cand, cfg)
        assert after != before
        assert any(e[0] == "INV-1.ready" for e in after.entries)

    @pytest.mark.parametrize("kw", [{"completion": "marker"}, {"sidecar_suffix": "_files"}])
    def test_a_marker_or_sidecar_name_longer_than_a_file_name_may_be_is_not_there(
            self, outbox: Path, kw: dict[str, str]) -> None:
        """An invoice file's name at the limit (255 bytes) makes its marker's name, and a
        suffixed sidecar's, longer than any file can have. The snapshot's own look (an
        event's, a timer's) raised "File name too long" for it, and the daemon said
        "cannot look at the bundle; will try again" at each such look of the bundle
        (bench/fuzznames, seed 76, under completion = "marker"): no such file can be there,
        and the look is the rescan listing's."""
        cfg = cfg_for(outbox, **kw)
        name = "A" * 251 + ".xml"
        touch(outbox / name)
        listing = list_outbox(cfg)
        cand = listing.candidates[name]
        own = snapshot(cand, cfg)
        assert own is not None and own == snapshot(cand, cfg, listing.stats)
        assert [e[0] for e in own.entries] == [name]

    def test_symlinked_sidecar_is_not_followed(self, outbox: Path, tmp_path: Path) -> None:
        """A sidecar that is a symbolic link is not walked (nothing outside the outbox is read)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(tmp_path / "secret" / "a.pdf")
        (outbox / "INV-1").symlink_to(tmp_path / "secret")
        snap = snapshot(self._cand(outbox, cfg), cfg)
        assert [e[0] for e in snap.entries] == ["INV-1.xml"]

    def test_symlink_inside_sidecar_listed_not_followed(self, outbox: Path,
                                                        tmp_path: Path) -> None:
        """A link inside the sidecar is an entry of kind 'x' with size 0 (lstat only)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(tmp_path / "big.pdf", b"y" * 1000)
        (outbox / "INV-1").mkdir()
        (outbox / "INV-1" / "link.pdf").symlink_to(tmp_path / "big.pdf")
        snap = snapshot(self._cand(outbox, cfg), cfg)
        assert ("INV-1/link.pdf", "x", 0) == snap.entries[2][:3]

    @pytest.mark.parametrize("swapped", ["the sidecar", "a folder above the one listed"])
    def test_a_folder_swapped_for_a_link_after_its_lstat_is_never_walked(
            self, outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            swapped: str) -> None:
        """A share user swaps the sidecar for a link to a folder outside the outbox after
        the rescan's listing took its lstat, or swaps it once the walk has lstat'ed its
        subfolder INV-1/ID: the snapshot lists nothing out there (each folder is opened
        relative to the one above it, held open, never through a link)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "ID" / "a.pdf")
        outside = tmp_path / "outside"
        touch(outside / "secret.pdf")
        touch(outside / "ID" / "secret.pdf")
        cand = self._cand(outbox, cfg)
        side = outbox / "INV-1"

        def swap() -> None:
            if not side.is_symlink():
                side.rename(tmp_path / "moved")
                side.symlink_to(outside, target_is_directory=True)
        listed: list[str] = []
        real_scandir = os.scandir

        class Looking:
            """os.scandir, noting where each listing really is, and swapping the sidecar
            once the walk has lstat'ed INV-1/ID."""

            def __init__(self, path: int | str) -> None:
                listed.append(os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int)
                              else os.path.realpath(path))
                self._entries = list(real_scandir(path))

            def __enter__(self) -> list[object]:
                return [_SwapsAfterLstat(e, swap) if e.name == "ID" else e
                        for e in self._entries]

            def __exit__(self, *a: object) -> None:
                return None

        stats = list_outbox(cfg).stats
        if swapped == "the sidecar":
            swap()
        monkeypatch.setattr(snapshot_mod.os, "scandir", Looking)
        snap = snapshot(cand, cfg, stats)
        assert side.is_symlink()
        assert snap is not None
        assert not [p for p in listed if p.startswith(str(outside))]
        assert not [e for e in snap.entries if "secret" in e[0]]

    def test_file_vanishing_mid_walk_does_not_crash_and_is_busy(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A sidecar file deleted between listing and stat (a copy renaming its temp file)
        neither raises nor yields a snapshot that could settle."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        victim = touch(outbox / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg)
        real_scandir = os.scandir

        class Racing:
            def __init__(self, path: object) -> None:
                self.entries = list(real_scandir(path))
                if victim.exists():
                    victim.unlink()  # gone after listing, before stat

            def __enter__(self) -> list[os.DirEntry[str]]:
                return self.entries

            def __exit__(self, *a: object) -> None:
                return None

        monkeypatch.setattr(snapshot_mod.os, "scandir", Racing)
        snap = snapshot(cand, cfg)
        assert snap is not None and snap.busy


    def test_a_sidecar_that_cannot_be_listed_beside_an_invoice_file_that_cannot_be_looked_at(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The rescan's listing had INV-1.xml; then the share answers EIO to the sidecar's
        listing and to the invoice file's own lstat: what cannot be listed is said as it
        is (unlisted), and the bundle is not taken for gone (another daemon's claim)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg)
        stats = list_outbox(cfg).stats
        refuse_listing(monkeypatch, {"INV-1"}, module=snapshot_mod)
        real_lstat = os.lstat

        def failing(path: Any, *a: Any, **kw: Any) -> os.stat_result:
            if os.fspath(path) == os.fspath(cand.invoice):
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
            return real_lstat(path, *a, **kw)
        monkeypatch.setattr(os, "lstat", failing)
        snap = snapshot(cand, cfg, stats)
        assert snap is not None and [f for f, _ in snap.unlisted] == ["INV-1"]

    def test_under_completion_settle_a_file_named_as_a_marker_is_no_part_of_the_bundle(
            self, outbox: Path) -> None:
        """INV-1.ready beside INV-1.xml where completion = "settle": no marker, so its
        writes never hold INV-1 back from settling; under "marker" it is the bundle's."""
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1.ready")
        for completion, names in [("settle", ["INV-1.xml"]),
                                  ("marker", ["INV-1.xml", "INV-1.ready"])]:
            cfg = cfg_for(outbox, completion=completion)
            snap = snapshot(self._cand(outbox, cfg), cfg)
            assert snap is not None and [e[0] for e in snap.entries] == names

    def test_a_snapshot_from_a_listing_looks_at_no_root_name_again(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A rescan's snapshot of a bundle without a sidecar takes all from the listing's
        stats: no lstat of its own (20,000 waiting invoice files, 20,000 calls saved), and
        a name the listing did not have is not there for it."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        cand, stats = self._cand(outbox, cfg), list_outbox(cfg).stats
        touch(outbox / "INV-1" / "a.pdf")  # after the listing: the next one has it

        def no_lstat(path: Any, *a: Any, **kw: Any) -> os.stat_result:
            raise AssertionError(f"lstat of {path}")
        monkeypatch.setattr(os, "lstat", no_lstat)
        snap = snapshot(cand, cfg, stats)
        assert snap is not None and [e[0] for e in snap.entries] == ["INV-1.xml"]

    @pytest.mark.parametrize("when", ["after the listing", "after the lstats"])
    def test_a_bundle_claimed_by_another_daemon_while_looked_at_is_gone_not_unlisted(
            self, outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            when: str) -> None:
        """Another outboxd claims INV-1 (renames the invoice file, then the sidecar, into
        its processing folder) after the rescan's listing took their stats, or between
        the snapshot's own lstats and its opening of the sidecar: the snapshot is None, as
        for any invoice file gone (before: a sidecar "that cannot be listed", No such
        file or directory, which the loop said as an error)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "a.pdf")
        cand = self._cand(outbox, cfg)
        theirs = tmp_path / "processing" / "INV-1-other"

        def claim() -> None:
            theirs.mkdir(parents=True)
            os.rename(cand.invoice, theirs / cand.invoice.name)
            os.rename(cand.sidecar, theirs / cand.sidecar.name)
        if when == "after the listing":
            stats = list_outbox(cfg).stats
            claim()
            assert snapshot(cand, cfg, stats) is None
            return
        real_open = os.open

        def claimed_before_opened(path: Any, *a: Any, **kw: Any) -> int:
            if path == cand.sidecar and not theirs.exists():
                claim()
            return real_open(path, *a, **kw)
        monkeypatch.setattr(snapshot_mod.os, "open", claimed_before_opened)
        assert snapshot(cand, cfg) is None
        assert theirs.exists()

    def test_a_sidecar_entry_that_cannot_be_looked_at_is_in_the_snapshot_not_an_error(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file in a sidecar folder that may be listed but not searched (its lstat
        refused): the snapshot has it as unreadable, able to settle (the read then says
        why the bundle cannot be read), instead of raising out of the loop's look or
        rescan (before: the rescan's PermissionError ended the daemon)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "a.pdf")
        touch(outbox / "INV-1" / "locked.pdf")
        refuse_stat(monkeypatch, {"locked.pdf"})
        snap = snapshot(self._cand(outbox, cfg), cfg)
        assert snap is not None and not snap.busy
        assert [e[:3] for e in snap.entries[2:]] == [("INV-1/a.pdf", "f", 1),
                                                   ("INV-1/locked.pdf", "unreadable", 0)]


    @pytest.mark.parametrize("folder", ["INV-1", "ID-2"], ids=["sidecar", "invoice-subfolder"])
    @pytest.mark.parametrize("error", [errno.EACCES, errno.EIO, errno.ESTALE],
                             ids=["EACCES", "EIO", "ESTALE"])
    def test_a_folder_of_the_sidecar_that_cannot_be_listed_is_said_not_taken_for_empty(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, folder: str,
            error: int) -> None:
        """The sidecar (or a folder in it) is there but its listing fails, as a share's
        trouble or a folder outboxd may not open makes it: the snapshot names that folder
        and the error (Snapshot.unlisted), and differs from the snapshot of the same
        bundle listed (before: it had no entries, the same as an empty folder, and a
        bundle could settle and be judged on it)."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "ID-2" / "a.pdf")
        cand = self._cand(outbox, cfg)
        listed = snapshot(cand, cfg)
        assert listed is not None and listed.unlisted == ()
        rel = "INV-1" if folder == "INV-1" else "INV-1/ID-2"
        with monkeypatch.context() as m:
            refuse_listing(m, {folder}, error, module=snapshot_mod)
            snap = snapshot(cand, cfg)
        assert snap is not None and snap.unlisted == ((rel, os.strerror(error)),)
        assert snap != listed and (rel, "d") in [e[:2] for e in snap.entries]

    @pytest.mark.parametrize("change", ["renamed away", "removed", "replaced by a file",
                                        "replaced by a link"])
    @pytest.mark.parametrize("folder", ["INV-1", "ID-2"], ids=["sidecar", "invoice-subfolder"])
    def test_a_folder_that_goes_between_its_listing_and_its_opening_is_a_change_not_unlisted(
            self, outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            folder: str, change: str) -> None:
        """A clerk renames the sidecar (or a folder in it) away, removes it, or puts a file
        or a link in its place after the snapshot's lstat (or the parent's listing) saw it
        as a folder and before the snapshot opens it, while the invoice file stays: the
        snapshot has it as moved (Snapshot.moved), not as a folder that cannot be listed
        (before: unlisted with "No such file or directory" or "Not a directory", which the
        loop logged as an error with a fix about the share), keeps the folder's own entry
        as listed, and differs from the look before and from the look after it."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "ID-2" / "a.pdf")
        cand = self._cand(outbox, cfg)
        before = snapshot(cand, cfg)
        rel = "INV-1" if folder == "INV-1" else "INV-1/ID-2"
        path = outbox / rel

        def go() -> None:
            os.rename(path, tmp_path / "elsewhere")
            if change == "removed":
                for p in sorted((tmp_path / "elsewhere").rglob("*"), reverse=True):
                    p.rmdir() if p.is_dir() else p.unlink()
                (tmp_path / "elsewhere").rmdir()
            elif change == "replaced by a file":
                path.write_bytes(b"x")
            elif change == "replaced by a link":
                path.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        real_open, gone = os.open, []

        def went_before_opened(name: Any, *a: Any, **kw: Any) -> int:
            if not gone and os.path.basename(os.fsdecode(name)) == folder:
                gone.append(name)
                go()
            return real_open(name, *a, **kw)
        with monkeypatch.context() as m:
            m.setattr(snapshot_mod.os, "open", went_before_opened)
            snap = snapshot(cand, cfg)
        assert gone, "the folder was not opened"
        assert snap is not None
        assert (snap.unlisted, snap.moved) == ((), (rel,))
        assert (rel, "d") in [e[:2] for e in snap.entries]  # as its lstat or listing saw it
        after = snapshot(cand, cfg)
        assert after is not None and (after.unlisted, after.moved) == ((), ())
        assert before != snap != after

    @pytest.mark.parametrize("folder", ["INV-1", "ID-2"], ids=["sidecar", "invoice-subfolder"])
    @pytest.mark.parametrize("error", [errno.EACCES, errno.EIO, errno.ESTALE],
                             ids=["EACCES", "EIO", "ESTALE"])
    def test_a_folder_of_the_sidecar_that_cannot_be_opened_is_unlisted_not_moved(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, folder: str,
            error: int) -> None:
        """The sidecar (or a folder in it) is still there but opening it fails (no
        permission, a share's EIO or ESTALE): the snapshot names it as a folder that
        cannot be listed, with the error, as before — only a folder gone or replaced is
        taken for a change under way."""
        cfg = cfg_for(outbox)
        touch(outbox / "INV-1.xml")
        touch(outbox / "INV-1" / "ID-2" / "a.pdf")
        cand = self._cand(outbox, cfg)
        real_open = os.open

        def refused(name: Any, *a: Any, **kw: Any) -> int:
            if os.path.basename(os.fsdecode(name)) == folder:
                raise OSError(error, os.strerror(error), name)
            return real_open(name, *a, **kw)
        with monkeypatch.context() as m:
            m.setattr(snapshot_mod.os, "open", refused)
            snap = snapshot(cand, cfg)
        rel = "INV-1" if folder == "INV-1" else "INV-1/ID-2"
        assert snap is not None and (outbox / rel).is_dir()
        assert (snap.unlisted, snap.moved) == (((rel, os.strerror(error)),), ())


class _SwapsAfterLstat:
    """A directory entry whose lstat is taken, then `swap` runs (a share user's swap loop
    hitting the window between a folder's lstat and its listing)."""

    def __init__(self, entry: os.DirEntry[str], swap: Callable[[], None]) -> None:
        self._entry, self._swap, self.name, self.path = entry, swap, entry.name, entry.path

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        st = self._entry.stat(follow_symlinks=follow_symlinks)
        self._swap()
        return st

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)



class TestCoarseTimes:
    """Times kept to the second or two (Snapshot.coarse): how long a same-size rewrite may
    go unseen, from the lstats the snapshot takes anyway, and what settling makes of it."""

    S = 1_000_000_000

    def entry(self, mtime: int, ctime: int, kind: str = "f") -> Entry:
        return ("INV-1.xml", kind, 10, mtime, 0o644, 0, 0, ctime, 7)

    def test_whole_even_seconds_are_a_two_second_granule(self) -> None:
        """Both times on whole even seconds (FAT's 2 s): a rewrite may hide for 2 s."""
        assert coarse_seconds((self.entry(1000 * self.S, 1000 * self.S),)) == 2

    def test_an_odd_whole_second_is_a_one_second_granule(self) -> None:
        """A whole odd second is no FAT time: a 1 s granule (NFSv3 or SMB on old disks)."""
        assert coarse_seconds((self.entry(1001 * self.S, 1001 * self.S),)) == 1

    def test_a_fine_change_time_shows_every_write(self) -> None:
        """A modification time copied from a FAT disk (`cp -p`, an unzip) is whole, but a
        change time finer than a second moves with every write: nothing hides."""
        assert coarse_seconds((self.entry(1000 * self.S, 1000 * self.S + 123),)) == 0

    def test_folders_do_not_count(self) -> None:
        """A folder's times move with its names, which the snapshot holds anyway."""
        assert coarse_seconds((self.entry(1000 * self.S, 1000 * self.S, "d"),)) == 0

    def test_local_files_add_nothing(self, tmp_path: Path) -> None:
        """On a local disk (nanosecond times) a snapshot adds nothing to the quiet period,
        also for a file whose modification time a copy set to a whole second."""
        cfg = cfg_for(tmp_path)
        touch(tmp_path / "INV-1.xml")
        touch(tmp_path / "INV-1" / "a.pdf")
        os.utime(tmp_path / "INV-1" / "a.pdf", ns=(1000 * self.S, 1000 * self.S))
        snap = snapshot(list_outbox(cfg).candidates["INV-1.xml"], cfg)
        assert snap is not None and snap.coarse == 0

    def test_rewrite_hidden_by_fat_times_does_not_settle_early(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On a share of 2 s times an invoice file rewritten in place with its size kept
        (100.00 -> 900.00) looks unchanged; with settle_seconds = 1 the bundle first
        seen at 0.0 is not settled at 1.0 (the rewrite may come until 2.0 unseen), only
        once the granule is over too, at 3.0."""
        no_change_times(monkeypatch, FatTimes)
        cfg = cfg_for(tmp_path)
        for _ in range(3):  # a write and a rewrite a 2 s boundary apart: seen, try again
            invoice = touch(tmp_path / "INV-1.xml", b"<Invoice>100.00</Invoice>")
            cand = list_outbox(cfg).candidates["INV-1.xml"]
            before = snapshot(cand, cfg)
            with open(invoice, "r+b") as fh:  # as an ERP rewrites it: same size, in place
                fh.write(b"<Invoice>900.00</Invoice>")
            after = snapshot(cand, cfg)
            if after == before:
                break
        assert before is not None and before.coarse == 2 and after == before
        tracker = SettleTracker(1)
        assert not tracker.observe("INV-1.xml", before, now=0.0)
        assert not tracker.observe("INV-1.xml", after, now=1.0)
        assert tracker.observe("INV-1.xml", after, now=3.0)
