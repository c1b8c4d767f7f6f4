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
    assert status_step(run, "2026-11-23 09:32") == "tech_verified"

    drop(root, FILE, take(root, "cs", FILE))  # the duty lead forwards it unchanged
    result = run("process", now="2026-11-23 09:40")
    assert result.output == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n"
    assert status_step(run, "2026-11-23 09:41") == "at_cashier"

    steps = [
        ("cashier", "赵六", "2026-11-23 10:00", "财务部会计(待会计复核)", "at_accountant"),
        ("accountant", "钱七", "2026-11-23 10:30", "财务总监(待财务总监审批)", "at_director"),
        ("director", "孙八", "2026-11-23 11:00", "客服部(已退款,待客服反馈用户)", "refunded"),
    ]
    for role, person, now, where, step in steps:
        at = dt.datetime.strptime(now, "%Y-%m-%d %H:%M") - dt.timedelta(minutes=1)
        drop(root, FILE, edit_form(take(root, role, FILE), block(role, person, at)))
        result = run("process", now=now)
        assert result.output == f"[已流转] {FILE}: {FORM} → {where}\n", result.output
        assert status_step(run, now) == step

    drop(root, FILE, take(root, "cs", FILE))  # customer told
    result = run("process", now="2026-11-23 11:20")
    assert result.output == f"[已流转] {FILE}: {FORM} → 行政部(待行政部跟踪归档)\n"
    assert status_step(run, "2026-11-23 11:21") == "at_admin"

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
    folders = [p for p in (root / "outbox").iterdir() if p.is_dir()]  # not 状态看板.xlsx
    assert all(not any(p.iterdir()) for p in folders), "outboxes empty"


def test_large_refund_also_needs_the_president(root: Path, run: Invoke) -> None:
    drop(root, "大额.xlsx", make_form(amount=12000))
    run("process", now="2026-11-23 09:10")
    at = dt.datetime(2026, 11, 23, 9, 20)
    drop(root, FILE, edit_form(take(root, "tech", FILE), block("tech", "王五", at)))
    run("process", now="2026-11-23 09:30")
    drop(root, FILE, take(root, "cs", FILE))
    run("process", now="2026-11-23 09:40")
    for role, person in [("cashier", "赵六"), ("accountant", "钱七"), ("director", "孙八")]:
        drop(root, FILE, edit_form(take(root, role, FILE), block(role, person, at)))
        run("process", now="2026-11-23 10:00")
    assert status_step(run, "2026-11-23 10:01") == "at_president"
    president = block("president", "周九", at, approval="不同意", opinion="金额有误,退回核实")
    drop(root, FILE, edit_form(take(root, "president", FILE), president))
    result = run("process", now="2026-11-23 10:30")
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(财务退回,待客服反馈用户)\n"
    history = json.loads(run("status", FORM, "--json", now="2026-11-23 10:31").output)
    assert history["history"][-1]["detail"] == "财务退回:金额有误,退回核实"
    assert history["history"][-1]["stamp"] == "财务反馈时间"


def test_technical_refusal_goes_back_to_customer_service_and_then_closes(
    root: Path, run: Invoke
) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    refusal = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 20), approval="不同意")
    drop(root, FILE, edit_form(take(root, "tech", FILE), refusal))
    result = run("process", now="2026-11-23 09:30")
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(技术部不同意退款,待客服反馈用户)\n"
    drop(root, FILE, take(root, "cs", FILE))
    result = run("process", now="2026-11-23 09:45")
    assert result.output == f"[已流转] {FILE}: {FORM} → 行政部(待行政部跟踪归档)\n"


def test_closed_form_dropped_again_is_refused(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    refusal = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 20), approval="不同意")
    drop(root, FILE, edit_form(take(root, "tech", FILE), refusal))
    run("process", now="2026-11-23 09:30")
    drop(root, FILE, take(root, "cs", FILE))
    run("process", now="2026-11-23 09:45")
    admin = block("admin", "吴十", dt.datetime(2026, 11, 23, 10, 0))
    admin["admin_followup"] = admin.pop("admin_opinion")
    closed_copy = edit_form(take(root, "admin", FILE), admin)
    drop(root, FILE, closed_copy)
    run("process", now="2026-11-23 10:05")
    drop(root, "again.xlsx", edit_form(closed_copy, {"admin_followup": "补充说明"}))
    result = run("process", now="2026-11-23 10:10")
    assert result.output.startswith(
        f"[已拒收] again.xlsx: 退回:退款单 {FORM} 已于 2026-11-23 10:05 办结归档"
    )
