"""The commands' tests keep the e-invoice engine out of the test process."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


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
