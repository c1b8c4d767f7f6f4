"""The patch to apply to a routed copy, and :func:`apply_patch`, which applies it in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import Reason
from ..layout import HISTORY_SHEET, RETURN_SHEET
from ..zipread import DEFAULT_LIMITS, ZipLimits
from .book import Book, rels_name
from .cells import CellOp, edit_cells, parse_cell
from .failure import PatchError, fail
from .newsheets import PRINT_TITLES, NewSheet, new_sheet_xml, print_titles
from .ooxml import CT_WORKSHEET, NS_MAIN
from .splice import Xml
from .styles import Styles
from .tabs import has_selected_tab, select_tab
from .zipio import ZipArchive


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
    title: str = ""
    """Title row of the 退回原因 sheet (e.g. which form and when it was returned). When given,
    the sheet is laid out for printing: title above the table, bordered rows, title and
    header repeated on every page, pages numbered. Empty: the plain layout of old."""
    history_title: str = ""
    """Page header of the 流转记录 sheet (e.g. ``退款单 TKD20261123-001 流转记录``), so a loose
    printed page can be matched to its form. When given, the sheet is also laid out for
    printing: bordered, wrapped rows, header row repeated, pages numbered."""


def _cell_ops(patch: Patch) -> dict[tuple[int, int], CellOp]:
    ops: dict[tuple[int, int], CellOp] = {}
    for ref, value in patch.cell_values.items():
        ops.setdefault(parse_cell(ref), CellOp()).value = (
            float(value) if isinstance(value, int | float) else str(value)
        )
    for ref in patch.highlight_cells:
        ops.setdefault(parse_cell(ref), CellOp()).highlight = True
    return ops


def apply_patch(data: bytes, patch: Patch, *, limits: ZipLimits = DEFAULT_LIMITS) -> bytes:
    """Return a copy of workbook ``data`` with ``patch`` applied (see :class:`Patch`).

    Order: strip the old 退回原因 sheet and highlights; replace/append 流转记录; insert the new
    退回原因 first and make it active; write and highlight cells on the form sheet.
    Raises :class:`PatchError` when the workbook cannot be patched safely. ``limits``: how
    much of the zip is read (``ZipLimits.for_max_file_mb`` of ``[parse] max_file_mb``).
    """
    if patch.sheet.casefold() in (HISTORY_SHEET.casefold(), RETURN_SHEET.casefold()):
        raise fail(f"“{patch.sheet}”是流转用的工作表,不能作为表单工作表", Reason.FOREIGN_WORKBOOK)
    ops = _cell_ops(patch)
    z = ZipArchive(data, limits)
    book = Book(z)
    if book.find(patch.sheet) is None:
        raise fail(f"工作簿中没有工作表“{patch.sheet}”,不是退款申请表", Reason.FOREIGN_WORKBOOK)

    replaced: dict[str, bytes] = {}
    removed: set[str] = set()
    ours: dict[str, NewSheet] = {}  # member -> sheet we write (new or replacing 流转记录)
    styles_part = book.part_by_type("/styles")
    styles = Styles(Xml(z.read(styles_part), styles_part, NS_MAIN)) if styles_part else None
    active: int | None = None  # the tab to make active, when sheets move

    def drop_sheet(name: str) -> None:
        nonlocal active
        sheet = book.find(name)
        if sheet is None:
            return
        old_active = book.active_tab()
        part = book.remove_sheet(sheet)
        removed.add(part)
        rels = z.lookup(rels_name(part))
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
        hist = book.find(HISTORY_SHEET)
        if hist is not None:
            part = book.part_of(hist)
            ctype = book.override_type(part)
            if ctype is not None and ctype != CT_WORKSHEET:
                raise fail(
                    f"“{HISTORY_SHEET}”不是普通工作表,无法更新流转记录", Reason.FOREIGN_WORKBOOK
                )
            selected = has_selected_tab(Xml(z.read(part), part, NS_MAIN))
        else:
            part = book.new_sheet_part()
            book.add_sheet(HISTORY_SHEET, part, first=False)
            selected = False
        ours[part] = _history_sheet(patch, styles, selected=selected)

    if patch.return_rows:
        new_return = _return_sheet(patch, styles)
        part = book.new_sheet_part()
        book.add_sheet(RETURN_SHEET, part, first=True)
        ours[part] = new_return
        active = 0

    if active is not None:
        book.set_active(active)

    formula_removed = False
    repeated: list[tuple[int, str, int]] = []  # (sheet index, name, rows) to print on every page
    for sheet in book.sheets():
        part = book.part_of(sheet)
        selected = active is not None and sheet.index == active
        if part in ours:
            new = ours[part]
            replaced[part] = new_sheet_xml(
                new.rows,
                strict=book.strict,
                header_xf=new.header_xf,
                body_xf=new.body_xf,
                wrap=new.wrap,
                selected=selected if active is not None else new.selected,
                title=new.title,
                title_xf=new.title_xf,
                page_header=new.page_header,
            )
            if new.repeated_rows:
                repeated.append((sheet.index, sheet.name, new.repeated_rows))
            continue
        is_form = sheet.name.casefold() == patch.sheet.casefold()
        if not is_form and active is None:
            continue
        raw = z.read(part)
        if not is_form and not selected and b"tabSelected" not in raw:
            continue  # fast path: nothing selected here, nothing to clear
        try:
            x = Xml(raw, part, NS_MAIN)
        except PatchError:
            if is_form:
                raise
            continue  # e.g. a macro sheet: not ours to fix up, and harmless to leave
        if is_form and x.root_local != "worksheet":
            raise fail(f"“{sheet.name}”不是普通工作表,无法写入", Reason.FOREIGN_WORKBOOK)
        changed = False
        if is_form and ops:
            formula_removed = edit_cells(x, ops, styles)
            changed = True
        if active is not None:
            changed = select_tab(x, selected) or changed
        if changed:
            replaced[part] = x.encode()

    # Sheet-local names hold a sheet's position: set them once every sheet is where it stays.
    for index, name, rows in repeated:
        book.set_sheet_name(PRINT_TITLES, index, print_titles(name, rows))

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


def _history_sheet(patch: Patch, styles: Styles | None, *, selected: bool) -> NewSheet:
    """The 流转记录 sheet: plain, or laid out for printing when it has a page header."""
    if not patch.history_title:
        header = styles.sheet_xf(bold=True, wrap=False) if styles else None
        return NewSheet(patch.history_rows, header, None, wrap=False, selected=selected)
    header = styles.sheet_xf(bold=True, wrap=True, border=True, center=True) if styles else None
    body = styles.sheet_xf(bold=False, wrap=True, border=True) if styles else None
    return NewSheet(
        patch.history_rows,
        header,
        body,
        wrap=True,
        selected=selected,
        page_header=patch.history_title,
    )


def _return_sheet(patch: Patch, styles: Styles | None) -> NewSheet:
    """The 退回原因 sheet: plain, or laid out for printing under its title."""
    if not patch.title:
        header = styles.sheet_xf(bold=True, wrap=True) if styles else None
        body = styles.sheet_xf(bold=False, wrap=True) if styles else None
        return NewSheet(patch.return_rows, header, body, wrap=True, selected=True)
    title = styles.sheet_xf(bold=True, wrap=False, size=14) if styles else None
    header = styles.sheet_xf(bold=True, wrap=True, border=True, center=True) if styles else None
    body = styles.sheet_xf(bold=False, wrap=True, border=True) if styles else None
    return NewSheet(
        patch.return_rows,
        header,
        body,
        wrap=True,
        selected=True,
        title=patch.title,
        title_xf=title,
    )
