"""Whether two names are one typo apart (`close`): what the status page hints of a lone
folder named close to a waiting invoice file (watching/lonefolders.py), and what an
attachments.toml entry naming no file of its folder is told of a file of that folder
(reading/notesmissing.py). Here, not in either, so reading/ need not import watching's
journal-bound modules.

Close: the two names, case and Unicode form folded, differ by one character changed,
added or taken away, or by two neighbours swapped (`INV-7010` and `INV-7100`,
`INV-7001`, `INV-701`, `INV-70100`), and the shorter has at least `MIN_LENGTH`
characters: shorter names are one edit away from too many others to say anything. Two
names equal once folded are never close: each caller tells that case otherwise.
"""

from __future__ import annotations

import unicodedata

MIN_LENGTH = 4


def fold(name: str) -> str:
    """Case and Unicode form folded: what `close` compares."""
    return unicodedata.normalize("NFC", name).casefold()


def close(a: str, b: str) -> bool:
    """One character changed, added or taken away, or two neighbours swapped, after
    folding case and Unicode form; never two names equal once folded."""
    a, b = fold(a), fold(b)
    if a == b or min(len(a), len(b)) < MIN_LENGTH or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):  # one added: the rest after it is the same
        return a[i:] == b[i + 1:]
    if a[i + 1:] == b[i + 1:]:  # one changed
        return True
    # Two neighbours swapped. a[i + 1] is there: the tails just found unequal are not empty.
    return a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]
