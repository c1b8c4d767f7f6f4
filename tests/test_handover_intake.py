"""A filled shift handover sheet dropped in inbox/: checked by the procedure's rules, handed to
the next shift in outbox/cs/ and filed, or sent back with a 退回原因 sheet naming each item."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import openpyxl
import pytest

from refundflow import layout
from refundflow.xlsxpatch import HIGHLIGHT_RGB
from test_watch_cli import drop_whole, watching

from conftest import Invoke, drop, make_form, take, wait_until
from formfill import fill_form
from office import gnumeric_resave, soffice_resave

FORM = "TKD20261123-001"
SHEET = "客服部值班交接单-20261123-白班.xlsx"  # what `refundflow handover` writes
ACCEPTED = "客服部值班交接单-2026-11-23-白班-已交接.xlsx"
RETURNED = "客服部值班交接单-20261123-白班-退回.xlsx"
# What the people of the shift fill in by hand.
PEOPLE: dict[str, object] = {
    "handed_by": "张三",
    "taken_by": "李四",
    "att_expected": "张三、李四",
    "att_present": "张三、李四",
    "att_late": "无",
    "att_left_early": "无",
    "att_absent": "无",
    "cleaned": "是",
    "signatures": "张三 李四",
}


def filled_sheet(root: Path, run: Invoke, change: Mapping[str, object] | None = None) -> bytes:
    """One form filed at 09:10; the 白班 sheet written from the ledger, then filled by people."""
    drop(root, "申请.xlsx", make_form())
    assert run("process", now="2026-11-23 09:10").exit_code == 0
    result = run("handover", "--shift", "白班", "--date", "2026-11-23", now="2026-11-23 16:50")
    assert result.exit_code == 0, result.output
    return fill_form(take(root, "cs", SHEET), {**PEOPLE, **(change or {})})


def events(root: Path) -> list[tuple[str, str | None, str]]:
    db = sqlite3.connect(root / "refundsheets" / "ledger.sqlite3")
    try:
        rows = db.execute("SELECT kind, to_role, file_name FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    return [(str(k), r, str(f)) for k, r, f in rows]


def sheet_rows(path: Path, sheet: str) -> list[tuple[object, ...]]:
    ws = openpyxl.load_workbook(path)[sheet]
    return [row for row in ws.iter_rows(values_only=True) if any(v is not None for v in row)]


def test_filled_sheet_keeping_every_rule_goes_to_the_next_shift_and_is_filed(
    root: Path, run: Invoke
) -> None:
    data = filled_sheet(root, run)
    drop(root, SHEET, data)
    result = run("process", now="2026-11-23 17:05")
    assert result.output == (
        f"[已流转] {SHEET}: 客服部值班交接单(2026-11-23 白班)已核对 → 客服部(接班人员)\n"
    )
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == [ACCEPTED]
    filed = root / "refundsheets" / "交接单" / "2026-11" / ACCEPTED
    assert filed.read_bytes() == (root / "outbox" / "cs" / ACCEPTED).read_bytes()
    handed = openpyxl.load_workbook(filed)
    assert handed.sheetnames == [layout.HANDOVER_SHEET]
    assert handed[layout.HANDOVER_SHEET]["D2"].value == "张三"
    assert list((root / "inbox").iterdir()) == []
    received = (root / "refundsheets" / "archive" / "received").rglob(f"*{SHEET}")
    assert len(list(received)) == 1
    assert events(root)[-1] == ("handover_accepted", "cs", SHEET)


@pytest.mark.parametrize(
    ("change", "row"),
    [
        pytest.param(
            {"att_late": None},
            ("1", "迟到人员", "C6", "未填写", "每项必填,没有的写“无”"),
            id="item-left-empty",
        ),
        pytest.param(
            {"shift": "白班 中班"},
            ("1", "班次", "B3", "“白班 中班”不是一个班次,必须且只能选一个班次",
             "从下拉列表中选择白班或中班之一"),
            id="two-shifts",
        ),
        pytest.param(
            {"work_done": "填了一张退款单\n提交技术部"},
            ("1", "完成工作明细", "B10", "没有逐项按 1、2、3……编号",
             "每件事单独一行,行首写 1. 2. 3. ……"),
            id="not-numbered",
        ),
        pytest.param(
            {"fin_returned": "1. TKD20261123-009,手机号 13900139000,金额 99.00,银行 中国银行"},
            ("1", "财务退回的订单", "C18", "退款单 TKD20261123-009 不存在",
             "核对文件编号,照退款单上的“编号”抄写"),
            id="unknown-form",
        ),
        pytest.param(
            {"work_done": f"1. {FORM},手机号 13800138001,金额 286.50,银行 中国银行:填写退款单"},
            ("1", "完成工作明细", "B10",
             f"退款单 {FORM}:手机号写的是 13800138001,退款单上是 13800138000;"
             "金额写的是 286.50,退款单上是 268.50;银行写的是 中国银行,退款单上是 招商银行",
             "照退款单改正"),
            id="facts-differ",
        ),
        pytest.param(
            {"taken_by": "张三"},
            ("1", "接交人", "F2", "接交人与交接人是同一人", "请由接班的另一位客服填写接交人"),
            id="same-person",
        ),
        pytest.param(
            {"handed_by": "王五"},
            ("1", "交接人", "D2", "王五 不在客服部名单中",
             "填写客服部人员的姓名(名单:张三、李四)"),
            id="not-in-cs-roster",
        ),
    ],
)  # fmt: skip
def test_sheet_breaking_a_rule_comes_back_naming_the_item_with_its_cell_marked(
    root: Path, run: Invoke, change: dict[str, object], row: tuple[str, ...]
) -> None:
    drop(root, SHEET, filled_sheet(root, run, change))
    result = run("process", now="2026-11-23 17:05")
    assert result.output == f"[已退回] {SHEET}: 客服部值班交接单退回客服部:1 个问题\n"
    back = root / "outbox" / "cs" / RETURNED
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == [RETURNED]
    book = openpyxl.load_workbook(back)
    assert book.sheetnames[0] == layout.RETURN_SHEET
    title, header, *rows = sheet_rows(back, layout.RETURN_SHEET)
    assert str(title[0]).startswith("客服部值班交接单 2026-11-23 ")  # its day and shift
    assert str(title[0]).endswith(" 退回原因(退回时间:2026-11-23 17:05)")
    assert header == ("序号", "项目", "单元格", "问题", "如何修改")
    assert rows == [row]
    marked = book[layout.HANDOVER_SHEET][row[2]].fill.fgColor.rgb
    assert str(marked).upper().endswith(HIGHLIGHT_RGB)
    assert not (root / "refundsheets" / "交接单").exists()
    assert list((root / "inbox").iterdir()) == []
    assert events(root)[-1] == ("handover_returned", "cs", SHEET)


def test_returned_sheet_fixed_is_handed_over_without_its_reasons(root: Path, run: Invoke) -> None:
    drop(root, SHEET, filled_sheet(root, run, {"taken_by": "张三"}))
    assert run("process", now="2026-11-23 17:05").exit_code == 0
    fixed = fill_form(take(root, "cs", RETURNED), {"taken_by": "李四"})
    drop(root, RETURNED, fixed)
    result = run("process", now="2026-11-23 17:10")
    assert result.output.startswith(f"[已流转] {RETURNED}: 客服部值班交接单(2026-11-23 白班)")
    handed = openpyxl.load_workbook(root / "outbox" / "cs" / ACCEPTED)
    assert handed.sheetnames == [layout.HANDOVER_SHEET], "the old reasons are not passed on"


@pytest.mark.parametrize(
    "resave",
    [pytest.param(soffice_resave, id="libreoffice"), pytest.param(gnumeric_resave, id="gnumeric")],
)
def test_sheet_resaved_by_an_office_program_is_read_and_handed_over(
    root: Path, run: Invoke, tmp_path: Path, resave: object
) -> None:
    data = resave(filled_sheet(root, run), tmp_path / "office")  # type: ignore[operator]
    drop(root, "交接单.xlsx", data)
    result = run("process", now="2026-11-23 17:05")
    assert result.output == (
        "[已流转] 交接单.xlsx: 客服部值班交接单(2026-11-23 白班)已核对 → 客服部(接班人员)\n"
    )
    assert (root / "outbox" / "cs" / ACCEPTED).is_file()


def test_sheet_resaved_by_libreoffice_with_a_broken_rule_comes_back(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    data = soffice_resave(filled_sheet(root, run, {"att_absent": None}), tmp_path / "office")
    drop(root, "交接单.xlsx", data)
    result = run("process", now="2026-11-23 17:05")
    assert result.output == "[已退回] 交接单.xlsx: 客服部值班交接单退回客服部:1 个问题\n"
    _title, _header, *rows = sheet_rows(root / "outbox" / "cs" / "交接单-退回.xlsx", "退回原因")
    assert rows == [("1", "旷工人员", "C8", "未填写", "每项必填,没有的写“无”")]


def test_sheet_whose_names_a_program_dropped_is_read_by_its_labels(root: Path, run: Invoke) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(filled_sheet(root, run)))
    for name in layout.HANDOVER_NAMES:
        del wb.defined_names[name]
    out = io.BytesIO()
    wb.save(out)
    drop(root, "交接单.xlsx", out.getvalue())
    result = run("process", now="2026-11-23 17:05")
    assert result.output.startswith("[已流转] 交接单.xlsx: 客服部值班交接单(2026-11-23 白班)")


def test_handover_sheet_of_another_layout_is_answered_naming_what_is_missing(
    root: Path, run: Invoke
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = layout.HANDOVER_SHEET
    ws["A1"], ws["A2"], ws["B2"] = "值班交接记录", "日期", "2026-11-23"
    out = io.BytesIO()
    wb.save(out)
    drop(root, "旧交接单.xlsx", out.getvalue())
    result = run("process", now="2026-11-23 17:05")
    what = (
        "这是客服部值班交接单,但不是当前模板的格式:找不到“填表时间”“交接人”“接交人”"
        "“班次”“应到值班人员”“实到值班人员”等栏目(旧版或自制的表格无法核对)"
    )
    assert result.output == f"[已拒收] 旧交接单.xlsx: 退回:{what}\n"
    reply = (root / "outbox" / "rejected" / "旧交接单.xlsx.退回原因.txt").read_text("utf-8-sig")
    assert f"问题:{what}" in reply
    assert (
        "处理办法:请用 outbox/cs/ 中系统生成的客服部值班交接单"
        "(或 templates/客服部值班交接单.xlsx)填写后重新放入 inbox 文件夹"
    ) in reply
    assert (root / "outbox" / "rejected" / "旧交接单.xlsx").is_file()


def test_same_sheet_dropped_twice_is_a_duplicate(root: Path, run: Invoke) -> None:
    data = filled_sheet(root, run)
    drop(root, SHEET, data)
    assert run("process", now="2026-11-23 17:05").exit_code == 0
    drop(root, "again.xlsx", data)
    result = run("process", now="2026-11-23 17:06")
    assert result.output == "[重复件] again.xlsx: 已于 2026-11-23 17:05 收到\n"
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == [ACCEPTED]


def test_refund_form_is_still_read_as_a_refund_form(root: Path, run: Invoke) -> None:
    drop(root, "申请.xlsx", make_form())
    result = run("process", now="2026-11-23 09:10")
    assert result.output == f"[已流转] 申请.xlsx: {FORM} → 技术部(待技术部核实)\n"


def test_rebuild_reproduces_the_handover_outcomes_and_delivers_nothing_again(
    root: Path, run: Invoke
) -> None:
    good = filled_sheet(root, run)
    drop(root, SHEET, good)
    assert run("process", now="2026-11-23 17:05").exit_code == 0
    drop(root, "第二张.xlsx", fill_form(good, {"taken_by": "张三"}))
    assert run("process", now="2026-11-23 17:06").exit_code == 0
    before = events(root)
    outbox = sorted(p.name for p in (root / "outbox").rglob("*") if p.is_file())
    filed = sorted(p.name for p in (root / "refundsheets" / "交接单").rglob("*.xlsx"))
    result = run("rebuild", now="2026-11-23 17:30")
    assert result.exit_code == 0, result.output
    assert events(root) == before
    assert [kind for kind, _role, _name in before[-2:]] == [
        "handover_accepted",
        "handover_returned",
    ]
    assert sorted(p.name for p in (root / "outbox").rglob("*") if p.is_file()) == outbox
    assert sorted(p.name for p in (root / "refundsheets" / "交接单").rglob("*.xlsx")) == filed
    drop(root, "again.xlsx", good)  # the rebuilt ledger knows it
    assert run("process", now="2026-11-23 17:31").output.startswith("[重复件] again.xlsx")


def test_watch_hands_a_filled_sheet_to_the_next_shift(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    data = filled_sheet(root, run)
    with watching(root, tmp_path) as watch:
        drop_whole(root, SHEET, data)
        assert wait_until(lambda: (root / "outbox" / "cs" / ACCEPTED).is_file()), watch.describe()
        reports = watch.reports_when(1)
    assert reports == [
        f"[已流转] {SHEET}: 客服部值班交接单(2026-11-23 白班)已核对 → 客服部(接班人员)"
    ]
    assert list((root / "inbox").iterdir()) == []


def test_watch_sends_back_a_sheet_breaking_a_rule(root: Path, run: Invoke, tmp_path: Path) -> None:
    data = filled_sheet(root, run, {"handed_by": "王五"})
    with watching(root, tmp_path) as watch:
        drop_whole(root, SHEET, data)
        assert wait_until(lambda: (root / "outbox" / "cs" / RETURNED).is_file()), watch.describe()
        reports = watch.reports_when(1)
    assert reports == [f"[已退回] {SHEET}: 客服部值班交接单退回客服部:1 个问题"]


def test_status_lists_the_days_handover_sheets_and_what_became_of_them(
    root: Path, run: Invoke
) -> None:
    good = filled_sheet(root, run)
    drop(root, SHEET, good)
    assert run("process", now="2026-11-23 17:05").exit_code == 0
    drop(root, "第二张.xlsx", fill_form(good, {"taken_by": "张三"}))
    assert run("process", now="2026-11-23 17:06").exit_code == 0
    lines = run("status", now="2026-11-23 17:30").output.splitlines()
    assert lines[lines.index("今天收到的值班交接单(2 张):") :] == [
        "今天收到的值班交接单(2 张):",
        f"  17:05 {SHEET}:已核对,交给接班人员 outbox/cs/{ACCEPTED}",
        "  17:06 第二张.xlsx:退回客服部(接交人:接交人与交接人是同一人) outbox/cs/第二张-退回.xlsx",
    ]
    assert "今天收到的值班交接单" not in run("status", now="2026-11-24 08:00").output
    assert (
        "今天收到的值班交接单"
        not in run("status", "--role", "技术部", now="2026-11-23 17:30").output
    )


@pytest.mark.parametrize(
    ("change", "left"),
    [
        pytest.param({}, [ACCEPTED], id="handed-over"),
        pytest.param({"taken_by": "张三"}, [RETURNED], id="returned"),
    ],
)
def test_sheet_filled_in_its_folder_and_copied_to_inbox_leaves_the_folder(
    root: Path, run: Invoke, change: dict[str, object], left: list[str]
) -> None:
    """Staff fill the sheet where the watcher put it and copy it into inbox/: once answered,
    outbox/cs/ holds the answer, not the filled copy as well (each folder is a to-do list)."""
    data = filled_sheet(root, run, change)
    (root / "outbox" / "cs" / SHEET).write_bytes(data)  # filled in place
    drop(root, SHEET, data)  # and copied into inbox/
    assert run("process", now="2026-11-23 17:05").exit_code == 0
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == left


def test_another_file_of_the_same_name_in_the_folder_is_left_alone(root: Path, run: Invoke) -> None:
    data = filled_sheet(root, run)
    (root / "outbox" / "cs" / SHEET).write_bytes(b"someone's own notes")
    drop(root, SHEET, data)
    assert run("process", now="2026-11-23 17:05").exit_code == 0
    assert sorted(p.name for p in (root / "outbox" / "cs").iterdir()) == [ACCEPTED, SHEET]
    assert (root / "outbox" / "cs" / SHEET).read_bytes() == b"someone's own notes"
