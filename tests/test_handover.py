"""The shift handover sheet: `refundflow handover` after a replayed day, item by item; the
watcher's own sheet before a shift ends; and the rules a filled sheet must keep."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from dayreplay import A, B, C, D, new_workspace, replay_day
from refundflow import layout
from refundflow.cli import cli
from refundflow.config import load_config, parse_config
from refundflow.handover import HandoverWriter, current_shift
from refundflow.handover_check import check_handover
from refundflow.handoverread import read_handover
from refundflow.ledger import Ledger
from refundflow.workspace import Workspace

from conftest import Invoke
from office import needs_soffice, pdf_info, pdf_text, soffice_convert

SHEET = "客服部值班交接单-20261123-白班.xlsx"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Invoke]:
    root = tmp_path_factory.mktemp("handover") / "ws"
    run = new_workspace(root)
    replay_day(root, run)
    result = run("handover", "--shift", "白班", "--date", "2026-11-23", now="2026-11-23 16:50")
    assert result.exit_code == 0, result.output
    assert result.output == f"已生成值班交接单 outbox/cs/{SHEET}(白班 2026-11-23 08:00-17:00)\n"
    return root, run


def items(path: Path) -> dict[str, object]:
    ws = openpyxl.load_workbook(path)[layout.HANDOVER_SHEET]
    return {name: ws[cell].value for name, cell in layout.HANDOVER_CELLS.items()}


def facts(form: str) -> str:
    return {
        A: f"{A},手机号 13800138000,金额 268.50,银行 招商银行",
        B: f"{B},手机号 13900139000,金额 99.00,银行 中国银行",
        C: f"{C},手机号 13700137000,金额 500.00,银行 中国工商银行",
        D: f"{D},手机号 13600136000,金额 1200.00,银行 中国建设银行",
    }[form]


def test_header_names_the_day_and_the_shift_and_leaves_people_blank(
    day: tuple[Path, Invoke],
) -> None:
    values = items(day[0] / "outbox" / "cs" / SHEET)
    assert values["filled_on"] == dt.datetime(2026, 11, 23)
    assert values["shift"] == "白班"
    for name in ("handed_by", "taken_by", "att_expected", "att_present", "att_late"):
        assert values[name] is None, name
    assert values["cleaned"] is None and values["signatures"] is None


def test_work_done_lists_what_customer_service_moved_in_the_shift(
    day: tuple[Path, Invoke],
) -> None:
    values = items(day[0] / "outbox" / "cs" / SHEET)
    assert str(values["work_done"]).splitlines() == [
        f"1. {facts(A)}:填写退款单,提交技术部(09:07)",
        f"2. {facts(B)}:填写退款单,提交技术部(09:15)",
        f"3. {facts(A)}:提交财务(09:40)",
        f"4. {facts(B)}:提交财务(11:32)",
        f"5. {facts(C)}:填写退款单,提交技术部(14:30)",
    ]  # D moved on Friday: not this shift's work


def test_follow_ups_are_forms_waiting_on_customer_service_or_overdue(
    day: tuple[Path, Invoke],
) -> None:
    values = items(day[0] / "outbox" / "cs" / SHEET)
    assert str(values["follow_ups"]).splitlines() == [
        f"1. {D}:故障现象 重复扣款;目前环节:待出纳初核(等待财务部出纳);"
        "下一步:跟进财务部出纳初核进度,期限 2026-11-20 23:00;客户联系方式 13600136000;"
        "故障手机号 13600136000;金额 1200.00;银行 中国建设银行;"
        "已逾期:财务12小时内处理完毕、上报后24小时内全额退款",
        f"2. {A}:故障现象 订单冲突;目前环节:已退款,待客服反馈用户(等待客服部);"
        "下一步:通知用户退款已完成,再把退款单放入收件箱,期限 2026-11-26 09:00;"
        "客户联系方式 13800138000;故障手机号 13800138000;金额 268.50;银行 招商银行",
        f"3. {B}:故障现象 支付成功但支付超时;目前环节:财务退回,待客服反馈用户(等待客服部);"
        "下一步:将财务退回原因反馈用户,再把退款单放入收件箱,期限 2026-11-26 09:10;"
        "客户联系方式 13900139000;故障手机号 13900139000;金额 99.00;银行 中国银行",
    ]  # C is at tech and on time: nothing for the next shift to do


def test_refund_statistics_are_the_three_categories_of_the_day(day: tuple[Path, Invoke]) -> None:
    values = items(day[0] / "outbox" / "cs" / SHEET)
    assert values["fin_processed"] == f"1. {facts(A)},处理结果:已退款(财务总监 孙八 11:00)"
    assert str(values["fin_submitted"]).splitlines() == [
        f"1. {facts(A)},09:40 提交,目前:已退款,待客服反馈用户",
        f"2. {facts(B)},11:32 提交,目前:财务退回,待客服反馈用户",
    ]
    assert values["fin_returned"] == f"1. {facts(B)},退回原因:银行流水未查到该笔扣款"


def test_a_shift_with_nothing_to_say_writes_无_in_every_item(day: tuple[Path, Invoke]) -> None:
    root, run = day
    result = run("handover", "--shift", "中班", "--date", "2026-11-21", now="2026-11-23 16:50")
    assert result.exit_code == 0, result.output
    values = items(root / "outbox" / "cs" / "客服部值班交接单-20261121-中班.xlsx")
    # Saturday evening: nothing moved; D sat at the cashier, already overdue (finance's 12
    # hours ran out Friday 23:00), so the next shift must still follow it up.
    assert values["work_done"] == "无"
    assert values["fin_processed"] == values["fin_submitted"] == values["fin_returned"] == "无"
    assert str(values["follow_ups"]).startswith(f"1. {D}:")
    assert str(values["follow_ups"]).endswith("已逾期:财务12小时内处理完毕、上报后24小时内全额退款")


def test_empty_ledger_gives_无_everywhere(root: Path, run: Invoke) -> None:
    result = run("handover", now="2026-11-23 16:50")
    assert result.exit_code == 0, result.output
    values = items(root / "outbox" / "cs" / SHEET)
    for name in ("work_done", "follow_ups", "fin_processed", "fin_submitted", "fin_returned"):
        assert values[name] == "无", name


def test_writing_the_same_shift_again_keeps_the_earlier_sheet(root: Path, run: Invoke) -> None:
    assert run("handover", now="2026-11-23 16:50").exit_code == 0
    result = run("handover", now="2026-11-23 16:55")
    assert result.output == (
        "已生成值班交接单 outbox/cs/客服部值班交接单-20261123-白班 (2).xlsx"
        "(白班 2026-11-23 08:00-17:00)\n"
    )
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == [
        "客服部值班交接单-20261123-白班 (2).xlsx",
        SHEET,
    ]


def test_unknown_shift_is_refused_naming_the_shifts(root: Path, run: Invoke) -> None:
    result = run("handover", "--shift", "夜班")
    assert result.exit_code == 2
    assert "没有名为 夜班 的班次(可用:白班、中班)" in result.output


@pytest.mark.parametrize(
    ("now", "shift", "day"),
    [
        pytest.param("2026-11-23 08:00", "白班", "2026-11-23", id="day-shift-starts"),
        pytest.param("2026-11-23 16:59", "白班", "2026-11-23", id="day-shift-ends"),
        pytest.param("2026-11-23 17:00", "中班", "2026-11-23", id="evening-starts"),
        pytest.param("2026-11-23 23:30", "中班", "2026-11-23", id="after-evening"),
        pytest.param("2026-11-24 07:00", "中班", "2026-11-23", id="before-day-shift"),
    ],
)
def test_default_shift_is_the_one_running_or_the_one_that_ended_last(
    now: str, shift: str, day: str
) -> None:
    window = current_shift(parse_config({}), dt.datetime.strptime(now, "%Y-%m-%d %H:%M"))
    assert (window.shift.name, f"{window.day}") == (shift, day)


def test_night_shift_across_midnight_is_found_after_midnight() -> None:
    config = parse_config({"shifts": {"白班": "08:00-20:00", "夜班": "20:00-08:00"}})
    window = current_shift(config, dt.datetime(2026, 11, 24, 3, 0))
    assert (window.shift.name, window.start, window.end) == (
        "夜班",
        dt.datetime(2026, 11, 23, 20, 0),
        dt.datetime(2026, 11, 24, 8, 0),
    )


def test_watcher_writes_the_sheet_once_before_the_shift_ends(root: Path) -> None:
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8").replace("auto = false", "auto = true")
    config.write_text(text.replace("# before_end_minutes = 30", "before_end_minutes = 20"), "utf-8")
    workspace = Workspace(root.resolve(), load_config(root))
    ledger = Ledger(workspace.ledger_path)
    try:
        writer = HandoverWriter(workspace)
        day = dt.date(2026, 11, 23)
        assert writer.write_due(ledger, now=dt.datetime.combine(day, dt.time(16, 39))) is None
        first = writer.write_due(ledger, now=dt.datetime.combine(day, dt.time(16, 40)))
        assert first == workspace.outbox("cs") / SHEET
        assert writer.write_due(ledger, now=dt.datetime.combine(day, dt.time(16, 50))) is None
        # After a restart, the sheet in outbox/ is not written again.
        again = HandoverWriter(workspace)
        assert again.write_due(ledger, now=dt.datetime.combine(day, dt.time(16, 55))) is None
        evening = again.write_due(ledger, now=dt.datetime.combine(day, dt.time(22, 45)))
        assert evening is not None and evening.name == "客服部值班交接单-20261123-中班.xlsx"
    finally:
        ledger.close()
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == [
        "客服部值班交接单-20261123-中班.xlsx",
        SHEET,
    ]


def test_watcher_writes_no_sheet_when_auto_is_off(root: Path) -> None:
    workspace = Workspace(root.resolve(), load_config(root))  # conftest turns auto off
    ledger = Ledger(workspace.ledger_path)
    try:
        now = dt.datetime(2026, 11, 23, 16, 50)
        assert HandoverWriter(workspace).write_due(ledger, now=now) is None
    finally:
        ledger.close()


@pytest.mark.office
@needs_soffice
def test_generated_sheet_prints_on_one_a4_page(day: tuple[Path, Invoke], tmp_path: Path) -> None:
    source = tmp_path / "sheet.xlsx"
    shutil.copyfile(day[0] / "outbox" / "cs" / SHEET, source)
    info = pdf_info(soffice_convert(source, "pdf", tmp_path))
    assert re.search(r"^Pages:\s+1$", info, re.M), info
    assert re.search(r"^Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)$", info, re.M), info


@pytest.mark.office
@needs_soffice
def test_generated_sheet_prints_its_date_and_shift_not_the_blanks(
    day: tuple[Path, Invoke], tmp_path: Path
) -> None:
    source = tmp_path / "sheet.xlsx"
    shutil.copyfile(day[0] / "outbox" / "cs" / SHEET, source)
    ws = openpyxl.load_workbook(source)[layout.HANDOVER_SHEET]
    assert ws[layout.HANDOVER_CELLS["filled_on"]].value == dt.datetime(2026, 11, 23)
    assert ws[layout.HANDOVER_CELLS["shift"]].value == "白班"
    text = pdf_text(soffice_convert(source, "pdf", tmp_path))
    assert re.search(r"填表时间\s+2026-11-23\s+交接人", text), text
    assert re.search(r"班次\s+白班\s+班次:", text), text
    assert "□" not in text, text


# ---- the rules of a filled sheet ---------------------------------------------------------


def filled(root: Path) -> dict[str, str]:
    """The generated sheet, with what people fill in by hand."""
    values = read_handover(root / "outbox" / "cs" / SHEET)
    people = {"handed_by": "张三", "taken_by": "李四", "att_expected": "张三、李四"}
    people |= {"att_present": "张三、李四", "att_late": "无", "att_left_early": "无"}
    people |= {"att_absent": "无", "cleaned": "是", "signatures": "张三 李四"}
    return values | people


def problems(root: Path, values: dict[str, str]) -> list[str]:
    workspace = Workspace(root, load_config(root))
    ledger = Ledger(workspace.ledger_path)
    try:
        return [str(p) for p in check_handover(values, ledger=ledger, config=workspace.config)]
    finally:
        ledger.close()


def test_generated_sheet_filled_by_people_keeps_every_rule(day: tuple[Path, Invoke]) -> None:
    root, _run = day
    assert problems(root, filled(root)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"att_late": ""},
            "迟到人员:错误:未填写 处理办法:每项必填,没有的写“无”",
            id="item-left-empty",
        ),
        pytest.param(
            {"taken_by": ""},
            "接交人:错误:未填写 处理办法:填写接交人的姓名(客服部人员)",
            id="no-one-took-over",
        ),
        pytest.param(
            {"shift": "白班 中班"},
            "班次:错误:“白班 中班”不是一个班次,必须且只能选一个班次 处理办法:从下拉列表中选择白班或中班之一",
            id="two-shifts",
        ),
        pytest.param(
            {"work_done": "填了两张退款单\n提交财务一张"},
            "完成工作明细:错误:没有逐项按 1、2、3……编号 处理办法:每件事单独一行,行首写 1. 2. 3. ……",
            id="not-numbered",
        ),
        pytest.param(
            {"fin_returned": "1. TKD20261123-009,手机号 13900139000,金额 99.00,银行 中国银行"},
            "财务退回的订单:错误:退款单 TKD20261123-009 不存在 处理办法:核对文件编号,照退款单上的“编号”抄写",
            id="unknown-form",
        ),
        pytest.param(
            {"fin_processed": f"1. {A},手机号 13800138001,金额 286.50,银行 中国银行,已退款"},
            f"财务已处理的订单:错误:退款单 {A}:手机号写的是 13800138001,退款单上是 13800138000;"
            "金额写的是 286.50,退款单上是 268.50;银行写的是 中国银行,退款单上是 招商银行 "
            "处理办法:照退款单改正",
            id="facts-differ",
        ),
        pytest.param(
            {"taken_by": "张三"},
            "接交人:错误:接交人与交接人是同一人 处理办法:请由接班的另一位客服填写接交人",
            id="same-person",
        ),
        pytest.param(
            {"handed_by": "王五"},
            "交接人:错误:王五 不在客服部名单中 处理办法:填写客服部人员的姓名(名单:张三、李四)",
            id="not-in-cs-roster",
        ),
    ],
)
def test_a_sheet_breaking_a_rule_is_answered_naming_the_item(
    day: tuple[Path, Invoke], change: dict[str, str], expected: str
) -> None:
    root, _run = day
    assert problems(root, filled(root) | change) == [expected]


def test_cli_handover_help_is_chinese() -> None:
    result = CliRunner().invoke(cli, ["handover", "--help"])
    assert result.exit_code == 0 and "值班交接单" in result.output


def test_process_does_not_load_the_handover_machinery(root: Path) -> None:
    """`process` never writes the sheet: it does not pay openpyxl's 0.2 s import."""
    script = (
        "import sys\n"
        "from refundflow.cli import cli\n"
        "try:\n"
        "    cli(['process', '--root', sys.argv[1]], standalone_mode=False)\n"
        "finally:\n"
        "    print('openpyxl' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
    assert (root / "outbox" / "状态看板.xlsx").exists()  # the rest of the upkeep did run


def test_date_in_another_format_is_refused_in_chinese(root: Path, run: Invoke) -> None:
    result = run("handover", "--date", "23/11/2026")
    assert result.exit_code == 2
    assert '格式应为 "YYYY-MM-DD",例如 "2026-11-23"' in result.output


def test_a_site_template_with_a_row_inserted_is_filled_where_its_names_point(
    root: Path, run: Invoke
) -> None:
    """Excel moves the defined names with the cells when a row is inserted above them."""
    template = Path(__file__).resolve().parents[1] / "templates" / layout.HANDOVER_TEMPLATE_FILE
    wb = openpyxl.load_workbook(template)
    ws = wb[layout.HANDOVER_SHEET]
    merged = list(ws.merged_cells.ranges)
    for block in merged:
        ws.unmerge_cells(str(block))
    ws.insert_rows(1)
    for block in merged:
        block.shift(0, 1)
        ws.merge_cells(str(block))
    for name in layout.HANDOVER_NAMES:
        row = int(layout.HANDOVER_CELLS[name][1:]) + 1
        column = layout.HANDOVER_CELLS[name][0]
        wb.defined_names[name].attr_text = f"'{layout.HANDOVER_SHEET}'!${column}${row}"
    wb.save(root / "templates" / layout.HANDOVER_TEMPLATE_FILE)
    assert run("handover", now="2026-11-23 16:50").exit_code == 0
    sheet = root / "outbox" / "cs" / SHEET
    assert read_handover(sheet)["shift"] == "白班"
    assert read_handover(sheet)["work_done"] == "无"
    ws = openpyxl.load_workbook(sheet)[layout.HANDOVER_SHEET]
    assert ws["B11"].value == "无" and ws["B10"].value != "无"  # one row down


def test_a_template_that_cannot_be_filled_is_answered_in_chinese(
    root: Path, run: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    (root / "templates" / layout.HANDOVER_TEMPLATE_FILE).write_bytes(b"not a workbook")
    result = run("handover", now="2026-11-23 16:50")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(
        "Error: 错误:值班交接单模板 templates/客服部值班交接单.xlsx 无法填写("
    )
    assert lines[1] == (
        "处理办法:用 refundflow templates 重新生成模板(先备份改过的模板),"
        "或检查其中的“客服部值班交接单”工作表和各项的名称"
    )
    assert list((root / "outbox" / "cs").iterdir()) == []
    # The watcher says it once for the shift, not at every pass until the shift ends.
    config = root / "refundflow.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("auto = false", "auto = true"))
    workspace = Workspace(root.resolve(), load_config(root))
    ledger = Ledger(workspace.ledger_path)
    try:
        writer = HandoverWriter(workspace)
        for minute in (40, 45, 50):
            now = dt.datetime(2026, 11, 23, 16, minute)
            assert writer.write_due(ledger, now=now) is None
    finally:
        ledger.close()
    said = [r for r in caplog.records if r.getMessage().startswith("值班交接单未能生成")]
    assert len(said) == 1
