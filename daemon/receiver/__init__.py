"""The reference receiver (docs/protocol.md), apart from the daemon's pipeline: the
strict peer the tests and the demo talk to, and a reference for operators
who implement the receiving side."""

from daemon.receiver.server import make_server, run

__all__ = ["make_server", "run"]
