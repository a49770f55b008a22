"""How a text from outside (a name from the share, an invoice id, a receiver's answer) is
shown to people: daemon/invisible.py. The format characters' own cases are in
test_names.py (TestInvisibleFormatCharactersShown), where they were written first."""

from __future__ import annotations

import json
import os

import pytest

from daemon.invisible import escaped_controls, for_terminal, json_escaped
from daemon.names import printable


@pytest.mark.parametrize(("char", "code"), [("\u2028", "\\u2028"), ("\u2029", "\\u2029"),
                                            ("\x85", "\\x85")])
def test_a_line_or_paragraph_separator_in_a_name_is_shown_as_its_code(char: str,
                                                                     code: str) -> None:
    """U+2028, U+2029 (and U+0085) end a line to Python's splitlines, JavaScript and the
    log viewers built on them: raw, "INV-1" + U+2028 + a forged record would read as two
    records. Shown as its code wherever a name is shown or kept, the line stays one."""
    name = f'INV-1{char}{{"event": "bundle sent"}}.xml'
    for shown in (escaped_controls(name), printable(name), for_terminal(name)):
        assert shown == f'INV-1{code}{{"event": "bundle sent"}}.xml'
        assert len(shown.splitlines()) == 1


def test_a_byte_that_is_not_utf8_is_shown_as_its_code_not_lost_with_its_line() -> None:
    """A name with the byte 0xFF (os.fsdecode gives it as the lone surrogate U+DCFF)
    cannot be written as UTF-8: a line with it raw is lost (UnicodeEncodeError) on the
    way to the log or the terminal. Shown as \\udcff (the byte, 0xFF, after \\udc), as
    printable shows the name — not \\xff, which is how the character U+00FF (ÿ) or a
    control character such as U+0085 is shown — so the clerk's INV-M\\udcfcller.xml
    (Latin-1) reads as the name with its odd bytes."""
    name = os.fsdecode(b"INV-M\xfcller\xff.xml")
    assert escaped_controls(name) == "INV-M\\udcfcller\\udcff.xml" == printable(name)
    escaped_controls(name).encode("utf-8")  # writable
    # A surrogate no file name gives (from JSON's "\ud800", say) as Python writes it.
    assert escaped_controls("a\ud800b") == "a\\ud800b"


def test_escaping_what_is_shown_again_changes_nothing() -> None:
    """A line that went through the helper once (a name printable() kept in the journal,
    then put in a log record) is not escaped twice: \\u2028 stays one code."""
    once = escaped_controls(os.fsdecode(b"a\xe2\x80\xa8\x1b\xff\xe2\x80\x8b.pdf"))
    assert once == "a\\u2028\\x1b\\udcff\\u200b.pdf"
    assert escaped_controls(once) == once


def test_json_escaped_keeps_each_value_exact_and_its_text_free_of_what_would_drive_a_terminal(
) -> None:
    """`status --json` for scripts: every troublesome character of a value — C1's CSI,
    DEL, U+2028, a bidi control, a zero-width space, a tag beyond U+FFFF, a byte that is
    not UTF-8 — is written as JSON's \\uNNNN, so the text is safe to show and parses back
    to the exact name."""
    name = os.fsdecode(b"INV-\xc2\x9b2J\x7f\xe2\x80\xa8\xe2\x80\xae\xe2\x80\x8b\xf3\xa0\x80\x81"
                       b"\xff.xml")
    text = json_escaped(json.dumps({"invoice_file": name}, ensure_ascii=False))
    assert text == ('{"invoice_file": "INV-\\u009b2J\\u007f\\u2028\\u202e\\u200b'
                    '\\udb40\\udc01\\udcff.xml"}')
    assert json.loads(text) == {"invoice_file": name}
    assert json_escaped('{"a": "Åsa"}') == '{"a": "Åsa"}'


def test_the_table_of_format_characters_is_built_once_however_many_threads_ask(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery workers, the loop and the page meet the first name beyond ASCII at
    the same moment in a burst: one thread builds the table, the others wait for it
    (functools.cache alone let each of them build it, ~10 ms of CPU a build)."""
    import threading
    import time

    import daemon.invisible as invisible
    callers, builds = 6, []
    real = invisible._built.__wrapped__

    def slow_build() -> tuple:
        builds.append(threading.get_ident())
        # Long enough for every other caller to arrive while the first builds; polled.
        deadline = time.monotonic() + 0.5
        while len(builds) < callers and time.monotonic() < deadline:
            time.sleep(0.005)
        return real()

    monkeypatch.setattr(invisible, "_built", __import__("functools").cache(slow_build))
    start = threading.Barrier(callers)
    shown: list[str] = []

    def ask() -> None:
        start.wait()
        shown.append(escaped_controls("Tidrapport\u200b oktober.pdf"))

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(builds) == 1
    assert shown == [shown[0]] * callers and "\\u200b" in shown[0]
