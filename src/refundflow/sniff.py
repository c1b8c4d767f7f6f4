"""Decide what a dropped file is from its bytes, never from its name.

Runs on every file that lands in the inbox, in the sandboxed parser worker just before the
form reader (see :mod:`examine`), so it must be cheap (a few hundred microseconds for a
form-sized xlsx) and it must never raise: whatever goes wrong in here becomes a :class:`Sniffed`
of kind ``CORRUPT`` or ``UNKNOWN``. Memory stays bounded whatever the file: a zip is judged from
its central directory by :class:`~refundflow.zipread.Package` (declared sizes, counts, names,
within the limits of ``[parse] max_file_mb``), at most ``_PEEK_BYTES``-sized reads of
``[Content_Types].xml`` and the workbook part, and one pass over every part's bytes in bounded
pieces (DTDs,
VBA projects, relationships that run or fetch something); an OLE compound file is walked by a
small bounds-checked reader instead of a parser.

Only :attr:`FileKind.XLSX` and :attr:`FileKind.STRICT_XLSX` are candidates for the form reader
(see :attr:`Sniffed.accepted`); everything else carries a Chinese ``description`` and ``hint``
for the office staff and a :class:`~refundflow.errors.Reason` for the code.
"""

from __future__ import annotations

import itertools
import logging
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from .errors import Reason
from .layout import REFUND_TEMPLATE_FILE
from .zipread import DEFAULT_LIMITS, Package, ZipError, ZipFault, ZipLimits, part_key

log = logging.getLogger(__name__)

# --- limits (of the zip container: zipread.ZipLimits, from [parse] max_file_mb) -----------------
_PEEK_BYTES = 256 * 1024  # at most this much of [Content_Types].xml / workbook.xml is inflated
_SAMPLE = 8192  # head of the file used for text/markup heuristics
_MAX_OLE_DIR_ENTRIES = 4096
_MAX_BIFF_RECORDS = 64  # FILEPASS, when present, sits right after the first BOF

TEMPLATE_HINT_PATH = f"templates/{REFUND_TEMPLATE_FILE}"


class FileKind(StrEnum):
    XLSX = "xlsx"
    XLSM = "xlsm"  # macro-enabled OOXML (.xlsm, .xltm, .xlam)
    MACROS = "macros"  # an .xlsx carrying macro code or ActiveX, under whatever part name
    EXTERNAL_LINKS = "external_links"  # links to other files: workbooks, DDE/OLE, connections
    XLSB = "xlsb"
    STRICT_XLSX = "strict_xlsx"  # ISO 29500 Strict: openpyxl reads it as zero sheets
    XLS = "xls"  # BIFF2-8, in an OLE container or as a raw stream
    ENCRYPTED = "encrypted"
    ODS = "ods"
    OTHER_SPREADSHEET = "other_spreadsheet"
    PDF = "pdf"
    IMAGE = "image"
    CSV_TEXT = "csv_text"
    EMPTY = "empty"
    ZIP_OTHER = "zip_other"
    OLE_OTHER = "ole_other"
    UNKNOWN = "unknown"
    CORRUPT = "corrupt"
    TOO_LARGE = "too_large"


ACCEPTED_KINDS: frozenset[FileKind] = frozenset({FileKind.XLSX, FileKind.STRICT_XLSX})

_REASONS: dict[FileKind, Reason] = {
    FileKind.XLSX: Reason.NOT_A_WORKBOOK,  # unused: accepted kinds are not rejected here
    FileKind.STRICT_XLSX: Reason.NOT_A_WORKBOOK,
    FileKind.XLSM: Reason.UNSUPPORTED_FORMAT,
    FileKind.MACROS: Reason.MACROS,
    FileKind.EXTERNAL_LINKS: Reason.EXTERNAL_LINKS,
    FileKind.XLSB: Reason.UNSUPPORTED_FORMAT,
    FileKind.XLS: Reason.UNSUPPORTED_FORMAT,
    FileKind.ODS: Reason.UNSUPPORTED_FORMAT,
    FileKind.OTHER_SPREADSHEET: Reason.UNSUPPORTED_FORMAT,
    FileKind.ENCRYPTED: Reason.ENCRYPTED,
    FileKind.PDF: Reason.NOT_A_WORKBOOK,
    FileKind.IMAGE: Reason.NOT_A_WORKBOOK,
    FileKind.CSV_TEXT: Reason.NOT_A_WORKBOOK,
    FileKind.EMPTY: Reason.NOT_A_WORKBOOK,
    FileKind.ZIP_OTHER: Reason.NOT_A_WORKBOOK,
    FileKind.OLE_OTHER: Reason.NOT_A_WORKBOOK,
    FileKind.UNKNOWN: Reason.NOT_A_WORKBOOK,
    FileKind.CORRUPT: Reason.CORRUPT,
    FileKind.TOO_LARGE: Reason.TOO_LARGE,
}

_RESAVE = (
    f"请用最新的退款申请表模板({TEMPLATE_HINT_PATH})填写,另存为 .xlsx 格式后重新放入 inbox 文件夹"
)
_TEXTS: dict[FileKind, tuple[str, str]] = {
    FileKind.XLSX: ("这是 Excel 工作簿(.xlsx)", ""),
    FileKind.STRICT_XLSX: ("这是 Strict Open XML 格式的 Excel 工作簿(.xlsx)", ""),
    FileKind.XLSM: (
        "这是启用宏的 Excel 工作簿(.xlsm),出于安全原因不处理含宏的文件",
        f"请在 Excel 中另存为“Excel 工作簿(*.xlsx)”(不含宏),或{_RESAVE}",
    ),
    FileKind.MACROS: (
        "工作簿中含有宏代码或 ActiveX 控件,打开时可能被提示运行,出于安全原因不处理",
        "请在 Excel 中删除宏和控件,另存为不含宏的“Excel 工作簿(*.xlsx)”后重新放入 inbox 文件夹;"
        f"或{_RESAVE}",
    ),
    FileKind.EXTERNAL_LINKS: (
        "工作簿中含有指向其他文件的链接(外部工作簿链接、DDE/OLE 链接或数据连接),"
        "打开时会提示更新链接或获取外部数据,出于安全原因不处理",
        "请在 Excel 中点“数据→编辑链接→断开链接”(WPS 同样在“数据→编辑链接”中断开),"
        "删除数据连接,把引用其他文件的公式改为直接填写的数值,另存为 .xlsx 后重新放入 inbox 文件夹;"
        f"或{_RESAVE}",
    ),
    FileKind.XLSB: (
        "这是 Excel 二进制工作簿(.xlsb),不是 .xlsx 格式",
        f"请在 Excel 中另存为“Excel 工作簿(*.xlsx)”,或{_RESAVE}",
    ),
    FileKind.XLS: (
        "这是旧版 Excel 97-2003 格式(.xls)",
        f"请在 Excel 中另存为“Excel 工作簿(*.xlsx)”,或{_RESAVE}",
    ),
    FileKind.ENCRYPTED: (
        "文件已加密(设有打开密码)",
        "请在 Excel 中取消打开密码(文件→信息→保护工作簿→用密码进行加密,清空密码)后另存为 .xlsx,"
        "再重新放入 inbox 文件夹",
    ),
    FileKind.ODS: (
        "这是 OpenDocument 表格(.ods,WPS/LibreOffice 格式),不是 .xlsx 格式",
        f"请在 WPS 或 LibreOffice 中另存为“Excel 工作簿(*.xlsx)”,或{_RESAVE}",
    ),
    FileKind.OTHER_SPREADSHEET: (
        "这是其他表格软件的格式,不是 Excel 工作簿(.xlsx)",
        f"请另存为“Excel 工作簿(*.xlsx)”,或{_RESAVE}",
    ),
    FileKind.PDF: ("这是一个 PDF 文件,不是 Excel 工作簿", _RESAVE),
    FileKind.IMAGE: ("这是一个图片文件(截图或照片),不是 Excel 工作簿", _RESAVE),
    FileKind.CSV_TEXT: ("这是纯文本或 CSV 文件,不是 Excel 工作簿", _RESAVE),
    FileKind.EMPTY: (
        "文件是空的(没有内容),可能尚未复制完成",
        "请确认文件已完整保存,再重新放入 inbox 文件夹",
    ),
    FileKind.ZIP_OTHER: ("这是压缩包或其他 Office 文档(如 Word),不是 Excel 工作簿", _RESAVE),
    FileKind.OLE_OTHER: ("这是其他 Office 文档(如 Word .doc),不是 Excel 工作簿", _RESAVE),
    FileKind.UNKNOWN: ("无法识别的文件类型,不是 Excel 工作簿", _RESAVE),
    FileKind.CORRUPT: (
        "文件已损坏或不完整",
        f"请用 Excel 打开确认无误后另存为 .xlsx 重新放入 inbox 文件夹;如无法打开,{_RESAVE}",
    ),
    FileKind.TOO_LARGE: (
        "文件太大,超出允许的大小",
        f"退款申请表通常只有几十 KB,请删除多余的工作表和图片后重新保存;或{_RESAVE}",
    ),
}

# extension -> the family it claims, for extension_mismatch. Unknown extensions claim nothing.
_CLAIMS: dict[str, frozenset[FileKind]] = {}
for _kinds, _exts in (
    ({FileKind.XLSX, FileKind.STRICT_XLSX, FileKind.MACROS, FileKind.EXTERNAL_LINKS},
     ("xlsx", "xltx")),
    ({FileKind.XLSM, FileKind.MACROS}, ("xlsm", "xltm", "xlam")),
    ({FileKind.XLSB}, ("xlsb",)),
    ({FileKind.XLS}, ("xls", "xlt", "xla", "et", "ett")),
    ({FileKind.ODS}, ("ods", "ots", "fods")),
    ({FileKind.PDF}, ("pdf",)),
    ({FileKind.IMAGE}, ("png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "heic")),
    ({FileKind.CSV_TEXT}, ("csv", "txt", "tsv")),
    ({FileKind.OLE_OTHER}, ("doc", "ppt", "msg")),
    ({FileKind.ZIP_OTHER}, ("zip", "docx", "pptx", "key", "pages")),
    ({FileKind.OTHER_SPREADSHEET}, ("numbers", "slk", "dif", "wk1", "wk3", "wk4", "wks", "qpw",
                                    "wb1", "wb2", "wb3", "gnumeric", "xml", "htm", "html")),
):  # fmt: skip
    for _ext in _exts:
        _CLAIMS[_ext] = frozenset(_kinds)
# An encrypted workbook can honestly carry any spreadsheet extension.
_SPREADSHEET_EXTS = frozenset(
    e for e, k in _CLAIMS.items() if k & {FileKind.XLSX, FileKind.XLSM, FileKind.XLSB,
                                          FileKind.XLS, FileKind.ODS}
)  # fmt: skip
_NO_CLAIM_KINDS = frozenset({FileKind.CORRUPT, FileKind.EMPTY, FileKind.UNKNOWN,
                             FileKind.TOO_LARGE})  # fmt: skip


@dataclass(frozen=True)
class Sniffed:
    """The verdict on one file: what it is (``kind``) and what to tell the staff."""

    kind: FileKind
    detail: str  # short English, for logs
    description: str  # Chinese, for staff: what the file is
    hint: str  # Chinese, for staff: how to fix it ("" when accepted)
    extension_mismatch: bool = False

    @property
    def accepted(self) -> bool:
        """True when the form reader may try this file (plain or strict xlsx)."""
        return self.kind in ACCEPTED_KINDS

    @property
    def reason(self) -> Reason:
        return _REASONS[self.kind]


def _verdict(kind: FileKind, detail: str, *, name: str = "") -> Sniffed:
    description, hint = _TEXTS[kind]
    mismatch = _extension_mismatch(kind, name)
    if mismatch:
        description += f"(文件扩展名“{PurePosixPath(name).suffix}”与实际内容不符)"
        detail += f" (extension {PurePosixPath(name).suffix!r} does not match the content)"
    return Sniffed(kind, detail, description, hint, mismatch)


def _extension_mismatch(kind: FileKind, name: str) -> bool:
    ext = PurePosixPath(name.replace("\\", "/")).suffix.lower().lstrip(".")
    claimed = _CLAIMS.get(ext)
    if not ext or claimed is None or kind in _NO_CLAIM_KINDS:
        return False
    if kind is FileKind.ENCRYPTED:
        return ext not in _SPREADSHEET_EXTS
    return kind not in claimed


class _Verdict(Exception):  # control flow only, never escapes this module
    """Raised deep inside a helper to return a verdict at once."""

    def __init__(self, kind: FileKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _corrupt(detail: str) -> _Verdict:
    return _Verdict(FileKind.CORRUPT, detail)


# --- entry points -----------------------------------------------------------------------------


def sniff(data: bytes, *, name: str = "", limits: ZipLimits = DEFAULT_LIMITS) -> Sniffed:
    """Classify ``data``. ``name`` is only used to flag a misleading extension. Never raises."""
    return sniff_package(data, name=name, limits=limits)[0]


def sniff_package(
    data: bytes, *, name: str = "", limits: ZipLimits = DEFAULT_LIMITS
) -> tuple[Sniffed, Package | None]:
    """:func:`sniff`, and the zip package it opened (for the form reader to reuse)."""
    job = _Job(data, limits)
    try:
        kind, detail = _classify(job)
    except _Verdict as verdict:
        kind, detail = verdict.kind, verdict.detail
    except ZipError as exc:
        kind = FileKind.ENCRYPTED if exc.fault is ZipFault.ENCRYPTED else FileKind.CORRUPT
        detail = exc.detail
    except Exception as exc:  # a sniffer bug must reject one file, not stop the watcher
        log.warning("sniff failed on %r: %s: %s", name, type(exc).__name__, exc)
        kind, detail = FileKind.CORRUPT, f"unreadable structure ({type(exc).__name__})"
    try:
        return _verdict(kind, detail, name=name), job.package
    except Exception:  # pragma: no cover - only a bad name could get here
        return _verdict(kind, detail), job.package


# --- dispatch on magic bytes --------------------------------------------------------------------

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BIFF_BOF = {0x0009: "BIFF2", 0x0209: "BIFF3", 0x0409: "BIFF4", 0x0809: "BIFF5/8"}


@dataclass
class _Job:
    """One file being sniffed, and the zip package opened for it (if it is a zip)."""

    data: bytes
    limits: ZipLimits
    package: Package | None = None


def _classify(job: _Job) -> tuple[FileKind, str]:
    data = job.data
    if not data:
        return FileKind.EMPTY, "0 bytes"
    head = data[:16]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _classify_zip(job)
    if head.startswith(_OLE_MAGIC):
        return _classify_ole(data)
    if data.count(0, 0, _SAMPLE) == min(len(data), _SAMPLE) and not data.strip(b"\0"):
        # sync clients and SMB copies pre-allocate the file and fill it in later
        return FileKind.EMPTY, f"{len(data)} zero bytes (copy not finished?)"
    if b"%PDF-" in data[:1024]:
        return FileKind.PDF, "PDF document"
    image = _image_type(data)
    if image:
        return FileKind.IMAGE, f"{image} image"
    if head.startswith(b"\x1f\x8b"):
        return _classify_gzip(data, job.limits)
    raw_biff = _raw_biff(data)
    if raw_biff:
        return raw_biff
    other = _binary_other(data)
    if other:
        return other
    return _classify_text(data)


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIF"
    if data[:2] == b"BM" and len(data) >= 26:
        declared, reserved = struct.unpack_from("<IL", data, 2)
        if reserved == 0 and 26 <= declared <= len(data) + 1024:
            return "BMP"
    return ""


def _binary_other(data: bytes) -> tuple[FileKind, str] | None:
    if data[4:19] in (b"Standard Jet DB", b"Standard ACE DB"):
        return FileKind.UNKNOWN, "Microsoft Access database"
    if data.startswith((b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")):
        return FileKind.UNKNOWN, "7z/RAR archive"
    if len(data) >= 8 and data[:2] == b"\0\0":
        length, version = struct.unpack_from("<HH", data, 2)
        # Lotus 1-2-3 BOF: WKS/WK1 (len 2, 0x0404-0x0406), WK3/WK4/123 (len 26, 0x1000-0x1005)
        if (length == 2 and 0x0404 <= version <= 0x0406) or (
            length == 26 and 0x1000 <= version <= 0x1005
        ):
            return FileKind.OTHER_SPREADSHEET, "Lotus 1-2-3 worksheet"
    if len(data) >= 32 and data[0] in (0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63,
                                       0x83, 0x8B, 0xCB, 0xF5, 0xFB):  # fmt: skip
        month, day = data[2], data[3]
        header_len, record_len = struct.unpack_from("<HH", data, 8)
        if 1 <= month <= 12 and 1 <= day <= 31 and 32 < header_len <= len(data) and record_len:
            return FileKind.UNKNOWN, "dBASE table (.dbf)"
    return None


def _raw_biff(data: bytes) -> tuple[FileKind, str] | None:
    """BIFF2-4 files (and the odd BIFF5) are a bare record stream with no OLE container."""
    if len(data) < 8:
        return None
    rtype, length = struct.unpack_from("<HH", data, 0)
    if rtype not in _BIFF_BOF or not 4 <= length <= 20:
        return None
    if _biff_filepass(data):
        return FileKind.ENCRYPTED, f"raw {_BIFF_BOF[rtype]} stream with FILEPASS"
    return FileKind.XLS, f"raw {_BIFF_BOF[rtype]} stream (no OLE container)"


def _biff_filepass(stream: bytes) -> bool:
    """True if a FILEPASS record (0x002F) appears among the first records of the globals."""
    pos = 0
    for _ in range(_MAX_BIFF_RECORDS):
        if pos + 4 > len(stream):
            return False
        rtype, length = struct.unpack_from("<HH", stream, pos)
        if rtype == 0x002F:
            return True
        if rtype == 0x000A:  # EOF of the globals substream
            return False
        pos += 4 + length
    return False


def _classify_gzip(data: bytes, limits: ZipLimits) -> tuple[FileKind, str]:
    # ISIZE (last 4 bytes) is the uncompressed size mod 2**32: enough to spot a bomb early.
    declared = struct.unpack_from("<I", data, len(data) - 4)[0] if len(data) >= 18 else 0
    if declared > limits.total_bytes or declared > limits.ratio * len(data):
        return FileKind.CORRUPT, f"gzip declares {declared} bytes uncompressed: possible gzip bomb"
    try:
        head = zlib.decompressobj(wbits=31).decompress(data, _SAMPLE)
    except zlib.error:
        return FileKind.CORRUPT, "damaged gzip stream"
    if b"gnumeric" in head.lower():
        return FileKind.OTHER_SPREADSHEET, "Gnumeric workbook (gzip XML)"
    return FileKind.UNKNOWN, "gzip-compressed file"


# --- text and markup --------------------------------------------------------------------------

_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 26, 27))


def _classify_text(data: bytes) -> tuple[FileKind, str]:
    sample = data[:_SAMPLE]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode text (*.txt)" export: tab-separated UTF-16
        text = sample.decode("utf-16", errors="replace").encode("utf-8", errors="replace")
        return _classify_markup(text, data, encoding="UTF-16")
    if b"\0" in sample:
        return FileKind.UNKNOWN, "unrecognised binary data"
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    if controls * 100 > len(sample):
        return FileKind.UNKNOWN, "unrecognised binary data"
    return _classify_markup(sample.removeprefix(b"\xef\xbb\xbf"), data, encoding="")


def _classify_markup(text: bytes, data: bytes, *, encoding: str) -> tuple[FileKind, str]:
    low = text.lstrip().lower()
    if low.startswith(b"id;"):
        return FileKind.OTHER_SPREADSHEET, "SYLK spreadsheet"
    if re.match(rb"table\r?\n0,1\r?\n", low):
        return FileKind.OTHER_SPREADSHEET, "DIF spreadsheet"
    if low.startswith(b"<"):
        if b"<html" in low or low.startswith(b"<!doctype html"):
            # Excel's "web page" export and hand-made HTML tables both open as sheets elsewhere
            if b"<table" in data[:_PEEK_BYTES].lower() or b"<table" in low:
                return FileKind.OTHER_SPREADSHEET, "HTML table"
            return FileKind.UNKNOWN, "HTML page"
        if b"urn:schemas-microsoft-com:office:spreadsheet" in low or b"excel.sheet" in low:
            return FileKind.OTHER_SPREADSHEET, "Excel 2003 XML (SpreadsheetML)"
        if b"opendocument.spreadsheet" in low:
            return FileKind.ODS, "flat OpenDocument spreadsheet (.fods)"
        if b"gnumeric" in low:
            return FileKind.OTHER_SPREADSHEET, "Gnumeric XML workbook"
        return FileKind.UNKNOWN, "XML document"
    what = "CSV text" if re.search(rb"[,\t;]", low) else "plain text"
    return FileKind.CSV_TEXT, f"{what} ({encoding})" if encoding else what


# --- zip / OOXML / ODS --------------------------------------------------------------------------

_CT_MAIN: dict[str, tuple[FileKind, str]] = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml":
        (FileKind.XLSX, "xlsx workbook"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml":
        (FileKind.XLSX, "xltx template"),
    "application/vnd.ms-excel.sheet.macroenabled.main+xml": (FileKind.XLSM, "xlsm workbook"),
    "application/vnd.ms-excel.template.macroenabled.main+xml": (FileKind.XLSM, "xltm template"),
    "application/vnd.ms-excel.addin.macroenabled.main+xml": (FileKind.XLSM, "xlam add-in"),
    "application/vnd.ms-excel.sheet.binary.macroenabled.main": (FileKind.XLSB, "xlsb workbook"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml":
        (FileKind.ZIP_OTHER, "Word document (.docx)"),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml":
        (FileKind.ZIP_OTHER, "PowerPoint presentation (.pptx)"),
}  # fmt: skip
_OVERRIDE = re.compile(r"<(?:\w+:)?Override\b([^>]*)>", re.IGNORECASE)
_DEFAULT = re.compile(r"<(?:\w+:)?Default\b([^>]*)>", re.IGNORECASE)
_EXTENSION = re.compile(r"""Extension\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_PART_NAME = re.compile(r"""PartName\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_CONTENT_TYPE = re.compile(r"""ContentType\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_SHEET_ELEMENT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?sheet[\s/>]")
_STRICT_NS = "http://purl.oclc.org/ooxml/"
_DOCTYPE = re.compile("<!DOCTYPE", re.IGNORECASE)


def _caseless(prefix: str, words: tuple[str, ...], unit: str = "") -> re.Pattern[bytes]:
    """``prefix`` then any of ``words`` (ASCII case-insensitive), each character followed
    (``unit="le"``: UTF-16LE) or preceded (``"be"``) by a NUL. Spelled as character classes
    after a literal prefix, not with re.IGNORECASE, so the engine scans for the prefix fast."""

    def spell(text: str, *, fold: bool) -> str:
        out = ""
        for ch in text:
            c = f"[{ch.upper()}{ch.lower()}]" if fold and ch.isalpha() else re.escape(ch)
            out += c + "\\x00" if unit == "le" else "\\x00" + c if unit == "be" else c
        return out

    alternatives = "|".join(spell(w, fold=True) for w in words)
    return re.compile(f"{spell(prefix, fold=False)}(?:{alternatives})".encode())


_DTD_B = _caseless("<!", ("DOCTYPE", "ENTITY"))
_DTD_UTF16LE = _caseless("<!", ("DOCTYPE", "ENTITY"), "le")
_DTD_UTF16BE = _caseless("<!", ("DOCTYPE", "ENTITY"), "be")
# Directory entry of a VBA project in an OLE file (vbaProject.bin, or the _VBA_PROJECT_CUR of an
# embedded .xls, or a Word document's Macros/VBA): names are UTF-16LE, case-insensitive.
_VBA_STORAGE = _caseless("_", ("VBA_PROJECT",), "le")
_OVERLAP = 64  # longer than any pattern searched in chunks, so none is missed at a boundary
_RELATIONSHIP = re.compile(r"<(?:[\w.-]+:)?Relationship\b([^>]*)>")
_REL_TYPE = re.compile(r"""\bType\s*=\s*["']([^"']*)["']""")
_EXTERNAL_MODE = re.compile(r"""\bTargetMode\s*=\s*["']\s*External\s*["']""", re.IGNORECASE)
# Relationship types (last path segment, lower-cased) of code that runs ...
_MACRO_REL_TYPES = frozenset({
    "vbaproject", "vbaprojectsignature", "vbaprojectsignatureagile", "vbaprojectsignaturev3",
    "xlmacrosheet", "xlintlmacrosheet", "control", "activexcontrolbinary",
})  # fmt: skip
# ... of links to another file or data source (externalLinkPath also has xlPathMissing,
# xlStartup... under .../xlExternalLinkPath/, whose last segments are listed too) ...
_LINK_REL_TYPES = frozenset({
    "externallink", "externallinkpath", "xlpathmissing", "xlstartup", "xlalternatestartup",
    "xllibrary", "externallinklong", "connections", "querytable", "ddelink",
})  # fmt: skip
# ... and of parts that are harmless inside the package but fetch something when External
# (hyperlinks are External too, and open only when clicked: they are fine).
_LINKABLE_REL_TYPES = frozenset({"oleobject", "package", "image", "attachedtemplate", "frame"})
# Cheap pre-check: every relationship above mentions one of these words (or is External).
_REL_WORDS = (*_MACRO_REL_TYPES, *_LINK_REL_TYPES, "external")
_MACRO_CONTENT_TYPES = ("vbaproject", "macrosheet", "activex")
_LINK_CONTENT_TYPES = ("externallink", "spreadsheetml.connections", "querytable")


def _norm(name: str) -> str:
    # OPC part names are case-insensitive; some writers use Windows separators (Excel copes)
    return part_key(name)


def _classify_zip(job: _Job) -> tuple[FileKind, str]:
    try:
        pkg = Package(job.data, job.limits)
    except ZipError as exc:  # damaged, empty, bombs, traversal, duplicates
        kind = FileKind.TOO_LARGE if exc.fault is ZipFault.FILE_TOO_LARGE else FileKind.CORRUPT
        return kind, exc.detail
    job.package = pkg
    by_name = pkg.by_key
    if "mimetype" in by_name or "meta-inf/manifest.xml" in by_name:
        verdict = _classify_odf(pkg)
        if verdict:
            return verdict
    if "[content_types].xml" in by_name:
        return _classify_ooxml(pkg)
    if any(n.endswith(".iwa") or n.endswith("index.zip") for n in by_name):
        # Keynote has a CalculationEngine too; only Numbers has table tiles and no slides
        slides = any("slide" in n for n in by_name)
        numbers = any("/tables/" in n or n.split("/", 1)[0].endswith(".numbers")
                      for n in by_name)  # fmt: skip
        if numbers and not slides:
            return FileKind.OTHER_SPREADSHEET, "Apple Numbers document"
        return FileKind.ZIP_OTHER, "Apple iWork document (Keynote/Pages)"
    if any(n.startswith("xl/") for n in by_name):
        return FileKind.CORRUPT, "OOXML package without [Content_Types].xml"
    return FileKind.ZIP_OTHER, f"zip archive ({len(pkg.infos)} entries)"


def _peek(pkg: Package, info: zipfile.ZipInfo, limit: int = _PEEK_BYTES) -> bytes:
    """Inflate at most ``limit`` bytes of one entry (the CRC is checked only if it all fits)."""
    try:
        return pkg.head(info, limit)
    except ZipError as exc:
        if exc.fault is ZipFault.ENCRYPTED:
            raise _Verdict(
                FileKind.ENCRYPTED, "zip entries are password-protected (zip encryption)"
            ) from None
        raise _corrupt(exc.detail) from None


def _decode_xml(raw: bytes) -> str:
    """Decode an XML part; UTF-16 is legal with or without a BOM (XML 1.0 appendix F)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    if raw.startswith(b"\x00<"):
        return raw.decode("utf-16-be", errors="replace")
    if raw.startswith(b"<\x00"):
        return raw.decode("utf-16-le", errors="replace")
    return raw.decode("utf-8", errors="replace")


def _xml_text(raw: bytes, part: str) -> str:
    text = _decode_xml(raw)
    # OPC forbids DTDs in package parts; a DOCTYPE is how entity-expansion bombs get in
    if _DOCTYPE.search(text, 0, 4096):
        raise _corrupt(f"{part} contains a DOCTYPE (XML entity bomb?)")
    return text


class _Parts:
    """What a pass over every part's bytes found (see :func:`_scan_parts`)."""

    def __init__(self) -> None:
        self.macros = ""  # detail, when a part is macro code or ActiveX
        self.external = ""  # detail, when a relationship links to another file or data source


def _inflate(pkg: Package, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part's bytes in bounded chunks; only patterns are searched, so no CRC check."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _corrupt(f"{info.filename!r} uses compression method {info.compress_type}")
    return pkg.chunks(info, verify=False)


def _scan_parts(pkg: Package, parts: _Parts) -> None:
    """Read every part once, whole, in bounded chunks.

    * XML (by its first bytes, whatever its name): a DTD anywhere is refused, not only in the
      prolog's first bytes (a long comment can push it far down; UTF-16 spells it with NULs).
    * An OLE compound file (by its magic, whatever its name): a VBA project is macro code.
    * Relationship parts: relationships to macro code, ActiveX, or another file or data source.
    """
    for name, info in pkg.by_key.items():
        if info.file_size == 0 or name.endswith("/"):
            continue
        chunks = _inflate(pkg, info)
        first = next(chunks, b"")
        if first.startswith(_OLE_MAGIC):
            if _search_chunks(_VBA_STORAGE, first, chunks):
                parts.macros = parts.macros or f"VBA project in {info.filename!r}"
            continue
        dtd = _dtd_pattern(first)
        if dtd is None:
            continue  # an image or other binary part
        if name.endswith(".rels"):
            _check_relationships(
                info.filename, first, chunks, dtd, parts, limit=pkg.limits.small_part_bytes
            )
        elif _search_chunks(dtd, first, chunks):
            raise _corrupt(f"{info.filename} contains a DOCTYPE (XML entity bomb?)")


def _search_chunks(pattern: re.Pattern[bytes], first: bytes, rest: Iterator[bytes]) -> bool:
    """Whether ``pattern`` (shorter than ``_OVERLAP``) occurs in the concatenated chunks."""
    tail = b""
    for chunk in itertools.chain((first,), rest):
        if pattern.search(tail + chunk):
            return True
        tail = chunk[-_OVERLAP:]
    return False


def _dtd_pattern(head: bytes) -> re.Pattern[bytes] | None:
    """The DOCTYPE/ENTITY pattern in the encoding the part's first bytes show; None: not XML."""
    if head.startswith((b"\xff\xfe", b"<\x00")) or (head[:1].isspace() and head[1:2] == b"\x00"):
        return _DTD_UTF16LE
    if head.startswith((b"\xfe\xff", b"\x00<")):
        return _DTD_UTF16BE
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _DTD_B
    return None


def _check_relationships(
    part: str,
    first: bytes,
    rest: Iterator[bytes],
    dtd: re.Pattern[bytes],
    parts: _Parts,
    *,
    limit: int,
) -> None:
    body = bytearray()
    for chunk in itertools.chain((first,), rest):
        body += chunk
        if len(body) > limit:
            raise _corrupt(f"{part} has more than {limit} bytes of relationships")
    if dtd.search(body):
        raise _corrupt(f"{part} contains a DOCTYPE (XML entity bomb?)")
    text = _decode_xml(bytes(body))
    low = text.lower()
    if not any(word in low for word in _REL_WORDS):
        return  # the usual case: sheets, styles, themes, hyperlinks
    for match in _RELATIONSHIP.finditer(text):
        attrs = match.group(1)
        rtype = _REL_TYPE.search(attrs)
        kind = rtype.group(1).strip().rsplit("/", 1)[-1].lower() if rtype else ""
        external = _EXTERNAL_MODE.search(attrs) is not None
        if kind in _MACRO_REL_TYPES:
            parts.macros = parts.macros or f"{kind} relationship in {part!r}"
        elif kind in _LINK_REL_TYPES or (external and kind in _LINKABLE_REL_TYPES):
            parts.external = parts.external or f"{kind} relationship in {part!r}"


def _content_type_signals(content_types: str, parts: _Parts) -> None:
    low = content_types.lower()
    if not any(word in low for word in (*_MACRO_CONTENT_TYPES, *_LINK_CONTENT_TYPES)):
        return
    for match in itertools.chain(
        _OVERRIDE.finditer(content_types), _DEFAULT.finditer(content_types)
    ):
        ct = _CONTENT_TYPE.search(match.group(1))
        value = ct.group(1).strip().lower() if ct else ""
        if any(word in value for word in _MACRO_CONTENT_TYPES):
            parts.macros = parts.macros or f"content type {value}"
        elif any(word in value for word in _LINK_CONTENT_TYPES):
            parts.external = parts.external or f"content type {value}"


def _classify_ooxml(pkg: Package) -> tuple[FileKind, str]:
    by_name = pkg.by_key
    ct_info = by_name["[content_types].xml"]
    content_types = _xml_text(_peek(pkg, ct_info), "[Content_Types].xml")
    kind: FileKind | None = None
    what = ""
    main_part = ""
    for match in _OVERRIDE.finditer(content_types):
        attrs = match.group(1)
        ct = _CONTENT_TYPE.search(attrs)
        part = _PART_NAME.search(attrs)
        if ct and part and ct.group(1).strip().lower() in _CT_MAIN:
            kind, what = _CT_MAIN[ct.group(1).strip().lower()]
            main_part = _norm(part.group(1).strip()).lstrip("/")
            break
    if kind is None:
        # xlsb (and a few writers) declare the workbook through a Default extension mapping
        for match in _DEFAULT.finditer(content_types):
            attrs = match.group(1)
            ct = _CONTENT_TYPE.search(attrs)
            ext = _EXTENSION.search(attrs)
            if ct and ext and ct.group(1).strip().lower() in _CT_MAIN:
                candidate = f"xl/workbook.{ext.group(1).strip().lower()}"
                if candidate in by_name:
                    kind, what = _CT_MAIN[ct.group(1).strip().lower()]
                    main_part = candidate
                    break
    if kind is None:
        if "xl/workbook.xml" in by_name or "xl/workbook.bin" in by_name:
            return FileKind.CORRUPT, "[Content_Types].xml does not declare the workbook part"
        return FileKind.ZIP_OTHER, "OOXML package that is not a spreadsheet"
    if kind is FileKind.ZIP_OTHER:
        return kind, what
    if main_part not in by_name:
        return FileKind.CORRUPT, f"workbook part {main_part!r} is missing"
    has_macros = "vbaproject" in content_types.lower() or any(
        n.endswith("vbaproject.bin") or n.startswith("xl/macrosheets/") for n in by_name
    )
    if kind is FileKind.XLSB:
        return kind, what + (" with VBA macros" if has_macros else "")
    if kind is FileKind.XLSM:
        return kind, what
    # Whoever opens the next copy must never be prompted to run or fetch anything.
    parts = _Parts()
    if has_macros:
        parts.macros = "VBA project or macro sheet part"
    _content_type_signals(content_types, parts)
    _scan_parts(pkg, parts)
    if parts.macros:
        return FileKind.MACROS, f"{what} carrying macro code or ActiveX ({parts.macros})"
    if parts.external:
        return FileKind.EXTERNAL_LINKS, f"{what} linking to other files ({parts.external})"
    info = by_name[main_part]
    workbook = _xml_text(_peek(pkg, info), main_part)
    complete = info.file_size <= _PEEK_BYTES
    if complete and not _SHEET_ELEMENT.search(workbook):
        return FileKind.CORRUPT, "workbook lists no sheets"
    if _STRICT_NS in workbook[:4096] and kind is FileKind.XLSX:
        return FileKind.STRICT_XLSX, f"{what}, ISO 29500 Strict (openpyxl sees no sheets)"
    return kind, what


def _classify_odf(pkg: Package) -> tuple[FileKind, str] | None:
    by_name = pkg.by_key
    mimetype = ""
    if "mimetype" in by_name:
        mimetype = _peek(pkg, by_name["mimetype"], 256).decode("ascii", errors="replace").strip()
    manifest = ""
    if "meta-inf/manifest.xml" in by_name:
        manifest = _xml_text(_peek(pkg, by_name["meta-inf/manifest.xml"]), "META-INF/manifest.xml")
    if not mimetype.startswith("application/vnd.oasis.opendocument"):
        if "opendocument.spreadsheet" not in manifest:
            return None
        mimetype = "application/vnd.oasis.opendocument.spreadsheet"
    if "encryption-data" in manifest:
        return FileKind.ENCRYPTED, "password-protected OpenDocument file"
    if "opendocument.spreadsheet" in mimetype:
        return FileKind.ODS, "OpenDocument spreadsheet"
    return FileKind.ZIP_OTHER, f"OpenDocument file ({mimetype.rsplit('.', 1)[-1]})"


# --- OLE compound files -----------------------------------------------------------------------

_FREE, _END = 0xFFFFFFFF, 0xFFFFFFFE


class _Ole:
    """Just enough of MS-CFB to list the root storage and read the head of a stream.

    Every sector number and chain is checked against the file size, and every chain walk is
    bounded, because fuzzed files loop their FAT (that is what makes calamine allocate 8 GiB).
    """

    def __init__(self, data: bytes) -> None:
        if len(data) < 512:
            raise _corrupt("OLE file shorter than its header")
        self.data = data
        shift, mini_shift = struct.unpack_from("<HH", data, 0x1E)
        if shift not in (9, 12) or mini_shift != 6:
            raise _corrupt(f"OLE header has sector shift {shift}/{mini_shift}")
        self.sector: int = 1 << int(shift)
        self.n_sectors = (len(data) + self.sector - 1) // self.sector - 1
        (n_fat, self.dir_start, self.mini_cutoff, self.minifat_start, self.n_minifat,
         difat_start, _n_difat) = struct.unpack_from("<I I 4x I I I I I", data, 0x2C)  # fmt: skip
        # Writers get these counts wrong (ExcelLibrary declares 17 mini FAT sectors in a 7-sector
        # file) and readers cope, so clamp them to what the file can hold instead of refusing.
        n_fat = min(n_fat, self.n_sectors)
        self.n_minifat = min(self.n_minifat, self.n_sectors)
        fat_sectors = [s for s in struct.unpack_from("<109I", data, 0x4C) if s < _END][:n_fat]
        sec, seen = difat_start, set()
        per = self.sector // 4
        while len(fat_sectors) < n_fat and sec < _END:
            if sec in seen or sec >= self.n_sectors:
                raise _corrupt("OLE DIFAT chain loops or leaves the file")
            seen.add(sec)
            entries = struct.unpack_from(f"<{per}I", data, self._offset(sec))
            fat_sectors.extend(s for s in entries[:-1] if s < _END)
            sec = entries[-1]
        self.fat_sectors = fat_sectors[:n_fat]
        self._minifat: list[int] | None = None
        self._ministream: bytes | None = None

    def _offset(self, sec: int) -> int:
        if sec >= self.n_sectors:
            raise _corrupt(f"OLE sector {sec} is beyond the end of the file")
        return (sec + 1) * self.sector

    def _next(self, sec: int) -> int:
        per = self.sector // 4
        index = sec // per
        if index >= len(self.fat_sectors):
            raise _corrupt("OLE FAT does not cover a used sector")
        value: int = struct.unpack_from("<I", self.data, self._offset(self.fat_sectors[index])
                                        + 4 * (sec % per))[0]  # fmt: skip
        return value

    def chain(self, start: int, limit: int) -> bytes:
        """Concatenate sectors of a FAT chain, at most ``limit`` bytes."""
        out = bytearray()
        sec, seen = start, set()
        while sec < _END and len(out) < limit:
            if sec in seen:
                raise _corrupt("OLE FAT chain loops")
            seen.add(sec)
            off = self._offset(sec)
            out += self.data[off : off + self.sector]
            sec = self._next(sec)
        return bytes(out[:limit])

    def root_entries(self) -> dict[str, tuple[int, int, int]]:
        """Names (lower-cased) of the root storage's children -> (type, start, size)."""
        raw = self.chain(self.dir_start, _MAX_OLE_DIR_ENTRIES * 128)
        count = len(raw) // 128

        def entry(i: int) -> tuple[str, int, int, int, int, int, int]:
            if not 0 <= i < count:
                raise _corrupt("OLE directory points outside itself")
            off = i * 128
            name_len, kind = struct.unpack_from("<HB", raw, off + 0x40)
            left, right, child = struct.unpack_from("<III", raw, off + 0x44)
            start, size = struct.unpack_from("<IQ", raw, off + 0x74)
            name_bytes = raw[off : off + max(0, min(name_len, 64) - 2)]
            name = name_bytes.decode("utf-16-le", errors="replace")
            return name, kind, left, right, child, start, size & 0xFFFFFFFF

        root = entry(0)
        if root[1] != 5:
            raise _corrupt("OLE directory has no root entry")
        self.root_start, self.root_size = root[5], root[6]
        found: dict[str, tuple[int, int, int]] = {}
        stack, seen = [root[4]], set()
        while stack:
            i = stack.pop()
            if i == _FREE:
                continue
            if i in seen:
                raise _corrupt("OLE directory tree loops")
            seen.add(i)
            name, kind, left, right, _child, start, size = entry(i)
            found[name.lower()] = (kind, start, size)
            stack += (left, right)
        return found

    def read_stream(self, start: int, size: int, limit: int) -> bytes:
        limit = min(size, limit)
        if size >= self.mini_cutoff:
            return self.chain(start, limit)
        # small streams live in 64-byte mini sectors inside the root entry's stream
        if self._minifat is None:
            raw = self.chain(self.minifat_start, self.n_minifat * self.sector)
            self._minifat = list(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
            self._ministream = self.chain(self.root_start, min(self.root_size, len(self.data)))
        assert self._ministream is not None
        out = bytearray()
        sec, seen = start, set()
        while sec < _END and len(out) < limit:
            if sec in seen or sec >= len(self._minifat):
                raise _corrupt("OLE mini FAT chain loops or leaves the mini stream")
            seen.add(sec)
            out += self._ministream[sec * 64 : sec * 64 + 64]
            sec = self._minifat[sec]
        return bytes(out[:limit])


def _classify_ole(data: bytes) -> tuple[FileKind, str]:
    try:
        ole = _Ole(data)
        entries = ole.root_entries()
    except struct.error:
        return FileKind.CORRUPT, "truncated OLE compound file"
    if "encryptedpackage" in entries or "encryptioninfo" in entries:
        return FileKind.ENCRYPTED, "encrypted OOXML package (OLE EncryptionInfo/EncryptedPackage)"
    for stream in ("workbook", "book"):
        if stream in entries:
            kind, start, size = entries[stream]
            if kind != 2:
                return FileKind.CORRUPT, f"OLE {stream!r} entry is not a stream"
            try:
                head = ole.read_stream(start, size, 64 * 1024)
            except struct.error:
                return FileKind.CORRUPT, "truncated OLE stream"
            if len(head) < 8:
                return FileKind.CORRUPT, "empty workbook stream"
            rtype, _length, version = struct.unpack_from("<HHH", head, 0)
            if rtype not in _BIFF_BOF:
                return FileKind.CORRUPT, "workbook stream does not start with a BIFF BOF record"
            biff = {0x0600: "BIFF8", 0x0500: "BIFF5"}.get(version, _BIFF_BOF[rtype])
            if _biff_filepass(head):
                return FileKind.ENCRYPTED, f"{biff} workbook with FILEPASS (password)"
            vba = " with VBA macros" if "_vba_project_cur" in entries else ""
            return FileKind.XLS, f"{biff} workbook in OLE container{vba}"
    if "nativecontent_main" in entries:
        return FileKind.OTHER_SPREADSHEET, "Quattro Pro workbook"
    if "worddocument" in entries:
        return FileKind.OLE_OTHER, "Word 97-2003 document (.doc)"
    if "powerpoint document" in entries:
        return FileKind.OLE_OTHER, "PowerPoint 97-2003 presentation (.ppt)"
    return FileKind.OLE_OTHER, "OLE compound file without a workbook stream"
