"""The sections of the configuration (docs/configuration.md), one model each: their keys,
defaults and checks (what all of them share is config_base.py's `Section`). Every
problem is a ValueError that names what is allowed.
Kept apart from `Settings` (config.py), which puts the sections together, takes
the environment's overrides and derives the paths, so that what each key may be
reads section by section.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.configuration.config_base import Section
from daemon.configuration.config_credentials import (
    credentials_problem,
    read_token_file,
    url_refusal,
)
from daemon.configuration.config_values import (
    MAX_NAME_BYTES,
    TOKEN_RULE,
    Seconds,
    mask_url,
    path_fits,
    path_given,
    suffix_fits,
    token_problem,
    url_problem,
)
from daemon.errors import shown
from daemon.reading.notes import MAX_VALUE_CHARS

# Labels such as "Invoice number: 1001", "Invoice no. 1001", "Fakturanummer 1001",
# "Fakturanr: 1001"; the group is the id.
DEFAULT_PDF_ID_PATTERN = (
    r"(?i)(?:invoice\s*(?:number|no\.?|nr\.?|#)|fakturanummer|fakturanr\.?)"
    # One run of blanks, then maybe ':' or '#' and another: two optional runs side by side
    # would let a line of 20,000 blanks cost the regex engine seconds.
    r"\s*(?:[:#]\s*)?"
    # An id holds a digit. Where a layout puts its labels in a column and the values in
    # another, a page's text reads "Invoice number\nInvoice date\n…\nINV-4711": the word
    # after the label is the next label ("Invoice", "Date", "Page"), which every invoice
    # of that layout would share. No id found: one invoice named after the file's stem
    # (docs/configuration.md). The look for the digit goes no further than an id may be
    # long (MAX_INVOICE_ID_CHARS, 255): unbounded, it read the rest of a word from each
    # label inside it, and a page of 'invoiceno' 11,000 times over took 15 s to search.
    r"(?=[A-Za-z._/-]{0,254}[0-9])([A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?)"
)
# The six attachment formats Peppol BIS Billing 3.0 allows.
PEPPOL_TYPES = ["pdf", "png", "jpeg", "csv", "xlsx", "ods"]
# What to write for the url, said alike for a [delivery] without one, an empty one and no
# [delivery] at all (config_load.REQUIRED_SECTION): an admin needs an example, not only
# "required for transport = "http"".
URL_EXAMPLE = ('url = "https://…", the operator\'s address (or transport = "directory" and '
               'target = "/a/folder")')
KNOWN_TYPES = {"pdf", "tiff", "png", "jpeg", "gif", "bmp", "webp", "csv", "text",
               "xlsx", "ods", "docx"}


class OutboxConfig(Section):
    path: Path
    invoice_patterns: list[str] = ["*.xml", "*.pdf"]
    ignore_patterns: list[str] = []
    sidecar_suffix: str = ""
    completion: Literal["settle", "marker"] = "settle"
    settle_seconds: Seconds = Field(default=5.0, ge=0)
    marker_suffix: str = Field(default=".ready", min_length=1)
    watch: Literal["auto", "inotify", "polling"] = "auto"
    # At least 0.05 s: each poll stats every entry, and a tiny interval is a busy loop.
    poll_interval_seconds: Seconds = Field(default=2.0, ge=0.05)
    # At least 0.05 s, as a poll: 1e-300 passed "more than 0" and each rescan was due at
    # once, a core busy on an empty outbox.
    rescan_seconds: Seconds = Field(default=60.0, ge=0.05)

    @field_validator("path", mode="before")
    @classmethod
    def _path_not_empty(cls, value: object) -> object:
        return path_given(value, "set the outbox folder, e.g. path = \"/srv/invoices/outbox\"")

    @field_validator("sidecar_suffix", "marker_suffix")
    @classmethod
    def _one_name(cls, value: str, info: ValidationInfo) -> str:
        # NAME + suffix must stay one name beside the invoice file: a "/" would make the
        # sidecar or the marker a path, which could lead out of the outbox.
        if "/" in value or "\0" in value:
            raise ValueError("must not contain / (it is appended to a file name), e.g. "
                             "\".files\"")
        return suffix_fits(value, ".ready" if info.field_name == "marker_suffix" else ".files")


class PathsConfig(Section):
    sent: Path | None = None  # default: sent/ beside the outbox
    quarantine: Path | None = None  # default: quarantine/ beside the outbox
    processing: Path | None = None  # default: OUTBOX/.outboxd/processing
    state_dir: Path = Path("/var/lib/outboxd")

    @field_validator("sent", "quarantine", "processing", "state_dir", mode="before")
    @classmethod
    def _path_not_empty(cls, value: object) -> object:
        return path_given(value, "remove the key (or unset its OUTBOXD_PATHS__ variable) for "
                                  "the default, or give a folder")


class InvoicesConfig(Section):
    pdf_id_pattern: str = DEFAULT_PDF_ID_PATTERN

    # Field validators (not model validators) so that a problem names its key.
    @field_validator("pdf_id_pattern")
    @classmethod
    def _one_group(cls, value: str) -> str:
        try:
            groups = re.compile(value).groups
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if groups != 1:
            raise ValueError(f"must be a regular expression with exactly one group, "
                             f"this one has {groups}")
        return value


class AttachmentsConfig(Section):
    default_document_type: str = Field(default="Attachment", min_length=1)
    document_types: list[str] | None = None

    @field_validator("default_document_type")
    @classmethod
    def _type_fits(cls, value: str) -> str:
        # It stands for an attachments.toml `type`, and goes where that does (the
        # manifest, the journal, every receipt): the same bound, said at load.
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"is {len(value):,} characters long; a document type may have "
                             f"at most {MAX_VALUE_CHARS:,} (as `type` in attachments.toml) — "
                             'give a short type, such as "Attachment"')
        return value


class ValidationConfig(Section):
    channel: Literal["e-invoice", "external-print", "original-print"] = "e-invoice"
    allowed_types: list[str] = PEPPOL_TYPES
    max_attachment_bytes: int = Field(default=5_000_000, gt=0)
    max_image_pixels: int = Field(default=89_478_485, gt=0)
    # Attachments of one bundle, all its invoices together: each costs ~5 KB of the
    # daemon's memory and a line of receipt.json, and all go in one request. Real bundles
    # hold a handful; 1,000 files at the size limit are 5 GB, more than any receiver
    # takes in one request, so a larger bundle is a mistake (a folder dumped in).
    max_attachments: int = Field(default=1_000, gt=0)
    convert_images: bool = False

    @field_validator("allowed_types", mode="before")
    @classmethod
    def _types_any_case(cls, value: Any) -> Any:
        # As for the one-word keys (Section._any_case): ["PDF", "PNG"] is meant as written.
        if not isinstance(value, list):
            return value
        return [t.lower() if isinstance(t, str) and t.lower() in KNOWN_TYPES else t
                for t in value]

    @field_validator("allowed_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = [shown(t) for t in value if t not in KNOWN_TYPES]
        if unknown:
            raise ValueError(f"unknown types [{', '.join(unknown)}]; known: "
                             f"{sorted(KNOWN_TYPES)}")
        return value


class PolicyConfig(Section):
    unattached: Literal["warn", "quarantine", "hold", "send"] = "warn"
    attachment_wait_seconds: Seconds = Field(default=300.0, ge=0)
    invalid: Literal["quarantine", "hold"] = "quarantine"
    duplicates: Literal["quarantine", "send"] = "quarantine"
    # A fresh journal reads bundle ids back from sent/ receipts of this many days.
    # At most 100 years: from about 700,000 days "today minus the window" falls
    # before year 1 and the start fails with OverflowError.
    duplicate_window_days: int = Field(default=400, ge=0, le=36_500)


class DeliveryConfig(Section):
    transport: Literal["http", "directory"] = "http"
    # "ubl-embedded" sends one UBL document per invoice, attachments inside (einvoice.md).
    format: Literal["bundle", "ubl-embedded"] = "bundle"
    url: str | None = None
    target: Path | None = None
    safe_filenames: bool = True
    timeout_seconds: Seconds = Field(default=60.0, gt=0)
    connect_timeout_seconds: Seconds = Field(default=5.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)
    verify: bool | str = True
    client_cert: Path | None = None
    client_key: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    # The admin's word that plain http:// to another machine is safe for a secret (a
    # container network, a TLS proxy on this host): config_credentials.py.
    allow_plain_http: bool = False
    # At least 0.05 s each: with 1e-300 a receiver that refused was tried some 1,000 times
    # a second (the back-off doubles from the base, up to the max), a log line each.
    retry_base_seconds: Seconds = Field(default=1.0, ge=0.05)
    retry_max_seconds: Seconds = Field(default=300.0, ge=0.05)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A repr (a debugger, a `{cfg!r}` some later log line may hold) shows the url as
        # `outboxd config` does: its password and secret query values masked.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" and isinstance(value, str) else value

    # Field validators (validate_default runs them on None too) so that the
    # problem names "[delivery] url" / "[delivery] target"; transport precedes them.
    @field_validator("url")
    @classmethod
    def _url_given(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Parsed now, as httpx will parse it: a url it cannot POST to would
        # otherwise pass, and every delivery be retried without end.
        if info.data.get("transport") == "http":
            if value is None:
                raise ValueError(f"required but not set — add {URL_EXAMPLE}")
            if not value:
                raise ValueError(f"is empty — set {URL_EXAMPLE}")
            problem = url_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("token")
    @classmethod
    def _token_usable(cls, value: SecretStr | None) -> SecretStr | None:
        # The error line shows the value masked (_show: the key holds "token").
        if value is not None and not value.get_secret_value():
            # "Bearer " and nothing: no receiver takes it, and it is no "no token" either.
            raise ValueError("is empty — set the token, or remove the key (and unset "
                             "OUTBOXD_DELIVERY__TOKEN) to send no Authorization header")
        problem = token_problem(value.get_secret_value()) if value is not None else None
        if problem:
            raise ValueError(f"{problem}; {TOKEN_RULE} — copy the token again exactly as "
                             "issued")
        return value

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_value(cls, value: object) -> object:
        # From the environment every value is a string: "false" must not be
        # taken for the path of a CA bundle.
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("true", "1", "yes", "on"):
                return True
            if word in ("false", "0", "no", "off"):
                return False
            if not value.startswith("/"):
                # "maybe", "ture", "yes please": path_fits called them relative paths, and
                # the admin who meant a yes or no was told nothing of true and false.
                tilde = " (~ is not expanded: write the home folder out)" \
                    if value.startswith("~") else ""
                raise ValueError("is neither true nor false, and as the path of a CA "
                                 "bundle file it is a relative path — give true, false, or "
                                 f"the file's whole path, starting with /{tilde}")
            path_fits(value)
            if not Path(value).is_file():
                raise ValueError("must be true, false, or the path of an existing CA bundle "
                                 "file")
        return value

    @field_validator("client_cert", "client_key", "token_file", mode="before")
    @classmethod
    def _path_fits(cls, value: object) -> object:
        return path_fits(value)

    @field_validator("client_cert", "client_key")
    @classmethod
    def _tls_file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("must be the path of an existing PEM file")
        # A key is only ever used with its certificate (tls.py): alone it would be
        # ignored, and every connection go out without a client certificate.
        if (info.field_name == "client_key" and value is not None
                and "client_cert" in info.data and info.data["client_cert"] is None):
            raise ValueError("is set without client_cert — set client_cert to the "
                             "certificate (PEM) that goes with this key")
        return value

    @field_validator("target", mode="before")
    @classmethod
    def _target_not_empty(cls, value: object) -> object:
        return path_given(value, "give the folder to write bundles into")

    @field_validator("target")
    @classmethod
    def _target_given(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if info.data.get("transport") == "directory" and value is None:
            raise ValueError('required for transport = "directory" but not set — add '
                             'target = "/a/folder", the folder to write bundles into')
        return value

    @model_validator(mode="after")
    def _credentials(self) -> DeliveryConfig:
        if problem := credentials_problem(self):
            raise url_refusal(self.url, problem)
        return self

    def bearer_token(self, config: Path | None = None) -> str | None:
        """The token from `token`, else from `token_file` (whitespace stripped).

        The file is read here, at load and again for each new transport, so its
        content is checked here too: a ConfigError naming the file, never quoting it
        (`config`: the configuration file read, for the fix's command).
        """
        if self.token is not None:
            return self.token.get_secret_value()
        return None if self.token_file is None else read_token_file(self.token_file, config)


class LogConfig(Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class ServiceConfig(Section):
    shutdown_grace_seconds: Seconds = Field(default=20.0, ge=0)
    # Child processes that read, validate and pre-flight bundles (readers.py);
    # "auto" = min(2, CPUs); 0 = on threads of the daemon's own process.
    reader_processes: Literal["auto"] | int = "auto"

    @field_validator("reader_processes", mode="before")
    @classmethod
    def _processes(cls, value: object) -> object:
        # One message for both forms (a union would report each alternative).
        text = str(value).strip().lower() if not isinstance(value, bool) else ""
        if text == "auto":
            return "auto"
        # ASCII digits only: "²" is a digit to str.isdigit() but not to int() (its
        # ValueError's text reached the admin), and "٣" would pass as 3.
        if text.isascii() and text.isdigit() and int(text) <= 64:
            return int(text)
        raise ValueError("must be \"auto\" or a whole number from 0 to 64 (0: read on "
                         "threads of the daemon's own process)")


class ShareConfig(Section):
    """What outboxd writes into, and reads from, the share for its people
    (docs/folder-convention.md, section 6)."""

    status_page: str = "outboxd-status.html"  # "" turns the page off
    release_suffix: str = ".send-anyway"

    @field_validator("status_page", "release_suffix")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # TOML can write one (\u0000); in a file name it is a ValueError at the first use.
        if "\0" in value:
            raise ValueError("holds a NUL character (\\0), which no file name may hold — "
                             "remove it")
        return value

    @field_validator("status_page")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value and ("/" in value or "\\" in value or value.startswith(".")):
            raise ValueError("must be a plain file name in the outbox root (no folders, "
                             "not hidden), or \"\" to turn the page off")
        if len(os.fsencode(value)) > MAX_NAME_BYTES:
            # The page could never be written: a "File name too long" logged at every
            # refresh, the name of 100,000 characters whole in each line.
            raise ValueError(f"is {len(os.fsencode(value)):,} bytes long; a file name has at "
                             f"most {MAX_NAME_BYTES} on Linux — give a shorter name, e.g. "
                             '"outboxd-status.html" (the default)')
        return value

    @field_validator("release_suffix")
    @classmethod
    def _dot_name(cls, value: str) -> str:
        # Said in words: pydantic's pattern error showed the admin a regular expression.
        if len(value) < 2 or not value.startswith(".") or "/" in value or "\\" in value:
            raise ValueError("must be a dot and at least one more character, without / or "
                             "\\, e.g. \".send-anyway\"")
        return suffix_fits(value, ".send-anyway")


class EinvoiceConfig(Section):
    # Pre-flight: the official EN 16931 / Peppol BIS 3 rules on each UBL invoice (einvoice.md).
    preflight: Literal["error", "warn", "off"] = "error"
