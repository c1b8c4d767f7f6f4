"""OOXML namespace URIs (transitional and strict) and content types the patch needs."""

from __future__ import annotations

NS_MAIN = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
)
NS_REL = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
NS_PKG_REL = ("http://schemas.openxmlformats.org/package/2006/relationships",)
NS_CT = ("http://schemas.openxmlformats.org/package/2006/content-types",)
CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
