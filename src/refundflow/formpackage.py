"""The parts of a dropped workbook the form reader parses itself, bounded by :mod:`zipread`.

workbook.xml (sheets, defined names, the 1904 flag), the custom version property, the form
sheet's part, its cell styles and formulas, styles.xml's time formats. DTDs are refused in
every part; reads are bounded by ``ZipLimits`` (``[parse] max_file_mb``), parsed whole only
for the small parts, streamed for the worksheet.
"""

from __future__ import annotations

import codecs
import functools
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from . import layout
from .errors import FileRejected, Reason
from .zipread import Package, ZipError, ZipFault, ZipLimits

TEMPLATE_HINT = f"请使用 templates/{layout.REFUND_TEMPLATE_FILE} 模板填写"

# Bounded reads: the parts we parse whole ourselves (workbook.xml, rels, styles, custom
# properties) are small in any honest workbook (our workbook.xml is ~5 KB): at most
# ZipLimits.small_part_bytes, from [parse] max_file_mb.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# No DTDs in OOXML: refusing them rules out entity-expansion tricks, wherever in a part they are.
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_OFFICE_DOCUMENT = "/officeDocument"  # relationship type suffix, transitional and strict

# `'退款申请表'!$B$2`, `退款申请表!$B$2`, `$B$2:$C$2`, `='It''s'!B2` → sheet, column, row.
_REF = re.compile(
    r"""^=?\s*(?:(?P<sheet>'(?:[^']|'')+'|[^'!]+)!)?"""
    r"""\$?(?P<col>[A-Za-z]{1,3})\$?(?P<row>\d{1,7})"""
    r"""(?::\$?[A-Za-z]{1,3}\$?\d{1,7})?\s*$"""
)


def rejected(reason: Reason, message: str, hint: str = "") -> FileRejected:
    return FileRejected(message, reason=reason, hint=hint)


def open_zip(data: bytes, limits: ZipLimits) -> Package:
    if data.startswith(_OLE_MAGIC):
        # An OLE container is either an encrypted OOXML package or a legacy .xls/.et file.
        if _ENCRYPTED_STREAM in data:
            raise rejected(
                Reason.ENCRYPTED, "文件设置了打开密码,无法读取", "请取消密码后重新保存再放入"
            )
        raise rejected(
            Reason.UNSUPPORTED_FORMAT,
            "这是旧版 Excel(.xls)格式的文件",
            "请在 Excel/WPS 中另存为 .xlsx 格式后再放入",
        )
    if not data.startswith(b"PK"):
        raise rejected(Reason.NOT_A_WORKBOOK, "这不是 Excel 工作簿(.xlsx)文件", TEMPLATE_HINT)
    try:
        return Package(data, limits)
    except ZipError as exc:
        if exc.fault is ZipFault.FILE_TOO_LARGE:
            raise rejected(Reason.TOO_LARGE, "文件太大,不是退款申请表", TEMPLATE_HINT) from None
        raise rejected(
            Reason.CORRUPT, f"文件已损坏,无法打开({exc})", "请重新保存或重新复制一份"
        ) from None


def _unreadable(part: str, exc: ZipError) -> FileRejected:
    if exc.fault is ZipFault.PART_TOO_LARGE:
        return rejected(Reason.TOO_LARGE, f"文件中的 {part} 大得不正常", TEMPLATE_HINT)
    return rejected(
        Reason.CORRUPT, f"文件已损坏,无法读取 {part}({exc})", "请重新保存或重新复制一份"
    )


def read_part(pkg: Package, name: str) -> bytes | None:
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


def parse_xml(data: bytes, part: str) -> ElementTree.Element:
    # The whole part, decoded first: a UTF-16 part spells "<!DOCTYPE" with NUL bytes between.
    if _DTD.search(_xml_decoder(data[:4]).decode(data, final=True)):
        raise rejected(Reason.CORRUPT, f"文件中的 {part} 格式不正确", TEMPLATE_HINT)
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise rejected(
            Reason.CORRUPT, f"文件已损坏:{part} 无法解析({exc})", "请重新保存或重新复制一份"
        ) from None


def local(tag: str) -> str:
    """Tag or attribute name without its namespace: transitional and strict OOXML alike."""
    return tag.rpartition("}")[2]


def workbook_part(pkg: Package) -> str:
    names = {info.filename for info in pkg.infos}
    if "xl/workbook.xml" in names:
        return "xl/workbook.xml"
    rels = read_part(pkg, "_rels/.rels")
    if rels is not None:
        for rel in parse_xml(rels, "_rels/.rels").iter():
            if local(rel.tag) == "Relationship" and rel.get("Type", "").endswith(_OFFICE_DOCUMENT):
                target = rel.get("Target", "").lstrip("/")
                if target in names and target.endswith(".xml"):
                    return target
    if "mimetype" in names or "content.xml" in names:
        raise rejected(
            Reason.UNSUPPORTED_FORMAT,
            "这是 OpenDocument(.ods)等格式的文件,不是 .xlsx",
            "请另存为 Excel 2007-365 (.xlsx) 格式后再放入",
        )
    raise rejected(Reason.NOT_A_WORKBOOK, "这不是 Excel 工作簿(.xlsx)文件", TEMPLATE_HINT)


@dataclass
class _Book:
    sheets: list[tuple[str, str]] = field(default_factory=list)  # (name, state) in order
    names: dict[str, str] = field(default_factory=dict)  # workbook scope: name -> formula
    sheet_rids: dict[str, str] = field(default_factory=dict)  # sheet name -> relationship id
    local_names: dict[str, str] = field(default_factory=dict)  # first sheet-scope definition
    date1904: bool = False


def parse_workbook(root: ElementTree.Element) -> _Book:
    book = _Book()
    for el in root.iter():
        tag = local(el.tag)
        if tag == "sheet":
            book.sheets.append((el.get("name", ""), el.get("state", "visible")))
            # r:id in the transitional or the strict relationships namespace
            ids = (v for k, v in el.attrib.items() if k.startswith("{") and local(k) == "id")
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
def parse_ref(formula: str) -> tuple[str | None, int, int] | None:
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


def string_constant(formula: str) -> str | None:
    """``"refundflow-2026.1"`` or ``="refundflow-2026.1"`` -> ``refundflow-2026.1``."""
    s = formula.strip().removeprefix("=").strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return s[1:-1].replace('""', '"')
    return None


def custom_version(pkg: Package) -> str | None:
    data = read_part(pkg, "docProps/custom.xml")
    if data is None:
        return None
    for el in parse_xml(data, "docProps/custom.xml").iter():
        if local(el.tag) == "property" and el.get("name") == layout.VERSION_PROPERTY:
            for child in el:
                if child.text and child.text.strip():
                    return child.text.strip()
    return None


# --- formulas in the input cells -------------------------------------------------------------

# A formula element in any namespace prefix (<f>, <x:f>); text cannot hold a "<", so outside
# comments this is always markup. A false hit only costs the exact parse below.
_FORMULA_TAG = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")
_OVERLAP = 16  # longer than any pattern above, so a match split across two chunks is seen


def worksheet_part(pkg: Package, workbook_part: str, rid: str) -> str | None:
    """The zip member of the worksheet with relationship id ``rid``, if it can be found."""
    folder, base = posixpath.split(workbook_part)
    rels = read_part(pkg, posixpath.join(folder, "_rels", f"{base}.rels"))
    if rels is None:
        return None
    by_folded = {info.filename.casefold(): info.filename for info in pkg.infos}
    for rel in parse_xml(rels, "workbook.xml.rels").iter():
        if local(rel.tag) == "Relationship" and rel.get("Id") == rid:
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
            raise rejected(Reason.CORRUPT, f"文件中的 {part} 格式不正确", TEMPLATE_HINT)
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
            raise rejected(
                Reason.CORRUPT, f"文件已损坏:{part} 无法解析({exc})", "请重新保存或重新复制一份"
            ) from None
        for event, el in events:
            tag = local(el.tag)
            if event == "start" and tag == "sheetData":
                rows_box = el
            elif event == "start" and tag == "row":
                r = el.get("r", "")
                row = int(r) - 1 if r.isdigit() else row + 1
                col = -1
            elif event == "start" and tag == "c":
                ref = parse_ref(el.get("r", ""))
                row, col = (ref[1], ref[2]) if ref is not None else (row, col + 1)
            yield event, tag, el, row, col
            if event == "end" and tag == "row" and rows_box is not None:
                rows_box.clear()


def cell_styles(pkg: Package, part: str, cells: set[str]) -> dict[str, int]:
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


def styles_showing_time(pkg: Package, workbook_part: str) -> set[int]:
    """Indices of the cell styles whose number format shows hours (``hh:mm`` and the like)."""
    folder = posixpath.dirname(workbook_part)
    by_folded = {info.filename.casefold(): info.filename for info in pkg.infos}
    name = by_folded.get(posixpath.join(folder, "styles.xml").casefold())
    data = read_part(pkg, name) if name else None
    if data is None:
        return set()
    custom: dict[int, str] = {}
    shows: set[int] = set()
    index = 0
    in_xfs = False
    for el in parse_xml(data, "styles.xml").iter():
        tag = local(el.tag)
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


def formulas_in(pkg: Package, part: str, cells: Mapping[str, str]) -> dict[str, str]:
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
