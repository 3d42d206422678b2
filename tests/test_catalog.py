"""Catalogue import: by command and from the inbox, re-import by SKU and name, the change
log, and cell-level problems of bad catalogue rows."""

from __future__ import annotations

from decimal import Decimal

from click.testing import CliRunner

from batchstock.cli import main
from ingest_workbooks import (
    PRODUCT_HEADER,
    PRODUCTS,
    STORAGES,
    catalogue_sheets,
    form_rows,
    located,
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    submit,
    write_rows,
)


def import_catalogue(workspace, path, user=None):
    arguments = ["catalog", "import", "--workspace", str(workspace.root), str(path)]
    if user:
        arguments += ["--user", user]
    return CliRunner().invoke(main, arguments)


def product(workspace, sku) -> dict:
    rows = query(workspace, "SELECT sku, name, barcode, category, sale_unit, base_unit, equals, "
                            "sale_price, cost_price FROM products WHERE sku = ?", [sku])
    if not rows:
        return {}
    keys = ("sku", "name", "barcode", "category", "sale_unit", "base_unit", "equals",
            "sale_price", "cost_price")
    return dict(zip(keys, rows[0]))


def storages(workspace) -> dict[str, tuple]:
    rows = query(workspace, "SELECT name, type, comment FROM storages")
    return {name: (kind, comment) for name, kind, comment in rows}


def changed_products(products: list[list], sku: str, **fields) -> list[list]:
    """Return a copy of `products` with some fields of one product replaced."""
    result = [list(row) for row in products]
    for row in result:
        if row[0] == sku:
            for name, value in fields.items():
                row[PRODUCT_HEADER.index(name)] = value
    return result


# Import by command


def test_import_command_loads_products_and_storages(workspace, tmp_path):
    path = write_rows(tmp_path / "catalogue.xlsx", catalogue_sheets())

    outcome = import_catalogue(workspace, path)

    assert outcome.exit_code == 0, outcome.output
    assert query(workspace, "SELECT count(*) FROM products") == [(len(PRODUCTS),)]
    assert product(workspace, "000731")["name"] == "Salon gift card sleeve"
    assert product(workspace, "SH-ARG-250")["cost_price"] == Decimal("9.45")
    assert product(workspace, "SH-ARG-250")["equals"] == 250
    assert storages(workspace)["Branch 2 shelf"] == ("sale", "Retail shelf at the second branch")


def test_import_command_file_without_catalogue_sheets(workspace, tmp_path):
    path = write_rows(tmp_path / "x.xlsx", {"Products": [PRODUCT_HEADER, *PRODUCTS]})

    outcome = import_catalogue(workspace, path)

    assert outcome.exit_code == 1
    assert query(workspace, "SELECT count(*) FROM products") == [(0,)]


def test_catalogue_dropped_in_inbox_applied(workspace, tmp_path):
    sheets = catalogue_sheets()
    path = write_rows(tmp_path / "catalogue.xlsx",
                      {"PRODUCTS": sheets["Products"], "storages": sheets["Storages"]})

    filed = submit(workspace, path, user="anna")

    assert filed.result.status == "applied", filed.result.problems
    assert query(workspace, "SELECT count(*) FROM products") == [(len(PRODUCTS),)]
    assert (workspace.archive / "anna" / "catalogue.xlsx").exists()
    assert filed.result_path == workspace.outbox / "anna" / "catalogue.result.xlsx"


def test_imported_product_usable_in_operations(workspace, tmp_path):
    import_catalogue(workspace, write_rows(tmp_path / "catalogue.xlsx", catalogue_sheets()))
    rows = form_rows("Arrival", "Branch 2 shelf", ["SKU", "Quantity"], [["000731", 4]])

    filed = submit(workspace, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert filed.result.status == "applied", filed.result.problems


# Re-import


def test_reimport_updates_product_by_sku(stocked, tmp_path):
    products = changed_products(PRODUCTS, "COMB-CARB", **{"Name": "Carbon comb black",
                                                           "Sale price": 7})
    path = write_rows(tmp_path / "catalogue-2.xlsx", catalogue_sheets(products))

    outcome = import_catalogue(stocked, path, user="boss")

    assert outcome.exit_code == 0, outcome.output
    assert query(stocked, "SELECT count(*) FROM products") == [(len(PRODUCTS),)]
    assert product(stocked, "COMB-CARB")["name"] == "Carbon comb black"
    assert product(stocked, "COMB-CARB")["sale_price"] == 7


def test_reimport_logs_each_changed_field(stocked, tmp_path):
    products = changed_products(PRODUCTS, "COMB-CARB", **{"Name": "Carbon comb black",
                                                           "Sale price": 7})
    path = write_rows(tmp_path / "catalogue-2.xlsx", catalogue_sheets(products))

    import_catalogue(stocked, path, user="boss")

    rows = query(stocked, "SELECT entity_id, action, changed_by, file_name, field, old_value, "
                          "new_value FROM change_log WHERE changed_by = 'boss' ORDER BY field")
    assert rows == [
        ("COMB-CARB", "edited", "boss", "catalogue-2.xlsx", "name", "Carbon comb",
         "Carbon comb black"),
        ("COMB-CARB", "edited", "boss", "catalogue-2.xlsx", "sale_price", "6.5000", "7"),
    ]
    assert query(stocked, "SELECT count(*) FROM change_log WHERE changed_by = 'boss' "
                          "AND changed_at IS NULL") == [(0,)]


def test_reimport_adds_product_and_storage(stocked, tmp_path):
    new = ["NEW-1", "Scissors 6 inch", None, "Tools", "pcs", None, None, 45, 20, None, None]
    path = write_rows(tmp_path / "catalogue-2.xlsx",
                      catalogue_sheets([*PRODUCTS, new],
                                       [*STORAGES, ["Back office", "consumables", None]]))

    filed = submit(stocked, path, user="boss")

    assert filed.result.status == "applied", filed.result.problems
    assert product(stocked, "NEW-1")["base_unit"] == "pcs"
    assert product(stocked, "NEW-1")["equals"] == 1
    assert storages(stocked)["Back office"] == ("consumables", None)
    created = query(stocked, "SELECT DISTINCT entity, entity_id, action, file_name "
                             "FROM change_log WHERE changed_by = 'boss' ORDER BY entity")
    assert created == [("product", "NEW-1", "created", "inbox/boss/catalogue-2.xlsx"),
                       ("storage", "Back office", "created", "inbox/boss/catalogue-2.xlsx")]


def test_reimport_updates_storage_by_name(stocked, tmp_path):
    changed = [["products", "sale", "Front desk"], *STORAGES[1:]]
    path = write_rows(tmp_path / "catalogue-2.xlsx", catalogue_sheets(PRODUCTS, changed))

    assert import_catalogue(stocked, path).exit_code == 0

    assert storages(stocked)["Products"] == ("sale", "Front desk")
    assert len(storages(stocked)) == 3


def test_reimport_unchanged_logs_nothing(stocked, tmp_path):
    before = query(stocked, "SELECT count(*) FROM change_log")
    path = write_rows(tmp_path / "catalogue-again.xlsx", catalogue_sheets())

    filed = submit(stocked, path, user="boss")

    assert filed.result.status == "applied", filed.result.problems
    assert query(stocked, "SELECT count(*) FROM change_log") == before


def test_reimport_without_column_keeps_field(stocked, tmp_path):
    sheets = {
        "Products": [["SKU", "Name", "Sale unit", "Sale price"],
                     ["COMB-CARB", "Carbon comb", "pcs", 7.5]],
        "Storages": [["Name", "Type"], ["Products", "sale"]],
    }

    filed = submit(stocked, write_rows(tmp_path / "prices.xlsx", sheets))

    assert filed.result.status == "applied", filed.result.problems
    comb = product(stocked, "COMB-CARB")
    assert comb["sale_price"] == Decimal("7.5")
    assert comb["barcode"] == "4601234500208"
    assert comb["cost_price"] == Decimal("2.1")
    assert comb["category"] == "Tools"
    assert storages(stocked)["Products"] == ("sale", "Front desk retail shelf")


def test_reimport_empty_cell_clears_field(stocked, tmp_path):
    products = changed_products(PRODUCTS, "COMB-CARB", Barcode=None)

    filed = submit(stocked, write_rows(tmp_path / "c.xlsx", catalogue_sheets(products)))

    assert filed.result.status == "applied", filed.result.problems
    assert product(stocked, "COMB-CARB")["barcode"] is None


def test_catalogue_keeps_leading_zeros_and_text_barcodes(stocked):
    assert product(stocked, "000731")["barcode"] == "4601234507310"


# Bad catalogue rows


def rejected_catalogue(workspace, tmp_path, products=None, storages_rows=None):
    path = write_rows(tmp_path / "bad-catalogue.xlsx", catalogue_sheets(products, storages_rows))
    filed = submit(workspace, path)
    assert filed.result.status == "rejected"
    return located(filed.result.problems)


def test_bad_product_rows_at_cells(stocked, tmp_path):
    products = [list(row) for row in PRODUCTS]
    products[1][0] = None  # row 3: no SKU
    products[2][6] = "many"  # row 4: equals not a number
    products[3][7] = -3  # row 5: negative sale price
    products[4][0] = "SH-ARG-250"  # row 6: SKU again
    products[5][4] = None  # row 7: no sale unit
    products[6][8] = 0.123456  # row 8: too many decimals
    products[7][6] = 0  # row 9: equals zero

    problems = rejected_catalogue(stocked, tmp_path, products)

    assert problems == {
        ("missing_value", "Products", "A3"), ("not_a_number", "Products", "G4"),
        ("negative_value", "Products", "H5"), ("duplicate_sku", "Products", "A6"),
        ("missing_value", "Products", "E7"), ("too_many_decimals", "Products", "I8"),
        ("not_positive", "Products", "G9"),
    }


def test_bad_storage_rows_at_cells(stocked, tmp_path):
    rows = [*STORAGES, ["Attic", "storage", None], [None, "sale", None]]

    problems = rejected_catalogue(stocked, tmp_path, storages_rows=rows)

    assert problems == {("unknown_storage_type", "Storages", "B5"),
                        ("missing_value", "Storages", "A6")}


def test_missing_required_column(stocked, tmp_path):
    sheets = {"Products": [["SKU", "Name"], ["X-1", "Thing"]],
              "Storages": [["Name"], ["Attic"]]}

    filed = submit(stocked, write_rows(tmp_path / "c.xlsx", sheets))

    assert located(filed.result.problems) == {("missing_column", "Products", "A1"),
                                              ("missing_column", "Storages", "A1")}


def test_bad_catalogue_changes_nothing(stocked, tmp_path):
    before = query(stocked, "SELECT * FROM products ORDER BY sku")
    products = changed_products(PRODUCTS, "COMB-CARB", **{"Sale price": "7,5"})
    products = changed_products(products, "CLIP-RED", Name="Red hair clip")

    problems = rejected_catalogue(stocked, tmp_path, products)

    assert problems == {("not_a_number", "Products", "H6")}
    assert query(stocked, "SELECT * FROM products ORDER BY sku") == before


def test_bad_catalogue_by_command_exits_1(stocked, tmp_path):
    products = changed_products(PRODUCTS, "COMB-CARB", Equals="ten")
    path = write_rows(tmp_path / "c.xlsx", catalogue_sheets(products))

    outcome = import_catalogue(stocked, path)

    assert outcome.exit_code == 1
    assert "Products!G6" in outcome.output
