-- The journal as outboxd at commit 426bc8b (2026-12-06) made it: its SCHEMA text from
-- daemon/journal/records.py as it was then, then what its open did to a new journal.
-- Schema 4: claimed_in (af8298e4 on), with the partial index of what another daemon sent
-- (f0ba646f to 426bc8b, before e8a1616d's index of transitions by row): the journal an
-- upgrade from the previous day's build finds, at this schema's version already.
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
-- `status` lists the last week's sent and quarantined rows of a journal that
-- keeps years: a range on (state, since), not a scan of every row.
CREATE INDEX IF NOT EXISTS bundles_state_since ON bundles(state, since);
CREATE INDEX IF NOT EXISTS bundles_bundle_id ON bundles(bundle_id);
-- The look-alikes a quarantine left in the outbox (views.quarantined_for, asked at each
-- refresh of the status page): the few quarantined rows with that reason, not the
-- reasons of every row ever quarantined. A query uses it when it holds the same terms.
CREATE INDEX IF NOT EXISTS bundles_sidecar_spelling ON bundles(state, id)
    WHERE instr(reasons, '"code": "sidecar-spelling"') > 0;
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
-- The rows another daemon sent (BY_ANOTHER), for the status page's mark: the few such
-- transitions, not the history of every row, which has no index by row. An index only:
-- the schema's version is the same, and an older outboxd reads and writes the journal
-- as before (SQLite keeps the index up to date for it too).
CREATE INDEX IF NOT EXISTS transitions_by_another ON transitions(bundle_row)
    WHERE substr(detail, 1, 22) = 'sent by another daemon';
ALTER TABLE bundles ADD COLUMN documents TEXT;
ALTER TABLE bundles ADD COLUMN wait_began TEXT;
ALTER TABLE bundles ADD COLUMN channel TEXT;
ALTER TABLE bundles ADD COLUMN claimed_in TEXT;
PRAGMA user_version = 4;
