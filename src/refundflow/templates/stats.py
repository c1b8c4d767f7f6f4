"""客服退单统计表 and 财务退单统计表: the monthly statistics tables, empty or filled."""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from .. import layout
from ..config import Config
from ..layout import cell_to_rc, rc_to_cell
from .book import (
    DATE_HINT,
    Styles,
    define_input,
    hint_only,
    make_styles,
    message,
    new_workbook,
    print_setup,
    protect,
    put,
    validate,
)

# Statistics tables: per column, (width, kind of cell) — the kind picks the data-row format.
_STATS_COLUMN_STYLE: dict[str, tuple[float, str]] = {
    "序号": (6.0, "int"),
    "提交日期": (12.0, "date"),
    "退单编号": (17.0, "code"),
    "订单号": (19.0, "code"),
    "联系方式": (13.0, "code"),
    "开户行": (16.0, "text"),
    "金额": (13.0, "amount"),
    "提交人": (9.0, "text"),
    "提交技术部时间": (17.0, "datetime"),
    "提交财务时间": (17.0, "datetime"),
    "财务反馈时间": (17.0, "datetime"),
    "反馈用户时间": (17.0, "datetime"),
    # who checked, and when: free text such as "张三 2026-11-03 14:05"
    "出纳核实": (18.0, "text"),
    "会计复核": (18.0, "text"),
    "财务总监审核": (18.0, "text"),
    "反馈客服": (18.0, "text"),
    "备注": (18.0, "text"),
}


def _stats_data_format(styles: Styles, kind: str) -> Format:
    return {
        "int": styles.integer,
        "date": styles.date,
        "datetime": styles.datetime,
        "code": styles.code,
        "amount": styles.amount,
    }.get(kind, styles.text)


def _write_stats_header(
    ws: Worksheet, styles: Styles, title: str, dept: str, ncols: int, cells: dict[str, str]
) -> None:
    put(ws, "A1", title, styles.title, to_col=ncols - 1)
    ws.set_row(0, 32)
    for name, label in layout.STATS_LABELS.items():
        row, col = cell_to_rc(cells[name])
        ws.write(row, col - 1, label, styles.label)
    # 部门 sits between 编号 and 制表人, over the two columns after table_no's input.
    row, col = cell_to_rc(cells["table_no"])
    ws.merge_range(row, col + 2, row, col + 3, f"部门:{dept}", styles.fixed)


def _write_stats_inputs(
    wb: Workbook, ws: Worksheet, styles: Styles, sheet: str, cells: dict[str, str]
) -> None:
    hints = {
        "table_no": "统计表编号",
        "compiler": "填写制表人姓名",
        "compiled_on": f"{DATE_HINT};每月1日报送行政人事部,遇双休日顺延",
        "approver": "部门负责人审批后签名",
    }
    for name in layout.STATS_NAMES:
        cell = cells[name]
        col = cell_to_rc(cell)[1]
        fmt = styles.date if name == "compiled_on" else styles.text
        put(ws, cell, None, fmt, to_col=col + 1)
        validate(ws, cell, hint_only(layout.STATS_LABELS[name], hints[name]), to_col=col + 1)
        define_input(wb, sheet, name, cell)


def _write_stats_grid(
    ws: Worksheet, styles: Styles, columns: tuple[str, ...], data_rows: int, total_value: float
) -> None:
    header = layout.STATS_HEADER_ROW - 1
    first = layout.STATS_FIRST_DATA_ROW - 1
    total = first + data_rows
    ws.set_row(header, 30)
    for col, name in enumerate(columns):
        width, kind = _STATS_COLUMN_STYLE[name]
        ws.set_column(col, col, width)
        ws.write(header, col, name, styles.header)
        for row in range(first, total):
            ws.write_blank(row, col, None, _stats_data_format(styles, kind))
    amount = columns.index(layout.STATS_AMOUNT_COLUMN)
    amount_check = {"validate": "decimal", "criteria": ">", "value": 0}
    if (
        ws.data_validation(
            first, amount, total - 1, amount, amount_check | message("金额", "退款金额(元)")
        )
        != 0
    ):
        raise ValueError("bad data validation on the amount column")
    ws.write(total, 0, layout.TOTAL_LABEL, styles.total_label)
    for col in range(1, len(columns)):
        ws.write_blank(total, col, None, styles.total_label)
    top, bottom = rc_to_cell(first, amount), rc_to_cell(total - 1, amount)
    # The computed total is cached with the formula: pandas and calamine read only that.
    ws.write_formula(total, amount, f"=SUM({top}:{bottom})", styles.total_amount, total_value)
    ws.repeat_rows(header)  # a long month spills onto a second page: keep the column titles


def _write_stats(
    path: Path,
    sheet: str,
    dept: str,
    columns: tuple[str, ...],
    *,
    filled: StatsFill | None = None,
) -> None:
    rows = filled.rows if filled else ()
    data_rows = max(layout.STATS_DATA_ROWS, len(rows))
    cells = layout.stats_cells(data_rows)
    wb = new_workbook(path, sheet)
    styles = make_styles(wb)
    ws = wb.add_worksheet(sheet)
    ws.set_default_row(24)
    _write_stats_grid(ws, styles, columns, data_rows, filled.total if filled else 0)
    _write_stats_header(ws, styles, sheet, dept, len(columns), cells)
    _write_stats_inputs(wb, ws, styles, sheet, cells)
    if filled:
        _fill_stats(ws, styles, columns, filled, cells)
    ws.freeze_panes(layout.STATS_FIRST_DATA_ROW - 1, 0)
    protect(ws, allow_rows=True)
    last_row = cell_to_rc(cells["approver"])[0]
    print_setup(ws, last_row, len(columns) - 1, landscape=True)
    wb.close()


@dataclass(frozen=True)
class StatsFill:
    """What a generated statistics table holds besides the template's empty grid."""

    table_no: str
    compiler: str
    compiled_on: dt.date
    rows: tuple[tuple[object, ...], ...]  # one tuple per refund, in the table's column order
    total: float  # the 合计 of 金额, cached beside its SUM formula


def _fill_stats(
    ws: Worksheet,
    styles: Styles,
    columns: tuple[str, ...],
    filled: StatsFill,
    cells: dict[str, str],
) -> None:
    for name, text in (("table_no", filled.table_no), ("compiler", filled.compiler)):
        row, col = cell_to_rc(cells[name])
        ws.write_string(row, col, text, styles.text)
    row, col = cell_to_rc(cells["compiled_on"])
    ws.write_datetime(row, col, dt.datetime.combine(filled.compiled_on, dt.time()), styles.date)
    first = layout.STATS_FIRST_DATA_ROW - 1
    for offset, values in enumerate(filled.rows):
        for col, (name, value) in enumerate(zip(columns, values, strict=True)):
            fmt = _stats_data_format(styles, _STATS_COLUMN_STYLE[name][1])
            if value is None or value == "":
                continue
            if isinstance(value, dt.datetime):
                ws.write_datetime(first + offset, col, value, styles.datetime)
            elif isinstance(value, dt.date):
                ws.write_datetime(first + offset, col, dt.datetime.combine(value, dt.time()), fmt)
            elif isinstance(value, int | float):
                ws.write_number(first + offset, col, value, fmt)
            else:
                # What people typed stays text, even "=HYPERLINK(...)" or "+1".
                ws.write_string(first + offset, col, str(value), fmt)
        # Long text (备注) wraps: give its row the lines it needs, or the print cuts it off.
        texts = [(n, v) for n, v in zip(columns, values, strict=True) if isinstance(v, str)]
        lines = max(
            (math.ceil(_text_width(v) / (_STATS_COLUMN_STYLE[n][0] - 1)) for n, v in texts),
            default=1,
        )
        if lines > 1:
            ws.set_row(first + offset, 15 * lines + 4)


def _text_width(text: str) -> int:
    """Width in character cells: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def write_cs_stats_template(path: Path, config: Config) -> None:
    """客服退单统计表: customer service's monthly list of refunds."""
    del config  # same signature as the others; nothing configurable on this table yet
    _write_stats(path, layout.CS_STATS_SHEET, "客服部", layout.CS_STATS_COLUMNS)


def write_finance_stats_template(path: Path, config: Config) -> None:
    """财务退单统计表: finance's monthly list of refunds."""
    del config
    _write_stats(path, layout.FINANCE_STATS_SHEET, "财务部", layout.FINANCE_STATS_COLUMNS)


def write_stats_table(path: Path, *, finance: bool, filled: StatsFill) -> None:
    """A statistics table as its template, filled: rows inserted above 合计 as needed."""
    if finance:
        _write_stats(
            path, layout.FINANCE_STATS_SHEET, "财务部", layout.FINANCE_STATS_COLUMNS, filled=filled
        )
    else:
        _write_stats(path, layout.CS_STATS_SHEET, "客服部", layout.CS_STATS_COLUMNS, filled=filled)
