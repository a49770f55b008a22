"""The commands' tests keep the e-invoice engine out of the test process, and share a
configuration (`cfg`) and a clerk's file to attach (`timesheet`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Env
from helpers import pdf_bytes, write


@pytest.fixture(autouse=True)
def _engine_left_out_of_this_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """A command forks its reader only from a process without the engine (reader_child.
    may_fork: saxonche leaves a native thread behind). Loaded here once, by a test that
    evaluates a bundle in this process with pre-flight on, it made every later command
    of the run spawn its reader instead (~0.5 s of CPU each: test_attach and test_check
    took 144 s instead of 49). A test about the rules runs them in the command's reader
    (its config names `preflight`), or in a subprocess."""
    before = "saxonche" in sys.modules
    yield
    if not before and "saxonche" in sys.modules:
        pytest.fail(f"{request.node.nodeid} loaded the e-invoice engine in the test "
                    "process: every later command of the run spawns its reader; turn "
                    "pre-flight off in its config, or evaluate in a subprocess",
                    pytrace=False)


@pytest.fixture
def cfg(env: Env) -> Env:
    """The test outbox configured, posting to a port nothing listens on (a test that
    delivers starts its own receiver)."""
    env.write_config("http://127.0.0.1:9/bundles")
    return env


@pytest.fixture
def timesheet(tmp_path: Path) -> Path:
    """A two-page PDF in the clerk's own folder, outside the outbox."""
    return write(tmp_path / "home" / "timesheet.pdf", pdf_bytes(2))
