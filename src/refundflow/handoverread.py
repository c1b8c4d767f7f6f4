"""Reading a filled shift handover sheet (客服部值班交接单), in the sandboxed worker.

:func:`probe` looks at ``workbook.xml`` only (sheet names and defined names, no cell is read)
and answers None for anything that is not our handover sheet, so a refund form goes on exactly
as before. For a handover sheet it reads the items with python-calamine by the template's
defined names (the layout's cells where a program dropped the names, if the printed labels are
beside them). What happens to the sheet then is :mod:`handover_intake`'s.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import python_calamine as calamine

from . import layout
from .errors import FileRejected, Reason
from .formgrid import CALAMINE_ERRORS, calamine_failure, label_key, load_grid
from .formpackage import open_zip, parse_ref, parse_workbook, parse_xml, read_part, workbook_part
from .zipread import DEFAULT_LIMITS, Package, ZipLimits


@dataclass(frozen=True)
class HandoverReading:
    """What the worker read of a handover sheet (picklable: it comes back through a pipe)."""

    sheet: str  # the sheet's name in workbook.xml
    values: dict[str, str]  # defined name -> the item as text ('' when empty)
    cells: dict[str, str]  # defined name -> the cell it was read from
    not_found: tuple[str, ...] = ()  # labels of items not where the current template has them


def _text(value: object) -> str:
    """An item as text: dates as YYYY-MM-DD, whole numbers without '.0', empty as ''."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def probe(
    data: bytes, *, limits: ZipLimits = DEFAULT_LIMITS, package: Package | None = None
) -> HandoverReading | None:
    """Runs in the sandboxed worker. None unless ``data`` is our handover sheet.

    Recognised by its sheet (客服部值班交接单) or by at least half of its items' defined names;
    a workbook with a refund form's sheet or names is never one. A file that cannot be
    opened is not ours to answer here: the refund path answers it as before. ``package``: the
    zip as the sniff opened it.
    """
    try:
        pkg = package if package is not None else open_zip(data, limits)
        part = workbook_part(pkg)
        book = parse_workbook(parse_xml(read_part(pkg, part) or b"", part))
    except FileRejected:
        return None
    sheets = [name for name, _state in book.sheets]
    refund_names = any(f.name in book.names for f in layout.HEADER_FIELDS)
    if not sheets or layout.REFUND_SHEET in sheets or refund_names:
        return None
    refs = {
        name: ref
        for name in layout.HANDOVER_NAMES
        if name in book.names and (ref := parse_ref(book.names[name])) is not None
    }
    if layout.HANDOVER_SHEET not in sheets and len(refs) * 2 < len(layout.HANDOVER_NAMES):
        return None
    return _read(data, sheets, refs)


def _read(
    data: bytes, sheets: Sequence[str], refs: dict[str, tuple[str | None, int, int]]
) -> HandoverReading:
    """The items, by defined name, else at the template's cell when its label is beside it."""
    by_folded = {s.casefold(): s for s in sheets}
    pointed = [by_folded.get((s or "").casefold()) for s, _, _ in refs.values()]
    sheet = layout.HANDOVER_SHEET if layout.HANDOVER_SHEET in sheets else None
    sheet = sheet or next((s for s in pointed if s), None) or sheets[0]
    try:
        wb = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except CALAMINE_ERRORS as exc:
        raise calamine_failure(exc) from None
    named = {
        name: (row, col)
        for name, (s, row, col) in refs.items()
        if s is None or by_folded.get(s.casefold()) == sheet
    }
    template = {name: layout.cell_to_rc(cell) for name, cell in layout.HANDOVER_CELLS.items()}
    deepest = max(r for r, _ in [*named.values(), *template.values()])
    grid = load_grid(wb, sheet, rows_needed=deepest + 1)
    values: dict[str, str] = {}
    cells: dict[str, str] = {}
    not_found: list[str] = []
    for name in layout.HANDOVER_NAMES:
        where = named.get(name)
        if where is None:
            # No name (a program dropped it): the template's cell, if its label is beside it.
            where = template[name]
            label = grid.get(*grid.top_left(where[0], where[1] - 1))
            printed = layout.HANDOVER_LABELS[name]
            if not (isinstance(label, str) and label_key(label) == label_key(printed)):
                not_found.append(printed)
                continue
        where = grid.top_left(*where)
        cells[name] = layout.rc_to_cell(*where)
        values[name] = _text(grid.get(*where))
    return HandoverReading(sheet, values, cells, tuple(not_found))


def read_handover(path: Path) -> dict[str, str]:
    """The sheet's items as text, found by their defined names (dates as YYYY-MM-DD, empty
    as ''), read in this process: for tests and tools, never for a file from ``inbox/``."""
    reading = probe(path.read_bytes())
    if reading is None:
        what = f"{path.name} 不是{layout.HANDOVER_SHEET}"
        raise FileRejected(what, reason=Reason.FOREIGN_WORKBOOK)
    return reading.values
