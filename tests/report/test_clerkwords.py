"""The clerk's words for what the admin's errors say (daemon/report/clerkwords.py): here, the
fix a bundle the receiver refused is quarantined with."""

from __future__ import annotations

from daemon.errors import Rejected
from daemon.report.clerkwords import rejection_fix


def _refused(status: int, sent_bytes: int | None = None) -> Rejected:
    refused = Rejected(f"the receiver rejected the bundle with HTTP {status}", status, "no")
    refused.sent_bytes = sent_bytes
    return refused


def test_a_refusal_other_than_413_sends_the_clerk_to_what_the_receiver_names() -> None:
    """400, 415, 422 …: the receiver's answer names what is wrong; the fix says so."""
    assert rejection_fix(_refused(422, 5000), ("INV-1",)) == (
        "fix what the receiver names, then move the bundle back into the outbox")


def test_a_413_gives_a_large_size_in_mb_and_bytes() -> None:
    """A bundle of 31,234,567 bytes is 31.2 MB, MB of 1,000,000 bytes as the attachment
    limit counts them, and the exact bytes are there, as Windows Explorer's Properties
    show them and for the admin to compare with the operator's limit."""
    fix = rejection_fix(_refused(413, 31_234_567), ("INV-1",))
    assert fix.startswith("the bundle is larger than the receiver takes "
                          "(31.2 MB (31,234,567 bytes) were sent): ")


def test_a_413_whose_size_is_not_known_says_no_size() -> None:
    """A request sent without a Content-Length: no size is made up."""
    fix = rejection_fix(_refused(413), ("INV-1",))
    assert fix.startswith("the bundle is larger than the receiver takes: make it smaller")
