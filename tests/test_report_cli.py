"""`refundflow report`: a month of refunds driven through the CLI gives both statistics tables
and administration's monthly workbook, equal to the ledger to the cent."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from monthfill import MONTH, OCTOBER, Driver, build_month
from refundflow import layout
from refundflow.cli import cli
from refundflow.config import Config
from refundflow.ledger import Ledger
from refundflow.monthend import check_tables
from refundflow.monthly import Tables
from refundflow.reports import Month, collect, cs_table, finance_table, read_stats_table
from refundflow.workspace import Workspace, WorkspaceLock

from conftest import ROSTER, set_roster, wait_until
from office import needs_soffice, soffice_convert_all

CS_FILE = "客服退单统计表-2026-11.xlsx"
FIN_FILE = "财务退单统计表-2026-11.xlsx"
BOOK_FILE = "月度退款报表-2026-11.xlsx"
REPORT_AT = "2026-12-01 08:00"


@pytest.fixture(scope="module")
def november(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A workspace after November's refunds (built once: about 40 `process` runs)."""
    root = tmp_path_factory.mktemp("november") / "ws"
    assert CliRunner().invoke(cli, ["init", "--root", str(root)]).exit_code == 0
    config = root / "refundflow.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("# stable_seconds = 2", "stable_seconds = 0"),
        encoding="utf-8",
    )
    set_roster(root, ROSTER)
    forms = build_month(root)
    # The watcher made October's files at November's first run: out of the way.
    for folder in ("cs", "cashier", "admin"):
        for path in (root / "outbox" / folder).glob("*-2026-10.xlsx"):
            path.unlink()
    return root, forms


@pytest.fixture
def ws(november: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    """A private copy of November's workspace."""
    return Path(shutil.copytree(november[0], tmp_path / "ws", symlinks=True))


def report(root: Path, month: str = "2026-11", now: str = REPORT_AT) -> Result:
    return CliRunner().invoke(cli, ["--now", now, "report", "--month", month, "--root", str(root)])


def ledger_amounts(root: Path) -> dict[str, Decimal]:
    ledger = Ledger(root / "refundsheets" / "ledger.sqlite3")
    try:
        return {
            f.form_no: Decimal(f.amount or "0")
            for f in ledger.all_forms()
            if f.form_no.startswith("TKD202611")
        }
    finally:
        ledger.close()


def test_report_puts_each_file_where_its_reader_finds_it(ws: Path) -> None:
    result = report(ws)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "已生成 2026-11 月度统计:6 张退款单,金额合计 6,026.59 元,核对问题 0 处\n"
        f"  outbox/cs/{CS_FILE}\n"
        f"  outbox/cashier/{FIN_FILE}\n"
        f"  outbox/admin/{BOOK_FILE}\n"
        "报送期限:2026-12-01(每月1日,遇双休日和法定节假日顺延)\n"
    )
    archive = ws / "refundsheets" / "统计表" / "2026-11"
    assert sorted(p.name for p in archive.iterdir()) == sorted([CS_FILE, FIN_FILE, BOOK_FILE])


def test_both_tables_rows_and_totals_equal_the_ledger_to_the_cent(
    ws: Path, november: tuple[Path, dict[str, str]]
) -> None:
    assert report(ws).exit_code == 0
    amounts = ledger_amounts(ws)
    forms = november[1]
    assert forms[OCTOBER.order_no] not in amounts  # submitted in October: not November's
    cs = read_stats_table(ws / "outbox" / "cs" / CS_FILE)
    got = {
        r["退单编号"]: Decimal(str(r["金额"])).quantize(Decimal("0.01"))
        for _, r in cs.rows.iterrows()
    }
    assert got == amounts
    assert Decimal(str(cs.total)).quantize(Decimal("0.01")) == sum(amounts.values())
    fin = read_stats_table(ws / "outbox" / "cashier" / FIN_FILE)
    tech_refused = forms["TK20261118001"]  # never reached finance
    expected = {k: v for k, v in amounts.items() if k != tech_refused}
    got = {
        r["退单编号"]: Decimal(str(r["金额"])).quantize(Decimal("0.01"))
        for _, r in fin.rows.iterrows()
    }
    assert got == expected
    assert Decimal(str(fin.total)).quantize(Decimal("0.01")) == sum(expected.values())


def test_cs_table_shows_the_stamped_hand_off_times_and_header(ws: Path) -> None:
    assert report(ws).exit_code == 0
    sheet = openpyxl.load_workbook(ws / "outbox" / "cs" / CS_FILE).active
    assert sheet["B2"].value == "KFTJ-2026-11"
    assert sheet["G2"].value == "refundflow(自动生成)"
    assert sheet["J2"].value == dt.datetime(2026, 12, 1)
    first = [c.value for c in sheet[layout.STATS_FIRST_DATA_ROW]]
    assert first == [
        1, dt.datetime(2026, 11, 2), "TKD20261102-001", "TK20261102001", "13800138000",
        "招商银行", 268.5, "张三", dt.datetime(2026, 11, 2, 9, 8), dt.datetime(2026, 11, 2, 10, 0),
        dt.datetime(2026, 11, 2, 13, 1), dt.datetime(2026, 11, 2, 13, 30), None,
    ]  # fmt: skip
    assert sheet[layout.STATS_CELLS["approver"]].value is None  # for the department head


def test_finance_table_shows_who_checked_and_when(ws: Path) -> None:
    assert report(ws).exit_code == 0
    rows = read_stats_table(ws / "outbox" / "cashier" / FIN_FILE).rows
    late = rows[rows["退单编号"] == "TKD20261105-001"].iloc[0]
    assert late["出纳核实"] == "赵六 2026-11-05 20:01"
    assert late["会计复核"] == "钱七 2026-11-06 01:01"
    assert late["财务总监审核"] == "孙八 2026-11-06 06:01"
    assert pd.Timestamp(late["反馈客服"]) == pd.Timestamp("2026-11-06 06:01")


def test_returned_and_open_refunds_say_so_in_remarks(ws: Path) -> None:
    assert report(ws).exit_code == 0
    rows = read_stats_table(ws / "outbox" / "cs" / CS_FILE).rows
    remarks = dict(zip(rows["退单编号"], rows["备注"].fillna(""), strict=True))
    assert remarks["TKD20261110-001"] == "财务退回:金额与银行流水不符,退回"
    assert remarks["TKD20261130-001"] == "未办结,当前环节:待出纳初核"
    assert remarks["TKD20261102-001"] == ""


def test_monthly_workbook_has_every_sheet_table_and_chart(ws: Path) -> None:
    assert report(ws).exit_code == 0
    path = ws / "outbox" / "admin" / BOOK_FILE
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [
        "汇总",
        "客服退单统计表",
        "财务退单统计表",
        "核对",
        "超时",
        "明细",
        "人员",
    ]
    for name in book.sheetnames[1:]:
        assert book[name].tables, f"{name} has no Excel table (filters)"
        assert book[name].freeze_panes is not None, name
    with zipfile.ZipFile(path) as z:
        charts = [n for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
        titles = "".join(z.read(n).decode() for n in charts)
    assert len(charts) == 4
    for title in ("每日退款单数与金额", "按故障现象", "按开户行", "各环节用时"):
        assert title in titles
    assert "未签字" in book["客服退单统计表"]["A1"].value


def test_summary_counts_refunded_and_returned(ws: Path) -> None:
    assert report(ws).exit_code == 0
    frame = pd.read_excel(
        ws / "outbox" / "admin" / BOOK_FILE, sheet_name="汇总", header=3, nrows=6, engine="calamine"
    )
    figures = {r["指标"]: (r["单数"], r["金额"]) for _, r in frame.iterrows()}
    assert figures["退款单总数"] == (6, pytest.approx(6026.59))
    assert figures["已退款"] == (3, pytest.approx(268.50 + 1999.99 + 3000.10))
    assert figures["财务退回"] == (1, pytest.approx(88.00))
    assert figures["未办结"] == (1, pytest.approx(150.00))


def test_overdue_sheet_names_the_step_that_went_over_and_who_it_waited_on(ws: Path) -> None:
    assert report(ws).exit_code == 0
    frame = pd.read_excel(ws / "outbox" / "admin" / BOOK_FILE, sheet_name="超时", engine="calamine")
    rows = {(r["退单编号"], r["环节"], r["等待"], r["时限"]) for _, r in frame.iterrows()}
    assert rows == {
        # 15 hours at finance: the director's step crossed the 12-hour limit
        ("TKD20261105-001", "财务总监审批", "财务总监", "财务12小时内处理完毕"),
        # submitted to finance 11-30 16:00, still at the cashier at 12-01 08:00
        ("TKD20261130-001", "出纳初核", "财务部出纳", "财务12小时内处理完毕"),
    }
    open_row = frame[frame["退单编号"] == "TKD20261130-001"].iloc[0]
    assert open_row["结束"] == "仍未完成"
    assert open_row["超出(小时)"] == pytest.approx(4.0)


def test_mobile_numbers_are_masked_for_administration_only(ws: Path) -> None:
    assert report(ws).exit_code == 0
    book = ws / "outbox" / "admin" / BOOK_FILE
    for sheet in ("明细", "客服退单统计表"):
        text = pd.read_excel(book, sheet_name=sheet, dtype=str, engine="calamine").to_string()
        assert "13800138000" not in text
        assert "138****8000" in text
    cs = read_stats_table(ws / "outbox" / "cs" / CS_FILE).rows
    assert set(cs["联系方式"]) == {"13800138000"}


def test_mask_mobile_false_keeps_numbers_in_the_workbook(ws: Path) -> None:
    config = ws / "refundflow.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("# mask_mobile = true", "mask_mobile = false"),
        encoding="utf-8",
    )
    assert report(ws).exit_code == 0
    text = pd.read_excel(
        ws / "outbox" / "admin" / BOOK_FILE, sheet_name="明细", dtype=str, engine="calamine"
    )
    assert set(text["联系方式"]) == {"13800138000"}


def test_check_sheet_says_so_when_everything_agrees(ws: Path) -> None:
    assert report(ws).exit_code == 0
    sheet = openpyxl.load_workbook(ws / "outbox" / "admin" / BOOK_FILE)["核对"]
    assert sheet["A1"].value == (
        "核对无误:两张统计表与账本一致(6 张退款单,金额合计 ¥6,026.59),每张退款单都经过了必经环节。"
    )


def test_an_amount_edited_in_a_table_shows_as_exactly_that_difference(ws: Path) -> None:
    assert report(ws).exit_code == 0
    cs_file, fin_file = ws / "outbox" / "cs" / CS_FILE, ws / "outbox" / "cashier" / FIN_FILE
    book = openpyxl.load_workbook(cs_file)  # what a person does in a spreadsheet program
    sheet = book.active
    row = layout.STATS_FIRST_DATA_ROW + 1  # TKD20261105-001, 1999.99 in the ledger
    amount_col = layout.CS_STATS_COLUMNS.index("金额") + 1
    assert sheet.cell(row, 3).value == "TKD20261105-001"
    sheet.cell(row, amount_col).value = 1999.00
    book.save(cs_file)

    ledger = Ledger(ws / "refundsheets" / "ledger.sqlite3")
    try:
        data = collect(ledger, Month(2026, 11), as_of=dt.datetime(2026, 12, 1, 8), config=Config())
    finally:
        ledger.close()
    expected = Tables(cs_table(data), finance_table(data), pd.DataFrame())
    issues = check_tables(cs_file, fin_file, expected)
    assert issues.to_dict("records") == [
        {
            "表": "客服退单统计表",
            "退单编号": "TKD20261105-001",
            "问题": "金额不一致",
            "表中": "1999.00",
            "账本中": "1999.99",
        }
    ]


def test_report_again_completes_a_refund_closed_since(ws: Path) -> None:
    assert report(ws).exit_code == 0
    driver = Driver(ws)
    at = dt.datetime(2026, 12, 1, 9, 0)
    for role in ("cashier", "accountant", "director"):
        driver.sign("TKD20261130-001", role, at)
        at += dt.timedelta(minutes=30)
    assert report(ws, now="2026-12-01 11:00").exit_code == 0
    rows = read_stats_table(ws / "outbox" / "cs" / CS_FILE).rows
    remarks = dict(zip(rows["退单编号"], rows["备注"].fillna(""), strict=True))
    assert remarks["TKD20261130-001"] == "未办结,当前环节:已退款,待客服反馈用户"


def test_report_refuses_a_month_that_is_not_one(ws: Path) -> None:
    result = report(ws, month="2026-13")
    assert result.exit_code == 2
    assert '"2026-13" 不是月份,格式应为 YYYY-MM,例如 2026-11' in result.output


def test_process_makes_last_months_files_once_on_the_first_run_after_it(ws: Path) -> None:
    run = ["process", "--root", str(ws)]
    first = CliRunner().invoke(cli, ["--now", "2026-12-01 07:30", *run])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("已生成 2026-11 月度统计:6 张退款单")
    for path in (f"outbox/cs/{CS_FILE}", f"outbox/cashier/{FIN_FILE}", f"outbox/admin/{BOOK_FILE}"):
        assert (ws / path).exists(), path
    (ws / "outbox" / "cs" / CS_FILE).unlink()  # taken by the compiler
    again = CliRunner().invoke(cli, ["--now", "2026-12-01 07:45", *run])
    assert again.output == ""
    assert not (ws / "outbox" / "cs" / CS_FILE).exists()


def test_process_in_the_month_itself_makes_nothing_for_it(ws: Path) -> None:
    result = CliRunner().invoke(cli, ["--now", "2026-11-30 23:00", "process", "--root", str(ws)])
    assert result.output == ""
    assert not (ws / "outbox" / "admin" / BOOK_FILE).exists()


def test_status_says_which_tables_are_late(ws: Path) -> None:
    def status(now: str) -> list[str]:
        result = CliRunner().invoke(cli, ["--now", now, "status", "--root", str(ws)])
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    assert not any(line.startswith("逾期:") for line in status("2026-12-01 18:00"))  # due today
    lines = status("2026-12-03 09:00")
    assert lines[:3] == [
        "逾期:2026-11 的客服退单统计表(客服部)应于 2026-12-01 报送行政人事部,"
        "已逾期 2 天,尚未收到部门负责人审批的表",
        "逾期:2026-11 的财务退单统计表(财务部)应于 2026-12-01 报送行政人事部,"
        "已逾期 2 天,尚未收到部门负责人审批的表",
        "处理办法:请部门负责人在统计表的“审批人”处签名后尽快报送行政人事部"
        "(生成的表在 refundsheets/统计表/2026-11/)",
    ]
    signed = ws / "refundsheets" / "统计表" / "2026-11" / "已审批"
    signed.mkdir(parents=True)
    (signed / CS_FILE).write_bytes(b"")
    (signed / FIN_FILE).write_bytes(b"")
    assert not any(line.startswith("逾期:") for line in status("2026-12-03 09:00"))


def test_finance_table_goes_to_the_configured_compiler(ws: Path) -> None:
    config = ws / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('# finance_compiler = "cashier"', 'finance_compiler = "accountant"'),
        encoding="utf-8",
    )
    result = report(ws)
    assert f"  outbox/accountant/{FIN_FILE}\n" in result.output
    assert not (ws / "outbox" / "cashier" / FIN_FILE).exists()


@pytest.mark.office
@needs_soffice
def test_libreoffice_opens_the_monthly_workbook_and_both_tables(ws: Path, tmp_path: Path) -> None:
    assert report(ws).exit_code == 0
    files = [
        ws / "outbox" / "admin" / BOOK_FILE,
        ws / "outbox" / "cs" / CS_FILE,
        ws / "outbox" / "cashier" / FIN_FILE,
    ]
    for pdf in soffice_convert_all(files, "pdf", tmp_path / "pdf"):
        assert pdf.stat().st_size > 10_000, pdf.name


def test_month_fill_covers_what_the_tests_assume() -> None:
    assert len(MONTH) == 6
    assert sum(Decimal(p.amount) for p in MONTH) == Decimal("6026.59")


def test_due_date_in_a_year_without_holiday_data_is_reported_with_a_warning(ws: Path) -> None:
    result = report(ws, month="2026-12", now="2027-01-02 09:00")
    assert result.exit_code == 0, result.output
    # 2027-01-01 is a Friday: without the official calendar it counts as a working day
    assert "报送期限:2027-01-01(每月1日,遇双休日和法定节假日顺延)\n" in result.output
    assert (
        "警告:日历库没有 2027 年的法定节假日数据,报送期限只按周一至周五计算\n"
        "处理办法:升级 chinese_calendar,或在 refundflow.toml 的 [calendar] 中写明放假和调休日期"
    ) in result.output


def test_due_date_rule_follows_the_configuration(ws: Path) -> None:
    config = ws / "refundflow.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "# due_over_holidays = true", "due_over_holidays = false"
        ),
        encoding="utf-8",
    )
    result = report(ws, month="2026-09", now="2026-10-02 09:00")
    assert result.exit_code == 0, result.output
    assert "报送期限:2026-10-01(每月1日,遇双休日顺延)\n" in result.output


def test_watch_makes_last_months_files_when_it_starts_after_the_month(ws: Path) -> None:
    command = [sys.executable, "-m", "refundflow.cli", "--now", "2026-12-01 07:00", "watch"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*command, "--root", str(ws)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        book = ws / "outbox" / "admin" / BOOK_FILE
        assert wait_until(book.exists), "the watcher made no monthly workbook"
        assert (ws / "outbox" / "cs" / CS_FILE).exists()
        assert (ws / "outbox" / "cashier" / FIN_FILE).exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert out.decode().startswith("已生成 2026-11 月度统计:6 张退款单"), (
        out.decode() + err.decode()
    )


def test_report_runs_while_the_watcher_holds_the_workspace(ws: Path) -> None:
    workspace = Workspace(ws, Config())
    with WorkspaceLock(workspace, command="watch"):
        result = report(ws)
    assert result.exit_code == 0, result.output
    assert (ws / "outbox" / "admin" / BOOK_FILE).exists()


def test_a_folder_that_cannot_be_written_is_said_in_chinese(ws: Path) -> None:
    # root ignores permissions: a file where the archive folder should be stops it as well
    shutil.rmtree(ws / "refundsheets" / "统计表")  # October's, made by the first November run
    (ws / "refundsheets" / "统计表").write_text("not a folder", encoding="utf-8")
    result = report(ws)
    assert result.exit_code == 1
    folder = ws.resolve() / "refundsheets" / "统计表" / "2026-11"
    assert result.output == (
        f"Error: 错误:生成 2026-11 月度统计表时出错(Not a directory)({folder})\n"
        "处理办法:请检查该文件夹能否写入(磁盘空间、权限、同名文件),然后运行 "
        "refundflow report --month 2026-11 重新生成;账本中的数据没有受影响\n"
    )


def test_people_sheet_counts_forms_handling_time_and_late_hand_offs(ws: Path) -> None:
    assert report(ws).exit_code == 0
    frame = pd.read_excel(ws / "outbox" / "admin" / BOOK_FILE, sheet_name="人员", engine="calamine")
    people = {
        (r["经办人"], r["角色"]): (r["经办单数"], r["中位数(小时)"], r["超时交接"])
        for _, r in frame.iterrows()
    }
    assert people[("赵六", "财务部出纳")] == (4, pytest.approx(1.02), 0)
    assert people[("孙八", "财务总监")] == (3, pytest.approx(1.0), 1)  # the 15-hour refund
    assert people[("王五", "技术部")] == (6, pytest.approx(0.55), 0)


def test_report_refuses_a_month_that_has_not_begun(ws: Path) -> None:
    result = report(ws, month="2027-01", now="2026-12-15 09:00")
    assert result.exit_code == 2
    assert "2027-01 还没有开始,没有可统计的退款单;请写已开始的月份,例如 2026-11" in result.output
    assert not (ws / "outbox" / "admin" / "月度退款报表-2027-01.xlsx").exists()
