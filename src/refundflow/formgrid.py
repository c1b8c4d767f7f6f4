"""The form's sheet as calamine reads it, and where each field is on it.

A field is found by its defined name, or by its printed label plus the offset in
:mod:`layout` when a program or a person dropped or broke the names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import python_calamine as calamine

from . import layout, normalize
from .errors import FileRejected, FormReadError, Reason
from .formpackage import TEMPLATE_HINT, rejected
from .layout import Field

# Labels are looked for in the first rows only; the form has 28 and people insert a few.
_LABEL_SCAN_ROWS = 300
# Rows read at most, even if a defined name points further down.
_MAX_ROWS = 20_000
_LABEL_MAX_LEN = 64


@functools.lru_cache(maxsize=4096)  # the same labels come back in every form
def label_key(s: str) -> str:
    """A printed label as compared: half-width, no whitespace, no trailing colon."""
    return "".join(normalize.half_width(s).split()).rstrip(":")


ANCHORS: frozenset[str] = frozenset(label_key(f.anchor) for f in layout.REFUND_FIELDS)


class Grid:
    """The calamine values of one sheet, addressed by absolute zero-based (row, column)."""

    def __init__(
        self,
        rows: list[list[Any]],
        origin: tuple[int, int],
        merged: list[tuple[tuple[int, int], tuple[int, int]]],
    ) -> None:
        self.rows = rows
        self.r0, self.c0 = origin
        self.merged = merged
        # Cells covered by a merge -> its top-left, for the usual handful of small merges; a
        # file with huge merged areas is looked up range by range instead (no giant dict).
        self._covered: dict[tuple[int, int], tuple[int, int]] | None = None
        if sum((r2 - r1 + 1) * (c2 - c1 + 1) for (r1, c1), (r2, c2) in merged) <= 10_000:
            self._covered = {
                (r, c): (r1, c1)
                for (r1, c1), (r2, c2) in merged
                for r in range(r1, r2 + 1)
                for c in range(c1, c2 + 1)
            }

    def top_left(self, row: int, col: int) -> tuple[int, int]:
        """The cell holding the value shown at (row, col): a merged range's top-left."""
        if self._covered is not None:
            return self._covered.get((row, col), (row, col))
        for (r1, c1), (r2, c2) in self.merged:
            if r1 <= row <= r2 and c1 <= col <= c2:
                return r1, c1
        return row, col

    def get(self, row: int, col: int) -> object:
        r, c = row - self.r0, col - self.c0
        if 0 <= r < len(self.rows) and 0 <= c < len(self.rows[r]):
            return self.rows[r][c]
        return None

    def anchors(self) -> dict[str, tuple[int, int]]:
        """Anchor label -> its first cell, in reading order, within the scanned rows."""
        found: dict[str, tuple[int, int]] = {}
        for r, row in enumerate(self.rows[:_LABEL_SCAN_ROWS]):
            for c, v in enumerate(row):
                if isinstance(v, str) and v and len(v) <= _LABEL_MAX_LEN:
                    key = label_key(v)
                    if key in ANCHORS and key not in found:
                        found[key] = (r + self.r0, c + self.c0)
        return found


def calamine_failure(exc: Exception) -> FileRejected:
    if isinstance(exc, calamine.PasswordError):
        return rejected(Reason.ENCRYPTED, "文件设置了密码,无法读取", "请取消密码后重新保存再放入")
    return rejected(
        Reason.CORRUPT, f"文件已损坏,无法读取表格内容({exc})", "请重新保存或重新复制一份"
    )


CALAMINE_ERRORS = (calamine.CalamineError, ValueError, OSError, TypeError)


def load_grid(wb: calamine.CalamineWorkbook, sheet: str, *, rows_needed: int) -> Grid:
    try:
        ws = wb.get_sheet_by_name(sheet)
        start = ws.start
        if start is None:  # an empty sheet
            return Grid([], (0, 0), [])
        # skip_empty_area=True: the output starts at ws.start (leading empty rows and columns
        # dropped), and nrows counts from there.
        nrows = max(rows_needed - start[0], _LABEL_SCAN_ROWS)
        rows = ws.to_python(skip_empty_area=True, nrows=min(nrows, _MAX_ROWS))
        merged = ws.merged_cell_ranges or []
    except CALAMINE_ERRORS as exc:
        raise calamine_failure(exc) from None
    return Grid(rows, start, merged)


def foreign(sheet_names: list[str]) -> FormReadError:
    shown = "、".join(sheet_names[:5]) or "(没有工作表)"
    return FormReadError(
        f"这不是退款申请表:找不到“编号”“订单号”“金额”“技术部处理意见”等栏目(工作表:{shown})",
        reason=Reason.FOREIGN_WORKBOOK,
        hint=TEMPLATE_HINT,
    )


def locate(
    f: Field,
    named: tuple[int, int] | None,
    anchors: Mapping[str, tuple[int, int]],
    grid: Grid,
) -> tuple[int, int] | None:
    """Where field ``f`` is: by its defined name, or by its printed label."""
    anchor = anchors.get(label_key(f.anchor))
    dr, dc = f.offset
    labeled = None if anchor is None else (anchor[0] + dr, anchor[1] + dc)
    if named is not None:
        if labeled is None or labeled == named:
            return named
        # Both exist and disagree: trust the name if its label is where the layout puts it
        # (the printed label also occurs elsewhere), else the name is stale (a tool inserted
        # rows without updating names) and the label wins.
        label_cell = grid.get(*grid.top_left(named[0] - dr, named[1] - dc))
        if isinstance(label_cell, str) and label_key(label_cell) == label_key(f.anchor):
            return named
    return labeled


def history(wb: calamine.CalamineWorkbook, sheet_names: list[str]) -> tuple[int | None, str | None]:
    """How many hand-offs the 流转记录 sheet lists, and the copy token in its header row."""
    if layout.HISTORY_SHEET not in sheet_names:
        return None, None
    try:
        rows = wb.get_sheet_by_name(layout.HISTORY_SHEET).to_python(skip_empty_area=False)
    except CALAMINE_ERRORS:
        return None, None
    token = next(
        (
            v.removeprefix(layout.COPY_TOKEN_LABEL).strip()
            for v in (rows[0] if rows else ())
            if isinstance(v, str) and v.startswith(layout.COPY_TOKEN_LABEL)
        ),
        None,
    )
    return max(0, sum(1 for r in rows if any(v not in ("", None) for v in r)) - 1), token
