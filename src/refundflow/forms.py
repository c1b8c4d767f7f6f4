"""Read a filled 退款申请表 (untrusted bytes) back into a typed record, fast.

Values come from python-calamine, reading only the form's sheet. Where the fields are comes from
the workbook-scope defined names in ``xl/workbook.xml`` (read with :mod:`zipread`'s bounded
reader, not openpyxl, which costs ~80 ms per file), and, when a spreadsheet program or a person
dropped or broke them, from the printed labels plus the offsets in :mod:`layout`.

Everything here returns picklable values: :func:`read_form` runs in a sandboxed worker process.
This module holds the record and turns cells into values; :mod:`formpackage` reads the parts
of the zip (workbook.xml, styles, formulas) and :mod:`formgrid` the sheet and where each
field is on it.

Round-trip findings that shaped this module (see tests/test_forms.py):

* LibreOffice and Gnumeric both keep our defined names, unquoting the sheet name
  (``退款申请表!$B$2``); Gnumeric adds ``_xlnm.Sheet_Title`` and a ``#REF!`` ``_xlnm.Print_Area``
  and reorders the names. Both keep the version name as the constant ``"refundflow-2026.1"``
  and the custom document property.
* Gnumeric writes date serials with excess digits (``46329.5868055555500007``); calamine still
  returns the exact minute, and :mod:`normalize` rounds sub-second noise anyway.
* calamine (0.9) ignores a wrong ``<dimension ref="A1"/>`` (as WPS writes) and reads all cells,
  and reads strict-OOXML workbooks, which openpyxl sees as having no sheets.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import python_calamine as calamine

from . import layout, normalize
from .errors import Reason
from .formgrid import (
    ANCHORS,
    CALAMINE_ERRORS,
    Grid,
    calamine_failure,
    foreign,
    history,
    load_grid,
    locate,
)
from .formpackage import (
    cell_styles,
    custom_version,
    formulas_in,
    open_zip,
    parse_ref,
    parse_workbook,
    parse_xml,
    read_part,
    string_constant,
    styles_showing_time,
    workbook_part,
    worksheet_part,
)
from .layout import Field, Kind
from .zipread import DEFAULT_LIMITS, Package, ZipLimits

__all__ = ["BlockEntry", "FieldProblem", "FormReading", "RefundForm", "read_form"]


_IGNORED_SHEETS = frozenset({layout.RETURN_SHEET, layout.HISTORY_SHEET, layout.LISTS_SHEET})


_BLOCK_PART_LABELS = {
    "opinion": "处理意见",
    "by": layout.BY_LABEL,
    "date": layout.DATE_LABEL,
    "approval": layout.APPROVAL_LABEL,
}


# --- the record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    """A value the reader could not turn into its canonical form."""

    field: str  # defined name, e.g. "purchase_time"
    label: str  # what staff read on the form, e.g. "购买时间" or "技术部处理意见·执行人"
    cell: str  # A1 address where the value was found
    reason: Reason
    message: str  # Chinese: what is wrong, where, how to fix it


@dataclass(frozen=True)
class BlockEntry:
    """One opinion block (or the administration follow-up, whose text is ``opinion``)."""

    opinion: str | None
    by: str | None
    date: dt.datetime | None
    approval: str | None


@dataclass(frozen=True)
class RefundForm:
    form_no: str | None
    reporting_dept: str | None
    reported_at: dt.datetime | None
    fault: str | None
    mobile: str | None
    purchase_time: dt.datetime | None
    bank: str | None
    order_no: str | None
    amount: Decimal | None
    customer_request: str | None
    submitter: str | None
    submitted_at: dt.datetime | None
    handling_dept: str | None
    blocks: Mapping[str, BlockEntry]  # role key (layout.ALL_BLOCKS) -> entry
    template_version: str | None
    sheet: str  # name of the sheet holding the form
    cells: Mapping[str, str]  # defined name -> A1 cell where it was found (absent: not found)
    # Text of the cells whose value had a problem (the value itself is None), so that
    # canonical() still changes when someone corrects a bad value to another bad value.
    raw: Mapping[str, str] = field(default_factory=dict)
    # Text a person typed where the value was accepted in another shape ("1,000元" for the
    # amount 1000.00, "+86 138-0013-8000"): routed copies carry the clean value instead.
    typed: Mapping[str, str] = field(default_factory=dict)
    date1904: bool = False  # the workbook counts dates from 1904 (old Mac Excel)

    def has_current_layout(self) -> bool:
        """Every field was found where the current template has it (by name or by label).

        This is what lets a form whose version mark a re-saving tool dropped (ExcelJS drops the
        custom property and the constant name) still count as the current template, while an
        older template's layout does not.
        """
        return all(self.cells.get(f.name) == f.cell for f in layout.REFUND_FIELDS)

    def value(self, name: str) -> object:
        """The value of a field by its defined name (``"amount"``, ``"tech_by"``)."""
        f = layout.FIELDS_BY_NAME[name]
        if f.block is None:
            return getattr(self, name)
        return getattr(self.blocks[f.block], _block_attr(f))

    def canonical(self) -> dict[str, str]:
        """Defined name -> canonical text of every field, for change detection.

        Empty is ``''``, date-times ``YYYY-MM-DD HH:MM``, amounts ``1234.50``.
        """
        out: dict[str, str] = {}
        for f in layout.REFUND_FIELDS:
            v = self.value(f.name)
            out[f.name] = self.raw.get(f.name, "") if v is None else _canonical_text(v)
        return out


# Kinds whose value the routed copy writes back in its clean shape when typed otherwise.
_CLEANED_KINDS = frozenset({Kind.AMOUNT, Kind.DATETIME, Kind.MOBILE, Kind.BANK})


def _canonical_text(v: object) -> str:
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, Decimal):
        return f"{v:.2f}"
    return str(v)


@dataclass(frozen=True)
class FormReading:
    form: RefundForm
    problems: tuple[FieldProblem, ...]
    history_rows: int | None = None  # entries in our 流转记录 sheet; None when it has none
    copy_token: str | None = None  # the 副本凭证 our last routed copy carried, if any

    @property
    def version_mark_missing(self) -> bool:
        """No version mark at all, but the current template's layout: read as current."""
        return self.form.template_version is None and self.form.has_current_layout()


def _block_attr(f: Field) -> str:
    if f.name == "admin_followup":
        return "opinion"
    return f.name.removeprefix(f"{f.block}_")


def field_label(f: Field) -> str:
    """The label staff read for a field; block fields say which block (技术部处理意见·执行人)."""
    if f.block is None:
        return f.label
    title = f.anchor  # a block field's anchor is its band title
    if f.name == "admin_followup":
        return title
    return f"{title}·{_BLOCK_PART_LABELS[_block_attr(f)]}"


def _formula_problem(f: Field, cell: str, formula: str) -> FieldProblem:
    label = field_label(f)
    shown = f"={formula[:40]}{'…' if len(formula) > 40 else ''}" if formula else "共享公式"
    return FieldProblem(
        f.name,
        label,
        cell,
        Reason.FORMULA,
        f"{label}({cell})填写的是公式“{shown}”,显示的值不可信:请直接填写数值,不要使用公式",
    )


# --- reading the values ----------------------------------------------------------------------

_Normaliser = Callable[[object], object]


def _longtext(v: object) -> str | None:
    return normalize.text(v, multiline=True)


def _datetime_1904(v: object) -> dt.datetime | None:
    return normalize.datetime_minute(v, date1904=True)


_NORMALISERS: dict[Kind, _Normaliser] = {
    Kind.TEXT: normalize.text,
    Kind.BANK: normalize.text,
    Kind.FAULT: normalize.text,
    Kind.LONGTEXT: _longtext,
    Kind.PERSON: normalize.person,
    Kind.FORM_NO: normalize.form_no,
    Kind.ORDER_NO: normalize.order_no,
    Kind.DATETIME: normalize.datetime_minute,
    Kind.AMOUNT: normalize.amount,
    Kind.MOBILE: normalize.mobile,
    Kind.APPROVAL: normalize.approval,
}


def _normaliser(kind: Kind, *, date1904: bool) -> _Normaliser:
    if kind is Kind.DATETIME and date1904:
        return _datetime_1904
    return _NORMALISERS[kind]


def read_form(
    data: bytes, *, limits: ZipLimits = DEFAULT_LIMITS, package: Package | None = None
) -> FormReading:
    """Read a filled refund form from the bytes of an ``.xlsx`` file.

    Raises :class:`FileRejected` (``NOT_A_WORKBOOK``, ``UNSUPPORTED_FORMAT``, ``ENCRYPTED``,
    ``CORRUPT``, ``TOO_LARGE``) for files that are not readable workbooks and
    :class:`FormReadError` (``FOREIGN_WORKBOOK``) for workbooks that are not our form. Problems
    with single values do not raise: they are collected in :attr:`FormReading.problems`.
    ``package``: the zip as :mod:`sniff` already opened it (its central directory is parsed
    once); ``limits`` bound what is read (``[parse] max_file_mb``).
    """
    pkg = package if package is not None else open_zip(data, limits)
    part = workbook_part(pkg)
    workbook_xml = read_part(pkg, part)
    assert workbook_xml is not None  # workbook_part checked it exists
    book = parse_workbook(parse_xml(workbook_xml, part))
    version = custom_version(pkg)
    if version is None:
        version_name = book.names.get(layout.VERSION_PROPERTY)
        version = string_constant(version_name) if version_name else None

    try:
        wb = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet_names = list(wb.sheet_names)
    except CALAMINE_ERRORS as exc:
        raise calamine_failure(exc) from None
    by_folded = {s.casefold(): s for s in sheet_names}

    # Defined names of our fields, with the sheet they point to (None: no sheet in the ref).
    refs: dict[str, tuple[str | None, int, int]] = {}
    for f in layout.REFUND_FIELDS:
        formula = book.names.get(f.name) or book.local_names.get(f.name)
        ref = parse_ref(formula) if formula else None
        if ref is not None:
            sheet = ref[0]
            refs[f.name] = (by_folded.get(sheet.casefold(), "") if sheet else None, *ref[1:])

    counts = Counter(s for s, _, _ in refs.values() if s and s not in _IGNORED_SHEETS)
    grid: Grid | None = None
    if counts:
        sheet = counts.most_common(1)[0][0]
    elif layout.REFUND_SHEET in sheet_names:
        sheet = layout.REFUND_SHEET
    else:
        states = dict(book.sheets)
        for candidate in sheet_names:
            if candidate in _IGNORED_SHEETS or states.get(candidate, "visible") != "visible":
                continue
            g = load_grid(wb, candidate, rows_needed=0)
            if len(g.anchors()) * 2 >= len(ANCHORS):
                sheet, grid = candidate, g
                break
        else:
            raise foreign(sheet_names)

    named: dict[str, tuple[int, int]] = {
        name: (r, c) for name, (s, r, c) in refs.items() if s is None or s == sheet
    }
    if grid is None:
        deepest = max((r for r, _ in named.values()), default=0)
        grid = load_grid(wb, sheet, rows_needed=deepest + 1)
    anchors = grid.anchors()
    if len(named) * 2 < len(layout.REFUND_FIELDS) and len(anchors) * 2 < len(ANCHORS):
        raise foreign(sheet_names)

    values: dict[str, object] = {}
    cells: dict[str, str] = {}
    raw: dict[str, str] = {}
    typed: dict[str, str] = {}
    problems: list[FieldProblem] = []
    midnight: set[str] = set()
    for f in layout.REFUND_FIELDS:
        where = locate(f, named.get(f.name), anchors, grid)
        if where is None:
            values[f.name] = None
            continue
        where = grid.top_left(*where)
        cell = layout.rc_to_cell(*where)
        cells[f.name] = cell
        value = grid.get(*where)
        if f.kind is Kind.DATETIME and type(value) is dt.date:
            midnight.add(f.name)  # calamine gives a date for 00:00: the cell's format decides
        try:
            values[f.name] = _normaliser(f.kind, date1904=book.date1904)(value)
            if f.kind in _CLEANED_KINDS and isinstance(value, str) and values[f.name] is not None:
                shown = normalize.text(value) or ""
                if shown != _canonical_text(values[f.name]):
                    typed[f.name] = shown
        except normalize.ValueProblem as exc:
            values[f.name] = None
            raw[f.name] = normalize.text(value) or ""
            label = field_label(f)
            problems.append(FieldProblem(f.name, label, cell, exc.reason, f"{label}({cell}){exc}"))

    rid = book.sheet_rids.get(sheet)
    sheet_part = worksheet_part(pkg, part, rid) if rid is not None else None
    if midnight and sheet_part is not None:
        # A time of exactly 00:00 is a time when the cell shows hours (the template's cells
        # do): 2026-10-01 00:00 is not a date without its time.
        styles = cell_styles(pkg, sheet_part, {cells[n] for n in midnight})
        timed = styles_showing_time(pkg, part)
        for name in midnight:
            moment = grid.get(*layout.cell_to_rc(cells[name]))
            if styles.get(cells[name], 0) in timed and isinstance(moment, dt.date):
                values[name] = dt.datetime.combine(moment, dt.time(0, 0))
                raw.pop(name, None)
                problems = [p for p in problems if p.field != name]
    formulas = formulas_in(pkg, sheet_part, cells) if sheet_part is not None else {}
    if formulas:
        for f in layout.REFUND_FIELDS:
            at = cells.get(f.name)
            formula = formulas.get(at) if at else None
            if at is None or formula is None:
                continue
            # The cached value is not what people see: the field counts as unreadable.
            values[f.name] = None
            raw[f.name] = f"={formula}"
            typed.pop(f.name, None)
            problems = [p for p in problems if p.field != f.name]
            problems.append(_formula_problem(f, at, formula))

    def block(role: str) -> BlockEntry:
        parts = {_block_attr(f): values[f.name] for f in layout.BLOCK_FIELDS[role]}
        return BlockEntry(**parts)  # type: ignore[arg-type]

    header: dict[str, Any] = {f.name: values[f.name] for f in layout.HEADER_FIELDS}
    form = RefundForm(
        **header,
        blocks={b.role: block(b.role) for b in layout.ALL_BLOCKS},
        template_version=version,
        sheet=sheet,
        cells=cells,
        raw=raw,
        typed=typed,
        date1904=book.date1904,
    )
    history_rows, copy_token = history(wb, sheet_names)
    return FormReading(form, tuple(problems), history_rows, copy_token)
