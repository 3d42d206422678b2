"""Schema of downloads in the data log, applied by the migration "data log downloads".

It lives apart from `datalog` because `migrations` is imported by `ledger`, which `datalog`
imports. `data_log` keeps its columns in order and gains two at the end, so queries
written against its first version keep working.
"""

DOWNLOADS_SQL = """
CREATE TABLE download_entries (
    download_no INTEGER PRIMARY KEY,
    entry_no INTEGER NOT NULL,
    downloaded_by VARCHAR NOT NULL,
    downloaded_at TIMESTAMP NOT NULL
);

CREATE VIEW downloads AS
SELECT d.download_no AS download_id, d.entry_no AS entry_id, e.kind, e.path,
       e.requested_by, d.downloaded_by, d.downloaded_at
FROM download_entries d
JOIN data_log_entries e USING (entry_no);

CREATE OR REPLACE VIEW data_log AS
SELECT
    e.entry_no AS entry_id, e.kind, e.requested_by, e.requested_at, e.finished_at,
    e.parameters, e.path, e.size, e.sha256, e.row_count, e.ledger_position,
    e.delivery_status, e.source_batch,
    (SELECT count(*) FROM download_entries d WHERE d.entry_no = e.entry_no)
        AS download_count,
    (SELECT max(d.downloaded_at) FROM download_entries d WHERE d.entry_no = e.entry_no)
        AS last_downloaded_at
FROM data_log_entries e;
"""
