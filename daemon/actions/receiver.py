"""`outboxd receiver`: the reference receiver (docs/protocol.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from daemon import logs
from daemon.configuration.config_values import TOKEN_RULE, token_of_file, token_problem
from daemon.errors import UsageError
from daemon.fs.fsread import NotAFile


def token_in(path: Path) -> str:
    """The token --token-file names, read as the daemon reads its token_file (spaces and
    line ends around it dropped); a file it cannot use is a UsageError naming it, never
    quoting what it holds."""
    where = f"--token-file {path}"
    try:
        token, problem = token_of_file(path)
    except OSError as exc:
        raise UsageError(f"{where}: cannot be read ({exc.strerror or exc}) — check the path "
                         "and permissions") from None
    except NotAFile as exc:
        raise UsageError(f"{where} {exc} — name a file that holds the token alone") from None
    if problem:
        raise UsageError(f"{where}: the token in the file {problem}; {TOKEN_RULE} — the "
                         "file must hold the token alone, on one line")
    if not token:
        # An empty file would mean "no token": every sender let in, which is not what
        # naming a token file asks for.
        raise UsageError(f"{where}: the file is empty — put the token in it")
    return token


def token_given(token: str, where: str) -> str:
    """A token given as --token or $OUTBOXD_RECEIVER_TOKEN (`where`), held to the rule
    the daemon holds its own token to (config_values.token_problem): one with a space, a
    line break or a non-ASCII character can never come in a sender's Authorization
    header, and every request would be refused. A UsageError saying which kind of
    character, never quoting the token."""
    if not token:
        # Taken for "no token", every sender was let in: not what naming one asks for.
        raise UsageError(f"{where} is empty — give the token, or leave {where} out for a "
                         "receiver that requires none")
    if (problem := token_problem(token)) is not None:
        raise UsageError(f"{where}: the token {problem}; {TOKEN_RULE} — no sender could "
                         "send it, so every request would be refused")
    return token


def run(args: argparse.Namespace) -> int:
    from daemon import receiver
    from daemon.receiver.faults import parse_faults
    logs.configure()
    try:
        fail_first = parse_faults(args.fail_first)
    except ValueError:
        raise UsageError(f"--fail-first takes HTTP statuses like 503,429 (pass for a normal "
                         f"answer, STATUS:SECONDS for one with Retry-After), not "
                         f"{args.fail_first!r}") from None
    env = os.environ.get("OUTBOXD_RECEIVER_TOKEN")
    if args.token_file is not None:
        token: str | None = token_in(args.token_file)
    elif args.token is not None:
        token = token_given(args.token, "--token")
    elif env:  # set but empty: unset, as a shell's `VAR=` leaves it
        token = token_given(env, "$OUTBOXD_RECEIVER_TOKEN")
    else:
        token = None
    return receiver.run(args.listen, args.store, token=token, fail_first=fail_first,
                        hold_first=args.hold_first, retry_after=args.retry_after,
                        own_ids=args.own_ids)
