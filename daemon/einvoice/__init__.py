"""E-invoice rules: the official EN 16931 / Peppol BIS 3 artefacts and the engine that runs them.

The API the rest of outboxd uses:

* ``load(cache_dir)`` — load the engine once per process (ConfigError if it cannot);
  ``drop_cache_temps(cache_dir)`` — at the daemon's start, the temps of compile-cache
  writes a killed process left;
* ``preflight(data, rel, mode)`` — check one invoice file's bytes → ``Result``
  (``checked`` False: not pre-flighted, e.g. Svefaktura — ``check`` prints a
  ``not-preflighted`` note); ``read_and_preflight(path, rel, mode)`` opens it safely;
* ``check_bundle(bundle, settings)`` — a read bundle with pre-flight's findings appended
  (a ``not-preflighted`` note for a file the rules do not look at), and for
  ``[delivery] format = "ubl-embedded"`` the embedded documents built and checked (XSD +
  fatal rules): what the daemon, ``check`` and ``send`` run (finish.evaluate);
* ``rules_versions()`` — the pinned artefact versions, one line each (``check --rules``);
* ``mime_codes()`` — the attachment mime codes Peppol allows.
"""

from __future__ import annotations

from daemon.bundle import Bundle, Finding
from daemon.configuration.config import Settings
from daemon.einvoice.artefacts import mime_codes, rules_versions
from daemon.einvoice.embed import Document as EmbeddedDocument
from daemon.einvoice.embed import Plan, documents_for
from daemon.einvoice.engine import Assertion, Engine, drop_cache_temps, load
from daemon.einvoice.kinds import what_it_is
from daemon.einvoice.preflight import (
    Mode,
    Result,
    check_built,
    check_document,
    documents,
    preflight,
    read_and_preflight,
)
from daemon.errors import InputError

__all__ = ["Engine", "Mode", "Result", "check_bundle", "check_document", "drop_cache_temps",
           "load", "mime_codes", "preflight", "read_and_preflight", "rules_versions"]


# `outboxd check` says which invoices the rules did not look at, and why.
NOT_PREFLIGHTED = "not-preflighted"


def _preflight(bundle: Bundle, mode: Mode) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """Pre-flight's findings on the invoice file, and those of them that are fatal."""
    inv = bundle.invoice_file
    if inv.ids_unknown and inv.format == "other":
        # Not "a non-UBL invoice file": a Peppol batch with an id twice, or XML that is
        # not well-formed, could not be read at all (its error says why).
        return (Finding(NOT_PREFLIGHTED, inv.name, "not checked against the e-invoice "
                        "rules: the invoice file could not be read (see its error)",
                        "note"),), ()
    if inv.format != "ubl":
        # What the file is ("a UN/CEFACT CII invoice", "a UBL Order"), as not-ubl says it:
        # "a non-UBL invoice file" named no export to look for.
        what = what_it_is(inv) or "not UBL"
        return (Finding(NOT_PREFLIGHTED, inv.name, "not checked against the e-invoice rules "
                        f"(only EN 16931 UBL is): the invoice file is {what}", "note"),), ()
    try:
        result = read_and_preflight(inv.path, inv.name, mode)
    except InputError as exc:
        return (Finding(exc.code, exc.file, exc.message, "error"),), ()
    notes = [Finding(NOT_PREFLIGHTED, inv.name, f"not checked against the e-invoice rules: "
                     f"invoice {why}", "note") for why in result.not_checked]
    return result.findings + tuple(notes), result.fatal


def check_bundle(bundle: Bundle, settings: Settings) -> Bundle:
    """Everything this subpackage checks on a read and validated bundle."""
    mode = settings.einvoice.preflight
    found, fatal = _preflight(bundle, mode) if mode != "off" else ((), ())
    checked = bundle.with_findings(found)
    if settings.delivery.format != "ubl-embedded" or bundle.channel != "e-invoice" \
            or checked.errors:
        return checked
    plan = documents_for(bundle, mime_codes(),
                         safe_filenames=settings.delivery.safe_filenames)
    if plan.findings:
        return checked.with_findings(plan.findings)
    # Each built document is checked for the XSD and every fatal rule, a failure an
    # error: what pre-flight found fatal (under "warn", warnings) was listed twice.
    kept = tuple(f for f in found if f not in fatal)
    return bundle.with_findings(kept + tuple(_built_findings(bundle, plan)))


def _built_findings(bundle: Bundle, plan: Plan) -> list[Finding]:
    """Each built document checked; a rule its invoice breaks on its own named as such."""
    out: list[Finding] = []
    for invoice in plan.invoices:  # one document at a time: each holds its attachments
        try:
            doc = plan.build(invoice)
        except InputError as exc:  # a link or a FIFO put where the file was checked
            out.append(Finding(exc.code, exc.file, exc.message, "error",
                               invoice.sl.invoice_id))
            continue
        try:
            [parsed] = documents(doc.data, bundle.invoice_file.name)
        except (InputError, ValueError) as exc:
            out.append(Finding("einvoice-rule", bundle.invoice_file.name, f"the document built "
                               f"for invoice {doc.invoice_id} is not one UBL document ({exc})",
                               "error", doc.invoice_id))
            continue
        try:
            failed = check_built(parsed)
        except InputError as exc:  # Saxon could not read it (nesting past its limit)
            out.append(Finding(exc.code, exc.file, exc.message, "error", doc.invoice_id))
            continue
        # A rule the invoice breaks on its own is the invoice's to correct in the ERP,
        # not its attachments' (the GR national example's misplaced references).
        bare = doc.inserted[0] == doc.inserted[1]  # no attachment went in: the invoice as is
        own = set(failed) if bare else (
            _own_failures(doc, bundle.invoice_file.name) if failed else set())
        for a in failed:
            where = f" ({a.location})" if a.location else ""
            out.append(Finding("einvoice-rule", bundle.invoice_file.name, (
                f"invoice {doc.invoice_id} breaks [{a.rule}] {a.text}{where} — ubl-embedded "
                "never sends a document that fails the UBL 2.1 schema or a fatal rule, "
                "whatever [einvoice] preflight says: correct the invoice in the ERP and "
                "export it again")
                if a in own else (
                f"the document built for invoice {doc.invoice_id} with its "
                f"attachments inside breaks [{a.rule}] {a.text}{where} — fix "
                "the attachments or the invoice named here"), "error", doc.invoice_id))
    return out


def _own_failures(doc: EmbeddedDocument, rel: str) -> set[Assertion]:
    """The fatal assertions the invoice fails without the inserted block (asked only when
    the built document fails, so a bundle that passes pays nothing for it)."""
    start, end = doc.inserted
    try:
        [parsed] = documents(doc.data[:start] + doc.data[end:], rel)
        return set(check_built(parsed))
    except (InputError, ValueError):
        return set()
