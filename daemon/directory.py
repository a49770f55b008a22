"""The directory transport (docs/protocol.md, section 7): a bundle written as the folder
TARGET/BUNDLEID/, or (ubl-embedded, docs/einvoice.md) one document as the file
TARGET/NAME--INVOICEID.xml, for a transfer agent that takes them from there.

Each appears in one rename, with everything in it already on disk: a reader (an SFTP
sync) never takes half a bundle or half a document, even after a power loss, and
takes no temporary name for a finished one (a bundle's is `.tmp-BUNDLEID/`, a
document's `.NAME.tmp-…`, swept when the document is written again).

When the target is group-writable (the transfer agent's group), so are the folders of
each bundle: the agent must be able to move or delete what it has taken, and umask
027 made them read-only for it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from daemon.answers import Receipt
from daemon.bundle import Bundle
from daemon.errors import Rejected, Retryable
from daemon.fsops import (
    add_group_write,
    copy_file,
    fsync_dir,
    fsync_tree,
    rename_noreplace,
    write_json,
)
from daemon.manifest import sent_parts
from daemon.names import folder_name_for_id
from daemon.temps import create_locked, drop_unfinished, temp_prefix


class DirectoryDeliverer:
    """TARGET/.tmp-BUNDLEID/ renamed to TARGET/BUNDLEID/ (docs/protocol.md, section 7)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def close(self) -> None:
        pass

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        bid = manifest["bundle_id"]
        final = self.target / bid
        body = {"delivered_to": str(final)}
        if final.exists():
            return Receipt(200, {**body, "already_delivered": True}, None)
        tmp = self.target / f".tmp-{bid}"
        made = False  # only a .tmp- folder this attempt made is removed when it fails
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            made = True
            write_json(tmp / "manifest.json", manifest)
            # Every file under its manifest `name`, the one field that is right for a
            # folded name and for a converted image alike (original_name is neither).
            copy_file(bundle.invoice_file.path, tmp / manifest["invoice_file"]["name"])
            for att, name in sent_parts(bundle, manifest):
                folder = tmp / "attachments" / folder_name_for_id(att.invoice_id)
                folder.mkdir(parents=True, exist_ok=True)
                _, path, _, _, _ = att.sent  # a converted image goes as its PDF
                copy_file(path, folder / name)
            if os.stat(self.target).st_mode & stat.S_IWGRP:
                for sub, _dirs, _files in os.walk(tmp):
                    add_group_write(Path(sub))
            # The entries of the files and folders just made, before the rename that
            # publishes them: else a power loss could leave TARGET/BUNDLEID/ without
            # some of them, which a retry takes for delivered.
            fsync_tree(tmp)
            tmp.rename(final)
            made = False
            fsync_dir(self.target)
        except BaseException as exc:
            # Half a bundle is of no use to anyone: a full disk gets its space back, and
            # one refused here (a file swapped for a link: quarantined) never comes again
            # under this id, so its .tmp- folder would stay in the target for good.
            if made:
                shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise Retryable(f"cannot write to [delivery] target {self.target}: "
                                f"{exc.strerror or exc}") from None
            raise
        return Receipt(201, body, None)


def write_document(target: Path, name: str, data: bytes) -> Receipt:
    """One ubl-embedded document as TARGET/NAME: written under a temporary name that no
    reader of `*.xml` takes (and that a killed writer's next try sweeps), then renamed
    without replacing. A file already there with the same bytes is delivered; one with
    other bytes is the clerk's to look at, never replaced."""
    final = target / name
    try:
        if final.exists():
            if final.read_bytes() == data:
                return Receipt(200, {"path": str(final), "already_there": True}, None)
            refused = Rejected(f"[delivery] target already holds {name} with other "
                               "content", 409, f"{final} exists and differs")
            refused.fix = ("move that file away if it is an old version the transfer agent "
                           "has not taken, then move the bundle back into the outbox")
            raise refused
        drop_unfinished(target, [name])
        tmp = target / f"{temp_prefix(name)}{os.urandom(6).hex()}"
        fd = create_locked(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                rename_noreplace(tmp, final)  # still locked: no sweep takes it before
        except FileExistsError:
            tmp.unlink()
            return write_document(target, name, data)  # another writer's: compare it
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target)
    except OSError as exc:
        raise Retryable(f"cannot write to [delivery] target {target}: "
                        f"{exc.strerror or exc}") from None
    return Receipt(201, {"path": str(final)}, None)
