"""Configuration (SPEC §6): TOML file, OUTBOXD_SECTION__KEY overrides, defaults, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError

URL = "http://127.0.0.1:9/bundles"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OUTBOXD_* variable of the machine running the tests leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("OUTBOXD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def minimal(outbox: Path, extra: str = "") -> str:
    return f'[outbox]\npath = "{outbox}"\n\n[delivery]\nurl = "{URL}"\n' + extra


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def one_problem_with(problems: list[str], *parts: str) -> str:
    """The one problem line that holds every part; fails listing all lines if none does."""
    hits = [p for p in problems if all(part in p for part in parts)]
    assert hits, f"no problem line holds {parts}: {problems}"
    return hits[0]


class TestDefaults:
    def test_minimal_file_gives_the_spec_defaults(self, tmp_path: Path, outbox: Path) -> None:
        """Only [outbox] path and [delivery] url are needed; the rest has its SPEC default."""
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.outbox.path == outbox
        assert s.outbox.invoice_patterns == ["*.xml", "*.pdf"]
        assert s.outbox.sidecar_suffix == ""
        assert s.outbox.completion == "settle"
        assert s.outbox.settle_seconds == 5
        assert s.outbox.marker_suffix == ".ready"
        assert s.outbox.watch == "auto"
        assert s.outbox.rescan_seconds == 60
        assert s.attachments.default_document_type == "Attachment"
        assert s.attachments.document_types is None
        assert s.policy.unattached == "warn"
        assert s.policy.attachment_wait_seconds == 300
        assert s.policy.invalid == "quarantine"
        assert s.policy.duplicates == "quarantine"
        assert s.delivery.transport == "http"
        assert s.delivery.safe_filenames is True
        assert s.delivery.concurrency == 4
        assert s.delivery.timeout_seconds == 60
        assert s.delivery.connect_timeout_seconds == 5
        assert s.delivery.retry_base_seconds == 1
        assert s.delivery.retry_max_seconds == 300
        assert s.delivery.verify is True
        assert s.validation.max_attachment_bytes == 5_000_000
        assert s.log.format == "auto"
        assert s.service.shutdown_grace_seconds == 20

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

    def test_fractional_seconds_are_accepted(self, tmp_path: Path, outbox: Path) -> None:
        """All durations may be fractional (tests run with settle_seconds = 0.3)."""
        extra = ("[policy]\nattachment_wait_seconds = 1.5\n"
                 "[service]\nshutdown_grace_seconds = 0.25\n")
        text = minimal(outbox, extra).replace(
            "[delivery]\n", "settle_seconds = 0.3\nrescan_seconds = 0.5\n\n[delivery]\n"
            "retry_base_seconds = 0.05\ntimeout_seconds = 2.5\n")
        s = load_settings(config_file(tmp_path, text))
        assert s.outbox.settle_seconds == 0.3
        assert s.outbox.rescan_seconds == 0.5
        assert s.policy.attachment_wait_seconds == 1.5
        assert s.service.shutdown_grace_seconds == 0.25
        assert s.delivery.retry_base_seconds == 0.05
        assert s.delivery.timeout_seconds == 2.5

    def test_directory_transport_needs_no_url(self, tmp_path: Path, outbox: Path) -> None:
        """With transport = "directory" the target, not a url, is the delivery target."""
        text = (f'[outbox]\npath = "{outbox}"\n[delivery]\ntransport = "directory"\n'
                f'target = "{tmp_path}/out"\n')
        s = load_settings(config_file(tmp_path, text))
        assert s.delivery.url is None
        assert s.delivery.target == tmp_path / "out"


class TestEnvironment:
    def test_env_overrides_the_file(self, tmp_path: Path, outbox: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_SECTION__KEY wins over the same key in the TOML file."""
        text = minimal(outbox).replace("[delivery]\n", "settle_seconds = 9\n\n[delivery]\n")
        monkeypatch.setenv("OUTBOXD_OUTBOX__SETTLE_SECONDS", "0.3")
        monkeypatch.setenv("OUTBOXD_DELIVERY__URL", "https://operator.example/api")
        s = load_settings(config_file(tmp_path, text))
        assert s.outbox.settle_seconds == 0.3
        assert s.delivery.url == "https://operator.example/api"
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

    def test_token_from_env(self, tmp_path: Path, outbox: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__TOKEN (the SPEC's example) sets the bearer token."""
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


class TestErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A configuration file that does not exist is an error naming the path, not defaults."""
        with pytest.raises(ConfigError) as info:
            load_settings(tmp_path / "nope.toml")
        assert str(tmp_path / "nope.toml") in str(info.value)

    def test_invalid_toml(self, tmp_path: Path) -> None:
        """A file that is not TOML is an error saying so."""
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_settings(config_file(tmp_path, "[outbox\npath = 1\n"))

    def test_missing_outbox_folder(self, tmp_path: Path) -> None:
        """An outbox that does not exist is an error (probably a missing mount), not created."""
        missing = tmp_path / "mnt" / "outbox"
        with pytest.raises(ConfigError) as info:
            load_settings(config_file(tmp_path, minimal(missing)))
        line = one_problem_with(info.value.problems, "[outbox] path", str(missing))
        assert "does not exist" in line
        assert not missing.exists()

    def test_outbox_path_required(self, tmp_path: Path) -> None:
        """[outbox] path is required."""
        text = f'[outbox]\nsettle_seconds = 1\n[delivery]\nurl = "{URL}"\n'
        problems = problems_of(config_file(tmp_path, text))
        assert one_problem_with(problems, "[outbox] path", "required")

    def test_url_required_for_http(self, tmp_path: Path, outbox: Path) -> None:
        """transport = "http" (the default) without a url is an error naming [delivery] url."""
        text = f'[outbox]\npath = "{outbox}"\n[delivery]\ntimeout_seconds = 3\n'
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery] url")
        assert "required" in line and "http" in line

    def test_url_must_be_http(self, tmp_path: Path, outbox: Path) -> None:
        """A url that is not http:// or https:// is refused, naming the value."""
        text = f'[outbox]\npath = "{outbox}"\n[delivery]\nurl = "ftp://operator/x"\n'
        assert one_problem_with(problems_of(config_file(tmp_path, text)),
                         "[delivery] url", "ftp://operator/x", "http://")

    def test_target_required_for_directory(self, tmp_path: Path, outbox: Path) -> None:
        """transport = "directory" without a target is an error naming [delivery] target."""
        text = f'[outbox]\npath = "{outbox}"\n[delivery]\ntransport = "directory"\n'
        assert one_problem_with(problems_of(config_file(tmp_path, text)),
                         "[delivery] target", "required")

    def test_unknown_key_names_key_value_and_allowed(self, tmp_path: Path, outbox: Path) -> None:
        """An unknown key is an error naming [section] key, its value and the allowed keys."""
        text = minimal(outbox).replace("[delivery]\n", "settle_secs = 3\n\n[delivery]\n")
        line = one_problem_with(problems_of(config_file(tmp_path, text)),
                                "[outbox] settle_secs", "3", "unknown key")
        assert "settle_seconds" in line  # what is allowed

    def test_unknown_section(self, tmp_path: Path, outbox: Path) -> None:
        """An unknown section is an error listing the known sections."""
        line = one_problem_with(
            problems_of(config_file(tmp_path, minimal(outbox, "[deliveries]\nurl = 1\n"))),
            "[deliveries]", "unknown section")
        assert "delivery" in line and "outbox" in line

    @pytest.mark.parametrize("extra,key,value,allowed", [
        ('[policy]\nunattached = "maybe"\n', "[policy] unattached", "maybe", "'hold'"),
        ('[policy]\ninvalid = "drop"\n', "[policy] invalid", "drop", "'quarantine'"),
        ('[log]\nformat = "xml"\n', "[log] format", "xml", "'json'"),
        ('[delivery.x]\n', "[delivery] x", "", "unknown key"),
        ('[service]\nshutdown_grace_seconds = -1\n', "[service] shutdown_grace_seconds",
         "-1", "greater than or equal to 0"),
        ('[validation]\nmax_attachment_bytes = 0\n', "[validation] max_attachment_bytes",
         "0", "greater than 0"),
        ('[validation]\nallowed_types = ["pdf", "exe"]\n', "[validation] allowed_types",
         "exe", "known:"),
        ('[invoices]\npdf_id_pattern = "(a)(b)"\n', "[invoices] pdf_id_pattern", "(a)(b)",
         "exactly one group"),
        ('[invoices]\npdf_id_pattern = "(a"\n', "[invoices] pdf_id_pattern", "(a",
         "regular expression"),
    ])
    def test_bad_values_name_key_value_and_allowed(self, tmp_path: Path, outbox: Path,
                                                   extra: str, key: str, value: str,
                                                   allowed: str) -> None:
        """A bad value is an error line naming [section] key, the value and what is allowed."""
        assert one_problem_with(problems_of(config_file(tmp_path, minimal(outbox, extra))),
                         key, value, allowed)

    def test_every_problem_is_reported(self, tmp_path: Path, outbox: Path) -> None:
        """Several problems are all reported at once, one line each."""
        extra = '[policy]\nunattached = "maybe"\n[log]\nlevel = "loud"\n[nope]\n'
        problems = problems_of(config_file(tmp_path, minimal(outbox, extra)))
        assert one_problem_with(problems, "[policy] unattached")
        assert one_problem_with(problems, "[log] level")
        assert one_problem_with(problems, "[nope]")
        assert len(problems) == 3


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

    def test_bearer_token_from_file_is_stripped(self, tmp_path: Path, outbox: Path) -> None:
        """token_file is read and surrounding whitespace (a trailing newline) stripped."""
        token_file = tmp_path / "token"
        token_file.write_text("  abc.def-123\n\n", encoding="utf-8")
        s = load_settings(config_file(tmp_path, minimal(outbox).replace(
            "[delivery]\n", f'[delivery]\ntoken_file = "{token_file}"\n')))
        assert s.delivery.bearer_token() == "abc.def-123"
        assert "abc.def-123" not in repr(s.masked())

    def test_unreadable_token_file_is_a_config_error(self, tmp_path: Path, outbox: Path) -> None:
        """A token_file that cannot be read stops loading with a ConfigError naming the key
        and the path (not a failed POST later)."""
        with pytest.raises(ConfigError) as info:
            load_settings(config_file(tmp_path, minimal(outbox).replace(
                "[delivery]\n", f'[delivery]\ntoken_file = "{tmp_path}/absent"\n')))
        assert one_problem_with(info.value.problems, "[delivery] token_file", f"{tmp_path}/absent")

    def test_no_token(self, tmp_path: Path, outbox: Path) -> None:
        """Without token or token_file there is no bearer token."""
        assert load_settings(config_file(tmp_path, minimal(outbox))).delivery.bearer_token() is None


class TestConstruction:
    def test_settings_can_be_built_directly(self, tmp_path: Path) -> None:
        """Settings(...) with the same sections works without a file (as the tests build it)."""
        s = Settings(outbox={"path": str(tmp_path)}, paths={"state_dir": str(tmp_path / "st")},
                     delivery={"url": URL})
        assert s.outbox.path == tmp_path
        assert s.journal_path == tmp_path / "st" / "journal.sqlite3"


class TestVerifyFromEnvironment:
    def test_false_from_the_environment_is_a_boolean(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__VERIFY=false turns verification off; it is not a CA path."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__VERIFY", "false")
        assert load_settings(config_file(tmp_path, minimal(outbox))).delivery.verify is False

    def test_a_missing_ca_bundle_is_a_config_error(self, tmp_path: Path, outbox: Path) -> None:
        """verify = "/nope/ca.pem" names the key and says what is allowed."""
        problems = problems_of(config_file(tmp_path, minimal(outbox, 'verify = "/nope/ca.pem"\n')))
        assert one_problem_with(problems, "[delivery] verify = '/nope/ca.pem'", "CA bundle")


class TestSecretsInErrors:
    def test_a_mistyped_token_key_does_not_print_the_secret(self, tmp_path: Path,
                                                            outbox: Path) -> None:
        """`tokn = "s3cr3t"` is an unknown key; the error names it but masks the value."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, 'tokn = "s3cr3t-value"\ntoken = 12345\n')))
        text = "\n".join(problems)
        assert "[delivery] tokn" in text and "[delivery] token" in text
        assert "s3cr3t-value" not in text and "12345" not in text

    def test_a_missing_client_certificate_is_a_config_error(self, tmp_path: Path,
                                                            outbox: Path) -> None:
        """client_cert pointing nowhere stops loading, naming the key (not a traceback later)."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, 'client_cert = "/nonexistent.pem"\n')))
        assert one_problem_with(problems, "[delivery] client_cert = '/nonexistent.pem'", "PEM file")
