"""`outboxd receiver`: the reference receiver (docs/protocol.md)."""

from __future__ import annotations

import argparse
import os

from daemon import logs
from daemon.errors import UsageError


def run(args: argparse.Namespace) -> int:
    from daemon import receiver
    from daemon.receiver.server import parse_faults
    logs.configure()
    try:
        fail_first = parse_faults(args.fail_first)
    except ValueError:
        raise UsageError(f"--fail-first takes HTTP statuses like 503,429 (pass for a normal "
                         f"answer, STATUS:SECONDS for one with Retry-After), not "
                         f"{args.fail_first!r}") from None
    token = args.token or os.environ.get("OUTBOXD_RECEIVER_TOKEN") or None
    return receiver.run(args.listen, args.store, token=token, fail_first=fail_first,
                        hold_first=args.hold_first, retry_after=args.retry_after)
