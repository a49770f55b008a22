"""Loading the configuration (daemon/configuration/config_load.py): a file that is missing, a FIFO
or not TOML, unknown keys and sections, every problem at once and no secret in them; the
folders the daemon writes checked at start."""

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
    without_blocking,
)

from daemon.configuration.config_load import load_settings, log_config_anyway
from daemon.errors import ConfigError


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

    def test_a_configuration_the_user_may_not_read_says_how_to_let_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file outboxd's user may not read (the admin's 0600 root file) is an error
        naming the file and the fix: give it to outboxd's group, mode 0640."""
        path = config_file(tmp_path, minimal(tmp_path))

        def refuse(p: Path, limit: int) -> bytes:
            # Tests run as root, which a chmod cannot refuse.
            raise PermissionError(13, "Permission denied", str(p))
        monkeypatch.setattr("daemon.configuration.config_load.read_admin_file", refuse)
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert str(path) in str(info.value)
        assert "chgrp outboxd, chmod 0640" in str(info.value)

    def test_invalid_toml(self, tmp_path: Path) -> None:
        """A file that is not TOML is an error saying so."""
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_settings(config_file(tmp_path, "[outbox\npath = 1\n"))

    @pytest.mark.parametrize(("line", "hint"), [
        ("path = /srv/outbox", ' — strings need double quotes: path = "/srv/outbox"'),
        ("path = srv/outbox   # the share", ' — strings need double quotes: path = "srv/outbox"'),
        ("path = C:\\out", " — strings need single quotes: path = 'C:\\out'"),
        ("invoice_patterns = [ /x]", ""),  # inside an array: the rest is no string's
        ("settle_seconds = -", "")])
    def test_an_unquoted_string_is_told_to_take_quotes_with_its_line_and_column(
            self, tmp_path: Path, line: str, hint: str) -> None:
        """`path = /srv/outbox`: tomllib says only "Invalid value (at line 2, column 8)";
        where a key's value there starts like a word or a path, the error keeps the line
        and column and adds the fix, the line as it should be written. Elsewhere no hint,
        rather than a wrong one."""
        path = tmp_path / "config.toml"
        path.write_text(f"[outbox]\n{line}\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        column = len(line) - len(line.split("= ", 1)[1].lstrip("[ ")) + 1
        assert str(info.value) == (f"{path} is not valid TOML: Invalid value (at line 2, "
                                   f"column {column}){hint}")

    @pytest.mark.parametrize(("line", "hint"), [
        ("level = info", ' — strings need double quotes: level = "info"'),
        ("level = infinity  # loud", ' — strings need double quotes: level = "infinity"'),
        ("format = nanny", ' — strings need double quotes: format = "nanny"'),
        ("format = trueish", ' — strings need double quotes: format = "trueish"'),
        ("level = \"a\" \"b\"", ""),  # two strings: quotes are not what is missing
        ("level = 5 s", "")])
    def test_an_unquoted_word_that_begins_like_a_number_or_true_is_told_to_take_quotes(
            self, tmp_path: Path, line: str, hint: str) -> None:
        """`level = info` — the default written without quotes — reads to tomllib as the
        number inf followed by "o", and it said only "Expected newline or end of document
        after a statement": the quotes' hint came for `level = warn` but not for "info",
        "nan…", "true…" or "false…". Found by bench/configfuzz.py."""
        path = tmp_path / "config.toml"
        path.write_text(f"[log]\n{line}\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        message = str(info.value)
        assert message.startswith(f"{path} is not valid TOML: Expected newline or end of "
                                  "document after a statement (at line 2, column ")
        assert message.endswith(f"){hint}")

    def test_a_byte_order_mark_before_the_file_is_read_past(self, tmp_path: Path) -> None:
        """Notepad writes a byte-order mark at the start of a file saved as UTF-8: it was
        "not valid TOML: Invalid statement (at line 1, column 1)", at a mark no editor
        shows. Read past, as attachments.toml's is; a mark elsewhere is still an error
        (found by bench/configfuzz.py)."""
        path = tmp_path / "config.toml"
        path.write_bytes(b"\xef\xbb\xbf" + minimal(tmp_path).encode())
        assert load_settings(path, token=False).outbox.path == tmp_path
        path.write_bytes(minimal(tmp_path).encode() + b"\xef\xbb\xbf")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_settings(path, token=False)

    def test_a_file_not_in_utf8_says_which_line_and_to_save_it_as_utf8(
            self, tmp_path: Path) -> None:
        """A configuration saved in the Windows code page (a comment with "ü"): the error
        names the file, the line and the fix, not the codec's byte offset."""
        path = tmp_path / "config.toml"
        path.write_bytes(minimal(tmp_path, "# Prüfung\n").encode("cp1252"))
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert info.value.problems == [
            f"{path} is not UTF-8 text (line 6 holds the byte 0xfc: it was saved in another "
            "encoding, such as Windows' ANSI) — save it again as UTF-8"]

    def test_a_file_nested_too_deeply_is_an_error_not_a_traceback(self, tmp_path: Path) -> None:
        """Arrays nested thousands deep exhaust tomllib's recursion: that is said as
        TOML this file cannot be, naming the file, not a RecursionError's traceback."""
        deep = "x = " + "[" * 5000 + "]" * 5000 + "\n"
        path = config_file(tmp_path, minimal(tmp_path, deep))
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert f"{path} is not valid TOML: its values are nested too deeply" in str(info.value)

    def test_a_number_of_thousands_of_digits_is_an_error_not_a_traceback(
            self, tmp_path: Path) -> None:
        """A whole number of 5,000 digits is TOML that Python's int() refuses (past 4,300
        digits): said as a configuration error naming the file, not a ValueError's
        traceback from `config --check` or the start."""
        path = config_file(tmp_path, minimal(tmp_path, "x = " + "1" * 5000 + "\n"))
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert f"{path} is not valid TOML for outboxd: it holds a number of thousands" \
            in str(info.value)

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

    def test_a_missing_section_is_said_with_the_key_to_set_and_how(
            self, tmp_path: Path, outbox: Path) -> None:
        """A file without [delivery] (or without [outbox]) is not "[delivery]: required":
        the line names the key an admin must set and shows how to write it."""
        text = f'[outbox]\npath = "{outbox}"\n'
        line = one_problem_with(problems_of(config_file(tmp_path, text)),
                                "[delivery] url: required but not set")
        assert 'add a section [delivery] with url = "https://' in line
        assert 'transport = "directory"' in line
        line = one_problem_with(problems_of(config_file(tmp_path, f'[delivery]\nurl = "{URL}"\n')),
                                "[outbox] path: required but not set")
        assert 'add a section [outbox] with path = "' in line

    def test_one_word_values_are_taken_in_any_case_from_the_file_and_the_environment(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An admin used to Python's and journald's spellings writes level = "DEBUG",
        format = "JSON": every key that takes one of a few words takes it in any case,
        in the file and from OUTBOXD_SECTION__KEY, and keeps the lower-case word; so do
        the type names of allowed_types."""
        text = (f'[outbox]\npath = "{outbox}"\nwatch = "Polling"\ncompletion = "MARKER"\n'
                f'[delivery]\nurl = "{URL}"\ntransport = "HTTP"\nformat = "UBL-Embedded"\n'
                '[validation]\nchannel = "E-Invoice"\nallowed_types = ["PDF", "png"]\n'
                '[policy]\nunattached = "HOLD"\ninvalid = "Hold"\nduplicates = "SEND"\n'
                '[service]\nreader_processes = "AUTO"\n'
                '[log]\nlevel = "DEBUG"\nformat = "JSON"\n[einvoice]\npreflight = "OFF"\n')
        s = load_settings(config_file(tmp_path, text))
        assert (s.log.level, s.log.format) == ("debug", "json")
        assert (s.outbox.watch, s.outbox.completion) == ("polling", "marker")
        assert (s.delivery.transport, s.delivery.format) == ("http", "ubl-embedded")
        assert (s.validation.channel, s.validation.allowed_types) == ("e-invoice",
                                                                      ["pdf", "png"])
        assert (s.policy.unattached, s.policy.invalid, s.policy.duplicates) == (
            "hold", "hold", "send")
        assert s.service.reader_processes == "auto"
        assert s.einvoice.preflight == "off"

        monkeypatch.setenv("OUTBOXD_LOG__LEVEL", "WARNING")
        monkeypatch.setenv("OUTBOXD_LOG__FORMAT", "Console")
        monkeypatch.setenv("OUTBOXD_EINVOICE__PREFLIGHT", "Warn")
        monkeypatch.setenv("OUTBOXD_POLICY__UNATTACHED", "QUARANTINE")
        s = load_settings(config_file(tmp_path, minimal(outbox)))
        assert (s.log.level, s.log.format) == ("warning", "console")
        assert (s.einvoice.preflight, s.policy.unattached) == ("warn", "quarantine")

    def test_a_word_not_allowed_in_any_case_is_shown_as_written_with_the_allowed_ones(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Case does not matter, spelling does: level = "LOUD" is refused, its line shows
        'LOUD' as written and names the words allowed, from the file or the environment."""
        line = one_problem_with(problems_of(config_file(tmp_path, minimal(
            outbox, '[log]\nlevel = "LOUD"\n'))), "[log] level = 'LOUD': must be ")
        assert all(word in line for word in ("'debug'", "'info'", "'warning'", "'error'"))
        monkeypatch.setenv("OUTBOXD_LOG__FORMAT", "YAML")
        line = one_problem_with(problems_of(config_file(tmp_path, minimal(outbox))),
                                "[log] format (from OUTBOXD_LOG__FORMAT) = 'YAML': must be ")
        assert all(word in line for word in ("'auto'", "'json'", "'console'"))

    def test_a_value_of_the_wrong_type_says_what_to_write_without_python_words(
            self, tmp_path: Path, outbox: Path) -> None:
        """A wrong type reads as what to write ("must be a number"), never as pydantic's
        "Input should be", nor with a Python class (<class 'pathlib.Path'>, OutboxConfig)."""
        text = ('delivery = 5\n[outbox]\npath = 5\nsettle_seconds = "five"\n'
                'invoice_patterns = "*.xml"\n[log]\nlevel = "loud"\n')
        problems = problems_of(config_file(tmp_path, text))
        one_problem_with(problems, "[outbox] path = 5: must be a path in quotes")
        one_problem_with(problems, "[outbox] settle_seconds = 'five': must be a number")
        one_problem_with(problems, "[outbox] invoice_patterns = '*.xml': must be a list in "
                         'square brackets, e.g. ["*.xml", "*.pdf"]')
        one_problem_with(problems, "[delivery]: must be a section — write [delivery] on a line")
        one_problem_with(problems, "[log] level = 'loud': must be ")
        text = "\n".join(problems)
        assert "Input" not in text and "class" not in text and "Config" not in text

    def test_a_key_of_two_types_is_one_line_naming_both(
            self, tmp_path: Path, outbox: Path) -> None:
        """`verify = 3` (true, false or a CA bundle's path) is one line for the key, not a
        line per type under made-up keys ("verify.bool", "verify.str")."""
        problems = problems_of(config_file(tmp_path, minimal(outbox).replace(
            "[delivery]\n", "[delivery]\nverify = 3\n")))
        assert problems == ["[delivery] verify = 3: must be true or false, or text in quotes"]

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

    def test_a_key_above_every_section_is_said_to_be_outside_any_section(
            self, tmp_path: Path, outbox: Path) -> None:
        """`foo = 1` above the first [section] line is a key outside any section, with
        the sections listed and the fix (move it under its section; for a key one
        section has, `settle_seconds`, that section), not "[foo]: unknown section",
        which sent the admin looking for a header that is not in the file."""
        for text, key, move in (
                ("foo = 1\n", "foo = 1", "move it below the section it belongs to, or remove it"),
                ("settle_seconds = 3\n", "settle_seconds = 3", "move it below [outbox]")):
            [line] = problems_of(config_file(tmp_path, text + minimal(outbox)))
            assert line == (f"{key}: a key outside any section (above the first [section] "
                            "line), where no key may be; the sections: [outbox], [paths], "
                            "[invoices], [attachments], [validation], [policy], [delivery], "
                            f"[log], [service], [share], [einvoice] — {move}"), line
            assert "unknown section" not in line

    def test_every_problem_is_reported(self, tmp_path: Path, outbox: Path) -> None:
        """Several problems are all reported at once, one line each."""
        extra = '[policy]\nunattached = "maybe"\n[log]\nlevel = "loud"\n[nope]\n'
        problems = problems_of(config_file(tmp_path, minimal(outbox, extra)))
        assert one_problem_with(problems, "[policy] unattached")
        assert one_problem_with(problems, "[log] level")
        assert one_problem_with(problems, "[nope]")
        assert len(problems) == 3


    def test_a_bad_value_from_the_environment_names_the_variable(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad value or unknown key set by OUTBOXD_SECTION__KEY is not in the file the
        error is headed with: its line names the variable; a bad value in the file does not."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__SETTLE_SECONDS", "abc")
        monkeypatch.setenv("OUTBOXD_OUTBOX__SETTLE_SECS", "1")
        problems = problems_of(config_file(tmp_path, minimal(outbox, '[log]\nlevel = "loud"\n')))
        one_problem_with(problems, "[outbox] settle_seconds (from OUTBOXD_OUTBOX__SETTLE_SECONDS)",
                         "'abc'")
        one_problem_with(problems, "[outbox] settle_secs (from OUTBOXD_OUTBOX__SETTLE_SECS)",
                         "unknown key")
        assert "OUTBOXD" not in one_problem_with(problems, "[log] level")

    def test_a_list_from_the_environment_nested_too_deeply_is_a_bad_value(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A JSON list in OUTBOXD_SECTION__KEY nested past what json can read is a bad
        value of that variable, as any other text that is not a list, not a traceback."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__INVOICE_PATTERNS", "[" * 100_000 + "]" * 100_000)
        problems = problems_of(config_file(tmp_path, minimal(outbox)))
        line = one_problem_with(problems, "[outbox] invoice_patterns (from "
                                "OUTBOXD_OUTBOX__INVOICE_PATTERNS)", "list")
        assert len(problems) == 1 and "Traceback" not in line and "Recursion" not in line

    def test_a_token_file_or_outbox_from_the_environment_that_fails_names_the_variable(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The checks made after the values are valid (a token_file that cannot be read,
        an outbox that is not there) name the variable too when it set the value, and
        not when the file did."""
        path = config_file(tmp_path, minimal(outbox))
        no_token = tmp_path / "no-token"
        monkeypatch.setenv("OUTBOXD_DELIVERY__TOKEN_FILE", str(no_token))
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert "[delivery] token_file (from OUTBOXD_DELIVERY__TOKEN_FILE) = " \
            f'"{no_token}": cannot be read' in str(info.value)
        monkeypatch.setenv("OUTBOXD_OUTBOX__PATH", str(tmp_path / "no-outbox"))
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert "[outbox] path (from OUTBOXD_OUTBOX__PATH) = " in str(info.value)
        monkeypatch.delenv("OUTBOXD_OUTBOX__PATH")
        monkeypatch.delenv("OUTBOXD_DELIVERY__TOKEN_FILE")
        token_file = tmp_path / "no-token-either"
        with pytest.raises(ConfigError) as info:
            load_settings(config_file(tmp_path, minimal(outbox).replace(
                "[delivery]\n", f'[delivery]\ntoken_file = "{token_file}"\n')))
        assert f'[delivery] token_file = "{token_file}": cannot be read' in str(info.value)


class TestSecretsInErrors:
    def test_a_mistyped_token_key_does_not_print_the_secret(self, tmp_path: Path,
                                                            outbox: Path) -> None:
        """`tokn = "s3cr3t"` is an unknown key; the error names it but masks the value."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, 'tokn = "s3cr3t-value"\ntoken = 12345\n')))
        text = "\n".join(problems)
        assert "[delivery] tokn" in text and "[delivery] token" in text
        assert "s3cr3t-value" not in text and "12345" not in text

    @pytest.mark.parametrize("typo", ["toekn", "tken", "otken", "pasword", "secert"])
    def test_a_typo_of_token_without_its_letters_in_order_does_not_print_the_secret(
            self, tmp_path: Path, outbox: Path, typo: str) -> None:
        """A key that is a typo of token, secret or password (letters swapped or left
        out, so that it holds none of those words) may well hold the token: its value is
        masked like token's."""
        problems = problems_of(config_file(tmp_path, minimal(
            outbox, f'{typo} = "s3cr3t-value"\n')))
        line = one_problem_with(problems, f"[delivery] {typo} = '********'", "unknown key")
        assert "s3cr3t-value" not in "\n".join(problems) and "s3cr3t" not in line

    def test_a_long_url_is_masked_before_it_is_cut(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A long url whose "@" after the password lies beyond the part shown: the password
        is masked still (the mask is made on the whole value, then cut)."""
        url = "http//bob:pa55word" + "x" * 300 + "@host/" + "p" * 300
        monkeypatch.setenv("OUTBOXD_DELIVERY__URL", url)
        problems = problems_of(config_file(tmp_path, minimal(outbox)))
        line = one_problem_with(problems, "[delivery] url")
        assert "pa55word" not in line and "bob" not in line and "********@host/" in line

    def test_a_token_in_a_urls_query_or_a_written_out_header_is_not_printed(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A receiver that takes its key in the url (`?access_token=…`, `&api_key=…`,
        a shared-access `sig=`), a url with a space at its end, one under a mistyped key,
        and an Authorization header pasted into a list: the error lines name each key,
        keep what is not secret, and mask every secret value; so does a key like
        `api_tok` from the environment."""
        monkeypatch.setenv("OUTBOXD_DELIVERY__API_TOK", "Secret-5-env")
        problems = problems_of(config_file(tmp_path, minimal(outbox).replace(
            f'url = "{URL}"', 'url = "https://op.example/api?x=1&access_token=Secret-1 "\n'
            'ulr = "https://op.example/api?api_key=Secret-2#sig=Secret-3"\n'
            'headers = ["Authorization: Bearer Secret-4"]')))
        text = "\n".join(problems)
        for n in range(1, 6):
            assert f"Secret-{n}" not in text
        for start in ("[delivery] url = 'https://op.example/api?x=1&access_token=********'",
                      "[delivery] ulr = 'https://op.example/api?api_key=********#sig=********'",
                      "[delivery] headers = ['Authorization: Bearer ********']",
                      "[delivery] api_tok (from OUTBOXD_DELIVERY__API_TOK) = '********'"):
            assert any(p.startswith(start) for p in problems), (start, problems)


class TestLongValues:
    """A value pasted by mistake (40 KB in an environment variable, a huge string in the
    file) is shown by its first 200 characters and its length, so that one error does
    not make a 40 KB log line."""

    def test_a_huge_value_from_the_environment_is_shown_cut_with_its_length(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_OUTBOX__COMPLETION of 40,000 characters: the line names the variable,
        shows 200 of them and says how many there are, and the rule."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__COMPLETION", "x" * 40_000)
        problems = problems_of(config_file(tmp_path, minimal(outbox)))
        line = one_problem_with(problems, "[outbox] completion (from "
                                "OUTBOXD_OUTBOX__COMPLETION) = '" + "x" * 200 + "'… (40,000 "
                                "characters): must be 'settle' or 'marker'")
        assert len(line) < 400

    def test_a_long_token_file_path_that_cannot_be_read_is_shown_cut(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A token_file of 3,000 characters (within Linux's limits) that does not exist:
        the line names the key and the variable, shows the path's first 200 characters
        and its length, and why, as for every other value."""
        token_file = str(tmp_path / "/".join(["d" * 200] * 15))
        monkeypatch.setenv("OUTBOXD_DELIVERY__TOKEN_FILE", token_file)
        with pytest.raises(ConfigError) as info:
            load_settings(config_file(tmp_path, minimal(outbox)))
        [line] = info.value.problems
        assert line.startswith("[delivery] token_file (from OUTBOXD_DELIVERY__TOKEN_FILE) = "
                               f'"{token_file[:200]}"… ({len(token_file):,} characters): '
                               "cannot be read")
        assert len(line) < 400

    def test_a_huge_key_value_and_list_in_the_file_are_cut(self, tmp_path: Path,
                                                           outbox: Path) -> None:
        """In the file too: an unknown key of 5,000 characters with a value of 40,000, an
        unknown type of 40,000 in allowed_types (shown in the value and in the rule's
        text) and an unknown section of 5,000: every line stays short, each says how long
        the cut text is."""
        extra = (f'[validation]\nallowed_types = ["{"t" * 40_000}"]\n'
                 f'[log]\n{"k" * 5_000} = "{"v" * 40_000}"\n[{"s" * 5_000}]\na = 1\n')
        problems = problems_of(config_file(tmp_path, minimal(outbox, extra)))
        assert len(problems) == 3
        assert all(len(line) < 1_000 for line in problems), [len(p) for p in problems]
        types = one_problem_with(problems, "[validation] allowed_types", "unknown types")
        assert types.count("'… (40,000 characters)") == 2
        one_problem_with(problems, "[log] " + "k" * 200 + "… (5,000 characters) = '"
                         + "v" * 200 + "'… (40,000 characters): unknown key")
        one_problem_with(problems, "[" + "s" * 200 + "… (5,000 characters)]: unknown section")

    def test_a_list_of_thousands_of_bad_items_gives_a_few_lines(
            self, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OUTBOXD_OUTBOX__INVOICE_PATTERNS with 10,000 numbers (each a bad item to
        pydantic): five lines show what is wrong, one counts the rest."""
        monkeypatch.setenv("OUTBOXD_OUTBOX__INVOICE_PATTERNS", repr(list(range(10_000))))
        problems = problems_of(config_file(tmp_path, minimal(outbox)))
        assert len(problems) == 6
        one_problem_with(problems, "[outbox] invoice_patterns.4 (from "
                         "OUTBOXD_OUTBOX__INVOICE_PATTERNS) = 4: must be text in quotes")
        assert problems[-1] == ("[outbox] invoice_patterns: 9,995 more problems like the "
                                "ones above")

    def test_thousands_of_unknown_keys_give_fifty_lines(self, tmp_path: Path,
                                                        outbox: Path) -> None:
        """A file of 3,000 unknown keys: 49 are named, the last line counts the rest."""
        extra = "[log]\n" + "".join(f"k{n} = {n}\n" for n in range(3_000))
        problems = problems_of(config_file(tmp_path, minimal(outbox, extra)))
        assert len(problems) == 50
        assert problems[48].startswith("[log] k48 = 48: unknown key")
        assert problems[-1] == "2,951 more problems — fix the ones above and check again"

    def test_a_configuration_path_too_long_to_open_is_named_cut(self, tmp_path: Path) -> None:
        """-c with a path of 5,000 characters (no file can have it): the error names it
        once, cut, with what the system says."""
        path = tmp_path / ("c" * 5_000)
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        [line] = info.value.problems
        assert line.startswith(f"cannot read {str(path)[:200]}… ({len(str(path)):,} "
                               "characters): File name too long")
        assert len(line) < 400

    def test_a_configuration_path_through_a_file_says_what_to_pass(self, tmp_path: Path
                                                                    ) -> None:
        """-c with a path through a file (a FIFO, a file taken for a folder): "cannot read
        …: Not a directory" said what, not what to do. It now says to pass -c FILE with
        the configuration file's path."""
        (tmp_path / "plain").write_text("")
        with pytest.raises(ConfigError) as info:
            load_settings(tmp_path / "plain" / "config.toml")
        assert info.value.problems == [
            f"cannot read {tmp_path}/plain/config.toml: Not a directory — pass -c FILE with "
            "the path of the configuration file (see config.example.toml)"]


class TestLogOfAConfigurationThatDoesNotLoad:
    """`run` logs why its configuration did not load in the [log] format it asks for, as
    far as that can be read (log_config_anyway)."""

    def test_the_environment_wins_over_the_files_log_as_it_does_for_a_good_one(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file that does not load (no [outbox]) with [log] format = "console", and
        OUTBOXD_LOG__FORMAT=json from the unit: the error goes out as JSON, as every
        line of the daemon the unit starts would."""
        monkeypatch.setenv("OUTBOXD_LOG__FORMAT", "json")
        path = config_file(tmp_path, '[log]\nformat = "console"\nlevel = "debug"\n')
        with pytest.raises(ConfigError):
            load_settings(path)
        log = log_config_anyway(path)
        assert (log.format, log.level) == ("json", "debug")


def test_a_whole_number_of_thousands_of_digits_from_the_environment_is_told_in_words(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OUTBOXD_POLICY__DUPLICATE_WINDOW_DAYS of 5,000 digits: pydantic's own "Unable to
    parse input string as an integer, exceeded maximum size" was the reason shown (the
    file's such number is tomllib's, already told). Found by bench/configfuzz.py."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch,
                                    "OUTBOXD_POLICY__DUPLICATE_WINDOW_DAYS", "9" * 5000,
                                    "[policy] duplicate_window_days")
    assert line.endswith("(5,000 characters): is a number of thousands of digits, far past "
                         "what any setting takes — give a whole number such as 4")
