"""A journal row and its states (daemon/journal/records.py): the state a row is shown
in."""

from __future__ import annotations

from daemon.journal import CLAIMING, DELIVERED, QUARANTINING, Journal


class TestQueries:
    def test_shown_state(self, journal: Journal) -> None:
        """A row's shown_state is the name `outboxd status` shows for its internal state."""
        assert journal.get(journal.create("a.xml", CLAIMING)).shown_state == "delivering"
        assert journal.get(journal.create("b.xml", DELIVERED)).shown_state == "delivering"
        assert journal.get(journal.create("c.xml", QUARANTINING)).shown_state == "delivering"
        assert journal.get(journal.create("e.xml", QUARANTINING, last_error="EROFS")
                           ).shown_state == "retrying"
        assert journal.get(journal.create("d.xml", "retrying")).shown_state == "retrying"
