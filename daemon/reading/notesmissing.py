"""What a clerk is told of an attachments.toml entry that names no attachment of its
folder (attachments-toml-missing-file): where the file it means lies, and what to mend.

"Not in the folder — add the file" is said only when no file of that name is there in
any spelling the clerk could have meant: a file they can see beside the entry (ignored
for its name, written in other upper and lower case or with a space at an end, a folder,
the invoice file itself, a path to it) would send them looking for one that is there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.errors import double_quoted, shown
from daemon.idnames import folder_name_for_id
from daemon.names import CASE_WORDS, edge_words, fold_key, nfc, trimmed
from daemon.typos import close

MANIFEST_NAME = "attachments.toml"

# Why a file is ignored for its name (names.ignored_as; "notes": attachments.toml
# itself), and the fix for its entry.
_IGNORED = {
    "lock": ("the lock file an office program keeps while a document is open, never an "
             "attachment", "name the document itself in the entry (the lock file goes "
             "when the document is closed), or remove the entry"),
    "in-progress": ("a name for a file still being copied, downloaded or edited (such as "
                    "….part, ….tmp, ….crdownload), which is not sent", "give the file its "
                    "final name once it is complete (scan.pdf, not scan.pdf.part) and write "
                    "that name in the entry"),
    "desktop": ("a file Windows, a Mac, a NAS or an editor keeps beside the files, never an "
                "attachment", "remove the entry"),
    "hidden": ("a hidden file (its name begins with a dot), which is not sent",
               "rename the file without the dot at its start, and its entry with it"),
    "admin": ("a name the admin set outboxd to ignore ([outbox] ignore_patterns), which is "
              "not sent", "rename the file and its entry, or remove the entry"),
    "notes": ("the file of types and notes itself, never an attachment", "remove the entry"),
}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# A path as a clerk writes it, from Windows or from anywhere else.
_SEPARATORS = re.compile(r"[/\\]")


@dataclass
class Listing:
    """What one folder of a sidecar holds, by name, as an entry may mean it."""

    rel: str  # the folder as shown: "INV-1", "INV-1/A"
    files: set[str] = field(default_factory=set)  # regular files read as attachments
    ignored: dict[str, str] = field(default_factory=dict)  # name -> why (_IGNORED)
    folders: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # with a finding of their own

    def exact(self, base: str) -> tuple[str, str] | None:
        """(the name, what it is) of the entry of this folder that `base` (NFC) names
        in either Unicode form: "file", "refused", "folder" or why it is ignored."""
        for names, kind in ((self.files, "file"), (self.refused, "refused"),
                            (self.folders, "folder")):
            for name in names:
                if nfc(name) == base:
                    return name, kind
        for name, why in self.ignored.items():
            if nfc(name) == base:
                return name, why
        # A name refused for a character the clerk cannot see or type (a control
        # character, a byte of another encoding) named as it shows on their screen.
        return next(((n, "refused") for n in self.refused if _as_seen(n) == base), None)

    def near(self, base: str) -> tuple[str, str] | None:
        """(the name, "file" or why it is ignored) of a file of this folder that `base`
        names but for upper and lower case or a space or dot at an end."""
        key = fold_key(trimmed(base))
        for name in sorted(self.files):
            if fold_key(trimmed(name)) == key:
                return name, "file"
        for name, why in sorted(self.ignored.items()):
            if fold_key(trimmed(name)) == key:
                return name, why
        return None


def _as_seen(name: str) -> str:
    """`name` as a clerk sees it on the share: without control characters, and a byte
    that is not UTF-8 read as Windows' code page reads it."""
    raw = os.fsencode(name)
    return nfc(_CONTROL.sub("", raw.decode("cp1252", "replace") if any(
        0xDC80 <= ord(c) <= 0xDCFF for c in name) else name))


def missing_message(key: str, here: Listing, others: Sequence[Listing],
                    invoice_name: str = "", several: bool = False) -> str | None:
    """What the entry `key` of `here`'s attachments.toml is told, when it names no
    attachment of `here`; None when the file it names has a finding of its own (bad-name,
    not-a-file), which says what to fix. `others`: the folders of the sidecar whose files
    the entry may have meant, whose own attachments.toml it belongs in; `invoice_name`:
    the invoice file's; `several`: the file holds several invoices."""
    folder, base = _split(nfc(key))
    places = [p for p in (here, *others) if not folder or _ends_with(p.rel, folder)
              or _id_folder(p.rel, folder)]
    for place in places:
        if (hit := place.exact(base)) is None:
            continue
        name, kind = hit
        if place is not here:
            into = [p.rel for p in others if (h := p.exact(base)) and h[1] in ("file", "refused")]
            if kind in ("file", "refused"):
                return _move(key, base, into or [place.rel], several,
                             _id_words(place.rel, folder))
            if kind in _IGNORED:
                reason, fix = _IGNORED[kind]
                return (f"names {shown(key)}, which is not in this folder but in "
                        f"{place.rel}/, where it is ignored for its name: {reason} — {fix}; "
                        f"its entry goes into {place.rel}/{MANIFEST_NAME}: "
                        f"{_why_own(several)}")
            continue
        if kind == "folder":
            return _folder(key, name, here, others)
        if kind in _IGNORED:
            return _ignored(key, kind)
        if not folder:
            # "refused": its own finding says what to fix. A "file": a second entry
            # for it, in the other writing of its accents (the first one named it).
            return None if kind == "refused" else (
                f"names {shown(key)}, which another entry names already, its accents "
                "written otherwise — remove one of the two entries")
        return (f"names {shown(key)}, a path — write the file's name alone, as "
                f"[files.{double_quoted(name)}]: an {MANIFEST_NAME} names the files of "
                "its own folder")
    for place in places:
        if (hit := place.near(base)) is not None:
            return _near(key, *hit, place, place is here, several)
    if invoice_name and fold_key(trimmed(base)) == fold_key(trimmed(invoice_name)):
        return (f"names {shown(key)}, the invoice file itself, which is no attachment: "
                f"{MANIFEST_NAME} gives a type and a note to the attachments in the "
                "sidecar folder only — remove the entry")
    if not folder and (named := _with_extension(base, here)):
        return _without_extension(key, named)
    if close_by := sorted(n for n in here.files if close(n, base)):
        return _close(key, close_by)
    return f"names {shown(key)}, which is not in the folder — add the file or remove its entry"


def _close(key: str, named: list[str]) -> str:
    """An entry one typo away from files of its folder (`timsheet.pdf` beside
    `timesheet.pdf`): "not in the folder — add the file" alone sent the clerk to look for
    a file they could see there."""
    listed = " or ".join(shown(n) for n in named)
    return (f"names {shown(key)}, which is not in the folder; {listed} is, named close to it "
            f"— if the entry means {'that file' if len(named) == 1 else 'one of them'}, "
            f"write its name exactly, as [files.{double_quoted(named[0])}]; otherwise add "
            "the file or remove the entry")


# Where a clerk on Windows sees a file's name without its extension, and how to see it.
_HIDDEN_EXTENSION = ("Windows hides a file's extension unless \"File name extensions\" is "
                     "on in Explorer's View menu")


def _with_extension(base: str, here: Listing) -> list[str]:
    """The files of `here` that `base` names but for their extension (`Tidrapport
    oktober` for `Tidrapport oktober.pdf`), in any upper and lower case."""
    key = fold_key(trimmed(base))
    return sorted(n for n in here.files
                  if "." in n.strip(".") and fold_key(trimmed(n.rpartition(".")[0])) == key)


def _without_extension(key: str, named: list[str]) -> str:
    """An entry written as the name shows in Explorer, without the file's extension: the
    file is there, and "not in the folder — add the file" sent the clerk to add it again."""
    if len(named) == 1:
        return (f"names {shown(key)}, but the file is named {shown(named[0])}, with its "
                f"extension ({_HIDDEN_EXTENSION}) — write the entry as "
                f"[files.{double_quoted(named[0])}]")
    listed = " and ".join(shown(n) for n in named)
    return (f"names {shown(key)}, but the files are named {listed}, with their extensions "
            f"({_HIDDEN_EXTENSION}) — write the entry with the extension of the file it is "
            f"meant for, as [files.{double_quoted(named[0])}], one entry for each file")


def _split(key: str) -> tuple[tuple[str, ...], str]:
    """A path's folders and its last part; () and the key for a name alone."""
    parts = [p for p in _SEPARATORS.split(key) if p]
    if len(parts) < 2:
        return (), key
    return tuple(parts[:-1]), parts[-1]


def _ends_with(rel: str, folder: tuple[str, ...]) -> bool:
    """Whether the folder shown as `rel` is the one the path's folders name, from any
    depth: "A/scan.pdf" and "INV-1/A/scan.pdf" both name a file of INV-1/A."""
    parts = [fold_key(p) for p in rel.split("/")]
    return len(folder) <= len(parts) and parts[-len(folder):] == [fold_key(p) for p in folder]


def _id_folder(rel: str, folder: tuple[str, ...]) -> str | None:
    """The invoice id the path's folders spell (`2026/5` of "2026/5/a.pdf") where the
    folder shown as `rel` is that id's folder (2026_5): a / of an id cannot be in a
    folder's name, and a clerk writes the id as the invoice shows it. None otherwise."""
    parent, _, last = rel.rpartition("/")
    for start in range(len(folder) - 1):  # an id of two parts at least: it holds a /
        invoice_id = "/".join(folder[start:])
        if fold_key(folder_name_for_id(invoice_id)) == fold_key(last) and (
                start == 0 or _ends_with(parent, folder[:start])):
            return invoice_id
    return None


def _id_words(rel: str, folder: tuple[str, ...]) -> str:
    """Why the path's folders are not the folder's name, where they spell its id."""
    if (invoice_id := _id_folder(rel, folder)) is None:
        return ""
    return (f" (the folder of the invoice {shown(invoice_id)}: a / cannot be in a folder's "
            f"name, so the folder is named {shown(rel.rpartition('/')[2])})")


def _why_own(several: bool) -> str:
    if several:
        return f"in a file of several invoices, each invoice's folder has its own {MANIFEST_NAME}"
    return f"an {MANIFEST_NAME} names the files of its own folder only"


def _move(key: str, name: str, into: list[str], several: bool, aside: str = "") -> str:
    where = (f"{into[0]}/{MANIFEST_NAME}" if len(into) == 1 else
             f"the {MANIFEST_NAME} of each of those folders")
    return (f"names {shown(key)}, which is not in this folder but in "
            f"{' and '.join(f'{rel}/' for rel in into)}{aside} — move the entry into {where}, as "
            f"[files.{double_quoted(name)}]: {_why_own(several)}")


def _ignored(key: str, why: str) -> str:
    reason, fix = _IGNORED[why]
    return f"names {shown(key)}, which is in the folder but ignored for its name: {reason} — {fix}"


def _folder(key: str, name: str, here: Listing, others: Sequence[Listing]) -> str:
    rel = f"{here.rel}/{name}"
    if any(p.rel == rel for p in others):
        fix = (f"give its files their types and notes in {rel}/{MANIFEST_NAME}, an entry "
               "for each, and remove this one")
    else:
        fix = "write an entry for each file by its own name, or remove this one"
    return (f"names {shown(key)}, which is a folder, not a file: an entry gives one file "
            f"a type and a note — {fix}")


def _near(key: str, name: str, kind: str, place: Listing, here: bool, several: bool) -> str:
    """The entry names `name` (of `place`, "file" or why it is ignored) but for upper and
    lower case or a space or dot at an end: both spellings, and how they differ."""
    base = _split(nfc(key))[1]
    case = nfc(trimmed(base)) != nfc(trimmed(name))
    key_ends, name_ends = edge_words(base), edge_words(name)
    hows = []
    if name_ends:
        hows.append(f"with {name_ends}")
    elif key_ends:
        hows.append("without " + ("them" if " and " in key_ends else "it"))
    if case or not hows:
        hows.append(f"written in other {CASE_WORDS}")
    said = f"names {shown(key)}," + (f" with {key_ends}," if key_ends else "")
    spelled = f"{shown(name)} is{'' if here else f' in {place.rel}/'}, {' and '.join(hows)}"
    if not here:
        fix = _move(key, name, [place.rel], several).partition(" — ")[2]
        return f"{said} which is not in this folder; {spelled} — {fix}"
    if kind in _IGNORED:
        return (f"{said} which is not in the folder; {spelled}, and is ignored for its "
                f"name: {_IGNORED[kind][0]} — {_IGNORED[kind][1]}")
    counts = f" ({CASE_WORDS} count here)" if case else ""
    # A name with a space or dot at its end is one Windows cannot give a file.
    rename = "" if key_ends else ", or rename the file"
    return (f"{said} which is not in the folder; {spelled} — write the name in "
            f"{MANIFEST_NAME} exactly as the file's{counts}{rename}")
