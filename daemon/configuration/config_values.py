"""What a value of the configuration may be, beyond its type: durations, the token,
the url, paths; and how secrets in them are masked for printing. The sections'
validators (config_sections.py) call these; each message names the rule and the
fix and never quotes a secret (these lines reach logs and terminals)."""

from __future__ import annotations

import difflib
import math
import os
import re
import urllib.parse
from pathlib import Path, PurePath
from typing import Annotated

import httpx
from pydantic import BeforeValidator

from daemon.fs.fsread import read_admin_file

# The longest duration any key may have: one year. inf, nan or 1e300 pass a float
# field (and `ge=0`), then overflow the loop's timers and select() at run time;
# a year is far above any sensible wait, yet far below what they can hold.
MAX_SECONDS = 31_536_000


def finite_seconds(value: object) -> object:
    """A duration must be a finite number of seconds up to MAX_SECONDS.

    Checked before pydantic's own float check so that inf and nan get this one
    message, not "greater than or equal to 0" (nan fails every comparison).
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        number = math.inf  # an integer too large for a float
    except (TypeError, ValueError):
        return value  # not a number at all: pydantic says so, naming the key
    if not math.isfinite(number) or number > MAX_SECONDS:
        raise ValueError(f"must be a finite number of seconds, at most {MAX_SECONDS} "
                         "(one year); inf and nan are not durations")
    return value


Seconds = Annotated[float, BeforeValidator(finite_seconds)]

# What a bearer token may hold (`Authorization: Bearer TOKEN`; configuration.md): one
# run of visible ASCII, 0x21-0x7E. That is wider than RFC 6750's b64token
# (letters, digits, - . _ ~ + / and trailing =) on purpose: receivers issue
# tokens and API keys with other punctuation, and every visible ASCII character
# travels verbatim in an HTTP header. What is refused cannot: a line break or
# control character (httpx refuses the header and quotes it, token included,
# in an error that reaches the log and the status page), a non-ASCII character
# (httpx encodes headers as ASCII: UnicodeEncodeError), a space (it would split
# the token into separate words of the header).
TOKEN_RULE = ("a bearer token must be one line of visible ASCII characters (letters, digits "
              "and punctuation such as - . _ ~ + / =) without spaces")


def token_problem(token: str) -> str | None:
    """What keeps `token` out of an Authorization header, or None if nothing does.

    Says which kind of character is wrong, never which character or where: the
    message is printed and logged, and must not give away any part of the secret.
    """
    if any(ch in "\r\n" for ch in token):
        return "contains a line break"
    if any(ch in " \t" for ch in token):
        return "contains a space or tab"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in token):
        return "contains a control character"
    if any(ord(ch) > 0x7E for ch in token):
        return "contains a non-ASCII character (an accented letter, a typographic dash or quote…)"
    return None


def token_of_file(path: Path) -> tuple[str, str | None]:
    """The token in the file `path` (spaces and line ends around it dropped) and what
    keeps it out of a header (token_problem), or None. One reading for the daemon's
    token_file and the reference receiver's --token-file. OSError and fsread.NotAFile
    as read_admin_file raises them, for the caller to name its own setting."""
    try:
        # A token is a line; 64 KiB is room for any, and /dev/zero is refused.
        token = read_admin_file(path, 1 << 16).decode("utf-8").strip()
    except UnicodeDecodeError:
        # Not the decoder's message: it quotes the offending byte.
        return "", "contains bytes that are not text (not ASCII)"
    return token, token_problem(token)


# scheme://userinfo@ up to the *last* "@": a password may hold an unencoded "@"
# or "/", and in an error line an over-masked url is better than a leaked one.
_URL_USERINFO = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*://).*@", re.DOTALL)
MASK = "********"

# Words in the name of a key, or of a url's query parameter, whose value may be a secret
# (api_key, access_token, X-Amz-Signature, sig of a shared-access url, password, auth).
SECRET_WORDS = ("tok", "tkn", "secret", "pass", "pwd", "key", "auth", "bearer", "cred",
                "sig")
_CLOSE_TO_SECRET = ("token", "secret", "password")


def looks_secret(name: str) -> bool:
    """A name whose value may be a secret: one holding a secret's word, or a typo of one
    that holds none ("toekn", "tken", "pasword")."""
    lower = name.lower()
    return any(word in lower for word in SECRET_WORDS) or (
        len(lower) <= 64 and bool(difflib.get_close_matches(lower, _CLOSE_TO_SECRET,
                                                            cutoff=0.7)))


# "name=value" parts of a text, between "?", "&", "#" or ";": a url's query and fragment,
# wherever they stand in a value (an unparseable url, a list item).
_PARAM_SEPARATORS = re.compile(r"([?&#;])")
# The credentials of an HTTP Authorization header written out ("Bearer abc…").
_AUTH_HEADER = re.compile(r"\b(Bearer|Basic)(\s+)[^\s'\",;]+", re.IGNORECASE)


def _secret_params(text: str) -> tuple[list[str], list[tuple[int, str, str]]]:
    """`text` split at the separators, and (index, name, value) of each of its name=value
    parts whose name looks secret."""
    parts = _PARAM_SEPARATORS.split(text)
    secret = []
    for i in range(0, len(parts), 2):
        name, eq, value = parts[i].partition("=")
        # Judged decoded: a receiver reads `?t%6Fken=` as `?token=`.
        if eq and value and looks_secret(urllib.parse.unquote_plus(name)):
            secret.append((i, name, value))
    return parts, secret


def _mask_params(text: str) -> str:
    """`text` with the value of every name=value part whose name looks secret masked."""
    parts, secret = _secret_params(text)
    for i, name, _ in secret:
        parts[i] = f"{name}={MASK}"
    return "".join(parts)


def secret_params(url: str) -> list[str]:
    """The values, as written, of the url's query and fragment parameters whose names look
    secret (`?access_token=…`), for what must never show them."""
    query = url.partition("?")[2] or url.partition("#")[2]
    return [value for _, _, value in _secret_params(query)[1]]


def secret_param_names(url: str) -> list[str]:
    """The names, decoded, of the url's query and fragment parameters named like a secret
    (`access_token`): what the plain-http rule says goes in the clear, never the value."""
    query = url.partition("?")[2] or url.partition("#")[2]
    return [urllib.parse.unquote_plus(name) for _, name, _ in _secret_params(query)[1]]


def mask_userinfo(text: str) -> str:
    """`text` with everything between "scheme://" and the last "@" masked (for error lines,
    where the url may not even parse). A url mistyped before its "//" ('http//u:p@h',
    'u:p@h') is masked from its "//", or from its start, to the last "@"."""
    masked, found = _URL_USERINFO.subn(lambda m: f"{m.group(1)}{MASK}@", text, count=1)
    if found or "@" not in text:
        return masked
    keep = text.find("//") + 2 if "//" in text.partition("@")[0] else 0
    return f"{text[:keep]}{MASK}@{text.rpartition('@')[2]}"


def mask_secrets(text: str) -> str:
    """`text`, a value for an error line, with what may be a secret in it masked: a url's
    user name and password, the values of query parameters named like a secret
    (`?token=`, `&api_key=`), and an Authorization header's credentials. The password
    first: an unencoded "?" or "&" in it would otherwise split it."""
    return _AUTH_HEADER.sub(rf"\1\2{MASK}", _mask_params(mask_userinfo(text)))


def mask_url(url: str) -> str:
    """The url as httpx parses it (the form deliveries use, so the host shown is the host
    connected to), with the password of its userinfo (Basic auth, deliver.py) and the
    values of query parameters named like a secret masked; the user name as written."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return mask_secrets(url)
    if parsed.password:
        user = parsed.userinfo.partition(b":")[0]  # as written (percent-encoded)
        parsed = parsed.copy_with(userinfo=user + b":" + MASK.encode())
    shown = str(parsed)
    if "//" not in shown:
        # No authority (mailto:…, a bare word): no host to show, none that a mask can
        # move. Such a url is never posted to (url_problem); masked as unparsed.
        return mask_secrets(url)
    # The authority ends at the first / ? or # after "//" (httpx leaves none in it):
    # what follows is masked on its own, so that no mask can hide or move the host.
    start = shown.index("//") + 2
    end = min((i for i in (shown.find(c, start) for c in "/?#") if i >= 0), default=len(shown))
    head, rest = shown[:end], shown[end:]
    if "@" in rest:
        # An "@" after the host: a password with a raw / ? or # ("bob:1234/pw@host" goes
        # to host bob, port 1234). The host stays the one parsed; what may be the rest
        # of a password, up to the last "@", is masked. url_problem refuses such a url.
        rest = f"{rest[0]}{MASK}{rest[rest.rindex('@'):]}"
    return head + _mask_params(rest)


def receiver_address(url: str) -> str:
    """Where bundles go, for papers others read (receipt.json in sent/, which the people
    on the share see): the url's scheme, host, port and path only. Not its user name
    (an API key is often given as one, `https://KEY@host` or `https://KEY:@host`), its
    password, or its query (a key under any name, such as an Azure function's `?code=`,
    which mask_url cannot know for one); the admin's own view is mask_url's."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return MASK  # never posted to (url_problem): nothing of it is needed
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


# What url_problem says of a url whose user name or password holds a raw / ? # or @: the
# host then ends early, and requests go elsewhere than meant.
_ENCODE_USERINFO = ("in a user name or password write / ? # : @ as %2F %3F %23 %3A %40 "
                    "(better: give the receiver's key as token or token_file)")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be POSTed to, or None. Never quotes the url or httpx's message,
    which may hold part of a password (httpx reports "bob:pa/ss@host" as port 'pa')."""
    # A space in the path is fine (httpx sends it as %20, and such urls worked before);
    # at either end, or in the host, it is a typo that no request can go to.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "must not contain control characters (tabs, line breaks)"
    if url != url.strip():
        return "must not start or end with a space"
    if not url.lower().startswith(("http://", "https://")):
        return "must start with http:// or https://"
    if "#" in url:
        # HTTP never sends a fragment, so a "#" is only ever a mistake, and a dangerous
        # one in a password: "http://bob:1234#pw@host" is host bob, port 1234.
        return ("must not hold a # (HTTP never sends what follows it, and a # in a "
                f"password ends the host there) — {_ENCODE_USERINFO}")
    try:
        parsed = httpx.URL(url)
        host_name = parsed.host
    except (httpx.InvalidURL, UnicodeError) as exc:
        # UnicodeError: the idna package's own, from .host, which decodes an "xn--" host
        # that is no punycode; its text ("Malformed A-label, no Punycode eligible content
        # found") reached the admin as the reason.
        reason = "Invalid IDNA" if isinstance(exc, UnicodeError) else str(exc)
        # A "/" or ":" in a password splits the url elsewhere than meant
        # ("bob:pa/ss@host" reads as host "bob", port "pa"): say so.
        hint = f" ({_ENCODE_USERINFO})" if "@" in url else ""
        if reason.startswith("Invalid port"):
            return f"the port must be a number from 1 to 65535{hint}"
        if reason.startswith(("Invalid IPv4", "Invalid IPv6", "Invalid IDNA")):
            return f"the host is not a valid host name or IP address{hint}"
        return f"is not a valid URL, e.g. https://operator.example/api/bundles{hint}"
    if not host_name:
        return "must name a host, e.g. https://operator.example/api/bundles"
    if "%20" in host_name or " " in host_name:
        return "the host must not contain spaces"
    if b"@" in parsed.raw_path:
        # "http://bob:1234/pw@host" and "…:1234?pw@host" parse as host bob, port 1234: a
        # password with a raw / or ? would send every bundle, and the password, to the
        # wrong host. A real "@" in a path or query is rare and can be written %40.
        return ("holds an @ after the host (a / or ? in a password ends the host before "
                f"it, and requests go to another host) — {_ENCODE_USERINFO}; an @ meant in "
                "the path or query is written %40")
    # DNS carries no longer name (RFC 1035): it would fail at every delivery, not here.
    host = parsed.raw_host
    if b":" not in host and (len(host) > 253 or any(len(part) > 63
                                                     for part in host.split(b"."))):
        return ("the host name is longer than a host name may be (253 characters, 63 "
                "between two dots) — check the url")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return "the port must be a number from 1 to 65535"
    return None


def path_given(value: object, fix: str) -> object:
    # Path("") is Path("."): an empty value would silently mean the daemon's
    # current folder (with sent/ and quarantine/ then made inside the outbox).
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"must not be empty (that would be the daemon's current folder) — "
                         f"{fix}")
    return path_fits(value)


# Linux's PATH_MAX (with its closing NUL) and NAME_MAX. Every system call refuses a longer
# path (ENAMETOOLONG), and a NUL ends one in C: said at load, naming the key, not as an
# OSError or ValueError the first time the daemon uses the path.
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255


def path_fits(value: object) -> object:
    """A path value (before pydantic makes it a Path) that Linux can use at all."""
    if not isinstance(value, str | PurePath):
        return value  # not a path: pydantic says so, naming the key
    raw = os.fsencode(value)
    if raw and not raw.startswith(b"/"):
        # Taken from the folder outboxd happens to start in: / under systemd, another
        # for `status` run from a shell, so each would find another journal or outbox
        # (and `config --check` pass where the service then fails).
        tilde = " (~ is not expanded: write the home folder out)" if raw[:1] == b"~" else ""
        raise ValueError("is a relative path, which each command would take from the folder "
                         "it is started in (/ under systemd) — give the whole path, "
                         f"starting with /{tilde}")
    if b"\0" in raw:
        raise ValueError("holds a NUL character (\\0), which no path may hold — fix the path")
    if b".." in raw.split(b"/"):
        # outboxd derives folders from the path as written (sent/ beside the outbox is
        # its parent's): "/srv/invoices/outbox/.." put the default sent/ inside the
        # folder it names, and through a link ".." leads elsewhere than it reads.
        raise ValueError("holds a .. — write out the folder it leads to, e.g. /srv/invoices "
                         "for /srv/invoices/outbox/..")
    if len(raw) > MAX_PATH_BYTES:
        raise ValueError(f"is {len(raw):,} bytes long; a path on Linux has at most "
                         f"{MAX_PATH_BYTES:,} — fix the path")
    if any(len(name) > MAX_NAME_BYTES for name in raw.split(b"/")):
        raise ValueError(f"holds a folder or file name longer than {MAX_NAME_BYTES} bytes, "
                         "which Linux does not allow — fix the path")
    return value


def suffix_fits(suffix: str, example: str) -> str:
    """A suffix put after an invoice file's NAME (sidecar, marker, release file) that leaves
    a name room beside it: one of 255 bytes or more never makes a file name, so no clerk
    could ever make that sidecar, marker or release file."""
    size = len(os.fsencode(suffix))
    if size >= MAX_NAME_BYTES:
        raise ValueError(f"is {size:,} bytes long; a file name has at most {MAX_NAME_BYTES} "
                         "on Linux, so NAME and this suffix would never fit in one — give "
                         f'a short suffix, e.g. "{example}"')
    return suffix


def has_userinfo(url: str | None) -> bool:
    """The url carries a user name or password: httpx's Client turns either into a Basic
    Authorization header. False for a url httpx cannot parse (reported elsewhere)."""
    try:
        return bool(url) and bool(httpx.URL(url or "").userinfo)
    except httpx.InvalidURL:
        return False
