"""Forms re-saved by JavaScript writers (issue 13): ExcelJS and SheetJS fill the template cell by
cell, as a web tool or a script does, and the form travels the whole route to closed.

What the writers keep and drop (checked below): ExcelJS keeps every sheet, every value and
every field's defined name but drops the custom document property and the constant
``refundflow_template`` name (the version mark); SheetJS (community edition) keeps both marks
but drops most cell formats, the drop-down lists, the print setup and the sheet protection.
Both keep every sheet (流转记录 included) and every value.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import openpyxl
import pytest

from refundflow import layout
from refundflow.forms import read_form

from conftest import NEW_FORM, REFUND_TEMPLATE, Invoke, block, drop, take

JS = Path(__file__).resolve().parent / "js"
FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
NOTE = "缺少模板版本标记,按当前模板读取,已补回"


def _missing() -> str:
    if shutil.which("node") is None:
        return "node is not installed (npm packages exceljs and xlsx are needed)"
    if (
        not (JS / "node_modules" / "exceljs").is_dir()
        or not (JS / "node_modules" / "xlsx").is_dir()
    ):
        return "npm packages missing: run `npm ci --prefix tests/js` (.ci/run does)"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "-")

TOOLS = [pytest.param("exceljs", id="exceljs"), pytest.param("sheetjs", id="sheetjs")]


def js_fill(tool: str, data: bytes, values: Mapping[str, object], tmp: Path) -> bytes:
    """``data`` loaded by ``tool``, the named fields set cell by cell, saved by ``tool``.

    Cells are addressed as in the current template, as a tool built for the form does.
    """
    cells: dict[str, dict[str, object]] = {}
    for name, value in values.items():
        cell = layout.FIELDS_BY_NAME[name].cell
        if isinstance(value, dt.datetime):
            cells[cell] = {"d": value.strftime("%Y-%m-%dT%H:%M")}
        elif isinstance(value, int | float):
            cells[cell] = {"n": value}
        else:
            cells[cell] = {"s": str(value)}
    source, target = tmp / "in.xlsx", tmp / "out.xlsx"
    source.write_bytes(data)
    target.unlink(missing_ok=True)
    subprocess.run(
        ["node", str(JS / "fill.js"), tool, str(source), str(target)],
        input=json.dumps({"sheet": layout.REFUND_SHEET, "cells": cells}),
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target.read_bytes()


def history_sheet(data: bytes) -> list[tuple[object, ...]]:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return [tuple(r) for r in wb[layout.HISTORY_SHEET].iter_rows(values_only=True)]


@pytest.mark.parametrize("tool", TOOLS)
def test_form_filled_by_a_javascript_writer_travels_the_whole_route_to_closed(
    tool: str, root: Path, run: Invoke, tmp_path: Path
) -> None:
    def refill(data: bytes, values: Mapping[str, object]) -> bytes:
        return js_fill(tool, data, values, tmp_path)

    form = refill(REFUND_TEMPLATE.read_bytes(), NEW_FORM)
    dropped_mark = read_form(form).version_mark_missing
    assert dropped_mark is (tool == "exceljs")  # what each writer does to the version mark
    drop(root, "退款申请.xlsx", form)
    result = run("process", now="2026-11-23 09:10")
    assert result.output == f"[已流转] 退款申请.xlsx: {FORM} → 技术部(待技术部核实)\n"
    routed = (root / "outbox" / "tech" / FILE).read_bytes()
    assert read_form(routed).form.template_version == layout.TEMPLATE_VERSION  # put back
    assert history_sheet(routed)[-1][5] == "退款申请.xlsx"
    assert (NOTE in (history_sheet(routed)[-1][6] or "")) is dropped_mark  # 备注

    tech = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 30))
    drop(root, FILE, refill(take(root, "tech", FILE), tech))
    result = run("process", now="2026-11-23 09:31")
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(技术部已核实,待值班负责人提交财务)\n"

    forwarded = refill(take(root, "cs", FILE), {})  # the duty lead re-saves it unchanged
    assert len(history_sheet(forwarded)) == 3  # the writer keeps 流转记录 and its rows
    drop(root, FILE, forwarded)
    result = run("process", now="2026-11-23 09:40")
    assert result.output == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n"

    steps = [
        ("cashier", "赵六", "2026-11-23 10:00", "财务部会计(待会计复核)"),
        ("accountant", "钱七", "2026-11-23 10:30", "财务总监(待财务总监审批)"),
        ("director", "孙八", "2026-11-23 11:00", "客服部(已退款,待客服反馈用户)"),
    ]
    for role, person, now, where in steps:
        at = dt.datetime.strptime(now, "%Y-%m-%d %H:%M") - dt.timedelta(minutes=1)
        drop(root, FILE, refill(take(root, role, FILE), block(role, person, at)))
        result = run("process", now=now)
        assert result.output == f"[已流转] {FILE}: {FORM} → {where}\n", result.output

    drop(root, FILE, refill(take(root, "cs", FILE), {}))  # customer told
    result = run("process", now="2026-11-23 11:20")
    assert result.output == f"[已流转] {FILE}: {FORM} → 行政部(待行政部跟踪归档)\n"

    followup = {
        "admin_followup": "已核实退款到账",
        "admin_by": "吴十",
        "admin_date": dt.datetime(2026, 11, 24, 9, 0),
        "admin_approval": "同意",
    }
    drop(root, FILE, refill(take(root, "admin", FILE), followup))
    result = run("process", now="2026-11-24 09:05")
    assert result.output == f"[已归档] {FILE}: {FORM} 已办结归档\n"
    closed = (root / "refundsheets" / "归档" / "2026-11" / FILE).read_bytes()
    final = read_form(closed).form
    assert final.amount is not None and f"{final.amount:.2f}" == "268.50"
    assert final.blocks["admin"].by == "吴十"
    assert [row[1] for row in history_sheet(closed)[1:]] == [
        "待技术部核实",
        "技术部已核实,待值班负责人提交财务",
        "待出纳初核",
        "待会计复核",
        "待财务总监审批",
        "已退款,待客服反馈用户",
        "待行政部跟踪归档",
        "已归档",
    ]


@pytest.mark.parametrize("tool", TOOLS)
def test_earlier_copy_resaved_by_a_javascript_writer_is_still_refused_as_stale(
    tool: str, root: Path, run: Invoke, tmp_path: Path
) -> None:
    drop(root, "a.xlsx", js_fill(tool, REFUND_TEMPLATE.read_bytes(), NEW_FORM, tmp_path))
    run("process", now="2026-11-23 09:10")
    tech_copy = take(root, "tech", FILE)
    tech = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 30))
    drop(root, FILE, js_fill(tool, tech_copy, tech, tmp_path))
    run("process", now="2026-11-23 09:31")
    # The technical department re-saves the copy it kept and drops it again.
    drop(root, "again.xlsx", js_fill(tool, tech_copy, tech | {"tech_opinion": "补充"}, tmp_path))
    result = run("process", now="2026-11-23 09:35")
    assert result.output.startswith(f"[已拒收] again.xlsx: 退回:这是退款单 {FORM} 的旧副本")
