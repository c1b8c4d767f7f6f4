"""The workbook model: workbook.xml, its rels and [Content_Types].xml - sheets,
relationships, content-type overrides, defined names and the active tab."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from ..errors import Reason
from .failure import fail
from .ooxml import CT_WORKSHEET, NS_CT, NS_MAIN, NS_PKG_REL, NS_REL
from .splice import El, Xml
from .xmltext import esc_attr, esc_text, unescape, with_attrs
from .zipio import ZipArchive


def rels_name(part: str) -> str:
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", f"{base}.rels")


def _relative_to(part: str, folder: str) -> str:
    """``posixpath.relpath(part, folder or ".")``, without its two os.getcwd() system calls
    when ``part`` lies in the plain relative ``folder`` (always, but for odd workbook paths)."""
    if (
        folder
        and not folder.startswith(("/", ".."))
        and part.startswith(f"{folder}/")
        and posixpath.normpath(part) == part
    ):
        return part[len(folder) + 1 :]
    return posixpath.relpath(part, folder or ".")


def _resolve(source_part: str, target: str) -> str:
    """Zip member name of a relationship target (absolute or relative to the source part)."""
    target = unquote(target.replace("\\", "/"))
    path = (
        target[1:]
        if target.startswith("/")
        else posixpath.join(posixpath.dirname(source_part), target)
    )
    return posixpath.normpath(path).lstrip("/")


@dataclass(frozen=True, slots=True)
class Sheet:
    index: int
    name: str
    sheet_id: int
    rid: str
    el: El


class Book:
    def __init__(self, z: ZipArchive) -> None:
        self.z = z
        self.wb_part = self._find_workbook()
        self.wb = Xml(z.read(self.wb_part), self.wb_part, NS_MAIN)
        self.strict = self.wb.ns == NS_MAIN[1]
        self.rels_part = z.lookup(rels_name(self.wb_part)) or ""
        if not self.rels_part:
            raise fail("工作簿缺少 workbook.xml.rels,无法定位工作表")
        self.rels = Xml(z.read(self.rels_part), self.rels_part, NS_PKG_REL)
        ct_part = z.lookup("[Content_Types].xml")
        if ct_part is None:
            raise fail("工作簿缺少 [Content_Types].xml,文件已损坏")
        self.ct_part = ct_part
        self.ct = Xml(z.read(ct_part), ct_part, NS_CT)
        self.r_prefixes = [p for p, uri in self.wb.decls.items() if uri in NS_REL and p]
        self.wb_changed = self.rels_changed = self.ct_changed = False
        self.new_parts: dict[str, str] = {}  # casefolded -> member name of parts we add
        self._sheets_memo: tuple[str, list[Sheet]] | None = None
        self._rels_memo: tuple[str, list[El], dict[str, tuple[El, str, str]]] | None = None

    def _find_workbook(self) -> str:
        root_rels = self.z.lookup("_rels/.rels")
        if root_rels is not None:
            x = Xml(self.z.read(root_rels), root_rels, NS_PKG_REL)
            for rel in x.heads("Relationship"):
                a = rel.attrs
                if (
                    a.get("Type", "").endswith("/officeDocument")
                    and a.get("TargetMode") != "External"
                ):
                    found = self.z.lookup(_resolve("", a.get("Target", "")))
                    if found:
                        return found
        found = self.z.lookup("xl/workbook.xml")
        if found is None:
            raise fail("文件中没有 xl/workbook.xml,不是 Excel 工作簿", Reason.NOT_A_WORKBOOK)
        return found

    # -- sheets -------------------------------------------------------------------------------

    def _sheets_el(self) -> El:
        el = self.wb.first("sheets")
        if el is None:
            raise fail("workbook.xml 中没有工作表列表,文件已损坏")
        return el

    def sheets(self) -> list[Sheet]:
        # Memoised on the identity of the text: every edit creates a new string.
        if self._sheets_memo is not None and self._sheets_memo[0] is self.wb.text:
            return self._sheets_memo[1]
        box = self._sheets_el()
        out: list[Sheet] = []
        for i, h in enumerate(self.wb.heads("sheet", box.head_end, box.close_start)):
            a = h.attrs
            rid = next(
                (v for k, v in a.items() if k.endswith(":id") and self._is_rel_attr(k, a)), ""
            )
            try:
                sheet_id = int(a.get("sheetId", "0"))
            except ValueError:
                sheet_id = 0
            out.append(Sheet(i, a.get("name", ""), sheet_id, rid, h))
        self._sheets_memo = (self.wb.text, out)
        return out

    def _is_rel_attr(self, qname: str, attrs: Mapping[str, str]) -> bool:
        prefix = qname.split(":", 1)[0]
        return prefix in self.r_prefixes or attrs.get(f"xmlns:{prefix}") in NS_REL

    def find(self, name: str) -> Sheet | None:
        key = name.casefold()
        return next((s for s in self.sheets() if s.name.casefold() == key), None)

    def _relationships(self) -> tuple[list[El], dict[str, tuple[El, str, str]]]:
        """Every <Relationship> start tag of the workbook rels, and :meth:`rel_targets`."""
        # Memoised on the identity of the text, like sheets().
        if self._rels_memo is not None and self._rels_memo[0] is self.rels.text:
            return self._rels_memo[1], self._rels_memo[2]
        heads = list(self.rels.heads("Relationship"))
        targets: dict[str, tuple[El, str, str]] = {}
        for h in heads:
            self._add_target(targets, h)
        self._rels_memo = (self.rels.text, heads, targets)
        return heads, targets

    def _add_target(self, targets: dict[str, tuple[El, str, str]], h: El) -> None:
        a = h.attrs
        if a.get("TargetMode") != "External":
            targets[a.get("Id", "")] = (
                h,
                a.get("Type", ""),
                _resolve(self.wb_part, a.get("Target", "")),
            )

    def rel_targets(self) -> dict[str, tuple[El, str, str]]:
        """rId -> (Relationship element, Type, resolved member name)."""
        return self._relationships()[1]

    def part_of(self, sheet: Sheet) -> str:
        rel = self.rel_targets().get(sheet.rid)
        member = None
        if rel is not None:
            member = self.z.lookup(rel[2]) or self.new_parts.get(rel[2].casefold())
        if member is None:
            raise fail(f"工作表“{sheet.name}”的数据部件缺失,文件已损坏")
        return member

    def part_by_type(self, suffix: str) -> str | None:
        for _el, rtype, target in self.rel_targets().values():
            if rtype.endswith(suffix):
                return self.z.lookup(target)
        return None

    def override_type(self, part: str) -> str | None:
        key = "/" + part.casefold()
        for h in self.ct.heads("Override"):
            a = h.attrs
            if a.get("PartName", "").casefold() == key:
                return a.get("ContentType")
        return None

    # -- edits --------------------------------------------------------------------------------

    def remove_part_refs(self, rid: str, part: str) -> None:
        """Drop the workbook relationship ``rid`` and the content-type override of ``part``."""
        rel = self.rel_targets().get(rid)
        if rel is not None:
            el = self.rels.close(rel[0])  # <Relationship ...></Relationship> is legal too
            self.rels.replace(el.start, el.end, "")
            self.rels_changed = True
        key = "/" + part.casefold()
        for h in self.ct.heads("Override"):
            if h.attrs.get("PartName", "").casefold() == key:
                self.ct.replace(h.start, self.ct.close(h).end, "")
                self.ct_changed = True
                break

    def remove_sheet(self, sheet: Sheet) -> str:
        """Remove a sheet from workbook.xml, its rel and override; return its member name."""
        part = self.part_of(sheet)
        self._rewrite_names(sheet.index, -1, sheet.name)
        el = self.wb.close(self.sheets()[sheet.index].el)
        self.wb.replace(el.start, el.end, "")
        self.remove_part_refs(sheet.rid, part)
        self.wb_changed = True
        return part

    def add_sheet(self, name: str, part: str, *, first: bool) -> None:
        """Register a new worksheet part as the first or the last sheet."""
        self.new_parts[part.casefold()] = part
        existing = self.sheets()
        sheet_id = max((s.sheet_id for s in existing), default=0) + 1
        rels, targets = self._relationships()
        ids = [h.attrs.get("Id", "") for h in rels]
        nums = [int(i[3:]) for i in ids if i.startswith("rId") and i[3:].isdigit()]
        rid = f"rId{max(nums, default=0) + 1}"
        while rid in ids:  # only if a producer mixed naming schemes
            rid = f"rId{int(rid[3:]) + 1}"
        ns_rel = NS_REL[1] if self.strict else NS_REL[0]
        if self.r_prefixes:
            rattr = f'{self.r_prefixes[0]}:id="{rid}"'
        else:
            rattr = f'xmlns:r="{ns_rel}" r:id="{rid}"'
        xml = f'<{self.wb.q("sheet")} name="{esc_attr(name)}" sheetId="{sheet_id}" {rattr}/>'
        if first:
            self._rewrite_names(None, +1, None)
            at = self.sheets()[0].el.start
            self.wb.replace(at, at, xml)
        else:
            box = self._sheets_el()
            self.wb.append_child(box, xml)
            # The new last child leaves every other <sheet> where it was: extend the memo
            # rather than parse workbook.xml again.
            if not box.empty:
                el = El.added(box.close_start, self.wb.q("sheet"), xml)
                new = Sheet(len(existing), name, sheet_id, rid, el)
                self._sheets_memo = (self.wb.text, [*existing, new])
        self.wb_changed = True
        target = _relative_to(part, posixpath.dirname(self.wb_part))
        rels_root = self.rels.first(self.rels.root_local)
        assert rels_root is not None
        rel_xml = (
            f'<{self.rels.q("Relationship")} Id="{rid}" Type="{ns_rel}/worksheet" '
            f'Target="{esc_attr(target)}"/>'
        )
        self.rels.append_child(rels_root, rel_xml)
        at = rels_root.close_start
        # Likewise after the last <Relationship> (unless a producer wrote one past the root).
        if not rels_root.empty and (not rels or rels[-1].start < at):
            el = El.added(at, self.rels.q("Relationship"), rel_xml)
            targets = dict(targets)
            self._add_target(targets, el)
            self._rels_memo = (self.rels.text, [*rels, el], targets)
        ct_root = self.ct.first(self.ct.root_local)
        assert ct_root is not None
        self.ct.append_child(
            ct_root,
            f'<{self.ct.q("Override")} PartName="/{esc_attr(part)}" ContentType="{CT_WORKSHEET}"/>',
        )
        self.rels_changed = self.ct_changed = True

    def _rewrite_names(self, removed: int | None, delta: int, removed_name: str | None) -> None:
        """Keep sheet-local defined names (print areas...) on their sheet after a move.

        ``localSheetId`` is a sheet *position*: inserting a sheet first shifts every one by +1;
        removing sheet ``removed`` drops the names local to it and shifts later ones by -1.
        Names whose formula points at the removed sheet become #REF!, as Excel does.
        """
        box = self.wb.first("definedNames")
        if box is None:
            return
        ref = None
        if removed_name is not None:
            n = re.escape(removed_name)
            ref = re.compile(rf"(?<![\w.'])(?:{n}|'{n}')!")
        for el in reversed(self.wb.all("definedName", box.head_end, box.close_start)):
            head, inner = el.head, self.wb.inner(el)
            lid_text = el.attrs.get("localSheetId", "").strip()
            if lid_text.isdigit():
                lid = int(lid_text)
                if removed is not None and lid == removed:
                    self.wb.replace(el.start, el.end, "")
                    continue
                if removed is None or lid > removed:
                    head = with_attrs(head, {"localSheetId": str(lid + delta)})
            if ref is not None and ref.search(unescape(inner)):
                inner = "#REF!"
            if el.empty:
                self.wb.replace(el.start, el.end, head)
            else:
                self.wb.replace(el.start, el.close_start, head + inner)

    def add_name_if_missing(self, name: str, formula: str) -> None:
        """Add a workbook-scope ``<definedName>`` unless one of that name exists."""
        box = self.wb.first("definedNames")
        if box is not None:
            for el in self.wb.heads("definedName", box.head_end, box.close_start):
                a = el.attrs
                if a.get("name", "").casefold() == name.casefold() and "localSheetId" not in a:
                    return
        q = self.wb.q("definedName")
        self._add_defined_name(box, f'<{q} name="{esc_attr(name)}">{esc_text(formula)}</{q}>')

    def set_sheet_name(self, name: str, index: int, formula: str) -> None:
        """Set the defined name ``name`` local to sheet ``index`` (e.g. its print titles),
        replacing one of that name there."""
        q = self.wb.q("definedName")
        xml = f'<{q} name="{esc_attr(name)}" localSheetId="{index}">{esc_text(formula)}</{q}>'
        box = self.wb.first("definedNames")
        if box is not None:
            for h in self.wb.heads("definedName", box.head_end, box.close_start):
                a = h.attrs
                if a.get("name", "").casefold() == name.casefold() and a.get(
                    "localSheetId", ""
                ).strip() == str(index):
                    el = self.wb.close(h)
                    self.wb.replace(el.start, el.end, xml)
                    self.wb_changed = True
                    return
        self._add_defined_name(box, xml)

    def _add_defined_name(self, box: El | None, xml: str) -> None:
        """Append one ``<definedName>`` to ``box``, creating the box where there is none."""
        if box is not None:
            self.wb.append_child(box, xml)
        else:
            # CT_Workbook's order: <definedNames> follows <sheets>, <functionGroups> and
            # <externalReferences>, whichever of them come last.
            after = self._sheets_el().end
            for local in ("functionGroups", "externalReferences"):
                found = self.wb.first(local, after)
                after = found.end if found is not None else after
            box_q = self.wb.q("definedNames")
            self.wb.replace(after, after, f"<{box_q}>{xml}</{box_q}>")
        self.wb_changed = True

    def active_tab(self) -> int:
        for h in self.wb.heads("workbookView"):
            value = h.attrs.get("activeTab", "0").strip()
            return int(value) if value.isdigit() else 0
        return 0

    def set_active(self, index: int) -> None:
        views = list(self.wb.heads("workbookView"))
        if not views:
            box = self.wb.first("bookViews")
            xml = f'<{self.wb.q("workbookView")} activeTab="{index}"/>'
            if box is not None:
                self.wb.append_child(box, xml)
            else:
                sheets = self._sheets_el()
                self.wb.replace(
                    sheets.start,
                    sheets.start,
                    f"<{self.wb.q('bookViews')}>{xml}</{self.wb.q('bookViews')}>",
                )
            self.wb_changed = True
            return
        for h in reversed(views):
            a = h.attrs
            changes: dict[str, str | None] = {"activeTab": str(index)}
            first = a.get("firstSheet", "0").strip()
            if first.isdigit() and int(first) > index:
                changes["firstSheet"] = str(index)  # keep the active tab scrolled into view
            self.wb.set_attrs(h, changes)
        self.wb_changed = True

    def new_sheet_part(self) -> str:
        folder = posixpath.join(posixpath.dirname(self.wb_part), "worksheets")
        n = 1
        while True:
            part = posixpath.join(folder, f"sheet{n}.xml")
            if self.z.lookup(part) is None and part.casefold() not in self.new_parts:
                return part
            n += 1
