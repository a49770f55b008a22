"""The reference receiver's injected failures (`outboxd receiver --fail-first`): what
the first requests are answered instead of being received, so that tests and the demo
see a receiver that refuses, throttles or fails, and the daemon's retries. A request
is failed as a real receiver fails one: after its token's check and its idempotency
lookup, so that a repeat of a key the receiver holds is answered from what it holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from daemon.receiver.receive import whole_answer


@dataclass(frozen=True)
class Fault:
    """One request's injected answer (--fail-first): `status`, or None to answer that
    request normally; with Retry-After: `retry_after` when given, else --retry-after's
    for a 429 or 503."""

    status: int | None
    retry_after: int | None = None


def parse_faults(text: str) -> list[Fault]:
    """--fail-first's value: STATUS, STATUS:SECONDS or `pass` per request,
    comma-separated (e.g. "pass,422" or "503,429:3600"). ValueError names the entry it
    cannot read."""
    faults: list[Fault] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        if entry == "pass":
            faults.append(Fault(None))
            continue
        status, sep, seconds = entry.partition(":")
        if sep and not (seconds.isascii() and seconds.isdigit()):  # RFC 9110: delay-seconds
            raise ValueError(entry)
        faults.append(Fault(int(status), int(seconds) if sep else None))
    return faults


class _Receiver(Protocol):
    store: Path

    def stored_response(self, key: str) -> bytes | None: ...

    def next_fault(self) -> Fault | None: ...


def injected(server: _Receiver, key: str, is_document: bool) -> Fault | None:
    """The failure --fail-first injects into this request (a status always), or None to
    answer it as usual. A repeat of a key the receiver holds (a bundle's or a document's
    answer stored) is answered from what it holds — 200, or 422 for other content — and
    leaves the entry for the next request: injected before that lookup, a repeat of a
    bundle it had stored was answered 400 or 503, which a conforming receiver never
    does (and outboxd took a refusal of what the receiver has for "nothing delivered")."""
    held = (whole_answer(server.store / "documents" / f"{key}.response.json")
            if is_document else server.stored_response(key))
    if held is not None:
        return None
    fault = server.next_fault()
    return fault if fault is not None and fault.status is not None else None
