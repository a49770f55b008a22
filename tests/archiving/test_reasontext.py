"""REASON.txt after a POST whose outcome is not known (archiving/reasontext.py): it
never says "Nothing was delivered" then, but that the receiver may have the bundle and
what to ask the operator first; a refusal is an answer, whose papers stay as they were."""

from __future__ import annotations

from daemon.archiving.archive_papers import reason_papers, reason_record
from daemon.archiving.reasontext import OUTCOME_UNKNOWN, outcome_unknown, reason_text
from daemon.bundle import Finding

BID = "0123456789abcdef" * 4
AT = "2026-12-03T07:50:12Z"
DAMAGED = Finding("processing-damaged", "INV-1/a.pdf", "is not the file that was checked")


def test_a_bundle_quarantined_after_a_counted_post_is_not_said_to_be_undelivered() -> None:
    """Quarantined (a file damaged in processing) after an attempt that timed out: the
    receiver may have it. REASON.txt said "Nothing was delivered", and a clerk sent the
    bundle again after fixing it; it now says the receiver may have bundle 0123456789ab
    and to ask the operator whether it has INV-1 before sending it again."""
    assert outcome_unknown(1, [DAMAGED])
    record = reason_record(BID, "INV-1.xml", [DAMAGED], AT, invoice_ids=["INV-1"],
                           outcome_unknown=outcome_unknown(1, [DAMAGED]))
    assert record["delivery_outcome_unknown"] is True
    text = reason_papers(record)["REASON.txt"].decode("utf-8")
    assert "Nothing was delivered" not in text
    assert ("\nThe receiver may have this bundle already: outboxd tried to deliver it "
            "before and does not know how that attempt ended (it has no receipt for "
            "it).\nBefore sending it again, ask the operator (or look in its portal) "
            "whether it has INV-1 of bundle 0123456789ab; if it has, leave this bundle "
            "here and do not send it again.\nTo send it again:\n1. Fix what is listed "
            "above") in text


def test_a_bundle_never_posted_or_refused_by_the_receiver_keeps_nothing_was_delivered(
        ) -> None:
    """No POST (0 attempts), or the receiver's refusal of the bundle's key (an answer: a
    receiver that had the key answers a repeat with its stored 2xx): the papers say
    "Nothing was delivered" and reason.json has no delivery_outcome_unknown."""
    refused = Finding("rejected", "INV-1.xml", "the receiver answered HTTP 400: bad")
    for attempts, reasons in ((0, [DAMAGED]), (3, [refused])):
        assert not outcome_unknown(attempts, reasons)
        record = reason_record(BID, "INV-1.xml", reasons, AT,
                               outcome_unknown=outcome_unknown(attempts, reasons))
        assert "delivery_outcome_unknown" not in record
        assert "Nothing was delivered. To send it again:" in reason_text(record)


def test_a_reason_that_says_an_attempts_outcome_is_unknown_counts_without_a_count() -> None:
    """A POST a crash cut short left no count (0 attempts): the reason that says so is
    what marks the papers, also when a failed move writes them again later."""
    reasons = [Finding("processing-damaged", "INV-1.xml", f"changed after {OUTCOME_UNKNOWN}")]
    assert outcome_unknown(0, reasons)


def test_the_others_of_a_partly_accepted_file_are_not_said_to_be_undelivered() -> None:
    """ubl-embedded, A accepted, then an attempt whose outcome is not known: "No other
    invoice of this file was delivered" is not known either; the papers say so."""
    accepted = [{"invoice_id": "A", "name": "INV-1--A.xml", "idempotency_key": "a" * 64,
                 "status": 201, "receipt_id": "r-A"}]
    record = reason_record(BID, "INV-1.xml", [DAMAGED], AT, accepted,
                           invoice_ids=["A", "B"], outcome_unknown=True)
    text = reason_text(record)
    assert "No other invoice of this file was delivered" not in text
    assert ("No other invoice of this file is known to be delivered: an earlier attempt's "
            "outcome is not known, so ask the operator whether it has them before sending "
            "them again.") in text


def test_invoices_held_back_with_the_file_are_not_said_to_be_unsent() -> None:
    """A file of INV-1 and INV-2, INV-1's attachment damaged, after an attempt of
    unknown outcome: INV-2 was "not sent either" — it may have been; it was stopped."""
    damaged = Finding("processing-damaged", "INV-1/a.pdf", "changed", invoice_id="INV-1")
    record = reason_record(BID, "B.xml", [damaged], AT, invoice_ids=["INV-1", "INV-2"],
                           outcome_unknown=True)
    text = reason_text(record)
    assert "INV-2 (without errors of its own) was stopped with it." in text
    assert "not sent either" not in text


def test_a_422_to_a_repeated_post_is_not_said_to_be_nothing_delivered() -> None:
    """The receiver answers a retry (the second POST) with 422, the Idempotency-Key used
    before with other content: it holds something under the bundle's key. REASON.txt
    said "Nothing was delivered"; it now says the receiver may have the bundle, why (the
    422 to a repeat), and what to ask the operator first, and reason.json says
    delivery_outcome_unknown. The same refusal of a first POST is an answer as before."""
    for what in ("bundle", "document of invoice A:17"):
        refused = Finding("rejected", "INV-1.xml", f"the receiver rejected the {what} with "
                          "HTTP 422: key reused — fix what the receiver names, then move "
                          "the bundle back into the outbox")
        assert not outcome_unknown(1, [refused])
        assert outcome_unknown(2, [refused])
        record = reason_record(BID, "INV-1.xml", [refused], AT, invoice_ids=["INV-1"],
                               outcome_unknown=outcome_unknown(2, [refused]))
        assert record["delivery_outcome_unknown"] is True
        text = reason_text(record)
        assert "Nothing was delivered" not in text
        assert ("The receiver may have this bundle already: it answered a repeat of an "
                "earlier attempt with HTTP 422, which says that the bundle's "
                "Idempotency-Key was used before with other content: it holds something "
                "under that key, maybe what an earlier attempt sent.\nBefore sending it "
                "again, ask the operator (or look in its portal) whether it has INV-1 of "
                "bundle 0123456789ab") in text


def test_another_refusal_of_a_repeated_post_is_still_an_answer() -> None:
    """A 400 to a retry, or a body that quotes "with HTTP 422: " after another status,
    is a refusal like any: "Nothing was delivered"."""
    for message in ("the receiver rejected the bundle with HTTP 400: bad",
                    "the receiver rejected the bundle with HTTP 400: was "
                    "'the receiver rejected the bundle with HTTP 422: '"):
        refused = Finding("rejected", "INV-1.xml", message)
        assert not outcome_unknown(3, [refused])


def test_a_duplicates_steps_say_it_was_sent_already_and_how_to_make_it_new() -> None:
    """A copy of a bundle sent before, quarantined as `duplicate`: REASON.txt said
    "Nothing was delivered. To send it again: 1. Fix what is listed above", and a clerk
    who moved it back unchanged saw it quarantined again (the retry it named refuses an
    unchanged duplicate). It now says the copy was not sent because that bundle went
    already, that a copy dropped by mistake needs nothing but removing, and that only a
    changed file, type or note sends it again."""
    dup = Finding("duplicate", "INV-1.xml", "this exact bundle (0123456789ab) was sent at "
                  "2026-12-03 07:40:00 UTC (folder sent/2026-12-03/INV-1--0123456789ab) — "
                  "remove it, or, if it is meant to be a new bundle, change a file, a type "
                  "or a note")
    text = reason_text(reason_record(BID, "INV-1.xml", [dup], AT, invoice_ids=["INV-1"]))
    assert "Nothing was delivered" not in text and "To send it again" not in text
    assert ("\nThis copy was not sent: it is exactly the bundle named above, which outboxd "
            "sent already (or is sending).\nIf it came here by mistake, nothing needs to be "
            "done: remove this folder.\nIf it is meant to be sent as a new bundle:\n1. Change "
            "a file, a type or a note in this folder") in text
    assert "\n2. If this folder holds a folder of attachments" in text
    assert "\nInstead of steps 2 and 3, an admin can run the command outboxd retry " \
           "0123456789ab" in text
