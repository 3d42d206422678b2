"""Named, ordered schema migrations of the DuckDB ledger.

Each migration runs once, in order, inside a transaction, and is recorded in
`schema_migrations`. Tables ending in `_entries` and the other base tables are internal
and may change between versions; the views (`stock_balance`, `movements`, `operations`,
`operation_lines`, `change_log`, `data_log`, `batches_view`, `stock_value`) are the
documented contract for accountants and change only through a new migration.

All timestamps are naive and in the ledger's configured time zone.
Quantities in write-off units are DECIMAL(38,6); quantities as entered, prices, costs and
amounts are DECIMAL(18,4); `equals` is DECIMAL(18,3).
"""

from __future__ import annotations

from batchstock.datalog_sql import DOWNLOADS_SQL
from batchstock.valuation import VALUATION_SQL

CORE_TABLES = """
CREATE TABLE storages (
    storage_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    type VARCHAR NOT NULL CHECK (type IN ('sale', 'consumables')),
    comment VARCHAR
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    sku VARCHAR NOT NULL UNIQUE,
    name VARCHAR NOT NULL,
    barcode VARCHAR,
    category VARCHAR,
    sale_unit VARCHAR NOT NULL,
    base_unit VARCHAR NOT NULL,
    equals DECIMAL(18,3) NOT NULL CHECK (equals > 0),
    sale_price DECIMAL(18,4),
    cost_price DECIMAL(18,4),
    critical_stock DECIMAL(18,3),
    desired_stock DECIMAL(18,3)
);
CREATE TABLE batches (
    batch_id INTEGER PRIMARY KEY,
    file_name VARCHAR NOT NULL,
    submitter VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    arrived_at TIMESTAMP,
    processed_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    problem_count INTEGER NOT NULL,
    result_path VARCHAR
);
CREATE TABLE operation_heads (
    operation_no INTEGER PRIMARY KEY,
    operation_id VARCHAR NOT NULL UNIQUE,
    type VARCHAR NOT NULL CHECK (type IN ('arrival', 'sale', 'relocation', 'write-off')),
    status VARCHAR NOT NULL CHECK (status IN ('active', 'cancelled')),
    version INTEGER NOT NULL,
    batch_id INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL
);
CREATE TABLE operation_versions (
    operation_no INTEGER NOT NULL,
    version INTEGER NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    storage_id INTEGER NOT NULL,
    to_storage_id INTEGER,
    counterparty VARCHAR,
    staff_member VARCHAR,
    reason VARCHAR,
    document_no VARCHAR,
    comment VARCHAR,
    batch_id INTEGER NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    recorded_by VARCHAR NOT NULL,
    source_sheet VARCHAR,
    PRIMARY KEY (operation_no, version)
);
CREATE TABLE line_versions (
    operation_no INTEGER NOT NULL,
    version INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    quantity DECIMAL(18,4) NOT NULL,
    unit VARCHAR NOT NULL,
    base_quantity DECIMAL(38,6) NOT NULL,
    price DECIMAL(18,4),
    discount DECIMAL(18,4) NOT NULL,
    subtotal DECIMAL(18,4) NOT NULL,
    comment VARCHAR,
    source_row INTEGER,
    PRIMARY KEY (operation_no, version, line_no)
);
CREATE TABLE movement_entries (
    movement_no BIGINT PRIMARY KEY,
    operation_no INTEGER NOT NULL,
    version INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    storage_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    base_quantity DECIMAL(38,6) NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    batch_id INTEGER NOT NULL,
    is_reversal BOOLEAN NOT NULL
);
CREATE TABLE change_log_entries (
    change_no BIGINT PRIMARY KEY,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    version INTEGER,
    action VARCHAR NOT NULL,
    changed_by VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    batch_id INTEGER,
    file_name VARCHAR,
    field VARCHAR,
    old_value VARCHAR,
    new_value VARCHAR
);
CREATE TABLE data_log_entries (
    entry_no INTEGER PRIMARY KEY,
    kind VARCHAR NOT NULL,
    requested_by VARCHAR NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    parameters VARCHAR,
    path VARCHAR NOT NULL,
    size BIGINT,
    sha256 VARCHAR,
    row_count BIGINT,
    ledger_position BIGINT,
    delivery_status VARCHAR,
    source_batch INTEGER
);
INSERT INTO storages VALUES
    (1, 'Products', 'sale', 'Retail shelf'),
    (2, 'Consumables', 'consumables', 'Used in services');
"""

# Exact quantity in sale units. DuckDB divides DECIMALs as DOUBLE, so this divides scaled
# integers instead and keeps 6 decimal places, truncated toward zero.
SALE_UNIT_MACRO = """
CREATE MACRO sale_units(base_quantity, equals) AS
    CAST(
        CAST(base_quantity * 1000000 AS HUGEINT) * 1000 // CAST(equals * 1000 AS HUGEINT)
        AS DECIMAL(38,0)
    ) * CAST(0.000001 AS DECIMAL(7,6));
"""

VIEWS = """
CREATE VIEW movements AS
SELECT
    m.movement_no, h.operation_id, h.type AS operation_type, m.kind,
    s.name AS storage, p.sku, p.name AS product,
    m.base_quantity, p.base_unit,
    sale_units(m.base_quantity, p.equals) AS quantity, p.sale_unit,
    m.occurred_at, m.recorded_at, m.is_reversal, m.version AS operation_version,
    m.batch_id, m.line_no
FROM movement_entries m
JOIN operation_heads h USING (operation_no)
JOIN storages s USING (storage_id)
JOIN products p USING (product_id);

CREATE VIEW stock_balance AS
SELECT
    s.name AS storage, p.sku, p.name AS product,
    sale_units(SUM(m.base_quantity), p.equals) AS quantity,
    SUM(m.base_quantity) AS base_quantity,
    p.sale_unit, p.base_unit
FROM movement_entries m
JOIN storages s USING (storage_id)
JOIN products p USING (product_id)
GROUP BY s.name, p.sku, p.name, p.equals, p.sale_unit, p.base_unit;

CREATE MACRO stock_balance_at(business_time, known_time) AS TABLE
SELECT
    s.name AS storage, p.sku, p.name AS product,
    sale_units(SUM(m.base_quantity), p.equals) AS quantity,
    SUM(m.base_quantity) AS base_quantity,
    p.sale_unit, p.base_unit
FROM movement_entries m
JOIN storages s USING (storage_id)
JOIN products p USING (product_id)
WHERE m.occurred_at <= CAST(business_time AS TIMESTAMP)
  AND m.recorded_at <= CAST(known_time AS TIMESTAMP)
GROUP BY s.name, p.sku, p.name, p.equals, p.sale_unit, p.base_unit;

CREATE VIEW operations AS
SELECT
    h.operation_id, h.type, h.status, h.version,
    v.occurred_at, s.name AS storage, t.name AS to_storage,
    CASE WHEN h.type = 'arrival' THEN v.counterparty END AS supplier,
    CASE WHEN h.type = 'sale' THEN v.counterparty END AS client,
    v.staff_member, v.reason, v.document_no, v.comment,
    (SELECT count(*) FROM line_versions l
        WHERE l.operation_no = h.operation_no AND l.version = h.version) AS line_count,
    (SELECT sum(l.subtotal) FROM line_versions l
        WHERE l.operation_no = h.operation_no AND l.version = h.version) AS total_amount,
    h.batch_id AS created_in_batch, b.file_name AS created_from_file,
    h.created_by, h.created_at, v.recorded_at AS changed_at, v.recorded_by AS changed_by
FROM operation_heads h
JOIN operation_versions v ON v.operation_no = h.operation_no AND v.version = h.version
JOIN storages s ON s.storage_id = v.storage_id
LEFT JOIN storages t ON t.storage_id = v.to_storage_id
JOIN batches b ON b.batch_id = h.batch_id;

CREATE VIEW operation_lines AS
SELECT
    h.operation_id, h.type AS operation_type, h.status, l.line_no,
    p.sku, p.name AS product, l.quantity, l.unit, l.base_quantity, p.base_unit,
    l.price, l.discount, l.subtotal, l.comment
FROM operation_heads h
JOIN line_versions l ON l.operation_no = h.operation_no AND l.version = h.version
JOIN products p USING (product_id);

CREATE VIEW change_log AS
SELECT
    change_no, entity, entity_id, version, action, changed_by, changed_at,
    batch_id, file_name, field, old_value, new_value
FROM change_log_entries;

CREATE VIEW data_log AS
SELECT
    entry_no AS entry_id, kind, requested_by, requested_at, finished_at, parameters,
    path, size, sha256, row_count, ledger_position, delivery_status, source_batch
FROM data_log_entries;

CREATE VIEW batches_view AS
SELECT batch_id, file_name, submitter, sha256, kind, arrived_at, processed_at, status,
       problem_count, result_path
FROM batches;
"""

MIGRATIONS: list[tuple[str, str]] = [
    ("core tables", CORE_TABLES),
    ("sale unit macro", SALE_UNIT_MACRO),
    ("accountant views", VIEWS),
    ("data log downloads", DOWNLOADS_SQL),
    ("moving-average valuation", VALUATION_SQL),
]
