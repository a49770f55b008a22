"""The findings pre-flight reports are pinned: how the rules are run may change, what they
find may not (see pinned.py for the documents and how the pinned file is rewritten)."""

from __future__ import annotations

import json

import pytest

from daemon.einvoice.artefacts import artefacts_hash

from .pinned import PINNED, cases, findings_of

EXPECTED = json.loads(PINNED.read_text("utf-8"))


def test_pinned_findings_belong_to_the_vendored_rules() -> None:
    """Pinned with these artefacts; after a rules update the file is rewritten on purpose."""
    assert EXPECTED["artefacts_sha256"] == artefacts_hash(), (
        "the vendored rules changed: rewrite the pinned findings with "
        "`python -m tests.einvoice.pinned` and read the diff")


def test_every_pinned_document_is_still_built() -> None:
    assert sorted(cases()) == sorted(EXPECTED["cases"])


@pytest.mark.parametrize("name", sorted(cases()))
def test_rule_ids_texts_locations_and_flags_are_exactly_the_pinned_ones(name: str) -> None:
    """Every assertion (rule, text, location, fatal) of every document, and the findings
    made of them in "error" and "warn" mode, in the same order."""
    assert findings_of(cases()[name]) == EXPECTED["cases"][name]


def test_the_pinned_set_exercises_what_it_is_meant_to() -> None:
    """Warnings and errors, the EN 16931, Peppol and national rules, the XSD, a file with
    several invoices and the summary line beyond 40 findings all appear."""
    rules: set[str] = set()
    fatal: set[bool] = set()
    for case in EXPECTED["cases"].values():
        for doc in case["documents"]:
            for rule, _text, _where, is_fatal in doc["assertions"] or []:
                rules.add(rule)
                fatal.add(is_fatal)
    assert fatal == {True, False}
    assert {"UBL-XSD", "BR-CO-15", "PEPPOL-EN16931-R008", "NL-R-003", "DK-R-005"} <= rules
    assert len(EXPECTED["cases"]["batch"]["documents"]) == 3
    assert "more findings" in EXPECTED["cases"]["many-findings"]["error"]["findings"][-1][2]
