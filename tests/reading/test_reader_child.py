"""What the reader pool keeps of each child (daemon/reading/reader_child.py)."""

from __future__ import annotations

from daemon.reading.reader_child import Child, call_under_way


def test_the_call_under_way_is_the_first_written_not_the_oldest_id() -> None:
    """Ids are taken in one order and written by several threads in another (the loop's
    check, the collector's next read): a dead child's call under way is the first of its
    open calls that went down the pipe; calls never written cost no try."""
    child = Child(proc=None, conn=None)
    child.calls = {1: object(), 2: object(), 3: object()}  # type: ignore[dict-item]
    assert call_under_way(child) is None  # none written yet
    child.written.extend([2, 1])
    assert call_under_way(child) == 2
    del child.calls[2]  # answered
    assert call_under_way(child) == 1
    child.written.clear()
    child.written.extend([5, 3])  # 5 answered and gone from calls
    assert call_under_way(child) == 3
