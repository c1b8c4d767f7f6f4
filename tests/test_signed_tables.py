"""Signed statistics tables coming back through inbox/ (issue 9): filed, sent to 行政部, and the
monthly workbook made again with 核对 against the signed tables; bad ones go back with reasons.

November 2026 is built once with `process --now` replays (monthfill), and its tables made by
`refundflow report`; each test signs them as a department head does in a spreadsheet program.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from monthfill import build_month
from refundflow import layout
from refundflow.cli import cli
from refundflow.config import load_config
from refundflow.ledger import Ledger
from refundflow.processor import Outcome, Processor
from refundflow.sandbox import ParserPool
from refundflow.workspace import Workspace

from conftest import ROSTER, drop, make_form, set_roster
from office import gnumeric_resave, needs_soffice, soffice_resave

CS_FILE = "客服退单统计表-2026-11.xlsx"
FIN_FILE = "财务退单统计表-2026-11.xlsx"
BOOK_FILE = "月度退款报表-2026-11.xlsx"
SIGNED = Path("refundsheets") / "统计表" / "2026-11" / "已审批"
DROP_AT = "2026-12-01 10:00"


@pytest.fixture(scope="module")
def november(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after November's refunds and `report --month 2026-11` (built once)."""
    root = tmp_path_factory.mktemp("signed") / "ws"
    assert CliRunner().invoke(cli, ["init", "--root", str(root)]).exit_code == 0
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8").replace("# stable_seconds = 2", "stable_seconds = 0")
    config.write_text(text.replace("# auto = true", "auto = false"), encoding="utf-8")
    set_roster(root, ROSTER)
    build_month(root)
    report = CliRunner().invoke(
        cli, ["--now", "2026-12-01 08:00", "report", "--month", "2026-11", "--root", str(root)]
    )
    assert report.exit_code == 0, report.output
    return root


@pytest.fixture
def ws(november: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(november, tmp_path / "ws", symlinks=True))


def process(root: Path, now: str = DROP_AT) -> Result:
    result = CliRunner().invoke(cli, ["--now", now, "process", "--root", str(root)])
    assert result.exit_code == 0, result.output
    return result


def signed(
    root: Path,
    *,
    finance: bool = False,
    approver: str | None = "王经理",
    cells: dict[str, Any] | None = None,
) -> bytes:
    """The generated table as its department head saves it: 审批人 signed, ``cells`` changed."""
    folder = "cashier" if finance else "cs"
    book = openpyxl.load_workbook(root / "outbox" / folder / (FIN_FILE if finance else CS_FILE))
    sheet = book.active
    destinations = book.defined_names["approver"].destinations
    _, where = next(iter(destinations))
    if approver is not None:
        sheet[where.replace("$", "")] = approver
    for cell, value in (cells or {}).items():
        sheet[cell] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def tables_in(folder: Path) -> list[str]:
    """The month's statistics files in a folder (行政部's also holds forms waiting on it)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith("-2026-11.xlsx"))


def sheet_rows(data: bytes, sheet: str) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return [tuple(row) for row in book[sheet].iter_rows(values_only=True)]


def check_rows(root: Path) -> list[dict[str, str]]:
    frame = pd.read_excel(
        root / "outbox" / "admin" / BOOK_FILE,
        sheet_name="核对",
        header=2,
        dtype=str,
        engine="calamine",
    )
    return frame.fillna("").to_dict("records")


def test_both_signed_tables_go_to_admin_and_the_workbook_is_made_again_from_them(
    ws: Path,
) -> None:
    cs, fin = signed(ws), signed(ws, finance=True, approver="赵总监")
    drop(ws, CS_FILE, cs)
    assert process(ws).output == (
        f"[已流转] {CS_FILE}: 客服退单统计表 2026-11(审批人 王经理)→ 行政部;"
        "待财务退单统计表审批后生成月度退款报表\n"
    )
    generated = (ws / "outbox" / "admin" / BOOK_FILE).read_bytes()
    assert sheet_rows(generated, "客服退单统计表")[0][0].startswith("未签字")  # not yet made again
    drop(ws, FIN_FILE, fin)
    assert process(ws, "2026-12-01 11:00").output == (
        f"[已流转] {FIN_FILE}: 财务退单统计表 2026-11(审批人 赵总监)→ 行政部;"
        "已按两张已审批的统计表重新生成月度退款报表(核对无误)\n"
    )

    admin = ws / "outbox" / "admin"
    assert tables_in(admin) == sorted([CS_FILE, FIN_FILE, BOOK_FILE])
    assert (admin / CS_FILE).read_bytes() == cs and (admin / FIN_FILE).read_bytes() == fin
    assert sorted(p.name for p in (ws / SIGNED).iterdir()) == sorted([CS_FILE, FIN_FILE, BOOK_FILE])
    book = (admin / BOOK_FILE).read_bytes()
    assert (ws / SIGNED / BOOK_FILE).read_bytes() == book
    assert sheet_rows(book, "核对")[0][0] == (
        "核对无误:两张统计表与账本一致(6 张退款单,金额合计 ¥6,026.59),每张退款单都经过了必经环节。"
    )
    assert sheet_rows(book, "客服退单统计表")[0][0] == "已审批:部门负责人签字的统计表,审批人 王经理"
    assert sheet_rows(book, "财务退单统计表")[0][0] == "已审批:部门负责人签字的统计表,审批人 赵总监"
    assert list((ws / "inbox").iterdir()) == []
    # The generated workbook administration had stays in the month's archive.
    assert (ws / SIGNED.parent / BOOK_FILE).read_bytes() == generated


def test_status_counts_a_filed_table_as_in(ws: Path) -> None:
    def late(now: str) -> list[str]:
        result = CliRunner().invoke(cli, ["--now", now, "status", "--root", str(ws)])
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if line.startswith("逾期:")]

    drop(ws, CS_FILE, signed(ws))
    process(ws)
    assert late("2026-12-03 09:00") == [
        "逾期:2026-11 的财务退单统计表(财务部)应于 2026-12-01 报送行政人事部,"
        "已逾期 2 天,尚未收到部门负责人审批的表",
    ]


def test_an_amount_edited_in_the_signed_cs_table_shows_in_check_as_exactly_that_difference(
    ws: Path,
) -> None:
    row = layout.STATS_FIRST_DATA_ROW + 1  # TKD20261105-001, 1999.99 in the ledger
    amount = f"G{row}"
    book = openpyxl.load_workbook(ws / "outbox" / "cs" / CS_FILE)
    assert book.active[f"C{row}"].value == "TKD20261105-001"
    drop(ws, CS_FILE, signed(ws, cells={amount: 1999.00}))
    drop(ws, FIN_FILE, signed(ws, finance=True))
    output = process(ws).output
    assert "重新生成月度退款报表(核对问题 1 处)" in output
    assert check_rows(ws) == [
        {
            "表": "客服退单统计表",
            "退单编号": "TKD20261105-001",
            "问题": "金额不一致",
            "表中": "1999.00",
            "账本中": "1999.99",
        }
    ]


RETURNED_CS = "客服退单统计表-2026-11-退回.xlsx"


@pytest.mark.parametrize(
    ("finance", "approver", "cells", "expected"),
    [
        pytest.param(
            False, None, {},
            [("审批人", "J26", "审批人(J26)为空:本表还没有经部门负责人审批",
              "请部门负责人核对本表后在审批人(J26)处签名,再放入 inbox")],
            id="unsigned",
        ),
        pytest.param(
            False, "王经理", {"B2": "KFTJ-2026-09"},
            [("编号", "B2", "编号(B2)是 2026-09 的统计表,但账本中没有该月提交的退款单",
              "核对月份:应报送的是 2026-11 等有退款单的月份的统计表,请用 refundflow 生成的该月统计表签字")],
            id="month-without-refunds",
        ),
        pytest.param(
            False, "王经理", {"B2": "KFTJ-2026-12"},
            [("编号", "B2", "编号(B2)是 2026-12 的统计表,该月尚未结束,不能审批报送",
              "月末之后用 refundflow 生成的 2026-12 统计表签字报送")],
            id="month-not-over",
        ),
        pytest.param(
            True, "赵总监", {"B2": "KFTJ-2026-11"},
            [("编号", "B2", "编号(B2)“KFTJ-2026-11”是客服退单统计表的编号,本表是财务退单统计表",
              "财务退单统计表的编号应为 CWTJ-2026-11;请用 refundflow 生成的财务退单统计表签字")],
            id="other-tables-number",
        ),
        pytest.param(
            False, "王经理", {"G5": "一千九百九十九"},
            [("金额", "G5", "金额(G5)是“一千九百九十九”,不是金额",
              "填写数字金额(元),不要带单位或文字;不清楚时改回生成时的金额")],
            id="amount-not-a-number",
        ),
        pytest.param(
            False, "王经理", {"G3": "退款金额", "A24": None},
            [("列标题“金额”", "G3", "G3 的列标题是“退款金额”,应为“金额”",
              "把第 3 行的列标题改回生成时的样子(依次为序号、提交日期、退单编号、订单号、联系方式、"
              "开户行、金额、提交人、提交技术部时间、提交财务时间、财务反馈时间、反馈用户时间、备注),"
              "不要插入、删除或移动列"),
             ("合计", "A列", "找不到“合计”行(A列最后一行退款记录下面)",
              "请用 refundflow 生成的统计表签字,不要删除“合计”行")],
            id="damaged",
        ),
    ],
)  # fmt: skip
def test_a_table_that_cannot_be_filed_goes_back_to_its_compiler_with_the_reasons(
    ws: Path,
    finance: bool,
    approver: str | None,
    cells: dict[str, Any],
    expected: list[tuple[str, str, str, str]],
) -> None:
    name = FIN_FILE if finance else CS_FILE
    drop(ws, name, signed(ws, finance=finance, approver=approver, cells=cells))
    output = process(ws).output
    folder = "cashier" if finance else "cs"
    assert output == (
        f"[已退回] {name}: 退回{'财务部出纳' if finance else '客服部'}:"
        f"{'财务' if finance else '客服'}退单统计表 {len(expected)} 个问题\n"
    )
    returned = (ws / "outbox" / folder / name.replace(".xlsx", "-退回.xlsx")).read_bytes()
    rows = sheet_rows(returned, layout.RETURN_SHEET)
    number = cells.get("B2", f"{'CWTJ' if finance else 'KFTJ'}-2026-11")
    kind = "财务退单统计表" if finance else "客服退单统计表"
    assert rows[0][0] == f"{kind} {number} 退回原因(退回时间:2026-12-01 10:00)"
    assert rows[1] == ("序号", "项目", "单元格", "问题", "如何修改")
    assert [r[1:] for r in rows[2:]] == expected
    assert not (ws / SIGNED).exists()
    assert tables_in(ws / "outbox" / "admin") == [BOOK_FILE]


@pytest.mark.parametrize(
    "resave",
    [
        pytest.param(soffice_resave, id="libreoffice", marks=needs_soffice),
        pytest.param(gnumeric_resave, id="gnumeric"),
    ],
)
def test_a_table_signed_and_saved_in_another_office_program_is_filed(
    ws: Path, tmp_path: Path, resave: Callable[[bytes, Path], bytes]
) -> None:
    data = resave(signed(ws), tmp_path / "resaved")
    drop(ws, CS_FILE, data)
    assert process(ws).output.startswith(
        f"[已流转] {CS_FILE}: 客服退单统计表 2026-11(审批人 王经理)→ 行政部"
    )
    assert (ws / SIGNED / CS_FILE).read_bytes() == data


def test_a_table_signed_again_replaces_the_earlier_one_which_stays_archived(ws: Path) -> None:
    first, second = signed(ws, approver="王经理"), signed(ws, approver="李经理")
    drop(ws, CS_FILE, first)
    process(ws)
    drop(ws, CS_FILE, second)
    assert "(审批人 李经理)" in process(ws, "2026-12-01 11:00").output
    assert (ws / SIGNED / CS_FILE).read_bytes() == second
    assert sorted(p.name for p in (ws / SIGNED).iterdir()) == [CS_FILE]
    assert (ws / "outbox" / "admin" / CS_FILE).read_bytes() == second
    assert tables_in(ws / "outbox" / "admin") == sorted([CS_FILE, BOOK_FILE])
    received = ws / "refundsheets" / "archive" / "received"
    assert {p.read_bytes() for p in received.rglob(f"*{CS_FILE}")} >= {first, second}


def test_the_same_signed_table_dropped_twice_is_a_duplicate(ws: Path) -> None:
    data = signed(ws)
    drop(ws, CS_FILE, data)
    process(ws)
    drop(ws, CS_FILE, data)
    assert process(ws, "2026-12-01 10:30").output == (
        f"[重复件] {CS_FILE}: 已于 2026-12-01 10:00 收到\n"
    )


def test_rebuild_reproduces_filed_and_returned_tables_and_delivers_nothing(ws: Path) -> None:
    drop(ws, CS_FILE, signed(ws, approver=None))  # returned: unsigned
    process(ws)
    drop(ws, CS_FILE, signed(ws, cells={f"G{layout.STATS_FIRST_DATA_ROW}": 268.0}))
    drop(ws, FIN_FILE, signed(ws, finance=True))
    process(ws, "2026-12-01 11:00")
    ledger_file = ws / "refundsheets" / "ledger.sqlite3"

    def state() -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
        ledger = Ledger(ledger_file)
        try:
            events = [dataclasses.asdict(e) for e in ledger.events()]
            deliveries = [  # the tables' (the forms' are test_rebuild's)
                (r.name, d.dest, d.sha)
                for e in ledger.events()
                if e.file_name in (CS_FILE, FIN_FILE)
                for r in ledger.receipts_for(e.file_sha)
                if r.event_id == e.id
                for d in ledger.deliveries(r.id)
            ]
        finally:
            ledger.close()
        for event in events:
            del event["id"]
        return events, deliveries

    before = state()
    kinds = [e["kind"] for e in before[0] if e["file_name"] in (CS_FILE, FIN_FILE)]
    assert kinds == ["returned", "table_signed", "table_signed"]
    files = {p: p.read_bytes() for p in sorted(ws.rglob("*")) if p.is_file()}
    files = {p: b for p, b in files.items() if not p.name.startswith(("ledger.", ".refundflow"))}
    result = CliRunner().invoke(cli, ["--now", "2026-12-02 09:00", "rebuild", "--root", str(ws)])
    assert result.exit_code == 0, result.output
    assert state() == before
    after = {p: p.read_bytes() for p in files if p.is_file()}
    assert after == files, "nothing delivered again"


def test_which_table_tells_statistics_tables_from_forms_and_the_monthly_workbook(
    ws: Path,
) -> None:
    from refundflow.statsread import which_table  # new module: the other tests run without it

    assert which_table((ws / "outbox" / "cs" / CS_FILE).read_bytes()) is False
    assert which_table((ws / "outbox" / "cashier" / FIN_FILE).read_bytes()) is True
    assert which_table((ws / "outbox" / "admin" / BOOK_FILE).read_bytes()) is None
    assert which_table(make_form()) is None
    assert which_table(b"not a zip") is None


def test_a_month_with_a_refund_form_dropped_beside_is_unchanged(ws: Path) -> None:
    """A refund form still takes the form's path when a table is processed with it."""
    drop(ws, CS_FILE, signed(ws))
    drop(ws, "新单.xlsx", make_form(order_no="TK20261201001"))
    lines = process(ws, "2026-12-01 10:00").output.splitlines()
    assert any(line.startswith("[已流转] 新单.xlsx: TKD20261201-001 → ") for line in lines), lines


def test_a_file_put_by_hand_where_the_signed_table_is_filed_is_archived_and_replaced(
    ws: Path,
) -> None:
    (ws / SIGNED).mkdir(parents=True)
    (ws / SIGNED / CS_FILE).write_bytes(b"copied here by hand")
    data = signed(ws)
    drop(ws, CS_FILE, data)
    process(ws)
    assert sorted(p.name for p in (ws / SIGNED).iterdir()) == [CS_FILE]
    assert (ws / SIGNED / CS_FILE).read_bytes() == data
    kept = ws / "refundsheets" / "archive" / "superseded"
    assert [p.read_bytes() for p in kept.rglob(f"*{CS_FILE}")] == [b"copied here by hand"]


class CountingPool(ParserPool):
    """The sandboxed worker pool, counting what it is asked to run."""

    def __init__(self) -> None:
        super().__init__(memory_mb=512, timeout=20)
        self.calls: list[str] = []

    def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.calls.append(func.__name__)
        return super().run(func, *args, **kwargs)


T = TypeVar("T")


def test_a_refund_form_costs_no_extra_worker_round_trip(root: Path) -> None:
    """One call into the worker per file: it tells a statistics table from a form itself."""
    drop(root, "新单.xlsx", make_form())
    with CountingPool() as pool:
        processor = Processor(
            Workspace(root, load_config(root)),
            clock=lambda: dt.datetime(2026, 11, 23, 9, 10),
            pool=pool,
        )
        try:
            result = processor.process_file(root / "inbox" / "新单.xlsx")
        finally:
            processor.close()
    assert result.outcome is Outcome.ROUTED
    assert pool.calls == ["examine"]
