"""Archive: move a finished bundle into sent/ or quarantine/ with its papers.

Layout (SPEC §4): ROOT/YYYY-MM-DD/NAME--BUNDLEID12/ (UTC date, `-2`, `-3` …
when taken) holding the bundle as it was in the outbox plus receipt.json,
or reason.json and REASON.txt. The papers are written into the work folder
first, so the one move that follows carries a complete archive entry.
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.bundle import Finding
from daemon.fsops import free_name, move_tree, write_atomic, write_json
from daemon.manifest import utc_now_iso
from daemon.names import NAME_MAX, fit_bytes

# Room left in a path component for free_name's "-NNN" and move_tree's ".NAME.partial".
_ARCHIVE_NAME_MAX = NAME_MAX - 15


def target_for(root: Path, name: str, bundle_id: str) -> Path:
    """ROOT/YYYY-MM-DD/NAME--ID12, NAME shortened if the folder name would not fit."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    tail = f"--{bundle_id[:12]}"
    return free_name(root / day, fit_bytes(name, _ARCHIVE_NAME_MAX - len(tail)) + tail)


def _holds_copy_of(target: Path, work: Path) -> bool:
    """Every file still in work is in target with the same bytes (or link text)."""
    for dirpath, _dirs, files in os.walk(work):
        for f in files:
            src = Path(dirpath, f)
            dst = target / src.relative_to(work)
            if src.is_symlink():
                if not dst.is_symlink() or os.readlink(src) != os.readlink(dst):
                    return False
            elif dst.is_symlink() or not dst.is_file() \
                    or not filecmp.cmp(src, dst, shallow=False):
                return False
    return True


def move_into_place(work: Path, target: Path) -> Path:
    """Move work → target; safe to call again after a crash at any point in it.

    Returns where the bundle now lies: `target`, or a free name beside it if
    `target` was taken by something that is not this bundle.
    """
    if not work.exists():
        if target.exists():
            return target  # an earlier run finished the move
        # Neither is there: a share that went away (processing lives on it), or
        # a folder removed by hand. Never report a move that did not happen.
        raise FileNotFoundError(errno.ENOENT, "the processing folder is not there (is the "
                                "share mounted?) and the bundle is not in the archive either",
                                str(work))
    if target.exists():
        if _holds_copy_of(target, work):
            # Crashed after the cross-file-system copy was renamed into place
            # but before (or while) the source was deleted: the target is
            # complete (it is only renamed there after every file was fsynced).
            shutil.rmtree(work)
            return target
        # Someone else's archive entry under the same name (two daemons, or a
        # duplicate archived at the same time): never delete ours for it.
        target = free_name(target.parent, target.name)
    move_tree(work, target)
    return target


def write_receipt(work: Path, receipt: dict[str, Any]) -> None:
    write_json(work / "receipt.json", receipt)


def reason_record(bundle_id: str, invoice_file: str, reasons: list[Finding]) -> dict[str, Any]:
    return {"bundle_id": bundle_id, "invoice_file": invoice_file,
            "reasons": [{"code": r.code, "file": r.file, "message": r.message} for r in reasons],
            "quarantined_at": utc_now_iso()}


def reason_text(record: dict[str, Any]) -> str:
    lines = [f"outboxd quarantined {record['invoice_file']} (bundle {record['bundle_id']})",
             f"at {record['quarantined_at']} for these reasons:", ""]
    for r in record["reasons"]:
        lines.append(f"- {r['file']}: {r['message']}  [{r['code']}]")
    lines += ["", "Nothing was sent. Fix what is listed above, then move the invoice file "
              "and its sidecar folder from this folder back into the outbox;",
              "outboxd will check and send them again.", ""]
    return "\n".join(lines)


def write_reasons(work: Path, record: dict[str, Any]) -> None:
    write_json(work / "reason.json", record)
    write_atomic(work / "REASON.txt", reason_text(record).encode("utf-8"))
    # REASON.txt is for people on the share: readable by the group as well.
    os.chmod(work / "REASON.txt", 0o640)
