"""sniff(): what a dropped file is, from its bytes; never raises, stays fast."""

from __future__ import annotations

import csv
import io
import random
import struct
import warnings
import zipfile
from collections.abc import Callable

import pytest
import xlsxwriter

from refundflow import sniff as sniff_module
from refundflow.errors import Reason
from refundflow.sniff import ACCEPTED_KINDS, FileKind, Sniffed, sniff

from corpus import CORPUS

MAIN_NS = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT_NS = b"http://purl.oclc.org/ooxml/spreadsheetml/main"
XLSX_CT = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
XLSM_CT = b"application/vnd.ms-excel.sheet.macroEnabled.main+xml"


# --- making files ---------------------------------------------------------------------------------


def make_xlsx() -> bytes:
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet("退款申请表")
    ws.write_row(0, 0, ["订单号", "金额", "手机号"])
    ws.write_row(1, 0, ["TKD20261123-001", 128.5, "13800138000"])
    wb.close()
    return buf.getvalue()


def rezip(
    data: bytes,
    *,
    edit: Callable[[str, bytes], bytes | None] = lambda _n, b: b,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """Copy a zip, passing each entry through ``edit`` (None drops it) and appending ``extra``."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # duplicate names are the point of one test
        for info in src.infolist():
            body = edit(info.filename, src.read(info))
            if body is not None:
                dst.writestr(info.filename, body)
        for name, body in extra:
            dst.writestr(name, body)
    return out.getvalue()


def replace_in(part: str, old: bytes, new: bytes) -> Callable[[str, bytes], bytes | None]:
    return lambda name, body: body.replace(old, new) if name == part else body


def drop(part: str) -> Callable[[str, bytes], bytes | None]:
    return lambda name, body: None if name == part else body


def patch_declared_size(data: bytes, size: int, *, every: bool = False) -> bytes:
    """Rewrite the uncompressed size in the central directory (what a zip bomb lies about)."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos != -1:
        struct.pack_into("<I", out, pos + 24, size)
        if not every:
            break
        pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


def plain_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in entries.items():
            zf.writestr(name, body)
    return out.getvalue()


def many_entries(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"xl/media/image{i}.png", b"")
    return out.getvalue()


def make_cfb(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE compound file (v3, 512-byte sectors; streams padded past the mini cutoff)."""
    sector = 512
    end, free, fatsect = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    bodies = [body.ljust(4096, b"\0") for body in streams.values()]
    n_dir = (len(streams) + 1 + 3) // 4
    fat: list[int] = [fatsect]  # sector 0 holds the FAT itself
    dir_start = len(fat)
    fat += [*range(dir_start + 1, dir_start + n_dir), end]
    starts = []
    for body in bodies:
        n = (len(body) + sector - 1) // sector
        starts.append(len(fat))
        fat += [*range(len(fat) + 1, len(fat) + n), end]
    assert len(fat) <= sector // 4
    fat += [free] * (sector // 4 - len(fat))

    def entry(name: str, kind: int, right: int, child: int, start: int, size: int) -> bytes:
        raw = (name + "\0").encode("utf-16-le")
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", free, right, child)
            + b"\0" * 36
            + struct.pack("<IQ", start, size)
        )

    names = list(streams)
    dirs = entry("Root Entry", 5, free, 1 if names else free, end, 0)
    for i, (name, body) in enumerate(zip(names, bodies, strict=True)):
        right = i + 2 if i + 1 < len(names) else free
        dirs += entry(name, 2, right, free, starts[i], len(body))
    dirs = dirs.ljust(n_dir * sector, b"\0")
    header = (
        bytes.fromhex("d0cf11e0a1b11ae1")
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIIIIIII", 0, 1, dir_start, 0, 4096, end, 0, end)
        + struct.pack("<I", 0)
        + struct.pack("<109I", 0, *([free] * 108))
    )
    assert len(header) == 512
    return header + struct.pack(f"<{sector // 4}I", *fat) + dirs + b"".join(bodies)


def biff8(*records: tuple[int, bytes]) -> bytes:
    bof = (0x0809, struct.pack("<HHHHII", 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 0))
    return b"".join(struct.pack("<HH", t, len(b)) + b for t, b in (bof, *records, (0x000A, b"")))


def make_ods(*, encrypted: bool = False) -> bytes:
    manifest = (
        b'<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    )
    if encrypted:
        manifest += (
            b'<manifest:file-entry manifest:full-path="content.xml"><manifest:encryption-data/>'
        )
        manifest += b"</manifest:file-entry>"
    manifest += b"</manifest:manifest>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", b"application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", b"<office:document-content/>", zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return out.getvalue()


XLSX = make_xlsx()
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\0" * 32
DOCX_CT = (
    b'<Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
BOMB_DTD = b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'

CASES = [
    pytest.param(XLSX, "form.xlsx", FileKind.XLSX, id="xlsxwriter-xlsx"),
    pytest.param(
        rezip(XLSX, edit=replace_in("xl/workbook.xml", MAIN_NS, STRICT_NS)),
        "s.xlsx",
        FileKind.STRICT_XLSX,
        id="strict-namespace",
    ),
    pytest.param(
        rezip(XLSX, edit=replace_in("[Content_Types].xml", XLSX_CT, XLSM_CT)),
        "m.xlsm",
        FileKind.XLSM,
        id="xlsm-content-type",
    ),
    pytest.param(
        rezip(XLSX, extra=(("xl/vbaProject.bin", b"\0" * 64),)),
        "m.xlsx",
        FileKind.MACROS,
        id="vba-project-inside-xlsx",
    ),
    pytest.param(make_cfb({"Workbook": biff8()}), "old.xls", FileKind.XLS, id="ole-biff8"),
    pytest.param(
        make_cfb({"Workbook": biff8((0x002F, b"\1\0" + b"\0" * 52))}),
        "pw.xls",
        FileKind.ENCRYPTED,
        id="ole-biff8-filepass",
    ),
    pytest.param(
        make_cfb({"EncryptionInfo": b"\4\0\4\0", "EncryptedPackage": b"\0" * 16}),
        "pw.xlsx",
        FileKind.ENCRYPTED,
        id="ole-encrypted-ooxml",
    ),
    pytest.param(
        make_cfb({"WordDocument": b"\xec\xa5"}), "a.doc", FileKind.OLE_OTHER, id="ole-word"
    ),
    pytest.param(
        make_cfb({"Workbook": b"not biff at all"}),
        "x.xls",
        FileKind.CORRUPT,
        id="ole-workbook-not-biff",
    ),
    pytest.param(
        bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 100,
        "x.xls",
        FileKind.CORRUPT,
        id="ole-header-only",
    ),
    pytest.param(
        b"\x09\x00\x04\x00\x07\x00\x10\x00" + b"\0" * 40, "b2.xls", FileKind.XLS, id="raw-biff2"
    ),
    pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a.pdf", FileKind.PDF, id="pdf"),
    pytest.param(PNG, "shot.png", FileKind.IMAGE, id="png"),
    pytest.param(b"\xff\xd8\xff\xe0\0\x10JFIF\0" + b"\0" * 32, "p.jpg", FileKind.IMAGE, id="jpeg"),
    pytest.param(
        "订单号,金额\nTKD-001,128.50\n".encode("gbk"), "a.csv", FileKind.CSV_TEXT, id="csv-gbk"
    ),
    pytest.param(
        "订单号\t金额\r\n".encode("utf-16"), "a.txt", FileKind.CSV_TEXT, id="utf16-unicode-text"
    ),
    pytest.param(b"", "a.xlsx", FileKind.EMPTY, id="empty"),
    pytest.param(b"\0" * 8192, "a.xlsx", FileKind.EMPTY, id="zero-filled"),
    pytest.param(
        b"ID;PWXL;N;E\r\nC;Y1;X1;K1\r\nE\r\n", "a.slk", FileKind.OTHER_SPREADSHEET, id="sylk"
    ),
    pytest.param(
        b'<?xml version="1.0"?><?mso-application progid="Excel.Sheet"?><Workbook '
        b'xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>',
        "a.xml",
        FileKind.OTHER_SPREADSHEET,
        id="spreadsheetml-2003",
    ),
    pytest.param(
        b"<html><body><table><tr><td>1</td></tr></table></body></html>",
        "a.xls",
        FileKind.OTHER_SPREADSHEET,
        id="html-table-as-xls",
    ),
    pytest.param(make_ods(), "a.ods", FileKind.ODS, id="ods"),
    pytest.param(make_ods(encrypted=True), "a.ods", FileKind.ENCRYPTED, id="ods-encrypted"),
    pytest.param(
        patch_declared_size(XLSX, 0x7FFFFFFF),
        "bomb.xlsx",
        FileKind.CORRUPT,
        id="zip-bomb-huge-declared-size",
    ),
    pytest.param(
        patch_declared_size(XLSX, 20 * 1024 * 1024, every=True),
        "bomb.xlsx",
        FileKind.CORRUPT,
        id="zip-bomb-total-and-ratio",
    ),
    pytest.param(many_entries(2001), "many.xlsx", FileKind.CORRUPT, id="zip-too-many-entries"),
    pytest.param(XLSX[: len(XLSX) // 2], "half.xlsx", FileKind.CORRUPT, id="truncated-zip"),
    pytest.param(XLSX[:-10], "cut.xlsx", FileKind.CORRUPT, id="zip-missing-end-record"),
    pytest.param(
        rezip(XLSX, extra=(("../../etc/evil.xml", b"<x/>"),)),
        "t.xlsx",
        FileKind.CORRUPT,
        id="path-traversal",
    ),
    pytest.param(
        rezip(XLSX, extra=(("/abs/evil.xml", b"<x/>"),)),
        "t.xlsx",
        FileKind.CORRUPT,
        id="absolute-path",
    ),
    pytest.param(
        rezip(XLSX, extra=(("xl/workbook.xml", b"<workbook/>"),)),
        "d.xlsx",
        FileKind.CORRUPT,
        id="duplicate-entry",
    ),
    pytest.param(
        rezip(XLSX, extra=(("XL/Workbook.xml", b"<workbook/>"),)),
        "d.xlsx",
        FileKind.CORRUPT,
        id="duplicate-entry-other-case",
    ),
    pytest.param(
        rezip(XLSX, edit=drop("[Content_Types].xml")),
        "n.xlsx",
        FileKind.CORRUPT,
        id="missing-content-types",
    ),
    pytest.param(
        rezip(XLSX, edit=drop("xl/workbook.xml")),
        "n.xlsx",
        FileKind.CORRUPT,
        id="missing-workbook-part",
    ),
    pytest.param(
        rezip(XLSX, edit=replace_in("xl/sharedStrings.xml", b"<sst", BOMB_DTD + b"<sst")),
        "lol.xlsx",
        FileKind.CORRUPT,
        id="xml-entity-bomb-shared-strings",
    ),
    pytest.param(
        rezip(
            XLSX,
            edit=replace_in("xl/worksheets/sheet1.xml", b"<worksheet", b"<!doctype x><worksheet"),
        ),
        "dtd.xlsx",
        FileKind.CORRUPT,
        id="xml-doctype-in-sheet",
    ),
    pytest.param(
        rezip(
            XLSX,
            edit=lambda n, b: (
                (b.split(b"<sheets>")[0] + b"</workbook>") if n == "xl/workbook.xml" else b
            ),
        ),
        "z.xlsx",
        FileKind.CORRUPT,
        id="workbook-without-sheets",
    ),
    pytest.param(
        plain_zip({"[Content_Types].xml": DOCX_CT, "word/document.xml": b"<w/>"}),
        "a.docx",
        FileKind.ZIP_OTHER,
        id="docx",
    ),
    pytest.param(plain_zip({"readme.txt": b"hello"}), "a.zip", FileKind.ZIP_OTHER, id="zip"),
    pytest.param(plain_zip({}), "e.xlsx", FileKind.CORRUPT, id="empty-zip"),
    pytest.param(
        b"\x1f\x8b\x08\0\0\0\0\0\0\3" + b"\0" * 8 + struct.pack("<I", 2**31),
        "g.gnumeric",
        FileKind.CORRUPT,
        id="gzip-bomb",
    ),
]


# --- what an .xlsx may carry (issue 6): nothing that runs or fetches, no DTD anywhere -------------

WB_RELS = "xl/_rels/workbook.xml.rels"
SHEET_RELS = "xl/worksheets/_rels/sheet1.xml.rels"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def add_rel(part: str, rel_type: str, target: str, *, external: bool = False) -> bytes:
    mode = ' TargetMode="External"' if external else ""
    rel = f'<Relationship Id="rId99" Type="{rel_type}" Target="{target}"{mode}/>'.encode()
    if part == SHEET_RELS:  # the xlsxwriter sheet has no rels part: give it one
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas'
            b'.openxmlformats.org/package/2006/relationships">' + rel + b"</Relationships>"
        )
        return rezip(XLSX, extra=((part, body),))
    return rezip(XLSX, edit=replace_in(part, b"</Relationships>", rel + b"</Relationships>"))


def add_override(part_name: str, content_type: str, body: bytes) -> bytes:
    override = f'<Override PartName="/{part_name}" ContentType="{content_type}"/>'.encode()
    return rezip(
        XLSX,
        edit=replace_in("[Content_Types].xml", b"</Types>", override + b"</Types>"),
        extra=((part_name, body),),
    )


EXTERNAL_LINK = (
    b'<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<ddeLink ddeService="cmd" ddeTopic="/c calc"/></externalLink>'
)
COMMENT_PADDING = b"<!--" + b" " * 100_000 + b"-->"


def utf16_with_dtd(part: bytes) -> bytes:
    """The part re-encoded as UTF-16LE with a BOM, a long comment and a DTD before the root."""
    root = part[part.index(b"?>") + 2 :].decode()
    text = '<?xml version="1.0" encoding="UTF-16"?>' + COMMENT_PADDING.decode()
    return b"\xff\xfe" + (text + BOMB_DTD.decode() + root).encode("utf-16-le")


CARRIED = [
    pytest.param(
        rezip(XLSX, extra=(("xl/media/image9.png", make_cfb({"_VBA_PROJECT": b"x" * 64})),)),
        FileKind.MACROS,
        id="vba-project-bytes-under-an-image-name",
    ),
    pytest.param(
        add_rel(
            WB_RELS,
            "http://schemas.microsoft.com/office/2006/relationships/vbaProject",
            "media/notes.dat",
        ),
        FileKind.MACROS,
        id="vba-relationship-to-an-innocent-name",
    ),
    pytest.param(
        add_override(
            "xl/activeX/activeX1.xml",
            "application/vnd.ms-office.activeX+xml",
            b'<ax:ocx xmlns:ax="http://schemas.microsoft.com/office/2006/activeX"/>',
        ),
        FileKind.MACROS,
        id="activex-content-type",
    ),
    pytest.param(
        add_rel(SHEET_RELS, f"{REL}/control", "../activeX/activeX1.xml"),
        FileKind.MACROS,
        id="activex-control-relationship",
    ),
    pytest.param(
        add_override(
            "xl/externalLinks/externalLink1.xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml",
            EXTERNAL_LINK,
        ),
        FileKind.EXTERNAL_LINKS,
        id="dde-link-part",
    ),
    pytest.param(
        add_rel(WB_RELS, f"{REL}/externalLink", "externalLinks/externalLink1.xml"),
        FileKind.EXTERNAL_LINKS,
        id="external-link-relationship",
    ),
    pytest.param(
        add_rel(WB_RELS, f"{REL}/connections", "connections.xml"),
        FileKind.EXTERNAL_LINKS,
        id="data-connection",
    ),
    pytest.param(
        add_rel(SHEET_RELS, f"{REL}/oleObject", "file:///C:/x.docx", external=True),
        FileKind.EXTERNAL_LINKS,
        id="linked-ole-object",
    ),
    pytest.param(
        add_rel(SHEET_RELS, f"{REL}/hyperlink", "https://example.com/", external=True),
        FileKind.XLSX,
        id="hyperlink-is-fine",
    ),
    pytest.param(
        rezip(
            XLSX,
            edit=replace_in("xl/sharedStrings.xml", b"<sst", COMMENT_PADDING + BOMB_DTD + b"<sst"),
        ),
        FileKind.CORRUPT,
        id="dtd-after-a-long-comment",
    ),
    pytest.param(
        rezip(XLSX, edit=lambda n, b: utf16_with_dtd(b) if n == "xl/sharedStrings.xml" else b),
        FileKind.CORRUPT,
        id="dtd-in-a-utf16-part",
    ),
    pytest.param(
        rezip(
            XLSX, extra=(("customXml/item1.dat", b"<?xml version='1.0'?>" + BOMB_DTD + b"<a/>"),)
        ),
        FileKind.CORRUPT,
        id="dtd-in-xml-under-another-name",
    ),
]


@pytest.mark.parametrize(("data", "kind"), CARRIED)
def test_what_an_xlsx_carries(data: bytes, kind: FileKind) -> None:
    result = sniff(data, name="form.xlsx")
    assert result.kind is kind, result.detail
    assert not result.extension_mismatch
    if kind is FileKind.MACROS:
        assert result.reason is Reason.MACROS
        assert "另存为不含宏" in result.hint
    if kind is FileKind.EXTERNAL_LINKS:
        assert result.reason is Reason.EXTERNAL_LINKS
        assert "断开链接" in result.hint


@pytest.mark.parametrize(("data", "name", "kind"), CASES)
def test_kind(data: bytes, name: str, kind: FileKind) -> None:
    result = sniff(data, name=name)
    assert result.kind is kind, result.detail
    assert result.accepted == (kind in ACCEPTED_KINDS)
    assert result.detail and result.description


def test_extension_mismatch_is_about_content_not_name() -> None:
    assert not sniff(XLSX, name="form.xlsx").extension_mismatch
    assert not sniff(XLSX, name="").extension_mismatch
    assert not sniff(XLSX, name="form.XLSX").extension_mismatch
    renamed = sniff(XLSX, name="form.xls")
    assert renamed.kind is FileKind.XLSX
    assert renamed.extension_mismatch
    assert "扩展名" in renamed.description
    # a corrupt file claims nothing, so it cannot mismatch
    assert not sniff(b"PK\x03\x04garbage", name="a.pdf").extension_mismatch


def test_rejection_texts_for_staff() -> None:
    for kind in FileKind:
        description, hint = sniff_module._TEXTS[kind]
        assert description, kind
        assert hint or kind in ACCEPTED_KINDS, kind
    pdf = sniff(b"%PDF-1.4\n", name="a.pdf")
    assert pdf.description == "这是一个 PDF 文件,不是 Excel 工作簿"
    assert "templates/退款申请表.xlsx" in pdf.hint
    assert pdf.reason is Reason.NOT_A_WORKBOOK
    assert sniff(make_ods(encrypted=True)).reason is Reason.ENCRYPTED
    assert sniff(XLSX[:100]).reason is Reason.CORRUPT


def test_never_raises_on_mutated_files() -> None:
    rng = random.Random(20261123)
    seeds = [XLSX, make_cfb({"Workbook": biff8()}), make_ods()]
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        assert isinstance(sniff(bytes(data), name="fuzz.xlsx"), Sniffed)


def test_internal_bug_becomes_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_data: bytes) -> tuple[FileKind, str]:
        raise AttributeError("bug")

    monkeypatch.setattr(sniff_module, "_classify", broken)
    result = sniff(XLSX, name="a.xlsx")
    assert result.kind is FileKind.CORRUPT
    assert "AttributeError" in result.detail


# --- the wild corpus ------------------------------------------------------------------------------


def _manifest() -> list[dict[str, str]]:
    if not (CORPUS / "MANIFEST.tsv").exists():
        return []
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _manifest()

# MANIFEST "kind" -> what sniff must say. "detected" refines xlsx-family and non-spreadsheet.
BY_KIND: dict[str, set[FileKind]] = {
    "xls": {FileKind.XLS},
    "xlsb": {FileKind.XLSB},
    "ods": {FileKind.ODS},  # includes the flat .fods
    "encrypted": {FileKind.ENCRYPTED},  # OLE EncryptedPackage, BIFF FILEPASS, encrypted ODS
    "other spreadsheet format": {FileKind.OTHER_SPREADSHEET},
}
XLSX_FAMILY: dict[str, set[FileKind]] = {
    "xlsx strict": {FileKind.STRICT_XLSX},
    "xlsm": {FileKind.XLSM},
    "xltm": {FileKind.XLSM},  # macro-enabled template
    "xltx": {FileKind.XLSX},  # macro-free template: same parts as an xlsx
}
NON_SPREADSHEET: dict[str, set[FileKind]] = {
    "empty (0 bytes)": {FileKind.EMPTY},
    "text": {FileKind.CSV_TEXT},
    "html": {FileKind.OTHER_SPREADSHEET},  # an HTML <table>: other programs open it as a sheet
    "OLE: doc": {FileKind.OLE_OTHER},
    "OLE: ole-other": {FileKind.OLE_OTHER},
    "Apple iWork package (Index.zip / .iwa)": {FileKind.ZIP_OTHER},  # Keynote
    "binary": {FileKind.IMAGE, FileKind.UNKNOWN},  # PNG, BMP; Access .mdb, dBASE .dbf
}
MISLABELLED: dict[str, FileKind] = {
    "mislabelled extension (xls inside)": FileKind.XLS,
    "mislabelled extension (ods inside)": FileKind.ODS,
    "mislabelled extension (xlsx inside)": FileKind.XLSX,
    "mislabelled extension (xlsm inside)": FileKind.XLSM,
}
# Corrupt/hostile files whose damage only a full parse can see (bad XML or CRC deep inside a
# sheet, oversized shared strings): the sniffer passes them on, the sandboxed parser refuses them.
SNIFF_CANNOT_TELL = {
    "exceljs__invalid-xml.xlsx",
    "poi__poc-shared-strings.xlsx",
    "poi__xlsx-corrupted.xlsx",
    "spout__file_with_sheet_xml_not_matching_content_types.xlsx",
    "spout__one_sheet_with_invalid_xml_characters.xlsx",
    "poi__clusterfuzz-testcase-minimized-POIXSSFFuzzer-5265527465181184.xlsx",
    "poi__clusterfuzz-testcase-minimized-POIXSSFFuzzer-5937385319563264.xlsx",
}


# Workbooks that would prompt their reader to fetch something (checked by hand): real database
# connections, a linked remote picture, links to other workbooks.
LINKS_OUT: dict[str, FileKind] = {
    "poi__dataValidationTableRange.xlsx": FileKind.EXTERNAL_LINKS,  # ODBC query connection
    "poi__picture.xlsx": FileKind.EXTERNAL_LINKS,  # ODBC query connection
    "poi__stress020.xlsx": FileKind.EXTERNAL_LINKS,  # externalLink part
    "phpspreadsheet__urlImage.xlsx": FileKind.EXTERNAL_LINKS,  # picture fetched from https://
    "form__easypoi__sanhang_huanbi_fenxi_report.xlsx": FileKind.EXTERNAL_LINKS,  # externalLink
}


def expected_kinds(row: dict[str, str]) -> set[FileKind] | None:
    """The kinds sniff may report for a manifest row; None for corrupt/hostile."""
    kind, detected = row["kind"], row["detected"]
    if row["name"] in LINKS_OUT:
        return {LINKS_OUT[row["name"]]}
    if kind in BY_KIND:
        return BY_KIND[kind]
    if kind == "xlsx-family":
        return XLSX_FAMILY.get(detected, {FileKind.XLSX})
    if kind == "non-spreadsheet":
        return NON_SPREADSHEET[detected]
    if kind in MISLABELLED:
        return {MISLABELLED[kind]}
    assert kind == "corrupt/hostile", f"manifest kind {kind!r} not mapped"
    return None


@pytest.mark.corpus
def test_manifest_matches_the_folder() -> None:
    on_disk = {p.name for p in CORPUS.iterdir()} - {"MANIFEST.tsv", "SOURCES.md"}
    assert on_disk == {row["name"] for row in ROWS}
    assert sum(row["kind"].startswith("mislabelled") for row in ROWS) == 4


@pytest.mark.corpus
@pytest.mark.parametrize("row", ROWS, ids=[row["name"] for row in ROWS])
def test_wild_corpus(row: dict[str, str]) -> None:
    path = CORPUS / row["name"]
    result = sniff(path.read_bytes(), name=row["name"])
    expected = expected_kinds(row)
    if expected is None:
        if row["name"] not in SNIFF_CANNOT_TELL:
            assert not result.accepted, f"hostile file accepted: {result.detail}"
        return
    assert result.kind in expected, f"{row['kind']} / {row['detected']}: {result.detail}"
    if row["kind"].startswith("mislabelled"):
        assert result.extension_mismatch, result.detail
    elif row["kind"] in ("xlsx-family", "xls", "xlsb", "ods", "encrypted"):
        assert not result.extension_mismatch, result.detail
