"""forms.read_form: a filled workbook, whatever program saved it, back into a typed record."""

from __future__ import annotations

import datetime as dt
import io
import pickle
import re
import tracemalloc
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter

from refundflow import layout
from refundflow.config import Config
from refundflow.errors import FileRejected, FormReadError, Reason
from refundflow.forms import BlockEntry, FormReading, RefundForm, read_form
from refundflow.templates import write_refund_template

from formfill import fill_form, insert_rows_above, rewrite_parts, to_bytes
from office import gnumeric_resave, needs_soffice, needs_ssconvert, soffice_resave

T0 = dt.datetime(2026, 11, 3, 14, 5)

# A form filled up to the cashier, typed as staff type it in Excel: real date-times, a number
# for the amount, text for the mobile number (the template formats that cell as text).
VALUES: dict[str, object] = {
    "form_no": "TKD20261103-001",
    "reported_at": T0,
    "fault": "重复扣款",
    "mobile": "13800138000",
    "purchase_time": dt.datetime(2026, 11, 3, 9, 30),
    "bank": "招商银行",
    "order_no": "TK202611030001",
    "amount": 1234.5,
    "customer_request": "要求全额退款\n尽快处理",
    "submitter": "张三",
    "submitted_at": dt.datetime(2026, 11, 3, 14, 12),
    "handling_dept": "技术部",
    "cs_opinion": "客户重复扣款,已核实",
    "cs_by": "张三",
    "cs_date": dt.datetime(2026, 11, 3, 14, 10),
    "cs_approval": "同意",
    "tech_opinion": "第二笔扣款无对应出票,同意退款",
    "tech_by": "王五",
    "tech_date": dt.datetime(2026, 11, 3, 15, 0),
    "tech_approval": "同意",
    "cashier_by": "赵六",
}

EXPECTED = RefundForm(
    form_no="TKD20261103-001",
    reporting_dept="客服部",  # prefilled by the template
    reported_at=T0,
    fault="重复扣款",
    mobile="13800138000",
    purchase_time=dt.datetime(2026, 11, 3, 9, 30),
    bank="招商银行",
    order_no="TK202611030001",
    amount=Decimal("1234.50"),
    customer_request="要求全额退款\n尽快处理",
    submitter="张三",
    submitted_at=dt.datetime(2026, 11, 3, 14, 12),
    handling_dept="技术部",
    blocks={
        "cs": BlockEntry("客户重复扣款,已核实", "张三", dt.datetime(2026, 11, 3, 14, 10), "同意"),
        "tech": BlockEntry(
            "第二笔扣款无对应出票,同意退款", "王五", dt.datetime(2026, 11, 3, 15, 0), "同意"
        ),
        "cashier": BlockEntry(None, "赵六", None, None),
        **{
            role: BlockEntry(None, None, None, None)
            for role in ("accountant", "director", "president", "admin")
        },
    },
    template_version=layout.TEMPLATE_VERSION,
    sheet=layout.REFUND_SHEET,
    cells={f.name: f.cell for f in layout.REFUND_FIELDS},
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("tpl") / layout.REFUND_TEMPLATE_FILE
    write_refund_template(path, Config())
    return path.read_bytes()


@pytest.fixture(scope="module")
def filled(template: bytes) -> bytes:
    return fill_form(template, VALUES)


def read_ok(data: bytes) -> RefundForm:
    reading = read_form(data)
    assert reading.problems == ()
    return reading.form


def same_record(form: RefundForm, *, moved: int = 0) -> None:
    """``form`` holds EXPECTED's values (cells moved down by ``moved`` rows)."""
    assert form.canonical() == EXPECTED.canonical()
    for f in layout.REFUND_FIELDS:
        assert form.value(f.name) == EXPECTED.value(f.name), f.name
    row_moved = {
        name: layout.rc_to_cell(layout.cell_to_rc(c)[0] + moved, layout.cell_to_rc(c)[1])
        for name, c in EXPECTED.cells.items()
    }
    assert dict(form.cells) == row_moved


def form_xml(data: bytes) -> str:
    """The XML of the form's worksheet part (found through workbook.xml and its rels)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        wb = zf.read("xl/workbook.xml").decode()
        rels = zf.read("xl/_rels/workbook.xml.rels").decode()
        rid = re.search(rf'<sheet [^>]*name="{layout.REFUND_SHEET}"[^>]*r:id="([^"]+)"', wb)
        assert rid is not None
        target = re.search(rf'<Relationship [^>]*Id="{rid[1]}"[^>]*Target="([^"]+)"', rels)
        if target is None:
            target = re.search(rf'Target="([^"]+)"[^>]*Id="{rid[1]}"', rels)
        assert target is not None
        return zf.read("xl/" + target[1].removeprefix("/xl/")).decode()


# --- the plain case --------------------------------------------------------------------------


def test_reads_back_what_was_filled_in(filled: bytes) -> None:
    form = read_ok(filled)
    assert form == EXPECTED


def test_empty_template_reads_as_empty_form(template: bytes) -> None:
    form = read_ok(template)
    assert form.reporting_dept == "客服部"
    assert all(entry == BlockEntry(None, None, None, None) for entry in form.blocks.values())
    assert form.template_version == layout.TEMPLATE_VERSION


def test_value_by_defined_name(filled: bytes) -> None:
    form = read_ok(filled)
    assert form.value("tech_by") == "王五"
    assert form.value("amount") == Decimal("1234.50")
    assert form.value("admin_followup") is None
    with pytest.raises(KeyError):
        form.value("no_such_field")


def test_canonical_text(filled: bytes) -> None:
    canonical = read_ok(filled).canonical()
    assert list(canonical) == [f.name for f in layout.REFUND_FIELDS]
    assert canonical["reported_at"] == "2026-11-03 14:05"
    assert canonical["amount"] == "1234.50"
    assert canonical["director_by"] == ""


def test_merged_input_value_comes_from_its_top_left_cell(template: bytes) -> None:
    # 故障现象 is merged B4:F4 in the template; a name pointing inside the merge still works.
    wb = openpyxl.load_workbook(io.BytesIO(fill_form(template, {"fault": "订单冲突"})))
    wb.defined_names["fault"].attr_text = f"'{layout.REFUND_SHEET}'!$D$4"
    form = read_ok(to_bytes(wb))
    assert form.fault == "订单冲突"
    assert form.cells["fault"] == "B4"


def test_reading_pickles(filled: bytes) -> None:
    reading = read_form(fill_form(filled, {"purchase_time": "2026-11-03 14"}))
    again = pickle.loads(pickle.dumps(reading))
    assert again == reading
    assert isinstance(again, FormReading)


# --- what people type ------------------------------------------------------------------------


def test_text_typed_dates_and_fullwidth_input(template: bytes) -> None:
    typed = {
        **VALUES,
        "reported_at": "2026年11月3日 14:05",
        "purchase_time": "2026/11/3 9:30",
        "submitted_at": "２０２６－１１－０３　１４：１２",
        "cs_date": "2026年11月3日14时10分",
        "tech_date": "2026.11.03 15:00:00",
        "mobile": "１３８ ００１３ ８０００",
        "amount": "￥１,２３４．５０",
        "order_no": "ｔｋ２０２６１１０３０００１",
        "form_no": " TKD20261103-001 ",
        "tech_approval": "\u3000同意 ",
        "submitter": "张\u3000三",
    }
    same_record(read_ok(fill_form(template, typed)))


def test_numbers_typed_into_text_cells(template: bytes) -> None:
    # Someone pasted numbers: calamine hands back floats (13800138000.0).
    form = read_ok(fill_form(template, {**VALUES, "mobile": 13800138000, "order_no": 20261103}))
    assert form.mobile == "13800138000"
    assert form.order_no == "20261103"


def test_every_problem_is_collected_with_label_and_cell(template: bytes) -> None:
    bad = {
        **VALUES,
        "purchase_time": "2026-11-03 14",
        "amount": "100/200",
        "mobile": "1380013800",
        "tech_approval": "可以",
        "cashier_date": "2026-11-04",
    }
    reading = read_form(fill_form(template, bad))
    found = {p.field: p for p in reading.problems}
    assert set(found) == {"purchase_time", "amount", "mobile", "tech_approval", "cashier_date"}
    p = found["purchase_time"]
    assert (p.label, p.cell, p.reason) == ("购买时间", "D5", Reason.AMBIGUOUS_DATETIME)
    assert p.message.startswith("购买时间(D5)缺少分钟:")
    assert "2026-11-03 14:05" in p.message
    assert found["amount"].reason is Reason.AMBIGUOUS_AMOUNT
    assert found["mobile"].reason is Reason.BAD_MOBILE
    t = found["tech_approval"]
    assert (t.label, t.cell, t.reason) == ("技术部处理意见·领导审批", "F13", Reason.BAD_CHOICE)
    assert found["cashier_date"].label == "出纳处理意见·日期"
    assert found["cashier_date"].reason is Reason.AMBIGUOUS_DATETIME
    # The bad values read as empty, but change detection still sees what was typed.
    assert reading.form.purchase_time is None
    assert reading.form.canonical()["purchase_time"] == "2026-11-03 14"


# --- other programs --------------------------------------------------------------------------


@needs_soffice
def test_libreoffice_round_trip_reads_the_same(filled: bytes, tmp_path: Path) -> None:
    saved = soffice_resave(filled, tmp_path)
    form = read_ok(saved)
    same_record(form)
    assert form.template_version == layout.TEMPLATE_VERSION
    with zipfile.ZipFile(io.BytesIO(saved)) as zf:
        workbook = zf.read("xl/workbook.xml").decode()
        custom = zf.read("docProps/custom.xml").decode()
    # What LibreOffice does to our stamps: names kept with the sheet name unquoted, the version
    # name kept as a string constant, the custom property kept.
    assert f">{layout.REFUND_SHEET}!$B$2<" in workbook
    assert "&quot;refundflow-2026.1&quot;" in workbook
    assert layout.TEMPLATE_VERSION in custom


@needs_ssconvert
def test_gnumeric_round_trip_reads_the_same(filled: bytes, tmp_path: Path) -> None:
    saved = gnumeric_resave(filled, tmp_path)
    form = read_ok(saved)
    same_record(form)
    assert form.template_version == layout.TEMPLATE_VERSION
    with zipfile.ZipFile(io.BytesIO(saved)) as zf:
        workbook = zf.read("xl/workbook.xml").decode()
    # Gnumeric adds sheet-local _xlnm names, one of them #REF!; they must not confuse us.
    assert "_xlnm.Print_Area" in workbook
    assert f">{layout.REFUND_SHEET}!$B$2<" in workbook


@needs_soffice
@needs_ssconvert
def test_libreoffice_then_gnumeric(filled: bytes, tmp_path: Path) -> None:
    saved = gnumeric_resave(soffice_resave(filled, tmp_path / "a"), tmp_path / "b")
    same_record(read_ok(saved))


# --- damaged layouts -------------------------------------------------------------------------


def test_names_deleted_falls_back_to_labels(filled: bytes) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(filled))
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    form = read_ok(to_bytes(wb))
    same_record(form)
    assert form.template_version == layout.TEMPLATE_VERSION  # the custom property remains


def test_names_broken_to_ref_errors_falls_back_to_labels(filled: bytes) -> None:
    def edit(name: str, data: bytes) -> bytes:
        if name == "xl/workbook.xml":
            return re.sub(rb"'[^'<]+'!\$[A-F]\$\d+", b"#REF!", data)
        return data

    same_record(read_ok(rewrite_parts(filled, edit)))


def test_rows_inserted_above_with_names_moved(filled: bytes) -> None:
    same_record(read_ok(insert_rows_above(filled, 3, names="move")), moved=3)


def test_rows_inserted_above_without_names(filled: bytes) -> None:
    form = read_ok(insert_rows_above(filled, 3, names="delete"))
    same_record(form, moved=3)


def test_rows_inserted_above_with_stale_names(filled: bytes) -> None:
    # The names still point at the old cells: the labels next to them are wrong, labels win.
    form = read_ok(insert_rows_above(filled, 2, names="stale"))
    same_record(form, moved=2)


def test_wps_style_wrong_dimension(filled: bytes) -> None:
    assert re.search(r'<dimension ref="A1:F\d+"\s*/>', form_xml(filled))

    def edit(name: str, data: bytes) -> bytes:
        if name.startswith("xl/worksheets/"):
            return re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1"/>', data)
        return data

    changed = rewrite_parts(filled, edit)
    assert '<dimension ref="A1"/>' in form_xml(changed)
    same_record(read_ok(changed))  # calamine reads past the declared dimension


STRICT = {
    b"http://schemas.openxmlformats.org/spreadsheetml/2006/main": (
        b"http://purl.oclc.org/ooxml/spreadsheetml/main"
    ),
    b"http://schemas.openxmlformats.org/officeDocument/2006/relationships": (
        b"http://purl.oclc.org/ooxml/officeDocument/relationships"
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # openpyxl complains about strict files
def test_strict_ooxml(filled: bytes) -> None:
    def edit(name: str, data: bytes) -> bytes:
        for old, new in STRICT.items():
            data = data.replace(old, new)
        return data

    strict = rewrite_parts(filled, edit)
    assert openpyxl.load_workbook(io.BytesIO(strict)).sheetnames == []  # openpyxl is blind here
    same_record(read_ok(strict))


def test_return_sheet_first_is_ignored(filled: bytes) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(filled))
    ws = wb.create_sheet(layout.RETURN_SHEET, 0)
    # It quotes the form's labels; none of that may be read as the form.
    ws.append(["退回原因", "金额"])
    ws.append(["编号", "TKD-WRONG"])
    ws.append(["订单号", "TK-WRONG"])
    wb.active = 0
    form = read_ok(to_bytes(wb))
    same_record(form)
    assert form.sheet == layout.REFUND_SHEET


def test_return_sheet_first_without_names_and_renamed_form_sheet(filled: bytes) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(filled))
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    wb[layout.REFUND_SHEET].title = "Sheet1"
    ws = wb.create_sheet(layout.RETURN_SHEET, 0)
    for f in layout.HEADER_FIELDS:
        ws.append([f.label, "WRONG"])
    form = read_ok(to_bytes(wb))
    assert form.sheet == "Sheet1"
    assert form.canonical() == EXPECTED.canonical()


def test_version_from_defined_name_when_custom_property_is_gone(filled: bytes) -> None:
    def drop_custom(name: str, data: bytes) -> bytes | None:
        return None if name == "docProps/custom.xml" else data

    no_custom = rewrite_parts(filled, drop_custom)
    assert read_ok(no_custom).template_version == layout.TEMPLATE_VERSION

    def formula_style(name: str, data: bytes) -> bytes | None:
        if name == "xl/workbook.xml":
            return data.replace(
                b">&quot;refundflow-2026.1&quot;<", b">=&quot;refundflow-2026.1&quot;<"
            )
        return drop_custom(name, data)

    assert read_ok(rewrite_parts(filled, formula_style)).template_version == "refundflow-2026.1"

    def no_stamp(name: str, data: bytes) -> bytes | None:
        if name == "xl/workbook.xml":
            return re.sub(
                rb'<definedName name="refundflow_template">[^<]*</definedName>', b"", data
            )
        return drop_custom(name, data)

    assert read_ok(rewrite_parts(filled, no_stamp)).template_version is None


# --- rejections ------------------------------------------------------------------------------


def xlsxwriter_bytes(fill: dict[str, object]) -> bytes:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet("Sheet1")
    for cell, value in fill.items():
        ws.write(cell, value)
    wb.close()
    return out.getvalue()


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# What an encrypted .xlsx looks like: an OLE container with these two streams.
ENCRYPTED_OOXML = (
    OLE_MAGIC + bytes(500) + "EncryptionInfo".encode("utf-16-le")
    + "EncryptedPackage".encode("utf-16-le")
)  # fmt: skip


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", Reason.NOT_A_WORKBOOK, id="empty"),
        pytest.param(b"hello, this is a text file", Reason.NOT_A_WORKBOOK, id="text"),
        pytest.param(b"%PDF-1.7\n...", Reason.NOT_A_WORKBOOK, id="pdf"),
        pytest.param(b"PK\x03\x04" + b"\x00" * 200, Reason.CORRUPT, id="broken-zip"),
        pytest.param(ENCRYPTED_OOXML, Reason.ENCRYPTED, id="encrypted-ooxml"),
        pytest.param(
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500 + "Workbook".encode("utf-16-le"),
            Reason.UNSUPPORTED_FORMAT,
            id="legacy-xls",
        ),
    ],
)
def test_rejects_what_is_not_a_workbook(data: bytes, reason: Reason) -> None:
    with pytest.raises(FileRejected) as info:
        read_form(data)
    assert info.value.reason is reason
    assert info.value.message  # a Chinese message for the staff


def test_rejects_other_zip_files() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(FileRejected) as info:
        read_form(out.getvalue())
    assert info.value.reason is Reason.NOT_A_WORKBOOK


def test_rejects_truncated_workbook(filled: bytes) -> None:
    with pytest.raises(FileRejected) as info:
        read_form(filled[: len(filled) // 2])
    assert info.value.reason is Reason.CORRUPT


def test_rejects_doctype_in_workbook_xml(filled: bytes) -> None:
    def edit(name: str, data: bytes) -> bytes:
        if name == "xl/workbook.xml":
            head, sep, rest = (
                data.partition(b"?>") if data.startswith(b"<?xml") else (b"", b"", data)
            )
            return head + sep + b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + rest
        return data

    with pytest.raises(FileRejected) as info:
        read_form(rewrite_parts(filled, edit))
    assert info.value.reason is Reason.CORRUPT


def test_rejects_foreign_workbook() -> None:
    data = xlsxwriter_bytes({"A1": "季度销售额", "B1": 12.5, "A2": "华东", "B2": "时间"})
    with pytest.raises(FormReadError) as info:
        read_form(data)
    assert info.value.reason is Reason.FOREIGN_WORKBOOK
    assert info.value.message.startswith("这不是退款申请表")
    assert layout.REFUND_TEMPLATE_FILE in info.value.hint


def test_rejects_foreign_sheet_named_like_ours() -> None:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    wb.add_worksheet(layout.REFUND_SHEET).write("A1", "随便写点什么")
    wb.close()
    with pytest.raises(FormReadError) as info:
        read_form(out.getvalue())
    assert info.value.reason is Reason.FOREIGN_WORKBOOK


# --- formulas in the fields, DTDs anywhere in a part (issue 6) -------------------------------


def _with_sheet(data: bytes, edit: object) -> bytes:
    def one(name: str, part: bytes) -> bytes:
        return edit(part.decode()).encode() if name == "xl/worksheets/sheet1.xml" else part  # type: ignore[operator]

    return rewrite_parts(data, one)


def _formula_in(cell: str, formula: str, cached: str) -> object:
    def edit(text: str) -> str:
        start = text.index(f'<c r="{cell}"')
        close = text.index("</c>", start) + len("</c>")
        head = re.sub(r' t="[^"]*"', "", text[start : text.index(">", start) + 1])
        return text.replace(text[start:close], f"{head}<f>{formula}</f><v>{cached}</v></c>", 1)

    return edit


def test_formula_in_a_field_makes_it_unreadable_whatever_its_cached_value(filled: bytes) -> None:
    reading = read_form(_with_sheet(filled, _formula_in("D6", "26850", "1234.5")))
    assert reading.form.amount is None
    assert reading.form.canonical()["amount"] == "=26850"  # a changed formula is a change
    [problem] = reading.problems
    assert (problem.field, problem.label, problem.cell, problem.reason) == (
        "amount",
        "金额",
        "D6",
        Reason.FORMULA,
    )
    assert problem.message == (
        "金额(D6)填写的是公式“=26850”,显示的值不可信:请直接填写数值,不要使用公式"
    )


def test_formula_outside_the_fields_is_no_problem(filled: bytes) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(filled))
    wb[layout.REFUND_SHEET]["H6"] = "=D6*2"  # a person's own working next to the form
    assert read_form(to_bytes(wb)).problems == ()


def test_formula_in_a_cell_written_without_its_address_is_found(filled: bytes) -> None:
    def no_cell_addresses(text: str) -> str:
        # Cell references are optional: a cell's column is then the one after its neighbour.
        # Empty <c/> placeholders keep the positions, as such writers do.
        text = _formula_in("D6", "26850", "1234.5")(text)  # type: ignore[operator]
        return re.sub(r'(<c) r="[A-Z]+\d+"', r"\1", text)

    data = _with_sheet(filled, no_cell_addresses)
    assert [(p.cell, p.reason) for p in read_form(data).problems] == [("D6", Reason.FORMULA)]


@pytest.mark.parametrize(
    ("part", "encoding"),
    [
        pytest.param("xl/workbook.xml", "utf-8", id="workbook"),
        pytest.param("xl/workbook.xml", "utf-16", id="workbook-utf16"),
        pytest.param("xl/worksheets/sheet1.xml", "utf-8", id="form-sheet"),
    ],
)
def test_dtd_after_the_first_bytes_of_a_part_is_refused(
    filled: bytes, part: str, encoding: str
) -> None:
    padding = "<!--" + " " * 200_000 + "-->"  # far past any prefix a reader might look at

    def edit(name: str, data: bytes) -> bytes:
        if name != part:
            return data
        text = data.decode().replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
        head, sep, rest = text.partition("?>")
        return (head + sep + padding + '<!DOCTYPE x [<!ENTITY a "aaaa">]>' + rest).encode(encoding)

    with pytest.raises(FileRejected) as info:
        read_form(rewrite_parts(filled, edit))
    assert (info.value.reason, info.value.message) == (
        Reason.CORRUPT,
        f"文件中的 {part} 格式不正确",
    )


def test_reading_says_when_only_the_version_mark_is_missing(filled: bytes) -> None:
    def no_mark(name: str, data: bytes) -> bytes | None:
        if name == "xl/workbook.xml":
            return re.sub(
                rb'<definedName name="refundflow_template">[^<]*</definedName>', b"", data
            )
        return None if name == "docProps/custom.xml" else data

    bare = rewrite_parts(filled, no_mark)
    assert read_form(bare).version_mark_missing
    assert not read_form(filled).version_mark_missing  # the mark is there
    assert not read_form(insert_rows_above(bare, 2)).version_mark_missing  # another layout

    def no_names_at_all(name: str, data: bytes) -> bytes | None:
        if name == "xl/workbook.xml":  # a writer that keeps no defined names: labels only
            return re.sub(rb"<definedNames>.*</definedNames>", b"", data, flags=re.S)
        return None if name == "docProps/custom.xml" else data

    by_labels = read_form(rewrite_parts(filled, no_names_at_all))
    assert by_labels.version_mark_missing


def test_formula_search_memory_does_not_grow_with_the_rows(filled: bytes) -> None:
    def peak_for(rows: int) -> int:
        extra = "".join(
            f'<row r="{i}"><c r="H{i}"><v>{i}</v></c></row>' for i in range(100, 100 + rows)
        )

        def long_sheet(text: str) -> str:
            text = _formula_in("D6", "26850", "1234.5")(text)  # type: ignore[operator]
            return text.replace("</sheetData>", extra + "</sheetData>")

        data = _with_sheet(filled, long_sheet)
        tracemalloc.start()
        try:
            reading = read_form(data)
            peak: int = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [p.cell for p in reading.problems] == ["D6"]
        return peak

    # Rows already searched are let go: 40,000 more rows (about 3 MB if kept) cost nothing.
    growth = peak_for(50_000) - peak_for(10_000)
    assert growth < 1024 * 1024, f"{growth / 1e6:.1f} MB more for 40,000 more rows"
