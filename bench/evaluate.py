"""`python -m bench.evaluate [--n N] [--passes P] [--preflight] [--profile]`: the CPU of
reading, matching and validating one bundle (`daemon.delivery.finish.evaluate`), in this process.

The bench's own bundles (bench/corpus.py: a Peppol invoice, a ~100 KB PDF and a
~50 KB PNG) are written to a temp folder and evaluated P times each; the figure is
the median over the passes of CPU time (process_time) per bundle, so a noisy
neighbour on a shared machine moves it less than wall time. `[einvoice] preflight`
is "off" unless --preflight (pre-flight runs in a child process in the daemon and
has its own phase). --profile adds cProfile's top entries of one more pass.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import write_bundles
from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.delivery.finish import evaluate
from daemon.watching.scan import Candidate, candidate_for


@dataclass(frozen=True)
class Figures:
    bundles: int
    per_pass_ms: tuple[float, ...]  # CPU per bundle in each pass

    @property
    def median_ms(self) -> float:
        return statistics.median(self.per_pass_ms)


def outbox_of_bundles(work: Path, n: int, preflight: bool, more: str = ""
                      ) -> tuple[Settings, list[Candidate]]:
    """n bench bundles in `work`/outbox, the settings of a daemon on it (`more`: TOML
    sections added to its config) and each bundle's candidate, as the loop finds it."""
    root = work / "outbox"
    write_bundles(root, n)
    config = work / "config.toml"
    config.write_text(f'[outbox]\npath = {json.dumps(str(root))}\n'
                      f'[paths]\nstate_dir = {json.dumps(str(work / "state"))}\n'
                      '[delivery]\nurl = "http://127.0.0.1:9/bundles"\n'
                      f'[einvoice]\npreflight = "{"error" if preflight else "off"}"\n'
                      + more)
    settings = load_settings(config)
    return settings, [candidate_for(settings.outbox, f"INV-B{i:05d}.xml")
                      for i in range(1, n + 1)]


def measure(work: Path, n: int = 100, passes: int = 7, preflight: bool = False,
            profile: bool = False) -> Figures:
    settings, cands = outbox_of_bundles(work, n, preflight)
    for cand in cands:  # warm up (imports, caches); every bench bundle must be valid
        errors = evaluate(cand, settings).errors
        if errors:
            raise RuntimeError(f"{cand.invoice.name}: " + "; ".join(f.line() for f in errors))
    per_pass: list[float] = []
    for _ in range(passes):
        start = time.process_time()
        for cand in cands:
            evaluate(cand, settings)
        per_pass.append((time.process_time() - start) / n * 1e3)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for cand in cands:
            evaluate(cand, settings)
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return Figures(n, tuple(per_pass))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__)
    ap.add_argument("--n", type=int, default=100, help="bundles (default 100)")
    ap.add_argument("--passes", type=int, default=7, help="passes over them (default 7)")
    ap.add_argument("--preflight", action="store_true", help='[einvoice] preflight = "error"')
    ap.add_argument("--profile", action="store_true", help="cProfile top 25 of one more pass")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="outboxd-evaluate-") as tmp:
        fig = measure(Path(tmp), args.n, args.passes, args.preflight, args.profile)
    print(f"evaluate: {fig.median_ms:.3f} ms CPU per bundle (median of {len(fig.per_pass_ms)} "
          f"passes over {fig.bundles} bundles; min {min(fig.per_pass_ms):.3f}, "
          f"max {max(fig.per_pass_ms):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
