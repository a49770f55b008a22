"""What the clerks' status page says of a delivery paused for a configuration problem
or put off by the receiver, and of a journal that cannot be written
(docs/folder-convention.md, section 6); and the fix a rejection's reason gives (the
page, REASON.txt).

A pause's error is written for the admin ("HTTP 401: check [delivery] url and token",
the receiver's answer after it): the journal, `outboxd status` and the log keep it so.
A clerk cannot act on a setting they never see, and must not read that line as their
invoices failing: the page says what happened in plain words, that the invoices wait
and nothing is lost, and whom to tell. The errors recognised are the ones
answers.classify(), Deliverer.failure(), a held-back bundle (pause.HELD_BACK,
throttle.THROTTLED) and a move into sent/ or quarantine/ that failed (moves.py) write.
"""

from __future__ import annotations

import re

from daemon.archiving.moves import ARCHIVE_FAILED, QUARANTINE_FAILED, WORK_GONE
from daemon.delivery.pause import HELD_BACK
from daemon.delivery.throttle import AWAITING_FIRST, THROTTLED
from daemon.errors import Rejected
from daemon.sizes import size_words

# Per row, one invoice file, which has left the outbox (claimed) and waits with outboxd.
_WAITS = ("This file waits with outboxd and nothing is lost: tell the admin, who must fix "
          "{fix}; then it is sent by itself.")

# (the admin's error as it begins, what happened in a clerk's words, what the admin fixes);
# {0} is the HTTP status the error names.
_PAUSES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"HTTP (40[13]): check \[delivery\] url and token"),
     "The operator refused outboxd's credentials (HTTP {0}).", "outboxd's token"),
    (re.compile(r"HTTP (404): check \[delivery\] url and token"),
     "The operator's address that outboxd sends to was not found (HTTP {0}).",
     "that address in outboxd's settings"),
    (re.compile(r"HTTP (3\d\d) redirect to "),
     "The operator's address that outboxd sends to has moved (HTTP {0}).",
     "that address in outboxd's settings"),
    (re.compile(r"HTTP (3\d\d) from the receiver, an answer outboxd does not follow"),
     "The operator's address that outboxd sends to did not take the file (HTTP {0}).",
     "that address in outboxd's settings"),
    (re.compile(r"HTTP (407) from a proxy"),
     "A proxy server between outboxd and the operator refused outboxd's credentials "
     "(HTTP {0}).", "outboxd's proxy settings"),
    (re.compile(r"the request could not be made: |\[delivery\] url is not usable: "),
     "outboxd's settings for the operator (its address or token) cannot be used.",
     "those settings"),
)


# Per row, after a failure on the way to the operator that passes by itself.
_TRIES_AGAIN = ("outboxd tries again by itself and nothing is lost: nothing to do unless "
                "this lasts for hours, then tell the admin.")

# (the admin's error as it begins, what happened in a clerk's words); {0} is the HTTP
# status the error names. The errors Deliverer.failure() writes for a receiver that
# cannot be reached ("… at 127.0.0.1:18733: [Errno 111] Connection refused") and those
# answers.classify() writes for an answer that puts a bundle off (408, 409, 425, 429,
# 5xx, a 2xx that is not this bundle's receipt; finish.py and einvoice/transport.py add
# the receiver's answer after it). The socket's words, the host and port, the answer (an
# error page, the receiver's internals: anything) are the admin's, in `outboxd status`
# and the log; the clerk is told that it passes by itself, and when to tell the admin.
_RETRIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"cannot reach the receiver\b.*(?:Name or service not known|name "
                r"resolution|No address associated|nodename nor servname)"),
     "The operator's server cannot be found on the network."),
    (re.compile(r"cannot reach the receiver\b"), "The operator's server does not answer."),
    # The environment's proxy (Deliverer._proxy_failure): the company network's side.
    (re.compile(r"cannot reach the proxy at "),
     "The company network's proxy server, which outboxd goes through, does not answer."),
    (re.compile(r"the proxy at \S+ \(.*?\) did not open the way to the receiver"),
     "The company network's proxy server could not reach the operator's server."),
    (re.compile(r"the TLS certificate of the proxy at |TLS with the proxy at "),
     "outboxd cannot make a secure connection to the company network's proxy server, "
     "which it goes through."),
    (re.compile(r"timed out talking to the receiver\b"),
     "The operator's server did not answer in time."),
    (re.compile(r"no valid answer from the receiver\b"),
     "The connection to the operator's server broke off before its answer (the operator "
     "is asked again about this very file, so it is never sent twice)."),
    (re.compile(r"HTTP (429) from the receiver"),
     "The operator's server is busy and asked outboxd to wait (HTTP {0})."),
    (re.compile(r"HTTP (5\d\d) from the receiver"),
     "The operator's server has a problem at the moment (HTTP {0})."),
    (re.compile(r"HTTP (\d{3}) from the receiver"),
     "The operator's server put the file off for now (HTTP {0})."),
    (re.compile(r"the receiver answered HTTP (\d{3}) for another request"),
     "The operator's server answered for another file (HTTP {0}), so this one is not "
     "taken as sent yet."),
    (re.compile(r"the receiver answered HTTP (\d{3}) before it had the whole request"),
     "The operator's server answered before it had the whole file (HTTP {0}), so it is "
     "not taken as sent yet."),
    (re.compile(r"the receiver's answer \(HTTP (\d{3})\) (?:broke off before its end|did "
                r"not come whole)"),
     "The operator's server's answer (HTTP {0}) broke off before its end, so the file is "
     "not taken as sent yet (the operator is asked again about this very file, so it is "
     "never sent twice)."),
    # An https:// url at a port that speaks plain HTTP (failures.py): the admin's url.
    (re.compile(r"the receiver\b.* does not speak TLS on that port"),
     "The operator's server does not take a secure connection at the address outboxd "
     "sends to."),
)

# A bundle held back because the receiver asked for time (throttle.py): the time it gave
# (in UTC, as written) and its status. Not a pause's words: nothing is to be fixed.
_THROTTLED = re.compile(r".*the receiver asked to wait until (.+? UTC) \(HTTP (\d{3})\)")
_THROTTLED_WORDS = ("The operator's server is busy and asked outboxd to send nothing before "
                    "{0} (HTTP {1}); this file waits until then.")
# That time over, one file goes first: "waits until then" would name a time gone by.
_AWAITING_FIRST_WORDS = ("The operator's server was busy and asked outboxd to send nothing "
                         "before {0} (HTTP {1}); that time is over, and this file goes as "
                         "soon as the operator answers the first file sent since.")

# Deliverer.failure()'s error for a certificate not trusted: retried, but no wait mends
# it unless the operator fixes its side; the admin must look at once.
_UNTRUSTED = re.compile(r"the TLS certificate of the receiver\b")
_UNTRUSTED_WORDS = ("outboxd cannot verify that it is talking to the operator's server "
                    "(its security certificate is not trusted). outboxd tries again by "
                    "itself and nothing is lost: tell the admin, who checks outboxd's "
                    "settings for the operator or asks the operator.")

# A bundle whose move into sent/ or quarantine/ keeps failing (archiving/moves.py): the
# admin's error names the folders, their owner and mode, and lsattr, getfacl or
# ReadWritePaths= — shown raw, it read to the clerk as their file failing. The receipt
# (group 1) is the clerk's proof that the operator has it; "None" when it gave none.
# re.S: a receipt id is the receiver's text, a line break in it too.
_ARCHIVE_FAILED = re.compile(re.escape(ARCHIVE_FAILED).replace(re.escape("{}"), "(.*?)"), re.S)
_ARCHIVE_WORDS = ("The operator has received this file{0}, but outboxd cannot put it into "
                  "sent/ yet, because of a problem with the disk or folders on its server. "
                  "It is never sent again, and nothing is lost: tell the admin. Once that "
                  "is fixed, it goes into sent/ by itself and is listed under Sent today.")
_QUARANTINE_WORDS = ("This file is to be quarantined, but outboxd cannot put it into "
                     "quarantine/ yet, because of a problem with the disk or folders on its "
                     "server. Nothing is lost: tell the admin. Once that is fixed, it goes "
                     "into quarantine/ by itself and is listed under Quarantined today, with "
                     "its reasons.")

_WORK_GONE = re.compile(re.escape(WORK_GONE).replace(re.escape("{}"), ".*?"), re.S)
_WORK_GONE_WORDS = ("outboxd cannot find this file in its work folder on its server (a "
                    "disk or share there may be away, or the folder was moved), so for now "
                    "it can neither send it nor quarantine it. Nothing is lost: tell the "
                    "admin. Once the folder is back, it goes on by itself.")


def _move_for_clerks(error: str) -> str | None:
    """A failed move's error, or a work folder gone, in a clerk's words; None for any
    other error."""
    if m := _ARCHIVE_FAILED.match(error):
        receipt = m.group(1)
        return _ARCHIVE_WORDS.format("" if receipt == "None" else f" (receipt {receipt})")
    if error.startswith(QUARANTINE_FAILED):
        return _QUARANTINE_WORDS
    if _WORK_GONE.match(error):
        return _WORK_GONE_WORDS
    return None


def for_clerks(error: str | None) -> str | None:
    """A retrying bundle's error as the clerks' page shows it: a pause in plain words
    (paused_for_clerks), a receiver that cannot be reached or put the bundle off in
    plain words with the HTTP status alone (the admin has the rest in `outboxd status`
    and the log), a move into sent/ or quarantine/ that keeps failing in plain words,
    any other error as it is."""
    if (words := paused_for_clerks(error)) is not None:
        return words
    if not error:
        return error
    if _UNTRUSTED.match(error):
        return _UNTRUSTED_WORDS
    if error.startswith(THROTTLED) and (m := _THROTTLED.match(error)):
        words = _AWAITING_FIRST_WORDS if AWAITING_FIRST in error else _THROTTLED_WORDS
        return f"{words.format(*m.groups())} {_TRIES_AGAIN}"
    for pattern, what in _RETRIES:
        if m := pattern.match(error):
            return f"{what.format(*m.groups())} {_TRIES_AGAIN}"
    return _move_for_clerks(error) or error


def paused_for_clerks(error: str | None) -> str | None:
    """A pause's error in a clerk's words; None for any other error (shown as it is)."""
    if not error:
        return None
    admin = error.removeprefix(HELD_BACK)
    for pattern, what, fix in _PAUSES:
        if m := pattern.match(admin):
            return f"{what.format(*m.groups())} {_WAITS.format(fix=fix)}"
    return None


def pause_of(error: str | None) -> str | None:
    """A pause's error as the admin reads it (without the held-back prefix, which the
    bundles held behind the paused one carry); None for any other error."""
    if paused_for_clerks(error) is None:
        return None
    assert error is not None
    return error.removeprefix(HELD_BACK)


def unrecorded_for_clerks(failure: str) -> str | None:
    """Why nothing moves while the journal cannot be written (`failure`, the journal's
    error for the admin: "database or disk is full — check … [paths] state_dir"), in a
    clerk's words; None while it can. Nothing is claimed, sent or even recorded as seen
    then, so the page's lists stand still and a bundle dropped meanwhile is on none of
    them: without this the clerk reads an idle daemon that ignores their files."""
    if not failure:
        return None
    return ("Nothing is being sent at the moment: outboxd cannot write its records on its "
            "server (its disk there is full or cannot be written). Nothing is lost: files "
            "in the outbox stay there, new ones included (they are not listed here until "
            "then), and what is listed below waits. Tell the admin; everything goes on by "
            "itself once they have made room.")


def rejection_fix(refused: Rejected, invoice_ids: tuple[str, ...]) -> str:
    """The fix a bundle the receiver refused is quarantined with (after the receiver's
    answer), for a file of `invoice_ids`. A 413 (Payload Too Large) often says no more
    than that: "fix what the receiver names" left the clerk with nothing to fix, so it
    is said what was too large, its size, and how to make it smaller."""
    if refused.status != 413:
        return "fix what the receiver names, then move the bundle back into the outbox"
    size = ("" if refused.sent_bytes is None
            else f" ({size_words(refused.sent_bytes)} were sent)")
    if refused.invoice_id is not None:
        # ubl-embedded: one document per invoice, its attachments inside; other files
        # would not make it smaller.
        return (f"the document of invoice {refused.invoice_id} is larger than the receiver "
                f"takes{size}: make it smaller with fewer or smaller attachments of invoice "
                f"{refused.invoice_id} (a scan at a lower resolution, say), then move the "
                "bundle back into the outbox; the admin may ask the operator for the "
                "largest size it takes")
    split = ("; or have its invoices exported again in several invoice files, each with "
             "its own attachments folder, and leave this one in quarantine"
             if len(invoice_ids) > 1 else "")
    return (f"the bundle is larger than the receiver takes{size}: make it smaller with "
            "fewer or smaller attachments (a scan at a lower resolution, say), then move "
            f"the bundle back into the outbox{split}; the admin may ask the operator for "
            "the largest size it takes")

