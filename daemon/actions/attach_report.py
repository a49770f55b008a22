"""What `outboxd attach` says once the file is in: "attached as", and the bundle it went
into read as `outboxd check` reads it — its errors while it has any, or the PDF an image
just attached goes out as."""

from __future__ import annotations

import shlex
from pathlib import Path

from daemon.actions.check import Checked, checked
from daemon.actions.check_journal import CheckJournal
from daemon.actions.reads import CommandReads
from daemon.configuration.config import Settings
from daemon.errors import ConfigError
from daemon.fs.workfolder import maybe_there
from daemon.invisible import for_terminal
from daemon.watching.scan import Candidate


def checked_after(cand: Candidate, settings: Settings, reads: CommandReads
                  ) -> Checked | None:
    """The bundle the file went into, read as `outboxd check` reads it: where it has
    errors still (another file of its sidecar that breaks a rule, an invoice file the
    e-invoice rules refuse …), "attached as" alone had the clerk believe it would now go
    out; where it converts the image just attached to PDF, that is what goes out. None
    where a read failed as the daemon claimed the bundle."""
    journal = CheckJournal(settings)
    try:
        found = checked(cand, settings, reads, journal)
    except ConfigError as exc:
        # The e-invoice engine cannot load (a broken install): the file is in all the
        # same, and the admin reads why the bundle was not checked.
        return Checked([cand.invoice.name, f"  {exc}", "  => not checked"], True, False)
    finally:
        journal.close()
    if found.invalid and _claimed(cand):
        # A read that failed as the daemon claimed the bundle (it settled meanwhile,
        # settle_seconds after the copy) tells nothing of the bundle: it is on its way.
        # (Such a read gives no verdict, check.checked: `read` is False for it.)
        return None
    return found


def _claimed(cand: Candidate) -> bool:
    """Whether the invoice file has left the outbox (the daemon claimed it). A look the
    share fails (EIO) cannot tell: os.path.lexists took it for gone, and attach said
    "attached as" alone, as of a bundle on its way, of one it could not check."""
    return not maybe_there(cand.invoice)


def said_after(invoice_id: str, rel: Path, invoice: Path, left: Checked | None) -> None:
    """The lines on stdout for a file attached at `rel` (in the outbox) to `invoice`;
    `left`: checked_after's."""
    print(for_terminal(f"{invoice_id}: attached as {rel}"))
    if left is not None and not left.invalid:
        # Under convert_images the image goes out as a PDF, as `check` says: a clerk
        # who attached scan.png must not look for scan.png at the receiver. (A bundle
        # with errors is shown whole below, this line with it.)
        sent_as = dict(left.sent_as).get(rel.as_posix())
        if sent_as is not None:
            print(for_terminal(f"  {sent_as}"))
        left = None
    if left is not None:
        # Attached all the same (a clerk may mend a bundle one file at a time), exit 0;
        # but in the same output, so that no one takes the attach for the bundle's go.
        again = f"outboxd check {shlex.quote(str(invoice))}"
        print(for_terminal(
            (f"but {invoice.name} still has errors, and the daemon does not send it while "
             f"they remain — mend them ({again} shows them again):" if left.read else
             f"but {invoice.name} could not be checked now ({again} says whether it has "
             "errors):") + "\n" + "\n".join(left.lines)))
