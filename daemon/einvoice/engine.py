"""The rule engine: UBL 2.1 XSD with lxml, Schematron compiled by SchXslt and run by Saxon.

Loaded once per process (compiling the Schematron costs ~0.3 s, loading the
compiled XSLT ~1 s); after that a document costs ~10 ms of CPU, nearly all of it
Saxon running the two rule sets. The compiled XSLT is cached in the state
dir, keyed by the artefacts' hash and the compile options, when the daemon
asks for that (``load(cache_dir)``); everyone else (``outboxd check``, tests)
gets an in-memory compile and writes nothing.

What a document costs is kept to the rules themselves: SchXslt compiles with
its ``schxslt.svrl.compact`` parameter, so the report holds only the failed
assertions (no ``svrl:fired-rule`` per rule that fired, no
``svrl:active-pattern``, no metadata): a valid invoice's report is ~1 KB
instead of ~30 KB of text to serialise and parse again. (Reading the report
as a Saxon node in place would save that too, but saxonche 13.1 aborts the
process when a node is navigated from a thread other than the main one.)

Threads: saxonche documents a ``PyXsltExecutable`` as not thread-safe ("clone
the object for each thread"), so each thread gets its own clones and its own
document builder, made on first use. lxml's ``XMLSchema`` objects are used
under a lock (validation takes well under a millisecond).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.einvoice.artefacts import (
    ALL_RULE_SETS,
    SCHXSLT_PIPELINE,
    XSD_CREDIT_NOTE,
    XSD_INVOICE,
    RuleSet,
    artefacts_hash,
)
from daemon.errors import ConfigError, InputError

SVRL = "{http://purl.oclc.org/dsdl/svrl}"
# SchXslt's own stylesheet parameters (the vendored files stay as they are): a
# report of the failed assertions only, and no compile metadata in it. The tag
# keys the compile cache, so a copy compiled with other options is never used.
COMPILE_OPTIONS = {"schxslt.svrl.compact": True, "schxslt.compile.metadata": False}
COMPILE_TAG = "compact"
REINSTALL = ("reinstall outboxd with its dependencies (pip install --force-reinstall "
             "outboxd, which brings saxonche and lxml), or set [einvoice] preflight = \"off\"")
# SaxonC parses with the JDK's XML parser, which refuses elements nested more than 100
# deep (lxml, with huge_tree, reads 2048) and writes its error to stderr, outside the
# log: such a document is refused from lxml's tree before Saxon is given it.
_PAST_SAXON_DEPTH = "boolean(" + "/*" * 101 + ")"
TOO_DEEP = ("nests elements more than 100 deep, deeper than the e-invoice rules read — "
            "export the invoice again")


# SaxonC writes a dynamic error's report (a type error in a rule on an odd invoice)
# to fd 2 before it raises, as lines no log collector can read. In a reader process,
# which runs one rule check at a time, that report is taken aside and logged as one
# event instead (take_saxon_reports). Not in the daemon's own process: fd 2 is shared
# by its threads, and their log lines would be taken aside with it.
_REPORT_LIMIT = 2000  # characters of a report kept in the log event
_reports: int | None = None  # the memfd Saxon's reports are written to, once enabled


def take_saxon_reports() -> None:
    """From now on, what Saxon writes to fd 2 during a rule check is logged as one event
    (for a reader process, single-threaded; see above)."""
    global _reports
    if _reports is None:
        _reports = os.memfd_create("outboxd-saxon-reports", os.MFD_CLOEXEC)


@contextmanager
def _saxon_reports(rel: str) -> Iterator[None]:
    sink = _reports
    if sink is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.ftruncate(sink, 0)
    os.lseek(sink, 0, os.SEEK_SET)
    os.dup2(sink, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.lseek(sink, 0, os.SEEK_SET)
        said = os.read(sink, 4 * _REPORT_LIMIT).decode("utf-8", "replace").strip()
        if said:
            logs.get().info("e-invoice rule engine reported", file=rel,
                            report=" ".join(said.split())[:_REPORT_LIMIT])


@dataclass(frozen=True)
class Assertion:
    """One failed assertion or XSD error, before it becomes a Finding."""

    rule: str  # "BR-CO-15", "PEPPOL-EN16931-R001", "UBL-XSD"
    text: str
    location: str
    fatal: bool


class Engine:
    def __init__(self, cache_dir: Path | None = None) -> None:
        try:
            from lxml import etree
            from saxonche import PySaxonApiError, PySaxonProcessor
        except ImportError as exc:
            raise ConfigError(f"the e-invoice rule engine cannot load ({exc}) — "
                              f"{REINSTALL}") from None
        self._etree = etree
        self._saxon_error = PySaxonApiError
        try:
            self._proc = PySaxonProcessor(license=False)
            compiler = self._proc.new_xslt30_processor()
            for name, value in COMPILE_OPTIONS.items():
                compiler.set_parameter(name, self._proc.make_boolean_value(value))
            self._executables = {rs.name: self._executable(rs, compiler, cache_dir)
                                  for rs in ALL_RULE_SETS}
            compiler.clear_parameters()  # SchXslt's; nothing else this compiler runs takes them
            parser = self.parser()
            self._schemas = {
                name: etree.XMLSchema(etree.parse(str(path), parser))
                for name, path in (("Invoice", XSD_INVOICE), ("CreditNote", XSD_CREDIT_NOTE))}
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - saxonche/lxml raise their own kinds
            raise ConfigError(f"the e-invoice rule engine cannot load "
                              f"({type(exc).__name__}: {str(exc)[:300]}) — {REINSTALL}") from None
        self.saxon_version = str(self._proc.version)
        self._schema_lock = threading.Lock()
        self._local = threading.local()

    # ------------------------------------------------------------ loading

    def parser(self) -> Any:
        """An lxml parser that never expands entities, loads a DTD or touches the network.

        huge_tree: an invoice may carry a file in one base64 text node
        (cbc:EmbeddedDocumentBinaryObject), and libxml2's default limit of 10 MB a
        node refused a well-formed invoice with a ~7.5 MB PDF inside as "not
        well-formed". Expansion, the attack those limits exist for, is off anyway, and
        a document reaches here only after invoices.py refused any DOCTYPE with
        declarations."""
        return self._etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                     dtd_validation=False, huge_tree=True)

    @staticmethod
    def _executable(rs: RuleSet, compiler: Any, cache_dir: Path | None) -> Any:
        """The rule set compiled by SchXslt; from the cache when it holds a usable copy."""
        cached = (cache_dir / f"{rs.name}-{artefacts_hash()[:16]}-{COMPILE_TAG}.xsl"
                  if cache_dir else None)
        if cached is not None:
            try:
                return compiler.compile_stylesheet(stylesheet_text=cached.read_text("utf-8"))
            except Exception:  # noqa: BLE001 - missing or damaged: compile it again
                pass
        text: str = compiler.transform_to_string(source_file=str(rs.sch),
                                                 stylesheet_file=str(SCHXSLT_PIPELINE))
        executable = compiler.compile_stylesheet(stylesheet_text=text)
        if cached is not None:
            _write_quietly(cached, text)
            _drop_stale(cached, rs.name)
        return executable

    # ------------------------------------------------------------- running

    def _thread_state(self) -> tuple[Any, dict[str, Any]]:
        local = self._local
        if not hasattr(local, "builder"):
            local.builder = self._proc.new_document_builder()
            local.executables = {name: ex.clone() for name, ex in self._executables.items()}
        return local.builder, local.executables

    def xsd_errors(self, root_name: str, doc: Any) -> list[Assertion]:
        schema = self._schemas[root_name]
        with self._schema_lock:
            ok = schema.validate(doc)
            log = list(schema.error_log) if not ok else []
        # libxml2 writes an element of the default namespace, as the root of a UBL
        # document usually is, as "*": "/*/cbc:DueDate" beside the rules' "/Invoice/…".
        return [Assertion("UBL-XSD", _short_names(e.message),
                          re.sub(r"^/\*(?=/|$)", f"/{root_name}",
                                 _short_path(e.path or f"line {e.line}")), True)
                for e in log]

    def schematron(self, rule_sets: tuple[RuleSet, ...], tree: Any, text: str,
                   rel: str, schema_refused: bool = False) -> list[Assertion]:
        """Run the rule sets on one document (`tree` as lxml read it, `text` serialised
        by lxml: no DTD, pure ASCII) of the file `rel`; InputError when Saxon cannot
        read or check it — unless the XSD refused the document (`schema_refused`) and a
        rule stopped at what it refused: then one fatal Assertion saying so.

        Saxon parses the document once; the same node goes to each rule set.
        """
        if tree.xpath(_PAST_SAXON_DEPTH):
            raise InputError("invalid-xml", rel, TOO_DEEP)
        builder, executables = self._thread_state()
        try:
            with _saxon_reports(rel):
                node = builder.parse_xml(xml_text=text)
                svrls = [executables[rs.name].transform_to_string(xdm_node=node)
                         for rs in rule_sets]
        except self._saxon_error as exc:
            if schema_refused and "maxElementDepth" not in str(exc):
                # A value the schema refuses (an amount written "1.250,00", a second
                # cbc:IssueDate) stops a rule that reads it as a number or a date. The
                # XSD errors name the element; Saxon's words alone, as invalid-xml, named
                # none, blamed the XML's form and were an error under preflight "warn".
                return [Assertion("RULES-NOT-RUN", _not_run(str(exc)), "", True)]
            raise InputError("invalid-xml", rel, _unchecked(str(exc))) from None
        return [a for svrl in svrls for a in self._assertions(svrl)]

    def _assertions(self, svrl: str) -> list[Assertion]:
        root = self._etree.fromstring(svrl.encode("utf-8"), self.parser())
        out: list[Assertion] = []
        for el in root.iter(f"{SVRL}failed-assert", f"{SVRL}successful-report"):
            rule = el.get("id") or "?"
            text = " ".join("".join(el.findtext(f"{SVRL}text") or "").split())
            prefix = f"[{rule}]"
            if text.startswith(prefix):  # the EN 16931 texts repeat their id: "[BR-01]-…"
                text = text[len(prefix):].lstrip("- ")
            flag = (el.get("flag") or el.get("role") or "fatal").lower()
            out.append(Assertion(rule, text, _short_path(el.get("location") or ""),
                                 flag in ("fatal", "error")))
        return out


def _unchecked(saxon: str) -> str:
    """Why Saxon could not check a document lxml read, for the clerk's error file."""
    if "maxElementDepth" in saxon:
        return TOO_DEEP
    first = " ".join(saxon.split())[:200]
    return f"cannot be checked by the e-invoice rules (Saxon: {first}) — export the invoice again"


def _not_run(saxon: str) -> str:
    """What an Assertion says of rules that stopped at a value the schema refused."""
    first = " ".join(saxon.split())[:200]
    return ("the e-invoice rules could not be run on it: one stopped at a value the "
            f"schema refuses, which the UBL-XSD findings name (Saxon: {first})")


def _write_quietly(path: Path, text: str) -> None:
    """Atomically, and never fatal: the cache only saves time. A temp not written whole
    (a full state dir) is removed: left, each start would add one, holding the very
    space the journal needs there."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".xsl")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# The names _write_quietly's temps get (tempfile.mkstemp: the prefix, 8 characters of
# its alphabet, the suffix): only such a file is a temp of the cache's.
_TEMP = re.compile(r"\.tmp-[a-z0-9_]{8}\.xsl")


def drop_cache_temps(cache_dir: Path) -> None:
    """Remove the temps of cache writes that a killed process left in `cache_dir` (its
    kill between the temp and its rename): no write removes another's, so each would
    stay for good, holding space in the state dir the journal needs. Only regular files
    of the temps' own names go; a link or folder of such a name, or any other file,
    stays. Call it where no cache write is under way: at the daemon's start, holding the
    state dir, before its reader processes load the engine."""
    try:
        with os.scandir(cache_dir) as listing:
            entries = [e for e in listing if _TEMP.fullmatch(e.name)]
    except OSError:  # none made yet, or not to be looked at: nothing of ours to remove
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _drop_stale(current: Path, name: str) -> None:
    """Compiled copies of this rule set under another key (older rules or compile
    options) are never read again; they go, so the state dir does not grow per update."""
    ours = re.compile(rf"{re.escape(name)}-[0-9a-f]{{16}}(-[a-z0-9]+)?\.xsl")
    for path in current.parent.glob(f"{name}-*.xsl"):
        if path != current and ours.fullmatch(path.name):  # not another rule set's
            try:
                path.unlink()
            except OSError:
                pass


_PREFIXES = {
    "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2": "cbc",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2": "cac",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2": "ext",
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2": "",
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2": "",
}


def _short_names(text: str) -> str:
    """``{urn:…Aggregate…}Party`` and ``Q{…}Party`` → ``cac:Party``, as the file writes it."""

    def name(match: re.Match[str]) -> str:
        prefix = _PREFIXES.get(match.group(1))
        return match.group(2) if prefix == "" else f"{prefix or match.group(1)}:{match.group(2)}"

    return re.sub(r"Q?\{([^}]*)\}([\w.-]+)", name, text)


def _short_path(path: str) -> str:
    """``/Q{urn:…Invoice-2}Invoice[1]/Q{urn:…Aggregate…}LegalMonetaryTotal[1]`` →
    ``/Invoice/cac:LegalMonetaryTotal``: what a person can find in the file."""
    return re.sub(r"\[1\]", "", _short_names(path))


_engine: Engine | None = None
_engine_lock = threading.Lock()


def load(cache_dir: Path | None = None) -> Engine:
    """The process's engine, loaded on first call; ConfigError when it cannot load.

    The daemon calls this at start with its state dir (the compile cache);
    a later call with another cache dir reuses the loaded engine.
    """
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine(cache_dir)
        return _engine
