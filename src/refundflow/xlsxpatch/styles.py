"""styles.xml: the highlight fill, cloned cell formats and the formats of the sheets we write."""

from __future__ import annotations

import re

from .failure import fail
from .splice import Xml
from .xmltext import ROOT_RE, TAIL_RE, with_attrs

HIGHLIGHT_RGB = "FFFFC8CF"
"""Fill colour of highlighted problem cells. Deliberately one step away from Excel's built-in
"Bad"/"差" style (FFC7CE) so stripping our highlights never removes formatting staff applied."""

_BETWEEN_TAGS_RE = re.compile(r">\s+<")
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
    name = ROOT_RE.match(text)
    tail = TAIL_RE.match(text, name.end()) if name else None
    if tail is None:
        raise fail("styles.xml 的结构损坏")
    if tail.group(1):
        return text, "", ""
    close = text[text.rindex("</") :]
    return text[: tail.end()], text[tail.end() : -len(close)], close


class _Records:
    """The children of one ``<fonts>``/``<fills>``/``<cellXfs>`` and those this patch adds."""

    def __init__(self, x: Xml, box_local: str, local: str) -> None:
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


class Styles:
    def __init__(self, x: Xml) -> None:
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
                raise fail("styles.xml 中没有填充定义(fills),无法标出问题单元格")
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
            raise fail("styles.xml 中没有单元格格式(cellXfs),文件已损坏")
        return xfs

    def highlight_xf(self, xf: int) -> int:
        """Index of a cell format equal to ``xf`` but with the highlight fill."""
        xfs = self._xfs()
        if not 0 <= xf < len(xfs.texts):
            raise fail(f"单元格引用了不存在的格式 {xf},文件已损坏")
        fill = self.highlight_fill()
        head, inner, close = xfs.split(xf)
        return xfs.add(with_attrs(head, {"fillId": str(fill), "applyFill": "1"}) + inner + close)

    def _bold_font(self, size: float | None = None) -> int:
        """Font 0 made bold (and ``size`` points, for a title), added once."""
        fonts = self._get("fonts", "font")
        if not fonts.texts:
            return 0
        q = self.x.q
        head, inner, close = fonts.split(0)
        if not close:  # an empty <font/>
            head, close = head[:-2].rstrip() + ">", f"</{fonts.qname}>"
        inner = re.sub(rf"<{re.escape(q('b'))}(?=[\s/>])[^>]*?/>", "", inner)
        if size is None:
            return fonts.add(f"{head}<{q('b')}/>{inner}{close}")
        # CT_Font's children may come in any order: drop the size and put ours first.
        inner = re.sub(rf"<{re.escape(q('sz'))}(?=[\s/>])[^>]*?/>", "", inner)
        return fonts.add(f'{head}<{q("b")}/><{q("sz")} val="{size:g}"/>{inner}{close}')

    def _thin_border(self) -> int:
        """A thin black box around the cell; 0 (no border) in a styles.xml without borders."""
        borders = self._get("borders", "border")
        if not borders.present or not borders.texts:
            return 0
        q = self.x.q
        sides = "".join(
            f'<{q(side)} style="thin"><{q("color")} indexed="64"/></{q(side)}>'
            for side in ("left", "right", "top", "bottom")
        )
        return borders.add(f"<{q('border')}>{sides}<{q('diagonal')}/></{q('border')}>")

    def sheet_xf(
        self,
        *,
        bold: bool,
        wrap: bool,
        border: bool = False,
        center: bool = False,
        size: float | None = None,
    ) -> int:
        """Index of a plain format for the sheets we write: optionally bold (of ``size``
        points), wrapped at the top of the cell, boxed by a thin border, centred."""
        xfs = self._xfs()
        font = self._bold_font(size) if bold else 0
        border_id = self._thin_border() if border else 0
        q = self.x.q
        xf_id = ' xfId="0"' if self.x.first("cellStyleXfs") is not None else ""
        aligned = wrap or center
        applies = (
            (' applyFont="1"' if bold else "")
            + (' applyBorder="1"' if border_id else "")
            + (' applyAlignment="1"' if aligned else "")
        )
        head = (
            f'<{q("xf")} numFmtId="0" fontId="{font}" fillId="0" borderId="{border_id}"'
            f"{xf_id}{applies}"
        )
        if aligned:
            where = ' horizontal="center" vertical="center"' if center else ' vertical="top"'
            wrap_text = ' wrapText="1"' if wrap else ""
            align = f"<{q('alignment')}{where}{wrap_text}/>"
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
