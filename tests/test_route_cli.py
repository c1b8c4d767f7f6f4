"""A refund form travels the whole route through `refundflow process`, as staff drive it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from conftest import Invoke, block, drop, edit_form, make_form, take

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"


def status_step(run: Invoke, now: str) -> str:
    result = run("status", FORM, "--json", now=now)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["step"])


def test_form_travels_the_whole_route_and_closes(root: Path, run: Invoke) -> None:
    drop(root, "退款申请-张三.xlsx", make_form())
    result = run("process", now="2026-11-23 09:10")
    assert result.exit_code == 0, result.output
    assert result.output == f"[已流转] 退款申请-张三.xlsx: {FORM} → 技术部(待技术部核实)\n"
    assert list((root / "inbox").iterdir()) == []
    assert status_step(run, "2026-11-23 09:11") == "at_tech"

    data = take(root, "tech", FILE)
    drop(root, FILE, edit_form(data, block("tech", "王五", dt.datetime(2026, 11, 23, 9, 30))))
    result = run("process", now="2026-11-23 09:31")
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(技术部已核实,待值班负责人提交财务)\n"

    drop(root, FILE, take(root, "cs", FILE))  # the duty lead forwards it unchanged
    result = run("process", now="2026-11-23 09:40")
    assert result.output == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n"

    steps = [
        ("cashier", "赵六", "2026-11-23 10:00", "财务部会计(待会计复核)"),
        ("accountant", "钱七", "2026-11-23 10:30", "财务总监(待财务总监审批)"),
        ("director", "孙八", "2026-11-23 11:00", "客服部(已退款,待客服反馈用户)"),
    ]
    for role, person, now, where in steps:
        at = dt.datetime.strptime(now, "%Y-%m-%d %H:%M") - dt.timedelta(minutes=1)
        drop(root, FILE, edit_form(take(root, role, FILE), block(role, person, at)))
        result = run("process", now=now)
        assert result.output == f"[已流转] {FILE}: {FORM} → {where}\n", result.output

    drop(root, FILE, take(root, "cs", FILE))  # customer told
    result = run("process", now="2026-11-23 11:20")
    assert result.output == f"[已流转] {FILE}: {FORM} → 行政部(待行政部跟踪归档)\n"

    followup = {
        "admin_followup": "已核实退款到账",
        "admin_by": "吴十",
        "admin_date": dt.datetime(2026, 11, 24, 9, 0),
        "admin_approval": "同意",
    }
    drop(root, FILE, edit_form(take(root, "admin", FILE), followup))
    result = run("process", now="2026-11-24 09:05")
    assert result.output == f"[已归档] {FILE}: {FORM} 已办结归档\n"
    assert (root / "refundsheets" / "归档" / "2026-11" / FILE).exists()

    result = run("status", now="2026-11-24 09:06")
    assert result.output == "没有未办结的退款单\n"
    history = json.loads(run("status", FORM, "--json", now="2026-11-24 09:06").output)
    stamps = [(e["at"], e["stamp"]) for e in history["history"] if e["stamp"]]
    assert stamps == [
        ("2026-11-23 09:10:00", "提交技术部时间"),
        ("2026-11-23 09:40:00", "提交财务时间"),
        ("2026-11-23 11:00:00", "财务反馈时间"),
        ("2026-11-23 11:20:00", "反馈用户时间"),
    ]
    assert history["closed_at"] == "2026-11-24 09:05:00"
    assert all(not any(p.iterdir()) for p in (root / "outbox").iterdir()), "outboxes empty"
