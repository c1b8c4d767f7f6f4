"""A refund finance returned can go on once the reason is gone (issue 8, point 2)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from refundflow.layout import BLOCK_FIELDS

from conftest import Invoke, block, drop, edit_form, make_form, take

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
FINANCE_FIELDS = [
    f.name for r in ("cashier", "accountant", "director", "president") for f in BLOCK_FIELDS[r]
]


def at(day: int, hhmm: str) -> dt.datetime:
    return dt.datetime.strptime(f"2026-11-{day} {hhmm}", "%Y-%m-%d %H:%M")


def returned_by_cashier(root: Path, run: Invoke) -> None:
    drop(root, "申请.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    drop(root, FILE, edit_form(take(root, "tech", FILE), block("tech", "王五", at(23, "09:30"))))
    run("process", now="2026-11-23 09:31")
    drop(root, FILE, take(root, "cs", FILE))
    run("process", now="2026-11-23 09:40")
    refusal = block("cashier", "赵六", at(23, "09:59"), approval="不同意", opinion="款项未入账")
    drop(root, FILE, edit_form(take(root, "cashier", FILE), refusal))
    result = run("process", now="2026-11-23 10:00")
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(财务退回,待客服反馈用户)\n"


def step_of(run: Invoke, now: str) -> str:
    return str(json.loads(run("status", FORM, "--json", now=now).stdout)["step"])


def test_form_returned_by_finance_is_resubmitted_and_refunded(root: Path, run: Invoke) -> None:
    returned_by_cashier(root, run)
    # The money arrives the next day: customer service clears the finance blocks and the
    # duty lead approves the form again.
    cleared = dict.fromkeys(FINANCE_FIELDS)
    cleared.update(cs_date=at(24, "08:55"), cs_opinion="款项已到账,重新提交财务")
    drop(root, FILE, edit_form(take(root, "cs", FILE), cleared))
    result = run("process", now="2026-11-24 09:00")
    assert result.output == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n"
    assert step_of(run, "2026-11-24 09:01") == "at_cashier"

    for role, person, now, step in [
        ("cashier", "赵六", "09:30", "at_accountant"),
        ("accountant", "钱七", "10:00", "at_director"),
        ("director", "孙八", "10:30", "refunded"),
    ]:
        signed = block(role, person, at(24, now) - dt.timedelta(minutes=1))
        drop(root, FILE, edit_form(take(root, role, FILE), signed))
        result = run("process", now=f"2026-11-24 {now}")
        assert result.output.startswith(f"[已流转] {FILE}"), result.output
        assert step_of(run, f"2026-11-24 {now}") == step

    history = json.loads(run("status", FORM, "--json", now="2026-11-24 11:00").stdout)["history"]
    details = [h["detail"] or "" for h in history]
    assert any(d.startswith("财务退回:款项未入账") for d in details)
    assert "重新提交财务(第 2 轮)" in details
    finance_stamps = [h["at"] for h in history if h["stamp"] == "提交财务时间"]
    assert finance_stamps == ["2026-11-23 09:40:00", "2026-11-24 09:00:00"]


def test_clearing_only_part_of_the_finance_blocks_comes_back_with_the_two_choices(
    root: Path, run: Invoke
) -> None:
    returned_by_cashier(root, run)
    drop(root, FILE, edit_form(take(root, "cs", FILE), {"cashier_approval": None}))
    result = run("process", now="2026-11-24 09:00")
    assert result.output.startswith(f"[已退回] {FILE}: 退回客服部"), result.output
    rows = json.loads(run("status", FORM, "--json", now="2026-11-24 09:01").stdout)["history"]
    assert "要重新提交财务,请清空出纳、会计、财务总监、总裁四栏的全部内容" in rows[-1]["detail"]


def test_form_returned_by_finance_can_still_just_be_closed(root: Path, run: Invoke) -> None:
    returned_by_cashier(root, run)
    drop(root, FILE, take(root, "cs", FILE))  # customer told; nothing changed
    result = run("process", now="2026-11-23 10:30")
    assert result.output == f"[已流转] {FILE}: {FORM} → 行政部(待行政部跟踪归档)\n"


def close_as_returned(root: Path, run: Invoke) -> None:
    returned_by_cashier(root, run)
    drop(root, FILE, take(root, "cs", FILE))  # customer told
    run("process", now="2026-11-23 10:30")
    followup = {
        "admin_followup": "款项未入账,已告知客户",
        "admin_by": "吴十",
        "admin_date": at(24, "09:00"),
        "admin_approval": "同意",
    }
    drop(root, FILE, edit_form(take(root, "admin", FILE), followup))
    result = run("process", now="2026-11-24 09:05")
    assert result.output == f"[已归档] {FILE}: {FORM} 已办结归档\n"


def test_new_form_for_an_order_closed_as_returned_is_accepted_and_linked(
    root: Path, run: Invoke
) -> None:
    close_as_returned(root, run)
    again = make_form(reported_at=at(25, "09:00"), submitted_at=at(25, "09:05"))
    again = edit_form(again, {"cs_date": at(25, "09:06")})
    drop(root, "再次申请.xlsx", again)
    result = run("process", now="2026-11-25 09:10")
    assert result.output == "[已流转] 再次申请.xlsx: TKD20261125-001 → 技术部(待技术部核实)\n"
    history = json.loads(run("status", "TKD20261125-001", "--json", now="2026-11-25 09:11").stdout)
    assert (
        "同一订单的前一张退款单 TKD20261123-001 已退回办结,本单为重新申请"
        in (history["history"][0]["detail"])
    )


def test_new_form_for_an_order_still_open_or_refunded_is_refused(root: Path, run: Invoke) -> None:
    returned_by_cashier(root, run)  # open: waiting on customer service
    drop(root, "又一张.xlsx", make_form(customer_request="再次要求退款"))
    result = run("process", now="2026-11-23 10:10")
    assert result.output.startswith("[已退回] 又一张.xlsx: 退回客服部"), result.output


def test_a_ledger_from_before_the_change_allows_the_new_form_after_migration(
    root: Path, run: Invoke
) -> None:
    import sqlite3

    close_as_returned(root, run)
    ledger = root / "refundsheets" / "ledger.sqlite3"
    db = sqlite3.connect(ledger)
    # Put the old schema back: order_no UNIQUE, no supersedes column.
    db.executescript(
        """
        ALTER TABLE forms RENAME TO f;
        DROP INDEX IF EXISTS forms_order;
        CREATE TABLE forms (form_no TEXT PRIMARY KEY, order_no TEXT NOT NULL UNIQUE,
            step TEXT NOT NULL, waiting_on TEXT, step_since TEXT NOT NULL, reported_at TEXT,
            amount TEXT, created_at TEXT NOT NULL, closed_at TEXT,
            transitions INTEGER NOT NULL DEFAULT 0, last_sent_sha TEXT, snapshot TEXT NOT NULL);
        INSERT INTO forms SELECT form_no, order_no, step, waiting_on, step_since, reported_at,
            amount, created_at, closed_at, transitions, last_sent_sha, snapshot FROM f;
        DROP TABLE f;
        """
    )
    db.close()
    again = make_form(reported_at=at(25, "09:00"), submitted_at=at(25, "09:05"))
    drop(root, "再次申请.xlsx", edit_form(again, {"cs_date": at(25, "09:06")}))
    result = run("process", now="2026-11-25 09:10")
    assert result.output == "[已流转] 再次申请.xlsx: TKD20261125-001 → 技术部(待技术部核实)\n"


def test_statistics_show_the_latest_cycle_and_note_the_return(root: Path, run: Invoke) -> None:
    import openpyxl

    test_form_returned_by_finance_is_resubmitted_and_refunded(root, run)
    result = run("report", "--month", "2026-11", now="2026-12-01 09:00")
    assert result.exit_code == 0, result.output
    table = openpyxl.load_workbook(root / "outbox" / "cs" / "客服退单统计表-2026-11.xlsx").active
    header = [c.value for c in table[3]]
    row = dict(zip(header, (c.value for c in table[4]), strict=True))
    assert row["退单编号"] == FORM
    assert row["提交财务时间"].strftime("%Y-%m-%d %H:%M") == "2026-11-24 09:00"  # latest cycle
    assert row["财务反馈时间"].strftime("%Y-%m-%d %H:%M") == "2026-11-24 10:30"
    assert "曾财务退回:款项未入账,已重新提交财务" in row["备注"]
