"""`outboxd receiver` (daemon/actions/receiver.py): the command line of the reference
receiver, read before anything listens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import run_receiver


class TestStartUpErrors:
    @pytest.mark.parametrize("value", ["503,later", "pass,429:soon", "429:-1", "-", "201:",
                                       "429:\u0663"])
    def test_a_fail_first_it_cannot_read_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path, value: str) -> None:
        """An entry of --fail-first that is neither a status, STATUS:SECONDS (whole
        seconds in ASCII digits, as a Retry-After header has them) nor pass: one line
        naming the value and the forms; exit 2, nothing listening."""
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(tmp_path / "s"),
                            f"--fail-first={value}")
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert repr(value) in line and "STATUS:SECONDS" in line


class TestTokenFile:
    """--token-file: the token out of the command line, which every user of the machine
    sees in `ps`."""

    def test_the_token_the_file_holds_is_required_and_not_in_the_command_line(
            self, tmp_path: Path, start_receiver: Any) -> None:
        """The file's token, spaces and line end around it dropped, is the one required:
        a wrong one is answered 401, the right one is let past the token check (400 for
        the empty request that follows); the token is nowhere in the process's arguments."""
        secret = tmp_path / "token"
        secret.write_text("  s3cret-token\n")
        receiver = start_receiver("--token-file", str(secret), process=True)
        with open(f"/proc/{receiver.popen.pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        wrong = httpx.post(receiver.url, headers={"Authorization": "Bearer s3cret"})
        right = httpx.post(receiver.url, headers={"Authorization": "Bearer s3cret-token"})
        assert b"s3cret" not in cmdline and str(secret).encode() in cmdline
        assert wrong.status_code == 401
        assert right.status_code == 400, right.text

    def test_token_and_token_file_at_once_are_refused(self, tmp_path: Path) -> None:
        """Both at once: which one counts would be a guess; exit 2 naming both."""
        (tmp_path / "token").write_text("a\n")
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(tmp_path / "s"),
                            "--token", "b", "--token-file", str(tmp_path / "token"))
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        assert "--token-file" in done.stderr and "not allowed with argument --token" in done.stderr

    @pytest.mark.parametrize("problem", ["missing", "folder", "empty", "two words"])
    def test_a_token_file_it_cannot_use_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path, problem: str) -> None:
        """A file that is not there, no file, empty, or whose content is no token: one line
        naming the file and the fix, never quoting what it holds; exit 2, nothing listens."""
        path = tmp_path / "token"
        if problem == "folder":
            path.mkdir()
        elif problem != "missing":
            path.write_text("" if problem == "empty" else "two words\n")
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(tmp_path / "s"),
                            "--token-file", str(path))
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert f"--token-file {path}" in line and "words" not in line


class TestToken:
    """--token and $OUTBOXD_RECEIVER_TOKEN: held to the rule the daemon holds its own
    [delivery] token to."""

    @pytest.mark.parametrize(("given", "value"), [
        *((given, value) for given in ("--token", "$OUTBOXD_RECEIVER_TOKEN")
          for value in ("tw0 w0rds", "l1ne\nbr3ak", "caf\u00e9-t0ken")),
        ("--token", "")])  # an empty variable is no token given, as a shell's `VAR=` leaves it
    def test_a_token_no_sender_could_send_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path, value: str, given: str) -> None:
        """A token with a space, a line break or a non-ASCII character can never match
        what a sender sends (the daemon refuses such a token of its own), and an empty
        --token would let every sender in: refused at start, one line naming the option
        and what is wrong, never quoting the token; exit 2, nothing listens. Before,
        the receiver started and refused every request."""
        args = ["--listen", "127.0.0.1:0", "--store", str(tmp_path / "s")]
        if given == "--token":
            done = run_receiver(*args, "--token", value)
        else:
            done = run_receiver(*args, env={"OUTBOXD_RECEIVER_TOKEN": value})
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert given in line
        assert ("is empty" in line) if not value else ("visible ASCII" in line)
        assert all(part not in line for part in ("w0rds", "l1ne", "br3ak", "caf", "t0ken"))
        assert not (tmp_path / "s").exists()


    def test_an_empty_variable_is_no_token_as_a_shells_var_leaves_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """`OUTBOXD_RECEIVER_TOKEN=` (set but empty, as a shell's `VAR=` or an env file's
        empty line leaves it) is no token given: the receiver starts requiring none, where
        an empty --token (asked for on the command line) is refused above."""
        import daemon.receiver
        from daemon.cli import main
        started: dict[str, Any] = {}

        def listen(*_args: object, **kwargs: Any) -> int:
            started.update(kwargs)
            return 0
        monkeypatch.setattr(daemon.receiver, "run", listen)
        monkeypatch.setenv("OUTBOXD_RECEIVER_TOKEN", "")
        assert main(["receiver", "--listen", "127.0.0.1:0", "--store", str(tmp_path)]) == 0
        assert started["token"] is None


@pytest.mark.parametrize("given", ["--token", "$OUTBOXD_RECEIVER_TOKEN"])
def test_a_valid_token_given_on_the_command_line_or_environment_is_the_one_required(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    """`outboxd receiver --token T` (or OUTBOXD_RECEIVER_TOKEN=T) with a token a sender
    can send: the receiver starts requiring exactly T — not none, which would let every
    sender in."""
    import daemon.receiver
    from daemon.cli import main
    started: dict[str, Any] = {}

    def listen(*_args: object, **kwargs: Any) -> int:
        started.update(kwargs)
        return 0
    monkeypatch.setattr(daemon.receiver, "run", listen)
    args = ["receiver", "--listen", "127.0.0.1:0", "--store", str(tmp_path)]
    if given == "--token":
        monkeypatch.delenv("OUTBOXD_RECEIVER_TOKEN", raising=False)
        assert main([*args, "--token", "s3cret-t0ken"]) == 0
    else:
        monkeypatch.setenv("OUTBOXD_RECEIVER_TOKEN", "s3cret-t0ken")
        assert main(args) == 0
    assert started["token"] == "s3cret-t0ken"
