"""apply_patch against real producer output.

Every test runs on the same form workbook as written by xlsxwriter (our templates) and as
re-saved by LibreOffice and by Gnumeric, because staff open and save the routed copies in
whatever spreadsheet program they have, and each one rewrites the package differently
(prefixes, member order, style numbering, defined names, relationship ids).

Results are checked with independent readers: openpyxl, python-calamine, plain ElementTree on
the parts (for styles/fills, so a reader's quirks cannot hide a wrong fill) and LibreOffice.
"""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import openpyxl
import pytest
import python_calamine
import xlsxwriter

from refundflow.errors import FormReadError
from refundflow.layout import HISTORY_SHEET, REFUND_SHEET, RETURN_SHEET
from refundflow.xlsxpatch import HIGHLIGHT_RGB, Patch, PatchError, apply_patch
from refundflow.zipread import DEFAULT_LIMITS

from office import soffice_convert, ssconvert

EXTRA_SHEET = "备注"
COMMENT = "编号由系统填写"
HISTORY = [["时间", "部门", "经办人", "动作"], ["2026-01-05 10:00", "客服部", "张三", "提交"]]
HISTORY_2 = [*HISTORY, ["2026-01-06 09:30", "技术部", "王五", "同意"]]
RETURN = [["单元格", "问题"], ["B5", "手机号码应为11位数字"], ["D2", "申报部门不在名单中"]]
PROBLEM_CELLS = ("B5", "D2", "H20")  # H20: no such cell in the source, must be created
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT_NS = "http://purl.oclc.org/ooxml/spreadsheetml/main"


# ------------------------------------------------------------------------------------------
# Source workbooks
# ------------------------------------------------------------------------------------------


def tiny_png() -> bytes:
    """A 4x4 red PNG, built by hand so the test needs no imaging library."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_source(path: Path) -> None:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(REFUND_SHEET)
    label = wb.add_format({"bold": True, "border": 1})
    field = wb.add_format({"border": 1, "locked": False})
    ws.merge_range("A1:F1", "退款申请表", label)
    ws.write("A2", "编号", label)
    ws.write_blank("B2", None, field)
    ws.write("C2", "申报部门", label)
    ws.write("D2", "客服部", field)
    ws.write("A5", "手机号码", label)
    ws.write_number("B5", 13800138000, field)
    ws.write("C6", "金额", label)
    ws.write_formula("D6", "=1+2", field, 3)
    ws.write("A7", "提交人", label)
    ws.write("B7", "李四", field)
    ws.write_comment("A2", COMMENT)
    ws.insert_image("H2", "stamp.png", {"image_data": io.BytesIO(tiny_png())})
    ws.data_validation("F2", {"validate": "list", "source": ["同意", "不同意"]})
    ws.protect()
    wb.define_name("form_no", f"='{REFUND_SHEET}'!$B$2")
    wb.define_name(f"'{REFUND_SHEET}'!local_total", f"='{REFUND_SHEET}'!$D$6")
    ws.print_area("A1:F20")
    extra = wb.add_worksheet(EXTRA_SHEET)
    extra.write("A1", "备用")
    extra.write("A2", 42)
    wb.close()


@dataclass(frozen=True)
class Variant:
    name: str
    data: bytes
    openpyxl_full: bool
    """Whether openpyxl can load the *unpatched* file in normal mode. Gnumeric writes comments
    without authors (schema-invalid), which openpyxl's normal mode cannot read; for such a
    source the patched copy is checked in read-only mode, which skips comments."""


def _openpyxl_full_ok(data: bytes) -> bool:
    try:
        openpyxl.load_workbook(io.BytesIO(data))
    except IndexError:
        return False
    return True


@pytest.fixture(scope="module")
def xlsxwriter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "form.xlsx"
    make_source(path)
    return path


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("xlsxwriter", id="xlsxwriter"),
        pytest.param("libreoffice", id="libreoffice", marks=pytest.mark.office),
        pytest.param("gnumeric", id="gnumeric", marks=pytest.mark.office),
    ],
)
def variant(
    request: pytest.FixtureRequest, xlsxwriter_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Variant:
    name: str = request.param
    if name == "xlsxwriter":
        path = xlsxwriter_file
    elif name == "libreoffice":
        path = soffice_convert(xlsxwriter_file, "xlsx", tmp_path_factory.mktemp("lo"))
    else:
        path = ssconvert(xlsxwriter_file, tmp_path_factory.mktemp("gn") / "form.xlsx")
    data = path.read_bytes()
    return Variant(name, data, _openpyxl_full_ok(data))


# ------------------------------------------------------------------------------------------
# Independent readers
# ------------------------------------------------------------------------------------------


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None  # every CRC checks out
        return {i.filename: z.read(i) for i in z.infolist()}


def xml(data: bytes, part: str) -> ET.Element:
    return ET.fromstring(members(data)[part])


def _resolve(base: str, target: str) -> str:
    if target.startswith("/"):
        return target[1:]
    parts: list[str] = []
    for piece in (PurePosixPath(base).parent / target).parts:
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def rels(data: bytes, part: str) -> dict[str, tuple[str, str]]:
    """rId -> (type suffix, member name) of a part's relationships."""
    p = PurePosixPath(part)
    rels_part = str(p.parent / "_rels" / f"{p.name}.rels")
    return {
        r.get("Id", ""): (r.get("Type", "").rsplit("/", 1)[-1], _resolve(part, r.get("Target", "")))
        for r in xml(data, rels_part)
    }


def sheets(data: bytes) -> list[tuple[str, str]]:
    """(sheet name, member name) in tab order, read with ElementTree."""
    wb = xml(data, "xl/workbook.xml")
    wb_rels = rels(data, "xl/workbook.xml")
    out = []
    for s in wb.iterfind("{*}sheets/{*}sheet"):
        rid = next(v for k, v in s.attrib.items() if k.endswith("}id"))
        out.append((s.get("name", ""), wb_rels[rid][1]))
    return out


def sheet_part(data: bytes, name: str) -> str:
    return dict(sheets(data))[name]


def local_names(data: bytes) -> list[tuple[str, str, str]]:
    """(name, sheet it is local to, formula) for every sheet-local defined name."""
    wb = xml(data, "xl/workbook.xml")
    names = [s for s, _ in sheets(data)]
    return sorted(
        (d.get("name", ""), names[int(d.get("localSheetId", "-1"))], d.text or "")
        for d in wb.iterfind("{*}definedNames/{*}definedName")
        if d.get("localSheetId") is not None
    )


def active_tab(data: bytes) -> int:
    view = xml(data, "xl/workbook.xml").find("{*}bookViews/{*}workbookView")
    return int(view.get("activeTab", "0")) if view is not None else 0


def selected_tabs(data: bytes) -> list[str]:
    out = []
    for name, part in sheets(data):
        view = xml(data, part).find("{*}sheetViews/{*}sheetView")
        if view is not None and view.get("tabSelected") in ("1", "true"):
            out.append(name)
    return out


def cell_fill(data: bytes, ref: str, sheet: str = REFUND_SHEET) -> str | None:
    """The solid/pattern fill colour of a cell as the file says (None: no fill)."""
    cell = xml(data, sheet_part(data, sheet)).find(f".//{{*}}c[@r='{ref}']")
    s = int(cell.get("s", "0")) if cell is not None else 0
    styles = xml(data, "xl/styles.xml")
    xf = styles.findall("{*}cellXfs/{*}xf")[s]
    fill = styles.findall("{*}fills/{*}fill")[int(xf.get("fillId", "0"))]
    pattern = fill.find("{*}patternFill")
    if pattern is None or pattern.get("patternType", "none") == "none":
        return None
    color = pattern.find("{*}fgColor")
    return color.get("rgb", "?") if color is not None else "?"


def load(data: bytes, variant: Variant) -> Any:
    return openpyxl.load_workbook(io.BytesIO(data), read_only=not variant.openpyxl_full)


def calamine_sheets(data: bytes) -> tuple[list[str], list[list[Any]]]:
    wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    return list(wb.sheet_names), wb.get_sheet_by_name(REFUND_SHEET).to_python()


def assert_sender_content_kept(data: bytes, variant: Variant) -> None:
    """Everything the sender put in the workbook is still there and readable."""
    wb = load(data, variant)
    ws = wb[REFUND_SHEET]
    assert ws["D2"].value == "客服部"
    assert ws["B5"].value == 13800138000
    assert ws["B7"].value == "李四"
    assert wb[EXTRA_SHEET]["A1"].value == "备用"
    assert wb[EXTRA_SHEET]["A2"].value == 42
    assert wb.defined_names["form_no"].attr_text.endswith("!$B$2")
    assert ("local_total", REFUND_SHEET, f"{REFUND_SHEET}!$D$6") in {
        (n, s, f.replace("'", "")) for n, s, f in local_names(data)
    }
    if variant.openpyxl_full:
        assert COMMENT in ws["A2"].comment.text
        assert "A1:F1" in {str(r) for r in ws.merged_cells.ranges}
        assert ws.protection.sheet
        assert [dv.sqref for dv in ws.data_validations.dataValidation] != []
        assert ws.print_area.replace("'", "") == f"{REFUND_SHEET}!$A$1:$F$20"
        assert "local_total" in ws.defined_names
    # comment and image parts, still wired to the form sheet
    form = sheet_part(data, REFUND_SHEET)
    targets = {t: p for t, p in rels(data, form).values()}
    files = members(data)
    assert COMMENT.encode() in files[targets["comments"]]
    drawing = targets["drawing"]
    image = next(p for t, p in rels(data, drawing).values() if t == "image")
    assert files[image] == members(variant.data)[image]
    assert files[image].startswith(b"\x89PNG")


# ------------------------------------------------------------------------------------------
# Tests on every producer's variant
# ------------------------------------------------------------------------------------------


def test_set_cells_keeps_everything(variant: Variant) -> None:
    value = "TK-2026-001 <&>\"'"
    patch = Patch(
        REFUND_SHEET,
        {
            "B2": value,
            "D6": "改写的公式格",
            "E2": "新单元格",
            "B30": "新行",
            "$F$7": "多行\r\n文字",
        },
    )
    out = apply_patch(variant.data, patch)
    assert_sender_content_kept(out, variant)
    ws = load(out, variant)[REFUND_SHEET]
    assert ws["B2"].value == value
    assert ws["D6"].value == "改写的公式格"  # the formula is gone, not just its cached value
    assert ws["E2"].value == "新单元格"
    assert ws["B30"].value == "新行"
    assert ws["F7"].value == "多行\n文字"
    if variant.openpyxl_full:
        assert ws["B2"].border.left.style == "thin"  # the cell kept its style
        assert ws["B2"].protection.locked is False
    names, rows = calamine_sheets(out)
    assert names == calamine_sheets(variant.data)[0]
    assert rows[1][1] == value
    assert rows[29][1] == "新行"
    cell = xml(out, sheet_part(out, REFUND_SHEET)).find(".//{*}c[@r='D6']")
    assert cell is not None and cell.find("{*}f") is None and cell.get("t") == "inlineStr"


def test_untouched_members_are_byte_identical(variant: Variant) -> None:
    src = members(variant.data)
    form = sheet_part(variant.data, REFUND_SHEET)
    patch = Patch(
        REFUND_SHEET,
        {"B2": "TK-1"},
        history_rows=HISTORY,
        return_rows=RETURN,
        highlight_cells=PROBLEM_CELLS,
    )
    out = apply_patch(variant.data, patch)
    new = members(out)
    meant_to_change = {
        "xl/workbook.xml",
        "xl/_rels/workbook.xml.rels",
        "[Content_Types].xml",
        "xl/styles.xml",
        form,
    }
    for name, content in src.items():
        if name not in meant_to_change:
            assert new[name] == content, f"{name} changed"
    added = set(new) - set(src)
    assert {sheet_part(out, HISTORY_SHEET), sheet_part(out, RETURN_SHEET)} == added
    with zipfile.ZipFile(io.BytesIO(variant.data)) as a, zipfile.ZipFile(io.BytesIO(out)) as b:
        order = [i.filename for i in b.infolist() if i.filename in src]
        assert order == [i.filename for i in a.infolist()]  # member order kept
        for info in a.infolist():
            assert b.getinfo(info.filename).compress_type == info.compress_type


def test_nothing_to_do_returns_input(variant: Variant) -> None:
    assert apply_patch(variant.data, Patch(REFUND_SHEET)) is variant.data


def test_history_sheet_added_then_replaced(variant: Variant) -> None:
    once = apply_patch(variant.data, Patch(REFUND_SHEET, {"B2": "TK-1"}, history_rows=HISTORY))
    twice = apply_patch(once, Patch(REFUND_SHEET, history_rows=HISTORY_2))
    for data, expected in ((once, HISTORY), (twice, HISTORY_2)):
        names = [n for n, _ in sheets(data)]
        assert names.count(HISTORY_SHEET) == 1
        assert names[-1] == HISTORY_SHEET
        wb = load(data, variant)
        assert [list(r) for r in wb[HISTORY_SHEET].iter_rows(values_only=True)] == expected
        if variant.openpyxl_full:
            assert wb[HISTORY_SHEET]["A1"].font.b
            assert not wb[HISTORY_SHEET]["A2"].font.b
        assert_sender_content_kept(data, variant)
    # replacing the history reuses the bold format instead of adding one per routing step
    count = len(xml(once, "xl/styles.xml").findall("{*}cellXfs/{*}xf"))
    assert len(xml(twice, "xl/styles.xml").findall("{*}cellXfs/{*}xf")) == count
    assert sheet_part(twice, HISTORY_SHEET) == sheet_part(once, HISTORY_SHEET)


def test_return_sheet_first_active_and_highlights(variant: Variant) -> None:
    before_names = local_names(variant.data)
    patch = Patch(
        REFUND_SHEET, history_rows=HISTORY, return_rows=RETURN, highlight_cells=PROBLEM_CELLS
    )
    out = apply_patch(variant.data, patch)
    names = [n for n, _ in sheets(out)]
    assert names[0] == RETURN_SHEET
    assert names[1:] == [n for n, _ in sheets(variant.data)] + [HISTORY_SHEET]
    assert active_tab(out) == 0
    assert selected_tabs(out) == [RETURN_SHEET]  # no tab group with the form
    assert local_names(out) == before_names  # localSheetId shifted with the sheets
    for ref in PROBLEM_CELLS:
        assert cell_fill(out, ref) == HIGHLIGHT_RGB
    assert cell_fill(out, "B7") is None
    wb = load(out, variant)
    assert wb.sheetnames[0] == RETURN_SHEET
    rows = [list(r) for r in wb[RETURN_SHEET].iter_rows(values_only=True)]
    assert rows == RETURN
    if variant.openpyxl_full:
        assert wb.active.title == RETURN_SHEET
        assert wb[RETURN_SHEET]["B2"].alignment.wrap_text
        assert wb[REFUND_SHEET]["B5"].border.left.style == "thin"  # highlight kept the border
    assert calamine_sheets(out)[0] == names
    assert_sender_content_kept(out, variant)


def test_round_trip_return_then_strip(variant: Variant) -> None:
    returned = apply_patch(
        variant.data,
        Patch(REFUND_SHEET, {"B2": "TK-9"}, return_rows=RETURN, highlight_cells=PROBLEM_CELLS),
    )
    stripped = apply_patch(returned, Patch(REFUND_SHEET))
    assert [n for n, _ in sheets(stripped)] == [n for n, _ in sheets(variant.data)]
    assert RETURN_SHEET not in calamine_sheets(stripped)[0]
    for ref in PROBLEM_CELLS:
        assert cell_fill(stripped, ref) is None
    assert local_names(stripped) == local_names(variant.data)
    form_index = [n for n, _ in sheets(stripped)].index(REFUND_SHEET)
    assert active_tab(stripped) == form_index
    assert selected_tabs(stripped) == [REFUND_SHEET]
    removed = set(members(returned)) - set(members(stripped))
    assert removed == {sheet_part(returned, RETURN_SHEET)}
    assert load(stripped, variant)[REFUND_SHEET]["B2"].value == "TK-9"
    assert_sender_content_kept(stripped, variant)
    # a second return after the strip highlights again
    again = apply_patch(stripped, Patch(REFUND_SHEET, return_rows=RETURN, highlight_cells=["B5"]))
    assert cell_fill(again, "B5") == HIGHLIGHT_RGB
    assert cell_fill(again, "D2") is None
    assert [n for n, _ in sheets(again)].count(RETURN_SHEET) == 1


@pytest.mark.office
@pytest.mark.slow
@pytest.mark.parametrize("resaver", [pytest.param("libreoffice", id="lo-resave"),
                                     pytest.param("gnumeric", id="gnumeric-resave")])  # fmt: skip
def test_strip_after_resave_renumbered_styles(
    variant: Variant, resaver: str, tmp_path: Path
) -> None:
    """A returned copy re-saved by another program (styles renumbered) still strips clean."""
    returned = apply_patch(
        variant.data, Patch(REFUND_SHEET, return_rows=RETURN, highlight_cells=PROBLEM_CELLS)
    )
    src = tmp_path / "returned.xlsx"
    src.write_bytes(returned)
    if resaver == "libreoffice":
        resaved = soffice_convert(src, "xlsx", tmp_path / "out").read_bytes()
    else:
        resaved = ssconvert(src, tmp_path / "resaved.xlsx").read_bytes()
    assert cell_fill(resaved, "B5") == HIGHLIGHT_RGB  # the marker survived the re-save
    stripped = apply_patch(resaved, Patch(REFUND_SHEET))
    assert RETURN_SHEET not in [n for n, _ in sheets(stripped)]
    for ref in PROBLEM_CELLS:
        assert cell_fill(stripped, ref) is None
    assert ("local_total", REFUND_SHEET) in {(n, s) for n, s, _ in local_names(stripped)}
    names, rows = calamine_sheets(stripped)
    assert names[0] == REFUND_SHEET
    assert rows[4][1] == 13800138000


@pytest.mark.office
@pytest.mark.slow
def test_libreoffice_opens_patched_copy(variant: Variant, tmp_path: Path) -> None:
    patch = Patch(
        REFUND_SHEET,
        {"B2": "TK-LO"},
        history_rows=HISTORY,
        return_rows=RETURN,
        highlight_cells=PROBLEM_CELLS,
    )
    src = tmp_path / "patched.xlsx"
    src.write_bytes(apply_patch(variant.data, patch))
    pdf = soffice_convert(src, "pdf", tmp_path / "pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    back = soffice_convert(src, "xlsx", tmp_path / "xlsx").read_bytes()
    names, rows = calamine_sheets(back)
    assert names == [RETURN_SHEET, *[n for n, _ in sheets(variant.data)], HISTORY_SHEET]
    assert rows[1][1] == "TK-LO"
    assert cell_fill(back, "B5") == HIGHLIGHT_RGB


# ------------------------------------------------------------------------------------------
# Unusual but legal packages, and hostile or broken input
# ------------------------------------------------------------------------------------------


def rewrite(
    data: bytes, changes: dict[str, bytes | None], added: dict[str, bytes] | None = None
) -> bytes:
    """Copy a zip replacing (bytes) or dropping (None) some members, appending ``added``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            content = changes.get(info.filename, src.read(info))
            if content is not None:
                dst.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED)
        for name, content in (added or {}).items():
            dst.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


@pytest.fixture
def source(xlsxwriter_file: Path) -> bytes:
    return xlsxwriter_file.read_bytes()


def test_prefixed_namespaces_and_mc_ignorable_survive(source: bytes) -> None:
    """OpenXML-SDK style ``<x:row>`` markup, absolute rel targets, mc:Ignorable prefixes."""
    files = members(source)

    def prefixed(text: str, root: str, extra: str = "") -> bytes:
        text = re.sub(r"<(/?)([A-Za-z]+)(?=[\s/>])", r"<\1x:\2", text)
        return text.replace(f'<x:{root} xmlns="', f'<x:{root}{extra} xmlns:x="').encode()

    ignorable = (
        ' xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
        ' xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"'
        ' mc:Ignorable="x14ac"'
    )
    sheet = prefixed(files["xl/worksheets/sheet1.xml"].decode(), "worksheet", ignorable)
    sheet = sheet.replace(b'<x:row r="2"', b'<x:row x14ac:dyDescent="0.25" r="2"')
    wb_rels = files["xl/_rels/workbook.xml.rels"].replace(
        b'Target="worksheets/', b'Target="/xl/worksheets/'
    )
    data = rewrite(
        source,
        {
            "xl/worksheets/sheet1.xml": sheet,
            "xl/workbook.xml": prefixed(files["xl/workbook.xml"].decode(), "workbook"),
            "xl/styles.xml": prefixed(files["xl/styles.xml"].decode(), "styleSheet"),
            "xl/_rels/workbook.xml.rels": wb_rels,
        },
    )
    out = apply_patch(
        data,
        Patch(REFUND_SHEET, {"B2": "TK-X", "E2": "新"}, return_rows=RETURN, highlight_cells=["B5"]),
    )
    text = members(out)["xl/worksheets/sheet1.xml"].decode()
    assert 'mc:Ignorable="x14ac"' in text and "xmlns:x14ac=" in text
    assert 'x14ac:dyDescent="0.25"' in text
    assert '<x:c r="E2"' in text and "<x:is><x:t" in text
    assert "<c " not in text  # nothing written in the wrong (default) namespace
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames[0] == RETURN_SHEET
    assert wb[REFUND_SHEET]["B2"].value == "TK-X"
    assert wb[REFUND_SHEET]["E2"].value == "新"
    assert cell_fill(out, "B5") == HIGHLIGHT_RGB


def test_strict_ooxml_namespaces(source: bytes) -> None:
    """ISO strict packages use other namespace URIs; new parts must follow them."""
    strict_rel = "http://purl.oclc.org/ooxml/officeDocument/relationships"
    changes: dict[str, bytes | None] = {}
    for name, content in members(source).items():
        if name.endswith((".xml", ".rels")):
            text = content.decode().replace(MAIN_NS, STRICT_NS)
            text = text.replace(
                "http://schemas.openxmlformats.org/officeDocument/2006/relationships", strict_rel
            )
            changes[name] = text.encode()
    data = rewrite(source, changes)
    out = apply_patch(data, Patch(REFUND_SHEET, {"B2": "TK-S"}, return_rows=RETURN))
    form = xml(out, "xl/worksheets/sheet1.xml")
    cell = form.find(f".//{{{STRICT_NS}}}c[@r='B2']")
    assert cell is not None
    assert cell.findtext(f"{{{STRICT_NS}}}is/{{{STRICT_NS}}}t") == "TK-S"
    new_part = sheet_part(out, RETURN_SHEET)
    assert xml(out, new_part).tag == f"{{{STRICT_NS}}}worksheet"
    rel_types = {t for t, p in rels(out, "xl/workbook.xml").values() if p == new_part}
    assert rel_types == {"worksheet"}
    assert f'{strict_rel}/worksheet"'.encode() in members(out)["xl/_rels/workbook.xml.rels"]


def test_shared_formula_master_is_refused(source: bytes) -> None:
    sheet = members(source)["xl/worksheets/sheet1.xml"].replace(
        b"<f>1+2</f>", b'<f t="shared" ref="D6:D8" si="0">1+2</f>'
    )
    data = rewrite(source, {"xl/worksheets/sheet1.xml": sheet})
    with pytest.raises(PatchError, match="共享公式"):
        apply_patch(data, Patch(REFUND_SHEET, {"D6": "x"}))


def test_removing_a_formula_drops_the_calc_chain(source: bytes) -> None:
    calc = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<calcChain xmlns="' + MAIN_NS.encode() + b'"><c r="D6" i="1"/></calcChain>'
    )
    files = members(source)
    rels_xml = files["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>",
        b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/calcChain" Target="calcChain.xml"/></Relationships>',
    )
    types = files["[Content_Types].xml"].replace(
        b"</Types>",
        b'<Override PartName="/xl/calcChain.xml" ContentType="application/vnd.openxmlformats-'
        b'officedocument.spreadsheetml.calcChain+xml"/></Types>',
    )
    data = rewrite(
        source,
        {"xl/_rels/workbook.xml.rels": rels_xml, "[Content_Types].xml": types},
        added={"xl/calcChain.xml": calc},
    )
    kept = apply_patch(data, Patch(REFUND_SHEET, {"B2": "x"}))  # no formula touched
    assert "xl/calcChain.xml" in members(kept)
    out = apply_patch(data, Patch(REFUND_SHEET, {"D6": "x"}))
    files = members(out)
    assert "xl/calcChain.xml" not in files
    assert b"calcChain" not in files["xl/_rels/workbook.xml.rels"]
    assert b"calcChain" not in files["[Content_Types].xml"]
    assert openpyxl.load_workbook(io.BytesIO(out))[REFUND_SHEET]["D6"].value == "x"


def test_text_escaping(source: bytes) -> None:
    value = "a<b>&c \"q\" 'a' _x0041_ \x01 end"
    out = apply_patch(source, Patch(REFUND_SHEET, {"B2": value}))
    assert calamine_sheets(out)[1][1][1] == value  # calamine decodes _xHHHH_ as Excel does
    ET.fromstring(members(out)["xl/worksheets/sheet1.xml"])  # well-formed


def test_value_and_highlight_on_one_cell(source: bytes) -> None:
    out = apply_patch(
        source, Patch(REFUND_SHEET, {"B2": "TK-7", "G3": "新"}, highlight_cells=["B2", "G3"])
    )
    ws = openpyxl.load_workbook(io.BytesIO(out))[REFUND_SHEET]
    assert (ws["B2"].value, ws["G3"].value) == ("TK-7", "新")
    assert cell_fill(out, "B2") == HIGHLIGHT_RGB
    assert cell_fill(out, "G3") == HIGHLIGHT_RGB
    assert ws["B2"].border.left.style == "thin"


def test_empty_value_clears_cell_keeping_style(source: bytes) -> None:
    out = apply_patch(source, Patch(REFUND_SHEET, {"D2": ""}))
    ws = openpyxl.load_workbook(io.BytesIO(out))[REFUND_SHEET]
    assert ws["D2"].value is None
    assert ws["D2"].border.left.style == "thin"


@pytest.mark.parametrize(
    ("data_factory", "message"),
    [
        pytest.param(lambda src: b"not a zip at all", "zip", id="not-a-zip"),
        pytest.param(
            lambda src: rewrite(src, {"xl/workbook.xml": None}), "workbook.xml", id="no-workbook"
        ),
        pytest.param(
            lambda src: rewrite(src, {"xl/worksheets/sheet1.xml": None}),
            "数据部件缺失",
            id="sheet-part-missing",
        ),
        pytest.param(
            lambda src: rewrite(
                src,
                {
                    "xl/workbook.xml": members(src)["xl/workbook.xml"].replace(
                        b"<workbook ", b'<!DOCTYPE workbook [<!ENTITY x "y">]><workbook ', 1
                    )
                },
            ),
            "DTD",
            id="doctype",
        ),
        pytest.param(
            lambda src: rewrite(src, {"xl/workbook.xml": b"<workbook><sheets>"}),
            "命名空间",
            id="garbage-workbook-xml",
        ),
    ],
)
def test_broken_input_raises_patch_error(source: bytes, data_factory: Any, message: str) -> None:
    with pytest.raises(PatchError, match=message) as info:
        apply_patch(data_factory(source), Patch(REFUND_SHEET, {"B2": "x"}))
    assert isinstance(info.value, FormReadError)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(Patch("不存在的表", {"B2": "x"}), "没有工作表", id="missing-sheet"),
        pytest.param(Patch(REFUND_SHEET, {"B0": "x"}), "超出", id="row-zero"),
        pytest.param(Patch(REFUND_SHEET, {"2B": "x"}), "无效", id="bad-address"),
        pytest.param(Patch(REFUND_SHEET, highlight_cells=["XFE1"]), "超出", id="column-too-far"),
        pytest.param(Patch(HISTORY_SHEET, {"A1": "x"}), "流转用", id="form-is-history"),
    ],
)
def test_bad_patch_raises_patch_error(source: bytes, patch: Patch, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_patch(source, patch)


def test_zip_bomb_part_is_refused(source: bytes) -> None:
    limits = replace(DEFAULT_LIMITS, loaded_part_bytes=100)
    with pytest.raises(PatchError, match="过大"):
        apply_patch(source, Patch(REFUND_SHEET, {"B2": "x"}), limits=limits)


MARK = {"refundflow_template": '"refundflow-2026.1"'}


def workbook_names(data: bytes) -> list[tuple[str, str]]:
    """(name, formula) of every workbook-scope defined name, in document order."""
    wb = xml(data, "xl/workbook.xml")
    return [
        (d.get("name", ""), d.text or "")
        for d in wb.iterfind("{*}definedNames/{*}definedName")
        if d.get("localSheetId") is None
    ]


def test_missing_name_is_put_back_once(variant: Variant) -> None:
    assert "refundflow_template" not in dict(workbook_names(variant.data))
    once = apply_patch(variant.data, Patch(REFUND_SHEET, missing_names=MARK))
    assert workbook_names(once) == [*workbook_names(variant.data), *MARK.items()]
    wb = load(once, variant)
    assert wb.defined_names["refundflow_template"].attr_text == '"refundflow-2026.1"'
    assert apply_patch(once, Patch(REFUND_SHEET, missing_names=MARK)) is once  # present: kept


def test_missing_name_goes_after_the_sheets_when_the_workbook_has_no_names(
    source: bytes,
) -> None:
    text = members(source)["xl/workbook.xml"]
    bare = re.sub(rb"<definedNames>.*</definedNames>|<definedNames/>", b"", text, flags=re.S)
    no_names = rewrite(source, {"xl/workbook.xml": bare})
    assert workbook_names(no_names) == []
    patched = apply_patch(no_names, Patch(REFUND_SHEET, missing_names=MARK))
    assert workbook_names(patched) == list(MARK.items())
    order = [child.tag.rpartition("}")[2] for child in xml(patched, "xl/workbook.xml")]
    assert order[order.index("sheets") + 1] == "definedNames"  # CT_Workbook's order
    wb = openpyxl.load_workbook(io.BytesIO(patched))
    assert wb.defined_names["refundflow_template"].attr_text == '"refundflow-2026.1"'


def test_existing_name_of_the_same_name_is_left_as_it_is(source: bytes) -> None:
    text = members(source)["xl/workbook.xml"]
    own = text.replace(
        b"</definedNames>",
        b'<definedName name="REFUNDFLOW_TEMPLATE">1</definedName></definedNames>',
    )
    with_name = rewrite(source, {"xl/workbook.xml": own})
    assert apply_patch(with_name, Patch(REFUND_SHEET, missing_names=MARK)) is with_name
