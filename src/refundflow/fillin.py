"""Typing values into a refund form's input cells, as a person does in Excel: the demo's staff.

The cells are the template's (:data:`layout.FIELDS_BY_NAME`), the values keep their type: a
date-time becomes a date serial in the cell's own date format, an amount a number, a name or
an opinion text, ``None`` an empty cell. The rest of the workbook (the 流转记录 and 退回原因
sheets, highlights, the copy token) stays as it was, as when a person saves after typing.
The zip-level patch does the writing: an openpyxl load and save per signature would make the
demo month take minutes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from .layout import FIELDS_BY_NAME, REFUND_SHEET
from .xlsxpatch import Patch, apply_patch

Value = str | float | dt.datetime | None

_EPOCH = dt.datetime(1899, 12, 30)  # day 0 of Excel's 1900 date system, as Excel counts it


def excel_serial(moment: dt.datetime) -> float:
    """``moment`` as the number Excel stores for it (days since 1899-12-30, time as fraction)."""
    return (moment - _EPOCH) / dt.timedelta(days=1)


def fill_in(data: bytes, values: Mapping[str, Value]) -> bytes:
    """A copy of the refund form ``data`` with ``values`` (field name -> value) typed in."""
    cells: dict[str, str | float] = {}
    for name, value in values.items():
        cell = FIELDS_BY_NAME[name].cell
        if isinstance(value, dt.datetime):
            cells[cell] = excel_serial(value)
        elif isinstance(value, int | float):
            cells[cell] = float(value)
        else:
            cells[cell] = "" if value is None else value
    return apply_patch(data, Patch(sheet=REFUND_SHEET, cell_values=cells, strip_return_sheet=False))
