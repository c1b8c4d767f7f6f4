"""Accepted values travel on clean (issue 8, point 3): finance gets a number it can add up."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest

from conftest import Invoke, drop, make_form

FILE = "TKD20261123-001.xlsx"


def routed_cells(root: Path) -> dict[str, object]:
    wb = openpyxl.load_workbook(io.BytesIO((root / "outbox" / "tech" / FILE).read_bytes()))
    ws = wb["退款申请表"]
    cells = {c: ws[c].value for c in ("D6", "B5", "D5", "F2")}
    cells["D6 format"] = ws["D6"].number_format
    cells["备注"] = wb["流转记录"]["G2"].value
    return cells


@pytest.mark.parametrize(
    "typed, field, cell, clean",
    [
        pytest.param({"amount": "1,000元"}, "金额", "D6", 1000.0, id="amount-with-unit"),
        pytest.param({"amount": "¥88.8"}, "金额", "D6", 88.8, id="amount-with-yen"),
        pytest.param({"mobile": "+86 138-0013-8000"}, "手机号码", "B5", "13800138000", id="mobile"),
        pytest.param(
            {"purchase_time": "2026/11/22 20:15"},
            "购买时间",
            "D5",
            dt.datetime(2026, 11, 22, 20, 15),
            id="text-date-time",
        ),
    ],
)
def test_routed_copy_carries_the_clean_value_and_history_what_was_typed(
    root: Path, run: Invoke, typed: dict[str, str], field: str, cell: str, clean: object
) -> None:
    drop(root, "a.xlsx", make_form(**typed))
    result = run("process")
    assert result.output.startswith(f"[已流转] a.xlsx: {FILE[:-5]}"), result.output
    cells = routed_cells(root)
    assert cells[cell] == clean and type(cells[cell]) is type(clean)
    (shown,) = typed.values()
    assert f"{field}“{shown}”" in str(cells["备注"])


def test_routed_amount_is_a_number_with_yuan_format(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form(amount="1,000元"))
    run("process")
    cells = routed_cells(root)
    assert cells["D6"] == 1000.0
    assert cells["D6 format"] == "¥#,##0.00"


def test_values_typed_clean_are_left_as_they_are(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())  # a number, a real date-time, 11 digits
    run("process")
    assert "已规范" not in str(routed_cells(root)["备注"] or "")
