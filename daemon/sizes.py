"""How a size is said to people: in KB, MB or GB of 1,000, 1,000,000 and 10⁹ bytes,
as `[validation] max_attachment_bytes` is configured and documented ("5 MB" is its
default of 5,000,000 bytes), with the exact bytes beside a rounded figure. Windows
Explorer counts 1,024 bytes to its KB and 1,048,576 to its MB, so shows a little less;
the bytes are what its Properties show, and what a clerk compares to be sure."""

from __future__ import annotations

_UNITS = ((1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "KB"))


def size_words(n: int) -> str:
    """A file's size: "21.0 MB (20,971,520 bytes)", "820.1 KB (820,123 bytes)",
    "512 bytes"; a unit up where the figure would round to 1,000 of it."""
    if said := _unit_of(n):
        unit, name = said
        return f"{n / unit:,.1f} {name} ({n:,} bytes)"
    return f"{n:,} byte" + ("" if n == 1 else "s")


def _unit_of(n: int) -> tuple[int, str] | None:
    """The unit size_words says `n` in (None: in bytes): one up where the figure would
    round to 1,000 of it, so that no size reads as "1,000.0 KB"."""
    for unit, name in _UNITS:
        if round(n / (unit // 1000), 1) >= 1000:  # n >= unit, or rounds to it below
            return unit, name
    return None


def limit_words(n: int, over: int | None = None) -> str:
    """A limit: "5 MB", "2.5 MB", "500 KB" when that figure is exact, else with its
    bytes ("67.1 MB (67,108,864 bytes)"): a limit rounded would let a size over it
    read as within it ("5.0 MB; at most 5.0 MB").

    `over` is the size said beside it, which is over the limit: where that size's
    rounded figure is not above the limit's ("is 5.0 MB (5,000,001 bytes); at most
    5 MB"), the limit gets its bytes too, so the two read apart in the same words."""
    for unit, name in _UNITS:
        if n >= unit:
            if n % (unit // 10) == 0:  # whole, or one decimal place, in this unit
                short = f"{n / unit:,.1f} {name}" if n % unit else f"{n // unit:,} {name}"
                if over is not None and _reads_within(over, n):
                    return f"{short} ({n:,} bytes)"
                return short
            return size_words(n)
    return size_words(n)


def _reads_within(size: int, limit: int) -> bool:
    """Whether size_words(size)'s rounded figure ("5.0 MB") is at most `limit`, compared
    as the figures are written (a float product could land a hair either side)."""
    if said := _unit_of(size):
        unit = said[0]
        return float(f"{size / unit:.1f}") <= limit / unit + 1e-9
    return size <= limit
