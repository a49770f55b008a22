"""TLS for the HTTP transport: the SSL context built from `[delivery] verify`,
`client_cert` and `client_key`, and the configuration errors that name the setting
and the file when one does not load (also for `config --check`). OpenSSL is never let
ask for a key's passphrase.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx

from daemon.configuration.config import DeliveryConfig
from daemon.errors import ConfigError, describe
from daemon.fs.fsread import NotAFile, read_admin_file

# A CA bundle is a few hundred KB; more is not a PEM file anyone meant.
TLS_FILE_LIMIT = 16 << 20


def tls_verify(cfg: DeliveryConfig) -> bool | ssl.SSLContext:
    """httpx's `verify`: True or False as configured, or a context with the CA bundle
    and the client certificate loaded (httpx no longer takes paths for either).
    ConfigError, naming the setting and its file, when a file does not load."""
    if isinstance(cfg.verify, bool) and not cfg.client_cert:
        return cfg.verify
    # ssl's errors name no file: one that cannot be read is found first, and named.
    for setting, path in (("verify", cfg.verify), ("client_cert", cfg.client_cert),
                          ("client_key", cfg.client_key)):
        if path and not isinstance(path, bool):
            try:
                # OpenSSL would block on a FIFO as open() does: refused first.
                read_admin_file(Path(path), TLS_FILE_LIMIT)
            except OSError as exc:
                raise unusable(f"{setting} = {str(path)!r}", exc, "make the file readable "
                                "by the user outboxd runs as") from None
            except NotAFile as exc:
                raise ConfigError(f"[delivery] {setting} = {str(path)!r} {exc} — point it "
                                  "to a PEM file") from None
    if isinstance(cfg.verify, str):
        try:
            context = ssl.create_default_context(cafile=cfg.verify)
        except OSError as exc:  # ssl.SSLError is one too
            raise unusable(f"verify = {cfg.verify!r}", exc, "point verify to a PEM file of "
                           "CA certificates, or set it to true") from None
    else:
        # The context httpx makes itself without a client certificate, so adding one
        # does not change whom we trust: for true, SSL_CERT_FILE or SSL_CERT_DIR from
        # the environment, else certifi's CAs (never the system's store).
        try:
            context = httpx.create_ssl_context(verify=cfg.verify)
        except OSError as exc:
            raise environment_cas_error(exc) from None
    if cfg.client_cert:
        try:
            # A callback, so that OpenSSL never prompts on a terminal for a passphrase.
            context.load_cert_chain(str(cfg.client_cert),
                                    str(cfg.client_key) if cfg.client_key else None,
                                    password=_no_passphrase)
        except _Encrypted:
            raise unusable(f"client_key = {str(cfg.client_key)!r}" if cfg.client_key
                            else f"client_cert = {str(cfg.client_cert)!r}",
                            "the private key is protected by a passphrase, which outboxd "
                            "cannot be given", "store the key without a passphrase, "
                            "readable only by the outboxd user") from None
        except OSError as exc:  # ssl.SSLError is one too
            raise unusable(f"client_cert = {str(cfg.client_cert)!r}" + (
                f", client_key = {str(cfg.client_key)!r}" if cfg.client_key else ""), exc,
                "client_cert must be a PEM certificate and client_key its PEM private key "
                "(or client_cert a PEM file holding both)") from None
    return context


class _Encrypted(Exception):
    pass


def _no_passphrase() -> str:
    raise _Encrypted


def environment_cas_error(exc: OSError) -> ConfigError:
    """verify = true, and the CAs httpx reads from the environment's SSL_CERT_FILE or
    SSL_CERT_DIR do not load (httpx reads them when the transport is built)."""
    env = [f"{k}={os.environ[k]}" for k in ("SSL_CERT_FILE", "SSL_CERT_DIR")
           if os.environ.get(k)]
    return unusable("verify = true", exc, f"the environment sets {', '.join(env)}: fix or "
                    "unset it" if env else "check verify")


def unusable(setting: str, why: OSError | str, fix: str) -> ConfigError:
    """A [delivery] setting that cannot be used: why, and the fix."""
    if isinstance(why, OSError) and not isinstance(why, ssl.SSLError):  # those name no file
        why = describe(why)
    return ConfigError(f"[delivery] {setting} cannot be used: {why} — {fix}")
