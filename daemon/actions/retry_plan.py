"""What `outboxd retry` moves back, and whether it may (retry.py moves it; retry_find.py
finds the quarantine folder a person names): the invoice file in the folder, and the
refusals made before anything moves: a name the outbox holds already,
a look-alike of the sidecar that would stop the bundle again (`sidecar-spelling`),
another invoice file with its sidecar (`sidecar-shared`), a link, FIFO or device
(`not-a-file`), a bundle the journal has as sent under [policy] duplicates =
"quarantine", a bundle a POST of which may have reached the receiver (unless the admin
says the operator was asked: --operator-checked).

quarantine/ is writable by the people on the share: reason.json is read
through fsread.read_regular, so a FIFO, link or device of that name is never
opened (a FIFO would block the command for good); it is ignored with a note,
and the invoice file is told by its name as for a folder without reason.json.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

from daemon.actions.common import invalid_fate
from daemon.actions.reads import CommandReads
from daemon.actions.retry_find import RetryRefused, is_file, read_reason, recorded_id
from daemon.archiving.archive_papers import reason_of
from daemon.archiving.papers import PAPER_NAMES
from daemon.configuration.config import Settings
from daemon.configuration.daemonuser import as_the_daemons_user
from daemon.errors import InputError, OutboxdError, ReaderFailed
from daemon.fs.fsops import SHARE_AWAY, kind_of
from daemon.fs.workfolder import there
from daemon.journal.readonly import journal_there, read_journal
from daemon.manifest import bundle_id_of
from daemon.names import NameKind, classify, converted_folder, embedded_folder
from daemon.reading.lookalikes import look_alike_findings
from daemon.reading.sharedsidecar import shared_message, sharers_listed
from daemon.watching.scan import candidate_for, is_invoice_file
from daemon.watching.sidecarnames import alike_key, alike_keys


# Whom to run retry as where this user cannot use the journal: retry records in it, which
# only the daemon's user (and root) may (operations.md); its group may only read it.
def run_as(settings: Settings) -> str:
    return f"nothing was moved — {as_the_daemons_user('retry', settings.paths.state_dir)}"




def _invoice_name(folder: Path, settings: Settings, notes: list[str] | None = None) -> str:
    """The bundle's invoice file: the one reason.json names, else the one file in the
    folder that looks like an invoice file. A reason.json that is not a regular file
    is never opened; why it was ignored goes to `notes`."""
    try:
        record = reason_of(folder)
        name = record.get("invoice_file") if record is not None else None
        # Only a plain name of a regular file in this folder: whatever a share user
        # wrote into reason.json, retry never moves anything from elsewhere.
        if (isinstance(name, str) and name not in PAPER_NAMES
                and os.sep not in name and is_file(folder / name)):
            return name
    except InputError as exc:
        if notes is not None:
            notes.append(f"{exc.file}: {exc.message.partition(' — ')[0]}; ignored, "
                         "never opened — the invoice file was told by its name, and this "
                         "reason.json, not outboxd's, stays in the quarantine folder")
    except OSError as exc:
        if exc.errno in SHARE_AWAY:
            raise  # not unreadable: the share's fault, and the invoice file unknown
    except (ValueError, RecursionError):
        pass  # unreadable, cut short or edited: the invoice file is told by its name
    # Sorted: the refusal below names them in an order the admin can find them in.
    files = sorted(p.name for p in folder.iterdir() if is_file(p) and p.name not in
                   PAPER_NAMES and is_invoice_file(settings.outbox, p.name, settings.share))
    if not files and all(p.name in PAPER_NAMES for p in folder.iterdir()):
        # The papers a person kept when an earlier retry moved the bundle back: run again,
        # retry said to move files back by hand that were back already.
        kept = ", ".join(sorted(p.name for p in folder.iterdir()))
        raise RetryRefused(f"no quarantined bundle in {folder} any more: it holds "
                           f"{'only ' + kept if kept else 'nothing'} (the bundle was moved "
                           "back, or its files taken out) — keep what you need, then remove "
                           "the folder by hand")
    if len(files) != 1:
        raise RetryRefused(f"{folder}: cannot tell the invoice file ({', '.join(files) or 'none'}"
                           ") — move the files back into the outbox by hand")
    return files[0]


def conversions(settings: Settings, invoice: str) -> str:
    """The name of the folder of PDFs outboxd made of the bundle's images beside its
    sidecar (convert_images), which stays out of the outbox: outboxd's own, made again when
    the bundle is sent; moved back, it would lie there for good, a folder without an
    invoice file."""
    return converted_folder(candidate_for(settings.outbox, invoice).sidecar.name)


def documents_kept(settings: Settings, invoice: str) -> str:
    """The name of the folder of documents ubl-embedded built and posted (NAME.embedded/),
    which stays out of the outbox: the record of what the receiver may already have,
    built again when the bundle is sent; moved back, it would lie there for good."""
    return embedded_folder(invoice, candidate_for(settings.outbox, invoice).sidecar.name)


def plan(folder: Path, settings: Settings, reads: CommandReads,
         notes: list[str] | None = None, operator_checked: bool = False) -> list[str]:
    """The names to move back, invoice file last; refuses if the outbox holds any of them.
    What the person should know (a reason.json that was ignored) goes to `notes`. The
    bundle is read (if at all) in `reads`, the command's: retry plans each bundle before
    any moves, then again just before its own move, and one that ran the reader out of
    time the first time, unchanged since, is not read again (twice the time limit, and a
    reader started and the engine loaded once more, for the same answer).
    `operator_checked`: the admin asked the operator (retry --operator-checked) about a
    bundle a POST of which may have reached it (_refuse_an_unknown_outcome)."""
    invoice = _invoice_name(folder, settings, notes)
    if not operator_checked:
        _refuse_an_unknown_outcome(folder)
    own = set(PAPER_NAMES) | {conversions(settings, invoice), documents_kept(settings, invoice)}
    parts = sorted(p.name for p in folder.iterdir() if p.name not in own)
    # A look the share fails raises (nothing moved yet): never taken for a free name.
    taken = [n for n in parts if there(settings.outbox.path / n)]
    if taken:
        raise RetryRefused(f"{folder.name}: the outbox already holds {', '.join(taken)}; "
                           "nothing was moved — "
                           "move or rename that first, then retry")
    _refuse_look_alikes(folder, invoice, settings)
    _refuse_a_shared_sidecar(folder, parts, invoice, settings)
    _refuse_what_is_no_file(folder, parts, settings)
    _refuse_a_duplicate(folder, invoice, settings, reads)
    # Invoice file last: the bundle is complete the moment the daemon can see it.
    return [n for n in parts if n != invoice] + [invoice]


def _refuse_an_unknown_outcome(folder: Path) -> None:
    """Refuses a bundle whose reason.json says `delivery_outcome_unknown` (a POST of it
    may have reached the receiver, no answer saying otherwise): sent again, the receiver
    may have it twice (a bundle changed since is a new one to it, under a new key; and
    the same one is recognised only while the receiver keeps its key). Moved back, it
    was sent without a word; the admin asks the operator first, and confirms with
    --operator-checked. A reason.json that cannot be read cannot tell (the daemon
    decides, as before)."""
    record = read_reason(folder)
    if record is None or record.get("delivery_outcome_unknown") is not True:
        return
    bundle_id = record.get("bundle_id")
    which = f"bundle {bundle_id[:12]}" if isinstance(bundle_id, str) else "this bundle"
    ids = record.get("invoice_ids")
    if isinstance(ids, list) and ids:
        which += f" (invoice{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})"
    raise RetryRefused(
        f"{folder.name}: nothing was moved — an earlier delivery attempt of this bundle "
        "may have reached the receiver (its outcome is not known: reason.json says "
        "delivery_outcome_unknown), and sent again the invoices may reach the customer "
        f"twice. Ask the operator (or look in its portal) whether it holds {which}: if "
        "it does, leave the bundle in quarantine; if it does not, move it back with "
        f"outboxd retry --operator-checked -- {shlex.quote(folder.name)}")


def _refuse_look_alikes(folder: Path, invoice: str, settings: Settings) -> None:
    """Refuses while the outbox holds a look-alike of the bundle's sidecar (its name
    differs only in upper and lower case, Unicode form, a space or dot at an end, an
    invoice file's extension, or the sidecar suffix, or it is named as a copy of the
    sidecar is: `sidecar-spelling`). The look-alike of a bundle quarantined for it stays
    in the outbox (REASON.txt says to mend it there first); moved back before that, the
    invoice file is held or quarantined again at once. The daemon's own rule
    (lookalikes.look_alike_findings), on the names of the outbox as they are now."""
    cand = candidate_for(settings.outbox, invoice)
    key = alike_key(settings.outbox, cand.sidecar.name)
    with os.scandir(settings.outbox.path) as it:
        names = tuple(e.name for e in it if e.name != cand.sidecar.name
                      and key in alike_keys(settings.outbox, e.name))
    findings = look_alike_findings(replace(cand, look_alikes=names), settings)
    if findings:
        lines = "\n".join(f"  {f.file}: {f.message}  [{f.code}]" for f in findings)
        raise RetryRefused(f"{folder.name}: nothing was moved — the outbox still holds a "
                           f"look-alike of the sidecar of {invoice}, and moved back now it "
                           f"would be held or quarantined again:\n{lines}\nMend that in the "
                           "outbox first, then retry")


def _refuse_a_shared_sidecar(folder: Path, parts: list[str], invoice: str,
                             settings: Settings) -> None:
    """Refuses while another invoice file in the outbox has the bundle's sidecar and the
    sidecar would be there (moved back with the bundle, or in the outbox already): the
    daemon would hold both files (`sidecar-shared`) instead of sending either. The
    daemon's own rule (sharedsidecar.shared_sidecar_findings), on the outbox as it is."""
    cand = candidate_for(settings.outbox, invoice)
    side = cand.sidecar.name
    others = list(sharers_listed(settings.outbox, settings.share, invoice))
    if not others or side not in parts and not (
            os.path.isdir(cand.sidecar) and not os.path.islink(cand.sidecar)):
        return
    raise RetryRefused(f"{folder.name}: nothing was moved — the outbox holds "
                       f"{', '.join(others)}, whose sidecar is {side} too, and moved back "
                       "now both would be held:\n"
                       f"  {side}: {shared_message(cand, others)}  [sidecar-shared]\n"
                       "Mend that in the outbox first, then retry")


def _refuse_what_is_no_file(folder: Path, parts: list[str], settings: Settings) -> None:
    """Refuses while what would go back holds a link, FIFO or device (quarantine/ is
    writable from the share): moved back, the daemon never opens it and stops the bundle
    again at once (`not-a-file`: quarantined, or held under [policy] invalid = "hold"),
    so it is mended here first. Names the daemon
    passes over (desktop litter, copies in progress) are its own matter."""
    found: list[str] = []
    todo = list(parts)
    while todo:
        rel = todo.pop(0)
        if classify(Path(rel).name, settings.outbox.ignore_patterns) is not NameKind.OTHER:
            continue
        mode = os.lstat(folder / rel).st_mode
        if stat.S_ISDIR(mode):
            todo += sorted(f"{rel}/{n}" for n in os.listdir(folder / rel))
        elif not stat.S_ISREG(mode):
            found.append(f"  {rel}: is a {kind_of(mode)}, not a regular file; outboxd never "
                         "opens or follows it — put the file itself there (or remove it)  "
                         "[not-a-file]")
    if found:
        fate = invalid_fate(settings)
        fate += " again" if fate == "quarantined" else ""
        raise RetryRefused(f"{folder.name}: nothing was moved — moved back now, the bundle "
                           f"would be {fate} at once:\n" + "\n".join(found)
                           + f"\nMend that in {folder} first, then retry")


def _refuse_a_duplicate(folder: Path, invoice: str, settings: Settings,
                        reads: CommandReads) -> None:
    """Refuses a bundle the journal has as sent (or on its way) while [policy] duplicates
    = "quarantine": moved back as it is, the daemon quarantines it again at once as a
    `duplicate`. The id reason.json records is only a hint (a clerk may have changed a
    file in the folder since, which makes a new bundle): the bundle is read as it is now,
    as the daemon would read it, and only its own id counts. Where it cannot be told (no
    reason.json, no journal, a bundle that does not read) the daemon decides, as before."""
    if settings.policy.duplicates != "quarantine" or not journal_there(
            settings.journal_path, run_as(settings)):
        return
    recorded = recorded_id(folder)
    if recorded is None or not _was_sent(recorded, settings):
        return
    here = settings.model_copy(update={"outbox": settings.outbox.model_copy(
        update={"path": folder})})
    cand = candidate_for(here.outbox, invoice)
    try:
        # In a reader under the daemon's time limit (reads.py): a file a clerk changed
        # in the folder, as this refusal tells them to, may be one that makes readers
        # loop; past the limit the daemon decides (it holds it, read-time-limit).
        now = bundle_id_of(reads.evaluate(cand, here))
    except (InputError, OSError, ReaderFailed):
        return
    if now != recorded:
        return  # changed since: a new bundle, which the daemon takes as such
    raise RetryRefused(
        f"{folder.name}: nothing was moved — this exact bundle ({now[:12]}) is recorded as "
        "sent in the journal, and under [policy] duplicates = \"quarantine\" it would be "
        "quarantined again at once as a duplicate. If it is meant to be a new bundle, "
        f"change a file, a type or a note in {folder}, then retry; to send the same bundle "
        "again, set [policy] duplicates = \"send\" and reload outboxd (it applies to "
        "every bundle; on every host whose outboxd watches this outbox, or another one "
        "quarantines it again), then retry; if it came by mistake, leave it or remove it")


def _was_sent(bundle_id: str, settings: Settings) -> bool:
    """Whether the journal has bundle_id as sent or on its way (the daemon's test of a
    duplicate); False where it cannot be read (the move's own record then says why)."""
    try:
        return read_journal(settings.journal_path, lambda j: j.was_sent(bundle_id))
    except (sqlite3.Error, OutboxdError, OSError):
        return False
