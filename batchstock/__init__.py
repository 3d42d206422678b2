"""batchstock: inventory operations from Excel workbooks into a DuckDB ledger.

Modules in data-flow order:

- `core`: data model shared by all stages (Problem, Cell, drafts, Operation, Catalogue).
- `config`: the workspace folder and `batchstock.toml`.
- `inbox`: finding, claiming and filing dropped files; the data-log manifest.
- `watcher`: one pass over the inbox (`process`) or a loop (`watch`).
- `pipeline`: one batch from file to ledger and result.
- `workbook`: reading xlsx cells (calamine).
- `sheets`: finding operations in the form and table layouts.
- `values`: converting cells to text, Decimal and date-time.
- `validate` and `schema`: every rule, the row rules run by pandera.
- `catalog`: products and storages import.
- `ledger` and `migrations`: the DuckDB schema, applying batches, the stock check.
- `results`: result workbooks. `forms`: form templates.
- `cli`: the `batchstock` command.
"""

__version__ = "0.1.0"
