-- The journal as outboxd at commit ec5969d (2026-11-26) made it: its SCHEMA text from
-- daemon/journal.py as it was then, then what its open did to a new journal.
-- The first journal: no sent_invoices, user_version 0 (ec5969d to 813282f).
CREATE TABLE IF NOT EXISTS bundles (
    id INTEGER PRIMARY KEY,
    bundle_id TEXT,
    invoice_file TEXT NOT NULL,
    invoice_ids TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    deadline TEXT,
    unattached_ids TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    reasons TEXT NOT NULL DEFAULT '[]',
    work_dir TEXT,
    archive_dir TEXT,
    receipt_id TEXT,
    response TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bundles_state ON bundles(state);
CREATE INDEX IF NOT EXISTS bundles_bundle_id ON bundles(bundle_id);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    bundle_row INTEGER NOT NULL REFERENCES bundles(id),
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
