"""What every phase gets: the work dir, the corpus (built on first use), the results,
and a stack that stops every process the phase started, whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench import corpus
from bench.procs import Proc
from bench.report import Results

P = TypeVar("P", bound=Proc)


@dataclass
class Context:
    work: Path
    n: int
    backlog_sizes: tuple[int, ...]
    journal_rows: int
    results: Results = field(default_factory=Results)
    journal_days: float = 365
    corpus_size: int = 0
    _corpus: corpus.Corpus | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def corpus(self) -> corpus.Corpus:
        if self._corpus is None:
            print(f"building {self.corpus_size} bundles …", flush=True)
            self._corpus = corpus.build(self.work, self.corpus_size)
        return self._corpus

    def note(self, text: str) -> None:
        """A note for the printed and recorded results, once however many phases say it."""
        if text not in self.results.notes:
            self.results.notes.append(text)

    def start(self, proc: P) -> P:
        """Register a started process; it is stopped when the phase ends."""
        self._stack.callback(proc.stop)
        return proc

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"== {name}", flush=True)
        self._stack = contextlib.ExitStack()
        with self._stack:
            yield
