"""Delivery of `ubl-embedded` bundles (docs/einvoice.md): one UBL document per invoice.

HTTP: one POST per document (``Content-Type: application/xml``,
``Idempotency-Key`` = sha256 of the document, ``X-Outboxd-Bundle-Id``); the
table of answers (docs/protocol.md, Answers) applies per document. Each accepted document is written
to the journal at once, so a retry (or a restart) sends only the documents not
yet accepted. The bundle is delivered when all its documents are; the
receipt's body lists every document's key and answer. A bundle with documents
left over is retried as one, after the largest Retry-After any of them was
given (`bundle_outcome`); once the receiver asks for time (429/503 with
Retry-After), the rest of the bundle waits with it.

Each document is kept before its POST in the work folder, ``NAME.embedded/`` beside the
invoice file, under its `name` in the receipt (`keep`): written whole and synced, the
bytes posted are those very bytes, and the folder travels with the bundle into sent/ (or
quarantine/), so the entry holds exactly what was sent (docs/operations.md, audits).
A crash between the POST and the archive leaves it in the work folder, which the next
attempt (or the archive) finds there whole: built again, the same bytes are not written
twice.

Directory: ``TARGET/NAME--INVOICEID.xml`` per document, written under a
temporary name and renamed; a file that is already there with the same bytes
counts as delivered.

Bundles of the print channels are not e-invoices: they go out as bundles
(one multipart POST, or one folder: docs/protocol.md) through the ordinary deliverer.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from typing import Any, Protocol

import httpx

from daemon.bundle import Bundle
from daemon.configuration.config import DeliveryConfig
from daemon.delivery.answers import BODY_LIMIT, Receipt
from daemon.delivery.backoff import RETRY_AFTER_LIMIT
from daemon.delivery.deliver import Coalesced, HttpDeliverer, KnownBundles
from daemon.delivery.directory import DirectoryDeliverer, write_document
from daemon.delivery.throttle import asks_for_time
from daemon.einvoice.artefacts import mime_codes
from daemon.einvoice.embed import Document, documents_for
from daemon.errors import InputError, Paused, Rejected, Retryable, Untrusted, describe
from daemon.fs.fsops import held_for
from daemon.fs.fsread import holds_hash
from daemon.fs.fswrite import held_path, make_folders_below, write_atomic
from daemon.fs.temps import drop_unfinished
from daemon.idnames import id_in_name
from daemon.names import NAME_MAX, embedded_folder, fit_name


class Progress(KnownBundles, Protocol):
    """What the journal offers: documents already accepted, per bundle id; the bundles
    sent or on their way (for the answers to a print channel's bundle)."""

    def accepted_documents(self, bundle_id: str) -> dict[str, dict[str, Any]]: ...

    def accept_document(self, bundle_id: str, key: str, record: dict[str, Any]) -> None: ...


def document_key(doc: Document) -> str:
    return hashlib.sha256(doc.data).hexdigest()


class EmbeddedDeliverer:
    def __init__(self, cfg: DeliveryConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        self.inner: HttpDeliverer | DirectoryDeliverer
        if cfg.transport == "directory":
            assert cfg.target is not None
            self.inner = DirectoryDeliverer(cfg.target)
        else:
            self.inner = HttpDeliverer(cfg, transport)
        self.destination = self.inner.destination
        self.progress: Progress | None = None

    def scrub(self, text: str) -> str:
        """The token and the url's password taken out of a text (the HTTP transport's)."""
        return self.inner.scrub(text) if isinstance(self.inner, HttpDeliverer) else text

    def bind_journal(self, progress: Progress) -> None:
        self.progress = progress
        if isinstance(self.inner, HttpDeliverer):
            self.inner.bind_journal(progress)  # a print channel's bundle goes through it

    def close(self) -> None:
        self.inner.close()

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        if bundle.channel != "e-invoice":
            return self.inner.deliver(bundle, manifest)
        plan = documents_for(bundle, mime_codes(), safe_filenames=self.cfg.safe_filenames)
        if plan.findings:  # validation passed a moment ago: the files changed since
            first = plan.findings[0]
            raise InputError(first.code, first.file, first.message)
        bid = manifest["bundle_id"]
        done = self.progress.accepted_documents(bid) if self.progress else {}
        # One document per invoice id in a bundle, whose id covers the invoice file and
        # the attachments: one accepted under another key was built from these very
        # files by an earlier outboxd (an upgrade in the middle of a delivery; before
        # f57bb15 a batch with a byte order mark lost its declaration), and the receiver
        # has it. Sent again under the new key, it would be taken as a second document.
        by_invoice = {r.get("invoice_id"): r for r in done.values()}
        records: list[dict[str, Any]] = []
        failed: list[tuple[str, Retryable | Paused]] = []
        held: list[str] = []  # invoices not posted in this attempt (see below)
        unanswered: list[str] = []  # posted in this attempt, no answer that they were not taken
        stop = False

        def each() -> Iterator[Document]:
            try:
                yield from plan.each()  # built one at a time: each holds its attachments
            except InputError as exc:  # a file changed in processing, read for the next
                exc.unanswered = tuple(unanswered)  # those posted before it, unanswered
                raise

        for doc in each():
            key = document_key(doc)
            record = done.get(key) or by_invoice.get(doc.invoice_id)
            if record is not None and record.get("idempotency_key") == key:
                # Accepted with these very bytes (an attempt before a crash, or before an
                # upgrade that kept none): kept where it is missing.
                keep(bundle, str(record.get("name") or _name(bundle, doc)), doc.data, key)
            if record is None:
                if stop:
                    held.append(doc.invoice_id)
                    continue
                name = _name(bundle, doc)
                try:
                    # Kept before it is posted: a crash after the POST must not leave
                    # the receiver with bytes the archive lacks.
                    keep(bundle, name, doc.data, key)
                except Retryable as exc:
                    # The others would go into the same folder on the same disk, and
                    # fail alike: held back with the bundle, one error said once.
                    failed.append((doc.invoice_id, exc))
                    stop = True
                    continue
                try:
                    receipt = self._send(doc, key, bid, name)
                except Rejected as exc:
                    taken = {str(r.get("invoice_id")) for r in [*done.values(), *records]}
                    exc.unanswered = tuple(unanswered)
                    exc.pending = tuple(i for i in bundle.invoice_ids
                                        if i != doc.invoice_id and i not in taken)
                    raise
                except (Retryable, Paused) as exc:
                    if not isinstance(exc, Paused):
                        unanswered.append(doc.invoice_id)
                    # This one is retried with the bundle. The others may still go now,
                    # unless the receiver asked for time (429/503 with Retry-After):
                    # posting them at once is what it asked us not to do, and each would
                    # only earn the same answer. After a pause (our url or token is
                    # wrong) they would all fail alike. Those held back are retried with
                    # the bundle; the accepted ones are in the journal and not sent again.
                    failed.append((doc.invoice_id, exc))
                    stop = isinstance(exc, Paused) or asks_for_time(exc) is not None
                    continue
                record = {"invoice_id": doc.invoice_id, "name": name, "idempotency_key": key,
                          "size": len(doc.data), **receipt.as_dict()}
            if self.progress:
                # Also for a document an earlier row of this content got accepted (a
                # bundle moved back from quarantine): this row's record must hold all it
                # relies on, for its next attempt and for its quarantine papers.
                self.progress.accept_document(bid, key, record)
            records.append(record)
        if failed:
            raise bundle_outcome(failed, held)
        ids = [str(r["receipt_id"]) for r in records if r.get("receipt_id")]
        status = max((int(r["status"]) for r in records), default=201)
        return Receipt(status, {"documents": records}, joined_receipt_ids(ids))

    def _send(self, doc: Document, key: str, bid: str, name: str) -> Receipt:
        if isinstance(self.inner, DirectoryDeliverer):
            self.inner.on_its_mount()
            return write_document(self.inner.target, name, doc.data)
        assert self.cfg.url is not None
        headers = {"Content-Type": "application/xml", "Idempotency-Key": key,
                   "X-Outboxd-Bundle-Id": bid}
        try:
            # Told when all of it was handed over: a 2xx that came before (the receiver
            # answered and closed) is no receipt, as for a bundle's POST. Its length
            # given, httpx sends the stream with it, not chunked.
            body = Coalesced((doc.data,))
            response = self.inner.send(self.inner.client.build_request(
                "POST", self.inner.post_url(), content=body,
                headers={**headers, "Content-Length": str(len(doc.data))}))
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise self.inner.failure(exc) from None
        try:
            # Not bundle_id: a document is the same bytes, and key, in every bundle that
            # carries it (invoice A in a file of A and B, then in one of A and C), and
            # a receiver answers its key again with the first POST's answer, naming the
            # bundle that POST came with.
            return self.inner.answer(response, {"idempotency_key": key, "document_key": key},
                                     whole=body.finished)
        except Rejected as exc:
            refused = Rejected(f"the receiver rejected the document of invoice "
                               f"{doc.invoice_id} with HTTP {exc.status}", exc.status, exc.body)
            refused.invoice_id, refused.sent_bytes = doc.invoice_id, exc.sent_bytes
            raise refused from None


def _name(bundle: Bundle, doc: Document) -> str:
    """The document's file name (the directory target's, the receipt's `name`, the kept
    copy's). Cut as when the temporary name needed room beside it (it no longer does): a
    long name already delivered is found again under that name."""
    return fit_name(f"{bundle.name}--{fit_name(id_in_name(doc.invoice_id) or '_')}.xml",
                    NAME_MAX - 38)


def keep(bundle: Bundle, name: str, data: bytes, key: str) -> None:
    """The document kept in the claimed bundle's work folder, NAME.embedded/`name`, whole
    and synced (write_atomic) unless it holds these bytes already: reached from the work
    folder held for the delivery (claim.held_work), never through a link. Retryable when
    it cannot be written (a full disk): nothing is posted that the archive would lack."""
    work = bundle.invoice_file.path.parent
    fd = held_for(work)
    sidecar = bundle.sidecar.name if bundle.sidecar is not None else ""
    folder = embedded_folder(bundle.invoice_file.name, sidecar)
    try:
        kept = make_folders_below(held_path(fd) if fd is not None else work, [folder])
        try:
            if not holds_hash(kept, name, f"{folder}/{name}", key):
                # A kill inside an earlier write left its temp beside it; it would travel
                # into the archive with the folder.
                drop_unfinished(held_path(kept), [name])
                write_atomic(held_path(kept) / name, data)
        finally:
            os.close(kept)
    except OSError as exc:
        raise Retryable(f"the document {name} cannot be kept in {work / folder} before it "
                        f"is sent: {describe(exc, writing=True)} — nothing is posted until it "
                        "is kept" + ("" if exc.errno in (errno.EACCES, errno.EPERM) else
                                     "; make room on that disk, or move away what is in the "
                                     "folder's place, and the next try goes on")) from None


def joined_receipt_ids(ids: list[str]) -> str | None:
    """The documents' receipt ids as the bundle's one: joined by ", ", at most about
    BODY_LIMIT characters. A file of thousands of invoices made it longer than journald
    keeps as one line (`bundle sent` logs it), and the status page showed it all; the
    ids that fit are kept, and how many more there are (receipt.json's documents list
    every one)."""
    kept: list[str] = []
    room = BODY_LIMIT
    for n, rid in enumerate(ids):
        room -= len(rid) + 2
        if room < 0 and kept:
            return f"{', '.join(kept)} … and {len(ids) - n} more (all in receipt.json)"
        kept.append(rid)
    return ", ".join(kept) or None


MAX_SHOWN = 5  # other invoices' errors named one by one in a bundle's error


def bundle_outcome(failed: list[tuple[str, Retryable | Paused]],
                   held: list[str]) -> Retryable | Paused:
    """The one error of a bundle whose documents were not all taken; `failed`: each
    invoice's error, in order; `held`: invoices not posted in this attempt.

    The bundle is retried as one, so its next attempt must honour every document's
    answer (the table of answers applies per document): a pause (401/403/404, a redirect)
    wins over a retry — our configuration must be fixed before anything goes — and the next
    attempt waits at least the largest Retry-After any document was given, over 24 h
    counting as 24 h. finish.py reads that floor from `retry_after` of a Paused as of a
    Retryable."""
    paused = [f for f in failed if isinstance(f[1], Paused)]
    # Who speaks for the bundle: the first pause, else the longest wait asked for (the
    # first failure when no document was given a Retry-After).
    invoice, lead = paused[0] if paused else max(
        failed, key=lambda f: -1.0 if f[1].retry_after is None else f[1].retry_after)
    floors = [e.retry_after for _, e in failed if e.retry_after is not None]
    floor = min(max(floors), RETRY_AFTER_LIMIT) if floors else None
    # Each answer's body right after its own status: finish.py puts a body it is given
    # at the end of the whole text, where it read as the answer of the invoices "not
    # posted in this attempt" (which had none).
    parts = [f"{lead} (invoice {invoice}){_said(lead)}"]
    others = [f"invoice {i}: {e}{_said(e)}" for i, e in failed if e is not lead]
    # A file of hundreds of invoices, each given an error page, would make the row's
    # last_error (status, the page, the log) tens of KB: the first few, and a count.
    parts += others[:MAX_SHOWN] + ([f"and {len(others) - MAX_SHOWN} more invoices failed"]
                                   if len(others) > MAX_SHOWN else [])
    if held:
        parts.append("not posted in this attempt: invoice " + ", ".join(held))
    # An untrusted certificate stays one, whoever speaks for the bundle (a reload that
    # changes what is trusted tries it at once: retries.py).
    kind = Paused if paused else Untrusted if any(
        isinstance(e, Untrusted) for _, e in failed) else Retryable
    return kind("; ".join(parts), lead.status, "", floor)


def _said(error: Retryable | Paused) -> str:
    """What the receiver's body said with this error, as finish.py shows a body."""
    return f": {error.body[:200]}" if error.body else ""
