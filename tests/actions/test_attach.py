"""`outboxd attach`: the file lands in the right sidecar, attachments.toml keeps its comments."""

from __future__ import annotations

import errno
import os
import subprocess
import tomllib
import unicodedata
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_since
from helpers import (
    UBL_NS,
    drop_bundle,
    looks_fail,
    pdf_bytes,
    temps_locked_as_made,
    ubl_invoice,
    wait_for,
    write,
)

from daemon.cli import main
from daemon.configuration.config_load import load_settings
from daemon.delivery.finish import evaluate
from daemon.fs.temps import drop_stale_copies
from daemon.journal import Journal
from daemon.watching.scan import candidate_for

CLERKS_TOML_BEFORE = b'# notes\n[files."contract.pdf"]\ntype = "Contract"\n'


def batch_xml(*ids: str) -> bytes:
    inner = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ids)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>{inner}</Batch>\n'.encode()


@pytest.fixture(autouse=True)
def _rules_off(env: Env) -> None:
    """attach's reader loads the e-invoice rules where pre-flight is on (to say what is
    still wrong in the bundle), and no test here but the one that sets it is about them;
    and the daemon's own reading these tests check its result with (finish.evaluate, in
    this process) loaded them here, with pre-flight on:
    the engine's native thread then made every later command in the run spawn its reader
    instead of forking it (reader_child.may_fork), ~0.5 s of CPU a command."""
    env.extra.setdefault("einvoice", {})["preflight"] = "off"


def attach(env: Env, *args: str) -> int:
    return main(["attach", "-c", str(env.config), *args])


def test_attach_into_single_invoice_sidecar_creating_it(cfg: Env, timesheet: Path,
                                                        capsys) -> None:
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet",
                  "--note", "Hours for October") == 0
    assert (cfg.outbox / "INV-1001" / "timesheet.pdf").read_bytes() == timesheet.read_bytes()
    assert "attached as INV-1001/timesheet.pdf" in capsys.readouterr().out
    # The daemon's own reading sees the type and note, and nothing temporary is left.
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "INV-1001.xml"), s)
    [att] = bundle.attachments
    assert (att.document_type, att.note, bundle.errors) == ("Timesheet", "Hours for October", ())
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "timesheet.pdf"]


def test_the_folders_attach_makes_are_group_writable_where_the_outbox_is(
        cfg: Env, timesheet: Path) -> None:
    """Run as root or as a clerk (umask 027), attach makes the sidecar (and an invoice's
    subfolder) writable by the outbox's group when the outbox itself is: the daemon, a
    member of that group, must move the folder into processing, which takes write
    permission on the folder itself; an owner-only folder held the bundle as "cannot
    move … permission denied". In an outbox only its owner may write, nothing changes."""
    import stat
    cfg.outbox.chmod(0o2770)
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    write(cfg.outbox / "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
    assert attach(cfg, "INV-1001", str(timesheet)) == 0
    assert attach(cfg, "INV-2002", str(timesheet)) == 0
    for folder in ("INV-1001", "batch-42", "batch-42/INV-2002"):
        assert (cfg.outbox / folder).stat().st_mode & stat.S_IWGRP, folder
    cfg.outbox.chmod(0o750)
    write(cfg.outbox / "INV-1002.xml", ubl_invoice("INV-1002"))
    assert attach(cfg, "INV-1002", str(timesheet)) == 0
    assert not (cfg.outbox / "INV-1002").stat().st_mode & stat.S_IWGRP


@pytest.mark.parametrize("made_by", ["clerk", "attach"])
def test_a_sidecar_swapped_for_a_link_after_the_checks_takes_nothing_elsewhere(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch,
        made_by: str) -> None:
    """attach (often run as root) checks that the sidecar is a real folder, then writes
    the copy and attachments.toml into it. A clerk who swaps the sidecar for a link to
    another folder in between (whether the sidecar was there or attach had to make it)
    had both written through the link, attachments.toml replacing any file of that name
    there. The folders are now made and held from the outbox down, never through a
    link: attach refuses, and nothing is written elsewhere."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    if made_by == "clerk":
        (cfg.outbox / "INV-1001").mkdir()
    elsewhere = cfg.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "attachments.toml").write_text("# not outboxd's\n")
    from daemon.actions import attach as attach_mod
    real = attach_mod.refuse_a_copy_of_the_invoice

    def checked_then_swapped(src: Path, digest: str, cand: object) -> None:
        real(src, digest, cand)  # type: ignore[arg-type]
        sidecar = cfg.outbox / "INV-1001"
        if sidecar.is_dir():
            sidecar.rename(cfg.root / "moved-away")
        sidecar.symlink_to(elsewhere)

    monkeypatch.setattr(attach_mod, "refuse_a_copy_of_the_invoice", checked_then_swapped)
    code = attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet")
    err = capsys.readouterr().err
    assert code != 0
    assert "INV-1001 in the sidecar INV-1001 is not a folder" in err and "Traceback" not in err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["attachments.toml"]
    assert (elsewhere / "attachments.toml").read_text() == "# not outboxd's\n"


def test_an_outbox_configured_through_a_link_is_judged_by_the_folder_itself(
        cfg: Env, timesheet: Path) -> None:
    """[outbox] path may be a link to the share (/srv/invoices/outbox → a mount); a
    link's own mode is always rwxrwxrwx. Whether attach's folders are group-writable
    follows the outbox folder it leads to: owner-only there, owner-only here (they
    were made group-writable in every outbox reached through a link); never writable by
    others."""
    import stat
    cfg.outbox.chmod(0o750)
    link = cfg.root / "share-link"
    link.symlink_to(cfg.outbox)
    cfg.write_config("http://127.0.0.1:9/bundles", outbox={"path": str(link)})
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(timesheet)) == 0
    mode = (cfg.outbox / "INV-1001").stat().st_mode
    assert not mode & (stat.S_IWGRP | stat.S_IWOTH)
    cfg.outbox.chmod(0o2770)
    write(cfg.outbox / "INV-1002.xml", ubl_invoice("INV-1002"))
    assert attach(cfg, "INV-1002", str(timesheet)) == 0
    mode = (cfg.outbox / "INV-1002").stat().st_mode
    assert mode & stat.S_IWGRP and not mode & stat.S_IWOTH


def test_an_attach_run_meanwhile_does_not_take_the_copy_in_progress(
        cfg: Env, timesheet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two attaches of one file name at once: the second's sweep of killed attaches'
    copies leaves the first's copy alone while it is written (its writer holds the
    lock), so the first still lands instead of failing."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    import daemon.actions.attach_copy as attach_mod
    real_copy, seen = attach_mod.copy_into, []

    def copy_then_other_attach_sweeps(fin, fout) -> None:  # noqa: ANN001 - as copy_into's
        real_copy(fin, fout)
        sidecar = cfg.outbox / "INV-1001"
        seen.append(sorted(p.name for p in sidecar.iterdir()))
        drop_stale_copies(sidecar, "timesheet.pdf", "[0-9a-f]{8}")  # the second attach's
    monkeypatch.setattr(attach_mod, "copy_into", copy_then_other_attach_sweeps)
    assert attach(cfg, "INV-1001", str(timesheet)) == 0
    [[in_progress]] = seen
    assert in_progress.startswith(".timesheet.pdf.") and in_progress.endswith(".tmp")
    assert (cfg.outbox / "INV-1001" / "timesheet.pdf").read_bytes() == timesheet.read_bytes()
    assert [p.name for p in (cfg.outbox / "INV-1001").iterdir()] == ["timesheet.pdf"]


def test_an_attach_whose_name_another_took_while_it_copied_writes_nothing(
        cfg: Env, timesheet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two attaches of one file name at once: the one that finds the name taken when
    its copy is done refuses and leaves attachments.toml as the other wrote it, so the
    file that landed keeps its own type (before, the loser's type replaced it, while
    it said that nothing was changed)."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    contract = write(tmp_path / "other" / "timesheet.pdf", pdf_bytes(3))
    import daemon.actions.attach_copy as attach_mod
    real_copy, others = attach_mod.copy_into, []

    def copy_while_another_attach_lands(fin, fout) -> None:  # noqa: ANN001 - as copy_into's
        real_copy(fin, fout)
        if not others:  # the first copy only: the other attach runs now, whole
            others.append(None)
            others[0] = attach(cfg, "INV-1001", str(contract), "--type", "Contract")
    monkeypatch.setattr(attach_mod, "copy_into", copy_while_another_attach_lands)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    assert others == [0]
    sidecar = cfg.outbox / "INV-1001"
    assert (sidecar / "timesheet.pdf").read_bytes() == contract.read_bytes()
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "INV-1001.xml"), s)
    assert [(a.original_name, a.document_type) for a in bundle.attachments] == [
        ("timesheet.pdf", "Contract")]
    assert sorted(p.name for p in sidecar.iterdir()) == ["attachments.toml", "timesheet.pdf"]


@pytest.mark.parametrize("how", ["a-clerks-file-came", "share-eio"])
@pytest.mark.parametrize("toml_before", [CLERKS_TOML_BEFORE, None], ids=["toml", "no-toml"])
def test_a_copy_whose_rename_fails_leaves_attachments_toml_as_it_was(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch, how: str,
        toml_before: bytes | None) -> None:
    """The copy's rename into place fails after attachments.toml got its entry (a clerk's
    file of that name dropped without attach's lock, or the share's EIO): the entry is
    taken back — the clerk's notes as they were, a file attach made removed — so "nothing
    was changed" is true. Before, the entry stayed: the bundle was stopped for a file not
    there, or the clerk's file silently got this one's type and note."""
    import daemon.actions.attach_copy as attach_copy
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    sidecar = cfg.outbox / "INV-1001"
    toml = sidecar / "attachments.toml"
    if toml_before is not None:
        write(toml, toml_before)
    clerks = pdf_bytes(2)
    real_rename = attach_copy.rename_noreplace

    def failing_rename(src: Path, dst: Path) -> None:
        if how == "share-eio":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        write(dst, clerks)  # a clerk's copy onto the share, which takes no lock
        real_rename(src, dst)
    monkeypatch.setattr(attach_copy, "rename_noreplace", failing_rename)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet",
                  "--note", "Hours") == 1
    err = capsys.readouterr().err
    assert "nothing was changed" in err and "Traceback" not in err, err
    if toml_before is None:
        assert not toml.exists()
    else:
        assert toml.read_bytes() == toml_before
    kept = ["contract.pdf"] + (["attachments.toml"] if toml_before else []) + (
        ["timesheet.pdf"] if how == "a-clerks-file-came" else [])
    assert sorted(p.name for p in sidecar.iterdir()) == sorted(kept)
    if how == "a-clerks-file-came":
        assert (sidecar / "timesheet.pdf").read_bytes() == clerks


def test_an_entry_a_clerk_edits_before_attach_takes_it_back_is_left_and_said(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy's rename fails, and attachments.toml was saved by a clerk since attach
    wrote its entry: the clerk's edit is kept, and attach says the entry may be left in
    it and to take it out, never that nothing was changed."""
    import daemon.actions.attach_copy as attach_copy
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    toml = cfg.outbox / "INV-1001" / "attachments.toml"

    def clerk_saves_then_eio(src: Path, dst: Path) -> None:
        toml.write_bytes(toml.read_bytes() + b"# the clerk's line\n")
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
    monkeypatch.setattr(attach_copy, "rename_noreplace", clerk_saves_then_eio)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "nothing was changed" not in line, line
    assert "INV-1001/timesheet.pdf could not be put in (Input/output error)" in line, line
    assert "take [files.\"timesheet.pdf\"] out of it" in line, line
    assert toml.read_bytes().endswith(b"# the clerk's line\n")


def test_a_sidecar_someone_holds_locked_for_good_stops_attach_in_time(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who may open the sidecar (a clerk's account on this host) can flock it and
    keep it locked: attach waited for that lock for ever, and the ERP's scheduler with
    it. It now gives up after the lock wait (folderlocks.LOCK_WAIT_SECONDS), names the folder
    and says to attach again; nothing is put in, no temp is left."""
    import sys
    import threading

    import daemon.fs.folderlocks as folderlocks
    drop_bundle(cfg.outbox, "INV-1001", {"scan.pdf": pdf_bytes(1)})
    sidecar = cfg.outbox / "INV-1001"
    monkeypatch.setattr(folderlocks, "LOCK_WAIT_SECONDS", 0.5)
    clerk = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys\n"
         "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(sidecar)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert clerk.stdout is not None and clerk.stdout.readline() == "held\n"
        ended: list[int] = []
        run = threading.Thread(target=lambda: ended.append(
            attach(cfg, "INV-1001", str(timesheet))), daemon=True)
        run.start()
        run.join(30)
        assert ended == [1], "attach still waiting for the lock after 30 s"
    finally:
        clerk.communicate("")
    err = capsys.readouterr().err
    assert f"{sidecar} was held locked by another process" in err, err
    assert "attach again once it is let go" in err and "Traceback" not in err
    assert sorted(p.name for p in sidecar.iterdir()) == ["scan.pdf"]


def test_an_attach_whose_copy_another_process_locks_as_made_says_so_and_who(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process on this host that flocks each new file in the outbox takes the copy attach
    makes: attach gives up within 50 ms (temps.create_locked), and says that its copy was
    locked, by whom to look for (`lsof +L1`: the copy is removed, so `fuser -v` on its
    name finds nothing) and to stop it, not to wait for another attach; nothing is put
    in, no temp is left."""
    drop_bundle(cfg.outbox, "INV-1001", {"scan.pdf": pdf_bytes(1)})
    sidecar = cfg.outbox / "INV-1001"
    with temps_locked_as_made(monkeypatch) as theirs:
        assert attach(cfg, "INV-1001", str(timesheet)) == 1
    assert len(theirs) == 1
    err = capsys.readouterr().err
    assert "its copy was locked by another process as it was made" in err, err
    assert "lsof +L1" in err and "fuser" not in err and "another attach" not in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in sidecar.iterdir()) == ["scan.pdf"]


def test_attach_run_again_after_a_kill_before_its_rename_finishes_the_bundle(
        cfg: Env, timesheet: Path) -> None:
    """An attach killed after writing attachments.toml, before renaming its copy into
    place, leaves the copy under its in-progress name (the bundle waits for good) and an
    entry for a file not there yet: running the same attach again removes the stale copy
    and ends with the bundle whole, as if the first had finished; other files are kept."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    sidecar = cfg.outbox / "INV-1001"
    write(sidecar / ".timesheet.pdf.0a1b2c3d.tmp", b"half a copy")
    write(sidecar / "attachments.toml", b'[files."timesheet.pdf"]\ntype = "Timesheet"\n')
    write(sidecar / ".notes.pdf.0a1b2c3d.tmp", b"another file's copy")
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 0
    assert sorted(p.name for p in sidecar.iterdir()) == [
        ".notes.pdf.0a1b2c3d.tmp", "attachments.toml", "timesheet.pdf"]
    assert (sidecar / "timesheet.pdf").read_bytes() == timesheet.read_bytes()


def test_attach_into_three_invoice_file_goes_into_the_id_subfolder_keeping_comments(
        cfg: Env, timesheet: Path) -> None:
    write(cfg.outbox / "batch-42.xml", batch_xml("INV-1", "INV-2", "INV-3"))
    toml = cfg.outbox / "batch-42" / "INV-2" / "attachments.toml"
    write(cfg.outbox / "batch-42" / "INV-2" / "contract.pdf", pdf_bytes())
    write(toml, b'# kept: written by Anna\n[files."contract.pdf"]\ntype = "Contract"  # signed\n')
    assert attach(cfg, "INV-2", str(timesheet), "--type", "Timesheet") == 0
    assert (cfg.outbox / "batch-42" / "INV-2" / "timesheet.pdf").exists()
    text = toml.read_text()
    assert "# kept: written by Anna" in text and "# signed" in text
    assert '[files."timesheet.pdf"]' in text and 'type = "Timesheet"' in text
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "batch-42.xml"), s)
    assert {a.original_name: a.document_type for a in bundle.attachments_of("INV-2")} == {
        "contract.pdf": "Contract", "timesheet.pdf": "Timesheet"}
    assert bundle.unattached_ids == ("INV-1", "INV-3")


@pytest.mark.parametrize("made", ["CON", "CON_", None])
def test_attach_puts_the_file_into_the_ids_folder_under_whichever_name_is_there(
        cfg: Env, timesheet: Path, made: str | None) -> None:
    """The folder of the id CON may be CON/ (an ERP on Linux made it by the first rule of
    docs/folder-convention.md, section 3) or CON_/ (the name a Windows clerk can make):
    attach puts the file into the one that is there, never making the other beside it (two
    folders of one invoice are an error); with none there it makes CON_/, the name the
    status page gives."""
    write(cfg.outbox / "batch.xml", batch_xml("CON", "X-2"))
    if made:
        (cfg.outbox / "batch" / made).mkdir(parents=True)
    assert attach(cfg, "CON", str(timesheet)) == 0
    folder = made or "CON_"
    assert (cfg.outbox / "batch" / folder / "timesheet.pdf").exists()
    assert sorted(p.name for p in (cfg.outbox / "batch").iterdir()) == [folder]
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "batch.xml"), s)
    assert bundle.errors == ()
    assert [a.original_name for a in bundle.attachments_of("CON")] == ["timesheet.pdf"]


@pytest.mark.parametrize("made_form", ["NFD", "NFC"])
def test_attach_uses_the_ids_folder_a_mac_made_in_the_other_unicode_form(
        cfg: Env, timesheet: Path, made_form: str) -> None:
    """The invoice file holds the id ÅSA-7 composed (NFC); a Mac made its folder
    decomposed (NFD: A and a combining ring), or the other way round. The daemon takes
    that folder as the invoice's (either form), so attach puts the file into it, never
    making a second folder in the other form beside it (two folders of one invoice)."""
    nfc, nfd = (unicodedata.normalize(f, "ÅSA-7") for f in ("NFC", "NFD"))
    made, written = (nfd, nfc) if made_form == "NFD" else (nfc, nfd)
    write(cfg.outbox / "batch.xml", batch_xml(written, "X-2"))
    write(cfg.outbox / "batch" / made / "contract.pdf", pdf_bytes())
    assert attach(cfg, written, str(timesheet)) == 0
    assert [p.name for p in (cfg.outbox / "batch").iterdir()] == [made]
    assert (cfg.outbox / "batch" / made / "timesheet.pdf").exists()
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "batch.xml"), s)
    assert bundle.errors == ()
    assert sorted(a.original_name for a in bundle.attachments_of(written)) == [
        "contract.pdf", "timesheet.pdf"]


def test_attach_makes_an_ids_folder_under_the_name_that_is_no_other_invoices(
        cfg: Env, timesheet: Path) -> None:
    """A file holding the ids CON and CON_: a folder CON_ would be CON_'s and CON's
    Windows name at once (`id-folder-collision`), so attach for CON makes CON/, the
    name that is its alone (attach runs on the server, which can make it)."""
    write(cfg.outbox / "batch.xml", batch_xml("CON", "CON_"))
    assert attach(cfg, "CON", str(timesheet)) == 0
    assert [p.name for p in (cfg.outbox / "batch").iterdir()] == ["CON"]
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "batch.xml"), s)
    assert bundle.errors == ()
    assert [a.original_name for a in bundle.attachments_of("CON")] == ["timesheet.pdf"]


def test_attach_passes_by_a_folder_that_is_another_invoices_too(
        cfg: Env, timesheet: Path) -> None:
    """A file holding the ids CON and CON_ with a folder CON_/ there (made for CON_):
    that folder is CON's Windows name too, so the daemon takes none of its files. attach
    for CON puts the file into CON/, the folder that is CON's alone, not into CON_/,
    where CON would stay without attachments and the bundle be stopped."""
    write(cfg.outbox / "batch.xml", batch_xml("CON", "CON_"))
    (cfg.outbox / "batch" / "CON_").mkdir(parents=True)
    assert attach(cfg, "CON", str(timesheet)) == 0
    assert (cfg.outbox / "batch" / "CON" / "timesheet.pdf").exists()
    assert list((cfg.outbox / "batch" / "CON_").iterdir()) == []
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "batch.xml"), s)
    assert [a.original_name for a in bundle.attachments_of("CON")] == ["timesheet.pdf"]


def test_attach_refuses_an_invoice_whose_every_folder_name_is_another_invoices_too(
        cfg: Env, timesheet: Path, capsys) -> None:
    """The id CON_ beside CON has the one folder name CON_, which is CON's Windows name
    too: the daemon takes no file from such a folder (id-folder-collision). attach says
    so and changes nothing, rather than report the file attached."""
    write(cfg.outbox / "batch.xml", batch_xml("CON", "CON_"))
    assert attach(cfg, "CON_", str(timesheet)) == 1
    assert not (cfg.outbox / "batch").exists()
    err = capsys.readouterr().err
    assert "nothing was changed" in err
    assert "CON_" in err and "'CON'" in err
    assert "give the invoices distinct ids" in err


def test_attach_refuses_a_name_that_exists(cfg: Env, timesheet: Path, capsys) -> None:
    drop_bundle(cfg.outbox, "INV-1001", {"timesheet.pdf": b"%PDF-old"})
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert "INV-1001/timesheet.pdf already exists" in err and err.count("outboxd:") == 1
    assert (cfg.outbox / "INV-1001" / "timesheet.pdf").read_bytes() == b"%PDF-old"


def test_an_attachments_toml_the_share_fails_to_look_at_is_no_answer_that_none_is_there(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The look whether INV-1001/attachments.toml is there fails (the share's EIO) as
    attach adds the file's type: attach refuses with the share's error, nothing changed,
    the clerk's notes as they were. Taken for "none there", the entry went into a new
    file, which met the clerk's in its place: "changed or replaced while attach added
    to it … attach again", of a file nobody touched."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    toml = write(cfg.outbox / "INV-1001" / "attachments.toml",
                 b'[files."contract.pdf"]\nnote = "signed"\n')
    looks_fail(monkeypatch, "attachments.toml")  # by the sidecar held: its /proc/self/fd path
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "Input/output error" in line and "nothing was changed" in line
    assert "changed or replaced" not in line
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "contract.pdf"]
    assert toml.read_bytes() == b'[files."contract.pdf"]\nnote = "signed"\n'


def test_an_invoice_file_the_share_fails_to_look_at_as_the_copy_lands_is_not_said_gone(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the copy is made, attach looks whether the invoice file is still in the
    outbox (not claimed meanwhile); the share fails that look (EIO): attach refuses with
    the share's error, nothing changed. Taken for "gone", it said no invoice file in
    the outbox holds INV-1001, as if the daemon had taken it."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    invoice, sidecar = cfg.outbox / "INV-1001.xml", cfg.outbox / "INV-1001"
    real = os.lstat

    def failing_once_copied(path: object, *args: object, **kw: object) -> os.stat_result:
        # The copy under way, at its temp name beside where it goes: the share fails.
        if path == invoice and any(n.endswith(".tmp") for n in os.listdir(sidecar)):
            raise OSError(5, os.strerror(5), str(invoice))
        return real(path, *args, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(os, "lstat", failing_once_copied)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "Input/output error" in line and "nothing was changed" in line
    assert "no invoice file" not in line
    assert sorted(p.name for p in sidecar.iterdir()) == ["contract.pdf"]


@pytest.mark.parametrize("what", ["empty", "blank", "zeros", "the invoice"])
def test_attach_refuses_what_would_only_get_the_bundle_quarantined(
        cfg: Env, tmp_path: Path, capsys, what: str) -> None:
    """An empty file (0 bytes, blank lines only, zero bytes only) or a copy of the invoice
    file is refused with the daemon's rule (empty-file, copy-of-invoice) and the fix; the
    sidecar is left as it was."""
    drop_bundle(cfg.outbox, "INV-1001", {"a.pdf": pdf_bytes()})
    data = {"empty": b"", "blank": b"\r\n\r\n", "zeros": b"\0" * 4096}.get(what) \
        if what != "the invoice" else (cfg.outbox / "INV-1001.xml").read_bytes()
    src = write(tmp_path / "home" / "scan.pdf", data)
    assert attach(cfg, "INV-1001", str(src)) == 1
    err = capsys.readouterr().err
    code = "[copy-of-invoice]" if what == "the invoice" else "[empty-file]"
    assert str(src) in err and code in err and "nothing was changed" in err
    if what in ("blank", "zeros"):
        assert f"{src} is empty ({len(data):,} bytes: " in err
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == ["a.pdf"]


def test_attach_refuses_while_a_look_alike_of_the_sidecar_is_there(
        cfg: Env, timesheet: Path, capsys) -> None:
    """A Mac made Räkning-7/ with accents written as separate marks beside the ERP's
    Räkning-7.xml: attaching into the right folder would leave the clerk's files behind
    and the bundle held, so attach names the look-alike and writes nothing."""
    nfc, nfd = (unicodedata.normalize(f, "Räkning-7") for f in ("NFC", "NFD"))
    write(cfg.outbox / f"{nfc}.xml", ubl_invoice("R7"))
    write(cfg.outbox / nfd / "contract.pdf", pdf_bytes())
    assert attach(cfg, "R7", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert f"{nfd}: this folder looks like the sidecar {nfc} of {nfc}.xml" in err
    assert "rename it by typing its name again" in err
    # The rule at the end of its line, as check, retry and REASON.txt give it.
    [line] = [x for x in err.splitlines() if x.startswith(f"  {nfd}: ")]
    assert line.endswith("  [sidecar-spelling]")
    assert sorted(p.name for p in cfg.outbox.iterdir()) == sorted([f"{nfc}.xml", nfd])


def test_attach_refuses_while_a_folder_named_in_other_case_is_there(
        cfg: Env, timesheet: Path, capsys) -> None:
    """A Windows clerk made inv-1001/ beside the ERP's INV-1001.xml (one name to Windows,
    two to Linux): attach names the folder and the case difference and writes nothing,
    not INV-1001/ beside it."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    write(cfg.outbox / "inv-1001" / "contract.pdf", pdf_bytes())
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert "inv-1001: this folder looks like the sidecar INV-1001 of INV-1001.xml, but the " \
        "two names differ only in upper and lower case" in err and "rename it to INV-1001" in err
    [line] = [x for x in err.splitlines() if x.startswith("  inv-1001: ")]
    assert line.endswith("  [sidecar-spelling]")
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml", "inv-1001"]
    assert os.listdir(cfg.outbox / "inv-1001") == ["contract.pdf"]


def test_attach_refusal_names_every_look_alike_and_says_to_merge_them(
        cfg: Env, timesheet: Path, capsys) -> None:
    """Two clerks made inv-1001/ and Inv-1001/ beside INV-1001.xml: attach names both, in
    the daemon's words, and says to merge them into one folder (renaming each to INV-1001
    cannot work); nothing is written."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    for twin in ("inv-1001", "Inv-1001"):
        write(cfg.outbox / twin / f"{twin}.pdf", pdf_bytes())
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert "names look like its sidecar INV-1001" in err
    assert "\n  Inv-1001: this folder" in err and "\n  inv-1001: this folder" in err
    assert err.count("merge them into one folder named exactly INV-1001") == 2
    lines = [x for x in err.splitlines() if x.startswith(("  inv-1001: ", "  Inv-1001: "))]
    assert len(lines) == 2 and all(x.endswith("  [sidecar-spelling]") for x in lines)
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml", "Inv-1001",
                                                             "inv-1001"]


def test_attach_refuses_an_id_in_no_invoice_file(cfg: Env, timesheet: Path, capsys) -> None:
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-9999", str(timesheet)) == 1
    assert "no invoice file" in capsys.readouterr().err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml"]


def test_attach_refusal_names_the_invoice_files_it_could_not_read(
        cfg: Env, timesheet: Path, capsys) -> None:
    """An id found in no invoice file while one of them cannot be read (an encrypted PDF):
    the refusal names that file and its rule, since the id may be in it."""
    write(cfg.outbox / "INV-77.pdf", pdf_bytes(1, encrypt=True))
    assert attach(cfg, "INV-77", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert "holds invoice id 'INV-77'" in err
    assert "INV-77.pdf: is an encrypted PDF" in err and "[pdf-encrypted]" in err


def test_attach_refuses_an_id_in_two_files_naming_both(cfg: Env, timesheet: Path,
                                                       capsys) -> None:
    write(cfg.outbox / "a.xml", ubl_invoice("INV-7"))
    write(cfg.outbox / "b.xml", batch_xml("INV-6", "INV-7"))
    assert attach(cfg, "INV-7", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert "a.xml" in err and "b.xml" in err and "2 invoice files" in err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["a.xml", "b.xml"]


def test_attach_of_a_missing_file_is_a_usage_error(cfg: Env, tmp_path: Path, capsys) -> None:
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(tmp_path / "nope.pdf")) == 2
    assert "nope.pdf does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["x" * 300, "x/" * 3000])
def test_attach_of_a_path_longer_than_linux_allows_is_a_usage_error(
        cfg: Env, tmp_path: Path, capsys, name: str) -> None:
    """A FILE with a name over 255 bytes, or a path over 4,095: no such file can exist,
    a usage error (exit 2) saying so and the limit, its path cut — not exit 1 "File name
    too long … check that the disk has space" (found by bench/configfuzz.py)."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(tmp_path / name)) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"outboxd: attach: {tmp_path}/x") and "characters)" in line
    assert line.endswith("does not exist: the path is longer than Linux allows (255 bytes "
                         "a name, 4,095 the whole path) — give the file's path")


@pytest.mark.parametrize(("toml", "said"), [
    (b"files = 5\n", "files = 5 is not a table"),
    (b'[[files]]\nname = "a.pdf"\n', "[[files]] makes files an array of tables"),
])
def test_attach_refuses_a_files_key_that_is_not_a_table_naming_the_file(
        cfg: Env, timesheet: Path, capsys, toml: bytes, said: str) -> None:
    """attachments.toml whose `files` is not a table (what `outboxd check` reports as
    attachments-toml-invalid): exit 1 with one line naming the file, the rule and the
    fix, no traceback; nothing is changed — no copy, no temp file, the toml as it was."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    write(cfg.outbox / "INV-1001" / "attachments.toml", toml)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outboxd: INV-1001/attachments.toml: ") and said in line
    assert "attachments-toml-invalid" in line and "nothing was changed" in line
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "contract.pdf"]
    assert (cfg.outbox / "INV-1001" / "attachments.toml").read_bytes() == toml


def test_attach_refuses_an_attachments_toml_not_in_utf8_saying_how_to_mend_it(
        cfg: Env, timesheet: Path, capsys) -> None:
    """attachments.toml saved by an editor in the Windows code page ("für" as the byte
    0xFC): exit 1 with one line naming the file, the line and the fix (save it as UTF-8),
    not Python's codec message; nothing is changed."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    toml = '[files."contract.pdf"]\nnote = "Vertrag für 2025"\n'.encode("cp1252")
    write(cfg.outbox / "INV-1001" / "attachments.toml", toml)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == ("outboxd: INV-1001/attachments.toml is not UTF-8 text (line 2 holds the "
                    "byte 0xfc: it was saved in another encoding, such as Windows' ANSI) — "
                    "save it again as UTF-8; nothing was changed")
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "contract.pdf"]
    assert (cfg.outbox / "INV-1001" / "attachments.toml").read_bytes() == toml


def test_attach_adds_to_an_inline_files_table_keeping_its_entries(
        cfg: Env, timesheet: Path) -> None:
    """`files = {…}` is a valid attachments.toml: the new entry joins the inline table
    (a table cannot go into an inline one) and the daemon reads both."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    write(cfg.outbox / "INV-1001" / "attachments.toml",
          b'files = { "contract.pdf" = { type = "Contract" } }\n')
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet", "--note", "Oct") == 0
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "INV-1001.xml"), s)
    assert {(a.original_name, a.document_type, a.note) for a in bundle.attachments} == {
        ("contract.pdf", "Contract", ""), ("timesheet.pdf", "Timesheet", "Oct")}
    assert bundle.errors == ()


@pytest.mark.parametrize("option", ["--note", "--type"])
def test_attach_refuses_a_note_or_type_longer_than_attachments_toml_takes(
        cfg: Env, timesheet: Path, capsys, option: str) -> None:
    """A --note (or --type) of 5,000 characters would only get the bundle stopped for
    attachments.toml: refused before anything is written, with the limit and the fix."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(timesheet), option, "y" * 5_000) == 2
    err = capsys.readouterr().err
    assert f"attach: {option} is 5,000 characters long; a type or a note may have at most " \
        "2,000 — shorten it" in err
    assert not (cfg.outbox / "INV-1001").exists()


@pytest.mark.parametrize("value", ["", "   "])
def test_attach_refuses_an_empty_or_blank_type(cfg: Env, timesheet: Path, capsys,
                                               value: str) -> None:
    """`--type "$T"` with T unset (or blanks) took the default type unasked, or sent a type
    of blanks: a usage error before anything is written, saying how to get the default."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(timesheet), "--type", value) == 2
    err = capsys.readouterr().err
    assert "attach: --type is " + ("empty" if not value else "blank") + \
        " — give a document type, or leave the type out for the default one" in err
    assert not (cfg.outbox / "INV-1001").exists()


@pytest.mark.parametrize("toml, said", [
    (b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested"),
    (b"# " + b"x" * (2 << 20) + b"\n", "larger than"),
])
def test_attach_refuses_an_attachments_toml_nested_too_deep_or_too_large(
        cfg: Env, timesheet: Path, capsys, toml: bytes, said: str) -> None:
    """An attachments.toml anyone on the share can write, nested 100,000 deep (past tomlkit's
    recursion limit) or far larger than notes need: attach (often run as root) ends with
    one line naming the file, the rule and the fix, no traceback, and reads no more of it
    than the daemon does; nothing is changed."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    write(cfg.outbox / "INV-1001" / "attachments.toml", toml)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outboxd: INV-1001/attachments.toml") and said in line
    assert "nothing was changed" in line
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "contract.pdf"]
    assert (cfg.outbox / "INV-1001" / "attachments.toml").read_bytes() == toml


def test_attach_refuses_a_file_the_channel_rejects_naming_the_rule(
        cfg: Env, tmp_path: Path, capsys) -> None:
    """A file over [validation] max_attachment_bytes, or an executable named .pdf, was
    attached (exit 0), and the daemon then quarantined the whole file of invoices at
    once. attach now checks the file by the bundle's channel rules first: it refuses
    (exit 1) with each rule broken, and writes nothing."""
    cfg.write_config("http://127.0.0.1:9/bundles",
                     validation={"max_attachment_bytes": 1000})
    write(cfg.outbox / "batch-3.xml", batch_xml("INV-31", "INV-32"))
    big = write(tmp_path / "home" / "scan.pdf", pdf_bytes(1) + b"%" * 2000 + b"\n")
    code = attach(cfg, "INV-32", str(big))
    err = capsys.readouterr().err
    assert code == 1
    assert f"{big} would only get batch-3.xml quarantined; nothing was changed" in err
    assert "KB (2,"  in err and "; at most 1 KB is taken ([validation] max_attachment_bytes)" \
        in err
    assert "[too-large]" in err and "Traceback" not in err
    exe = write(tmp_path / "home" / "timesheet.pdf", b"MZ\x90\x00" + b"\x00" * 200)
    code = attach(cfg, "INV-32", str(exe))
    err = capsys.readouterr().err
    assert code == 1 and "[extension-mismatch]" in err and "[type-not-allowed]" in err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["batch-3.xml"]


def test_attach_refusing_a_file_says_the_bundle_would_be_held_under_policy_hold(
        cfg: Env, tmp_path: Path, capsys) -> None:
    """Under [policy] invalid = "hold" a bundle with a file its channel rejects stays in
    the outbox, held: the refusal said it would be quarantined, sending the admin to
    quarantine/ for what would never be there."""
    cfg.write_config("http://127.0.0.1:9/bundles", policy={"invalid": "hold"},
                     validation={"max_attachment_bytes": 1000})
    write(cfg.outbox / "batch-3.xml", batch_xml("INV-31", "INV-32"))
    big = write(tmp_path / "home" / "scan.pdf", pdf_bytes(1) + b"%" * 2000 + b"\n")
    code = attach(cfg, "INV-32", str(big))
    err = capsys.readouterr().err
    assert code == 1 and "[too-large]" in err
    assert (f"{big} would only get batch-3.xml held in the outbox, unsent ([policy] "
            'invalid = "hold"); nothing was changed') in err
    assert "quarantined" not in err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["batch-3.xml"]


@pytest.mark.parametrize("folder", [False, True])
def test_attach_refuses_while_another_invoice_file_has_the_same_sidecar(
        cfg: Env, timesheet: Path, capsys, folder: bool) -> None:
    """INV-1001.xml (invoice R-77) beside its print INV-1001.pdf: both have the sidecar
    INV-1001/, so a file attached there (or the folder made for it) would hold both
    (`sidecar-shared`) instead of going out. attach names both files, the folder and the
    fix, and writes nothing, whether or not the folder is there yet."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("R-77"))
    write(cfg.outbox / "INV-1001.pdf", pdf_bytes(3))
    if folder:
        write(cfg.outbox / "INV-1001" / "contract.pdf", pdf_bytes(2))
    before = sorted(str(p.relative_to(cfg.outbox)) for p in cfg.outbox.rglob("*"))
    assert attach(cfg, "R-77", str(timesheet)) == 1
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("  INV-1001: ")]
    assert line.startswith("  INV-1001: INV-1001.pdf and INV-1001.xml both have the "
                           "attachments folder INV-1001/")
    assert "move INV-1001.pdf into INV-1001/" in line and line.endswith("  [sidecar-shared]")
    assert "nothing was changed" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(cfg.outbox)) for p in cfg.outbox.rglob("*")) == before


def test_attach_refuses_a_file_named_attachments_toml_itself(
        env: Env, tmp_path: Path, capsys) -> None:
    """attachments.toml is the sidecar's notes file, never an attachment: exit 2 before
    anything is written (copied in, it would become the bundle's notes file, read for
    the types and notes of its other files)."""
    env.write_config("http://127.0.0.1:9/bundles",
                     validation={"allowed_types": ["pdf", "text", "csv"]})
    write(env.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    src = write(tmp_path / "home" / "attachments.toml", b'[files."a.pdf"]\ntype = "T"\n')
    assert attach(env, "INV-1001", str(src)) == 2
    err = capsys.readouterr().err
    assert "'attachments.toml' cannot be an attachment name (outboxd ignores or reserves " \
        "that name) — rename it" in err
    assert not (env.outbox / "INV-1001").exists()


def test_attach_refuses_a_type_the_configuration_does_not_allow(
        env: Env, timesheet: Path, capsys) -> None:
    """[attachments] document_types lists the types a receiver takes: --type of another is
    a usage error naming the allowed ones, before anything is written."""
    env.write_config("http://127.0.0.1:9/bundles",
                     attachments={"document_types": ["Timesheet", "Contract"]})
    write(env.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(env, "INV-1001", str(timesheet), "--type", "Receipt") == 2
    err = capsys.readouterr().err
    assert "--type 'Receipt' is not allowed — use one of 'Timesheet', 'Contract'" in err
    assert not (env.outbox / "INV-1001").exists()


def test_a_failed_copy_leaves_the_sidecar_a_clerk_had_made(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """"Nothing was changed": attach takes away the folders it made for a copy that
    failed, never one that was there before (an empty sidecar a clerk made)."""
    import daemon.actions.attach_copy as attach_mod
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    (cfg.outbox / "INV-1001").mkdir()

    def refused(path: os.PathLike[str]) -> int:
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(attach_mod, "create_locked", refused)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    assert "nothing was changed" in capsys.readouterr().err
    assert (cfg.outbox / "INV-1001").is_dir()


def test_a_refusal_names_three_unread_invoice_files_and_counts_the_rest() -> None:
    """An id found in no file, with files that could not be read: the first three are
    named, "and N more" only where there are more."""
    from daemon.actions.attach import unread_note
    assert "more" not in unread_note(["a", "b", "c"])
    assert unread_note(["a", "b", "c", "d"]).endswith("a; b; c (and 1 more)")


@pytest.mark.parametrize("name", ["Attachments.toml", "attachment.toml",
                                  "attachments.toml.txt"])
def test_attach_refuses_a_file_named_like_attachments_toml(
        env: Env, tmp_path: Path, capsys, name: str) -> None:
    """A file named almost attachments.toml is an error in a sidecar (the daemon takes it
    for a misnamed notes file, attachments-toml-invalid): attach refuses it as it refuses
    attachments.toml itself, exit 2, writing nothing, even where the channel would take
    its text (allowed_types with "text"), and says to rename it."""
    env.write_config("http://127.0.0.1:9/bundles",
                     validation={"allowed_types": ["pdf", "text", "csv"]})
    write(env.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    src = write(tmp_path / "home" / name, b'[files."a.pdf"]\ntype = "Timesheet"\n')
    assert attach(env, "INV-1001", str(src)) == 2
    err = capsys.readouterr().err
    assert f"{name!r} cannot be an attachment name" in err and "rename it" in err
    assert "misnamed attachments.toml" in err and "Traceback" not in err
    assert not (env.outbox / "INV-1001").exists()


@pytest.mark.parametrize("char", ["\x07", "\u0085", "\u009b"])
def test_attach_refuses_a_name_with_a_control_character_c0_or_c1(
        env: Env, tmp_path: Path, capsys, char: str) -> None:
    """A file named with a control character, of C1 (U+0085, U+009B) as of C0, would be
    a bad-name error in the sidecar: attach refuses it, exit 2, writing nothing, and
    says which character by its code and to rename the file."""
    env.write_config("http://127.0.0.1:9/bundles")
    write(env.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    src = write(tmp_path / "home" / f"scan{char}.pdf", b"%PDF-1.4\n%%EOF\n")
    assert attach(env, "INV-1001", str(src)) == 2
    err = capsys.readouterr().err
    code = f"\\x{ord(char):02x}"
    assert f"'scan{code}.pdf' cannot be an attachment name" in err
    assert f"control character ({code}) — rename the file" in err
    assert err.count("rename") == 1  # the fix said once
    assert char not in err and "Traceback" not in err
    assert not (env.outbox / "INV-1001").exists()


CLERKS_TOML = b'# the clerk\'s edit\n[files."contract.pdf"]\ntype = "Contract"\nnote = "signed"\n'


@pytest.mark.parametrize("how", ["saved-over", "in-place", "in-place-in-one-tick", "removed"])
def test_a_clerks_edit_of_attachments_toml_saved_while_attach_ran_is_kept(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """attachments.toml changed by a clerk after attach read it and before it wrote it
    back (saved over by an editor, edited in place, edited in place within the clock's
    tick: the same size and time, or removed): the clerk's version is kept byte for
    byte, the copy is not put in (its entry would be missing), and attach exits 1 with
    one line that says so and to attach again."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    toml = write(cfg.outbox / "INV-1001" / "attachments.toml", b'[files."contract.pdf"]\n')
    # Within one tick only an edit of the same size keeps the file's look.
    clerks = b'[files."contract.PDF"]\n' if how == "in-place-in-one-tick" else CLERKS_TOML
    import daemon.actions.attach_notes as attach_mod
    real_parse = attach_mod.tomlkit.parse

    def parse_then_the_clerk_saves(text: str):  # noqa: ANN202 - as tomlkit.parse's
        doc = real_parse(text)
        if how == "saved-over":
            write(toml.with_name("draft"), CLERKS_TOML)
            os.rename(toml.with_name("draft"), toml)
        elif how == "in-place":
            toml.write_bytes(CLERKS_TOML)
        elif how == "in-place-in-one-tick":
            st = toml.stat()
            toml.write_bytes(clerks)
            os.utime(toml, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            toml.unlink()
        return doc
    monkeypatch.setattr(attach_mod.tomlkit, "parse", parse_then_the_clerk_saves)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outboxd: INV-1001/attachments.toml was changed or replaced")
    assert "attach again" in line
    kept = ["attachments.toml", "contract.pdf"] if how != "removed" else ["contract.pdf"]
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == kept
    if how != "removed":
        assert toml.read_bytes() == clerks


def test_an_attachments_toml_made_by_a_clerk_while_attach_ran_is_kept(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """No attachments.toml when attach looked; a clerk saves one before attach writes
    its own: the clerk's file stays as saved, the copy is not put in, exit 1."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    toml = cfg.outbox / "INV-1001" / "attachments.toml"
    import daemon.actions.attach_notes as attach_mod
    real_document = attach_mod.tomlkit.document

    def new_document_then_the_clerk_saves():  # noqa: ANN202 - as tomlkit.document's
        write(toml, CLERKS_TOML)
        return real_document()
    monkeypatch.setattr(attach_mod.tomlkit, "document", new_document_then_the_clerk_saves)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    assert "attach again" in capsys.readouterr().err
    assert toml.read_bytes() == CLERKS_TOML
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "contract.pdf"]


def test_an_attach_after_the_bundle_was_sent_says_it_went_out_without_the_file(
        env: Env, receiver: Receiver, start_daemon, timesheet: Path) -> None:
    """An ERP's script attaches a second file after the daemon sent the bundle (its first
    attach made it whole): `outboxd attach` said "no invoice file holds invoice id … —
    check the id", and the ERP looked for a typo. As a process beside the running
    daemon it now exits 1 with one line saying the invoice was sent, when, where, and
    that the file went out without it; nothing is written into the outbox."""
    env.write_config(receiver.url, einvoice={"preflight": "off"},
                     service={"reader_processes": 0})
    start_daemon()
    first = write(env.root / "home" / "first.pdf", pdf_bytes(1))
    drop_bundle(env.outbox, "INV-S", {"first.pdf": first.read_bytes()}, ubl_invoice("INV-S"))
    wait_for(lambda: env.sent_bundles(), what="the bundle to be sent")
    late = subprocess.run([*OUTBOXD, "attach", "-c", str(env.config), "INV-S",
                           str(timesheet)], capture_output=True, text=True, timeout=60)
    assert late.returncode == 1, late.stderr
    [line] = late.stderr.splitlines()
    [archived] = env.sent_bundles()
    assert line.startswith(f"outboxd: no invoice file in {env.outbox} holds invoice id "
                           "'INV-S': INV-S.xml was sent at ")
    assert line.endswith(f"({archived}); too late: it went out without 'timesheet.pdf', "
                         "which was not attached")
    assert not (env.outbox / "INV-S").exists()
    # The same attach as the one that made the bundle whole, run again (a job scheduler's
    # retry after its timeout killed it once the file had landed): done, exit 0.
    again = subprocess.run([*OUTBOXD, "attach", "-c", str(env.config), "INV-S", str(first)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("INV-S: already sent with it — INV-S.xml went out at ")
    assert again.stdout.rstrip().endswith(
        f"with {archived}/INV-S/first.pdf (the same bytes, type and note); nothing was changed")


def test_a_sent_entry_swapped_for_a_link_is_not_looked_through_for_the_file(
        cfg: Env, timesheet: Path, capsys) -> None:
    """A clerk who may write in sent/ swaps a sent bundle's entry for a link to a folder
    anywhere (holding a copy of the file): attach (often root) walked through the link,
    read what lay there, and said "already sent with it", exit 0, for a file that never
    went. The entry is now reached from sent/ without following a link (nor walking
    the whole machine through one to "/"); the real entry is still found."""
    cfg.state.mkdir(exist_ok=True)
    entry = cfg.root / "sent" / "2026-12-01" / "INV-S--0123456789ab"
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("INV-S.xml", "sent", bundle_id="0123456789ab" + "0" * 52,
             invoice_ids=["INV-S"], archive_dir=str(entry))
    j.close()
    elsewhere = write(cfg.root / "elsewhere" / "INV-S" / "timesheet.pdf",
                      timesheet.read_bytes()).parent.parent
    entry.parent.mkdir(parents=True)
    entry.symlink_to(elsewhere, target_is_directory=True)
    assert attach(cfg, "INV-S", str(timesheet)) == 1
    # Not "went out without it" either: the folder that went is not what is there now.
    assert f"whether 'timesheet.pdf' went with it cannot be told here: that folder could " \
        f"not be looked into from {cfg.root / 'sent'} (is a symbolic link; outboxd never " \
        "follows links)" in capsys.readouterr().err
    entry.unlink()
    elsewhere.rename(entry)
    assert attach(cfg, "INV-S", str(timesheet)) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        f"with {entry}/INV-S/timesheet.pdf (the same bytes, type and note); nothing was "
        "changed")
    assert list(cfg.outbox.iterdir()) == []


def test_an_attach_to_a_bundle_quarantined_or_in_delivery_says_where_it_is(
        cfg: Env, timesheet: Path, capsys) -> None:
    """For an id whose bundle left the outbox, attach says what the journal knows: a
    quarantined one with the retry command to run before attaching again, one being
    delivered with "too late", rather than "check the id"."""
    cfg.state.mkdir(exist_ok=True)
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("batch-3.xml", "quarantined", bundle_id="b" * 64, invoice_ids=["INV-31"],
             archive_dir="/q/batch-3--b")
    j.create("INV-7.xml", "retrying", since="2026-12-01T11:00:00.000Z",
             invoice_ids=["INV-7"])
    j.close()
    assert attach(cfg, "INV-31", str(timesheet)) == 1
    [since] = journal_since(cfg, "quarantined", "batch-3.xml")
    assert capsys.readouterr().err.rstrip().endswith(
        f"holds invoice id 'INV-31': batch-3.xml was quarantined at {since} (/q/batch-3--b) "
        "— see REASON.txt there; once fixed: outboxd retry bbbbbbbbbbbb, then attach again")
    assert attach(cfg, "INV-7", str(timesheet)) == 1
    assert capsys.readouterr().err.rstrip().endswith(
        "holds invoice id 'INV-7': INV-7.xml left the outbox and is retrying since "
        "2026-12-01T11:00:00.000Z; too late to attach 'timesheet.pdf' now: it goes out with "
        "what its sidecar held when it left — outboxd status shows how it goes")
    assert list(cfg.outbox.iterdir()) == []


def test_an_attach_to_a_quarantined_id_is_not_mistaken_for_a_new_file_of_its_name(
        cfg: Env, timesheet: Path, capsys) -> None:
    """Q-1.xml was quarantined; the ERP exported a new Q-1.xml holding Q-1-NEW, which
    waits in the outbox. attach Q-1 was told of the waiting file's row (its stem is the
    id): "Q-1.xml was deleted or moved while outboxd was stopped", of a file right there,
    and no word of the quarantine. The journal is asked for the invoice id alone."""
    cfg.state.mkdir(exist_ok=True)
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("Q-1.xml", "quarantined", bundle_id="c" * 64, invoice_ids=["Q-1"],
             archive_dir="/q/Q-1--c")
    j.create("Q-1.xml", "waiting", since="2026-12-01T11:00:00.000Z",
             invoice_ids=["Q-1-NEW"])
    j.close()
    write(cfg.outbox / "Q-1.xml", ubl_invoice("Q-1-NEW"))
    before = sorted(p.name for p in cfg.outbox.iterdir())
    assert attach(cfg, "Q-1", str(timesheet)) == 1
    err = capsys.readouterr().err
    [since] = journal_since(cfg, "quarantined", "Q-1.xml")
    assert err.rstrip().endswith(
        f"holds invoice id 'Q-1': Q-1.xml was quarantined at {since} (/q/Q-1--c) — see "
        "REASON.txt there; once fixed: outboxd retry cccccccccccc, then attach again")
    assert "deleted or moved" not in err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == before


def test_an_attach_whose_invoice_the_daemon_claimed_while_it_copied_puts_nothing_in(
        cfg: Env, timesheet: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The daemon claims the bundle (invoice file and sidecar moved into processing)
    while attach copies: the copy was renamed into the folder attach held — now inside
    the claimed bundle — or into a sidecar it made anew beside no invoice file, and
    attach said "attached" for a file that did not go out. It now refuses (exit 1),
    leaves no copy behind, and puts nothing into either folder."""
    write(cfg.outbox / "INV-C.xml", ubl_invoice("INV-C"))
    write(cfg.outbox / "INV-C" / "first.pdf", pdf_bytes(1))
    processing = cfg.root / "processing"
    processing.mkdir()
    import daemon.actions.attach_copy as attach_mod
    real_copy = attach_mod.copy_into

    def copy_while_claimed(fin, fout) -> None:  # noqa: ANN001 - as copy_into's
        real_copy(fin, fout)
        (cfg.outbox / "INV-C.xml").rename(processing / "INV-C.xml")
        (cfg.outbox / "INV-C").rename(processing / "INV-C")
    monkeypatch.setattr(attach_mod, "copy_into", copy_while_claimed)
    assert attach(cfg, "INV-C", str(timesheet)) == 1
    assert "no invoice file in" in capsys.readouterr().err
    assert sorted(p.name for p in (processing / "INV-C").iterdir()) == ["first.pdf"]
    assert list(cfg.outbox.iterdir()) == []


@pytest.mark.parametrize("there, attached", [
    ("Timesheet.pdf", "timesheet.pdf"),
    (unicodedata.normalize("NFD", "Résumé.pdf"), unicodedata.normalize("NFC", "Résumé.pdf")),
], ids=["case", "unicode-form"])
def test_attach_refuses_a_name_that_collides_with_an_attachment_but_for_case_or_form(
        cfg: Env, tmp_path: Path, there: str, attached: str) -> None:
    """A sidecar holds Timesheet.pdf (or Résumé.pdf as a Mac writes it): `outboxd attach`
    of timesheet.pdf (Résumé.pdf as typed on Windows) put it in beside, and the bundle was
    quarantined for name-collision. As a process it now exits 1 naming the rule, and puts
    nothing in."""
    write(cfg.outbox / "INV-N.xml", ubl_invoice("INV-N"))
    write(cfg.outbox / "INV-N" / there, pdf_bytes(1))
    src = write(tmp_path / "home" / attached, pdf_bytes(2))
    run = subprocess.run([*OUTBOXD, "attach", "-c", str(cfg.config), "INV-N", str(src)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert f"differs from 'INV-N/{there}' only" in run.stderr
    assert "[name-collision]" in run.stderr and "Traceback" not in run.stderr
    assert [p.name for p in (cfg.outbox / "INV-N").iterdir()] == [there]


def test_of_two_attaches_at_once_whose_names_differ_only_in_case_the_second_writes_nothing(
        cfg: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Two attaches at once, of Timesheet.pdf and timesheet.pdf: both looked before either
    landed, and both landed, so the bundle was quarantined. The one that finds the other's
    name there when its copy is done now refuses and leaves no copy."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    upper = write(tmp_path / "a" / "Timesheet.pdf", pdf_bytes(3))
    lower = write(tmp_path / "b" / "timesheet.pdf", pdf_bytes(2))
    import daemon.actions.attach_copy as attach_mod
    real_copy, others = attach_mod.copy_into, []

    def copy_while_another_attach_lands(fin, fout) -> None:  # noqa: ANN001 - as copy_into's
        real_copy(fin, fout)
        if not others:  # the first copy only: the other attach runs now, whole
            others.append(None)
            others[0] = attach(cfg, "INV-1001", str(upper))
    monkeypatch.setattr(attach_mod, "copy_into", copy_while_another_attach_lands)
    assert attach(cfg, "INV-1001", str(lower)) == 1
    assert others == [0]
    assert "INV-1001/Timesheet.pdf appeared meanwhile" in capsys.readouterr().err
    assert [p.name for p in (cfg.outbox / "INV-1001").iterdir()] == ["Timesheet.pdf"]


def test_the_same_attach_run_again_after_it_landed_succeeds_and_changes_nothing(
        cfg: Env, timesheet: Path, capsys) -> None:
    """A job scheduler kills an attach after its file landed and runs it again: "already
    exists", exit 1, had the job retried for good. The same file with the same type and
    note is now "already attached", exit 0, nothing written; other bytes or another note
    under that name are still refused."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    args = ("INV-1001", str(timesheet), "--type", "Timesheet", "--note", "October")
    assert attach(cfg, *args) == 0
    sidecar = cfg.outbox / "INV-1001"
    before = {p.name: p.stat().st_mtime_ns for p in sidecar.iterdir()}
    capsys.readouterr()
    assert attach(cfg, *args) == 0
    assert capsys.readouterr().out == ("INV-1001: already attached as INV-1001/timesheet.pdf "
                                       "(the same bytes, type and note); nothing was changed\n")
    assert {p.name: p.stat().st_mtime_ns for p in sidecar.iterdir()} == before
    assert attach(cfg, *args[:-1], "November") == 1
    assert "already exists" in capsys.readouterr().err
    write(timesheet, pdf_bytes(5))
    assert attach(cfg, *args) == 1


def test_attach_of_a_link_fifo_or_folder_refuses_in_one_line_saying_what_to_give(
        cfg: Env, tmp_path: Path, timesheet: Path) -> None:
    """FILE a symbolic link, a FIFO or a folder: attach (a process) said "put the file
    itself in the folder", the daemon's fix for a clerk's file in the outbox, meaningless
    for a path on the command line. It now exits 1 with one line saying what FILE is
    and to give the path of a file, never opens the FIFO, and writes nothing."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    link = tmp_path / "home" / "link.pdf"
    link.symlink_to(timesheet)
    fifo = tmp_path / "home" / "pipe.pdf"
    os.mkfifo(fifo)
    folder = tmp_path / "home" / "folder.pdf"
    folder.mkdir()
    for src, said in ((link, "is a symbolic link, and attach copies no file through a link "
                             "— give the path of the file itself"),
                      (fifo, "is not a regular file (a folder, FIFO or device) — give the "
                             "path of a file"),
                      (folder, "is not a regular file (a folder, FIFO or device) — give the "
                               "path of a file")):
        run = subprocess.run([*OUTBOXD, "attach", "-c", str(cfg.config), "INV-1001",
                              str(src)], capture_output=True, text=True, timeout=60)
        assert (run.returncode, run.stderr.splitlines()) == (
            1, [f"outboxd: {src}: {said}; nothing was changed"])
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml"]


def test_a_sent_entry_holding_folders_a_thousand_deep_is_looked_through_without_a_traceback(
        cfg: Env, timesheet: Path, capsys, deep_tree) -> None:
    """Someone who may write in sent/ puts folders 1,100 deep into a sent bundle's entry:
    attach's look for the file there (os.fwalk) ran out of Python's recursion limit, a
    traceback instead of its answer. The look goes no deeper than fsdepth.DEPTH_MAX (an
    attach puts a file two levels down): the file is not there, so it went out without
    it, exit 1, one line."""
    cfg.state.mkdir(exist_ok=True)
    entry = cfg.root / "sent" / "2026-12-01" / "INV-S--0123456789ab"
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("INV-S.xml", "sent", bundle_id="0123456789ab" + "0" * 52,
             invoice_ids=["INV-S"], archive_dir=str(entry))
    j.close()
    (entry / "INV-S").mkdir(parents=True)
    deep_tree(entry / "INV-S", 1100)
    assert attach(cfg, "INV-S", str(timesheet)) == 1
    assert "too late: it went out without 'timesheet.pdf'" in capsys.readouterr().err


def test_attach_adds_to_an_attachments_toml_with_a_byte_order_mark_keeping_its_entries(
        cfg: Env, timesheet: Path) -> None:
    """attachments.toml saved by Notepad as "UTF-8 with BOM": the daemon reads it, so
    `attach` adds its entry to it (it refused with "cannot be read (Empty key at line 1
    col 0)") and the entry already there stays."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    write(cfg.outbox / "INV-1001" / "attachments.toml",
          b'\xef\xbb\xbf[files."contract.pdf"]\r\ntype = "Contract"\r\n')
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 0
    notes = tomllib.loads((cfg.outbox / "INV-1001" / "attachments.toml").read_text("utf-8"))
    assert notes["files"]["contract.pdf"] == {"type": "Contract"}
    assert notes["files"][timesheet.name]["type"] == "Timesheet"


def test_a_copy_this_user_may_not_write_says_whom_to_run_attach_as(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox (or the sidecar) this user may not write: attach names the file it
    could not put in, never its temporary name, and the fix in the words send and retry
    use — whom to run it as; nothing is left behind."""
    import daemon.actions.attach_copy as attach_mod
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))

    def refused(path: os.PathLike[str]) -> int:
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(attach_mod, "create_locked", refused)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    err = capsys.readouterr().err
    assert (f"could not put INV-1001/timesheet.pdf into the outbox {cfg.outbox}: Permission "
            "denied — run it as the daemon's user (sudo -u outboxd outboxd attach …) or as "
            "root, or as a member of the outbox's group; nothing was changed") in err
    assert ".tmp" not in err
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml"]


@pytest.mark.parametrize("refused", ["unknown id", "empty file", "type not allowed"])
def test_a_refused_attach_loads_no_e_invoice_engine(
        cfg: Env, timesheet: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch,
        refused: str) -> None:
    """Pre-flight on: an attach refused (an id no invoice file holds, an empty FILE, a
    type the channel does not take) starts no reader with the e-invoice engine, ~0.7 s
    of CPU an ERP's every mistaken call paid; an empty FILE starts no reader at all. The
    engine loads only to read the bundle once the file is in."""
    from daemon.reading.readers import Readers
    cfg.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "error"})
    write(cfg.outbox / "INV-1006.xml", ubl_invoice("INV-1006"))
    engines: list[bool | None] = []
    real = Readers.configure

    def configure(self: Readers, settings: object, engine: bool | None = None) -> None:
        engines.append(engine)
        real(self, settings, engine)  # type: ignore[arg-type]
    monkeypatch.setattr(Readers, "configure", configure)
    src = {"unknown id": timesheet, "empty file": write(tmp_path / "empty.pdf", b""),
           "type not allowed": write(tmp_path / "tool.exe", b"MZ\x90\x00" + b"\x00" * 200)
           }[refused]
    invoice = "INV-404" if refused == "unknown id" else "INV-1006"
    assert attach(cfg, invoice, str(src)) == 1
    err = capsys.readouterr().err
    assert {"unknown id": "no invoice file", "empty file": "[empty-file]",
            "type not allowed": "[type-not-allowed]"}[refused] in err, err
    assert True not in engines, engines
    if refused == "empty file":
        assert engines == []
    assert not (cfg.outbox / "INV-1006").exists()


@pytest.mark.parametrize("sidecar", ["file", "link"])
def test_a_sidecar_name_taken_by_a_file_or_link_is_refused_and_left_as_it_is(
        cfg: Env, timesheet: Path, capsys, sidecar: str) -> None:
    """Where the sidecar's name is a file (a clerk's export saved without an extension) or
    a link to a folder elsewhere, attach refuses before writing anything, naming it and
    the fix: the file is not replaced by a folder, nothing is written through the link."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    elsewhere = cfg.root / "elsewhere"
    elsewhere.mkdir()
    if sidecar == "file":
        write(cfg.outbox / "INV-1001", b"the clerk's own file")
    else:
        (cfg.outbox / "INV-1001").symlink_to(elsewhere)
    code = attach(cfg, "INV-1001", str(timesheet))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "INV-1001 is not a folder — make it a real folder; nothing was changed" in err
    assert "Traceback" not in err
    assert list(elsewhere.iterdir()) == []
    if sidecar == "file":
        assert (cfg.outbox / "INV-1001").read_bytes() == b"the clerk's own file"
    else:
        assert (cfg.outbox / "INV-1001").is_symlink()
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.xml"]


def test_an_attachments_toml_swapped_for_a_link_while_attach_ran_is_left_and_not_written_through(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """attachments.toml swapped for a link to a file elsewhere after attach read it and
    before it wrote it back: attach exits 1 saying it was changed or replaced and to
    attach again; the link stays, the file it points to is not written, and the copy is
    not put in."""
    drop_bundle(cfg.outbox, "INV-1001", {"contract.pdf": pdf_bytes()})
    toml = write(cfg.outbox / "INV-1001" / "attachments.toml", b'[files."contract.pdf"]\n')
    elsewhere = write(cfg.root / "elsewhere.toml", b"# not outboxd's\n")
    import daemon.actions.attach_notes as attach_mod
    real_parse = attach_mod.tomlkit.parse

    def parse_then_swapped(text: str):  # noqa: ANN202 - as tomlkit.parse's
        doc = real_parse(text)
        toml.unlink()
        toml.symlink_to(elsewhere)
        return doc
    monkeypatch.setattr(attach_mod.tomlkit, "parse", parse_then_swapped)
    assert attach(cfg, "INV-1001", str(timesheet), "--type", "Timesheet") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outboxd: INV-1001/attachments.toml was changed or replaced")
    assert toml.is_symlink() and elsewhere.read_bytes() == b"# not outboxd's\n"
    assert sorted(p.name for p in (cfg.outbox / "INV-1001").iterdir()) == [
        "attachments.toml", "contract.pdf"]


def test_attach_with_a_note_and_no_type_records_the_note_and_leaves_the_type_default(
        cfg: Env, timesheet: Path) -> None:
    """`attach ID FILE --note "Hours for October"` without --type: attachments.toml gets
    the note and no type key, so the daemon reads the file as the default document type
    with that note."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    assert attach(cfg, "INV-1001", str(timesheet), "--note", "Hours for October") == 0
    entry = tomllib.loads((cfg.outbox / "INV-1001" / "attachments.toml").read_text())[
        "files"]["timesheet.pdf"]
    assert entry == {"note": "Hours for October"}
    s = load_settings(cfg.config)
    bundle = evaluate(candidate_for(s.outbox, "INV-1001.xml"), s)
    [att] = bundle.attachments
    assert (att.document_type, att.note, bundle.errors) == (
        s.attachments.default_document_type, "Hours for October", ())


def test_a_file_to_attach_this_user_may_not_open_is_refused_naming_it_and_the_fix(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """FILE that this user may look at but not open (mode 0600, another user's; injected
    here, as root opens any file): exit 1 with one line naming FILE, the system's words
    and the fix, [unreadable]; nothing is written into the outbox."""
    import daemon.fs.fsops as fsops
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    real = fsops.opened_if_regular

    def denied(name: Path | str, *args: object, **kwargs: object) -> object:
        if str(name) == str(timesheet):
            raise PermissionError(13, "Permission denied", str(name))
        return real(name, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(fsops, "opened_if_regular", denied)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"outboxd: {timesheet}: cannot be read (Permission denied) — check the "
                    "file's permissions; nothing was changed  [unreadable]")
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml"]


@pytest.mark.parametrize("there", ["link", "folder"])
def test_a_link_or_folder_where_the_file_would_go_is_never_taken_for_it_attached_before(
        cfg: Env, timesheet: Path, capsys, there: str) -> None:
    """In the sidecar, FILE's name is taken by a link to a copy of FILE (same bytes) or by
    a folder: attach run again must not read through the link and say "already attached"
    (exit 0) for a file the daemon refuses as a link; it refuses, "already exists",
    exit 1, and leaves the link or folder as it is."""
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    dest = cfg.outbox / "INV-1001" / "timesheet.pdf"
    if there == "link":
        copy = write(cfg.root / "elsewhere" / "timesheet.pdf", timesheet.read_bytes())
        dest.parent.mkdir()
        dest.symlink_to(copy)
    else:
        dest.mkdir(parents=True)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == ("outboxd: INV-1001/timesheet.pdf already exists; nothing was changed — "
                    "rename FILE or remove the old one")
    assert dest.is_symlink() if there == "link" else dest.is_dir()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["timesheet.pdf"]


def test_an_invoice_file_swapped_for_a_link_while_attach_checks_is_refused_writing_nothing(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The invoice file replaced by a link (to a file elsewhere) after attach found it and
    before it compares FILE with it: attach reads nothing through the link, refuses in
    one line with the daemon's rule for the invoice file, and writes nothing — no sidecar
    made for a bundle the daemon would refuse."""
    from daemon.actions import attach as attach_mod
    invoice = write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    elsewhere = write(cfg.root / "elsewhere.xml", ubl_invoice("INV-1001"))
    real = attach_mod.refuse_a_shared_sidecar

    def checked_then_swapped(cand: object) -> None:
        real(cand)  # type: ignore[arg-type]
        invoice.unlink()
        invoice.symlink_to(elsewhere)
    monkeypatch.setattr(attach_mod, "refuse_a_shared_sidecar", checked_then_swapped)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outboxd: INV-1001.xml: is a symbolic link")
    assert line.endswith("; nothing was changed  [symlink]")
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml"]


@pytest.mark.parametrize("swapped_for", ["link", "fifo"])
def test_a_file_to_attach_swapped_as_it_is_copied_is_refused_leaving_nothing_behind(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch,
        swapped_for: str) -> None:
    """FILE checked, then replaced by a link to another file (or a FIFO) just before it is
    copied: nothing is read through the link nor waited for at the FIFO; attach exits 1
    naming FILE, the rule with the fix for the caller's own file (as the check before
    says it) and that nothing was changed, and leaves neither its in-progress copy nor
    the sidecar it made for it. Said before with the daemon's fix for a clerk's file in
    the outbox ("put the file itself in the folder"), which points nowhere here."""
    from daemon.actions import attach_copy
    write(cfg.outbox / "INV-1001.xml", ubl_invoice("INV-1001"))
    secret = write(cfg.root / "secret.pdf", pdf_bytes(3))
    real = attach_copy.drop_stale_copies

    def swapped_then(*args: object) -> None:
        timesheet.unlink()
        if swapped_for == "link":
            timesheet.symlink_to(secret)
        else:
            os.mkfifo(timesheet)
        real(*args)  # type: ignore[arg-type]
    monkeypatch.setattr(attach_copy, "drop_stale_copies", swapped_then)
    assert attach(cfg, "INV-1001", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    # In the words of the check before the copy (test_attach_of_a_link_fifo_or_folder_…):
    # the fix for the caller's own file, not the daemon's "put the file itself there".
    said = ("is a symbolic link, and attach copies no file through a link — give the path "
            "of the file itself") if swapped_for == "link" else (
        "is not a regular file (a folder, FIFO or device) — give the path of a file")
    assert line == f"outboxd: {timesheet}: {said}; nothing was changed"
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001.xml"]


def test_an_attach_for_a_bundle_sent_into_a_sent_folder_moved_since_does_not_say_without_it(
        cfg: Env, timesheet: Path, capsys) -> None:
    """The admin moved `[paths] sent` (sent-old → sent): the journal's row still names the
    bundle's folder under the old path, and an ERP's scheduler runs again the attach of
    a file that went out with it. attach said "too late: it went out without
    'timesheet.pdf'", exit 1 — false, the folder it names was never looked into. It now
    says that it was sent and that whether the file went with it cannot be told here,
    naming the folder and the configured sent/ (exit 1, as for "too late"); likewise
    for a folder gone from sent/ — with its day folder, which is also how sent/ on a
    share that is not mounted looks (an empty mount point), not said as a deletion
    alone. Nothing is written into the outbox."""
    cfg.state.mkdir(exist_ok=True)
    old = cfg.root / "sent-old" / "2026-12-01" / "INV-S--0123456789ab"
    write(old / "INV-S" / "timesheet.pdf", timesheet.read_bytes())
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("INV-S.xml", "sent", bundle_id="0123456789ab" + "0" * 52,
             invoice_ids=["INV-S"], archive_dir=str(old))
    j.close()
    sent = cfg.root / "sent"
    assert attach(cfg, "INV-S", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(
        f"({old}); whether 'timesheet.pdf' went with it cannot be told "
        f"here: that folder is not in sent/ as configured now ({sent}) — look for the file "
        "in that folder where it lies now"), line
    assert "holds invoice id 'INV-S': INV-S.xml was sent at " in line
    # The row's folder under the sent/ configured, but moved or deleted from it.
    gone = sent / "2026-12-01" / "INV-S--0123456789ab"
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("INV-S.xml", "sent", bundle_id="0123456789ab" + "1" * 52,
             invoice_ids=["INV-S"], archive_dir=str(gone))
    j.close()
    assert attach(cfg, "INV-S", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert f"({gone}); whether 'timesheet.pdf' went with it cannot be " \
        f"told here: that folder is no longer in {sent} (moved or deleted with its day " \
        "folder, or sent/ is on a share that is not mounted now) — look for the file in " \
        "that folder where it lies now" in line, line
    # Its day folder there, the entry alone gone: moved or deleted, no share to suspect.
    (gone.parent / "INV-T--0123456789ab").mkdir(parents=True)
    assert attach(cfg, "INV-S", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert f"told here: that folder is no longer in {sent} (moved or deleted) — look for " \
        "the file in that folder where it lies now" in line, line
    assert list(cfg.outbox.iterdir()) == []


def test_a_sent_folder_the_share_fails_to_look_into_is_not_said_moved_or_deleted(
        cfg: Env, timesheet: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attach for a bundle sent with its folder in sent/, which the share fails to
    open and to look at (EIO): attach says the folder could not be looked into, with the
    share's error — never that it is "no longer in sent/ (moved or deleted)", which sent
    the admin looking for who removed an archive entry that is there."""
    cfg.state.mkdir(exist_ok=True)
    entry = cfg.root / "sent" / "2026-12-01" / "INV-S--0123456789ab"
    write(entry / "INV-S" / "timesheet.pdf", timesheet.read_bytes())
    j = Journal(cfg.state / "journal.sqlite3")
    j.create("INV-S.xml", "sent", bundle_id="0123456789ab" + "0" * 52,
             invoice_ids=["INV-S"], archive_dir=str(entry))
    j.close()
    looks_fail(monkeypatch, entry.name, calls=("open", "lstat"))
    assert attach(cfg, "INV-S", str(timesheet)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "that folder could not be looked into from" in line, line
    assert "Input/output error" in line and "no longer in" not in line
    assert list(cfg.outbox.iterdir()) == []


@pytest.mark.parametrize("invoice_id", ["A-1.", "A-1"])
def test_attach_refuses_an_invoice_of_ids_that_differ_only_by_a_dot_at_the_end(
        cfg: Env, timesheet: Path, capsys, invoice_id: str) -> None:
    """batch.xml holds A-1. and A-1, one folder to Windows (id-folder-collision as soon as
    the file has a sidecar): attach for A-1. made batch/A-1_ and reported the file
    attached, and the file stopped for it. It says why and changes nothing, as for ids
    that differ only in case."""
    write(cfg.outbox / "batch.xml", batch_xml("A-1.", "A-1"))
    assert attach(cfg, invoice_id, str(timesheet)) == 1
    assert not (cfg.outbox / "batch").exists()
    err = capsys.readouterr().err
    assert "nothing was changed" in err
    assert "invoice ids 'A-1.' and 'A-1' differ only in dots or spaces at the end" in err
    assert "give the invoices distinct ids" in err
