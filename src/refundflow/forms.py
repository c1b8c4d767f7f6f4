"""Read a filled 退款申请表 (untrusted bytes) back into a typed record, fast.

Values come from python-calamine, reading only the form's sheet. Where the fields are comes from
the workbook-scope defined names in ``xl/workbook.xml`` (read with :mod:`zipread`'s bounded
reader, not openpyxl, which costs ~80 ms per file), and, when a spreadsheet program or a person
dropped or broke them, from the printed labels plus the offsets in :mod:`layout`.

Everything here returns picklable values: :func:`read_form` runs in a sandboxed worker process.

Round-trip findings that shaped this module (see tests/test_forms.py):

* LibreOffice and Gnumeric both keep our defined names, unquoting the sheet name
  (``退款申请表!$B$2``); Gnumeric adds ``_xlnm.Sheet_Title`` and a ``#REF!`` ``_xlnm.Print_Area``
  and reorders the names. Both keep the version name as the constant ``"refundflow-2026.1"``
  and the custom document property.
* Gnumeric writes date serials with excess digits (``46329.5868055555500007``); calamine still
  returns the exact minute, and :mod:`normalize` rounds sub-second noise anyway.
* calamine (0.9) ignores a wrong ``<dimension ref="A1"/>`` (as WPS writes) and reads all cells,
  and reads strict-OOXML workbooks, which openpyxl sees as having no sheets.
"""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import io
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import python_calamine as calamine

from . import layout, normalize
from .errors import FileRejected, FormReadError, Reason
from .layout import Field, Kind
from .zipread import DEFAULT_LIMITS, Package, ZipError, ZipFault, ZipLimits

__all__ = ["BlockEntry", "FieldProblem", "FormReading", "RefundForm", "read_form"]

TEMPLATE_HINT = f"请使用 templates/{layout.REFUND_TEMPLATE_FILE} 模板填写"

# Bounded reads: the parts we parse whole ourselves (workbook.xml, rels, styles, custom
# properties) are small in any honest workbook (our workbook.xml is ~5 KB): at most
# ZipLimits.small_part_bytes, from [parse] max_file_mb.
# Labels are looked for in the first rows only; the form has 28 and people insert a few.
_LABEL_SCAN_ROWS = 300
# Rows read at most, even if a defined name points further down.
_MAX_ROWS = 20_000
_LABEL_MAX_LEN = 64
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# No DTDs in OOXML: refusing them rules out entity-expansion tricks, wherever in a part they are.
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_OFFICE_DOCUMENT = "/officeDocument"  # relationship type suffix, transitional and strict
_IGNORED_SHEETS = frozenset({layout.RETURN_SHEET, layout.HISTORY_SHEET, layout.LISTS_SHEET})

# `'退款申请表'!$B$2`, `退款申请表!$B$2`, `$B$2:$C$2`, `='It''s'!B2` → sheet, column, row.
_REF = re.compile(
    r"""^=?\s*(?:(?P<sheet>'(?:[^']|'')+'|[^'!]+)!)?"""
    r"""\$?(?P<col>[A-Za-z]{1,3})\$?(?P<row>\d{1,7})"""
    r"""(?::\$?[A-Za-z]{1,3}\$?\d{1,7})?\s*$"""
)

_BLOCK_PART_LABELS = {
    "opinion": "处理意见",
    "by": layout.BY_LABEL,
    "date": layout.DATE_LABEL,
    "approval": layout.APPROVAL_LABEL,
}


# --- the record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    """A value the reader could not turn into its canonical form."""

    field: str  # defined name, e.g. "purchase_time"
    label: str  # what staff read on the form, e.g. "购买时间" or "技术部处理意见·执行人"
    cell: str  # A1 address where the value was found
    reason: Reason
    message: str  # Chinese: what is wrong, where, how to fix it


@dataclass(frozen=True)
class BlockEntry:
    """One opinion block (or the administration follow-up, whose text is ``opinion``)."""

    opinion: str | None
    by: str | None
    date: dt.datetime | None
    approval: str | None


@dataclass(frozen=True)
class RefundForm:
    form_no: str | None
    reporting_dept: str | None
    reported_at: dt.datetime | None
    fault: str | None
    mobile: str | None
    purchase_time: dt.datetime | None
    bank: str | None
    order_no: str | None
    amount: Decimal | None
    customer_request: str | None
    submitter: str | None
    submitted_at: dt.datetime | None
    handling_dept: str | None
    blocks: Mapping[str, BlockEntry]  # role key (layout.ALL_BLOCKS) -> entry
    template_version: str | None
    sheet: str  # name of the sheet holding the form
    cells: Mapping[str, str]  # defined name -> A1 cell where it was found (absent: not found)
    # Text of the cells whose value had a problem (the value itself is None), so that
    # canonical() still changes when someone corrects a bad value to another bad value.
    raw: Mapping[str, str] = field(default_factory=dict)
    # Text a person typed where the value was accepted in another shape ("1,000元" for the
    # amount 1000.00, "+86 138-0013-8000"): routed copies carry the clean value instead.
    typed: Mapping[str, str] = field(default_factory=dict)
    date1904: bool = False  # the workbook counts dates from 1904 (old Mac Excel)

    def has_current_layout(self) -> bool:
        """Every field was found where the current template has it (by name or by label).

        This is what lets a form whose version mark a re-saving tool dropped (ExcelJS drops the
        custom property and the constant name) still count as the current template, while an
        older template's layout does not.
        """
        return all(self.cells.get(f.name) == f.cell for f in layout.REFUND_FIELDS)

    def value(self, name: str) -> object:
        """The value of a field by its defined name (``"amount"``, ``"tech_by"``)."""
        f = layout.FIELDS_BY_NAME[name]
        if f.block is None:
            return getattr(self, name)
        return getattr(self.blocks[f.block], _block_attr(f))

    def canonical(self) -> dict[str, str]:
        """Defined name -> canonical text of every field, for change detection.

        Empty is ``''``, date-times ``YYYY-MM-DD HH:MM``, amounts ``1234.50``.
        """
        out: dict[str, str] = {}
        for f in layout.REFUND_FIELDS:
            v = self.value(f.name)
            out[f.name] = self.raw.get(f.name, "") if v is None else _canonical_text(v)
        return out


# Kinds whose value the routed copy writes back in its clean shape when typed otherwise.
_CLEANED_KINDS = frozenset({Kind.AMOUNT, Kind.DATETIME, Kind.MOBILE, Kind.BANK})


def _canonical_text(v: object) -> str:
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, Decimal):
        return f"{v:.2f}"
    return str(v)


@dataclass(frozen=True)
class FormReading:
    form: RefundForm
    problems: tuple[FieldProblem, ...]
    history_rows: int | None = None  # entries in our 流转记录 sheet; None when it has none
    copy_token: str | None = None  # the 副本凭证 our last routed copy carried, if any

    @property
    def version_mark_missing(self) -> bool:
        """No version mark at all, but the current template's layout: read as current."""
        return self.form.template_version is None and self.form.has_current_layout()


def _history(
    wb: calamine.CalamineWorkbook, sheet_names: list[str]
) -> tuple[int | None, str | None]:
    """How many hand-offs the 流转记录 sheet lists, and the copy token in its header row."""
    if layout.HISTORY_SHEET not in sheet_names:
        return None, None
    try:
        rows = wb.get_sheet_by_name(layout.HISTORY_SHEET).to_python(skip_empty_area=False)
    except _CALAMINE_ERRORS:
        return None, None
    token = next(
        (
            v.removeprefix(layout.COPY_TOKEN_LABEL).strip()
            for v in (rows[0] if rows else ())
            if isinstance(v, str) and v.startswith(layout.COPY_TOKEN_LABEL)
        ),
        None,
    )
    return max(0, sum(1 for r in rows if any(v not in ("", None) for v in r)) - 1), token


def _block_attr(f: Field) -> str:
    if f.name == "admin_followup":
        return "opinion"
    return f.name.removeprefix(f"{f.block}_")


def field_label(f: Field) -> str:
    """The label staff read for a field; block fields say which block (技术部处理意见·执行人)."""
    if f.block is None:
        return f.label
    title = f.anchor  # a block field's anchor is its band title
    if f.name == "admin_followup":
        return title
    return f"{title}·{_BLOCK_PART_LABELS[_block_attr(f)]}"


# --- opening the package ---------------------------------------------------------------------


def _rejected(reason: Reason, message: str, hint: str = "") -> FileRejected:
    return FileRejected(message, reason=reason, hint=hint)


def _open_zip(data: bytes, limits: ZipLimits) -> Package:
    if data.startswith(_OLE_MAGIC):
        # An OLE container is either an encrypted OOXML package or a legacy .xls/.et file.
        if _ENCRYPTED_STREAM in data:
            raise _rejected(
                Reason.ENCRYPTED, "文件设置了打开密码,无法读取", "请取消密码后重新保存再放入"
            )
        raise _rejected(
            Reason.UNSUPPORTED_FORMAT,
            "这是旧版 Excel(.xls)格式的文件",
            "请在 Excel/WPS 中另存为 .xlsx 格式后再放入",
        )
    if not data.startswith(b"PK"):
        raise _rejected(Reason.NOT_A_WORKBOOK, "这不是 Excel 工作簿(.xlsx)文件", TEMPLATE_HINT)
    try:
        return Package(data, limits)
    except ZipError as exc:
        if exc.fault is ZipFault.FILE_TOO_LARGE:
            raise _rejected(Reason.TOO_LARGE, "文件太大,不是退款申请表", TEMPLATE_HINT) from None
        raise _rejected(
            Reason.CORRUPT, f"文件已损坏,无法打开({exc})", "请重新保存或重新复制一份"
        ) from None


def _unreadable(part: str, exc: ZipError) -> FileRejected:
    if exc.fault is ZipFault.PART_TOO_LARGE:
        return _rejected(Reason.TOO_LARGE, f"文件中的 {part} 大得不正常", TEMPLATE_HINT)
    return _rejected(
        Reason.CORRUPT, f"文件已损坏,无法读取 {part}({exc})", "请重新保存或重新复制一份"
    )


def _read_part(pkg: Package, name: str) -> bytes | None:
    """A small part's bytes (``ZipLimits.small_part_bytes``); ``None`` when it does not exist."""
    info = pkg.find(name)
    if info is None:
        return None
    try:
        return pkg.read(info, pkg.limits.small_part_bytes)
    except ZipError as exc:
        raise _unreadable(name, exc) from None


def _chunks(pkg: Package, part: str) -> Iterator[bytes]:
    """A part's bytes in bounded pieces, CRC checked at the end."""
    info = pkg.find(part)
    if info is None:
        return
    try:
        yield from pkg.chunks(info, verify=True)
    except ZipError as exc:
        raise _unreadable(part, exc) from None


def _parse_xml(data: bytes, part: str) -> ElementTree.Element:
    # The whole part, decoded first: a UTF-16 part spells "<!DOCTYPE" with NUL bytes between.
    if _DTD.search(_xml_decoder(data[:4]).decode(data, final=True)):
        raise _rejected(Reason.CORRUPT, f"文件中的 {part} 格式不正确", TEMPLATE_HINT)
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise _rejected(
            Reason.CORRUPT, f"文件已损坏:{part} 无法解析({exc})", "请重新保存或重新复制一份"
        ) from None


def _local(tag: str) -> str:
    """Tag or attribute name without its namespace: transitional and strict OOXML alike."""
    return tag.rpartition("}")[2]


def _workbook_part(pkg: Package) -> str:
    names = {info.filename for info in pkg.infos}
    if "xl/workbook.xml" in names:
        return "xl/workbook.xml"
    rels = _read_part(pkg, "_rels/.rels")
    if rels is not None:
        for rel in _parse_xml(rels, "_rels/.rels").iter():
            if _local(rel.tag) == "Relationship" and rel.get("Type", "").endswith(_OFFICE_DOCUMENT):
                target = rel.get("Target", "").lstrip("/")
                if target in names and target.endswith(".xml"):
                    return target
    if "mimetype" in names or "content.xml" in names:
        raise _rejected(
            Reason.UNSUPPORTED_FORMAT,
            "这是 OpenDocument(.ods)等格式的文件,不是 .xlsx",
            "请另存为 Excel 2007-365 (.xlsx) 格式后再放入",
        )
    raise _rejected(Reason.NOT_A_WORKBOOK, "这不是 Excel 工作簿(.xlsx)文件", TEMPLATE_HINT)


@dataclass
class _Book:
    sheets: list[tuple[str, str]] = field(default_factory=list)  # (name, state) in order
    names: dict[str, str] = field(default_factory=dict)  # workbook scope: name -> formula
    sheet_rids: dict[str, str] = field(default_factory=dict)  # sheet name -> relationship id
    local_names: dict[str, str] = field(default_factory=dict)  # first sheet-scope definition
    date1904: bool = False


def _parse_workbook(root: ElementTree.Element) -> _Book:
    book = _Book()
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "sheet":
            book.sheets.append((el.get("name", ""), el.get("state", "visible")))
            # r:id in the transitional or the strict relationships namespace
            ids = (v for k, v in el.attrib.items() if k.startswith("{") and _local(k) == "id")
            if (rid := next(ids, None)) is not None:
                book.sheet_rids.setdefault(el.get("name", ""), rid)
        elif tag == "definedName":
            name = el.get("name", "")
            if not name or name.startswith("_xlnm.") or el.text is None:
                continue
            target = book.names if el.get("localSheetId") is None else book.local_names
            target.setdefault(name, el.text)
        elif tag == "workbookPr":
            book.date1904 = el.get("date1904", "").lower() in ("1", "true")
    return book


@functools.lru_cache(maxsize=4096)  # every form repeats the template's references
def _parse_ref(formula: str) -> tuple[str | None, int, int] | None:
    """``'退款申请表'!$B$2`` -> ``("退款申请表", 1, 1)``; a range gives its top-left cell."""
    m = _REF.match(formula.strip())
    if m is None:  # #REF!, constants, formulas, 3-D references
        return None
    sheet = m["sheet"]
    if sheet is not None and sheet.startswith("'"):
        sheet = sheet[1:-1].replace("''", "'")
    row, col = layout.cell_to_rc(f"{m['col'].upper()}{m['row']}")
    if row < 0 or col < 0 or col >= 16_384:
        return None
    return sheet, row, col


def _string_constant(formula: str) -> str | None:
    """``"refundflow-2026.1"`` or ``="refundflow-2026.1"`` -> ``refundflow-2026.1``."""
    s = formula.strip().removeprefix("=").strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return s[1:-1].replace('""', '"')
    return None


def _custom_version(pkg: Package) -> str | None:
    data = _read_part(pkg, "docProps/custom.xml")
    if data is None:
        return None
    for el in _parse_xml(data, "docProps/custom.xml").iter():
        if _local(el.tag) == "property" and el.get("name") == layout.VERSION_PROPERTY:
            for child in el:
                if child.text and child.text.strip():
                    return child.text.strip()
    return None


# --- formulas in the input cells -------------------------------------------------------------

# A formula element in any namespace prefix (<f>, <x:f>); text cannot hold a "<", so outside
# comments this is always markup. A false hit only costs the exact parse below.
_FORMULA_TAG = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")
_OVERLAP = 16  # longer than any pattern above, so a match split across two chunks is seen


def _sheet_part(pkg: Package, workbook_part: str, rid: str) -> str | None:
    """The zip member of the worksheet with relationship id ``rid``, if it can be found."""
    folder, base = posixpath.split(workbook_part)
    rels = _read_part(pkg, posixpath.join(folder, "_rels", f"{base}.rels"))
    if rels is None:
        return None
    by_folded = {info.filename.casefold(): info.filename for info in pkg.infos}
    for rel in _parse_xml(rels, "workbook.xml.rels").iter():
        if _local(rel.tag) == "Relationship" and rel.get("Id") == rid:
            target = rel.get("Target", "").replace("\\", "/")
            path = target if target.startswith("/") else posixpath.join(folder, target)
            return by_folded.get(posixpath.normpath(path).lstrip("/").casefold())
    return None


def _xml_decoder(head: bytes) -> codecs.IncrementalDecoder:
    """An incremental decoder for an XML part, from its first bytes (UTF-16 with or without BOM).

    UTF-8 is decoded as Latin-1, which is much faster and never fails: only ASCII markup is
    searched in the text, and no byte of a multi-byte UTF-8 character is ASCII.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif head.startswith(b"\x00<"):
        encoding = "utf-16-be"
    elif head.startswith(b"<\x00"):
        encoding = "utf-16-le"
    else:
        encoding = "latin-1"
    return codecs.getincrementaldecoder(encoding)(errors="replace")


def _has_formula(pkg: Package, part: str) -> bool:
    """Whether the part has a formula element, read in chunks (DTDs refused, memory bounded)."""
    found = False
    decoder: codecs.IncrementalDecoder | None = None
    tail = ""
    for chunk in _chunks(pkg, part):
        if decoder is None:
            decoder = _xml_decoder(chunk[:4])
        text = tail + decoder.decode(chunk)
        if _DTD.search(text):
            raise _rejected(Reason.CORRUPT, f"文件中的 {part} 格式不正确", TEMPLATE_HINT)
        found = found or _FORMULA_TAG.search(text) is not None
        tail = text[-_OVERLAP:]
    return found


def _cell_events(
    pkg: Package, part: str, *, strict: bool
) -> Iterator[tuple[str, str, ElementTree.Element, int, int]]:
    """Stream a worksheet part as (event, tag, element, row, col), rows let go once read.

    ``strict``: XML that does not parse is a damaged file (FileRejected); otherwise the walk
    just ends there. Memory stays bounded however large the sheet is.
    """
    # Any: typeshed's event union includes shapes that "start"/"end" events never have.
    parser: Any = ElementTree.XMLPullParser(events=("start", "end"))
    row, col = -1, -1
    rows_box: ElementTree.Element | None = None  # <sheetData>, emptied after every row
    for chunk in _chunks(pkg, part):
        try:
            parser.feed(chunk)
            events: list[tuple[str, ElementTree.Element]] = list(parser.read_events())
        except ElementTree.ParseError as exc:
            if not strict:
                return
            raise _rejected(
                Reason.CORRUPT, f"文件已损坏:{part} 无法解析({exc})", "请重新保存或重新复制一份"
            ) from None
        for event, el in events:
            tag = _local(el.tag)
            if event == "start" and tag == "sheetData":
                rows_box = el
            elif event == "start" and tag == "row":
                r = el.get("r", "")
                row = int(r) - 1 if r.isdigit() else row + 1
                col = -1
            elif event == "start" and tag == "c":
                ref = _parse_ref(el.get("r", ""))
                row, col = (ref[1], ref[2]) if ref is not None else (row, col + 1)
            yield event, tag, el, row, col
            if event == "end" and tag == "row" and rows_box is not None:
                rows_box.clear()


def _cell_styles(pkg: Package, part: str, cells: set[str]) -> dict[str, int]:
    """A1 address -> style index (``s``) of the given cells of a worksheet part."""
    wanted = {layout.cell_to_rc(c): c for c in cells}
    found: dict[str, int] = {}
    for event, tag, el, row, col in _cell_events(pkg, part, strict=False):
        if event == "start" and tag == "c" and (row, col) in wanted:
            style = el.get("s", "0")
            if style.isdigit():
                found[wanted[row, col]] = int(style)
    return found


# Built-in number formats that show the time of day (ECMA-376 18.8.30, and the CJK ones).
_BUILTIN_TIME_FORMATS = frozenset({18, 19, 20, 21, 22, 32, 33, 34, 35, 45, 46, 47, 55, 56})
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')


def _styles_showing_time(pkg: Package, workbook_part: str) -> set[int]:
    """Indices of the cell styles whose number format shows hours (``hh:mm`` and the like)."""
    folder = posixpath.dirname(workbook_part)
    by_folded = {info.filename.casefold(): info.filename for info in pkg.infos}
    name = by_folded.get(posixpath.join(folder, "styles.xml").casefold())
    data = _read_part(pkg, name) if name else None
    if data is None:
        return set()
    custom: dict[int, str] = {}
    shows: set[int] = set()
    index = 0
    in_xfs = False
    for el in _parse_xml(data, "styles.xml").iter():
        tag = _local(el.tag)
        if tag == "numFmt":
            custom_id = el.get("numFmtId", "")
            if custom_id.isdigit():
                custom[int(custom_id)] = el.get("formatCode", "")
        elif tag == "cellXfs":
            in_xfs = True
        elif tag == "xf" and in_xfs:
            fid_text = el.get("numFmtId", "0")
            fid = int(fid_text) if fid_text.isdigit() else 0
            code = _FORMAT_LITERALS.sub("", custom.get(fid, "")).lower()
            if fid in _BUILTIN_TIME_FORMATS or "h" in code:
                shows.add(index)
            index += 1
        elif tag == "cellStyleXfs":
            in_xfs = False
    return shows


def _formulas_in(pkg: Package, part: str, cells: Mapping[str, str]) -> dict[str, str]:
    """A1 address -> formula text of the field ``cells`` that hold a formula.

    Values are read by calamine, which returns a formula cell's cached value: that value is
    whatever the last writer stored, not what an office program shows after recalculating
    (``=26850`` cached as ``268.5``). So the input cells are checked for formulas here.
    """
    if not cells or not _has_formula(pkg, part):
        return {}
    wanted = {layout.cell_to_rc(c): c for c in cells.values()}
    found: dict[str, str] = {}
    for event, tag, el, row, col in _cell_events(pkg, part, strict=True):
        if event == "end" and tag == "f" and (row, col) in wanted:
            found[wanted[row, col]] = (el.text or "").strip()
    return found


def _formula_problem(f: Field, cell: str, formula: str) -> FieldProblem:
    label = field_label(f)
    shown = f"={formula[:40]}{'…' if len(formula) > 40 else ''}" if formula else "共享公式"
    return FieldProblem(
        f.name,
        label,
        cell,
        Reason.FORMULA,
        f"{label}({cell})填写的是公式“{shown}”,显示的值不可信:请直接填写数值,不要使用公式",
    )


# --- the form's sheet ------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # the same labels come back in every form
def _label_key(s: str) -> str:
    """A printed label as compared: half-width, no whitespace, no trailing colon."""
    return "".join(normalize.half_width(s).split()).rstrip(":")


_ANCHORS: frozenset[str] = frozenset(_label_key(f.anchor) for f in layout.REFUND_FIELDS)


class _Grid:
    """The calamine values of one sheet, addressed by absolute zero-based (row, column)."""

    def __init__(
        self,
        rows: list[list[Any]],
        origin: tuple[int, int],
        merged: list[tuple[tuple[int, int], tuple[int, int]]],
    ) -> None:
        self.rows = rows
        self.r0, self.c0 = origin
        self.merged = merged
        # Cells covered by a merge -> its top-left, for the usual handful of small merges; a
        # file with huge merged areas is looked up range by range instead (no giant dict).
        self._covered: dict[tuple[int, int], tuple[int, int]] | None = None
        if sum((r2 - r1 + 1) * (c2 - c1 + 1) for (r1, c1), (r2, c2) in merged) <= 10_000:
            self._covered = {
                (r, c): (r1, c1)
                for (r1, c1), (r2, c2) in merged
                for r in range(r1, r2 + 1)
                for c in range(c1, c2 + 1)
            }

    def top_left(self, row: int, col: int) -> tuple[int, int]:
        """The cell holding the value shown at (row, col): a merged range's top-left."""
        if self._covered is not None:
            return self._covered.get((row, col), (row, col))
        for (r1, c1), (r2, c2) in self.merged:
            if r1 <= row <= r2 and c1 <= col <= c2:
                return r1, c1
        return row, col

    def get(self, row: int, col: int) -> object:
        r, c = row - self.r0, col - self.c0
        if 0 <= r < len(self.rows) and 0 <= c < len(self.rows[r]):
            return self.rows[r][c]
        return None

    def anchors(self) -> dict[str, tuple[int, int]]:
        """Anchor label -> its first cell, in reading order, within the scanned rows."""
        found: dict[str, tuple[int, int]] = {}
        for r, row in enumerate(self.rows[:_LABEL_SCAN_ROWS]):
            for c, v in enumerate(row):
                if isinstance(v, str) and v and len(v) <= _LABEL_MAX_LEN:
                    key = _label_key(v)
                    if key in _ANCHORS and key not in found:
                        found[key] = (r + self.r0, c + self.c0)
        return found


def _calamine_failure(exc: Exception) -> FileRejected:
    if isinstance(exc, calamine.PasswordError):
        return _rejected(Reason.ENCRYPTED, "文件设置了密码,无法读取", "请取消密码后重新保存再放入")
    return _rejected(
        Reason.CORRUPT, f"文件已损坏,无法读取表格内容({exc})", "请重新保存或重新复制一份"
    )


_CALAMINE_ERRORS = (calamine.CalamineError, ValueError, OSError, TypeError)


def _load_grid(wb: calamine.CalamineWorkbook, sheet: str, *, rows_needed: int) -> _Grid:
    try:
        ws = wb.get_sheet_by_name(sheet)
        start = ws.start
        if start is None:  # an empty sheet
            return _Grid([], (0, 0), [])
        # skip_empty_area=True: the output starts at ws.start (leading empty rows and columns
        # dropped), and nrows counts from there.
        nrows = max(rows_needed - start[0], _LABEL_SCAN_ROWS)
        rows = ws.to_python(skip_empty_area=True, nrows=min(nrows, _MAX_ROWS))
        merged = ws.merged_cell_ranges or []
    except _CALAMINE_ERRORS as exc:
        raise _calamine_failure(exc) from None
    return _Grid(rows, start, merged)


def _foreign(sheet_names: list[str]) -> FormReadError:
    shown = "、".join(sheet_names[:5]) or "(没有工作表)"
    return FormReadError(
        f"这不是退款申请表:找不到“编号”“订单号”“金额”“技术部处理意见”等栏目(工作表:{shown})",
        reason=Reason.FOREIGN_WORKBOOK,
        hint=TEMPLATE_HINT,
    )


# --- reading the values ----------------------------------------------------------------------

_Normaliser = Callable[[object], object]


def _longtext(v: object) -> str | None:
    return normalize.text(v, multiline=True)


def _datetime_1904(v: object) -> dt.datetime | None:
    return normalize.datetime_minute(v, date1904=True)


_NORMALISERS: dict[Kind, _Normaliser] = {
    Kind.TEXT: normalize.text,
    Kind.BANK: normalize.text,
    Kind.FAULT: normalize.text,
    Kind.LONGTEXT: _longtext,
    Kind.PERSON: normalize.person,
    Kind.FORM_NO: normalize.form_no,
    Kind.ORDER_NO: normalize.order_no,
    Kind.DATETIME: normalize.datetime_minute,
    Kind.AMOUNT: normalize.amount,
    Kind.MOBILE: normalize.mobile,
    Kind.APPROVAL: normalize.approval,
}


def _normaliser(kind: Kind, *, date1904: bool) -> _Normaliser:
    if kind is Kind.DATETIME and date1904:
        return _datetime_1904
    return _NORMALISERS[kind]


def _locate(
    f: Field,
    named: tuple[int, int] | None,
    anchors: Mapping[str, tuple[int, int]],
    grid: _Grid,
) -> tuple[int, int] | None:
    """Where field ``f`` is: by its defined name, or by its printed label."""
    anchor = anchors.get(_label_key(f.anchor))
    dr, dc = f.offset
    labeled = None if anchor is None else (anchor[0] + dr, anchor[1] + dc)
    if named is not None:
        if labeled is None or labeled == named:
            return named
        # Both exist and disagree: trust the name if its label is where the layout puts it
        # (the printed label also occurs elsewhere), else the name is stale (a tool inserted
        # rows without updating names) and the label wins.
        label_cell = grid.get(*grid.top_left(named[0] - dr, named[1] - dc))
        if isinstance(label_cell, str) and _label_key(label_cell) == _label_key(f.anchor):
            return named
    return labeled


def read_form(
    data: bytes, *, limits: ZipLimits = DEFAULT_LIMITS, package: Package | None = None
) -> FormReading:
    """Read a filled refund form from the bytes of an ``.xlsx`` file.

    Raises :class:`FileRejected` (``NOT_A_WORKBOOK``, ``UNSUPPORTED_FORMAT``, ``ENCRYPTED``,
    ``CORRUPT``, ``TOO_LARGE``) for files that are not readable workbooks and
    :class:`FormReadError` (``FOREIGN_WORKBOOK``) for workbooks that are not our form. Problems
    with single values do not raise: they are collected in :attr:`FormReading.problems`.
    ``package``: the zip as :mod:`sniff` already opened it (its central directory is parsed
    once); ``limits`` bound what is read (``[parse] max_file_mb``).
    """
    pkg = package if package is not None else _open_zip(data, limits)
    part = _workbook_part(pkg)
    workbook_xml = _read_part(pkg, part)
    assert workbook_xml is not None  # _workbook_part checked it exists
    book = _parse_workbook(_parse_xml(workbook_xml, part))
    version = _custom_version(pkg)
    if version is None:
        version_name = book.names.get(layout.VERSION_PROPERTY)
        version = _string_constant(version_name) if version_name else None

    try:
        wb = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet_names = list(wb.sheet_names)
    except _CALAMINE_ERRORS as exc:
        raise _calamine_failure(exc) from None
    by_folded = {s.casefold(): s for s in sheet_names}

    # Defined names of our fields, with the sheet they point to (None: no sheet in the ref).
    refs: dict[str, tuple[str | None, int, int]] = {}
    for f in layout.REFUND_FIELDS:
        formula = book.names.get(f.name) or book.local_names.get(f.name)
        ref = _parse_ref(formula) if formula else None
        if ref is not None:
            sheet = ref[0]
            refs[f.name] = (by_folded.get(sheet.casefold(), "") if sheet else None, *ref[1:])

    counts = Counter(s for s, _, _ in refs.values() if s and s not in _IGNORED_SHEETS)
    grid: _Grid | None = None
    if counts:
        sheet = counts.most_common(1)[0][0]
    elif layout.REFUND_SHEET in sheet_names:
        sheet = layout.REFUND_SHEET
    else:
        states = dict(book.sheets)
        for candidate in sheet_names:
            if candidate in _IGNORED_SHEETS or states.get(candidate, "visible") != "visible":
                continue
            g = _load_grid(wb, candidate, rows_needed=0)
            if len(g.anchors()) * 2 >= len(_ANCHORS):
                sheet, grid = candidate, g
                break
        else:
            raise _foreign(sheet_names)

    named: dict[str, tuple[int, int]] = {
        name: (r, c) for name, (s, r, c) in refs.items() if s is None or s == sheet
    }
    if grid is None:
        deepest = max((r for r, _ in named.values()), default=0)
        grid = _load_grid(wb, sheet, rows_needed=deepest + 1)
    anchors = grid.anchors()
    if len(named) * 2 < len(layout.REFUND_FIELDS) and len(anchors) * 2 < len(_ANCHORS):
        raise _foreign(sheet_names)

    values: dict[str, object] = {}
    cells: dict[str, str] = {}
    raw: dict[str, str] = {}
    typed: dict[str, str] = {}
    problems: list[FieldProblem] = []
    midnight: set[str] = set()
    for f in layout.REFUND_FIELDS:
        where = _locate(f, named.get(f.name), anchors, grid)
        if where is None:
            values[f.name] = None
            continue
        where = grid.top_left(*where)
        cell = layout.rc_to_cell(*where)
        cells[f.name] = cell
        value = grid.get(*where)
        if f.kind is Kind.DATETIME and type(value) is dt.date:
            midnight.add(f.name)  # calamine gives a date for 00:00: the cell's format decides
        try:
            values[f.name] = _normaliser(f.kind, date1904=book.date1904)(value)
            if f.kind in _CLEANED_KINDS and isinstance(value, str) and values[f.name] is not None:
                shown = normalize.text(value) or ""
                if shown != _canonical_text(values[f.name]):
                    typed[f.name] = shown
        except normalize.ValueProblem as exc:
            values[f.name] = None
            raw[f.name] = normalize.text(value) or ""
            label = field_label(f)
            problems.append(FieldProblem(f.name, label, cell, exc.reason, f"{label}({cell}){exc}"))

    rid = book.sheet_rids.get(sheet)
    sheet_part = _sheet_part(pkg, part, rid) if rid is not None else None
    if midnight and sheet_part is not None:
        # A time of exactly 00:00 is a time when the cell shows hours (the template's cells
        # do): 2026-10-01 00:00 is not a date without its time.
        styles = _cell_styles(pkg, sheet_part, {cells[n] for n in midnight})
        timed = _styles_showing_time(pkg, part)
        for name in midnight:
            moment = grid.get(*layout.cell_to_rc(cells[name]))
            if styles.get(cells[name], 0) in timed and isinstance(moment, dt.date):
                values[name] = dt.datetime.combine(moment, dt.time(0, 0))
                raw.pop(name, None)
                problems = [p for p in problems if p.field != name]
    formulas = _formulas_in(pkg, sheet_part, cells) if sheet_part is not None else {}
    if formulas:
        for f in layout.REFUND_FIELDS:
            at = cells.get(f.name)
            formula = formulas.get(at) if at else None
            if at is None or formula is None:
                continue
            # The cached value is not what people see: the field counts as unreadable.
            values[f.name] = None
            raw[f.name] = f"={formula}"
            typed.pop(f.name, None)
            problems = [p for p in problems if p.field != f.name]
            problems.append(_formula_problem(f, at, formula))

    def block(role: str) -> BlockEntry:
        parts = {_block_attr(f): values[f.name] for f in layout.BLOCK_FIELDS[role]}
        return BlockEntry(**parts)  # type: ignore[arg-type]

    header: dict[str, Any] = {f.name: values[f.name] for f in layout.HEADER_FIELDS}
    form = RefundForm(
        **header,
        blocks={b.role: block(b.role) for b in layout.ALL_BLOCKS},
        template_version=version,
        sheet=sheet,
        cells=cells,
        raw=raw,
        typed=typed,
        date1904=book.date1904,
    )
    history_rows, copy_token = _history(wb, sheet_names)
    return FormReading(form, tuple(problems), history_rows, copy_token)
