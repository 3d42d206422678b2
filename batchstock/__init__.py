"""batchstock: inventory operations from Excel workbooks into a DuckDB ledger.

Modules in data-flow order:

- `core`: data model shared by all stages (Problem, Cell, drafts, Operation, Catalogue).
- `config`: the workspace folder and `batchstock.toml`. `access`: rights per user.
- `inbox`: finding, claiming and filing dropped files; the data-log manifest.
  `journal`: each claimed file's recorded state, for finishing after a crash.
  `snapshot`: the accountants' read-only copy of the ledger.
- `watcher`: one pass over the inbox (`process`) or a loop (`watch`).
- `pipeline`: one batch from file to ledger and result.
- `guard`: checks of a file before any parser reads it (type, zip bomb, XML entities,
  limits). `sheetfacts`: what a worksheet's XML holds beyond its values (hidden rows,
  merges, formulas without values, error cells).
- `workbook`: reading xlsx cells (calamine).
- `sheets`: finding operations in the form and table layouts.
- `values`: converting cells to text, Decimal and date-time.
- `validate` and `schema`: every rule, the row rules run by pandera.
- `catalog`: products and storages import.
- `edits`: edits and cancellations of stored operations. `changelog`: their field-level
  change-log rows. `history`: stored operations read back as forms and history.
- `ledger` and `migrations`: the DuckDB schema, applying batches, the stock check.
- `results`: result workbooks. `forms`: form templates.
- `valuation`: moving-average costs of movements and stock. `balances`: movements of a
  period per storage and product, and their independent check.
- `reports` (shared layout), `reports_stock`, `reports_movements`, `reports_sales`: report
  workbooks in `outbox/reports/`. `reconcile`: the whole-ledger checks.
- `exports` (the operations list as of a ledger position), `export_workbook` (streamed
  xlsx), `export_requests` (the Export sheet dropped in the inbox), `mail` (the link by
  email or `.eml`), `datalog` and `datalog_sql` (listing entries, downloads),
  `credentials` (signing key, download links, password hashes), `web` (`serve`).
- `cli`: the `batchstock` command. `cli_operations`: `history` and `operation show`.
  `cli_reports`: `report` and `reconcile`. `cli_exports`: `export`, `log`, `serve`, `user`.
"""

__version__ = "0.1.0"
