"""Patch a routed workbook at the zip/XML level, keeping everything the sender put in it.

The watcher hands every routed copy of a refund form through :func:`apply_patch`: it writes a few
cells (the form number), replaces the 流转记录 sheet, adds or removes the 退回原因 sheet and
highlights problem cells. Everything else in the workbook - values, formats, comments, images,
extra sheets, defined names, data validation, protection, parts we have never heard of - must
survive byte for byte, and it has to be fast, so a full openpyxl load + save (which drops
images, comments' layout, unknown parts and much formatting) is out of the question.

Design: only the parts we change are decoded (``workbook.xml``, its rels, ``[Content_Types].xml``,
the form sheet, ``styles.xml``, and - only when the selected tab must change - other sheets);
every other zip member is copied as its *raw compressed bytes* (no inflate/deflate round trip).

XML editing is a *splice*: elements are located with namespace-aware regular expressions (the
prefix bound to the SpreadsheetML namespace is read from the root element, so ``<x:row>``
written by the OpenXML SDK works as well as Excel's default namespace; transitional and strict
namespace URIs are both accepted), and only the exact byte ranges of the elements we change
are replaced. Everything else - namespace prefixes, ``mc:Ignorable`` lists, attribute order,
whitespace, unknown extension elements - stays as the producer wrote it. Re-serialising with
ElementTree would rename prefixes (breaking ``mc:Ignorable="x14ac xr"``) and cost far more.

Modules, from the bytes up:

- :mod:`.zipio` - the zip container: bounded member reads, raw copies of untouched members;
- :mod:`.xmltext` - entity escaping, cell text escaping, start-tag attributes;
- :mod:`.splice` - one decoded XML part, its elements located and edited by byte range;
- :mod:`.book` - the workbook model: sheets, relationships, content types, defined names;
- :mod:`.styles` - styles.xml: the highlight fill and the formats of the sheets we write;
- :mod:`.cells` - writing values and highlights into the form sheet;
- :mod:`.newsheets` - the sheets we write ourselves (流转记录, 退回原因) and how they print;
- :mod:`.tabs` - which tab is selected;
- :mod:`.patch` - :class:`Patch` and :func:`apply_patch`, which ties the steps together.
"""

from .failure import PatchError
from .patch import Patch, apply_patch
from .styles import HIGHLIGHT_RGB

__all__ = [
    "HIGHLIGHT_RGB",
    "Patch",
    "PatchError",
    "apply_patch",
]
