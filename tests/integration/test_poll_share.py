"""Polling on a share: `outboxd run` with `watch = "polling"` on a temp outbox and the
reference receiver on 127.0.0.1, driven as a clerk on a network share drives it — copy
tools that keep the source's times, files replaced by others of the same size."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Env, Receiver, journal_states
from helpers import ubl_invoice, wait_for

pytestmark = pytest.mark.usefixtures("lean")

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
