"""The oracle of `python -m bench.fuzz` (its docstring says what it holds against each
case): judge() of what one evaluation gave, Campaign's tally of the outcomes and of
each case's time and memory, and count_searched(), the words and bytes of page content
a PDF invoice's text search let pypdf parse, which buy a case time (daemon/reading/
pdftext.py lets a file of a few KB through to seconds of search by design)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fuzzseeds import REPO

EXTENSIONS = {"pdfinvoice": "pdf"}


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    seed_name: str
    ext: str
    channel: str
    mutations: tuple[str, ...]
    data: bytes

    def label(self) -> dict[str, Any]:
        return {"case": self.number, "kind": self.kind, "from": self.seed_name,
                "channel": self.channel, "mutations": list(self.mutations),
                "bytes": len(self.data)}


def documented_codes() -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", (REPO / "docs" / "codes.md").read_text(),
                          re.M))


def judge(result: Any, stem: str, codes: set[str]) -> tuple[str, str | None]:
    """(the outcome in a word or two, the failure's signature or None) of one evaluate."""
    import traceback

    from daemon.bundle import Bundle
    from daemon.errors import InputError
    if isinstance(result, Bundle):
        for f in result.findings:
            if f.code not in codes:
                return "finding", f"undocumented code {f.code!r}"
            if not f.file.startswith(stem) or not f.message.strip():
                return "finding", f"{f.code}: names another file ({f.file!r}) or says nothing"
        errors = sorted({f.code for f in result.errors})
        return ("refused " + ",".join(errors)) if errors else "accepted", None
    if isinstance(result, InputError):
        if result.code not in codes:
            return "input-error", f"undocumented code {result.code!r}"
        if not result.file.startswith(stem):
            return "input-error", f"{result.code}: names another file ({result.file!r})"
        return f"refused {result.code}", None
    frames = traceback.extract_tb(result.__traceback__)
    ours = [f for f in frames if "/daemon/" in f.filename]
    where = [f"{Path(f.filename).name}:{f.name}" for f in (ours[-1:] + frames[-1:])]
    words = re.sub(r"\d+", "N", str(result).split("\n", 1)[0])[:80]
    return "exception", f"{type(result).__name__} at {' / '.join(where)}: {words}"


def said(result: Any) -> tuple[str, ...]:
    """What a clerk is told of one evaluate: its findings' lines (or the InputError's), in
    order. Read again by another process it must be the same, word for word: a message
    that differs from read to read (pypdf's repr of an object held its reader's address)
    is rewritten into the errors file, and told again, at every read of the same file."""
    from daemon.bundle import Bundle
    from daemon.errors import InputError
    if isinstance(result, Bundle):
        return tuple(sorted(f.line() for f in result.findings))
    if isinstance(result, InputError):
        return (f"{result.file}: {result.message}",)
    return ()


def count_searched() -> list[int]:
    """From now on, the words and the bytes of page content the PDF text search lets
    pypdf parse are added up in the list's two items (a page or form its budget refuses
    is not parsed, and not added)."""
    from daemon.reading.pdftext import TextBudget
    searched = [0, 0]
    take = TextBudget.take_content

    def counted(budget: TextBudget, data: bytes) -> None:
        words, size = budget.words, budget.bytes
        take(budget, data)
        searched[0] += budget.words - words
        searched[1] += budget.bytes - size
    TextBudget.take_content = counted  # type: ignore[method-assign,assignment]
    return searched


@dataclass
class Campaign:
    seed: int
    slow: float
    slow_per_mb: float
    slow_per_word: float
    slow_per_byte: float
    rss_mb: float
    save: Path | None
    # MB more a MB of the case's file: a read's memory grows with its file by design
    # (docs/operations.md: a batch invoice file ~9 bytes a byte of XML, ubl-embedded 12).
    rss_per_mb: float = 12.0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[int]] = field(default_factory=dict)
    slowest: tuple[float, int] = (0.0, -1)
    most_memory: tuple[float, int] = (0.0, -1)
    # Cases over `slow` that what their text search parsed allowed (case, wall).
    slow_by_search: list[tuple[int, float]] = field(default_factory=list)

    def fail(self, signature: str, case: Case, **more: Any) -> None:
        seen = signature in self.failures
        self.failures.setdefault(signature, []).append(case.number)
        if not seen:
            print(json.dumps({"failure": signature, "seed": self.seed, **case.label(), **more}),
                  flush=True)
        if self.save is not None:
            self.save.mkdir(parents=True, exist_ok=True)
            ext = EXTENSIONS.get(case.kind, case.ext)
            (self.save / f"{self.seed}-{case.number}-{case.kind}.{ext}").write_bytes(case.data)

    def took(self, case: Case, outcome: str, failure: str | None, wall: float, cpu: float,
             grew: float, tb: str | None, searched: tuple[int, int] = (0, 0)) -> None:
        self.outcomes[outcome if failure is None else "failed"] += 1
        if failure is not None:
            self.fail(failure, case, traceback=tb)
        allowed = self.slow + self.slow_per_mb * len(case.data) / 1e6
        words, size = searched
        # The lesser of the two: on shared cores a case waits for a CPU (wall far over
        # CPU: seed 29's case 2941, 6.2 s wall for 2.9 s of CPU at a load of 5), while
        # the e-invoice engine's threads can spend more CPU than the wall time it takes.
        spent = min(wall, cpu)
        if allowed < spent <= allowed + self.slow_per_word * words + self.slow_per_byte * size:
            self.slow_by_search.append((case.number, round(spent, 2)))
        elif spent > allowed:
            self.fail(f"slow: {case.kind} over {self.slow:g} s + {self.slow_per_mb:g} s/MB "
                      f"+ {self.slow_per_word:g} s/word, {self.slow_per_byte:g} s/byte searched "
                      f"({outcome})", case, wall=round(wall, 2), cpu=round(cpu, 2),
                      searched_words=words, searched_bytes=size)
        if grew > self.rss_mb + self.rss_per_mb * len(case.data) / 1e6:
            self.fail(f"memory: {case.kind} peak grew over {self.rss_mb:g} MB + "
                      f"{self.rss_per_mb:g} MB/MB ({outcome})",
                      case, grew_mb=round(grew))
        self.slowest = max(self.slowest, (round(wall, 3), case.number))
        self.most_memory = max(self.most_memory, (round(grew, 1), case.number))
