"""Reading a monthly statistics table (客服退单统计表 / 财务退单统计表) from its bytes.

Runs in the sandboxed parser worker (:func:`examine` is what the processor sends there), so it
uses python-calamine and the zip/XML helpers of :mod:`forms` only: no pandas, no openpyxl.
:func:`examine` first looks at workbook.xml alone (the sheet names): a refund form, or any
other workbook, costs one small XML parse and comes back None, to be read as a form as before.

What it returns is the table as laid out by the template (layout.STATS_*): the header inputs
found right of their printed labels, the column headings of row 3, the data rows down to the
合计 row, the 合计's cached value and formula, and 审批人 found by its label below 合计 (the
footer moves down when a month has more rows than the template). Judging it is the caller's
work (:mod:`stats_intake`); a layout that differs is reported, not guessed around.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import python_calamine as calamine

from . import layout
from .errors import FileRejected
from .formgrid import CALAMINE_ERRORS, calamine_failure, label_key
from .formpackage import (
    formulas_in,
    open_zip,
    parse_workbook,
    parse_xml,
    read_part,
    workbook_part,
    worksheet_part,
)
from .layout import cell_to_rc, rc_to_cell
from .zipread import DEFAULT_LIMITS, Package, ZipLimits

_MAX_ROWS = 200_000  # far beyond any month; a sheet claiming more is not one of our tables


@dataclass(frozen=True)
class TableSheet:
    """One statistics table as read, before it is judged."""

    finance: bool  # 财务退单统计表 (else 客服退单统计表), by its sheet name
    sheet: str
    header: dict[str, object]  # table_no / compiler / compiled_on -> value right of its label
    labels_missing: tuple[tuple[str, str], ...]  # (printed label, cell it should be in)
    columns: tuple[str, ...]  # the headings of row STATS_HEADER_ROW, as text
    rows: tuple[tuple[object, ...], ...]  # the data rows (None for empty cells)
    total_row: int | None  # 1-based row of 合计, None when there is none
    total: float | None  # 合计's cached value under 金额
    total_formula: str | None  # its formula, without "=", when it has one
    approver: object = None  # the value right of 审批人
    approver_cell: str | None = None  # where 审批人's input is (None: no 审批人 label found)

    @property
    def name(self) -> str:
        return layout.FINANCE_STATS_SHEET if self.finance else layout.CS_STATS_SHEET

    @property
    def expected_columns(self) -> tuple[str, ...]:
        return layout.FINANCE_STATS_COLUMNS if self.finance else layout.CS_STATS_COLUMNS


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def which_table(
    data: bytes, *, limits: ZipLimits = DEFAULT_LIMITS, package: Package | None = None
) -> bool | None:
    """True: 财务退单统计表, False: 客服退单统计表, None: not a statistics table.

    By the sheet names in workbook.xml only. A workbook with both tables' sheets (the monthly
    workbook) or with a refund form's sheet is none of them; an unreadable file is left to the
    form reader, which answers it as today.
    """
    try:
        pkg = package if package is not None else open_zip(data, limits)
        part = workbook_part(pkg)
        xml = read_part(pkg, part)
        if xml is None:
            return None
        names = {name for name, _state in parse_workbook(parse_xml(xml, part)).sheets}
    except FileRejected:
        return None
    if layout.REFUND_SHEET in names:
        return None
    cs, finance = layout.CS_STATS_SHEET in names, layout.FINANCE_STATS_SHEET in names
    if cs == finance:
        return None
    return finance


def examine(
    data: bytes, *, limits: ZipLimits = DEFAULT_LIMITS, package: Package | None = None
) -> TableSheet | None:
    """In the worker (see :func:`refundflow.examine.examine`): None for anything but a
    statistics table, else the table.

    Raises :class:`FileRejected` when a statistics table cannot be read at all.
    """
    pkg = package if package is not None else open_zip(data, limits)
    finance = which_table(data, package=pkg)
    if finance is None:
        return None
    return read_table(data, finance=finance, package=pkg)


def read_table(
    data: bytes,
    *,
    finance: bool,
    limits: ZipLimits = DEFAULT_LIMITS,
    package: Package | None = None,
) -> TableSheet:
    """Read the statistics table of the given kind from ``data`` (see :class:`TableSheet`)."""
    sheet = layout.FINANCE_STATS_SHEET if finance else layout.CS_STATS_SHEET
    try:
        wb = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        grid = wb.get_sheet_by_name(sheet).to_python(skip_empty_area=False, nrows=_MAX_ROWS)
    except CALAMINE_ERRORS as exc:
        raise calamine_failure(exc) from None

    def at(row: int, col: int) -> object:
        if 0 <= row < len(grid) and 0 <= col < len(grid[row]):
            value = grid[row][col]
            return None if value == "" else value
        return None

    header: dict[str, object] = {}
    missing: list[tuple[str, str]] = []
    for name in ("table_no", "compiler", "compiled_on"):
        row, col = cell_to_rc(layout.STATS_CELLS[name])
        label = layout.STATS_LABELS[name]
        if label_key(_text(at(row, col - 1))) != label:
            missing.append((label, rc_to_cell(row, col - 1)))
        header[name] = at(row, col)
    heading_row = layout.STATS_HEADER_ROW - 1
    headings = [_text(at(heading_row, c)) for c in range(len(grid[heading_row]) if grid else 0)]
    while headings and not headings[-1]:
        headings.pop()
    total_at = next(
        (
            r
            for r in range(layout.STATS_FIRST_DATA_ROW - 1, len(grid))
            if "".join(_text(at(r, 0)).split()) == layout.TOTAL_LABEL
        ),
        None,
    )
    end = total_at if total_at is not None else len(grid)
    rows = tuple(
        tuple(at(r, c) for c in range(len(headings)))
        for r in range(layout.STATS_FIRST_DATA_ROW - 1, end)
    )
    total: float | None = None
    formula: str | None = None
    approver: object = None
    approver_cell: str | None = None
    if total_at is not None:
        if layout.STATS_AMOUNT_COLUMN in headings:
            amount_col = headings.index(layout.STATS_AMOUNT_COLUMN)
            cached = at(total_at, amount_col)
            total = float(cached) if isinstance(cached, int | float) else None
            pkg = package if package is not None else open_zip(data, limits)
            formula = _total_formula(pkg, sheet, rc_to_cell(total_at, amount_col))
        for r in range(total_at + 1, len(grid)):
            for c, value in enumerate(grid[r]):
                if isinstance(value, str) and label_key(value) == layout.STATS_LABELS["approver"]:
                    approver, approver_cell = at(r, c + 1), rc_to_cell(r, c + 1)
                    break
            if approver_cell is not None:
                break
    return TableSheet(
        finance=finance,
        sheet=sheet,
        header=header,
        labels_missing=tuple(missing),
        columns=tuple(headings),
        rows=tuple(r for r in rows if any(v is not None for v in r)),
        total_row=None if total_at is None else total_at + 1,
        total=total,
        total_formula=formula,
        approver=approver,
        approver_cell=approver_cell,
    )


def _total_formula(pkg: Package, sheet: str, cell: str) -> str | None:
    """The formula in ``cell`` of ``sheet`` (calamine gives cached values only)."""
    part = workbook_part(pkg)
    xml = read_part(pkg, part)
    if xml is None:
        return None
    rid = parse_workbook(parse_xml(xml, part)).sheet_rids.get(sheet)
    sheet_part = worksheet_part(pkg, part, rid) if rid is not None else None
    if sheet_part is None:
        return None
    return formulas_in(pkg, sheet_part, {"total": cell}).get(cell)
