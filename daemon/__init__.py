"""outboxd: a shared folder as a reliable outbox for invoices."""

# The one place the version is written; pyproject.toml reads it from here. A
# literal, not importlib.metadata: that lookup cost every command ~0.2 s.
__version__ = "0.1.0"

__all__ = ["__version__"]
