"""`outboxd send FILE_OR_INVOICE_ID [--without-attachments]`: "send selected".

Releases a bundle that waits for attachments by writing its release file
`NAME.send-anyway` into the outbox (see daemon/loop/release.py for why a file):
a running daemon sees it at once through its watcher, a stopped one at its
next start. Without --without-attachments it refuses and names the invoice
ids that have no attachments. The bundle is read and validated here first
(the daemon's own evaluate), so a bundle with errors is refused with them.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path

from daemon.actions import EXIT_OK
from daemon.actions.attach import holders, unread_note
from daemon.actions.common import settings_of, why_not_written
from daemon.actions.reads import CommandReads, unreadable
from daemon.actions.whereabouts import Endings, left_the_outbox
from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.errors import InputError, OutboxdError
from daemon.fs.fsops import read_again_later
from daemon.invisible import escaped_controls, for_terminal
from daemon.loop.release import (
    invoking_user,
    overlong,
    path_for,
    rename_shorter,
    write_release,
)
from daemon.loop.statelock import running
from daemon.names import NAME_MAX, printable, stem
from daemon.watching.scan import Candidate, Listing, list_outbox, marker_wait


class SendRefused(OutboxdError):
    """The bundle cannot be released as asked; nothing was changed."""


_SEND_ENDINGS = Endings(sent="nothing to release", moving="nothing to release",
                        quarantined="", unseen="nothing was released")


def resolve(target: str, settings: Settings, reads: CommandReads | None = None) -> Candidate:
    """An invoice file (name or path in the outbox) or an invoice id → its candidate
    (the invoice files read in `reads`, or in a reader of its own)."""
    if reads is None:
        with CommandReads(settings) as own:
            return resolve(target, settings, own)
    listing = list_outbox(settings.outbox, settings.share)
    name = Path(target).name
    path = Path(os.path.abspath(target))
    if name in listing.candidates and (os.sep not in target or _in_the_outbox(path, settings)):
        # A file really named W\u200b-2.xml, with a backslash, and W<U+200B>-2.xml look
        # the same in status and on the page: the name copied from there fits both, and
        # the exact one winning released what the helpdesk may not have meant. A path
        # names the file as it is.
        alike = [c for n, c in listing.candidates.items()
                 if n != name and name in _shown_forms(n)] if os.sep not in target else []
        if alike:
            raise _alike_refused(target, [listing.candidates[name], *alike], settings)
        if os.sep not in target:
            _refuse_an_id_elsewhere(target, listing.candidates[name], settings, reads,
                                    listing)
        return listing.candidates[name]
    unread: list[str] = []
    found = holders(target, settings, unread, reads, listing)
    # NAME as in NAME.send-anyway, the invoice file's stem, or an invoice id: when both
    # readings fit different files, releasing either would be a guess.
    # Also as status and the page show it (W\u200b-2.xml): a helpdesk copies the name
    # from there, and was told no such file, beside the file waiting to be released.
    by_stem = [c for n, c in listing.candidates.items()
               if name in (stem(n), escaped_controls(n), escaped_controls(stem(n)))] \
        if os.sep not in target else []
    meant = {c.invoice.name: c for c in by_stem} | {c.invoice.name: c for c, _ in found}
    if len(meant) > 1 and by_stem and len({escaped_controls(n) for n in meant}) < len(meant):
        raise _alike_refused(target, list(meant.values()), settings)
    if len(meant) > 1 and by_stem:
        raise SendRefused(f"{target!r} names {len(meant)} invoice files (by their name or "
                          f"an invoice id in them): {', '.join(sorted(meant))} — name the "
                          "file")
    if by_stem:
        return by_stem[0]
    if len(found) == 1:
        return found[0][0]
    if len(found) > 1:
        raise SendRefused(f"invoice id {target!r} is in {len(found)} invoice files: "
                          f"{', '.join(c.invoice.name for c, _ in found)} — name the file")
    if os.sep not in target or _in_the_outbox(path, settings):
        # A file of that name the daemon will not use (a link, a name not UTF-8): why,
        # rather than "no invoice file" beside a file the admin sees in the outbox.
        if meant_refused := _refused_named(name, listing):
            raise SendRefused("; ".join(f"{shown}: {why}" for shown, why in meant_refused)
                              + "; nothing was released")
    gone = left_the_outbox(name, settings, _SEND_ENDINGS)
    raise SendRefused(f"no invoice file or invoice id {target!r} in {settings.outbox.path}"
                      + (f": {gone}" if gone else " — outboxd status lists what waits")
                      + unread_note(unread))


def _in_the_outbox(path: Path, settings: Settings) -> bool:
    """Whether `path` (absolute, as typed) names a file directly in the outbox: by the
    configured path, which may be a link (to a share's mount point, say), or by the
    folder that leads to. Compared with the second alone, the path an admin copies from
    the configuration was "no invoice file" beside the file waiting there."""
    outbox = settings.outbox.path
    return path.parent in (Path(os.path.abspath(outbox)), outbox.resolve())


def _refuse_an_id_elsewhere(target: str, cand: Candidate, settings: Settings,
                            reads: CommandReads, listing: Listing) -> None:
    """SendRefused where `target`, the full name of cand's invoice file, is also an
    invoice id in another file (B-1.xml, and A.xml holding the invoice B-1.xml): the
    file winning released what a helpdesk asked about the invoice may not have meant.
    A file that cannot be read is no reason to refuse: its ids are unknown to the
    daemon too, which will not send it as it is."""
    others = sorted(c.invoice.name for c, _ in holders(target, settings, [], reads, listing)
                    if c.invoice.name != cand.invoice.name)
    if not others:
        return
    holds = "; ".join(f"{n}: outboxd send -- {_exact_argument(n, settings)}" for n in others)
    raise SendRefused(
        f"{target!r} is the name of the invoice file {cand.invoice.name} and an invoice id "
        f"in {', '.join(others)}; nothing was released — name the one you mean by its "
        f"path in the outbox, which fits it alone: the file {cand.invoice.name}: outboxd "
        f"send -- {_exact_argument(cand.invoice.name, settings)}; the invoice {target}, "
        f"by the file it is in, which goes out whole (its other invoices without "
        f"attachments with it): {holds}")


def _refused_named(name: str, listing: Listing) -> list[tuple[str, str]]:
    """The root files left alone as unusable invoice files that `name` names, each as
    shown with why: by its name on disk or stem; else as status and the page show it
    (b\\x9b31m.xml, copied from there). A file really named X\\u202e.xml (typed) is that
    file, not X + U+202E + .xml, which is shown alike: the listing is by the name on
    disk. Where only the shown forms fit, each file they fit is named as Python writes
    it (the two would read alike)."""
    exact = [(n, why) for n, why in listing.refused if name in (n, stem(n))]
    if exact:
        return [(printable(n), why) for n, why in exact]
    alike = [(n, why) for n, why in listing.refused
             if name in _shown_forms(n) | {printable(n), printable(stem(n))}]
    if len(alike) == 1:
        return [(printable(alike[0][0]), alike[0][1])]
    return [(repr(n), why) for n, why in alike]


def _shown_forms(name: str) -> set[str]:
    """How status and the page show `name` and its stem, where that differs from them."""
    return {escaped_controls(name), escaped_controls(stem(name))} - {name, stem(name)}


def _alike_refused(target: str, cands: list[Candidate], settings: Settings) -> SendRefused:
    """The refusal for a name that fits files shown alike: each as Python writes it (a
    backslash in the name as \\\\, an invisible character as its code), since as shown
    they are one name, and a command that names it and no other."""
    names = sorted(c.invoice.name for c in cands)
    picks = "; ".join(f"{n!r}: outboxd send -- {_exact_argument(n, settings)}"
                      for n in names)
    return SendRefused(
        f"{target} fits {len(names)} invoice files that outboxd status shows alike "
        "(written here as Python writes a name: \\\\ is a backslash in it, \\u200b and the "
        f"like an invisible character); nothing was released — name one so that it fits "
        f"no other, as the shell gives it ({picks}), or by an invoice id only it holds")


def _exact_argument(name: str, settings: Settings) -> str:
    """`name` as a shell argument that send takes for that file alone: a name with a
    character shown as a code in bash's $'…' with its bytes, any other as its path in
    the outbox (a path is never read as a shown name)."""
    if escaped_controls(name) != name:
        return _bash_quoted(name)
    return shlex.quote(str(settings.outbox.path.resolve() / name))


def send(target: str, settings: Settings, without_attachments: bool) -> str:
    """Release the bundle; a line for the person who asked. The files are read in a
    reader process, under the daemon's time limit (reads.py)."""
    with CommandReads(settings) as reads:
        cand = resolve(target, settings, reads)
        try:
            bundle = reads.evaluate(cand, settings)
        except InputError as exc:
            raise SendRefused(f"{cand.invoice.name} cannot be read: {exc}") from None
        except OSError as exc:
            # In check's words, of the file that failed: "[Errno 2] …" was no fix.
            name, said, fix = unreadable(cand, exc, "send")
            now = " just now" if read_again_later(exc) else ""
            raise SendRefused(f"{name} {'could not' if now else 'cannot'} be read{now} "
                              f"({said}) — {fix}; nothing was released") from None
    return _release(cand, bundle, settings, without_attachments, _asked_id(target, cand, bundle))


def _asked_id(target: str, cand: Candidate, bundle: Bundle) -> str | None:
    """The invoice id `target` names in a file of several invoices, or None where it
    names the file (its path, or a name that is none of its ids) or the file holds one
    invoice. A stem or a full name that is also one of the file's ids (B-1.xml holding
    B-1 and B-2: an ERP names a batch after its first invoice; or holding the invoice
    B-1.xml) is read as the id: as the file, it released invoices nobody named."""
    if len(bundle.invoice_ids) < 2 or target not in bundle.invoice_ids or os.sep in target:
        return None
    return target


def _others_unattached(cand: Candidate, asked: str, bundle: Bundle,
                       settings: Settings) -> str | None:
    """Why releasing the invoice `asked` would send more than was asked, or None. A file
    of several invoices goes out whole: its release sends every invoice of it that has
    no attachments, and `send ID` released invoices the person never named (another
    invoice's time sheet still on its way), or, for an invoice that had its attachments,
    only others."""
    missing, ids = bundle.unattached_ids, bundle.invoice_ids
    others = [i for i in missing if i != asked]
    if not others:
        return None
    listed = ", ".join(others)
    whole = (f"{cand.invoice.name} holds several invoices and goes out whole, so a release "
             f"sends {listed} without attachments too")
    if asked not in missing:
        whole = (f"invoice {asked} has its attachments, and releasing it would release "
                 f"{cand.invoice.name}: it goes out whole, and {listed} "
                 f"{'has' if len(others) == 1 else 'have'} none")
    return (f"{whole} — add theirs (outboxd attach ID FILE), or, if the whole file is to "
            f"go without them, release it by its name: "
            f"{_whole_file_command(cand, settings, ids)}; nothing was released")


def _whole_file_command(cand: Candidate, settings: Settings, ids: tuple[str, ...]) -> str:
    """The command that releases cand's whole file: by its name, or, where its name is
    also one of its ids (so read as that id), by its path, which names the file alone."""
    if cand.invoice.name not in ids:
        return release_command(cand.invoice.name, settings)
    return ("outboxd send --without-attachments -- "
            f"{_exact_argument(cand.invoice.name, settings)}")


def _release(cand: Candidate, bundle: Bundle, settings: Settings,
             without_attachments: bool, asked: str | None = None) -> str:
    if bundle.errors:
        lines = "; ".join(f"{f.file}: {f.message}" for f in bundle.errors[:5])
        raise SendRefused(f"{cand.invoice.name} has errors, so it cannot be released: {lines}")
    missing = bundle.unattached_ids
    if not missing:
        return (f"{cand.invoice.name}: every invoice has attachments; nothing to release — it "
                "goes out once its files have settled")
    over = overlong(cand.name, settings.share.release_suffix)
    if over:
        raise SendRefused(
            f"{cand.invoice.name}: invoice(s) {', '.join(missing)} have no attachments — add "
            "them (outboxd attach); it cannot be released without them under this name: its "
            f"release file {cand.name}{settings.share.release_suffix} would be longer than "
            f"a file name may be ({NAME_MAX} bytes) — {rename_shorter(over)}, then release "
            "it")
    if asked is not None and without_attachments and \
            (more := _others_unattached(cand, asked, bundle, settings)) is not None:
        raise SendRefused(more)
    if not without_attachments:
        raise SendRefused(f"{cand.invoice.name}: invoice(s) {', '.join(missing)} have no "
                          "attachments — add them (outboxd attach), or send without them: "
                          f"{_whole_file_command(cand, settings, bundle.invoice_ids)}")
    # Released, it still waits for its marker: "sends it now" would be untrue.
    marker = (f"; it still {marker_wait(cand)}" if settings.outbox.completion == "marker"
              and not os.path.lexists(cand.marker) else "")
    try:
        written = write_release(cand, settings.share, invoking_user())
    except OSError as exc:
        # Named by the release file the clerk knows (NAME.send-anyway), not by the
        # temporary name it is written under first, with whom to run send as.
        raise SendRefused(f"could not put the release file {path_for(cand, settings.share).name}"
                          f" into the outbox {settings.outbox.path}: "
                          f"{why_not_written(exc, 'send', settings.paths.state_dir)}; "
                          "nothing was changed") from None
    if not written:
        return f"{cand.invoice.name}: already released{marker or f'; {_who_sends(settings)}'}"
    return (f"{cand.invoice.name}: released without attachments for {', '.join(missing)}"
            f"{marker or f'; {_who_sends(settings)}'}")


def _who_sends(settings: Settings) -> str:
    """When the release takes effect: a helpdesk told "sent now" while the service is
    stopped waits for an invoice that is not moving."""
    state_dir = settings.paths.state_dir
    up = running(state_dir)
    if up:
        return "the running daemon sends it now"
    if up is False:
        # Only this host's: several hosts may watch one outbox (each its own state dir),
        # and another's daemon sends the release as soon as it sees it.
        return (f"but no outboxd is running on this host with the state dir {state_dir}, "
                "so it is sent once outboxd starts (systemctl start outboxd), or by an "
                "outboxd on another host that watches this outbox")
    return "a running daemon sends it now, a stopped one at its next start"


def run(args: argparse.Namespace) -> int:
    settings, _ = settings_of(args)
    print(for_terminal(send(args.target, settings, args.without_attachments)))
    return EXIT_OK


# Text a name shows another's invisible character as (W\u200b-2.xml): a name holding it
# may be shown alike with another file, and send refuses it then (_alike_refused).
_LIKE_A_CODE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def release_command(name: str, settings: Settings | None = None) -> str:
    """The command that releases `name`, as it can be pasted into a shell: quoted where
    the name holds spaces or shell characters, and after `--` where it begins with `-`
    (an option otherwise); with `settings`, a name with a code's text in it as its path,
    which no other file's shown name can fit."""
    if escaped_controls(name) != name:
        return f"outboxd send --without-attachments -- {_bash_quoted(name)}"
    if settings is not None and _LIKE_A_CODE.search(name):
        return f"outboxd send --without-attachments -- {_exact_argument(name, settings)}"
    return f"outboxd send --without-attachments -- {shlex.quote(name)}"


def _bash_quoted(name: str) -> str:
    """A name with characters shown as codes (U+200B as \\u200b) in bash's $'…', each
    such character as its bytes (\\xe2\\x80\\x8b), which bash reads back as the name's
    own bytes in any locale: quoted as shown, '…\\u200b…' would name another file, with
    a backslash in it (and bash's \\u200b is only a character in a UTF-8 locale)."""
    def code(c: str) -> str:
        if c in "\\'":
            return "\\" + c
        if escaped_controls(c) == c:
            return c
        return "".join(f"\\x{b:02x}" for b in os.fsencode(c))
    return "$'" + "".join(map(code, name)) + "'"
