"""How a size is said to people (daemon/sizes.py): KB and MB of 1,000 and 1,000,000
bytes, as [validation] max_attachment_bytes counts them, with the exact bytes."""

from __future__ import annotations

import pytest

from daemon.sizes import limit_words, size_words


@pytest.mark.parametrize(("n", "said"), [
    (0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"),
    (1_000, "1.0 KB (1,000 bytes)"),
    (820_123, "820.1 KB (820,123 bytes)"),
    (999_950, "1.0 MB (999,950 bytes)"),  # never "1,000.0 KB"
    (5_000_001, "5.0 MB (5,000,001 bytes)"),
    (20_971_520, "21.0 MB (20,971,520 bytes)"),  # 20 MB as Windows Explorer counts
    (1_234_567_890, "1.2 GB (1,234,567,890 bytes)"),
])
def test_a_size_is_a_rounded_figure_with_its_exact_bytes(n: int, said: str) -> None:
    assert size_words(n) == said


@pytest.mark.parametrize(("n", "said"), [
    (5_000_000, "5 MB"), (2_500_000, "2.5 MB"), (50_000, "50 KB"), (1_000, "1 KB"),
    (20_000_000, "20 MB"),
    (5_000_001, "5.0 MB (5,000,001 bytes)"),
    (1 << 20, "1.0 MB (1,048,576 bytes)"),
    (64 << 20, "67.1 MB (67,108,864 bytes)"),
])
def test_a_limit_is_said_short_only_when_that_figure_is_exact(n: int, said: str) -> None:
    """A limit rounded would let a size over it read as within it: 5,000,002 bytes "5.0 MB"
    against a limit of 5,000,001 bytes "at most 5.0 MB"."""
    assert limit_words(n) == said


@pytest.mark.parametrize(("limit", "size", "said"), [
    (5_000_000, 5_000_001, "5 MB (5,000,000 bytes)"),  # "is 5.0 MB …; at most 5 MB"
    (5_000_000, 5_049_999, "5 MB (5,000,000 bytes)"),
    (20_000_000, 20_000_001, "20 MB (20,000,000 bytes)"),  # ubl-embedded's total
    (1_000, 1_001, "1 KB (1,000 bytes)"),
    (5_000_000, 5_050_001, "5 MB"),  # "is 5.1 MB": over it in the same words
    (5_000_000, 20_971_520, "5 MB"),
    (5_000_001, 5_000_002, "5.0 MB (5,000,001 bytes)"),  # never exact: bytes anyway
])
def test_a_limit_beside_a_size_that_rounds_to_it_is_said_with_its_bytes(
        limit: int, size: int, said: str) -> None:
    """A clerk told a file "is 5.0 MB (5,000,001 bytes); at most 5 MB is taken" reads two
    equal sizes: where the size over the limit rounds to the limit's figure or below, the
    limit is said with its bytes as well, so the two bytes counts show which is larger."""
    assert limit_words(limit, over=size) == said
