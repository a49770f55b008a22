"""The folders of a configuration against each other, once each key is valid alone: two
keys naming one folder, the journal on the share, the outbox inside outboxd's archives.
Judged on the paths as written (normalised, never looked up on the disk: a reload must
not wait for a share that hangs), each problem one line naming both keys, the folder
and the fix (config_across.py gathers them, config_load.py raises them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from daemon.configuration.config import Settings
from daemon.configuration.config_folders import directory_target, set_by_admin, written_folders
from daemon.configuration.config_keys import env_origin
from daemon.errors import double_quoted

# What each folder holds, for the line that says why two cannot be one.
_HOLDS = {"[outbox] path": "the invoices people drop in",
          "[paths] sent": "the delivered bundles",
          "[paths] quarantine": "the refused bundles",
          "[paths] processing": "the bundles being delivered",
          "[paths] state_dir": "the journal",
          "[delivery] target": "the bundles the directory transport delivers"}
# Folders outboxd fills with day folders and bundles of its own, which no outbox may be in.
_ARCHIVES = ("[paths] sent", "[paths] quarantine", "[paths] processing")


def _folders(settings: Settings) -> list[tuple[str, str]]:
    """(key, folder as written, normalised) of every folder the configuration names."""
    named = [(settings.outbox.path, "[outbox] path"), *written_folders(settings)]
    if (target := directory_target(settings)) is not None:
        named.append((target, "[delivery] target"))
    return [(key, os.path.normpath(folder)) for folder, key in named]


def _named(settings: Settings, key: str, folder: str,
           env: dict[str, dict[str, Any]]) -> str:
    section, _, name = key.strip("[").partition("] ")
    origin = env_origin(section, name, env) if set_by_admin(settings, key) else \
        " (not set: its default)"
    return f"{key}{origin} = {double_quoted(folder)}"


def _inside(folder: str, root: str) -> bool:
    return Path(folder).is_relative_to(root) and folder != root


def folder_overlap_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """Two keys naming one folder (each holds outboxd's own things, which the other would
    take for its own: `retry` moved a delivered bundle from a sent/ that is also
    quarantine/ back into the outbox, its receipt.json dropped, and it was sent again);
    the state dir in the outbox (the journal on the share, where whoever may drop an
    invoice may read or delete it); the outbox inside sent/, quarantine/ or the
    processing folder (what outboxd archives or claims would hold the folder it takes
    them from)."""
    folders = _folders(settings)
    problems: list[str] = []
    for i, (key, folder) in enumerate(folders):
        for other, other_folder in folders[i + 1:]:
            if folder == other_folder:
                both = (_named(settings, key, folder, env),
                        _named(settings, other, folder, env))
                problems.append(
                    f"{both[0]} and {both[1]} are one folder, which would hold both "
                    f"{_HOLDS[key]} and {_HOLDS[other]}, and outboxd would take the one for "
                    "the other — give each key a "
                    "folder of its own (sent/ and quarantine/ beside the outbox, the state "
                    "dir /var/lib/outboxd, are the defaults)")
    outbox = folders[0][1]
    for key, folder in folders[1:]:
        if key == "[paths] state_dir" and _inside(folder, outbox):
            problems.append(
                f"{_named(settings, key, folder, env)} is inside the outbox "
                f"({_named(settings, '[outbox] path', outbox, env)}): the journal would be on "
                "the share, where whoever may drop an invoice may read it or delete it — "
                "give a folder off the share, such as /var/lib/outboxd (the default)")
        if key in _ARCHIVES and _inside(outbox, folder):
            problems.append(
                f"{_named(settings, '[outbox] path', outbox, env)} is inside "
                f"{_named(settings, key, folder, env)}: outboxd would file {_HOLDS[key]} "
                "in the folder that holds the outbox they come from — give the outbox, or "
                f"{key}, another place (sent/ and quarantine/ beside the outbox are the "
                "defaults)")
    return problems
