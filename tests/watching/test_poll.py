"""Polling (network shares): one lstat per entry per poll, over the root and the sidecars
down to snapshot.WATCHED_DEPTH, never .outboxd/; each changed top-level name hinted once.

Most tests drive Poller.poll() (one walk, the names it would hint) directly, on real
files, through a scandir that counts what the poller lists and lstats."""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import wait_for, write  # noqa: E402

from daemon.watching.poll import ROOT_LOST, Poller, Scandir  # noqa: E402
from daemon.watching.snapshot import WATCHED_DEPTH  # noqa: E402


class _Entry:
    """A DirEntry that shows only what the poller may use: name and lstat (`path`: where
    it is, for the counts)."""

    def __init__(self, counted: Counted, entry: os.DirEntry[str], folder: str) -> None:
        self.name, self.path = entry.name, os.path.join(folder, entry.name)
        self._counted, self._entry = counted, entry

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        assert follow_symlinks is False, f"{self.path} stat'ed through a link"
        self._counted.stats.append(self.path)
        return self._entry.stat(follow_symlinks=False)


class _Listing:
    def __init__(self, counted: Counted, fd: int, path: str) -> None:
        self._counted, self._it, self._path = counted, os.scandir(fd), path

    def __enter__(self) -> Iterator[_Entry]:
        return (_Entry(self._counted, e, self._path) for e in self._it)

    def __exit__(self, *exc: object) -> None:
        self._it.close()


class Counted:
    """os.scandir of a folder held open, counting each listing and each lstat by the
    folder's path (where the descriptor really is); `refuse` holds folders whose listing
    fails as an unreadable (or vanished) folder's would."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.stats: list[str] = []
        self.refuse: set[str] = set()
        self.on_list: Callable[[str], None] = lambda _: None

    def __call__(self, fd: int) -> _Listing:
        path = os.readlink(f"/proc/self/fd/{fd}")
        self.listed.append(path)
        self.on_list(path)
        if path in self.refuse:
            raise PermissionError(13, "Permission denied", path)
        return _Listing(self, fd, path)

    def reset(self) -> None:
        self.listed.clear()
        self.stats.clear()


def poller(root: Path, counted: Counted | None = None, interval: float = 3600.0,
           on_hint: Callable[[str], None] = lambda _: None) -> Poller:
    return Poller(root, interval, on_hint, cast(Scandir, counted or Counted()))


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """An invoice with a sidecar holding files at depths 2, 3 and 4 (the root's entries
    are depth 1), and a second bundle beside it that must never be hinted."""
    root = tmp_path / "outbox"
    write(root / "A.xml")
    write(root / "A" / "a.pdf")
    write(root / "A" / "ID" / "x.pdf")
    write(root / "A" / "ID" / "sub" / "y.pdf")
    write(root / "B.xml")
    write(root / "B" / "b.pdf")
    (root / ".outboxd" / "processing").mkdir(parents=True)
    return root


def _rewrite(p: Path) -> None:
    p.write_bytes(b"longer content")


def _touch_mtime(p: Path) -> None:
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _chmod(p: Path) -> None:
    p.chmod(0o600 if p.stat().st_mode & 0o777 != 0o600 else 0o644)


def _chown(p: Path) -> None:
    os.chown(p, p.stat().st_uid, p.stat().st_gid + 1)


def _create_beside(p: Path) -> None:
    write(p.with_name("new-" + p.name))


def _delete(p: Path) -> None:
    p.unlink()


def _rename(p: Path) -> None:
    p.rename(p.with_name("renamed-" + p.name))


def _rename_over(p: Path) -> None:
    """What a careful writer does: a dot-named copy, same size and times, renamed over."""
    st = p.stat()
    tmp = write(p.with_name("." + p.name + ".tmp"), p.read_bytes())
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(tmp, st.st_mode & 0o777)
    os.replace(tmp, p)


CHANGES: dict[str, Callable[[Path], None]] = {
    "create": _create_beside, "rewrite (size)": _rewrite, "mtime only": _touch_mtime,
    "chmod": _chmod, "chown": _chown, "delete": _delete, "rename": _rename,
    "rename over": _rename_over,
}
PLACES = {"root (depth 1)": ("A.xml", "A.xml"), "depth 2": ("A/a.pdf", "A"),
          "depth 3": ("A/ID/x.pdf", "A"), "depth 4": ("A/ID/sub/y.pdf", "A")}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("change", CHANGES)
def test_a_change_at_any_watched_depth_hints_its_top_name_once(
        outbox: Path, change: str, place: str) -> None:
    """Create, rewrite (size), mtime alone, chmod, chown, delete, rename and a rename over
    the file, in the root and at depths 2 to 4 of a sidecar: the next poll hints the
    top-level name once (in the root, a new name is its own), and nothing else; the poll
    after it hints nothing."""
    if change == "chown" and os.geteuid() != 0:
        pytest.skip("chown to another group needs root")
    rel, top = PLACES[place]
    p = poller(outbox)
    assert p.poll() == []
    CHANGES[change](outbox / rel)
    expected = {top}
    if "/" not in rel and change in ("create", "rename"):
        # In the root the new name is a top-level name of its own.
        expected = {"create": {"new-A.xml"}, "rename": {"A.xml", "renamed-A.xml"}}[change]
    hinted = p.poll()
    assert sorted(hinted) == sorted(expected)
    assert p.poll() == []


def test_the_first_poll_only_records(outbox: Path) -> None:
    """The first walk hints nothing (the loop makes its own listing at start), and a poll
    with nothing changed hints nothing either."""
    p = poller(outbox)
    assert p.poll() == []
    assert p.poll() == []


def test_many_changes_under_one_name_are_one_hint_per_poll(outbox: Path) -> None:
    """Changes at every depth of one sidecar, plus its invoice file: two names, each once."""
    write(outbox / "A" / "new.pdf")
    write(outbox / "A" / "ID" / "new.pdf")
    write(outbox / "A" / "ID" / "sub" / "new.pdf")
    write(outbox / "A.xml", b"changed")
    p = poller(outbox)
    p.poll()
    (outbox / "A" / "a.pdf").unlink()
    write(outbox / "A" / "ID" / "x.pdf", b"rewritten")
    (outbox / "A" / "ID" / "sub" / "y.pdf").chmod(0o600)
    (outbox / "A.xml").unlink()
    assert sorted(p.poll()) == ["A", "A.xml"]


def test_a_top_name_that_comes_or_goes_is_hinted(outbox: Path) -> None:
    """A new invoice file or sidecar, and one removed, are hints of their names."""
    p = poller(outbox)
    p.poll()
    write(outbox / "C" / "c.pdf")
    write(outbox / "C.xml")
    (outbox / "B.xml").unlink()
    assert sorted(p.poll()) == ["B.xml", "C", "C.xml"]


def test_one_poll_is_one_lstat_per_entry(outbox: Path) -> None:
    """Cost: a poll lstats each entry in the root and in the sidecars down to depth 4 once
    (and no dot-name in the root), and lists the root and each folder above depth 4 once;
    the same on every poll, changed or not."""
    write(outbox / ".A.xml.tmp")
    write(outbox / "A" / ".DS_Store")  # inside a sidecar a dot-name is an entry
    write(outbox / "A" / "ID" / "sub" / "deeper" / "z.pdf")  # depth 5: not looked at
    for i in range(30):
        write(outbox / f"I-{i}.xml")
    counted = Counted()
    p = poller(outbox, counted)
    entries = {"A.xml", "A", "A/a.pdf", "A/.DS_Store", "A/ID", "A/ID/x.pdf", "A/ID/sub",
               "A/ID/sub/y.pdf", "A/ID/sub/deeper", "B.xml", "B", "B/b.pdf",
               *(f"I-{i}.xml" for i in range(30))}
    folders = {"", "A", "A/ID", "A/ID/sub", "B"}
    for _ in range(2):
        counted.reset()
        p.poll()
        assert Counter(os.path.relpath(s, outbox) for s in counted.stats) == \
            Counter(entries), "each entry exactly once"
        assert sorted(os.path.relpath(f, outbox) for f in counted.listed) == \
            sorted(f or "." for f in folders)
        (outbox / "I-0.xml").write_bytes(b"changed")


def test_nothing_deeper_than_the_watchers_see_is_polled(outbox: Path) -> None:
    """Depth 5 (A/ID/sub/deeper/z.pdf) is not walked: rewriting a file there gives no hint
    (the rescan's snapshot sees it), while adding one does, through its folder at
    depth 4."""
    assert WATCHED_DEPTH == 4
    deep = write(outbox / "A" / "ID" / "sub" / "deeper" / "z.pdf")
    p = poller(outbox)
    p.poll()
    deep.write_bytes(b"rewritten")
    assert p.poll() == []
    write(deep.with_name("new.pdf"))
    assert p.poll() == ["A"]


def test_dot_folders_are_never_walked(outbox: Path) -> None:
    """.outboxd/ (our own claims and work folders) and any other root dot-name cost not even
    an lstat, and nothing done in them is a hint."""
    for i in range(50):
        write(outbox / ".outboxd" / "processing" / f"P-{i}" / "x.pdf")
    write(outbox / ".hidden" / "h.pdf")
    counted = Counted()
    p = poller(outbox, counted)
    p.poll()
    (outbox / "A").rename(outbox / ".outboxd" / "processing" / "A")  # a claim
    write(outbox / ".outboxd" / "processing" / "P-1" / "y.pdf")
    write(outbox / ".hidden" / "g.pdf")
    counted.reset()
    assert p.poll() == ["A"]
    looked_at = [os.path.relpath(x, outbox) for x in counted.listed + counted.stats]
    assert not [x for x in looked_at if x != "." and x.startswith(".")]


def test_a_link_to_a_folder_is_an_entry_never_walked(outbox: Path, tmp_path: Path) -> None:
    """A symlink in the outbox (or in a sidecar) to a folder outside it is lstat'ed once and
    never listed: changes out there are no hint, pointing the link elsewhere is."""
    outside = tmp_path / "outside"
    write(outside / "deep" / "secret.txt")
    (outbox / "evil").symlink_to(outside, target_is_directory=True)
    (outbox / "A" / "ID" / "link").symlink_to(outside, target_is_directory=True)
    counted = Counted()
    p = poller(outbox, counted)
    p.poll()
    links = {str(outbox / "evil"), str(outbox / "A" / "ID" / "link")}
    assert Counter(s for s in counted.stats if s in links) == Counter(links)
    assert not [x for x in counted.listed if x in links]
    assert not [x for x in counted.stats if any(x.startswith(k + "/") for k in links)]
    write(outside / "deep" / "other.txt")
    write(outside / "secret2.txt")
    assert p.poll() == []
    (outbox / "evil").unlink()
    (outbox / "evil").symlink_to(outside / "deep", target_is_directory=True)
    assert p.poll() == ["evil"]


def run_with_deadline(fn: Callable[[], Any], seconds: float = 10.0) -> Any:
    """fn() on a thread; fails (instead of hanging the suite) if it has not returned in time."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} blocked (opened a FIFO?)"
    return out[0]


def test_a_fifo_is_lstat_ed_never_opened(outbox: Path) -> None:
    """A FIFO in the root or in a sidecar is an entry like any other: opening one would
    block the poll until a writer came; a new FIFO is a hint."""
    os.mkfifo(outbox / "F.xml")
    os.mkfifo(outbox / "A" / "ID" / "sub" / "pipe")
    p = poller(outbox)
    assert run_with_deadline(p.poll) == []
    os.mkfifo(outbox / "G.xml")
    os.mkfifo(outbox / "B" / "pipe")
    assert sorted(run_with_deadline(p.poll)) == ["B", "G.xml"]


def test_a_burst_of_a_thousand_renames_costs_one_lstat_per_entry(tmp_path: Path) -> None:
    """1,000 sidecars moved in one poll (500 claimed into .outboxd/processing, 500 renamed
    in the root): the poll costs one lstat per entry now in the outbox and one listing per
    folder, exactly as a quiet poll does, and hints each old and new name once."""
    root = tmp_path / "outbox"
    (root / ".outboxd" / "processing").mkdir(parents=True)
    n = 1000
    for i in range(n):
        write(root / f"S-{i}" / "ID" / "x.pdf")
    counted = Counted()
    p = poller(root, counted)
    p.poll()
    for i in range(n):
        if i % 2:
            (root / f"S-{i}").rename(root / ".outboxd" / "processing" / f"S-{i}")
        else:
            (root / f"S-{i}").rename(root / f"R-{i}")
    counted.reset()
    hinted = p.poll()
    assert Counter(hinted) == Counter([f"S-{i}" for i in range(n)]
                                      + [f"R-{i}" for i in range(0, n, 2)])
    assert len(counted.stats) == (n // 2) * 3  # R-i, R-i/ID, R-i/ID/x.pdf
    assert len(counted.listed) == 1 + (n // 2) * 2  # the root, R-i, R-i/ID
    counted.reset()
    assert p.poll() == []
    assert len(counted.stats) == (n // 2) * 3


def test_a_folder_that_cannot_be_listed_has_no_entries_and_that_is_a_change(
        outbox: Path) -> None:
    """A sidecar subfolder that becomes unreadable (or vanishes between its parent's listing
    and its own) counts as empty: hinted when it turns unlistable, quiet while it stays so,
    hinted again when it can be listed again."""
    counted = Counted()
    p = poller(outbox, counted)
    p.poll()
    counted.refuse.add(str(outbox / "A" / "ID"))
    counted.reset()
    assert p.poll() == ["A"]
    assert not [s for s in counted.stats if s.startswith(str(outbox / "A" / "ID") + "/")]
    assert p.poll() == []
    counted.refuse.clear()
    assert p.poll() == ["A"]
    assert p.poll() == []


def test_an_empty_folder_that_cannot_be_listed_is_a_change(outbox: Path) -> None:
    """Even with no entries to lose, a folder turning unlistable is a change (the rescan
    will say why it cannot be read)."""
    (outbox / "E").mkdir()
    counted = Counted()
    p = poller(outbox, counted)
    p.poll()
    counted.refuse.add(str(outbox / "E"))
    assert p.poll() == ["E"]


def test_the_root_gone_raises_oserror(outbox: Path) -> None:
    """Without the root there is nothing to poll: poll() raises OSError (the thread ends on
    it), and so does start() on a root that is not there."""
    p = poller(outbox)
    p.poll()
    counted = Counted()
    counted.refuse.add(str(outbox))
    with pytest.raises(OSError):
        poller(outbox, counted).start()
    import shutil
    shutil.rmtree(outbox)
    with pytest.raises(OSError):
        p.poll()


def test_a_stop_during_a_walk_ends_it_without_hints(outbox: Path) -> None:
    """A stop that comes while a poll walks: the walk ends at the next folder, hints
    nothing and records nothing, so no change is lost for a later walk."""
    counted = Counted()
    p = poller(outbox, counted)
    p.poll()
    write(outbox / "A" / "new.pdf")
    write(outbox / "B" / "new.pdf")
    counted.reset()
    counted.on_list = lambda path: p._stopping.set() if path != str(outbox) else None
    assert p.poll() == []
    assert len(counted.listed) == 2, "the root, then the folder the stop came in"
    p._stopping.clear()
    counted.on_list = lambda _: None
    assert sorted(p.poll()) == ["A", "B"]


def test_the_thread_hints_and_stops_at_once(outbox: Path) -> None:
    """The thread polls every interval and hands each changed name to on_hint; stop() ends
    it at once even with an hour left to wait (an Event, not a sleep)."""
    got: list[str] = []
    fast = poller(outbox, interval=0.05, on_hint=got.append)
    fast.start()
    try:
        write(outbox / "C.xml")
        wait_for(lambda: "C.xml" in got, what="the hint from the thread")
    finally:
        fast.stop()
    assert not fast.alive()
    slow = poller(outbox, interval=3600.0)
    slow.start()
    assert slow.alive()
    slow.stop()
    assert not slow.alive()


def test_a_stop_between_hints_hands_over_no_more(outbox: Path) -> None:
    """A poll found three names changed and the loop stops at the first hint: the
    thread's run hands over no other and ends (the loop is going away; the next start
    walks again). Run here, on the test's thread, so that one poll sees all three."""
    got: list[str] = []

    def hint(top: str) -> None:
        got.append(top)
        p.stop()
    p = poller(outbox, interval=0.0, on_hint=hint)
    p.poll()
    for name in ("C.xml", "D.xml", "E.xml"):
        write(outbox / name)
    p._run()
    assert len(got) == 1


def test_an_empty_folder_that_cannot_be_opened_is_a_change(
        outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder whose open is refused (chmod 000 on a share, as outboxd's user) has its
    entries unknown, even when it has none: a change, as one whose listing fails; and
    a change again once it opens."""
    (outbox / "E").mkdir()
    p = poller(outbox)
    p.poll()
    real_open = os.open

    def refused(path: Any, flags: int, *a: Any, **kw: Any) -> int:
        if path == "E" and kw.get("dir_fd") is not None:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *a, **kw)
    monkeypatch.setattr(os, "open", refused)
    assert p.poll() == ["E"]
    monkeypatch.setattr(os, "open", real_open)
    assert p.poll() == ["E"]

def test_the_thread_ends_when_the_root_goes(tmp_path: Path) -> None:
    """The share gone (root no longer listable): the thread ends, so the watcher reports
    itself dead and the next rescan restarts it."""
    root = tmp_path / "outbox"
    root.mkdir()
    p = poller(root, interval=0.05)
    p.start()
    try:
        assert p.alive()
        root.rmdir()
        assert wait_for(lambda: not p.alive(), what="the poller thread to end")
    finally:
        p.stop()


def test_the_root_gone_is_hinted_at_once_and_the_poller_is_dead_from_then(
        tmp_path: Path) -> None:
    """The share gone: the loop is told at once (ROOT_LOST: it logs it and rescans, which
    restarts the watcher or says why not), not first at the next rescan, and alive() is
    False by the time the hint comes, so that rescan does restart it."""
    root = tmp_path / "outbox"
    root.mkdir()
    hints: list[tuple[str, bool]] = []  # each hint, and whether alive() said so then
    p = poller(root, interval=0.05, on_hint=lambda top: hints.append((top, p.alive())))
    p.start()
    try:
        root.rmdir()
        wait_for(lambda: hints, what="the hint that the root went")
        assert hints == [(ROOT_LOST, False)]
    finally:
        p.stop()


def test_our_own_reads_are_not_hints(outbox: Path) -> None:
    """Reading a file (our own hashing and validating) changes nothing the poller keeps
    (access times are not kept), or the loop would wake itself in a circle."""
    p = poller(outbox)
    p.poll()
    for rel in ("A.xml", "A/a.pdf", "A/ID/x.pdf", "A/ID/sub/y.pdf"):
        (outbox / rel).read_bytes()
    assert p.poll() == []


@pytest.mark.parametrize("swapped", ["the folder", "a folder above it"])
def test_a_folder_swapped_for_a_link_during_a_walk_is_never_walked(
        outbox: Path, tmp_path: Path, swapped: str) -> None:
    """A share user swaps a sidecar, or a folder above one being walked, for a link to a
    folder outside the outbox between its lstat and its listing (a swap loop can hit the
    window): the poll never lists or lstats anything out there, and the link is a change.
    Each folder is opened relative to its parent held open, and never through a link."""
    outside = tmp_path / "outside"
    for top in ("A", "B"):
        write(outside / top / "secret.txt")
        write(outside / top / "ID" / "sub" / "secret.txt")
    counted = Counted()
    p = poller(outbox, counted)
    p.poll()
    done: list[str] = []

    def swap(name: str) -> None:
        (outbox / name).rename(tmp_path / f"moved-{name}")
        (outbox / name).symlink_to(outside / name, target_is_directory=True)
        done.append(name)

    def on_list(path: str) -> None:
        if done:
            return
        if swapped == "the folder" and path in (str(outbox / "A"), str(outbox / "B")):
            # The other top folder, lstat'ed as a folder with the root, not yet listed.
            swap("B" if path == str(outbox / "A") else "A")
        elif swapped == "a folder above it" and path == str(outbox / "A" / "ID"):
            swap("A")  # A/ID/sub is listed next, by its path through A
    counted.on_list = on_list
    counted.reset()
    p.poll()
    assert done and (outbox / done[0]).is_symlink()
    assert not [x for x in counted.listed + counted.stats if x.startswith(str(outside) + "/")]
    assert p.poll() == done  # the link in place of the folder: a change


def test_one_failed_listing_of_the_same_root_is_no_root_lost(outbox: Path) -> None:
    """The root's listing fails once (a share's EIO mid-poll) while the folder is the same:
    the poller is not dead and hints no ROOT_LOST (which made the loop say the outbox
    was away, then "replaced"); what changed meanwhile is hinted by the next poll."""
    counted = Counted()
    hints: list[str] = []
    p = poller(outbox, counted, interval=0.05, on_hint=hints.append)
    fail_once = [str(outbox)]

    def on_list(path: str) -> None:
        if path in fail_once:
            fail_once.clear()
            raise OSError(errno.EIO, "Input/output error", path)
    p.start()
    try:
        counted.on_list = on_list
        write(outbox / "C.xml")
        wait_for(lambda: "C.xml" in hints, what="the change hinted after the failed poll")
        assert not fail_once, "the failed listing happened"
        assert ROOT_LOST not in hints and p.alive()
    finally:
        p.stop()
