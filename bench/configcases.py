"""The cases of bench/configfuzz.py: configurations, environments and command lines made
from the settings model itself (each key of each section of `Settings`) — values of the
wrong type, out of range, empty, long, Unicode, odd paths and urls; the file as a whole;
folders that collide; each command's argv — in a workspace of odd files (a FIFO, a link,
a folder where a file is wanted). Seeded: one seed, one list."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

# Secrets planted in the cases: none may ever be printed.
TOKEN = "TOKENs3cr3tXq7"
PASSWORD = "PASSs3cr3tZk9"
SECRETS = (TOKEN, PASSWORD)
URL = "http://127.0.0.1:9/in"  # nothing listens on port 9: no case reaches a receiver
COMMANDS = ("config", "config --check", "check", "status", "send INV-1", "retry 0123456789ab",
            "attach INV-1 {file}")


@dataclass
class Case:
    """One try: what it is, the file's bytes (None: no file at -c), the environment's
    overrides and the command's argv (without `-c FILE`, added when it is run)."""
    name: str
    data: bytes | None
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    # What the error line must name when the case is refused (a key, an argument), or "".
    names: tuple[str, ...] = ()
    path: str = ""  # -c of its own (a FIFO, a folder …); "" is the workspace's file
    refused: bool = False  # known bad as it loads: every command must exit 2


class Workspace:
    """A temporary root with an outbox, state dir and the odd files the path values point
    at: a file, a FIFO, a folder, a symbolic link."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("outbox", "state", "dir"):
            (root / name).mkdir(exist_ok=True)
        (root / "file").write_bytes(b"x")
        (root / "attachment.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
        if not (root / "fifo").exists():
            os.mkfifo(root / "fifo")
        if not (root / "link").is_symlink():
            (root / "link").symlink_to(root / "dir")
        self.config = root / "config.toml"

    def base(self) -> dict[str, dict[str, Any]]:
        return {"outbox": {"path": str(self.root / "outbox"), "settle_seconds": 0.3},
                "paths": {"state_dir": str(self.root / "state")},
                "delivery": {"url": URL, "token": TOKEN},
                "einvoice": {"preflight": "off"},
                "service": {"reader_processes": 0}}


def toml_value(value: Any) -> str:
    """A Python value written as TOML (json.dumps is TOML for strings, numbers, bools and
    lists of them, except for the escapes TOML lacks)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) \
            + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return json.dumps(value, ensure_ascii=False)


def toml_text(tables: dict[str, dict[str, Any]], raw: dict[tuple[str, str], str] | None = None
              ) -> str:
    """The tables as a TOML file; `raw` values written as they are (TOML of the case's own:
    a date, 1e309, an inline table)."""
    raw = raw or {}
    lines: list[str] = []
    keys = {s: dict(v) for s, v in tables.items()}
    for (section, key) in raw:
        keys.setdefault(section, {}).setdefault(key, None)
    for section, values in keys.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            text = raw.get((section, key))
            lines.append(f"{key} = {text if text is not None else toml_value(value)}")
    return "\n".join(lines) + "\n"


def model_keys() -> list[tuple[str, str, Any]]:
    """(section, key, annotation) of every key of the settings model."""
    from daemon.configuration.config import Settings
    out = []
    for section, sfield in Settings.model_fields.items():
        model = sfield.annotation
        for key, kfield in getattr(model, "model_fields", {}).items():
            out.append((section, key, kfield.annotation))
    return out


def kinds(annotation: Any) -> set[str]:
    """The kinds of value a key takes, from its annotation: path, number, int, bool, word,
    list, text."""
    text = str(annotation)
    found = set()
    for word, kind in (("Path", "path"), ("float", "number"), ("int", "int"),
                       ("bool", "bool"), ("Literal", "word"), ("list", "list"),
                       ("str", "text"), ("Secret", "text")):
        if word in text:
            found.add(kind)
    for arg in get_args(annotation):
        found |= kinds(arg)
    return found


# TOML texts of values of every kind; each key gets them all (a wrong type is the point).
ANY_RAW = ["true", "0", "-1", "1", "1.5", "1e309", "-1e309", "inf", "-inf", "nan",
           "99999999999999999999999999", "0x7fffffff", "1979-05-27T07:32:00Z", "07:32:00",
           "1979-05-27", "[]", "[1, 2]", '["a", 1]', "{}", "{a = 1}", '""', '"   "',
           '"\\u200b"', '"\\u202eabc"', '"\\u0000"', '"a\\nb"', '"\\ufeff"', '"\u00e9\u00e8"',
           '"\U0001f4a9"', '"' + "a" * 5000 + '"', "[[1], [2]]", '["' + "x" * 300 + '"]']
PATH_VALUES = ["relative/x", "./x", "~/x", "/tmp/../{root}/outbox", "/x\u0000y", "{root}/file",
               "{root}/fifo", "{root}/link", "/nonexistent/mount/x", "/dev/null", "/proc/1",
               "/" + "a" * 300, "/" + "/b" * 2100, "{root}/dir/\u200b", "{root}/dir/a\nb",
               "{root}/outbox/x", "{root}", "/"]
URL_VALUES = ["ftp://h/x", "http://", "https://user:" + PASSWORD + "@h/x",
              "http://u:" + PASSWORD + "/x@h/", "http://[::1", "http://h:99999/",
              "javascript:alert(1)", "file:///etc/passwd", "http://h/\u0000",
              "https://h/x?token=" + TOKEN, "http://%zz/", "http://xn--/", "http://例え.jp/",
              " http://h/", "http://h/ x", "http://" + "a" * 300 + "/", "HTTP://H/",
              "http://u:" + PASSWORD + "#@h/", "https://h:0/", "http://h:-1/",
              "https://h/?access_token=" + TOKEN + "&a=b", "mailto:" + PASSWORD + "@h"]
TEXT_VALUES = ["", " ", "/", "a/b", "\\", ".", "..", "*", "[", "(", "(?P<x>", "(a)(b)",
               "\u0000", "\u200b", "\u202e", "a\nb", "\ud800", "x" * 100_000, ".xml", ".pdf",
               ".ready", ".send-anyway", ".embedded", ".converted", ".errors.txt",
               "outboxd-status.html", "auto", "AUTO", "Json", "e-invoice"]
NUMBER_VALUES = [0, -1, 0.01, 1e-300, 31536000, 31536001, 10**30, 2**63, -(2**63), 65, 64,
                 36500, 36501]


def key_cases(ws: Workspace, rng: random.Random) -> Iterator[Case]:
    """Every key, one bad (or odd) value at a time, in the file and from the environment."""
    base = ws.base()
    for section, key, annotation in model_keys():
        kind = kinds(annotation)
        values: list[tuple[str, str]] = [(raw, "raw") for raw in ANY_RAW]
        if "path" in kind or key == "verify":
            values += [(toml_value(p.format(root=ws.root)), p.format(root=ws.root))
                       for p in PATH_VALUES]
        if key == "url":
            values += [(toml_value(u), u) for u in URL_VALUES]
        if kind & {"text", "word", "list"}:
            values += [(toml_value(t), t) for t in TEXT_VALUES if "\ud800" not in t]
            values += [(toml_value([t]), json.dumps([t])) for t in TEXT_VALUES
                       if "\ud800" not in t]
        if kind & {"number", "int"}:
            values += [(toml_value(n), str(n)) for n in NUMBER_VALUES]
        for raw, env_text in values:
            # pydantic-settings reads `None` as no key: a raw value is the file's own.
            tables = {s: dict(v) for s, v in base.items()}
            tables.get(section, {}).pop(key, None)
            text = toml_text(tables, {(section, key): raw})
            yield Case(f"file [{section}] {key} = {raw[:60]!r}", text.encode("utf-8"),
                       names=(f"[{section}] {key}", key))
            if env_text != "raw" and "\0" not in env_text and "\ud800" not in env_text:
                variable = f"OUTBOXD_{section.upper()}__{key.upper()}"
                yield Case(f"env {variable}={env_text[:60]!r}",
                           toml_text(base).encode(), env={variable: env_text},
                           names=(variable, f"[{section}] {key}", key))
        # From the environment every value is a string: the file's raw texts as they are.
        variable = f"OUTBOXD_{section.upper()}__{key.upper()}"
        for raw in rng.sample(ANY_RAW, 8):
            yield Case(f"env {variable}={raw[:60]!r}", toml_text(base).encode(),
                       env={variable: raw}, names=(variable, f"[{section}] {key}", key))


def structure_cases(ws: Workspace) -> Iterator[Case]:
    """The file as a whole: unknown keys and sections, wrong nesting, duplicates, what is
    not TOML or not UTF-8, a huge file, a file that is no file."""
    base = ws.base()
    good = toml_text(base)
    yield Case("good", good.encode())
    yield Case("unknown key", (good + "\n[outbox]\n").encode(), names=("outbox",))
    yield Case("unknown key in outbox", good.replace("[outbox]\n", "[outbox]\nfrob = 1\n")
               .encode(), names=("frob",))
    yield Case("unknown section", (good + "[frob]\na = 1\n").encode(), names=("frob",))
    yield Case("key above sections", ("frob = 1\n" + good).encode(), names=("frob",))
    yield Case("path above sections", ('path = "/x"\n' + good).encode(), names=("path",))
    yield Case("section as value", ("outbox = 1\n" + good.replace("[outbox]", "[x]"))
               .encode(), names=("outbox",))
    yield Case("section as array of tables", good.replace("[outbox]", "[[outbox]]").encode(),
               names=("outbox",))
    yield Case("section as list of tables 2", good.replace("[delivery]", "[[delivery]]")
               .encode(), names=("delivery",))
    yield Case("dotted table in key", good.replace("[outbox]", "[outbox.path]").encode(),
               names=("outbox",))
    yield Case("sub-table", (good + "[outbox.sub]\na = 1\n").encode(), names=("sub",))
    yield Case("deep table", (good + "[log.a.b.c.d]\nx = 1\n").encode(), names=("a",))
    yield Case("dotted key", good.replace("[outbox]\n", "[outbox]\na.b.c = 1\n").encode(),
               names=("a",))
    yield Case("duplicate key", good.replace("[outbox]\n", "[outbox]\nsettle_seconds = 1\n")
               .encode(), names=("line",))
    yield Case("duplicate section", (good + "[outbox]\nsettle_seconds = 1\n").encode(),
               names=("line",))
    yield Case("unterminated string", (good + '[log]\nlevel = "info\n').encode())
    yield Case("bad escape", (good + '[log]\nlevel = "\\q"\n').encode())
    yield Case("windows path", (good.replace('"/', '"C:\\', 1)).encode())
    yield Case("unquoted", (good + "[log]\nlevel = info\n").encode(), names=("level",))
    yield Case("invalid utf-8", good.encode() + b"[log]\nlevel = \"\xff\xfe\"\n")
    yield Case("latin-1", good.encode() + "[log]\n# caf\u00e9\n".encode("latin-1"))
    yield Case("bom", b"\xef\xbb\xbf" + good.encode())
    yield Case("utf-16", good.encode("utf-16"))
    yield Case("nul byte", good.encode() + b"\0")
    yield Case("cr only", good.replace("\n", "\r").encode())
    yield Case("crlf", good.replace("\n", "\r\n").encode())
    yield Case("empty file", b"", names=("outbox",))
    yield Case("only comments", b"# nothing\n", names=("outbox",))
    yield Case("huge file", good.encode() + b"# " + b"x" * (2 << 20) + b"\n")
    yield Case("huge comment under limit", good.encode() + b"#" + b"x" * 900_000 + b"\n")
    yield Case("deep nesting", good.encode() + b"[log]\nlevel = " + b"[" * 5000
               + b"]" * 5000 + b"\n")
    yield Case("deep inline tables", good.encode() + b"[log]\nlevel = " + b"{a=" * 3000
               + b"1" + b"}" * 3000 + b"\n")
    yield Case("long number", good.encode() + b"[log]\nlevel = " + b"9" * 5000 + b"\n")
    yield Case("many keys", (good + "[frob]\n" + "".join(f"k{i} = {i}\n" for i in
                                                      range(20000))).encode())
    yield Case("many unknown keys", good.replace("[outbox]\n", "[outbox]\n" + "".join(
        f"k{i} = {i}\n" for i in range(2000))).encode())
    yield Case("long key", good.replace("[outbox]\n", "[outbox]\n" + "k" * 100_000 + " = 1\n")
               .encode())
    yield Case("long section", (good + "[" + "s" * 100_000 + "]\n").encode())
    yield Case("unicode key", good.replace("[outbox]\n", "[outbox]\n\"\\u202ep\\u0000\" = 1\n")
               .encode())
    yield Case("unicode section", (good + "[\"\\u200b\\u0000\"]\n").encode())
    yield Case("token key typo", good.replace("[delivery]\n", f'[delivery]\ntoekn = "{TOKEN}"\n')
               .encode(), names=("toekn",))
    yield Case("token in unknown section", (good + f'[secrets]\nmy_token = "{TOKEN}"\n')
               .encode(), names=("secrets",))
    yield Case("no file", None, names=("config",))
    for name in ("fifo", "dir", "link", "file"):
        yield Case(f"-c names a {name}", None, path=str(ws.root / name))
    yield Case("-c /dev/zero", None, path="/dev/zero")
    yield Case("-c /dev/null", None, path="/dev/null")
    yield Case("-c /proc/self/mem", None, path="/proc/self/mem")
    yield Case("-c relative", None, path="config.toml")
    yield Case("-c nonexistent dir", None, path="/nonexistent/x/config.toml")
    yield Case("-c long", None, path="/" + "a" * 5000)
    yield Case("-c name too long", None, path="/" + "a" * 300)
    for variable, value in [("OUTBOXD_CONFIG", ""), ("OUTBOXD_CONFIG", "relative.toml"),
                            ("OUTBOXD_OUTBOX__", "x"), ("OUTBOXD___PATH", "x"),
                            ("OUTBOXD_OUTBOX__PATH__SUB", "x"), ("OUTBOXD_FROB__X", "1"),
                            ("OUTBOXD_OUTBOX__FROB", "1"), ("outboxd_log__level", "debug"),
                            ("OUTBOXD_LOG__LEVEL", "DEBUG "), ("OUTBOXD_LOG", "x"),
                            ("OUTBOXD_LOG__FORMAT", "json"), ("OUTBOXD_DELIVERY__TOKEN", ""),
                            ("OUTBOXD_DELIVERY__TOKEN", "a b"),
                            ("OUTBOXD_DELIVERY__TOKEN", TOKEN + "\n"),
                            ("OUTBOXD_DELIVERY__TOKN", TOKEN),
                            ("OUTBOXD_OUTBOX__INVOICE_PATTERNS", "[" * 2000),
                            ("OUTBOXD_OUTBOX__INVOICE_PATTERNS", "[" * 2000 + "]" * 2000),
                            ("OUTBOXD_OUTBOX__INVOICE_PATTERNS", '["*.xml", {"a": 1}]'),
                            ("OUTBOXD_OUTBOX__INVOICE_PATTERNS", "*.xml"),
                            ("OUTBOXD_OUTBOX__INVOICE_PATTERNS", "[1e999]"),
                            ("OUTBOXD_VALIDATION__ALLOWED_TYPES", '["PDF", null]'),
                            ("OUTBOXD_DELIVERY__VERIFY", "maybe"),
                            ("OUTBOXD_DELIVERY__VERIFY", str(ws.root / "dir")),
                            ("OUTBOXD_SERVICE__READER_PROCESSES", "٣"),
                            ("OUTBOXD_SERVICE__READER_PROCESSES", "²"),
                            ("OUTBOXD_OUTBOX__SETTLE_SECONDS", "١٢"),
                            ("OUTBOXD_OUTBOX__SETTLE_SECONDS", "1_0"),
                            ("OUTBOXD_OUTBOX__SETTLE_SECONDS", " 5 "),
                            ("OUTBOXD_OUTBOX__SETTLE_SECONDS", "0x10"),
                            ("OUTBOXD_POLICY__DUPLICATE_WINDOW_DAYS", "1e3"),
                            ("OUTBOXD_POLICY__DUPLICATE_WINDOW_DAYS", "9" * 5000),
                            ("OUTBOXD_VALIDATION__CONVERT_IMAGES", "yes please"),
                            ("OUTBOXD_VALIDATION__CONVERT_IMAGES", "on")]:
        yield Case(f"env {variable}={value[:40]!r}", good.encode(), env={variable: value},
                   names=(variable,) if variable.count("__") == 1 and "FROB" not in variable
                   and variable.isupper() else ())


def R(extra: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - a marker in a table
    """A conflict every command refuses as it loads the configuration (exit 2)."""
    return {**extra, "refused": True}


def conflict_cases(ws: Workspace) -> Iterator[Case]:
    """Folders that collide: the outbox inside sent/, sent and quarantine one folder, the
    state dir inside the outbox, …"""
    r, out = ws.root, str(ws.root / "outbox")
    pairs: list[dict[str, Any]] = [  # R(): refused by every command, as it loads
        R({"paths": {"sent": out}}), R({"paths": {"quarantine": out}}),
        R({"paths": {"sent": str(r / "a"), "quarantine": str(r / "a")}}),
        R({"paths": {"sent": str(r)}}), R({"paths": {"quarantine": str(r)}}),
        R({"paths": {"state_dir": out}}), R({"paths": {"state_dir": out + "/state"}}),
        R({"paths": {"processing": out}}), R({"paths": {"processing": str(r / "sent")}}),
        R({"paths": {"processing": str(r / "quarantine")}}),
        {"paths": {"sent": out + "/sent"}}, R({"paths": {"state_dir": str(r / "sent")}}),
        {"paths": {"sent": str(r / "file")}}, {"paths": {"state_dir": str(r / "fifo")}},
        {"paths": {"state_dir": str(r / "link")}}, {"paths": {"sent": str(r / "link")}},
        {"outbox": {"path": str(r / "link")}}, {"outbox": {"path": str(r / "file")}},
        {"outbox": {"path": str(r / "fifo")}}, R({"outbox": {"path": "/"}}),
        {"outbox": {"path": "/nonexistent/mount/outbox"}},
        {"outbox": {"path": str(r / "outbox" / "sub")}},
        R({"delivery": {"transport": "directory", "target": out, "url": None}}),
        R({"delivery": {"transport": "directory", "target": str(r / "sent")}}),
        {"delivery": {"transport": "directory", "target": str(r / "file")}},
        R({"delivery": {"transport": "directory", "target": str(r / "state")}}),
        R({"delivery": {"transport": "directory", "target": None}}),
        {"delivery": {"token_file": str(r / "fifo")}},
        {"delivery": {"token_file": str(r / "dir")}},
        {"delivery": {"token_file": "/dev/zero"}},
        {"delivery": {"client_cert": str(r / "file")}},
        {"delivery": {"client_key": str(r / "file"), "client_cert": str(r / "file")}},
        {"delivery": {"verify": str(r / "file")}},
        {"delivery": {"verify": str(r / "fifo")}},
        R({"delivery": {"url": "http://example.com/in", "token": TOKEN}}),
        R({"outbox": {"completion": "marker", "marker_suffix": ".send-anyway"}}),
        R({"outbox": {"sidecar_suffix": ".ready", "completion": "marker"}}),
        R({"share": {"status_page": "x.xml"}}), R({"share": {"release_suffix": ".xml"}}),
        {"outbox": {"invoice_patterns": ["*"]}},
        {"outbox": {"invoice_patterns": []}},
        {"attachments": {"document_types": []}},
        {"log": {"format": "json"}},
    ]
    for extra in pairs:
        refused = bool(extra.pop("refused", False))
        tables = {s: dict(v) for s, v in ws.base().items()}
        for section, values in extra.items():
            for key, value in values.items():
                if value is None:
                    tables.setdefault(section, {}).pop(key, None)
                else:
                    tables.setdefault(section, {})[key] = value
        if "token_file" in extra.get("delivery", {}):
            tables["delivery"].pop("token", None)
        # A rule of the section as a whole (plain http with a token) is said "[delivery]:
        # url is plain http:// …", naming the keys after the section.
        names = tuple(f"[{s}] {k}" for s, v in extra.items() for k in v) + tuple(
            f"[{s}]: {k}" for s, v in extra.items() for k in v)
        yield Case(f"conflict {extra}", toml_text(tables).encode(), names=names,
                   refused=refused)


ARGV_VALUES = ["", " ", "-", "--", "-x", "--bogus", "--json", "--limit", "--limit=-1",
               "--limit=nan", "--limit=99999999999999999999", "--type", "--note", "-c",
               "--config=", "\u202eabc", "\u200b", "a\nb", "\x1b[31m", "x" * 100_000,
               "{root}/fifo", "{root}/link", "{root}/dir", "{root}/file", "{root}/nonexistent",
               "/dev/null", "/dev/zero", "{root}/outbox", "{root}/outbox/.outboxd",
               "../../../etc/passwd", "0123456789ab", "INV-1", "-5001", "*", "\udcff",
               "--without-attachments", "--rules", "--check", "--help=1", "--version=1"]


def argv_cases(ws: Workspace, rng: random.Random, n: int) -> Iterator[Case]:
    """Each command's argv: unknown options, missing values, repeated ones, paths that
    are FIFOs, links, folders, missing; Unicode and very long arguments."""
    good = toml_text(ws.base()).encode()
    commands = ["run", "status", "check", "send", "attach", "retry", "config", "help",
                "receiver", "demo"]
    for i in range(n):
        command = commands[i % len(commands)]
        words = [rng.choice(ARGV_VALUES).format(root=ws.root)
                 for _ in range(rng.randrange(0, 4))]
        if rng.random() < 0.3 and words:
            words.append(words[0])  # repeated
        if command in ("run", "receiver", "demo") and not any(w.startswith("-") for w in words):
            continue  # would start a daemon, a receiver, a demo: --run's part, not this one
        if command in ("receiver", "demo") and "--help" not in words:
            # A parse error only, never a start: a bad option keeps them from starting.
            words.append("--bogus-never-an-option")
        yield Case(f"argv {command} {words!r}"[:200], good, argv=[command, *words])


def cases(ws: Workspace, seed: int, n_argv: int) -> list[Case]:
    rng = random.Random(seed)
    out = list(structure_cases(ws)) + list(conflict_cases(ws)) + list(key_cases(ws, rng))
    for case in out:
        case.argv = case.argv or rng.choice(COMMANDS).format(file=ws.root / "attachment.pdf"
                                                             ).split()
    return out + list(argv_cases(ws, rng, n_argv))
