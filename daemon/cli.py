"""The command line (SPEC §7). Errors are caught once here and turned into one
or two lines on stderr and an exit code: 0 ok, 1 the subject failed, 2 usage
or configuration."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from daemon import __version__, logs
from daemon.config import Settings, config_path, load_settings
from daemon.errors import ConfigError, OutboxdError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def _config_arg(p: argparse.ArgumentParser, top: bool) -> None:
    # Accepted before or after the subcommand; the subcommand's copy must not
    # overwrite a value given before it, hence SUPPRESS.
    p.add_argument("-c", "--config", metavar="FILE",
                   default=None if top else argparse.SUPPRESS,
                   help="configuration file (else $OUTBOXD_CONFIG, else "
                        "/etc/outboxd/config.toml)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="outboxd", description="A shared folder as a reliable outbox "
                     "for invoices and their attachments.")
    parser.add_argument("--version", action="version", version=f"outboxd {__version__}")
    _config_arg(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="run the daemon in the foreground (systemd runs this)")
    _config_arg(p, top=False)

    p = sub.add_parser("status", help="counts per state and the bundles that need attention")
    _config_arg(p, top=False)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("config", help="print the effective configuration, secrets masked")
    _config_arg(p, top=False)
    p.add_argument("--check", action="store_true", help="only check it; exit 2 if it is bad")

    p = sub.add_parser("receiver", help="the reference receiver (for trials and tests)")
    p.add_argument("--listen", default="127.0.0.1:8787", metavar="HOST:PORT",
                   help="address to listen on (port 0: any free port; default %(default)s)")
    p.add_argument("--store", required=True, type=Path, metavar="DIR",
                   help="folder that receives the bundles")
    p.add_argument("--token", default=None, help="require this bearer token "
                   "(else $OUTBOXD_RECEIVER_TOKEN)")
    p.add_argument("--fail-first", default="", metavar="STATUS,…",
                   help="answer the first requests with these statuses (fault injection)")
    p.add_argument("--hold-first", type=float, default=0.0, metavar="SECONDS",
                   help="store the first bundle, then wait this long before answering "
                        "(a lost answer, for crash trials)")
    p.add_argument("--retry-after", type=float, default=0.0, metavar="SECONDS",
                   help="Retry-After sent with the injected 429/503 answers (default 0)")

    p = sub.add_parser("demo", help="a self-contained trial: receiver, daemon and sample "
                       "invoices on this machine")
    p.add_argument("--dir", type=Path, default=None, metavar="DIR",
                   help="an empty or new folder for the workspace (default: a new temporary "
                        "folder, kept afterwards)")
    p.add_argument("--once", action="store_true",
                   help="stop when every sample reached its end; exit 0 if each reached the "
                        "expected one, 1 otherwise")
    p.add_argument("--pace", type=float, default=1.0, metavar="SECONDS",
                   help="pause between two samples (default %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                   help="with --once: give up after this long (default %(default)s)")
    return parser


def _settings(args: argparse.Namespace) -> tuple[Settings, Path]:
    path = config_path(args.config)
    return load_settings(path), path


def _cmd_run(args: argparse.Namespace) -> int:
    from daemon.service import Service
    settings, path = _settings(args)
    logs.configure(settings.log)
    return Service(settings, config_path=path).run()


def _cmd_status(args: argparse.Namespace) -> int:
    from daemon import status
    settings, _ = _settings(args)
    data = status.collect(settings)
    print(status.as_json(data) if args.json else status.render(data))
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    settings, path = _settings(args)
    if args.check:
        print(f"{path}: configuration is valid")
    else:
        print(json.dumps(settings.masked(), indent=2))
    return EXIT_OK


def _cmd_receiver(args: argparse.Namespace) -> int:
    from daemon import receiver
    logs.configure()
    try:
        fail_first = [int(s) for s in args.fail_first.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--fail-first takes HTTP statuses like 503,429, not "
                         f"{args.fail_first!r}") from None
    token = args.token or os.environ.get("OUTBOXD_RECEIVER_TOKEN") or None
    return receiver.run(args.listen, args.store, token=token, fail_first=fail_first,
                        hold_first=args.hold_first, retry_after=args.retry_after)


def _cmd_demo(args: argparse.Namespace) -> int:
    from daemon.actions import demo
    return demo.run(args.dir, once=args.once, pace=args.pace, timeout=args.timeout)


COMMANDS = {"run": _cmd_run, "status": _cmd_status, "config": _cmd_config,
            "receiver": _cmd_receiver, "demo": _cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    # Archives, receipts and the journal hold money-bearing documents: group
    # may read, others get nothing.
    os.umask(0o027)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"outboxd: configuration error in {exc.source or 'the configuration'}:",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"outboxd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutboxdError as exc:
        print(f"outboxd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`outboxd status | head`): nothing more to say. Point
        # stdout at /dev/null so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
