"""The outbox index: which bundles a watcher event on a root name concerns."""

from __future__ import annotations

import os
import sys
import unicodedata
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import wait_for, write  # noqa: E402

from daemon.configuration.config import OutboxConfig  # noqa: E402
from daemon.watching.index import OutboxIndex  # noqa: E402
from daemon.watching.scan import Listing, list_outbox  # noqa: E402


def make(tmp_path: Path, **cfg: object) -> OutboxIndex:
    return OutboxIndex(OutboxConfig(path=tmp_path, **cfg))


def made_beside_inv_7(tmp_path: Path, folder: str) -> OutboxIndex:
    """INV-7.xml and INV-8.xml indexed, then `folder` made: checks that its event concerns
    INV-7.xml alone, whose candidate now carries it as a look-alike (no listing)."""
    write(tmp_path / "INV-7.xml", b"<x/>")
    write(tmp_path / "INV-8.xml", b"<x/>")
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    (tmp_path / folder).mkdir()
    assert idx.touched(folder)[0] == {"INV-7.xml"}
    assert idx.candidates["INV-7.xml"].look_alikes == (folder,)
    assert idx.candidates["INV-8.xml"].look_alikes == ()
    return idx


def assert_newcomer_takes_the_folder(tmp_path: Path, original: str, folder: str,
                                     newcomer: str) -> None:
    """`folder` is `original`'s look-alike until the invoice file `newcomer` comes, whose
    sidecar it is: its event steps both, and original loses the look-alike; when newcomer
    leaves the index with the folder left behind, remove() names original, whose look-alike
    the folder is again."""
    write(tmp_path / original, b"<x/>")
    (tmp_path / folder).mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    assert idx.candidates[original].look_alikes == (folder,)
    write(tmp_path / newcomer, b"<x/>")
    assert idx.touched(newcomer)[0] == {newcomer, original}
    assert idx.candidates[original].look_alikes == ()
    assert idx.candidates[newcomer].look_alikes == ()
    (tmp_path / newcomer).unlink()
    assert idx.remove(newcomer) == {original}
    assert idx.candidates[original].look_alikes == (folder,)


class TestTouched:
    def test_sidecar_marker_and_errors_file_map_to_their_invoice(self, tmp_path: Path) -> None:
        """Events on the sidecar, the marker or NAME.errors.txt concern the invoice file."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        write(tmp_path / "INV-2.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        for name in ("INV-1", "INV-1.ready", "INV-1.errors.txt", "INV-1.xml"):
            assert idx.touched(name)[0] == {"INV-1.xml"}, name

    def test_a_folder_spelled_like_the_sidecar_in_another_unicode_form_maps_to_it(
            self, tmp_path: Path) -> None:
        """A Mac writes Räkning-1 decomposed beside the ERP's composed Räkning-1.xml: an
        event on that folder concerns the invoice (it is reported as a look-alike)."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-1") for f in ("NFC", "NFD"))
        write(tmp_path / f"{nfc}.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        assert idx.touched(nfd)[0] == {f"{nfc}.xml"}
        assert idx.touched(nfc)[0] == {f"{nfc}.xml"}

    def test_a_folder_with_a_space_at_its_end_made_after_the_listing_concerns_the_bundle(
            self, tmp_path: Path) -> None:
        """`INV-7 /` made beside INV-7.xml after the listing: its event concerns INV-7.xml
        and makes it the bundle's look-alike (no listing of the root); removed, its event
        takes it away again."""
        write(tmp_path / "INV-7.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        (tmp_path / "INV-7 ").mkdir()
        assert idx.touched("INV-7 ")[0] == {"INV-7.xml"}
        assert idx.candidates["INV-7.xml"].look_alikes == ("INV-7 ",)
        (tmp_path / "INV-7 ").rmdir()
        assert idx.touched("INV-7 ")[0] == {"INV-7.xml"}
        assert idx.candidates["INV-7.xml"].look_alikes == ()

    def test_an_invoice_file_whose_sidecar_it_is_takes_the_look_alike_away(
            self, tmp_path: Path) -> None:
        """`INV-7 /` is INV-7.xml's look-alike until `INV-7 .xml` comes: then it is that
        file's sidecar, and no mistake of INV-7.xml's (both are stepped again)."""
        write(tmp_path / "INV-7.xml", b"<x/>")
        (tmp_path / "INV-7 ").mkdir()
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        assert idx.candidates["INV-7.xml"].look_alikes == ("INV-7 ",)
        write(tmp_path / "INV-7 .xml", b"<x/>")
        assert idx.touched("INV-7 .xml")[0] == {"INV-7.xml", "INV-7 .xml"}
        assert idx.candidates["INV-7.xml"].look_alikes == ()

    def test_a_rebuild_under_a_sidecar_suffix_finds_the_bare_stem_folder(
            self, tmp_path: Path) -> None:
        """A reload that sets [outbox] sidecar_suffix = ".att": the folder INV-7/, the
        sidecar until then, is now a look-alike of INV-7.att/ (its event concerns the
        bundle), and so is inv-7.ATT/: the names the index keeps meet under the new key
        before the next listing."""
        write(tmp_path / "INV-7.xml", b"<x/>")
        (tmp_path / "INV-7").mkdir()
        (tmp_path / "inv-7.ATT").mkdir()  # a folder of no bundle until the reload
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        idx.cfg = OutboxConfig(path=tmp_path, sidecar_suffix=".att")
        idx.rebuild()
        assert idx.candidates["INV-7.xml"].look_alikes == ("INV-7", "inv-7.ATT")
        assert idx.touched("INV-7")[0] == {"INV-7.xml"}

    def test_a_rebuild_under_another_sidecar_suffix_maps_the_new_names(
            self, tmp_path: Path) -> None:
        """A reload that sets [outbox] sidecar_suffix: the bundles already indexed take
        their sidecar's new name (events on it concern them); the old one, the bare stem,
        concerns them only as a look-alike of the new one would."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        idx.cfg = OutboxConfig(path=tmp_path, sidecar_suffix=".files")
        idx.rebuild()
        assert idx.candidates["INV-1.xml"].sidecar == tmp_path / "INV-1.files"
        assert idx.touched("INV-1.files")[0] == {"INV-1.xml"}
        assert idx.touched("INV-1")[0] == {"INV-1.xml"}
        assert idx.candidates["INV-1.xml"].look_alikes == ()
        assert idx.touched("INV-1.old")[0] == set()

    def test_two_invoice_files_with_one_stem_share_their_sidecar(self, tmp_path: Path) -> None:
        """A.xml and A.pdf share the sidecar A/: an event in it concerns both."""
        write(tmp_path / "A.xml", b"<x/>")
        write(tmp_path / "A.pdf", b"%PDF-1.4")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        assert idx.touched("A")[0] == {"A.xml", "A.pdf"}

    def test_a_new_invoice_file_is_added_by_its_event(self, tmp_path: Path) -> None:
        """An invoice file that arrives after the listing is indexed by its own event."""
        idx = make(tmp_path)
        write(tmp_path / "NEW.xml", b"<x/>")
        keys, _ = idx.touched("NEW.xml")
        assert keys == {"NEW.xml"} and "NEW.xml" in idx.candidates

    def test_an_invoice_file_that_went_is_still_stepped_once(self, tmp_path: Path) -> None:
        """The event for a removed invoice file still names it, so its step can record it
        as gone; the index forgets it only when told."""
        inv = write(tmp_path / "INV-1.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        inv.unlink()
        assert idx.touched("INV-1.xml")[0] == {"INV-1.xml"}
        idx.remove("INV-1.xml")
        assert idx.touched("INV-1")[0] == set()

    def test_other_names_concern_no_bundle_and_are_reported(self, tmp_path: Path) -> None:
        """A file that is not an invoice concerns no bundle; the listing says what it is."""
        write(tmp_path / "notes.docx", b"x")
        idx = make(tmp_path)
        keys, what = idx.touched("notes.docx")
        assert keys == set() and what.others == ("notes.docx",)

    def test_sidecar_suffix_is_part_of_the_sidecar_name(self, tmp_path: Path) -> None:
        """With sidecar_suffix = ".att", INV-1.att/ is INV-1.xml's sidecar; INV-1/ is not,
        but an event on it concerns the bundle, as one on a look-alike does."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        idx = make(tmp_path, sidecar_suffix=".att")
        idx.replace(list_outbox(idx.cfg))
        assert idx.touched("INV-1.att")[0] == {"INV-1.xml"}
        assert idx.touched("INV-1")[0] == {"INV-1.xml"}
        assert idx.candidates["INV-1.xml"].look_alikes == ()
        assert idx.touched("INV-1.old")[0] == set()


class TestLookAlikes:
    def test_an_event_on_a_folder_named_in_other_case_steps_the_bundle_and_names_it(
            self, tmp_path: Path) -> None:
        """A Windows clerk makes inv-7/ beside the ERP's INV-7.xml: the event on inv-7
        concerns INV-7.xml, whose candidate now carries inv-7 as a look-alike (no listing
        of the outbox), once however many events the folder has; renamed to INV-7, both
        events step it and the look-alike is gone."""
        idx = made_beside_inv_7(tmp_path, "inv-7")
        write(tmp_path / "inv-7" / "a.pdf", b"%PDF")
        assert idx.touched("inv-7")[0] == {"INV-7.xml"}
        assert idx.candidates["INV-7.xml"].look_alikes == ("inv-7",)
        (tmp_path / "inv-7").rename(tmp_path / "INV-7")
        assert idx.touched("inv-7")[0] == {"INV-7.xml"}
        assert idx.touched("INV-7")[0] == {"INV-7.xml"}
        assert idx.candidates["INV-7.xml"].look_alikes == ()

    def test_an_invoice_file_that_comes_beside_a_look_alike_gets_it(self, tmp_path: Path) -> None:
        """The clerk made inv-9/ first, the ERP writes INV-9.xml after: the invoice file's
        own event gives its candidate the look-alike already there."""
        (tmp_path / "inv-9").mkdir()
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        write(tmp_path / "INV-9.xml", b"<x/>")
        assert idx.touched("INV-9.xml")[0] == {"INV-9.xml"}
        assert idx.candidates["INV-9.xml"].look_alikes == ("inv-9",)

    def test_the_sidecar_of_an_invoice_file_in_other_case_is_no_look_alike(
            self, tmp_path: Path) -> None:
        """inv-7.xml coming beside INV-7.xml makes inv-7/ its own sidecar: INV-7.xml loses
        the look-alike (and is stepped); when inv-7.xml leaves the index with its folder
        left behind, the folder is INV-7.xml's look-alike again, and remove() says so."""
        assert_newcomer_takes_the_folder(tmp_path, "INV-7.xml", "inv-7", "inv-7.xml")

    def test_an_event_on_a_copy_of_the_sidecar_steps_the_bundle_and_names_it(
            self, tmp_path: Path) -> None:
        """A clerk copies INV-7/ in Windows Explorer: the event on `INV-7 - Copy` concerns
        INV-7.xml, whose candidate now carries the copy as a look-alike; removed, its event
        takes it away again."""
        idx = made_beside_inv_7(tmp_path, "INV-7 - Copy")
        (tmp_path / "INV-7 - Copy").rmdir()
        assert idx.touched("INV-7 - Copy")[0] == {"INV-7.xml"}
        assert idx.candidates["INV-7.xml"].look_alikes == ()

    def test_an_invoice_file_named_as_a_copy_takes_its_sidecar_from_the_original(
            self, tmp_path: Path) -> None:
        """`INV-7 (1)/` is INV-7.xml's look-alike until `INV-7 (1).xml` comes: then it is
        that file's sidecar, and INV-7.xml loses it (and is stepped); when the file leaves
        the index with the folder left behind, the folder is INV-7.xml's again."""
        assert_newcomer_takes_the_folder(tmp_path, "INV-7.xml", "INV-7 (1)", "INV-7 (1).xml")

    def test_an_invoice_file_of_another_extension_takes_its_sidecar_from_the_original(
            self, tmp_path: Path) -> None:
        """`Faktura 2/` is Faktura.xml's look-alike (a Mac's copy of Faktura/) until
        `Faktura 2.pdf` comes, whose exact sidecar it is: then Faktura.xml loses it and is
        stepped; when Faktura 2.pdf leaves the index with the folder left behind, the
        folder is Faktura.xml's again."""
        assert_newcomer_takes_the_folder(tmp_path, "Faktura.xml", "Faktura 2", "Faktura 2.pdf")

    def test_a_copy_of_another_extensions_sidecar_made_later_is_not_the_originals(
            self, tmp_path: Path) -> None:
        """With Faktura.xml and Faktura 2.pdf indexed, a folder `Faktura 2/` made after
        them (its event) is Faktura 2.pdf's sidecar, no look-alike of Faktura.xml; under
        a sidecar suffix (.att) it is not Faktura 2.pdf's sidecar, and Faktura.xml has it
        as a copy."""
        for suffix, held in (("", ()), (".att", ("Faktura 2",))):
            outbox = tmp_path / (suffix or "plain")
            write(outbox / "Faktura.xml", b"<x/>")
            write(outbox / "Faktura 2.pdf", b"%PDF-1.4")
            idx = make(outbox, sidecar_suffix=suffix)
            idx.replace(list_outbox(idx.cfg))
            (outbox / "Faktura 2").mkdir()
            idx.touched("Faktura 2")
            assert idx.candidates["Faktura.xml"].look_alikes == held, suffix

    def test_a_rebuild_keeps_a_copy_of_the_sidecar(self, tmp_path: Path) -> None:
        """After a reload's rebuild, `INV-7 2/` (a Mac's copy) is still INV-7.xml's
        look-alike, and under a sidecar suffix `INV-7.att - Copy/` is INV-7.att/'s."""
        write(tmp_path / "INV-7.xml", b"<x/>")
        for folder in ("INV-7 2", "INV-7.att - Copy"):
            (tmp_path / folder).mkdir()
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        assert idx.candidates["INV-7.xml"].look_alikes == ("INV-7 2",)
        idx.cfg = OutboxConfig(path=tmp_path, sidecar_suffix=".att")
        idx.rebuild()
        assert idx.candidates["INV-7.xml"].look_alikes == ("INV-7 2", "INV-7.att - Copy")

    def test_a_full_listing_gives_the_known_bundles_their_look_alikes(
            self, tmp_path: Path) -> None:
        """A look-alike made or renamed without an event (polling, lost events) is the
        bundle's after the next listing, and one gone is no longer."""
        write(tmp_path / "INV-7.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        (tmp_path / "inv-7").mkdir()
        idx.replace(list_outbox(idx.cfg, known=idx.candidates))
        assert idx.candidates["INV-7.xml"].look_alikes == ("inv-7",)
        (tmp_path / "inv-7").rmdir()
        idx.replace(list_outbox(idx.cfg, known=idx.candidates))
        assert idx.candidates["INV-7.xml"].look_alikes == ()



class TestSharers:
    def test_an_invoice_file_of_the_same_sidecar_that_comes_concerns_the_other(
            self, tmp_path: Path) -> None:
        """INV-1.pdf dropped beside INV-1.xml: its event marks INV-1.xml too, and each
        candidate names the other as a sharer of INV-1/ (no listing of the root)."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        write(tmp_path / "INV-1.pdf", b"%PDF")
        assert idx.touched("INV-1.pdf")[0] == {"INV-1.xml", "INV-1.pdf"}
        assert idx.candidates["INV-1.xml"].sharers == ("INV-1.pdf",)
        assert idx.candidates["INV-1.pdf"].sharers == ("INV-1.xml",)

    @pytest.mark.parametrize("patterns", [["*.xml", "*.pdf"], ["*"]])
    def test_an_invoice_file_that_goes_marks_the_other_and_leaves_it_alone(
            self, tmp_path: Path, patterns: list[str]) -> None:
        """INV-1.pdf moved into INV-1/: its event marks INV-1.xml at once (it is read
        again without waiting for a rescan) — also under a pattern that spells out no
        extension ("*"), where the name does not meet the sidecar as a look-alike would;
        once the gone file's step removes it, the other has no sharer left and is to be
        stepped again."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        write(tmp_path / "INV-1.pdf", b"%PDF")
        (tmp_path / "INV-1").mkdir()
        idx = make(tmp_path, invoice_patterns=patterns)
        idx.replace(list_outbox(idx.cfg))
        (tmp_path / "INV-1.pdf").rename(tmp_path / "INV-1" / "INV-1.pdf")
        assert idx.touched("INV-1.pdf")[0] == {"INV-1.xml", "INV-1.pdf"}
        assert idx.remove("INV-1.pdf") == {"INV-1.xml"}
        assert idx.candidates["INV-1.xml"].sharers == ()

    def test_events_on_an_indexed_invoice_file_leave_it_indexed_once(
            self, tmp_path: Path) -> None:
        """The ERP rewrites INV-1.xml beside INV-1.pdf (an event or several): both stay
        as indexed, each naming the other once as a sharer, not once per event."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        write(tmp_path / "INV-1.pdf", b"%PDF")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        for _ in range(2):
            write(tmp_path / "INV-1.xml", b"<Invoice/>")
            assert idx.touched("INV-1.xml")[0] == {"INV-1.xml", "INV-1.pdf"}
        assert idx.candidates["INV-1.pdf"].sharers == ("INV-1.xml",)
        assert sorted(idx.sharing("INV-1.xml")) == ["INV-1.pdf", "INV-1.xml"]

    def test_a_full_listing_gives_the_known_bundles_their_sharers(
            self, tmp_path: Path) -> None:
        """A sharer that came or went without an event (polling, lost events) is known
        after the next listing: the rescan's snapshots then see it."""
        write(tmp_path / "INV-1.xml", b"<x/>")
        idx = make(tmp_path)
        idx.replace(list_outbox(idx.cfg))
        write(tmp_path / "INV-1.pdf", b"%PDF")
        idx.replace(list_outbox(idx.cfg, known=idx.candidates))
        assert idx.candidates["INV-1.xml"].sharers == ("INV-1.pdf",)
        (tmp_path / "INV-1.pdf").unlink()
        assert idx.replace(list_outbox(idx.cfg, known=idx.candidates)) == (set(), {"INV-1.pdf"})
        assert idx.candidates["INV-1.xml"].sharers == ()


class TestReplace:
    def test_a_full_listing_says_what_appeared_and_what_went(self, tmp_path: Path) -> None:
        """replace() returns the keys that appeared and went since the last listing."""
        write(tmp_path / "A.xml", b"<x/>")
        idx = make(tmp_path)
        assert idx.replace(list_outbox(idx.cfg)) == ({"A.xml"}, set())
        (tmp_path / "A.xml").unlink()
        write(tmp_path / "B.xml", b"<x/>")
        assert idx.replace(list_outbox(idx.cfg)) == ({"B.xml"}, {"A.xml"})


def test_a_folder_without_an_invoice_file_is_lone_until_its_invoice_file_comes(
        tmp_path: Path) -> None:
    """The index keeps the root's lone folders from the listing and from events: a folder
    made is lone; its invoice file indexed takes it; the invoice file gone with the folder
    left behind makes it lone again; a sidecar or a dot-folder never is; a file put in it
    gives it its new ctime; each change counts in lone_version (the page's cue), an event
    that changes nothing does not."""
    write(tmp_path / "INV-1.xml", b"<x/>")
    (tmp_path / "INV-1").mkdir()
    (tmp_path / ".outboxd").mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    assert idx.lone == {}
    (tmp_path / "INV-7100").mkdir()
    before = idx.lone_version
    idx.touched("INV-7100")
    assert list(idx.lone) == ["INV-7100"] and idx.lone_version > before
    before = idx.lone_version
    idx.touched("INV-7100")
    assert idx.lone_version == before
    # A file put in it changes its ctime (the page's "unchanged since"): chmod until the
    # file system's clock, coarser than a nanosecond, has ticked.
    folder, first = tmp_path / "INV-7100", idx.lone["INV-7100"]
    wait_for(lambda: os.chmod(folder, 0o750) or folder.stat().st_ctime_ns != first,
             what="a new ctime of INV-7100/")
    idx.touched("INV-7100")
    assert idx.lone["INV-7100"] == folder.stat().st_ctime_ns and idx.lone_version > before
    before = idx.lone_version
    write(tmp_path / "INV-7100.xml", b"<x/>")
    idx.touched("INV-7100.xml")
    assert idx.lone == {}
    (tmp_path / "INV-7100.xml").unlink()
    idx.remove("INV-7100.xml")
    assert list(idx.lone) == ["INV-7100"]
    (tmp_path / "INV-7100").rmdir()
    idx.touched("INV-7100")
    assert idx.lone == {}


def test_a_lone_folder_a_listing_could_not_look_at_stays_lone(tmp_path: Path) -> None:
    """A rescan lists Misc/ but its lstat fails (a share's EIO): it stays a lone folder,
    with the time it had, rather than leaving the page and coming back at the next one."""
    (tmp_path / "Misc").mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    lone, version = dict(idx.lone), idx.lone_version
    assert list(lone) == ["Misc"]
    idx.replace(Listing({}, (), unlooked=frozenset({"Misc"})))
    assert idx.lone == lone and idx.lone_version == version

def test_near_names_the_lone_folders_close_to_a_bundles_stem(tmp_path: Path) -> None:
    write(tmp_path / "INV-7010.xml", b"<x/>")
    for folder in ("INV-7100", "INV-7010 (1)", "INV-9999"):
        (tmp_path / folder).mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    assert set(idx.lone) == {"INV-7100", "INV-7010 (1)", "INV-9999"}
    # Its copy-named folder is its look-alike (sidecar-spelling), not a hint.
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7100"]


def test_near_leaves_out_another_bundles_look_alike(tmp_path: Path) -> None:
    """`inv-7011/` is INV-7011.xml's look-alike (its errors say to rename it INV-7011/):
    the log and REASON.txt of INV-7010.xml, waiting, must not tell to rename it
    INV-7010/ — that sent INV-7011's attachments with INV-7010. The page and `status`
    leave it out already; a lone folder of no bundle is still hinted."""
    write(tmp_path / "INV-7010.xml", b"<x/>")
    write(tmp_path / "INV-7011.xml", b"<x/>")
    (tmp_path / "inv-7011").mkdir()
    (tmp_path / "INV-7100").mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    assert idx.candidates["INV-7011.xml"].look_alikes == ("inv-7011",)
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7100"]


def test_near_compares_by_the_sidecar_suffix_in_force_after_a_reload(tmp_path: Path) -> None:
    """A reload that sets sidecar_suffix = "_att" makes `INV-7100_att/` compare as
    INV-7100, close to INV-7010: the hint follows the new suffix even though the lone
    folders stayed the same."""
    write(tmp_path / "INV-7010.xml", b"<x/>")
    (tmp_path / "INV-7100_att").mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    assert idx.near(idx.candidates["INV-7010.xml"]) == []
    idx.cfg = OutboxConfig(path=tmp_path, sidecar_suffix="_att")
    idx.rebuild()
    assert list(idx.lone) == ["INV-7100_att"]
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7100_att"]


def test_near_after_one_lone_folder_changed_indexes_that_one_not_all_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ERP that writes each sidecar before its invoice file, 2,000 of a batch: every
    invoice file that comes takes its folder off the lone ones, and every invoice of the
    batch without attachments asked for the folders close to it. Each such question
    indexed every lone folder's name again (2,000: some 130 ms of the loop, hundreds of
    times in the batch). Now a change of one lone folder indexes that one, and the
    question its stem: a few name keys, whatever the number of lone folders."""
    import daemon.watching.lonefolders as lonefolders
    write(tmp_path / "INV-7010.xml", b"<x/>")
    for i in range(2000):
        (tmp_path / f"B-{i:05}").mkdir()
    (tmp_path / "INV-7100").mkdir()
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7100"]
    keyed: list[str] = []
    real = lonefolders._deletions
    monkeypatch.setattr(lonefolders, "_deletions", lambda s: keyed.append(s) or real(s))
    for i in range(3):  # three invoice files of the batch come, each taking its folder
        write(tmp_path / f"B-{i:05}.xml", b"<x/>")
        idx.touched(f"B-{i:05}.xml")
        assert f"B-{i:05}" not in idx.lone
        assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7100"]
    (tmp_path / "INV-7011").mkdir()  # and a folder comes
    idx.touched("INV-7011")
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7011", "INV-7100"]
    assert len(keyed) <= 3 * 2 + 2, f"{len(keyed)} names keyed"
    # A rescan's listing that finds the same folders changes nothing of it.
    idx.replace(list_outbox(idx.cfg))
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7011", "INV-7100"]
    (tmp_path / "INV-7100").rmdir()
    idx.replace(list_outbox(idx.cfg))
    assert idx.near(idx.candidates["INV-7010.xml"]) == ["INV-7011"]


def test_an_errors_file_is_stray_only_while_no_indexed_invoice_file_has_its_name(
        tmp_path: Path) -> None:
    """INV-1.errors.txt is INV-1.xml's (its bundle's to tell), NOTES.errors.txt beside no
    invoice file is a stray the page lists, and a dot-name is no errors file the page
    shows (outboxd's temps): the loop asks for the page on a stray's event or listing.
    Once INV-1.xml leaves the index, its errors file left behind is a stray too."""
    write(tmp_path / "INV-1.xml", b"<x/>")
    idx = make(tmp_path)
    idx.replace(list_outbox(idx.cfg))
    names = ["INV-1.errors.txt", "NOTES.errors.txt", ".NOTES.errors.txt", "INV-1.xml"]
    assert idx.stray_errors(names) == {"NOTES.errors.txt"}
    (tmp_path / "INV-1.xml").unlink()
    idx.remove("INV-1.xml")
    assert idx.stray_errors(names) == {"INV-1.errors.txt", "NOTES.errors.txt"}
