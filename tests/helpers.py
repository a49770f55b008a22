"""Builders for real input files and a polling helper (no sleeps as synchronisation)."""

from __future__ import annotations

import errno
import io
import os
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel
from pypdf import PdfWriter

# Also what `outboxd demo` builds its samples with.
from daemon.actions.samples import text_pdf  # noqa: F401
from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.errors import ConfigError

# Unchanged copies of the official Peppol BIS 3 example documents (see fixtures/peppol/README.md),
# kept in the repository so a clean clone tests with nothing beside it.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "peppol"
UBL_NS = ('xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
          'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2" '
          'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"')

PEPPOL_BIS3 = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
_VAT_S = ("<cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent>"
          "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>")

T = TypeVar("T")


def ubl_invoice(invoice_id: str) -> bytes:
    """A small, valid Peppol BIS 3 invoice whose number is invoice_id.

    It passes the official rules (XSD, EN 16931, Peppol BIS 3) that pre-flight
    runs, so a test that drops it sees it delivered; like real invoices it has
    other cbc:IDs inside (a party's SUPPLIER-7, a line's 1, VAT, S).
    """
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice {UBL_NS}>\n'
            f"  <cbc:CustomizationID>{PEPPOL_BIS3}</cbc:CustomizationID>\n"
            f"  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>\n"
            f"  <cbc:ID>{invoice_id}</cbc:ID>\n"
            f"  <cbc:IssueDate>2026-11-02</cbc:IssueDate>\n"
            f"  <cbc:DueDate>2026-12-02</cbc:DueDate>\n"
            f"  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>\n"
            f"  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>\n"
            f"  <cbc:BuyerReference>REF-42</cbc:BuyerReference>\n"
            f"  <cac:AccountingSupplierParty><cac:Party>"
            f'<cbc:EndpointID schemeID="0088">9482348239847239874</cbc:EndpointID>'
            f"<cac:PartyIdentification><cbc:ID>SUPPLIER-7</cbc:ID></cac:PartyIdentification>"
            f"<cac:PostalAddress><cbc:CityName>London</cbc:CityName><cac:Country>"
            f"<cbc:IdentificationCode>GB</cbc:IdentificationCode></cac:Country>"
            f"</cac:PostalAddress><cac:PartyTaxScheme><cbc:CompanyID>GB1232434</cbc:CompanyID>"
            f"<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
            f"<cac:PartyLegalEntity><cbc:RegistrationName>Supplier Ltd</cbc:RegistrationName>"
            f"</cac:PartyLegalEntity></cac:Party></cac:AccountingSupplierParty>\n"
            f"  <cac:AccountingCustomerParty><cac:Party>"
            f'<cbc:EndpointID schemeID="0002">FR23342</cbc:EndpointID>'
            f"<cac:PostalAddress><cbc:CityName>Stockholm</cbc:CityName><cac:Country>"
            f"<cbc:IdentificationCode>SE</cbc:IdentificationCode></cac:Country>"
            f"</cac:PostalAddress><cac:PartyLegalEntity>"
            f"<cbc:RegistrationName>Buyer AB</cbc:RegistrationName></cac:PartyLegalEntity>"
            f"</cac:Party></cac:AccountingCustomerParty>\n"
            f'  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">25.00</cbc:TaxAmount>'
            f'<cac:TaxSubtotal><cbc:TaxableAmount currencyID="EUR">100.00</cbc:TaxableAmount>'
            f'<cbc:TaxAmount currencyID="EUR">25.00</cbc:TaxAmount>{_VAT_S}</cac:TaxSubtotal>'
            f"</cac:TaxTotal>\n"
            f"  <cac:LegalMonetaryTotal>"
            f'<cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount>'
            f'<cbc:TaxExclusiveAmount currencyID="EUR">100.00</cbc:TaxExclusiveAmount>'
            f'<cbc:TaxInclusiveAmount currencyID="EUR">125.00</cbc:TaxInclusiveAmount>'
            f'<cbc:PayableAmount currencyID="EUR">125.00</cbc:PayableAmount>'
            f"</cac:LegalMonetaryTotal>\n"
            f'  <cac:InvoiceLine><cbc:ID>1</cbc:ID><cbc:InvoicedQuantity unitCode="HUR">'
            f'4</cbc:InvoicedQuantity><cbc:LineExtensionAmount currencyID="EUR">100.00'
            f"</cbc:LineExtensionAmount><cac:Item><cbc:Name>Consulting</cbc:Name>"
            f"{_VAT_S.replace('TaxCategory', 'ClassifiedTaxCategory')}</cac:Item>"
            f'<cac:Price><cbc:PriceAmount currencyID="EUR">25.00</cbc:PriceAmount></cac:Price>'
            f"</cac:InvoiceLine>\n</Invoice>\n").encode()


# The entries an office program writes first, per type, then the sheet or text itself.
_OFFICE_ENTRIES = {
    "xlsx": ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
             "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml"),
    "docx": ("[Content_Types].xml", "_rels/.rels", "word/_rels/document.xml.rels",
             "word/document.xml"),
    "ods": ("META-INF/manifest.xml", "styles.xml", "content.xml"),
}
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


def office_file(kind: str, rows: int = 300, comment: bytes = b"") -> bytes:
    """A whole XLSX, DOCX or ODS (`kind`) as its program lays it out — ODS's stored
    mimetype first, deflated XML parts, the central directory and end record last —
    with `rows` rows of varied data, so that a cut falls inside compressed data."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if kind == "ods":
            zf.writestr(zipfile.ZipInfo("mimetype"), ODS_MIMETYPE,
                        compress_type=zipfile.ZIP_STORED)
        *parts, body = _OFFICE_ENTRIES[kind]
        for part in parts:
            zf.writestr(part, f"<{part.rsplit('/', 1)[-1]}/>")
        zf.writestr(body, "<data>" + "".join(
            f"<row n='{n}'><c>{n * 7919 % 10007}</c><c>Posten {n ** 3 % 999983}</c></row>"
            for n in range(rows)) + "</data>")
        zf.comment = comment
    return buf.getvalue()


def pdf_bytes(pages: int = 1, text_marker: str = "", encrypt: bool = False) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if text_marker:
        writer.add_metadata({"/Title": text_marker})
    if encrypt:  # owner password only: opens without asking, still encrypted
        writer.encrypt(user_password="", owner_password="x")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def pdf_of_objects(objects: list[bytes]) -> bytes:
    """A PDF written by hand: `objects` numbered from 1 (the first the catalog), then the
    xref table and trailer that point at them."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def drop_bundle(outbox: Path, name: str, attachments: dict[str, bytes],
                invoice: bytes | None = None) -> Path:
    """Sidecar first, invoice last, written under a temporary name and renamed — as an ERP does."""
    for fname, data in attachments.items():
        write(outbox / name / fname, data)
    tmp = write(outbox / f".{name}.xml.tmp", invoice if invoice is not None else ubl_invoice(name))
    final = outbox / f"{name}.xml"
    tmp.rename(final)
    return final


class Wall(datetime):
    """The wall clock a test sets (`Wall.at`, aware, UTC), in place of `datetime` in the
    modules that read it (pin_wall): what a test asserts never hangs on the host's date."""

    at = datetime(2031, 5, 6, 12, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.at.astimezone(tz) if tz is not None else cls.at.replace(tzinfo=None)


def pin_wall(monkeypatch: pytest.MonkeyPatch, at: datetime,
             modules: Iterable[str] = ("daemon.journal.records",)) -> type[Wall]:
    """Pin the wall clock of `modules` (by default the journal's times) at `at`; the test
    moves it on by setting `at` of what this returns."""
    for module in modules:
        monkeypatch.setattr(f"{module}.datetime", Wall)
    monkeypatch.setattr(Wall, "at", at)
    return Wall


def not_json_lines(text: str) -> list[str]:
    """The lines of a stream that are not one JSON object each, the first one first (what
    a log shipper reading JSON lines would drop); blank lines aside."""
    import json
    bad = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        bad.append(line)
    return bad


# Run by `outboxd_with`'s command line: each constant is set as its module is first
# imported, in the daemon's own order of imports (importing one early would import what
# it imports early too: structlog before `run` keeps rich out, see daemon.keep_rich_out).
_SET_ON_IMPORT = """
import importlib.util, runpy, sys
SET = %r
class SetOnImport:
    def find_spec(self, name, path, target=None):
        if name not in SET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        execute = spec.loader.exec_module
        def exec_module(module):
            execute(module)
            vars(module).update(SET[name])
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, SetOnImport())
runpy.run_module("daemon", run_name="__main__", alter_sys=True)
"""


def outboxd_with(constants: dict[str, object]) -> list[str]:
    """The command line of `python -m daemon` with some of the daemon's constants set,
    e.g. {"daemon.journal.BUSY_SECONDS": 1.0}: for a test of a command or the daemon as
    a process that would otherwise wait out the daemon's seconds for nothing it shows
    (each constant must be read where it is used, not copied at import). The rest is
    `-m daemon`'s own: daemon/__main__.py runs as __main__ (a spawned reader imports it
    again, as __mp_main__, as under `python -m daemon`); the spawned readers get the
    shipped values."""
    by_module: dict[str, dict[str, object]] = {}
    for dotted, value in constants.items():
        module, _, name = dotted.rpartition(".")
        by_module.setdefault(module, {})[name] = value
    return [sys.executable, "-c", _SET_ON_IMPORT % (by_module,)]


def outbox_names(outbox: Path) -> list[str]:
    """The names in `outbox`, sorted, but for the status page's temporary file a rewrite
    in progress holds for an instant (`.outboxd-status.html.tmp-…`): a test asserting what
    a command left there raced the running daemon's page (a fresh clone's CI lost it)."""
    return sorted(n for n in os.listdir(outbox) if not n.startswith(".outboxd-status.html.tmp-"))


def wait_for(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Poll until condition() is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def published(target: Path) -> list[Path]:
    """The bundles a directory target has published (TARGET/BUNDLEID/), not the
    `.tmp-BUNDLEID/` a delivery worker is still filling: pathlib's "*" matches dot-names
    too, and a wait on "*/manifest.json" returned the temporary, renamed away a moment
    later."""
    return sorted(p for p in target.glob("[!.]*") if p.is_dir())


MANIFEST_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "manifest.schema.json"


def manifest_schema_problems(manifest: dict) -> list[str]:
    """Where a manifest breaks docs/manifest.schema.json, read strictly: a property the
    schema does not declare is a problem too (the schema must document every field)."""
    import json

    import jsonschema

    def strict(node: object) -> object:
        if isinstance(node, dict):
            out = {k: strict(v) for k, v in node.items()}
            if out.get("type") == "object" and "properties" in out:
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [strict(v) for v in node]
        return node

    schema = strict(json.loads(MANIFEST_SCHEMA.read_text(encoding="utf-8")))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(manifest)]


# Thread names as the OS shows them (daemon/osthreads.py) are read through Linux's /proc.
needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc")


def os_thread_name(thread: threading.Thread) -> str:
    """The name `top -H` shows for a thread of this process."""
    return Path(f"/proc/self/task/{thread.native_id}/comm").read_text().rstrip("\n")


def process_thread_names(pid: int) -> set[str]:
    """The names the OS shows for the threads of process pid (a thread gone meanwhile is
    skipped)."""
    names = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.add((task / "comm").read_text().rstrip("\n"))
        except FileNotFoundError:
            pass
    return names


def inotify_fds(pid: int) -> list[str]:
    """The file descriptors of process pid that are inotify instances."""
    import os
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                found.append(fd.name)
        except FileNotFoundError:
            pass
    return found


def without_blocking(call: Callable[[], T], fifo: Path, what: str) -> T:
    """call() in a thread: if it opened the FIFO `fifo` and blocks, the FIFO is released
    (a writer that comes and goes) and the test fails instead of hanging the run."""
    result: list[T] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        import os
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail(f"{what} opened the FIFO {fifo.name} and blocked")
    return result[0]


def run_receiver(*args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """`outboxd receiver ARGS` as a process (`env`: added to the environment), bounded: a
    receiver that starts after all would serve forever, and the timeout fails the test
    instead of hanging the run."""
    return subprocess.run([sys.executable, "-m", "daemon", "receiver", *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=None if env is None else {**os.environ, **env})


def raised(call: Callable[[], object]) -> Exception | None:
    """The exception call() raised, or None: for without_blocking, whose thread would
    otherwise lose it."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 — handed to the test to judge
        return exc
    return None


# A configuration file, as the tests of config.py, config_load.py, config_sections.py
# and config_values.py write it, and the problem lines loading it gives.
URL = "http://127.0.0.1:9/bundles"


class _StatRefused:
    """A directory entry whose lstat fails as in a folder that may be listed but not
    searched (mode r--, or a share's ACL), whatever the user running the tests; or with
    `error`, as a share's trouble (ESTALE, EIO) makes it fail."""

    def __init__(self, entry: os.DirEntry[str], error: int = errno.EACCES) -> None:
        self._entry, self.name, self.path = entry, entry.name, entry.path
        self._error = error

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        raise OSError(self._error, os.strerror(self._error), self.path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)


def refuse_stat(monkeypatch: pytest.MonkeyPatch, names: set[str],
                error: int = errno.EACCES) -> None:
    """os.scandir everywhere, with the entries called `names` refusing their lstat (root
    runs the tests: chmod would not refuse it) with `error`."""
    real = os.scandir

    class Listing:
        def __init__(self, path: Any = ".") -> None:
            self._it = real(path)

        def __enter__(self) -> Iterator[Any]:
            return self

        def __iter__(self) -> Iterator[Any]:
            return self

        def __next__(self) -> Any:  # os.walk takes entries one by one
            e = next(self._it)
            return _StatRefused(e, error) if e.name in names else e

        def __exit__(self, *exc: object) -> None:
            self._it.close()

        def close(self) -> None:
            self._it.close()

    monkeypatch.setattr(os, "scandir", Listing)


def looks_fail(monkeypatch: Any, target: str | Path, code: int = errno.EIO,
               calls: tuple[str, ...] = ("lstat",)) -> None:
    """os.<each of `calls`> of `target` fails with `code`, as a share half away answers
    (EIO, ESTALE): `target` a path, or a bare name, which matches a path ending in it and
    the bare name a look by a folder's descriptor passes. Every other call as it was."""
    wanted = str(target)
    for fn in calls:
        real = getattr(os, fn)

        def failing(path: Any, *args: Any, _real: Any = real, **kw: Any) -> Any:
            if not isinstance(path, int):
                said = os.fsdecode(path)
                if said == wanted or said.endswith("/" + wanted):
                    raise OSError(code, os.strerror(code), said)
            return _real(path, *args, **kw)
        monkeypatch.setattr(os, fn, failing)


class _OsWith:
    """The os module, but for the attributes given (what one module of the daemon sees)."""

    def __init__(self, **replaced: Any) -> None:
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def refuse_listing(monkeypatch: pytest.MonkeyPatch, names: set[str], error: int = errno.EIO,
                   module: Any = None) -> None:
    """os.scandir failing with `error` (a share's EIO or ESTALE, EACCES where root runs
    the tests) for the folders called `names`, given by path or held open (by their
    descriptor): everywhere, or only where `module` calls it (daemon.watching.snapshot: the
    snapshot's look fails while a read's own listing works)."""
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        where = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) \
            else os.fsdecode(path)
        if os.path.basename(where) in names:
            raise OSError(error, os.strerror(error), where)
        return real(path)
    if module is None:
        monkeypatch.setattr(os, "scandir", scandir)
    else:
        monkeypatch.setattr(module, "os", _OsWith(scandir=scandir))


def count_listings(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[str]:
    """The folders `module` lists with os.scandir from now on, one entry each time."""
    real = os.scandir
    listed: list[str] = []

    def scandir(path: Any = ".") -> Any:
        listed.append(os.fsdecode(path) if not isinstance(path, int) else str(path))
        return real(path)
    monkeypatch.setattr(module, "os", _OsWith(scandir=scandir))
    return listed


def fake_mount_table(monkeypatch: pytest.MonkeyPatch, table: str | Callable[[], str]) -> None:
    """daemon.watching.mounts reads `table`, written as /proc/self/mounts lines (SOURCE POINT TYPE
    OPTIONS 0 0), as the /proc/self/mountinfo the kernel would give for them: each the
    root of its file system, mounted in the order listed (a callable: what it returns at
    each read, for a table that changes)."""

    def mountinfo() -> str:
        lines = (table if isinstance(table, str) else table()).splitlines()
        return "".join(f"{n} 1 0:{n} / {point} {options} - {kind} {source} {options}\n"
                       for n, (source, point, kind, options, *_) in
                       enumerate((line.split() for line in lines if line.strip()), 2))
    fake_mountinfo(monkeypatch, mountinfo)


def fake_mountinfo(monkeypatch: pytest.MonkeyPatch, table: str | Callable[[], str]) -> None:
    """daemon.watching.mounts reads `table` as /proc/self/mountinfo (a callable: what it returns
    at each read; a byte that is not UTF-8 as os.fsdecode gives it)."""
    import io

    from daemon.watching import mounts

    def mount_table(path: str, *args: object, **kwargs: object) -> io.BytesIO:
        assert path == "/proc/self/mountinfo"
        return io.BytesIO(os.fsencode(table if isinstance(table, str) else table()))
    monkeypatch.setattr(mounts, "open", mount_table, raising=False)


@contextmanager
def temps_locked_as_made(monkeypatch: pytest.MonkeyPatch,
                         let_go_after: float | None = None) -> Iterator[list[int]]:
    """Another process's flock on each temp file of outboxd's (`.NAME.tmp-…`, attach's
    `.NAME.….tmp`) the instant it is made, before its writer's (a clerk's tool on this
    host that watches the share): taken on a descriptor of its own, as another process's
    would be, and held until the block ends — or, with `let_go_after` (seconds), let go
    that long after the writer's first try was refused, by a thread of its own (another
    outboxd's clean-up that looked at it). The descriptors holding them are yielded."""
    import fcntl
    import threading
    import time

    real, theirs = fcntl.flock, []

    def unlock_later(fd: int) -> None:
        assert let_go_after is not None
        time.sleep(let_go_after)  # the other process's own instant, no wait of a test's
        real(fd, fcntl.LOCK_UN)

    def locked_first(fd: int, op: int) -> None:
        made = os.readlink(f"/proc/self/fd/{fd}")
        temp = ".tmp-" in made or made.endswith(".tmp")
        first = temp and not any(os.fstat(t).st_ino == os.fstat(fd).st_ino for t in theirs)
        if first:
            theirs.append(os.open(made, os.O_RDONLY))
            real(theirs[-1], fcntl.LOCK_EX)
        try:
            real(fd, op)
        except BlockingIOError:
            if first and let_go_after is not None:
                threading.Thread(target=unlock_later, args=(theirs[-1],), daemon=True).start()
            raise

    monkeypatch.setattr(fcntl, "flock", locked_first)
    try:
        yield theirs
    finally:
        monkeypatch.setattr(fcntl, "flock", real)
        for fd in theirs:
            os.close(fd)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def minimal(outbox: Path, extra: str = "") -> str:
    return f'[outbox]\npath = "{outbox}"\n\n[delivery]\nurl = "{URL}"\n' + extra


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def one_problem_with(problems: list[str], *parts: str) -> str:
    """The one problem line that holds every part; fails listing all lines if none does."""
    hits = [p for p in problems if all(part in p for part in parts)]
    assert hits, f"no problem line holds {parts}: {problems}"
    return hits[0]


def problem_from_environment(tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
                             variable: str, value: str, key: str) -> str:
    """The problem line about `key` when `variable` is set to `value` over a minimal file."""
    monkeypatch.setenv(variable, value)
    return one_problem_with(problems_of(config_file(tmp_path, minimal(outbox))), key)


def with_delivery(outbox: Path, lines: str) -> str:
    """The minimal config with `lines` added at the top of [delivery]."""
    return minimal(outbox).replace("[delivery]\n", f"[delivery]\n{lines}")


def config_sections() -> dict[str, type[BaseModel]]:
    """Each section of the configuration and its model (for the tests that hold the docs
    and config.example.toml to the code)."""
    out = {}
    for name, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), name
        out[name] = model
    return out


def page_in_a_new_outbox(tmp_path: Path) -> tuple[Path, Settings, list[float], Any, Path]:
    """An empty outbox, its settings, a status page's clock (a list, to move it), the
    page (statuspage.StatusPage on that clock) and the path it is written to."""
    from daemon.report.statuspage import StatusPage
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    clock = [100.0]
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    return (outbox, settings, clock, StatusPage(clock=lambda: clock[0]),
            outbox / "outboxd-status.html")


class Page(HTMLParser):
    """A status page read back (test_pagerender, test_statuspage): text per section id,
    plus every tag and attribute seen."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.section: str | None = None
        self.text: dict[str, str] = {}
        # Per section, each body row's cells joined by a tab.
        self.rows: dict[str, list[str]] = {}
        self._cells: list[str] | None = None
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self.section = dict(attrs)["id"]
            self.text[self.section] = ""
        elif tag == "tr":
            self._cells = []
        elif tag == "td" and self._cells is not None:
            self._cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.section = None
        elif tag == "tr" and self._cells:
            self.rows.setdefault(self.section or "top", []).append("\t".join(self._cells))
            self._cells = None

    def handle_data(self, data: str) -> None:
        key = self.section or "top"
        self.text[key] = self.text.get(key, "") + data
        if self._cells:
            self._cells[-1] += data


@contextmanager
def answering_receiver(answer: Callable[[], tuple[int, str, bytes]],
                       answered: Callable[[], None] = lambda: None,
                       lengths: list[int] | None = None) -> Iterator[str]:
    """A throwaway HTTP/1.1 receiver on 127.0.0.1 for answers the reference receiver
    does not give: each POST is read whole, then answered with what `answer()` returns
    (status, Content-Type, body; it may block, on the server's thread for that POST);
    `answered()` runs once the answer is written, or failed to be; `lengths` gets the
    number of bytes of each POST's body. Yields its url; stopped on the way out."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            got = len(self.rfile.read(int(self.headers["Content-Length"])))
            if lengths is not None:
                lengths.append(got)
            try:
                status, content_type, body = answer()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                answered()

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as port:
        yield f"http://127.0.0.1:{port}/bundles"


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler],
            tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """`handler` served on 127.0.0.1 on a thread of its own (HTTPS with the server
    context `tls`); yields the port; stopped and closed on the way out."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
