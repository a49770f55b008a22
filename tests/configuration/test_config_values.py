"""The values a configuration key may take (daemon/configuration/config_values.py): durations
finite and at most a year, a bearer token one line of visible ASCII, a url httpx can post to, no
empty paths; and secrets masked in what is printed. Through load_settings, as an admin
meets them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers import (
    URL,
    config_file,
    minimal,
    one_problem_with,
    problem_from_environment,
    problems_of,
    with_delivery,
)

from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.configuration.config_values import (
    MAX_PATH_BYTES,
    path_fits,
    secret_params,
    url_problem,
)
from daemon.errors import ConfigError


class TestTokenCharacters:
    """A token is what can stand in `Authorization: Bearer TOKEN`: one run of visible
    ASCII. Anything else is refused at load, and the refusal never shows the token."""

    @pytest.mark.parametrize("token,kind", [
        ("SuperSecret\nSecondLine", "line break"),
        ("SuperSecret\r\nSecondLine", "line break"),
        ("Sécret–Tøken", "non-ASCII"),
        ("Super Secret", "space"),
        ("SuperSecret\x00x", "control character"),
        ("SuperSecret\x7fx", "control character"),  # DEL: ASCII, but no visible character
    ])
    def test_a_token_httpx_cannot_send_is_refused_without_showing_it(
            self, tmp_path: Path, outbox: Path, token: str, kind: str) -> None:
        """token with a line break, a non-ASCII character, a space or a control character
        stops loading with a line naming the key, the kind of character and the rule; no
        part of the token is in it (it would reach terminals and logs)."""
        text = with_delivery(outbox, 'token = "{}"\n'.format(
            token.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\u0000")
            .replace("\x7f", "\\u007f")))
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


class TestErrors:
    def test_url_must_be_http(self, tmp_path: Path, outbox: Path) -> None:
        """A url that is not http:// or https:// is refused, naming the value."""
        text = f'[outbox]\npath = "{outbox}"\n[delivery]\nurl = "ftp://operator/x"\n'
        assert one_problem_with(problems_of(config_file(tmp_path, text)),
                         "[delivery] url", "ftp://operator/x", "http://")


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
        "https://operator.example:8443/api/bundles?tenant=a%40b",
        "http://[::1]:8787/bundles",
        "https://bob:p%23s%2Fs%3Fw%40rd@operator.example/x",
        "https://bob:@operator.example/x",
        "https://bob@example.org:pw@operator.example/x",
        "https://fakturamottagning.exempel.se/inkorg",
        "http://bob:VerySecretPw@127.0.0.1:18787/bundles",
        "HTTPS://Operator.Example/x",
        "http://operator.example/my bundles",  # httpx sends the space as %20
    ])
    def test_usable_urls_are_accepted(self, tmp_path: Path, outbox: Path, url: str) -> None:
        """Ports, IPv6, query strings, user and password (with %-encoded / ? # @, with an
        empty password, with a raw @ in the user name), upper-case schemes, a space in the
        path pass as given."""
        text = minimal(outbox).replace(f'url = "{URL}"', f'url = "{url}"')
        assert load_settings(config_file(tmp_path, text)).delivery.url == url

    @pytest.mark.parametrize("host", ["x" * 64 + ".example", ("a" * 60 + ".") * 5 + "se"],
                             ids=["label-of-64", "name-of-307"])
    def test_a_host_name_longer_than_dns_carries_is_refused(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            host: str) -> None:
        """A host no resolver can look up (a part between dots over 63 characters, or the
        whole name over 253: a value pasted wrong) is refused at load, not retried at
        every delivery."""
        line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                        "OUTBOXD_DELIVERY__URL", f"https://{host}/api",
                                        "[delivery] url")
        assert "the host name is longer than a host name may be" in line

    @pytest.mark.parametrize("url", ["http://xn--/in", "https://xn--a/in",
                                     "https://xn--zz-x.example/in"])
    def test_a_host_that_is_no_punycode_is_told_in_our_words(self, url: str) -> None:
        """An "xn--" host that does not decode: httpx parses it, and its .host raised the
        idna package's own error, whose text ("Malformed A-label, no Punycode eligible
        content found", "Codepoint U+0080 … not allowed") was the reason the admin read
        (found by bench/configfuzz.py)."""
        assert url_problem(url) == "the host is not a valid host name or IP address"

    def test_a_host_name_of_253_characters_is_the_longest_accepted(self) -> None:
        """DNS carries a name of up to 253 characters: that one loads, one more is refused."""
        host = ".".join(["a" * 63] * 3 + ["b" * 61])
        assert len(host) == 253 and url_problem(f"https://{host}/api") is None
        assert "the host name is longer than a host name may be" in str(
            url_problem(f"https://{host}b/api"))

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

    def test_masked_hides_the_values_of_query_parameters_named_like_a_secret(
            self, tmp_path: Path, outbox: Path) -> None:
        """`outboxd config` prints a url that carries its key in the query (a receiver
        that takes `?access_token=`, a signed `sig=`) with those values masked, and the
        password too; other parameters, the host and the path stay readable."""
        url = ("http://bob:VerySecretPw@127.0.0.1:18787/bundles?tenant=7&access_token="
               "Tok-Secret-1&sig=Sig%2BSecret")
        s = load_settings(config_file(tmp_path, minimal(outbox).replace(
            f'url = "{URL}"', f'url = "{url}"')))
        masked = s.masked()
        assert masked["delivery"]["url"] == ("http://bob:********@127.0.0.1:18787/bundles?"
                                             "tenant=7&access_token=********&sig=********")
        assert "Secret" not in repr(masked)
        assert s.delivery.url == url  # the delivery itself still has it

    def test_masked_hides_a_secret_parameter_whose_name_is_percent_encoded(
            self, tmp_path: Path, outbox: Path) -> None:
        """`?t%6Fken=` is `?token=` to the receiver, which decodes the name: its value is
        masked as `?token=`'s is, in `outboxd config` and in what the deliverer scrubs
        from an answer (secret_params)."""
        url = ("http://127.0.0.1:18787/bundles?tenant=7&t%6Fken=Tok-Secret-1"
               "&p%61ssword=Pw-Secret-2&access%5Ftoken=Tok-Secret-3")
        s = load_settings(config_file(tmp_path, minimal(outbox).replace(
            f'url = "{URL}"', f'url = "{url}"')))
        masked = s.masked()["delivery"]["url"]
        assert masked == ("http://127.0.0.1:18787/bundles?tenant=7&t%6Fken=********"
                          "&p%61ssword=********&access%5Ftoken=********")
        assert secret_params(url) == ["Tok-Secret-1", "Pw-Secret-2", "Tok-Secret-3"]

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


class TestPathsLinuxCannotUse:
    """A path no system call takes (longer than 4,095 bytes, a name longer than 255, a NUL)
    is refused at load, naming the key: not an OSError's traceback the first time the
    daemon uses it, and not its whole value twice in one line."""

    @pytest.mark.parametrize("variable,key", [
        ("OUTBOXD_OUTBOX__PATH", "[outbox] path"),
        ("OUTBOXD_PATHS__SENT", "[paths] sent"),
        ("OUTBOXD_DELIVERY__VERIFY", "[delivery] verify"),
        ("OUTBOXD_DELIVERY__CLIENT_CERT", "[delivery] client_cert"),
    ])
    def test_a_path_longer_than_linux_allows_is_a_config_error(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            variable: str, key: str) -> None:
        """40,000 characters pasted as a path: one short line with the key, the length
        and the limit."""
        line = problem_from_environment(tmp_path, outbox, monkeypatch, variable,
                                        "/" + "x" * 39_999, key)
        assert "is 40,000 bytes long; a path on Linux has at most 4,095 — fix the path" \
            in line
        assert len(line) < 500

    def test_a_path_of_4095_bytes_is_the_longest_accepted(self) -> None:
        """PATH_MAX is 4,096 bytes with the closing NUL: a path of 4,095 bytes is one
        Linux takes, and only one byte more is refused."""
        base = "/" + "/".join(["n" * 200] * 20)
        longest = f"{base}/{'x' * (MAX_PATH_BYTES - len(base) - 1)}"
        assert len(longest) == 4095 and path_fits(longest) == longest
        with pytest.raises(ValueError, match="is 4,096 bytes long"):
            path_fits(longest + "x")

    def test_a_name_in_a_path_longer_than_linux_allows_is_a_config_error(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A folder name of 300 characters (Linux takes 255 bytes) in client_key."""
        line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                        "OUTBOXD_DELIVERY__CLIENT_KEY",
                                        f"{tmp_path}/{'k' * 300}/key.pem",
                                        "[delivery] client_key")
        assert "holds a folder or file name longer than 255 bytes" in line

    def test_a_nul_in_a_folder_path_is_a_config_error(self, tmp_path: Path,
                                                      outbox: Path) -> None:
        """A NUL in [paths] sent ("\\u0000" in TOML) is refused at load, not a ValueError
        when the daemon creates its folders."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, f'[paths]\nsent = "{tmp_path}/se\\u0000nt"\n')))
        assert any(p.startswith("[paths] sent = ") and "holds a NUL character (\\0), which "
                   "no path may hold — fix the path" in p for p in problems), problems


class TestRelativePaths:
    """A relative path would be taken from the folder each command starts in: `config
    --check` run in /etc/outboxd passed a path the service (started in /) could not
    find, and `status` from a shell read another journal. Refused at load, naming the
    key and the fix."""

    @pytest.mark.parametrize("variable,key,value", [
        ("OUTBOXD_OUTBOX__PATH", "[outbox] path", "srv/invoices/outbox"),
        ("OUTBOXD_PATHS__STATE_DIR", "[paths] state_dir", "state"),
        ("OUTBOXD_PATHS__SENT", "[paths] sent", "./sent"),
        ("OUTBOXD_DELIVERY__TOKEN_FILE", "[delivery] token_file", "token"),
        ("OUTBOXD_DELIVERY__VERIFY", "[delivery] verify", "ca.pem"),
        ("OUTBOXD_DELIVERY__CLIENT_CERT", "[delivery] client_cert", "client.pem"),
    ])
    def test_a_relative_path_is_a_config_error_naming_the_key(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            variable: str, key: str, value: str) -> None:
        """Even where the relative path exists from the current folder (the mistake
        `config --check` used to pass), it is refused with the fix."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / value).write_text("x")
        line = problem_from_environment(tmp_path, outbox, monkeypatch, variable, value, key)
        assert "is a relative path" in line and "starting with /" in line

    def test_a_path_under_tilde_says_tilde_is_not_expanded(
            self, tmp_path: Path, outbox: Path) -> None:
        """state_dir = "~/outboxd" is a folder named "~" to Linux: the fix says so."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, '[paths]\nstate_dir = "~/outboxd"\n')))
        line = one_problem_with(problems, "[paths] state_dir")
        assert "relative path" in line and "~ is not expanded" in line


# A password written with a raw # ? or / ends the host before it: httpx takes
# "bob:1234#s3cr3t@host" for host bob, port 1234 (and no password at all).
MISPARSED = ["https://bob:1234#s3cr3t@host/bundles",
             "https://bob:1234?s3cr3t@host/bundles",
             "https://bob:1234/s3cr3t@host/bundles"]


@pytest.mark.parametrize("url", MISPARSED + ["https://host/in#part",
                                             "https://host/in?from=clerk@example.org"])
def test_a_url_with_a_fragment_or_an_at_after_the_host_is_refused(
        tmp_path: Path, outbox: Path, url: str) -> None:
    """`outboxd run`, `config --check` and a reload (all load_settings) refuse a url with
    a # or an @ after its host instead of posting to the host httpx reads (bob:1234): the
    line names the key and the fix (%23 %2F %3F %40, or the token) and never the
    password."""
    text = minimal(outbox).replace(f'url = "{URL}"', f'url = "{url}"')
    line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery] url")
    assert "write / ? # : @ as %2F %3F %23 %3A %40" in line
    assert "token or token_file" in line
    assert "s3cr3t" not in line


@pytest.mark.parametrize("url", MISPARSED)
def test_outboxd_config_shows_the_host_httpx_connects_to(url: str) -> None:
    """Where such a url is printed unchecked (transport = "directory" ignores it), the
    masked form still names the host httpx parses (bob, port 1234), not the host after
    the "@" it only seems to name; what may be the password is masked."""
    from daemon.configuration.config_values import mask_url
    masked = mask_url(url)
    assert masked.startswith("https://bob:1234") and "s3cr3t" not in masked
    assert httpx.URL(masked).host == "bob" and httpx.URL(masked).port == 1234


ACCEPTED = ["http://bob:VerySecretPw@127.0.0.1:18787/bundles?tenant=7&access_token=Tok-1234",
            "http://bob:p%23s%2Fs%3Fw%40rd@operator.example/x",
            "http://bob@example.org:VerySecretPw@operator.example:8443/x",
            "http://bob:@operator.example/x",
            "http://bob:VerySecretPw@[::1]:8787/bundles",
            "http://[::1]/bundles",
            "HTTPS://Operator.Example/my bundles?q=a%40b",
            "http://b%C3%B6b:p%C3%A4ss@xn--bcher-kva.example/x"]


@pytest.mark.parametrize("url", ACCEPTED)
def test_the_url_outboxd_config_shows_is_the_url_deliveries_use(url: str) -> None:
    """For every kind of url the check accepts (userinfo with @ or %-encoded characters,
    an empty password, IPv6, a query), the masked url parses to the same scheme, host,
    port and path as the url the deliverer posts to, and shows no password."""
    from daemon.configuration.config_values import mask_url
    assert url_problem(url) is None
    used, shown = httpx.URL(url), httpx.URL(mask_url(url))
    assert (shown.scheme, shown.host, shown.port, shown.path) == \
        (used.scheme, used.host, used.port, used.path)
    assert shown.username == used.username
    assert not used.password or shown.password == "********"
    assert "VerySecretPw" not in mask_url(url) and "Tok-1234" not in mask_url(url)


@pytest.mark.parametrize("url,expected", [
    ("mailto:bob:s3cr3t@example.org", "********@example.org"),
    ("http:/bob:s3cr3t@host/x", "********@host/x"),
    ("operator", "operator")])
def test_outboxd_config_shows_an_unchecked_url_without_an_authority(
        tmp_path: Path, outbox: Path, url: str, expected: str) -> None:
    """transport = "directory" leaves `url` unchecked (it is never used): `outboxd config`
    still prints it, masked, where building the shown form from the parse looked for a
    "//" that is not there and failed."""
    text = (f'[outbox]\npath = "{outbox}"\n[delivery]\ntransport = "directory"\n'
            f'target = "{tmp_path / "target"}"\nurl = "{url}"\n')
    assert load_settings(config_file(tmp_path, text)).masked()["delivery"]["url"] == expected


@pytest.mark.parametrize(("variable", "key", "value"), [
    ("OUTBOXD_OUTBOX__PATH", "[outbox] path", "{outbox}/.."),
    ("OUTBOXD_PATHS__SENT", "[paths] sent", "/srv/x/../sent"),
    ("OUTBOXD_DELIVERY__TOKEN_FILE", "[delivery] token_file", "/run/../etc/token")])
def test_a_path_holding_dot_dot_is_refused(tmp_path: Path, outbox: Path,
                                           monkeypatch: pytest.MonkeyPatch, variable: str,
                                           key: str, value: str) -> None:
    """outbox = "/srv/invoices/outbox/.." is /srv/invoices, but the default sent/ beside
    it was derived as written, /srv/invoices/outbox/sent: inside the folder it names.
    Refused in every path key, with the fix (found by bench/configfuzz.py)."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch, variable,
                                    value.format(outbox=outbox), key)
    assert line.endswith(": holds a .. — write out the folder it leads to, e.g. "
                         "/srv/invoices for /srv/invoices/outbox/..")


def test_a_duration_written_as_an_integer_too_large_for_a_float_is_refused_as_not_finite(
        tmp_path: Path, outbox: Path) -> None:
    """rescan_seconds = 1 followed by 400 zeros (TOML takes integers of any size; too
    large even for a float): the duration's own line, naming the key and the bound — not
    an OverflowError's traceback."""
    problems = problems_of(config_file(tmp_path, set_key(outbox, "outbox", "rescan_seconds",
                                                         "1" + "0" * 400)))
    line = one_problem_with(problems, "[outbox] rescan_seconds")
    assert "finite" in line and "31536000" in line
