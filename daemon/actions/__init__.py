"""One module per command of `outboxd` (docs/commands.md): the work behind each command line.

`cli.py` parses and dispatches; each module here has `run(args) -> exit code`
and raises OutboxdError kinds for expected failures (cli turns them into one
or two lines on stderr).
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
