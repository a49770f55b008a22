"""`outboxd check PATH…`: read, match and validate exactly as the daemon would, send nothing.

The same code path as the daemon (`finish.evaluate`, in a reader process under the
daemon's time limit for a read, reads.py: match.assemble +
validate.validate_bundle, with the same configuration and the same
per-bundle channel override from attachments.toml). Writes nothing and
creates nothing: no state dir, no journal, no errors file. Findings are
printed from `Bundle.findings`, whatever their code or severity, so rules
added later (e-invoice pre-flight) show up here without a change; to those
check adds the findings the daemon gives later, when it decides (decide.py)
or sends (finish.py), so that the count agrees with it: `unattached-invoice`,
from the rule the daemon asks (unattached.plan; check only words its outcome),
and from its journal, read only (check_journal.py), `duplicate` and
`invoice-id-already-sent`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, TextIO

from daemon.actions import EXIT_FAILED, EXIT_OK, stdout_to_devnull
from daemon.actions.check_journal import CheckJournal
from daemon.actions.check_targets import targets
from daemon.actions.common import settings_of
from daemon.actions.reads import CommandReads, unreadable
from daemon.bundle import Bundle, Conversion, Finding, InvoiceFile
from daemon.configuration.config import Settings
from daemon.einvoice import rules_versions
from daemon.einvoice.kinds import what_it_is
from daemon.errors import InputError, ReaderFailed
from daemon.fs.fsops import read_again_later
from daemon.invisible import escaped_controls
from daemon.loop import unattached
from daemon.loop.busywords import busy_fix, in_progress, shown_names
from daemon.loop.release import release_file
from daemon.manifest import sent_name
from daemon.reading.notes import channel_error
from daemon.watching.scan import Candidate, candidate_for, marker_wait
from daemon.watching.sharecache import late_share
from daemon.watching.snapshot import snapshot

PROGRESS_EVERY = 0.2  # seconds between progress lines on a terminal


def _pages(n: int | None) -> str:
    return "" if n is None else f"{n} page" + ("" if n == 1 else "s")


def _verdict(findings: list[Finding]) -> str:
    if any(f.severity == "error" for f in findings):
        return "ERROR"
    return "warning" if findings else "ok"


def _sent_as(conv: Conversion, safe_filenames: bool) -> str:
    """What the daemon sends in an image's place (convert_images): the PDF under the
    name it goes out as ([delivery] safe_filenames), its pages and the size of its page,
    which a printer prints."""
    page = f", {conv.page_cm[0]:.1f} × {conv.page_cm[1]:.1f} cm" if conv.page_cm else ""
    return (f"sent as {sent_name(conv.name, safe_filenames)}: a PDF of {_pages(conv.pages)}"
            f"{page}, made from the image ([validation] convert_images)")


def _format(inv: InvoiceFile) -> str:
    """The invoice file's format for the header: the manifest's word where it says what
    the file is (ubl, svefaktura, pdf), what the file is where that word is "other" (a
    CII invoice, a UBL Order, …), which told a clerk nothing. One that could not be read
    is not parsed again here, outside the reader's time limit: its error says why."""
    if inv.format != "other":
        return inv.format
    if inv.ids_unknown:
        return "could not be read"
    return what_it_is(inv) or "not UBL"


def _channel(bundle: Bundle) -> str:
    """The header's channel, as its attachments.toml error says it: the one set there
    shown as if taken contradicted the error line below it."""
    state = channel_error(bundle.findings)
    if state == "disputed":
        return "channel in error: see attachments.toml below"
    if state == "unset":
        return f"channel {bundle.channel}, the default: the one set is in error (below)"
    return f"channel {bundle.channel}"


def report(bundle: Bundle, settings: Settings) -> list[str]:
    """The lines for one bundle: invoices, each attachment with type, pages and verdict,
    then every finding as `FILE: message  [code]`, grouped by severity."""
    inv = bundle.invoice_file
    by_file: dict[str, list[Finding]] = {}
    for f in bundle.findings:
        by_file.setdefault(f.file, []).append(f)
    lines = [f"{inv.name}  ({_format(inv)}, {_channel(bundle)})"]
    for invoice_id in bundle.invoice_ids:
        atts = bundle.attachments_of(invoice_id)
        left_out = _left_out(bundle, invoice_id, {a.rel for a in atts})
        lines.append(f"  invoice {invoice_id}: " + (
            f"{len(atts) + len(left_out)} attachment(s)" if atts else
            # Refused from its listing, unread: it may have attachments (the error says).
            "attachments not read (see the errors)" if invoice_id in bundle.unread_ids
            else "no attachments"))
        for a in atts:
            facts = ", ".join(x for x in (a.document_type, a.content_type, _pages(a.pages)) if x)
            lines.append(f"    {a.rel}  [{facts}]  {_verdict(by_file.get(a.rel, []))}")
            if a.converted is not None:
                lines.append("      " + _sent_as(a.converted, settings.delivery.safe_filenames))
        lines += [f"    {rel}  [left out: name-collision]  ERROR" for rel in left_out]
    cand = candidate_for(settings.outbox, inv.name)
    rule = unattached.plan(bundle, cand, settings, release_file(cand, settings.share))
    if rule is not None:
        lines.append("  " + _unattached_note(rule, settings, _invalid(bundle)))
    if settings.outbox.completion == "marker" and not os.path.lexists(cand.marker):
        lines.append("  note: " + marker_wait(cand))  # "valid" alone would promise it goes
    if (busy := _busy_note(cand, settings)) is not None:
        lines.append("  note: " + busy)  # as for the marker: the daemon waits for it
    order = ["error", "warning"] + sorted({f.severity for f in bundle.findings}
                                          - {"error", "warning"})
    for severity in order:
        found = [f for f in bundle.findings if f.severity == severity]
        if found:
            lines.append(f"  {severity}s:")
            lines += [f"    {f.file}: {f.message}  [{f.code}]" for f in found]
    verdict = "INVALID" if bundle.errors else "valid"
    lines.append(f"  => {verdict} ({len(bundle.errors)} error(s), "
                 f"{len(bundle.warnings)} warning(s))")
    return lines  # escaped where they are printed (ids, types, notes: the sender's text)


def _left_out(bundle: Bundle, invoice_id: str, listed: set[str]) -> list[str]:
    """The invoice's files the matcher read and left out of the bundle for a name that
    collides with another's (lookalikes.distinct_names): the bundle holds them, and its
    header counted one file where the folder holds two."""
    return list(dict.fromkeys(f.file for f in bundle.findings if f.code == "name-collision"
                              and f.invoice_id == invoice_id and f.file not in listed))


def _busy_note(cand: Candidate, settings: Settings) -> str | None:
    """What holds the bundle while a copy or an editor is at work in its sidecar (a lock
    file of a document open in Word): the daemon sends nothing until it is gone, which
    "valid" alone did not say; the page says it only once it has not changed for 10
    minutes."""
    try:
        snap = snapshot(cand, settings.outbox)
    except OSError:
        # A name it looks at beside the bundle cannot be (a marker NAME.ready longer
        # than a file name may be) or a folder went: a note, never the whole check.
        return None
    names = in_progress(snap, settings.outbox.ignore_patterns) if snap and snap.busy else []
    if not names:
        return None
    return (f"not sent while {shown_names(names)} {'is' if len(names) == 1 else 'are'} in "
            f"its folder: an in-progress name — {busy_fix(names)}")


def _invalid(bundle: Bundle) -> bool:
    """Errors other than the unattached one check adds: with those the daemon quarantines
    or holds the bundle at once, without waiting for attachments."""
    return any(f.code != "unattached-invoice" for f in bundle.errors)


def unattached_findings(bundle: Bundle, cand: Candidate, settings: Settings) -> list[Finding]:
    """The `unattached-invoice` findings the daemon will give each invoice without
    attachments if the files stay as they are (unattached.plan, which the daemon asks
    too). An outcome that comes after a wait counts now, as a file that looks cut short
    does: check says how the bundle ends as it lies. Beside other errors the daemon stops
    the bundle for those alone, at once: then they are notes, not counted, but shown,
    so that the clerk mends everything in one go (the attachments are still missing
    once the errors are mended)."""
    rule = unattached.plan(bundle, cand, settings, release_file(cand, settings.share))
    if rule is None:
        return []
    if not bundle.errors:
        return rule.findings()
    return [replace(f, severity="note", message=f"once its errors are mended: {f.message}")
            for f in rule.findings()]


def _unattached_note(rule: unattached.Plan, settings: Settings, invalid: bool) -> str:
    """What the daemon will do with the bundle, in words: the rule's outcome (`invalid`:
    once the bundle's other errors are mended, which stop it at once)."""
    ids, policy = ", ".join(rule.unattached_ids), settings.policy.unattached
    then = "once its errors are mended, " if invalid else ""
    if rule.by_release:
        assert rule.released is not None
        return (f"note: {ids} without attachments: released by {rule.released.name} "
                f"— {then}it goes out at once with a warning")
    wait = f"waits {rule.wait_seconds:g} s for attachments, then"
    what = {unattached.WAIT_THEN_SEND: f"{wait} goes out with a warning",
            unattached.WAIT_THEN_QUARANTINE: f"{wait} is quarantined",
            unattached.WAIT_FOR_RELEASE: "waits for attachments until released (outboxd send "
            f"--without-attachments or a NAME{settings.share.release_suffix} file)",
            unattached.SEND: "goes out at once with a warning"}[rule.outcome]
    return (f"note: {ids} without attachments: [policy] unattached = \"{policy}\" — {then}"
            f"it {what}")


class _Progress:
    """A progress line on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.on = stream.isatty() and total > 1
        self.stream, self.total, self.last = stream, total, 0.0

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if self.on and now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.stream.write(f"\rchecked {done}/{self.total}")
            self.stream.flush()

    def end(self) -> None:
        if self.on:
            self.stream.write("\r\033[K")
            self.stream.flush()


class _Report:
    """Where check prints its report. A reader that goes away before the report's end
    (`outboxd check … | head`, a pager quit early) ends the report, not the check: every
    bundle is still checked and the exit code is still the verdict, which a script reads
    (pipefail) — a broken pipe left to cli.main is exit 0, an invalid bundle passed as
    valid."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                self._out.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def end(self) -> None:
        if not self._gone:
            try:
                self._out.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self._gone = True
        if self._out is sys.stdout:
            stdout_to_devnull()  # what is still buffered for it goes nowhere, quietly


def check(paths: list[Path], settings: Settings, out: TextIO | None = None,
          err: TextIO | None = None) -> int:
    """Print the report for every bundle in paths; the exit code (0 all valid, 1 an error)."""
    report = _Report(out or sys.stdout)
    journal = CheckJournal(settings)
    try:
        with CommandReads(settings) as reads:
            return _check(paths, settings, journal, reads, report, err or sys.stderr)
    finally:
        journal.close()
        report.end()


def _check(paths: list[Path], settings: Settings, journal: CheckJournal, reads: CommandReads,
           out: _Report, err: TextIO) -> int:
    found = list(targets(paths, settings, journal))
    seen: set[Path] = set()
    progress = _Progress(err, len(found))
    failed = False
    # n_outside: errors of no bundle (an invoice file refused, a folder a quarantine
    # left), counted in the summary: "0 invalid" beside exit 1 contradicted it.
    # n_unread: bundles given no verdict (not checked: a file the share lost for a moment,
    # a reader that died each time), apart from the invalid ones, which they are not.
    n_bundles = n_invalid = n_outside = n_unread = 0
    said = False  # anything above the summary, which a blank line then sets apart
    for i, (target, s) in enumerate(found, 1):
        progress.tick(i)
        if target.cand is None:
            print(escaped_controls(target.note), file=out)  # a folder's name, the journal's
            said = True
            failed = failed or target.error
            n_outside += target.error
            continue
        if target.cand.invoice in seen:
            continue
        seen.add(target.cand.invoice)
        n_bundles += 1
        lines, invalid, read = checked(target.cand, s, reads, journal)[:3]
        failed = failed or invalid
        n_invalid += invalid and read
        n_unread += not read
        # The file's name (C1 controls are no bad name), ids, notes, an error's text.
        print("\n".join(escaped_controls(line) for line in lines), file=out)
        said = True
    progress.end()
    for note in journal.notes:  # what the journal could not tell: once a run, at the end
        print(escaped_controls(note), file=out)
        said = True
    # The daemon's outbox, whatever PATHs were given: its settling is what the share may
    # outrun. A warning: the exit code stays as the bundles make it.
    if late := late_share(settings.outbox.path, settings.outbox.settle_seconds):
        print(escaped_controls(f"warning: {late.words()}"), file=out)  # a path: any byte
        said = True
    print(("\n" if said else "") + f"{n_bundles} bundle(s) checked, {n_invalid} invalid"
          + (f", {n_unread} not checked (above: run check again)" if n_unread else "")
          + (f", {n_outside} error(s) outside bundles (above)" if n_outside else "")
          + ("" if n_bundles or n_outside else " (no invoice files found)"), file=out)
    return EXIT_FAILED if failed else EXIT_OK


class Checked(NamedTuple):
    lines: list[str]  # the report, as check prints it (not escaped yet)
    invalid: bool  # errors, or not checked
    read: bool = True  # False: the reader died under it each time (no verdict)
    # Each image converted to PDF (convert_images), by its rel: its report line's "sent
    # as NAME.pdf: …", which attach says of the image it adds.
    sent_as: tuple[tuple[str, str], ...] = ()


def checked(cand: Candidate, s: Settings, reads: CommandReads, journal: CheckJournal
            ) -> Checked:
    """One bundle read as the daemon reads it (in a reader), with the findings the
    daemon gives later added: its report's lines, and whether it is invalid (or could
    not be checked). What `check` prints of each bundle, and `attach` of the bundle it
    just added to."""
    try:
        bundle = reads.evaluate(cand, s)  # in a reader, as the daemon reads it
    except InputError as exc:
        return Checked([f"{cand.invoice.name}", "  errors:",
                        f"    {exc.file}: {exc.message}  [{exc.code}]", "  => INVALID"], True)
    except OSError as exc:
        if read_again_later(exc):
            # Nothing of the bundle's (a share that blinked, a file renamed or claimed by
            # the daemon while it was read): no verdict, and the file named as the daemon
            # names it — never "check the file's permissions" of the invoice file.
            name, said, fix = unreadable(cand, exc, "check")
            return Checked([cand.invoice.name, f"  {name}: could not be read just now "
                            f"({said}) — {fix}", "  => not checked"], True, False)
        name, said, fix = unreadable(cand, exc, "check")
        return Checked([f"{cand.invoice.name}", "  errors:",
                        f"    {name}: cannot be read ({said}) — {fix}  [unreadable]",
                        "  => INVALID"], True)
    except ReaderFailed as exc:
        # Not the bundle's fault (the daemon reads it again when it changes): no
        # verdict, and no code.
        return Checked([f"{cand.invoice.name}", f"  {exc}", "  => not checked"], True, False)
    # In the daemon's order: a duplicate is quarantined before any wait for
    # attachments, and only a bundle that is sent carries the warnings.
    duplicate, already_sent = journal.sent_findings(bundle, s)
    bundle = bundle.with_findings(duplicate)
    bundle = bundle.with_findings(unattached_findings(bundle, cand, s))
    if not bundle.errors:
        bundle = bundle.with_findings(already_sent)
    sent_as = tuple((a.rel, _sent_as(a.converted, s.delivery.safe_filenames))
                    for a in bundle.attachments if a.converted is not None)
    return Checked(report(bundle, s), bool(bundle.errors), sent_as=sent_as)


def rules(out: TextIO | None = None) -> int:
    """`check --rules`: the pinned e-invoice rule versions."""
    out = out or sys.stdout
    for line in rules_versions():
        print(line, file=out)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.rules:
        return rules()
    settings, _ = settings_of(args)
    return check(list(args.paths) or [settings.outbox.path], settings)

