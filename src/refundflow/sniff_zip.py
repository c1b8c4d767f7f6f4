"""Sniffing a zip: OOXML (xlsx and its look-alikes), OpenDocument, Apple iWork, plain zips.

The container is opened and bounded by :class:`~refundflow.zipread.Package`; this module judges
what is inside: the declared main part, macro code, links to other files, DTDs, strict OOXML.
"""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Iterator

from .sniffkinds import OLE_MAGIC, FileKind, Job, Verdict, corrupt
from .zipread import Package, ZipError, ZipFault, part_key

PEEK_BYTES = 256 * 1024  # at most this much of [Content_Types].xml / workbook.xml is inflated


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


def classify_zip(job: Job) -> tuple[FileKind, str]:
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


def _peek(pkg: Package, info: zipfile.ZipInfo, limit: int = PEEK_BYTES) -> bytes:
    """Inflate at most ``limit`` bytes of one entry (the CRC is checked only if it all fits)."""
    try:
        return pkg.head(info, limit)
    except ZipError as exc:
        if exc.fault is ZipFault.ENCRYPTED:
            raise Verdict(
                FileKind.ENCRYPTED, "zip entries are password-protected (zip encryption)"
            ) from None
        raise corrupt(exc.detail) from None


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
        raise corrupt(f"{part} contains a DOCTYPE (XML entity bomb?)")
    return text


class _Parts:
    """What a pass over every part's bytes found (see :func:`_scan_parts`)."""

    def __init__(self) -> None:
        self.macros = ""  # detail, when a part is macro code or ActiveX
        self.external = ""  # detail, when a relationship links to another file or data source


def _inflate(pkg: Package, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part's bytes in bounded chunks; only patterns are searched, so no CRC check."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise corrupt(f"{info.filename!r} uses compression method {info.compress_type}")
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
        if first.startswith(OLE_MAGIC):
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
            raise corrupt(f"{info.filename} contains a DOCTYPE (XML entity bomb?)")


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
            raise corrupt(f"{part} has more than {limit} bytes of relationships")
    if dtd.search(body):
        raise corrupt(f"{part} contains a DOCTYPE (XML entity bomb?)")
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
    complete = info.file_size <= PEEK_BYTES
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
