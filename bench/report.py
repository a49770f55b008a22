"""Figures, the issue's targets, the machine, and the dated section in
docs/benchmarks.md. A figure is a number with a unit and, where the target
table names it, met or missed."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.corpus import REPO
from bench.procs import machine_cpu_seconds
from daemon.watching.mounts import mount_of

BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"


@dataclass
class Figure:
    key: str
    label: str
    value: float | None  # None: not measured (the reason is in note)
    unit: str
    note: str = ""
    # What the value is for a bundle, worked out from the value itself (so that a
    # median over rounds says the median's rate, not the first round's): "cpu" for
    # CPU seconds (ms a bundle), "time" for a burst's seconds (bundles a second).
    rate: str = ""
    bundles: int = 0

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit in ("x", "s") or self.unit == "":
            return f"{self.value:.2f}{' ' + self.unit if self.unit else ''}"
        if self.unit == "ms" and abs(self.value) < 1:
            return f"{self.value:.3f} ms"  # an lxml parse of a small invoice
        if self.unit == "%":
            return f"{self.value:.2f} %"
        return f"{self.value:.1f} {self.unit}"

    def text(self) -> str:
        """The note as printed and recorded: the note, then the rate of this value."""
        rate = ""
        if self.value is not None and self.bundles and self.rate == "cpu":
            rate = f"{self.value * 1000 / self.bundles:.1f} ms a bundle"
        elif self.value and self.bundles and self.rate == "time":
            rate = f"{self.bundles / self.value:.0f} bundles/s"
        return "; ".join(part for part in (self.note, rate) if part)


@dataclass(frozen=True)
class Table:
    """Rows a phase shows beside its figures (not judged), printed and recorded whole."""

    intro: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how a phase measured, and failures
    tables: dict[str, Table] = field(default_factory=dict)  # by title
    # With --rounds: each round's value of a merged figure (the figure holds the median).
    rounds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, label: str, value: float | None, unit: str, note: str = "",
            rate: str = "", bundles: int = 0) -> None:
        self.figures[key] = Figure(key, label, value, unit, note, rate, bundles)

    def value(self, key: str) -> float | None:
        fig = self.figures.get(key)
        return fig.value if fig else None


@dataclass(frozen=True)
class Target:
    figure: str  # the wording
    target: str
    key: str  # the figure it judges
    met: Callable[[float], bool]


HTTPX_RATIO = 1.4  # issue 5: the daemon's burst at most 1.4× the plain httpx time

# The issues' target tables (issue 5, and issue 8's pre-flight ratio); latency figures are
# already "beyond settle".
TARGETS = (
    Target("idle CPU with 2,000 waiting", "≤ 0.5 % of one core", "backlog_2000_cpu",
           lambda v: v <= 0.5),
    Target("RSS with 2,000 waiting", "≤ 120 MB", "backlog_2000_rss", lambda v: v <= 120),
    Target("idle CPU with 20,000 waiting", "≤ 1 % of one core", "backlog_20000_cpu",
           lambda v: v <= 1.0),
    Target("READY with 20,000 waiting", "≤ 10 s", "backlog_20000_ready", lambda v: v <= 10),
    Target("throughput, 300 bundles, vs the inotifywait+curl script",
           "≥ 2× (script time / daemon time)", "ratio_peer", lambda v: v >= 2.0),
    Target("throughput, 300 bundles, vs plain httpx",
           f"≤ {HTTPX_RATIO:g}× (daemon time / httpx time)", "ratio_baseline",
           lambda v: v <= HTTPX_RATIO),
    Target("throughput, 300 bundles, pre-flight on vs off (issue 8)",
           "≤ 1.3× (on time / off time)", "ratio_preflight", lambda v: v <= 1.3),
    Target("latency p50", "≤ settle + 150 ms", "latency_p50", lambda v: v <= 150),
    Target("latency max", "≤ settle + 1 s", "latency_max", lambda v: v <= 1000),
    Target("`status --json`, 100,000 rows", "< 1 s", "journal_100000_status", lambda v: v < 1.0),
)


def verdict(target: Target, results: Results) -> str:
    """Met or missed by the median; when the rounds fall on both sides of the target,
    how many met it: a median near the target can land on either side by chance."""
    value = results.value(target.key)
    if value is None:
        return "not measured"
    said = "met" if target.met(value) else "**missed**"
    each = results.rounds.get(target.key, [])
    met = sum(1 for v in each if target.met(v))
    if 0 < met < len(each):
        said += f" ({met} of {len(each)} rounds met it)"
    return said


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fs_type(path: Path) -> str:
    """The file system of `path` as the daemon finds it (daemon.watching.mounts), with its mount
    point."""
    mount = mount_of(path)
    return f"{mount[1]} ({mount[0]})" if mount is not None else "unknown (?)"


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + (" (with uncommitted changes)" if dirty else "")


def cores() -> int:
    """The cores the header names and the floor divides by: one count for both."""
    return os.cpu_count() or 1


def machine(work: Path) -> dict[str, str]:
    return {
        "cores": str(cores()),
        "CPU": _cpu_model(),
        "Python": platform.python_version(),
        "kernel": platform.release(),
        "file system of the work dir": fs_type(work),
        "commit": git_commit(),
        "load average at start (1/5/15 min)": load_average(),
    }


def load_average() -> str:
    """Other work on the machine shares the cores with every contender: say how much."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths)),
            *(fmt.format(*r) for r in rows)]


def print_results(results: Results, info: dict[str, str]) -> None:
    print()
    for k, v in info.items():
        print(f"{k}: {v}")
    print()
    rows = [(f.label, f.shown(), f.text()) for f in results.figures.values()]
    print("\n".join(table(rows, ("figure", "value", "note"))))
    judged = [(t.figure, t.target, results.figures[t.key].shown(),
               verdict(t, results).replace("**", "")) for t in TARGETS if t.key in results.figures]
    if judged:
        print()
        print("\n".join(table(judged, ("target", "wanted", "measured", "verdict"))))
    for note in results.notes:
        print(f"- {note}")
    for title, t in results.tables.items():
        print(f"\n{title}: {t.intro}")
        print("\n".join(table(t.rows, t.header)))


def _md_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(esc(c) for c in r) + " |" for r in rows)]


def record(results: Results, info: dict[str, str], command: str, started: datetime) -> Path:
    """Append a dated section to docs/benchmarks.md (created with its preamble if absent)."""
    lines = ["", f"## {started.strftime('%Y-%m-%d %H:%M')} UTC — commit {info['commit']}", "",
             f"Command: `{command}`", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "### Targets (issues 5 and 8)", ""]
    lines += _md_table([(t.figure, t.target, results.figures[t.key].shown()
                         if t.key in results.figures else "n/a", verdict(t, results))
                        for t in TARGETS], ("figure", "target", "measured", "verdict"))
    lines += ["", "### Every figure", ""]
    lines += _md_table([(f.label, f.shown(), f.text()) for f in results.figures.values()],
                       ("figure", "value", "how / note"))
    if results.notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in results.notes]
    for title, t in results.tables.items():
        lines += ["", f"### {title}", "", t.intro, ""] + _md_table(t.rows, t.header)
    ended = datetime.now(UTC)
    lines += ["", f"Run took {(ended - started).total_seconds():.0f} s; load average at the "
              f"end {load_average()}.", ""]
    if not BENCHMARKS_MD.exists():
        BENCHMARKS_MD.write_text(PREAMBLE)
    with open(BENCHMARKS_MD, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return BENCHMARKS_MD


# Only for a docs/benchmarks.md that is not there: what each phase measures is said
# at the top of that file, and in the README's "Benchmarks".
PREAMBLE = """# Benchmarks

Figures from `python -m bench --record` (see README, "Benchmarks"), newest
last. Each section names the machine, the commit and the exact command; ratios
come from the same run. These are benchmarks, not tests: a missed target is
recorded with its cause, not hidden.
"""


def steal_seconds() -> float | None:
    """CPU time the host's hypervisor took from this machine so far (/proc/stat "steal",
    all cores); None where the kernel does not say."""
    try:
        return machine_cpu_seconds()[7]
    except (OSError, IndexError, ValueError):
        return None


def add_steal(results: Results, phase: str, before: float | None) -> None:
    """How much CPU the host took away during a phase: a run whose phases lost very
    different amounts compares machines, not contenders."""
    after = steal_seconds()
    if before is None or after is None:
        return
    results.add(f"steal_{phase}", f"{phase}: CPU stolen by the host (all cores)",
                after - before, "s", "from /proc/stat; 0 on a machine of its own")


def merge_rounds(results: Results, rounds: list[Results]) -> None:
    """Each figure of the bursts once: its median over the rounds (every round's value in
    the note), and the ratios as the medians of each round's own ratio — a ratio is only
    fair between bursts that ran minutes, not hours, apart."""
    if len(rounds) == 1:
        results.figures.update(rounds[0].figures)
        return
    keys = list(dict.fromkeys(k for r in rounds for k in r.figures))
    for key in keys:
        figs = [r.figures[key] for r in rounds if key in r.figures]
        values = [f.value for f in figs if f.value is not None]
        first = figs[0]
        if not values:
            results.figures[key] = first
            continue
        each = ", ".join(Figure(key, "", v, first.unit).shown() for v in values)
        note = f"median of {len(values)} rounds ({each})"
        if first.note and not first.note.startswith("n/a"):
            note += f"; {first.note}"
        results.add(key, first.label, statistics.median(values), first.unit, note,
                    first.rate, first.bundles)
        results.rounds[key] = values
