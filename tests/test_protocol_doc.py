"""docs/protocol.md's worked bundle-id example is what outboxd's own code computes."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from daemon.manifest import canonical_input, compute_bundle_id

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def test_worked_example_canonical_json_and_hash_match_the_code() -> None:
    """The canonical JSON shown is exactly canonical_input() of its rows, and the id shown
    is its SHA-256 — as the manifest example's bundle_id says."""
    text = DOC.read_text(encoding="utf-8")
    canonical = re.search(r'^\{"attachments":.*\}$', text, re.M)
    assert canonical, "no canonical JSON line in docs/protocol.md"
    shown_id = re.search(r"^([0-9a-f]{64})$", text, re.M)
    assert shown_id
    data = json.loads(canonical.group(0))
    assert canonical_input(data["invoice_sha256"], data["attachments"]) == canonical.group(0)
    assert compute_bundle_id(data["invoice_sha256"], data["attachments"]) == \
        shown_id.group(1) == hashlib.sha256(canonical.group(0).encode()).hexdigest()
    assert f'"bundle_id": "{shown_id.group(1)}"' in text
    assert hashlib.sha256(b"<Invoice>INV-1001</Invoice>\n").hexdigest() == \
        data["invoice_sha256"]
