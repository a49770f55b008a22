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
    file that does not wait. The row asks the admin to run the retry: the clerk who reads
    it has no shell (it said "run outboxd retry", as if the clerk could)."""
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
    # The clerk who reads the row has no shell: the retry is the admin's to run.
    assert said["INV-1.xml"].endswith(
        "take INV-1.xml out of the outbox and ask the admin to run outboxd retry "
        "INV-1--bbbbbbbbbbbb")


def test_the_page_looks_at_each_folder_once_and_a_few_again_in_turn(
        tmp_path: Path, monkeypatch) -> None:
    """The page is rewritten every 2 s: each waiting file's quarantine folder is looked
    at once, then RELOOKED a refresh in turn — a sidecar moved out of it by hand is no
    longer named within a round of refreshes."""
    import os

    from daemon.report.sidecarheld import QuarantinedSidecars
    quarantine = tmp_path / "quarantine"
    day = quarantine / "2031-05-06"
    files = [f"INV-{i:03}.xml" for i in range(50)]
    j = Journal(tmp_path / "journal.sqlite3")
    try:
        with j.batch():
            for f in files:
                entry = day / f"{f[:-4]}--0123456789ab"
                (entry / f[:-4]).mkdir(parents=True)
                j.create(f, "quarantined", archive_dir=str(entry))
        outbox = OutboxConfig(path=tmp_path / "outbox")
        seen = QuarantinedSidecars()
        looks = [0]
        real = os.lstat

        def counting(path, *a, **kw):  # type: ignore[no-untyped-def]
            looks[0] += 1
            return real(path, *a, **kw)
        monkeypatch.setattr(os, "lstat", counting)
        assert len(seen.of(j, files, outbox, quarantine)) == 50 and looks[0] == 50
        (day / "INV-049--0123456789ab" / "INV-049").rmdir()
        rounds = 0
        while "INV-049.xml" in seen.of(j, files, outbox, quarantine):
            rounds += 1
            assert rounds <= 50 // QuarantinedSidecars.RELOOKED + 1
        assert looks[0] <= 50 + (rounds + 1) * QuarantinedSidecars.RELOOKED
    finally:
        j.close()
