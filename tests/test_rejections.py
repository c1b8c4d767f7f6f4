"""Every rejection of the procedure: what bad input gets back, and where."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import python_calamine

from refundflow.forms import read_form
from refundflow.layout import TEMPLATE_VERSION
from refundflow.xlsxpatch import HIGHLIGHT_RGB

from conftest import NEW_FORM, Invoke, block, drop, edit_form, make_form, take
from corpus import CORPUS
from formfill import insert_rows_above, rewrite_parts

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"


def return_rows(path: Path) -> list[list[object]]:
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    assert book.sheet_names[0] == "退回原因", "the reasons come first"
    title, *rows = book.get_sheet_by_name("退回原因").to_python()
    assert "退回原因(退回时间:" in str(title[0]), "a printed page says which form it answers"
    return rows


def reasons_text(path: Path) -> str:
    return "\n".join(" ".join(str(v) for v in row) for row in return_rows(path))


def status_forms(run: Invoke) -> list[object]:
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    forms: list[object] = json.loads(result.output)
    return forms


def returned(root: Path, role: str, name: str) -> Path:
    path = root / "outbox" / role / name
    assert path.exists(), sorted(p.name for p in (root / "outbox" / role).iterdir())
    return path


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"order_no": None}, ["订单号", "B6", "未填写"], id="required-field"),
        pytest.param({"mobile": "1380013800"}, ["手机号码", "B5", "11位"], id="bad-mobile"),
        pytest.param(
            {"amount": 0}, ["金额", "D6", "必须大于0", "填写大于 0 的金额"], id="zero-amount"
        ),
        pytest.param(
            {"amount": 12.345}, ["金额", "D6", "最多两位小数", "12.345"], id="three-decimals"
        ),
        pytest.param(
            {"amount": "100元/200元"},
            ["金额", "D6", "多个金额", "100元/200元", "每张单只填一个金额"],
            id="two-amounts",
        ),
        pytest.param(
            {"purchase_time": "2026-11-22 20"},
            ["购买时间", "D5", "分钟"],
            id="time-without-minutes",
        ),
        pytest.param(
            {"reported_at": dt.datetime(2026, 11, 24, 9, 0)}, ["上报时间", "将来"], id="future-time"
        ),
        pytest.param(
            {"purchase_time": dt.datetime(2026, 11, 23, 9, 30)},
            ["购买时间", "晚于"],
            id="purchase-after-report",
        ),
        pytest.param({"bank": "火星银行"}, ["支付银行", "火星银行", "下拉"], id="bank-not-listed"),
        pytest.param({"cs_approval": "不同意"}, ["值班负责人", "同意"], id="duty-lead-refused"),
        pytest.param(
            {"tech_by": "王五"}, ["技术部处理意见·执行人", "清空"], id="later-block-filled-early"
        ),
    ],
)
def test_new_form_with_a_problem_goes_back_to_customer_service(
    root: Path, run: Invoke, overrides: dict[str, object], expected: list[str]
) -> None:
    drop(root, "申请.xlsx", make_form(**overrides))
    result = run("process")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[已退回] 申请.xlsx: 退回客服部")
    text = reasons_text(returned(root, "cs", "申请-退回.xlsx"))
    for word in expected:
        assert word in text
    assert not list((root / "outbox" / "tech").iterdir())
    assert not list((root / "inbox").iterdir())


def test_returned_form_highlights_the_cell_and_is_accepted_once_fixed(
    root: Path, run: Invoke
) -> None:
    drop(root, "申请.xlsx", make_form(mobile="12345"))
    run("process")
    back = returned(root, "cs", "申请-退回.xlsx")
    with zipfile.ZipFile(back) as zf:
        assert HIGHLIGHT_RGB.encode() in zf.read("xl/styles.xml").upper()
    fixed = edit_form(take(root, "cs", "申请-退回.xlsx"), {"mobile": "13800138000"})
    drop(root, "申请-退回.xlsx", fixed)
    result = run("process", now="2026-11-23 09:20")
    assert result.output == f"[已流转] 申请-退回.xlsx: {FORM} → 技术部(待技术部核实)\n"
    routed = python_calamine.CalamineWorkbook.from_path(str(root / "outbox" / "tech" / FILE))
    assert "退回原因" not in routed.sheet_names, "the old reasons are not passed on"


def test_second_form_for_the_same_order_is_refused_naming_the_first(
    root: Path, run: Invoke
) -> None:
    drop(root, "first.xlsx", make_form())
    run("process")
    drop(root, "second.xlsx", make_form(customer_request="再次申请"))
    result = run("process", now="2026-11-23 09:12")
    assert result.output.startswith("[已退回] second.xlsx")
    text = reasons_text(returned(root, "cs", "second-退回.xlsx"))
    assert f"已有退款单 {FORM}" in text and "待技术部核实" in text


def _at_tech(root: Path, run: Invoke) -> bytes:
    drop(root, "申请.xlsx", make_form())
    run("process")
    return take(root, "tech", FILE)


def test_block_signed_by_someone_outside_the_role(root: Path, run: Invoke) -> None:
    data = _at_tech(root, run)  # the workspace's roster: tech = ["王五"]
    drop(root, FILE, edit_form(data, block("tech", "赵六", dt.datetime(2026, 11, 23, 9, 20))))
    result = run("process", now="2026-11-23 09:30")
    assert result.output.startswith(f"[已退回] {FILE}: 退回技术部")
    text = reasons_text(returned(root, "tech", f"{FORM}-退回.xlsx"))
    assert "赵六" in text and "不是技术部的人员" in text and "王五" in text


def test_one_person_may_not_sign_two_blocks(root: Path, run: Invoke) -> None:
    data = _at_tech(root, run)
    drop(root, FILE, edit_form(data, block("tech", "李四", dt.datetime(2026, 11, 23, 9, 20))))
    run("process", now="2026-11-23 09:30")
    text = reasons_text(returned(root, "tech", f"{FORM}-退回.xlsx"))
    assert "李四" in text and "同一人不能签署" in text


def test_changing_an_earlier_step_names_the_field_old_and_new(root: Path, run: Invoke) -> None:
    data = _at_tech(root, run)
    changes = {**block("tech", "王五", dt.datetime(2026, 11, 23, 9, 20)), "amount": 999}
    drop(root, FILE, edit_form(data, changes))
    run("process", now="2026-11-23 09:30")
    text = reasons_text(returned(root, "tech", f"{FORM}-退回.xlsx"))
    assert "“金额”(D6)已在之前的环节确认为“268.50”,现在被改成了“999.00”" in text


def test_stale_copy_of_an_earlier_step_is_refused(root: Path, run: Invoke) -> None:
    data = _at_tech(root, run)
    tech_done = edit_form(data, block("tech", "王五", dt.datetime(2026, 11, 23, 9, 20)))
    drop(root, FILE, tech_done)
    run("process", now="2026-11-23 09:30")
    stale = edit_form(data, block("tech", "王五", dt.datetime(2026, 11, 23, 9, 21)))
    drop(root, "old.xlsx", stale)
    result = run("process", now="2026-11-23 09:40")
    assert result.output.startswith("[已拒收] old.xlsx: 退回:这是退款单 TKD20261123-001 的旧副本")
    reply = (root / "outbox" / "rejected" / "old.xlsx.退回原因.txt").read_text("utf-8-sig")
    assert "技术部已核实" in reply


def test_same_file_dropped_twice_is_answered_once(root: Path, run: Invoke) -> None:
    form = make_form()
    drop(root, "a.xlsx", form)
    run("process")
    drop(root, "a-copy.xlsx", form)
    result = run("process", now="2026-11-23 09:30")
    assert result.output == "[重复件] a-copy.xlsx: 已于 2026-11-23 09:10 收到\n"
    assert len(list((root / "outbox" / "tech").iterdir())) == 1
    status = run("status", "--json")
    assert status.output.count(FORM) == 1


def test_unchanged_copy_dropped_back_by_the_wrong_role_is_not_a_hand_off(
    root: Path, run: Invoke
) -> None:
    data = _at_tech(root, run)
    drop(root, FILE, data)  # technical drops its copy without filling its block
    result = run("process", now="2026-11-23 09:30")
    assert result.output.startswith(f"[已退回] {FILE}: 退回技术部")
    assert "技术部处理意见·执行人" in reasons_text(returned(root, "tech", f"{FORM}-退回.xlsx"))


def _without_version_mark(name: str, part: bytes) -> bytes:
    # What ExcelJS does: the custom property and the constant name are gone.
    if name in ("xl/workbook.xml", "docProps/custom.xml"):
        return part.replace(b"refundflow_template", b"other_marker")
    return part


def test_current_form_whose_version_mark_was_dropped_is_routed_and_gets_the_mark_back(
    root: Path, run: Invoke
) -> None:
    drop(root, "网页填写.xlsx", rewrite_parts(make_form(), _without_version_mark))
    result = run("process")
    assert result.output == f"[已流转] 网页填写.xlsx: {FORM} → 技术部(待技术部核实)\n"
    routed = read_form((root / "outbox" / "tech" / FILE).read_bytes())
    assert routed.form.template_version == TEMPLATE_VERSION
    assert not routed.version_mark_missing
    history = python_calamine.CalamineWorkbook.from_path(str(root / "outbox" / "tech" / FILE))
    rows = history.get_sheet_by_name("流转记录").to_python()
    assert rows[-1][5] == "网页填写.xlsx"
    assert "缺少模板版本标记,按当前模板读取,已补回" in rows[-1][6]  # 备注


def test_older_layout_without_a_version_mark_is_an_old_template(root: Path, run: Invoke) -> None:
    # An older template: same labels and names, but the form sat two rows lower.
    older = insert_rows_above(rewrite_parts(make_form(), _without_version_mark), 2)
    drop(root, "旧模板.xlsx", older)
    result = run("process")
    assert result.output == "[已退回] 旧模板.xlsx: 退回客服部:1 个问题\n"
    reasons = reasons_text(returned(root, "cs", "旧模板-退回.xlsx"))
    assert "此表不是当前版本的退款申请表模板(当前 refundflow-2026.1,此表:无版本标记)" in reasons


def test_form_with_another_version_mark_is_an_old_template(root: Path, run: Invoke) -> None:
    def older_mark(name: str, part: bytes) -> bytes:
        if name in ("xl/workbook.xml", "docProps/custom.xml"):
            return part.replace(b"refundflow-2026.1", b"refundflow-2025.1")
        return part

    drop(root, "旧模板.xlsx", rewrite_parts(make_form(), older_mark))
    run("process")
    reasons = reasons_text(returned(root, "cs", "旧模板-退回.xlsx"))
    assert "此表:refundflow-2025.1" in reasons


@pytest.mark.parametrize(
    ("label", "cell", "formula", "cached"),
    [
        pytest.param("金额", "D6", "26850", "268.5", id="amount-cached-value-differs"),
        pytest.param("订单号", "B6", '"TK"&"20261122001"', "TK20261122001", id="order-text"),
        pytest.param("客服部处理意见·领导审批", "F10", 'IF(1,"同意")', "同意", id="approval"),
    ],
)
def test_formula_in_a_field_is_returned_whatever_its_cached_value(
    root: Path, run: Invoke, label: str, cell: str, formula: str, cached: str
) -> None:
    def formula_in_cell(name: str, part: bytes) -> bytes:
        if name != "xl/worksheets/sheet1.xml":
            return part
        text = part.decode()
        start = text.index(f'<c r="{cell}"')
        close = text.index("</c>", start) + len("</c>")
        head = text[start : text.index(">", start) + 1]
        kind = "" if cached[0].isdigit() else ' t="str"'
        head = re.sub(r' t="[^"]*"', "", head).replace(">", f"{kind}>")
        new = f"{head}<f>{escape(formula)}</f><v>{escape(cached)}</v></c>"
        return text.replace(text[start:close], new, 1).encode()

    drop(root, "公式.xlsx", rewrite_parts(make_form(), formula_in_cell))
    result = run("process")
    assert result.output == "[已退回] 公式.xlsx: 退回客服部:1 个问题\n"
    path = returned(root, "cs", "公式-退回.xlsx")
    assert return_rows(path)[1][1:4] == [
        label,
        cell,
        f"{label}({cell})填写的是公式“={formula}”,显示的值不可信:请直接填写数值,不要使用公式",
    ]
    assert status_forms(run) == []


def _form_carrying(part: str, content_type: str, body: bytes) -> bytes:
    """A filled form with one more part (declared in [Content_Types].xml), as a tool adds it."""
    override = f'<Override PartName="/{part}" ContentType="{content_type}"/>'.encode()

    def add_type(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return data.replace(b"</Types>", override + b"</Types>")
        return data

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zipfile.ZipFile(io.BytesIO(rewrite_parts(make_form(), add_type))) as src:
            for info in src.infolist():
                zf.writestr(info.filename, src.read(info))
        zf.writestr(part, body)
    return out.getvalue()


def _vba_project_of(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read("xl/vbaProject.bin")


def _xlsx_of_another_shape() -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["姓名", "部门", "工资"])
    ws.write_row(1, 0, ["张三", "销售", 5000])
    wb.close()
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "words"),
    [
        pytest.param("scan.pdf", lambda: b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", ["PDF"], id="pdf"),
        pytest.param("list.csv", lambda: "订单号,金额\nTK1,100\n".encode(), ["文本"], id="csv"),
        pytest.param("broken.xlsx", lambda: make_form()[:4000], ["损坏"], id="truncated-xlsx"),
        pytest.param("工资表.xlsx", _xlsx_of_another_shape, ["不是退款申请表"], id="another-shape"),
        pytest.param(
            "old.xls",
            lambda: (CORPUS / "sheetjs__write_57.xls").read_bytes(),
            [".xls"],
            id="xls",
            marks=pytest.mark.corpus,
        ),
        pytest.param(
            "macro.xlsm",
            lambda: (CORPUS / "rustxw__macro01.xlsm").read_bytes(),
            ["宏"],
            id="xlsm",
            marks=pytest.mark.corpus,
        ),
        pytest.param(
            "calc.ods",
            lambda: (CORPUS / "sheetjs__AutoFilter.ods").read_bytes(),
            [".ods"],
            id="ods",
            marks=pytest.mark.corpus,
        ),
        pytest.param(
            "secret.xlsx",
            lambda: (CORPUS / "edr__agile_RC2_SHA1_CBC_pwd_password.xlsx").read_bytes(),
            ["加密"],
            id="encrypted",
            marks=pytest.mark.corpus,
        ),
        pytest.param(
            "外链.xlsx",
            lambda: _form_carrying(
                "xl/externalLinks/externalLink1.xml",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml",
                b'<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                b'<ddeLink ddeService="cmd" ddeTopic="/c calc"/></externalLink>',
            ),
            ["指向其他文件的链接", "断开链接"],
            id="dde-link-in-a-form",
        ),
        pytest.param(
            "宏.xlsx",
            lambda: _form_carrying(
                "xl/media/image1.png",
                "image/png",
                _vba_project_of(CORPUS / "rustxw__macro01.xlsm"),
            ),
            ["宏代码", "另存为不含宏"],
            id="vba-project-renamed-as-an-image",
            marks=pytest.mark.corpus,
        ),
    ],
)
def test_anything_not_our_workbook_goes_to_rejected_with_a_reason(
    root: Path, run: Invoke, name: str, payload: Callable[[], bytes], words: list[str]
) -> None:
    data = payload()
    drop(root, name, data)
    result = run("process")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"[已拒收] {name}: 退回:")
    rejected = root / "outbox" / "rejected"
    assert (rejected / name).read_bytes() == data
    reply = (rejected / f"{name}.退回原因.txt").read_text(encoding="utf-8-sig")
    for word in words:
        assert word in reply, reply


def test_new_form_keeps_what_staff_typed_in_other_forms_of_input(root: Path, run: Invoke) -> None:
    values = {
        **NEW_FORM,
        "mobile": "１３８ ００１３ ８０００",
        "amount": "¥268.50",
        "reported_at": "2026-11-23 09:00",
    }
    drop(root, "全角.xlsx", make_form(values))
    result = run("process")
    assert result.output == f"[已流转] 全角.xlsx: {FORM} → 技术部(待技术部核实)\n"


def test_form_whose_number_cell_holds_a_shared_formula_is_answered_not_retried(
    root: Path, run: Invoke
) -> None:
    def shared_formula_in_b2(name: str, part: bytes) -> bytes:
        if name != "xl/worksheets/sheet1.xml":
            return part
        text = part.decode()
        start = text.index('<c r="B2"')
        end = text.index(">", start) + 1
        cell = text[start:end]
        if cell.endswith("/>"):
            replacement = cell[:-2] + '><f t="shared" ref="B2:B3" si="0">1+1</f><v>2</v></c>'
        else:
            close = text.index("</c>", end) + len("</c>")
            cell, replacement = (
                text[start:close],
                text[start:end] + '<f t="shared" ref="B2:B3" si="0">1+1</f><v>2</v></c>',
            )
        return text.replace(cell, replacement, 1).encode()

    drop(root, "公式.xlsx", rewrite_parts(make_form(), shared_formula_in_b2))
    result = run("process")
    assert result.exit_code == 0, result.output
    # A formula in a field is the sender's to fix (issue 6): returned, with the field named.
    assert result.output == "[已退回] 公式.xlsx: 退回客服部:1 个问题\n"
    assert "编号 B2 编号(B2)填写的是公式“=1+1”" in reasons_text(
        returned(root, "cs", "公式-退回.xlsx")
    )
    assert not list((root / "inbox").iterdir())
