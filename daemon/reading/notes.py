"""attachments.toml (docs/folder-convention.md, section 3): a document type and a note
per file of a folder, and the bundle's channel. Read by match.py; `outboxd attach`
writes it."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.bundle import Finding
from daemon.errors import InputError, double_quoted, not_utf8, shown, unquoted
from daemon.fs.fsops import NOT_THE_FILES_FAULT, kind_of, open_in
from daemon.fs.fsread import read_bounded
from daemon.names import fold_key, nfc, trimmed
from daemon.reading.notesmissing import MANIFEST_NAME, Listing, missing_message
from daemon.sizes import limit_words
from daemon.validation.cutshort import TOML_CUT_SHORT

MAX_NOTES_BYTES = 1 << 20  # a notes file larger than this is not a notes file
# A type is a word or two and a note a line or a few sentences for the person who
# receives the file; both go into the manifest, the journal and every receipt. Longer
# text (a megabyte pasted by mistake, a whole letter) belongs in a document of its own.
MAX_VALUE_CHARS = 2000
CHANNELS = ("e-invoice", "external-print", "original-print")
# Where tomllib says its error is (its message, in Python 3.11 to 3.14 alike).
_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)$")


@dataclass
class Notes:
    """attachments.toml of one folder."""

    channel: str | None = None
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    sha256: str = ""  # of the file's bytes, when it was read

    def entry_for(self, name: str) -> tuple[str | None, dict[str, str]]:
        """(the key, its entry) that names the file `name`, or (None, {}).

        The key is found in either Unicode form of the name: a file a Mac named has
        its accents as separate marks, the entry an ERP or a Windows clerk typed has
        them as one letter; the two look the same and neither can type the other.
        Two files differing only so are an error of their own (name-collision).
        Upper and lower case count, as they do for the files' names on the server."""
        if name in self.files:
            return name, self.files[name]
        composed = nfc(name)
        for key, entry in self.files.items():
            if nfc(key) == composed:
                return key, entry
        return None, {}

    def missing(self, used: set[str], here: Listing, invoice_id: str,
                others: Sequence[Listing] = (), invoice_name: str = "",
                several: bool = False) -> list[Finding]:
        """An error for each entry (not in `used`) that names no attachment of the folder
        (`here`), saying where the file it means lies (notesmissing.missing_message);
        none for one whose file has a finding of its own."""
        return [_error("attachments-toml-missing-file", f"{here.rel}/{MANIFEST_NAME}",
                       message, invoice_id)
                for key in sorted(set(self.files) - used)
                if (message := missing_message(key, here, others, invoice_name,
                                               several)) is not None]


@dataclass
class SidecarNotes:
    """The attachments.toml files of one sidecar, as matching reads them folder by folder,
    the root's first: the bundle's one channel, each file's digest (the sidecar digest
    covers them)."""

    channel: str | None = None
    channel_from: str = ""  # the attachments.toml that set `channel`, as shown
    read: list[tuple[str, str]] = field(default_factory=list)  # (file as shown, sha256)
    # Invoice id -> its folder's attachments.toml that sets a channel; "" for the root's.
    set_by: dict[str, str] = field(default_factory=dict)

    def add(self, notes: Notes, where: str, findings: list[Finding],
            invoice_id: str = "") -> None:
        """Take one folder's notes (`where`: its attachments.toml, as shown; `invoice_id`:
        the invoice whose folder it is, "" for the sidecar root); a channel other than the
        one set already goes to `findings`."""
        self.read.append((where, notes.sha256))
        if notes.channel:
            self.set_by[invoice_id] = where
        if notes.channel and self.channel and notes.channel != self.channel:
            # One bundle is one delivery on one channel: which of two wins is no guess to
            # make with money-bearing documents, whose rules differ per channel.
            findings.append(_error("attachments-toml-invalid", where, f"sets channel = "
                                   f"{notes.channel!r}, but {self.channel_from} sets "
                                   f"{self.channel!r} — a bundle has one channel: set it "
                                   "once, in the sidecar root"))
        elif notes.channel and not self.channel:
            self.channel, self.channel_from = notes.channel, where

    def channel_for_others(self, ids: tuple[str, ...], configured: str) -> list[Finding]:
        """A file of several invoices goes out on one channel; one set in some invoices'
        folders but neither in the root nor in the others' would take those others off
        the `configured` channel unasked (a clerk marks one invoice for print, and the
        whole file is printed, none of it sent as e-invoice): an error at each such
        attachments.toml."""
        if len(ids) < 2 or "" in self.set_by or not self.set_by or \
                self.channel == configured:
            return []
        others = [i for i in ids if i not in self.set_by]
        if not others:
            return []
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5
                                         else "")
        root = self.channel_from.split("/", 1)[0]
        return [_error("attachments-toml-invalid", where, f"sets channel = {self.channel!r} "
                       f"for {invoice_id} only, but the invoice file holds several invoices "
                       f"and goes out whole on one channel: {shown} would go out on it "
                       f"too — if every invoice of the file is meant for {self.channel}, "
                       f"set it in {root}/{MANIFEST_NAME} instead; if not, have the ERP "
                       f"export {invoice_id} in a file of its own", invoice_id)
                for invoice_id, where in self.set_by.items()]


def channel_error(findings: Sequence[Finding]) -> str | None:
    """How the bundle's channel stands where an attachments.toml's channel is in error:
    "unset" (a value that is no channel: the configured one is taken), "disputed" (two
    set, or one invoice's for a whole file of several: the bundle has none it may take);
    None when no channel setting is in error. By the words of the findings made above."""
    said = [f.message for f in findings if f.code == "attachments-toml-invalid"]
    if any(m.startswith("sets channel = ") for m in said):
        return "disputed"
    return "unset" if any(m.startswith("channel = ") for m in said) else None


# Names a clerk gives the notes file by mistake: another case (the share takes it for the
# same name), one letter short, or ".txt" after it (Notepad adds it, and Windows hides it).
_NOTES_SLIPS = frozenset(f"{stem}.toml{txt}" for stem in ("attachments", "attachment")
                         for txt in ("", ".txt"))


def misnamed_notes(name: str) -> str | None:
    """Why the file `name` is taken for a misnamed attachments.toml, or None. Such a file
    is no attachment: sent as one (as text), the types, notes and channel the clerk wrote
    in it would silently not apply."""
    if name == MANIFEST_NAME or fold_key(trimmed(name)) not in _NOTES_SLIPS:
        return None
    notepad = (" (Windows Notepad adds .txt unless \"Save as type\" is \"All files\", and "
               "Windows hides it)" if fold_key(trimmed(name)).endswith(".txt") else "")
    return (f"is named like {MANIFEST_NAME}, but the types, notes and channel in it are read "
            f"only from a file named exactly {MANIFEST_NAME}, in lower case{notepad} — "
            f"rename it to {MANIFEST_NAME}, or remove it")


def value_problem(key: str, value: str) -> str | None:
    """Why `value` cannot be a file's type or note (`key`), or None."""
    if (key == "type" and value and not value.strip()) or (key == "--type"
                                                            and not value.strip()):
        # "   " went to the receiver as a document type of blanks; `--type "$T"` with T
        # unset gave the default type unasked. In attachments.toml, type = "" stays what it
        # always meant: no type of its own, the default one.
        return (f"{key} is {'empty' if not value else 'blank'} — give a document type, or "
                "leave the type out for the default one ([attachments] "
                "default_document_type)")
    if len(value) > MAX_VALUE_CHARS:
        return (f"{key} is {len(value):,} characters long; a type or a note may have at most "
                f"{MAX_VALUE_CHARS:,} — shorten it, and put longer text in a document of "
                "its own")
    return None


def type_not_allowed(name: str, doc_type: str, from_entry: bool, allowed: list[str],
                     where: str) -> str:
    """Why a file's document type is outside [attachments] document_types, and where to
    set another: a type the clerk wrote, or the default one they never saw."""
    listed = ", ".join(allowed) or "none"
    if from_entry:
        return (f"has the document type {shown(doc_type)} (in {where}), which is not one of the "
                f"document types allowed: {listed} — change its type there to one of those")
    example = f' type = "{allowed[0]}"' if allowed else ""
    return (f"has no type in {where}, and the default type {shown(doc_type)} ([attachments] "
            f"default_document_type) is not one of the document types allowed: {listed} "
            f"— give it one of those in {where}, e.g. [files.\"{name}\"]{example}")



def entry_problem(fname: str, entry: object) -> str | None:
    """What is wrong with the shape of one [files."NAME"] entry, or None. Names the key
    the clerk wrote (`tpye`, `note = 5`): "may only hold type and note" alone left them
    reading a line that seemed to hold just that."""
    only = 'a file\'s entry may only hold type = "…" and note = "…"'
    if not isinstance(entry, dict):
        return (f"is not a table — write [files.{double_quoted(fname)}] on a line of its "
                f"own, with type = \"…\" and note = \"…\" on the lines below it")
    unknown = [shown(k) for k in entry if k not in ("type", "note")]
    if unknown:
        keys = f"the key {unknown[0]}" if len(unknown) == 1 else f"the keys {', '.join(unknown)}"
        return f"holds {keys}: {only} — check the spelling"
    not_text = [k for k, v in entry.items() if not isinstance(v, str)]
    if not_text:
        return f"{not_text[0]} is not text: {only} — put the value in quotes"
    return None


def _error(code: str, file: str, message: str, invoice_id: str | None = None) -> Finding:
    return Finding(code, file, message, "error", invoice_id)


def breaks_off(text: str, exc: tomllib.TOMLDecodeError) -> bool:
    """TOML that fails only where its text ends, as a copy stopped mid-file leaves it: at
    the very end (a string, array or table left open, a key without its value), or on a
    last line no line break follows (a value cut mid-word, `tru`; the zeros of a copy
    that sized the file first). A mistake saved by a clerk is followed by the rest of
    the file, or at least by its line break — except on a last line saved without one,
    which is taken for cut short too: it costs only the grace before the quarantine."""
    message = str(exc)
    if message.endswith("(at end of document)"):
        return True
    at = _AT_LINE.search(message)
    return at is not None and int(at.group(1)) == text.count("\n") + 1


def syntax_mistake(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """A mistake a clerk typed, told with its line and how TOML is written here: tomllib's
    "Invalid value (at line 2, column 8)" alone said nothing of the missing quotes that
    are the usual cause."""
    at = _AT_LINE.search(str(exc))
    lines = text.split("\n")
    number = int(at.group(1)) if at else 0
    said = lines[number - 1].rstrip(chr(13)) if 1 <= number <= len(lines) else ""
    line = f"; line {number} reads {shown(said)}" if said else ""
    fix = ('fix the syntax: each value in double quotes (type = "Timesheet"), each file\'s '
           'heading on a line of its own ([files."scan.pdf"])')
    if (bare := _BARE_HEADING.match(said)) is not None:
        # [files.Tidrapport oktober.pdf]: the quotes the usual fix's example shows, on
        # the very heading the clerk wrote.
        fix = (f"write the file's name in double quotes: "
               f"[files.{double_quoted(bare.group(1).strip())}]")
    elif _TWICE.search(str(exc)):
        # tomllib's "Cannot declare ('files', 'a.pdf') twice": no quotes are missing.
        fix = ("an entry or a key is written twice: keep one, each file's heading once "
               "with its type and note below it")
    return f"cannot be read as TOML ({exc}){line} — {fix}"


# A heading of a file's entry without the quotes its name needs: [files.scan 2.pdf].
_BARE_HEADING = re.compile(r"\s*\[\s*files\s*\.\s*([^\"'\]\s][^\"'\]]*?)\s*\]?\s*$")
# tomllib's words for a table or key given a second time (Python 3.11 to 3.14).
_TWICE = re.compile(r"^Cannot (declare .* twice|overwrite a value)")


def dotted_names(fname: str, entry: dict[str, object]) -> list[str]:
    """The names `[files.a.pdf]` meant (a.pdf), written without quotes: TOML reads the
    dots as parts, the file `a` with a table `pdf`. Empty where no part is a table, or
    where the entry holds a type or a note of its own (a table inside a real entry)."""
    if "type" in entry or "note" in entry:
        return []
    return [f"{fname}.{name}" for key, value in entry.items() if isinstance(value, dict)
            for name in (dotted_names(key, value) or [key])]


def read_notes(folder: int, rel: str, findings: list[Finding]) -> Notes:
    """The attachments.toml of the folder open at `folder` (`rel`: that folder as shown;
    empty Notes if there is none); what is wrong in it goes to `findings`. Opened from
    the folder held open, never by a path a link swapped in could lead elsewhere. One
    gone between its lstat and its open is a change under way or a share that blinked
    (fsops.open_in, `listed`): raised, the bundle read again, not a finding."""
    where = f"{rel}/{MANIFEST_NAME}"
    try:
        st = os.stat(MANIFEST_NAME, dir_fd=folder, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            # A share's I/O error or timeout: whether it is there is not known, and read
            # as none its channel and document types would be the defaults, its notes
            # gone. Raised, as for an attachment's bytes: the bundle is read again.
            raise
        return Notes()  # not there (what os.path.lexists answers for any other OSError)
    digest = ""
    try:
        if not stat.S_ISREG(st.st_mode):
            findings.append(_error("not-a-file", where, f"is a {kind_of(st.st_mode)} — put a "
                                 "regular file there"))
            return Notes()
        # Opened as open_regular opens: a FIFO swapped in after the lstat must not block
        # us. An OSError (no descriptors, a share gone) is the machine's, not the clerk's:
        # it is raised, and the bundle read again later, as for an attachment's bytes.
        with open_in(folder, MANIFEST_NAME, where, listed=True) as fh:
            raw = read_bounded(fh, MAX_NOTES_BYTES)
        if raw is None:
            # Cut short, the rest would be read as if it were the whole file.
            findings.append(_error("attachments-toml-invalid", where, f"is larger than "
                                 f"{limit_words(MAX_NOTES_BYTES)}, far more than notes on "
                                 "attachments need — keep only the notes and the channel"))
            return Notes()
        digest = hashlib.sha256(raw).hexdigest()
        # Notepad (and Excel's "UTF-8" export) write a byte order mark first: invisible,
        # and tomllib's "Invalid statement" at line 1 sent the clerk to fix syntax that
        # was right. It says nothing but "UTF-8", so it is read past.
        text = raw.decode("utf-8").removeprefix("\ufeff")
        data = tomllib.loads(text)
    except InputError as exc:
        findings.append(_error(exc.code, exc.file, exc.message))
        return Notes()
    except UnicodeDecodeError as exc:
        if exc.end == len(exc.object) and exc.reason == "unexpected end of data":
            findings.append(_error("attachments-toml-invalid", where, f"{TOML_CUT_SHORT} "
                                   "(inside a character), as a copy stopped before its end "
                                   "leaves it — copy it again"))
        else:
            findings.append(_error("attachments-toml-invalid", where, not_utf8(exc)))
        return Notes(sha256=digest)
    except RecursionError:
        # Arrays or tables nested thousands deep, past tomllib's recursion: no syntax error
        # to fix, but a file no one wrote as notes ("fix the syntax" pointed nowhere).
        findings.append(_error("attachments-toml-invalid", where, "cannot be read as TOML: "
                               "its values are nested too deeply, far more than notes on "
                               "attachments need — keep only the notes and the channel"))
        return Notes(sha256=digest)
    except tomllib.TOMLDecodeError as exc:
        if breaks_off(text, exc):
            # Told apart: a copy still at work explains it (cutshort.py).
            findings.append(_error("attachments-toml-invalid", where, f"{TOML_CUT_SHORT} "
                                   f"({exc}), as a copy stopped before its end leaves it "
                                   "— copy it again, or fix the syntax"))
        else:
            findings.append(_error("attachments-toml-invalid", where,
                                   syntax_mistake(text, exc)))
        return Notes(sha256=digest)
    except ValueError:
        # tomllib's one other: a whole number past Python's limit on digits (4,300) read
        # by int(), not a syntax error (a ValueError escaped, and the bundle said nothing).
        findings.append(_error("attachments-toml-invalid", where, f"cannot be read as TOML: "
                               f"it holds a number of more than "
                               f"{sys.get_int_max_str_digits():,} digits, far more than "
                               "notes on attachments need — keep only the notes and the "
                               "channel"))
        return Notes(sha256=digest)
    notes = Notes(sha256=digest)
    for key, value in data.items():
        if key == "channel" and isinstance(value, str) and value.lower() in CHANNELS:
            # In any case, as the configuration's [validation] channel takes it.
            notes.channel = value.lower()
        elif key == "channel":
            findings.append(_error("attachments-toml-invalid", where, f"channel = "
                                   f"{unquoted(repr(value))} is not a channel — use one of "
                                   f"{', '.join(CHANNELS)}"))
        elif key == "files" and isinstance(value, dict):
            for fname, entry in value.items():
                if isinstance(entry, dict) and (meant := dotted_names(fname, entry)):
                    quoted = " and ".join(f"[files.{double_quoted(n)}]" for n in meant)
                    findings.append(_error(
                        "attachments-toml-invalid", where, f"[files.{meant[0]}] is read "
                        f"as the file {shown(fname)}, its name cut at the dot: a file's "
                        f"name in a heading needs double quotes — write {quoted}"))
                    continue
                if (wrong := entry_problem(fname, entry)) is not None:
                    findings.append(_error("attachments-toml-invalid", where,
                                           f"[files.{shown(fname)}] {wrong}"))
                    continue
                problems = [p for k, v in entry.items() if (p := value_problem(k, v))]
                if problems:
                    findings.extend(_error("attachments-toml-invalid", where,
                                           f"[files.{shown(fname)}] {p}") for p in problems)
                    continue
                notes.files[fname] = entry
        elif key == "files":
            # The right key in the wrong form: "unknown key 'files'" beside an allowed list
            # naming files left the clerk nothing to change.
            form = ("a list ([[files]] with double brackets)" if isinstance(value, list)
                    else "a value (files = …)")
            findings.append(_error("attachments-toml-invalid", where, f"files is not a "
                                   f"heading but {form} — write each file's heading as "
                                   "[files.\"NAME\"], in single brackets, with its type and "
                                   "note below it"))
        else:
            findings.append(_error("attachments-toml-invalid", where, f"unknown key "
                                   f"{shown(key)} — allowed: channel, [files.\"NAME\"] with "
                                   "type and note"))
    return notes
