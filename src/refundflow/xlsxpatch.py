"""Patch a routed workbook at the zip/XML level, keeping everything the sender put in it.

The watcher hands every routed copy of a refund form through :func:`apply_patch`: it writes a few
cells (the form number), replaces the 流转记录 sheet, adds or removes the 退回原因 sheet and
highlights problem cells. Everything else in the workbook - values, formats, comments, images,
extra sheets, defined names, data validation, protection, parts we have never heard of - must
survive byte for byte, and it has to be fast, so a full openpyxl load + save (which drops
images, comments' layout, unknown parts and much formatting) is out of the question.

Design: only the parts we change are decoded (``workbook.xml``, its rels, ``[Content_Types].xml``,
the form sheet, ``styles.xml``, and - only when the selected tab must change - other sheets);
every other zip member is copied as its *raw compressed bytes* (no inflate/deflate round trip).

XML editing is a *splice*: elements are located with namespace-aware regular expressions (the
prefix bound to the SpreadsheetML namespace is read from the root element, so ``<x:row>``
written by the OpenXML SDK works as well as Excel's default namespace; transitional and strict
namespace URIs are both accepted), and only the exact byte ranges of the elements we change
are replaced. Everything else - namespace prefixes, ``mc:Ignorable`` lists, attribute order,
whitespace, unknown extension elements - stays as the producer wrote it. Re-serialising with
ElementTree would rename prefixes (breaking ``mc:Ignorable="x14ac xr"``) and cost far more.
Comments, CDATA sections and processing instructions are blanked out in a same-length
"search view" of the text so no markup inside them can ever be matched; DTDs are refused.
"""

from __future__ import annotations

import io
import math
import posixpath
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

from .errors import FormReadError, Reason
from .layout import HISTORY_SHEET, RETURN_SHEET, cell_to_rc, rc_to_cell

__all__ = [
    "HIGHLIGHT_RGB",
    "Patch",
    "PatchError",
    "apply_patch",
]

HIGHLIGHT_RGB = "FFFFC8CF"
"""Fill colour of highlighted problem cells. Deliberately one step away from Excel's built-in
"Bad"/"差" style (FFC7CE) so stripping our highlights never removes formatting staff applied."""

MAX_INPUT_BYTES = 50 * 1024 * 1024
"""Largest workbook accepted; our forms are 30-100 KB, anything near this is not one of them."""
MAX_PART_BYTES = 32 * 1024 * 1024
"""Largest decompressed XML part we parse (guards against zip bombs)."""
MAX_MEMBERS = 5000

DEFLATE_LEVEL = 1
"""zlib level for the few members we rewrite (the rest are copied compressed as they were):
level 1 is ~5x faster than the default 6 on sheet XML for ~25% more bytes of that one part."""

_NS_MAIN = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
)
_NS_REL = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
_NS_PKG_REL = ("http://schemas.openxmlformats.org/package/2006/relationships",)
_NS_CT = ("http://schemas.openxmlformats.org/package/2006/content-types",)
_CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_MAX_ROW = 1_048_576
_MAX_COL = 16_384


class PatchError(FormReadError):
    """The workbook cannot be patched (damaged, not a form workbook, or an impossible patch)."""


@dataclass(frozen=True)
class Patch:
    """What to change in a routed copy; every field defaults to "leave as is"."""

    sheet: str
    """The form's sheet name as it appears in workbook.xml."""
    cell_values: Mapping[str, str | float] = field(default_factory=dict)
    """A1 address on the form sheet -> text, written as an inline string keeping the cell's
    style (an empty text clears the value), or a number (an amount, a date's serial), written
    as a number the cell's number format shows. Any formula in the cell is removed."""
    history_rows: Sequence[Sequence[str]] = ()
    """Full content of the 流转记录 sheet, header row first; replaces an existing one."""
    return_rows: Sequence[Sequence[str]] = ()
    """Content of a 退回原因 sheet, header row first, inserted as the first and active tab."""
    highlight_cells: Sequence[str] = ()
    """Cells on the form sheet to fill with :data:`HIGHLIGHT_RGB` (problem cells)."""
    strip_return_sheet: bool = True
    """Remove an existing 退回原因 sheet and every highlight of ours before anything else."""
    missing_names: Mapping[str, str] = field(default_factory=dict)
    """Workbook-scope defined names to put back when the workbook has none of that name
    (name -> formula text, e.g. the template's version mark, which some writers drop); a name
    that exists is left as it is."""


def _fail(message: str, reason: Reason = Reason.CORRUPT) -> PatchError:
    return PatchError(message, reason=reason)


# --------------------------------------------------------------------------------------------
# XML text helpers
# --------------------------------------------------------------------------------------------

_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
# One attribute, with the whitespace before it: scanning a start tag left to right with this
# consumes every value whole, so text inside a value can never be mistaken for an attribute.
_ATTR_RE = re.compile(r"(\s+)([^\s=/>]+)\s*=\s*(\"[^\"]*\"|'[^']*')")
_TAIL_RE = re.compile(r"(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")
_ROOT_RE = re.compile(r"<([^\s/>!?]+)")
_SPECIAL_RE = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.S)
_ENCODING_RE = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")
_BETWEEN_TAGS_RE = re.compile(r">\s+<")
# Characters XML 1.0 cannot carry are stored as _xHHHH_ (Excel and calamine decode it), and a
# literal "_xHHHH_" must then itself be escaped as _x005F_xHHHH_ to survive.
_NOT_XML = r"\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_XSTRING_RE = re.compile(rf"[{_NOT_XML}]|_(?=x[0-9A-Fa-f]{{4}}_)")
# Anything _xstring changes: one search instead of six passes over the usual plain text.
_XSTRING_ANY_RE = re.compile(rf"[\r&<>{_NOT_XML}]|_(?=x[0-9A-Fa-f]{{4}}_)")


def _has_pair(text: str, pair: str, start: int) -> bool:
    """``pair in text[start:]``, for a pair whose second character is rare in XML ("!", "?").

    str.find of one character is a memchr, of two characters a scan ~100x slower (20 us on a
    form sheet), so look for the rare character and check the one before it.
    """
    i = text.find(pair[1], start + 1)
    for _ in range(8):
        if i == -1:
            return False
        if text[i - 1] == pair[0]:
            return True
        i = text.find(pair[1], i + 1)
    # Many candidates (formulas are full of "!"): search the rest for the pair itself.
    return i != -1 and text.find(pair, i - 1) != -1


def _unescape(value: str) -> str:
    if "&" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref[0] != "#":
            return _ENTITIES[ref]
        code = int(ref[2:], 16) if ref[1] == "x" else int(ref[1:])
        return chr(code) if 0 < code <= 0x10FFFF else ""

    return _ENTITY_RE.sub(one, value)


def _esc_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc_attr(value: str) -> str:
    return (
        _esc_text(value)
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def _xstring(value: str) -> str:
    """Cell text as element content: OOXML ``_xHHHH_`` escapes, then XML escapes.

    CR/CRLF become LF, Excel's own in-cell line break, rather than ``_x000D_`` which openpyxl
    would show literally.
    """
    if not _XSTRING_ANY_RE.search(value):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _XSTRING_RE.sub(lambda m: f"_x{ord(m.group()):04X}_", value)
    return _esc_text(value)


def _inline_string(text: str, prefix: str = "") -> str:
    """``<is><t>`` content of an inline-string cell (``prefix``: the sheet's main prefix)."""
    p = f"{prefix}:" if prefix else ""
    return f'<{p}is><{p}t xml:space="preserve">{_xstring(text)}</{p}t></{p}is>'


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true")


def _attrs_of(head: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for _space, name, quoted in _ATTR_RE.findall(head):  # findall: no Match objects to build
        value = quoted[1:-1]
        out[name] = _unescape(value) if "&" in value else value
    return out


def _set_attrs(head: str, changes: Mapping[str, str | None]) -> str:
    """Return start tag ``head`` with attributes set (value) or removed (None), in place."""
    pending = dict(changes)
    parts: list[str] = []
    pos = 0
    for m in _ATTR_RE.finditer(head):
        name = m.group(2)
        if name in pending:
            new = pending.pop(name)
            parts.append(head[pos : m.start()])
            if new is not None:
                parts.append(f'{m.group(1)}{name}="{_esc_attr(new)}"')
            pos = m.end()
    parts.append(head[pos:])
    out = "".join(parts)
    extra = "".join(f' {k}="{_esc_attr(v)}"' for k, v in pending.items() if v is not None)
    if extra:
        cut = len(out) - (2 if out.endswith("/>") else 1)
        out = out[:cut].rstrip() + extra + out[cut:]
    return out


class _El:
    """One element located in an :class:`_Xml` text (offsets into that text)."""

    __slots__ = ("_attrs", "close_start", "end", "head", "head_end", "qname", "start")

    def __init__(
        self, start: int, head_end: int, close_start: int, end: int, qname: str, head: str
    ) -> None:
        self.start = start  # '<' of the start tag
        self.head_end = head_end  # just after the start tag's '>'
        self.close_start = close_start  # '<' of the end tag (== head_end if empty)
        self.end = end  # just after the element
        self.qname = qname
        self.head = head
        self._attrs: dict[str, str] | None = None

    @classmethod
    def added(cls, start: int, qname: str, xml: str) -> _El:
        """The empty element ``xml`` (one start tag ending in "/>") just inserted at ``start``."""
        end = start + len(xml)
        return cls(start, end, end, end, qname, xml)

    @property
    def empty(self) -> bool:
        return self.head.endswith("/>")

    @property
    def attrs(self) -> dict[str, str]:
        if self._attrs is None:
            self._attrs = _attrs_of(self.head)
        return self._attrs


@lru_cache(maxsize=256)
def _open_re(qname: str) -> re.Pattern[str]:
    # A literal prefix lets the regex engine use its fast substring search.
    return re.compile(rf"<{re.escape(qname)}(?=[\s/>])")


@lru_cache(maxsize=256)
def _close_re(qname: str) -> re.Pattern[str]:
    return re.compile(rf"</{re.escape(qname)}\s*>")


@lru_cache(maxsize=64)
def _record_re(qname: str) -> re.Pattern[str]:
    """A whole element that never contains itself (style records): one C-level pass."""
    # The matches of <q(?:[^>/"']|"[^"]*"|'[^']*')*(?:/>|>.*?</q\s*>) (re.S), ~3x faster: runs of
    # plain characters are taken whole and possessively (backtracking can never find another
    # match here), and the lazy .*? is unrolled into "anything but a close tag".
    q = re.escape(qname)
    return re.compile(
        rf"<{q}(?=[\s/>])(?:[^>/\"']++|\"[^\"]*+\"|'[^']*+')*+"
        rf"(?:/>|>[^<]*+(?:<(?!/{q}\s*>)[^<]*+)*+</{q}\s*>)"
    )


class _Xml:
    """A decoded XML part edited by splicing (see the module docstring)."""

    def __init__(self, raw: bytes, part: str, namespaces: tuple[str, ...]) -> None:
        self.part = part
        self.bom = b""
        self.encoding = "utf-8"
        try:
            if raw.startswith(b"\xef\xbb\xbf"):
                self.bom, text = raw[:3], raw[3:].decode("utf-8")
            elif raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
                self.encoding, text = "utf-16", raw.decode("utf-16")
            else:
                text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(f"工作簿部件 {part} 的编码无法识别,文件可能已损坏") from exc
        declared = _ENCODING_RE.match(text[:200])
        if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf-16"):
            raise _fail(f"工作簿部件 {part} 使用了不支持的编码 {declared.group(1)}")
        self.text = text
        self._mask: str | None = None
        self._first_memo: dict[tuple[str, int, int | None], _El | None] = {}
        self._first_text = text  # the text _first_memo belongs to
        m = _ROOT_RE.search(self.mask)
        tail = _TAIL_RE.match(self.mask, m.end()) if m else None
        if m is None or tail is None:
            raise _fail(f"工作簿部件 {part} 不是有效的 XML")
        root_head = text[m.start() : tail.end()]
        self.root_qname = m.group(1)
        prefix, _, local = self.root_qname.rpartition(":")
        self.root_prefix: str = prefix
        self.root_local: str = local
        self.decls = {
            (k[6:] if k.startswith("xmlns:") else ""): v
            for k, v in _attrs_of(root_head).items()
            if k == "xmlns" or k.startswith("xmlns:")
        }
        self.ns = self.decls.get(self.root_prefix, "")
        if self.ns not in namespaces:
            raise _fail(f"工作簿部件 {part} 的命名空间不正确({self.ns or '无'})")
        # Every prefix bound to the same namespace as the root (usually just one).
        self.prefixes = tuple(p for p, uri in self.decls.items() if uri == self.ns)

    @property
    def mask(self) -> str:
        """The text with comments/CDATA/PIs blanked (same length), for searching only."""
        if self._mask is None:
            text = self.text
            body = text.find("?>") + 2 if text.startswith("<?xml") else 0
            if _has_pair(text, "<!", 0) or _has_pair(text, "<?", body):
                if "<!DOCTYPE" in text:
                    raise _fail(f"工作簿部件 {self.part} 含有 DTD 声明,拒绝处理", Reason.CORRUPT)
                head = text[:body]
                self._mask = head + _SPECIAL_RE.sub(lambda m: " " * len(m.group()), text[body:])
            else:
                self._mask = text
        return self._mask

    def q(self, local: str) -> str:
        """Qualified name for a new element in this part's main namespace."""
        return f"{self.root_prefix}:{local}" if self.root_prefix else local

    def heads(self, local: str, start: int = 0, end: int | None = None) -> Iterator[_El]:
        """Start tags of ``local`` elements in [start, end), in document order (no close)."""
        mask = self.mask
        stop = len(mask) if end is None else end
        names = [f"{p}:{local}" if p else local for p in self.prefixes]
        found: list[_El] = []
        for qname in names:
            for m in _open_re(qname).finditer(mask, start, stop):
                tail = _TAIL_RE.match(mask, m.end())
                if tail is None or tail.end() > stop:
                    raise _fail(f"工作簿部件 {self.part} 的 XML 结构损坏")
                el = _El(
                    m.start(),
                    tail.end(),
                    tail.end(),
                    tail.end(),
                    qname,
                    self.text[m.start() : tail.end()],
                )
                if len(names) == 1:
                    yield el
                else:
                    found.append(el)
        yield from sorted(found, key=lambda e: e.start)

    def close(self, head: _El) -> _El:
        """Complete a start tag from :meth:`heads` with its end tag (handles nesting)."""
        if head.empty:
            return head
        mask = self.mask
        open_rx, close_rx = _open_re(head.qname), _close_re(head.qname)
        depth, pos = 1, head.head_end
        while True:
            c = close_rx.search(mask, pos)
            if c is None:
                raise _fail(f"工作簿部件 {self.part} 的 XML 结构损坏(缺少 </{head.qname}>)")
            for o in open_rx.finditer(mask, pos, c.start()):
                tail = _TAIL_RE.match(mask, o.end())
                if tail is not None and tail.group(1) != "/":
                    depth += 1
            depth -= 1
            if depth == 0:
                return _El(head.start, head.head_end, c.start(), c.end(), head.qname, head.head)
            pos = c.end()

    def all(self, local: str, start: int = 0, end: int | None = None) -> list[_El]:
        """Complete elements named ``local`` in [start, end) (top level of that range)."""
        out: list[_El] = []
        for h in self.heads(local, start, end):
            if out and h.start < out[-1].end:
                continue  # nested inside the previous one
            out.append(self.close(h))
        return out

    def first(self, local: str, start: int = 0, end: int | None = None) -> _El | None:
        # Memoised per text (every edit makes a new string): later steps look up the same
        # boxes again (<sheets>, <cellXfs>...).
        if self._first_text is not self.text:
            self._first_memo.clear()
            self._first_text = self.text
        key = (local, start, end)
        if key not in self._first_memo:
            found = None
            for h in self.heads(local, start, end):
                found = self.close(h)
                break
            self._first_memo[key] = found
        return self._first_memo[key]

    def records(self, local: str, box: _El) -> list[tuple[int, int]]:
        """Spans of the ``local`` children of ``box`` (elements that never nest)."""
        spans: list[tuple[int, int]] = []
        for p in self.prefixes:
            rx = _record_re(f"{p}:{local}" if p else local)
            spans += [m.span() for m in rx.finditer(self.mask, box.head_end, box.close_start)]
        return sorted(spans) if len(self.prefixes) > 1 else spans

    def inner(self, el: _El) -> str:
        return self.text[el.head_end : el.close_start]

    def replace(self, start: int, end: int, new: str) -> None:
        self.text = self.text[:start] + new + self.text[end:]
        self._mask = None

    def splice(self, edits: list[tuple[int, int, str]]) -> None:
        """Apply non-overlapping edits (start, end, text) in one pass."""
        if not edits:
            return
        edits.sort(key=lambda e: e[0])  # stable: insertions at one point keep their order
        parts: list[str] = []
        pos = 0
        for start, end, new in edits:
            if start < pos:
                raise AssertionError("overlapping XML edits")
            parts.append(self.text[pos:start])
            parts.append(new)
            pos = end
        parts.append(self.text[pos:])
        self.text = "".join(parts)
        self._mask = None

    def append_child(self, parent: _El, xml: str) -> None:
        """Insert ``xml`` as the last child of ``parent``."""
        if parent.empty:
            head = parent.head[:-2].rstrip() + ">"
            self.replace(parent.start, parent.end, f"{head}{xml}</{parent.qname}>")
        else:
            self.replace(parent.close_start, parent.close_start, xml)

    def set_attrs(self, el: _El, changes: Mapping[str, str | None]) -> None:
        self.replace(el.start, el.head_end, _set_attrs(el.head, changes))

    def encode(self) -> bytes:
        if self.encoding == "utf-16":
            return self.text.encode("utf-16")
        return self.bom + self.text.encode("utf-8")


# --------------------------------------------------------------------------------------------
# Zip container: bounded reads, raw copies of untouched members
# --------------------------------------------------------------------------------------------

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_VERSION_NEEDED = {
    zipfile.ZIP_STORED: 10,
    zipfile.ZIP_DEFLATED: 20,
    zipfile.ZIP_BZIP2: 46,
    zipfile.ZIP_LZMA: 63,
}


def _dos_datetime(dt: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    y, mo, d, h, mi, s = dt
    if y < 1980:
        return 0, (0 << 9) | (1 << 5) | 1
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


class _Zip:
    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_INPUT_BYTES:
            raise _fail("文件过大,不是退款申请表工作簿", Reason.TOO_LARGE)
        try:
            self._zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise _fail("文件不是有效的 Excel 工作簿(zip 结构损坏)", Reason.NOT_A_WORKBOOK) from exc
        if len(infos) > MAX_MEMBERS:
            raise _fail("工作簿包含的部件过多,拒绝处理", Reason.TOO_LARGE)
        self.data = data
        self.infos = infos
        self.comment = self._zf.comment
        self._by_key: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            key = info.filename.casefold()
            if key in self._by_key:
                raise _fail(f"工作簿中部件 {info.filename} 重复出现,文件已损坏")
            if info.flag_bits & 0x1:
                raise _fail("工作簿已加密,无法处理", Reason.ENCRYPTED)
            self._by_key[key] = info

    def lookup(self, name: str) -> str | None:
        """Actual member name for a part name (OPC part names are case-insensitive)."""
        info = self._by_key.get(name.casefold())
        return info.filename if info else None

    def info(self, name: str) -> zipfile.ZipInfo:
        return self._by_key[name.casefold()]

    def _raw(self, info: zipfile.ZipInfo) -> memoryview:
        off = info.header_offset
        if off < 0 or off + _LOCAL.size > len(self.data):
            raise _fail(f"工作簿部件 {info.filename} 的位置超出文件范围,文件已损坏")
        sig, *_, name_len, extra_len = _LOCAL.unpack_from(self.data, off)
        start = off + _LOCAL.size + name_len + extra_len
        end = start + info.compress_size
        if sig != 0x04034B50 or end > len(self.data):
            raise _fail(f"工作簿部件 {info.filename} 已损坏")
        return memoryview(self.data)[start:end]

    def read(self, name: str) -> bytes:
        """Decompress a member, refusing anything larger than :data:`MAX_PART_BYTES`."""
        info = self.info(name)
        if info.file_size > MAX_PART_BYTES:
            raise _fail(f"工作簿部件 {name} 过大,拒绝处理", Reason.TOO_LARGE)
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                out = bytes(self._raw(info))
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                out = zlib.decompressobj(-15).decompress(self._raw(info), MAX_PART_BYTES + 1)
            else:
                with self._zf.open(info) as fh:
                    out = fh.read(MAX_PART_BYTES + 1)
        except (zlib.error, zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise _fail(f"工作簿部件 {name} 无法解压,文件已损坏") from exc
        if len(out) > MAX_PART_BYTES:
            raise _fail(f"工作簿部件 {name} 过大,拒绝处理", Reason.TOO_LARGE)
        if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
            raise _fail(f"工作簿部件 {name} 校验失败,文件已损坏")
        return out

    def build(
        self,
        replaced: Mapping[str, bytes],
        removed: set[str],
        added: Sequence[tuple[str, bytes]],
        stamp: tuple[int, int, int, int, int, int],
    ) -> bytes:
        """Write the new archive: original member order, untouched members copied raw."""
        writer = _ZipWriter()
        for info in self.infos:
            if info.filename in removed:
                continue
            made_by = (info.create_system << 8) | (info.create_version & 0xFF)
            if info.filename in replaced:
                method = info.compress_type
                if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    method = zipfile.ZIP_DEFLATED
                entry = _Entry(
                    info.filename,
                    method,
                    info.date_time,
                    made_by,
                    info.internal_attr,
                    info.external_attr,
                )
                writer.add(entry, replaced[info.filename])
            else:
                # Bits 1-2 only describe the deflate level; bit 3 (data descriptor) is dropped
                # because sizes and CRC go into the local header.
                entry = _Entry(
                    info.filename,
                    info.compress_type,
                    info.date_time,
                    made_by,
                    info.internal_attr,
                    info.external_attr,
                    info.flag_bits & 0x6,
                )
                writer.add_raw(entry, self._raw(info), info.CRC, info.file_size)
        for name, data in added:
            writer.add(_Entry(name, zipfile.ZIP_DEFLATED, stamp), data)
        return writer.finish(self.comment)


class _Entry(NamedTuple):  # a NamedTuple builds ~3x faster than a frozen dataclass
    name: str
    method: int
    date_time: tuple[int, int, int, int, int, int]
    made_by: int = 20
    internal_attr: int = 0
    external_attr: int = 0
    flags: int = 0


class _ZipWriter:
    """Minimal zip writer able to copy already-compressed data (zipfile cannot)."""

    def __init__(self) -> None:
        self._out: list[bytes | memoryview] = []
        self._central: list[bytes] = []
        self._offset = 0

    def add(self, entry: _Entry, data: bytes) -> None:
        payload = data
        if entry.method == zipfile.ZIP_DEFLATED:
            c = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
        self.add_raw(entry, payload, zlib.crc32(data), len(data))

    def add_raw(self, e: _Entry, payload: bytes | memoryview, crc: int, size: int) -> None:
        name = e.name.encode("utf-8")
        flags = e.flags | (0 if e.name.isascii() else 0x800)  # bit 11: name is UTF-8
        dos_time, dos_date = _dos_datetime(e.date_time)
        version = _VERSION_NEEDED.get(e.method, 20)
        common = (version, flags, e.method, dos_time, dos_date, crc, len(payload), size, len(name))
        self._out += [_LOCAL.pack(0x04034B50, *common, 0), name, payload]
        tail = (0, 0, 0, e.internal_attr, e.external_attr, self._offset)  # no extra/comment
        self._central.append(_CENTRAL.pack(0x02014B50, e.made_by, *common, *tail) + name)
        self._offset += _LOCAL.size + len(name) + len(payload)

    def finish(self, comment: bytes) -> bytes:
        cd = b"".join(self._central)
        n = len(self._central)
        end = _EOCD.pack(0x06054B50, 0, 0, n, n, len(cd), self._offset, len(comment))
        return b"".join([*self._out, cd, end, comment])


# --------------------------------------------------------------------------------------------
# Workbook structure: sheets, relationships, content types, defined names, views
# --------------------------------------------------------------------------------------------


def _rels_name(part: str) -> str:
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", f"{base}.rels")


def _relative_to(part: str, folder: str) -> str:
    """``posixpath.relpath(part, folder or ".")``, without its two os.getcwd() system calls
    when ``part`` lies in the plain relative ``folder`` (always, but for odd workbook paths)."""
    if (
        folder
        and not folder.startswith(("/", ".."))
        and part.startswith(f"{folder}/")
        and posixpath.normpath(part) == part
    ):
        return part[len(folder) + 1 :]
    return posixpath.relpath(part, folder or ".")


def _resolve(source_part: str, target: str) -> str:
    """Zip member name of a relationship target (absolute or relative to the source part)."""
    target = unquote(target.replace("\\", "/"))
    path = (
        target[1:]
        if target.startswith("/")
        else posixpath.join(posixpath.dirname(source_part), target)
    )
    return posixpath.normpath(path).lstrip("/")


@dataclass(frozen=True, slots=True)
class _Sheet:
    index: int
    name: str
    sheet_id: int
    rid: str
    el: _El


class _Book:
    def __init__(self, z: _Zip) -> None:
        self.z = z
        self.wb_part = self._find_workbook()
        self.wb = _Xml(z.read(self.wb_part), self.wb_part, _NS_MAIN)
        self.strict = self.wb.ns == _NS_MAIN[1]
        self.rels_part = z.lookup(_rels_name(self.wb_part)) or ""
        if not self.rels_part:
            raise _fail("工作簿缺少 workbook.xml.rels,无法定位工作表")
        self.rels = _Xml(z.read(self.rels_part), self.rels_part, _NS_PKG_REL)
        ct_part = z.lookup("[Content_Types].xml")
        if ct_part is None:
            raise _fail("工作簿缺少 [Content_Types].xml,文件已损坏")
        self.ct_part = ct_part
        self.ct = _Xml(z.read(ct_part), ct_part, _NS_CT)
        self.r_prefixes = [p for p, uri in self.wb.decls.items() if uri in _NS_REL and p]
        self.wb_changed = self.rels_changed = self.ct_changed = False
        self.new_parts: dict[str, str] = {}  # casefolded -> member name of parts we add
        self._sheets_memo: tuple[str, list[_Sheet]] | None = None
        self._rels_memo: tuple[str, list[_El], dict[str, tuple[_El, str, str]]] | None = None

    def _find_workbook(self) -> str:
        root_rels = self.z.lookup("_rels/.rels")
        if root_rels is not None:
            x = _Xml(self.z.read(root_rels), root_rels, _NS_PKG_REL)
            for rel in x.heads("Relationship"):
                a = rel.attrs
                if (
                    a.get("Type", "").endswith("/officeDocument")
                    and a.get("TargetMode") != "External"
                ):
                    found = self.z.lookup(_resolve("", a.get("Target", "")))
                    if found:
                        return found
        found = self.z.lookup("xl/workbook.xml")
        if found is None:
            raise _fail("文件中没有 xl/workbook.xml,不是 Excel 工作簿", Reason.NOT_A_WORKBOOK)
        return found

    # -- sheets -------------------------------------------------------------------------------

    def _sheets_el(self) -> _El:
        el = self.wb.first("sheets")
        if el is None:
            raise _fail("workbook.xml 中没有工作表列表,文件已损坏")
        return el

    def sheets(self) -> list[_Sheet]:
        # Memoised on the identity of the text: every edit creates a new string.
        if self._sheets_memo is not None and self._sheets_memo[0] is self.wb.text:
            return self._sheets_memo[1]
        box = self._sheets_el()
        out: list[_Sheet] = []
        for i, h in enumerate(self.wb.heads("sheet", box.head_end, box.close_start)):
            a = h.attrs
            rid = next(
                (v for k, v in a.items() if k.endswith(":id") and self._is_rel_attr(k, a)), ""
            )
            try:
                sheet_id = int(a.get("sheetId", "0"))
            except ValueError:
                sheet_id = 0
            out.append(_Sheet(i, a.get("name", ""), sheet_id, rid, h))
        self._sheets_memo = (self.wb.text, out)
        return out

    def _is_rel_attr(self, qname: str, attrs: Mapping[str, str]) -> bool:
        prefix = qname.split(":", 1)[0]
        return prefix in self.r_prefixes or attrs.get(f"xmlns:{prefix}") in _NS_REL

    def find(self, name: str) -> _Sheet | None:
        key = name.casefold()
        return next((s for s in self.sheets() if s.name.casefold() == key), None)

    def _relationships(self) -> tuple[list[_El], dict[str, tuple[_El, str, str]]]:
        """Every <Relationship> start tag of the workbook rels, and :meth:`rel_targets`."""
        # Memoised on the identity of the text, like sheets().
        if self._rels_memo is not None and self._rels_memo[0] is self.rels.text:
            return self._rels_memo[1], self._rels_memo[2]
        heads = list(self.rels.heads("Relationship"))
        targets: dict[str, tuple[_El, str, str]] = {}
        for h in heads:
            self._add_target(targets, h)
        self._rels_memo = (self.rels.text, heads, targets)
        return heads, targets

    def _add_target(self, targets: dict[str, tuple[_El, str, str]], h: _El) -> None:
        a = h.attrs
        if a.get("TargetMode") != "External":
            targets[a.get("Id", "")] = (
                h,
                a.get("Type", ""),
                _resolve(self.wb_part, a.get("Target", "")),
            )

    def rel_targets(self) -> dict[str, tuple[_El, str, str]]:
        """rId -> (Relationship element, Type, resolved member name)."""
        return self._relationships()[1]

    def part_of(self, sheet: _Sheet) -> str:
        rel = self.rel_targets().get(sheet.rid)
        member = None
        if rel is not None:
            member = self.z.lookup(rel[2]) or self.new_parts.get(rel[2].casefold())
        if member is None:
            raise _fail(f"工作表“{sheet.name}”的数据部件缺失,文件已损坏")
        return member

    def part_by_type(self, suffix: str) -> str | None:
        for _el, rtype, target in self.rel_targets().values():
            if rtype.endswith(suffix):
                return self.z.lookup(target)
        return None

    def override_type(self, part: str) -> str | None:
        key = "/" + part.casefold()
        for h in self.ct.heads("Override"):
            a = h.attrs
            if a.get("PartName", "").casefold() == key:
                return a.get("ContentType")
        return None

    # -- edits --------------------------------------------------------------------------------

    def remove_part_refs(self, rid: str, part: str) -> None:
        """Drop the workbook relationship ``rid`` and the content-type override of ``part``."""
        rel = self.rel_targets().get(rid)
        if rel is not None:
            el = self.rels.close(rel[0])  # <Relationship ...></Relationship> is legal too
            self.rels.replace(el.start, el.end, "")
            self.rels_changed = True
        key = "/" + part.casefold()
        for h in self.ct.heads("Override"):
            if h.attrs.get("PartName", "").casefold() == key:
                self.ct.replace(h.start, self.ct.close(h).end, "")
                self.ct_changed = True
                break

    def remove_sheet(self, sheet: _Sheet) -> str:
        """Remove a sheet from workbook.xml, its rel and override; return its member name."""
        part = self.part_of(sheet)
        self._rewrite_names(sheet.index, -1, sheet.name)
        el = self.wb.close(self.sheets()[sheet.index].el)
        self.wb.replace(el.start, el.end, "")
        self.remove_part_refs(sheet.rid, part)
        self.wb_changed = True
        return part

    def add_sheet(self, name: str, part: str, *, first: bool) -> None:
        """Register a new worksheet part as the first or the last sheet."""
        self.new_parts[part.casefold()] = part
        existing = self.sheets()
        sheet_id = max((s.sheet_id for s in existing), default=0) + 1
        rels, targets = self._relationships()
        ids = [h.attrs.get("Id", "") for h in rels]
        nums = [int(i[3:]) for i in ids if i.startswith("rId") and i[3:].isdigit()]
        rid = f"rId{max(nums, default=0) + 1}"
        while rid in ids:  # only if a producer mixed naming schemes
            rid = f"rId{int(rid[3:]) + 1}"
        ns_rel = _NS_REL[1] if self.strict else _NS_REL[0]
        if self.r_prefixes:
            rattr = f'{self.r_prefixes[0]}:id="{rid}"'
        else:
            rattr = f'xmlns:r="{ns_rel}" r:id="{rid}"'
        xml = f'<{self.wb.q("sheet")} name="{_esc_attr(name)}" sheetId="{sheet_id}" {rattr}/>'
        if first:
            self._rewrite_names(None, +1, None)
            at = self.sheets()[0].el.start
            self.wb.replace(at, at, xml)
        else:
            box = self._sheets_el()
            self.wb.append_child(box, xml)
            # The new last child leaves every other <sheet> where it was: extend the memo
            # rather than parse workbook.xml again.
            if not box.empty:
                el = _El.added(box.close_start, self.wb.q("sheet"), xml)
                new = _Sheet(len(existing), name, sheet_id, rid, el)
                self._sheets_memo = (self.wb.text, [*existing, new])
        self.wb_changed = True
        target = _relative_to(part, posixpath.dirname(self.wb_part))
        rels_root = self.rels.first(self.rels.root_local)
        assert rels_root is not None
        rel_xml = (
            f'<{self.rels.q("Relationship")} Id="{rid}" Type="{ns_rel}/worksheet" '
            f'Target="{_esc_attr(target)}"/>'
        )
        self.rels.append_child(rels_root, rel_xml)
        at = rels_root.close_start
        # Likewise after the last <Relationship> (unless a producer wrote one past the root).
        if not rels_root.empty and (not rels or rels[-1].start < at):
            el = _El.added(at, self.rels.q("Relationship"), rel_xml)
            targets = dict(targets)
            self._add_target(targets, el)
            self._rels_memo = (self.rels.text, [*rels, el], targets)
        ct_root = self.ct.first(self.ct.root_local)
        assert ct_root is not None
        self.ct.append_child(
            ct_root,
            f'<{self.ct.q("Override")} PartName="/{_esc_attr(part)}" '
            f'ContentType="{_CT_WORKSHEET}"/>',
        )
        self.rels_changed = self.ct_changed = True

    def _rewrite_names(self, removed: int | None, delta: int, removed_name: str | None) -> None:
        """Keep sheet-local defined names (print areas...) on their sheet after a move.

        ``localSheetId`` is a sheet *position*: inserting a sheet first shifts every one by +1;
        removing sheet ``removed`` drops the names local to it and shifts later ones by -1.
        Names whose formula points at the removed sheet become #REF!, as Excel does.
        """
        box = self.wb.first("definedNames")
        if box is None:
            return
        ref = None
        if removed_name is not None:
            n = re.escape(removed_name)
            ref = re.compile(rf"(?<![\w.'])(?:{n}|'{n}')!")
        for el in reversed(self.wb.all("definedName", box.head_end, box.close_start)):
            head, inner = el.head, self.wb.inner(el)
            lid_text = el.attrs.get("localSheetId", "").strip()
            if lid_text.isdigit():
                lid = int(lid_text)
                if removed is not None and lid == removed:
                    self.wb.replace(el.start, el.end, "")
                    continue
                if removed is None or lid > removed:
                    head = _set_attrs(head, {"localSheetId": str(lid + delta)})
            if ref is not None and ref.search(_unescape(inner)):
                inner = "#REF!"
            if el.empty:
                self.wb.replace(el.start, el.end, head)
            else:
                self.wb.replace(el.start, el.close_start, head + inner)

    def add_name_if_missing(self, name: str, formula: str) -> None:
        """Add a workbook-scope ``<definedName>`` unless one of that name exists."""
        box = self.wb.first("definedNames")
        if box is not None:
            for el in self.wb.heads("definedName", box.head_end, box.close_start):
                a = el.attrs
                if a.get("name", "").casefold() == name.casefold() and "localSheetId" not in a:
                    return
        q = self.wb.q("definedName")
        xml = f'<{q} name="{_esc_attr(name)}">{_esc_text(formula)}</{q}>'
        if box is not None:
            self.wb.append_child(box, xml)
        else:
            # CT_Workbook's order: <definedNames> follows <sheets>, <functionGroups> and
            # <externalReferences>, whichever of them come last.
            after = self._sheets_el().end
            for local in ("functionGroups", "externalReferences"):
                found = self.wb.first(local, after)
                after = found.end if found is not None else after
            box_q = self.wb.q("definedNames")
            self.wb.replace(after, after, f"<{box_q}>{xml}</{box_q}>")
        self.wb_changed = True

    def active_tab(self) -> int:
        for h in self.wb.heads("workbookView"):
            value = h.attrs.get("activeTab", "0").strip()
            return int(value) if value.isdigit() else 0
        return 0

    def set_active(self, index: int) -> None:
        views = list(self.wb.heads("workbookView"))
        if not views:
            box = self.wb.first("bookViews")
            xml = f'<{self.wb.q("workbookView")} activeTab="{index}"/>'
            if box is not None:
                self.wb.append_child(box, xml)
            else:
                sheets = self._sheets_el()
                self.wb.replace(
                    sheets.start,
                    sheets.start,
                    f"<{self.wb.q('bookViews')}>{xml}</{self.wb.q('bookViews')}>",
                )
            self.wb_changed = True
            return
        for h in reversed(views):
            a = h.attrs
            changes: dict[str, str | None] = {"activeTab": str(index)}
            first = a.get("firstSheet", "0").strip()
            if first.isdigit() and int(first) > index:
                changes["firstSheet"] = str(index)  # keep the active tab scrolled into view
            self.wb.set_attrs(h, changes)
        self.wb_changed = True

    def new_sheet_part(self) -> str:
        folder = posixpath.join(posixpath.dirname(self.wb_part), "worksheets")
        n = 1
        while True:
            part = posixpath.join(folder, f"sheet{n}.xml")
            if self.z.lookup(part) is None and part.casefold() not in self.new_parts:
                return part
            n += 1


# --------------------------------------------------------------------------------------------
# styles.xml: highlight fill, cloned cell formats, header/wrap formats for our sheets
# --------------------------------------------------------------------------------------------

_BOOL_ATTR_RE = re.compile(r"""=(["'])(true|false)\1""")
_PATTERN_TYPE_RE = re.compile(r"""\spatternType\s*=\s*["']([^"']*)["']""")
_HL_HEX = HIGHLIGHT_RGB[2:]
# Our colour on a fill's fore- or background (alpha ignored: producers differ in what they
# write there). Matched inside one small <fill> record, where no other markup can interfere.
_HL_ANY_RE = re.compile(
    rf"""<(?:[\w.-]+:)?(?:fgColor|bgColor)\s[^>]*?\brgb\s*=\s*["'](?:[0-9A-F]{{2}})?{_HL_HEX}["']""",
    re.I,
)


def _hint_re(hex_text: str) -> re.Pattern[str]:
    """Case-insensitive search for ``hex_text`` that starts at its first digit.

    A pattern starting with a letter under re.I is tried at every position; one starting with a
    digit lets the engine skip ahead to candidates (~10x faster over a styles.xml).
    """
    i = next(i for i, ch in enumerate(hex_text) if ch.isdigit())
    return re.compile(rf"{hex_text[i]}(?<={hex_text[: i + 1]}){hex_text[i + 1 :]}", re.I)


_HL_HINT_RE = _hint_re(_HL_HEX)
_HL_FG_RE = re.compile(
    rf"""<(?:[\w.-]+:)?fgColor\s[^>]*?\brgb\s*=\s*["'](?:[0-9A-F]{{2}})?{_HL_HEX}["']""", re.I
)


def _norm(record: str) -> str:
    """Comparison key of a style record, tolerant of formatting differences."""
    record = _BETWEEN_TAGS_RE.sub("><", record.strip())
    if "true" not in record and "false" not in record:
        return record  # nothing for the (slower) substitution below to find
    return _BOOL_ATTR_RE.sub(lambda m: '="1"' if m.group(2) == "true" else '="0"', record)


def _split_record(text: str) -> tuple[str, str, str]:
    """(start tag, content, end tag) of one element's text; content and end tag may be ""."""
    name = _ROOT_RE.match(text)
    tail = _TAIL_RE.match(text, name.end()) if name else None
    if tail is None:
        raise _fail("styles.xml 的结构损坏")
    if tail.group(1):
        return text, "", ""
    close = text[text.rindex("</") :]
    return text[: tail.end()], text[tail.end() : -len(close)], close


class _Records:
    """The children of one ``<fonts>``/``<fills>``/``<cellXfs>`` and those this patch adds."""

    def __init__(self, x: _Xml, box_local: str, local: str) -> None:
        self.box_local = box_local
        self.qname = x.q(local)
        box = x.first(box_local)
        self.present = box is not None
        spans = x.records(local, box) if box is not None else []
        self.texts = [x.text[a:b] for a, b in spans]
        self.new: list[str] = []
        self._keys: dict[str, int] | None = None

    def split(self, index: int) -> tuple[str, str, str]:
        return _split_record(self.texts[index])

    def add(self, record: str) -> int:
        """Index of an identical record, appending this one if there is none."""
        if self._keys is None:
            self._keys = {}
            for i, text in enumerate(self.texts):
                self._keys.setdefault(_norm(text), i)
        key = _norm(record)
        if key not in self._keys:
            self._keys[key] = len(self.texts)
            self.texts.append(record)
            self.new.append(record)
        return self._keys[key]


class _Styles:
    def __init__(self, x: _Xml) -> None:
        self.x = x
        self.changed = False
        self._records: dict[str, _Records] = {}
        self._hl_fill: int | None = None

    def _get(self, box_local: str, local: str) -> _Records:
        if box_local not in self._records:
            self._records[box_local] = _Records(self.x, box_local, local)
        return self._records[box_local]

    def strip_highlights(self) -> None:
        """Neutralise every fill of our colour, whatever index a re-save gave it.

        Indices cannot be trusted: Excel, LibreOffice and Gnumeric all renumber styles on save.
        Turning the fill itself into "no fill" un-highlights every cell format using it.
        """
        if not _HL_HINT_RE.search(self.x.text):
            return  # fast path: our colour appears nowhere
        box = self.x.first("fills")
        if box is None:
            return
        none = f'<{self.x.q("patternFill")} patternType="none"/>'
        edits: list[tuple[int, int, str]] = []
        for a, b in self.x.records("fill", box):
            text = self.x.text[a:b]
            kind = _PATTERN_TYPE_RE.search(text)
            if kind and kind.group(1) != "none" and _HL_ANY_RE.search(text):
                head, _inner, close = _split_record(text)
                edits.append((a + len(head), b - len(close), none))
        if edits:
            self.x.splice(edits)
            self.changed = True
        self._records.clear()

    def highlight_fill(self) -> int:
        if self._hl_fill is None:
            fills = self._get("fills", "fill")
            if not fills.present:
                raise _fail("styles.xml 中没有填充定义(fills),无法标出问题单元格")
            for i, text in enumerate(fills.texts):
                kind = _PATTERN_TYPE_RE.search(text)
                if kind and kind.group(1) == "solid" and _HL_FG_RE.search(text):
                    self._hl_fill = i
                    break
            else:
                q = self.x.q
                self._hl_fill = fills.add(
                    f'<{q("fill")}><{q("patternFill")} patternType="solid">'
                    f'<{q("fgColor")} rgb="{HIGHLIGHT_RGB}"/><{q("bgColor")} indexed="64"/>'
                    f"</{q('patternFill')}></{q('fill')}>"
                )
        return self._hl_fill

    def _xfs(self) -> _Records:
        xfs = self._get("cellXfs", "xf")
        if not xfs.texts:
            raise _fail("styles.xml 中没有单元格格式(cellXfs),文件已损坏")
        return xfs

    def highlight_xf(self, xf: int) -> int:
        """Index of a cell format equal to ``xf`` but with the highlight fill."""
        xfs = self._xfs()
        if not 0 <= xf < len(xfs.texts):
            raise _fail(f"单元格引用了不存在的格式 {xf},文件已损坏")
        fill = self.highlight_fill()
        head, inner, close = xfs.split(xf)
        return xfs.add(_set_attrs(head, {"fillId": str(fill), "applyFill": "1"}) + inner + close)

    def _bold_font(self) -> int:
        fonts = self._get("fonts", "font")
        if not fonts.texts:
            return 0
        q = self.x.q
        head, inner, close = fonts.split(0)
        if not close:  # an empty <font/>
            head, close = head[:-2].rstrip() + ">", f"</{fonts.qname}>"
        inner = re.sub(rf"<{re.escape(q('b'))}(?=[\s/>])[^>]*?/>", "", inner)
        return fonts.add(f"{head}<{q('b')}/>{inner}{close}")

    def sheet_xf(self, *, bold: bool, wrap: bool) -> int:
        """Index of a plain format (optionally bold / wrapped) for the sheets we write."""
        xfs = self._xfs()
        font = self._bold_font() if bold else 0
        q = self.x.q
        xf_id = ' xfId="0"' if self.x.first("cellStyleXfs") is not None else ""
        applies = (' applyFont="1"' if bold else "") + (' applyAlignment="1"' if wrap else "")
        head = f'<{q("xf")} numFmtId="0" fontId="{font}" fillId="0" borderId="0"{xf_id}{applies}'
        if wrap:
            align = f'<{q("alignment")} vertical="top" wrapText="1"/>'
            return xfs.add(f"{head}>{align}</{q('xf')}>")
        return xfs.add(head + "/>")

    def flush(self) -> None:
        """Append the records added by this patch and update the ``count`` attributes."""
        for rec in self._records.values():
            box = self.x.first(rec.box_local) if rec.new else None
            if box is None:
                continue
            self.x.append_child(box, "".join(rec.new))
            box = self.x.first(rec.box_local)
            assert box is not None
            if "count" in box.attrs:
                self.x.set_attrs(box, {"count": str(len(rec.texts))})
            rec.new.clear()
            self.changed = True


# --------------------------------------------------------------------------------------------
# Worksheets
# --------------------------------------------------------------------------------------------

_CELL_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?([0-9]{1,7})$")


def _parse_cell(ref: str) -> tuple[int, int]:
    m = _CELL_RE.match(ref.strip())
    if m is None:
        raise _fail(f"单元格地址“{ref}”无效", Reason.FOREIGN_WORKBOOK)
    row, col = cell_to_rc(m.group(1).upper() + m.group(2))
    if not (0 <= row < _MAX_ROW and 0 <= col < _MAX_COL):
        raise _fail(f"单元格地址“{ref}”超出工作表范围", Reason.FOREIGN_WORKBOOK)
    return row, col


def _ref_rc(ref: str | None) -> tuple[int, int] | None:
    if ref is None:
        return None
    m = _CELL_RE.match(ref.strip())
    return cell_to_rc(m.group(1).upper() + m.group(2)) if m else None


@dataclass
class _CellOp:
    value: str | float | None = None
    highlight: bool = False


def _text_width(text: str) -> int:
    lines = text.split("\n")
    longest = max(lines, key=len) if len(lines) > 1 else text
    if longest.isascii():
        return len(longest)  # every ASCII character is narrow (Na) or neutral (N)
    return len(longest) + sum(unicodedata.east_asian_width(ch) in "WF" for ch in longest)


def _new_sheet_xml(
    rows: Sequence[Sequence[str]],
    *,
    strict: bool,
    header_xf: int | None,
    body_xf: int | None,
    wrap: bool,
    selected: bool,
) -> bytes:
    """A small worksheet of inline strings: bold frozen header row, fitted column widths."""
    ns_main = _NS_MAIN[1] if strict else _NS_MAIN[0]
    ns_rel = _NS_REL[1] if strict else _NS_REL[0]
    ncols = max((len(r) for r in rows), default=1) or 1
    widths = [8.0] * ncols
    for row in rows:
        for c, value in enumerate(row):
            # Long explanations wrap in a column that still fits an A4 page across.
            widths[c] = max(widths[c], min(_text_width(str(value)) + 2.0, 42.0 if wrap else 50.0))
    out_rows: list[str] = []
    for r, row in enumerate(rows):
        xf = header_xf if r == 0 else body_xf
        style = f' s="{xf}"' if xf else ""
        cells: list[str] = []
        lines = 1
        for c, value in enumerate(row):
            text = str(value)
            if wrap:
                lines = max(lines, math.ceil(_text_width(text) / max(widths[c] - 2.0, 1.0)))
            ref = rc_to_cell(r, c)
            if text:
                cells.append(f'<c r="{ref}"{style} t="inlineStr">{_inline_string(text)}</c>')
            elif style:
                cells.append(f'<c r="{ref}"{style}/>')
        # An explicit height: not every program fits wrapped rows when it opens the file.
        height = f' ht="{15 * lines}" customHeight="1"' if lines > 1 else ""
        out_rows.append(f'<row r="{r + 1}"{height}>{"".join(cells)}</row>')
    cols = "".join(
        f'<col min="{i + 1}" max="{i + 1}" width="{w:.1f}" customWidth="1"/>'
        for i, w in enumerate(widths)
    )
    last = rc_to_cell(max(len(rows), 1) - 1, ncols - 1)
    tab = ' tabSelected="1"' if selected else ""
    pane = (
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
        if len(rows) > 1
        else ""
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{ns_main}" xmlns:r="{ns_rel}">'
        '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
        f'<dimension ref="A1:{last}"/>'
        f'<sheetViews><sheetView{tab} workbookViewId="0">{pane}</sheetView></sheetViews>'
        f'<sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols>'
        f"<sheetData>{''.join(out_rows)}</sheetData>"
        '<pageMargins left="0.5" right="0.5" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        # A4 landscape, one page wide: staff print the reasons next to the form.
        '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/>'
        "</worksheet>"
    )
    return xml.encode("utf-8")


def _has_selected_tab(x: _Xml) -> bool:
    return any(_truthy(h.attrs.get("tabSelected")) for h in x.heads("sheetView"))


def _select_tab(x: _Xml, selected: bool) -> bool:
    """Set or clear ``tabSelected`` on the sheet's views; return whether anything changed.

    Only the active tab may stay selected: several selected tabs form a *group* in Excel, and
    staff typing into the form would silently write into the grouped sheets too.
    """
    views = list(x.heads("sheetView"))
    if not views:
        if not selected:
            return False
        box = x.first("sheetViews")
        view = f'<{x.q("sheetView")} tabSelected="1" workbookViewId="0"/>'
        if box is not None:
            x.append_child(box, view)
            return True
        for local in ("sheetFormatPr", "cols", "sheetData"):
            anchor = x.first(local)
            if anchor is not None:
                x.replace(
                    anchor.start, anchor.start, f"<{x.q('sheetViews')}>{view}</{x.q('sheetViews')}>"
                )
                return True
        return False
    changed = False
    for h in reversed(views):
        now = _truthy(h.attrs.get("tabSelected"))
        if now != selected:
            x.set_attrs(h, {"tabSelected": "1" if selected else None})
            changed = True
    return changed


def _edit_cells(x: _Xml, ops: Mapping[tuple[int, int], _CellOp], styles: _Styles | None) -> bool:
    """Write values/highlights into the form sheet; return whether a formula was removed."""
    sheet_data = x.first("sheetData")
    if sheet_data is None:
        raise _fail(f"表单工作表部件 {x.part} 中没有 sheetData,文件已损坏")
    q = x.q
    edits: list[tuple[int, int, str]] = []
    formula_removed = False
    created: list[tuple[int, int]] = []
    col_styles: list[tuple[int, int, int]] | None = None

    def default_style(row_attrs: Mapping[str, str] | None, col: int) -> int:
        # A missing cell shows its row's format (customFormat) or else its column's format.
        nonlocal col_styles
        if row_attrs is not None and _truthy(row_attrs.get("customFormat")):
            s = row_attrs.get("s", "0").strip()
            return int(s) if s.isdigit() else 0
        if col_styles is None:
            col_styles = []
            for box in x.all("cols", 0, sheet_data.start):
                for h in x.heads("col", box.head_end, box.close_start):
                    a = h.attrs
                    try:
                        col_styles.append((int(a["min"]), int(a["max"]), int(a.get("style", "0"))))
                    except (KeyError, ValueError):
                        continue
        return next((s for lo, hi, s in col_styles if lo <= col + 1 <= hi), 0)

    def style_for(current: int, op: _CellOp) -> int | None:
        if not op.highlight:
            return None
        if styles is None:
            raise _fail("工作簿缺少 styles.xml,无法标出问题单元格")
        return styles.highlight_xf(current)

    def value_xml(value: str | float) -> str:
        if isinstance(value, float):
            return f"<{q('v')}>{value!r}</{q('v')}>"
        return _inline_string(value, x.root_prefix) if value else ""

    def type_of(value: str | float) -> str | None:
        # A number has no t attribute; text is an inline string; an empty text clears.
        return "inlineStr" if isinstance(value, str) and value else None

    def new_cell(row: int, col: int, op: _CellOp, row_attrs: Mapping[str, str] | None) -> str:
        base = default_style(row_attrs, col)
        style = style_for(base, op)
        s = style if style is not None else base
        created.append((row, col))
        head = f'<{q("c")} r="{rc_to_cell(row, col)}"' + (f' s="{s}"' if s else "")
        if op.value is not None and op.value != "":
            kind = type_of(op.value)
            head += f' t="{kind}"' if kind else ""
            return f"{head}>{value_xml(op.value)}</{q('c')}>"
        return f"{head}/>"

    def edit_cell(cell: _El, row: int, col: int, op: _CellOp) -> None:
        nonlocal formula_removed
        cell = x.close(cell)
        attrs = cell.attrs
        s_text = attrs.get("s", "0").strip()
        current = int(s_text) if s_text.isdigit() else 0
        style = style_for(current, op)
        changes: dict[str, str | None] = {}
        if style is not None:
            changes["s"] = str(style)
        if op.value is None:  # highlight only: keep value and formula untouched
            edits.append((cell.start, cell.head_end, _set_attrs(cell.head, changes)))
            return
        # cm/vm describe the old formula/value (dynamic arrays, rich values): drop with them.
        changes.update({"t": type_of(op.value), "cm": None, "vm": None})
        f = x.first("f", cell.head_end, cell.close_start)
        if f is not None:
            fa = f.attrs
            span = fa.get("ref", "").strip()
            if (
                fa.get("t") in ("shared", "array")
                and ":" in span
                and span.split(":")[0] != span.split(":")[1]
            ):
                raise _fail(
                    f"单元格 {rc_to_cell(row, col)} 是共享公式或数组公式的一部分,不能写入,"
                    "请把该单元格改回模板原样后重新提交",
                    Reason.FOREIGN_WORKBOOK,
                )
            formula_removed = True
        ext = x.first("extLst", cell.head_end, cell.close_start)
        body = value_xml(op.value) + (x.text[ext.start : ext.end] if ext else "")
        head = _set_attrs(cell.head, changes)
        if body:
            head = head[:-2].rstrip() + ">" if head.endswith("/>") else head
            edits.append((cell.start, cell.end, f"{head}{body}</{cell.qname}>"))
        else:
            head = head if head.endswith("/>") else head[:-1].rstrip() + "/>"
            edits.append((cell.start, cell.end, head))

    def widen_spans(row_el: _El, cols: list[int]) -> str:
        spans = row_el.attrs.get("spans")
        if not spans:
            return row_el.head
        nums = [int(n) for n in re.findall(r"\d+", spans)] or [cols[0] + 1]
        lo, hi = min([*nums, *(c + 1 for c in cols)]), max([*nums, *(c + 1 for c in cols)])
        return (
            _set_attrs(row_el.head, {"spans": f"{lo}:{hi}"})
            if f"{lo}:{hi}" != spans
            else row_el.head
        )

    def edit_row(row_el: _El, row: int, targets: list[tuple[int, _CellOp]]) -> None:
        row_el = x.close(row_el)
        row_attrs = row_el.attrs
        ti, prev = 0, -1
        inserted: list[int] = []
        for cell in x.heads("c", row_el.head_end, row_el.close_start):
            rc = _ref_rc(cell.attrs.get("r"))
            col = rc[1] if rc else prev + 1
            prev = col
            while ti < len(targets) and targets[ti][0] < col:
                edits.append(
                    (
                        cell.start,
                        cell.start,
                        new_cell(row, targets[ti][0], targets[ti][1], row_attrs),
                    )
                )
                inserted.append(targets[ti][0])
                ti += 1
            if ti < len(targets) and targets[ti][0] == col:
                edit_cell(cell, row, col, targets[ti][1])
                ti += 1
            if ti == len(targets):
                break
        rest = "".join(new_cell(row, c, op, row_attrs) for c, op in targets[ti:])
        inserted += [c for c, _ in targets[ti:]]
        head = widen_spans(row_el, inserted) if inserted else row_el.head
        if row_el.empty:
            if rest or head != row_el.head:
                edits.append(
                    (row_el.start, row_el.end, f"{head[:-2].rstrip()}>{rest}</{row_el.qname}>")
                )
            return
        if head != row_el.head:
            edits.append((row_el.start, row_el.head_end, head))
        if rest:
            ext = x.first("extLst", row_el.head_end, row_el.close_start)
            at = ext.start if ext else row_el.close_start
            edits.append((at, at, rest))

    def new_row(row: int, targets: list[tuple[int, _CellOp]]) -> str:
        cells = "".join(new_cell(row, c, op, None) for c, op in targets)
        return f'<{q("row")} r="{row + 1}">{cells}</{q("row")}>'

    by_row: dict[int, list[tuple[int, _CellOp]]] = {}
    for (row, col), op in sorted(ops.items()):
        by_row.setdefault(row, []).append((col, op))
    rows = sorted(by_row)
    ri, prev_row = 0, -1
    if not sheet_data.empty:
        for h in x.heads("row", sheet_data.head_end, sheet_data.close_start):
            if ri == len(rows):
                break
            rc_text = h.attrs.get("r", "").strip()
            r = int(rc_text) - 1 if rc_text.isdigit() else prev_row + 1
            prev_row = r
            pending = ""
            while ri < len(rows) and rows[ri] < r:
                pending += new_row(rows[ri], by_row[rows[ri]])
                ri += 1
            if pending:
                edits.append((h.start, h.start, pending))
            if ri < len(rows) and rows[ri] == r:
                edit_row(h, r, by_row[r])
                ri += 1
    rest = "".join(new_row(r, by_row[r]) for r in rows[ri:])
    if rest:
        if sheet_data.empty:
            head = sheet_data.head[:-2].rstrip() + ">"
            edits.append((sheet_data.start, sheet_data.end, f"{head}{rest}</{sheet_data.qname}>"))
        else:
            edits.append((sheet_data.close_start, sheet_data.close_start, rest))

    # Keep <dimension> covering new cells: openpyxl's read-only mode trusts it for max_row.
    if created:
        dim = x.first("dimension", 0, sheet_data.start)
        if dim is not None:
            ref = dim.attrs.get("ref", "A1")
            ends = [rc for rc in (_ref_rc(p) for p in ref.split(":")) if rc is not None] or [
                created[0]
            ]
            points = ends + created
            new_ref = (
                f"{rc_to_cell(min(p[0] for p in points), min(p[1] for p in points))}:"
                f"{rc_to_cell(max(p[0] for p in points), max(p[1] for p in points))}"
            )
            if new_ref.split(":")[0] == new_ref.split(":")[1]:
                new_ref = new_ref.split(":")[0]
            if new_ref != ref:
                edits.append((dim.start, dim.head_end, _set_attrs(dim.head, {"ref": new_ref})))
    x.splice(edits)
    return formula_removed


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _cell_ops(patch: Patch) -> dict[tuple[int, int], _CellOp]:
    ops: dict[tuple[int, int], _CellOp] = {}
    for ref, value in patch.cell_values.items():
        ops.setdefault(_parse_cell(ref), _CellOp()).value = (
            float(value) if isinstance(value, int | float) else str(value)
        )
    for ref in patch.highlight_cells:
        ops.setdefault(_parse_cell(ref), _CellOp()).highlight = True
    return ops


@dataclass(frozen=True)
class _NewSheet:
    """A sheet we write ourselves; rendered once the final active tab is known."""

    rows: Sequence[Sequence[str]]
    header_xf: int | None
    body_xf: int | None
    wrap: bool
    selected: bool  # when the active tab does not change


def apply_patch(data: bytes, patch: Patch) -> bytes:
    """Return a copy of workbook ``data`` with ``patch`` applied (see :class:`Patch`).

    Order: strip the old 退回原因 sheet and highlights; replace/append 流转记录; insert the new
    退回原因 first and make it active; write and highlight cells on the form sheet.
    Raises :class:`PatchError` when the workbook cannot be patched safely.
    """
    if patch.sheet.casefold() in (HISTORY_SHEET.casefold(), RETURN_SHEET.casefold()):
        raise _fail(f"“{patch.sheet}”是流转用的工作表,不能作为表单工作表", Reason.FOREIGN_WORKBOOK)
    ops = _cell_ops(patch)
    z = _Zip(data)
    book = _Book(z)
    if book.find(patch.sheet) is None:
        raise _fail(f"工作簿中没有工作表“{patch.sheet}”,不是退款申请表", Reason.FOREIGN_WORKBOOK)

    replaced: dict[str, bytes] = {}
    removed: set[str] = set()
    ours: dict[str, _NewSheet] = {}  # member -> sheet we write (new or replacing 流转记录)
    styles_part = book.part_by_type("/styles")
    styles = _Styles(_Xml(z.read(styles_part), styles_part, _NS_MAIN)) if styles_part else None
    active: int | None = None  # the tab to make active, when sheets move

    def drop_sheet(name: str) -> None:
        nonlocal active
        sheet = book.find(name)
        if sheet is None:
            return
        old_active = book.active_tab()
        part = book.remove_sheet(sheet)
        removed.add(part)
        rels = z.lookup(_rels_name(part))
        if rels:
            removed.add(rels)
        if old_active == sheet.index:
            form = book.find(patch.sheet)
            active = form.index if form else 0
        else:
            active = old_active - 1 if old_active > sheet.index else old_active

    if patch.strip_return_sheet:
        drop_sheet(RETURN_SHEET)
        if styles is not None:
            styles.strip_highlights()
    if patch.return_rows:
        drop_sheet(RETURN_SHEET)  # strip_return_sheet=False: still never two of them

    if patch.history_rows:
        header = styles.sheet_xf(bold=True, wrap=False) if styles else None
        hist = book.find(HISTORY_SHEET)
        if hist is not None:
            part = book.part_of(hist)
            ctype = book.override_type(part)
            if ctype is not None and ctype != _CT_WORKSHEET:
                raise _fail(
                    f"“{HISTORY_SHEET}”不是普通工作表,无法更新流转记录", Reason.FOREIGN_WORKBOOK
                )
            selected = _has_selected_tab(_Xml(z.read(part), part, _NS_MAIN))
        else:
            part = book.new_sheet_part()
            book.add_sheet(HISTORY_SHEET, part, first=False)
            selected = False
        ours[part] = _NewSheet(patch.history_rows, header, None, wrap=False, selected=selected)

    if patch.return_rows:
        header = styles.sheet_xf(bold=True, wrap=True) if styles else None
        body = styles.sheet_xf(bold=False, wrap=True) if styles else None
        part = book.new_sheet_part()
        book.add_sheet(RETURN_SHEET, part, first=True)
        ours[part] = _NewSheet(patch.return_rows, header, body, wrap=True, selected=True)
        active = 0

    if active is not None:
        book.set_active(active)

    formula_removed = False
    for sheet in book.sheets():
        part = book.part_of(sheet)
        selected = active is not None and sheet.index == active
        if part in ours:
            new = ours[part]
            replaced[part] = _new_sheet_xml(
                new.rows,
                strict=book.strict,
                header_xf=new.header_xf,
                body_xf=new.body_xf,
                wrap=new.wrap,
                selected=selected if active is not None else new.selected,
            )
            continue
        is_form = sheet.name.casefold() == patch.sheet.casefold()
        if not is_form and active is None:
            continue
        raw = z.read(part)
        if not is_form and not selected and b"tabSelected" not in raw:
            continue  # fast path: nothing selected here, nothing to clear
        try:
            x = _Xml(raw, part, _NS_MAIN)
        except PatchError:
            if is_form:
                raise
            continue  # e.g. a macro sheet: not ours to fix up, and harmless to leave
        if is_form and x.root_local != "worksheet":
            raise _fail(f"“{sheet.name}”不是普通工作表,无法写入", Reason.FOREIGN_WORKBOOK)
        changed = False
        if is_form and ops:
            formula_removed = _edit_cells(x, ops, styles)
            changed = True
        if active is not None:
            changed = _select_tab(x, selected) or changed
        if changed:
            replaced[part] = x.encode()

    if formula_removed:
        # Excel repairs a workbook whose calcChain lists a cell without a formula; the chain is a
        # pure cache that Excel rebuilds, so drop it (openpyxl does the same on every save).
        for rid, (_el, rtype, target) in book.rel_targets().items():
            calc = z.lookup(target) if rtype.endswith("/calcChain") else None
            if calc is not None:
                book.remove_part_refs(rid, calc)
                removed.add(calc)
                break

    for name, formula in patch.missing_names.items():
        book.add_name_if_missing(name, formula)

    if styles is not None and styles_part is not None:
        styles.flush()
        if styles.changed:
            replaced[styles_part] = styles.x.encode()
    if book.wb_changed:
        replaced[book.wb_part] = book.wb.encode()
    if book.rels_changed:
        replaced[book.rels_part] = book.rels.encode()
    if book.ct_changed:
        replaced[book.ct_part] = book.ct.encode()
    added = [(part, replaced.pop(part)) for part in book.new_parts.values() if part in replaced]
    if not replaced and not removed and not added:
        return data
    return z.build(replaced, removed, added, z.info(book.wb_part).date_time)
