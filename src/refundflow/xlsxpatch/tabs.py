"""Which tab is selected on a sheet's views (tabSelected)."""

from __future__ import annotations

from .splice import Xml
from .xmltext import truthy


def has_selected_tab(x: Xml) -> bool:
    return any(truthy(h.attrs.get("tabSelected")) for h in x.heads("sheetView"))


def select_tab(x: Xml, selected: bool) -> bool:
    """Set or clear ``tabSelected`` on the sheet's views; return whether anything changed.

    Only the active tab may stay selected: several selected tabs form a *group* in Excel, and
    staff typing into the form would silently write into the grouped sheets too.
    """
    views = list(x.heads("sheetView"))
    if not views:
        if not selected:
            return False
        box = x.first("sheetViews")
        view = f'<{x.q("sheetView")} tabSelected="1" workbookViewId="0"/>'
        if box is not None:
            x.append_child(box, view)
            return True
        for local in ("sheetFormatPr", "cols", "sheetData"):
            anchor = x.first(local)
            if anchor is not None:
                x.replace(
                    anchor.start, anchor.start, f"<{x.q('sheetViews')}>{view}</{x.q('sheetViews')}>"
                )
                return True
        return False
    changed = False
    for h in reversed(views):
        now = truthy(h.attrs.get("tabSelected"))
        if now != selected:
            x.set_attrs(h, {"tabSelected": "1" if selected else None})
            changed = True
    return changed
