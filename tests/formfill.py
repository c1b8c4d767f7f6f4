"""Test helpers: fill the refund template through its defined names, as staff would in Excel.

Importable from any test module (``from formfill import fill_form``): pytest puts ``tests/`` on
``sys.path`` because the folder has no ``__init__.py``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import openpyxl
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.workbook.workbook import Workbook

from refundflow import layout

__all__ = [
    "NEW_FORM",
    "defined_cells",
    "fill_form",
    "insert_rows_above",
    "rewrite_parts",
    "to_bytes",
]


# A new refund form as customer service fills it (tests and benchmarks alike).
NEW_FORM: dict[str, object] = {
    "reported_at": dt.datetime(2026, 11, 23, 9, 0),
    "fault": "订单冲突",
    "mobile": "13800138000",
    "purchase_time": dt.datetime(2026, 11, 22, 20, 15),
    "bank": "招商银行",
    "order_no": "TK20261122001",
    "amount": 268.5,
    "customer_request": "要求全额退款",
    "submitter": "张三",
    "submitted_at": dt.datetime(2026, 11, 23, 9, 5),
    "handling_dept": "技术部",
    "cs_opinion": "客户扣款成功但订单冲突,申请退款",
    "cs_by": "李四",
    "cs_date": dt.datetime(2026, 11, 23, 9, 6),
    "cs_approval": "同意",
}


def _load(template: bytes | Path) -> Workbook:
    source = io.BytesIO(template) if isinstance(template, bytes) else template
    return openpyxl.load_workbook(source)


def to_bytes(wb: Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def defined_cells(wb: Workbook) -> dict[str, tuple[str, str]]:
    """Workbook-scope defined name -> (sheet, cell) for the names that point at one cell."""
    cells: dict[str, tuple[str, str]] = {}
    for name, dn in wb.defined_names.items():
        dests = list(dn.destinations) if dn.attr_text and "!" in dn.attr_text else []
        if len(dests) == 1:
            sheet, ref = dests[0]
            cells[name] = (sheet, ref.replace("$", "").split(":")[0])
    return cells


def fill_form(template: bytes | Path, values: Mapping[str, object]) -> bytes:
    """A copy of ``template`` with ``values`` (defined name -> value) typed into the named cells.

    Values keep their Python type: a ``datetime`` becomes a real date-time cell (the template's
    number format stays), a number a number cell, a string a text cell.
    """
    wb = _load(template)
    cells = defined_cells(wb)
    for name, value in values.items():
        sheet, cell = cells[name]
        wb[sheet][cell].value = value
    return to_bytes(wb)


def insert_rows_above(
    data: bytes, count: int, *, names: Literal["move", "delete", "stale"] = "move"
) -> bytes:
    """Insert ``count`` empty rows at the top of the form sheet, moving merged cells along.

    ``names``: ``"move"`` the defined names along (what Excel and LibreOffice do), ``"delete"``
    them (a careless copy into a new workbook), or leave them ``"stale"``, pointing at the old
    cells (what openpyxl-based tools do: ``insert_rows`` does not update names).
    """
    wb = _load(data)
    ws = wb[layout.REFUND_SHEET]
    merged = [str(r) for r in ws.merged_cells.ranges]
    for ref in merged:
        ws.unmerge_cells(ref)
    ws.insert_rows(1, count)
    for ref in merged:
        ws.merge_cells(_shift_ref(ref, count))
    for name in list(wb.defined_names):
        text = wb.defined_names[name].attr_text or ""
        if layout.REFUND_SHEET not in text or names == "stale":
            continue
        if names == "delete":
            del wb.defined_names[name]
        else:
            wb.defined_names[name] = DefinedName(name, attr_text=_shift_ref(text, count))
    return to_bytes(wb)


def _shift_ref(ref: str, rows: int) -> str:
    return re.sub(r"(\$?[A-Z]{1,3}\$?)(\d+)", lambda m: f"{m[1]}{int(m[2]) + rows}", ref)


def rewrite_parts(data: bytes, edit: Callable[[str, bytes], bytes | None]) -> bytes:
    """A copy of the zip ``data`` with each member passed through ``edit(name, bytes)``.

    ``edit`` returns the new bytes, or ``None`` to drop the member.
    """
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            new = edit(info.filename, src.read(info.filename))
            if new is not None:
                dst.writestr(info.filename, new)
    return out.getvalue()
