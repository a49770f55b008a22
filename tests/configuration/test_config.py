"""The configuration put together (daemon/configuration/config.py, docs/configuration.md): Settings
from its sections, OUTBOXD_SECTION__KEY overrides, the paths derived from the outbox, and
masked() for printing."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import URL, config_file, minimal, one_problem_with, problems_of

from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings


class TestDefaults:
    def test_default_paths_sit_beside_the_outbox(self, tmp_path: Path, outbox: Path) -> None:
        """sent/ and quarantine/ are beside the outbox, processing is OUTBOX/.outboxd/processing."""
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.sent_dir == tmp_path / "sent"
        assert s.quarantine_dir == tmp_path / "quarantine"
        assert s.processing_dir == outbox / ".outboxd" / "processing"
        assert s.paths.state_dir == Path("/var/lib/outboxd")
        assert s.journal_path.parent == Path("/var/lib/outboxd")

    def test_explicit_paths_replace_the_defaults(self, tmp_path: Path, outbox: Path) -> None:
        """Paths given in [paths] are used as they are."""
        extra = (f'[paths]\nsent = "{tmp_path}/s"\nquarantine = "{tmp_path}/q"\n'
                 f'processing = "{tmp_path}/p"\nstate_dir = "{tmp_path}/st"\n')
        s = load_settings(config_file(tmp_path, minimal(outbox, extra)))
        assert (s.sent_dir, s.quarantine_dir, s.processing_dir, s.paths.state_dir) == (
            tmp_path / "s", tmp_path / "q", tmp_path / "p", tmp_path / "st")


class TestEnvironment:
    def test_env_overrides_the_file(self, tmp_path: Path, outbox: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_SECTION__KEY wins over the same key in the TOML file."""
        text = minimal(outbox).replace("[delivery]\n", "settle_seconds = 9\n\n[delivery]\n")
        monkeypatch.setenv("OUTBOXD_OUTBOX__SETTLE_SECONDS", "0.3")
        monkeypatch.setenv("OUTBOXD_DELIVERY__URL", "https://127.0.0.1:9/api")
        s = load_settings(config_file(tmp_path, text))
        assert s.outbox.settle_seconds == 0.3
        assert s.delivery.url == "https://127.0.0.1:9/api"
        assert s.outbox.path == outbox  # the rest of the section still comes from the file

    def test_env_sets_a_section_the_file_lacks(self, tmp_path: Path, outbox: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """A key of a section absent from the file can come from the environment alone."""
        monkeypatch.setenv("OUTBOXD_POLICY__UNATTACHED", "hold")
        monkeypatch.setenv("OUTBOXD_DELIVERY__SAFE_FILENAMES", "false")
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.policy.unattached == "hold"
        assert s.delivery.safe_filenames is False

    def test_lists_are_json(self, tmp_path: Path, outbox: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A list value in the environment is written as JSON."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__INVOICE_PATTERNS", '["*.xml", "*.ubl"]')
        monkeypatch.setenv("OUTBOXD_ATTACHMENTS__DOCUMENT_TYPES", '["Timesheet"]')
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.outbox.invoice_patterns == ["*.xml", "*.ubl"]
        assert s.attachments.document_types == ["Timesheet"]

    def test_a_list_with_blanks_before_its_bracket_is_json_too(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A list value with a space or line break before its "[" (a value quoted over
        lines in a unit file or .env) is read as the list it is, not refused as text."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__INVOICE_PATTERNS", ' \n["*.xml"]')
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.outbox.invoice_patterns == ["*.xml"]

    def test_token_from_env(self, tmp_path: Path, outbox: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__TOKEN (configuration.md's example) sets the bearer token."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__TOKEN", "s3cret-from-env")
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.delivery.bearer_token() == "s3cret-from-env"

    @pytest.mark.parametrize("name", ["OUTBOXD_FOO", "OUTBOXD_NOPE__X", "OUTBOXD_CONFIG",
                                      "OUTBOXD_OUTBOX__", "OUTBOXD___PATH", "OUTBOXDX__Y"])
    def test_unrelated_variables_are_ignored(self, tmp_path: Path, outbox: Path,
                                             monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        """Variables that are not OUTBOXD_<known section>__<key> neither apply nor fail."""
        path = config_file(tmp_path, minimal(outbox))
        baseline = load_settings(path).model_dump()
        monkeypatch.setenv(name, "garbage")
        assert load_settings(path).model_dump() == baseline

    def test_unknown_key_of_known_section_is_an_error(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__NOPE names a key [delivery] does not have: an error, not ignored."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__NOPE", "1")
        line = one_problem_with(problems_of(config_file(tmp_path, minimal(outbox))),
                                "[delivery] nope", "'1'", "unknown key")
        assert "allowed:" in line and "token_file" in line

    def test_bad_env_value_is_an_error(self, tmp_path: Path, outbox: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad value from the environment is reported like one from the file."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__SETTLE_SECONDS", "soon")
        assert one_problem_with(problems_of(config_file(tmp_path, minimal(outbox))),
                         "[outbox] settle_seconds", "'soon'", "number")


class TestSecrets:
    def test_masked_never_shows_the_token(self, tmp_path: Path, outbox: Path) -> None:
        """masked() is printable: the token appears nowhere in it."""
        s = load_settings(config_file(
            tmp_path, minimal(outbox).replace("[delivery]\n", '[delivery]\ntoken = "hunter2-x"\n')))
        assert s.delivery.bearer_token() == "hunter2-x"
        masked = s.masked()
        assert "hunter2-x" not in repr(masked)
        assert masked["delivery"]["token"]
        assert masked["paths"]["processing"] == str(outbox / ".outboxd" / "processing")
        assert "hunter2-x" not in repr(s) and "hunter2-x" not in str(s)


class TestConstruction:
    def test_settings_can_be_built_directly(self, tmp_path: Path) -> None:
        """Settings(...) with the same sections works without a file (as the tests build it)."""
        s = Settings(outbox={"path": str(tmp_path)}, paths={"state_dir": str(tmp_path / "st")},
                     delivery={"url": URL})
        assert s.outbox.path == tmp_path
        assert s.journal_path == tmp_path / "st" / "journal.sqlite3"
