"""The status board, outbox/状态看板.xlsx: exactly the open forms, late ones first and in red,
with deadlines on the working-day calendar; never in the watcher's way."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import chinese_calendar
import openpyxl
import pytest

from dayreplay import A, B, C, D, new_workspace, replay_day
from refundflow.board import BOARD_FILE, StatusBoard, monthly_due, time_left
from refundflow.calendar import WorkCalendar
from refundflow.config import load_config, parse_config
from refundflow.ledger import Ledger
from refundflow.workspace import Workspace

from conftest import Invoke, block, drop, edit_form, make_form, set_roster, take

HEADER = ["编号", "订单号", "金额", "环节", "等待", "自", "期限", "剩余时间", "状态", "超时记录"]


def board_rows(root: Path) -> list[list[object]]:
    ws = openpyxl.load_workbook(root / "outbox" / BOARD_FILE).active
    return [list(row) for row in ws.iter_rows(values_only=True)]


def form_rows(root: Path) -> list[list[object]]:
    """The rows of the open-forms table, from its header to the first empty row."""
    rows = board_rows(root)
    start = rows.index(HEADER) + 1
    end = next(i for i in range(start, len(rows)) if rows[i][0] is None)
    return rows[start:end]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("board") / "ws"
    run = new_workspace(root)
    replay_day(root, run)
    assert run("process", now="2026-11-23 16:50").exit_code == 0  # a pass with nothing new
    return root


def test_board_lists_exactly_the_open_forms_late_first(day: Path) -> None:
    rows = form_rows(day)
    assert [r[:9] for r in rows] == [
        # late: at the cashier since Friday (finance's 12 hours ran out Friday 23:00)
        [D, "TK20261120001", "1200.00", "待出纳初核", "财务部出纳", "2026-11-20 11:00",
         "2026-11-20 23:00", "已超2天17小时50分", "逾期"],
        [C, "TK20261123003", "500.00", "待技术部核实", "技术部", "2026-11-23 14:30",
         "2026-11-24 14:00", "21小时10分", "正常"],
        [A, "TK20261123001", "268.50", "已退款,待客服反馈用户", "客服部", "2026-11-23 11:00",
         "2026-11-26 09:00", "2天16小时10分", "正常"],
        [B, "TK20261123002", "99.00", "财务退回,待客服反馈用户", "客服部", "2026-11-23 12:00",
         "2026-11-26 09:10", "2天16小时20分", "正常"],
    ]  # fmt: skip
    assert rows[0][9].startswith("财务处理超时:财务12小时内处理完毕,期限 2026-11-20 23:00")
    assert rows[3][9].startswith("财务退回:银行流水未查到该笔扣款\n提交财务超时:")


def test_late_forms_are_red_and_counts_are_per_step_and_role(day: Path) -> None:
    ws = openpyxl.load_workbook(day / "outbox" / BOARD_FILE).active
    colours = {
        row[0].value: row[0].font.color.rgb if row[0].font.color else None
        for row in ws.iter_rows()
        if row[0].value in (A, B, C, D)
    }
    assert colours[D] == "FFC00000"
    assert all(colours[f] != "FFC00000" for f in (A, B, C))
    rows = board_rows(day)
    at = rows.index(["按环节统计", "张数", "其中逾期", *[None] * 7])
    assert [r[:3] for r in rows[at + 1 : at + 5]] == [
        ["待技术部核实", 1, 0],
        ["待出纳初核", 1, 1],
        ["已退款,待客服反馈用户", 1, 0],
        ["财务退回,待客服反馈用户", 1, 0],
    ]
    at = rows.index(["按等待部门统计", "张数", "其中逾期", *[None] * 7])
    assert [r[:3] for r in rows[at + 1 : at + 4]] == [
        ["客服部", 2, 0],
        ["技术部", 1, 0],
        ["财务部出纳", 1, 1],
    ]
    summary = rows[1][0]
    assert (
        summary
        == "未办结 4 张,其中逾期 1 张。2026年11月退单统计表(客服、财务)报送行政部日期:2026-12-01"
    )


def working_days_later(start: dt.datetime, days: int) -> dt.datetime:
    """The official calendar counted by hand: the day ``days`` working days after ``start``."""
    day = start.date()
    while days:
        day += dt.timedelta(days=1)
        days -= chinese_calendar.is_workday(day)
    return dt.datetime.combine(day, start.time())


@pytest.mark.parametrize(
    ("reported", "due"),
    [
        pytest.param("2026-11-20 10:00", "2026-11-25 10:00", id="across-a-weekend"),
        # Sunday 2026-09-20 is a working day (调休 before the National Day holiday).
        pytest.param("2026-09-18 10:00", "2026-09-22 10:00", id="across-a-working-sunday"),
    ],
)
def test_three_working_day_deadline_follows_the_official_calendar(
    root: Path, run: Invoke, reported: str, due: str
) -> None:
    start = dt.datetime.strptime(reported, "%Y-%m-%d %H:%M")
    assert f"{working_days_later(start, 3):%Y-%m-%d %H:%M}" == due
    assert chinese_calendar.is_workday(dt.date(2026, 9, 20))  # the case is what it claims
    form = f"TKD{start:%Y%m%d}-001"
    drop(
        root,
        "a.xlsx",
        make_form(
            reported_at=start,
            purchase_time=start - dt.timedelta(hours=3),
            submitted_at=start + dt.timedelta(minutes=1),
            cs_date=start + dt.timedelta(minutes=2),
        ),
    )
    assert run("process", now=f"{start + dt.timedelta(minutes=5):%Y-%m-%d %H:%M}").exit_code == 0
    refusal = block("tech", "王五", start + dt.timedelta(minutes=20), approval="不同意")
    drop(root, f"{form}.xlsx", edit_form(take(root, "tech", f"{form}.xlsx"), refusal))
    later = f"{start + dt.timedelta(minutes=30):%Y-%m-%d %H:%M}"
    assert run("process", now=later).exit_code == 0
    rows = form_rows(root)
    assert [(r[0], r[3], r[6], r[8]) for r in rows] == [
        (form, "技术部不同意退款,待客服反馈用户", due, "正常")
    ]


def test_board_that_cannot_be_replaced_is_written_on_a_later_pass(
    root: Path, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone has the board open (locked on a Windows share): the watcher goes on."""
    assert run("process", now="2026-11-23 09:00").exit_code == 0
    before = (root / "outbox" / BOARD_FILE).read_bytes()
    real_replace = os.replace

    def locked(src: object, dst: object) -> None:
        raise PermissionError(13, "The process cannot access the file", str(dst))

    monkeypatch.setattr("refundflow.board.os.replace", locked)
    drop(root, "a.xlsx", make_form())
    result = run("process", now="2026-11-23 09:10")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[已流转] a.xlsx:")
    assert (root / "outbox" / BOARD_FILE).read_bytes() == before
    assert sorted(p.name for p in (root / "outbox").iterdir() if p.is_file()) == [BOARD_FILE]

    monkeypatch.setattr("refundflow.board.os.replace", real_replace)
    workspace = Workspace(root, load_config(root))
    ledger = Ledger(workspace.ledger_path)
    try:
        assert StatusBoard(workspace).update(ledger, now=dt.datetime(2026, 11, 23, 9, 11))
    finally:
        ledger.close()
    assert [r[0] for r in form_rows(root)] == ["TKD20261123-001"]


def test_board_says_first_which_roles_have_no_roster(root: Path, run: Invoke) -> None:
    set_roster(root, {"tech": ["王五"]})
    assert run("process").exit_code == 0
    rows = board_rows(root)
    assert str(rows[1][0]).startswith("警告:未配置名单的角色:客服部(cs)、财务部出纳(cashier)")
    assert str(rows[2][0]).startswith("处理办法:在 ")
    assert rows[rows.index(HEADER) + 1][0] == "没有未办结的退款单"


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        pytest.param(5, "05分", id="minutes"),
        pytest.param(125, "2小时05分", id="hours"),
        pytest.param(24 * 60 + 1, "1天0小时01分", id="days"),
        pytest.param(-61, "已超1小时01分", id="overdue"),
    ],
)
def test_time_left_is_said_in_days_hours_minutes(minutes: int, text: str) -> None:
    now = dt.datetime(2026, 11, 23, 9, 0)
    assert time_left(now + dt.timedelta(minutes=minutes), now) == text


def test_temporary_board_left_by_a_killed_run_is_removed(root: Path, run: Invoke) -> None:
    leftover = root / "outbox" / ".状态看板.4242.tmp.xlsx"
    leftover.write_bytes(b"half a board")
    assert run("process").exit_code == 0
    assert sorted(p.name for p in (root / "outbox").iterdir() if p.is_file()) == [BOARD_FILE]


def test_a_row_is_as_tall_as_its_breach_lines(day: Path) -> None:
    """Spreadsheet programs do not grow rows a program wrote: two breaches need two lines."""
    ws = openpyxl.load_workbook(day / "outbox" / BOARD_FILE).active
    heights = {
        row[0].value: ws.row_dimensions[row[0].row].height
        for row in ws.iter_rows()
        if row[0].value in (A, D)
    }
    assert heights[A] == 13.5  # no breach, no note
    assert heights[D] >= 2 * 13.5  # 财务处理超时 and 退款超时, one line each at least


@pytest.mark.parametrize(
    ("now", "due", "covers"),
    [
        # 2026-11-01 is a Sunday: October's tables are due Monday 11-02, still ahead that day.
        pytest.param("2026-11-02 09:00", "2026-11-02", "2026年10月", id="due-today"),
        pytest.param("2026-11-03 09:00", "2026-12-01", "2026年11月", id="next-month"),
        pytest.param("2026-11-30 18:00", "2026-12-01", "2026年11月", id="month-end"),
    ],
)
def test_board_names_the_next_monthly_due_date(now: str, due: str, covers: str) -> None:
    moment = dt.datetime.strptime(now, "%Y-%m-%d %H:%M")
    day, month = monthly_due(moment, WorkCalendar(parse_config({})))
    assert (f"{day}", month) == (due, covers)
