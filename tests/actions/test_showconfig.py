"""`outboxd config --check`: valid means `run` would take it."""

from __future__ import annotations

import json
import os

import pytest
from conftest import Env
from helpers import fake_mountinfo

from daemon.cli import main


def test_a_ca_bundle_that_does_not_load_is_refused_by_check_as_by_run(env: Env,
                                                                       capsys) -> None:
    """verify = a file that is no CA bundle: `config --check` says what `run` would
    (exit 2, naming verify), instead of "configuration is valid"."""
    not_a_ca = env.root / "not-a-ca.pem"
    not_a_ca.write_text("hello\n")
    env.write_config("https://127.0.0.1:9/bundles", delivery={"verify": str(not_a_ca)})
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert f"verify = '{not_a_ca}' cannot be used" in err and "PEM file of CA" in err
    assert str(env.config) in err


def test_an_empty_or_missing_url_is_told_with_what_to_write(env: Env, capsys) -> None:
    """`url = ""`, and a [delivery] without url, said only `required for transport =
    "http"`: `config --check` now gives the example the missing [delivery] section gets
    (the operator's https address, or the directory transport)."""
    example = ('url = "https://…", the operator\'s address (or transport = "directory" and '
               'target = "/a/folder")')
    env.write_config("")
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert f"[delivery] url = '': is empty — set {example}\n" in err
    assert "required for transport" not in err
    text = env.config.read_text().replace('url = ""\n', "")
    env.config.write_text(text)
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert f"[delivery] url: required but not set — add {example}\n" in err
    assert "required for transport" not in err


def test_a_directory_transport_without_target_is_told_what_to_write(env: Env,
                                                                  capsys) -> None:
    """transport = "directory" without target: the line says what to add, with an
    example, not only that it is required."""
    env.write_config("", delivery={"transport": "directory"})
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    assert '[delivery] target: required for transport = "directory" but not set — add ' \
        'target = "/a/folder", the folder to write bundles into\n' in capsys.readouterr().err


def test_a_usable_configuration_is_valid(env: Env, capsys) -> None:
    """The same check passes a configuration run takes, and says so on stdout."""
    env.write_config("https://127.0.0.1:9/bundles")
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_folders_run_could_not_create_are_found_by_check_without_creating_any(
        env: Env, capsys) -> None:
    """state_dir and a directory target below a regular file: `config --check` names each
    key and path (exit 2) instead of "valid", and creates no folder on the way."""
    blocker = env.root / "a-file"
    blocker.write_text("x\n")
    env.write_config("http://127.0.0.1:9/x", paths={"state_dir": str(env.root / "s" / "t")},
                     delivery={"transport": "directory", "target": str(env.root / "t" / "in")})
    assert main(["config", "--check", "-c", str(env.config)]) == 0  # both can be made
    assert not (env.root / "t").exists() and not (env.root / "s").exists()
    assert not (env.outbox / ".outboxd").exists()
    env.write_config("http://127.0.0.1:9/x", paths={"state_dir": str(blocker / "state")},
                     delivery={"transport": "directory", "target": str(blocker / "in")})
    capsys.readouterr()
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert f"[paths] state_dir: cannot create {blocker / 'state'}: {blocker}, on its path, " \
        "is a file, not a folder — move that file away, or set [paths] state_dir to another " \
        "folder" in err
    assert f"[delivery] target: cannot create {blocker / 'in'}" in err


def test_ca_files_httpx_reads_from_the_environment_are_tried_by_check_as_by_run(
        env: Env, capsys, monkeypatch) -> None:
    """verify = true and SSL_CERT_FILE naming a missing file: httpx reads it when the
    transport is built, so `run` refuses to start; `config --check` says so too (exit 2),
    naming the variable, where it said "valid"."""
    monkeypatch.setenv("SSL_CERT_FILE", str(env.root / "missing-ca.pem"))
    env.write_config("https://127.0.0.1:9/bundles")
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert "verify = true cannot be used" in err
    assert f"SSL_CERT_FILE={env.root / 'missing-ca.pem'}" in err


def test_the_configuration_path_of_a_refused_check_is_shown_cut(env: Env, capsys) -> None:
    """A configuration file deep in folders (a path of some 1,000 characters) whose
    state_dir cannot be made: `config --check` heads its problems with the file's first
    200 characters and the length, as `run` and every other error line show a long
    path, not the whole path."""
    blocker = env.root / "a-file"
    blocker.write_text("x\n")
    env.write_config("http://127.0.0.1:9/x", paths={"state_dir": str(blocker / "state")})
    deep = env.root.joinpath(*["d" * 200] * 4)
    deep.mkdir(parents=True)
    config = deep / "config.toml"
    config.write_bytes(env.config.read_bytes())
    assert main(["config", "--check", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"configuration error in {str(config)[:200]}… ({len(str(config)):,} " \
        "characters):" in err
    assert str(config) not in err


def test_a_url_whose_password_holds_a_raw_hash_is_refused_by_check(env: Env,
                                                                     capsys) -> None:
    """url = "http://bob:1234#pw@host/in": httpx would post to host bob, port 1234.
    `config --check` refuses it (exit 2) naming the key and the fix (%23, or the token),
    where it said "valid", and never prints the password."""
    env.write_config("http://bob:1234#S3cr3tPw@127.0.0.1:9/bundles")
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    out, err = capsys.readouterr()
    assert "[delivery] url = 'http://********@127.0.0.1:9/bundles': must not hold a #" \
        in err
    assert "%23" in err and "token or token_file" in err
    assert "S3cr3tPw" not in out + err and "configuration is valid" not in out


def test_config_prints_the_configuration_and_warns_of_a_token_file_run_cannot_read(
        env: Env, capsys) -> None:
    """`config` without --check and a token_file that is missing, or empty: the
    configuration is printed as ever (exit 0), and a warning on stderr names the file,
    what is wrong and that `run` will not start; with a good token file, no warning."""
    token = env.root / "token"
    env.write_config("http://127.0.0.1:9/x", delivery={"token_file": str(token)})
    assert main(["config", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["delivery"]["token_file"] == str(token)
    assert captured.err.startswith(f'outboxd: warning: [delivery] token_file = "{token}": '
                                   "cannot be read (No such file or directory) — check the "
                                   "path and permissions")
    assert "outboxd run does not start until this is fixed" in captured.err
    assert len(captured.err.splitlines()) == 1
    token.write_text("\n")
    assert main(["config", "-c", str(env.config)]) == 0
    assert "the file is empty — put the token in it" in capsys.readouterr().err
    token.write_text("s3cret-token\n")
    assert main(["config", "-c", str(env.config)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "s3cret-token" not in captured.out


def test_a_systemd_credential_that_is_not_there_is_explained_as_one(
        env: Env, capsys) -> None:
    """token_file under /run/credentials/ (there only while the service runs): the
    warning says so and names the variable that points `config` at the real file."""
    env.write_config("http://127.0.0.1:9/x", delivery={
        "token_file": "/run/credentials/outboxd-test-absent.service/token"})
    assert main(["config", "-c", str(env.config)]) == 0
    err = capsys.readouterr().err
    assert "a systemd credential, there only while the service runs" in err
    assert "OUTBOXD_DELIVERY__TOKEN_FILE=/etc/outboxd/token" in err


def test_the_credential_hint_checks_the_configuration_the_admin_gave(
        env: Env, capsys, monkeypatch) -> None:
    """The command the missing-credential line suggests keeps the configuration file the
    admin's command read, by -c or by $OUTBOXD_CONFIG, quoted for a shell: without it,
    it checked /etc/outboxd/config.toml, another configuration, and could pass."""
    credential = "/run/credentials/outboxd-test-absent.service/token"
    env.write_config("https://operator.invalid/x", delivery={"token_file": credential})
    config = env.root / "site a" / "config.toml"
    config.parent.mkdir()
    env.config.rename(config)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    suggested = ("OUTBOXD_DELIVERY__TOKEN_FILE=/etc/outboxd/token outboxd config --check "
                 f"-c '{config}'")
    assert main(["config", "--check", "-c", str(config)]) == 2
    assert suggested in capsys.readouterr().err
    monkeypatch.setenv("OUTBOXD_CONFIG", str(config))
    assert main(["config", "--check"]) == 2
    assert suggested in capsys.readouterr().err


def test_config_check_explains_a_missing_systemd_credential_and_how_to_check_it(
        env: Env, capsys, monkeypatch) -> None:
    """The README's check, run without its OUTBOXD_DELIVERY__TOKEN_FILE override on a
    configuration naming the unit's credential: exit 2 with one line that says the path
    exists only while the service runs and gives the command that checks the real file,
    rather than "check the path" (which sent admins to change a path that is right).
    Inside the service (CREDENTIALS_DIRECTORY set), a missing credential is a wrong name:
    the plain fix."""
    credential = "/run/credentials/outboxd-test-absent.service/token"
    env.write_config("https://operator.invalid/x", delivery={"token_file": credential})
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert f'token_file = "{credential}": cannot be read (No such file or directory)' in err
    assert "a systemd credential, there only while the service runs" in err
    assert ("OUTBOXD_DELIVERY__TOKEN_FILE=/etc/outboxd/token outboxd config --check "
            f"-c {env.config}") in err
    assert "Traceback" not in err
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/outboxd-test-absent.service")
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert "check the path and permissions" in err and "systemd credential" not in err


def test_a_secret_allowed_over_plain_http_is_valid_and_warned_of_without_the_secret(
        env: Env, capsys) -> None:
    """[delivery] allow_plain_http = true with a token to http://receiver:8080 (a
    container network): `config --check` says valid, and both `config --check` and
    `config` say on stderr that the token travels unencrypted, never showing it. Without
    the key, the check refuses the url."""
    env.write_config("http://receiver:8080/bundles", delivery={"token": "s3cret-token"})
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    assert "plain http://" in capsys.readouterr().err
    env.write_config("http://receiver:8080/bundles",
                     delivery={"token": "s3cret-token", "allow_plain_http": True})
    for command in (["config", "--check"], ["config"]):
        assert main([*command, "-c", str(env.config)]) == 0
        out, err = capsys.readouterr()
        [warning] = err.splitlines()
        assert warning.startswith("outboxd: warning: [delivery] allow_plain_http = true: the "
                                  "token goes to http://receiver:8080/bundles over plain "
                                  "http://, unencrypted")
        assert "s3cret-token" not in out + err
        assert ("configuration is valid" in out) == (command == ["config", "--check"])


# A url with every kind of secret a url holds: a password (Basic auth), a key in the
# query long enough to look for anywhere, and one too short for that, found by its name.
SECRET_URL = ("http://bob:Pa55-w0rd@receiver.invalid:8080/bundles?access_token=QSECRET-12345"
              "&tenant=7&sig=s1g")
URL_SECRETS = ("Pa55-w0rd", "QSECRET-12345", "s1g")


def test_a_key_in_the_urls_query_is_refused_over_plain_http_and_shown_by_config_masked(
        env: Env, capsys) -> None:
    """A url whose query holds a key (`?access_token=`) to another machine over plain
    http://: `config --check` refuses it as it does a token, naming the parameter, not
    its value (it let it through without a word). Allowed (allow_plain_http), both
    `config --check` and `config` warn naming it, and `config` prints the url with the
    password and every secret-looking value masked; no secret in either output."""
    env.write_config("http://receiver.invalid:8080/bundles?access_token=QSECRET-12345")
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert "the value of the url's query parameter 'access_token'" in err
    assert "QSECRET-12345" not in err
    env.write_config(SECRET_URL, delivery={"allow_plain_http": True})
    for command in (["config", "--check"], ["config"]):
        assert main([*command, "-c", str(env.config)]) == 0
        out, err = capsys.readouterr()
        # `sig=s1g` is also said as a flag too short to be taken out of answers.
        warning, flag = err.splitlines()
        assert flag.startswith("outboxd: warning: the value of 'sig' in the query of ")
        assert warning.startswith("outboxd: warning: [delivery] allow_plain_http = true: the "
                                  "credentials in the url (Basic auth) goes to "
                                  "http://receiver.invalid:8080/bundles over plain http://")
        assert not any(secret in out + err for secret in URL_SECRETS)
    shown = json.loads(out)["delivery"]["url"]
    assert shown == ("http://bob:********@receiver.invalid:8080/bundles?access_token=********"
                     "&tenant=7&sig=********")


def test_no_plain_http_warning_for_a_local_receiver(env: Env, capsys) -> None:
    """The key set for a receiver on this machine changes nothing: no warning."""
    env.write_config("http://127.0.0.1:9/bundles",
                     delivery={"token": "s3cret-token", "allow_plain_http": True})
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err == ""


def test_a_token_in_a_configuration_others_may_read_is_warned_of_by_config(
        env: Env, capsys) -> None:
    """[delivery] token in a file of mode 0644: `config --check` still says valid, and
    both it and `config` say on stderr which file every user may read and the fix,
    never the token. At the installed 0640 (group root here, no clerk in it): silent."""
    env.write_config("http://127.0.0.1:9/bundles", delivery={"token": "s3cret-token"})
    env.config.chmod(0o644)
    for command in (["config", "--check"], ["config"]):
        assert main([*command, "-c", str(env.config)]) == 0
        out, err = capsys.readouterr()
        [warning] = err.splitlines()
        assert warning.startswith(f"outboxd: warning: the configuration file {env.config} "
                                  "holds [delivery] token, and every user of this machine "
                                  "may read it (mode 0644) — move the token into ")
        assert "s3cret-token" not in out + err
    env.config.chmod(0o640)
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err == ""


def test_config_warns_of_an_outbox_share_caching_longer_than_the_settle_time(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """`config --check` says on stderr what `run` logs at its start: the outbox on a CIFS
    share caching folders 30 s, beyond settle_seconds; the configuration is still valid."""
    env.write_config("https://127.0.0.1:9/bundles")
    fake_mountinfo(monkeypatch, "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                   f"40 22 0:51 / {os.path.realpath(env.outbox)} rw - cifs //fs/finance "
                   "rw,vers=3.1.1,acdirmax=30,acregmax=1\n")
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    out, err = capsys.readouterr()
    assert "configuration is valid" in out
    assert "outboxd: warning: the outbox " in err
    assert "up to 30 s late (acregmax=1, acdirmax=30)" in err


def test_check_refuses_a_release_suffix_equal_to_the_marker_suffix(env: Env, capsys) -> None:
    """[share] release_suffix = [outbox] marker_suffix under completion = "marker":
    `config --check` says what `run` would (exit 2, naming both keys and the fix)
    instead of "configuration is valid"."""
    env.write_config("https://127.0.0.1:9/bundles", share={"release_suffix": ".ready"},
                     outbox={"completion": "marker"})
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert ("[share] release_suffix = '.ready' and [outbox] marker_suffix = '.ready' under "
            "[outbox] completion = 'marker' are the same suffix") in err
    assert 'release_suffix = ".send-anyway" and marker_suffix = ".ready"' in err
    assert "configuration is valid" not in err


def test_another_machines_daemon_under_this_name_is_refused_by_check_as_by_run(
        env: Env, capsys) -> None:
    """A new server being set up with the old one's short host name and state dir path,
    the old one still running (its fingerprint of our name renewed just now): `run`
    would not start (NameInUse), so `config --check` does not say "valid" — it names
    the other machine, the file and the fix, and writes nothing on the share."""
    from daemon.claiming.claim import copy_tag
    env.write_config("https://127.0.0.1:9/bundles")
    folder = env.outbox / ".outboxd" / "deciding"
    folder.mkdir(parents=True)
    twin = folder / f"{copy_tag(env.state)}.json"
    twin.write_text(json.dumps({"daemon": copy_tag(env.state), "machine": "0123456789abcdef",
                                "machine_name": "fin01.old.example", "keys": {}}))
    assert main(["config", "--check", "-c", str(env.config)]) == 2
    err = capsys.readouterr().err
    assert "outboxd on the machine fin01.old.example (machine 0123456789abcdef) runs on " \
        "this outbox under this daemon's name" in err, err
    assert f"remove {twin}" in err and "configuration is valid" not in err
    assert sorted(os.listdir(folder)) == [twin.name]


def test_document_types_without_the_default_type_is_valid_and_warned_of(
        env: Env, capsys) -> None:
    """[attachments] document_types = ["Invoice", "Timesheet"], default_document_type not
    set: valid (a way to make clerks type every file), but every file attachments.toml
    gives no type is then an error. `config --check` and `config` say so on stderr, naming
    both keys and the fix; with the default type in the list they are silent."""
    env.write_config("https://127.0.0.1:9/bundles",
                     attachments={"document_types": ["Invoice", "Timesheet"]})
    for command in (["config", "--check"], ["config"]):
        assert main([*command, "-c", str(env.config)]) == 0
        [warning] = capsys.readouterr().err.splitlines()
        assert warning == (
            "outboxd: warning: [attachments] document_types (['Invoice', 'Timesheet']) does "
            "not list default_document_type ('Attachment', its default as the key is not "
            "set): a file that attachments.toml gives no type is then an error "
            "(document-type-not-allowed), so every file in a sidecar must carry a type of "
            "the list — add it to document_types, or set default_document_type to one of "
            "them, unless that is what you mean")
    env.write_config("https://127.0.0.1:9/bundles",
                     attachments={"document_types": ["Invoice", "Attachment"]})
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err == ""


SHORT_WARNING = "shorter than 8 characters, and such a secret is taken out of what a receiver"


def test_a_short_url_password_or_token_is_warned_of_by_config_without_being_shown(
        env: Env, capsys) -> None:
    """A url password of one character ("1"), or a token (inline, or in token_file) of
    five: valid, and `config` and `config --check` say on stderr that such a secret is
    taken out of the receiver's answers only where it stands apart, naming which
    secret, never showing it or its length. token_file is read for it only by the
    check, as for its other warnings. Eight characters or more: no warning."""
    env.write_config("https://erp:1@127.0.0.1:9/bundles")
    for command in (["config", "--check"], ["config"]):
        assert main([*command, "-c", str(env.config)]) == 0
        out, err = capsys.readouterr()
        [warning] = err.splitlines()
        assert warning.startswith(f"outboxd: warning: the password in [delivery] url is "
                                  f"{SHORT_WARNING}")
        assert "erp:1@" not in out + err
    env.write_config("https://127.0.0.1:9/bundles", delivery={"token": "s3krT"})
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"outboxd: warning: [delivery] token is {SHORT_WARNING}")
    assert "s3krT" not in warning and " 5 " not in warning
    token = env.root / "token"
    token.write_text("s3krT\n")
    env.write_config("https://127.0.0.1:9/bundles", delivery={"token_file": str(token)})
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("outboxd: warning: the token of [delivery] token_file is "
                              f"{SHORT_WARNING}")
    assert main(["config", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err == ""
    token.write_text("s3krT-12\n")
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err == ""


def test_a_short_password_of_the_environments_proxy_is_warned_of_by_config(
        env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY=http://px:7@proxy…: the proxy's password goes in every POST's
    Proxy-Authorization, and is as short: the same warning, naming the proxy."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://px:7@127.0.0.1:3128")
    env.write_config("https://receiver.invalid/bundles", delivery={"token": "s3cret-token"})
    assert main(["config", "-c", str(env.config)]) == 0
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("outboxd: warning: the password of the environment's proxy "
                              f"(HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) is {SHORT_WARNING}")


def test_a_short_value_of_a_secret_named_query_key_is_warned_of_as_never_taken_out(
        env: Env, capsys) -> None:
    """`?api_key=abc123`: a value of a key named like a secret shorter than 8 characters
    is taken for a flag (`?auth=1`) and never taken out of the receiver's answers, so
    `config` says so, naming the key and never the value; a value of 8 characters or
    more (taken out wherever it stands) and a key not named like a secret: nothing."""
    env.write_config("https://127.0.0.1:9/bundles?api_key=abc123")
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    out, err = capsys.readouterr()
    [warning] = err.splitlines()
    assert warning == (
        "outboxd: warning: the value of 'api_key' in the query of [delivery] url is "
        "shorter than 8 characters, so taken for a flag and never taken out of what a "
        "receiver answers; if it is a credential, ask the operator for a longer one")
    assert "abc123" not in out + err
    for url in ("https://127.0.0.1:9/bundles?api_key=abc123-long",
                "https://127.0.0.1:9/bundles?page=1"):
        env.write_config(url)
        assert main(["config", "--check", "-c", str(env.config)]) == 0
        assert capsys.readouterr().err == ""


def test_an_empty_allowed_types_list_is_valid_and_warned_of_as_refusing_every_attachment(
        env: Env, capsys) -> None:
    """[validation] allowed_types = []: valid, as document_types = [] is, but every
    attachment on the e-invoice channel is then refused; it went without a word.
    `config` and `config --check` say so on stderr with the fix, exit 0."""
    env.write_config("https://127.0.0.1:9/bundles", validation={"allowed_types": []})
    warning = (
        "outboxd: warning: [validation] allowed_types is empty: every attachment on the "
        "e-invoice channel is then an error (type-not-allowed), and only invoices without "
        "attachments go on it — list the formats to allow, or remove the key for the six "
        "Peppol BIS 3 allows")
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err.splitlines() == [warning]
    assert main(["config", "-c", str(env.config)]) == 0
    assert capsys.readouterr().err.splitlines() == [warning]


def test_an_empty_document_types_list_is_valid_and_warned_of_as_refusing_every_attachment(
        env: Env, capsys) -> None:
    """[attachments] document_types = []: valid, but every attachment is then an error and
    only invoices without attachments go. `config --check` says so on stderr with the fix
    (list the types, or remove the key), exit 0 — not the warning about the default type,
    which names a list that allows nothing."""
    env.write_config("https://127.0.0.1:9/bundles", attachments={"document_types": []})
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    [warning] = capsys.readouterr().err.splitlines()
    assert warning == (
        "outboxd: warning: [attachments] document_types is empty: every attachment is then "
        "an error (document-type-not-allowed), and only invoices without attachments go — "
        "list the types to allow, or remove the key to allow any")
