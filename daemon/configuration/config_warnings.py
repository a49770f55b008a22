"""What a valid configuration is warned of where its lists refuse what a clerk drops:
`[validation] allowed_types = []` (every attachment on the e-invoice channel refused),
`[attachments] document_types = []` (every attachment refused) or without
`default_document_type` (every untyped file refused). Valid, as a choice an admin may
make, but more often an oversight that the clerks would meet first: said in one set
of words by `outboxd config`, at `run`'s start and at each reload (an admin who never
runs `config` saw nothing until the bundles were held).
"""

from __future__ import annotations

from daemon.configuration.config import Settings
from daemon.configuration.config_keys import value_shown


def list_warnings(settings: Settings) -> list[str]:
    """The warnings of this module that `settings` earns, each one line."""
    return [w for w in (untyped_files_warning(settings), no_types_warning(settings))
            if w is not None]


def untyped_files_warning(settings: Settings) -> str | None:
    """[attachments] document_types without the default document type: valid, and a way
    to make clerks give every file a type, but more often an oversight (the default,
    "Attachment", is easily left out of the list), which holds every bundle whose
    attachments.toml leaves a file untyped. Said, so that the admin sees it before the
    clerks do."""
    cfg = settings.attachments
    allowed, default = cfg.document_types, cfg.default_document_type
    if allowed is None or default in allowed:
        return None
    if not allowed:
        return ("[attachments] document_types is empty: every attachment is then an error "
                "(document-type-not-allowed), and only invoices without attachments go — "
                "list the types to allow, or remove the key to allow any")
    which = ("" if "default_document_type" in cfg.model_fields_set else
             ", its default as the key is not set")
    return (f"[attachments] document_types ({value_shown('document_types', allowed)}) does "
            f"not list default_document_type ({value_shown('default_document_type', default)}"
            f"{which}): a file that attachments.toml gives no type is then an error "
            "(document-type-not-allowed), so every file in a sidecar must carry a type of "
            "the list — add it to document_types, or set default_document_type to one of "
            "them, unless that is what you mean")


def no_types_warning(settings: Settings) -> str | None:
    """[validation] allowed_types = []: valid as document_types = [] is (a channel that
    takes no attachments is a choice an admin may make), but far more often a list
    emptied by mistake, which refuses every attachment on the e-invoice channel. Warned
    of as document_types = [] is, so that the admin sees it before the clerks do."""
    if settings.validation.allowed_types:
        return None
    return ("[validation] allowed_types is empty: every attachment on the e-invoice "
            "channel is then an error (type-not-allowed), and only invoices without "
            "attachments go on it — list the formats to allow, or remove the key for the "
            "six Peppol BIS 3 allows")
