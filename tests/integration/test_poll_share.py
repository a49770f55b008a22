"""Polling on a share: `outboxd run` with `watch = "polling"` on a temp outbox and the
reference receiver on 127.0.0.1, driven as a clerk on a network share drives it — copy
tools that keep the source's times, files replaced by others of the same size."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import Env, Receiver, journal_states
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for

pytestmark = pytest.mark.usefixtures("no_attachment_wait")

POLLING = {"watch": "polling", "poll_interval_seconds": 0.2, "rescan_seconds": 600}


def _broken(invoice_id: str) -> bytes:
    """The invoice of `invoice_id` made ill-formed XML at the same length."""
    good = ubl_invoice(invoice_id)
    bad = good.replace(b"<cbc:IssueDate>", b"<cbc:IssueDate ")
    assert bad != good and len(bad) == len(good)
    return bad


def _replace_keeping_size_and_time(path: Path, data: bytes, how: str) -> None:
    """Put `data` in place of the file at path with the file's size and modification time
    kept, as a sync tool copying the source's time does: by a rename of a copy over it, or
    by writing into it."""
    st = os.lstat(path)
    assert len(data) == st.st_size
    if how == "renamed over":
        tmp = path.with_name(f".{path.name}.sync")
        tmp.write_bytes(data)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        tmp.rename(path)
    else:
        with path.open("r+b") as fh:
            fh.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("how", ["renamed over", "written into"])
def test_a_held_invoice_mended_with_its_size_and_time_kept_is_checked_again_and_sent(
        env: Env, receiver: Receiver, start_daemon, how: str) -> None:
    """A bundle held for an ill-formed invoice file is mended by a copy that keeps the
    file's size and modification time (a sync tool copying the source's time): outboxd
    checks it again, as NAME.errors.txt promises ("checked again on every change"), and
    sends it; the errors file goes."""
    env.write_config(receiver.url, outbox=POLLING, policy={"invalid": "hold"})
    start_daemon()
    invoice = env.outbox / "INV-5101.xml"
    invoice.write_bytes(_broken("INV-5101"))
    errors_file = env.outbox / "INV-5101.errors.txt"
    wait_for(lambda: journal_states(env).get("INV-5101.xml") == "held"
             and errors_file.exists(), what="the broken bundle held")

    _replace_keeping_size_and_time(invoice, ubl_invoice("INV-5101"), how)

    [archived] = wait_for(env.sent_bundles, what="the mended bundle sent")
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert [i["id"] for i in manifest["invoices"]] == ["INV-5101"]
    assert (archived / "INV-5101.xml").read_bytes() == ubl_invoice("INV-5101")
    assert not errors_file.exists()


# A share whose clock shows whole seconds (SMB on FAT/ext3 servers, 1-s NFS servers): each
# write is followed by the time such a share would show, as os.utime can set it.
# settle_seconds stays above that grain: a file whose time is cut to the second would
# otherwise look written a quiet period before its change time (SettleTracker.
# written_before) and be read early now and then, a path these tests do not mean to take.
SHARE_POLLING = {**POLLING, "settle_seconds": 1.5}
_SECOND = 1_000_000_000


def _on_a_1s_share(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    """Write `data` to path as a client on a share of whole-second times leaves it: the
    modification time the share shows (`mtime_ns`, or now) cut to the second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("r+b" if path.exists() else "wb") as fh:
        fh.write(data)
        fh.truncate()
    when = os.lstat(path).st_mtime_ns if mtime_ns is None else mtime_ns
    os.utime(path, ns=(when, when - when % _SECOND))


def _seen_settling(env: Env, invoice_file: str) -> None:
    """outboxd has looked at the bundle (it is settling, not yet read and claimed)."""
    wait_for(lambda: journal_states(env).get(invoice_file) == "settling",
             what=f"{invoice_file} seen settling")


def _sent_files(archived: Path, name: str) -> dict[str, bytes]:
    """The invoice file and its attachments as archived in sent/, by path below it."""
    return {str(p.relative_to(archived)): p.read_bytes()
            for p in sorted(archived.rglob("*")) if p.is_file()
            and (p.name == f"{name}.xml" or p.is_relative_to(archived / name))}


def _one_sent(env: Env, name: str) -> dict[str, bytes]:
    [archived] = wait_for(env.sent_bundles, what=f"{name} sent")
    return _sent_files(archived, name)


def test_an_attachment_rewritten_at_its_size_within_the_same_second_is_sent_as_last_written(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """On a share of whole-second times an attachment is written, seen by outboxd, then
    written again with other bytes of the same size in the same second: size and
    modification time show nothing, the change time does. The bundle is sent with
    the second version, once."""
    env.write_config(receiver.url, outbox=SHARE_POLLING)
    start_daemon()
    attachment = env.outbox / "INV-6101" / "a.pdf"
    _on_a_1s_share(attachment, pdf_bytes(1, "one"))
    drop_bundle(env.outbox, "INV-6101", {})
    _seen_settling(env, "INV-6101.xml")
    _on_a_1s_share(attachment, pdf_bytes(1, "two"), os.lstat(attachment).st_mtime_ns)
    assert _one_sent(env, "INV-6101")["INV-6101/a.pdf"] == pdf_bytes(1, "two")


def test_an_attachment_added_and_another_removed_between_two_polls_is_seen(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The sidecar keeps its count of entries (b.pdf removed, c.pdf added, same size and
    time) between two polls: outboxd sends a.pdf and c.pdf, never b.pdf."""
    env.write_config(receiver.url, outbox=SHARE_POLLING)
    start_daemon()
    side = env.outbox / "INV-6102"
    for name in ("a.pdf", "b.pdf"):
        _on_a_1s_share(side / name, pdf_bytes(1, name[0] * 3))
    drop_bundle(env.outbox, "INV-6102", {})
    _seen_settling(env, "INV-6102.xml")
    when = os.lstat(side / "b.pdf").st_mtime_ns
    _on_a_1s_share(side / "c.pdf", pdf_bytes(1, "ccc"), when)
    (side / "b.pdf").unlink()
    sent = _one_sent(env, "INV-6102")
    assert sorted(sent) == ["INV-6102.xml", "INV-6102/a.pdf", "INV-6102/c.pdf"]


def test_a_sidecar_swapped_for_another_of_the_same_name_between_two_polls_sends_the_new(
        env: Env, receiver: Receiver, start_daemon, tmp_path: Path) -> None:
    """The sidecar folder renamed away and another, with a file of the same name, size and
    time, renamed in under its name between two polls: the new one's file is sent."""
    env.write_config(receiver.url, outbox=SHARE_POLLING)
    start_daemon()
    side = env.outbox / "INV-6103"
    _on_a_1s_share(side / "a.pdf", pdf_bytes(1, "old"))
    other = tmp_path / "elsewhere" / "INV-6103"
    _on_a_1s_share(other / "a.pdf", pdf_bytes(1, "new"), os.lstat(side / "a.pdf").st_mtime_ns)
    drop_bundle(env.outbox, "INV-6103", {})
    _seen_settling(env, "INV-6103.xml")
    side.rename(tmp_path / "away")
    other.rename(side)
    assert _one_sent(env, "INV-6103")["INV-6103/a.pdf"] == pdf_bytes(1, "new")


def test_an_invoice_file_replaced_by_one_of_its_size_and_time_is_sent_as_replaced(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The invoice file replaced (a new file, renamed over it) by another of the same size
    and modification time while its bundle settles: the replacement is sent."""
    env.write_config(receiver.url, outbox=SHARE_POLLING)
    start_daemon()
    first = ubl_invoice("INV-6104")
    second = first.replace(b"2026-11-02", b"2026-11-03")
    invoice = drop_bundle(env.outbox, "INV-6104", {"a.pdf": pdf_bytes()}, first)
    _seen_settling(env, "INV-6104.xml")
    _replace_keeping_size_and_time(invoice, second, "renamed over")
    assert _one_sent(env, "INV-6104")["INV-6104.xml"] == second


@pytest.mark.parametrize("dated", ["1990 (robocopy /COPY:T)", "a day ahead (wrong clock)"])
def test_an_attachment_dated_in_the_past_or_future_settles_on_outboxd_s_clock(
        env: Env, receiver: Receiver, start_daemon, dated: str) -> None:
    """An attachment whose modification time is long past or a day ahead, kept so while
    it is written in two steps: outboxd neither takes it as settled at once (the last
    step is what is sent) nor waits for that future time (sent within seconds)."""
    env.write_config(receiver.url, outbox=SHARE_POLLING)
    start_daemon()
    when = (631_152_000 if dated.startswith("1990") else int(time.time()) + 86_400) * _SECOND
    attachment = env.outbox / "INV-6105" / "a.pdf"
    whole = pdf_bytes(2, "whole")
    _on_a_1s_share(attachment, whole[: len(whole) // 2], when)
    drop_bundle(env.outbox, "INV-6105", {})
    _seen_settling(env, "INV-6105.xml")
    _on_a_1s_share(attachment, whole, when)
    assert _one_sent(env, "INV-6105")["INV-6105/a.pdf"] == whole
