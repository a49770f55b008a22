"""The validation workers (daemon/reading/readers.py): evaluate() in spawned child processes.

Real children, real files, the real engine: a result that comes back from a
child must equal the one the daemon's own process computes, a killed child costs
no bundle, and stop leaves no process behind. (What a reader process itself does:
test_reader_process.py.)
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing.spawn
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent.parent))

from einvoice.broken import BROKEN  # noqa: E402
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for, write  # noqa: E402

from daemon.bundle import Bundle, InvoiceFile  # noqa: E402
from daemon.claiming.claim import claim  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.errors import HostileInput, InputError, ReaderFailed  # noqa: E402
from daemon.reading import reader_wire, readers  # noqa: E402
from daemon.reading.match import assemble  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from daemon.validation import convert  # noqa: E402
from daemon.watching.scan import Candidate, candidate_for  # noqa: E402


def warnings_of(r: Readers) -> list[tuple[str, dict[str, Any]]]:
    """What `r` logs at warning from now on, as (event, fields), in order."""
    said: list[tuple[str, dict[str, Any]]] = []
    r.log = SimpleNamespace(warning=lambda event, **kw: said.append((event, kw)))
    return said


def one_reader(tmp_path: Path) -> tuple[Settings, Readers, list[tuple[str, dict[str, Any]]]]:
    """One reader process running (pre-flight off), for a reload to more; its warnings
    (warnings_of). The caller closes it."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 1})
    r = Readers(tmp_path / "state" / "einvoice")
    said = warnings_of(r)
    r.configure(s)
    return s, r, said


def settings_for(root: Path, **sections: dict[str, Any]) -> Settings:
    outbox = root / "outbox"
    outbox.mkdir(exist_ok=True)
    return Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(root / "state")},
                    delivery={"transport": "directory", "target": str(root / "target")},
                    **sections)


def png_300_dpi() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), "white").save(buf, "PNG", dpi=(300, 300))
    return buf.getvalue()


def in_child(r: Readers, cand: Candidate, s: Settings) -> Bundle | BaseException:
    box: Future[Bundle | BaseException] = Future()
    r.submit(cand, s, box.set_result)
    return box.result(timeout=120)


def in_process(cand: Candidate, s: Settings) -> Bundle | BaseException:
    try:
        return evaluate(cand, s)
    except Exception as exc:  # noqa: BLE001 - compared with what the child hands back
        return exc


def alive(pid: int) -> bool:
    """Running (a zombie whose parent does not reap it counts as gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readers")


@pytest.fixture(scope="module")
def children(root: Path) -> Iterator[Readers]:
    """Two reader processes with the e-invoice engine loaded (pre-flight on)."""
    s = settings_for(root, service={"reader_processes": 2})
    r = Readers(root / "state" / "einvoice")
    r.configure(s)
    yield r
    r.stop()


def test_child_results_equal_the_daemons_own_for_every_kind_of_bundle(
        children: Readers, root: Path) -> None:
    """A valid UBL with a PDF attachment, an invalid attachment (quarantine case), an
    invoice that breaks a Peppol rule, a converted image (print channel) and an invoice
    file that cannot be opened: the child's Bundle (or error) equals the in-process one."""
    s = settings_for(root, validation={"convert_images": True})
    outbox = s.outbox.path
    drop_bundle(outbox, "GOOD", {"a.pdf": pdf_bytes(2)}, ubl_invoice("GOOD"))
    drop_bundle(outbox, "BADATT", {"scan.tif": pdf_bytes()}, ubl_invoice("BADATT"))
    drop_bundle(outbox, "RULE", {"a.pdf": pdf_bytes()}, BROKEN["wrong-totals"][0])
    drop_bundle(outbox, "PRINT", {"scan.png": png_300_dpi(),
                                  "attachments.toml": b'channel = "external-print"\n'},
                ubl_invoice("PRINT"))
    (outbox / "LINK.xml").symlink_to(outbox / "GOOD.xml")
    results = {}
    for name in ("GOOD", "BADATT", "RULE", "PRINT", "LINK"):
        cand = candidate_for(s.outbox, f"{name}.xml")
        there, here = in_child(children, cand, s), in_process(cand, s)
        if isinstance(here, BaseException):
            assert type(there) is type(here), (name, there)
            assert isinstance(there, InputError) and isinstance(here, InputError)
            assert (there.code, there.file, there.message) == (here.code, here.file,
                                                               here.message)
        else:
            assert there == here, name
        results[name] = there
    assert isinstance(results["GOOD"], Bundle) and not results["GOOD"].findings
    assert isinstance(results["BADATT"], Bundle)
    assert [f.file for f in results["BADATT"].errors] == ["BADATT/scan.tif"]
    assert isinstance(results["RULE"], Bundle)
    assert any("[BR-CO-15]" in f.message for f in results["RULE"].errors)
    assert isinstance(results["PRINT"], Bundle)
    [att] = results["PRINT"].attachments
    assert att.converted is not None and att.converted.name == "scan.pdf"
    assert isinstance(results["LINK"], HostileInput)


def test_a_check_by_hashes_in_a_child_is_sent_only_the_invoice_files_part(
        children: Readers, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check after a claim (submit with `known`) comes back from a child equal to
    match.assemble with the whole bundle read before, in this process — for an invoice
    file that reads, and for one that does not (its finding and stand-in id are taken
    from what was read before) — while what goes down the pipe is only what that check
    takes of the bundle: its invoice file and the findings about it, not the
    attachments, their paths and the sidecar, which the child reads again anyway."""
    s = settings_for(root)
    outbox = s.outbox.path
    drop_bundle(outbox, "CHK-OK", {"a.pdf": pdf_bytes(2), "b.txt": b"notes"},
                ubl_invoice("CHK-OK"))
    drop_bundle(outbox, "CHK-BAD", {"a.pdf": pdf_bytes()}, b"<not an invoice")
    sent: list[Bundle | None] = []
    real_send = readers.Pool.send

    def send(pool: readers.Pool, call: Any, version: int, blob: bytes) -> bool:
        sent.append(call.known)
        return real_send(pool, call, version, blob)

    monkeypatch.setattr(readers.Pool, "send", send)
    for name in ("CHK-OK", "CHK-BAD"):
        cand = candidate_for(s.outbox, f"{name}.xml")
        before = evaluate(cand, s)
        assert before.attachments and before.findings, name
        box: Future[Bundle | BaseException] = Future()
        children.submit(cand, s, box.set_result, known=before)
        there = box.result(timeout=120)
        assert there == assemble(cand, s, known=before), name
        known = sent.pop()
        assert known is not None and known.invoice_file == before.invoice_file
        assert known.attachments == () and known.sidecar is None
        assert known.findings == tuple(f for f in before.findings if f.file == f"{name}.xml")
    assert isinstance(there, Bundle) and there.invoice_file.ids_unknown
    assert [f.file for f in there.errors] == ["CHK-BAD.xml"]


def test_a_claim_batchs_checks_go_to_each_child_in_one_message_and_come_back_one_by_one(
        children: Readers, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """assemble_many of six bundles (a claim batch) writes one message down each
    child's pipe, not one a bundle (each message wakes a child and costs the loop a
    write), and every check comes back, in order, equal to match.assemble with the
    bundle read before in this process — one whose attachment changed meanwhile too."""
    s = settings_for(root)
    names = [f"BATCH-{i}" for i in range(6)]
    for name in names:
        drop_bundle(s.outbox.path, name, {"a.pdf": pdf_bytes()}, ubl_invoice(name))
    jobs = [(cand, evaluate(cand, s)) for cand in
            (candidate_for(s.outbox, f"{name}.xml") for name in names)]
    (s.outbox.path / "BATCH-3" / "a.pdf").write_bytes(pdf_bytes(2))  # changed since read
    messages: list[int] = []
    real_dumps = reader_wire.dumps

    def dumps(message: Any) -> bytes:
        if isinstance(message, tuple) and len(message) == 3:
            messages.append(len(message[2]))  # (version, settings pickle, calls)
        return real_dumps(message)

    monkeypatch.setattr(reader_wire, "dumps", dumps)
    results = list(children.assemble_many(jobs, s))
    assert len(messages) == len(children.pids()) == 2 and sum(messages) == 6
    for (cand, before), there in zip(jobs, results, strict=True):
        assert there == assemble(cand, s, known=before), cand.name
    assert isinstance(results[3], Bundle)
    assert results[3].attachments[0].sha256 != jobs[3][1].attachments[0].sha256


def test_the_settings_cross_to_each_child_once_per_version_not_with_every_call(
        children: Readers, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight reads and checks under one Settings object carry its pickle at most once
    per child (the first call of that version there); a new Settings object (a
    reload) is sent once more per child, and judged by."""
    s = settings_for(root)
    drop_bundle(s.outbox.path, "ONCE", {"a.pdf": pdf_bytes()}, ubl_invoice("ONCE"))
    cand = candidate_for(s.outbox, "ONCE.xml")
    blobs: list[bytes] = []
    real_dumps = reader_wire.dumps

    def dumps(message: Any) -> bytes:
        if isinstance(message, tuple) and len(message) == 3 and message[1] is not None:
            blobs.append(message[1])  # (version, settings pickle, calls)
        return real_dumps(message)

    monkeypatch.setattr(reader_wire, "dumps", dumps)
    bundle = in_child(children, cand, s)
    assert isinstance(bundle, Bundle) and not bundle.errors
    boxes: list[Future[Bundle | BaseException]] = [Future() for _ in range(8)]
    for i, box in enumerate(boxes):  # all in flight at once: both children take some
        children.submit(cand, s, box.set_result, known=bundle if i % 2 else None)
    assert all(box.result(timeout=120) == boxes[0].result() for box in boxes[::2])
    assert 1 <= len(blobs) <= len(children.pids())
    sent = len(blobs)
    smaller = settings_for(root, validation={"max_attachment_bytes": 10})
    after = in_child(children, cand, smaller)
    assert isinstance(after, Bundle) and after.errors  # the new version was judged by
    assert len(blobs) == sent + 1


def test_a_reloaded_configuration_reaches_the_children(children: Readers, root: Path) -> None:
    """A new Settings object (as SIGHUP makes) is what the next call is judged by: a
    size limit lowered after a first read turns the same bundle invalid."""
    s = settings_for(root)
    drop_bundle(s.outbox.path, "SIZE", {"a.pdf": pdf_bytes(3)}, ubl_invoice("SIZE"))
    cand = candidate_for(s.outbox, "SIZE.xml")
    first = in_child(children, cand, s)
    assert isinstance(first, Bundle) and not first.errors
    tight = settings_for(root, validation={"max_attachment_bytes": 100})
    second = in_child(children, cand, tight)
    assert isinstance(second, Bundle)
    assert [f.code for f in second.errors] == [f.code for f in evaluate(cand, tight).errors]
    assert second.errors
    again = in_child(children, cand, s)
    assert isinstance(again, Bundle) and not again.errors


def test_a_reader_killed_mid_call_costs_no_bundle(children: Readers, root: Path) -> None:
    """Every reader process is killed (SIGKILL, as the OOM killer does) right after a
    bundle was handed over: each dead reader is replaced (one restart each), the
    bundle's call is repeated and its result is the real one, not an error; later
    calls work too."""
    s = settings_for(root)
    drop_bundle(s.outbox.path, "KILL", {"a.pdf": pdf_bytes()}, ubl_invoice("KILL"))
    cand = candidate_for(s.outbox, "KILL.xml")
    expected = evaluate(cand, s)
    before = children.restarts
    pids = children.pids()
    assert len(pids) == 2
    box: Future[Bundle | BaseException] = Future()
    children.submit(cand, s, box.set_result)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert box.result(timeout=120) == expected
    assert in_child(children, cand, s) == expected
    assert children.restarts == before + len(pids)
    assert not set(children.pids()) & set(pids)


def test_readers_that_keep_dying_hand_reading_to_the_daemons_process(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """When reader processes die again and again without a result between (here at the
    first death), reading goes on on threads of the daemon's process: the bundle's
    real result, not an error."""
    monkeypatch.setattr(readers, "RESTARTS_IN_ROW", 0)
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 1})
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    try:
        drop_bundle(s.outbox.path, "DIE", {"a.pdf": pdf_bytes()}, ubl_invoice("DIE"))
        cand = candidate_for(s.outbox, "DIE.xml")
        [pid] = r.pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), what="the reader to die")
        assert in_child(r, cand, s) == evaluate(cand, s)
        assert not r.processes
    finally:
        r.stop()


def test_evaluate_waits_for_a_child_and_raises_its_input_error(children: Readers,
                                                               root: Path) -> None:
    """The blocking form (a delivery worker reading a claimed bundle after a restart)
    returns the Bundle, and raises an unreadable invoice file's InputError as such."""
    s = settings_for(root)
    drop_bundle(s.outbox.path, "WAIT", {}, ubl_invoice("WAIT"))
    assert children.evaluate(candidate_for(s.outbox, "WAIT.xml"), s) == \
        evaluate(candidate_for(s.outbox, "WAIT.xml"), s)
    (s.outbox.path / "GONE.xml").symlink_to(s.outbox.path / "nowhere.xml")
    with pytest.raises(InputError):
        children.evaluate(candidate_for(s.outbox, "GONE.xml"), s)


def claimed(s: Settings, name: str) -> tuple[Candidate, Path]:
    """The bundle `name` dropped into the outbox, claimed into a work folder of its own:
    what a conversion at delivery is given (it reads images only below that folder)."""
    work = s.outbox.path.parent / f"work-{name}"
    return claim(candidate_for(s.outbox, f"{name}.xml"), work, with_marker=False), work


def print_bundle(s: Settings, name: str) -> tuple[Candidate, Bundle, Path]:
    """A bundle with a PNG on external print, claimed into its work folder and validated
    there with convert_images on (its PDF recorded, not written yet)."""
    drop_bundle(s.outbox.path, name, {"scan.png": png_300_dpi(),
                                      "attachments.toml": b'channel = "external-print"\n'},
                ubl_invoice(name))
    cand, work = claimed(s, name)
    bundle = evaluate(cand, s)
    assert not bundle.errors and bundle.attachments[0].converted is not None
    return cand, bundle, work


def not_here(*_: object) -> bytes:
    raise AssertionError("an image was converted in the daemon's own process")


def test_a_claimed_bundles_images_are_converted_into_its_work_folder_in_a_child(
        children: Readers, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """materialise (a delivery worker waiting) writes the PDF validation recorded into
    NAME.converted/ of the work folder and points the attachment there, while the image
    converter of this process is never called. A write that fails comes back as the
    OSError it is (retried), an image changed since validation as processing-damaged."""
    s = settings_for(root, validation={"convert_images": True})
    cand, bundle, work = print_bundle(s, "CONV")
    monkeypatch.setattr(convert, "image_to_pdf", not_here)
    got = children.materialise(cand, bundle, work, s)
    [att] = got.attachments
    assert att.converted is not None and att.converted.path == work / "CONV.converted/scan.pdf"
    assert hashlib.sha256(att.converted.path.read_bytes()).hexdigest() == att.converted.sha256
    assert got == replace(bundle, attachments=(att,))

    blocked = root / "work-is-a-file"
    blocked.write_bytes(b"")
    with pytest.raises(OSError):
        children.materialise(cand, bundle, blocked, s)

    buf = io.BytesIO()
    Image.new("RGB", (30, 30), "black").save(buf, "PNG", dpi=(300, 300))
    (work / "CONV" / "scan.png").write_bytes(buf.getvalue())
    att.converted.path.unlink()  # not written yet: converted again, from the new image
    with pytest.raises(InputError) as damaged:
        children.materialise(cand, bundle, work, s)
    assert (damaged.value.code, damaged.value.file) == ("processing-damaged", "CONV/scan.png")


def resident_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss, hwm = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    return rss, hwm


def test_a_reader_gives_back_the_memory_a_large_image_took_once_converted(
        tmp_path: Path) -> None:
    """Decoding a 6000 x 6000 image for its PDF takes a reader's memory up by over 100 MB;
    a reader lives as long as the daemon, so once the conversions of validation and
    delivery are answered, it holds less than half that peak again (it kept all of it)."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"},
                     service={"reader_processes": 1}, validation={"convert_images": True})
    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000), "white").save(buf, "PNG", dpi=(300, 300))
    drop_bundle(s.outbox.path, "BIG", {"scan.png": buf.getvalue(),
                                       "attachments.toml": b'channel = "external-print"\n'},
                ubl_invoice("BIG"))
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    try:
        [pid] = r.pids()
        cand, work = claimed(s, "BIG")
        bundle = in_child(r, cand, s)
        assert isinstance(bundle, Bundle) and bundle.attachments[0].converted is not None
        r.materialise(cand, bundle, work, s)
        # The answer goes out before the memory is given back: wait for the reader.
        _, peak = wait_for(lambda: (m := resident_mb(pid))[0] < m[1] / 2 and m, timeout=30,
                             what="the reader's memory back below half its peak")
        assert peak > 150, f"the conversion never took the memory it should ({peak:.0f} MB)"
    finally:
        r.stop()


def test_a_reader_gives_back_the_memory_a_large_batch_file_took(tmp_path: Path) -> None:
    """Reading a batch file of thousands of invoices (its XML tree) takes a reader's
    memory up by over 100 MB; a reader lives as long as the daemon, so once the read is
    answered it gives most of that back (it kept it: a 45 MB batch left a reader 270 MB
    larger for good)."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"},
                     service={"reader_processes": 1})
    batch = b"<Batch>" + b"".join(ubl_invoice(f"B-{n}").split(b"?>", 1)[1]
                                  for n in range(6000)) + b"</Batch>"
    (s.outbox.path / "BATCH.xml").write_bytes(batch)
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    try:
        [pid] = r.pids()
        before, _ = resident_mb(pid)
        bundle = in_child(r, candidate_for(s.outbox, "BATCH.xml"), s)
        assert isinstance(bundle, Bundle) and len(bundle.invoice_file.invoice_ids) == 6000
        # The answer goes out before the memory is given back: wait for the reader.
        _, peak = wait_for(lambda: (m := resident_mb(pid))[0] < before + (m[1] - before) / 2
                           and m, timeout=30, what="the reader's memory back below half its "
                           "growth")
        assert peak - before > 100, f"the read never took the memory it should ({peak:.0f} MB)"
    finally:
        r.stop()


def test_stop_leaves_no_reader_process(tmp_path: Path) -> None:
    """After stop() every reader process has exited, and a later call is answered
    (the daemon is stopping) instead of hanging."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 2})
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    pids = r.pids()
    assert len(pids) == 2 and all(alive(p) for p in pids)
    r.stop()
    assert not any(alive(p) for p in pids)
    box: Future[Bundle | BaseException] = Future()
    r.submit(candidate_for(s.outbox, "X.xml"), s, box.set_result)
    assert isinstance(box.result(timeout=5), ReaderFailed)


def test_where_no_child_can_start_reads_run_on_threads_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No child process can start (a sandbox) or no interpreter to start: configure() says so
    once and reads on threads of this process, with the same result, pre-flight
    included."""
    import multiprocessing

    def no_children(method: str) -> object:
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(multiprocessing, "get_context", no_children)
    warnings: list[str] = []
    s = settings_for(tmp_path)
    r = Readers(tmp_path / "state" / "einvoice")
    monkeypatch.setattr(r, "log", type("L", (), {
        "warning": lambda self, event, **kw: warnings.append(event)})())
    r.configure(s)
    try:
        assert not r.processes
        assert len(warnings) == 1 and "daemon's own process" in warnings[0]
        drop_bundle(s.outbox.path, "T", {}, BROKEN["wrong-totals"][0])
        cand = candidate_for(s.outbox, "T.xml")
        done = threading.Event()
        got: list[Bundle | BaseException] = []
        r.submit(cand, s, lambda result: (got.append(result), done.set()))
        assert done.wait(60)
        assert got == [evaluate(cand, s)]
        assert isinstance(got[0], Bundle)
        assert any("[BR-CO-15]" in f.message for f in got[0].errors)
    finally:
        r.stop()


def test_reader_processes_zero_reads_on_threads_and_auto_is_at_most_two(
        tmp_path: Path) -> None:
    """[service] reader_processes = 0 starts no child; "auto" is min(2, CPUs)."""
    s = settings_for(tmp_path, einvoice={"preflight": "off"}, service={"reader_processes": 0})
    r = Readers(tmp_path / "state" / "einvoice")
    r.configure(s)
    try:
        assert not r.processes and r.pids() == []
        write(s.outbox.path / "Z.xml", ubl_invoice("Z"))
        assert r.evaluate(candidate_for(s.outbox, "Z.xml"), s).invoice_ids == ("Z",)
    finally:
        r.stop()
    auto = settings_for(tmp_path)
    assert readers.workers_for(auto) == min(2, os.cpu_count() or 1)


def test_a_reload_whose_new_readers_cannot_start_keeps_the_running_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload to 2 readers where no child process can start any more (the interpreter
    gone from under it by an upgrade, say): the one reader running goes on reading, the
    warning says so and why — not every read moved into the daemon's own process. The
    next configure tries again."""
    s, r, said = one_reader(tmp_path)
    try:
        [pid] = r.pids()
        monkeypatch.setattr(multiprocessing.spawn, "get_executable",
                            lambda: str(tmp_path / "no-python"))
        more = settings_for(tmp_path, einvoice={"preflight": "off"},
                            service={"reader_processes": 2})
        r.configure(more)
        assert r.processes and r.pids() == [pid]
        [(event, fields)] = said
        assert event == ("reader processes not changed: no new child process can be "
                         "started here; the ones running go on")
        assert "no-python" in fields["error"] and fields["running"] == 1
        write(s.outbox.path / "K.xml", ubl_invoice("K"))
        assert r.evaluate(candidate_for(s.outbox, "K.xml"), more).invoice_ids == ("K",)
        monkeypatch.undo()
        r.configure(more)
        assert len(r.pids()) == 2 and pid not in r.pids()
    finally:
        r.stop()


def test_sigterm_leaves_no_child_process(env: Any, start_daemon: Any) -> None:
    """SIGTERM: the daemon exits 0 and none of its child processes is left."""
    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"})
    daemon = start_daemon()
    kids = child_pids(daemon.popen.pid)
    assert readers_of(kids)
    assert daemon.stop(signal.SIGTERM) == 0
    # The readers are joined before the daemon exits; multiprocessing's resource
    # tracker exits when it sees the daemon's end of its pipe close, a moment later.
    wait_for(lambda: not any(alive(p) for p in kids), timeout=10,
             what="the daemon's children to exit")


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def readers_of(pids: list[int]) -> list[int]:
    """The reader processes among pids (not multiprocessing's resource tracker)."""
    def cmdline(p: int) -> bytes:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            return b""
    return [p for p in pids if b"spawn_main" in cmdline(p)]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_to_the_process_group_reach_only_the_daemon(env: Any, tmp_path: Path,
                                                            stop: int) -> None:
    """A terminal's Ctrl-C and hangup, or a stop sent to the whole group (a supervisor's
    killpg): SIGHUP reloads the daemon and leaves its readers as they are; SIGINT or
    SIGTERM stops it with exit 0, without a reader's traceback, a reader restart, or a
    child left behind."""
    import subprocess

    from conftest import OUTBOXD, START_DEADLINE
    env.write_config("http://127.0.0.1:9/x", einvoice={"preflight": "off"})
    log = tmp_path / "group.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*OUTBOXD, "run", "-c", str(env.config)], stderr=fh,
                                stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: "outboxd running" in log.read_text(), timeout=START_DEADLINE,
                 what="the daemon to start")
        kids = readers_of(child_pids(proc.pid))
        assert kids
        os.killpg(proc.pid, signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in log.read_text(), what="the reload")
        assert readers_of(child_pids(proc.pid)) == kids
        os.killpg(proc.pid, stop)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "reader process died" not in text
    assert not [p for p in kids if alive(p)]


def test_checks_after_a_claim_are_yielded_in_order_as_each_comes_back(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """assemble_many sends every check at once and yields each result as soon as it and
    those before it are back: the first bundle of a batch goes to delivery while a later
    one is still being checked."""
    r = Readers(tmp_path)
    answers: list[Any] = []
    monkeypatch.setattr(r, "_route_all", lambda calls: answers.extend(c.done for c in calls))
    s = settings_for(tmp_path)
    jobs = [(cand, Bundle(InvoiceFile(cand.invoice, cand.invoice.name, 1, "a" * 64, "ubl",
                                      (cand.name,)), None, (), "e-invoice"))
            for cand in (candidate_for(s.outbox, f"INV-{i}.xml") for i in range(3))]
    first, second = object(), object()
    results = r.assemble_many(jobs, s)
    assert len(answers) == 3  # all sent before any is waited for
    answers[0](first)
    assert next(results) is first  # 1 and 2 not answered yet
    answers[2](OSError(2, "gone"))
    answers[1](second)
    assert next(results) is second
    assert isinstance(next(results), OSError)


@pytest.mark.parametrize("processes", [1, 0])
def test_a_commands_job_runs_in_the_reader_and_its_answer_or_error_comes_back(
        tmp_path: Path, processes: int) -> None:
    """Readers.read (a command's own read, actions/reads.py) runs the job in the reader
    process — another process than this one — or, with reader_processes = 0, here, as
    evaluate does; its result comes back as it is, and an InputError it raises is raised
    to the caller with its code and file."""
    import reader_targets
    s = settings_for(tmp_path, einvoice={"preflight": "off"},
                     service={"reader_processes": processes})
    drop_bundle(s.outbox.path, "J1", {"a.pdf": pdf_bytes()}, ubl_invoice("J1"))
    cand = candidate_for(s.outbox, "J1.xml")
    r = Readers(None)
    r.configure(s, engine=False)
    try:
        pid = r.read(cand, s, reader_targets.pid_of_reader)
        assert (pid != os.getpid()) == bool(processes) and (pid in r.pids()) == bool(processes)
        with pytest.raises(InputError) as info:
            r.read(cand, s, reader_targets.refuses)
        assert (info.value.code, info.value.file) == ("pdf-unreadable", "J1.xml")
    finally:
        r.stop()


def test_a_check_not_back_in_time_or_failed_by_its_reader_is_made_in_this_thread(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The checks after a claim wait CHECK_WAIT in all (the loop waits on them): one
    not answered by then (a reader stuck in a hostile PDF), or answered with the
    reader's own failure (it died), is made here, in this thread, so the claim is
    decided; an answer about the files (an InputError) is taken as it came."""
    r = Readers(tmp_path)
    answers: list[Any] = []
    monkeypatch.setattr(r, "_route_all", lambda calls: answers.extend(c.done for c in calls))
    monkeypatch.setattr(readers, "CHECK_WAIT", 0.0)
    here: list[str] = []

    def evaluate_here(cand: Candidate, settings: Settings, known: Any) -> str:
        here.append(cand.name)
        return f"checked here: {cand.name}"
    monkeypatch.setattr(r, "_evaluate_here", evaluate_here)
    s = settings_for(tmp_path)
    jobs = [(cand, Bundle(InvoiceFile(cand.invoice, cand.invoice.name, 1, "a" * 64, "ubl",
                                      (cand.name,)), None, (), "e-invoice"))
            for cand in (candidate_for(s.outbox, f"INV-{i}.xml") for i in range(3))]
    refused = InputError("invalid-xml", "INV-2.xml", "is not well-formed")
    results = r.assemble_many(jobs, s)
    answers[1](ReaderFailed("a reader process died"))
    answers[2](refused)
    assert list(results) == ["checked here: INV-0", "checked here: INV-1", refused]
    assert here == ["INV-0", "INV-1"]


def test_a_reader_process_the_system_refuses_to_start_is_said_in_words_not_as_an_errno(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No child process can be started because the system refuses one (EAGAIN: the
    user's process limit): the warning says why in words, as archiving/ says an OSError
    — "Resource temporarily unavailable", not "BlockingIOError: [Errno 11] …"."""
    import errno
    import multiprocessing

    def refused(method: str) -> object:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    monkeypatch.setattr(multiprocessing, "get_context", refused)
    said: list[dict[str, Any]] = []
    s = settings_for(tmp_path, einvoice={"preflight": "off"})
    r = Readers(tmp_path / "state" / "einvoice")
    monkeypatch.setattr(r, "log", type("L", (), {
        "warning": lambda self, event, **kw: said.append({"event": event, **kw})})())
    r.configure(s)
    try:
        [warned] = said
        assert "daemon's own process" in warned["event"]
        assert warned["error"] == "Resource temporarily unavailable"
    finally:
        r.stop()
