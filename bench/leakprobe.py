"""`outboxd` with a bench-only SIGUSR2 probe, for the leak hunt (bench/leakhunt.py).

    python -m bench.leakprobe OUT.json run -c CONFIG

runs the daemon as `python -m daemon run -c CONFIG` does, after installing a SIGUSR2
handler that writes, to OUT.json (replaced whole), the number of live instances of every
class of the daemon's modules and the summed length of every container (dict, set, list,
deque) those instances hold as attributes: "loop.pipeline.Pipeline._claim_paused": 0. A map
that keeps one entry per bundle handled shows here as a figure that grows wave after
wave. The product has no such hook: the handler runs in the main thread (the loop)
between two of its bytecodes, as any signal handler does, and the readers (spawned) are
not probed. Nothing here is imported by the daemon."""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

_CONTAINERS = (dict, set, frozenset, list, collections.deque)


def sizes(samples: dict[str, str]) -> dict[str, int]:
    """Instances per daemon class ("#module.Class") and container lengths per attribute;
    `samples` gets the last few keys of each dict or set that is not empty."""
    out: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = getattr(cls, "__module__", "")
        if not isinstance(module, str) or not module.startswith("daemon."):
            continue
        name = f"{module.removeprefix('daemon.')}.{cls.__qualname__}"
        out[f"#{name}"] += 1
        attrs: dict[str, Any] = {}
        try:
            attrs.update(vars(obj))
        except TypeError:
            pass
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
        for attr, value in attrs.items():
            if isinstance(value, _CONTAINERS):
                try:
                    out[f"{name}.{attr}"] += len(value)
                    if isinstance(value, dict | set) and value:
                        # A few of its keys, to tell what a growing map keeps.
                        shown = ", ".join(repr(k)[:80] for k in list(value)[-3:])
                        samples[f"{name}.{attr}"] = shown
                except RuntimeError:
                    continue  # changed by another thread meanwhile
    out["#gc objects"] = len(gc.get_objects())
    return dict(sorted(out.items()))


def install(path: Path) -> None:
    def dump(*_: Any) -> None:
        samples: dict[str, str] = {}
        try:
            found: dict[str, Any] = {"sizes": sizes(samples), "samples": samples}
        except Exception as exc:  # noqa: BLE001 - said in the answer, the daemon goes on
            found = {"sizes": {}, "samples": {"#probe failed": repr(exc)}}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(found))
        os.replace(tmp, path)

    signal.signal(signal.SIGUSR2, dump)


# Guarded: the readers (multiprocessing "spawn") import this module as __mp_main__.
if __name__ == "__main__":
    install(Path(sys.argv[1]))
    from daemon.entry import main

    raise SystemExit(main(sys.argv[2:]))
