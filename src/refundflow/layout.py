"""Where every field of the paper forms lives in the Excel templates.

This is the single source of truth shared by the template writer (:mod:`templates`) and the
form reader (:mod:`forms`): the Chinese label printed on the form, the workbook-scope defined
name of the input cell, its cell, and how to find it again from a label when a spreadsheet
program dropped the names (``anchor`` + ``offset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TEMPLATE_VERSION = "refundflow-2026.1"
"""Stamped into every template (custom document property and a defined name)."""

VERSION_PROPERTY = "refundflow_template"
"""Name of the custom document property (and of the defined name) carrying the version."""

REFUND_SHEET = "退款申请表"
HANDOVER_SHEET = "客服部值班交接单"
CS_STATS_SHEET = "客服退单统计表"
FINANCE_STATS_SHEET = "财务退单统计表"
LISTS_SHEET = "选项"  # hidden sheet holding the drop-down lists
HISTORY_SHEET = "流转记录"  # added by the watcher to every routed copy
RETURN_SHEET = "退回原因"  # added by the watcher, first sheet, to every returned copy
# The 流转记录 header row ends with this label and the copy's token: a step that changes no
# field proves with it that the file is the copy we delivered last (see copytoken.py).
COPY_TOKEN_LABEL = "副本凭证:"

REFUND_TEMPLATE_FILE = "退款申请表.xlsx"
HANDOVER_TEMPLATE_FILE = "客服部值班交接单.xlsx"
CS_STATS_TEMPLATE_FILE = "客服退单统计表.xlsx"
FINANCE_STATS_TEMPLATE_FILE = "财务退单统计表.xlsx"

APPROVE = "同意"
REJECT = "不同意"
APPROVAL_CHOICES = (APPROVE, REJECT)

OPINION_LABEL = "处理意见:(说明原因,并制定解决方案)"
BY_LABEL = "执行人"
DATE_LABEL = "日期"
APPROVAL_LABEL = "领导审批"
CS_SECTION_LABEL = "客服部填写"
ADMIN_BLOCK_TITLE = "后期执行情况跟踪:行政部填写"


class Kind(StrEnum):
    """How a cell's value is read and checked."""

    TEXT = "text"
    LONGTEXT = "longtext"
    FORM_NO = "form_no"
    ORDER_NO = "order_no"
    DATETIME = "datetime"
    AMOUNT = "amount"
    MOBILE = "mobile"
    BANK = "bank"
    FAULT = "fault"
    PERSON = "person"
    APPROVAL = "approval"


@dataclass(frozen=True)
class Field:
    name: str  # workbook-scope defined name of the input cell
    label: str  # the label as printed on the form (what staff read)
    cell: str  # A1 address on the form's sheet in the current template
    kind: Kind
    anchor: str  # a label cell, unique on the sheet, to find the field without names
    offset: tuple[int, int]  # (rows, columns) from the anchor cell to the input cell
    block: str | None = None  # role key of the opinion block, None for the header


@dataclass(frozen=True)
class Block:
    """One of the six opinion blocks, or the administration follow-up block."""

    role: str  # role key: cs, tech, cashier, accountant, director, president, admin
    title: str  # band title printed on the form
    row: int  # 1-based row of the band title


def _header(name: str, label: str, cell: str, kind: Kind) -> Field:
    return Field(name, label, cell, kind, anchor=label, offset=(0, 1))


HEADER_FIELDS: tuple[Field, ...] = (
    _header("form_no", "编号", "B2", Kind.FORM_NO),
    _header("reporting_dept", "申报部门", "D2", Kind.TEXT),
    _header("reported_at", "上报时间", "F2", Kind.DATETIME),
    _header("fault", "故障现象", "B4", Kind.FAULT),
    _header("mobile", "手机号码", "B5", Kind.MOBILE),
    _header("purchase_time", "购买时间", "D5", Kind.DATETIME),
    _header("bank", "支付银行", "F5", Kind.BANK),
    _header("order_no", "订单号", "B6", Kind.ORDER_NO),
    _header("amount", "金额", "D6", Kind.AMOUNT),
    _header("customer_request", "客户意见", "F6", Kind.LONGTEXT),
    _header("submitter", "提交人", "B7", Kind.PERSON),
    _header("submitted_at", "时间", "D7", Kind.DATETIME),
    _header("handling_dept", "问题处理部门", "F7", Kind.TEXT),
)

OPINION_BLOCKS: tuple[Block, ...] = tuple(
    Block(role, title, 8 + 3 * i)
    for i, (role, title) in enumerate(
        [
            ("cs", "客服部处理意见"),
            ("tech", "技术部处理意见"),
            ("cashier", "出纳处理意见"),
            ("accountant", "会计处理意见"),
            ("director", "财务总监处理意见"),
            ("president", "总裁处理意见"),
        ]
    )
)
ADMIN_BLOCK = Block("admin", ADMIN_BLOCK_TITLE, 8 + 3 * len(OPINION_BLOCKS))
ALL_BLOCKS: tuple[Block, ...] = (*OPINION_BLOCKS, ADMIN_BLOCK)
LAST_ROW = ADMIN_BLOCK.row + 2
COLUMNS = "ABCDEF"


def _block_fields(block: Block) -> tuple[Field, ...]:
    r, role, title = block.row, block.role, block.title
    first = (
        Field(f"{role}_opinion", OPINION_LABEL, f"B{r + 1}", Kind.LONGTEXT, title, (1, 1), role)
        if role != "admin"
        else Field("admin_followup", title, f"A{r + 1}", Kind.LONGTEXT, title, (1, 0), role)
    )
    return (
        first,
        Field(f"{role}_by", BY_LABEL, f"B{r + 2}", Kind.PERSON, title, (2, 1), role),
        Field(f"{role}_date", DATE_LABEL, f"D{r + 2}", Kind.DATETIME, title, (2, 3), role),
        Field(f"{role}_approval", APPROVAL_LABEL, f"F{r + 2}", Kind.APPROVAL, title, (2, 5), role),
    )


BLOCK_FIELDS: dict[str, tuple[Field, ...]] = {b.role: _block_fields(b) for b in ALL_BLOCKS}
REFUND_FIELDS: tuple[Field, ...] = HEADER_FIELDS + tuple(
    f for b in ALL_BLOCKS for f in BLOCK_FIELDS[b.role]
)
FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in REFUND_FIELDS}

# Handover sheet (客服部值班交接单): defined names of the input cells.
HANDOVER_NAMES: tuple[str, ...] = (
    "filled_on", "handed_by", "taken_by", "shift",
    "att_expected", "att_present", "att_late", "att_left_early", "att_absent",
    "work_done", "follow_ups", "fin_processed", "fin_submitted", "fin_returned",
    "cleaned", "signatures",
)  # fmt: skip
SHIFTS = ("白班", "中班")

# Statistics tables: header names and the columns, exactly as printed, in order.
STATS_NAMES: tuple[str, ...] = ("table_no", "compiler", "compiled_on", "approver")
CS_STATS_COLUMNS: tuple[str, ...] = (
    "序号", "提交日期", "退单编号", "订单号", "联系方式", "开户行", "金额", "提交人",
    "提交技术部时间", "提交财务时间", "财务反馈时间", "反馈用户时间", "备注",
)  # fmt: skip
FINANCE_STATS_COLUMNS: tuple[str, ...] = (
    "序号", "提交日期", "退单编号", "订单号", "开户行", "金额", "提交人",
    "出纳核实", "会计复核", "财务总监审核", "反馈客服", "备注",
)  # fmt: skip
TOTAL_LABEL = "合计"


def cell_to_rc(cell: str) -> tuple[int, int]:
    """``"B12"`` -> ``(11, 1)``: zero-based (row, column)."""
    letters = cell.rstrip("0123456789")
    col = 0
    for ch in letters.upper():
        col = col * 26 + (ord(ch) - 64)
    return int(cell[len(letters) :]) - 1, col - 1


def rc_to_cell(row: int, col: int) -> str:
    """``(11, 1)`` -> ``"B12"``: inverse of :func:`cell_to_rc`."""
    letters = ""
    n = col + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{row + 1}"


# --- Handover sheet (客服部值班交接单): where each input cell is, and its printed label. ---------
HANDOVER_CELLS: dict[str, str] = {
    "filled_on": "B2", "handed_by": "D2", "taken_by": "F2", "shift": "B3",
    "att_expected": "C4", "att_present": "C5", "att_late": "C6", "att_left_early": "C7",
    "att_absent": "C8", "work_done": "B10", "follow_ups": "B12",
    "fin_processed": "C14", "fin_submitted": "C16", "fin_returned": "C18",
    "cleaned": "B19", "signatures": "B20",
}  # fmt: skip
"""Top-left cell of each input on the handover sheet (the defined name points here)."""
HANDOVER_LABELS: dict[str, str] = {
    "filled_on": "填表时间", "handed_by": "交接人", "taken_by": "接交人", "shift": "班次",
    "att_expected": "应到值班人员", "att_present": "实到值班人员", "att_late": "迟到人员",
    "att_left_early": "早退人员", "att_absent": "旷工人员", "work_done": "完成工作明细",
    "follow_ups": "需其他人员跟进交接明细", "fin_processed": "财务已处理的订单",
    "fin_submitted": "已提交财务的订单", "fin_returned": "财务退回的订单",
    "cleaned": "卫生是否打扫", "signatures": "相关责任人签字确认",
}  # fmt: skip
"""The label printed for each handover input (left of it, or above its note for the long ones)."""

# --- Statistics tables (客服退单统计表 / 财务退单统计表): same geometry for both. ---------------
STATS_CELLS: dict[str, str] = {
    "table_no": "B2", "compiler": "G2", "compiled_on": "J2", "approver": "J26",
}  # fmt: skip
"""Top-left cell of each header/footer input (the defined name points here)."""
STATS_LABELS: dict[str, str] = {
    "table_no": "编号", "compiler": "制表人", "compiled_on": "制表日期", "approver": "审批人",
}  # fmt: skip
"""The label printed directly left of each header/footer input."""
STATS_HEADER_ROW = 3
"""1-based row of the column header row (CS_STATS_COLUMNS / FINANCE_STATS_COLUMNS from column A)."""
STATS_FIRST_DATA_ROW = 4
"""1-based row of the first data row."""
STATS_DATA_ROWS = 20
"""Empty data rows in the template; a report inserts more rows above the total row if needed."""
STATS_TOTAL_ROW = STATS_FIRST_DATA_ROW + STATS_DATA_ROWS
"""1-based row of the 合计 row (TOTAL_LABEL in column A, SUM under 金额)."""
STATS_AMOUNT_COLUMN = "金额"


def stats_cells(data_rows: int) -> dict[str, str]:
    """STATS_CELLS for a table with ``data_rows`` data rows: the footer moves down with 合计."""
    row, col = cell_to_rc(STATS_CELLS["approver"])
    moved = rc_to_cell(row + data_rows - STATS_DATA_ROWS, col)
    return {**STATS_CELLS, "approver": moved}
