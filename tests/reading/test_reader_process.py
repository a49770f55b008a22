"""A reader process (daemon/reading/reader_process.py): errors packed so that they keep their
kind across the boundary, and a reader that exits on its own when the daemon's end of
the pipe closes (the daemon killed)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import wait_for  # noqa: E402

from daemon.errors import HostileInput, InputError, ReaderFailed  # noqa: E402
from daemon.fs.fswrite import held_path  # noqa: E402
from daemon.reading import reader_process, readers  # noqa: E402
from reading.test_readers import alive, child_pids, readers_of  # noqa: E402


def test_errors_keep_their_kind_across_the_boundary() -> None:
    """InputError (and HostileInput) keep code, file and message; an OSError keeps its
    class, errno and file name; anything else becomes ReaderFailed with the child's
    traceback in its text, never an InputError."""
    cases: list[BaseException] = [
        InputError("invalid-xml", "A.xml", "is not well-formed XML — export it again"),
        HostileInput("hostile", "B.xml", "declares entities — export it again"),
        FileNotFoundError(2, "No such file or directory", "/x/C.xml"),
    ]
    for exc in cases:
        back = reader_process.unpack(reader_process.pack(exc))
        assert type(back) is type(exc)
        assert str(back) == str(exc)
        if isinstance(exc, InputError):
            assert isinstance(back, InputError)
            assert (back.code, back.file, back.message) == (exc.code, exc.file, exc.message)
    try:
        raise KeyError("surprise")
    except KeyError as exc:
        back = reader_process.unpack(reader_process.pack(exc))
    assert isinstance(back, ReaderFailed) and not isinstance(back, InputError)
    assert "KeyError" in str(back) and "test_errors_keep_their_kind" in str(back)

def test_an_os_error_through_a_held_folder_crosses_the_boundary_with_its_real_name(
        tmp_path: Path) -> None:
    """A write the reader made through a folder held by descriptor (a conversion) and
    that failed names /proc/self/fd/N/…, a number only the reader process knew: it
    reaches the daemon naming the folder's real path, its kind and errno kept."""
    folder = tmp_path / "INV-1.converted"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        exc = PermissionError(13, "Permission denied", f"{held_path(fd)}/scan.pdf")
        back = reader_process.unpack(reader_process.pack(exc))
    finally:
        os.close(fd)
    assert type(back) is PermissionError and back.errno == 13
    assert back.filename == f"{folder}/scan.pdf"
    assert "/proc/self/fd" not in str(back)


def test_children_exit_when_the_daemon_is_killed(env: Any, start_daemon: Any) -> None:
    """SIGKILL of `outboxd run` (nothing runs its shutdown): its reader processes notice
    the pipe from the daemon closing and exit on their own, and nothing (such as
    multiprocessing's resource tracker reporting leaked semaphores) writes a plain-text
    line among the daemon's JSON log lines."""
    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"})
    daemon = start_daemon()
    kids = child_pids(daemon.popen.pid)
    assert len(readers_of(kids)) == min(2, os.cpu_count() or 1)
    daemon.popen.kill()
    daemon.popen.wait(timeout=30)
    wait_for(lambda: not any(alive(p) for p in kids), timeout=30,
             what="the daemon's children to exit")
    for line in daemon.stderr().splitlines():
        assert isinstance(json.loads(line), dict), line


def test_a_reader_reads_with_the_garbage_collector_on_and_its_imports_frozen(
        tmp_path: Path) -> None:
    """A spawned reader makes its imports with the garbage collector off (its passes cost
    ~0.1 s of each reader's start), and before it says it is ready freezes what they
    made out of the collector's passes and turns it on: its reads run with it on."""
    import reader_targets
    from helpers import drop_bundle, pdf_bytes, ubl_invoice

    from daemon.watching.scan import candidate_for
    from reading.test_readers import settings_for
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 1})
    drop_bundle(s.outbox.path, "G1", {"a.pdf": pdf_bytes()}, ubl_invoice("G1"))
    r = readers.Readers(None)
    r.configure(s, engine=False)
    try:
        enabled, frozen = r.read(candidate_for(s.outbox, "G1.xml"), s, reader_targets.gc_of_reader)
    finally:
        r.stop()
    assert enabled and frozen > 10_000
