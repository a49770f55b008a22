"""The validation matrix as a clerk meets it (docs/folder-convention.md, "What makes an
attachment invalid"): per channel, legitimate but unusual files, each made here, and
what each error says (the file, the rule broken and the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest
from validating import Outbox, codes, only

from daemon.config import ValidationConfig


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path)


class TestText:
    def test_a_refused_text_file_in_windows_1252_gets_no_promise_that_it_is_sent(
            self, outbox: Outbox) -> None:
        """A Windows-1252 .txt on e-invoice (plain text is not allowed by default) is one
        type-not-allowed error, without a warning saying "it is sent as it is"."""
        bundle = outbox.validate("notes.txt", "Leverans till Göteborg\n".encode("cp1252"))
        assert codes(bundle) == ["type-not-allowed"]
        assert "sent as it is" not in " ".join(f.message for f in bundle.findings)

    def test_a_plain_text_file_in_windows_1252_is_told_to_be_saved_as_utf8_not_csv(
            self, outbox: Outbox) -> None:
        """Where plain text is allowed, the Windows-1252 warning of a text file that is no
        CSV says to save it as UTF-8, not as "CSV UTF-8"."""
        cfg = ValidationConfig(allowed_types=["pdf", "text"])
        bundle = outbox.validate("notes.txt", "Leverans till Göteborg\n".encode("cp1252"),
                                 cfg=cfg)
        message = only(bundle, "csv-windows-1252").message
        assert "save it as UTF-8" in message and "CSV" not in message
        assert codes(bundle, "error") == []
