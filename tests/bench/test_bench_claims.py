"""`python -m bench.claims`: the loop's claim of a burst alone, on a few bench bundles
(the real pipeline, journal and reader pool; one reader process)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import claims
from daemon.loop.pipeline import Pipeline


def test_every_dropped_bundle_is_claimed_into_processing_and_handed_to_delivery(
        tmp_path: Path) -> None:
    """The driver claims every bundle it dropped: the invoice files and sidecars leave
    the outbox for .outboxd/processing/, and each journal row is `delivering` (claimed,
    handed over), its work folder the one the files are in."""
    fig = claims.measure(tmp_path, n=3, reader_processes=1)
    outbox = tmp_path / "outbox"
    assert fig.bundles == 3
    assert sorted(p.name for p in outbox.iterdir()) == [".outboxd"]
    work_dirs = sorted((outbox / ".outboxd" / "processing").iterdir())
    assert len(work_dirs) == 3
    with sqlite3.connect(tmp_path / "state" / "journal.sqlite3") as db:
        rows = db.execute("SELECT invoice_file, state, work_dir FROM bundles").fetchall()
    assert sorted(r[0] for r in rows) == [f"INV-B0000{i}.xml" for i in (1, 2, 3)]
    assert {r[1] for r in rows} == {"delivering"}
    assert sorted(Path(r[2]) for r in rows) == work_dirs
    for invoice_file, _, work_dir in rows:
        assert (Path(work_dir) / invoice_file).is_file()


def test_the_statements_are_those_sqlite_ran_on_the_journal_during_the_claims(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement count comes from SQLite's trace callback on the journal's connection,
    for the claims only: five more statements run inside claim_held count five more, the
    statements of the reads and decisions before it count none; a bundle's figure is the
    total over the bundles."""
    plain = claims.measure(tmp_path / "plain", n=2, readers=False)
    claim_held = Pipeline.claim_held

    def five_more(self: Pipeline, now: float) -> Iterator[object]:
        for _ in range(5):
            self.j._db.execute("SELECT 1").fetchall()
        return claim_held(self, now)

    monkeypatch.setattr(Pipeline, "claim_held", five_more)
    more = claims.measure(tmp_path / "more", n=2, readers=False)
    assert plain.statements > 0
    assert more.statements == plain.statements + 5
    assert plain.a_bundle()["statements_a_bundle"] == round(plain.statements / 2, 2)


def test_an_invalid_bench_bundle_stops_the_measurement_before_any_claim(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bench bundle that does not read valid would be quarantined, not claimed for
    delivery: the driver refuses it, naming the file and what is wrong, before anything
    is claimed or timed (every file still in the outbox)."""
    monkeypatch.setattr(claims, "write_bundles", _bundles_with_a_broken_pdf)
    with pytest.raises(RuntimeError, match=r"INV-B00002\.xml.*timesheet\.pdf"):
        claims.measure(tmp_path, n=2, readers=False)
    outbox = tmp_path / "outbox"
    assert (outbox / "INV-B00002.xml").is_file()
    assert (outbox / "INV-B00002" / "timesheet.pdf").is_file()
    assert not any((outbox / ".outboxd" / "processing").iterdir())


def _bundles_with_a_broken_pdf(root: Path, n: int) -> None:
    from bench.corpus import write_bundles
    write_bundles(root, n)
    (root / "INV-B00002" / "timesheet.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00" * 64)


def test_a_measurement_leaves_nothing_open_in_its_folder(tmp_path: Path) -> None:
    """Each round is a fresh outbox and journal: the journal (its file and the WAL it
    holds open) is closed once measured, not left open for every round of the run."""
    claims.measure(tmp_path, n=2, readers=False)
    open_here = [link for link in Path("/proc/self/fd").iterdir()
                 if str(tmp_path) in _target(link)]
    assert open_here == []


def _target(link: Path) -> str:
    try:
        return str(link.readlink())
    except OSError:  # the directory's own descriptor, closed while listing
        return ""


def test_main_prints_the_least_of_the_rounds_and_removes_each_rounds_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rounds: each round in its own temp folder (gone afterwards); the printed CPU and
    wall time a bundle are the least of the rounds, each round's listed beside them."""
    rounds = iter([claims.Figures(4, 0.008, 0.020, 12), claims.Figures(4, 0.004, 0.024, 12),
                   claims.Figures(4, 0.006, 0.016, 12)])
    folders: list[Path] = []

    def measure(work: Path, n: int, *_: object) -> claims.Figures:
        assert work.is_dir() and n == 4
        folders.append(work)
        return next(rounds)

    monkeypatch.setattr(claims, "measure", measure)
    monkeypatch.setattr(claims.tempfile, "tempdir", str(tmp_path))
    assert claims.main(["--bundles", "4", "--rounds", "3", "--no-readers"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"bundles": 4, "cpu_ms_a_bundle": 1.0, "wall_ms_a_bundle": 4.0,
                   "statements_a_bundle": 3.0, "cpu_ms_rounds": [2.0, 1.0, 1.5],
                   "wall_ms_rounds": [5.0, 6.0, 4.0]}
    assert len(set(folders)) == 3
    assert list(tmp_path.iterdir()) == []


STRACE = """\
100 futex(0x7f, FUTEX_WAKE_PRIVATE, 1) = 0
100 newfstatat(AT_FDCWD, "/outboxd-bench-claims-start", 0x7ffd, AT_SYMLINK_NOFOLLOW) = -1 ENOENT
100 pwrite64(5, "..."..., 4096, 8192) = 4096
101 read(7,  <unfinished ...>
100 fcntl(5, F_SETLK, {l_type=F_RDLCK}) = 0
100 write(3, "{\\"event\\": \\"bundle claimed\\"}"..., 40 <unfinished ...>
101 <... read resumed>"x", 1) = 1
100 <... write resumed>) = 40
100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---
102 pwrite64(9, "..."..., 4096, 0) = 4096
100 pwrite64(5, "..."..., 4096, 12288) = 4096
100 rename("/o/INV-B00001.xml", "/o/.outboxd/processing/x/INV-B00001.xml") = 0
100 newfstatat(AT_FDCWD, "/outboxd-bench-claims-end", 0x7ffd, AT_SYMLINK_NOFOLLOW) = -1 ENOENT
100 pwrite64(5, "..."..., 4096, 16384) = 4096
102 +++ exited with 0 +++
"""


def test_count_syscalls_counts_the_loop_threads_calls_between_the_markers(
        tmp_path: Path) -> None:
    """Only the lines of the thread that left the markers, strictly between them, each
    call once (an unfinished call and its resumption are one call; signals are none);
    other threads' calls and the calls before and after are not counted."""
    trace = tmp_path / "claims.strace"
    trace.write_text(STRACE)
    counted = claims.count_syscalls(trace, 2)
    assert counted == {"syscalls_a_bundle": 2.5,
                       "by_call_a_bundle": {"pwrite64": 1.0, "fcntl": 0.5, "write": 0.5,
                                            "rename": 0.5}}


def test_count_syscalls_of_a_trace_without_markers_says_how_to_record_one(
        tmp_path: Path) -> None:
    """A trace recorded without --markers has nothing to count: the error names the file
    and the command that records one, instead of a bare StopIteration."""
    trace = tmp_path / "plain.strace"
    trace.write_text(STRACE.replace("/outboxd-bench-claims-end", "/elsewhere"))
    with pytest.raises(SystemExit, match=r"plain\.strace: no markers.*--markers"):
        claims.main(["--count-syscalls", str(trace)])
