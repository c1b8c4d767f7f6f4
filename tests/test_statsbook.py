"""The statistics tables and the monthly workbook from synthetic ledgers: long months, text
people typed, a refund that skipped a step, a table whose 合计 was tampered with."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from ledgerfill import Synthetic, add_refunds, month_of_refunds
from refundflow import layout
from refundflow.config import Config
from refundflow.ledger import Ledger
from refundflow.monthend import check_tables, produce
from refundflow.monthly import Tables
from refundflow.reports import Month, collect, cs_table, finance_table, read_stats_table
from refundflow.routing import Step
from refundflow.workspace import Workspace, init_workspace

NOVEMBER = Month(2026, 11)
AS_OF = dt.datetime(2026, 12, 1, 8, 0)


def workspace_with(tmp_path: Path, refunds: list[Synthetic]) -> Workspace:
    workspace = Workspace(tmp_path / "ws", Config())
    init_workspace(workspace)
    ledger = Ledger(workspace.ledger_path)
    try:
        add_refunds(ledger, refunds)
    finally:
        ledger.close()
    return workspace


def test_a_month_longer_than_the_template_comes_out_whole(tmp_path: Path) -> None:
    refunds = month_of_refunds(45)
    workspace = workspace_with(tmp_path, refunds)
    produce(workspace, NOVEMBER, now=AS_OF)
    path = workspace.outbox("cs") / "客服退单统计表-2026-11.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book.active
    first = layout.STATS_FIRST_DATA_ROW
    total_row = first + 45
    assert [sheet.cell(first + i, 1).value for i in range(45)] == list(range(1, 46))
    assert sheet.cell(total_row, 1).value == layout.TOTAL_LABEL
    assert sheet.cell(total_row, 7).value == f"=SUM(G{first}:G{total_row - 1})"
    assert book.defined_names["approver"].attr_text == f"'客服退单统计表'!$J${total_row + 2}"
    assert sheet.cell(total_row + 2, 9).value == "审批人"
    # the print setup of the template: A4 landscape, titles on every page, never shrunk to
    # fit the length of the month
    assert sheet.page_setup.orientation == "landscape"
    assert sheet.page_setup.paperSize == 9
    assert sheet.print_title_rows == f"${layout.STATS_HEADER_ROW}:${layout.STATS_HEADER_ROW}"
    assert sheet.page_setup.fitToHeight == 0
    back = read_stats_table(path)  # calamine: the cached value of the SUM
    want = sum((Decimal(r.amount) for r in refunds), Decimal(0))
    assert Decimal(str(back.total)).quantize(Decimal("0.01")) == want
    assert len(back.rows) == 45


def test_text_people_typed_stays_text_in_the_tables_and_the_workbook(tmp_path: Path) -> None:
    typed = '=HYPERLINK("http://example.com","点这里")'
    refunds = [
        Synthetic("TKD20261103-001", "TK1", dt.datetime(2026, 11, 3, 9), "10.00",
                  bank="+1", customer_request=typed),
    ]  # fmt: skip
    workspace = workspace_with(tmp_path, refunds)
    produce(workspace, NOVEMBER, now=AS_OF)
    cs = openpyxl.load_workbook(workspace.outbox("cs") / "客服退单统计表-2026-11.xlsx").active
    bank = cs.cell(layout.STATS_FIRST_DATA_ROW, layout.CS_STATS_COLUMNS.index("开户行") + 1)
    assert (bank.value, bank.data_type) == ("+1", "s")
    detail = openpyxl.load_workbook(workspace.outbox("admin") / "月度退款报表-2026-11.xlsx")["明细"]
    header = [c.value for c in detail[1]]
    request = detail.cell(2, header.index("客户意见") + 1)
    assert (request.value, request.data_type) == (typed, "s")


def test_a_refund_that_skipped_a_step_is_named_in_the_check_sheet(tmp_path: Path) -> None:
    skipped = Synthetic(
        "TKD20261104-001", "TK2", dt.datetime(2026, 11, 4, 9), "20.00",
        skip=frozenset({Step.AT_ACCOUNTANT}),
    )  # fmt: skip
    workspace = workspace_with(tmp_path, [*month_of_refunds(3), skipped])
    produce(workspace, NOVEMBER, now=AS_OF)
    book = workspace.outbox("admin") / "月度退款报表-2026-11.xlsx"
    check = pd.read_excel(book, sheet_name="核对", header=2, engine="calamine", dtype=str)
    assert check[["表", "退单编号", "问题"]].to_dict("records") == [
        {"表": "账本", "退单编号": "TKD20261104-001", "问题": "未经过必经环节:会计复核"}
    ]
    sheet = openpyxl.load_workbook(book)["核对"]
    assert sheet["A1"].value == "核对发现 1 处问题,逐条列在下面:"


@pytest.mark.parametrize(
    ("formula", "problem"),
    [
        pytest.param(None, None, id="plain-sum-without-cached-value-agrees"),
        pytest.param("=SUM(G4:G5)", "合计与各行金额之和不符", id="sum-over-part-of-the-rows"),
        pytest.param(999.0, "合计与各行金额之和不符", id="total-typed-over"),
    ],
)
def test_a_tampered_total_is_found(
    tmp_path: Path, formula: str | float | None, problem: str | None
) -> None:
    workspace = workspace_with(tmp_path, month_of_refunds(3))
    produce(workspace, NOVEMBER, now=AS_OF)
    cs_file = workspace.outbox("cs") / "客服退单统计表-2026-11.xlsx"
    fin_file = workspace.outbox(Config().report_finance_compiler) / "财务退单统计表-2026-11.xlsx"
    book = openpyxl.load_workbook(cs_file)  # openpyxl keeps formulas, drops cached values
    if formula is not None:
        book.active.cell(layout.STATS_TOTAL_ROW, 7).value = formula
    book.save(cs_file)
    ledger = Ledger(workspace.ledger_path)
    try:
        data = collect(ledger, NOVEMBER, as_of=AS_OF, config=Config())
    finally:
        ledger.close()
    issues = check_tables(
        cs_file, fin_file, Tables(cs_table(data), finance_table(data), pd.DataFrame())
    )
    assert list(issues["问题"]) == ([problem] if problem else [])
