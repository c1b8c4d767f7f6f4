"""Splice editing of one decoded XML part: locate elements by regex, replace byte ranges.

Comments, CDATA sections and processing instructions are blanked out in a same-length
"search view" (the mask) so no markup inside them can ever be matched; DTDs are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache

from ..errors import Reason
from .failure import fail
from .xmltext import ROOT_RE, TAIL_RE, attrs_of, with_attrs

_SPECIAL_RE = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.S)
_ENCODING_RE = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")


def has_pair(text: str, pair: str, start: int) -> bool:
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


class El:
    """One element located in an :class:`Xml` text (offsets into that text)."""

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
    def added(cls, start: int, qname: str, xml: str) -> El:
        """The empty element ``xml`` (one start tag ending in "/>") just inserted at ``start``."""
        end = start + len(xml)
        return cls(start, end, end, end, qname, xml)

    @property
    def empty(self) -> bool:
        return self.head.endswith("/>")

    @property
    def attrs(self) -> dict[str, str]:
        if self._attrs is None:
            self._attrs = attrs_of(self.head)
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


class Xml:
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
            raise fail(f"工作簿部件 {part} 的编码无法识别,文件可能已损坏") from exc
        declared = _ENCODING_RE.match(text[:200])
        if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf-16"):
            raise fail(f"工作簿部件 {part} 使用了不支持的编码 {declared.group(1)}")
        self.text = text
        self._mask: str | None = None
        self._first_memo: dict[tuple[str, int, int | None], El | None] = {}
        self._first_text = text  # the text _first_memo belongs to
        m = ROOT_RE.search(self.mask)
        tail = TAIL_RE.match(self.mask, m.end()) if m else None
        if m is None or tail is None:
            raise fail(f"工作簿部件 {part} 不是有效的 XML")
        root_head = text[m.start() : tail.end()]
        self.root_qname = m.group(1)
        prefix, _, local = self.root_qname.rpartition(":")
        self.root_prefix: str = prefix
        self.root_local: str = local
        self.decls = {
            (k[6:] if k.startswith("xmlns:") else ""): v
            for k, v in attrs_of(root_head).items()
            if k == "xmlns" or k.startswith("xmlns:")
        }
        self.ns = self.decls.get(self.root_prefix, "")
        if self.ns not in namespaces:
            raise fail(f"工作簿部件 {part} 的命名空间不正确({self.ns or '无'})")
        # Every prefix bound to the same namespace as the root (usually just one).
        self.prefixes = tuple(p for p, uri in self.decls.items() if uri == self.ns)

    @property
    def mask(self) -> str:
        """The text with comments/CDATA/PIs blanked (same length), for searching only."""
        if self._mask is None:
            text = self.text
            body = text.find("?>") + 2 if text.startswith("<?xml") else 0
            if has_pair(text, "<!", 0) or has_pair(text, "<?", body):
                if "<!DOCTYPE" in text:
                    raise fail(f"工作簿部件 {self.part} 含有 DTD 声明,拒绝处理", Reason.CORRUPT)
                head = text[:body]
                self._mask = head + _SPECIAL_RE.sub(lambda m: " " * len(m.group()), text[body:])
            else:
                self._mask = text
        return self._mask

    def q(self, local: str) -> str:
        """Qualified name for a new element in this part's main namespace."""
        return f"{self.root_prefix}:{local}" if self.root_prefix else local

    def heads(self, local: str, start: int = 0, end: int | None = None) -> Iterator[El]:
        """Start tags of ``local`` elements in [start, end), in document order (no close)."""
        mask = self.mask
        stop = len(mask) if end is None else end
        names = [f"{p}:{local}" if p else local for p in self.prefixes]
        found: list[El] = []
        for qname in names:
            for m in _open_re(qname).finditer(mask, start, stop):
                tail = TAIL_RE.match(mask, m.end())
                if tail is None or tail.end() > stop:
                    raise fail(f"工作簿部件 {self.part} 的 XML 结构损坏")
                el = El(
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

    def close(self, head: El) -> El:
        """Complete a start tag from :meth:`heads` with its end tag (handles nesting)."""
        if head.empty:
            return head
        mask = self.mask
        open_rx, close_rx = _open_re(head.qname), _close_re(head.qname)
        depth, pos = 1, head.head_end
        while True:
            c = close_rx.search(mask, pos)
            if c is None:
                raise fail(f"工作簿部件 {self.part} 的 XML 结构损坏(缺少 </{head.qname}>)")
            for o in open_rx.finditer(mask, pos, c.start()):
                tail = TAIL_RE.match(mask, o.end())
                if tail is not None and tail.group(1) != "/":
                    depth += 1
            depth -= 1
            if depth == 0:
                return El(head.start, head.head_end, c.start(), c.end(), head.qname, head.head)
            pos = c.end()

    def all(self, local: str, start: int = 0, end: int | None = None) -> list[El]:
        """Complete elements named ``local`` in [start, end) (top level of that range)."""
        out: list[El] = []
        for h in self.heads(local, start, end):
            if out and h.start < out[-1].end:
                continue  # nested inside the previous one
            out.append(self.close(h))
        return out

    def first(self, local: str, start: int = 0, end: int | None = None) -> El | None:
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

    def records(self, local: str, box: El) -> list[tuple[int, int]]:
        """Spans of the ``local`` children of ``box`` (elements that never nest)."""
        spans: list[tuple[int, int]] = []
        for p in self.prefixes:
            rx = _record_re(f"{p}:{local}" if p else local)
            spans += [m.span() for m in rx.finditer(self.mask, box.head_end, box.close_start)]
        return sorted(spans) if len(self.prefixes) > 1 else spans

    def inner(self, el: El) -> str:
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

    def append_child(self, parent: El, xml: str) -> None:
        """Insert ``xml`` as the last child of ``parent``."""
        if parent.empty:
            head = parent.head[:-2].rstrip() + ">"
            self.replace(parent.start, parent.end, f"{head}{xml}</{parent.qname}>")
        else:
            self.replace(parent.close_start, parent.close_start, xml)

    def set_attrs(self, el: El, changes: Mapping[str, str | None]) -> None:
        self.replace(el.start, el.head_end, with_attrs(el.head, changes))

    def encode(self) -> bytes:
        if self.encoding == "utf-16":
            return self.text.encode("utf-16")
        return self.bom + self.text.encode("utf-8")
