"""The reference receiver's injected failures (`outboxd receiver --fail-first`): what
the first requests are answered instead of being received, so that tests and the demo
see a receiver that refuses, throttles or fails, and the daemon's retries."""

from __future__ import annotations

from dataclasses import dataclass


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
