"""The folders of a configuration against each other (daemon/configuration/
config_overlap.py): two keys naming one folder, the state dir inside the outbox, the
outbox inside sent/, quarantine/ or the processing folder. Through load_settings and the
command line, as an admin meets them. Found by bench/configfuzz.py: every one of these
passed `outboxd config --check`, and `outboxd run` started on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import config_file, minimal, problems_of

from daemon.cli import main
from daemon.configuration.config_load import load_settings


def _with(outbox: Path, section: str, lines: str) -> str:
    text = minimal(outbox)
    return (text.replace(f"[{section}]\n", f"[{section}]\n{lines}") if f"[{section}]" in text
            else text + f"[{section}]\n{lines}")


def test_sent_and_quarantine_in_one_folder_are_refused_naming_both(
        tmp_path: Path, outbox: Path) -> None:
    """sent/ that is also quarantine/: `retry` took a delivered bundle's folder there for a
    quarantined one, moved it back into the outbox without its receipt.json, and the
    daemon sent it again. Refused at load in one line naming both keys, the folder, what
    each holds and the fix."""
    both = tmp_path / "archive"
    text = minimal(outbox, f'[paths]\nsent = "{both}"\nquarantine = "{both}/"\n')
    [line] = problems_of(config_file(tmp_path, text))
    assert line == (
        f'[paths] sent = "{both}" and [paths] quarantine = "{both}" are one folder, which '
        "would hold both the delivered bundles and the refused bundles, and outboxd would "
        "take the one for the other — give each key a folder of its own (sent/ and "
        "quarantine/ beside the outbox, the state dir /var/lib/outboxd, are the defaults)")


@pytest.mark.parametrize(("section", "lines", "keys"), [
    ("paths", 'sent = "{outbox}"\n', ("[outbox] path", "[paths] sent")),
    ("paths", 'quarantine = "{outbox}"\n', ("[outbox] path", "[paths] quarantine")),
    ("paths", 'processing = "{outbox}"\n', ("[outbox] path", "[paths] processing")),
    ("paths", 'state_dir = "{outbox}/."\n', ("[outbox] path", "[paths] state_dir")),
    ("paths", 'processing = "{root}/sent"\n',
     ("[paths] sent (not set: its default)", "[paths] processing")),
    ("paths", 'state_dir = "{root}/quarantine"\n',
     ("[paths] quarantine (not set: its default)", "[paths] state_dir")),
    ("delivery", 'transport = "directory"\ntarget = "{outbox}"\n',
     ("[outbox] path", "[delivery] target")),
    ("delivery", 'transport = "directory"\ntarget = "{root}/./sent/"\n',
     ("[paths] sent (not set: its default)", "[delivery] target"))])
def test_two_keys_naming_one_folder_are_refused_naming_both(
        tmp_path: Path, outbox: Path, section: str, lines: str, keys: tuple[str, str]) -> None:
    """Any two of the outbox, sent, quarantine, processing, the state dir and a directory
    target that are one folder (as written, "/." and a closing "/" folded), a default
    among them said to be one."""
    text = _with(outbox, section, lines.format(outbox=outbox, root=tmp_path))
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith(f"{keys[0]} = ") and f" and {keys[1]} = " in line
    assert "are one folder" in line and "give each key a folder of its own" in line


def test_a_state_dir_inside_the_outbox_is_refused(tmp_path: Path, outbox: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal on the share, where whoever may drop an invoice may read or delete it
    (its deletion stops the daemon): refused, naming the variable that set it."""
    monkeypatch.setenv("OUTBOXD_PATHS__STATE_DIR", str(outbox / ".outboxd" / "state"))
    [line] = problems_of(config_file(tmp_path, minimal(outbox)))
    assert line == (
        f'[paths] state_dir (from OUTBOXD_PATHS__STATE_DIR) = "{outbox}/.outboxd/state" is '
        f'inside the outbox ([outbox] path = "{outbox}"): the journal would be on the share, '
        "where whoever may drop an invoice may read it or delete it — give a folder off the "
        "share, such as /var/lib/outboxd (the default)")


@pytest.mark.parametrize("key", ["sent", "quarantine", "processing"])
def test_an_outbox_inside_an_archive_is_refused(tmp_path: Path, outbox: Path, key: str) -> None:
    """The outbox inside the folder outboxd files its bundles in (sent = the share that holds
    the outbox, say) is refused, naming both."""
    text = minimal(outbox, f'[paths]\n{key} = "{tmp_path}"\n')
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith(f'[outbox] path = "{outbox}" is inside [paths] {key} = '
                           f'"{tmp_path}": outboxd would file ')


@pytest.mark.parametrize("lines", [
    'sent = "{outbox}/sent"\nquarantine = "{outbox}/quarantine"\n',
    'processing = "{outbox}/work"\n', 'state_dir = "{root}/outbox-state"\n',
    'sent = "{root}/sent2"\nquarantine = "{root}/sent2-q"\n'])
def test_folders_apart_or_inside_the_outbox_as_documented_pass(
        tmp_path: Path, outbox: Path, lines: str) -> None:
    """sent/, quarantine/ or the processing folder inside the outbox stay allowed
    (configuration.md), and a name that only begins as another's is another folder."""
    text = minimal(outbox, "[paths]\n" + lines.format(outbox=outbox, root=tmp_path))
    settings = load_settings(config_file(tmp_path, text), token=False)
    named = {line.split(" = ")[0]: line.split(" = ")[1].strip('"') for line in
             lines.format(outbox=outbox, root=tmp_path).splitlines()}
    assert {key: str(getattr(settings.paths, key)) for key in named} == named


def test_config_check_and_run_refuse_one_folder_for_two_with_exit_2(
        tmp_path: Path, outbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`config --check` said "configuration is valid" of sent = quarantine; now it and the
    other commands exit 2 with the line, and no traceback."""
    both = tmp_path / "archive"
    path = config_file(tmp_path, minimal(outbox, f'[paths]\nsent = "{both}"\n'
                                         f'quarantine = "{both}"\n'))
    for argv in (["config", "--check"], ["status"], ["retry", "0123456789ab"]):
        assert main(["-c", str(path), *argv]) == 2
        err = capsys.readouterr().err
        assert "[paths] sent" in err and "are one folder" in err and "Traceback" not in err
