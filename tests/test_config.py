"""Configuration (docs/configuration.md): TOML file, OUTBOXD_SECTION__KEY overrides, defaults,
errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import raised, without_blocking

from daemon.config import Settings
from daemon.config_load import load_settings
from daemon.errors import ConfigError

URL = "http://127.0.0.1:9/bundles"


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


def problem_from_environment(tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
                             variable: str, value: str, key: str) -> str:
    """The problem line about `key` when `variable` is set to `value` over a minimal file."""
    monkeypatch.setenv(variable, value)
    return one_problem_with(problems_of(config_file(tmp_path, minimal(outbox))), key)


class TestDefaults:
    def test_minimal_file_gives_the_documented_defaults(self, tmp_path: Path, outbox: Path) -> None:
        """Only [outbox] path and [delivery] url are needed; the rest has its default
        (config.example.toml)."""
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


class TestErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A configuration file that does not exist is an error naming the path, not defaults."""
        with pytest.raises(ConfigError) as info:
            load_settings(tmp_path / "nope.toml")
        assert str(tmp_path / "nope.toml") in str(info.value)

    def test_a_fifo_as_the_configuration_is_named_as_such_and_never_opened(
            self, tmp_path: Path) -> None:
        """A FIFO given as the configuration is not opened for reading (that would wait
        for a writer for good): the error says what it is, not that it does not exist."""
        fifo = tmp_path / "config.toml"
        os.mkfifo(fifo)
        error = without_blocking(lambda: raised(lambda: load_settings(fifo)), fifo,
                                 "load_settings")
        assert isinstance(error, ConfigError)
        assert f"{fifo} is a FIFO, not a regular file" in str(error)

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

    # /dev/null, not /dev/zero: should the rule break, the test fails instead of
    # reading without end.
    @pytest.mark.parametrize("special", ["fifo", "/dev/null"])
    def test_a_token_file_that_is_no_regular_file_is_refused_unread(
            self, tmp_path: Path, outbox: Path, special: str) -> None:
        """A FIFO (reading it would wait for a writer for good) or a device (/dev/zero
        never ends) as token_file is a ConfigError saying what it is; nothing is read."""
        path = tmp_path / "token"
        if special == "fifo":
            os.mkfifo(path)
        else:
            path = Path(special)
        config = config_file(tmp_path, minimal(outbox).replace(
            "[delivery]\n", f'[delivery]\ntoken_file = "{path}"\n'))
        error = without_blocking(lambda: raised(lambda: load_settings(config)), path,
                                 "load_settings")
        assert isinstance(error, ConfigError)
        assert one_problem_with(error.problems, "[delivery] token_file", str(path),
                                "not a regular file")

    @pytest.mark.parametrize("content", [b"", b"\n", b"  \n\n"])
    def test_an_empty_token_file_is_a_config_error(self, tmp_path: Path, outbox: Path,
                                                   content: bytes) -> None:
        """A token_file with nothing in it (a secret not deployed yet) stops loading with a
        line naming the key and the file, instead of POSTing with no Authorization header."""
        token_file = tmp_path / "token"
        token_file.write_bytes(content)
        with pytest.raises(ConfigError) as info:
            load_settings(config_file(tmp_path, minimal(outbox).replace(
                "[delivery]\n", f'[delivery]\ntoken_file = "{token_file}"\n')))
        assert one_problem_with(info.value.problems, f'token_file = "{token_file}"',
                                "is empty", "put the token in it")

    def test_an_empty_token_is_a_config_error(self, tmp_path: Path, outbox: Path) -> None:
        """token = "" is neither a token nor "no token": loading stops, saying how to send
        none."""
        problems = problems_of(config_file(tmp_path, with_delivery(outbox, 'token = ""\n')))
        assert one_problem_with(problems, "[delivery] token = ''", "is empty", "remove the key")

    def test_an_empty_token_in_the_environment_is_a_config_error(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__TOKEN set to nothing (a deployment that failed to fill it) is
        refused like token = "", naming the variable to unset."""
        line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                        "OUTBOXD_DELIVERY__TOKEN", "", "[delivery] token")
        assert "is empty" in line and "OUTBOXD_DELIVERY__TOKEN" in line

    @pytest.mark.parametrize("userinfo", ["bob:VerySecretPw@", "apikey@"])
    def test_a_token_beside_a_password_in_the_url_is_a_config_error(
            self, tmp_path: Path, outbox: Path, userinfo: str) -> None:
        """A url with user:password, or a user name alone (httpx sends Basic for either),
        and a token (Bearer): one request carries one Authorization header, so loading
        stops saying to keep one; the password is not shown."""
        text = minimal(outbox).replace(f'url = "{URL}"',
                                       f'url = "http://{userinfo}127.0.0.1:9/b"')
        problems = problems_of(config_file(tmp_path, text.replace(
            "[delivery]\n", '[delivery]\ntoken = "abc"\n')))
        assert one_problem_with(problems, "[delivery]", "Basic", "Bearer", "keep only")
        assert "VerySecretPw" not in "\n".join(problems)

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


def with_delivery(outbox: Path, lines: str) -> str:
    """The minimal config with `lines` added at the top of [delivery]."""
    return minimal(outbox).replace("[delivery]\n", f"[delivery]\n{lines}")


class TestTokenCharacters:
    """A token is what can stand in `Authorization: Bearer TOKEN`: one run of visible
    ASCII. Anything else is refused at load, and the refusal never shows the token."""

    @pytest.mark.parametrize("token,kind", [
        ("SuperSecret\nSecondLine", "line break"),
        ("SuperSecret\r\nSecondLine", "line break"),
        ("Sécret–Tøken", "non-ASCII"),
        ("Super Secret", "space"),
        ("SuperSecret\x00x", "control character"),
    ])
    def test_a_token_httpx_cannot_send_is_refused_without_showing_it(
            self, tmp_path: Path, outbox: Path, token: str, kind: str) -> None:
        """token with a line break, a non-ASCII character, a space or a control character
        stops loading with a line naming the key, the kind of character and the rule; no
        part of the token is in it (it would reach terminals and logs)."""
        text = with_delivery(outbox, 'token = "{}"\n'.format(
            token.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\u0000")))
        problems = problems_of(config_file(tmp_path, text))
        one_problem_with(problems, "[delivery] token", kind, "visible ASCII")
        shown = "\n".join(problems)
        for part in ("Super", "Secret", "Second", "Sécret", "Tøken"):
            assert part not in shown

    def test_a_token_from_the_environment_is_checked_too(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__TOKEN with a line break is refused like one in the file."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__TOKEN", "EnvSecret\nMore")
        problems = problems_of(config_file(tmp_path, minimal(outbox)))
        one_problem_with(problems, "[delivery] token", "line break")
        assert "EnvSecret" not in "\n".join(problems)

    @pytest.mark.parametrize("content,kind", [
        (b"SuperSecretTok\nSecondLine\n", "line break"),
        ("Sécret–Tøken\n".encode(), "non-ASCII"),
        (b"Super Secret\n", "space"),
        (b"SuperSecret\xff\xfe\n", "not ASCII"),  # not even UTF-8
    ])
    def test_a_token_file_httpx_cannot_send_is_a_config_error_naming_the_file(
            self, tmp_path: Path, outbox: Path, content: bytes, kind: str) -> None:
        """A token_file whose content (surrounding whitespace stripped) is not one line of
        visible ASCII stops loading, naming the key, the file and the rule, not the token."""
        token_file = tmp_path / "token"
        token_file.write_bytes(content)
        problems = problems_of(config_file(
            tmp_path, with_delivery(outbox, f'token_file = "{token_file}"\n')))
        one_problem_with(problems, f'[delivery] token_file = "{token_file}"', kind,
                         "one line")
        shown = "\n".join(problems)
        for part in ("Super", "Secret", "Second", "Sécret", "Tøken"):
            assert part not in shown

    def test_a_bad_token_file_names_the_configuration_file(self, tmp_path: Path,
                                                           outbox: Path) -> None:
        """The error about token_file's content says which configuration file set it."""
        token_file = tmp_path / "token"
        token_file.write_text("a\nb\n", encoding="utf-8")
        path = config_file(tmp_path, with_delivery(outbox, f'token_file = "{token_file}"\n'))
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert info.value.source == str(path)

    @pytest.mark.parametrize("token", [
        "abc.DEF-123_~+/==",             # RFC 6750 b64token
        "key:with!punct$%&*#@?^`|{}[]'",  # visible ASCII beyond b64token
    ])
    def test_visible_ascii_tokens_are_accepted(self, tmp_path: Path, outbox: Path,
                                               token: str) -> None:
        """Every visible ASCII character travels verbatim in a header: tokens that receivers
        issue with punctuation outside RFC 6750's b64token are accepted, inline and in a file."""
        token_file = tmp_path / "token"
        token_file.write_text(f"  {token}\n", encoding="utf-8")
        inline = token.replace("\\", "\\\\").replace('"', '\\"')
        s = load_settings(config_file(tmp_path, with_delivery(outbox, f'token = "{inline}"\n')))
        assert s.delivery.bearer_token() == token
        s = load_settings(config_file(tmp_path, with_delivery(
            outbox, f'token_file = "{token_file}"\n')))
        assert s.delivery.bearer_token() == token

    def test_a_validation_error_printed_as_it_is_does_not_show_the_token(
            self, tmp_path: Path) -> None:
        """Settings built directly (not through load_settings) raise a ValidationError whose
        text does not hold the refused token either."""
        with pytest.raises(ValueError) as info:
            Settings(outbox={"path": str(tmp_path)},
                     delivery={"url": URL, "token": "Sécret–Tøken"})
        assert "Tøken" not in str(info.value)


def seconds_keys() -> list[tuple[str, str]]:
    """Every duration key of the schema (…_seconds), so a new one is covered by the tests."""
    keys = []
    for section, field in Settings.model_fields.items():
        for key in getattr(field.annotation, "model_fields", {}):
            if key.endswith("_seconds"):
                keys.append((section, key))
    return keys


def set_key(outbox: Path, section: str, key: str, value: str) -> str:
    """The minimal config with `key = value` in `section`."""
    if section == "outbox":
        return minimal(outbox).replace("\n\n[delivery]\n", f"\n{key} = {value}\n\n[delivery]\n")
    if section == "delivery":
        return with_delivery(outbox, f"{key} = {value}\n")
    return minimal(outbox, f"[{section}]\n{key} = {value}\n")


class TestDurations:
    def test_every_duration_key_is_found(self) -> None:
        """The schema's duration keys include the ones the audit named (guards seconds_keys)."""
        keys = seconds_keys()
        for expected in [("outbox", "rescan_seconds"), ("outbox", "settle_seconds"),
                         ("delivery", "retry_max_seconds"), ("delivery", "timeout_seconds"),
                         ("service", "shutdown_grace_seconds")]:
            assert expected in keys

    @pytest.mark.parametrize("section,key", seconds_keys())
    @pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e300", "31536001"])
    def test_a_duration_must_be_finite_and_at_most_a_year(
            self, tmp_path: Path, outbox: Path, section: str, key: str, value: str) -> None:
        """inf, nan and huge durations (which overflow the daemon's timers at run time) stop
        loading with a line naming [section] key and the bound."""
        problems = problems_of(config_file(tmp_path, set_key(outbox, section, key, value)))
        line = one_problem_with(problems, f"[{section}] {key}")
        assert "finite" in line and "31536000" in line

    @pytest.mark.parametrize("value", ["inf", "nan", "Infinity", "1e400"])
    def test_a_duration_from_the_environment_must_be_finite(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            value: str) -> None:
        """OUTBOXD_OUTBOX__RESCAN_SECONDS=inf is refused like inf in the file."""
        line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                        "OUTBOXD_OUTBOX__RESCAN_SECONDS", value,
                                        "[outbox] rescan_seconds")
        assert "finite" in line and "31536000" in line

    def test_one_year_is_allowed(self, tmp_path: Path, outbox: Path) -> None:
        """Exactly 31536000 s (365 days) is the longest allowed duration."""
        s = load_settings(config_file(tmp_path, set_key(outbox, "outbox", "rescan_seconds",
                                                        "31536000")))
        assert s.outbox.rescan_seconds == 31_536_000

    def test_duplicate_window_is_at_most_a_century(self, tmp_path: Path, outbox: Path) -> None:
        """duplicate_window_days beyond 36500 (which would reach before year 1 and fail the
        start with OverflowError) is refused naming the key."""
        problems = problems_of(config_file(
            tmp_path, minimal(outbox, "[policy]\nduplicate_window_days = 800000\n")))
        line = one_problem_with(problems, "[policy] duplicate_window_days")
        assert "36500" in line


class TestUrl:
    @pytest.mark.parametrize("url,rule", [
        ("http://", "host"),
        ("http:///bundles", "host"),
        ("http://:8080/bundles", "host"),
        ("http://operator.example:99999/x", "1 to 65535"),
        ("http://operator.example:0/x", "1 to 65535"),
        ("http://operator.example:-1/x", "1 to 65535"),
        ("http://operator.example:abc/x", "1 to 65535"),
        ("http://exa mple.com/x", "spaces"),
        (" http://operator.example/x", "start or end with a space"),
        ("http://operator.example/x\t", "control characters"),
        ("http://999.1.1.1/x", "host"),
        ("mailto:someone@example.com", "http://"),
    ])
    def test_a_url_httpx_cannot_post_to_is_refused(self, tmp_path: Path, outbox: Path,
                                                   url: str, rule: str) -> None:
        """A url without a host, with a bad port or with spaces stops loading (instead of
        every delivery being retried without end), naming [delivery] url and the rule."""
        text = with_delivery(outbox, "").replace(f'url = "{URL}"', f'url = "{url}"'.replace(
            "\t", "\\t"))
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery] url")
        assert rule in line

    @pytest.mark.parametrize("url", [
        "https://operator.example:8443/api/bundles?tenant=a@b#x",
        "http://[::1]:8787/bundles",
        "https://fakturamottagning.exempel.se/inkorg",
        "http://bob:VerySecretPw@127.0.0.1:18787/bundles",
        "HTTPS://Operator.Example/x",
        "http://operator.example/my bundles",  # httpx sends the space as %20
    ])
    def test_usable_urls_are_accepted(self, tmp_path: Path, outbox: Path, url: str) -> None:
        """Ports, IPv6, query strings, user and password, upper-case schemes, a space in the
        path pass as given."""
        text = minimal(outbox).replace(f'url = "{URL}"', f'url = "{url}"')
        assert load_settings(config_file(tmp_path, text)).delivery.url == url

    @pytest.mark.parametrize("url,secret", [
        ("http://bob:VerySecretPw@operator.example:99999/x", "VerySecretPw"),
        ("http://bob:pa/ssw0rd@operator.example/x", "ssw0rd"),  # "/" splits it: port 'pa'
        ("http://bob:Very Secret@exa mple.com/x", "Very Secret"),
        (" http://bob:VerySecretPw@operator.example/x", "VerySecretPw"),  # a space first
        ("http//bob:VerySecretPw@operator.example/x", "VerySecretPw"),  # no ':' in '://'
        ("bob:VerySecretPw@operator.example/x", "VerySecretPw"),  # no scheme at all
    ])
    def test_a_refused_url_does_not_show_its_password(self, tmp_path: Path, outbox: Path,
                                                      url: str, secret: str) -> None:
        """The error about a bad url names the key but masks the user and password."""
        text = minimal(outbox).replace(f'url = "{URL}"', f'url = "{url}"')
        problems = problems_of(config_file(tmp_path, text))
        line = one_problem_with(problems, "[delivery] url", "********@")
        assert secret not in line and ":pa" not in line

    def test_a_url_written_as_a_list_does_not_show_its_password(
            self, tmp_path: Path, outbox: Path) -> None:
        """url = ["http://bob:pw@…"] (a wrong type) is refused; the strings inside the list
        are masked like a url on its own."""
        text = minimal(outbox).replace(f'url = "{URL}"',
                                       'url = ["http://bob:VerySecretPw@operator.example/x"]')
        problems = problems_of(config_file(tmp_path, text))
        assert one_problem_with(problems, "[delivery] url", "********@")
        assert "VerySecretPw" not in "\n".join(problems)

    def test_a_url_under_an_unknown_key_does_not_show_its_password(
            self, tmp_path: Path, outbox: Path) -> None:
        """`uri = "http://bob:pw@…"` (a typo of url) is an unknown key; its password is
        masked in the error line too."""
        problems = problems_of(config_file(tmp_path, with_delivery(
            outbox, 'uri = "http://bob:VerySecretPw@operator.example/x"\n')))
        one_problem_with(problems, "[delivery] uri", "unknown key")
        assert "VerySecretPw" not in "\n".join(problems)

    def test_masked_hides_the_password_of_the_url(self, tmp_path: Path, outbox: Path) -> None:
        """`outboxd config` prints the url with its password masked like the token; the user
        name, host, port and path stay readable."""
        url = "http://bob:VerySecretPw@127.0.0.1:18787/bundles"
        s = load_settings(config_file(tmp_path, minimal(outbox).replace(
            f'url = "{URL}"', f'url = "{url}"')))
        masked = s.masked()
        assert masked["delivery"]["url"] == "http://bob:********@127.0.0.1:18787/bundles"
        assert "VerySecretPw" not in repr(masked)
        assert s.delivery.url == url  # the delivery itself still has it

    def test_masked_leaves_a_url_without_password_as_given(self, tmp_path: Path,
                                                           outbox: Path) -> None:
        """A url without a password is printed exactly as configured."""
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.masked()["delivery"]["url"] == URL


class TestEmptyPaths:
    def test_an_empty_outbox_path_is_refused(self, tmp_path: Path) -> None:
        """path = "" would be the daemon's current folder (sent/ and quarantine/ then made
        inside the outbox): refused, naming the key and the fix."""
        text = f'[outbox]\npath = ""\n\n[delivery]\nurl = "{URL}"\n'
        problems = problems_of(config_file(tmp_path, text))
        line = one_problem_with(problems, "[outbox] path")
        assert "must not be empty" in line and "set the outbox folder" in line

    @pytest.mark.parametrize("value", ["", "  "])
    def test_an_empty_outbox_path_from_the_environment_is_refused(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            value: str) -> None:
        """OUTBOXD_OUTBOX__PATH set empty is refused, not taken for the current folder."""
        line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                        "OUTBOXD_OUTBOX__PATH", value, "[outbox] path")
        assert "must not be empty" in line

    @pytest.mark.parametrize("key", ["sent", "quarantine", "processing", "state_dir"])
    def test_an_empty_folder_in_paths_is_refused(self, tmp_path: Path, outbox: Path,
                                                 key: str) -> None:
        """An empty [paths] folder is refused; the fix says to remove the key for the default."""
        problems = problems_of(config_file(tmp_path, minimal(outbox, f'[paths]\n{key} = ""\n')))
        line = one_problem_with(problems, f"[paths] {key}")
        assert "must not be empty" in line and "remove the key" in line

    def test_an_empty_directory_target_is_refused(self, tmp_path: Path, outbox: Path) -> None:
        """transport = "directory" with target = "" is refused, not the current folder."""
        text = (f'[outbox]\npath = "{outbox}"\n[delivery]\ntransport = "directory"\n'
                'target = ""\n')
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery] target")
        assert "must not be empty" in line


@pytest.mark.parametrize("key", ["sidecar_suffix", "marker_suffix"])
def test_a_suffix_with_a_slash_is_refused(tmp_path: Path, outbox: Path, key: str) -> None:
    """sidecar_suffix and marker_suffix are appended to a file's name: with a "/" the
    sidecar or marker would be a path (".files/../../etc"), so it is a configuration
    error naming the key."""
    text = minimal(outbox).replace("\n\n[delivery]", f'\n{key} = "/../../etc"\n[delivery]')
    line = one_problem_with(problems_of(config_file(tmp_path, text)), f"[outbox] {key}")
    assert "must not contain /" in line


def test_processing_on_another_file_system_than_the_outbox_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claims are renames: a [paths] processing folder on another file system
    than the outbox (another st_dev) is a configuration error at start, not a claim
    failing forever; the default, inside the outbox, is fine."""
    from daemon.config_load import prepare_folders
    outbox, processing = tmp_path / "outbox", tmp_path / "elsewhere" / "processing"
    outbox.mkdir()
    real = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real(path, *args, **kwargs)
        if Path(path) != processing:
            return st
        fields = list(st)
        fields[2] += 1  # st_dev: another file system
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "processing": str(processing)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert "another file system" in str(info.value) and "processing" in str(info.value)
    prepare_folders(s.model_copy(update={"paths": s.paths.model_copy(
        update={"processing": None})}))


def test_a_folder_that_exists_but_refuses_writes_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sent/ that exists but cannot be written (a read-only mount, a folder outside the
    unit's ReadWritePaths=, another owner; faked here, as root may write anywhere): run
    refuses at start naming the key, instead of failing at every archive later."""
    from daemon.config_load import prepare_folders
    outbox, sent = tmp_path / "outbox", tmp_path / "sent"
    outbox.mkdir()
    sent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != sent
                        and real(path, mode, **kw))
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(sent)},
                 delivery={"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert f"[paths] sent: cannot write in {sent}" in str(info.value)
    assert "read-only" in str(info.value) and "ReadWritePaths=" in str(info.value)


@pytest.mark.parametrize("linked", ["sent", ".outboxd"])
def test_a_folder_the_daemon_writes_that_is_a_link_stops_the_start(
        tmp_path: Path, linked: str) -> None:
    """sent/ (or .outboxd in the outbox, where the default processing folder lies) as a
    symbolic link would send bundles wherever it leads: run refuses at start, naming the
    link and the key, and config --check finds it without creating anything."""
    from daemon.config_load import folder_problems, prepare_folders
    outbox, elsewhere = tmp_path / "outbox", tmp_path / "elsewhere"
    outbox.mkdir()
    elsewhere.mkdir()
    link = tmp_path / "sent" if linked == "sent" else outbox / ".outboxd"
    link.symlink_to(elsewhere)
    s = Settings(outbox={"path": str(outbox)},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(tmp_path / "sent")},
                 delivery={"url": "http://127.0.0.1:9/x"})
    key = "[paths] sent" if linked == "sent" else "[paths] processing"
    [problem] = folder_problems(s)
    assert problem.startswith(f"{key}: {link} is a symbolic link")
    with pytest.raises(ConfigError) as info:
        prepare_folders(s)
    assert f"{link} is a symbolic link" in str(info.value)
    assert list(elsewhere.iterdir()) == []


def test_a_poll_interval_below_a_twentieth_of_a_second_is_refused(
        tmp_path: Path, outbox: Path) -> None:
    """poll_interval_seconds = 1e-9 would make polling a busy loop (each poll stats every
    entry of the outbox): it is a configuration error naming the key and the bound."""
    text = minimal(outbox).replace("\n\n[delivery]",
                                   "\npoll_interval_seconds = 1e-9\n[delivery]")
    line = one_problem_with(problems_of(config_file(tmp_path, text)),
                            "[outbox] poll_interval_seconds")
    assert "0.05" in line
