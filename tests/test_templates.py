"""The four Excel templates: what staff see, what the form reader relies on, how they print."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell.cell import Cell
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from refundflow import layout, templates
from refundflow.config import Config
from refundflow.handoverread import read_handover

from office import (
    needs_soffice,
    needs_ssconvert,
    pdf_pages,
    pdf_text,
    soffice_convert,
    soffice_convert_all,
    ssconvert,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "templates"
FILES = (
    layout.REFUND_TEMPLATE_FILE,
    layout.HANDOVER_TEMPLATE_FILE,
    layout.CS_STATS_TEMPLATE_FILE,
    layout.FINANCE_STATS_TEMPLATE_FILE,
)
SHEET_OF = {
    layout.REFUND_TEMPLATE_FILE: layout.REFUND_SHEET,
    layout.HANDOVER_TEMPLATE_FILE: layout.HANDOVER_SHEET,
    layout.CS_STATS_TEMPLATE_FILE: layout.CS_STATS_SHEET,
    layout.FINANCE_STATS_TEMPLATE_FILE: layout.FINANCE_STATS_SHEET,
}
PER_FILE = [pytest.param(name, id=name.removesuffix(".xlsx")) for name in FILES]

# The labels of the spec (refund-process.md §3–§6), by sheet.
REFUND_LABELS = {
    layout.REFUND_SHEET,
    layout.CS_SECTION_LABEL,
    *(f.label for f in layout.HEADER_FIELDS),
    *(b.title for b in layout.ALL_BLOCKS),
    layout.OPINION_LABEL,
    layout.BY_LABEL,
    layout.DATE_LABEL,
    layout.APPROVAL_LABEL,
}
HANDOVER_LABELS = {
    layout.HANDOVER_SHEET, "填表时间", "交接人", "接交人", "班次", "考勤",
    "应到值班人员", "实到值班人员", "迟到人员", "早退人员", "旷工人员",
    "完成工作明细", "如有故障退款单,请注明文件编号,手机号,金额,银行。",
    "需其他人员跟进交接明细", "如有故障退款单,请注明文件编号,手机号,金额,银行,交接环节",
    "退款单统计",
    "财务已处理的订单", "请写明文件编号,手机号,金额,银行,处理结果",
    "已提交财务的订单", "请写明文件编号,手机号,金额,银行",
    "财务退回的订单", "请写明文件编号,手机号,金额,银行,退回原因",
    "卫生是否打扫", "相关责任人签字确认", "交接单注意事项",
}  # fmt: skip
STATS_COMMON = {"编号", "制表人", "制表日期", layout.TOTAL_LABEL, "审批人"}
EXPECTED_LABELS = {
    layout.REFUND_TEMPLATE_FILE: REFUND_LABELS,
    layout.HANDOVER_TEMPLATE_FILE: HANDOVER_LABELS,
    layout.CS_STATS_TEMPLATE_FILE: {
        layout.CS_STATS_SHEET,
        "部门:客服部",
        *STATS_COMMON,
        *layout.CS_STATS_COLUMNS,
    },
    layout.FINANCE_STATS_TEMPLATE_FILE: {
        layout.FINANCE_STATS_SHEET,
        "部门:财务部",
        *STATS_COMMON,
        *layout.FINANCE_STATS_COLUMNS,
    },
}
EXPECTED_NAMES: dict[str, dict[str, str]] = {
    layout.REFUND_TEMPLATE_FILE: {f.name: f.cell for f in layout.REFUND_FIELDS},
    layout.HANDOVER_TEMPLATE_FILE: {n: layout.HANDOVER_CELLS[n] for n in layout.HANDOVER_NAMES},
    layout.CS_STATS_TEMPLATE_FILE: {n: layout.STATS_CELLS[n] for n in layout.STATS_NAMES},
    layout.FINANCE_STATS_TEMPLATE_FILE: {n: layout.STATS_CELLS[n] for n in layout.STATS_NAMES},
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("templates")
    templates.write_templates(out, Config())
    return out


@pytest.fixture(scope="module")
def books(generated: Path) -> Iterator[dict[str, Workbook]]:
    loaded = {name: openpyxl.load_workbook(generated / name) for name in FILES}
    yield loaded
    for wb in loaded.values():
        wb.close()


def strings(ws: Worksheet) -> set[str]:
    return {c.value.strip() for row in ws.iter_rows() for c in row if isinstance(c.value, str)}


def destination(wb: Workbook, name: str) -> tuple[str, str]:
    """(sheet, 'B2') of a workbook-scope name that must point at exactly one cell."""
    dests = list(wb.defined_names[name].destinations)
    assert len(dests) == 1, f"{name} -> {dests}"
    sheet, ref = dests[0]
    ref = ref.replace("$", "")
    assert ":" not in ref, f"{name} points at a range {ref}"
    return sheet, ref


def zip_parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    # Creation/modification dates are the one thing that may legitimately differ.
    core = parts.get("docProps/core.xml", b"")
    parts["docProps/core.xml"] = re.sub(
        rb"<dcterms:(created|modified)[^<]*</dcterms:\1>", b"", core
    )
    return parts


# --- the committed files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PER_FILE)
def test_committed_template_is_what_the_writer_writes(generated: Path, name: str) -> None:
    committed = COMMITTED / name
    assert committed.exists(), f"templates/{name} missing: run write_templates(Path('templates'))"
    assert zip_parts(committed) == zip_parts(generated / name), (
        f"templates/{name} is stale: regenerate with write_templates(Path('templates'), Config())"
    )


def test_output_is_byte_for_byte_repeatable(tmp_path: Path) -> None:
    first = templates.write_templates(tmp_path / "a", Config())
    second = templates.write_templates(tmp_path / "b", Config())
    assert [p.name for p in first] == list(FILES)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


# --- labels, names, protection ---------------------------------------------------------------


@pytest.mark.parametrize("name", PER_FILE)
def test_every_label_of_the_spec_is_on_the_sheet(books: dict[str, Workbook], name: str) -> None:
    ws = books[name][SHEET_OF[name]]
    missing = EXPECTED_LABELS[name] - strings(ws)
    assert not missing


@pytest.mark.parametrize("name", PER_FILE)
def test_defined_names_point_at_unlocked_input_cells(books: dict[str, Workbook], name: str) -> None:
    wb = books[name]
    expected = EXPECTED_NAMES[name]
    assert set(wb.defined_names) == {*expected, layout.VERSION_PROPERTY}
    for ws in wb.worksheets:
        assert not ws.defined_names, "every name must be workbook-scope"
    for field, cell in expected.items():
        sheet, ref = destination(wb, field)
        assert (sheet, ref) == (SHEET_OF[name], cell), field
        assert wb[sheet][ref].protection.locked is False, field


@pytest.mark.parametrize("name", PER_FILE)
def test_sheet_is_protected_without_password(books: dict[str, Workbook], name: str) -> None:
    protection = books[name][SHEET_OF[name]].protection
    assert protection.sheet is True
    assert not protection.password


@pytest.mark.parametrize("name", PER_FILE)
def test_labels_are_locked(books: dict[str, Workbook], name: str) -> None:
    ws = books[name][SHEET_OF[name]]
    labels = [c for row in ws.iter_rows() for c in row if c.value in EXPECTED_LABELS[name]]
    assert labels
    assert all(c.protection.locked for c in labels), [c.coordinate for c in labels]


def test_refund_labels_sit_at_their_anchor(books: dict[str, Workbook]) -> None:
    """The reader's fallback (anchor + offset) must land on the named cell."""
    ws = books[layout.REFUND_TEMPLATE_FILE][layout.REFUND_SHEET]
    anchors = {c.value: (c.row - 1, c.column - 1) for row in ws.iter_rows() for c in row}
    for field in layout.REFUND_FIELDS:
        row, col = anchors[field.anchor]
        target = layout.rc_to_cell(row + field.offset[0], col + field.offset[1])
        assert target == field.cell, field.name
    for field in layout.HEADER_FIELDS:  # header labels are unique on the sheet
        assert sum(c.value == field.label for r in ws.iter_rows() for c in r) == 1, field.label


@pytest.mark.parametrize("name", PER_FILE)
def test_version_is_stamped_twice(books: dict[str, Workbook], name: str) -> None:
    wb = books[name]
    props = {p.name: p.value for p in wb.custom_doc_props.props}
    assert props[layout.VERSION_PROPERTY] == layout.TEMPLATE_VERSION
    assert wb.defined_names[layout.VERSION_PROPERTY].attr_text == f'"{layout.TEMPLATE_VERSION}"'


# --- the refund form's cells -----------------------------------------------------------------


def refund_cell(books: dict[str, Workbook], field: str) -> Cell:
    return books[layout.REFUND_TEMPLATE_FILE][layout.REFUND_SHEET][
        layout.FIELDS_BY_NAME[field].cell
    ]


def validation_at(ws: Worksheet, cell: str) -> DataValidation:
    found = [dv for dv in ws.data_validations.dataValidation if cell in dv.sqref]
    assert len(found) == 1, f"{cell}: {found}"
    return found[0]


def test_refund_form_prefills_the_reporting_department(books: dict[str, Workbook]) -> None:
    assert refund_cell(books, "reporting_dept").value == "客服部"
    others = [f for f in layout.REFUND_FIELDS if f.name != "reporting_dept"]
    assert all(refund_cell(books, f.name).value is None for f in others)


@pytest.mark.parametrize(
    ("kind", "number_format"),
    [
        pytest.param(layout.Kind.DATETIME, templates.DATETIME_FORMAT, id="datetime"),
        pytest.param(layout.Kind.AMOUNT, templates.AMOUNT_FORMAT, id="amount"),
        pytest.param(layout.Kind.MOBILE, "@", id="mobile"),
        pytest.param(layout.Kind.ORDER_NO, "@", id="order_no"),
        pytest.param(layout.Kind.FORM_NO, "@", id="form_no"),
    ],
)
def test_refund_number_formats(
    books: dict[str, Workbook], kind: layout.Kind, number_format: str
) -> None:
    fields = [f for f in layout.REFUND_FIELDS if f.kind is kind]
    assert fields
    for field in fields:
        assert refund_cell(books, field.name).number_format == number_format, field.name


def test_refund_validations(books: dict[str, Workbook]) -> None:
    wb = books[layout.REFUND_TEMPLATE_FILE]
    ws = wb[layout.REFUND_SHEET]
    for field in layout.REFUND_FIELDS:
        dv = validation_at(ws, field.cell)
        assert dv.showInputMessage and dv.prompt, field.name  # every input explains itself
        match field.kind:
            case layout.Kind.APPROVAL:
                assert (dv.type, dv.formula1) == ("list", '"同意,不同意"')
            case layout.Kind.AMOUNT:
                assert (dv.type, dv.operator, dv.formula1) == ("decimal", "greaterThan", "0")
            case layout.Kind.BANK:
                assert (dv.type, dv.formula1) == ("list", f"'{layout.LISTS_SHEET}'!$A$2:$A$29")
            case layout.Kind.FAULT:
                assert (dv.type, dv.formula1) == ("list", f"'{layout.LISTS_SHEET}'!$B$2:$B$5")
                assert dv.errorStyle == "information"  # free text still accepted
            case layout.Kind.DATETIME:
                assert dv.prompt == templates.DATETIME_HINT
            case layout.Kind.MOBILE:
                assert dv.prompt == "11位手机号码"


def test_choice_lists_are_on_a_hidden_sheet(books: dict[str, Workbook]) -> None:
    wb = books[layout.REFUND_TEMPLATE_FILE]
    lists = wb[layout.LISTS_SHEET]
    assert lists.sheet_state == "hidden"
    assert wb.sheetnames[0] == layout.REFUND_SHEET
    config = Config()
    assert [c.value for c in lists["A"][1:]] == list(config.banks)
    assert [c.value for c in lists["B"][1 : len(config.faults) + 1]] == list(config.faults)


def test_long_bank_list_is_referenced_not_inlined(tmp_path: Path) -> None:
    banks = tuple(f"测试银行第{i:03d}分行" for i in range(200))  # far over Excel's 255 chars
    path = tmp_path / "form.xlsx"
    templates.write_refund_template(path, Config(banks=banks))
    wb = openpyxl.load_workbook(path)
    dv = validation_at(wb[layout.REFUND_SHEET], layout.FIELDS_BY_NAME["bank"].cell)
    assert dv.formula1 == f"'{layout.LISTS_SHEET}'!$A$2:$A$201"
    assert wb[layout.LISTS_SHEET]["A201"].value == banks[-1]


def test_full_width_inputs_are_merged_from_the_named_cell(books: dict[str, Workbook]) -> None:
    ws = books[layout.REFUND_TEMPLATE_FILE][layout.REFUND_SHEET]
    merged = {str(r) for r in ws.merged_cells.ranges}
    assert "A1:F1" in merged and "A3:F3" in merged and "B4:F4" in merged
    for block in layout.ALL_BLOCKS:
        assert f"A{block.row}:F{block.row}" in merged
        first = layout.BLOCK_FIELDS[block.role][0]
        assert f"{first.cell}:F{block.row + 1}" in merged


def test_refund_form_prints_on_one_a4_portrait_page(books: dict[str, Workbook]) -> None:
    ws = books[layout.REFUND_TEMPLATE_FILE][layout.REFUND_SHEET]
    assert ws.page_setup.paperSize == 9 and ws.page_setup.orientation == "portrait"
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    # xlsxwriter leaves out fitToWidth/fitToHeight when they are 1, Excel's default.
    assert ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight in (None, 1)


# --- handover and statistics -----------------------------------------------------------------


def test_reporting_department_hint_gives_customer_service_as_the_example(
    books: dict[str, Workbook],
) -> None:
    ws = books[layout.REFUND_TEMPLATE_FILE][layout.REFUND_SHEET]
    reporting = validation_at(ws, layout.FIELDS_BY_NAME["reporting_dept"].cell)
    handling = validation_at(ws, layout.FIELDS_BY_NAME["handling_dept"].cell)
    assert (reporting.promptTitle, reporting.prompt) == ("申报部门", "填写部门名称,例如 客服部")
    assert (handling.promptTitle, handling.prompt) == ("问题处理部门", "填写部门名称,例如 技术部")


def test_handover_blanks_to_fill_by_hand_are_not_content(generated: Path) -> None:
    """The printed blanks (年 月 日, □白班 □中班) read as empty: the check says 未填写."""
    values = read_handover(generated / layout.HANDOVER_TEMPLATE_FILE)
    assert values == {name: "" for name in layout.HANDOVER_CELLS}


def test_handover_inputs(books: dict[str, Workbook]) -> None:
    ws = books[layout.HANDOVER_TEMPLATE_FILE][layout.HANDOVER_SHEET]
    for name in layout.HANDOVER_NAMES:
        dv = validation_at(ws, layout.HANDOVER_CELLS[name])
        assert dv.prompt.startswith(templates.REQUIRED_HINT), name
    assert validation_at(ws, layout.HANDOVER_CELLS["shift"]).formula1 == '"白班,中班"'
    assert ws[layout.HANDOVER_CELLS["filled_on"]].number_format == templates.DATE_FORMAT
    assert set(templates.HANDOVER_RULES) <= strings(ws)


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        pytest.param(layout.CS_STATS_TEMPLATE_FILE, layout.CS_STATS_COLUMNS, id="cs"),
        pytest.param(
            layout.FINANCE_STATS_TEMPLATE_FILE, layout.FINANCE_STATS_COLUMNS, id="finance"
        ),
    ],
)
def test_stats_table_grid(books: dict[str, Workbook], name: str, columns: tuple[str, ...]) -> None:
    ws = books[name][SHEET_OF[name]]
    header = [c.value for c in ws[layout.STATS_HEADER_ROW]][: len(columns)]
    assert tuple(header) == columns
    assert ws.cell(layout.STATS_TOTAL_ROW, 1).value == layout.TOTAL_LABEL
    amount_col = columns.index(layout.STATS_AMOUNT_COLUMN) + 1
    letter = layout.rc_to_cell(0, amount_col - 1)[:-1]
    first, last = layout.STATS_FIRST_DATA_ROW, layout.STATS_TOTAL_ROW - 1
    assert (
        ws.cell(layout.STATS_TOTAL_ROW, amount_col).value == f"=SUM({letter}{first}:{letter}{last})"
    )
    assert last - first + 1 == layout.STATS_DATA_ROWS
    data = [ws.cell(r, c) for r in range(first, last + 1) for c in range(1, len(columns) + 1)]
    assert all(c.value is None and c.protection.locked is False for c in data)
    assert all(c.border.left.style for c in data)  # a bordered grid, ready to fill in
    assert ws.cell(first, amount_col).number_format == templates.AMOUNT_FORMAT
    assert ws[layout.STATS_CELLS["compiled_on"]].number_format == templates.DATE_FORMAT
    assert ws.page_setup.orientation == "landscape"


# --- LibreOffice and Gnumeric ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pdfs(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdf")
    soffice_convert_all([generated / n for n in FILES], "pdf", out)
    return out


@pytest.mark.office
@needs_soffice
def test_blank_handover_sheet_prints_the_blanks_to_fill_in(pdfs: Path) -> None:
    text = pdf_text(pdfs / layout.HANDOVER_TEMPLATE_FILE.replace(".xlsx", ".pdf"))
    assert re.search(r"填表时间\s+年\s+月\s+日\s+交接人", text), text
    assert re.search(r"班次\s+□白班\s+□中班\s+班次:", text), text


@pytest.mark.office
@needs_soffice
@pytest.mark.parametrize("name", PER_FILE)
def test_libreoffice_prints_each_template(pdfs: Path, name: str) -> None:
    pdf = pdfs / name.replace(".xlsx", ".pdf")
    assert pdf.exists(), f"LibreOffice did not convert {name}"
    pages = pdf_pages(pdf)
    if name == layout.REFUND_TEMPLATE_FILE:
        assert pages == 1, "the refund form must print on one A4 page"
    else:
        assert pages >= 1


def assert_form_reader_stamps(path: Path, names: dict[str, str], sheet: str) -> None:
    """What the form reader relies on after someone re-saved the file in another program."""
    wb = openpyxl.load_workbook(path)
    try:
        props = {p.name: p.value for p in wb.custom_doc_props.props}
        assert props.get(layout.VERSION_PROPERTY) == layout.TEMPLATE_VERSION
        version = wb.defined_names[layout.VERSION_PROPERTY].attr_text
        assert version == f'"{layout.TEMPLATE_VERSION}"'
        for field, cell in names.items():
            assert destination(wb, field) == (sheet, cell), field
    finally:
        wb.close()


@pytest.mark.office
@needs_soffice
@pytest.mark.parametrize("name", PER_FILE)
def test_names_and_version_survive_libreoffice(generated: Path, tmp_path: Path, name: str) -> None:
    saved = soffice_convert(generated / name, "xlsx", tmp_path / "out")
    assert_form_reader_stamps(saved, EXPECTED_NAMES[name], SHEET_OF[name])


@pytest.mark.office
@needs_ssconvert
@pytest.mark.filterwarnings("ignore:Workbook contains no default style")  # Gnumeric's styles.xml
@pytest.mark.parametrize("name", PER_FILE)
def test_names_and_version_survive_gnumeric(generated: Path, tmp_path: Path, name: str) -> None:
    saved = ssconvert(generated / name, tmp_path / name)
    assert_form_reader_stamps(saved, EXPECTED_NAMES[name], SHEET_OF[name])
