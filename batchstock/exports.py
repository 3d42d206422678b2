"""Export the operations list: one row per line, with its operation's header fields.

An export sits after the ledger, beside reports. It reads the ledger as of one ledger
position, the last change-log number it reflects. Each operation's version and status at
that position come from `change_log_entries` and the version tables, so re-creating an
export from its data-log entry gives the same rows after later operations, edits and
cancellations. `export_workbook` streams the rows to disk,
`mail` delivers the link, and `inbox.register_file` records the file in the data log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from batchstock import ledger
from batchstock.access import Rights, rights_for
from batchstock.config import Workspace
from batchstock.core import OPERATION_TYPES
from batchstock.datalog import get_entry
from batchstock.export_workbook import write_export_workbook
from batchstock.inbox import file_sha256, now_in_zone, register_file, unique_path

log = logging.getLogger(__name__)

EXPORT_KIND = "export"
PAGE_ROWS = 5_000

Progress = Callable[[int, int], None]


class ExportRequestError(Exception):
    """An export that cannot run as requested. `code` is a stable problem code and
    `field` the request field at fault (`from`, `to`, `type`, `storage`) or None."""

    def __init__(self, code: str, message: str, field: str | None = None,
                 value: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.value = value


@dataclass(frozen=True)
class ExportRequest:
    """The period, filters and requester of an export of the operations list.

    `date_from` and `date_to` bound the operations' business dates, both days included.
    Empty `types` or `storages` mean every type or storage the requester may see. An
    operation matches a storage when stock leaves or enters it.
    """

    date_from: dt.date
    date_to: dt.date
    requested_by: str
    types: tuple[str, ...] = ()
    storages: tuple[str, ...] = ()

    def parameters(self) -> dict[str, Any]:
        return {
            "export": "operations",
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "types": list(self.types),
            "storages": list(self.storages),
        }


@dataclass
class ExportScope:
    """A request resolved against the catalogue and the requester's rights.

    `types` and `storage_ids` are None when unrestricted. `visible_storages` names the
    storages the requester is limited to, or is None for a requester who may see every one.
    """

    request: ExportRequest
    types: tuple[str, ...] | None
    storage_ids: tuple[int, ...] | None
    cost_columns: bool
    visible_storages: tuple[str, ...] | None = None


@dataclass
class ExportFile:
    """An export written to disk and registered in the data log."""

    entry_id: int
    path: Path
    row_count: int
    ledger_position: int
    sha256: str
    scope: ExportScope


def _named_types(request: ExportRequest, rights: Rights) -> tuple[str, ...] | None:
    chosen = []
    for name in request.types:
        folded = name.strip().lower()
        if folded not in OPERATION_TYPES:
            raise ExportRequestError(
                "unknown_type", f"operation type {name!r} is unknown; use arrival, sale, "
                "relocation or write-off, or leave the type empty for all", "type", name)
        if not rights.may_create(folded):
            raise ExportRequestError(
                "type_denied", f'user "{rights.user}" may not see operations of type '
                f"{folded} (right: types in [users.{rights.user}])", "type", name)
        chosen.append(folded)
    if chosen:
        return tuple(dict.fromkeys(chosen))
    return None if rights.types is None else tuple(sorted(rights.types))


def _named_storages(con: duckdb.DuckDBPyConnection, request: ExportRequest,
                    rights: Rights) -> tuple[tuple[int, ...] | None, tuple[str, ...] | None]:
    storages = con.execute("SELECT storage_id, name FROM storages ORDER BY name").fetchall()
    by_name = {name.casefold(): (storage_id, name) for storage_id, name in storages}
    visible = [(i, n) for i, n in storages if rights.may_use_storage(n)]
    chosen = []
    for name in request.storages:
        found = by_name.get(name.strip().casefold())
        if found is None:
            raise ExportRequestError(
                "unknown_storage", f"storage {name!r} is unknown; use one of "
                f"{', '.join(n for _, n in storages)}, or leave it empty for all",
                "storage", name)
        if not rights.may_use_storage(found[1]):
            raise ExportRequestError(
                "storage_denied", f'user "{rights.user}" may not see storage {found[1]!r} '
                f"(right: storages in [users.{rights.user}])", "storage", name)
        chosen.append(found[0])
    restricted = rights.storages is not None
    visible_names = tuple(n for _, n in visible) if restricted else None
    if chosen:
        return tuple(dict.fromkeys(chosen)), visible_names
    return (tuple(i for i, _ in visible) if restricted else None), visible_names


def resolve_scope(con: duckdb.DuckDBPyConnection, request: ExportRequest,
                  rights: Rights) -> ExportScope:
    """Check a request against the requester's rights and the catalogue.

    Raises ExportRequestError for a requester without the export right, an unknown or
    forbidden type or storage, or a period whose start is after its end.
    """
    user = request.requested_by
    if not user.strip() or user in (".", "..") or any(c in user for c in "/\\\0"):
        raise ExportRequestError(
            "invalid_user", f"{user!r} is not a user name; a user name is also a folder "
            "name in the outbox, so it cannot be empty or contain / or \\")
    if not rights.has("export"):
        raise ExportRequestError(
            "export_denied", f'user "{rights.user}" may not export (right: export in '
            f"[users.{rights.user}]); ask an administrator, or someone who may")
    if request.date_from > request.date_to:
        raise ExportRequestError(
            "invalid_period", f"the period starts on {request.date_from} after it ends on "
            f"{request.date_to}; swap the two dates", "from", request.date_from.isoformat())
    types = _named_types(request, rights)
    storage_ids, visible = _named_storages(con, request, rights)
    return ExportScope(request, types, storage_ids, rights.has("see_costs"), visible)


# The operations an export covers, each with its version and status as of a ledger
# position: the version is the newest one logged up to the position that the version
# tables hold, and the status follows the last created, edited or cancelled row.
# `lines_before` numbers the operations' lines in export order, so that pages can be cut
# by line count without sorting every line.
_OPERATIONS_SQL = """
CREATE OR REPLACE TEMP TABLE export_scope AS
WITH known AS (
    SELECT h.operation_no,
           max(c.version) FILTER (WHERE v.operation_no IS NOT NULL) AS version,
           arg_max(c.action, c.change_no)
               FILTER (WHERE c.action IN ('created', 'edited', 'cancelled')) AS last_action
    FROM change_log_entries c
    JOIN operation_heads h ON h.operation_id = c.entity_id
    LEFT JOIN operation_versions v ON v.operation_no = h.operation_no AND v.version = c.version
    WHERE c.entity = 'operation' AND c.change_no <= $position
    GROUP BY h.operation_no
),
chosen AS (
    SELECT k.operation_no, k.version,
           CASE WHEN k.last_action = 'cancelled' THEN 'cancelled' ELSE 'active' END AS status,
           h.operation_id, h.type, v.occurred_at, v.storage_id, v.to_storage_id,
           v.counterparty, v.document_no,
           (SELECT count(*) FROM line_versions l
            WHERE l.operation_no = k.operation_no AND l.version = k.version) AS line_count
    FROM known k
    JOIN operation_heads h ON h.operation_no = k.operation_no
    JOIN operation_versions v ON v.operation_no = k.operation_no AND v.version = k.version
    WHERE v.occurred_at >= $start AND v.occurred_at < $end {filters}
)
SELECT *,
       sum(line_count) OVER (ORDER BY occurred_at, operation_no
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
           - line_count AS lines_before
FROM chosen
"""

# One page of lines. Product names come from the first later name change's old value,
# because catalogue imports log every changed field with its old and new value.
_PAGE_SQL = """
WITH renamed AS (
    SELECT entity_id AS sku, arg_min(old_value, change_no) AS name
    FROM change_log_entries
    WHERE entity = 'product' AND field = 'name' AND change_no > $position
    GROUP BY entity_id
)
SELECT e.operation_id, l.line_no, e.type, e.status, e.version, e.occurred_at,
       s.name AS storage, t.name AS to_storage, e.counterparty, e.document_no,
       p.sku, coalesce(r.name, p.name) AS product, l.quantity, l.unit, l.price, l.discount,
       l.subtotal
FROM export_scope e
JOIN line_versions l ON l.operation_no = e.operation_no AND l.version = e.version
JOIN storages s ON s.storage_id = e.storage_id
LEFT JOIN storages t ON t.storage_id = e.to_storage_id
JOIN products p ON p.product_id = l.product_id
LEFT JOIN renamed r ON r.sku = p.sku
WHERE e.lines_before >= $first AND e.lines_before < $first + $page
ORDER BY e.lines_before, l.line_no
"""


def select_operations(con: duckdb.DuckDBPyConnection, scope: ExportScope,
                      position: int) -> int:
    """Store the operations of an export as of `position` in the connection's temporary
    table `export_scope`, and return their number of lines."""
    request = scope.request
    parameters: dict[str, Any] = {
        "position": position,
        "start": dt.datetime.combine(request.date_from, dt.time()),
        "end": dt.datetime.combine(request.date_to + dt.timedelta(days=1), dt.time()),
    }
    filters = ""
    if scope.types is not None:
        filters += " AND list_contains($types, h.type)"
        parameters["types"] = list(scope.types)
    if scope.storage_ids is not None:
        filters += (" AND (list_contains($storages, v.storage_id)"
                    " OR list_contains($storages, v.to_storage_id))")
        parameters["storages"] = list(scope.storage_ids)
    # DuckDB draws a progress bar on stdout for queries past two seconds, and the CLI
    # draws its own.
    con.execute("SET enable_progress_bar = false")
    con.execute(_OPERATIONS_SQL.format(filters=filters), parameters)
    return con.execute("SELECT coalesce(sum(line_count), 0) FROM export_scope").fetchall()[0][0]


def iterate_rows(con: duckdb.DuckDBPyConnection, position: int, total: int,
                 page_rows: int | None = None) -> Iterator[list[tuple]]:
    """Yield the lines of the operations in `export_scope` in pages, ordered by date,
    operation and line, each row holding the values of `export_workbook.COLUMNS`.

    A page contains the operations whose first line falls in it, so it may run past
    `page_rows` by up to one operation's lines. Only one page is ever in memory.
    """
    page_rows = page_rows or PAGE_ROWS
    for first in range(0, total, page_rows):
        rows = con.execute(
            _PAGE_SQL, {"position": position, "first": first, "page": page_rows}
        ).fetchall()
        if rows:
            yield [_shape(row) for row in rows]


def _shape(row: tuple) -> tuple:
    """Turn a query row into the values of `export_workbook.COLUMNS`."""
    (operation_id, line_no, op_type, status, version, occurred_at, storage, to_storage,
     counterparty, document_no, sku, product, quantity, unit, price, discount,
     subtotal) = row
    is_sale, is_arrival = op_type == "sale", op_type == "arrival"
    return (
        operation_id, line_no, op_type, status, version, occurred_at, storage, to_storage,
        counterparty, document_no, sku, product, quantity, unit,
        price if is_sale else None, price if is_arrival else None,
        discount if is_sale or is_arrival else None,
        subtotal if is_sale else None, subtotal if is_arrival else None,
    )


def export_file_name(request: ExportRequest) -> str:
    return f"operations-{request.date_from.isoformat()}-to-{request.date_to.isoformat()}.xlsx"


def export_operations(workspace: Workspace, con: duckdb.DuckDBPyConnection,
                      request: ExportRequest, progress: Progress | None = None,
                      as_of: int | None = None, source_batch: int | None = None,
                      recreated_from: int | None = None) -> ExportFile:
    """Write an export of the operations list to the requester's outbox and register it.

    The export reflects the current ledger position, or `as_of` when given. Raises
    ExportRequestError when the request cannot run (see `resolve_scope`).
    """
    rights = rights_for(workspace.settings.users, request.requested_by)
    scope = resolve_scope(con, request, rights)
    position = ledger.ledger_position(con) if as_of is None else as_of
    requested_at = now_in_zone(workspace)
    path = unique_path(workspace.user_outbox(request.requested_by), export_file_name(request))
    summary = _summary(scope, requested_at, position, recreated_from)
    scratch = workspace.state / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        total = select_operations(con, scope, position)
        row_count = write_export_workbook(
            path, iterate_rows(con, position, total), summary, scope.cost_columns, total,
            progress, scratch,
        )
    finally:
        con.execute("DROP TABLE IF EXISTS export_scope")
    parameters = request.parameters() | {"cost_columns": scope.cost_columns}
    if recreated_from is not None:
        parameters["recreated_from"] = recreated_from
    entry_id = register_file(
        workspace, con, kind=EXPORT_KIND, requested_by=request.requested_by,
        requested_at=requested_at, path=path, parameters=parameters, row_count=row_count,
        delivery_status="pending", ledger_position=position, source_batch=source_batch,
    )
    log.info("export %d for %s: %d rows as of ledger position %d in %s", entry_id,
             request.requested_by, row_count, position, path)
    return ExportFile(entry_id, path, row_count, position, file_sha256(path), scope)


def _summary(scope: ExportScope, requested_at: dt.datetime, position: int,
             recreated_from: int | None) -> list[tuple[str, Any]]:
    request = scope.request
    fields: list[tuple[str, Any]] = [
        ("Export", "Operations list, one row per line"),
        ("Requested by", request.requested_by),
        ("Requested at", requested_at),
        ("From", request.date_from),
        ("To", request.date_to),
        ("Types", ", ".join(request.types) or "all"),
        ("Storages", ", ".join(request.storages) or "all"),
    ]
    if scope.visible_storages is not None:
        fields.append(("Limited to storages", ", ".join(scope.visible_storages) or "none"))
    if scope.types is not None and not request.types:
        fields.append(("Limited to types", ", ".join(scope.types) or "none"))
    fields.append(("Cost columns", "included" if scope.cost_columns else
                   "left out: the requester may not see cost prices"))
    fields.append(("Ledger position", position))
    if recreated_from is not None:
        fields.append(("Re-created from", f"data log entry {recreated_from}"))
    return fields


def request_from_entry(con: duckdb.DuckDBPyConnection, entry_id: int,
                       requested_by: str | None = None) -> tuple[ExportRequest, int]:
    """Return the request and ledger position of an earlier export in the data log.

    Raises ExportRequestError when the entry is missing or is not an operations export.
    NOTE: the re-created export applies the requester's rights as they are now, so it
    shows the same rows only while those rights are unchanged.
    """
    entry = get_entry(con, entry_id)
    if entry is None or entry.kind != EXPORT_KIND or entry.ledger_position is None:
        raise ExportRequestError(
            "unknown_export", f"data log entry {entry_id} is not an export of the operations "
            "list; run `batchstock log --kind export` to list exports")
    parameters = entry.parameters
    request = ExportRequest(
        dt.date.fromisoformat(parameters["from"]), dt.date.fromisoformat(parameters["to"]),
        requested_by or entry.requested_by, tuple(parameters.get("types", ())),
        tuple(parameters.get("storages", ())),
    )
    return request, entry.ledger_position

