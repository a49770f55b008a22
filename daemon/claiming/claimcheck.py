"""The check after a claim: whether the bundle matched again in its work folder is the
one validated (`changed_since_read`; and `linked_since`, a file given another name since
the claim's look), and the validated bundle at its new paths (`moved_into`). claims.py
makes it after each claim, recovery.py after a claim a crash cut short.
"""

from __future__ import annotations

from dataclasses import replace

from daemon.bundle import Bundle
from daemon.manifest import bundle_id_of
from daemon.names import printable
from daemon.validation.convert import unconverted


def changed_since_read(validated: Bundle, moved: Bundle | BaseException,
                       validated_id: str | None = None) -> str | None:
    """What differs in the bundle matched again after the claim from what was validated
    (None: nothing, it goes on): its bytes (the bundle id), or what the id does not
    cover but decides what is validated and sent — the channel (an attachments.toml
    that says original-print now would otherwise go out validated for e-invoice) and
    the rest read from the sidecar (Bundle.sidecar_digest). `validated_id`: the
    validated bundle's id, when known (not computed again unless it converted images)."""
    if not isinstance(moved, Bundle):
        return f"cannot be matched again: {moved}"
    # assemble() converts nothing: compare with the id of what was matched.
    if validated_id is None or any(a.converted for a in validated.attachments):
        validated_id = bundle_id_of(unconverted(validated))
    if bundle_id_of(moved) != validated_id:
        return "its files (another bundle id)"
    if moved.channel != validated.channel:
        return f"its channel ({validated.channel} -> {moved.channel})"
    if moved.sidecar_digest != validated.sidecar_digest:
        return "attachments.toml or another entry of its sidecar"
    return None


def linked_since(moved: Bundle | BaseException, linked: tuple[str, ...]) -> str | None:
    """The files of the bundle matched again after the claim (`moved`) that have other
    names (hard links) and were not among those its last snapshot found so and the claim
    found so too (`linked`), said (None: none): a link made after that look, on a share
    whose change times do not show it, or made again after the claim found the file with
    one name, which the claim did not copy (owncopy.py) and would archive as a name of
    another's file. The bundle settles again, and its next claim copies it."""
    if not isinstance(moved, Bundle):
        return None
    late = [rel for rel in moved.linked if rel not in linked]
    if not late:
        return None
    return (f"{', '.join(printable(rel) for rel in late)} got another name (a hard link) "
            "since it was last looked at; read again, to be sent as a copy of its own")


def moved_into(validated: Bundle, moved: Bundle) -> Bundle:
    """The validated bundle with the paths of its files after the claim.

    Both have the same bundle id, so the files are the same bytes; only
    where they lie has changed.
    """
    where = {(a.invoice_id, a.original_name): a.path for a in moved.attachments}
    return replace(validated,
                   invoice_file=replace(validated.invoice_file, path=moved.invoice_file.path),
                   sidecar=moved.sidecar,
                   attachments=tuple(replace(a, path=where[(a.invoice_id, a.original_name)])
                                     for a in validated.attachments))
