"""`outboxd retry`: a quarantined bundle back into the outbox, in its layout, never replacing."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import OUTBOXD, Env
from helpers import looks_fail, pdf_bytes, ubl_invoice, wait_for, without_blocking, write

from daemon.archiving.archive_papers import reason_papers, write_papers
from daemon.cli import main

BID = "3f2a9c01b7e4" + "0" * 52
AT = "2026-11-26T10:00:00Z"


def quarantined(env: Env, name: str = "INV-1001", *, root: Path | None = None,
                marker: bool = True) -> Path:
    """A quarantine folder as the daemon writes it, in env's quarantine or under `root`:
    bundle + marker (unless `marker` is False) + papers."""
    folder = (root or env.quarantine) / "2026-11-26" / f"{name}--{BID[:12]}"
    write(folder / f"{name}.xml", ubl_invoice(name))
    write(folder / name / "scan.pdf", pdf_bytes())
    if marker:
        write(folder / f"{name}.ready", b"")
    write_papers(folder, reason_papers({"bundle_id": BID, "invoice_file": f"{name}.xml",
                                        "reasons": [], "quarantined_at": AT}))
    return folder


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(Path(d, n).relative_to(root)): (Path(d, n).lstat().st_size,
                                                 Path(d, n).lstat().st_mtime_ns)
            for d, ds, fs in os.walk(root) for n in ds + fs}


@pytest.fixture(autouse=True)
def _rules_off(env: Env) -> None:
    """retry's reader loads the e-invoice rules where pre-flight is on (~0.8 s of CPU a
    command that reads) and no test here is about them; and the daemon's own reading a
    test checks its result with (finish.evaluate, in this process) loaded them here, whose
    native thread made every later command of the run spawn its reader instead of forking
    it (reader_child.may_fork)."""
    env.extra.setdefault("einvoice", {})["preflight"] = "off"


@pytest.mark.parametrize("ref", ["prefix", "name", "path"])
def test_retry_moves_bundle_back_without_papers_and_removes_the_folder(cfg: Env, capsys,
                                                                       ref: str) -> None:
    folder = quarantined(cfg)
    arg = {"prefix": BID[:12], "name": folder.name, "path": str(folder)}[ref]
    assert main(["retry", "-c", str(cfg.config), arg]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert (cfg.outbox / "INV-1001" / "scan.pdf").read_bytes() == pdf_bytes()
    assert not folder.exists()
    assert "back in the outbox" in capsys.readouterr().out
    assert not cfg.state.exists()  # no journal to record in: none is created


def test_a_paper_half_written_by_a_killed_daemon_is_not_put_into_the_outbox(
        cfg: Env) -> None:
    """An entry archived with the temp file of a reason paper whose write a kill cut
    short: retry puts the bundle back without it, and the folder goes."""
    folder = quarantined(cfg)
    write(folder / ".reason.json.tmp-0123456789ab", b'{"half')
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert not folder.exists()


def test_a_name_the_share_fails_to_look_at_is_not_taken_for_free(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox holds INV-1001/ again, and the look at it fails (the share's EIO):
    retry stops with the share's error before anything moves. Taken for a free name, the
    plan went on to the moves, into a name that holds a clerk's files."""
    folder = quarantined(cfg)
    write(cfg.outbox / "INV-1001" / "other.pdf", b"%PDF-new")
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    with pytest.MonkeyPatch.context() as m:
        looks_fail(m, cfg.outbox / "INV-1001")
        assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "Input/output error" in err and err.count("outboxd:") == 1
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o
    assert folder.exists()


def test_retry_refuses_when_a_name_is_taken_and_changes_nothing(cfg: Env, capsys) -> None:
    folder = quarantined(cfg)
    write(cfg.outbox / "INV-1001" / "other.pdf", b"%PDF-new")
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "already holds INV-1001" in err and "nothing was moved" in err
    assert err.count("outboxd:") == 1
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o
    assert folder.exists()


@pytest.mark.parametrize(("ref", "code", "said"), [
    ("x" * 300, 1, "no quarantined bundle 'xxx"),
    ("{here}/" + "x" * 300, 2, " is not a quarantine folder"),
    ("{here}/" + "x" * 300 + "/INV-1--0123456789ab", 2, " is not a quarantine folder")])
def test_retry_of_a_name_longer_than_linux_allows_is_told_as_any_name_not_found(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ref: str,
        code: int, said: str) -> None:
    """A name over 255 bytes, bare or in a path: on Python 3.11 Path.is_dir() raises for
    it (ENAMETOOLONG), and retry ended with exit 1 "File name too long … check that the
    disk has space". Now it is told as any name or path that names no quarantined bundle
    (found by bench/configfuzz.py)."""
    monkeypatch.chdir(tmp_path)
    assert main(["retry", "-c", str(cfg.config), ref.format(here=tmp_path)]) == code
    err = capsys.readouterr().err
    assert said in err and "File name too long" not in err and "disk" not in err


def test_retry_of_several_cuts_an_argument_of_100_000_characters_in_its_line(
        cfg: Env, capsys) -> None:
    """Among several arguments, each refusal is its own line: one of 100,000 characters
    was quoted whole there (found by bench/configfuzz.py); it is cut as a lone one is."""
    assert main(["retry", "-c", str(cfg.config), "aaaaaaaaaaaa", "x" * 100_000]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert max(len(line) for line in lines) < 1_000
    assert any("no quarantined bundle 'xxx" in line and "… (100,002 characters)" in line
               for line in lines)


def test_retry_of_an_unknown_id_exits_1_naming_it(cfg: Env, capsys) -> None:
    """An id in no quarantine folder (one already retried, say): exit 1, naming it and
    what to give instead; the id is what follows '--' in the folder's name, not an
    argument to put after a '--' on the command line."""
    assert main(["retry", "-c", str(cfg.config), "aaaaaaaaaaaa"]) == 1
    err = capsys.readouterr().err
    assert "no quarantined bundle 'aaaaaaaaaaaa'" in err
    assert "moved back into the outbox is no longer there" in err
    assert "the 12-character id that follows '--' in that name" in err


def test_retry_of_an_invoice_id_of_a_quarantined_batch_names_the_bundle_and_moves_nothing(
        cfg: Env, capsys) -> None:
    """`outboxd retry B-0023`, the invoice a helpdesk was asked about, which came in the
    file batch-7 of three invoices: "no quarantined bundle 'B-0023'" sent them looking
    for a bundle that is there. retry names the quarantined bundle that holds it, the
    invoices that would go back with it, and the command that retries it; it moves
    nothing, since the other invoices were not named."""
    folder = cfg.quarantine / "2026-11-26" / f"batch-7--{BID[:12]}"
    write(folder / "batch-7.xml", ubl_invoice("B-0022"))
    write_papers(folder, reason_papers({
        "bundle_id": BID, "invoice_file": "batch-7.xml", "reasons": [],
        "quarantined_at": AT, "invoice_ids": ["B-0022", "B-0023", "B-0024"]}))
    before = tree(cfg.quarantine)
    assert main(["retry", "-c", str(cfg.config), "B-0023"]) == 1
    err = capsys.readouterr().err
    assert "the invoice 'B-0023' is in the quarantined bundle " \
        f"2026-11-26/batch-7--{BID[:12]}, with B-0022, B-0024 " \
        f"(to retry it: outboxd retry {BID[:12]})" in err
    assert "goes back whole" in err and "nothing was moved" in err
    assert tree(cfg.quarantine) == before and list(cfg.outbox.iterdir()) == []


def test_a_bare_name_of_a_folder_here_and_of_a_quarantined_bundle_is_refused_naming_both(
        cfg: Env, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin stands in another outbox's quarantine day folder (or beside a copy taken
    to look at) and types the folder's name, which this quarantine holds too: retry said
    "is not in the quarantine folder" (exit 2) of the folder here, sending them away from
    the bundle. It refuses (exit 1, nothing moved), names both, and gives the quarantined
    one's path, which moves it back."""
    folder = quarantined(cfg)
    here = quarantined(cfg, root=tmp_path / "other-quarantine").parent
    monkeypatch.chdir(here)
    before = tree(cfg.quarantine)
    assert main(["retry", "-c", str(cfg.config), folder.name]) == 1
    err = capsys.readouterr().err
    assert f"is a folder here ({here / folder.name})" in err
    assert f"the quarantined bundle 2026-11-26/{folder.name}" in err
    assert "nothing was moved" in err
    assert tree(cfg.quarantine) == before and list(cfg.outbox.iterdir()) == []
    offered = err.split("give the path of the one to move back (", 1)[1].split(")")[0]
    assert offered == f"outboxd retry {folder}"
    assert main(["retry", "-c", str(cfg.config), str(folder)]) == 0
    assert not folder.exists() and (here / folder.name).is_dir()


@pytest.mark.parametrize("given", ["root", "day", "invoice file"])
def test_a_path_in_quarantine_that_is_no_bundles_folder_says_what_to_give(
        cfg: Env, capsys, given: str) -> None:
    """quarantine/ itself, a day folder of it, or the invoice file in a bundle's folder
    were each told "is not in the quarantine folder" or "is not a quarantine folder" with
    no way on. Each now says what it is and what to give instead (exit 2, nothing moved)."""
    folder = quarantined(cfg)
    arg = {"root": cfg.quarantine, "day": folder.parent,
           "invoice file": folder / "INV-1001.xml"}[given]
    assert main(["retry", "-c", str(cfg.config), str(arg)]) == 2
    err = capsys.readouterr().err
    assert "is not in the quarantine folder" not in err
    assert {"root": "is the quarantine folder itself, not a bundle's folder — give the folder",
            "day": f"is a day folder of the quarantine folder, not a bundle's folder — give "
                   f"the folders in it of the bundles to move back (ls {folder.parent})",
            "invoice file": f"is not a quarantine folder, but is in one — give that folder: "
                            f"outboxd retry {folder}"}[given] in err
    assert list(cfg.outbox.iterdir()) == [] and folder.exists()


@pytest.mark.parametrize("into", [True, False], ids=["into-quarantine", "out-of-quarantine"])
def test_a_link_given_as_the_folder_is_never_followed(cfg: Env, capsys, into: bool) -> None:
    """retry never follows a link it is given as the folder (quarantine/ is writable from
    the share: a link there, named as one bundle's folder, may lead to another's): a link
    to a quarantined bundle's folder is refused (exit 2, nothing moved) with the folder
    itself to give; a link to a bundle's folder outside quarantine is refused too, and
    what it leads to is left as it was."""
    folder = quarantined(cfg, root=None if into else cfg.root / "elsewhere")
    link = cfg.root / "link"
    link.symlink_to(folder)
    before = tree(folder)
    assert main(["retry", "-c", str(cfg.config), str(link)]) == 2
    err = capsys.readouterr().err
    assert f"retry: {link} is not a quarantine folder: it is a symbolic link, and retry " \
        "follows none" in err
    assert (f"— give the folder it leads to: outboxd retry {folder}" in err) == into
    assert list(cfg.outbox.iterdir()) == [] and tree(folder) == before


def test_ambiguous_prefix_is_refused_listing_the_folders(cfg: Env, capsys) -> None:
    quarantined(cfg, "A")
    quarantined(cfg, "B")
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "A--" in err and "B--" in err
    assert len(list(cfg.outbox.iterdir())) == 0


def test_retry_from_another_file_system_copies_then_deletes(env: Env, capsys,
                                                            other_file_system: Path) -> None:
    """Quarantine on tmpfs, outbox on disk: the bundle arrives whole, the source goes away."""
    other = other_file_system
    env.write_config("http://127.0.0.1:9/bundles", paths={"quarantine": str(other)})
    folder = quarantined(env, "INV-1", root=other, marker=False)
    assert main(["retry", "-c", str(env.config), BID[:12]]) == 0
    assert (env.outbox / "INV-1" / "scan.pdf").read_bytes() == pdf_bytes()
    assert (env.outbox / "INV-1.xml").read_bytes() == ubl_invoice("INV-1")
    assert sorted(p.name for p in env.outbox.iterdir()) == ["INV-1", "INV-1.xml"]
    assert not folder.exists()


def test_a_file_saved_into_the_bundle_while_retry_copies_it_is_kept_and_named(
        env: Env, capsys, other_file_system: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quarantine on another file system: a clerk saves a corrected attachment into the
    quarantined sidecar while retry copies it into the outbox. That file is not in the
    copy; it is never deleted with the source: it stays in quarantine, and retry names
    it (the folder is left)."""
    from daemon.fs import fsmove
    other = other_file_system
    env.write_config("http://127.0.0.1:9/bundles", paths={"quarantine": str(other)})
    folder = quarantined(env, "INV-1", root=other, marker=False)
    late = folder / "INV-1" / "corrected.pdf"
    rename = fsmove.rename_noreplace

    def saved_meanwhile(src: Path, dst: Path) -> None:
        if Path(dst) == env.outbox / "INV-1" and Path(src).name.endswith(".partial"):
            late.write_bytes(b"%PDF-1.4 corrected")
        rename(src, dst)

    monkeypatch.setattr(fsmove, "rename_noreplace", saved_meanwhile)
    assert main(["retry", "-c", str(env.config), BID[:12]]) == 0
    assert late.read_bytes() == b"%PDF-1.4 corrected"
    assert sorted(p.name for p in (env.outbox / "INV-1").iterdir()) == ["scan.pdf"]
    err = capsys.readouterr().err
    assert "INV-1/corrected.pdf" in err and "kept there" in err


def test_a_fifo_named_reason_json_is_never_opened_and_the_bundle_still_goes_back(
        cfg: Env, capsys) -> None:
    """quarantine/ is writable by the share's people: a FIFO planted as reason.json is
    not opened (that blocks for good). retry says so on stderr, tells the invoice file by
    its name and puts the bundle back; the FIFO is not outboxd's paper, so it is left (and
    the folder with it) with a note naming it, and so is REASON.txt, which without
    reason.json cannot be told from a clerk's notes."""
    folder = quarantined(cfg)
    (folder / "reason.json").unlink()
    os.mkfifo(folder / "reason.json")
    assert without_blocking(lambda: main(["retry", "-c", str(cfg.config), BID[:12]]),
                            folder / "reason.json", "retry") == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert sorted(os.listdir(folder)) == ["REASON.txt", "reason.json"]
    assert stat.S_ISFIFO(os.lstat(folder / "reason.json").st_mode)
    err = capsys.readouterr().err
    assert "reason.json" in err and "is a FIFO" in err and "told by its name" in err
    assert "left in place" in err and "reason.json is a FIFO, not outboxd's paper" in err


def test_reason_json_naming_a_file_outside_its_folder_moves_nothing_from_there(
        cfg: Env) -> None:
    """A reason.json edited to name ../OTHER/FILE: retry only ever moves the folder's own
    entries (the invoice file told by its name), never a file of another folder."""
    folder = quarantined(cfg, "INV-1")
    other = write(cfg.quarantine / "2026-11-26" / "INV-2--bbbbbbbbbbbb" / "INV-2.xml",
                  ubl_invoice("INV-2"))
    write(folder / "reason.json", json.dumps({
        "bundle_id": BID, "invoice_file": "../INV-2--bbbbbbbbbbbb/INV-2.xml"}).encode())
    assert main(["retry", "-c", str(cfg.config), str(folder)]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1", "INV-1.ready",
                                                           "INV-1.xml"]
    assert other.read_bytes() == ubl_invoice("INV-2")
    assert not (cfg.root / "INV-2--bbbbbbbbbbbb").exists()


def test_a_folder_named_reason_json_is_left_and_the_bundle_still_goes_back(
        cfg: Env, capsys) -> None:
    """A share user's folder named reason.json (with a file in it) in a quarantine entry:
    the bundle goes back and the command succeeds; that folder is not outboxd's paper,
    so it is left in place with a note naming it, not removed and no traceback."""
    folder = quarantined(cfg)
    (folder / "reason.json").unlink()
    write(folder / "reason.json" / "mine.txt", b"notes")
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert (folder / "reason.json" / "mine.txt").read_bytes() == b"notes"
    err = capsys.readouterr().err
    assert "left in place" in err and "reason.json" in err and "Traceback" not in err


def spelling_quarantined(env: Env, look_alike: str, name: str = "INV-7") -> Path:
    """A quarantine folder as the daemon writes it for `sidecar-spelling`: the invoice file
    and the papers, the look-alike `look_alike` of its sidecar left in the outbox."""
    folder = env.quarantine / "2026-11-26" / f"{name}--{BID[:12]}"
    write(folder / f"{name}.xml", ubl_invoice(name))
    write_papers(folder, reason_papers({
        "bundle_id": BID, "invoice_file": f"{name}.xml", "quarantined_at": AT,
        "reasons": [{"code": "sidecar-spelling", "file": look_alike,
                     "message": f"this folder looks like the sidecar {name}"}]}))
    write(env.outbox / look_alike / "timesheet.pdf", pdf_bytes())
    return folder


def test_retry_refuses_while_the_look_alike_still_stands_and_changes_nothing(
        cfg: Env, capsys) -> None:
    """INV-7.xml quarantined for inv-7/ (made on Windows), which is still in the outbox
    under that name: moved back, the invoice would be quarantined again at once. retry
    refuses with exit 1 (as its other refusals), naming the folder, the rule and the fix,
    and moves nothing."""
    folder = spelling_quarantined(cfg, "inv-7")
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"outboxd: {folder.name}: nothing was moved — the outbox still "
                          "holds a look-alike of the sidecar of INV-7.xml")
    assert "  inv-7: this folder looks like the sidecar INV-7 of INV-7.xml, but the two " \
        "names differ only in upper and lower case" in err
    assert "rename it to INV-7," in err and "[sidecar-spelling]" in err
    assert "Traceback" not in err
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o


def test_retry_refuses_while_a_copy_of_the_sidecar_still_stands(cfg: Env, capsys) -> None:
    """INV-7.xml quarantined for `INV-7 - Copy/` (a clerk's Explorer copy), still in the
    outbox: moved back, the invoice would be quarantined again at once, so retry refuses,
    naming the copy and its fix, and moves nothing."""
    spelling_quarantined(cfg, "INV-7 - Copy")
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "  INV-7 - Copy: this folder looks like a copy of the sidecar INV-7 of " \
        "INV-7.xml" in err and "[sidecar-spelling]" in err
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o


def test_retry_works_once_the_copy_is_another_invoice_files_sidecar(cfg: Env, capsys
                                                                   ) -> None:
    """INV-7.xml quarantined for `INV-7 2/` (a Mac's copy of INV-7/); the ERP has since put
    `INV-7 2.pdf` beside that folder, whose exact sidecar it is: it is no copy now, of
    whatever extension the file is, so retry puts INV-7.xml back."""
    folder = spelling_quarantined(cfg, "INV-7 2")
    write(cfg.outbox / "INV-7 2.pdf", pdf_bytes())
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert "back in the outbox: INV-7.xml" in capsys.readouterr().out
    assert not folder.exists() and (cfg.outbox / "INV-7.xml").exists()


@pytest.mark.parametrize("mend", ["renamed", "removed"])
def test_retry_works_once_the_look_alike_is_renamed_or_removed(cfg: Env, capsys,
                                                               mend: str) -> None:
    """The clerk renamed inv-7/ to INV-7/ in the outbox (or removed it): retry puts the
    invoice file back beside it as before."""
    folder = spelling_quarantined(cfg, "inv-7")
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    if mend == "renamed":
        (cfg.outbox / "inv-7").rename(cfg.outbox / "INV-7")
    else:
        (cfg.outbox / "inv-7" / "timesheet.pdf").unlink()
        (cfg.outbox / "inv-7").rmdir()
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert "back in the outbox: INV-7.xml" in capsys.readouterr().out
    assert sorted(p.name for p in cfg.outbox.iterdir()) == (
        ["INV-7", "INV-7.xml"] if mend == "renamed" else ["INV-7.xml"])
    assert not folder.exists()


def test_retry_refuses_for_a_look_alike_in_other_unicode_form(cfg: Env, capsys) -> None:
    """Räkning-7/ made on a Mac (accents decomposed) beside the ERP's Räkning-7.xml: the
    same refusal, with the fix for accents (typing the name again)."""
    nfc, nfd = (unicodedata.normalize(f, "Räkning-7") for f in ("NFC", "NFD"))
    spelling_quarantined(cfg, nfd, nfc)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert f"  {nfd}: this folder looks like the sidecar {nfc} of {nfc}.xml, but the two " \
        "names are spelled with different Unicode characters" in err
    assert "rename it by typing its name again" in err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == [nfd]


@pytest.mark.parametrize("look_alike", ["INV-7 ", "INV-7.", " INV-7", "INV-7.XML"])
def test_retry_refuses_for_a_look_alike_with_a_space_dot_or_extension(
        cfg: Env, capsys, look_alike: str) -> None:
    """INV-7 with a space or dot at an end, or named with the invoice's extension, is a
    look-alike to the daemon as much as inv-7/ is: moved back beside it, INV-7.xml would
    be held or quarantined again at once, so retry refuses and moves nothing."""
    spelling_quarantined(cfg, look_alike)
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "nothing was moved — the outbox still holds a look-alike of the sidecar of " \
        "INV-7.xml" in err
    assert f"  {look_alike}: this folder" in err and "[sidecar-spelling]" in err
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o


def test_a_refused_look_alike_keeps_every_other_bundle_of_the_command_in_quarantine(
        cfg: Env, capsys) -> None:
    """retry of two bundles, one of which still has its look-alike in the outbox: all
    refusals come before any move, so neither goes back."""
    spelling_quarantined(cfg, "inv-7")
    other = quarantined(cfg, "INV-1001")
    other = other.rename(other.with_name("INV-1001--bbbbbbbbbbbb"))
    assert main(["retry", "-c", str(cfg.config), BID[:12], "bbbbbbbbbbbb"]) == 1
    assert "inv-7: this folder looks like" in capsys.readouterr().err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["inv-7"]
    assert other.exists()


def test_several_bundles_with_refusals_name_each_refusal_and_the_bundles_kept_back(
        cfg: Env, capsys) -> None:
    """retry of several bundles, some refused: every refusal is told (not the first
    alone), and the bundles that could have gone back are named as still in quarantine,
    with the command that moves them alone; nothing moves; exit 1."""
    taken = quarantined(cfg, "INV-1001")
    write(cfg.outbox / "INV-1001.xml", b"a new invoice of that name")
    good = quarantined(cfg, "INV-2002")
    good = good.rename(good.with_name("INV-2002--bbbbbbbbbbbb"))
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    assert main(["retry", "-c", str(cfg.config), BID[:12], "bbbbbbbbbbbb",
                 "aaaaaaaaaaaa"]) == 1
    err = capsys.readouterr().err
    assert f"{taken.name}: the outbox already holds INV-1001.xml" in err  # which bundle
    assert "no quarantined bundle 'aaaaaaaaaaaa'" in err
    assert "2 of 3 argument(s) refused, so nothing was moved" in err
    assert "stay in quarantine too" in err
    assert "outboxd retry -- INV-2002--bbbbbbbbbbbb" in err
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o
    assert taken.exists() and good.exists()


def test_several_bundles_with_a_path_outside_quarantine_exit_2_naming_it(
        cfg: Env, capsys, tmp_path: Path) -> None:
    """A path that is no quarantine folder among good ids is the command line's error
    (exit 2, as alone), and the good bundle is named as kept back."""
    quarantined(cfg)
    assert main(["retry", "-c", str(cfg.config), BID[:12], str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not in the quarantine folder" in err
    assert f"outboxd retry -- INV-1001--{BID[:12]}" in err
    assert list(cfg.outbox.iterdir()) == []


@pytest.mark.parametrize("good", [False, True])
def test_a_path_that_is_no_bundles_folder_exits_2_alone_or_with_others_and_an_unwritable_journal(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch, good: bool) -> None:
    """One argument and several took two code paths, which disagreed: a day folder given
    alone was refused with exit 2, naming it; given with a good id while this user may
    not write the journal, only the journal was named, exit 1. Now one path: the day
    folder is named and the exit is 2 either way, the journal's refusal told beside it
    where a bundle could otherwise go back; nothing moves."""
    folder = quarantined(cfg)
    journal_with_quarantined_row(cfg, folder)
    journal = cfg.state / "journal.sqlite3"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) in (
        journal, journal.parent) and mode & os.W_OK else real_access(path, mode, **kw))
    day = str(folder.parent)
    args = [day, BID[:12]] if good else [day]
    assert main(["retry", "-c", str(cfg.config), *args]) == 2
    err = capsys.readouterr().err
    assert f"{day} is a day folder of the quarantine folder" in err
    assert ("this user may not write the journal" in err) == good
    assert list(cfg.outbox.iterdir()) == [] and (folder / "INV-1001.xml").exists()


def test_the_sidecar_of_another_invoice_file_is_no_look_alike_for_retry(cfg: Env) -> None:
    """inv-7/ beside inv-7.xml is that file's sidecar, not a look-alike of INV-7's (two
    bundles on Linux, as the daemon has them): retry puts INV-7.xml back."""
    spelling_quarantined(cfg, "inv-7")
    write(cfg.outbox / "inv-7.xml", ubl_invoice("inv-7"))
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-7.xml", "inv-7",
                                                           "inv-7.xml"]


def journal_with_quarantined_row(env: Env, folder: Path) -> int:
    """A journal whose row of the bundle in `folder` is quarantined, as the daemon left it."""
    from daemon.journal import Journal
    env.state.mkdir(exist_ok=True)
    journal = Journal(env.state / "journal.sqlite3")
    try:
        return journal.create("INV-1001.xml", "quarantined", archive_dir=str(folder))
    finally:
        journal.close()


def test_a_journal_write_that_fails_moves_nothing_and_the_bundle_stays_quarantined(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """retry records the retry in the journal before it moves anything. A journal it
    may write but whose write fails (here locked by another writer for longer than
    SQLite waits; a full disk alike): exit 1, nothing moved, the row still quarantined
    with its folder. Moved first, the bundle was back in the outbox while its row stayed
    quarantined with no folder behind it, and `status` listed it twice."""
    import sqlite3

    import daemon.journal
    # How long SQLite waits for the lock is not what this shows (test_journal.py does).
    monkeypatch.setattr(daemon.journal, "BUSY_SECONDS", 0.2)
    folder = quarantined(cfg)
    row_id = journal_with_quarantined_row(cfg, folder)
    before_q = tree(cfg.quarantine)
    holder = sqlite3.connect(cfg.state / "journal.sqlite3", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        code = main(["retry", "-c", str(cfg.config), BID[:12]])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "nothing was moved" in err and "journal" in err
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before_q
    db = sqlite3.connect(cfg.state / "journal.sqlite3")
    try:
        assert db.execute("SELECT state, archive_dir FROM bundles WHERE id = ?",
                          (row_id,)).fetchone() == ("quarantined", str(folder))
    finally:
        db.close()


def test_a_journal_another_process_holds_is_refused_within_one_wait_naming_the_lock(
        cfg: Env) -> None:
    """`outboxd retry` of two bundles while another program holds the journal locked (a
    sqlite3 shell in exclusive mode, a backup): each look at the journal waited 5 s
    (two per bundle), then the write failed as "check free space and permissions" after
    some 25 s. Now, as a process: exit 1 within the one wait, no traceback, one line
    naming the lock, the wait and the fix; nothing moved."""
    import sqlite3
    import subprocess
    import time

    from helpers import outboxd_with
    # The daemon's wait (5 s, test_a_locked_journal_is_waited_for_as_docs_commands_md_says)
    # set to 2 s: one wait against the five it was is what this shows (2 s and a
    # process's start against 10 s and more), not the length of a wait.
    busy_seconds = 2
    first = quarantined(cfg)
    second = quarantined(cfg, "INV-1002")
    journal_with_quarantined_row(cfg, first)
    before_q = tree(cfg.quarantine)
    holder = sqlite3.connect(cfg.state / "journal.sqlite3", isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE bundles SET attempts = attempts")
        started = time.monotonic()
        done = subprocess.run([*outboxd_with({"daemon.journal.BUSY_SECONDS": busy_seconds}),
                               "retry", "-c", str(cfg.config), str(first), str(second)],
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "nothing was moved" in done.stderr
    assert f"locked by another process (waited {busy_seconds} s for it)" in done.stderr
    assert "let it end, then try again" in done.stderr
    # One wait and the start of a process (some 1-2 s on a busy test machine), not five.
    assert elapsed < 2 * busy_seconds + 5, elapsed
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before_q


def test_a_locked_journal_is_waited_for_as_docs_commands_md_says() -> None:
    """The wait for a journal another program holds locked is the one docs/commands.md
    names to an admin, in its words and in retry's refusal (the test above runs it
    shorter)."""
    import daemon.journal
    text = (Path(__file__).parents[2] / "docs" / "commands.md").read_text()
    seconds = f"{daemon.journal.BUSY_SECONDS:g} s"
    assert f"a command waits at most **{seconds}** for it, once" in " ".join(text.split())
    assert f"(waited {seconds} for it)" in " ".join(text.split())


def test_a_move_refused_after_the_record_puts_the_row_back_in_quarantine(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry is recorded first; a move then refused (a file of that name dropped into
    the outbox this very moment) moves nothing and puts the row back: quarantined, with
    its folder and since as before, so `status` still lists it where it is."""
    import sqlite3

    from daemon.actions import retry as retry_action
    folder = quarantined(cfg)
    row_id = journal_with_quarantined_row(cfg, folder)
    db = sqlite3.connect(cfg.state / "journal.sqlite3")
    since = db.execute("SELECT since FROM bundles WHERE id = ?", (row_id,)).fetchone()[0]
    moves: list[str] = []

    def refused_at_the_invoice(src: Path, dst: Path) -> list[Path]:
        if src.name == "INV-1001.xml":
            raise FileExistsError(17, "File exists", str(dst))
        moves.append(src.name)
        os.rename(src, dst)
        return []
    monkeypatch.setattr(retry_action, "move_tree", refused_at_the_invoice)
    try:
        assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
        assert "nothing was moved" in capsys.readouterr().err
        assert moves  # the sidecar had gone out, and came back
        assert list(cfg.outbox.iterdir()) == [] and (folder / "INV-1001" / "scan.pdf").exists()
        assert db.execute("SELECT state, archive_dir, since FROM bundles WHERE id = ?",
                          (row_id,)).fetchone() == ("quarantined", str(folder), since)
    finally:
        db.close()


def test_a_move_this_user_may_not_make_says_whom_to_run_retry_as(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who may write the journal but not the quarantine folder or the outbox got
    "cannot move … (Permission denied); nothing was moved" alone, where the refusal for
    the journal says whom to run retry as: it now gives the same fix."""
    from daemon.actions import retry as retry_action
    folder = quarantined(cfg)
    journal_with_quarantined_row(cfg, folder)

    def refused(src: Path, dst: Path) -> list[Path]:
        raise PermissionError(13, "Permission denied", str(src))
    monkeypatch.setattr(retry_action, "move_tree", refused)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "back into the outbox (Permission denied); nothing was moved — run it as the " \
        "daemon's user (sudo -u outboxd outboxd retry …) or as root" in err
    assert list(cfg.outbox.iterdir()) == [] and (folder / "INV-1001.xml").exists()


def test_a_release_file_archived_with_the_bundle_is_no_second_invoice_file_for_retry(
        env: Env, capsys) -> None:
    """A bundle released by INV-1001.send-anyway keeps that file in its folder. With
    reason.json cut short, retry tells the invoice file by its name: under
    invoice_patterns = ["*"] it took the release file for a second invoice file and
    refused ("cannot tell the invoice file"), though the daemon never reads one as an
    invoice. It now moves the bundle back (the cut-short reason.json and a REASON.txt
    that cannot be told from a clerk's notes without it stay, with the folder)."""
    env.write_config("http://127.0.0.1:9/bundles", outbox={"invoice_patterns": ["*"]})
    folder = env.quarantine / "2026-11-26" / f"INV-1001--{BID[:12]}"
    write(folder / "INV-1001.xml", ubl_invoice("INV-1001"))
    write(folder / "INV-1001" / "scan.pdf", pdf_bytes())
    write(folder / "INV-1001.send-anyway", b"")
    write(folder / "reason.json", b'{"bundle_id": "' + BID.encode() + b'", "invoi')
    write(folder / "REASON.txt", b"why")
    assert main(["retry", "-c", str(env.config), str(folder)]) == 0
    assert "cannot tell the invoice file" not in capsys.readouterr().err
    assert sorted(p.name for p in env.outbox.iterdir()) == [
        "INV-1001", "INV-1001.send-anyway", "INV-1001.xml"]
    assert sorted(os.listdir(folder)) == ["REASON.txt", "reason.json"]


@pytest.mark.parametrize("what", ["link", "fifo"])
def test_retry_refuses_a_bundle_holding_a_link_or_fifo_moving_nothing(
        cfg: Env, capsys, what: str) -> None:
    """quarantine/ is writable from the share: a link (or FIFO) put into the sidecar was
    moved back, and the daemon quarantined the bundle again at once (not-a-file). retry
    now refuses (exit 1), naming it and the rule, and moves nothing; a link of a name
    the daemon passes over (desktop litter) does not stop it."""
    folder = quarantined(cfg)
    bad = folder / "INV-1001" / "evil.pdf"
    if what == "link":
        bad.symlink_to("/etc/hostname")
    else:
        os.mkfifo(bad)
    (folder / "INV-1001" / ".DS_Store").symlink_to("/etc/hostname")
    before = tree(folder)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    kind = "symbolic link" if what == "link" else "FIFO"
    assert f"{folder.name}: nothing was moved — moved back now, the bundle would be " \
        "quarantined again at once" in err
    assert f"INV-1001/evil.pdf: is a {kind}, not a regular file" in err
    assert "[not-a-file]" in err and ".DS_Store" not in err and "Traceback" not in err
    assert tree(folder) == before and list(cfg.outbox.iterdir()) == []
    bad.unlink()
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert (cfg.outbox / "INV-1001" / ".DS_Store").is_symlink()


def test_retry_refusing_a_link_under_policy_hold_says_the_bundle_would_be_held(
        env: Env, capsys) -> None:
    """Under [policy] invalid = "hold" a bundle moved back with a link in it is held in
    the outbox, not quarantined: the refusal said "quarantined again at once"."""
    env.write_config("http://127.0.0.1:9/bundles", policy={"invalid": "hold"})
    folder = quarantined(env)
    (folder / "INV-1001" / "evil.pdf").symlink_to("/etc/hostname")
    assert main(["retry", "-c", str(env.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert (f"{folder.name}: nothing was moved — moved back now, the bundle would be held "
            'in the outbox, unsent ([policy] invalid = "hold") at once') in err
    assert "INV-1001/evil.pdf: is a symbolic link" in err and "quarantined" not in err
    assert list(env.outbox.iterdir()) == []


def test_a_full_bundle_id_must_be_the_one_recorded_not_only_its_first_12_characters(
        cfg: Env, capsys) -> None:
    """`retry` with 64 characters compared only the first 12: a full id mistyped after
    them (or another bundle's sharing them) moved this bundle back. Longer than 12, the
    id must be the start of the bundle id reason.json records; the right one still
    works."""
    folder = quarantined(cfg)
    before = tree(folder)
    wrong = BID[:12] + "1" * 52
    assert main(["retry", "-c", str(cfg.config), wrong]) == 1
    assert f"no quarantined bundle '{wrong}'" in capsys.readouterr().err
    assert tree(folder) == before and list(cfg.outbox.iterdir()) == []
    assert main(["retry", "-c", str(cfg.config), BID]) == 0
    assert not folder.exists() and (cfg.outbox / "INV-1001.xml").is_file()


def duplicate_in_quarantine(env: Env) -> tuple[Path, str]:
    """INV-1001 as it was sent (its id in the journal, read from the outbox as the daemon
    reads it), then the same files dropped again and quarantined as a duplicate."""
    from daemon.configuration.config_load import load_settings
    from daemon.delivery.finish import evaluate
    from daemon.journal import Journal
    from daemon.manifest import bundle_id_of
    from daemon.watching.scan import candidate_for

    settings = load_settings(env.config)
    write(env.outbox / "INV-1001" / "scan.pdf", pdf_bytes())
    write(env.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    bid = bundle_id_of(evaluate(candidate_for(settings.outbox, "INV-1001.xml"), settings))
    env.state.mkdir(exist_ok=True)
    j = Journal(env.state / "journal.sqlite3")
    j.create("INV-1001.xml", "sent", bundle_id=bid, invoice_ids=["INV-1001"])
    j.close()
    folder = env.quarantine / "2026-11-27" / f"INV-1001--{bid[:12]}"
    folder.mkdir(parents=True)
    for name in ("INV-1001", "INV-1001.xml"):
        (env.outbox / name).rename(folder / name)
    write_papers(folder, reason_papers({
        "bundle_id": bid, "invoice_file": "INV-1001.xml", "quarantined_at": AT,
        "reasons": [{"code": "duplicate", "file": "INV-1001.xml", "message": "sent before",
                     "invoice_id": None}]}))
    return folder, bid


def test_retry_refuses_a_duplicate_the_daemon_would_quarantine_again_moving_nothing(
        cfg: Env, capsys) -> None:
    """A bundle quarantined as a duplicate of one the journal has as sent, under
    [policy] duplicates = "quarantine": moved back, the daemon quarantined it again at
    once. retry now refuses it (exit 1), moves nothing, leaves the journal as it was, and
    says what to do: change a file (a new bundle) or set the policy."""
    folder, bid = duplicate_in_quarantine(cfg)
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    journal_before = (cfg.state / "journal.sqlite3").read_bytes()
    assert main(["retry", "-c", str(cfg.config), bid[:12]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"outboxd: {folder.name}: nothing was moved — this exact bundle "
                          f"({bid[:12]}) is recorded as sent in the journal")
    assert 'quarantined again at once as a duplicate' in err
    assert f"change a file, a type or a note in {folder}, then retry" in err
    assert 'set [policy] duplicates = "send"' in err
    # Several daemons on one outbox: one left on "quarantine" takes the bundle back first.
    assert "on every host whose outboxd watches this outbox" in err
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o
    assert (cfg.state / "journal.sqlite3").read_bytes() == journal_before


def test_retry_moves_a_duplicate_back_once_a_file_in_it_was_changed(cfg: Env,
                                                                     capsys) -> None:
    """The fix the refusal offers: a file changed in the quarantine folder makes a new
    bundle (another id than reason.json records), which retry moves back as any other."""
    folder, bid = duplicate_in_quarantine(cfg)
    write(folder / "INV-1001" / "scan.pdf", pdf_bytes() + b"\n% timesheet, corrected\n")
    assert main(["retry", "-c", str(cfg.config), bid[:12]]) == 0
    assert "back in the outbox" in capsys.readouterr().out
    assert (cfg.outbox / "INV-1001.xml").is_file() and not folder.exists()


def test_retry_moves_a_duplicate_back_when_the_policy_sends_duplicates(env: Env,
                                                                       capsys) -> None:
    """Under [policy] duplicates = "send" the daemon sends it again: retry's contract
    (move it back) stands, with no refusal."""
    env.write_config("http://127.0.0.1:9/bundles", policy={"duplicates": "send"})
    folder, bid = duplicate_in_quarantine(env)
    assert main(["retry", "-c", str(env.config), bid[:12]]) == 0
    assert (env.outbox / "INV-1001.xml").is_file() and not folder.exists()


@pytest.mark.parametrize("sidecar_in", ["quarantine", "outbox"])
def test_retry_refuses_beside_another_invoice_file_of_its_sidecar_and_changes_nothing(
        cfg: Env, capsys, sidecar_in: str) -> None:
    """INV-1001.pdf (the print) is in the outbox, and the sidecar INV-1001/ would be there
    (moved back with the bundle, or left in the outbox): moved back, INV-1001.xml and the
    print would both be held (`sidecar-shared`). retry refuses with exit 1, naming both
    files, the folder and the fix, and moves nothing; with the print gone it goes
    back."""
    folder = quarantined(cfg)
    if sidecar_in == "outbox":
        (folder / "INV-1001").rename(cfg.outbox / "INV-1001")
    write(cfg.outbox / "INV-1001.pdf", pdf_bytes(3))
    before_q, before_o = tree(cfg.quarantine), tree(cfg.outbox)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"outboxd: {folder.name}: nothing was moved — the outbox holds "
                          "INV-1001.pdf, whose sidecar is INV-1001 too")
    assert "  INV-1001: INV-1001.pdf and INV-1001.xml both have the attachments folder " \
        "INV-1001/" in err and "[sidecar-shared]" in err and "Traceback" not in err
    assert tree(cfg.quarantine) == before_q and tree(cfg.outbox) == before_o
    (cfg.outbox / "INV-1001.pdf").unlink()  # the clerk takes the print out of the outbox
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert (cfg.outbox / "INV-1001.xml").exists() and not folder.exists()


def test_retry_without_a_sidecar_beside_the_print_alone_moves_back(cfg: Env) -> None:
    """No sidecar in the bundle nor in the outbox: the two files are plain invoices
    without attachments, and retry moves the bundle back beside the print."""
    folder = quarantined(cfg)
    for p in (folder / "INV-1001").iterdir():
        p.unlink()
    (folder / "INV-1001").rmdir()
    write(cfg.outbox / "INV-1001.pdf", pdf_bytes(3))
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert (cfg.outbox / "INV-1001.xml").exists()


NOTES = b"called the customer on 27 Nov: new PO number is 4711\n"


@pytest.mark.parametrize("what", ["notes", "edited", "link", "fifo"])
def test_a_clerks_reason_txt_is_left_with_the_folder_and_a_note(
        cfg: Env, capsys, tmp_path: Path, what: str) -> None:
    """quarantine/ is the share's: a clerk's own notes saved as REASON.txt, outboxd's
    REASON.txt with the clerk's lines added, or a link or FIFO of that name is not what
    outboxd wrote. The bundle goes back; that file stays as it is (the link's target
    untouched), and so does the folder, with a note naming it and saying what to do.
    outboxd's own reason.json goes."""
    folder = quarantined(cfg)
    reason = folder / "REASON.txt"
    target = write(tmp_path / "elsewhere.txt", NOTES)
    if what == "notes":
        reason.write_bytes(NOTES)
    elif what == "edited":
        reason.write_bytes(reason.read_bytes() + b"\n" + NOTES)
    elif what == "link":
        reason.unlink()
        reason.symlink_to(target)
    else:
        reason.unlink()
        os.mkfifo(reason)
    before = os.lstat(reason)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert os.listdir(folder) == ["REASON.txt"]
    after = os.lstat(reason)
    assert (after.st_ino, after.st_size, after.st_mode) == (before.st_ino, before.st_size,
                                                            before.st_mode)
    assert target.read_bytes() == NOTES
    err = capsys.readouterr().err
    assert f"{folder}: left in place, as outboxd removes only the papers it wrote" in err
    assert "REASON.txt" in err and "remove the folder by hand" in err


@pytest.mark.parametrize("ref", ["prefix", "name", "path"])
def test_retry_run_again_on_a_folder_left_with_a_clerks_reason_txt_says_it_went_back(
        cfg: Env, capsys, ref: str) -> None:
    """The folder kept for a clerk's REASON.txt holds no bundle: retry of it again says
    the bundle is no longer in quarantine and to remove the folder (exit 1), not to move
    files back by hand that are back already; nothing in the outbox changes."""
    folder = quarantined(cfg)
    reason = folder / "REASON.txt"
    reason.write_bytes(reason.read_bytes() + b"\n" + NOTES)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    capsys.readouterr()
    before = tree(cfg.outbox)
    arg = {"prefix": BID[:12], "name": folder.name, "path": str(folder)}[ref]
    assert main(["retry", "-c", str(cfg.config), arg]) == 1
    err = capsys.readouterr().err
    assert f"no quarantined bundle in {folder} any more" in err
    assert "holds only REASON.txt" in err and "remove the folder by hand" in err
    assert "move the files back" not in err
    assert tree(cfg.outbox) == before and os.listdir(folder) == ["REASON.txt"]


def test_a_clerks_notes_saved_as_reason_txt_as_retry_removes_it_are_kept(
        cfg: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """outboxd's REASON.txt judged outboxd's, and a clerk saves notes over it before it
    is removed: the notes are kept under that name, byte for byte."""
    folder = quarantined(cfg)
    import daemon.archiving.papers as papers
    real_look, saved = papers.paper_look, []

    def look_then_the_clerk_saves(path: Path, *args: object) -> object:
        judged = real_look(path, *args)  # type: ignore[arg-type]
        if path.name == "REASON.txt" and not saved:
            saved.append(1)
            write(folder / "draft", NOTES)
            os.rename(folder / "draft", path)
        return judged
    monkeypatch.setattr(papers, "paper_look", look_then_the_clerk_saves)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert saved == [1]
    assert os.listdir(folder) == ["REASON.txt"]
    assert (folder / "REASON.txt").read_bytes() == NOTES


def test_retry_of_a_folder_a_clerk_renamed_removes_outboxds_papers_and_the_folder(
        cfg: Env, capsys) -> None:
    """A quarantine folder renamed by a clerk (its name no longer NAME--ID12), given to
    retry by its path: the bundle goes back, and outboxd's papers go with the folder as
    for any other entry — reason.json names the bundle itself. It was left behind with
    the folder and a note calling it 'not as outboxd wrote it (edited, or someone's own
    file)', which it is not."""
    folder = quarantined(cfg)
    renamed = folder.with_name("INV-1001 fixed")
    folder.rename(renamed)
    assert main(["retry", "-c", str(cfg.config), str(renamed)]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert not renamed.exists()
    assert "not as outboxd wrote it" not in capsys.readouterr().err


def _has_open(pid: int, folder: Path) -> bool:
    """Whether process pid has `folder` open (retry opens quarantine/ to lock it, and
    then waits, trying, while another holds the lock)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fds / fd) == str(folder) for fd in os.listdir(fds))
    except OSError:  # it ended meanwhile, or closed one as we looked
        return False


def test_two_retries_of_one_bundle_at_once_take_turns(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ERP's scripts retry one bundle twice at once: the second found it half moved
    and said "cannot tell the invoice file (none) — move the files back into the outbox
    by hand" or "No such file or directory". Retries now take turns: the second (a
    process) waits while the first moves the bundle, then says it is no longer in
    quarantine; the bundle is back once, whole."""
    folder = quarantined(cfg)
    import daemon.actions.retry as retry_mod
    real_move, second = retry_mod.move_tree, []

    def move_while_another_retry_runs(src, dst):  # noqa: ANN001, ANN202 - as move_tree's
        if not second:
            second.append(subprocess.Popen([*OUTBOXD, "retry", "-c", str(cfg.config),
                                            folder.name], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True))
            # It ran to its end meanwhile (before the fix), or it waits for our lock.
            wait_for(lambda: second[0].poll() is not None
                     or _has_open(second[0].pid, cfg.quarantine.resolve()), timeout=60,
                     what="the second retry to end or wait")
        return real_move(src, dst)
    monkeypatch.setattr(retry_mod, "move_tree", move_while_another_retry_runs)
    assert main(["retry", "-c", str(cfg.config), folder.name]) == 0
    out, err = second[0].communicate(timeout=60)
    assert second[0].returncode == 1, err
    assert err.startswith(f"outboxd: no quarantined bundle {folder.name!r} in ")
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]


def test_retry_run_again_after_it_succeeded_exits_1_whether_named_by_path_name_or_id(
        cfg: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A script runs `outboxd retry` again for a bundle already moved back: by its name or
    id it exited 1 ("no quarantined bundle"), by its path 2 ("is not a quarantine
    folder", a usage error) — the same situation, two codes. A path that was a quarantine
    folder and is gone now is exit 1 too, saying so; a path that never was one (outside
    the quarantine folder, or not shaped as outboxd names its folders) stays 2."""
    folder = quarantined(cfg)

    def retry(arg: str) -> tuple[int, str]:
        """The command's exit code and what it wrote to stderr (in this process: the
        exit code is what main() returns, as `python -m daemon` exits with it)."""
        capsys.readouterr()
        code = main(["retry", "-c", str(cfg.config), arg])
        return code, capsys.readouterr().err

    first, err = retry(str(folder))
    assert first == 0, err
    for arg in (str(folder), folder.name, BID[:12]):
        again, err = retry(arg)
        assert again == 1, (arg, err)
        assert err.startswith(f"outboxd: no quarantined bundle {arg!r} in "), err
    for never in (cfg.root / "elsewhere" / folder.name, cfg.quarantine / "2026-11-26" / "x"):
        assert retry(str(never))[0] == 2, never


def test_a_quarantine_folder_someone_holds_locked_for_good_stops_retry_in_time(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who may open quarantine/ (the clerks' group often may) can flock it and
    keep it locked: retry waited for that lock for ever, and the ERP's scheduler with
    it. It now gives up after the lock wait (folderlocks.LOCK_WAIT_SECONDS), says who may
    hold it and to run again, and moves nothing."""
    import threading

    import daemon.fs.folderlocks as folderlocks
    folder = quarantined(cfg)
    monkeypatch.setattr(folderlocks, "LOCK_WAIT_SECONDS", 0.5)
    clerk = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys\n"
         "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(cfg.quarantine)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert clerk.stdout is not None and clerk.stdout.readline() == "held\n"
        ended: list[int] = []
        retry = threading.Thread(target=lambda: ended.append(
            main(["retry", "-c", str(cfg.config), folder.name])), daemon=True)
        retry.start()
        retry.join(30)
        assert ended == [1], "retry still waiting for the lock after 30 s"
    finally:
        clerk.communicate("")
    err = capsys.readouterr().err
    assert f"quarantine/ ({cfg.quarantine.resolve()}) was held locked by another process" \
        in err and "run retry again once it ends" in err and "Traceback" not in err
    assert folder.is_dir() and sorted(p.name for p in cfg.outbox.iterdir()) == []


def test_a_bundle_copied_back_across_file_systems_is_left_movable_by_the_daemon(
        cfg: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """quarantine/ on another file system than the outbox: retry (as root, or as the
    daemon's user under umask 027) copies the bundle back, and the sidecar it makes was
    its maker's alone (0750), so the daemon, which must write in a folder to move it
    into processing, left the bundle "not moving" for good, and clerks could not fix a
    file in it. Where the outbox is group-writable, the folders retry puts there are too,
    as those `attach` makes."""
    import errno

    import daemon.fs.fsmove as fsmove
    folder = quarantined(cfg)
    os.chmod(cfg.outbox, 0o2770)
    real, calls = fsmove.rename_noreplace, []

    def across(src: Path, dst: Path) -> None:
        calls.append(src)
        if Path(src).parent == folder:  # each entry's own rename: another file system
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)
    monkeypatch.setattr(fsmove, "rename_noreplace", across)
    assert main(["retry", "-c", str(cfg.config), folder.name]) == 0
    monkeypatch.undo()
    sidecar = cfg.outbox / "INV-1001"
    assert (sidecar / "scan.pdf").is_file() and any(
        Path(c).name.endswith(".partial") for c in calls)  # copied, not renamed
    assert stat.S_IMODE(sidecar.stat().st_mode) & stat.S_IWGRP



def test_several_bundles_that_would_put_one_name_back_are_refused_and_none_moves(
        cfg: Env, capsys) -> None:
    """Two quarantine folders of one invoice file's name (quarantined on two days) given
    together: the outbox holds neither name, but only one of them can go back. The second
    is refused before anything moves (the first went back, then the second was refused
    with 'nothing was moved', exit 1, leaving the command half done), and the first is
    named as the one to retry alone."""
    import shutil
    first = quarantined(cfg, "INV-1001")
    second = cfg.quarantine / "2026-11-27" / "INV-1001--bbbbbbbbbbbb"
    shutil.copytree(first, second)
    before_q = tree(cfg.quarantine)
    assert main(["retry", "-c", str(cfg.config), str(first), str(second)]) == 1
    err = capsys.readouterr().err
    assert f"{second.name}: nothing was moved — {first.name}, given too, puts " in err
    assert "1 of 2 argument(s) refused, so nothing was moved" in err
    assert f"outboxd retry -- {first.name}" in err
    assert list(cfg.outbox.iterdir()) == []
    assert tree(cfg.quarantine) == before_q


def test_the_pdfs_made_of_a_bundles_images_stay_out_of_the_outbox_and_in_quarantine(
        cfg: Env, capsys) -> None:
    """With convert_images a quarantine entry holds NAME.converted/ (the PDFs outboxd made
    of the images) beside the sidecar. It never goes back into the outbox, where it would
    lie for good as a folder without an invoice file; nor is it removed, as nothing tells
    outboxd's PDFs from a clerk's: it stays in the quarantine folder, named in the note
    with what it is."""
    folder = quarantined(cfg, marker=False)
    write(folder / "INV-1001" / "A" / "scan.png", b"\x89PNG image")
    write(folder / "INV-1001.converted" / "scan.pdf", pdf_bytes())
    write(folder / "INV-1001.converted" / "A" / "scan.pdf", pdf_bytes())
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.xml"]
    assert (cfg.outbox / "INV-1001" / "A" / "scan.png").read_bytes() == b"\x89PNG image"
    assert sorted(p.name for p in folder.iterdir()) == ["INV-1001.converted"]
    assert (folder / "INV-1001.converted" / "A" / "scan.pdf").read_bytes() == pdf_bytes()
    err = capsys.readouterr().err
    assert "INV-1001.converted (the PDFs outboxd made of the bundle's images" in err
    assert "remove it unless you saved a file of your own in it" in err


@pytest.mark.parametrize("name", ["scan.pdf", "scan-fixed.pdf"])
def test_a_clerks_pdf_saved_into_the_converted_folder_is_never_removed(
        cfg: Env, capsys, name: str) -> None:
    """A clerk told that a file may be fixed where it lies in quarantine exports the scan
    again as a proper PDF and saves it into INV-1001.converted/, over outboxd's scan.pdf
    or beside it. retry removed every PDF there, the clerk's with outboxd's, and with it
    the only copy of their work: it is kept, with the folder, and the note names it."""
    folder = quarantined(cfg, marker=False)
    write(folder / "INV-1001" / "scan.png", b"\x89PNG image")
    write(folder / "INV-1001.converted" / "scan.pdf", pdf_bytes())
    write(folder / "INV-1001.converted" / name, b"%PDF-1.7 the clerk's own export")
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.xml"]
    assert (folder / "INV-1001.converted" / name).read_bytes() == \
        b"%PDF-1.7 the clerk's own export"
    assert "INV-1001.converted" in capsys.readouterr().err


def test_a_converted_folder_is_named_in_the_note_beside_a_clerks_reason_txt(
        cfg: Env, capsys) -> None:
    """A REASON.txt with the clerk's notes added stays, and the note named it alone:
    NAME.converted/, left too, was not said (the note listed the papers, or else the
    folder's contents). Both are named."""
    folder = quarantined(cfg, marker=False)
    write(folder / "INV-1001.converted" / "scan.pdf", pdf_bytes())
    with open(folder / "REASON.txt", "ab") as fh:
        fh.write(b"\ncalled the customer\n")
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    err = capsys.readouterr().err
    assert "REASON.txt" in err and "INV-1001.converted (the PDFs outboxd made" in err


def test_the_documents_ubl_embedded_kept_stay_in_quarantine_and_are_named(
        cfg: Env, capsys) -> None:
    """A ubl-embedded bundle quarantined after some of its documents were posted holds
    NAME.embedded/, the documents as sent: retry moves the bundle back without it (in the
    outbox it would be a folder without an invoice file, for good), removes none of it
    (the record of what the receiver has), and the note names it."""
    folder = quarantined(cfg, marker=False)
    write(folder / "INV-1001.embedded" / "INV-1001--A.xml", b"<Invoice>sent</Invoice>")
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert "INV-1001.embedded" not in {p.name for p in cfg.outbox.iterdir()}
    assert (folder / "INV-1001.embedded" / "INV-1001--A.xml").read_bytes() == \
        b"<Invoice>sent</Invoice>"
    assert "INV-1001.embedded (the documents outboxd built and posted" in \
        capsys.readouterr().err


def test_a_torn_journal_is_refused_before_anything_is_written_into_it_or_moved(
        cfg: Env, capsys) -> None:
    """A journal copied while the daemon ran (a page of another moment past a header that
    fits) and put back before the daemon starts: `retry` would write its rows into the
    damaged file. It refuses as the daemon's start does, naming the file and the fix;
    nothing moved, the file as it was."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from journal.test_guarded import torn_journal

    folder = quarantined(cfg)
    cfg.state.mkdir(parents=True, exist_ok=True)
    journal = cfg.state / "journal.sqlite3"
    torn_journal(journal)
    before, before_q = journal.read_bytes(), tree(cfg.quarantine)
    code = main(["retry", "-c", str(cfg.config), folder.name])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "nothing was moved" in err and str(journal) in err and "quick_check" in err
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before_q
    assert journal.read_bytes() == before


def test_retry_marks_only_its_own_bundles_row_retried(cfg: Env, capsys) -> None:
    """The row retry marks is the one of the folder it moves back: another bundle's
    quarantined row stays quarantined with its folder (status goes on listing and
    counting it where it still is)."""
    import sqlite3

    from daemon.journal import Journal
    first, other = quarantined(cfg), quarantined(cfg, "INV-1002")
    journal_with_quarantined_row(cfg, first)
    journal = Journal(cfg.state / "journal.sqlite3")
    try:
        other_id = journal.create("INV-1002.xml", "quarantined", archive_dir=str(other))
    finally:
        journal.close()
    assert main(["retry", "-c", str(cfg.config), str(first)]) == 0
    assert (cfg.outbox / "INV-1001.xml").exists() and other.is_dir()
    db = sqlite3.connect(cfg.state / "journal.sqlite3")
    try:
        assert db.execute("SELECT state, archive_dir FROM bundles WHERE id = ?",
                          (other_id,)).fetchone() == ("quarantined", str(other))
    finally:
        db.close()


def test_retry_never_takes_a_bundle_through_a_link_in_quarantine(cfg: Env, capsys) -> None:
    """A day folder or a bundle's folder in quarantine/ that is a link (to a folder
    holding a bundle elsewhere) is no quarantined bundle: retry by its id finds none
    and moves nothing out of the link's target."""
    elsewhere = cfg.root / "elsewhere"
    linked_day = quarantined(cfg, "INV-1001", root=elsewhere / "a").parent
    linked_bundle = quarantined(cfg, "INV-1002", root=elsewhere / "b")
    cfg.quarantine.mkdir(parents=True, exist_ok=True)
    (cfg.quarantine / "2026-11-27").symlink_to(linked_day)
    (cfg.quarantine / "2026-11-28").mkdir()
    (cfg.quarantine / "2026-11-28" / linked_bundle.name).symlink_to(linked_bundle)
    before = tree(elsewhere)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    assert "no quarantined bundle" in capsys.readouterr().err
    assert tree(elsewhere) == before and list(cfg.outbox.iterdir()) == []


def _journal_rows(env: Env) -> list[tuple[int, str, str | None]]:
    import sqlite3
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        return db.execute("SELECT id, state, archive_dir FROM bundles ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_journal_that_cannot_be_opened_moves_nothing_and_names_the_folder(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal that passed retry's first look but is refused as it is opened to record
    the move (replaced meanwhile by a newer outboxd's, or damaged): retry cannot record
    the move, so it moves nothing — exit 1, one line naming the folder, "nothing was
    moved" and the journal's own error."""
    import daemon.journal
    from daemon.errors import JournalError
    folder = quarantined(cfg)
    journal_with_quarantined_row(cfg, folder)
    before_q = tree(cfg.quarantine)
    real = daemon.journal.Journal

    def refused_after_the_first_look(path: Path, *args: object, whole: bool = False,
                                     **kwargs: object) -> object:
        if whole:  # refuse_a_journal_out_of_reach's look, before any bundle is planned
            return real(path, *args, whole=whole, **kwargs)  # type: ignore[arg-type]
        raise JournalError("the journal was written by a newer outboxd")
    monkeypatch.setattr(daemon.journal, "Journal", refused_after_the_first_look)
    code = main(["retry", "-c", str(cfg.config), BID[:12]])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{folder.name}: nothing was moved — the journal was written by a newer " \
        "outboxd" in err
    assert "Traceback" not in err
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before_q


def test_a_journal_write_failing_at_a_later_row_puts_the_earlier_back_and_moves_nothing(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rows of one folder (the daemon's first quarantine and a later one of the same
    files): the first is marked retried, the second's write fails. Nothing moves, and
    the first row is quarantined again with its folder — left marked retried, `status`
    would no longer list a bundle still in quarantine."""
    from daemon.errors import JournalError
    from daemon.journal import Journal
    folder = quarantined(cfg)
    first = journal_with_quarantined_row(cfg, folder)
    second = journal_with_quarantined_row(cfg, folder)
    before_q = tree(cfg.quarantine)
    real = Journal.transition

    def fails_at_the_second(self: Journal, row_id: int, state: str, *args: object,
                            **kwargs: object) -> None:
        if row_id == second and state == "gone":
            raise JournalError("database or disk is full")
        real(self, row_id, state, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(Journal, "transition", fails_at_the_second)
    code = main(["retry", "-c", str(cfg.config), BID[:12]])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "retry cannot record the move in the journal, so nothing was moved — " \
        "database or disk is full" in err
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before_q
    assert _journal_rows(cfg) == [(first, "quarantined", str(folder)),
                                  (second, "quarantined", str(folder))]


def test_a_row_that_cannot_be_put_back_after_a_refused_move_is_noted_not_hidden(
        cfg: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The move refused after the retry was recorded, and the journal then refusing the
    row's return to quarantined: the bundle stays in quarantine (nothing moved) and a
    note says the journal could not be told, and that `status` shows it quarantined all
    the same (its row keeps the folder: retrykilled.interrupted_rows), as it does."""
    from daemon.actions import retry as retry_action
    from daemon.errors import JournalError
    from daemon.journal import Journal
    folder = quarantined(cfg)
    journal_with_quarantined_row(cfg, folder)
    real = Journal.transition

    def no_way_back(self: Journal, row_id: int, state: str, *args: object,
                    **kwargs: object) -> None:
        if state == "quarantined":
            raise JournalError("disk I/O error")
        real(self, row_id, state, *args, **kwargs)  # type: ignore[arg-type]

    def refused(src: Path, dst: Path) -> list[Path]:
        raise FileExistsError(17, "File exists", str(dst))
    monkeypatch.setattr(Journal, "transition", no_way_back)
    monkeypatch.setattr(retry_action, "move_tree", refused)
    code = main(["retry", "-c", str(cfg.config), BID[:12]])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "nothing was moved" in err
    assert "outboxd: note: INV-1001.xml stays in quarantine, but the journal could not be " \
        "told so (disk I/O error); `outboxd status` shows it quarantined all the same" in err
    assert list(cfg.outbox.iterdir()) == [] and (folder / "INV-1001.xml").exists()
    monkeypatch.undo()  # the journal answers again
    from daemon.configuration.config_load import load_settings
    from daemon.report.status import collect
    # Quarantined on 26 November (its reason.json): counted, listed no more (a week).
    assert collect(load_settings(cfg.config))["counts"]["quarantined"] == 1


@pytest.mark.parametrize("second", ["INV-1002.xml", None])
def test_a_folder_whose_invoice_file_cannot_be_told_is_refused_moving_nothing(
        cfg: Env, capsys, second: str | None) -> None:
    """A quarantine folder whose reason.json names no file in it (edited, or the named file
    renamed) and which holds two invoice files — or none: retry cannot tell which file
    the bundle is, so it refuses naming the folder and the files it found, and tells the
    admin to move them by hand; nothing moves, nothing is removed."""
    folder = quarantined(cfg)
    (folder / "reason.json").write_text(json.dumps({"bundle_id": BID,
                                                    "invoice_file": "INV-9.xml"}))
    if second is None:
        (folder / "INV-1001.xml").rename(folder / "INV-1001.xml.txt")
    else:
        write(folder / second, ubl_invoice("INV-1002"))
    before_q = tree(cfg.quarantine)
    code = main(["retry", "-c", str(cfg.config), BID[:12]])
    err = capsys.readouterr().err
    assert code == 1, err
    found = "INV-1001.xml, INV-1002.xml" if second else "none"
    assert f"{folder}: cannot tell the invoice file ({found}) — move the files back into " \
        "the outbox by hand" in err
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before_q


def outcome_unknown_quarantined(env: Env) -> Path:
    """A bundle quarantined after a delivery attempt whose outcome is not known: its
    reason.json says `delivery_outcome_unknown: true`, as the daemon writes it."""
    folder = quarantined(env)
    write_papers(folder, reason_papers({
        "bundle_id": BID, "invoice_file": "INV-1001.xml", "invoice_ids": ["INV-1001"],
        "reasons": [{"code": "processing-damaged", "file": "INV-1001/scan.pdf",
                     "message": "changed since it was checked"}],
        "quarantined_at": AT, "delivery_outcome_unknown": True}))
    return folder


def test_a_bundle_that_may_be_with_the_receiver_is_refused_saying_what_to_ask(
        cfg: Env, capsys) -> None:
    """A POST of the bundle may have reached the receiver (reason.json:
    delivery_outcome_unknown): retry refuses it, exit 1, nothing moved, saying why
    (it may be delivered twice), what to ask the operator (bundle id, invoice ids) and
    the command that moves it back once the operator says it does not hold it. It was
    moved back without a word."""
    folder = outcome_unknown_quarantined(cfg)
    before = tree(cfg.quarantine)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "nothing was moved" in err and "may have reached the receiver" in err
    assert "twice" in err
    assert f"whether it holds bundle {BID[:12]} (invoice INV-1001)" in err
    assert f"outboxd retry --operator-checked -- {folder.name}" in err
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before


def test_the_operator_checked_option_moves_such_a_bundle_back(cfg: Env, capsys) -> None:
    """With --operator-checked (the admin asked the operator, which does not hold it),
    the bundle goes back as any other does."""
    folder = outcome_unknown_quarantined(cfg)
    assert main(["retry", "-c", str(cfg.config), "--operator-checked", BID[:12]]) == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert not folder.exists()


def test_one_such_bundle_among_several_keeps_them_all_in_quarantine(
        cfg: Env, capsys) -> None:
    """Given with another bundle that could go back: as for any refusal, nothing moves,
    and the refusal is named among the arguments'."""
    outcome_unknown_quarantined(cfg)
    other = cfg.quarantine / "2026-11-26" / f"INV-2--{'b' * 12}"
    write(other / "INV-2.xml", ubl_invoice("INV-2"))
    write_papers(other, reason_papers({"bundle_id": "b" * 64, "invoice_file": "INV-2.xml",
                                       "reasons": [], "quarantined_at": AT}))
    assert main(["retry", "-c", str(cfg.config), BID[:12], "b" * 12]) == 1
    err = capsys.readouterr().err
    assert "may have reached the receiver" in err and "1 of 2 argument(s) refused" in err
    assert list(cfg.outbox.iterdir()) == []


def test_the_command_such_a_refusal_gives_can_be_pasted_for_a_name_with_spaces(
        cfg: Env, capsys) -> None:
    """The quarantine folder of an invoice file named with spaces (as clerks name
    them): the command the refusal gives quotes the folder's name, so that pasted into
    a shell it is one argument — unquoted, retry took each word for a bundle of its own
    and refused them."""
    import shlex
    folder = outcome_unknown_quarantined(cfg)
    spaced = folder.with_name(f"INV 1001 (Nov)--{BID[:12]}")
    folder.rename(spaced)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    command = err.split("move it back with ", 1)[1].split("\n", 1)[0]
    assert shlex.split(command)[-1] == spaced.name


@pytest.mark.parametrize(("ref", "failing", "call"), [
    ("id", "2026-11-26", "listdir"),              # the day folder's listing
    ("id", "quarantine", "open"),                 # quarantine/ itself, at its lock
    ("id", "INV-1001--3f2a9c01b7e4", "listdir"),  # the bundle's folder's listing
    ("id", "INV-1001.xml", "lstat"),              # the invoice file's look
    ("id", "reason.json", "open"),                # reason.json's read
    ("path", "INV-1001--3f2a9c01b7e4", "stat"),   # the folder given by its path
    ("path", "outbox/INV-1001", "lstat"),         # the outbox's name the bundle takes
])
def test_a_look_the_share_fails_is_said_as_the_share_and_moves_nothing(
        cfg: Env, capsys, monkeypatch, ref: str, failing: str, call: str) -> None:
    """A share that fails a look of retry's (EIO) — quarantine/, a day folder, the
    bundle's folder, a file in it, the outbox — refuses the retry, exit 1, naming what
    could not be read and asking whether the share is mounted, with nothing moved. It
    was told to check permissions and disk space, "is not a quarantine folder" (exit 2)
    or "cannot tell the invoice file (none)"."""
    folder = quarantined(cfg)
    before = tree(cfg.quarantine)
    looks_fail(monkeypatch, failing, calls=(call,))
    code = main(["retry", "-c", str(cfg.config), BID[:12] if ref == "id" else str(folder)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{failing} (Input/output error), so nothing was moved — is the share " \
        "mounted and reachable?" in err
    assert "Traceback" not in err and "disk has space" not in err
    monkeypatch.undo()
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before


def test_a_reason_json_the_share_fails_to_give_never_lets_an_unknown_outcome_go_back(
        cfg: Env, capsys, monkeypatch) -> None:
    """reason.json says a POST of the bundle may have reached the receiver; the share
    fails its read (EIO): retry refuses, nothing moved. Taken for "no reason.json", the
    bundle went back without --operator-checked, to be sent a second time."""
    folder = outcome_unknown_quarantined(cfg)
    before = tree(cfg.quarantine)
    looks_fail(monkeypatch, folder / "reason.json", calls=("open",))
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    assert "is the share mounted" in capsys.readouterr().err
    monkeypatch.undo()
    assert list(cfg.outbox.iterdir()) == [] and tree(cfg.quarantine) == before


def test_a_share_failing_after_the_bundle_went_back_is_a_note_not_a_refusal(
        cfg: Env, capsys, monkeypatch) -> None:
    """The bundle is back in the outbox when the share fails the tidying-up of its
    quarantine folder: exit 0, "back in the outbox", and a note on what to remove by
    hand. It was exit 1 with no word that the bundle had moved."""
    import daemon.actions.retry as retry_action

    def failing(path: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
    folder = quarantined(cfg)
    monkeypatch.setattr(retry_action, "fsync_dir", failing)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    out, err = capsys.readouterr()
    assert f"{folder.name}: back in the outbox" in out
    assert "the bundle is back in the outbox, but the quarantine folder could not be " \
        "tidied (Input/output error" in err and "keep what you need, then remove the " \
        "folder by hand" in err
    assert (cfg.outbox / "INV-1001.xml").exists()


def test_a_file_saved_during_the_copy_is_still_named_when_the_share_fails_the_tidying(
        cfg: Env, capsys, monkeypatch) -> None:
    """Copied back across file systems, a file saved into the quarantine folder meanwhile
    is kept there and named ("saved there while retry copied the bundle back"). The
    share then failing the tidying-up (EIO at the outbox's sync) left that line unsaid,
    and the note said "remove what is left of it by hand": the clerk's file with it.
    Now the file is named whatever fails after, and the note says to keep what is
    needed before removing the folder."""
    import daemon.actions.retry as retry_action
    folder = quarantined(cfg)
    real_move = retry_action.move_tree

    def copied(src: Path, dst: Path) -> list[Path]:
        came = real_move(src, dst)
        if src.name == "INV-1001.xml":  # as a copy across file systems reports one
            (folder / "late.pdf").write_bytes(b"%PDF-1.7\n")
            came = [*came, folder / "late.pdf"]
        return came

    def failing(path: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
    monkeypatch.setattr(retry_action, "move_tree", copied)
    monkeypatch.setattr(retry_action, "fsync_dir", failing)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    err = capsys.readouterr().err
    assert "saved there while retry copied the bundle back, so not moved with it and " \
        "kept there: late.pdf" in err
    assert "keep what you need, then remove" in err.split("could not be tidied", 1)[1]
    assert (folder / "late.pdf").exists()


def test_a_move_the_share_fails_half_way_names_what_could_not_be_moved_back(
        cfg: Env, capsys, monkeypatch) -> None:
    """The share fails (EIO) the invoice file's move after the bundle's folder and marker
    went back into the outbox, and fails their moves back as well: retry refuses (exit
    1) naming what is left in the outbox and how to put it back — never "nothing was
    moved", which had the admin look nowhere while the sidecar waited in the outbox
    without its invoice file."""
    import daemon.actions.retry as retry_action
    folder = quarantined(cfg)
    real_move = retry_action.move_tree

    def share_fails(src: Path, dst: Path) -> list[Path]:
        if src.name == "INV-1001.xml" or src.parent == cfg.outbox:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
        return real_move(src, dst)
    monkeypatch.setattr(retry_action, "move_tree", share_fails)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "nothing was moved" not in err, err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready"]
    assert "INV-1001, INV-1001.ready could not be moved back and are in the outbox" in err
    assert f"move them back into {folder}" in err


@pytest.mark.parametrize("failing", ["INV-1001", "INV-1001.xml"])
def test_a_move_placed_before_the_share_failed_its_sync_counts_as_moved(
        cfg: Env, capsys, monkeypatch, failing: str) -> None:
    """A move is the rename into place and then the sync of the outbox (or, across file
    systems, the removal of the copied source); the share failing that step (EIO) after
    the file was placed left it in the outbox taken for not moved. The invoice file
    failing so, its folder and marker were put back into quarantine and it waited in the
    outbox alone, to go without its attachments, while retry said "nothing was moved".
    Now a move whose file was placed counts as moved, and the bundle is back whole."""
    import daemon.actions.retry as retry_action
    folder = quarantined(cfg)
    real_move = retry_action.move_tree

    def sync_fails(src: Path, dst: Path) -> list[Path]:
        came = real_move(src, dst)
        if src.name == failing and dst.parent == cfg.outbox:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst.parent))
        return came
    monkeypatch.setattr(retry_action, "move_tree", sync_fails)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0, capsys.readouterr()
    assert sorted(p.name for p in cfg.outbox.iterdir()) == [
        "INV-1001", "INV-1001.ready", "INV-1001.xml"]
    assert (cfg.outbox / "INV-1001" / "scan.pdf").exists()
    assert not folder.exists()


def test_a_move_back_placed_before_the_share_failed_its_sync_is_not_said_stuck(
        cfg: Env, capsys, monkeypatch) -> None:
    """A file of the invoice file's name dropped into the outbox this very moment refuses
    the retry, and what went back into the outbox is moved back into quarantine; the
    share failing the sync after such a move back (EIO) had retry say the folder "could
    not be moved back and is in the outbox — move it back by hand", of a folder back in
    quarantine. Now a move back whose folder was placed is done, and "nothing was
    moved" is said, which is true."""
    import daemon.actions.retry as retry_action
    folder = quarantined(cfg)
    real_move = retry_action.move_tree

    def clerk_and_sync(src: Path, dst: Path) -> list[Path]:
        if src.name == "INV-1001.xml":
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
        came = real_move(src, dst)
        if dst.parent == folder:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(folder))
        return came
    monkeypatch.setattr(retry_action, "move_tree", clerk_and_sync)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "nothing was moved" in err and "could not be moved back" not in err, err
    assert list(cfg.outbox.iterdir()) == []
    assert (folder / "INV-1001" / "scan.pdf").exists() and (folder / "INV-1001.ready").exists()


def test_a_move_back_that_failed_where_a_copy_left_the_folder_is_said_stuck(
        cfg: Env, capsys, monkeypatch) -> None:
    """Across file systems the bundle's folder is copied into the outbox and then removed
    from quarantine; the share failing that removal leaves part of it there (the move
    counts as done: the copy is whole). The invoice file's move then failing, the folder
    is moved back; the share failing that too, what the copy left in quarantine was
    taken for the folder put back, and retry said "nothing was moved" while the folder
    waited in the outbox. Now it is named as not moved back."""
    import daemon.actions.retry as retry_action
    folder = quarantined(cfg)
    real_move = retry_action.move_tree

    def share_fails(src: Path, dst: Path) -> list[Path]:
        if src.name == "INV-1001.xml" or (src.parent == cfg.outbox and src.is_dir()):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
        came = real_move(src, dst)
        if src.name == "INV-1001":  # the copy's source not all removed
            write(src / "scan.pdf", pdf_bytes())
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
        return came
    monkeypatch.setattr(retry_action, "move_tree", share_fails)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 1
    err = capsys.readouterr().err
    assert "nothing was moved" not in err, err
    assert "INV-1001 could not be moved back and is in the outbox" in err
    assert (cfg.outbox / "INV-1001" / "scan.pdf").exists()
    assert f"move it back into {folder}" in err


def test_retry_holds_the_folder_locked_from_its_mark_to_its_moves_and_keeps_it_on_the_row(
        cfg: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the files move, the row is already marked moved back and keeps its
    quarantine folder, and the folder is held locked (flock): killed there, the lock
    ends with the process, and the daemon, finding the folder free and the invoice file
    in it, can quarantine the row again (archiving/retrykilled.py) — never while a retry
    still moves it. The retry touches outboxd.retried in the state dir, which has the
    daemon look."""
    import sqlite3

    from daemon.actions import retry as retry_action
    from daemon.fs.temps import try_lock
    folder = quarantined(cfg)
    row_id = journal_with_quarantined_row(cfg, folder)
    seen: list[tuple[Any, ...]] = []
    real = retry_action.move_tree

    def looking(src: Path, dst: Path) -> list[Path]:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            db = sqlite3.connect(cfg.state / "journal.sqlite3")
            try:
                seen.append((try_lock(fd), *db.execute(
                    "SELECT state, archive_dir FROM bundles WHERE id = ?", (row_id,)
                ).fetchone()))
            finally:
                db.close()
        finally:
            os.close(fd)
        return real(src, dst)
    monkeypatch.setattr(retry_action, "move_tree", looking)
    assert main(["retry", "-c", str(cfg.config), BID[:12]]) == 0
    assert seen and set(seen) == {(False, "gone", str(folder))}, seen
    assert (cfg.state / "outboxd.retried").is_file()  # has the daemon look at the marks

