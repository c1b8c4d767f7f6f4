"""客服部值班交接单: the shift handover sheet, with the procedure's rules printed below it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from .. import layout
from ..config import Config
from ..layout import cell_to_rc, rc_to_cell
from .book import (
    DATE_HINT,
    REQUIRED_HINT,
    Styles,
    define_input,
    hint_only,
    make_styles,
    message,
    new_workbook,
    print_setup,
    protect,
    put,
    set_widths,
    validate,
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


def _handover_cell(name: str) -> tuple[int, int]:
    return cell_to_rc(layout.HANDOVER_CELLS[name])


def _rule_height(text: str, *, width: float) -> float:
    """Row height (points) for wrapped Chinese text: LibreOffice does not autofit merged cells."""
    per_line = max(1, int(width / 1.8))  # a 10pt CJK character is ~1.8 width units
    lines = -(-len(text) // per_line)
    return 14.0 * lines + 4


def _write_handover_body(ws: Worksheet, styles: Styles, config: Config) -> None:
    last = len(HANDOVER_WIDTHS) - 1
    labels = layout.HANDOVER_LABELS
    put(ws, "A1", layout.HANDOVER_SHEET, styles.title, to_col=last)
    ws.set_row(0, 32)
    # Short fields: label directly left of the input.
    for name in ("filled_on", "handed_by", "taken_by", "shift", "cleaned", "signatures"):
        row, col = _handover_cell(name)
        ws.write(row, col - 1, labels[name], styles.label)
    shifts = ",".join(f"{s.name} {s.start:%H:%M}-{s.end:%H:%M}" for s in config.shifts)
    put(ws, rc_to_cell(_handover_cell("shift")[0], 2), f"班次:{shifts}", styles.note, to_col=last)
    # 考勤: group label over five rows, each row a label and an input.
    first, _ = _handover_cell(_ATTENDANCE[0])
    put(ws, rc_to_cell(first, 0), "考勤", styles.label, rows=len(_ATTENDANCE))
    for name in _ATTENDANCE:
        row, col = _handover_cell(name)
        ws.write(row, col - 1, labels[name], styles.label)
    # Long fields: label spanning the note row and the input row, note above the input.
    for name in ("work_done", "follow_ups"):
        row, col = _handover_cell(name)
        put(ws, rc_to_cell(row - 1, 0), labels[name], styles.label, rows=2)
        put(ws, rc_to_cell(row - 1, col), _HANDOVER_NOTES[name], styles.note, to_col=last)
        ws.set_row(row, 110)
    first, _ = _handover_cell(_FINANCE_ROWS[0])
    put(ws, rc_to_cell(first - 1, 0), "退款单统计", styles.label, rows=2 * len(_FINANCE_ROWS))
    for name in _FINANCE_ROWS:
        row, col = _handover_cell(name)
        put(ws, rc_to_cell(row - 1, col - 1), labels[name], styles.label, rows=2)
        put(ws, rc_to_cell(row - 1, col), _HANDOVER_NOTES[name], styles.note, to_col=last)
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


def _write_handover_inputs(wb: Workbook, ws: Worksheet, styles: Styles) -> None:
    last = len(HANDOVER_WIDTHS) - 1
    single_cell = {"filled_on", "handed_by", "taken_by", "shift"}
    for name in layout.HANDOVER_NAMES:
        cell = layout.HANDOVER_CELLS[name]
        to_col = None if name in single_cell else last
        fmt = {"filled_on": styles.date, "shift": styles.center}.get(name, styles.long)
        if name in _PRINTED_BLANKS:
            _put_printed_blanks(wb, ws, cell, _PRINTED_BLANKS[name], fmt)
        else:
            put(ws, cell, None, fmt, to_col=to_col)
        title = layout.HANDOVER_LABELS[name]
        if name == "shift":
            options: dict[str, Any] = {
                "validate": "list",
                "source": list(layout.SHIFTS),
                **message(title, f"{REQUIRED_HINT}。请选择:{'或'.join(layout.SHIFTS)}"),
            }
        elif name == "filled_on":
            options = hint_only(title, f"{REQUIRED_HINT}。{DATE_HINT}")
        else:
            options = hint_only(title, REQUIRED_HINT)
        validate(ws, cell, options, to_col=to_col)
        define_input(wb, layout.HANDOVER_SHEET, name, cell)


def _write_handover_rules(ws: Worksheet, styles: Styles, first_row: int) -> int:
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
    wb = new_workbook(path, layout.HANDOVER_SHEET)
    styles = make_styles(wb)
    ws = wb.add_worksheet(layout.HANDOVER_SHEET)
    set_widths(ws, HANDOVER_WIDTHS)
    ws.set_default_row(21)
    _write_handover_body(ws, styles, config)
    _write_handover_inputs(wb, ws, styles)
    last_input = max(cell_to_rc(c)[0] for c in layout.HANDOVER_CELLS.values())
    last_row = _write_handover_rules(ws, styles, last_input + 2)
    protect(ws)
    print_setup(ws, last_row, len(HANDOVER_WIDTHS) - 1, landscape=False)
    wb.close()
