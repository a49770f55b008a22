"""A waiting invoice file's sidecar kept in the quarantine folder of an earlier bundle of
it (daemon/report/sidecarheld.py), from a real journal and real folders."""

from __future__ import annotations

from pathlib import Path

from daemon.configuration.config import OutboxConfig
from daemon.journal import Journal
from daemon.report.sidecarheld import sidecars_in_quarantine


def test_the_latest_quarantined_bundle_holding_the_sidecar_folder_is_named(
        tmp_path: Path) -> None:
    """Of each waiting file the latest quarantined row counts, and only where its folder
    holds a folder of the sidecar's name: not a file of that name, not a sent row, not a
    file that does not wait."""
    quarantine = tmp_path / "quarantine"
    day = quarantine / "2031-05-06"
    j = Journal(tmp_path / "journal.sqlite3")
    try:
        for name, state, folder, sidecar in [
                ("INV-1.xml", "quarantined", "INV-1--aaaaaaaaaaaa", "dir"),
                ("INV-1.xml", "quarantined", "INV-1--bbbbbbbbbbbb", "dir"),
                ("INV-2.xml", "quarantined", "INV-2--cccccccccccc", "file"),
                ("INV-3.xml", "sent", "INV-3--dddddddddddd", "dir"),
                ("INV-4.xml", "quarantined", "INV-4--eeeeeeeeeeee", "dir"),
                ("INV-\udce9.xml", "quarantined", "INV-\udce9--ffffffffffff", "dir")]:
            entry = day / folder
            entry.mkdir(parents=True)
            side = entry / name.removesuffix(".xml")
            side.mkdir() if sidecar == "dir" else side.write_bytes(b"x")
            j.create(name, state, archive_dir=str(entry))
        said = sidecars_in_quarantine(
            j, ["INV-1.xml", "INV-2.xml", "INV-3.xml", "INV-\udce9.xml"],
            OutboxConfig(path=tmp_path / "outbox"), quarantine)
    finally:
        j.close()
    assert sorted(said) == ["INV-1.xml", "INV-\udce9.xml"]
    assert said["INV-1.xml"].startswith("a quarantined bundle of INV-1.xml holds a folder "
                                        "INV-1, in quarantine/2031-05-06/"
                                        "INV-1--bbbbbbbbbbbb/: ")
    assert said["INV-1.xml"].endswith("run outboxd retry INV-1--bbbbbbbbbbbb")
