"""The proxy of the service's environment for the receiver's url (HTTP_PROXY,
HTTPS_PROXY, ALL_PROXY, and NO_PROXY as curl reads it), decided once, as outboxd
posts to one url; and what a receiver's IPv6 address must look like to one.

Not httpx's own reading of the environment: httpx turns every NO_PROXY entry into a
mount pattern, so `10.0.0.0/8` matched 10.0.0.0 alone (the proxy then took a receiver
at 10.1.2.3, which it may not reach), and one it cannot parse (an IPv6 network such as
fd00::/8) stopped the Client from being made at all, even with no proxy set
(encode/httpx#3221). Nor urllib's proxy_bypass, which has no networks either and
compares IPv6 addresses as text with their brackets.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import urllib.request

import httpx

from daemon.configuration.config_credentials import on_this_machine
from daemon.errors import ConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def environment_proxy(url: httpx.URL) -> httpx.Proxy | None:
    """The proxy the environment names for the receiver's `url` (HTTP_PROXY or
    HTTPS_PROXY by its scheme, else ALL_PROXY, any case, the lower-case one first; a
    proxy without a scheme is http://), or None: no proxy named, the url's host is this
    machine (localhost, 127.0.0.0/8, ::1, ::ffff:127.0.0.1), or NO_PROXY excludes it
    (no_proxy_excludes). A ConfigError when the proxy is no url outboxd can use; it is
    not quoted, as it may carry the proxy's password."""
    found = urllib.request.getproxies()
    named = found.get(url.scheme) or found.get("all")
    if not named or on_this_machine(url.host):
        # A receiver on this machine (the reference receiver, a TLS proxy here) is out of
        # a proxy's reach, and the url check lets a token go to it over plain http://:
        # sent through a proxy elsewhere, it crossed the network in clear. urllib and
        # curl proxy loopback unless NO_PROXY names it; Go's clients never do.
        return None
    if no_proxy_excludes(url, found.get("no", "")):
        return None
    try:
        proxy = httpx.Proxy(url=named if "://" in named else f"http://{named}")
    except (ValueError, httpx.InvalidURL):  # InvalidURL is no ValueError
        raise ConfigError("a proxy variable of the environment (HTTP_PROXY, HTTPS_PROXY, "
                          "ALL_PROXY) is not a proxy url: it must start with http://, "
                          "https://, socks5:// or socks5h://") from None
    if proxy.url.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise ConfigError("a proxy variable of the environment (HTTP_PROXY, HTTPS_PROXY, "
                          "ALL_PROXY) names a SOCKS proxy, which needs the Python "
                          "package socksio, not installed with outboxd: use an HTTP "
                          "proxy, or install socksio beside outboxd")
    return proxy


def no_proxy_excludes(url: httpx.URL, no_proxy: str) -> bool:
    """Whether NO_PROXY (`no_proxy`: entries split by commas or blanks, any case) names
    the url's host, as curl (7.86 and later), Go and, for its forms, Python's requests
    read it: `*` (every host); a name, with or without a leading `.` or `*.`: that host
    and every one under it (`corp.example` takes `rx.corp.example`, never
    `xcorp.example`); an IPv4 or IPv6 address, bracketed or not (`fd00::1`,
    `[fd00::1]`), compared as an address, not as text; a network (`10.0.0.0/8`,
    `fd00::/8`) holding the url's address. Any of them with `:PORT` names that port
    alone (the url's own, or 80 or 443 by its scheme). Names are never looked up: a
    network takes a url written with an address, not a name that resolves into it.
    An entry that is none of these (`10.0.0.0/33`) takes nothing."""
    host = url.host.lower().rstrip(".")
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    address = _address(host)
    for entry in re.split(r"[,\s]+", no_proxy.lower()):
        if entry == "*":
            return True
        if entry and _names(entry, host, address, port):
            return True
    return False


def _names(entry: str, host: str, address: _Address | None, port: int | None) -> bool:
    name, entry_port = _split_port(entry)
    if name is None or (entry_port is not None and entry_port != port):
        return False
    if "/" in name:
        try:
            network = ipaddress.ip_network(name, strict=False)
        except ValueError:
            return False
        # An address of the other family is in no network of this one (no error).
        return address is not None and address in network
    named = _address(name)
    if named is not None or address is not None:
        return named == address  # an address names only itself, never a name
    name = name.removeprefix("*.").removeprefix(".").rstrip(".")
    return bool(name) and (host == name or host.endswith(f".{name}"))


def _split_port(entry: str) -> tuple[str | None, int | None]:
    """An entry's host (or network) and its port, if it names one; (None, None) for an
    entry that cannot be read. A bare IPv6 address or network has colons and no port:
    a port after one needs the address in brackets, as in a url."""
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if not bracket:
            return None, None
        if rest.startswith("/"):  # [fd00::]/8
            return inside + rest, None
        if not rest:
            return inside, None
        return (inside, int(rest[1:])) if rest[0] == ":" and rest[1:].isdigit() else (None, None)
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return (name, int(port)) if port.isdigit() else (None, None)
    return entry, None


def _address(host: str) -> _Address | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def proxied_host(host: bytes) -> bytes:
    """The url's host as a proxy must read it: an IPv6 address in brackets. httpcore
    writes the host as httpx gives it, without them, into the CONNECT line and its Host
    header (`CONNECT 2001:db8::5:443`, which a proxy refuses or reads as another port)
    and into the absolute url of a plain http:// request through the proxy."""
    return b"[" + host + b"]" if b":" in host else host


def unbracketed(server_hostname: str | None) -> str | None:
    """The name a TLS handshake checks the certificate against: an IPv6 address without
    the brackets proxied_host gave it (ssl matches the certificate's IP address then)."""
    if server_hostname and server_hostname.startswith("[") and server_hostname.endswith("]"):
        return server_hostname[1:-1]
    return server_hostname
