"""What every section shares (daemon/configuration/config_base.py), as an admin meets it:
here, a value from an environment variable that is no UTF-8 text."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import problem_from_environment

NOT_UTF8 = "holds bytes that are not UTF-8 text (the variable was set in another encoding) " \
    "— set it again as UTF-8"


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("OUTBOXD_DELIVERY__URL", "https://h/r\udce9ception", "[delivery] url"),
    ("OUTBOXD_OUTBOX__SIDECAR_SUFFIX", ".pi\udce8ces", "[outbox] sidecar_suffix"),
    ("OUTBOXD_SHARE__STATUS_PAGE", "\udce9tat.html", "[share] status_page"),
    ("OUTBOXD_PATHS__SENT", "/srv/envoy\udce9s", "[paths] sent"),
    ("OUTBOXD_OUTBOX__INVOICE_PATTERNS", '["*.xml", "factur\udce9*.pdf"]',
     "[outbox] invoice_patterns"),
    ("OUTBOXD_LOG__LEVEL", "\udcff", "[log] level")])
def test_an_environment_value_in_another_encoding_is_refused_naming_its_variable(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch, variable: str,
        value: str, key: str) -> None:
    """A variable set in Latin-1 ("é" as the byte 0xe9) reaches Python as a lone surrogate:
    a url failed with the codec's "'utf-8' codec can't encode character … surrogates not
    allowed", and a suffix, a page name, a path or a pattern passed, to fail where a
    journal row, a JSON log line or a header has to hold it. Refused at load, naming the
    key and the variable (found by bench/configfuzz.py)."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch, variable, value, key)
    assert line.startswith(f"{key} (from {variable}) = ") and line.endswith(NOT_UTF8)


def test_a_token_in_another_encoding_is_refused_without_showing_it(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token's line says the same, its value masked."""
    line = problem_from_environment(tmp_path, outbox, monkeypatch, "OUTBOXD_DELIVERY__TOKEN",
                                    "s3cr\udce9t", "[delivery] token")
    assert line == f"[delivery] token (from OUTBOXD_DELIVERY__TOKEN) = '********': {NOT_UTF8}"
