"""The four Excel templates staff fill in: written with xlsxwriter from :mod:`layout`.

Every input cell carries a workbook-scope defined name (so the form reader finds it whatever the
staff did to the layout), is unlocked, and has an input message in Chinese; everything else is
locked by sheet protection without a password, so nobody overwrites a label by accident but
anybody can lift the protection when really needed.

The version of the templates is stamped twice: as a custom document property and as a defined
name holding a string constant, because some spreadsheet programs drop custom properties when they
save a file again (see the round-trip notes in the tests).
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from . import layout
from .config import Config
from .layout import Field, Kind, cell_to_rc, rc_to_cell

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

# The refund form: six columns A:F, labels in A/C/E, inputs in B/D/F.
REFUND_WIDTHS = (15.0, 19.0, 11.0, 19.0, 13.0, 19.0)
# Inputs that span the rest of their row (B..F or A..F), not just one cell.
_FULL_WIDTH = frozenset(
    {"fault", "admin_followup", *(f"{b.role}_opinion" for b in layout.OPINION_BLOCKS)}
)

# The handover sheet, also six columns A:F.
HANDOVER_WIDTHS = (20.0, 17.0, 16.0, 16.0, 16.0, 16.0)
HANDOVER_RULES_TITLE = "交接单注意事项"
HANDOVER_RULES = (
    "a) 每项必填,没有的写无。",
    "b) 完成工作明细逐项列出,按 1、2、3……编号。",
    "c) 需其他人员跟进交接明细同样逐项编号;每件事写明起因、经过、目前进行到哪个环节、"
    "接班人需要做什么;如为退款单,还须写明故障原因、目前所处环节、下一步处理、客户联系方式、"
    "故障手机号、金额、银行。",
    "d) 退款单分类填写:(1) 财务已处理的订单(已退款或未入帐):文件编号、手机号、金额、银行、"
    "处理结果,当日的故障统计须当天更新;(2) 当日已提交财务的订单:文件编号、手机号、金额、银行、"
    "处理结果;(3) 财务退回的订单:退回原因、文件编号、手机号、金额、银行。",
)
_HANDOVER_NOTES = {
    "work_done": "如有故障退款单,请注明文件编号,手机号,金额,银行。",
    "follow_ups": "如有故障退款单,请注明文件编号,手机号,金额,银行,交接环节",
    "fin_processed": "请写明文件编号,手机号,金额,银行,处理结果",
    "fin_submitted": "请写明文件编号,手机号,金额,银行",
    "fin_returned": "请写明文件编号,手机号,金额,银行,退回原因",
}
# Printed empty, the paper sheet has blanks to fill in by hand: 填表时间 "  年  月  日" and the
# shift choices to tick. A number format shows nothing in a blank cell, so these two inputs
# start as ="" (read as empty by every reader) and a conditional format shows the blanks only
# while the cell is still "". What a person types or picks replaces the formula and shows as
# itself: a real date, a choice from the drop-down.
_PRINTED_BLANKS = {
    "filled_on": "\u3000\u3000\u3000年\u3000\u3000月\u3000\u3000日",  # full-width spaces
    "shift": "  ".join(f"□{shift}" for shift in layout.SHIFTS),
}
_ATTENDANCE = ("att_expected", "att_present", "att_late", "att_left_early", "att_absent")
_FINANCE_ROWS = ("fin_processed", "fin_submitted", "fin_returned")

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


@dataclass(frozen=True)
class _Styles:
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


def _styles(wb: Workbook) -> _Styles:
    def fmt(**props: Any) -> Format:
        base: dict[str, Any] = {"font_name": FONT, "font_size": 11, "valign": "vcenter"}
        return wb.add_format(base | props)

    grid: dict[str, Any] = {"border": 1, "text_wrap": True}
    entry: dict[str, Any] = grid | {"locked": False}
    return _Styles(
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


def _new_workbook(path: Path, title: str) -> Workbook:
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
    _define(wb, layout.VERSION_PROPERTY, f'="{layout.TEMPLATE_VERSION}"')
    return wb


def _define(wb: Workbook, name: str, formula: str) -> None:
    # xlsxwriter only warns on a bad name; a template without its names is useless, so fail.
    if wb.define_name(name, formula) != 0:
        raise ValueError(f"cannot define name {name!r} = {formula!r}")


def _absolute(sheet: str, cell: str) -> str:
    row, col = cell_to_rc(cell)
    letters = rc_to_cell(0, col)[:-1]
    return f"='{sheet}'!${letters}${row + 1}"


def _define_input(wb: Workbook, sheet: str, name: str, cell: str) -> None:
    _define(wb, name, _absolute(sheet, cell))


def _set_widths(ws: Worksheet, widths: Iterable[float]) -> None:
    for col, width in enumerate(widths):
        ws.set_column(col, col, width)


def _protect(ws: Worksheet, *, allow_rows: bool = False) -> None:
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


def _print_setup(
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


def _put(
    ws: Worksheet, cell: str, value: Any, fmt: Format, *, to_col: int | None = None, rows: int = 1
) -> None:
    """Write one cell, or a merged block from ``cell`` to column ``to_col`` over ``rows`` rows."""
    row, col = cell_to_rc(cell)
    last_col = col if to_col is None else to_col
    if last_col == col and rows == 1:
        ws.write(row, col, value, fmt)
    else:
        ws.merge_range(row, col, row + rows - 1, last_col, value, fmt)


def _validate(
    ws: Worksheet, cell: str, options: dict[str, Any], *, to_col: int | None = None
) -> None:
    row, col = cell_to_rc(cell)
    if ws.data_validation(row, col, row, col if to_col is None else to_col, options) != 0:
        raise ValueError(f"bad data validation on {cell}: {options!r}")


def _message(title: str, text: str) -> dict[str, Any]:
    # Excel's limits: 32 characters of title, 255 of message.
    return {"input_title": title[:32], "input_message": text[:255]}


def _hint_only(title: str, text: str) -> dict[str, Any]:
    """A validation that accepts anything and only shows an input message."""
    return {"validate": "any", **_message(title, text)}


def _list_from(sheet: str, col: int, count: int) -> str:
    """Source of a list validation: a column of the hidden list sheet (no 255-char limit)."""
    letters = rc_to_cell(0, col)[:-1]
    return f"='{sheet}'!${letters}$2:${letters}${count + 1}"


# --- the refund form -------------------------------------------------------------------------

_LIST_BANK_COL = 0
_LIST_FAULT_COL = 1
# The department a text field's input message gives as its example (申报部门 is 客服部's own).
_DEPT_EXAMPLE = {"reporting_dept": "客服部", "handling_dept": "技术部"}


def _write_lists(wb: Workbook, styles: _Styles, config: Config) -> None:
    """The hidden sheet of drop-down choices: banks in column A, faults in column B."""
    ws = wb.add_worksheet(layout.LISTS_SHEET)
    ws.write(0, _LIST_BANK_COL, "支付银行", styles.label)
    ws.write(0, _LIST_FAULT_COL, "故障现象", styles.label)
    for i, bank in enumerate(config.banks, start=1):
        ws.write_string(i, _LIST_BANK_COL, bank)
    for i, fault in enumerate(config.faults, start=1):
        ws.write_string(i, _LIST_FAULT_COL, fault)
    ws.set_column(0, 1, 36)
    ws.hide()
    _protect(ws)


def _input_format(styles: _Styles, kind: Kind) -> Format:
    return {
        Kind.FORM_NO: styles.code,
        Kind.ORDER_NO: styles.code,
        Kind.MOBILE: styles.code,
        Kind.DATETIME: styles.datetime,
        Kind.AMOUNT: styles.amount,
        Kind.LONGTEXT: styles.long,
        Kind.APPROVAL: styles.center,
    }.get(kind, styles.text)


def _field_validation(field: Field, config: Config) -> dict[str, Any]:
    """Drop-down, range check or just an input message, by what the field holds."""
    title = field.anchor if field.kind is Kind.LONGTEXT and field.block else field.label
    lists = layout.LISTS_SHEET
    match field.kind:
        case Kind.APPROVAL:
            return {
                "validate": "list",
                "source": list(layout.APPROVAL_CHOICES),
                **_message(title, "请选择:同意 或 不同意"),
                "error_title": "领导审批",
                "error_message": "只能填写“同意”或“不同意”。",
            }
        case Kind.BANK:
            return {
                "validate": "list",
                "source": _list_from(lists, _LIST_BANK_COL, len(config.banks)),
                **_message(title, "请从下拉列表选择支付银行"),
                "error_title": "支付银行",
                "error_message": "请从下拉列表中选择支付银行。",
            }
        case Kind.FAULT:
            # Information only: a fault outside the list is still accepted after a reminder.
            return {
                "validate": "list",
                "source": _list_from(lists, _LIST_FAULT_COL, len(config.faults)),
                **_message(title, "请从下拉列表选择,列表中没有的可直接填写故障现象"),
                "error_type": "information",
                "error_title": "故障现象",
                "error_message": "该故障现象不在列表中,点“确定”保留所填内容。",
            }
        case Kind.AMOUNT:
            return {
                "validate": "decimal",
                "criteria": ">",
                "value": 0,
                **_message(title, "退款金额(元),大于 0,保留两位小数"),
                "error_title": "金额",
                "error_message": "金额必须是大于 0 的数字,例如 128.50",
            }
        case Kind.MOBILE:
            return {
                "validate": "length",
                "criteria": "==",
                "value": 11,
                **_message(title, "11位手机号码"),
                "error_type": "warning",
                "error_title": "手机号码",
                "error_message": "手机号码应为11位数字,确定要保留吗?",
            }
        case Kind.DATETIME:
            return _hint_only(title, DATETIME_HINT)
        case Kind.ORDER_NO:
            return _hint_only(title, "TK订单号;一个TK订单号写一张单子")
        case Kind.FORM_NO:
            return _hint_only(title, f"退款单编号,例如 {config.form_no_prefix}20261103-001")
        case Kind.PERSON:
            return _hint_only(title, "填写姓名")
        case Kind.LONGTEXT if field.block:
            return _hint_only(title, "说明原因,并制定解决方案")
        case Kind.LONGTEXT:
            return _hint_only(title, "客户的要求或意见")
        case _:
            return _hint_only(title, f"填写部门名称,例如 {_DEPT_EXAMPLE.get(field.name, '技术部')}")


def _write_refund_labels(ws: Worksheet, styles: _Styles) -> None:
    last = len(layout.COLUMNS) - 1
    _put(ws, "A1", layout.REFUND_SHEET, styles.title, to_col=last)
    cs_row = cell_to_rc(layout.FIELDS_BY_NAME["fault"].cell)[0] - 1  # the band above 故障现象
    _put(ws, rc_to_cell(cs_row, 0), layout.CS_SECTION_LABEL, styles.band, to_col=last)
    for field in layout.HEADER_FIELDS:
        row, col = cell_to_rc(field.cell)
        ws.write(row - field.offset[0], col - field.offset[1], field.label, styles.label)
    for block in layout.ALL_BLOCKS:
        _put(ws, f"A{block.row}", block.title, styles.band, to_col=last)
        for field in layout.BLOCK_FIELDS[block.role]:
            row, col = cell_to_rc(field.cell)
            if col > 0:  # admin_followup has no label of its own: the band is its label
                ws.write(row, col - 1, field.label, styles.label)


def _write_refund_inputs(wb: Workbook, ws: Worksheet, styles: _Styles, config: Config) -> None:
    last = len(layout.COLUMNS) - 1
    for field in layout.REFUND_FIELDS:
        to_col = last if field.name in _FULL_WIDTH else None
        value = "客服部" if field.name == "reporting_dept" else None
        _put(ws, field.cell, value, _input_format(styles, field.kind), to_col=to_col)
        _validate(ws, field.cell, _field_validation(field, config), to_col=to_col)
        _define_input(wb, layout.REFUND_SHEET, field.name, field.cell)


def _refund_row_heights(ws: Worksheet) -> None:
    ws.set_default_row(23)
    ws.set_row(0, 32)
    for name in ("fault", "customer_request"):
        ws.set_row(cell_to_rc(layout.FIELDS_BY_NAME[name].cell)[0], 30)
    for block in layout.ALL_BLOCKS:
        ws.set_row(block.row - 1, 20)
        ws.set_row(block.row, 66)  # the opinion: a few lines of handwriting-sized text


def write_refund_template(path: Path, config: Config) -> None:
    """退款申请表: one form per TK order number, printed on one A4 page."""
    wb = _new_workbook(path, layout.REFUND_SHEET)
    styles = _styles(wb)
    ws = wb.add_worksheet(layout.REFUND_SHEET)
    _write_lists(wb, styles, config)
    _set_widths(ws, REFUND_WIDTHS)
    _refund_row_heights(ws)
    _write_refund_labels(ws, styles)
    _write_refund_inputs(wb, ws, styles, config)
    _protect(ws)
    # One sheet of paper per form: it travels between departments on paper too.
    _print_setup(ws, layout.LAST_ROW - 1, len(layout.COLUMNS) - 1, landscape=False, pages_tall=1)
    ws.activate()
    wb.close()


# --- the handover sheet ----------------------------------------------------------------------


def _handover_cell(name: str) -> tuple[int, int]:
    return cell_to_rc(layout.HANDOVER_CELLS[name])


def _rule_height(text: str, *, width: float) -> float:
    """Row height (points) for wrapped Chinese text: LibreOffice does not autofit merged cells."""
    per_line = max(1, int(width / 1.8))  # a 10pt CJK character is ~1.8 width units
    lines = -(-len(text) // per_line)
    return 14.0 * lines + 4


def _write_handover_body(ws: Worksheet, styles: _Styles, config: Config) -> None:
    last = len(HANDOVER_WIDTHS) - 1
    labels = layout.HANDOVER_LABELS
    _put(ws, "A1", layout.HANDOVER_SHEET, styles.title, to_col=last)
    ws.set_row(0, 32)
    # Short fields: label directly left of the input.
    for name in ("filled_on", "handed_by", "taken_by", "shift", "cleaned", "signatures"):
        row, col = _handover_cell(name)
        ws.write(row, col - 1, labels[name], styles.label)
    shifts = ",".join(f"{s.name} {s.start:%H:%M}-{s.end:%H:%M}" for s in config.shifts)
    _put(ws, rc_to_cell(_handover_cell("shift")[0], 2), f"班次:{shifts}", styles.note, to_col=last)
    # 考勤: group label over five rows, each row a label and an input.
    first, _ = _handover_cell(_ATTENDANCE[0])
    _put(ws, rc_to_cell(first, 0), "考勤", styles.label, rows=len(_ATTENDANCE))
    for name in _ATTENDANCE:
        row, col = _handover_cell(name)
        ws.write(row, col - 1, labels[name], styles.label)
    # Long fields: label spanning the note row and the input row, note above the input.
    for name in ("work_done", "follow_ups"):
        row, col = _handover_cell(name)
        _put(ws, rc_to_cell(row - 1, 0), labels[name], styles.label, rows=2)
        _put(ws, rc_to_cell(row - 1, col), _HANDOVER_NOTES[name], styles.note, to_col=last)
        ws.set_row(row, 110)
    first, _ = _handover_cell(_FINANCE_ROWS[0])
    _put(ws, rc_to_cell(first - 1, 0), "退款单统计", styles.label, rows=2 * len(_FINANCE_ROWS))
    for name in _FINANCE_ROWS:
        row, col = _handover_cell(name)
        _put(ws, rc_to_cell(row - 1, col - 1), labels[name], styles.label, rows=2)
        _put(ws, rc_to_cell(row - 1, col), _HANDOVER_NOTES[name], styles.note, to_col=last)
        ws.set_row(row, 60)
    ws.set_row(_handover_cell("signatures")[0], 36)


def _put_printed_blanks(wb: Workbook, ws: Worksheet, cell: str, blanks: str, fmt: Format) -> None:
    """An input that prints as ``blanks`` while nobody has filled it in (see _PRINTED_BLANKS)."""
    row, col = cell_to_rc(cell)
    ws.write_formula(row, col, '=""', fmt, "")
    # A number format's fourth section is for text: the empty string "" shows as the blanks.
    shown = wb.add_format({"num_format": f';;;"{blanks}"'})
    criteria = f"=LEN({xl_rowcol_to_cell(row, col, row_abs=True, col_abs=True)})=0"
    ws.conditional_format(
        row, col, row, col, {"type": "formula", "criteria": criteria, "format": shown}
    )


def _write_handover_inputs(wb: Workbook, ws: Worksheet, styles: _Styles) -> None:
    last = len(HANDOVER_WIDTHS) - 1
    single_cell = {"filled_on", "handed_by", "taken_by", "shift"}
    for name in layout.HANDOVER_NAMES:
        cell = layout.HANDOVER_CELLS[name]
        to_col = None if name in single_cell else last
        fmt = {"filled_on": styles.date, "shift": styles.center}.get(name, styles.long)
        if name in _PRINTED_BLANKS:
            _put_printed_blanks(wb, ws, cell, _PRINTED_BLANKS[name], fmt)
        else:
            _put(ws, cell, None, fmt, to_col=to_col)
        title = layout.HANDOVER_LABELS[name]
        if name == "shift":
            options: dict[str, Any] = {
                "validate": "list",
                "source": list(layout.SHIFTS),
                **_message(title, f"{REQUIRED_HINT}。请选择:{'或'.join(layout.SHIFTS)}"),
            }
        elif name == "filled_on":
            options = _hint_only(title, f"{REQUIRED_HINT}。{DATE_HINT}")
        else:
            options = _hint_only(title, REQUIRED_HINT)
        _validate(ws, cell, options, to_col=to_col)
        _define_input(wb, layout.HANDOVER_SHEET, name, cell)


def _write_handover_rules(ws: Worksheet, styles: _Styles, first_row: int) -> int:
    """The rules a)–d) under the sheet, as printed on paper; returns the last row used."""
    last = len(HANDOVER_WIDTHS) - 1
    width = sum(HANDOVER_WIDTHS)
    ws.merge_range(first_row, 0, first_row, last, HANDOVER_RULES_TITLE, styles.band)
    for i, rule in enumerate(HANDOVER_RULES, start=first_row + 1):
        ws.merge_range(i, 0, i, last, rule, styles.rule)
        ws.set_row(i, _rule_height(rule, width=width))
    return first_row + len(HANDOVER_RULES)


def write_handover_template(path: Path, config: Config) -> None:
    """客服部值班交接单: filled at every shift change."""
    wb = _new_workbook(path, layout.HANDOVER_SHEET)
    styles = _styles(wb)
    ws = wb.add_worksheet(layout.HANDOVER_SHEET)
    _set_widths(ws, HANDOVER_WIDTHS)
    ws.set_default_row(21)
    _write_handover_body(ws, styles, config)
    _write_handover_inputs(wb, ws, styles)
    last_input = max(cell_to_rc(c)[0] for c in layout.HANDOVER_CELLS.values())
    last_row = _write_handover_rules(ws, styles, last_input + 2)
    _protect(ws)
    _print_setup(ws, last_row, len(HANDOVER_WIDTHS) - 1, landscape=False)
    wb.close()


# --- the statistics tables -------------------------------------------------------------------


def _stats_data_format(styles: _Styles, kind: str) -> Format:
    return {
        "int": styles.integer,
        "date": styles.date,
        "datetime": styles.datetime,
        "code": styles.code,
        "amount": styles.amount,
    }.get(kind, styles.text)


def _write_stats_header(
    ws: Worksheet, styles: _Styles, title: str, dept: str, ncols: int, cells: dict[str, str]
) -> None:
    _put(ws, "A1", title, styles.title, to_col=ncols - 1)
    ws.set_row(0, 32)
    for name, label in layout.STATS_LABELS.items():
        row, col = cell_to_rc(cells[name])
        ws.write(row, col - 1, label, styles.label)
    # 部门 sits between 编号 and 制表人, over the two columns after table_no's input.
    row, col = cell_to_rc(cells["table_no"])
    ws.merge_range(row, col + 2, row, col + 3, f"部门:{dept}", styles.fixed)


def _write_stats_inputs(
    wb: Workbook, ws: Worksheet, styles: _Styles, sheet: str, cells: dict[str, str]
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
        _put(ws, cell, None, fmt, to_col=col + 1)
        _validate(ws, cell, _hint_only(layout.STATS_LABELS[name], hints[name]), to_col=col + 1)
        _define_input(wb, sheet, name, cell)


def _write_stats_grid(
    ws: Worksheet, styles: _Styles, columns: tuple[str, ...], data_rows: int, total_value: float
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
            first, amount, total - 1, amount, amount_check | _message("金额", "退款金额(元)")
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
    wb = _new_workbook(path, sheet)
    styles = _styles(wb)
    ws = wb.add_worksheet(sheet)
    ws.set_default_row(24)
    _write_stats_grid(ws, styles, columns, data_rows, filled.total if filled else 0)
    _write_stats_header(ws, styles, sheet, dept, len(columns), cells)
    _write_stats_inputs(wb, ws, styles, sheet, cells)
    if filled:
        _fill_stats(ws, styles, columns, filled, cells)
    ws.freeze_panes(layout.STATS_FIRST_DATA_ROW - 1, 0)
    _protect(ws, allow_rows=True)
    last_row = cell_to_rc(cells["approver"])[0]
    _print_setup(ws, last_row, len(columns) - 1, landscape=True)
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
    styles: _Styles,
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


def write_templates(dest_dir: Path, config: Config) -> list[Path]:
    """Write all four templates into ``dest_dir`` (created if missing); return their paths."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    writers = (
        (layout.REFUND_TEMPLATE_FILE, write_refund_template),
        (layout.HANDOVER_TEMPLATE_FILE, write_handover_template),
        (layout.CS_STATS_TEMPLATE_FILE, write_cs_stats_template),
        (layout.FINANCE_STATS_TEMPLATE_FILE, write_finance_stats_template),
    )
    paths = []
    for filename, write in writers:
        path = dest_dir / filename
        write(path, config)
        paths.append(path)
    return paths
