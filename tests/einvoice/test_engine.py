"""The engine that runs the official rules (daemon/einvoice/engine.py): safe from several
threads, its compiled XSLT cached by the artefacts' hash only when asked, stale copies
removed."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from daemon.einvoice import engine, preflight
from daemon.einvoice.artefacts import artefacts_hash
from daemon.einvoice.engine import Engine, load
from daemon.errors import ConfigError

from .broken import BASE, BROKEN, EXAMPLES
from .test_preflight import rules


def test_engine_is_safe_to_use_from_several_threads() -> None:
    """Workers pre-flight in parallel; each gets its own Saxon executables."""
    cases = [(BASE, set()), *((d, {r}) for d, r in BROKEN.values())] * 2
    outcomes: list[bool] = [False] * len(cases)

    def run(i: int) -> None:
        data, expected = cases[i]
        outcomes[i] = expected <= rules(preflight(data, "x.xml")) and (
            bool(expected) == bool(preflight(data, "x.xml").errors))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(outcomes)

def test_compiled_rules_are_cached_by_artefact_hash_only_when_asked(tmp_path: Path) -> None:
    """The daemon caches the compiled XSLT in its state dir; without a cache dir nothing
    is written anywhere (what `outboxd check` needs)."""
    cache = tmp_path / "cache"
    Engine(cache)
    names = sorted(p.name for p in cache.iterdir())
    assert names == [f"cen-{artefacts_hash()[:16]}-compact.xsl",
                     f"peppol-{artefacts_hash()[:16]}-compact.xsl"]
    # A damaged cache file costs a compile, never the engine, and is replaced.
    (cache / names[0]).write_text("not xslt")
    Engine(cache)
    assert (cache / names[0]).read_text().startswith("<?xml")

def test_a_cache_copy_a_full_state_dir_cut_short_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state dir is full when the compiled rules are written to its cache: the engine
    works all the same and leaves nothing behind (a temp cut short at each start would
    hold the space the journal needs). A stand-in for the full disk, injected at the
    write: tests/faults/test_full_share.py has it on a real full file system."""
    from daemon.einvoice import engine
    real = os.fdopen

    class Full:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, text: str) -> int:
            self.fh.write(text[:4096])
            self.fh.flush()  # a part on the disk, as a write cut short leaves it
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(engine.os, "fdopen", lambda fd, *a, **k: Full(real(fd, *a, **k)))
    cache = tmp_path / "cache"
    Engine(cache)  # compiled and usable: the cache only saves time
    assert list(cache.iterdir()) == []


def test_the_temps_a_killed_process_left_in_the_cache_are_removed_and_nothing_else(
        tmp_path: Path) -> None:
    """A process killed between a cache write's temp and its rename leaves the temp (no
    later write removes another's): drop_cache_temps, at a start, removes each regular
    file named as those temps are (made here by the same mkstemp call), and leaves every
    other name, a link and a folder of such a name, and the cached copies."""
    import tempfile

    from daemon.einvoice.engine import drop_cache_temps
    cache = tmp_path / "cache"
    cache.mkdir()
    left = [Path(tempfile.mkstemp(dir=cache, prefix=".tmp-", suffix=".xsl")[1])
            for _ in range(3)]
    left[0].write_text("<xsl:stylesheet cut short")
    kept = [f"cen-{artefacts_hash()[:16]}-compact.xsl", ".tmp-short.xsl", ".tmp-abcdefgh.xsl.1",
            ".tmp-ABCDEFGH.xsl", ".tmp-abcdefgh.xslt", "tmp-abcdefgh.xsl", "notes.txt"]
    for name in kept:
        (cache / name).write_text("kept")
    outside = tmp_path / "outside.xsl"
    outside.write_text("not the cache's")
    (cache / ".tmp-linkedxx.xsl").symlink_to(outside)
    (cache / ".tmp-folderxx.xsl").mkdir()
    drop_cache_temps(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [*kept, ".tmp-linkedxx.xsl", ".tmp-folderxx.xsl"])
    assert outside.read_text() == "not the cache's"
    drop_cache_temps(tmp_path / "never-made")  # no cache yet: nothing to do, no error


def test_compiled_copies_under_an_older_key_are_not_used_and_are_removed(
        tmp_path: Path) -> None:
    """A copy an older outboxd compiled (other rules, or the full SVRL report) keeps its
    old name: the engine compiles its own and removes the stale ones."""
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = [cache / f"cen-{artefacts_hash()[:16]}.xsl", cache / "peppol-0123456789abcdef.xsl"]
    for path in stale:
        path.write_text("not xslt either")
    for name in ("notes.txt", "cen-extra-0123456789abcdef.xsl"):  # not a copy of ours
        (cache / name).write_text("kept")
    Engine(cache)
    assert sorted(p.name for p in cache.iterdir()) == [
        f"cen-{artefacts_hash()[:16]}-compact.xsl", "cen-extra-0123456789abcdef.xsl",
        "notes.txt", f"peppol-{artefacts_hash()[:16]}-compact.xsl"]


@pytest.mark.parametrize("root", ["Invoice", "CreditNote"])
def test_a_schema_error_names_its_place_from_the_documents_root_as_the_rules_do(
        root: str) -> None:
    """libxml2 writes the root of the default namespace as "*": a bad date read
    "(/*/cbc:IssueDate)" beside the rules' "(/Invoice/cbc:IssueDate)" for the same
    element. Both name the root: Invoice, or CreditNote."""
    data = BASE if root == "Invoice" else (
        EXAMPLES / "base-creditnote-correction.xml").read_bytes()
    bad = data.replace(b"<cbc:IssueDate>2017-11-13<", b"<cbc:IssueDate>13.11.2017<", 1)
    assert bad != data
    places = {f.message.split("]")[0][1:]: f.message.rsplit(" (", 1)[1].split(")")[0]
              for f in preflight(bad, "x.xml").findings}
    assert places["UBL-XSD"] == places["PEPPOL-EN16931-F001"] == f"/{root}/cbc:IssueDate"


def test_a_rule_flagged_or_given_the_role_error_is_fatal_and_a_warning_is_not() -> None:
    """A failed assertion is fatal when its flag (or, without one, its role) says "fatal"
    or "error" in any case, or says nothing: a rule set updated to ISO Schematron's
    role="error" keeps its errors errors, not warnings a bundle is sent with. Its text
    loses the rule id the EN 16931 texts repeat."""
    svrl = ('<svrl:schematron-output xmlns:svrl="http://purl.oclc.org/dsdl/svrl">'
            '<svrl:failed-assert id="R1" flag="error" location="/x"><svrl:text>[R1]-one'
            '</svrl:text></svrl:failed-assert>'
            '<svrl:failed-assert id="R2" role="ERROR"><svrl:text>two</svrl:text>'
            '</svrl:failed-assert>'
            '<svrl:failed-assert id="R3" flag="warning"><svrl:text>three</svrl:text>'
            '</svrl:failed-assert>'
            '<svrl:successful-report id="R4"><svrl:text>four</svrl:text>'
            '</svrl:successful-report></svrl:schematron-output>')
    found = load()._assertions(svrl)
    assert [(a.rule, a.text, a.fatal) for a in found] == [
        ("R1", "one", True), ("R2", "two", True), ("R3", "three", False), ("R4", "four", True)]


def test_the_engines_parser_never_expands_an_entity() -> None:
    """Every XML the engine parses (the invoice, a schema, Saxon's report) goes through
    a parser that leaves an entity unexpanded: its text is never read into the tree."""
    from lxml import etree
    root = etree.fromstring(b'<!DOCTYPE x [<!ENTITY a "EXPANDED">]><x>&a;</x>',
                            load().parser())
    assert "EXPANDED" not in etree.tostring(root).decode()


def test_an_install_whose_schema_is_damaged_is_a_config_error_saying_to_reinstall(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The UBL schema shipped with outboxd damaged (an install cut short, a file edited):
    the engine does not load, and says so as a configuration error naming what lxml
    found and the fix (reinstall, or turn pre-flight off), not a traceback."""
    damaged = tmp_path / "UBL-Invoice-2.1.xsd"
    damaged.write_text('<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
                       '<xsd:element name="Invoice" type="NoSuchType"/></xsd:schema>')
    monkeypatch.setattr(engine, "XSD_INVOICE", damaged)
    with pytest.raises(ConfigError) as info:
        Engine(tmp_path / "cache")
    said = str(info.value)
    assert said.startswith("the e-invoice rule engine cannot load (XMLSchemaParseError: ")
    assert said.endswith(engine.REINSTALL)
