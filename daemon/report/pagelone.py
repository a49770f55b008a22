"""What the status page says to do about a folder without an invoice file (pagerender's
"Folders without an invoice file"): rename it for the waiting invoice file it is named
close to, rename one named with an invoice file's extension (or move its files where that
name is taken), remove what outboxd makes again (NAME.converted/, NAME.embedded/), move
what is left of an archive folder back (NAME--ID12/), or put its invoice file into the
outbox; or, the sidecar of an invoice file left alone, mend that."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from daemon.archiving.papers import entry_bundle
from daemon.configuration.config import OutboxConfig
from daemon.names import CONVERTED_SUFFIX, EMBEDDED_SUFFIX, is_invoice_name, printable, stem
from daemon.watching.lonefolders import LoneFolder

# [outbox] invoice_patterns' default (a render without settings: tests), from its one place.
DEFAULT_PATTERNS = tuple(OutboxConfig.model_fields["invoice_patterns"].default)


def _bare(name: str, sidecar_suffix: str) -> str:
    """A folder's name without the sidecar suffix: the invoice file stem it waits for."""
    return name[:-len(sidecar_suffix)] if sidecar_suffix and name.endswith(
        sidecar_suffix) else name


def named_as_file(x: LoneFolder, sidecar_suffix: str, invoice_patterns: Sequence[str]
                  ) -> str | None:
    """The folder a lone folder named with an invoice file's extension (`Z-1.xml/`, the
    file's name copied whole, by `[outbox] invoice_patterns`) is to be renamed to
    (`Z-1/`), as on disk (the page looks it up there), or None for any other folder."""
    bare = _bare(x.on_disk, sidecar_suffix)
    if x.close_to or stem(bare) == bare or not is_invoice_name(bare, invoice_patterns):
        return None
    return stem(bare) + sidecar_suffix


def refused_sidecars(refused: Iterable[str], sidecar_suffix: str,
                     invoice_patterns: Sequence[str] = DEFAULT_PATTERNS) -> dict[str, str]:
    """Of the invoice files among the files left alone (`refused`, as on disk: a link, a
    FIFO, a bad name), each sidecar's name -> that file: a folder of that name is no
    sidecar waiting for its invoice file, which is there, refused (as `outboxd check`
    says, check_targets)."""
    return {stem(n) + sidecar_suffix: n for n in sorted(refused)
            if is_invoice_name(n, invoice_patterns)}


def lone_fix(x: LoneFolder, sidecar_suffix: str,
              invoice_patterns: Sequence[str] = DEFAULT_PATTERNS,
              taken: AbstractSet[str] = frozenset(),
              refused_of: Mapping[str, str] | None = None) -> str:
    """What a clerk does about a folder without an invoice file. `taken`: the folders
    named with an extension whose renamed name is a folder there already, as on disk;
    `refused_of`: refused_sidecars' (told it waited for an invoice file that is there)."""
    if (file := (refused_of or {}).get(x.on_disk)) is not None:
        return (f"the sidecar of {printable(file)}, which outboxd leaves alone (listed "
                "under \"Files in the outbox that are left alone\", with why and what to "
                "do): mend that file; nothing in this folder is sent until then")
    bare = _bare(x.name, sidecar_suffix)
    said = "; ".join(f"named close to {f}, which waits for attachments: if it holds "
                     f"{stem(f)}'s attachments, rename it to {stem(f)}{sidecar_suffix}/"
                     for f in x.close_to)
    if (target := named_as_file(x, sidecar_suffix, invoice_patterns)) is not None:
        target = printable(target)
        # Named with the invoice file's extension (its name copied whole): that file can
        # never be put beside it, a folder holding the name, and "Z-1.xml.xml" is no fix.
        head = (f"named like an invoice file, with its extension: the invoice file {bare} "
                "cannot be put beside a folder of the same name — ")
        other = ("; or, if it is meant for another invoice, rename it to that invoice "
                 "file's name without its extension")
        if x.on_disk in taken:
            # The rename would fail (or, by Explorer, merge with a question): say the move.
            return (head + f"a folder {target}/ is there already: move the files of this "
                    f"folder into {target}/ and remove this one, then put {bare} into the "
                    "outbox" + other)
        return (head + f"rename the folder to {target} (the invoice file's name without "
                f"its extension), then put {bare} into the outbox" + other)
    if x.name.endswith(CONVERTED_SUFFIX) and not said:
        # What a quarantined bundle holds beside its sidecar with convert_images, which a
        # clerk moving it back by hand takes for the bundle's: never sent, it stays.
        said = (f"if it holds the PDFs outboxd made of {x.name[:-len(CONVERTED_SUFFIX)]}'s "
                "images (moved here from quarantine/ or sent/ with that bundle), remove "
                "it: outboxd makes them again when it sends the bundle")
    elif x.name.endswith(EMBEDDED_SUFFIX) and not said:
        # The documents ubl-embedded kept (einvoice/transport.keep), moved back by hand
        # with a quarantined bundle: never sent from here, and the record of what was.
        said = (f"if it holds the documents outboxd built of "
                f"{x.name[:-len(EMBEDDED_SUFFIX)]} and sent to the operator (moved here "
                "from quarantine/ or sent/ with that bundle), move it back there: outboxd "
                "builds them again when it sends the bundle")
    elif entry_bundle(x.name) is not None and not said:
        # What a clerk leaves of a folder from quarantine/ or sent/ moved back whole, once
        # the invoice file and its folder are out of it: outboxd's notes, under a name no
        # invoice file has. "Put its invoice file INV-1--0123456789ab.xml" sent nobody on.
        said = ("if it is a folder from quarantine/ or sent/ (its name ends in -- and the "
                "bundle's id), move the invoice file and its folder out of it into the "
                "outbox, if they are still in it, then move it back where it came from")
    return ((said + "; else " if said else "")
            + f"put its invoice file (named {bare} with its extension: {bare}.xml, "
            f"{bare}.pdf …) into the outbox, or, if "
            "it is meant for another invoice, rename it to that invoice file's name "
            "without its extension")
