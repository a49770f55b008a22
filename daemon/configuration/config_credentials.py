"""The credentials of [delivery] (docs/configuration.md): a Bearer token (`token`, or
`token_file` read here) or Basic auth in the url — one kind at a time — and, like them,
a key in the url's query (a parameter named like a secret): never over
plain http:// to another machine unless `allow_plain_http` says the network between is
trusted (then with a warning at each start and reload). Kept apart from the model
(config_sections.py) as the one place that decides what a request carries and how
it travels. Every line names the rule and the fix, and never quotes a secret."""

from __future__ import annotations

import errno
import ipaddress
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from daemon.configuration.config_values import (
    TOKEN_RULE,
    has_userinfo,
    receiver_address,
    secret_param_names,
    token_of_file,
)
from daemon.errors import ConfigError, double_quoted, shown
from daemon.fs.fsread import NotAFile

if TYPE_CHECKING:
    from daemon.configuration.config_sections import DeliveryConfig


def in_the_clear(url: str | None) -> bool:
    """`url` is plain http:// to a host other than this machine's loopback: whatever the
    request carries (a Bearer token, Basic auth) crosses the network readable by anyone
    on the way. False for https, 127.0.0.0/8, ::1, localhost, and a url httpx cannot
    parse (url_problem reports that)."""
    if not url or not url.lower().startswith("http://"):
        return False
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return False
    return not on_this_machine(host)


def on_this_machine(host: str) -> bool:
    """`host` (as httpx.URL gives it, IPv6 without brackets) is this machine's loopback:
    localhost, 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. Any other name is another machine,
    as far as we know.

    Decided by the name, never by a look-up: httpx looks the host up again for each
    connection, so what it gave at the check binds no later POST. `localhost` is in
    every system's hosts file, read before DNS. A name under .localhost (RFC 6761) is
    not: glibc does not map it to loopback, so its look-up goes to DNS with the search
    domain, where a wildcard entry would take the token in clear (and, a receiver on
    this machine taking no proxy, past the proxy) to another host."""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # ::ffff:127.0.0.1 is 127.0.0.1 on a dual-stack socket; Python calls it loopback
    # only from 3.13.
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


# {secret}: which one (_secret_in_the_clear), never its value. Said of `url` (the
# loader writes "[delivery] url = VALUE: " before it, as for url's other refusals).
CLEARTEXT_CREDENTIALS = (
    "is plain http:// to another machine, and each request would carry {secret} "
    "unencrypted across the network — use https:// (ask the operator for its https "
    "address), or, for a receiver on this machine, http://127.0.0.1; only where every "
    "network between is yours and trusted (a container network, a TLS proxy on this host "
    "reached by name), set allow_plain_http = true")


def credentials_problem(cfg: DeliveryConfig) -> str | None:
    """What is wrong with the kind of credentials set and how they would travel, said of
    `url` (url_refusal), or None."""
    bearer = cfg.token is not None or cfg.token_file is not None
    # httpx turns a url's user:password into Basic auth, which replaces the Bearer
    # header: every POST would go without the token and earn a 401.
    if bearer and cfg.url and has_userinfo(cfg.url):
        return ("holds a user name or password (Basic auth), and token or token_file "
                "is set (Bearer): a request carries one Authorization header — keep only "
                "the one the receiver expects")
    if (secret := _secret_in_the_clear(cfg)) and not cfg.allow_plain_http:
        return CLEARTEXT_CREDENTIALS.format(secret=secret)
    return None


def url_refusal(url: str | None, problem: str) -> ValidationError:
    """`problem` (credentials_problem's) as an error of the `url` key. Found by a check
    of the whole section, whose errors pydantic places on the section: the line read
    "[delivery]: url is plain http:// …", unlike every other refusal of a key
    ("[delivery] url = 'http://…': …", the value shown masked by the loader)."""
    return ValidationError.from_exception_data("DeliveryConfig", [InitErrorDetails(
        type=PydanticCustomError("value_error", "{problem}", {"problem": problem}),
        loc=("url",), input=url)])


def _secret_in_the_clear(cfg: DeliveryConfig) -> str | None:
    """Which secret each request would carry unencrypted across the network, or None."""
    if cfg.transport != "http" or not in_the_clear(cfg.url):
        return None
    if cfg.token is not None:
        return "the token"
    if cfg.token_file is not None:
        return "the token of token_file"
    if has_userinfo(cfg.url):
        return "the credentials in the url (Basic auth)"
    # A key in the query (`?access_token=…`, `&sig=…`) travels in the request line, as
    # readable on the way as a token: it was let through without a word.
    if names := secret_param_names(cfg.url or ""):
        listed = ", ".join(shown(n) for n in names)
        return (f"the value of the url's query parameter{'s' * (len(names) > 1)} {listed} "
                "(named like a secret)")
    return None


def plain_http_warning(cfg: DeliveryConfig) -> str | None:
    """The warning for a secret allow_plain_http lets go in the clear, or None. Logged at
    each start and reload, and said by `config` and `config --check`: the key is the
    admin's choice, and should not be forgotten once the network around it changes."""
    secret = _secret_in_the_clear(cfg)
    if secret is None or not cfg.allow_plain_http:
        return None
    return (f"[delivery] allow_plain_http = true: {secret} goes to "
            f"{receiver_address(cfg.url or '')} over plain http://, unencrypted — anyone who "
            "can see the traffic on the way can read it and send as outboxd; keep this only "
            "where every network between is yours and trusted, else use https://")


def read_token_file(path: Path, config: Path | None = None) -> str:
    """The token in `path`, whitespace stripped; a ConfigError naming the file, never
    quoting it, if it cannot be read or holds no usable token. `config`: the
    configuration file the command read, kept in a command the fix suggests."""
    where = f"[delivery] token_file = {double_quoted(str(path))}"
    try:
        token, problem = token_of_file(path)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror}) — "
                          f"{_token_file_fix(path, exc, config)}") from None
    except NotAFile as exc:
        raise ConfigError(f"{where} {exc} — point it to a file that holds the token "
                          "alone") from None
    if problem:
        raise ConfigError(f"{where}: the token in the file {problem}; {TOKEN_RULE} — the "
                          "file must hold the token alone, on one line")
    if not token:
        # A secret not yet deployed: sending without one would only earn 401s.
        raise ConfigError(f"{where}: the file is empty — put the token in it, or remove "
                          "token_file to send no Authorization header")
    return token


def _token_file_fix(path: Path, exc: OSError, config: Path | None) -> str:
    """The fix for a token_file that cannot be read. A systemd credential's path exists
    only inside the running service: an admin who runs `outboxd config --check` as the
    README says but without the override would otherwise be sent to "fix" a path that
    is right, and might point it at /etc/outboxd/token, which the service cannot read.
    The command keeps the configuration file the admin's own command read (`config`):
    without it, it would check /etc/outboxd/config.toml, another one, and could pass."""
    outside_the_unit = not os.environ.get("CREDENTIALS_DIRECTORY")
    if exc.errno == errno.ENOENT and outside_the_unit \
            and str(path).startswith("/run/credentials/"):
        return ("a systemd credential, there only while the service runs: to check "
                "outside it, name the file it is made from, "
                "OUTBOXD_DELIVERY__TOKEN_FILE=/etc/outboxd/token outboxd config --check"
                + ("" if config is None else f" -c {shlex.quote(str(config))}"))
    return "check the path and permissions"
