"""The one rule for invoices without attachments ([policy] unattached,
docs/folder-convention.md, section 5): what the daemon does with such a bundle, and
the `unattached-invoice` findings it gives.

The daemon's decision (decide.py), the manifest's warning (finish.py) and `outboxd
check`'s forecast all ask `plan`, so what check says of a bundle and what the daemon
does with it cannot drift apart. Beside other errors none of this applies: the daemon
holds or quarantines such a bundle at once (decide.py), without waiting for attachments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from daemon.bundle import Bundle, Finding
from daemon.configuration.config import Settings
from daemon.idnames import attachment_folders
from daemon.journal import readable
from daemon.loop.release import overlong, rename_shorter, warning_text
from daemon.reading.idfolders import one_folder_words
from daemon.watching.scan import Candidate

# What becomes of a bundle with invoices that have no attachments:
SEND: Final = "send"  # sent at once, with the warning
WAIT_THEN_SEND: Final = "wait_then_send"  # waits until its deadline, then is sent with the warning
WAIT_THEN_QUARANTINE: Final = "wait_then_quarantine"  # waits until its deadline, then quarantined
WAIT_FOR_RELEASE: Final = "wait_for_release"  # waits until a person releases it (no deadline)
Outcome = Literal["send", "wait_then_send", "wait_then_quarantine", "wait_for_release"]

CODE = "unattached-invoice"
# What happens at a waiting bundle's deadline, by [policy] unattached, as `status` and the
# status page say it: a helpdesk asked "will it go?" read a bare time.
AT_DEADLINE: Final = {"warn": "then sent without them, with a warning",
                      "quarantine": "then quarantined"}
# What each policy but "send" does once a bundle's wait is over (or, "hold", never is).
_AFTER_WAIT: dict[str, Outcome] = {"warn": WAIT_THEN_SEND, "quarantine": WAIT_THEN_QUARANTINE,
                                   "hold": WAIT_FOR_RELEASE}


def sent_warnings(invoice_file: str, unattached_ids: tuple[str, ...],
                  released: Path | None) -> list[Finding]:
    """The warning a bundle sent without some attachments carries in its manifest, one per
    invoice without them, naming the release file that sent it if there is one."""
    return [Finding(CODE, invoice_file, warning_text(i, released), "warning", i)
            for i in unattached_ids]


@dataclass(frozen=True)
class Plan:
    """What the daemon does with a bundle whose `unattached_ids` have no attachments."""

    outcome: Outcome
    # The release file beside the invoice file (regular files only), None if none.
    released: Path | None
    # True when that release is what sends it at once: the policy would have it wait.
    by_release: bool
    wait_seconds: float  # [policy] attachment_wait_seconds, for the waits with a deadline
    invoice_file: str
    name: str  # NAME, the invoice file's stem
    sidecar: str  # the sidecar folder's name
    invoice_ids: tuple[str, ...]
    unattached_ids: tuple[str, ...]
    release_suffix: str

    @property
    def waits(self) -> bool:
        return self.outcome != SEND

    def findings(self, ended: str | None = None) -> list[Finding]:
        """The `unattached-invoice` findings the bundle ends with as its files lie: a
        warning per invoice without attachments where it is sent without them (at once,
        after its wait, or, under "hold", once a person releases it), an error where it
        is quarantined after its wait. `ended`: the deadline (as the journal keeps it)
        once that wait is over and the daemon quarantines it; None: before, as `outboxd
        check` foretells it."""
        if self.outcome == WAIT_FOR_RELEASE:
            return [Finding(CODE, self.invoice_file, f"invoice {i} has no attachments; "
                            "released without them, it is sent with this warning", "warning", i)
                    for i in self.unattached_ids]
        if self.outcome != WAIT_THEN_QUARANTINE:
            return sent_warnings(self.invoice_file, self.unattached_ids, self.released)
        folders = attachment_folders(self.sidecar, self.invoice_ids, self.unattached_ids)
        # A release file for a NAME near the length limit would be longer than a file name
        # may be: no such file can be made, so the invoice file is to be renamed first.
        over = overlong(self.name, self.release_suffix)
        release = (f"a file {self.name}{self.release_suffix}" if not over else
                   f"a release file (its new name without the extension, then "
                   f"{self.release_suffix})")
        why = ("" if not over else ": a release file for so long a name would be longer "
               "than a file name may be")
        if ended is None:
            put = f"put {release} beside it" if not over else \
                f"{rename_shorter(over)}, then put {release} beside it"
            return [Finding(CODE, self.invoice_file, f"invoice {i} has no attachments: the "
                            f"bundle is quarantined after its wait of {self.wait_seconds:g} s "
                            f"— {self._where(i, folder, '')}, or, to send it without them, "
                            f"{put}{why}", "error", i)
                    for i, folder in zip(self.unattached_ids, folders, strict=True)]
        # The others' attachments lie in the quarantine folder too: a clerk who moved the
        # invoice file back alone, as the line said, released every invoice of the file
        # without attachments, theirs left behind in quarantine/.
        others = [i for i in self.invoice_ids if i not in self.unattached_ids]
        # Repeated in each invoice's line: a batch of thousands is counted, not listed.
        attached = (", ".join(others) if len(others) <= 3 else
                    f"{len(others)} other invoices of the file")
        if over:
            back = (f"{rename_shorter(over)}, then move it back with {release} beside it"
                    + (f", its folder first (it holds the attachments of {attached})"
                       if attached else ""))
        elif attached:
            back = (f"move the folder {self.sidecar} back first (it holds the attachments "
                    f"of {attached}), then the invoice file, with {release} beside it")
        else:
            back = f"move the invoice file back with {release} beside it"
        # One reason per invoice, naming it in `invoice_id` as well: a script maps each to
        # its invoice without reading the message.
        return [Finding(CODE, self.invoice_file, f"invoice {i} had no attachments by the end "
                        f"of its wait ({readable(ended)}) — "
                        f"{self._where(i, folder, ' and move the bundle back into the outbox')}"
                        f"; or, to send it without them, {back}{why}", invoice_id=i)
                for i, folder in zip(self.unattached_ids, folders, strict=True)]

    def _where(self, invoice_id: str, folder: str, then: str) -> str:
        """Where the invoice's attachments go (`then`: what to do after), or, where its
        folder is one between it and another id of the file, why none can: a clerk sent
        to make batch/A_1 for A/1 and for A:1 got the file stopped (id-folder-collision),
        with the words the status page gives (idfolders.one_folder_words)."""
        if words := one_folder_words(self.sidecar, self.invoice_ids, (invoice_id,)):
            return words
        return f"put them in the folder {folder} (make it if there is none){then}"


def plan(bundle: Bundle, cand: Candidate, settings: Settings,
         released: Path | None) -> Plan | None:
    """What the daemon does with `bundle` for its invoices without attachments, given the
    release file found beside it (release.release_file); None when every invoice has
    some. A release sends it at once whatever the policy ("send" sends at once anyway)."""
    if not bundle.unattached_ids:
        return None
    policy = settings.policy.unattached
    by_release = released is not None and policy != "send"
    outcome: Outcome = (SEND if policy == "send" or by_release else
                        _AFTER_WAIT[policy])
    return Plan(outcome, released, by_release, settings.policy.attachment_wait_seconds,
                bundle.invoice_file.name, cand.name, cand.sidecar.name, bundle.invoice_ids,
                bundle.unattached_ids, settings.share.release_suffix)
