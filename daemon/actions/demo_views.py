"""What `outboxd demo` shows while it runs (demo.py): each sample's state as the
journal has it, as a live table on a terminal (rich, imported here only, never on the
daemon's path), one line per change otherwise. Times are UTC and say so, as on every
other surface: the day folders in sent/ and quarantine/ are UTC days, and a local time
beside them disagrees with their date near midnight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from daemon.actions import demo_samples


@dataclass
class Seen:
    """A sample's bundle as the journal has it."""

    state: str = "-"
    detail: str = ""
    codes: tuple[str, ...] = ()


def reached(sample: demo_samples.Sample, seen: Seen | None) -> bool:
    if seen is None or seen.state != sample.expect:
        return False
    return sample.expect_code is None or sample.expect_code in seen.codes


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(clock: Clock) -> str:
    """The time a line is printed at: 'HH:MM:SS UTC'."""
    return clock().astimezone(UTC).strftime("%H:%M:%S UTC")


def so_far(seen: Seen | None) -> str:
    return "not seen yet" if seen is None else f"now {seen.state}"


class LineView:
    """One line per change, for pipes and logs."""

    def __init__(self, out: TextIO, clock: Clock = utc_now) -> None:
        self.out = out
        self.clock = clock
        self.last: dict[str, tuple[str, str]] = {}

    def __enter__(self) -> LineView:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.say(f"{stamp(self.clock)}  {text}")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def show(self, samples: list[demo_samples.Sample], seen: dict[str, Seen]) -> None:
        for sample in samples:
            now = seen.get(sample.invoice_file)
            if now is None or self.last.get(sample.invoice_file) == (now.state, now.detail):
                continue
            self.last[sample.invoice_file] = (now.state, now.detail)
            extra = f"  {now.detail}" if now.detail else ""
            print(f"{stamp(self.clock)}  {sample.invoice_file:<16} {now.state:<12}"
                  f"{extra}", file=self.out, flush=True)


class TableView:
    """A live table on a terminal. One too tall for the terminal is shown one line a
    sample (rich's live view would cut the rows below the screen's end, the quarantined
    samples among them); the whole table is printed when the demo stops."""

    def __init__(self, console: Any = None, clock: Clock = utc_now) -> None:
        from rich.console import Console
        from rich.live import Live
        self.console = console or Console()
        self.clock = clock
        self.live = Live(console=self.console, refresh_per_second=8, transient=False)
        self._whole: Any = None

    def __enter__(self) -> TableView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._whole is not None:
            self.live.update(self._whole)  # the last render, printed in full at the stop
        self.live.__exit__(None, None, None)

    def note(self, text: str) -> None:
        self.say(f"{stamp(self.clock)}  {text}")

    def say(self, text: str) -> None:
        """Printed above the live table: written past it, the table's next refresh drew
        itself over the text (and left its old title behind)."""
        self.console.print(text, markup=False, highlight=False)

    def show(self, samples: list[demo_samples.Sample], seen: dict[str, Seen]) -> None:
        self._whole = table = self._table(samples, seen, compact=False)
        # One line for the cursor below it; notes scroll above the live view.
        if len(self.console.render_lines(table, pad=False)) > self.console.size.height - 1:
            table = self._table(samples, seen, compact=True)
        self.live.update(table)

    @staticmethod
    def _table(samples: list[demo_samples.Sample], seen: dict[str, Seen],
               compact: bool) -> Any:
        from rich.table import Table
        colour = {"sent": "green", "quarantined": "red", "waiting": "yellow",
                  "held": "red", "retrying": "yellow"}
        table = Table(title="outboxd demo", expand=True)
        table.add_column("invoice file", no_wrap=True)
        if not compact:
            table.add_column("shows", ratio=2, overflow="fold")
        table.add_column("state", no_wrap=True)
        table.add_column("detail", ratio=3, overflow="ellipsis" if compact else "fold",
                         no_wrap=compact)
        table.add_column("expected", no_wrap=True)
        for sample in samples:
            now = seen.get(sample.invoice_file)
            state = now.state if now else "-"
            mark = "✓" if reached(sample, now) else " "
            cells = [sample.invoice_file, *([] if compact else [sample.shows]),
                     f"[{colour.get(state, 'white')}]{state}[/]",
                     now.detail if now else "", f"{mark} {sample.expect}"]
            table.add_row(*cells)
        return table


def view_for(out: TextIO) -> Any:
    """The live table on a terminal where rich is installed, else one line a change."""
    if out.isatty():
        try:
            return TableView()
        except ImportError:
            pass
    return LineView(out)
