"""Which subfolder of a sidecar is which invoice's folder (docs/folder-convention.md,
section 3): the one rule the matcher and `attach` follow.

An invoice's folder is found under either of its names (idnames.id_folder_names): the
Windows-safe one a clerk is told to make (`CON_`, `INV-7_`) and the one by the first
rule of that section, which an ERP on Linux may make (`CON`, `INV-7.`). Where the two
forms of different ids meet (the ids `CON` and `CON_` both name a folder `CON_`), that
rule still holds them distinct: only a folder that is there and is more than one
invoice's is an error.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations

from daemon.bundle import Finding
from daemon.fs.fsops import kind_of
from daemon.idnames import contract_folder_name, id_folder_names
from daemon.names import (
    CASE_WORDS,
    fit_name,
    fold_key,
    name_problem,
    nfc,
    printable,
)
from daemon.reading.lookalikes import id_collision


def share_key(folder: str) -> str:
    """The one folder a Windows share takes `folder` for: upper and lower case and the
    Unicode forms as one (fold_key), and without the dots and spaces at its end, which
    Windows drops from a name it makes (a clerk who makes `A-1.` there gets `A-1`). A
    name of nothing but those keeps them: no folder of it can be made there at all."""
    return fold_key(folder.rstrip(". ") or folder)


def _visible(name: str) -> str:
    """A folder name with its control and invisible characters as \\uNNNN: "INV-" + U+200B
    + "7" printed as it is reads as INV-7, the name of another folder."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c
                   for c in name)


_C1 = re.compile("[\x80-\x9f]")
# The first rule's characters to replace before it took in C1 (idnames.contract_folder_name).
_UNSAFE_BEFORE_C1 = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')


class IdFolders:
    """The folder names of the ids of one invoice file, composed (NFC): a Mac writes "ä"
    in a folder name it makes as "a" and a combining mark, an ERP writes the id composed;
    the id is outboxd's to match, so either form is the invoice's folder."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = tuple(dict.fromkeys(ids))  # an id said twice is another error
        self.names = {i: tuple(dict.fromkeys(nfc(n) for n in id_folder_names(i)))
                      for i in self.ids}
        # The first id of each name; the Windows-safe names come first, so that a
        # message that gives "the" folder gives the one a clerk can make.
        self.by_folder: dict[str, str] = {}
        for i in self.ids:
            self.by_folder.setdefault(self.names[i][0], i)
        for i in self.ids:
            for name in self.names[i][1:]:
                self.by_folder.setdefault(name, i)
        # Which ids have a folder of each name to Windows (upper and lower case as one):
        # indexed, as a file may hold thousands of invoices, each with its folder.
        self._by_fold: dict[str, list[str]] = {}
        for i in self.ids:
            for key in dict.fromkeys(share_key(n) for n in self.names[i]):
                self._by_fold.setdefault(key, []).append(i)
        # Which ids have one folder whatever folders are there (collisions): any folder
        # of their file stops it, so none of them has a folder to put files in.
        self._by_rule: dict[str, list[str]] = {}
        for i in self.ids:
            self._by_rule.setdefault(share_key(contract_folder_name(i)), []).append(i)
        self._told: set[frozenset[str]] = set()
        self._before_c1: dict[str, str] | None = None  # made when first asked

    def collisions(self, rel: str) -> list[Finding]:
        """Ids whose folders are one whatever folders are there: equal by the first rule
        (docs/folder-convention.md, section 3: an error), or differing only in upper and
        lower case or in dots and spaces at the end (share_key: Windows, and so the share,
        takes the two folders for one, so only one can be made there, and a clerk who
        types `A-1.` makes the folder of `A-1`)."""
        found = []
        for invoice_id in self.ids:
            prev = self._by_rule[share_key(contract_folder_name(invoice_id))][0]
            if prev == invoice_id:
                continue
            self._told.add(frozenset((prev, invoice_id)))
            found.append(Finding("id-folder-collision", rel,
                                 f"{self._one_folder_of(prev, invoice_id)} — give the "
                                 "invoices distinct ids"))
        return found

    def _one_folder_of(self, prev: str, invoice_id: str) -> str:
        folder = self.names[invoice_id][0]
        return (f"invoice ids {prev!r} and {invoice_id!r} "
                f"{_one_folder(prev, invoice_id, folder)}")

    def owner(self, folder: str) -> str | None:
        """The invoice whose folder `folder` is by name (in either Unicode form)."""
        return self.by_folder.get(nfc(folder))

    def owner_before_c1(self, folder: str) -> str | None:
        """The invoice whose folder `folder` was by the first rule before it replaced C1
        control characters (U+0080-U+009F) too: an id's folder an older version took,
        now a bad-name whose error says the name to give it, and which a bundle that
        version claimed is read with (match). Only an id holding the character had such
        a folder: INV<U+0085>8/ was never the folder of INV_8."""
        if not _C1.search(folder):
            return None
        if self._before_c1 is None:
            self._before_c1 = {}
            for i in self.ids:
                if _C1.search(i):
                    self._before_c1.setdefault(nfc(fit_name(_UNSAFE_BEFORE_C1.sub("_", i))), i)
        return self._before_c1.get(nfc(folder))

    def sharers(self, folder: str) -> tuple[str, ...]:
        """The ids that `folder`, one invoice's by name, is the folder of, by name or by
        upper and lower case (one name to Windows): more than one, and it is no one
        invoice's folder."""
        if self.owner(folder) is None:
            return ()
        return tuple(self._by_fold.get(share_key(folder), ()))

    def alone(self, invoice_id: str, folder: str) -> bool:
        """Whether a folder of this name (in either Unicode form, in any case) is the
        invoice's and no other invoice's of the file: the only kind whose files the
        matcher takes (a folder of `CON_` beside `CON` is both ids')."""
        return self._by_fold.get(share_key(folder)) == [invoice_id]

    def found(self, invoice_id: str, folders: Iterable[str]) -> list[str]:
        """Of `folders` (the subfolders of a sidecar, as they are spelled there), those
        the matcher takes as the invoice's (`owner`, in either Unicode form, and
        `alone`), the Windows-safe name first: where `attach` puts its files."""
        mine = [f for f in folders if self.owner(f) == invoice_id
                and self.alone(invoice_id, f)]
        return sorted(mine, key=lambda f: self.names[invoice_id].index(nfc(f)))

    def own_names(self, invoice_id: str) -> tuple[str, ...]:
        """The invoice's folder names that are no other invoice's (`alone`), the
        Windows-safe one first: `()` for `CON_` beside `CON`, whose one name is CON's
        too, so that it can have no folder of its own in this file; `()` too for an id
        of one folder with another whatever folders are there (collisions): any folder
        of the file stops it."""
        if len(self._by_rule[share_key(contract_folder_name(invoice_id))]) > 1:
            return ()
        return tuple(n for n in self.names[invoice_id] if self.alone(invoice_id, n))

    def no_folder_of_its_own(self, invoice_id: str) -> str:
        """Why an invoice whose every folder name is another's too (own_names is empty)
        can have no attachments in this file, and the fix."""
        group = self._by_rule[share_key(contract_folder_name(invoice_id))]
        if len(group) > 1:
            # In file order, as collisions() says them: the first id, and this one.
            second = invoice_id if invoice_id != group[0] else group[1]
            return (f"{self._one_folder_of(group[0], second)}, so the file stops as an error "
                    "(id-folder-collision) as soon as its sidecar folder is there, whatever "
                    "is put in it — give the invoices distinct ids")
        folder = self.names[invoice_id][0]
        others = [repr(i) for i in self._by_fold[share_key(folder)] if i != invoice_id]
        return (f"invoice {invoice_id!r} has no folder of its own: its folder "
                f"{_visible(folder)} is also the folder of invoice {' and '.join(others)} "
                "(as Windows names it, or by outboxd's rule), so none of the files in it "
                "would be taken — give the invoices distinct ids")

    def shared_folder(self, rel: str, folder: str, sharers: tuple[str, ...]) -> list[Finding]:
        """The error for a folder that is more than one invoice's (none if collisions()
        said it of each pair already): it names the ids and where each one's files go."""
        if all(frozenset(p) in self._told for p in combinations(sharers, 2)):
            return []
        key = share_key(folder)
        said = " and ".join(f"{i!r} ({self._named(i)})" for i in sharers)
        # The folder is no one's while it is there: each id's files go under a name that
        # is its alone, and an id that has none can only be given another id.
        alone = {i: [n for n in self.names[i] if share_key(n) != key] for i in sharers}
        moves = [f"those of invoice {i!r} into a folder {_visible(alone[i][0])}"
                 f"{self._unmakeable(i, alone[i][0])}" for i in sharers if alone[i]]
        stuck = [repr(i) for i in sharers if not alone[i]]
        fix = "give the invoices distinct ids"
        if moves:
            rest = (f"invoice {stuck[0]} has no other folder name, so for its files "
                    if len(stuck) == 1 else f"invoices {', '.join(stuck)} have no other "
                    "folder name, so for their files " if stuck else "or ")
            fix = (f"move {' and '.join(moves)}, and remove the emptied folder "
                   f"{_visible(folder)}; {rest}{fix}")
        return [Finding("id-folder-collision", f"{rel}/{folder}",
                     f"is the folder of more than one invoice of this file: {said}, so a file "
                     f"in it could be meant for any of them, and none of its files is taken "
                     f"— {fix}")]

    def split(self, rel: str, folders: dict[str, list[str]]) -> list[Finding]:
        """One invoice's folder there under both its names (`folders`: id -> the folders
        taken as its): taking one would leave the other's files behind, taking both would
        send files from two places a clerk sees as two invoices' folders."""
        found = []
        for invoice_id, names in folders.items():
            by_name = {nfc(n): n for n in names}  # one of each, in either Unicode form
            if len(by_name) < 2:
                continue
            # Said at the folder a clerk is not told to make, naming the one that is.
            made, other = sorted(by_name.values(),
                                 key=lambda n: self.names[invoice_id].index(nfc(n)))[:2]
            found.append(Finding(
                "id-two-folders", f"{rel}/{other}",
                f"is the folder of invoice {invoice_id!r}, and so is {rel}/{_visible(made)} "
                f"({self._named(invoice_id)}): only one folder may hold an invoice's "
                f"attachments — move the files of one into the other and remove the "
                f"emptied folder", invoice_id=invoice_id))
        return found

    def _named(self, invoice_id: str) -> str:
        safe, *contract = self.names[invoice_id]
        if not contract:
            return f"folder {safe}"
        return (f"folder {safe}, or {_visible(contract[0])} as a program on the server "
                "may name it")

    def _unmakeable(self, invoice_id: str, name: str) -> str:
        return "" if name == self.names[invoice_id][0] else (
            " (a name a clerk cannot make on Windows: make it on the server)")


def _one_folder(prev: str, invoice_id: str, folder: str) -> str:
    """How two ids of one file come to one folder (`folder`: the second one's), where
    the dots and spaces at the end of their folder names are all that tells them apart."""
    names = (contract_folder_name(prev), contract_folder_name(invoice_id))
    if fold_key(names[0]) == fold_key(names[1]):
        return id_collision(prev, invoice_id, folder)
    made = min((n.rstrip(". ") for n in names), key=len)
    typed = [n for n in names if n != n.rstrip(". ")]
    comes = (f"a folder {typed[0]!r} made there comes out as {made!r}, the other "
             "invoice's folder," if len(typed) == 1 else
             f"folders {typed[0]!r} and {typed[1]!r} made there both come out as {made!r},")
    case = nfc(names[0].rstrip(". ")) != nfc(names[1].rstrip(". "))
    return (f"differ only in dots or spaces at the end{f' and in {CASE_WORDS}' if case else ''}"
            ": Windows, and so the share, drops those from a folder's name, so "
            f"{comes} and the attachments put in it could go out with the wrong invoice")


def one_folder_words(sidecar: str, invoice_ids: Sequence[str], unattached: Sequence[str],
                     name: Callable[[str], str] = str, word: Callable[[str], str] = str
                     ) -> str:
    """What a clerk is told instead of "put them in the folder …" for ids of `unattached`
    whose folder is one between them and other ids of the file, as the matcher takes
    folders (`A/1` and `A:1` both `A_1`, `INV-7` and `inv-7`, `A-1.` and `A-1` to Windows, `CON` and
    `CON_` both `CON_`): files put there would stop the file (id-folder-collision), so
    no one is sent to make it. "" when every folder is one invoice's. `name` shows a
    folder, `word` an id (the status page escapes both; `check` and REASON.txt show them
    as they are). The one wording of the status page, `outboxd check` and a quarantine
    at the attachment-wait deadline."""
    folders = IdFolders(invoice_ids)
    # Each group by the folder a clerk makes for one of them: `A-1` of `A-1.` and `A-1`,
    # not the `A-1_` of the first, which is that id's alone.
    groups: dict[tuple[str, ...], str] = {}
    for i in unattached:
        if i in folders.names:
            groups.setdefault(folders.sharers(folders.names[i][0]), folders.names[i][0])
    clashes = [(group, f) for group, f in groups.items() if len(group) > 1]
    if not clashes:
        return ""
    said = "; ".join(" and ".join(word(i) for i in group) + " have one folder, "
                     + name(f"{sidecar}/{folder}") for group, folder in clashes[:3])
    more = f" (and {len(clashes) - 3} more such groups)" if len(clashes) > 3 else ""
    # Ids of one folder by the first rule of docs/folder-convention.md, section 3, or in
    # case alone, are an error whatever folders are there (IdFolders.collisions): any
    # folder in the sidecar stops the file.
    when = (f"as soon as its folder {name(sidecar)} is made, whatever is put in it"
            if folders.collisions(sidecar) else "once that folder is made")
    return (f"{said}{more}, and files put there could be either's, so outboxd stops the "
            f"file as an error (id-folder-collision) {when}: have the ERP give them "
            "distinct ids and export the file again")


def refused_id_folder(e: os.DirEntry[str], folders: IdFolders, rel: str,
                      findings: list[Finding]) -> str | None:
    """The invoice whose folder `e` of the sidecar's root is by name, where `e` is a link,
    FIFO or device (a regular file of that name is a file like any other): collect said
    "not-a-file … put the file itself there", but to the clerk it is that invoice's folder,
    refused unread, as the sidecar in that place is (not-a-folder)."""
    owner = folders.owner(e.name)
    if owner is None or len(folders.sharers(e.name)) > 1 or name_problem(e.name):
        return None
    try:
        mode = e.stat(follow_symlinks=False).st_mode
    except OSError:
        return None  # gone meanwhile: its own finding (or none) stands
    if stat.S_ISREG(mode):
        return None
    shown = f"{rel}/{e.name}"
    findings[:] = [f for f in findings if (f.code, f.file) != ("not-a-file", shown)]
    findings.append(Finding("not-a-folder", shown, f"is a {kind_of(mode)}, not a folder; "
                            "outboxd never follows or opens one — make "
                            f"{printable(shown)} a real folder and put the attachments of "
                            f"invoice {owner} in it", "error", owner))
    return owner
