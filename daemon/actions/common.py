"""What several commands share: loading the configuration named on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.config import Settings
from daemon.config_load import config_path, load_settings


def settings_of(args: argparse.Namespace) -> tuple[Settings, Path]:
    path = config_path(args.config)
    return load_settings(path), path
