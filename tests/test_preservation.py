"""The routed copy keeps everything the sender put in the workbook.

Staff paste screenshots, add comments and extra sheets, and save in LibreOffice or Gnumeric.
The copy refundflow sends on (or back) must differ from the dropped file only in the parts it
has to change: every other zip member - the image, the drawing, the comments, the extra sheet -
comes out byte for byte as it went in.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
import python_calamine

from refundflow.layout import (
    FIELDS_BY_NAME,
    HISTORY_SHEET,
    REFUND_SHEET,
    RETURN_SHEET,
    cell_to_rc,
)
from refundflow.xlsxpatch import HIGHLIGHT_RGB

from conftest import Invoke, block, drop, edit_form, make_form, take
from office import gnumeric_resave, needs_soffice, needs_ssconvert, soffice_resave

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
FORM_NO_CELL = FIELDS_BY_NAME["form_no"].cell
COMMENT_CELL = "B5"  # the mobile number
COMMENT = "客户说这个号码晚上打不通,白天联系"
EXTRA_SHEET = "客户沟通记录"
EXTRA_ROWS = [("日期", "内容", "金额"), ("2026-11-23", "客户来电要求退款", 268.5)]

# Parts refundflow rewrites in every routed copy (besides the form sheet and 流转记录).
PATCHED = {"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml"}
STYLES = "xl/styles.xml"  # may only gain records (the 流转记录 header, highlights)

NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "pr": "http://schemas.openxmlformats.org/package/2006/relationships",
}
R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"

Saver = Callable[[bytes, Path], bytes]


# --- producing the dropped file ------------------------------------------------------------


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (48, 24), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def decorate(form: bytes) -> bytes:
    """What a sender adds to a filled form: a pasted image, a comment and a sheet of notes."""
    pytest.importorskip("PIL", reason="openpyxl needs pillow to add images")
    from openpyxl.comments import Comment
    from openpyxl.drawing.image import Image
    from openpyxl.styles import Font

    wb = openpyxl.load_workbook(io.BytesIO(form))
    ws = wb[REFUND_SHEET]
    ws.add_image(Image(io.BytesIO(png())), "F3")
    ws[COMMENT_CELL].comment = Comment(COMMENT, "张三")
    notes = wb.create_sheet(EXTRA_SHEET)
    for row in EXTRA_ROWS:
        notes.append(row)
    notes["A1"].font = Font(bold=True)
    notes["C2"].number_format = "#,##0.00"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- reading the zip ------------------------------------------------------------------------


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rels_of(parts: dict[str, bytes], part: str) -> dict[str, str]:
    """Relationship id -> target part, for the relationships of ``part``."""
    folder, name = posixpath.split(part)
    rels = parts.get(posixpath.join(folder, "_rels", f"{name}.rels"))
    if rels is None:
        return {}
    found = {}
    for rel in ET.fromstring(rels).findall("pr:Relationship", NS):
        target = rel.get("Target", "")
        if target.startswith("/"):
            found[rel.get("Id", "")] = target.lstrip("/")
        else:
            found[rel.get("Id", "")] = posixpath.normpath(posixpath.join(folder, target))
    return found


def sheet_parts(parts: dict[str, bytes]) -> dict[str, str]:
    """Sheet name -> its part, in tab order."""
    workbook = next(p for p in parts if re.fullmatch(r"xl/workbook\d*\.xml", p))
    targets = rels_of(parts, workbook)
    sheets = ET.fromstring(parts[workbook]).findall("m:sheets/m:sheet", NS)
    return {s.get("name", ""): targets[s.get(R_ID, "")] for s in sheets}


def assert_styles_only_grew(before: bytes, after: bytes) -> None:
    """Every style record of the sender keeps its place: ours are only appended, and only
    the fill of our own highlights (from a returned copy) is switched off."""
    old, new = ET.fromstring(before), ET.fromstring(after)
    for box in old:
        kept = new.find(box.tag)
        assert kept is not None, box.tag
        assert len(kept) >= len(box), box.tag
        for i, (was, now) in enumerate(zip(box, kept, strict=False)):
            if box.tag.endswith("}fills") and HIGHLIGHT_RGB.encode() in ET.tostring(was).upper():
                pattern = now.find("m:patternFill", NS)
                assert pattern is not None and pattern.get("patternType") == "none", i
            else:
                assert ET.tostring(now) == ET.tostring(was), f"{box.tag} record {i}"


def assert_kept(dropped: bytes, copy: bytes, *, own_sheet: str) -> None:
    """``copy`` is ``dropped`` with only refundflow's parts changed; ``own_sheet`` is the
    sheet refundflow writes (流转记录 or 退回原因)."""
    before, after = members(dropped), members(copy)
    old_sheets, new_sheets = sheet_parts(before), sheet_parts(after)
    ours = new_sheets[own_sheet]
    may_change = {*PATCHED, STYLES, old_sheets[REFUND_SHEET], ours}
    may_go = {old_sheets[s] for s in (RETURN_SHEET, HISTORY_SHEET) if s in old_sheets} - {ours}
    for name, data in before.items():
        if name in may_go:
            assert name not in after, f"{name} (our old sheet) should have been replaced"
        elif name not in may_change:
            assert name in after, f"{name} was lost"
            assert after[name] == data, f"{name} changed"
    assert set(after) - set(before) <= {ours}, "only our own sheet is added"
    assert_styles_only_grew(before[STYLES], after[STYLES])
    # The form sheet still points at its drawing (the image) and its comments.
    form_sheet = after[new_sheets[REFUND_SHEET]]
    assert rels_of(after, new_sheets[REFUND_SHEET]) == rels_of(before, old_sheets[REFUND_SHEET])
    for element in (b"drawing", b"legacyDrawing"):
        assert re.search(rb"<(\w+:)?" + element + rb"\s[^>]*id=", form_sheet), element
    # Sheets the sender had are all there, in their order.
    senders = [s for s in old_sheets if s not in (RETURN_SHEET, HISTORY_SHEET)]
    assert [s for s in new_sheets if s in senders] == senders


def image_and_comment(data: bytes) -> tuple[bytes, str]:
    """The image on the form sheet (found through its relationships) and the comment text."""
    parts = members(data)
    form_part = sheet_parts(parts)[REFUND_SHEET]
    drawings = [t for t in rels_of(parts, form_part).values() if t.startswith("xl/drawings/")]
    drawing = next(d for d in drawings if d.endswith(".xml"))
    media = [t for t in rels_of(parts, drawing).values() if t.startswith("xl/media/")]
    assert len(media) == 1, media
    wb = openpyxl.load_workbook(io.BytesIO(data))
    try:
        comment = wb[REFUND_SHEET][COMMENT_CELL].comment
        text = comment.text if comment is not None else ""
    finally:
        wb.close()
    return parts[media[0]], text


def rows(data: bytes, sheet: str) -> list[list[object]]:
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    return [list(r) for r in book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)]


def check_reads_back(copy: bytes, *, history_rows: int) -> None:
    """What openpyxl and calamine see in a routed copy."""
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(copy))
    assert book.sheet_names[0] == REFUND_SHEET
    assert RETURN_SHEET not in book.sheet_names
    wb = openpyxl.load_workbook(io.BytesIO(copy))
    try:
        assert wb[REFUND_SHEET][FORM_NO_CELL].value == FORM
        # An empty cell (a step with nothing in 备注) is None to openpyxl, "" to calamine.
        history = [
            ["" if v is None else v for v in r]
            for r in wb[HISTORY_SHEET].iter_rows(values_only=True)
        ]
        assert [list(r) for r in wb[EXTRA_SHEET].iter_rows(values_only=True)] == [
            list(r) for r in EXTRA_ROWS
        ]
    finally:
        wb.close()
    assert history[0][:7] == ["时间", "环节", "从", "到", "经办人", "文件", "备注"]
    assert history[0][7].startswith("副本凭证:")
    assert len(history) == 1 + history_rows
    form = rows(copy, REFUND_SHEET)
    row, col = cell_to_rc(FORM_NO_CELL)
    assert (form[row][col - 1], form[row][col]) == ("编号", FORM)
    assert rows(copy, HISTORY_SHEET) == [["" if v is None else v for v in r] for r in history]
    assert rows(copy, EXTRA_SHEET)[1][:2] == list(EXTRA_ROWS[1][:2])


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.office
@pytest.mark.filterwarnings("ignore:Workbook contains no default style")  # Gnumeric's styles
@pytest.mark.parametrize(
    "save",
    [
        pytest.param(soffice_resave, id="libreoffice", marks=needs_soffice),
        pytest.param(gnumeric_resave, id="gnumeric", marks=needs_ssconvert),
    ],
)
def test_routed_copy_keeps_image_comment_and_extra_sheet(
    root: Path, run: Invoke, tmp_path: Path, save: Saver
) -> None:
    sent = save(decorate(make_form()), tmp_path / "office")
    image, comment = image_and_comment(sent)
    assert image.startswith(b"\x89PNG") and COMMENT in comment, "the office program kept both"
    parts = members(sent)
    for kind in ("xl/media/", "xl/drawings/", "xl/comments", "xl/drawings/vmlDrawing"):
        assert any(name.startswith(kind) for name in parts), f"no {kind} part to compare"
    assert EXTRA_SHEET in sheet_parts(parts)
    drop(root, "退款申请-张三.xlsx", sent)

    result = run("process")

    assert result.exit_code == 0, result.output
    assert result.output == f"[已流转] 退款申请-张三.xlsx: {FORM} → 技术部(待技术部核实)\n"
    routed = (root / "outbox" / "tech" / FILE).read_bytes()
    assert_kept(sent, routed, own_sheet=HISTORY_SHEET)
    assert image_and_comment(routed) == (image, comment)
    check_reads_back(routed, history_rows=1)
    wb = openpyxl.load_workbook(io.BytesIO(routed))
    try:
        notes = wb[EXTRA_SHEET]
        assert notes["A1"].font.b, "the extra sheet keeps its formats"
        assert notes["C2"].number_format == "#,##0.00"
    finally:
        wb.close()


@pytest.mark.office
@needs_soffice
def test_returned_and_fixed_copies_keep_image_and_comment(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    sent = soffice_resave(decorate(make_form(mobile="1380013800")), tmp_path / "first")
    image, comment = image_and_comment(sent)
    drop(root, "申请.xlsx", sent)
    result = run("process")
    assert result.output.startswith("[已退回] 申请.xlsx: 退回客服部:1 个问题"), result.output

    back = (root / "outbox" / "cs" / "申请-退回.xlsx").read_bytes()
    assert_kept(sent, back, own_sheet=RETURN_SHEET)
    assert image_and_comment(back) == (image, comment)
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(back))
    assert book.sheet_names[:2] == [RETURN_SHEET, REFUND_SHEET], "the reasons come first"
    assert "手机号码" in str(rows(back, RETURN_SHEET))
    assert EXTRA_SHEET in book.sheet_names

    # Customer service fixes the number in LibreOffice and drops the returned file again.
    fixed = edit_form(take(root, "cs", "申请-退回.xlsx"), {"mobile": "13800138000"})
    resaved = soffice_resave(fixed, tmp_path / "fix")
    drop(root, "申请-退回.xlsx", resaved)
    result = run("process", now="2026-11-23 09:20")
    assert result.output == f"[已流转] 申请-退回.xlsx: {FORM} → 技术部(待技术部核实)\n"

    routed = (root / "outbox" / "tech" / FILE).read_bytes()
    assert_kept(resaved, routed, own_sheet=HISTORY_SHEET)
    assert (
        RETURN_SHEET
        not in python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(routed)).sheet_names
    ), "the old reasons are not passed on"
    routed_image, routed_comment = image_and_comment(routed)
    assert routed_image == image_and_comment(resaved)[0]
    assert routed_image.startswith(b"\x89PNG") and COMMENT in routed_comment
    check_reads_back(routed, history_rows=1)


@pytest.mark.office
@needs_soffice
def test_libreoffice_form_travels_the_tech_step(root: Path, run: Invoke, tmp_path: Path) -> None:
    sent = soffice_resave(decorate(make_form()), tmp_path / "cs")
    drop(root, "退款申请-张三.xlsx", sent)
    assert run("process").exit_code == 0

    # 技术部 opens its copy, fills its block and saves it in LibreOffice again.
    at_tech = take(root, "tech", FILE)
    filled = edit_form(at_tech, block("tech", "王五", dt.datetime(2026, 11, 23, 9, 30)))
    resaved = soffice_resave(filled, tmp_path / "tech")
    drop(root, FILE, resaved)
    result = run("process", now="2026-11-23 09:31")

    assert result.exit_code == 0, result.output
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(技术部已核实,待值班负责人提交财务)\n"
    routed = (root / "outbox" / "cs" / FILE).read_bytes()
    assert_kept(resaved, routed, own_sheet=HISTORY_SHEET)
    image, comment = image_and_comment(routed)
    assert image.startswith(b"\x89PNG") and COMMENT in comment
    check_reads_back(routed, history_rows=2)
    history = rows(routed, HISTORY_SHEET)
    assert [r[1:5] for r in history[1:]] == [
        ["待技术部核实", "客服部", "技术部", "李四"],
        ["技术部已核实,待值班负责人提交财务", "技术部", "客服部", "王五"],
    ]
