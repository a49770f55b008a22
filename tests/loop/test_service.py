"""The loop's mechanics, without timing (fakeloop: a fake clock, a fake watcher, reads
done inline, counts of its work): timers, claims, reloads, and a stop asked for during
the start. How hints and the rescan become dirty bundles is test_changes.py; a read's
result under a reload, test_offloop.py; the stop sequence is test_stopping.py.
"""

from __future__ import annotations

import errno
import functools
import importlib
import inspect
import json
import os
import pkgutil
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import (  # noqa: E402
    RESCAN,
    SETTLE,
    Counts,
    FakeClock,
    FakeWatcher,
    Inline,
    settle_all,
    stop,
)
from helpers import (  # noqa: E402
    fake_mountinfo,
    pdf_bytes,
    published,
    refuse_stat,
    ubl_invoice,
    wait_for,
    write,
)

import daemon  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.configuration.deciding import RENEW  # noqa: E402
from daemon.delivery.finish import Finisher  # noqa: E402
from daemon.errors import OutboxdError  # noqa: E402
from daemon.journal import Journal  # noqa: E402
from daemon.journal.records import IN_FLIGHT, STATES  # noqa: E402
from daemon.loop.changes import RESCAN as RESCAN_KEY  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.loop.service import Service  # noqa: E402
from daemon.reading.reader_pool import Pool  # noqa: E402
from daemon.reading.readers import Readers  # noqa: E402
from daemon.watching.sharecache import LATE_SHARE  # noqa: E402

ALL_STATES = tuple(dict.fromkeys(STATES + IN_FLIGHT))  # every state a journal row can have
# What a part can define besides a plain method, and hide another part's with.
_DESCRIPTORS = (property, staticmethod, classmethod, functools.cached_property)



def _built_of_parts() -> list[type]:
    """Every class of the package built of parts of its own (the mixins a class too long
    for one module is split into): the outermost class of each, whose MRO holds the rest.
    Found by importing the package, so a class split later is checked without a test
    naming it. Exceptions, Protocols and pydantic models subclass to override, by design."""
    classes: set[type] = set()
    for found in pkgutil.walk_packages(daemon.__path__, "daemon."):
        for _, cls in inspect.getmembers(importlib.import_module(found.name), inspect.isclass):
            if (cls.__module__.startswith("daemon.")
                    and not issubclass(cls, (BaseException, BaseModel))
                    and not getattr(cls, "_is_protocol", False)
                    and any(base.__module__.startswith("daemon.") for base in cls.__bases__)):
                classes.add(cls)
    parts = {base for cls in classes for base in cls.__mro__[1:]}
    return sorted(classes - parts, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


BUILT_OF_PARTS = _built_of_parts()


def test_every_class_built_of_parts_is_found() -> None:
    """The search below finds the classes known to be made of parts (else the check that
    follows would pass by checking nothing)."""
    assert {Service, Pipeline, Finisher, Readers, Journal, Pool} <= set(BUILT_OF_PARTS)


@pytest.mark.parametrize("whole", BUILT_OF_PARTS, ids=lambda cls: cls.__qualname__)
def test_no_method_is_defined_by_two_parts_of_the_service(whole: type) -> None:
    """Service is made of parts (Changes, ReadsOffLoop, Reloading, Stopping), and so are
    its Pipeline (Decisions, Claims, Stranded), the Finisher (Moves, Recovery, Retries,
    SentElsewhere, BeforePost, Delivered), Readers (Lifecycle), the Journal and every
    other class of the package built of parts: a method (or property) that one part
    needs of another, or of the whole, is declared for mypy only, never defined as a
    stand-in, which would hide the real one if the bases were put in another order (or
    the real one left)."""
    owners: dict[str, list[str]] = {}
    for part in whole.__mro__:
        for name, value in vars(part).items():
            if (inspect.isfunction(value) or isinstance(value, _DESCRIPTORS)) \
                    and not name.startswith("__"):
                owners.setdefault(name, []).append(part.__name__)
    assert {name: parts for name, parts in owners.items() if len(parts) > 1} == {}


def test_a_settle_deadline_fires_once(make_service: Any, clock: FakeClock, counts: Counts,
                                      tmp_path: Path) -> None:
    """A new bundle is stepped when its event arrives and again exactly once when its quiet
    period can have ended — not on turns in between, and not after."""
    svc = make_service()
    t0 = clock.t
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    svc.turn()  # stepped, and (the first version seen) handed to a reader at once
    assert counts.steps == ["INV-1.xml"] and counts.reads == 1
    assert svc.timers.due_at(("bundle", "INV-1.xml")) == t0 + SETTLE

    for t in (1.0, 2.5, 4.9):  # the read's result comes back: no step before the deadline
        clock.t = t0 + t
        svc.turn()
    assert counts.steps == ["INV-1.xml"]

    clock.t = t0 + SETTLE
    svc.turn()  # the deadline: stepped, found settled and read, decided (waiting, hold)
    assert counts.steps == ["INV-1.xml"] * 2 and counts.reads == 1
    assert svc.timers.due_at(("bundle", "INV-1.xml")) is None
    assert svc.journal.summary().get("waiting") == 1

    for t in (6.0, 30.0, 59.0):
        clock.t = t0 + t
        svc.turn()
    assert counts.steps == ["INV-1.xml"] * 2


def test_a_claim_that_fails_is_retried_on_the_loop_clock(make_service: Any, clock: FakeClock,
                                                         counts: Counts,
                                                         tmp_path: Path) -> None:
    """A claim that cannot move files is retried when a rescan period has passed on the
    loop's own clock (at 0 as at 10⁹) — not sooner, even on an event — and the bundle is
    then delivered."""
    svc = make_service()
    processing = svc.settings.processing_dir
    processing.rmdir()
    write(processing, b"not a folder")
    write(tmp_path / "outbox" / "INV-1" / "a.pdf", pdf_bytes())
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    t0 = clock.t
    settle_all(svc, clock)
    due = svc.timers.due_at(("bundle", "INV-1.xml"))
    assert due is not None and t0 + RESCAN <= due <= clock.t + RESCAN
    assert (tmp_path / "outbox" / "INV-1.xml").exists()

    processing.unlink()
    processing.mkdir()
    clock.t = due - 1
    svc.hint("INV-1")  # an event before the pause is over: looked at, not claimed yet
    svc.turn()
    assert (tmp_path / "outbox" / "INV-1.xml").exists()
    clock.t = due
    svc.turn()
    assert not (tmp_path / "outbox" / "INV-1.xml").exists()  # claimed

    def sent() -> Any:
        """The bundle's row once it is sent: its state in one read, as a delivery thread
        moves it meanwhile (two reads could see it in two states, or in none)."""
        [row] = [r for r in svc.journal.rows(ALL_STATES) if r.invoice_file == "INV-1.xml"]
        return row if row.state == "sent" else None

    # The worker threads deliver and archive it on their own: no loop turn, no clock step.
    row = wait_for(sent, what="the retried claim to be delivered and archived")
    assert (tmp_path / "target" / row.bundle_id / "INV-1.xml").exists()


@pytest.mark.parametrize("escapes", [RuntimeError("a bug"), OutboxdError("said plainly")],
                         ids=["unexpected", "outboxd-error"])
def test_an_error_a_delivery_attempt_lets_escape_is_a_bundle_event_with_its_keys(
        make_service: Any, clock: FakeClock, tmp_path: Path, escapes: Exception) -> None:
    """docs/operations.md, Logs: every bundle event carries bundle_id, invoice_file and
    invoice_ids. An error that escapes a delivery attempt (a bug, an OutboxdError said
    plainly) was logged by the delivery worker with the journal's row number alone — the
    admin could not tell which invoice it was about. Now its line names the bundle like any
    other."""
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service(unattached="send")

    def attempt(row_id: int) -> float | None:
        raise escapes
    svc.pipeline.finish.attempt = attempt  # type: ignore[method-assign]
    with capture_logs() as records:
        settle_all(svc, clock)
        event = "unexpected error while delivering" if isinstance(escapes, RuntimeError) \
            else "delivery step failed"
        [line] = wait_for(lambda: [r for r in records if r["event"] == event],
                          what="the worker's line about the failed attempt")
    [row] = svc.journal.rows(ALL_STATES)
    assert (line["bundle_id"], line["invoice_file"], line["invoice_ids"]) == \
        (row.bundle_id, "INV-1.xml", ["INV-1"])
    assert len(line["bundle_id"]) == 64 and line["row"] == row.id


def test_the_same_content_twice_in_one_turn_is_one_send_and_one_duplicate(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """Two invoice files with the same bytes (a copy under another name) decided in one
    turn of the loop: the claims are made together at its end, yet the second is still
    seen as a duplicate of the first (duplicates = "quarantine", the default)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(outbox / "INV-1 copy.xml", ubl_invoice("INV-1"))
    svc = make_service(unattached="send")
    settle_all(svc, clock)
    rows = svc.journal.rows(("claiming", "delivering", "delivered", "sent", "quarantining",
                             "quarantined"))
    reasons = {r.invoice_file: [x["code"] for x in r.reasons] for r in rows}
    assert sorted(reasons.values()) == [[], ["duplicate"]], reasons


def test_a_reload_names_the_settings_that_wait_for_the_next_start(
        make_service: Any, tmp_path: Path) -> None:
    """SIGHUP with a new watch mode and concurrency: the watcher and the delivery threads
    are made at start, so the reload logs one warning naming exactly those settings,
    and takes the rest of the file."""
    svc = make_service()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "outbox"}"\nsettle_seconds = {SETTLE}\n'
        f'rescan_seconds = {RESCAN}\nwatch = "polling"\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        '[policy]\nunattached = "hold"\nduplicates = "send"\n'
        f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n'
        'concurrency = 2\n')
    svc.config_path = config
    svc._request_reload()
    with capture_logs() as logs:
        svc.turn()
    [warning] = [e for e in logs if e["event"] == "these settings take effect at the next start"]
    assert warning["settings"] == ["[outbox] watch", "[delivery] concurrency"]
    assert svc.settings.policy.duplicates == "send"


def test_a_stop_asked_for_while_the_readers_start_is_a_clean_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while open() starts the readers (a second or two before READY): the
    daemon's handler is already in place, so the stop is recorded for the loop (a clean
    exit) instead of the signal's default ending the process."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")})
    svc = Service(s, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline())
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                       signal.SIGHUP)}
    # Stands in for the default (death) while the test runs: it would be called instead
    # of the daemon's handler if the signal came before the daemon installed its own.
    signal.signal(signal.SIGTERM, lambda *_: None)
    monkeypatch.setattr(svc, "_start_rules",
                        lambda _s: os.kill(os.getpid(), signal.SIGTERM))
    try:
        svc.open()
        assert svc._stopping
    finally:
        svc._shutdown()
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_a_bundle_that_cannot_be_looked_at_is_said_plainly_and_looked_at_again(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The look at a waiting bundle fails (its invoice file's lstat refused: a share's
    hiccup, a folder's permissions): one error line naming the file, with no traceback,
    and the bundle is looked at again at the rescan interval, without an event (before:
    an "unexpected error" traceback, and the bundle left until something changed)."""
    outbox = tmp_path / "outbox"
    invoice = write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    settle_all(svc, clock)
    assert svc.pipeline.live["INV-1.xml"].state == "waiting"
    real_lstat = os.lstat

    def refused(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(path) == str(invoice):
            raise OSError(5, "Input/output error", str(invoice))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", refused)
    svc.timers.at(("bundle", "INV-1.xml"), clock.t)  # as a settle or wait timer would
    with capture_logs() as logs:
        svc.turn()
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert line["invoice_file"] == "INV-1.xml" and "exc_info" not in line
    assert "Input/output error" in line["error"] and str(invoice) in line["error"]
    due = svc.timers.due_at(("bundle", "INV-1.xml"))
    assert due == clock.t + RESCAN
    monkeypatch.setattr(os, "lstat", real_lstat)
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())  # no event: the fake watcher is silent
    clock.t = due
    settle_all(svc, clock)
    assert svc.pipeline.live.get("INV-1.xml") is None  # claimed
    # Delivered by a worker thread, after the turn that handed it over.
    [bundle] = wait_for(lambda: published(tmp_path / "target"),
                        what="the bundle published in the directory target")
    assert (bundle / "INV-1.xml").read_bytes() == ubl_invoice("INV-1")


def test_the_start_clears_what_a_killed_run_left_half_written_in_the_directory_target(
        make_service: Any, tmp_path: Path) -> None:
    """A daemon killed while it wrote a bundle and a document to the directory target
    left `.tmp-BUNDLEID/` and `.NAME.tmp-…` there; one whose bundle never comes again
    (moved away meanwhile) stayed for good. The next start removes both (no writer holds
    them), and leaves the delivered bundle beside them."""
    target = tmp_path / "target"
    half = target / f".tmp-{'a' * 64}"
    (half / "attachments").mkdir(parents=True)
    (half / "manifest.json").write_text("{}")
    (target / ".INV-1--INV-1.xml.tmp-0123456789ab").write_bytes(b"<Invoice")
    (target / ("b" * 64)).mkdir()
    make_service()
    assert os.listdir(target) == ["b" * 64]


def test_the_start_removes_the_compile_cache_temps_a_killed_run_left(
        make_service: Any, tmp_path: Path) -> None:
    """A daemon (or one of its reader processes) killed while it wrote the e-invoice
    rules' compile cache left a `.tmp-XXXXXXXX.xsl` in the state dir, and each such kill
    one more, holding space the journal needs. The next start, holding the state dir
    before its readers write there, removes them; anything else in the cache stays."""
    cache = tmp_path / "state" / "einvoice"
    cache.mkdir(parents=True)
    (cache / ".tmp-k1ll3d_x.xsl").write_text("<xsl:stylesheet cut short")
    (cache / "notes.txt").write_text("an admin's")
    make_service()
    assert os.listdir(cache) == ["notes.txt"]


def test_the_start_look_at_what_other_daemons_filed_tells_systemd_the_start_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before READY, the start reads every receipt in sent/'s day folders of yesterday,
    today and tomorrow that its journal does not know (a busy shared sent/: thousands):
    it sends EXTEND_TIMEOUT_USEC= (with a STATUS= naming the step) as it goes, as the
    read-back into a new journal does, so systemd's TimeoutStartSec= does not end the start."""
    import socket
    from datetime import UTC, datetime

    from daemon.journal import Journal
    outbox, state = tmp_path / "outbox", tmp_path / "state"
    outbox.mkdir()
    state.mkdir()
    j = Journal(state / "journal.sqlite3")
    j.create("INV-0.xml", "settling")  # not empty: no read-back, only the look
    j.close()
    entry = tmp_path / "sent" / datetime.now(UTC).strftime("%Y-%m-%d") / "INV-1--abababababab"
    entry.mkdir(parents=True)
    (entry / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": "ab" * 32, "invoice_file": {"name": "INV-1.xml"},
                     "invoices": [{"id": "INV-1", "attachments": []}]},
        "response": {"status": 201}, "delivered_at": "2026-01-01T00:00:00.000Z"}))
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(state)},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 einvoice={"preflight": "off"})
    svc = Service(s, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
        try:
            svc.open()
            assert svc.journal.was_sent("ab" * 32)
        finally:
            svc._shutdown()
        messages = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                break
    [ours] = [m for m in messages if "reading what other daemons filed in sent/" in m]
    assert ours.startswith("STATUS=starting: ")
    assert "EXTEND_TIMEOUT_USEC=90000000" in ours.splitlines()


@pytest.mark.parametrize("error", [errno.ESTALE, errno.EIO], ids=["ESTALE", "EIO"])
def test_an_invoice_file_the_start_cannot_look_at_is_still_its_bundle(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """INV-1 is held (its errors file beside it) when outboxd stops; at the next start the
    lstat of INV-1.xml fails as a share's trouble makes it. The daemon starts and decides
    INV-2; INV-1's row is not closed as gone nor its errors file removed (before: the
    start's listing left the file out, so its bundle was "not in the outbox at start"),
    and once the file can be looked at it is still held, on the same row."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", b"<Invoice>broken")
    first = make_service(invalid="hold")
    settle_all(first, clock)
    [held] = first.journal.rows(("held",))
    errors_file = outbox / "INV-1.errors.txt"
    assert errors_file.is_file()
    first.request_stop()
    first._shutdown()

    write(outbox / "INV-2.xml", ubl_invoice("INV-2"))
    with monkeypatch.context() as m:
        refuse_stat(m, {"INV-1.xml"}, error)
        real_lstat = os.lstat

        def lstat(path: Any, *a: Any, **kw: Any) -> os.stat_result:
            if os.path.basename(path) == "INV-1.xml":
                raise OSError(error, os.strerror(error), str(path))
            return real_lstat(path, *a, **kw)
        m.setattr(os, "lstat", lstat)
        svc = make_service(invalid="hold")
        settle_all(svc, clock)
        assert svc.journal.get(held.id).state == "held" and errors_file.is_file()
        assert svc.journal.summary().get("waiting") == 1  # INV-2
    due = svc.timers.due_at(RESCAN_KEY)
    assert due is not None
    clock.t = due
    settle_all(svc, clock)
    assert svc.journal.get(held.id).state == "held" and errors_file.is_file()


def test_an_outbox_share_caching_longer_than_the_settle_time_is_warned_of_at_start_and_reload(
        make_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox on NFS at its defaults (a minute's cache), settle_seconds 5: one warning
    at the start naming the mount, the values and the fix, and one again at a reload; a
    reload once the share is mounted with actimeo=1 says nothing more."""
    outbox = os.path.realpath(tmp_path / "outbox")
    table = {"options": ""}
    fake_mountinfo(monkeypatch, lambda: "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                   f"40 22 0:51 / {outbox} rw - nfs4 srv:/finance rw,vers=4.2,"
                   f"{table['options']}hard\n")
    with capture_logs() as logs:
        svc = make_service()
    [warning] = [e for e in logs if e["event"] == LATE_SHARE]
    assert warning["log_level"] == "warning"
    assert warning["mount"] == f"nfs4 srv:/finance mounted at {outbox}"
    assert warning["cache_seconds"] == 60 and warning["settle_seconds"] == SETTLE
    assert warning["fix"].startswith("set [outbox] settle_seconds above 60")
    svc.config_path = tmp_path / "config.toml"
    svc.config_path.write_text(
        f'[outbox]\npath = "{tmp_path / "outbox"}"\nsettle_seconds = {SETTLE}\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n')
    for options, warned in (("", 1), ("acregmin=1,acregmax=1,acdirmin=1,acdirmax=1,", 0)):
        table["options"] = options
        svc._request_reload()
        with capture_logs() as logs:
            svc.turn()
        assert any(e["event"] == "configuration reloaded" for e in logs)
        assert len([e for e in logs if e["event"] == LATE_SHARE]) == warned, options



def test_lists_that_refuse_every_attachment_are_warned_of_at_start_and_at_a_reload(
        tmp_path: Path, clock: FakeClock) -> None:
    """[validation] allowed_types = [] and [attachments] document_types = []: the daemon
    starts (both are valid) and logs each warning `outboxd config` prints, word for
    word, once at the start and once again at a reload that keeps them; a reload that
    mends them says nothing more. An admin who never ran `config` was told nothing
    until every bundle with attachments was refused."""
    from daemon.configuration.config_warnings import list_warnings
    (tmp_path / "outbox").mkdir()
    common = (f'[outbox]\npath = "{tmp_path / "outbox"}"\n'
              f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
              f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n'
              '[einvoice]\npreflight = "off"\n')
    empty = "[validation]\nallowed_types = []\n[attachments]\ndocument_types = []\n"
    s = Settings(outbox={"path": str(tmp_path / "outbox")},
                 paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 validation={"allowed_types": []}, attachments={"document_types": []},
                 einvoice={"preflight": "off"})
    said = list_warnings(s)
    assert len(said) == 2 and "allowed_types is empty" in said[1]
    assert "document_types is empty" in said[0]
    svc = Service(s, clock=clock, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline())
    try:
        with capture_logs() as logs:
            svc.open()
        assert [e for e in logs if e["event"] in said] == [
            {"event": w, "log_level": "warning"} for w in said]
        svc.config_path = tmp_path / "config.toml"
        for body, warned in ((common + empty, said), (common, [])):
            svc.config_path.write_text(body)
            svc._request_reload()
            with capture_logs() as logs:
                svc.turn()
            assert any(e["event"] == "configuration reloaded" for e in logs)
            assert [e["event"] for e in logs if e["event"] in said] == warned
    finally:
        stop(svc)

@pytest.mark.parametrize("systemd", [True, False])
def test_a_state_dir_under_tmp_under_systemd_is_warned_of_at_start(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, systemd: bool) -> None:
    """Started by systemd (INVOCATION_ID set) with the example's state dir under /tmp,
    which the unit's PrivateTmp= empties at every start: the daemon starts, and logs one
    warning naming the key, the path, why (the journal lost at each restart) and the
    default to set. Started by hand (no INVOCATION_ID), where /tmp lasts, not a word."""
    if systemd:
        monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    else:
        monkeypatch.delenv("INVOCATION_ID", raising=False)
    state = Path(tempfile.mkdtemp(prefix="outboxd-trial-", dir="/tmp")) / "state"
    (tmp_path / "outbox").mkdir()
    s = Settings(outbox={"path": str(tmp_path / "outbox")}, paths={"state_dir": str(state)},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 einvoice={"preflight": "off"})
    svc = Service(s, clock=clock, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline())
    try:
        with capture_logs() as logs:
            svc.open()
        warned = [e["event"] for e in logs if "PrivateTmp=" in e["event"]]
        assert all(e["log_level"] == "warning" for e in logs if "PrivateTmp=" in e["event"])
    finally:
        stop(svc)
        shutil.rmtree(state.parent, ignore_errors=True)
    if not systemd:
        assert warned == []
        return
    [line] = warned
    assert line.startswith(f'[paths] state_dir = "{state}" is under /tmp'), line
    assert "journal" in line and "lost at each restart" in line, line
    assert 'state_dir = "/var/lib/outboxd" (the default)' in line, line


def test_a_waiting_bundle_released_leaves_no_timer_behind(make_service: Any, clock: FakeClock,
                                                          tmp_path: Path) -> None:
    """A bundle waiting for its attachments is stepped again at its wait deadline (an hour
    here); released with NAME.send-anyway and claimed before it, the bundle has left the
    outbox, and its timer goes with it — kept, each released bundle left one entry until
    its deadline (hours or days at a long attachment_wait_seconds)."""
    svc = make_service(unattached="warn", attachment_wait_seconds=3600)
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")
    settle_all(svc, clock)
    assert svc.journal.summary().get("waiting") == 1
    assert svc.timers.due_at(("bundle", "INV-1.xml")) is not None  # its wait deadline

    write(outbox / "INV-1.send-anyway", b"")
    svc.hint("INV-1.send-anyway")
    settle_all(svc, clock)
    assert not (outbox / "INV-1.xml").exists()  # released and claimed
    assert svc.timers.due_at(("bundle", "INV-1.xml")) is None


def test_the_fingerprint_is_renewed_hourly_whatever_the_rescan_period(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """Renewed at rescans alone, a daemon with rescan_seconds of a day or more (a large
    outbox watched by inotify) left its fingerprint unrenewed for that long, and the other
    daemons on the outbox said it "probably runs no more" while it ran. It is renewed on
    its own timer, an hour (deciding.RENEW) on the loop clock after the last write: one a
    clerk removed is back then, though no rescan comes for days."""
    svc = make_service()
    t0 = clock.t
    svc.timers.at(RESCAN_KEY, t0 + 2 * 86400)  # as rescan_seconds = 172800
    ours = tmp_path / "outbox" / ".outboxd" / "deciding" / f"{svc.deciding.tag}.json"
    assert ours.exists()
    ours.unlink()
    clock.t = t0 + RENEW - 1
    svc.turn()
    assert not ours.exists()  # not more often than RENEW
    clock.t = t0 + RENEW
    svc.turn()
    assert json.loads(ours.read_bytes())["daemon"] == svc.deciding.tag
    ours.unlink()  # and every hour after that, not once
    clock.t = t0 + 2 * RENEW
    svc.turn()
    assert json.loads(ours.read_bytes())["daemon"] == svc.deciding.tag


def test_a_stop_asked_for_while_a_turn_steps_bundles_steps_no_more_and_claims_nothing(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """SIGTERM while a turn steps its bundles: no further bundle is stepped, and the claim
    decided for the one stepped is not made (the next start decides it again), so the
    stop is not held up by the rest of the turn and nothing is half-claimed."""
    outbox = tmp_path / "outbox"
    for n in range(3):
        write(outbox / f"INV-{n}.xml", ubl_invoice(f"INV-{n}"))
    svc = make_service(unattached="send")
    svc.turn()  # the first look: read early
    clock.t += SETTLE
    counts.reset()
    real_step = svc.pipeline.step

    def step_and_stop(*a: Any) -> Any:
        svc.request_stop()
        return real_step(*a)
    svc.pipeline.step = step_and_stop
    svc.turn()
    assert len(counts.steps) == 1
    assert sorted(p.name for p in outbox.glob("INV-*.xml")) == [
        "INV-0.xml", "INV-1.xml", "INV-2.xml"]


def test_a_delivery_brought_forward_is_not_pushed_back_by_a_later_retry(
        make_service: Any, clock: FakeClock) -> None:
    """A row a reload brought forward (due now) keeps that time when its attempt under
    way then asks for its retry an hour later."""
    svc = make_service()
    svc.schedule(42, 0.0)
    svc.schedule(42, 3600.0)
    assert svc.timers.due_at(("deliver", 42)) == clock.t


def test_a_reload_that_narrows_the_patterns_has_the_rescan_sort_every_name_again(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """SIGHUP with invoice_patterns that no longer take INV-1.xml: the rescan the reload
    brings sorts every name of the outbox again, not only new ones, so INV-1.xml is said
    to be left alone (the log, the page's list) instead of passing as an invoice file
    still."""
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    settle_all(svc, clock)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "outbox"}"\nsettle_seconds = {SETTLE}\n'
        f'rescan_seconds = {RESCAN}\ninvoice_patterns = ["*.pdf"]\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        '[policy]\nunattached = "hold"\n'
        f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n')
    svc.config_path = config
    svc._request_reload()
    with capture_logs() as logs:
        svc.turn()
    assert {"event": "not an invoice file; left alone", "file": "INV-1.xml",
            "patterns": ["*.pdf"], "log_level": "info"} in logs
    assert "INV-1.xml" in svc.left_alone.refused


def test_a_bug_met_once_in_a_bundles_step_is_tried_again_at_the_rescan_interval(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """An unexpected error (a bug, here met once) in the step that decides a settled
    bundle: logged with its traceback, and the bundle is stepped again a rescan period
    later, without an event, and claimed then — not left settling for good, as its look
    is unchanged and so no rescan would step it again."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    real_decide, met = svc.pipeline._decide, []

    def decide_with_a_bug(*a: Any) -> Any:
        if not met:
            met.append(clock.t)
            raise RuntimeError("a bug met once")
        return real_decide(*a)
    svc.pipeline._decide = decide_with_a_bug
    with capture_logs() as logs:
        settle_all(svc, clock)
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert line["invoice_file"] == "INV-1.xml" and line["exc_info"]
    assert svc.timers.due_at(("bundle", "INV-1.xml")) == met[0] + RESCAN
    clock.t = met[0] + RESCAN
    settle_all(svc, clock)
    assert svc.pipeline.live.get("INV-1.xml") is None  # claimed
    assert not (outbox / "INV-1.xml").exists()


class TestSentByAnotherDaemon:
    """A bundle this daemon has retrying on a long back-off, which another daemon on the
    same outbox took over and archived after this one's work folder went
    (tests/delivery/test_sentelsewhere.py): the loop closes its row as sent at once —
    at the start, and at the rescan that reads the other's receipt — not at the end of
    its back-off, posting nothing."""

    @staticmethod
    def _service(s: Settings, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Service:
        monkeypatch.setattr(Service, "_install_signals", lambda self: None)
        svc = Service(s, clock=clock, watcher_factory=lambda s, hint: FakeWatcher(),
                      reader=Inline())
        svc.open()
        return svc

    @staticmethod
    def _retrying_an_hour(tmp_path: Path) -> tuple[Pipeline, int, Path]:
        """Daemon B claimed INV-1 and its first POST was answered 503 with Retry-After:
        3600: the row is retrying for an hour; B's pipeline, the row, its work folder."""
        from claimed import Scripted, claimed

        from daemon.errors import Retryable
        b, _s, row = claimed(tmp_path)
        b.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503, retry_after=3600.0))
        assert b.finish.attempt(row) is not None
        assert b.j.get(row).state == "retrying"
        return b, row, Path(b.j.get(row).work_dir or "")

    @staticmethod
    def _state_of(svc: Service, row: int) -> str | None:
        [state] = [r.state for r in svc.journal.rows(ALL_STATES) if r.id == row]
        return state if state == "sent" else None

    def test_such_a_row_is_closed_at_the_start_not_at_the_end_of_its_back_off(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from delivery.test_sentelsewhere import taken_over

        b, row, work = self._retrying_an_hour(tmp_path)
        b.j.close()
        archived = taken_over(tmp_path, work)
        svc = self._service(b.s, monkeypatch, FakeClock(0.0))
        try:
            svc.turn()  # the clock stands still: no back-off ends
            svc.turn()
            wait_for(lambda: self._state_of(svc, row), what="the row closed as sent")
            [closed] = [r for r in svc.journal.rows(ALL_STATES) if r.id == row]
            assert closed.archive_dir == str(archived)
            assert len(published(tmp_path / "target")) == 1  # A's post alone
        finally:
            stop(svc)

    def test_such_a_row_is_closed_at_the_rescan_that_reads_the_receipt(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from delivery.test_sentelsewhere import taken_over

        b, row, work = self._retrying_an_hour(tmp_path)
        b.j.close()
        clock = FakeClock(0.0)
        svc = self._service(b.s, monkeypatch, clock)
        try:
            svc.turn()
            before = len(published(tmp_path / "target"))
            archived = taken_over(tmp_path, work)
            clock.t += svc.settings.outbox.rescan_seconds  # the rescan's turn, nothing else
            assert svc.turn() == 0.0  # the row brought forward: the next turn is at once
            svc.turn()
            wait_for(lambda: self._state_of(svc, row), what="the row closed as sent")
            [closed] = [r for r in svc.journal.rows(ALL_STATES) if r.id == row]
            assert closed.archive_dir == str(archived)
            assert len(published(tmp_path / "target")) == before + 1  # A's post alone
        finally:
            stop(svc)


def test_a_claim_whose_share_was_away_at_the_start_is_delivered_at_the_rescan_after_it_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """outboxd starts while the share holding a half-done claim is away (an empty folder
    where it is mounted): the claim waits, `claiming`. The share comes back; the next
    rescan finishes the claim and the loop hands it to a delivery thread at once — the
    bundle is sent without another restart or change (tests/claiming/test_recovery.py
    has the claim's side)."""
    from claiming.test_recovery import TestRecovery

    p, s, work, row = TestRecovery._half_claimed(tmp_path, pdf_bytes())
    (s.outbox.path / "INV-1").rename(work / "INV-1")  # the whole bundle claimed
    p.j.close()
    away = tmp_path / "away"
    s.outbox.path.rename(away)
    s.outbox.path.mkdir()
    monkeypatch.setattr(Service, "_install_signals", lambda self: None)
    clock = FakeClock(0.0)
    svc = Service(s, clock=clock, watcher_factory=lambda s, hint: FakeWatcher(),
                  reader=Inline())
    svc.open()
    try:
        svc.turn()
        assert [r.state for r in svc.journal.rows(ALL_STATES) if r.id == row] == ["claiming"]
        s.outbox.path.rename(tmp_path / "mountpoint")
        away.rename(s.outbox.path)  # the share is back
        clock.t += s.outbox.rescan_seconds
        svc.turn()  # the rescan: the claim finished, its delivery due at once
        svc.turn()

        def sent() -> Any:
            [state] = [r.state for r in svc.journal.rows(ALL_STATES) if r.id == row]
            return state == "sent" or None

        wait_for(sent, what="the finished claim delivered and archived")
        assert len(published(tmp_path / "target")) == 1
        [archived] = s.sent_dir.glob("*/INV-1--*")
        assert (archived / "INV-1" / "a.pdf").exists()
    finally:
        stop(svc)


def test_a_ready_mark_that_cannot_be_written_is_told_and_status_reads_still_starting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state dir fills up between the start and READY=1 (ENOSPC at outboxd.ready,
    injected): the daemon runs on, a warning says `status` will read it as still starting
    and what to check — and `status` does read it so, not as ready, nor as stopped."""
    import threading

    from daemon.loop import statelock

    real = statelock._mark

    def full_at_ready(path: Path) -> None:
        if path.name == statelock.READY_NAME:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path)

    monkeypatch.setattr(statelock, "_mark", full_at_ready)
    monkeypatch.setattr(Service, "_install_signals", lambda self: None)
    (tmp_path / "outbox").mkdir()
    s = Settings(outbox={"path": str(tmp_path / "outbox")},
                 paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 einvoice={"preflight": "off"})
    svc = Service(s, watcher_factory=lambda s, hint: FakeWatcher(), reader=Inline())
    with capture_logs() as logs:
        thread = threading.Thread(target=svc.run, name="loop")
        thread.start()
        try:
            [warned] = wait_for(lambda: [e for e in logs if e["event"].startswith(
                "cannot record in the state dir that outboxd is ready")],
                what="the warning about the ready mark")
            assert statelock.running(s.paths.state_dir) is True
            assert statelock.readiness(s.paths.state_dir)[0] is False  # "starting"
        finally:
            svc.request_stop()
            thread.join(60)
    assert not thread.is_alive()
    assert warned["log_level"] == "warning" and "No space left" in warned["error"]
    assert "still starting" in warned["event"] and "free space" in warned["fix"]
