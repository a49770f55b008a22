"""`outboxd retry`: a quarantined bundle back into the outbox, in its layout, never replacing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Env
from helpers import pdf_bytes, ubl_invoice, without_blocking, write

from daemon.cli import main

BID = "3f2a9c01b7e4" + "0" * 52


def quarantined(env: Env, name: str = "INV-1001") -> Path:
    """A quarantine folder as the daemon writes it: bundle + marker + papers."""
    folder = env.quarantine / "2026-11-26" / f"{name}--{BID[:12]}"
    write(folder / f"{name}.xml", ubl_invoice(name))
    write(folder / name / "scan.pdf", pdf_bytes())
    write(folder / f"{name}.ready", b"")
    write(folder / "reason.json", json.dumps({"bundle_id": BID, "invoice_file": f"{name}.xml",
                                              "reasons": [], "quarantined_at": "x"}).encode())
    write(folder / "REASON.txt", b"why")
    return folder


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(Path(d, n).relative_to(root)): (Path(d, n).lstat().st_size,
                                                 Path(d, n).lstat().st_mtime_ns)
            for d, ds, fs in os.walk(root) for n in ds + fs}


@pytest.fixture
def cfg(env: Env) -> Env:
    env.write_config("http://127.0.0.1:9/bundles")
    return env


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


def test_retry_of_an_unknown_id_exits_1_naming_it(cfg: Env, capsys) -> None:
    assert main(["retry", "-c", str(cfg.config), "aaaaaaaaaaaa"]) == 1
    assert "no quarantined bundle 'aaaaaaaaaaaa'" in capsys.readouterr().err


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
    folder = other / "2026-11-26" / f"INV-1--{BID[:12]}"
    write(folder / "INV-1.xml", ubl_invoice("INV-1"))
    write(folder / "INV-1" / "scan.pdf", pdf_bytes())
    write(folder / "REASON.txt", b"why")
    assert main(["retry", "-c", str(env.config), BID[:12]]) == 0
    assert (env.outbox / "INV-1" / "scan.pdf").read_bytes() == pdf_bytes()
    assert (env.outbox / "INV-1.xml").read_bytes() == ubl_invoice("INV-1")
    assert sorted(p.name for p in env.outbox.iterdir()) == ["INV-1", "INV-1.xml"]
    assert not folder.exists()


def test_a_fifo_named_reason_json_is_never_opened_and_the_bundle_still_goes_back(
        cfg: Env, capsys) -> None:
    """quarantine/ is writable by the share's people: a FIFO planted as reason.json is
    not opened (that blocks for good). retry says so on stderr, tells the invoice file by
    its name, puts the bundle back and removes the FIFO with outboxd's papers."""
    folder = quarantined(cfg)
    (folder / "reason.json").unlink()
    os.mkfifo(folder / "reason.json")
    assert without_blocking(lambda: main(["retry", "-c", str(cfg.config), BID[:12]]),
                            folder / "reason.json", "retry") == 0
    assert sorted(p.name for p in cfg.outbox.iterdir()) == ["INV-1001", "INV-1001.ready",
                                                           "INV-1001.xml"]
    assert not folder.exists()
    err = capsys.readouterr().err
    assert "reason.json" in err and "is a FIFO" in err and "told by its name" in err


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
