-- The journal as outboxd at commit d61d7aa (2026-12-01) made it: its SCHEMA text from
-- daemon/journal.py as it was then, then what its open did to a new journal.
-- ubl-embedded's documents column added at open without a version of its own (d61d7aa to 49e7e44).
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
-- Invoice ids the receiver has accepted, so "already sent in another bundle"
-- is an index lookup, not a scan of every sent row.
CREATE TABLE IF NOT EXISTS sent_invoices (
    invoice_id TEXT NOT NULL,
    bundle_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_invoices_id ON sent_invoices(invoice_id);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    bundle_row INTEGER NOT NULL REFERENCES bundles(id),
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
ALTER TABLE bundles ADD COLUMN documents TEXT;
PRAGMA user_version = 1;
