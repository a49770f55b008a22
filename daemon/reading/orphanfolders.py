"""Why a subfolder of a sidecar is no invoice's folder (`orphan-attachment`), said so a
clerk can act on it: the fix depends on what the folder most likely is — another invoice
file's sidecar put inside this one, an id's folder named in the other case, a folder a clerk
made in a one-invoice sidecar, or an invoice of a PDF whose pages could not all be read."""

from __future__ import annotations

import os

from daemon.configuration.config import Settings
from daemon.idnames import folder_name_for_id
from daemon.names import CASE_WORDS, fold_key, stem
from daemon.reading.invoices import PAGES_UNREAD
from daemon.watching.scan import is_invoice_file


def orphan_folder_message(name: str, by_folder: dict[str, str], ids: tuple[str, ...],
                          rel: str, settings: Settings, pages_unread: bool = False) -> str:
    """Why a subfolder of the sidecar is no invoice's folder, and the fix a clerk can
    act on: "rename it to one of the ids" is no help for a folder that is another
    invoice file's sidecar put inside this one, nor for one whose name looks like an
    id's folder (upper and lower case: to Windows the same name), where the message
    would read the same name back to the clerk; nor, for a PDF some of whose pages could
    not be read (`pages_unread`: its one id the file's stem), "move the files up", which
    would send every invoice's attachments as one's."""
    # An id's folder is not always the id ("2026/17" -> 2026_17, CON -> CON_): the name
    # to rename to is the folder's, or the clerk makes one Windows cannot (CON).
    listed = "its invoices are " + ", ".join(
        i if (f := folder_name_for_id(i)) == i else f"{i} (folder {f})" for i in ids)
    owner = None if name == rel else _invoice_file_of_sidecar(name, settings)
    if owner is not None:
        return (f"is named like the sidecar of {owner}, which is in the outbox, but it is "
                f"inside the sidecar of this file ({listed}) — move the folder {name} out "
                f"of {rel} into the outbox, beside {owner}")
    # by_folder's keys are composed (NFC): a folder in the other Unicode form matched.
    twin = next((f for f in by_folder if fold_key(f) == fold_key(name)), None)
    if twin is None and len(ids) == 1 and pages_unread:
        return (f"names no invoice outboxd could read in this file: some of its pages could "
                f"not be read (see its {PAGES_UNREAD} warning), so it was taken for one "
                f"invoice, {ids[0]} — if {name} is an invoice in the file, export the PDF "
                f"again (print to PDF) so that every page's invoice number can be read; only "
                f"if the file holds that one invoice, move the files of {rel}/{name}/ up "
                f"into {rel}/ and remove the empty folder")
    if twin is None and len(ids) == 1:
        # One invoice: its files may lie in the sidecar itself, which is what a clerk who
        # made a folder "October" in it most likely meant.
        return (f"names no invoice of this file; its one invoice is {ids[0]}, whose "
                f"attachments go directly in {rel}/ — move the files of {rel}/{name}/ up into "
                f"{rel}/ and remove the empty folder (or rename it to "
                f"{next(iter(by_folder), ids[0])})")
    if twin is None:
        return (f"names no invoice of this file; {listed} — rename the folder to one of "
                "those ids (to its folder name where one is given)")
    # Found in the other Unicode form too (match_attachments): only the case is wrong.
    return (f"looks like the folder of invoice {by_folder[twin]}, but the two names differ "
            f"only in {CASE_WORDS}: Windows takes them for one name, Linux, where outboxd "
            f"runs, for two, so it names no invoice of this file ({listed}) — rename it to "
            f"{twin}, each letter in upper or lower case as written here, or move its files "
            f"into the folder {twin} if that one is there too")


def _invoice_file_of_sidecar(folder: str, settings: Settings) -> str | None:
    """The invoice file in the outbox root whose sidecar is named `folder`, if there is
    one. Looked up only for a folder that is already an error: it lists the root."""
    cfg = settings.outbox
    if not folder.endswith(cfg.sidecar_suffix):
        return None
    name = folder[:len(folder) - len(cfg.sidecar_suffix)] if cfg.sidecar_suffix else folder
    try:
        with os.scandir(cfg.path) as it:
            found = sorted(e.name for e in it if stem(e.name) == name
                           and is_invoice_file(cfg, e.name, settings.share)
                           and e.is_file(follow_symlinks=False))
    except OSError:
        return None
    return found[0] if found else None
