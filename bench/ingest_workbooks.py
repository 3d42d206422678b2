"""Generated test data for bench/ingest.py: a catalogue and form-layout operation workbooks.

The catalogue has `products` products of four kinds (sale unit, write-off unit, and how many
write-off units one sale unit holds) and four storages. Each operation workbook has one
worksheet laid out as `batchstock template` writes it: label/value rows, a blank row, then
the lines table. Quantities are whole numbers and prices have two decimals.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

# (name suffix, sale unit, write-off unit, write-off units per sale unit)
PRODUCT_KINDS = (
    ("shampoo 250 ml", "pcs", "ml", 250),
    ("hair dye 60 g", "pcs", "g", 60),
    ("nitrile gloves, box of 100", "box", "pcs", 100),
    ("carbon comb", "pcs", "pcs", 1),
)
STORAGES = (
    ("Products", "sale"), ("Consumables", "consumables"),
    ("Branch 2 shelf", "sale"), ("Back room", "consumables"),
)
FIRST_DATE = dt.datetime(2026, 1, 5, 8, 0)


@dataclass
class BenchProduct:
    sku: str
    name: str
    sale_unit: str
    base_unit: str
    equals: int
    cost_price: Decimal
    sale_price: Decimal


@dataclass
class PlannedLine:
    product: BenchProduct
    quantity: int
    unit: str | None = None
    price: Decimal | None = None


@dataclass
class PlannedOperation:
    type: str
    occurred_at: dt.datetime
    storage: str
    document_no: str
    lines: list[PlannedLine] = field(default_factory=list)


def make_products(count: int, rng: random.Random) -> list[BenchProduct]:
    products = []
    for number in range(1, count + 1):
        suffix, sale_unit, base_unit, equals = PRODUCT_KINDS[number % len(PRODUCT_KINDS)]
        cost = Decimal(rng.randint(100, 4000)) / 100
        products.append(BenchProduct(
            f"BN-{number:05d}", f"Bench {number:05d} {suffix}", sale_unit, base_unit, equals,
            cost, cost * 2,
        ))
    return products


def plan_operations(files: int, lines: int, products: list[BenchProduct],
                    rng: random.Random) -> list[PlannedOperation]:
    """Plan one operation per file, tracking stock so that no sale or write-off goes short.

    Files are applied in this order and their dates rise, so a stock that the plan keeps
    at zero or above is also never negative in the ledger at any date.
    """
    stock: dict[str, Counter] = defaultdict(Counter)  # storage → SKU → write-off units
    operations = []
    for index in range(files):
        occurred_at = FIRST_DATE + dt.timedelta(hours=index)
        document = f"BENCH-{index + 1:05d}"
        op_type = {5: "sale", 9: "write-off"}.get(index % 10, "arrival")
        storage = {"sale": "Products", "write-off": "Consumables"}.get(op_type)
        stocked = [p for p in products if stock[storage][p.sku] >= p.equals] if storage else []
        if len(stocked) < lines:
            op_type, storage = "arrival", ("Products", "Consumables")[index % 2]
        operation = PlannedOperation(op_type, occurred_at, storage, document)
        chosen = rng.sample(products if op_type == "arrival" else stocked, lines)
        for product in chosen:
            operation.lines.append(_plan_line(op_type, product, stock[storage], rng))
        operations.append(operation)
    return operations


def _plan_line(op_type: str, product: BenchProduct, stock: Counter,
               rng: random.Random) -> PlannedLine:
    if op_type == "arrival":
        quantity = rng.randint(1, 20)
        stock[product.sku] += quantity * product.equals
        return PlannedLine(product, quantity, price=product.cost_price)
    if op_type == "sale":
        quantity = rng.randint(1, min(3, stock[product.sku] // product.equals))
        stock[product.sku] -= quantity * product.equals
        return PlannedLine(product, quantity, price=product.sale_price)
    quantity = rng.randint(1, stock[product.sku])  # a write-off, in write-off units
    stock[product.sku] -= quantity
    return PlannedLine(product, quantity, unit=product.base_unit)


def write_catalogue(path: Path, products: list[BenchProduct]) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Products")
    sheet.write_row(0, 0, ("SKU", "Name", "Barcode", "Category", "Sale unit", "Write-off unit",
                           "Equals", "Sale price", "Cost price", "Critical stock",
                           "Desired stock"))
    for row, p in enumerate(products, start=1):
        sheet.write_string(row, 0, p.sku)
        sheet.write_string(row, 1, p.name)
        sheet.write_string(row, 2, f"46{row:011d}")
        sheet.write_row(row, 3, ("Bench", p.sale_unit, p.base_unit, p.equals,
                                 float(p.sale_price), float(p.cost_price), 1, 5))
    storages = workbook.add_worksheet("Storages")
    storages.write_row(0, 0, ("Name", "Type", "Comment"))
    for row, (name, storage_type) in enumerate(STORAGES, start=1):
        storages.write_row(row, 0, (name, storage_type, "benchmark storage"))
    workbook.close()


HEADER_LABELS = {
    "arrival": ("Arrival", "Supplier", "Bench Wholesale Ltd"),
    "sale": ("Sale", "Client", "Walk-in client"),
    "write-off": ("Write-off", "Reason", "Used in services"),
}
LINE_HEADERS = {
    "arrival": ("SKU", "Product", "Quantity", "Unit cost", "Subtotal"),
    "sale": ("SKU", "Product", "Quantity", "Price", "Subtotal"),
    "write-off": ("SKU", "Product", "Quantity", "Unit"),
}


def write_operation_workbook(path: Path, operation: PlannedOperation) -> None:
    """Write one operation in the form layout: label/value rows, a blank row, the lines."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    date_format = workbook.add_format({"num_format": "dd.mm.yyyy hh:mm"})
    title, party_label, party = HEADER_LABELS[operation.type]
    sheet = workbook.add_worksheet(title)
    sheet.write_row(0, 0, ("Operation", title))
    sheet.write_string(1, 0, "Date")
    sheet.write_datetime(1, 1, operation.occurred_at, date_format)
    sheet.write_row(2, 0, ("Storage", operation.storage))
    sheet.write_row(3, 0, (party_label, party))
    sheet.write_row(4, 0, ("Document no.", operation.document_no))
    sheet.write_row(5, 0, ("Comment", "generated by bench/ingest.py"))
    sheet.write_row(7, 0, LINE_HEADERS[operation.type])
    for row, line in enumerate(operation.lines, start=8):
        sheet.write_string(row, 0, line.product.sku)
        sheet.write_string(row, 1, line.product.name)
        sheet.write_number(row, 2, line.quantity)
        if line.unit is not None:
            sheet.write_string(row, 3, line.unit)
        else:
            sheet.write_number(row, 3, float(line.price))
            sheet.write_number(row, 4, float(line.price * line.quantity))
    workbook.close()


@dataclass
class GeneratedSet:
    catalogue: Path
    files: list[Path]
    types: list[str]


def generate(folder: Path, files: int, lines: int, products: int, seed: int) -> GeneratedSet:
    rng = random.Random(seed)
    catalogue_products = make_products(products, rng)
    folder.mkdir(parents=True, exist_ok=True)
    catalogue = folder / "catalogue.xlsx"
    write_catalogue(catalogue, catalogue_products)
    operations = plan_operations(files, lines, catalogue_products, rng)
    paths = []
    for index, operation in enumerate(operations, start=1):
        path = folder / f"{index:05d}-{operation.type}.xlsx"
        write_operation_workbook(path, operation)
        paths.append(path)
    return GeneratedSet(catalogue, paths, [op.type for op in operations])
