"""退款申请表: the refund form, one per TK order number, printed on one A4 page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from .. import layout
from ..config import Config
from ..layout import Field, Kind, cell_to_rc, rc_to_cell
from .book import (
    DATETIME_HINT,
    Styles,
    define_input,
    hint_only,
    list_from,
    make_styles,
    message,
    new_workbook,
    print_setup,
    protect,
    put,
    set_widths,
    validate,
)

# The refund form: six columns A:F, labels in A/C/E, inputs in B/D/F.
REFUND_WIDTHS = (15.0, 19.0, 11.0, 19.0, 13.0, 19.0)
# Inputs that span the rest of their row (B..F or A..F), not just one cell.
_FULL_WIDTH = frozenset(
    {"fault", "admin_followup", *(f"{b.role}_opinion" for b in layout.OPINION_BLOCKS)}
)


_LIST_BANK_COL = 0
_LIST_FAULT_COL = 1
# The department a text field's input message gives as its example (申报部门 is 客服部's own).
_DEPT_EXAMPLE = {"reporting_dept": "客服部", "handling_dept": "技术部"}


def _write_lists(wb: Workbook, styles: Styles, config: Config) -> None:
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
    protect(ws)


def _input_format(styles: Styles, kind: Kind) -> Format:
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
                **message(title, "请选择:同意 或 不同意"),
                "error_title": "领导审批",
                "error_message": "只能填写“同意”或“不同意”。",
            }
        case Kind.BANK:
            return {
                "validate": "list",
                "source": list_from(lists, _LIST_BANK_COL, len(config.banks)),
                **message(title, "请从下拉列表选择支付银行"),
                "error_title": "支付银行",
                "error_message": "请从下拉列表中选择支付银行。",
            }
        case Kind.FAULT:
            # Information only: a fault outside the list is still accepted after a reminder.
            return {
                "validate": "list",
                "source": list_from(lists, _LIST_FAULT_COL, len(config.faults)),
                **message(title, "请从下拉列表选择,列表中没有的可直接填写故障现象"),
                "error_type": "information",
                "error_title": "故障现象",
                "error_message": "该故障现象不在列表中,点“确定”保留所填内容。",
            }
        case Kind.AMOUNT:
            return {
                "validate": "decimal",
                "criteria": ">",
                "value": 0,
                **message(title, "退款金额(元),大于 0,保留两位小数"),
                "error_title": "金额",
                "error_message": "金额必须是大于 0 的数字,例如 128.50",
            }
        case Kind.MOBILE:
            return {
                "validate": "length",
                "criteria": "==",
                "value": 11,
                **message(title, "11位手机号码"),
                "error_type": "warning",
                "error_title": "手机号码",
                "error_message": "手机号码应为11位数字,确定要保留吗?",
            }
        case Kind.DATETIME:
            return hint_only(title, DATETIME_HINT)
        case Kind.ORDER_NO:
            return hint_only(title, "TK订单号;一个TK订单号写一张单子")
        case Kind.FORM_NO:
            return hint_only(title, f"退款单编号,例如 {config.form_no_prefix}20261103-001")
        case Kind.PERSON:
            return hint_only(title, "填写姓名")
        case Kind.LONGTEXT if field.block:
            return hint_only(title, "说明原因,并制定解决方案")
        case Kind.LONGTEXT:
            return hint_only(title, "客户的要求或意见")
        case _:
            return hint_only(title, f"填写部门名称,例如 {_DEPT_EXAMPLE.get(field.name, '技术部')}")


def _write_refund_labels(ws: Worksheet, styles: Styles) -> None:
    last = len(layout.COLUMNS) - 1
    put(ws, "A1", layout.REFUND_SHEET, styles.title, to_col=last)
    cs_row = cell_to_rc(layout.FIELDS_BY_NAME["fault"].cell)[0] - 1  # the band above 故障现象
    put(ws, rc_to_cell(cs_row, 0), layout.CS_SECTION_LABEL, styles.band, to_col=last)
    for field in layout.HEADER_FIELDS:
        row, col = cell_to_rc(field.cell)
        ws.write(row - field.offset[0], col - field.offset[1], field.label, styles.label)
    for block in layout.ALL_BLOCKS:
        put(ws, f"A{block.row}", block.title, styles.band, to_col=last)
        for field in layout.BLOCK_FIELDS[block.role]:
            row, col = cell_to_rc(field.cell)
            if col > 0:  # admin_followup has no label of its own: the band is its label
                ws.write(row, col - 1, field.label, styles.label)


def _write_refund_inputs(wb: Workbook, ws: Worksheet, styles: Styles, config: Config) -> None:
    last = len(layout.COLUMNS) - 1
    for field in layout.REFUND_FIELDS:
        to_col = last if field.name in _FULL_WIDTH else None
        value = "客服部" if field.name == "reporting_dept" else None
        put(ws, field.cell, value, _input_format(styles, field.kind), to_col=to_col)
        validate(ws, field.cell, _field_validation(field, config), to_col=to_col)
        define_input(wb, layout.REFUND_SHEET, field.name, field.cell)


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
    wb = new_workbook(path, layout.REFUND_SHEET)
    styles = make_styles(wb)
    ws = wb.add_worksheet(layout.REFUND_SHEET)
    _write_lists(wb, styles, config)
    set_widths(ws, REFUND_WIDTHS)
    _refund_row_heights(ws)
    _write_refund_labels(ws, styles)
    _write_refund_inputs(wb, ws, styles, config)
    protect(ws)
    # One sheet of paper per form: it travels between departments on paper too.
    print_setup(ws, layout.LAST_ROW - 1, len(layout.COLUMNS) - 1, landscape=False, pages_tall=1)
    ws.activate()
    wb.close()
