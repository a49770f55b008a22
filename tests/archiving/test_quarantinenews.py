"""What other daemons quarantined today, learned for the status page (quarantinenews.py)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.archiving import quarantinenews
from daemon.archiving.quarantinenews import QuarantineNews

NOW = datetime(2026, 3, 9, 16, 7, tzinfo=UTC)


def _entry(quarantine: Path, name: str, reason: dict | None = None) -> Path:
    folder = quarantine / "2026-03-09" / name
    folder.mkdir(parents=True)
    (folder / "INV-1.xml").write_bytes(b"<x/>")
    if reason is not None:
        (folder / "reason.json").write_text(json.dumps(reason))
    return folder


REASON = {"bundle_id": "ab" * 32, "invoice_file": "INV-1.xml",
          "quarantined_at": "2026-03-09T16:05:00Z",
          "reasons": [{"code": "file-type", "file": "a.pdf", "message": "not a PDF"}]}


def test_an_entry_of_another_daemon_is_learned_with_its_reasons_and_read_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new entry's reason.json is read once; a later look that finds nothing new reads
    nothing and says nothing changed; our own entries are never read."""
    _entry(tmp_path, "INV-1--abababababab", REASON)
    _entry(tmp_path, "OWN--cdcdcdcdcdcd", REASON)
    reads: list[str] = []
    real = quarantinenews.open_in
    monkeypatch.setattr(quarantinenews, "open_in",
                        lambda fd, n, shown: reads.append(Path(shown).parent.name)
                        or real(fd, n, shown))
    news = QuarantineNews()
    assert news.look(tmp_path, lambda: {"OWN--cdcdcdcdcdcd"}, 100, NOW)
    [e] = news.shown
    assert (e.folder, e.invoice_file, e.reasons) == ("INV-1--abababababab", "INV-1.xml",
                                                     ("a.pdf: not a PDF",))
    assert e.since == "2026-03-09T16:05:00.000Z"
    assert not news.look(tmp_path, lambda: {"OWN--cdcdcdcdcdcd"}, 100, NOW)
    assert reads == ["INV-1--abababababab"]


def test_an_entry_moved_back_or_removed_leaves_the_list(tmp_path: Path) -> None:
    """The invoice file moved back into the outbox by hand, or the folder gone (outboxd
    retry): no longer listed."""
    one = _entry(tmp_path, "INV-1--abababababab", REASON)
    two = _entry(tmp_path, "INV-2--efefefefefef", {**REASON, "bundle_id": "ef" * 32})
    news = QuarantineNews()
    news.look(tmp_path, set, 100, NOW)
    assert len(news.shown) == 2
    (one / "INV-1.xml").rename(tmp_path / "INV-1.xml")
    assert news.look(tmp_path, set, 100, NOW)
    assert [e.folder for e in news.shown] == [two.name]
    for f in two.iterdir():
        f.unlink()
    two.rmdir()
    assert news.look(tmp_path, set, 100, NOW) and news.shown == ()


def test_an_unusable_or_linked_reason_is_shown_as_its_folder_alone(tmp_path: Path) -> None:
    """A reason.json that is no JSON, or a link (never followed), and a day folder that is
    a link (never listed): no crash; an entry is shown without reasons."""
    bad = _entry(tmp_path, "BAD--111111111111")
    (bad / "reason.json").write_text("{cut")
    linked = _entry(tmp_path, "LINK--222222222222")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(REASON))
    os.symlink(secret, linked / "reason.json")
    news = QuarantineNews()
    news.look(tmp_path, set, 100, NOW)
    assert sorted((e.folder, e.reasons, e.bundle_id) for e in news.shown) == [
        ("BAD--111111111111", (), ""), ("LINK--222222222222", (), "")]
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "2026-03-10" / "X--333333333333").mkdir(parents=True)
    os.symlink(elsewhere / "2026-03-10", tmp_path / "2026-03-10")
    news.look(tmp_path, set, 100, datetime(2026, 3, 10, tzinfo=UTC))
    assert news.shown == ()


def test_an_entry_swapped_for_a_link_after_the_listing_is_not_read_through_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A share user swaps an entry for a link to a folder outside quarantine/ between the
    listing and the read: the reason.json out there is never read nor shown."""
    quarantine = tmp_path / "quarantine"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "reason.json").write_text(json.dumps({**REASON, "bundle_id": "secret"}))
    (outside / "INV-1.xml").write_bytes(b"<x/>")
    day = quarantine / "2026-03-09"
    day.mkdir(parents=True)
    os.symlink(outside, day / "SWAP--444444444444")
    monkeypatch.setattr(quarantinenews, "_names", lambda fd: {"SWAP--444444444444"})
    news = QuarantineNews()
    news.look(quarantine, set, 100, NOW)
    assert [(e.folder, e.bundle_id, e.reasons) for e in news.shown] == [
        ("SWAP--444444444444", "", ())]


def test_an_invoice_file_named_outside_its_folder_is_never_looked_for_there(
        tmp_path: Path) -> None:
    """reason.json is anyone's to write: an invoice_file of "../../x" is not looked up
    (whether such a file exists outside quarantine/ must not show on the page), and the
    entry stays listed."""
    _entry(tmp_path, "INV-1--abababababab", {**REASON, "invoice_file": "../../../nowhere"})
    news = QuarantineNews()
    news.look(tmp_path, set, 100, NOW)
    assert [e.folder for e in news.shown] == ["INV-1--abababababab"]


def test_a_huge_reason_json_keeps_the_page_small(tmp_path: Path) -> None:
    """Anyone on the share may write a reason.json of near a megabyte: of its reasons the
    first 20 are kept, each cut to 400 characters, and a line says how many more (in its
    REASON.txt); an over-long bundle id or invoice file name is not kept."""
    reason = {**REASON, "bundle_id": "b" * 5000, "invoice_file": "I" * 5000,
              "reasons": [{"file": "a.pdf", "message": "M" * 1000}] * 500}
    _entry(tmp_path, "BIG--555555555555", reason)
    news = QuarantineNews()
    news.look(tmp_path, set, 100, NOW)
    [e] = news.shown
    assert len(e.reasons) == quarantinenews.REASONS_KEPT + 1
    assert max(len(r) for r in e.reasons) == quarantinenews.REASON_CHARS
    assert e.reasons[-1] == "… and 480 more: see its REASON.txt"
    assert (e.bundle_id, e.invoice_file) == ("", "")


def test_our_own_entry_seen_before_its_row_was_written_is_ours_from_the_next_news_on(
        tmp_path: Path) -> None:
    """Our own quarantine's folder is listed before our journal says so (archiving runs
    off the loop): taken for another daemon's then, it is no longer listed as such once a
    later look asks the journal again (else counted twice, ours and "another's")."""
    _entry(tmp_path, "OWN--cdcdcdcdcdcd", REASON)
    news = QuarantineNews()
    news.look(tmp_path, set, 100, NOW)
    assert [e.folder for e in news.shown] == ["OWN--cdcdcdcdcdcd"]
    _entry(tmp_path, "OWN2--efefefefefef", {**REASON, "bundle_id": "ef" * 32})
    assert news.look(tmp_path, lambda: {"OWN--cdcdcdcdcdcd", "OWN2--efefefefefef"}, 100, NOW)
    assert news.shown == ()


def _many(quarantine: Path, count: int) -> list[str]:
    """`count` entries of another daemon, the later the higher their number; their names."""
    names = []
    for n in range(count):
        name = f"INV-{n:03d}--{n:012x}"
        _entry(quarantine, name, {**REASON, "bundle_id": f"{n:064x}",
                                  "quarantined_at": f"2026-03-09T10:{n // 60:02d}:{n % 60:02d}Z"})
        names.append(name)
    return names


def test_reason_files_are_read_a_budget_at_a_time_each_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day folder a share user filled with entries is not read in one go on the loop:
    a look reads until the caller's budget is spent (here after each read), the rest
    waits for `go_on`, a turn's share at a time; each reason.json is read once, and the
    entries are listed as they come."""
    names = _many(tmp_path, 5)
    reads: list[str] = []
    real = quarantinenews.open_in
    monkeypatch.setattr(quarantinenews, "open_in",
                        lambda fd, n, shown: reads.append(Path(shown).parent.name)
                        or real(fd, n, shown))
    news = QuarantineNews()
    assert news.look(tmp_path, set, 100, NOW, spent=lambda: True)
    assert len(reads) == 1 and news.pending and len(news.shown) == 1
    news.look(tmp_path, set, 100, NOW, spent=lambda: True)  # a rescan meanwhile: its share
    assert len(reads) == 2
    while news.pending:
        news.go_on(lambda: True)
        assert len(reads) <= len(names)
    assert sorted(reads) == names
    assert [e.folder for e in news.shown] == names[::-1]


def test_only_the_latest_the_page_lists_are_kept_the_earlier_counted(tmp_path: Path) -> None:
    """Of 5 entries with 2 listed, the 2 latest are kept whole (`shown`, latest first)
    and the 3 earlier counted (`more`), not kept: a page of 100,000 entries a share user
    made held all their reasons and built a row for each. When a listed one goes, the
    next latest comes up; when an earlier one goes, the count says so."""
    names = _many(tmp_path, 5)
    news = QuarantineNews()
    assert news.look(tmp_path, set, 2, NOW)
    assert ([e.folder for e in news.shown], news.more) == ([names[4], names[3]], 3)
    assert [r for e in news.shown for r in e.reasons] == ["a.pdf: not a PDF"] * 2
    shutil.rmtree(tmp_path / "2026-03-09" / names[4])
    assert news.look(tmp_path, set, 2, NOW)
    assert ([e.folder for e in news.shown], news.more) == ([names[3], names[2]], 2)
    assert news.shown[1].reasons == ("a.pdf: not a PDF",)  # read again as it came up
    shutil.rmtree(tmp_path / "2026-03-09" / names[0])
    assert news.look(tmp_path, set, 2, NOW)
    assert ([e.folder for e in news.shown], news.more) == ([names[3], names[2]], 1)
    assert not news.look(tmp_path, set, 2, NOW)


def test_reasons_left_to_read_of_a_day_folder_that_went_wait_for_the_next_look(
        tmp_path: Path) -> None:
    """The day folder goes (or cannot be opened) while reason.json files wait for their
    turn: nothing is left pending (the loop would come back for them at once, turn after
    turn, for nothing), and the next look lists and reads them again."""
    names = _many(tmp_path, 3)
    news = QuarantineNews()
    news.look(tmp_path, set, 100, NOW, spent=lambda: True)
    assert news.pending
    day = tmp_path / "2026-03-09"
    day.rename(tmp_path / "away")
    assert not news.go_on(lambda: True) and not news.pending
    (tmp_path / "away").rename(day)
    news.look(tmp_path, set, 100, NOW)
    assert [e.folder for e in news.shown] == names[::-1] and not news.pending


def test_a_look_on_a_new_day_is_news_and_names_its_day_though_nothing_is_listed(
        tmp_path: Path) -> None:
    """The page keeps only the entries of its own today (statuspage.py, elsewhere_day):
    the first look after midnight says so (changed, `day` the new one) though both days
    list nothing, so that the page learns which day the empty list is of."""
    news = QuarantineNews()
    assert news.day == ""
    news.look(tmp_path, set, 100, NOW)
    assert news.day == "2026-03-09"
    assert not news.look(tmp_path, set, 100, NOW)
    assert news.look(tmp_path, set, 100, NOW + timedelta(days=1))
    assert news.day == "2026-03-10" and news.shown == ()


def test_whether_an_invoice_is_still_in_its_entry_never_looks_through_a_link(
        tmp_path: Path) -> None:
    """invoice_in_entry: an entry gone since the listing no longer holds its invoice; a
    link in an entry's place is never followed (the folder it leads to, without the
    invoice file, is not looked into), so it cannot be told and stays listed."""
    day = tmp_path / "quarantine" / "2026-01-01"
    (day / "INV-1--0123456789ab").mkdir(parents=True)
    (day / "INV-1--0123456789ab" / "INV-1.xml").write_bytes(b"<Invoice/>")
    (tmp_path / "elsewhere").mkdir()
    (day / "INV-2--0123456789ab").symlink_to(tmp_path / "elsewhere")
    fd = os.open(day, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert quarantinenews.invoice_in_entry(fd, "INV-1--0123456789ab", "INV-1.xml")
        assert not quarantinenews.invoice_in_entry(fd, "INV-1--0123456789ab", "INV-9.xml")
        assert not quarantinenews.invoice_in_entry(fd, "INV-3--0123456789ab", "INV-3.xml")
        assert quarantinenews.invoice_in_entry(fd, "INV-2--0123456789ab", "INV-2.xml")
    finally:
        os.close(fd)


@pytest.mark.parametrize("fails", ["open", "listing"])
def test_a_day_folder_the_share_fails_to_open_or_list_keeps_what_the_page_showed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    """Today's folder of quarantine/ that cannot be opened, or listed, at a look (its
    share away: EIO) is no empty folder: the look says nothing changed and the entries
    shown stay as last looked at, not dropped from the page as if gone; once it reads
    again, an entry removed meanwhile leaves the list."""
    import errno
    one = _entry(tmp_path, "INV-1--abababababab", REASON)
    news = QuarantineNews()
    assert news.look(tmp_path, set, 100, NOW)
    day = tmp_path / "2026-03-09"
    real_open, real_scandir = os.open, os.scandir

    def opening(path: object, *args: object, **kwargs: object) -> int:
        if fails == "open" and isinstance(path, Path) and path == day:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    def scandir(path: object = ".") -> object:
        if fails == "listing" and isinstance(path, int) and os.path.samestat(
                os.fstat(path), os.stat(day)):
            raise OSError(errno.EIO, "Input/output error")
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "scandir", scandir)
    shutil.rmtree(one)
    assert not news.look(tmp_path, set, 100, NOW)
    assert [e.folder for e in news.shown] == ["INV-1--abababababab"]
    monkeypatch.undo()
    assert news.look(tmp_path, set, 100, NOW) and news.shown == ()


def test_an_entry_gone_at_its_turn_and_back_later_is_read_when_it_is_back(
        tmp_path: Path) -> None:
    """Another daemon's entry listed at a look and gone at its turn to be read (moved
    aside by an admin, or the share away for a moment), back before the next look: it was
    recorded as a folder without a reason.json — no bundle, no reasons, quarantined at
    midnight, so counted among the earliest and not shown once the page's list was full —
    and never read again. It is now not recorded at its turn, and read when it is back."""
    names = _many(tmp_path, 3)
    news = QuarantineNews()
    assert news.look(tmp_path, set, 2, NOW, spent=lambda: True) and news.pending
    [first] = [e.folder for e in news.shown]
    gone = next(n for n in reversed(names) if n != first)  # queued: the latest of the rest
    aside = tmp_path / "aside"
    (tmp_path / "2026-03-09" / gone).rename(aside)
    while news.pending:
        news.go_on(lambda: True)
    aside.rename(tmp_path / "2026-03-09" / gone)
    news.look(tmp_path, set, 2, NOW)
    assert ([e.folder for e in news.shown], news.more) == ([names[2], names[1]], 1)
    assert all(e.bundle_id and e.reasons == ("a.pdf: not a PDF",) for e in news.shown)


def test_an_entry_the_share_fails_as_it_comes_up_is_read_again_at_the_next_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One of the latest went, and the next latest, coming up in its place, fails to open
    at that moment (ESTALE: the share away for an instant): it was kept as a folder without
    reasons, quarantined "at midnight", for good. It is now read again at the next look."""
    names = _many(tmp_path, 3)
    news = QuarantineNews()
    assert news.look(tmp_path, set, 2, NOW)
    shutil.rmtree(tmp_path / "2026-03-09" / names[2])
    real_open = os.open
    failed: list[str] = []

    def blink(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if path == names[0] and not failed:
            failed.append(path)
            raise OSError(errno.ESTALE, "Stale file handle")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", blink)
    news.look(tmp_path, set, 2, NOW)
    assert failed == [names[0]]
    news.look(tmp_path, set, 2, NOW)
    assert ([e.folder for e in news.shown], news.more) == ([names[1], names[0]], 0)
    assert all(e.bundle_id and e.reasons == ("a.pdf: not a PDF",) for e in news.shown)
