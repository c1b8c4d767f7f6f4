"""What the four templates share: the workbook and its version stamps, the cell formats, and
the plumbing for defined names, protection, printing and input messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from .. import layout
from ..layout import cell_to_rc, rc_to_cell

CREATED = dt.datetime(2026, 1, 1, 0, 0, 0)
"""Fixed creation date: xlsxwriter also uses it for the zip members, so output is byte-stable."""

FONT = "宋体"  # what Chinese Excel shows; LibreOffice substitutes a CJK font of its own
A4 = 9  # xlsxwriter paper code

DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
AMOUNT_FORMAT = "¥#,##0.00"
TEXT_FORMAT = "@"

DATETIME_HINT = "格式:2026-11-03 14:05(时间精确到分钟)"
DATE_HINT = "格式:2026-11-03"
REQUIRED_HINT = "每项必填,没有的写无"


@dataclass(frozen=True)
class Styles:
    """The cell formats of one workbook (xlsxwriter formats belong to their workbook)."""

    title: Format
    band: Format
    label: Format
    note: Format
    header: Format
    total_label: Format
    total_amount: Format
    # unlocked input formats, by kind of content
    text: Format
    code: Format
    long: Format
    date: Format
    datetime: Format
    amount: Format
    integer: Format
    center: Format
    # locked prefilled text inside the grid (部门:客服部) and the printed rules
    fixed: Format
    rule: Format


def make_styles(wb: Workbook) -> Styles:
    def fmt(**props: Any) -> Format:
        base: dict[str, Any] = {"font_name": FONT, "font_size": 11, "valign": "vcenter"}
        return wb.add_format(base | props)

    grid: dict[str, Any] = {"border": 1, "text_wrap": True}
    entry: dict[str, Any] = grid | {"locked": False}
    return Styles(
        title=fmt(bold=True, font_size=18, align="center"),
        band=fmt(**grid, bold=True, align="center", bg_color="#D9E1F2"),
        label=fmt(**grid, align="center", bg_color="#F2F2F2"),
        note=fmt(**grid, italic=True, font_size=9, font_color="#595959"),
        header=fmt(**grid, bold=True, align="center", bg_color="#D9E1F2"),
        total_label=fmt(**grid, bold=True, align="center", bg_color="#F2F2F2"),
        total_amount=fmt(**grid, bold=True, num_format=AMOUNT_FORMAT),
        text=fmt(**entry),
        code=fmt(**entry, num_format=TEXT_FORMAT),
        long=fmt(**entry, valign="top"),
        date=fmt(**entry, num_format=DATE_FORMAT, align="left"),
        datetime=fmt(**entry, num_format=DATETIME_FORMAT, align="left"),
        amount=fmt(**entry, num_format=AMOUNT_FORMAT),
        integer=fmt(**entry, num_format="0", align="center"),
        center=fmt(**entry, align="center"),
        fixed=fmt(**grid, align="center"),
        rule=fmt(text_wrap=True, font_size=10, valign="top"),
    )


# --- shared plumbing -------------------------------------------------------------------------


def new_workbook(path: Path, title: str) -> Workbook:
    wb = Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False})
    wb.set_properties(
        {
            "title": title,
            "subject": "客户退款执行流程",
            "author": "refundflow",
            "company": "",
            "comments": f"模板版本 {layout.TEMPLATE_VERSION}",
            "created": CREATED,
        }
    )
    # Two stamps: a program that rewrites docProps/ may drop custom properties, while a defined
    # name is part of the workbook itself and is kept by anything that keeps the cell names.
    wb.set_custom_property(layout.VERSION_PROPERTY, layout.TEMPLATE_VERSION)
    define(wb, layout.VERSION_PROPERTY, f'="{layout.TEMPLATE_VERSION}"')
    return wb


def define(wb: Workbook, name: str, formula: str) -> None:
    # xlsxwriter only warns on a bad name; a template without its names is useless, so fail.
    if wb.define_name(name, formula) != 0:
        raise ValueError(f"cannot define name {name!r} = {formula!r}")


def absolute(sheet: str, cell: str) -> str:
    row, col = cell_to_rc(cell)
    letters = rc_to_cell(0, col)[:-1]
    return f"='{sheet}'!${letters}${row + 1}"


def define_input(wb: Workbook, sheet: str, name: str, cell: str) -> None:
    define(wb, name, absolute(sheet, cell))


def set_widths(ws: Worksheet, widths: Iterable[float]) -> None:
    for col, width in enumerate(widths):
        ws.set_column(col, col, width)


def protect(ws: Worksheet, *, allow_rows: bool = False) -> None:
    """Protect without password: labels stay put, people may still resize for long text."""
    options = {
        "format_columns": True,
        "format_rows": True,
        "select_locked_cells": True,
        "select_unlocked_cells": True,
        "insert_rows": allow_rows,
        "delete_rows": allow_rows,
    }
    ws.protect("", options)


def print_setup(
    ws: Worksheet, last_row: int, last_col: int, *, landscape: bool, pages_tall: int = 0
) -> None:
    """A4, centred, small margins, one page wide; ``pages_tall=0`` lets long sheets run on."""
    ws.set_paper(A4)
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.5)
    ws.print_area(0, 0, last_row, last_col)
    ws.fit_to_pages(1, pages_tall)


def put(
    ws: Worksheet, cell: str, value: Any, fmt: Format, *, to_col: int | None = None, rows: int = 1
) -> None:
    """Write one cell, or a merged block from ``cell`` to column ``to_col`` over ``rows`` rows."""
    row, col = cell_to_rc(cell)
    last_col = col if to_col is None else to_col
    if last_col == col and rows == 1:
        ws.write(row, col, value, fmt)
    else:
        ws.merge_range(row, col, row + rows - 1, last_col, value, fmt)


def validate(
    ws: Worksheet, cell: str, options: dict[str, Any], *, to_col: int | None = None
) -> None:
    row, col = cell_to_rc(cell)
    if ws.data_validation(row, col, row, col if to_col is None else to_col, options) != 0:
        raise ValueError(f"bad data validation on {cell}: {options!r}")


def message(title: str, text: str) -> dict[str, Any]:
    # Excel's limits: 32 characters of title, 255 of message.
    return {"input_title": title[:32], "input_message": text[:255]}


def hint_only(title: str, text: str) -> dict[str, Any]:
    """A validation that accepts anything and only shows an input message."""
    return {"validate": "any", **message(title, text)}


def list_from(sheet: str, col: int, count: int) -> str:
    """Source of a list validation: a column of the hidden list sheet (no 255-char limit)."""
    letters = rc_to_cell(0, col)[:-1]
    return f"='{sheet}'!${letters}$2:${letters}${count + 1}"
