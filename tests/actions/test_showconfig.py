"""`outboxd config --check`: valid means `run` would take it."""

from __future__ import annotations

from conftest import Env

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


def test_a_usable_configuration_is_valid(env: Env, capsys) -> None:
    """The same check passes a configuration run takes, and says so on stdout."""
    env.write_config("https://127.0.0.1:9/bundles")
    assert main(["config", "--check", "-c", str(env.config)]) == 0
    assert "configuration is valid" in capsys.readouterr().out
