"""The sections of the configuration (daemon/configuration/config_sections.py): their defaults, and
the checks of each key (allowed values, the token and token_file, TLS files, suffixes, bounds).
Through load_settings, as an admin meets them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import (
    URL,
    config_file,
    minimal,
    one_problem_with,
    problem_from_environment,
    problems_of,
    raised,
    with_delivery,
    without_blocking,
)

from daemon.configuration import config_readers
from daemon.configuration.config_load import load_settings
from daemon.errors import ConfigError


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

    def test_every_other_default_the_contract_names(self, tmp_path: Path, outbox: Path) -> None:
        """The remaining named defaults: watching, pre-flight, the share's names, the
        channel and its limits, the format and the duplicate window."""
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert s.outbox.ignore_patterns == [] and s.outbox.poll_interval_seconds == 2
        assert s.paths.state_dir == Path("/var/lib/outboxd")
        assert s.validation.channel == "e-invoice" and s.validation.convert_images is False
        assert s.validation.allowed_types == ["pdf", "png", "jpeg", "csv", "xlsx", "ods"]
        assert s.validation.max_image_pixels == 89_478_485
        assert s.policy.duplicate_window_days == 400
        assert s.delivery.format == "bundle" and s.delivery.token is None
        assert s.share.status_page == "outboxd-status.html"
        assert s.share.release_suffix == ".send-anyway"
        assert s.einvoice.preflight == "error"

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


class TestErrors:
    def test_url_required_for_http(self, tmp_path: Path, outbox: Path) -> None:
        """transport = "http" (the default) without a url is an error naming [delivery] url."""
        text = f'[outbox]\npath = "{outbox}"\n[delivery]\ntimeout_seconds = 3\n'
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery] url")
        assert "required" in line and "http" in line

    def test_the_sections_repr_shows_no_secret_of_the_url(self, tmp_path: Path,
                                                          outbox: Path) -> None:
        """A repr of the settings (a debugger, a `{cfg!r}` in some later log line) shows
        the url with its password and secret query values masked, the host as it is."""
        url = "https://bob:PassWord9@operator.example/in?access_token=Qx7Tok3n&tenant=7"
        text = minimal(outbox).replace(f'url = "{URL}"', f'url = "{url}"')
        settings = load_settings(config_file(tmp_path, text))
        for shown in (repr(settings.delivery), repr(settings), str(settings.delivery)):
            assert "PassWord9" not in shown and "Qx7Tok3n" not in shown
            assert "operator.example/in" in shown and "tenant=7" in shown
        assert settings.delivery.url == url  # what deliveries use is untouched

    def test_target_required_for_directory(self, tmp_path: Path, outbox: Path) -> None:
        """transport = "directory" without a target is an error naming [delivery] target."""
        text = f'[outbox]\npath = "{outbox}"\n[delivery]\ntransport = "directory"\n'
        assert one_problem_with(problems_of(config_file(tmp_path, text)),
                         "[delivery] target", "required")

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
        ('[share]\nstatus_page = ".status.html"\n', "[share] status_page", ".status.html",
         "not hidden"),
        ('[share]\nstatus_page = "www/status.html"\n', "[share] status_page",
         "www/status.html", "no folders"),
        ('[service]\nreader_processes = 65\n', "[service] reader_processes", "65",
         "from 0 to 64"),
    ])
    def test_bad_values_name_key_value_and_allowed(self, tmp_path: Path, outbox: Path,
                                                   extra: str, key: str, value: str,
                                                   allowed: str) -> None:
        """A bad value is an error line naming [section] key, the value and what is allowed."""
        assert one_problem_with(problems_of(config_file(tmp_path, minimal(outbox, extra))),
                         key, value, allowed)


class TestSecrets:
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

    def test_no_token(self, tmp_path: Path, outbox: Path) -> None:
        """Without token or token_file there is no bearer token."""
        assert load_settings(config_file(tmp_path, minimal(outbox))).delivery.bearer_token() is None


def test_reader_processes_takes_every_whole_number_from_0_to_64(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ends of [service] reader_processes' range load as whole numbers, on a host
    that takes 64 (what a host takes: test_config_readers.py)."""
    monkeypatch.setattr(config_readers, "usable_cpus", lambda: 64)
    monkeypatch.setattr(config_readers, "memory_mb", lambda: 64 * 1024)
    for n in (0, 64):
        s = load_settings(config_file(tmp_path, minimal(
            outbox, f"[service]\nreader_processes = {n}\n")))
        assert s.service.reader_processes == n


class TestVerifyFromEnvironment:
    @pytest.mark.parametrize("word", ["false", "0", "Off"])
    def test_false_from_the_environment_is_a_boolean(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            word: str) -> None:
        """OUTBOXD_DELIVERY__VERIFY=false (or 0, off) turns verification off; it is not a
        CA path."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__VERIFY", word)
        assert load_settings(config_file(tmp_path, minimal(outbox))).delivery.verify is False

    def test_a_missing_ca_bundle_is_a_config_error(self, tmp_path: Path, outbox: Path) -> None:
        """verify = "/nope/ca.pem" names the key and says what is allowed."""
        problems = problems_of(config_file(tmp_path, minimal(outbox, 'verify = "/nope/ca.pem"\n')))
        assert one_problem_with(problems, "[delivery] verify = '/nope/ca.pem'", "CA bundle")


class TestSecretsInErrors:
    def test_a_missing_client_certificate_is_a_config_error(self, tmp_path: Path,
                                                            outbox: Path) -> None:
        """client_cert pointing nowhere stops loading, naming the key (not a traceback later)."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, 'client_cert = "/nonexistent.pem"\n')))
        assert one_problem_with(problems, "[delivery] client_cert = '/nonexistent.pem'", "PEM file")

    def test_a_client_key_without_its_certificate_is_a_config_error(
            self, tmp_path: Path, outbox: Path) -> None:
        """client_key alone is refused naming the key and asking for client_cert: a key is
        used only with its certificate, so alone it was ignored and every connection went
        out without a client certificate (a TLS failure at each delivery, not at start)."""
        key = tmp_path / "client.key"
        key.write_text("-----BEGIN PRIVATE KEY-----\n")
        problems = problems_of(config_file(tmp_path, minimal(outbox, f'client_key = "{key}"\n')))
        assert one_problem_with(problems, "[delivery] client_key", "without client_cert")


class TestDurations:
    def test_duplicate_window_is_at_most_a_century(self, tmp_path: Path, outbox: Path) -> None:
        """duplicate_window_days beyond 36500 (which would reach before year 1 and fail the
        start with OverflowError) is refused naming the key."""
        problems = problems_of(config_file(
            tmp_path, minimal(outbox, "[policy]\nduplicate_window_days = 800000\n")))
        line = one_problem_with(problems, "[policy] duplicate_window_days")
        assert "36500" in line


@pytest.mark.parametrize("key", ["sidecar_suffix", "marker_suffix"])
def test_a_suffix_with_a_slash_is_refused(tmp_path: Path, outbox: Path, key: str) -> None:
    """sidecar_suffix and marker_suffix are appended to a file's name: with a "/" the
    sidecar or marker would be a path (".files/../../etc"), so it is a configuration
    error naming the key."""
    text = minimal(outbox).replace("\n\n[delivery]", f'\n{key} = "/../../etc"\n[delivery]')
    line = one_problem_with(problems_of(config_file(tmp_path, text)), f"[outbox] {key}")
    assert "must not contain /" in line


def test_a_poll_interval_below_a_twentieth_of_a_second_is_refused(
        tmp_path: Path, outbox: Path) -> None:
    """poll_interval_seconds = 1e-9 would make polling a busy loop (each poll stats every
    entry of the outbox): it is a configuration error naming the key and the bound."""
    text = minimal(outbox).replace("\n\n[delivery]",
                                   "\npoll_interval_seconds = 1e-9\n[delivery]")
    line = one_problem_with(problems_of(config_file(tmp_path, text)),
                            "[outbox] poll_interval_seconds")
    assert "0.05" in line


def test_a_default_document_type_longer_than_a_type_may_be_is_refused(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[attachments] default_document_type stands for attachments.toml's `type`, which may
    have at most 2,000 characters: 2,001 (a paste gone wrong) is refused at load with the
    usual line naming the key, cut, with the length and the bound; 2,000 pass."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                    "OUTBOXD_ATTACHMENTS__DEFAULT_DOCUMENT_TYPE", "T" * 2001,
                                    "[attachments] default_document_type")
    assert line.startswith(f"[attachments] default_document_type (from "
                           f"OUTBOXD_ATTACHMENTS__DEFAULT_DOCUMENT_TYPE) = '{'T' * 200}'… "
                           "(2,001 characters): ")
    assert "is 2,001 characters long; a document type may have at most 2,000" in line
    monkeypatch.delenv("OUTBOXD_ATTACHMENTS__DEFAULT_DOCUMENT_TYPE")
    text = minimal(outbox, f'[attachments]\ndefault_document_type = "{"T" * 2000}"\n')
    assert load_settings(config_file(tmp_path, text)).attachments.default_document_type \
        == "T" * 2000


@pytest.mark.parametrize("extra,key,value,said", [
    ('[policy]\n', "[outbox] marker_suffix", "''", "must not be empty"),
    ('[attachments]\ndefault_document_type = ""\n', "[attachments] default_document_type",
     "''", "must not be empty"),
    ('[share]\nrelease_suffix = "send"\n', "[share] release_suffix", "'send'",
     'must be a dot and at least one more character, without / or \\, e.g. ".send-anyway"'),
    ('[share]\nrelease_suffix = "."\n', "[share] release_suffix", "'.'",
     'must be a dot and at least one more character, without / or \\, e.g. ".send-anyway"'),
])
def test_an_empty_text_or_a_release_suffix_without_its_dot_says_what_to_write(
        tmp_path: Path, outbox: Path, extra: str, key: str, value: str, said: str) -> None:
    """docs/configuration.md, Checking: a bad value names the key, the value and what is
    allowed. An empty marker_suffix or default_document_type said pydantic's "String should
    have at least 1 character", and a release_suffix without its dot showed the regular
    expression `^\\.[^/\\\\]+$` to the admin; each now says in words what to write."""
    text = minimal(outbox, extra)
    if key == "[outbox] marker_suffix":
        text = text.replace("\n\n[delivery]", '\nmarker_suffix = ""\n[delivery]')
    [line] = problems_of(config_file(tmp_path, text))
    assert line == f"{key} = {value}: {said}"
    assert "String" not in line and "pattern" not in line


@pytest.mark.parametrize("key,line", [
    ("release_suffix", 'release_suffix = ".send\\u0000"'),
    ("status_page", 'status_page = "outboxd-status\\u0000.html"'),
])
def test_a_nul_character_in_a_share_file_name_is_refused_at_load(
        tmp_path: Path, outbox: Path, key: str, line: str) -> None:
    """[share] release_suffix and status_page become file names in the outbox; TOML can
    write a NUL (\\u0000), which no file name may hold. Accepted, it made `outboxd check`
    (and the daemon, at the first invoice without attachments or the first page) end in
    a ValueError traceback; it is a configuration error naming the key, its value and the
    fix, as for a NUL in a path."""
    [problem] = problems_of(config_file(tmp_path, minimal(outbox, f"[share]\n{line}\n")))
    assert problem.startswith(f"[share] {key} = '")
    assert "\\x00" in problem
    assert problem.endswith("holds a NUL character (\\0), which no file name may hold — "
                            "remove it")


@pytest.mark.parametrize(("section", "key", "value", "example"), [
    ("share", "status_page", "x" * 251 + ".html", '"outboxd-status.html" (the default)'),
    ("share", "release_suffix", "." + "x" * 254, '".send-anyway"'),
    ("outbox", "sidecar_suffix", ".f" + "\u00e9" * 127, '".files"'),
    ("outbox", "marker_suffix", "." + "x" * 100_000, '".ready"')])
def test_a_share_name_or_suffix_no_file_name_can_hold_is_refused(
        tmp_path: Path, outbox: Path, section: str, key: str, value: str,
        example: str) -> None:
    """A status page of more than 255 bytes could never be written (a "File name too
    long" logged at every refresh, the whole name in each line: 100,000 characters of it
    under reload fuzzing); a sidecar, marker or release suffix of 255 bytes or more leaves
    no room for NAME, so no clerk could make that folder or file. Refused at load, the
    size in bytes (é is two) and a short example (found by bench/configfuzz.py)."""
    text = minimal(outbox, f'[{section}]\n{key} = "{value}"\n') if section != "outbox" \
        else minimal(outbox).replace("[outbox]\n", f'[outbox]\n{key} = "{value}"\n')
    line = one_problem_with(problems_of(config_file(tmp_path, text)), f"[{section}] {key}")
    size = len(value.encode())
    assert f": is {size:,} bytes long; a file name has at most 255 on Linux" in line
    assert line.endswith(f"e.g. {example}")


@pytest.mark.parametrize(("section", "key", "value"), [
    ("share", "status_page", "x" * 250 + ".html"), ("share", "release_suffix", "." + "x" * 253),
    ("outbox", "sidecar_suffix", "." + "x" * 253)])
def test_a_share_name_or_suffix_at_the_limit_loads(tmp_path: Path, outbox: Path, section: str,
                                                   key: str, value: str) -> None:
    """255 bytes for the page, 254 for a suffix (a one-byte NAME beside it) still load."""
    text = minimal(outbox, f'[{section}]\n{key} = "{value}"\n') if section != "outbox" \
        else minimal(outbox).replace("[outbox]\n", f'[outbox]\n{key} = "{value}"\n')
    settings = load_settings(config_file(tmp_path, text))
    assert getattr(getattr(settings, section), key) == value


@pytest.mark.parametrize("value", ["maybe", "ture", "yes please", "~/ca.pem"])
def test_a_verify_that_is_no_yes_or_no_and_no_whole_path_names_all_three(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """OUTBOXD_DELIVERY__VERIFY=maybe (or a typo of true) was told only "is a relative
    path": the admin who meant yes or no heard nothing of true and false (found by
    bench/configfuzz.py)."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch, "OUTBOXD_DELIVERY__VERIFY",
                                    value, "[delivery] verify")
    assert "is neither true nor false" in line and "give true, false, or the file's whole " \
        "path, starting with /" in line
    assert ("~ is not expanded" in line) == value.startswith("~")


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "\uff13"])
def test_reader_processes_takes_ascii_digits_only(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """"²" is a digit to str.isdigit() and not to int(): its ValueError's text ("invalid
    literal for int() with base 10") reached the admin; "٣" and "３" passed as 3. Each is
    refused with the key's own words (found by bench/configfuzz.py)."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                    "OUTBOXD_SERVICE__READER_PROCESSES", value,
                                    "[service] reader_processes")
    assert line.endswith('must be "auto" or a whole number from 0 to 64 (0: read on threads '
                         "of the daemon's own process)")


@pytest.mark.parametrize(("section", "key"), [("outbox", "rescan_seconds"),
                                              ("delivery", "retry_base_seconds"),
                                              ("delivery", "retry_max_seconds")])
@pytest.mark.parametrize("value", ["1e-300", "0.001", "0.049"])
def test_a_rescan_or_retry_interval_under_50_ms_is_refused(
        tmp_path: Path, outbox: Path, section: str, key: str, value: str) -> None:
    """"More than 0" took 1e-300: a rescan due at once, again and again (a core busy on an
    empty outbox), and a receiver that refused tried some 7,000 times in 7 s, a log line
    and a journal write each. At least 0.05 s, as [outbox] poll_interval_seconds (found
    by bench/configfuzz.py)."""
    text = minimal(outbox).replace(f"[{section}]\n", f"[{section}]\n{key} = {value}\n")
    line = one_problem_with(problems_of(config_file(tmp_path, text)), f"[{section}] {key}")
    assert line == f"[{section}] {key} = {value}: must be greater than or equal to 0.05"
    text = minimal(outbox).replace(f"[{section}]\n", f"[{section}]\n{key} = 0.05\n")
    assert getattr(getattr(load_settings(config_file(tmp_path, text)), section), key) == 0.05


@pytest.mark.parametrize("word", ["true", "1", " Yes", "ON"])
def test_true_from_the_environment_turns_verification_on_not_a_ca_path(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    """OUTBOXD_DELIVERY__VERIFY=true (or 1, yes, on, any case, spaced) is the boolean: the
    system's CA store is used — not taken for a relative CA bundle path and refused."""
    monkeypatch.setenv("OUTBOXD_DELIVERY__VERIFY", word)
    assert load_settings(config_file(tmp_path, minimal(outbox))).delivery.verify is True
