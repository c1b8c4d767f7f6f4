"""Checks a person expects (issue 8, point 4), played through the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import openpyxl
import pytest

from conftest import Invoke, drop, make_form

FORM = "TKD20261123-001"


@pytest.mark.parametrize(
    "order_no",
    [
        pytest.param("同上", id="same-as-above"),
        pytest.param("无", id="none"),
        pytest.param("见上", id="see-above"),
        pytest.param("TK12", id="too-short"),
    ],
)
def test_what_is_not_an_order_number_comes_back(root: Path, run: Invoke, order_no: str) -> None:
    drop(root, "a.xlsx", make_form(order_no=order_no))
    result = run("process")
    assert result.output.startswith("[已退回] a.xlsx: 退回客服部:1 个问题"), result.output
    reasons = openpyxl.load_workbook(
        io.BytesIO((root / "outbox" / "cs" / "a-退回.xlsx").read_bytes())
    )["退回原因"]
    assert str(reasons["A1"].value).startswith("文件 a.xlsx 退回原因(退回时间:")  # the title
    row = [c.value for c in reasons[3]]
    assert row[1:3] == ["订单号", "B6"]
    assert f"“{order_no}”不是订单号" in row[3]


def test_order_number_pattern_is_configurable(root: Path, run: Invoke) -> None:
    config = root / "refundflow.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "# order_no_pattern = '(?=.*\\d{6})[A-Z0-9][A-Z0-9_-]{5,39}'",
            "order_no_pattern = 'TK\\d{11}'",
        ),
        encoding="utf-8",
    )
    drop(root, "a.xlsx", make_form(order_no="20261122001"))  # no TK: refused here
    assert run("process").output.startswith("[已退回] a.xlsx")
    drop(root, "b.xlsx", make_form(order_no="TK20261122001"))
    assert run("process", now="2026-11-23 09:11").output.startswith("[已流转] b.xlsx")


def test_a_time_of_exactly_midnight_is_a_time(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form(purchase_time=dt.datetime(2026, 11, 22, 0, 0)))
    result = run("process")
    assert result.output.startswith(f"[已流转] a.xlsx: {FORM}"), result.output


def test_a_date_without_time_is_still_refused(root: Path, run: Invoke) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(make_form()))
    ws = wb["退款申请表"]
    ws["D5"].number_format = "yyyy-mm-dd"  # the person made it a date cell: no time shown
    ws["D5"].value = dt.datetime(2026, 11, 22)
    out = io.BytesIO()
    wb.save(out)
    drop(root, "a.xlsx", out.getvalue())
    assert run("process").output.startswith("[已退回] a.xlsx")


def test_a_number_typed_by_the_filer_is_replaced_and_said(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form(form_no="001"))
    result = run("process")
    assert result.output.startswith(f"[已流转] a.xlsx: {FORM}"), result.output
    history = json.loads(run("status", FORM, "--json").stdout)["history"]
    assert "填单人填写的编号“001”不是系统编号,本单编号为 TKD20261123-001" in history[0]["detail"]
