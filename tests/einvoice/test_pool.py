"""Pre-flight in a process of its own: the same findings as in the daemon's process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.einvoice import pool
from daemon.einvoice.preflight import read_and_preflight
from daemon.errors import InputError

from .broken import BASE, BROKEN


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    pool.start(tmp_path_factory.mktemp("cache"))
    yield
    pool.stop()


def test_the_child_finds_what_the_daemons_process_finds(child: None, tmp_path: Path) -> None:
    """A broken invoice checked in the pre-flight process gives the same findings (rule
    ids, texts, severities) as the in-process engine; a valid one gives none."""
    assert pool.running()
    data, rule = BROKEN["wrong-totals"]
    bad = tmp_path / "bad.xml"
    bad.write_bytes(data)
    there = pool.read_and_preflight_anywhere(bad, "bad.xml", "error")
    assert any(rule in f.message for f in there.findings)
    assert there == read_and_preflight(bad, "bad.xml", "error")
    good = tmp_path / "good.xml"
    good.write_bytes(BASE)
    assert pool.read_and_preflight_anywhere(good, "good.xml", "error").findings == ()


def test_a_file_that_cannot_be_read_is_an_input_error_as_in_process(child: None,
                                                                    tmp_path: Path) -> None:
    """An invoice file that is not a regular file raises the same InputError (code and
    file) through the child as in the daemon's own process."""
    link = tmp_path / "link.xml"
    link.symlink_to(tmp_path / "elsewhere.xml")
    with pytest.raises(InputError) as there:
        pool.read_and_preflight_anywhere(link, "link.xml", "error")
    with pytest.raises(InputError) as here:
        read_and_preflight(link, "link.xml", "error")
    assert (there.value.code, there.value.file) == (here.value.code, here.value.file)


def test_where_no_child_can_start_the_caller_is_told_so(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """An environment without child processes (no POSIX semaphores, an interpreter a
    service user cannot start again) gives ChildUnavailable, not a configuration error,
    and pre-flight then runs in the calling process with the same result."""
    import multiprocessing

    pool.stop()  # the module's child, if the tests above started it

    def no_children(method: str) -> object:
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(multiprocessing, "get_context", no_children)
    with pytest.raises(pool.ChildUnavailable):
        pool.start(tmp_path)
    assert not pool.running()
    data, rule = BROKEN["wrong-totals"]
    bad = tmp_path / "bad.xml"
    bad.write_bytes(data)
    assert any(rule in f.message
               for f in pool.read_and_preflight_anywhere(bad, "bad.xml", "error").findings)
