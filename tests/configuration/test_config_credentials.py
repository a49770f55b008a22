"""The credentials of [delivery] (daemon/configuration/config_credentials.py): one kind at a time (a
Bearer token or Basic auth in the url), and none over plain http:// to another machine.
Through load_settings, as an admin meets them."""

from __future__ import annotations

import socket
import typing
from pathlib import Path

import pytest
from helpers import URL, config_file, minimal, one_problem_with, problems_of

from daemon.configuration.config_credentials import plain_http_warning
from daemon.configuration.config_load import load_settings


class TestOneKind:
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


class TestPlainHttp:
    @pytest.mark.parametrize("url,secret", [
        ("http://operator.example/api", 'token = "abc123"\n'),
        ("http://10.0.0.5:8080/in", 'token = "abc123"\n'),
        ("http://operator.example/api", "token_file = TOKEN_FILE\n"),
        ("http://bob:pw@erp.lan/in", ""),
    ])
    def test_a_secret_over_plain_http_to_another_machine_is_refused(
            self, tmp_path: Path, outbox: Path, url: str, secret: str) -> None:
        """A token, token_file or url password with an http:// url to a host that is not
        this machine's loopback would cross the network unencrypted at every POST:
        refused at load with the fix (https, or 127.0.0.1 for a local receiver)."""
        token_file = tmp_path / "token"
        token_file.write_text("abc123")
        extra = secret.replace("TOKEN_FILE", f'"{token_file}"')
        text = minimal(outbox).replace(f'url = "{URL}"\n', f'url = "{url}"\n{extra}')
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery]",
                                "plain http://")
        assert "use https://" in line and "http://127.0.0.1" in line
        assert "set allow_plain_http = true" in line  # the way out, for a trusted network
        assert "abc123" not in line and ":pw@" not in line

    @pytest.mark.parametrize("url,secret,said", [
        ("http://operator.example/api", 'token = "abc123"\n',
         "[delivery] url = 'http://operator.example/api': is plain http:// to another "
         "machine, and each request would carry the token unencrypted"),
        ("http://bob:abc123@127.0.0.1:9/b", 'token = "abc123"\n',
         "[delivery] url = 'http://********@127.0.0.1:9/b': holds a user name or password "
         "(Basic auth), and token or token_file is set (Bearer)"),
    ])
    def test_a_credentials_refusal_is_said_of_the_url_as_its_other_refusals_are(
            self, tmp_path: Path, outbox: Path, url: str, secret: str, said: str) -> None:
        """The refusals of how the url carries a secret read as every refusal of a key
        does, "[delivery] url = VALUE: …" (the value masked), not "[delivery]: url is
        …": they come from a check of the whole section, which pydantic placed on the
        section."""
        text = minimal(outbox).replace(f'url = "{URL}"\n', f'url = "{url}"\n{secret}')
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery]")
        assert line.startswith(said), line
        assert "abc123" not in line

    @pytest.mark.parametrize("url,named", [
        ("http://operator.example/api?access_token=abc123", "'access_token'"),
        ("http://10.0.0.5/in?tenant=7&sig=abc123&api%5Fkey=abc123", "'sig', 'api_key'"),
    ])
    def test_a_key_in_the_urls_query_over_plain_http_is_refused_naming_it(
            self, tmp_path: Path, outbox: Path, url: str, named: str) -> None:
        """A key in the url's query (a parameter named like a secret) goes in the request
        line of every POST, as readable on the way as a token: over plain http:// to
        another machine it is refused as a token is, naming the parameters (decoded),
        never their values. It was let through without a word."""
        text = minimal(outbox).replace(f'url = "{URL}"\n', f'url = "{url}"\n')
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery]",
                                "plain http://")
        assert "each request would carry the value of the url's query parameter" in line
        assert f"{named} (named like a secret) unencrypted" in line
        assert "use https://" in line and "set allow_plain_http = true" in line
        assert "abc123" not in line

    @pytest.mark.parametrize("url,secret", [
        ("http://127.0.0.1:8787/bundles", 'token = "abc123"\n'),
        ("http://127.0.0.2/in", 'token = "abc123"\n'),
        ("http://localhost:8787/in", 'token = "abc123"\n'),
        ("http://[::1]:8787/in", 'token = "abc123"\n'),
        ("http://[::ffff:127.0.0.1]:8787/in", 'token = "abc123"\n'),  # 127.0.0.1, dual-stack
        ("https://operator.example/api", 'token = "abc123"\n'),
        ("http://operator.example/api", ""),  # no secret to expose: the admin's choice
    ])
    def test_http_is_accepted_on_loopback_or_without_a_secret(
            self, tmp_path: Path, outbox: Path, url: str, secret: str) -> None:
        """The reference receiver on this machine, https anywhere, and a receiver on
        the network that takes no credentials load as given."""
        text = minimal(outbox).replace(f'url = "{URL}"\n', f'url = "{url}"\n{secret}')
        assert load_settings(config_file(tmp_path, text)).delivery.url == url

    @pytest.mark.parametrize("address", ["127.0.0.1", "203.0.113.7"])
    def test_a_name_under_localhost_is_another_machine_whatever_it_resolves_to(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch,
            address: str) -> None:
        """`http://api.localhost:PORT/…` with a token is refused at load: glibc does not
        map .localhost names to loopback, their look-up goes to DNS with the search
        domain (a wildcard entry there sends the token in clear to another host), and
        httpx looks the name up again for each connection, so even a loopback answer now
        binds no later POST. The resolver (made to answer `address`) is never asked."""
        asked: list[object] = []
        real = socket.getaddrinfo

        def resolver(host: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
            if str(host).lower().endswith("localhost"):
                asked.append(host)
                return real(address, *args, **kwargs)
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        text = minimal(outbox).replace(
            f'url = "{URL}"\n', 'url = "http://api.localhost:8787/in"\ntoken = "abc123"\n')
        line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery]",
                                "plain http:// to another machine")
        assert "use https://" in line and "http://127.0.0.1" in line
        assert "abc123" not in line
        assert asked == []


class TestAllowPlainHttp:
    """[delivery] allow_plain_http = true: the admin's word that the network between is
    trusted (a container network, a TLS proxy on this host reached by a name). The
    secret may then go over plain http://, with a warning that never shows it."""

    SECRETS = [
        ("http://receiver:8080/bundles", 'token = "abc123"\n', "the token"),
        ("http://10.0.0.5:8080/in", "token_file = TOKEN_FILE\n", "the token of token_file"),
        ("http://bob:pw-abc123@erp.lan/in", "", "the credentials in the url (Basic auth)"),
        ("http://erp.lan/in?sig=abc123&x=1", "",
         "the value of the url's query parameter 'sig' (named like a secret)"),
    ]

    def _config(self, tmp_path: Path, outbox: Path, url: str, secret: str,
                allow: str = "allow_plain_http = true\n") -> Path:
        token_file = tmp_path / "token"
        token_file.write_text("abc123\n")
        extra = secret.replace("TOKEN_FILE", f'"{token_file}"')
        return config_file(tmp_path, minimal(outbox).replace(
            f'url = "{URL}"\n', f'url = "{url}"\n{extra}{allow}'))

    @pytest.mark.parametrize("url,secret,what", SECRETS)
    def test_a_secret_over_plain_http_loads_with_a_warning_that_never_shows_it(
            self, tmp_path: Path, outbox: Path, url: str, secret: str, what: str) -> None:
        """Refused without the key, loaded with it; the warning names the key, which
        secret goes unencrypted and to which address (no user name, password or token)."""
        assert problems_of(self._config(tmp_path, outbox, url, secret, allow=""))
        settings = load_settings(self._config(tmp_path, outbox, url, secret))
        assert settings.delivery.url == url and settings.delivery.allow_plain_http
        warning = plain_http_warning(settings.delivery)
        assert warning is not None
        assert warning.startswith(f"[delivery] allow_plain_http = true: {what} goes to ")
        assert "unencrypted" in warning and "use https://" in warning
        assert "abc123" not in warning and "bob" not in warning

    def test_the_key_from_the_environment_lets_it_load_too(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_DELIVERY__ALLOW_PLAIN_HTTP=true, as a container's environment sets it."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__ALLOW_PLAIN_HTTP", "true")
        path = self._config(tmp_path, outbox, "http://receiver:8080/b", 'token = "abc123"\n',
                            allow="")
        assert plain_http_warning(load_settings(path).delivery) is not None

    @pytest.mark.parametrize("url,secret", [
        ("https://operator.example/api", 'token = "abc123"\n'),
        ("http://127.0.0.1:8787/bundles", 'token = "abc123"\n'),
        ("http://receiver:8080/bundles", ""),
        ("http://receiver:8080/bundles?tenant=7&page=2", ""),
        ("https://receiver:8080/bundles?access_token=abc123", ""),
    ])
    def test_no_warning_where_no_secret_goes_in_the_clear(
            self, tmp_path: Path, outbox: Path, url: str, secret: str) -> None:
        """https, this machine, or no secret at all: the key changes nothing, and a
        warning there would teach admins to ignore it."""
        settings = load_settings(self._config(tmp_path, outbox, url, secret))
        assert plain_http_warning(settings.delivery) is None

    def test_not_set_means_not_allowed(self, tmp_path: Path, outbox: Path) -> None:
        """The default is false: nothing is allowed by leaving the key out."""
        settings = load_settings(config_file(tmp_path, minimal(outbox)))
        assert settings.delivery.allow_plain_http is False
