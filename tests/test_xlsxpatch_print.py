"""What a person prints from the sheets xlsxpatch writes (issue 8 §5).

A 退回原因 sheet with a title gets the title above its table, bordered rows, title and header
repeated on every page; a 流转记录 sheet with a history title prints it in its page header, so a
loose page can be matched to its form. Without them the sheets are written as before.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import openpyxl
import pytest

from refundflow.layout import HISTORY_SHEET, REFUND_SHEET, RETURN_SHEET
from refundflow.xlsxpatch import Patch, apply_patch

from conftest import make_form
from office import needs_soffice, pdf_text, soffice_convert

HISTORY = [
    ("时间", "环节", "从", "到", "经办人", "文件", "备注", "副本凭证:Q7XK2M9PZ4"),
    ("2026-11-23 09:10", "技术部核实", "客服部", "技术部", "张三", "新建退款单.xlsx", ""),
    (
        "2026-11-23 10:05",
        "客服部回访",
        "技术部",
        "客服部",
        "李四",
        "TKD20261123-001.xlsx",
        "填单人填写的编号“TK-99”不是系统编号,本单编号为 TKD20261123-001\n金额 原为“1,000元”",
    ),
]
RETURN = [
    ("序号", "项目", "单元格", "问题", "如何修改"),
    ("1", "退款金额", "C6", "金额不是数字:填写的是“一千元”", "请填写阿拉伯数字,例如 1000.50"),
    ("2", "订单号", "C4", "订单号不能为空", "请填写订单号"),
]
HISTORY_TITLE = "退款单 TKD20261123-001 流转记录"
RETURN_TITLE = "退款单 TKD20261123-001 退回原因(2026-11-23 10:05)"
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


@pytest.fixture(scope="module")
def form() -> bytes:
    return make_form()


def load(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def print_titles(data: bytes) -> dict[str, str]:
    """Sheet name -> formula of its ``_xlnm.Print_Titles``, read from workbook.xml itself."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
    sheets = [s.get("name", "") for s in wb.iterfind("m:sheets/m:sheet", NS)]
    out: dict[str, str] = {}
    for d in wb.iterfind("m:definedNames/m:definedName", NS):
        if d.get("name") == "_xlnm.Print_Titles":
            sheet = sheets[int(d.get("localSheetId", "-1"))]
            assert sheet not in out, f"two print titles on {sheet}"
            out[sheet] = d.text or ""
    return out


def test_history_title_is_the_page_header_of_every_printed_page(form: bytes) -> None:
    data = apply_patch(form, Patch(REFUND_SHEET, history_rows=HISTORY, history_title=HISTORY_TITLE))
    ws = load(data)[HISTORY_SHEET]
    assert ws.oddHeader.center.text == HISTORY_TITLE
    assert ws.oddFooter.center.text == "第 &P 页,共 &N 页"
    assert ws.print_title_rows == "$1:$1"
    assert print_titles(data) == {HISTORY_SHEET: f"'{HISTORY_SHEET}'!$1:$1"}
    assert (ws.page_setup.paperSize, ws.page_setup.orientation) == (9, "landscape")
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0)


def test_printed_history_keeps_its_columns_and_boxes_every_cell(form: bytes) -> None:
    data = apply_patch(form, Patch(REFUND_SHEET, history_rows=HISTORY, history_title=HISTORY_TITLE))
    ws = load(data)[HISTORY_SHEET]
    assert [c.value for c in ws[1]] == list(HISTORY[0])  # 备注 and 副本凭证:<token> stay
    assert ws["A1"].font.b and ws["A1"].alignment.horizontal == "center"
    for row in ws.iter_rows(min_row=1, max_row=len(HISTORY), max_col=7):
        for cell in row:
            sides = (cell.border.left, cell.border.right, cell.border.top, cell.border.bottom)
            assert all(s.style == "thin" for s in sides), cell.coordinate
    assert ws["G3"].alignment.wrap_text and ws["G3"].alignment.vertical == "top"
    # Three lines of 备注 (one wraps): the row is tall enough for all of them on paper.
    assert ws.row_dimensions[3].height >= 45
    assert ws.freeze_panes == "A2"


def test_return_sheet_title_sits_above_a_bordered_table(form: bytes) -> None:
    data = apply_patch(
        form,
        Patch(REFUND_SHEET, return_rows=RETURN, highlight_cells=["C6"], title=RETURN_TITLE),
    )
    wb = load(data)
    ws = wb[RETURN_SHEET]
    assert wb.sheetnames[0] == RETURN_SHEET and wb.active.title == RETURN_SHEET
    assert ws["A1"].value == RETURN_TITLE
    assert ws["A1"].font.b and ws["A1"].font.sz == 14
    assert [str(r) for r in ws.merged_cells.ranges] == ["A1:E1"]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=2)] == [list(r) for r in RETURN]
    for row in ws.iter_rows(min_row=2, max_row=4, max_col=5):
        for cell in row:
            assert cell.border.left.style == "thin" and cell.border.bottom.style == "thin"
    assert ws["D3"].alignment.wrap_text and ws["D3"].alignment.vertical == "top"
    assert ws["A2"].alignment.horizontal == "center"
    assert ws.print_title_rows == "$1:$2"
    assert ws.freeze_panes == "A3"
    assert (ws.page_setup.paperSize, ws.page_setup.orientation) == (9, "landscape")
    assert ws.column_dimensions["D"].width <= 42  # long reasons wrap within an A4 page


def test_print_titles_follow_their_sheets_when_the_return_sheet_comes_and_goes(
    form: bytes,
) -> None:
    history = Patch(REFUND_SHEET, history_rows=HISTORY, history_title=HISTORY_TITLE)
    returned = apply_patch(
        apply_patch(form, history),
        Patch(REFUND_SHEET, return_rows=RETURN, title=RETURN_TITLE),
    )
    assert print_titles(returned) == {
        RETURN_SHEET: f"'{RETURN_SHEET}'!$1:$2",
        HISTORY_SHEET: f"'{HISTORY_SHEET}'!$1:$1",
    }
    # Fixed and routed on: the return sheet goes, the history is written again, one each.
    routed = apply_patch(returned, history)
    assert print_titles(routed) == {HISTORY_SHEET: f"'{HISTORY_SHEET}'!$1:$1"}
    assert load(routed)[HISTORY_SHEET].print_title_rows == "$1:$1"


def test_ampersand_in_a_history_title_is_printed_not_read_as_a_code(form: bytes) -> None:
    # A control character XML cannot carry is escaped too, as in any cell text.
    title = "退款单 A&B\x01 流转记录"
    data = apply_patch(form, Patch(REFUND_SHEET, history_rows=HISTORY, history_title=title))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheets = [ET.fromstring(z.read(n)) for n in z.namelist() if "worksheets/" in n]
    headers = [h.text for s in sheets for h in s.iterfind("m:headerFooter/m:oddHeader", NS)]
    assert headers == ["&C退款单 A&&B_x0001_ 流转记录"]


def test_without_titles_the_sheets_are_written_as_before(form: bytes) -> None:
    data = apply_patch(form, Patch(REFUND_SHEET, history_rows=HISTORY, return_rows=RETURN))
    assert print_titles(data) == {}
    wb = load(data)
    for name in (HISTORY_SHEET, RETURN_SHEET):
        ws = wb[name]
        assert ws.oddHeader.center.text is None and ws.oddFooter.center.text is None
        assert ws["A2"].border.left.style is None
    assert wb[RETURN_SHEET]["A1"].value == "序号"


@pytest.mark.office
@needs_soffice
def test_libreoffice_prints_the_form_number_on_every_history_page(
    form: bytes, tmp_path: Path
) -> None:
    many = [*HISTORY, *[HISTORY[2]] * 60]
    data = apply_patch(
        form,
        Patch(
            REFUND_SHEET,
            history_rows=many,
            history_title=HISTORY_TITLE,
            return_rows=RETURN,
            title=RETURN_TITLE,
        ),
    )
    source = tmp_path / "form.xlsx"
    source.write_bytes(data)
    text = pdf_text(soffice_convert(source, "pdf", tmp_path))
    pages = text.split("\f")
    assert RETURN_TITLE in pages[0] and "如何修改" in pages[0]
    history_pages = [p for p in pages if "副本凭证" in p]
    assert len(history_pages) >= 2  # long enough to run on: header row repeated
    for page in history_pages:
        assert HISTORY_TITLE in page
        assert re.search(r"第 \d+ 页,共 \d+ 页", page)


def test_a_title_wider_than_a_narrow_table_is_not_cut_off(form: bytes) -> None:
    # Short problems (未填写) make narrow columns; the merged title must still fit above them.
    title = "客服部值班交接单 2026-11-30 中班 退回原因(退回时间:2026-11-30 21:50)"
    narrow = [
        ("序号", "项目", "单元格", "问题", "如何修改"),
        ("1", "交接人", "D2", "未填写", "填写"),
    ]
    data = apply_patch(form, Patch(REFUND_SHEET, return_rows=narrow, title=title))
    ws = load(data)[RETURN_SHEET]
    across = sum(ws.column_dimensions[c].width for c in "ABCDE")
    # A 14-point CJK character takes about 2 × 14/11 width units of the 11-point body.
    cjk = sum(1 for ch in title if ord(ch) > 0x2E80)
    assert across >= (cjk * 2 + (len(title) - cjk)) * 14 / 11
