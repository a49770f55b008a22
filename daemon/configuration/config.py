"""Configuration (docs/configuration.md): one TOML file, overridden by OUTBOXD_SECTION__KEY.

The whole of it as `Settings`: the sections (each one's keys, defaults and
checks are config_sections.py's, named here too), the environment overrides that
win over the file, and the paths derived from it. Every problem is a ValueError
that names what is allowed. config_load.py reads the file through this schema
and turns the problems into one ConfigError that names each key and value, so
the daemon never starts on a half-understood config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from daemon.configuration.config_sections import (
    DEFAULT_PDF_ID_PATTERN,
    KNOWN_TYPES,
    PEPPOL_TYPES,
    AttachmentsConfig,
    DeliveryConfig,
    EinvoiceConfig,
    InvoicesConfig,
    LogConfig,
    OutboxConfig,
    PathsConfig,
    PolicyConfig,
    Section,
    ServiceConfig,
    ShareConfig,
    ValidationConfig,
)
from daemon.configuration.config_values import MASK, mask_url

# The sections are config_sections.py's; they are named here as well because the
# daemon imports each from "the configuration", beside Settings.
__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_PDF_ID_PATTERN",
    "ENV_PREFIX",
    "KNOWN_TYPES",
    "PEPPOL_TYPES",
    "SECTIONS",
    "AttachmentsConfig",
    "DeliveryConfig",
    "EinvoiceConfig",
    "InvoicesConfig",
    "LogConfig",
    "OutboxConfig",
    "PathsConfig",
    "PolicyConfig",
    "Section",
    "ServiceConfig",
    "Settings",
    "ShareConfig",
    "ValidationConfig",
    "environment_overrides",
]

DEFAULT_CONFIG_PATH = Path("/etc/outboxd/config.toml")
ENV_PREFIX = "OUTBOXD_"

SECTIONS = ("outbox", "paths", "invoices", "attachments", "validation", "policy",
            "delivery", "log", "service", "share", "einvoice")


def environment_overrides() -> dict[str, dict[str, Any]]:
    """OUTBOXD_<SECTION>__<KEY> of the known sections, by section and key."""
    import json
    out: dict[str, dict[str, Any]] = {}
    for name, value in os.environ.items():
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].partition("__")
        section, key = section.lower(), key.lower()
        if section not in SECTIONS or not key:
            continue
        parsed: Any = value
        if value.strip().startswith("["):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                pass  # not a list: the setting's own check says what it should be
        out.setdefault(section, {})[key] = parsed
    return out


class _EnvOverrides(PydanticBaseSettingsSource):
    """OUTBOXD_<SECTION>__<KEY> for known sections; every other variable is ignored.

    pydantic-settings' own env source would also pick up or reject variables
    such as OUTBOXD_FOO; outboxd's rule is that those are ignored (so that
    OUTBOXD_RECEIVER_TOKEN does not disturb the daemon), so we pick the variables
    ourselves. Values are strings (lists as JSON); pydantic coerces.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return environment_overrides()


class Settings(BaseSettings):
    # hide_input_in_errors: see config_sections.Section.
    model_config = SettingsConfigDict(extra="forbid", hide_input_in_errors=True)

    outbox: OutboxConfig
    paths: PathsConfig = PathsConfig()
    invoices: InvoicesConfig = InvoicesConfig()
    attachments: AttachmentsConfig = AttachmentsConfig()
    validation: ValidationConfig = ValidationConfig()
    policy: PolicyConfig = PolicyConfig()
    delivery: DeliveryConfig
    log: LogConfig = LogConfig()
    service: ServiceConfig = ServiceConfig()
    share: ShareConfig = ShareConfig()
    einvoice: EinvoiceConfig = EinvoiceConfig()

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   *_: PydanticBaseSettingsSource,
                                   **__: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: environment over the TOML file (passed as init values).
        return (_EnvOverrides(settings_cls), init_settings)

    # Derived paths: the defaults sit beside the outbox, where the people who
    # use the share can see what was sent and what was quarantined.
    @property
    def sent_dir(self) -> Path:
        return self.paths.sent or self.outbox.path.parent / "sent"

    @property
    def quarantine_dir(self) -> Path:
        return self.paths.quarantine or self.outbox.path.parent / "quarantine"

    @property
    def processing_dir(self) -> Path:
        return self.paths.processing or self.outbox.path / ".outboxd" / "processing"

    @property
    def journal_path(self) -> Path:
        return self.paths.state_dir / "journal.sqlite3"

    def masked(self) -> dict[str, Any]:
        """The effective configuration for printing: secrets never shown."""
        data = self.model_dump(mode="json")
        if data["delivery"].get("token"):
            data["delivery"]["token"] = MASK
        if data["delivery"].get("url"):
            # A password in the url is Basic auth (deliver.py): as secret as the token.
            data["delivery"]["url"] = mask_url(data["delivery"]["url"])
        data["paths"].update(sent=str(self.sent_dir), quarantine=str(self.quarantine_dir),
                             processing=str(self.processing_dir))
        return data
