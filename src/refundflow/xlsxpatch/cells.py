"""Cell editing on the form sheet: write values (inline text or numbers) and highlights
by splicing <c> and <row> elements, keeping everything else in the sheet."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import Reason
from ..layout import cell_to_rc, rc_to_cell
from .failure import fail
from .splice import El, Xml
from .styles import Styles
from .xmltext import inline_string, truthy, with_attrs

_MAX_ROW = 1_048_576
_MAX_COL = 16_384
_CELL_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?([0-9]{1,7})$")


def parse_cell(ref: str) -> tuple[int, int]:
    m = _CELL_RE.match(ref.strip())
    if m is None:
        raise fail(f"单元格地址“{ref}”无效", Reason.FOREIGN_WORKBOOK)
    row, col = cell_to_rc(m.group(1).upper() + m.group(2))
    if not (0 <= row < _MAX_ROW and 0 <= col < _MAX_COL):
        raise fail(f"单元格地址“{ref}”超出工作表范围", Reason.FOREIGN_WORKBOOK)
    return row, col


def _ref_rc(ref: str | None) -> tuple[int, int] | None:
    if ref is None:
        return None
    m = _CELL_RE.match(ref.strip())
    return cell_to_rc(m.group(1).upper() + m.group(2)) if m else None


@dataclass
class CellOp:
    value: str | float | None = None
    highlight: bool = False


def edit_cells(x: Xml, ops: Mapping[tuple[int, int], CellOp], styles: Styles | None) -> bool:
    """Write values/highlights into the form sheet; return whether a formula was removed."""
    sheet_data = x.first("sheetData")
    if sheet_data is None:
        raise fail(f"表单工作表部件 {x.part} 中没有 sheetData,文件已损坏")
    q = x.q
    edits: list[tuple[int, int, str]] = []
    formula_removed = False
    created: list[tuple[int, int]] = []
    col_styles: list[tuple[int, int, int]] | None = None

    def default_style(row_attrs: Mapping[str, str] | None, col: int) -> int:
        # A missing cell shows its row's format (customFormat) or else its column's format.
        nonlocal col_styles
        if row_attrs is not None and truthy(row_attrs.get("customFormat")):
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

    def style_for(current: int, op: CellOp) -> int | None:
        if not op.highlight:
            return None
        if styles is None:
            raise fail("工作簿缺少 styles.xml,无法标出问题单元格")
        return styles.highlight_xf(current)

    def value_xml(value: str | float) -> str:
        if isinstance(value, float):
            return f"<{q('v')}>{value!r}</{q('v')}>"
        return inline_string(value, x.root_prefix) if value else ""

    def type_of(value: str | float) -> str | None:
        # A number has no t attribute; text is an inline string; an empty text clears.
        return "inlineStr" if isinstance(value, str) and value else None

    def new_cell(row: int, col: int, op: CellOp, row_attrs: Mapping[str, str] | None) -> str:
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

    def edit_cell(cell: El, row: int, col: int, op: CellOp) -> None:
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
            edits.append((cell.start, cell.head_end, with_attrs(cell.head, changes)))
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
                raise fail(
                    f"单元格 {rc_to_cell(row, col)} 是共享公式或数组公式的一部分,不能写入,"
                    "请把该单元格改回模板原样后重新提交",
                    Reason.FOREIGN_WORKBOOK,
                )
            formula_removed = True
        ext = x.first("extLst", cell.head_end, cell.close_start)
        body = value_xml(op.value) + (x.text[ext.start : ext.end] if ext else "")
        head = with_attrs(cell.head, changes)
        if body:
            head = head[:-2].rstrip() + ">" if head.endswith("/>") else head
            edits.append((cell.start, cell.end, f"{head}{body}</{cell.qname}>"))
        else:
            head = head if head.endswith("/>") else head[:-1].rstrip() + "/>"
            edits.append((cell.start, cell.end, head))

    def widen_spans(row_el: El, cols: list[int]) -> str:
        spans = row_el.attrs.get("spans")
        if not spans:
            return row_el.head
        nums = [int(n) for n in re.findall(r"\d+", spans)] or [cols[0] + 1]
        lo, hi = min([*nums, *(c + 1 for c in cols)]), max([*nums, *(c + 1 for c in cols)])
        return (
            with_attrs(row_el.head, {"spans": f"{lo}:{hi}"})
            if f"{lo}:{hi}" != spans
            else row_el.head
        )

    def edit_row(row_el: El, row: int, targets: list[tuple[int, CellOp]]) -> None:
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

    def new_row(row: int, targets: list[tuple[int, CellOp]]) -> str:
        cells = "".join(new_cell(row, c, op, None) for c, op in targets)
        return f'<{q("row")} r="{row + 1}">{cells}</{q("row")}>'

    by_row: dict[int, list[tuple[int, CellOp]]] = {}
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
                edits.append((dim.start, dim.head_end, with_attrs(dim.head, {"ref": new_ref})))
    x.splice(edits)
    return formula_removed
