"""Release and marker files that do nothing: why an idle release does nothing, and the
exact name a near miss of a release file or marker is told."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.loop import idlefiles, leftwords
from daemon.loop.idlefiles import idle_releases, meant_release, near_miss

SHARE = ShareConfig()


def test_idle_releases_say_why() -> None:
    idle = idle_releases(["a.send-anyway", "b.send-anyway", "c.send-anyway", "d.send-anyway"],
                         SHARE, ["b.xml", "c.xml", "d.pdf"],
                         {"b.xml": "held", "c.xml": "waiting", "d.pdf": "settling"})
    why = {i.name: i.why for i in idle}
    assert "no invoice file a.*" in why["a.send-anyway"]
    assert "has errors" in why["b.send-anyway"] and "b.errors.txt" in why["b.send-anyway"]
    assert "c.send-anyway" not in why  # waiting: it is being released
    assert "settling" in why["d.send-anyway"]


@pytest.mark.parametrize("name", [
    "INV-1.xml.send-anyway",  # the invoice file's whole name before the suffix
    "INV-1.Send-Anyway", "inv-1.SEND-ANYWAY",  # case
    "INV-1 .send-anyway", "INV-1.send-anyway ",  # spaces at an end of a part
    "INV-1.send-anyway.txt", "INV-1.Send-Anyway.TXT",  # Windows' hidden .txt
    "INV-1.send-anyway.docx",  # or .docx, of a Word document renamed
    "Fakt\u0075\u0308ra-1.send-anyway",  # NFD, as a Mac writes it, for an NFC invoice file
])
def test_a_near_miss_of_a_release_file_names_the_exact_release_file(name: str) -> None:
    """A clerk who means to release INV-1.xml but names the file a little off releases
    nothing; the page must say which name would (the invoice file it is for, and the
    exact release file name), not only that it waits or is no invoice file."""
    files = ["INV-1.xml", "Fakt\u00fcra-1.xml", "INV-2.pdf"]
    meant = "Fakt\u00fcra-1" if "ra-1" in name else "INV-1"
    assert meant_release(name, ".send-anyway", files) == (f"{meant}.xml",
                                                          f"{meant}.send-anyway")


@pytest.mark.parametrize("name", [
    "INV-1.send-anyway",  # exact: a real release file, nothing to hint
    "INV-9.send-anyway", "INV-9.send-anyway.txt",  # no invoice file INV-9.* in the outbox
    "notes.txt", "send-anyway.txt", ".send-anyway", "INV-1.send-anyway-old.txt",
])
def test_a_release_file_or_another_name_is_no_near_miss(name: str) -> None:
    assert meant_release(name, ".send-anyway", ["INV-1.xml", "INV-2.pdf"]) is None


def test_a_release_file_named_with_the_invoice_files_extension_says_the_name_to_use() -> None:
    """`INV-1.xml.send-anyway` waits for an invoice file `INV-1.xml.*` that never comes,
    while INV-1.xml waits for its attachments: the page's row says to rename it."""
    [idle] = idle_releases(["INV-1.xml.send-anyway"], SHARE, ["INV-1.xml"], {})
    assert idle.why == ("there is no invoice file INV-1.xml.* beside it; it waits for one — "
                        "to release INV-1.xml, rename it to INV-1.send-anyway")
    [idle] = idle_releases(["INV-7.send-anyway"], SHARE, ["INV-1.xml"], {})
    assert idle.why == "there is no invoice file INV-7.* beside it; it waits for one"


@pytest.mark.parametrize(("name", "meant"), [
    ("k-1.xml.send-anyway", ("k-1.xml", "k-1.send-anyway")),  # whole name, exactly
    ("K-1.xml.send-anyway", ("K-1.xml", "K-1.send-anyway")),
    ("k-1.Send-Anyway", ("k-1.xml", "k-1.send-anyway")),  # stem exactly, suffix folded
    ("K-1.XML.send-anyway", None),  # folded, both are it: naming one would mislead
    ("K-1 .SEND-ANYWAY.txt", ("K-1.xml", "K-1.send-anyway")),
])
def test_a_near_miss_names_the_invoice_file_it_spells_not_its_case_twin(
        name: str, meant: tuple[str, str] | None) -> None:
    """K-1.xml and k-1.xml are two invoice files on Linux: a near miss spelled after one is
    told the release file of that one (it was told K-1's for k-1.xml.send-anyway, the
    first in sorted order); one that matches both only folded is told neither."""
    assert meant_release(name, ".send-anyway", ["K-1.xml", "k-1.xml"]) == meant


@pytest.mark.parametrize("files", [["INV-1.xml", "INV-1.pdf"], ["INV-1.pdf", "INV-1.xml"]])
def test_a_near_miss_of_a_stem_two_invoice_files_share_names_the_first_in_name_order(
        files: list[str]) -> None:
    """INV-1.xml and its print INV-1.pdf share a release file: a near miss is told it for
    the first of them by name, whatever order the outbox listed them in (the page and
    `outboxd status` say the same at each refresh)."""
    assert meant_release("INV-1.Send-Anyway", ".send-anyway", files) == (
        "INV-1.pdf", "INV-1.send-anyway")


def test_a_near_miss_beside_the_exact_release_file_is_told_to_go_not_to_be_renamed() -> None:
    """INV-1.send-anyway is there already: renaming INV-1.xml.send-anyway or
    INV-1.send-anyway.txt to it would fail (or leave the clerk two); the row says the
    release is there and this one can go. Likewise for a marker."""
    files = ["INV-1.xml"]
    [idle] = idle_releases(["INV-1.send-anyway", "INV-1.xml.send-anyway"], SHARE, files,
                           {"INV-1.xml": "waiting"})
    assert idle.name == "INV-1.xml.send-anyway"
    assert idle.why.endswith("— INV-1.send-anyway, the release file of INV-1.xml, is there "
                             "already: remove this one")
    there = {"INV-1.send-anyway", "INV-1.ready"}.__contains__
    text = near_miss("INV-1.send-anyway.txt", SHARE, files, None, {}, there)
    assert text and "is there already: remove this one" in text and "rename" not in text
    text = near_miss("INV-1.Ready", SHARE, files, ".ready", {}, there)
    assert text == ("named like a marker file, but not exactly, so it does nothing — "
                    "INV-1.ready, the marker of INV-1.xml, is there already: remove this one")


@pytest.mark.parametrize(("state", "said"), [
    ("held", "a release of INV-1.xml would do nothing: INV-1.xml has errors (see "
             "INV-1.errors.txt)"),
    ("delivering", "a release of INV-1.xml would do nothing: INV-1.xml has attachments"),
    ("waiting", "to send INV-1.xml without its attachments, rename it to INV-1.send-anyway"),
    ("settling", "rename it to INV-1.send-anyway"),
])
def test_a_near_miss_is_told_to_rename_only_where_a_release_would_send(state: str,
                                                                       said: str) -> None:
    """A held invoice (errors) or one that has its attachments is not sent by a release:
    its near miss says so instead of "rename it to INV-1.send-anyway", a fix that does
    nothing. Waiting (or not read yet), the rename is the fix."""
    text = near_miss("INV-1.send-anyway.txt", SHARE, ["INV-1.xml"], None, {"INV-1.xml": state})
    assert text and said in text
    [idle] = idle_releases(["INV-1.xml.send-anyway"], SHARE, ["INV-1.xml"], {"INV-1.xml": state})
    assert ("rename it to INV-1.send-anyway" in idle.why) == (state in ("waiting", "settling"))


@pytest.mark.parametrize(("raw", "shown", "rule"), [
    (b"Faktura-\xe5.send-anyway", "Faktura-\\udce5.send-anyway", "not valid UTF-8"),
    (b"Faktura\x01.send-anyway", "Faktura\\x01.send-anyway", "control character"),
    ("Faktura\u0085.send-anyway".encode(), "Faktura\\x85.send-anyway", "control character"),
])
def test_a_release_whose_name_cannot_be_used_says_so_under_an_escaped_name(
        raw: bytes, shown: str, rule: str) -> None:
    """A release file whose name is not UTF-8 (or holds control characters) can never
    release anything (no invoice file of that stem is ever read): it is listed under the
    name escaped as the scanner shows such names, with the rule and the fix, and marked
    bad so the daemon logs it — even beside an invoice file of that stem."""
    name = os.fsdecode(raw)
    [idle] = idle_releases([name], SHARE, [os.fsdecode(raw[:-12] + b".xml")], {})
    assert idle.name == shown and idle.bad_name
    assert rule in idle.why and "rename" in idle.why
    (idle.name + idle.why).encode("utf-8")


def test_the_markers_of_many_waiting_bundles_cost_no_look_at_every_invoice_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under completion = "marker" each waiting bundle has its marker in the root: a
    real marker is told apart by its name alone, not by meant_release, which looks at
    every invoice file (with 20,000 waiting, each page refresh and `outboxd status`
    spent 4 s of CPU on them). A near miss among them is still listed with the name it
    needs, and a marker naming no invoice file is still not listed."""
    outbox = OutboxConfig(path=tmp_path, completion="marker")
    files = [f"INV-{i}.xml" for i in range(200)]
    for name in [*files, *(f"INV-{i}.ready" for i in range(200)), "M-3.xml.ready",
                 "NONE-1.ready"]:
        (tmp_path / name).write_bytes(b"")
    files.append("M-3.xml")
    looked: list[str] = []
    real = idlefiles.meant_release

    def counting(name: str, *args: object) -> tuple[str, str] | None:
        looked.append(name)
        return real(name, *args)  # type: ignore[arg-type]
    monkeypatch.setattr(idlefiles, "meant_release", counting)
    misses = idlefiles.marker_misses(outbox, SHARE, files,
                                     idlefiles.suffixed_names(outbox, SHARE).markers)
    assert list(misses) == ["M-3.xml.ready"] and "rename it to M-3.ready" in misses["M-3.xml.ready"]
    assert not [n for n in looked if n.startswith("INV-")]


def test_each_near_miss_of_a_marker_is_matched_against_the_invoice_files_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """marker_misses matched each near miss of a marker to find it, and near_miss matched
    it again to word it: with 2,000 of them beside 20,000 invoice files, 0.73 s of a
    refresh, 0.42 s once. Each is matched with the marker suffix once, and still told the
    marker it needs, or that the marker is there already."""
    outbox = OutboxConfig(path=tmp_path, completion="marker")
    files = [f"INV-{i}.xml" for i in range(20)]
    names = [f"INV-{i}.xml.ready" for i in range(20)]
    (tmp_path / "INV-0.ready").write_bytes(b"")
    looked: list[tuple[str, str | None]] = []
    real = idlefiles.meant_release

    def counting(name: str, suffix: str | None, *args: object) -> tuple[str, str] | None:
        looked.append((name, suffix))
        return real(name, suffix, *args)  # type: ignore[arg-type]
    monkeypatch.setattr(idlefiles, "meant_release", counting)
    misses = idlefiles.marker_misses(outbox, SHARE, files, names)
    assert misses["INV-0.xml.ready"].endswith("INV-0.ready, the marker of INV-0.xml, is "
                                              "there already: remove this one")
    assert all(f"still waits for its marker — rename it to INV-{i}.ready " in misses[
        f"INV-{i}.xml.ready"] for i in range(1, 20))
    assert sorted(n for n, suffix in looked if suffix == ".ready") == sorted(names)


def test_near_misses_of_release_files_gather_the_invoice_files_once_a_refresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each idle release that is a near miss was told its name from a list of every
    invoice file (and a set of every release file) made again for it: 2,000 such beside
    20,000 invoice files cost 6 s of CPU a refresh. Both are made once; each near miss
    is still told the release file it needs."""
    files = [f"INV-{i}.xml" for i in range(50)]
    names = [f"INV-{i}.xml.send-anyway" for i in range(50)]
    given: set[int] = set()
    real = idlefiles.meant_release

    def recording(name: str, suffix: str, invoice_files: list[str]) -> tuple[str, str] | None:
        given.add(id(invoice_files))
        return real(name, suffix, invoice_files)
    monkeypatch.setattr(idlefiles, "meant_release", recording)
    idle = idle_releases(names, SHARE, files, {})
    assert len(idle) == 50 and all(f"rename it to INV-{i}.send-anyway" in x.why
                                   for i, x in enumerate(idle))
    assert len(given) == 1


@pytest.mark.parametrize("kind", ["symbolic link", "FIFO", "file"])
def test_a_release_that_is_no_file_says_why_it_releases_nothing(tmp_path: Path, kind: str
                                                                ) -> None:
    """A link or a FIFO named INV-3.send-anyway beside a waiting invoice releases nothing
    (never followed or opened), and the status page says so, with the fix: it showed
    nothing for it and went on telling the clerk to drop a file of the very name that
    was there. A regular file there is about to release it: nothing to say."""
    release_path = tmp_path / "INV-3.send-anyway"
    if kind == "symbolic link":
        os.symlink("/etc/passwd", release_path)
    elif kind == "FIFO":
        os.mkfifo(release_path)
    else:
        release_path.write_bytes(b"")
    idle = idle_releases([release_path.name], SHARE, ["INV-3.xml"], {"INV-3.xml": "waiting"},
                         tmp_path)
    if kind == "file":
        assert idle == []
        return
    [one] = idle
    assert one.name == "INV-3.send-anyway"
    assert one.why == (f"it is a {kind}, not a file: outboxd never follows or opens one, so "
                       "it releases nothing — put an ordinary file of that name there (an "
                       "empty one will do)")


def test_suffixed_names_gathers_release_files_and_markers_in_one_listing(
        tmp_path: Path) -> None:
    """One listing gives both kinds of name, each sorted (the page and `outboxd status`
    list them in a stable order, whatever order the directory lists them in), markers
    only under completion = "marker"; hidden files and the bare suffixes are neither."""
    markers = [f"M-{i:02}.ready" for i in range(40)]
    for name in ("b.send-anyway", "a.send-anyway", ".h.send-anyway", ".send-anyway",
                 ".ready", "A-1.xml", *markers):
        (tmp_path / name).write_bytes(b"")
    marker = idlefiles.suffixed_names(OutboxConfig(path=tmp_path, completion="marker"), SHARE)
    assert marker.releases == ["a.send-anyway", "b.send-anyway"]
    assert marker.markers == markers
    settle = idlefiles.suffixed_names(OutboxConfig(path=tmp_path), SHARE)
    assert settle.releases == ["a.send-anyway", "b.send-anyway"] and settle.markers == []


def test_a_marker_where_no_marker_is_used_is_told_it_does_nothing(tmp_path: Path) -> None:
    """Under completion = "settle" the page says of a NAME.ready left alone that outboxd
    waits for no markers here and that it stays when its bundle goes; under "marker" the
    same name is a marker's near miss or nothing, and an invoice file refused (a link
    named INV-7.ready under invoice_patterns = ["*"]) keeps its own why."""
    not_invoice = "not an invoice file"
    settle = OutboxConfig(path=tmp_path)
    said = leftwords.left_words({"INV-1.ready": not_invoice, "a.txt": not_invoice}, settle,
                                SHARE, ["INV-1.xml"], {})
    assert "does not wait for markers" in said["INV-1.ready"]
    assert 'completion = "settle"' in said["INV-1.ready"]
    assert said["a.txt"] == not_invoice
    marker = OutboxConfig(path=tmp_path, completion="marker")
    assert leftwords.left_words({"ORPHAN.ready": not_invoice}, marker, SHARE, ["INV-1.xml"],
                                {}) == {"ORPHAN.ready": not_invoice}
    star = OutboxConfig(path=tmp_path, invoice_patterns=["*"])
    assert leftwords.left_words({"INV-7.ready": "is a symbolic link"}, star, SHARE, [],
                                {}) == {"INV-7.ready": "is a symbolic link"}


def test_an_errors_file_beside_no_invoice_file_is_told_it_explains_nothing(
        tmp_path: Path) -> None:
    """suffixed_names gathers NAME.errors.txt files (not a folder of that name);
    stray_errors_files keeps those beside no invoice file NAME.*, in any of its
    extensions, by their names on disk (the page and `status` show them escaped)."""
    for name in ("INV-1.xml", "INV-1.errors.txt", "NOTES.errors.txt", "B\x1b.errors.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "DIR.errors.txt").mkdir()
    names = idlefiles.suffixed_names(OutboxConfig(path=tmp_path), SHARE).errors
    assert names == ["B\x1b.errors.txt", "INV-1.errors.txt", "NOTES.errors.txt"]
    stray = idlefiles.stray_errors_files(names, ["INV-1.pdf"])
    assert list(stray) == ["B\x1b.errors.txt", "NOTES.errors.txt"]
    assert all("no invoice file of that name" in why for why in stray.values())


def test_an_invoice_files_name_with_a_space_or_dot_at_an_end_is_told_the_name_it_needs(
        tmp_path: Path) -> None:
    """`INV-7.xml ` and `INV-8.pdf.` are no invoice files only for the space or dot a clerk
    does not see: told so and the name to give them (or, where that name is taken, that
    this one may be a copy); `notes.txt ` is no invoice file either way."""
    (tmp_path / "INV-9.xml").write_bytes(b"")
    other = "not an invoice file"
    said = leftwords.left_words(
        dict.fromkeys(["INV-7.xml ", "INV-8.pdf.", "INV-9.xml\u00a0", "notes.txt "], other),
        OutboxConfig(path=tmp_path), SHARE, ["INV-9.xml"], {})
    assert said["INV-7.xml "] == ('its name "INV-7.xml " has a space at the end, so it is no '
                                  "invoice file and is never sent — rename it to INV-7.xml")
    assert "a dot at the end" in said["INV-8.pdf."] and said["INV-8.pdf."].endswith(
        "rename it to INV-8.pdf")
    assert "INV-9.xml is there already" in said["INV-9.xml\u00a0"]
    assert said["notes.txt "] == other


def test_the_copy_of_an_edited_errors_file_is_told_as_the_clerks_notes(
        tmp_path: Path) -> None:
    """Notes typed into INV-1.errors.txt are kept as INV-1.errors.txt.edited (-2, -3 …
    where that name is taken) once the bundle passes; the page listed the copy as "not an
    invoice file … an attachment goes into the folder of its invoice file", which says
    nothing of the notes in it nor what to do. It names the errors file the notes were
    typed into and says to keep them elsewhere and delete the copy; a name that only
    looks alike keeps its own why."""
    other = "not an invoice file"
    names = ["INV-1.errors.txt.edited", "INV-1.errors.txt.edited-2", "notes.edited",
             "INV-1.errors.txt.edited.bak"]
    said = leftwords.left_words(dict.fromkeys(names, other), OutboxConfig(path=tmp_path),
                                SHARE, [], {})
    for copy in names[:2]:
        assert said[copy].startswith("your notes: outboxd kept INV-1.errors.txt under this "
                                     "name")
        assert said[copy].endswith("then delete this one")
    assert said["notes.edited"] == other and said["INV-1.errors.txt.edited.bak"] == other


def test_a_file_in_the_sidecars_place_is_told_it_must_be_a_folder_or_left_to_held(
        tmp_path: Path) -> None:
    """A file or link named as an invoice file's sidecar is told, while its bundle is not
    held yet, that the sidecar must be a real folder, not "an attachment goes into the
    folder of its invoice file"; once the bundle is held its errors say it, and the files
    left alone do not list it again."""
    (tmp_path / "INV-1").write_bytes(b"x")
    (tmp_path / "INV-2").symlink_to(tmp_path)
    other = "not an invoice file … an attachment goes into the folder of its invoice file"
    refused = {"INV-1": other, "INV-2": other, "notes.txt": other}
    outbox = OutboxConfig(path=tmp_path)
    settling = leftwords.left_words(refused, outbox, SHARE, ["INV-1.xml", "INV-2.xml"], {})
    assert settling["INV-1"].startswith("named as the folder of attachments of INV-1.xml, "
                                        "but it is a file, not a folder")
    assert "it is a symbolic link, not a folder" in settling["INV-2"]
    assert "make a real folder INV-2 holding the attachments" in settling["INV-2"]
    assert settling["notes.txt"] == other
    held = leftwords.left_words(refused, outbox, SHARE, ["INV-1.xml", "INV-2.xml"],
                                {"INV-1.xml": "held", "INV-2.xml": "settling"})
    assert "INV-1" not in held and held["INV-2"] == settling["INV-2"]


def test_a_file_named_like_a_quarantined_invoice_file_is_told_where_that_went(
        tmp_path: Path) -> None:
    """INV-7.tif beside the quarantined INV-7.xml is told the quarantine folder and to move
    it into the folder of attachments there (named with the sidecar suffix) or out of the
    outbox — not "an attachment goes into the folder of its invoice file", which is
    gone. Where that does not hold it keeps its why: INV-8.xml quarantined but back in the
    outbox (its bundle's to tell), two quarantined invoice files of its stem (which one?),
    a file named as an invoice file (refused for its own reason)."""
    other = "not an invoice file … an attachment goes into the folder of its invoice file"
    names = ["INV-7.tif", "INV-8.tif", "INV-9.tif", "INV-7.xml", "notes.txt"]
    quarantined = {"INV-7.xml": "quarantine/2026-12-04/INV-7--aaaaaaaaaaaa",
                   "INV-8.xml": "quarantine/2026-12-04/INV-8--bbbbbbbbbbbb",
                   "INV-9.xml": "quarantine/2026-12-04/INV-9--cccccccccccc",
                   "INV-9.pdf": "quarantine/2026-12-04/INV-9--dddddddddddd"}
    outbox = OutboxConfig(path=tmp_path, sidecar_suffix="_att")
    said = leftwords.left_words(dict.fromkeys(names, other), outbox, SHARE, ["INV-8.xml"], {},
                                quarantined)
    assert said["INV-7.tif"] == (
        "not an invoice file (only names like *.xml, *.pdf are read as invoice files), so "
        "it is never sent — INV-7.xml, the invoice file named like it, was quarantined (in "
        "quarantine/2026-12-04/INV-7--aaaaaaaaaaaa): if this file is one of its attachments, "
        "move it into its folder of attachments INV-7_att there (make that folder if there "
        "is none) before INV-7.xml goes back into the outbox; anything else, move it out of "
        "the outbox")
    assert {n: said[n] for n in names[1:]} == dict.fromkeys(names[1:], other)
