"""Logging: structlog, JSON lines off a terminal (journald), console lines on one."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from daemon.config import LogConfig


def configure(cfg: LogConfig | None = None, stream: TextIO | None = None) -> None:
    cfg = cfg or LogConfig()
    # pypdf logs "EOF marker not found" and the like through stdlib logging for
    # every damaged PDF; validation already reports those files properly.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    stream = stream or sys.stderr
    fmt = cfg.format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, cfg.level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def get(**context: Any) -> Any:
    return structlog.get_logger("outboxd").bind(**context)
