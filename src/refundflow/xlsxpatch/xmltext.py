"""XML text level: entity (un)escaping, cell text escaping, start-tag attribute syntax.

Nothing here parses a document; these helpers read and rewrite one start tag or one
text value, so a splice can change exactly the bytes it means to."""

from __future__ import annotations

import re
from collections.abc import Mapping

_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
# One attribute, with the whitespace before it: scanning a start tag left to right with this
# consumes every value whole, so text inside a value can never be mistaken for an attribute.
_ATTR_RE = re.compile(r"(\s+)([^\s=/>]+)\s*=\s*(\"[^\"]*\"|'[^']*')")
TAIL_RE = re.compile(r"(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")
ROOT_RE = re.compile(r"<([^\s/>!?]+)")
# Characters XML 1.0 cannot carry are stored as _xHHHH_ (Excel and calamine decode it), and a
# literal "_xHHHH_" must then itself be escaped as _x005F_xHHHH_ to survive.
_NOT_XML = r"\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_XSTRING_RE = re.compile(rf"[{_NOT_XML}]|_(?=x[0-9A-Fa-f]{{4}}_)")
# Anything xstring changes: one search instead of six passes over the usual plain text.
_XSTRING_ANY_RE = re.compile(rf"[\r&<>{_NOT_XML}]|_(?=x[0-9A-Fa-f]{{4}}_)")


def unescape(value: str) -> str:
    if "&" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref[0] != "#":
            return _ENTITIES[ref]
        code = int(ref[2:], 16) if ref[1] == "x" else int(ref[1:])
        return chr(code) if 0 < code <= 0x10FFFF else ""

    return _ENTITY_RE.sub(one, value)


def esc_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def esc_attr(value: str) -> str:
    return (
        esc_text(value)
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def xstring(value: str) -> str:
    """Cell text as element content: OOXML ``_xHHHH_`` escapes, then XML escapes.

    CR/CRLF become LF, Excel's own in-cell line break, rather than ``_x000D_`` which openpyxl
    would show literally.
    """
    if not _XSTRING_ANY_RE.search(value):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _XSTRING_RE.sub(lambda m: f"_x{ord(m.group()):04X}_", value)
    return esc_text(value)


def inline_string(text: str, prefix: str = "") -> str:
    """``<is><t>`` content of an inline-string cell (``prefix``: the sheet's main prefix)."""
    p = f"{prefix}:" if prefix else ""
    return f'<{p}is><{p}t xml:space="preserve">{xstring(text)}</{p}t></{p}is>'


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true")


def attrs_of(head: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for _space, name, quoted in _ATTR_RE.findall(head):  # findall: no Match objects to build
        value = quoted[1:-1]
        out[name] = unescape(value) if "&" in value else value
    return out


def with_attrs(head: str, changes: Mapping[str, str | None]) -> str:
    """Return start tag ``head`` with attributes set (value) or removed (None), in place."""
    pending = dict(changes)
    parts: list[str] = []
    pos = 0
    for m in _ATTR_RE.finditer(head):
        name = m.group(2)
        if name in pending:
            new = pending.pop(name)
            parts.append(head[pos : m.start()])
            if new is not None:
                parts.append(f'{m.group(1)}{name}="{esc_attr(new)}"')
            pos = m.end()
    parts.append(head[pos:])
    out = "".join(parts)
    extra = "".join(f' {k}="{esc_attr(v)}"' for k, v in pending.items() if v is not None)
    if extra:
        cut = len(out) - (2 if out.endswith("/>") else 1)
        out = out[:cut].rstrip() + extra + out[cut:]
    return out
