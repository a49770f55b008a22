"""An invoice id as a name on disk: the folder of its attachments in a sidecar (the
Windows-safe name a clerk is told to make, and the one by the first rule of
docs/folder-convention.md, section 3), and the id inside a longer file name.

Pure functions, so the matcher, `attach`, the page and the directory transport agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from daemon.names import CONTROLS, fit_name

# Characters that cannot stand in a folder name on Windows or Linux, and the control
# characters: one pass over an id (it runs for every id of every bundle read).
_FOLDER_UNSAFE = re.compile(rf'[/\\:*?"<>|{CONTROLS}]')


# Windows' device names: a file or folder named so, in any case and with any extension
# ("con", "NUL.txt", "com1.tar.gz", also before spaces: "CON .txt"), is the device, so a
# clerk can neither make nor open it on the share. Windows takes ¹ ² ³ as digits here.
# The list is Microsoft's ("Naming Files, Paths, and Namespaces"), COM0 and LPT0 with
# it, and the console's CONIN$ and CONOUT$, which Windows resolves as it does CON. Windows
# 11 takes fewer names for devices (not CON.txt), Windows 10 and Explorer more: a share
# has clerks on both, so a folder's name must do for every one of them.
_DEVICE = re.compile(r"(?:CON|CONIN\$|CONOUT\$|PRN|AUX|NUL|(?:COM|LPT)[0-9\u00b9\u00b2\u00b3]) *",
                     re.IGNORECASE | re.ASCII)


def folder_name_for_id(invoice_id: str) -> str:
    """An invoice id as a folder name: unsafe, control and invisible format characters
    become '_'.

    So do dots and spaces at the end: Windows drops them from a name, so a clerk
    who makes the folder "INV-7." on the share gets "INV-7", and could never
    make the folder of that id. That takes in an id of only dots ("." or "..",
    which would name the folder itself or its parent); an empty id becomes "_".
    A Windows device name gets '_' after it ("CON" -> "CON_", "nul.txt" -> "nul_.txt"),
    as no folder of that name can be made on the share.
    """
    folder = id_in_name(invoice_id)
    base = folder.split(".", 1)[0]
    if _DEVICE.fullmatch(base):
        folder = f"{base}_{folder[len(base):]}"
    # An id is data and may be longer than a file system takes in one name.
    return fit_name(folder or "_")


def contract_folder_name(invoice_id: str) -> str:
    """An invoice id as a folder name by the first rule of docs/folder-convention.md,
    section 3, the one outboxd has always promised (and an ERP on Linux may follow):
    only `/ \\ : * ? " < > |` and control characters become '_'. Such a folder is that
    invoice's as well as the one folder_name_for_id gives, which is the name a clerk is
    told to make: on Windows this one may be impossible ("CON") or lose its end
    ("INV-7.")."""
    return fit_name(_FOLDER_UNSAFE.sub("_", invoice_id))


def id_folder_names(invoice_id: str) -> tuple[str, ...]:
    """The names under which a subfolder of a sidecar is the invoice's folder: the
    Windows-safe one first (folder_name_for_id: the one to make), then the first rule's
    (contract_folder_name) where it differs and can name a folder at all ("", "." and
    ".." cannot: they are the sidecar itself or the outbox)."""
    safe, contract = folder_name_for_id(invoice_id), contract_folder_name(invoice_id)
    return (safe,) if contract in (safe, "", ".", "..") else (safe, contract)


def id_in_name(invoice_id: str) -> str:
    """An invoice id as part of a longer file name (the directory transport's
    NAME--INVOICEID.xml): its characters as in its folder's name, but no '_' after a
    device name, which is one only as the whole name (INV--CON.xml is a plain file)."""
    name = _FOLDER_UNSAFE.sub("_", invoice_id)
    if not name.isascii():
        # Control characters beyond ASCII (C1) and the invisible format characters (Cf:
        # zero-width space, joiners, U+FEFF, soft hyphen, bidirectional controls…): two
        # ids that differ only by one would give folders a clerk cannot tell apart, nor
        # type. ASCII has none of them.
        name = "".join("_" if unicodedata.category(c) in ("Cc", "Cf") else c for c in name)
    kept = len(name.rstrip(". "))
    return name[:kept] + "_" * (len(name) - kept)


def attachment_folders(sidecar: str, invoice_ids: Sequence[str],
                       unattached: Sequence[str]) -> list[str]:
    """Where the missing attachments of `unattached` go, as a clerk types the folders:
    the sidecar for a file of one invoice, each invoice's own subfolder of it for a file
    of several (files in the sidecar's root are then an error)."""
    if len(invoice_ids) < 2:
        return [sidecar]
    return [f"{sidecar}/{folder_name_for_id(i)}" for i in unattached]
