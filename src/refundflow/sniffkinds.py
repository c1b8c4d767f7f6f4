"""What :mod:`sniff` can say a file is, and how its helpers give a verdict at once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .zipread import Package, ZipLimits

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


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


class Verdict(Exception):  # control flow only, never escapes sniff()
    """Raised deep inside a helper to return a verdict at once."""

    def __init__(self, kind: FileKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def corrupt(detail: str) -> Verdict:
    return Verdict(FileKind.CORRUPT, detail)


@dataclass
class Job:
    """One file being sniffed, and the zip package opened for it (if it is a zip)."""

    data: bytes
    limits: ZipLimits
    package: Package | None = None
