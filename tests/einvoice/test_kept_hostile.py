"""The documents ubl-embedded keeps in the work folder's NAME.embedded/ (transport.keep)
against what a person with write access there may have put in their place: a FIFO or a
link where a document goes, a link where the folder goes. Nothing is opened but a
regular file, nothing outside the work folder is read or written, and what the entry
keeps is the very bytes posted."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Receiver
from helpers import without_blocking

from daemon.configuration.config import DeliveryConfig
from daemon.einvoice.artefacts import mime_codes
from daemon.einvoice.embed import documents_for
from daemon.einvoice.transport import EmbeddedDeliverer
from daemon.errors import Retryable

from .test_transport import batch_bundle, posts, stored


def deliver(tmp_path: Path, receiver: Receiver, planted: Path | None = None
            ) -> dict[str, bytes]:
    """The batch of invoices A and B delivered to the reference receiver; the documents
    it stored, by Idempotency-Key. Run so that a FIFO opened at `planted` fails the test
    instead of hanging it."""
    bundle = batch_bundle(tmp_path)
    d = EmbeddedDeliverer(DeliveryConfig(url=receiver.url, format="ubl-embedded"))
    try:
        def go() -> None:
            d.deliver(bundle, {"bundle_id": "b" * 64})
        if planted is None:
            go()
        else:
            without_blocking(go, planted, "keeping a document")
    finally:
        d.close()
    folder = receiver.store / "documents"
    return {k: (folder / f"{k}.xml").read_bytes() for k in stored(receiver)}


def assert_kept_as_posted(kept: Path, sent: dict[str, bytes]) -> None:
    """Each document in NAME.embedded/ a regular file (no link, no FIFO) holding the
    bytes the receiver got under its key."""
    for name in ("INV--A.xml", "INV--B.xml"):
        st = os.lstat(kept / name)
        assert stat.S_ISREG(st.st_mode), f"{name}: {stat.filemode(st.st_mode)}"
        data = (kept / name).read_bytes()
        assert sent[hashlib.sha256(data).hexdigest()] == data


def test_a_fifo_where_a_document_is_kept_is_never_opened(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """A FIFO at INV.embedded/INV--A.xml: an open of it to compare its bytes would block
    the delivery worker for good. It is never opened; the document is written in its
    place as a regular file, and both documents are posted."""
    receiver = start_receiver()
    kept = tmp_path / "INV.embedded"
    kept.mkdir()
    os.mkfifo(kept / "INV--A.xml")
    sent = deliver(tmp_path, receiver, kept / "INV--A.xml")
    assert len(sent) == 2
    assert_kept_as_posted(kept, sent)


def test_a_link_where_a_document_is_kept_is_neither_followed_nor_kept(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """INV--A.xml a link to a file outside the work folder holding the very bytes of
    A's document (read through the link, it would pass for the kept copy and the entry
    would keep a link, not the bytes sent), INV--B.xml one to /etc/shadow: neither is
    followed, what they point at is unchanged, and each is replaced by the document
    itself."""
    receiver = start_receiver()
    [a_document] = [d.data for d in documents_for(batch_bundle(tmp_path), mime_codes(),
                                                  safe_filenames=True).documents
                    if d.invoice_id == "A"]
    outside = tmp_path / "outside.xml"
    outside.write_bytes(a_document)
    before = outside.read_bytes()
    kept = tmp_path / "INV.embedded"
    kept.mkdir()
    (kept / "INV--A.xml").symlink_to(outside)
    (kept / "INV--B.xml").symlink_to("/etc/shadow")
    shadow = os.stat("/etc/shadow") if os.path.exists("/etc/shadow") else None
    sent = deliver(tmp_path, receiver)
    assert_kept_as_posted(kept, sent)
    assert outside.read_bytes() == before
    if shadow is not None:
        assert os.stat("/etc/shadow").st_mtime_ns == shadow.st_mtime_ns


def test_the_embedded_folder_linked_out_of_the_work_folder_is_not_written_through(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """INV.embedded a link to a folder elsewhere: nothing is written there, and nothing
    is posted that the archive would lack — the bundle is retried, its error naming the
    folder and the fix once: invoice B, which would go into the same folder, is held
    back with it, not tried to fail alike."""
    receiver = start_receiver()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "INV.embedded").symlink_to(elsewhere)
    with pytest.raises(Retryable) as caught:
        deliver(tmp_path / "work", receiver)
    said = str(caught.value)
    assert said.count("cannot be kept in") == 1 and "INV--A.xml" in said
    assert "INV.embedded" in said and "move away what is in the folder's place" in said
    assert said.endswith("not posted in this attempt: invoice B")
    assert list(elsewhere.iterdir()) == []
    assert posts(receiver, {}) == []
