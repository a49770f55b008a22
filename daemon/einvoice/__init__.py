"""E-invoice rules: the official EN 16931 / Peppol BIS 3 artefacts and the engine that runs them.

The API the rest of outboxd uses:

* ``load(cache_dir)`` — load the engine once per process (ConfigError if it cannot);
* ``preflight(data, rel, mode)`` — check one invoice file's bytes → ``Result``;
* ``preflight_bundle(bundle, mode)`` — the same for a read bundle, findings appended;
* ``rules_versions()`` — the pinned artefact versions, one line each (``check --rules``);
* ``mime_codes()`` — the attachment mime codes Peppol allows.
"""

from __future__ import annotations

from daemon.bundle import Bundle, Finding
from daemon.einvoice.artefacts import mime_codes, rules_versions
from daemon.einvoice.engine import Engine, load
from daemon.einvoice.preflight import Mode, Result, preflight, read_and_preflight
from daemon.errors import InputError

__all__ = ["Engine", "Mode", "Result", "load", "mime_codes", "preflight", "preflight_bundle",
           "rules_versions"]


def preflight_bundle(bundle: Bundle, mode: Mode) -> Bundle:
    """The bundle with the pre-flight findings of its invoice file appended.

    Only UBL files are looked at (Svefaktura, PDF and other files are not
    pre-flighted, SPEC §2.2); ``mode`` "off" looks at nothing.
    """
    if mode == "off" or bundle.invoice_file.format != "ubl":
        return bundle
    inv = bundle.invoice_file
    try:
        result = read_and_preflight(inv.path, inv.name, mode)
    except InputError as exc:
        return bundle.with_findings([Finding(exc.code, exc.file, exc.message, "error")])
    return bundle.with_findings(result.findings)
