"""The command line (docs/commands.md). Parses and dispatches: each command's work is a
module in `daemon/actions/`. Errors are caught once here and turned into one
or two lines on stderr and an exit code: 0 ok, 1 the subject failed, 2 usage
or configuration."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from daemon import __version__, cmdsignals, keep_rich_out
from daemon.actions import EXIT_FAILED, EXIT_OK, EXIT_USAGE, stdout_to_devnull
from daemon.cliargs import (
    Once,
    bundle_ref,
    count,
    invoice_id,
    invoice_ref,
    one_config,
    path_arg,
    seconds,
)
from daemon.errors import (
    ConfigError,
    OutboxdError,
    UsageError,
    long_words_cut,
    refused,
)
from daemon.invisible import for_terminal


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        """Arguments a parser does not know are told by that parser: a command's (argparse
        parses it from the top-level parser's) with that command's usage and name, one
        before the command with outboxd's own usage. argparse left both to the top-level
        parser, and a catch-all after it could not tell whose they were."""
        parsed, unknown = super().parse_known_args(args, namespace)
        self._literal_double_dash(parsed)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        if self.prog == "outboxd":  # the top-level parser, once its command's has parsed
            try:
                one_config(parsed)
            except UsageError:
                # Told as every other usage error of a command is, its usage first: the
                # refusal alone was one plain line in `run`'s otherwise JSON stderr.
                self._command(parsed.command).print_usage(sys.stderr)
                raise
        return parsed, unknown

    def _literal_double_dash(self, parsed: argparse.Namespace) -> None:
        """After `--` a second `--` is an operand (POSIX), the file or id named so. The
        argparse of Python 3.11 to at least 3.13.0 drops it from a single-valued positional
        after another one and leaves that an empty list: `attach -- INV-1 --` then ended in a
        TypeError with a traceback. Only that `--` can leave such a positional empty."""
        for action in self._actions:
            if action.option_strings or action.nargs is not None \
                    or getattr(parsed, action.dest, None) != []:
                continue
            try:
                setattr(parsed, action.dest, self._get_value(action, "--"))
            except argparse.ArgumentError as exc:
                self.error(str(exc))

    def _command(self, name: str) -> argparse.ArgumentParser:
        [commands] = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        parser: argparse.ArgumentParser = commands.choices[name]
        return parser

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        # main() prefixes "outboxd: " once; a subcommand adds its own name.
        sub = self.prog.removeprefix("outboxd").strip()
        if "invalid choice" in message and not sub:
            bad = message.split("invalid choice:", 1)[1].split("(", 1)[0].strip()
            message = f"unknown command {bad} — see outboxd --help"
        raise UsageError(f"{sub}: {message}" if sub else message)


def _config_arg(p: argparse.ArgumentParser, top: bool, read: bool = True) -> None:
    # Accepted before or after the subcommand; the subcommand's copy goes to a dest of its
    # own (argparse would let it overwrite one given before, even another file: main()
    # refuses two), SUPPRESS leaving it unset where not given. Also after a command that
    # reads none (`receiver`, `demo`, `help`), as before it: a wrapper or script that
    # adds `-c FILE` to every outboxd command line got "unrecognized arguments" there.
    p.add_argument("-c", "--config", metavar="FILE", type=lambda text: str(path_arg(text)),
                   action=Once, dest="config" if top else "config_after",
                   default=None if top else argparse.SUPPRESS,
                   help="configuration file (else $OUTBOXD_CONFIG, else "
                        "/etc/outboxd/config.toml)" if read else
                        "accepted as by every command; this one reads no configuration")


# command -> (one line for --help, example for COMMAND --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run the daemon in the foreground (systemd runs this)",
            "outboxd run -c /etc/outboxd/config.toml"),
    "status": ("counts per state and the bundles that need attention",
               "outboxd status\n  outboxd status --json | jq '.counts'"),
    "check": ("read and validate invoice files, sidecars or the whole outbox; sends nothing",
              "outboxd check /srv/invoices/outbox/INV-1001.xml\n"
              "  outboxd check /srv/invoices/outbox"),
    "send": ("release a bundle waiting for attachments (\"send anyway\")",
             "outboxd send INV-1001 --without-attachments"),
    "attach": ("copy a file into an invoice's sidecar folder, with type and note",
               # From /tmp, as docs/commands.md shows: run as the daemon's user (as the
               # docs say to), attach cannot read a file in the caller's home folder. The
               # copy is that user's alone: 0644 there let anyone on the host read it.
               "sudo install -o outboxd -m 0600 ~/timesheet.pdf /tmp/   # for the outboxd "
               "user alone\n"
               "  sudo -u outboxd outboxd attach INV-1001 /tmp/timesheet.pdf "
               "--type Timesheet --note 'October'"),
    "retry": ("move quarantined bundles back into the outbox, as they were",
              "outboxd retry 3f2a9c01b7e4\n"
              "  outboxd retry /srv/invoices/quarantine/2026-11-26/INV-1001--3f2a9c01b7e4"),
    "config": ("print the effective configuration, secrets masked",
               "outboxd config --check -c /etc/outboxd/config.toml"),
    "receiver": ("the reference receiver (for trials and tests)",
                 "outboxd receiver --listen 127.0.0.1:8787 --store /tmp/received"),
    "demo": ("a self-contained trial: receiver, daemon and sample invoices on this machine",
             "outboxd demo --once"),
    "help": ("show the options and an example of a command", "outboxd help send"),
}


def _add(sub: argparse._SubParsersAction[_Parser], name: str, config: bool = True
         ) -> argparse.ArgumentParser:
    line, example = COMMANDS[name]
    p = sub.add_parser(name, help=line, description=line[0].upper() + line[1:] + ".",
                       epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_arg(p, top=False, read=config)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="outboxd", description="A shared folder as a reliable outbox "
                     "for invoices and their attachments.",
                     epilog="`outboxd help COMMAND` or `outboxd COMMAND --help` shows a "
                            "command's options and an example.")
    parser.add_argument("--version", action="version", version=f"outboxd {__version__}")
    _config_arg(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    _add(sub, "run")

    p = _add(sub, "status")
    p.add_argument("--json", action="store_true", help="machine-readable output (sent and "
                   "quarantined of the last 7 days)")
    p.add_argument("--limit", action=Once, type=count, default=20, metavar="N",
                   help="show the N most recent sent and quarantined (default %(default)s)")

    p = _add(sub, "check")
    p.add_argument("paths", nargs="*", type=path_arg, metavar="PATH",
                   help="an invoice file, a sidecar folder, an attachment or an "
                        "invoice's subfolder in one (its bundle is checked) or the whole "
                        "outbox (default: the configured outbox)")
    p.add_argument("--rules", action="store_true",
                   help="print the versions of the e-invoice rules instead")

    p = _add(sub, "send")
    p.add_argument("target", metavar="FILE_OR_INVOICE_ID", type=invoice_ref,
                   help="the invoice file's name (or path) in the outbox, or an invoice id")
    p.add_argument("--without-attachments", action="store_true",
                   help="send even though invoices in it have no attachments")

    p = _add(sub, "attach")
    p.add_argument("invoice_id", metavar="INVOICE_ID", type=invoice_id,
                   help="the invoice id (the number inside the invoice file, not its name)")
    p.add_argument("file", type=path_arg, metavar="FILE",
                   help="the file to copy into that invoice's sidecar folder")
    p.add_argument("--type", action=Once, dest="doc_type", metavar="T",
                   help="document type, e.g. Timesheet (else the default type)")
    p.add_argument("--note", action=Once, metavar="N", help="a free-text note sent with the file")

    p = _add(sub, "retry")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE_ID_OR_FOLDER", type=bundle_ref,
                   help="a quarantine folder, its name, or the 12-character bundle id prefix")
    p.add_argument("--operator-checked", action="store_true",
                   help="move back a bundle an earlier delivery attempt of which may have "
                        "reached the receiver, once the operator says it does not hold it "
                        "(else refused: it may be delivered twice)")

    p = _add(sub, "config")
    p.add_argument("--check", action="store_true", help="only check it; exit 2 if it is bad")

    p = _add(sub, "receiver", config=False)
    p.add_argument("--listen", action=Once, default="127.0.0.1:8787", metavar="HOST:PORT",
                   help="address to listen on (port 0: any free port; default %(default)s)")
    p.add_argument("--store", action=Once, required=True, type=path_arg, metavar="DIR",
                   help="folder that receives the bundles")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--token", action=Once, default=None,
                        help="require this bearer token (seen by every user of this machine "
                             "in `ps`: prefer --token-file or $OUTBOXD_RECEIVER_TOKEN)")
    secret.add_argument("--token-file", action=Once, type=path_arg, default=None, metavar="FILE",
                        help="require the bearer token this file holds (spaces and line "
                             "ends around it ignored)")
    p.add_argument("--fail-first", action=Once, default="", metavar="STATUS,…",
                   help="answer the first requests with these statuses, one each in "
                        "turn (fault injection); 'pass' answers its request normally, "
                        "STATUS:SECONDS sends Retry-After: SECONDS with it (e.g. pass,422 "
                        "or 503,429:3600)")
    p.add_argument("--hold-first", action=Once, type=seconds, default=0.0, metavar="SECONDS",
                   help="store the first bundle, then wait this long before answering "
                        "(a lost answer, for crash trials)")
    p.add_argument("--retry-after", action=Once, type=seconds, default=0.0, metavar="SECONDS",
                   help="Retry-After sent with the injected 429/503 answers that "
                        "--fail-first gives none (default 0)")
    p.add_argument("--own-ids", action="store_true",
                   help="answer a bundle with a bundle_id of the receiver's own (the "
                        "SHA-256 of the manifest it stored) instead of outboxd's, as a "
                        "receiver that numbers bundles its own way does")

    p = _add(sub, "demo", config=False)
    p.add_argument("--dir", action=Once, type=path_arg, default=None, metavar="DIR",
                   help="an empty or new folder for the workspace (default: a new temporary "
                        "folder, kept afterwards)")
    p.add_argument("--once", action="store_true",
                   help="stop when every sample reached its end; exit 0 if each reached the "
                        "expected one, 1 otherwise")
    p.add_argument("--pace", action=Once, type=seconds, default=1.0, metavar="SECONDS",
                   help="pause between two samples (default %(default)s)")
    p.add_argument("--timeout", action=Once, type=seconds, default=120.0, metavar="SECONDS",
                   help="with --once: give up after this long (default %(default)s)")

    p = _add(sub, "help", config=False)
    p.add_argument("topic", nargs="?", metavar="COMMAND",
                   help="the command to show (default: all commands)")
    return parser


def _help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not args.topic:
        parser.print_help()
        return EXIT_OK
    if args.topic not in COMMANDS:
        raise UsageError(f"help: unknown command {args.topic!r} — see outboxd --help")
    parser.parse_args([args.topic, "--help"])  # prints and exits 0 via SystemExit
    return EXIT_OK


# command -> module in daemon/actions/ with run(args) -> int
ACTIONS = {"run": "run", "status": "status", "check": "check", "send": "send",
           "attach": "attach", "retry": "retry", "config": "showconfig",
           "receiver": "receiver"}


def _demo(args: argparse.Namespace) -> int:
    from daemon.actions import demo
    return demo.run(args.dir, once=args.once, pace=args.pace, timeout=args.timeout)


def _said(text: str) -> str:
    """A refusal for stderr: long words cut, control characters as their codes."""
    return for_terminal(long_words_cut(text))


def main(argv: Sequence[str] | None = None, *, hup_blocked_here: bool = False,
         whole_process: bool = False) -> int:
    """hup_blocked_here: the `outboxd` command's entry point (daemon.entry) blocked
    SIGHUP before importing this module; every command but `run` unblocks it at once.
    whole_process: the process is the command's alone (daemon.entry, not a caller that
    embeds main): rich is kept out of every command but `demo`, and the imports are
    frozen out of the garbage collector's passes (_import_frozen). The signals around
    the command's run are daemon.cmdsignals'."""
    return cmdsignals.around(lambda: _main(argv, hup_blocked_here, whole_process),
                             whole_process)


def _import_frozen(name: str) -> Any:
    """The command's module, imported with the garbage collector off, and what the imports
    made (some 100,000 objects: classes, functions, pydantic's schemas, which live as long
    as the process) then moved out of its passes (gc.freeze). While they came in, its
    passes (some 140) cost ~45 ms of every start, and found ~700 objects of garbage
    (~170 KB, frozen with the rest); the collection the interpreter makes at exit went
    through all of them, ~0.15 s at the end of every command and of every stop of the
    daemon, and so did the daemon's full collections while it runs. Only in a process of
    our own: a caller's objects frozen with ours would never be collected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _main(argv: Sequence[str] | None, hup_blocked_here: bool, whole_process: bool) -> int:
    # Archives, receipts and the journal hold money-bearing documents: group
    # may read, others get nothing.
    os.umask(0o027)
    command = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        cmdsignals.as_the_command_needs(command, hup_blocked_here)
        if args.command == "help":
            return _help(parser, args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "run" or whole_process:
            # Before the action imports structlog, which would import rich for nothing
            # (~0.1 s); only the demo (above) draws with it.
            keep_rich_out()
        name = f"daemon.actions.{ACTIONS[args.command]}"
        action = _import_frozen(name) if whole_process else importlib.import_module(name)
        return int(action.run(args))
    except ConfigError as exc:
        # Without a source the problem itself names the file (missing, not TOML).
        print(f"outboxd: configuration error in {exc.source}:" if exc.source else
              "outboxd: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(for_terminal(f"  {problem}"), file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        # Names and invoice ids in a refusal are a clerk's or an invoice's: never raw to
        # the admin's terminal (an escape sequence, a right-to-left override).
        print(_said(f"outboxd: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except OutboxdError as exc:
        print(_said(f"outboxd: {exc}"), file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        if command in ("run", "receiver", "demo"):
            raise  # not a reader of our output that went away: a real fault, not silence
        # The reader went away (`outboxd status | head`): nothing more to say.
        stdout_to_devnull()
        return EXIT_OK
    except OSError as exc:
        # The environment, not a bug: no permission, a full disk, a path that went away,
        # stdout on a full device. One line (`run` logs its own, see actions/run.py).
        print(_said(f"outboxd: {refused(exc)}"), file=sys.stderr)
        if exc.filename is None:
            # Most likely stdout itself (a full device): nothing more from its last flush.
            with contextlib.suppress(OSError):
                sys.stdout.flush()
            stdout_to_devnull()
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
