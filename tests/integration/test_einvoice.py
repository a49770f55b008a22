"""Pre-flight end to end (docs/einvoice.md): the real daemon, receiver and official rules."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env, Receiver
from einvoice.broken import BASE, BROKEN, EXAMPLES, saxon_type_error, with_id
from helpers import drop_bundle, text_pdf, wait_for, write

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")


def manifests(env: Env) -> dict[str, dict]:
    return {p.name.split("--")[0]: json.loads((p / "receipt.json").read_text())["manifest"]
            for p in env.sent_bundles() if (p / "receipt.json").exists()}


# Pre-flight's findings do not depend on where the rules run (tests/reading/test_readers.py: a
# reader process's results equal the daemon's own; test_end_to_end.py and the Saxon report
# below pre-flight in the shipped reader processes). The tests of findings run the rules on
# the daemon's own threads: one engine loaded a start, not one in each of two children.
ON_THREADS = {"policy": {"unattached": "send"}, "service": {"reader_processes": 0}}


def rule_warnings(manifest: dict) -> list[str]:
    return [w["message"] for w in manifest["warnings"] if w["code"] == "einvoice-rule"]


def test_every_official_example_passes_preflight_and_is_delivered(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, **ON_THREADS)
    start_daemon()
    names = sorted(p.stem for p in EXAMPLES.glob("*.xml"))
    assert len(names) == 9
    for n, name in enumerate(names):
        # Several examples share the id Snippet1; each gets its own, as an ERP's would.
        data = with_id((EXAMPLES / f"{name}.xml").read_bytes(), f"EX-{n}")
        drop_bundle(env.outbox, name, {}, data)
    wait_for(lambda: len(manifests(env)) == 9, timeout=60, what="nine examples sent")
    assert env.quarantined() == []
    assert all(rule_warnings(m) == [] for m in manifests(env).values())
    assert len(receiver.accepted()) == 9


def test_broken_invoices_are_quarantined_with_the_rule_ids_in_reason_txt(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, **ON_THREADS)
    start_daemon()
    for kind, (data, _) in BROKEN.items():
        drop_bundle(env.outbox, kind, {}, data)
    wait_for(lambda: len(env.quarantined()) == len(BROKEN), timeout=60,
             what="every broken invoice quarantined")
    for q in env.quarantined():
        kind = q.name.split("--")[0]
        reason = (q / "REASON.txt").read_text()
        assert f"[{BROKEN[kind][1]}]" in reason, reason
        assert f"{kind}.xml" in reason
        record = json.loads((q / "reason.json").read_text())
        assert "einvoice-rule" in {r["code"] for r in record["reasons"]}
    assert receiver.requests() == []


def test_an_export_fault_is_quarantined_naming_the_line_and_the_erps_fix(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An ERP that writes Windows-1252 under encoding="UTF-8", or a blank line before
    the XML declaration: REASON.txt named a parser error ("invalid token", "XML or text
    declaration not at start of entity") and asked to export again, which made the same
    file. It names the line, what is wrong there, and what the export must change."""
    env.write_config(receiver.url, **ON_THREADS)
    start_daemon()
    text = with_id(BASE, "INV-1252").decode("utf-8")
    line = 1 + text[:text.index("</cbc:Name>")].count("\n")
    drop_bundle(env.outbox, "INV-1252", {},
                text.replace("</cbc:Name>", " Müller</cbc:Name>", 1).encode("cp1252"))
    drop_bundle(env.outbox, "INV-LEAD", {}, b"\n" + with_id(BASE, "INV-LEAD"))
    wait_for(lambda: len(env.quarantined()) == 2, what="both invoices quarantined")
    reasons = {q.name.split("--")[0]: (q / "REASON.txt").read_text()
               for q in env.quarantined()}
    assert (f"INV-1252.xml: is not UTF-8 text, as its XML declaration says: line {line} "
            "holds the byte 0xfc") in reasons["INV-1252"], reasons
    assert "have the ERP name the encoding it writes in the XML declaration" in reasons[
        "INV-1252"]
    assert ("INV-LEAD.xml: is not well-formed XML: its XML declaration (<?xml …?>) must be "
            "the very first thing in the file, and blank lines or spaces come before it "
            "(it is on line 2) — have the ERP write nothing before the declaration"
            ) in reasons["INV-LEAD"], reasons
    assert receiver.requests() == []


def test_warn_mode_sends_with_the_rule_ids_in_the_manifest_warnings(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, **ON_THREADS,
                     einvoice={"preflight": "warn"})
    start_daemon()
    drop_bundle(env.outbox, "TOTALS", {}, BROKEN["wrong-totals"][0])
    wait_for(lambda: "TOTALS" in manifests(env), what="the invoice sent")
    warnings = rule_warnings(manifests(env)["TOTALS"])
    assert any(w.startswith("[BR-CO-15]") for w in warnings), warnings
    assert env.quarantined() == []


def test_an_almost_peppol_customization_id_goes_out_with_the_warning_in_its_manifest(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The official example with "billing:3.O" for "billing:3.0" got the EN 16931 rules
    only and was sent with no word of the Peppol rules left out. It is still sent (the
    rules are chosen by the id), its manifest's warnings naming both ids; the unchanged
    example beside it carries no such warning."""
    env.write_config(receiver.url, **ON_THREADS)
    start_daemon()
    bis3 = b"urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0<"
    drop_bundle(env.outbox, "TYPO", {}, with_id(BASE.replace(bis3, bis3[:-2] + b"O<"),
                                                "TYPO-1"))
    drop_bundle(env.outbox, "GOOD", {}, with_id(BASE, "GOOD-1"))
    wait_for(lambda: {"TYPO", "GOOD"} <= set(manifests(env)), what="both invoices sent")
    [warning] = [w for w in manifests(env)["TYPO"]["warnings"]
                 if w["code"] == "peppol-id-mismatch"]
    assert (warning["file"], warning["invoice_id"]) == ("TYPO.xml", "TYPO-1")
    assert "poacc:billing:3.O' looks like Peppol BIS Billing 3.0's" in warning["message"]
    assert f"does not begin with '{bis3[:-1].decode()}'" in warning["message"]
    assert all(w["code"] != "peppol-id-mismatch" for w in manifests(env)["GOOD"]["warnings"])
    assert env.quarantined() == []


def test_off_mode_does_not_look_at_the_invoice(env: Env, receiver: Receiver,
                                               start_daemon) -> None:
    env.write_config(receiver.url, **ON_THREADS,
                     einvoice={"preflight": "off"})
    start_daemon()
    drop_bundle(env.outbox, "TOTALS", {}, BROKEN["wrong-totals"][0])
    wait_for(lambda: "TOTALS" in manifests(env), what="the invoice sent")
    assert rule_warnings(manifests(env)["TOTALS"]) == []


def test_svefaktura_and_pdf_invoices_are_not_preflighted(env: Env, receiver: Receiver,
                                                         start_daemon) -> None:
    """Neither would pass EN 16931; both go out without a pre-flight finding, and the
    not-preflighted note `check` shows is nothing in their manifests (docs/einvoice.md,
    What pre-flight checks)."""
    env.write_config(receiver.url, **ON_THREADS)
    start_daemon()
    drop_bundle(env.outbox, "SV-1", {}, b'<?xml version="1.0"?>\n<Invoice xmlns='
                b'"urn:sfti:documents:BasicInvoice:1:0"><ID>SV-1</ID></Invoice>\n')
    write(env.outbox / "PDF-1.pdf", text_pdf(["Invoice number: PDF-1"]))
    wait_for(lambda: {"SV-1", "PDF-1"} <= set(manifests(env)), what="both invoices sent")
    assert all(rule_warnings(m) == [] for m in manifests(env).values())
    assert all(w["code"] != "not-preflighted" and "not checked" not in w["message"]
               for m in manifests(env).values() for w in m["warnings"])


def test_engine_that_cannot_load_is_a_configuration_error_naming_what_to_reinstall(
        env: Env, tmp_path: Path) -> None:
    """A broken install (saxonche missing) stops the start with exit 2, unless pre-flight
    is off."""
    broken = tmp_path / "broken-site"
    write(broken / "saxonche.py", b"raise ImportError('saxonche is damaged')\n")
    run_env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(broken), str(Path(__file__).resolve().parents[2])])}
    env.write_config("http://127.0.0.1:9/x")
    r = subprocess.run([*OUTBOXD, "run", "-c", str(env.config)], capture_output=True,
                       text=True, timeout=60, env=run_env)
    assert r.returncode == 2
    assert "saxonche is damaged" in r.stderr and "reinstall" in r.stderr
    assert "Traceback" not in r.stderr

    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"})
    proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)], env=run_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        wait_for(lambda: "outboxd running" in proc.stderr.readline(), what="the start")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_saxons_report_of_a_rule_it_cannot_run_is_one_json_log_event(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An invoice with two IssueDates of its own makes a rule's XPath fail with a type
    error (XPTY0004): Saxon writes a report of many lines to fd 2 before it raises. In the
    shipped reader processes that report is one JSON log event naming the file; the
    bundle is quarantined with the schema's error naming the second date and the rules
    said not to have run, nothing is sent, and every line the daemon writes to stderr is
    JSON."""
    env.write_config(receiver.url, policy={"unattached": "send"})
    daemon = start_daemon()
    drop_bundle(env.outbox, "TWO-1", {}, saxon_type_error("TWO-1"))
    [quarantined] = wait_for(env.quarantined, timeout=60, what="the invoice quarantined")
    assert daemon.stop() == 0

    records = []
    for line in (line for line in daemon.stderr().splitlines() if line.strip()):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    [report] = [r for r in records if r["event"] == "e-invoice rule engine reported"]
    assert report["file"] == "TWO-1.xml" and "XPTY0004" in report["report"]
    reasons = json.loads((quarantined / "reason.json").read_text())["reasons"]
    assert [r["code"] for r in reasons] == ["einvoice-rule"] * len(reasons)
    assert any("[UBL-XSD]" in r["message"] and "IssueDate" in r["message"] for r in reasons)
    assert "[RULES-NOT-RUN]" in reasons[-1]["message"]
    assert receiver.requests() == []
