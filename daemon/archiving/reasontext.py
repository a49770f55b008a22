"""REASON.txt: what a quarantine tells the clerk who opens the bundle's folder in
quarantine/ (docs/folder-convention.md): the reasons, as `outboxd status` and the
status page show them, and the steps that send the bundle again, in the clerk's words
(a look-alike sidecar's rename, invoices the receiver has accepted already).
archive_papers.reason_papers writes it beside reason.json, from the same record.
"""

from __future__ import annotations

import re
from typing import Any

from daemon.bundle import Finding
from daemon.invisible import escaped_controls
from daemon.journal import readable
from daemon.names import CASE_WORDS, COPY_WORDS, EXACT_WORDS, FILE_WORDS, FORM_WORDS, visible

# The words of a reason that stopped a bundle after a POST that may have reached the
# receiver uncounted (a crash cut it short): how its papers, written again after a
# failed move, still say so (delivery/beforepost.py).
OUTCOME_UNKNOWN = "a delivery attempt whose outcome is not known"
# The words of a reason that stopped a bundle's first POST at a file changed in
# processing, no POST before it: that attempt is counted, but nothing reached anyone.
NEVER_REACHED = "none of its sending reached the receiver"


# A refusal of a repeated POST by 422: the Idempotency-Key used before with other
# content (docs/protocol.md, Idempotency), so the receiver holds something under it.
_KEY_USED = re.compile(r"the receiver rejected the (?:bundle|document of invoice .+?) "
                       r"with HTTP 422: ")


def outcome_unknown(attempts: int, reasons: list[Finding]) -> bool:
    """Whether a quarantined bundle may be with the receiver: a POST of it was made (or,
    its reason says, may have been) and no answer about its key says otherwise. A
    refusal is such an answer: a receiver that had taken the key answers a repeat with
    its stored 2xx (docs/protocol.md, Idempotency) — but not a 422 to a repeat, which
    says that it holds other content under the key (an earlier attempt's, maybe)."""
    if any(OUTCOME_UNKNOWN in r.message for r in reasons):
        return True
    if any(NEVER_REACHED in r.message for r in reasons):
        return False
    return attempts > 0 and not any(r.code == "rejected" and not (
        attempts > 1 and _KEY_USED.match(r.message)) for r in reasons)


def _renamed(invoice_file: str, which: str, messages: list[str]) -> str:
    """How to rename `which`, by what the look-alikes' messages say differs. A case
    mistake (Windows takes the names for one) is mended by renaming on any computer;
    accents written otherwise only by typing the name again on the computer that named
    the invoice file. A message without either word (none is made so) is taken for
    accents, as before case variants were found."""
    if any(EXACT_WORDS in m or COPY_WORDS in m for m in messages):
        # A space or dot at an end, an extension, no sidecar suffix, a copy's name: the
        # line above gives the sidecar's name (this record does not keep it).
        return (f"rename {which} to the sidecar's name its line above gives, exactly as "
                "written there, with nothing before or after it")
    case = any(CASE_WORDS in m for m in messages)
    form = any(FORM_WORDS in m for m in messages) or not case
    if not form:
        return (f"rename {which} so that each letter is in upper or lower case as in the "
                "invoice file's name (Windows takes the two names for one, Linux, where "
                "outboxd runs, for two)")
    return (f"rename {which} by typing its name again on the computer that named "
            f"{invoice_file}, so that its accents "
            f"{'and its upper and lower case letters ' if case else ''}are written as in "
            "the invoice file's name")


def _folder_step(invoice_file: str, folders: list[tuple[str, str]]) -> str:
    """Step 1 for look-alike folders: one is renamed; several cannot all take the one
    name of the sidecar, so they are merged into one (or the extra ones removed)."""
    messages = [m for _, m in folders]
    if len(folders) == 1:
        rename = _renamed(invoice_file, visible(folders[0][0]), messages)
        return (f"In the outbox, {rename}. If this folder holds a folder of that name too, "
                "move the look-alike's files into that folder here instead, then delete the "
                "look-alike from the outbox.")
    rename = _renamed(invoice_file, "one of them", messages)
    return ("In the outbox, merge those folders into one: only one folder can have the "
            "sidecar's name, so they cannot each be renamed to it. "
            f"{rename[0].upper()}{rename[1:]}, move the "
            "files of the others into it and delete the emptied folders (or delete a "
            "folder that holds nothing for this invoice). If this folder holds a folder of "
            "that name too, move all their files into that folder here instead, then delete "
            "the look-alikes from the outbox.")


# How a clerk moves a quarantined bundle back, in steps numbered on from the fix. The
# attachments' folder first, as the ERP writes a bundle: an invoice file that is back
# first settles alone while a clerk goes back for its folder, and under [policy]
# unattached = "send" goes out without it (or, with the folder copied slowly between two
# shares, with the part copied so far). Not every quarantined bundle has that folder (one
# without attachments has none). The record keeps no sidecar name ([outbox]
# sidecar_suffix may add to the invoice file's), so the folder is described, not named.
def _move_back_steps(record: dict[str, Any], first: int) -> list[str]:
    """Steps `first` and `first + 1`, then what an admin can run instead of them (docs/commands.md:
    `outboxd retry` moves the same files back, and refuses what would stop again)."""
    invoice_file, second = record["invoice_file"], first + 1
    converted = record.get("converted_folder")
    # Named like the invoice file too, but outboxd's own: moved back, it is never sent
    # and stays in the outbox, a folder waiting for an invoice file of its name.
    leave = (f" Leave the folder {converted} here, or delete it: it holds the PDFs "
             "outboxd made of the images, and outboxd makes them again when it sends the "
             "bundle." if converted else "")
    if embedded := record.get("embedded_folder"):
        leave += (f" Leave the folder {embedded} here: it holds the documents outboxd "
                  "built and sent to the operator (reason.json's accepted_documents says "
                  "which the operator took), and outboxd builds them again when it sends "
                  "the bundle.")
    return [f"{first}. If this folder holds a folder of attachments (named like the invoice "
            f"file), move that folder back into the outbox.{leave}",
            f"{second}. Last, move {invoice_file} back into the outbox (back before its "
            "attachments, it could be sent without them). outboxd then checks the files and "
            "sends them again.",
            f"Instead of steps {first} and {second}, an admin can run the command outboxd "
            f"retry {str(record['bundle_id'])[:12]} (it moves the files back itself)."]


def _look_alike_steps(record: dict[str, Any], look_alikes: list[str],
                      messages: list[str]) -> list[str]:
    """What to do when a look-alike of the sidecar (`sidecar-spelling`) is among the
    reasons. It was no part of the bundle, so the claim left it in the outbox: "move the
    sidecar folder back" would send the clerk looking for it here, and the invoice file
    moved back before the look-alike is mended is quarantined again at once. A folder is
    renamed (several are merged); a file (a sidecar is a folder) goes into the sidecar
    folder, or away."""
    invoice_file = record["invoice_file"]
    one = len(look_alikes) == 1
    folders = [(n, m) for n, m in zip(look_alikes, messages, strict=True)
               if not m.startswith(FILE_WORDS)]
    files = [n for n, m in zip(look_alikes, messages, strict=True) if m.startswith(FILE_WORDS)]
    steps = [_folder_step(invoice_file, folders)] if folders else []
    if files:
        which = visible(files[0]) if len(files) == 1 else "each of those files"
        steps.append(f"In the outbox, move {which} into the sidecar folder its line above "
                     "names (make that folder if it is not there), under a name with its "
                     "type's extension (.pdf, .tif …), or remove it if it is no attachment.")
    steps.append("Fix anything else listed above.")
    return ["", "Nothing was delivered. Not everything is in this folder: outboxd did not take "
            f"the look-alike{'' if one else 's'} named below as the sidecar, so "
            f"{'it was' if one else 'they were'} not moved here. "
            f"{'It is' if one else 'They are'} still in the outbox, under "
            f"{'that name' if one else 'those names'}"
            + ("" if files else f", with everything in {'it' if one else 'them'}") + ":",
            *(f"- {visible(name)}" for name in look_alikes),
            "", f"To send {invoice_file} with {'its' if one else 'their'} files:",
            *(f"{n}. {step}" for n, step in enumerate(steps, start=1)),
            *_move_back_steps(record, len(steps) + 1), ""]


def _unknown_steps(record: dict[str, Any]) -> list[str]:
    """What a clerk checks first when a POST of the bundle may have reached the receiver:
    sent again as it was, the receiver recognises it; changed (fixed, exported again),
    it is a new bundle to the receiver, and the invoice may reach the customer twice."""
    ids = ", ".join(str(i) for i in record.get("invoice_ids") or ()) or "its invoices"
    if any(r["code"] == "rejected" and _KEY_USED.match(r["message"])
           for r in record["reasons"]):
        why = ("it answered a repeat of an earlier attempt with HTTP 422, which says that "
               "the bundle's Idempotency-Key was used before with other content: it holds "
               "something under that key, maybe what an earlier attempt sent.")
    else:
        why = ("outboxd tried to deliver it before and does not know how that attempt "
               "ended (it has no receipt for it).")
    return [f"The receiver may have this bundle already: {why}",
            f"Before sending it again, ask the operator (or look in its portal) whether it "
            f"has {ids} of bundle {str(record['bundle_id'])[:12]}; if it has, leave this "
            "bundle here and do not send it again."]


def _held_back(record: dict[str, Any]) -> list[str]:
    """The invoices of a file of several that have no error of their own and were stopped
    with it (a file is sent whole): the reasons list only the others' files, and a clerk
    who looks for one of these under Sent finds nothing that says why. None when a reason
    is the whole file's (a receiver's refusal, the invoice file itself): that stops each."""
    ids = [str(i) for i in record.get("invoice_ids") or ()]
    concerned = {r.get("invoice_id") for r in record["reasons"]}
    clean = [i for i in ids if i not in concerned]
    if len(ids) < 2 or not clean or not concerned <= set(ids):
        return []
    one = len(clean) == 1
    stopped = ("stopped with it" if record.get("delivery_outcome_unknown")
               else "not sent either")
    return [f"{record['invoice_file']} holds the invoices {', '.join(ids)} and is sent whole, "
            f"so {', '.join(clean)} (without errors of {'its' if one else 'their'} own) "
            f"{'was' if one else 'were'} {stopped}."]


def _duplicate_only(record: dict[str, Any]) -> bool:
    return bool(record["reasons"]) and all(r["code"] == "duplicate"
                                           for r in record["reasons"])


def _duplicate_steps(record: dict[str, Any]) -> list[str]:
    """A copy of a bundle sent (or being sent) already: "Nothing was delivered. To send it
    again: 1. Fix what is listed above" sent the clerk moving it back unchanged, to be
    quarantined again at once (and the retry it named refuses so). Mostly there is
    nothing to send: say that first, then how to make it a new bundle, the one way it
    goes out again."""
    return ["", "This copy was not sent: it is exactly the bundle named above, which outboxd "
            "sent already (or is sending).",
            "If it came here by mistake, nothing needs to be done: remove this folder.",
            "If it is meant to be sent as a new bundle:",
            "1. Change a file, a type or a note in this folder (another channel in "
            "attachments.toml alone does not make a new bundle); moved back unchanged, it "
            "is quarantined again.",
            *_move_back_steps(record, 2), ""]


def reason_text(record: dict[str, Any]) -> str:
    """REASON.txt, each line as `outboxd status` and the status page show names and
    answers (escaped_controls): a rejection quotes the receiver's answer, whose control
    characters (an escape sequence, a NUL, a line break) must neither reach the terminal
    that shows the file nor break its lines; and a name's bidirectional controls
    ("INV-7" + U+202E + "lmx.pdf" reads "INV-7fdp.xml") show as \\u202e, in the first
    line and the look-alikes' lines as in the reasons."""
    return "\n".join(escaped_controls(line) for line in _reason_lines(record))


def _reason_lines(record: dict[str, Any]) -> list[str]:
    """Each sentence on a line of its own, never one across two (Notepad shows a long
    line wrapped, and a sentence broken in the middle reads as two); a colon's list
    follows on the next lines. The time as the status page shows it: reason.json
    keeps it in ISO 8601, for programs."""
    lines = [f"outboxd quarantined {record['invoice_file']} (bundle {record['bundle_id']}) "
             f"at {readable(record['quarantined_at'])} for these reasons:", ""]
    for r in record["reasons"]:
        lines.append(f"- {r['file']}: {r['message']}  [{r['code']}]")
    accepted = record.get("accepted_documents") or []
    # Found before the claim, so never with documents accepted (those come of a delivery).
    spelling = [r for r in record["reasons"] if r["code"] == "sidecar-spelling"]
    if spelling and not accepted:
        return lines + _look_alike_steps(
            record, [r["file"] for r in spelling],
            [str(r["message"]) for r in spelling])
    unknown = bool(record.get("delivery_outcome_unknown"))
    if not accepted and not unknown and _duplicate_only(record):
        return lines + _duplicate_steps(record)
    if not accepted:
        return lines + ["", *_held_back(record),
                        *([*_unknown_steps(record), "To send it again:"] if unknown
                          else ["Nothing was delivered. To send it again:"]),
                        "1. Fix what is listed above, in this folder.",
                        *_move_back_steps(record, 2), ""]
    # Part of the file is with the receiver already: the one thing a clerk must not do
    # is send those invoices again, so they are named first, with their receipts.
    ids = ", ".join(str(d["invoice_id"]) for d in accepted)
    one = len(accepted) == 1
    them = f"invoice {ids}" if one else f"invoices {ids}"
    lines += ["", "The receiver has ACCEPTED these invoices of this file — they are "
              "delivered; do NOT send them again:"]
    for d in accepted:
        lines.append(f"- invoice {d['invoice_id']}: receipt {d['receipt_id'] or '(none given)'}"
                     f" (HTTP {d['status']}, document {d['name']}, Idempotency-Key "
                     f"{d['idempotency_key']})")
    lines += ["No other invoice of this file is known to be delivered: an earlier attempt's "
              "outcome is not known, so ask the operator whether it has them before sending "
              "them again." if unknown else "No other invoice of this file was delivered.", "",
              "To send the others:",
              f"1. Fix what is listed above, in this folder, without changing {them} in "
              f"it: outboxd will not deliver {'it' if one else 'them'} twice (each document's "
              "Idempotency-Key is made from its bytes, and the receiver answers a key it "
              "has seen as already delivered).",
              *_move_back_steps(record, 2),
              f"Do NOT export the file again with {them} in it: a new export is a new "
              f"document to the receiver, which would then have {them} twice.", ""]
    return lines
