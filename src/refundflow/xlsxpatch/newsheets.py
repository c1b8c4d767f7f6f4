"""The sheets we write ourselves (流转记录, 退回原因): a small worksheet of inline strings."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..layout import rc_to_cell
from .ooxml import NS_MAIN, NS_REL
from .xmltext import inline_string


def _text_width(text: str) -> int:
    lines = text.split("\n")
    longest = max(lines, key=len) if len(lines) > 1 else text
    if longest.isascii():
        return len(longest)  # every ASCII character is narrow (Na) or neutral (N)
    return len(longest) + sum(unicodedata.east_asian_width(ch) in "WF" for ch in longest)


def new_sheet_xml(
    rows: Sequence[Sequence[str]],
    *,
    strict: bool,
    header_xf: int | None,
    body_xf: int | None,
    wrap: bool,
    selected: bool,
) -> bytes:
    """A small worksheet of inline strings: bold frozen header row, fitted column widths."""
    ns_main = NS_MAIN[1] if strict else NS_MAIN[0]
    ns_rel = NS_REL[1] if strict else NS_REL[0]
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
                cells.append(f'<c r="{ref}"{style} t="inlineStr">{inline_string(text)}</c>')
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


@dataclass(frozen=True)
class NewSheet:
    """A sheet we write ourselves; rendered once the final active tab is known."""

    rows: Sequence[Sequence[str]]
    header_xf: int | None
    body_xf: int | None
    wrap: bool
    selected: bool  # when the active tab does not change
