"""What the daemon leaves alone in the outbox root: said once, and the unusable invoice
files kept for the status page until they go."""

from __future__ import annotations

from typing import Any

from daemon.leftalone import LeftAlone
from daemon.scan import Listing


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event, kw))


LINK = ("INV-1.xml", "is a symbolic link; outboxd never follows it")
BAD = ("INV-\\xe9.xml", "the name is not valid UTF-8 — rename the file")


def test_each_name_is_said_once_however_often_it_is_listed() -> None:
    """A README beside the invoices and an unusable invoice file: one log line each,
    however many listings and events see them again."""
    log = Log()
    seen = LeftAlone(log)
    for _ in range(3):
        seen.seen(Listing({}, ("README.txt",), (LINK,)), ["*.xml"])
        seen.seen(Listing({}, ("README.txt",), (LINK,)), ["*.xml"], "INV-1.xml")
    assert [(level, kw["file"]) for level, _, kw in log.lines] == [
        ("info", "README.txt"), ("error", "INV-1.xml")]


def test_a_full_listing_replaces_and_an_event_changes_only_its_name() -> None:
    """Both unusable files from a listing; an event on one that is gone (its look finds
    nothing) drops only that one; a listing without them empties the page's list. Each
    change says so (True), the same again does not."""
    seen = LeftAlone(Log())
    assert seen.seen(Listing({}, (), (LINK, BAD)), ["*.xml"]) is True
    assert seen.refused == dict([LINK, BAD])
    assert seen.seen(Listing({}, (), (LINK, BAD)), ["*.xml"]) is False
    assert seen.seen(Listing({}, ()), ["*.xml"], "INV-\udce9.xml") is True  # as the OS names it
    assert seen.refused == dict([LINK])
    assert seen.seen(Listing({}, ()), ["*.xml"], "INV-2.xml") is False
    assert seen.seen(Listing({}, ()), ["*.xml"]) is True and seen.refused == {}
