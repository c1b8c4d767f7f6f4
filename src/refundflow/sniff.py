"""Decide what a dropped file is from its bytes, never from its name.

Runs on every file that lands in the inbox, in the sandboxed parser worker just before the
form reader (see :mod:`examine`), so it must be cheap (a few hundred microseconds for a
form-sized xlsx) and it must never raise: whatever goes wrong in here becomes a :class:`Sniffed`
of kind ``CORRUPT`` or ``UNKNOWN``. Memory stays bounded whatever the file: a zip is judged from
its central directory by :class:`~refundflow.zipread.Package` (declared sizes, counts, names,
within the limits of ``[parse] max_file_mb``), at most ``PEEK_BYTES``-sized reads of
``[Content_Types].xml`` and the workbook part, and one pass over every part's bytes in bounded
pieces (DTDs, VBA projects, relationships that run or fetch something); an OLE compound file is
walked by a small bounds-checked reader instead of a parser. The zip checks are in
:mod:`sniff_zip`, the OLE and BIFF ones in :mod:`sniff_ole`, the kinds in :mod:`sniffkinds`.

Only :attr:`FileKind.XLSX` and :attr:`FileKind.STRICT_XLSX` are candidates for the form reader
(see :attr:`Sniffed.accepted`); everything else carries a Chinese ``description`` and ``hint``
for the office staff and a :class:`~refundflow.errors.Reason` for the code.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import Reason
from .layout import REFUND_TEMPLATE_FILE
from .sniff_ole import classify_ole, raw_biff
from .sniff_zip import PEEK_BYTES, classify_zip
from .sniffkinds import ACCEPTED_KINDS, OLE_MAGIC, FileKind, Job, Verdict
from .zipread import DEFAULT_LIMITS, Package, ZipError, ZipFault, ZipLimits

__all__ = ["ACCEPTED_KINDS", "FileKind", "Sniffed", "sniff", "sniff_package"]

log = logging.getLogger(__name__)

# The zip container's limits are zipread.ZipLimits, from [parse] max_file_mb.
_SAMPLE = 8192  # head of the file used for text/markup heuristics

TEMPLATE_HINT_PATH = f"templates/{REFUND_TEMPLATE_FILE}"


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


# --- entry points -----------------------------------------------------------------------------


def sniff(data: bytes, *, name: str = "", limits: ZipLimits = DEFAULT_LIMITS) -> Sniffed:
    """Classify ``data``. ``name`` is only used to flag a misleading extension. Never raises."""
    return sniff_package(data, name=name, limits=limits)[0]


def sniff_package(
    data: bytes, *, name: str = "", limits: ZipLimits = DEFAULT_LIMITS
) -> tuple[Sniffed, Package | None]:
    """:func:`sniff`, and the zip package it opened (for the form reader to reuse)."""
    job = Job(data, limits)
    try:
        kind, detail = _classify(job)
    except Verdict as verdict:
        kind, detail = verdict.kind, verdict.detail
    except ZipError as exc:
        kind = FileKind.ENCRYPTED if exc.fault is ZipFault.ENCRYPTED else FileKind.CORRUPT
        detail = exc.detail
    except Exception as exc:  # a sniffer bug must reject one file, not stop the watcher
        log.warning("识别 %r 的文件类型时出错:%s: %s", name, type(exc).__name__, exc)
        kind, detail = FileKind.CORRUPT, f"unreadable structure ({type(exc).__name__})"
    try:
        return _verdict(kind, detail, name=name), job.package
    except Exception:  # pragma: no cover - only a bad name could get here
        return _verdict(kind, detail), job.package


# --- dispatch on magic bytes --------------------------------------------------------------------


def _classify(job: Job) -> tuple[FileKind, str]:
    data = job.data
    if not data:
        return FileKind.EMPTY, "0 bytes"
    head = data[:16]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return classify_zip(job)
    if head.startswith(OLE_MAGIC):
        return classify_ole(data)
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
    biff = raw_biff(data)
    if biff:
        return biff
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
            if b"<table" in data[:PEEK_BYTES].lower() or b"<table" in low:
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
