"""The sheets we write ourselves (流转记录, 退回原因): a small worksheet of inline strings."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..layout import rc_to_cell
from .ooxml import NS_MAIN, NS_REL
from .xmltext import inline_string, xstring


def _text_width(text: str) -> int:
    lines = text.split("\n")
    longest = max(lines, key=len) if len(lines) > 1 else text
    if longest.isascii():
        return len(longest)  # every ASCII character is narrow (Na) or neutral (N)
    return len(longest) + sum(unicodedata.east_asian_width(ch) in "WF" for ch in longest)


def _printed_lines(text: str, width: float) -> int:
    """Lines a wrapped cell takes on paper: each of its own lines wraps on its own. A line
    that fits the column's room is one line (columns are fitted to their text, with room to
    spare); a longer one gets a margin, since fonts draw Chinese punctuation and quotes wider
    than :func:`_text_width` counts."""
    room = max(width - 2.0, 1.0)
    lines = 0
    for line in text.split("\n"):
        wide = _text_width(line)
        lines += 1 if wide <= room else math.ceil(wide * 1.2 / room)
    return lines


PRINT_TITLES = "_xlnm.Print_Titles"
"""The sheet-local defined name Excel and LibreOffice read as "rows to repeat on each page"."""
PAGE_FOOTER = "&C第 &P 页,共 &N 页"
"""Page number and count, centred: a loose page of a long sheet says where it belongs."""
TITLE_HEIGHT = 24
"""Points of the title row (a 14-point bold title)."""


def header_text(text: str) -> str:
    """``text`` for a page header section: "&" starts a header code there, so it is doubled
    (cut first, so no "&&" is cut in half); Excel refuses headers over 255 characters."""
    return text[:120].replace("&", "&&")


def print_titles(sheet_name: str, last_row: int) -> str:
    """Formula of :data:`PRINT_TITLES` repeating rows 1 to ``last_row`` of ``sheet_name``."""
    return "'" + sheet_name.replace("'", "''") + f"'!$1:${last_row}"


def new_sheet_xml(
    rows: Sequence[Sequence[str]],
    *,
    strict: bool,
    header_xf: int | None,
    body_xf: int | None,
    wrap: bool,
    selected: bool,
    title: str = "",
    title_xf: int | None = None,
    page_header: str = "",
) -> bytes:
    """A small worksheet of inline strings: bold frozen header row, fitted column widths.

    ``title`` goes in a row of its own above the table, across its columns; ``page_header``
    is printed at the top of every page. Either also numbers the printed pages.
    """
    ns_main = NS_MAIN[1] if strict else NS_MAIN[0]
    ns_rel = NS_REL[1] if strict else NS_REL[0]
    ncols = max((len(r) for r in rows), default=1) or 1
    top = 1 if title else 0  # rows above the table
    printed = bool(title or page_header)  # laid out for paper: row heights fit every line
    widths = [8.0] * ncols
    for row in rows:
        for c, value in enumerate(row):
            # Long explanations wrap in a column that still fits an A4 page across.
            widths[c] = max(widths[c], min(_text_width(str(value)) + 2.0, 42.0 if wrap else 50.0))
    if title:
        # The title is merged across the table: a narrow table (short problems) would clip it
        # on paper. Its font is 14 points against the body's 11; the last column takes the rest.
        needed = _text_width(title) * 14 / 11 + 2.0
        widths[-1] += max(0.0, needed - sum(widths))
    out_rows: list[str] = []
    if title:
        style = f' s="{title_xf}"' if title_xf else ""
        out_rows.append(
            f'<row r="1" ht="{TITLE_HEIGHT}" customHeight="1"><c r="A1"{style} t="inlineStr">'
            f"{inline_string(title)}</c></row>"
        )
    for r, row in enumerate(rows):
        xf = header_xf if r == 0 else body_xf
        style = f' s="{xf}"' if xf else ""
        cells: list[str] = []
        lines = 1
        for c, value in enumerate(row):
            text = str(value)
            if wrap and printed:
                lines = max(lines, _printed_lines(text, widths[c]))
            elif wrap:
                lines = max(lines, math.ceil(_text_width(text) / max(widths[c] - 2.0, 1.0)))
            ref = rc_to_cell(top + r, c)
            if text:
                cells.append(f'<c r="{ref}"{style} t="inlineStr">{inline_string(text)}</c>')
            elif style:
                cells.append(f'<c r="{ref}"{style}/>')
        # An explicit height: not every program fits wrapped rows when it opens the file.
        # On paper a line needs a little more than 15 points, or the last one is clipped.
        points = 15 * lines + (3 if printed else 0)
        height = f' ht="{points}" customHeight="1"' if lines > 1 else ""
        out_rows.append(f'<row r="{top + r + 1}"{height}>{"".join(cells)}</row>')
    cols = "".join(
        f'<col min="{i + 1}" max="{i + 1}" width="{w:.1f}" customWidth="1"/>'
        for i, w in enumerate(widths)
    )
    last = rc_to_cell(top + max(len(rows), 1) - 1, ncols - 1)
    tab = ' tabSelected="1"' if selected else ""
    first = f"A{top + 2}"  # the first row under the frozen header
    pane = (
        f'<pane ySplit="{top + 1}" topLeftCell="{first}" activePane="bottomLeft" state="frozen"/>'
        f'<selection pane="bottomLeft" activeCell="{first}" sqref="{first}"/>'
        if len(rows) > 1
        else ""
    )
    merge = (
        f'<mergeCells count="1"><mergeCell ref="A1:{rc_to_cell(0, ncols - 1)}"/></mergeCells>'
        if title and ncols > 1
        else ""
    )
    header_footer = ""
    if title or page_header:
        odd_header = f"<oddHeader>{xstring('&C' + header_text(page_header))}</oddHeader>"
        header_footer = (
            f"<headerFooter>{odd_header if page_header else ''}"
            f"<oddFooter>{xstring(PAGE_FOOTER)}</oddFooter></headerFooter>"
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{ns_main}" xmlns:r="{ns_rel}">'
        '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
        f'<dimension ref="A1:{last}"/>'
        f'<sheetViews><sheetView{tab} workbookViewId="0">{pane}</sheetView></sheetViews>'
        f'<sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols>'
        f"<sheetData>{''.join(out_rows)}</sheetData>{merge}"
        '<pageMargins left="0.5" right="0.5" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        # A4 landscape, one page wide: staff print the reasons next to the form.
        '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/>'
        f"{header_footer}</worksheet>"
    )
    return xml.encode("utf-8")


@dataclass(frozen=True)
class NewSheet:
    """A sheet we write ourselves; rendered once the final active tab is known."""

    rows: Sequence[Sequence[str]]
    header_xf: int | None
    body_xf: int | None
    wrap: bool
    selected: bool  # when the active tab does not change
    title: str = ""
    title_xf: int | None = None
    page_header: str = ""

    @property
    def repeated_rows(self) -> int:
        """Rows to print on every page (title and header), 0 for the unprinted layout."""
        if self.title:
            return 2
        return 1 if self.page_header else 0
