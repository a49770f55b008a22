"""bench/leakprobe.py: what the leak hunt reads of a daemon's maps."""

from __future__ import annotations

import gc

from bench.leakprobe import sizes
from daemon.loop.timers import Timers


def test_the_probe_counts_a_daemon_objects_map_entries_and_names_a_few_keys() -> None:
    """A map of a daemon class's object is summed by class and attribute, its instances
    counted, and some of its keys named (what tells a growing map's entries apart)."""
    base = sizes({})
    t = Timers()
    for n in range(3):
        t.at(("bundle", f"INV-{n}.xml"), 100.0 + n)
    samples: dict[str, str] = {}
    found = sizes(samples)
    assert found["loop.timers.Timers._due"] == base.get("loop.timers.Timers._due", 0) + 3
    assert found["#loop.timers.Timers"] == base.get("#loop.timers.Timers", 0) + 1
    # Other tests' Timers may be alive too (the sample is the last one gc lists): the keys
    # named are the last few of some live instance's map.
    live = [o for o in gc.get_objects() if isinstance(o, Timers) and o._due]
    assert samples["loop.timers.Timers._due"] in {
        ", ".join(repr(k)[:80] for k in list(o._due)[-3:]) for o in live}
    assert ", ".join(repr(k) for k in list(t._due)[-3:]).startswith("('bundle', 'INV-")
