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
from daemon.errors import InputError, describe
from daemon.fs.fsdepth import fwalk_bounded
from daemon.fs.fsops import folder_below
from daemon.fs.fsread import hash_file
from daemon.fs.fswrite import held_path
from daemon.fs.workfolder import maybe_there


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
                settings: Settings) -> str | None:
    """AttachedBefore if the journal has the invoice's bundle as sent, and its folder in
    sent/ holds src's name with src's bytes, type and note: the attach run again after
    the first landed and the bundle went with it. Else None where the folder was looked
    through (or the bundle was not sent); where it could not be (not in sent/ as
    configured now, gone, a link), the words that say so in place of "it went out
    without FILE", which would be a guess."""
    row = latest_row(invoice_id, settings, as_id=True)
    if row is None or row.shown_state != "sent" or not row.archive_dir:
        return None
    entry = Path(row.archive_dir)
    try:
        below = entry.relative_to(settings.sent_dir)
    except ValueError:
        # [paths] sent moved since (/srv/sent → /srv/sent2): the row names the old place.
        return _untold(src.name, f"that folder is not in sent/ as configured now "
                                 f"({settings.sent_dir}){_LOOK}")
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
    except (InputError, OSError) as exc:
        # A look the share fails is no answer that the folder is gone: said as one that
        # could not be looked into, with the share's error (os.path.lexists took it for
        # "moved or deleted").
        if not maybe_there(entry):
            # Its day folder gone too is also what a share unmounted from sent/ looks like
            # (its bare mount point is empty): not said as a deletion alone.
            how = "moved or deleted" if os.path.lexists(entry.parent) else (
                "moved or deleted with its day folder, or sent/ is on a share that is not "
                "mounted now")
            return _untold(src.name, f"that folder is no longer in {settings.sent_dir} "
                                     f"({how}){_LOOK}")
        why = exc.message if isinstance(exc, InputError) else describe(exc)
        return _untold(src.name, f"that folder could not be looked into from "
                                 f"{settings.sent_dir} ({why.split(' — ')[0]})")
    return None


def _untold(name: str, why: str) -> str:
    """The end of attach's refusal for a sent bundle whose folder it could not look into:
    it went out, and whether with FILE is not known here — not "without it"."""
    return f"whether {name!r} went with it cannot be told here: {why}"


_LOOK = " — look for the file in that folder where it lies now"


def _skip(_folder: str) -> None:
    """A folder too deep to walk: an attach never put a file there."""
