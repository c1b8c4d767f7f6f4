"""Administration's monthly workbook (月度退款报表): figures from pandas, written by xlsxwriter.

Sheets: 汇总 (figures and charts), 客服退单统计表 and 财务退单统计表 (as generated, marked
unsigned), 核对, 超时, 明细, 人员. Every list is an Excel table with filters and a frozen
header; amounts ¥ with 2 decimals, times yyyy-mm-dd hh:mm, columns as wide as their Chinese
text. Mobile numbers are masked unless the configuration says otherwise.

The workbook is written in xlsxwriter's constant-memory mode, row after row, so a month of
100,000 refunds never holds the whole sheet in memory (pandas' ``to_excel`` writes column
by column, which keeps every cell until the file is closed: 3 GB at that size).
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import xlsxwriter

from .reports import (
    OPEN,
    REFUNDED,
    RETURNED,
    STEP_WORK,
    TECH_REFUSED,
    MonthData,
    mask_mobile,
    total,
)

AMOUNT = '"¥"#,##0.00'
DATETIME = "yyyy-mm-dd hh:mm"
DATE = "yyyy-mm-dd"
FONT = "宋体"

SUMMARY = "汇总"
CHECK = "核对"
OVERDUE = "超时"
DETAIL = "明细"
PEOPLE = "人员"

AMOUNT_COLUMNS = frozenset({"金额", "金额合计"})
HOURS_COLUMNS = frozenset({"用时(小时)", "超出(小时)", "中位数(小时)", "90%分位(小时)"})
SHARE_COLUMNS = frozenset({"比例", "时限内比例"})
MAX_WIDTH = 32  # wider text wraps, so a sheet still prints at a legible size
NOTE_WIDTH = 20  # where 备注 wraps in the copies of the statistics tables


@dataclass(frozen=True)
class Tables:
    """The two statistics tables as they go into the workbook, and how they were checked."""

    cs: pd.DataFrame
    finance: pd.DataFrame
    issues: pd.DataFrame  # reports.reconcile of both tables + forms that skipped a step
    signed: bool = False  # False: as generated, not yet approved by the department heads
    approvers: tuple[str, str] = ("", "")  # 审批人 of the cs and the finance table, when signed


_FILTER = 3  # the width of a header's filter button


def _shown_width(value: object, fmt: Any, book: _Book) -> int:
    """The width of a value as its number format shows it (¥1,999.99, not 1999.99)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        if fmt is book.amount:
            return len(f"¥{value:,.2f}")
        if fmt is book.hours:
            return len(f"{value:.2f}")
        if fmt is book.share:
            return len(f"{value:.1%}")
    return _width(value)


def _width(value: object) -> int:
    if isinstance(value, dt.datetime | pd.Timestamp):
        return 16
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class _NoCells(dict[tuple[int, int], str]):
    """A cell map that keeps nothing (see :meth:`_Book._add_table`)."""

    def __setitem__(self, key: tuple[int, int], value: str) -> None:
        pass


class _Book:
    """The xlsxwriter workbook, in constant-memory mode, with the workbook's shared formats.

    Constant memory: each sheet must be written top to bottom, a row at a time (a row is
    written out when a later one is begun), and row heights set before the row's cells.
    """

    def __init__(self, path: Path) -> None:
        self.book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                # What people typed is text: never a formula, a link or a number.
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        book = self.book
        base = {"font_name": FONT, "font_size": 11}
        self.text = book.add_format(base)
        self.amount = book.add_format({**base, "num_format": AMOUNT})
        self.hours = book.add_format({**base, "num_format": "0.00"})
        self.share = book.add_format({**base, "num_format": "0.0%"})
        self.when = book.add_format({**base, "num_format": DATETIME})
        self.day = book.add_format({**base, "num_format": DATE})
        self.title = book.add_format({**base, "bold": True, "font_size": 16})
        self.note = book.add_format({**base, "font_color": "#C00000", "bold": True})
        self.plain = book.add_format({**base, "text_wrap": False})
        self.wrap = book.add_format({**base, "text_wrap": True, "valign": "top"})
        self.header = book.add_format({**base, "bold": True, "text_wrap": True, "valign": "top"})
        self._widths: dict[tuple[str, int], float] = {}
        self.sheets: dict[str, Any] = {}

    def sheet(self, name: str) -> Any:
        if name not in self.sheets:
            self.sheets[name] = self.book.add_worksheet(name)
        return self.sheets[name]

    def close(self) -> None:
        self.book.close()

    def table(
        self,
        frame: pd.DataFrame,
        sheet: str,
        *,
        startrow: int = 0,
        startcol: int = 0,
        name: str,
        totals: Sequence[str] = (),
        freeze: bool = True,
        max_width: int = MAX_WIDTH,
    ) -> int:
        """Write ``frame`` as an Excel table below everything written so far on ``sheet``;
        return the row after it. Text wider than ``max_width`` wraps."""
        ws = self.sheet(sheet)
        frame = frame.reset_index(drop=True)
        headers = [str(c) for c in frame.columns]
        rows = max(len(frame), 1)  # a table needs one data row, even an empty one
        last = startrow + rows + (1 if totals else 0)
        formats = [self._format(h) for h in headers]
        values = [frame[c].tolist() for c in frame.columns]
        columns: list[dict[str, Any]] = []
        for i, header in enumerate(headers):
            options: dict[str, Any] = {"header": header, "format": formats[i]}
            if header in totals:
                options |= {"total_function": "sum", "total_value": total(frame[header].fillna(0))}
            elif i == 0 and totals:
                options["total_string"] = "合计"
            columns.append(options)
        fits = [self._fit(ws, sheet, startcol + i, frame[c], h, formats[i], max_width)
                for i, (c, h) in enumerate(zip(frame.columns, headers, strict=True))]  # fmt: skip
        total_cells = self._add_table(
            ws, (startrow, startcol, last, startcol + len(headers) - 1),
            {
                "name": name, "columns": columns, "total_row": bool(totals),
                "style": "Table Style Light 9",
            },
        )  # fmt: skip
        if any(_width(h) + _FILTER > width for h, (width, _) in zip(headers, fits, strict=True)):
            ws.set_row(startrow, 30)  # a header wider than its column's values: two lines
        for i, header in enumerate(headers):
            ws.write_string(startrow, startcol + i, header, self.header)
        wrapped = [(i, int(width - 1)) for i, (width, wraps) in enumerate(fits) if wraps]
        for r, row in enumerate(zip(*values, strict=True)):
            at = startrow + 1 + r
            if wrapped:
                # Spreadsheet programs do not grow a row for wrapped text they did not type.
                lines = max(-(-_width(row[i]) // width) for i, width in wrapped)
                if lines > 1:
                    ws.set_row(at, 15 * lines)
            for i, value in enumerate(row):
                self._write(ws, at, startcol + i, value, formats[i])
        if totals:
            ws.write_string(last, startcol, "合计", formats[0])
            for col, (formula, fmt, value) in total_cells.items():
                ws.write_formula(last, col, formula, fmt, value)
        if freeze:
            ws.freeze_panes(startrow + 1, 0)
        return last + 1

    @staticmethod
    def _add_table(
        ws: Any, where: tuple[int, int, int, int], options: dict[str, Any]
    ) -> dict[int, tuple[str, Any, Any]]:
        """``add_table`` in constant-memory mode, which xlsxwriter refuses only because the
        header and total cells it writes could land in rows already written out.

        So it runs before any of the table's cells, with the mode off for the call; the
        cells it wrote are dropped (the next row begun clears them) and written again in
        order by :meth:`table`: the header, and the total row, whose formulas are returned
        (column -> (formula, format, value)).
        """
        first_row, _first_col, last_row, _last_col = where
        # It also notes every cell of the range to refuse overlapping tables: 3 million
        # entries for 明细 at 100,000 refunds. Our tables are laid out one below another.
        ws.table_cells = _NoCells()
        ws.constant_memory = False
        try:
            ws.add_table(*where, options)
            totals = {
                col: (cell.formula, cell.format, cell.value)
                for col, cell in ws.table.get(last_row, {}).items()
                if hasattr(cell, "formula")
            }
        finally:
            ws.constant_memory = True
        # The header cells it stored hold shared-string indexes, not text: ours replace them.
        ws.table.pop(first_row, None)
        ws.table.pop(last_row, None)
        return totals

    def _write(self, ws: Any, row: int, col: int, value: object, fmt: Any) -> None:
        """One cell, typed: text as text (never a formula), numbers in the column's format."""
        if value is None or value is pd.NaT:
            return
        if isinstance(value, str):
            ws.write_string(row, col, value)  # the column's format (wrapping) applies
        elif isinstance(value, bool):
            ws.write_boolean(row, col, value)
        elif isinstance(value, int | float | Decimal):
            number = float(value)
            if not math.isnan(number):
                ws.write_number(row, col, number, None if fmt is self.text else fmt)
        elif isinstance(value, dt.datetime):  # pd.Timestamp is one
            ws.write_datetime(row, col, value, self.when)
        elif isinstance(value, dt.date):
            ws.write_datetime(row, col, value, self.day)
        else:
            ws.write_string(row, col, str(value))

    def _fit(
        self, ws: Any, sheet: str, col: int, values: pd.Series, header: str, fmt: Any, most: int
    ) -> tuple[float, bool]:
        """As wide as the column's values as shown (Chinese counts double), at least half its
        header (which then takes two lines), at most ``most``: (width, whether text wraps).

        Narrow columns are what lets a sheet print one page wide at a legible size: the
        header is no longer what sets the width of a column of short values.
        """
        shown = max((_shown_width(v, fmt, self) for v in values.head(2000)), default=0)
        # + the header's filter button; a datetime is 16 characters.
        widest = max(-(-_width(header) // 2) + _FILTER, shown) + 1
        wrap = widest > most
        width = max(min(widest, most), self._widths.get((sheet, col), 0))
        self._widths[(sheet, col)] = width
        ws.set_column(col, col, width, self.wrap if wrap else None)
        return width, wrap

    def _format(self, column: str) -> Any:
        if column in AMOUNT_COLUMNS:
            return self.amount
        if column in HOURS_COLUMNS:
            return self.hours
        if column in SHARE_COLUMNS:
            return self.share
        return self.text


def _masked(frame: pd.DataFrame, *, mask: bool) -> pd.DataFrame:
    if not mask or "联系方式" not in frame.columns:
        return frame
    out = frame.copy()
    out["联系方式"] = out["联系方式"].map(mask_mobile)
    return out


def _figures(data: MonthData) -> pd.DataFrame:
    r = data.refunds
    count = len(r)
    rows = [["退款单总数", count, total(r["金额"]), 1.0 if count else 0.0]]
    for outcome in (REFUNDED, RETURNED, TECH_REFUSED, OPEN):
        part = r[r["结果"] == outcome]
        rows.append([outcome, len(part), total(part["金额"]), len(part) / count if count else 0.0])
    steps = data.steps
    late_forms = set(steps.loc[steps["超时"], "退单编号"])
    within = (count - len(late_forms)) / count if count else 0.0
    rows.append(["全部环节都在时限内", count - len(late_forms), None, within])
    return pd.DataFrame(rows, columns=["指标", "单数", "金额", "比例"])


NO_LIMIT = "(无时限)"


def _step_figures(data: MonthData) -> pd.DataFrame:
    """Per step: limit, count, median and 90th percentile, share within the limit; the steps
    without a limit last (the duration chart leaves them out)."""
    steps = data.steps
    rows = []
    for work in STEP_WORK.values():
        part = steps[steps["环节"] == work]
        if part.empty:
            continue
        hours = part["用时(小时)"]
        over = int(part["超时"].sum())
        rows.append(
            [
                work,
                part["时限"].iloc[0] or NO_LIMIT,
                len(part),
                round(float(hours.median()), 2),
                round(float(hours.quantile(0.9)), 2),
                over,
                (len(part) - over) / len(part),
            ]
        )
    return pd.DataFrame(
        rows,
        columns=["环节", "时限", "次数", "中位数(小时)", "90%分位(小时)", "超时", "时限内比例"],
    )


def _by(frame: pd.DataFrame, key: str, label: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=[label, "单数", "金额"])
    grouped = frame.groupby(key, sort=True)["金额"].agg(["count", "sum"]).reset_index()
    grouped.columns = [label, "单数", "金额"]
    grouped["金额"] = grouped["金额"].round(2)
    return grouped


def _chart(
    book: _Book, kind: str, title: str, sheet: str, first: int, rows: int, series: Sequence[int]
) -> Any:
    chart = book.book.add_chart({"type": kind})
    for col in series:
        chart.add_series(
            {
                "name": [sheet, first, col],
                "categories": [sheet, first + 1, 0, first + rows, 0],
                "values": [sheet, first + 1, col, first + rows, col],
            }
        )
    chart.set_title({"name": title, "name_font": {"name": FONT, "size": 12}})
    chart.set_legend({"position": "bottom", "font": {"name": FONT}})
    chart.set_x_axis({"num_font": {"name": FONT}})
    return chart


CHART_ROWS = 16  # rows one chart takes, at the default row height
CHART_SIZE = {"width": 480, "height": 300}


def _summary(book: _Book, data: MonthData, tables: Tables) -> None:
    """Figures on top, the four charts under them (two by two), the charts' data last:
    one A4 landscape page wide, read from the top."""
    sheet = SUMMARY
    ws = book.sheet(sheet)
    ws.write(0, 0, f"{data.month.label} 月度退款报表", book.title)
    agreed = "核对无误" if tables.issues.empty else f"核对发现 {len(tables.issues)} 处问题,见“核对”"
    ws.write(1, 0, f"生成时间 {data.as_of:%Y-%m-%d %H:%M};按提交日期统计;{agreed}", book.plain)
    row = book.table(_figures(data), sheet, startrow=3, name="月度概况", freeze=False)
    steps = _step_figures(data)
    steps_at = row + 1
    row = book.table(steps, sheet, startrow=steps_at, name="环节用时", freeze=False)
    charts_at = row + 1
    r = data.refunds
    daily = _by(r.assign(日期=[d.date() for d in r["提交日期"]]), "日期", "日期")
    data_at = charts_at + 2 * CHART_ROWS + 1
    ws.write(data_at - 1, 0, "图表数据", book.plain)
    placed: list[Any] = []
    for kind, title, frame, name in (
        ("column", "每日退款单数与金额", daily, "按日"),
        ("bar", "按故障现象(单数)", _by(r, "故障现象", "故障现象"), "按故障"),
        ("bar", "按开户行(单数)", _by(r, "开户行", "开户行"), "按银行"),
    ):
        at = data_at
        data_at = book.table(frame, sheet, startrow=at, name=name, freeze=False) + 1
        if frame.empty:
            continue
        chart = _chart(book, kind, title, sheet, at, len(frame), (1,))
        if name == "按日":  # the amount on its own axis, as a line over the counts
            amount = book.book.add_chart({"type": "line"})
            amount.add_series(
                {
                    "name": [sheet, at, 2],
                    "categories": [sheet, at + 1, 0, at + len(frame), 0],
                    "values": [sheet, at + 1, 2, at + len(frame), 2],
                    "y2_axis": True,
                }
            )
            chart.combine(amount)
            chart.set_y2_axis({"num_format": '"¥"#,##0'})
            chart.set_x_axis({"date_axis": True, "num_format": "mm-dd", "num_font": {"name": FONT}})
        placed.append(chart)
    timed = int((steps["时限"] != NO_LIMIT).sum()) if len(steps) else 0
    if timed:  # steps without a limit (行政部归档) would dwarf the rest
        placed.append(_chart(book, "bar", "各环节用时(小时)", sheet, steps_at, timed, (3, 4)))
    for i, chart in enumerate(placed):
        chart.set_size(CHART_SIZE)
        ws.insert_chart(charts_at + (i // 2) * CHART_ROWS, 0 if i % 2 == 0 else 2, chart)
    ws.set_column(0, 0, 36)  # the longest fault category of the spec
    ws.set_column(1, 1, 32)  # the longest limit text
    ws.set_h_pagebreaks([charts_at])  # figures on the first page, the charts on the next
    _print(ws, repeat=None)


def _print(ws: Any, *, repeat: int | None, wide: bool = False) -> None:
    """A4 landscape; the header row on every page; one page wide unless ``wide`` (明细 has
    30 columns: it runs on over pages, its first column repeated, at a legible size)."""
    ws.set_paper(9)
    ws.set_landscape()
    # Narrow side margins: every millimetre of width is a larger print of a wide table.
    ws.set_margins(left=0.25, right=0.25, top=0.5, bottom=0.5)
    ws.center_horizontally()
    if repeat is not None:
        ws.repeat_rows(repeat)
    if wide:
        ws.repeat_columns(0)
    else:
        ws.fit_to_pages(1, 0)


def _stats_sheet(
    book: _Book, frame: pd.DataFrame, sheet: str, name: str, signed: bool, approver: str = ""
) -> None:
    ws = book.sheet(sheet)
    mark = (
        f"已审批:部门负责人签字的统计表,审批人 {approver}"
        if signed
        else "未签字:refundflow 按账本生成,尚未经部门负责人审批"
    )
    ws.write(0, 0, mark, book.plain if signed else book.note)
    # 备注 wraps early: the table prints one A4 page wide at a size people can read.
    book.table(frame, sheet, startrow=1, name=name, totals=("金额",), max_width=NOTE_WIDTH)
    ws.freeze_panes(2, 0)
    _print(ws, repeat=1)


def _check_sheet(book: _Book, data: MonthData, tables: Tables) -> None:
    sheet = CHECK
    ws = book.sheet(sheet)
    issues = tables.issues
    if issues.empty:
        ws.write(
            0,
            0,
            f"核对无误:两张统计表与账本一致({len(tables.cs)} 张退款单,"
            f"金额合计 ¥{total(tables.cs['金额']):,.2f}),每张退款单都经过了必经环节。",
            book.plain,
        )
    else:
        ws.write(0, 0, f"核对发现 {len(issues)} 处问题,逐条列在下面:", book.note)
    book.table(issues, sheet, startrow=2, name="核对结果")
    ws.freeze_panes(3, 0)
    _print(ws, repeat=2)


def _overdue(data: MonthData) -> pd.DataFrame:
    """Every step that went over its limit; a step still waiting counts up to ``as_of``."""
    s = data.steps[data.steps["超时"]]
    ends: list[dt.datetime | None] = [None if pd.isna(e) else e for e in s["结束"]]
    over = [
        round(((e or data.as_of) - due).total_seconds() / 3600, 2)
        for e, due in zip(ends, s["期限"], strict=True)
    ]
    return pd.DataFrame(
        {
            "退单编号": s["退单编号"],
            "环节": s["环节"],
            "等待": s["等待"],
            "时限": s["时限"],
            "期限": s["期限"],
            "开始": s["开始"],
            "结束": ["仍未完成" if e is None else e for e in ends],
            "用时(小时)": s["用时(小时)"],
            "超出(小时)": over,
        },
    ).reset_index(drop=True)


def _people(data: MonthData) -> pd.DataFrame:
    s = data.steps[data.steps["结束"].notna()].copy()
    s["经办人"] = s["经办人"].fillna("(转交/反馈,无签名)")
    columns = ["经办人", "角色", "经办单数", "中位数(小时)", "超时交接"]
    if s.empty:
        return pd.DataFrame(columns=columns)
    grouped = (
        s.groupby(["经办人", "等待"], sort=True)
        .agg(经办单数=("退单编号", "nunique"), 中位=("用时(小时)", "median"), 超时=("超时", "sum"))
        .reset_index()
    )
    grouped.columns = columns
    grouped["中位数(小时)"] = grouped["中位数(小时)"].round(2)
    grouped["超时交接"] = grouped["超时交接"].astype(int)
    return grouped


def write_monthly(path: Path, data: MonthData, tables: Tables, *, mask: bool) -> None:
    """Write the monthly workbook to ``path``."""
    book = _Book(path)
    # Made at as_of, not at the wall clock: the same data gives the same bytes (a rebuild
    # records the same files).
    book.book.set_properties({"created": data.as_of})
    try:
        _summary(book, data, tables)
        cs = _masked(tables.cs, mask=mask)
        cs_by, finance_by = tables.approvers
        _stats_sheet(book, cs, "客服退单统计表", "客服退单统计", tables.signed, cs_by)
        _stats_sheet(
            book, tables.finance, "财务退单统计表", "财务退单统计", tables.signed, finance_by
        )
        _check_sheet(book, data, tables)
        book.table(_overdue(data), OVERDUE, name="超时环节")
        book.table(_masked(data.refunds, mask=mask), DETAIL, name="退款明细")
        book.table(_people(data), PEOPLE, name="人员绩效")
        for sheet in (OVERDUE, DETAIL, PEOPLE):
            _print(book.sheets[sheet], repeat=0, wide=sheet == DETAIL)
    finally:
        book.close()
