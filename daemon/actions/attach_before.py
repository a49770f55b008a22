"""An `outboxd attach` run again after it had done its job: the file is in the sidecar,
or went out with the bundle, with the same bytes, type and note. A job scheduler that
killed an attach after its file landed runs it again; "already exists" or "no invoice
file", exit 1, would have it retried for good."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.actions.attach_notes import records
from daemon.actions.whereabouts import latest_row
from daemon.configuration.config import Settings
from daemon.errors import InputError
from daemon.fs.fsdepth import fwalk_bounded
from daemon.fs.fsops import folder_below
from daemon.fs.fsread import hash_file
from daemon.fs.fswrite import held_path


class AttachedBefore(Exception):  # noqa: N818 - not an error: the job was done before
    """The same attach had already put the file in (and maybe sent it): the line that
    says so. A job scheduler that killed an attach after the file landed runs it again;
    "already exists" or "no invoice file", exit 1, would have it retried for good."""


def attached_before(src: Path, dest: Path, doc_type: str | None, note: str | None) -> bool:
    """Whether dest is src as this very attach would put it in (the same bytes, type and
    note): a job scheduler that killed an attach after it landed runs it again, and
    "already exists", exit 1, would have it retried for good."""
    try:
        same = hash_file(dest, dest.name)[1] == hash_file(src, str(src))[1]
    except (InputError, OSError):
        return False  # a link, a folder, a file gone: not what an attach puts there
    return same and records(dest.parent, dest.name, doc_type, note)


def sent_before(invoice_id: str, src: Path, doc_type: str | None, note: str | None,
                settings: Settings) -> None:
    """AttachedBefore if the journal has the invoice's bundle as sent, and its folder in
    sent/ holds src's name with src's bytes, type and note: the attach run again after
    the first landed and the bundle went with it."""
    row = latest_row(invoice_id, settings, as_id=True)
    if row is None or row.shown_state != "sent" or not row.archive_dir:
        return
    entry = Path(row.archive_dir)
    try:
        below = entry.relative_to(settings.sent_dir)
    except ValueError:
        return  # not in sent/ as configured now: not looked for
    try:
        # From sent/ down, never through a link (anyone who may write in sent/ could swap
        # the entry or its day folder for one): attach, often root, would read what lies
        # there, anywhere, and say "already sent" for a file that never went.
        with folder_below(settings.sent_dir, str(below)) as held:
            # Nor through a link below; nor deeper than fsdepth.DEPTH_MAX (an attach puts
            # its file two levels down at most).
            for top, _folders, files, fd in fwalk_bounded(held, entry, "walk", _skip):
                if src.name in files and attached_before(src, held_path(fd) / src.name,
                                                         doc_type, note):
                    found = Path(os.path.normpath(entry / top / src.name))
                    raise AttachedBefore(
                        f"{invoice_id}: already sent with it — {row.invoice_file} went out "
                        f"at {row.since} with {found} (the same bytes, type and note); "
                        "nothing was changed")
    except (InputError, OSError):
        return  # the entry is not there as a folder of sent/: not sent with it


def _skip(_folder: str) -> None:
    """A folder too deep to walk: an attach never put a file there."""
