"""The statistics tables and the monthly workbook from synthetic ledgers: long months, text
people typed, a refund that skipped a step, a table whose 合计 was tampered with."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import openpyxl
import openpyxl.utils
import pandas as pd
import pytest

from ledgerfill import Synthetic, add_refunds, month_of_refunds
from refundflow import layout
from refundflow.config import Config
from refundflow.errors import FormReadError
from refundflow.ledger import Ledger
from refundflow.monthend import check_tables, produce
from refundflow.monthly import Tables, write_monthly
from refundflow.reports import (
    Month,
    collect,
    cs_table,
    finance_table,
    read_stats_table,
    reconcile,
    total,
)
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


def _expected(tmp_path: Path) -> pd.DataFrame:
    workspace = workspace_with(tmp_path, month_of_refunds(4))
    ledger = Ledger(workspace.ledger_path)
    try:
        return cs_table(collect(ledger, NOVEMBER, as_of=AS_OF, config=Config()))
    finally:
        ledger.close()


def _drop_first(t: pd.DataFrame) -> pd.DataFrame:
    return t.iloc[1:]


def _add_foreign(t: pd.DataFrame) -> pd.DataFrame:
    extra = t.iloc[[0]].assign(退单编号="TKD20261131-999", 金额=5.0)
    return pd.concat([t, extra], ignore_index=True)


def _set(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(t: pd.DataFrame) -> pd.DataFrame:
        t = t.copy()
        t.loc[1, column] = value
        return t

    return edit


def _repeat_second(t: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([t, t.iloc[[1]]], ignore_index=True)


@pytest.mark.parametrize(
    ("edit", "problem", "form_no"),
    [
        pytest.param(_drop_first, "账本中有,表中缺少", 0, id="refund-missing-from-table"),
        pytest.param(
            _add_foreign, "表中有,账本中没有这张退款单", None, id="row-matching-no-refund"
        ),
        pytest.param(_set("金额", 1.0), "金额不一致", 1, id="amount"),
        pytest.param(_set("订单号", "TK000"), "订单号不一致", 1, id="order-number"),
        pytest.param(_set("开户行", "交通银行"), "开户行不一致", 1, id="bank"),
        pytest.param(_repeat_second, "表中重复列出", 1, id="listed-twice"),
    ],
)
def test_check_names_each_kind_of_difference(
    tmp_path: Path,
    edit: Callable[[pd.DataFrame], pd.DataFrame],
    problem: str,
    form_no: int | None,
) -> None:
    expected = _expected(tmp_path)
    table = edit(expected)
    issues = reconcile(table, total(table["金额"]), name="客服退单统计表", expected=expected)
    want = "TKD20261131-999" if form_no is None else expected.iloc[form_no]["退单编号"]
    assert issues[["退单编号", "问题"]].values.tolist() == [[want, problem]]


def test_check_of_the_generated_table_is_empty(tmp_path: Path) -> None:
    expected = _expected(tmp_path)
    issues = reconcile(expected, total(expected["金额"]), name="客服退单统计表", expected=expected)
    assert issues.empty


def test_summary_gives_each_steps_median_and_90th_percentile_against_its_limit(
    tmp_path: Path,
) -> None:
    workspace = workspace_with(tmp_path, month_of_refunds(10))
    produce(workspace, NOVEMBER, now=AS_OF)
    book = workspace.outbox("admin") / "月度退款报表-2026-11.xlsx"
    summary = pd.read_excel(book, sheet_name="汇总", header=None, engine="calamine", dtype=object)
    start = summary.index[summary[0] == "环节"][0]
    steps = summary.iloc[start + 1 : start + 12, :7]
    steps.columns = ["环节", "时限", "次数", "中位数", "p90", "超时", "时限内比例"]
    by_step = {r["环节"]: r for _, r in steps.dropna(subset=["环节"]).iterrows()}
    # ledgerfill's route: 8 min to fill, 40 at tech, 20 to forward, 60 at each finance role
    for step, hours, limit in [
        ("填写退款单", 0.13, "上报后10分钟内填好并提交"),
        ("技术部核实", 0.67, "上报后24小时内全额退款"),
        ("值班负责人提交财务", 0.33, "技术部返回后60分钟内提交财务"),
        ("出纳初核", 1.0, "财务12小时内处理完毕"),
        ("会计复核", 1.0, "财务12小时内处理完毕"),
        ("财务总监审批", 1.0, "财务12小时内处理完毕"),
        ("反馈用户(已退款)", 0.5, "上报后3个工作日内办结"),
    ]:
        row = by_step[step]
        assert (row["时限"], row["次数"], row["超时"]) == (limit, 10, 0), step
        assert float(row["中位数"]) == pytest.approx(hours, abs=0.01), step
        assert float(row["p90"]) == pytest.approx(hours, abs=0.01), step
        assert float(row["时限内比例"]) == 1.0
    figures = summary.iloc[4:10, :4]
    within = figures[figures[0] == "全部环节都在时限内"].iloc[0]
    assert (within[1], float(within[3])) == (10, 1.0)


def test_a_table_whose_header_row_moved_is_refused_in_chinese(tmp_path: Path) -> None:
    workspace = workspace_with(tmp_path, month_of_refunds(2))
    produce(workspace, NOVEMBER, now=AS_OF)
    path = workspace.outbox("cs") / "客服退单统计表-2026-11.xlsx"
    book = openpyxl.load_workbook(path)
    book.active.insert_rows(1)  # someone added a line above the title
    book.save(path)
    with pytest.raises(FormReadError) as info:
        read_stats_table(path)
    assert info.value.message == (
        "客服退单统计表-2026-11.xlsx 不是退单统计表:第 3 行缺少列标题退单编号、订单号、开户行、金额"
    )
    assert info.value.hint == "请使用 refundflow 生成的统计表,不要在列标题上方插入或删除行"


def test_reading_a_table_back_needs_no_openpyxl(tmp_path: Path) -> None:
    """Tables come back read by python-calamine alone (formulas from the sheet's XML)."""
    workspace = workspace_with(tmp_path, month_of_refunds(2))
    produce(workspace, NOVEMBER, now=AS_OF)
    path = workspace.outbox("cs") / "客服退单统计表-2026-11.xlsx"
    want = read_stats_table(path)
    script = (
        "import sys; sys.modules['openpyxl'] = None\n"  # importing it now fails
        "from pathlib import Path\n"
        "from refundflow.reports import read_stats_table\n"
        f"back = read_stats_table(Path({str(path)!r}))\n"
        "print(len(back.rows), back.total)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{len(want.rows)} {want.total}\n"
    assert len(want.rows) == 2


def monthly_book(tmp_path: Path, refunds: int) -> Path:
    workspace = workspace_with(tmp_path, month_of_refunds(refunds))
    ledger = Ledger(workspace.ledger_path)
    try:
        data = collect(ledger, NOVEMBER, as_of=AS_OF, config=workspace.config)
    finally:
        ledger.close()
    cs, finance = cs_table(data), finance_table(data)
    path = tmp_path / "月度退款报表-2026-11.xlsx"
    write_monthly(path, data, Tables(cs, finance, cs.iloc[0:0]), mask=True)
    return path


def test_the_monthly_workbook_is_written_row_by_row_with_tables_and_cached_totals(
    tmp_path: Path,
) -> None:
    """Constant-memory mode (rows written out as they are made: 100,000 refunds fit in well
    under a gigabyte) writes inline text; the Excel tables and their totals are all there."""
    path = monthly_book(tmp_path, 30)
    book = openpyxl.load_workbook(path)
    with zipfile.ZipFile(path) as z:
        detail = book.sheetnames.index("明细") + 1
        xml = z.read(f"xl/worksheets/sheet{detail}.xml").decode()
    assert 't="inlineStr"' in xml and 't="s"' not in xml, "text written row by row, inline"
    for name in ("客服退单统计表", "财务退单统计表", "超时", "明细", "人员"):
        sheet = book[name]
        (table,) = sheet.tables.values()
        header = [c.value for c in sheet[table.ref][0]]
        names = [column.name for column in table.tableColumns]
        assert header[: len(names)] == names, name
    sheet = book["客服退单统计表"]
    total_row = sheet.max_row
    amount = layout.CS_STATS_COLUMNS.index("金额") + 1
    assert sheet.cell(total_row, 1).value == "合计"
    assert sheet.cell(total_row, amount).value == "=SUBTOTAL(109,[金额])"  # as Excel writes it
    cached = pd.read_excel(path, sheet_name="客服退单统计表", header=1, engine="calamine")
    amounts = cached["金额"].iloc[:-1]
    assert cached["金额"].iloc[-1] == pytest.approx(amounts.sum()), "the total's cached value"


# Excel's measure of a column: width w is 7w + 5 pixels at 96 dpi, 0.75 pt a pixel.
A4_LANDSCAPE_PT = 842


@pytest.mark.parametrize("name", ["客服退单统计表", "财务退单统计表", "核对", "超时", "人员"])
def test_each_sheet_prints_one_a4_landscape_page_wide_at_a_legible_size(
    tmp_path: Path, name: str
) -> None:
    sheet = openpyxl.load_workbook(monthly_book(tmp_path, 60))[name]
    setup = sheet.page_setup
    assert (setup.paperSize, setup.orientation) == (9, "landscape")
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (setup.fitToWidth, setup.fitToHeight) in ((1, 0), (None, 0)), "one page wide"
    (table,) = sheet.tables.values()
    header_row = sheet[table.ref.split(":")[0]].row
    assert sheet.print_title_rows == f"${header_row}:${header_row}", "header on every page"
    assert all(c.alignment.wrap_text for c in sheet[header_row] if c.value), "headers wrap"
    first, last = (openpyxl.utils.column_index_from_string(c) for c in
                   re.findall(r"[A-Z]+", table.ref))  # fmt: skip
    widths = [sheet.column_dimensions[openpyxl.utils.get_column_letter(c)].width
              for c in range(first, last + 1)]  # fmt: skip
    printed = sum(7 * w + 5 for w in widths) * 0.75
    margins = (sheet.page_margins.left + sheet.page_margins.right) * 72
    scale = min(1.0, (A4_LANDSCAPE_PT - margins) / printed)
    assert scale >= 0.8, f"{name} prints at {scale:.0%}"


def test_amounts_have_room_for_the_way_they_are_shown(tmp_path: Path) -> None:
    """A column narrower than ¥1,234.56 shows #### in Excel."""
    sheet = openpyxl.load_workbook(monthly_book(tmp_path, 60))["客服退单统计表"]
    column = openpyxl.utils.get_column_letter(layout.CS_STATS_COLUMNS.index("金额") + 1)
    widest = max(
        len(f"¥{c.value:,.2f}")
        for (c,) in sheet[f"{column}3:{column}{sheet.max_row}"]
        if isinstance(c.value, float)
    )
    assert sheet.column_dimensions[column].width >= widest + 1
