"""The one bounded reader of a workbook's zip container (sniff, forms and xlsxpatch use it).

Opening a :class:`Package` parses the central directory once and refuses, from it alone,
what no honest workbook has: too many entries, a declared uncompressed size or compression
ratio only a zip bomb has, part names that climb out of the package or repeat. Reading a part
never inflates more than its declared size (and never more than the caller's limit), in
bounded chunks straight from the buffer, and checks the CRC when the caller needs the bytes
to be right.

Faults are a :class:`ZipFault` with an English detail; each caller turns them into its own
words (a sniff verdict, a Chinese message for the staff, a patch error).

The limits come from ``[parse] max_file_mb`` (:meth:`ZipLimits.for_max_file_mb`), so a
workspace that accepts larger files accepts proportionally larger packages, and nothing else.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

CHUNK = 64 * 1024
"""Parts are inflated in pieces of at most this many bytes: memory stays bounded."""

_MB = 1024 * 1024
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_DRIVE = re.compile("[a-z]:")


@dataclass(frozen=True)
class ZipLimits:
    """How much of a zip container we are willing to look at."""

    file_bytes: int  # the file itself
    entries: int  # parts in the package
    total_bytes: int  # declared uncompressed size of all parts together
    part_bytes: int  # declared uncompressed size of any one part (read in chunks)
    loaded_part_bytes: int  # a part read whole into memory (a worksheet we patch)
    small_part_bytes: int  # a part that is only ever small (workbook.xml, rels, styles)
    # Deflate cannot do better than ~1032:1, so a larger declared ratio on a sizeable entry is
    # a lie or a crafted bomb; small entries (empty sheets, padding) legitimately reach more.
    ratio: int = 1000
    ratio_min_bytes: int = _MB

    @classmethod
    def for_max_file_mb(cls, max_file_mb: int) -> ZipLimits:
        """The limits for files of at most ``max_file_mb`` MB (``[parse] max_file_mb``).

        At the default 20 MB: 2,000 entries (openpyxl's own bigfoot.xlsx, 1,024 sheets, has
        ~1,040 parts), 100 MB uncompressed in all and per part, 32 MB for a part held whole,
        8 MB for the small parts. Our forms are 10-100 KB with a 5 KB workbook.xml.
        """
        file_bytes = max(1, max_file_mb) * _MB
        return cls(
            file_bytes=file_bytes,
            entries=max(1000, 100 * max_file_mb),
            total_bytes=max(5 * file_bytes, 20 * _MB),
            part_bytes=max(5 * file_bytes, 20 * _MB),
            loaded_part_bytes=max(file_bytes * 8 // 5, 8 * _MB),
            small_part_bytes=max(file_bytes * 2 // 5, 2 * _MB),
        )


DEFAULT_LIMITS = ZipLimits.for_max_file_mb(20)
"""The limits at the default ``[parse] max_file_mb``, for callers without a workspace."""


class ZipFault(StrEnum):
    FILE_TOO_LARGE = "file_too_large"
    DAMAGED = "damaged"  # not a zip, truncated, bad local header, bad deflate data
    EMPTY = "empty"  # a valid zip with no entries
    TOO_MANY_ENTRIES = "too_many_entries"
    UNSAFE_NAME = "unsafe_name"  # absolute, "..", NUL or a drive letter
    DUPLICATE_NAME = "duplicate_name"  # the same part name twice (OPC names ignore case)
    BOMB = "bomb"  # declared sizes or ratio no honest workbook has
    PART_TOO_LARGE = "part_too_large"  # more than the caller's limit for that part
    ENCRYPTED = "encrypted"  # zip encryption on an entry
    COMPRESSION = "compression"  # neither stored nor deflated
    CRC = "crc"  # the inflated bytes are not what the directory declares


class ZipError(Exception):
    """A fault of the container; ``part`` names the entry, when one is at fault."""

    def __init__(self, fault: ZipFault, detail: str, *, part: str = "") -> None:
        super().__init__(detail)
        self.fault = fault
        self.detail = detail
        self.part = part


def part_key(name: str) -> str:
    """A part name as compared: OPC part names ignore case; some writers use backslashes."""
    return name.replace("\\", "/").lower()


class Package:
    """A zip container whose central directory passed the checks of ``limits``."""

    def __init__(self, data: bytes, limits: ZipLimits = DEFAULT_LIMITS) -> None:
        if len(data) > limits.file_bytes:
            raise ZipError(
                ZipFault.FILE_TOO_LARGE, f"{len(data)} bytes, limit {limits.file_bytes} bytes"
            )
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zf.infolist()
        except zipfile.BadZipFile as exc:
            raise ZipError(ZipFault.DAMAGED, f"damaged or truncated zip ({exc})") from None
        except (zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise ZipError(ZipFault.DAMAGED, f"damaged zip ({type(exc).__name__})") from None
        if not infos:
            raise ZipError(ZipFault.EMPTY, "empty zip archive")
        if len(infos) > limits.entries:
            raise ZipError(
                ZipFault.TOO_MANY_ENTRIES,
                f"zip has {len(infos)} entries (limit {limits.entries})",
            )
        self.data = data
        self.limits = limits
        self.infos = infos
        self.by_key = _check_directory(infos, limits)

    def find(self, name: str) -> zipfile.ZipInfo | None:
        """The entry of a part name, compared as :func:`part_key` does."""
        return self.by_key.get(part_key(name))

    def raw(self, info: zipfile.ZipInfo, *, whole: bool = True) -> memoryview:
        """The entry's bytes as stored (compressed), after checking its local header.

        ``whole=False``: an entry that runs past the end of the file is cut short, not a fault.
        """
        off, name = info.header_offset, info.filename
        data = self.data
        if off < 0 or off + _LOCAL.size > len(data) or data[off : off + 4] != b"PK\x03\x04":
            raise ZipError(ZipFault.DAMAGED, f"local header of {name!r} is missing", part=name)
        flags = struct.unpack_from("<H", data, off + 6)[0]
        name_len, extra_len = struct.unpack_from("<HH", data, off + 26)
        start = off + _LOCAL.size + name_len + extra_len
        # As zipfile does: the local header must name the same part as the directory.
        local = data[off + _LOCAL.size : off + _LOCAL.size + name_len]
        if local.decode("utf-8" if flags & 0x800 else "cp437", "replace") != info.orig_filename:
            raise ZipError(
                ZipFault.DAMAGED, f"{name!r} has another name in its local header", part=name
            )
        end = start + info.compress_size
        if whole and end > len(data):
            raise ZipError(ZipFault.DAMAGED, f"{name!r} runs past the end of the file", part=name)
        return memoryview(data)[start:end]

    def chunks(self, info: zipfile.ZipInfo, *, verify: bool) -> Iterator[bytes]:
        """The part's bytes in pieces of at most :data:`CHUNK`, never more than declared.

        ``verify``: a truncated stream or a wrong CRC is a fault (the caller uses the bytes);
        otherwise a truncated stream just ends (the caller only looks for patterns, and
        whoever reads the bytes later says the file is damaged).

        ``zf.open`` costs ~20 us per part (it re-validates the local header and builds a
        reader); this keeps a whole pass over a form-sized workbook well under a millisecond.
        """
        name = info.filename
        if info.flag_bits & 0x41:  # traditional or strong encryption
            raise ZipError(ZipFault.ENCRYPTED, f"{name!r} is password-protected", part=name)
        if info.flag_bits & 0x20:  # compressed patched data: nothing reads it
            raise ZipError(ZipFault.COMPRESSION, f"{name!r} is a compressed patch", part=name)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            yield from self._other_method(info)
            return
        raw = self.raw(info, whole=verify)
        crc, total = 0, 0
        if info.compress_type == zipfile.ZIP_STORED:
            if verify and len(raw) != info.file_size:
                raise ZipError(ZipFault.DAMAGED, f"{name!r} stored size is wrong", part=name)
            for pos in range(0, len(raw), CHUNK):
                out = bytes(raw[pos : pos + CHUNK])
                if verify:
                    crc = zlib.crc32(out, crc)
                yield out
            total = len(raw)
        else:
            inflater = zlib.decompressobj(-15)
            pos = 0
            # A small part gets a small output buffer; more than declared is caught below.
            limit = min(CHUNK, info.file_size + 1)
            try:
                while not inflater.eof:
                    if inflater.unconsumed_tail:
                        out = inflater.decompress(inflater.unconsumed_tail, limit)
                    elif pos < len(raw):
                        out = inflater.decompress(raw[pos : pos + CHUNK], limit)
                        pos += CHUNK
                    elif verify:
                        raise ZipError(ZipFault.DAMAGED, f"{name!r} is truncated", part=name)
                    else:
                        return
                    total += len(out)
                    if total > info.file_size:
                        raise ZipError(
                            ZipFault.DAMAGED,
                            f"{name!r} inflates beyond its declared size",
                            part=name,
                        )
                    if out:
                        if verify:
                            crc = zlib.crc32(out, crc)
                        yield out
            except zlib.error:
                raise ZipError(ZipFault.DAMAGED, f"damaged zip entry {name!r}", part=name) from None
        if verify and (total != info.file_size or crc != info.CRC):
            raise ZipError(ZipFault.CRC, f"{name!r} fails its CRC check", part=name)

    def _other_method(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """bzip2 or LZMA (no office program writes them) through zipfile, still bounded."""
        name = info.filename
        total = 0
        try:
            with self.zf.open(info) as fh:
                while chunk := fh.read(CHUNK):
                    total += len(chunk)
                    if total > info.file_size:
                        raise ZipError(
                            ZipFault.DAMAGED,
                            f"{name!r} inflates beyond its declared size",
                            part=name,
                        )
                    yield chunk
        except NotImplementedError:
            raise ZipError(
                ZipFault.COMPRESSION,
                f"{name!r} uses unsupported compression {info.compress_type}",
                part=name,
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
            # zipfile checks the CRC itself once the part is read to its end
            raise ZipError(
                ZipFault.DAMAGED, f"damaged zip entry {name!r} ({exc})", part=name
            ) from None

    def head(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        """At most the first ``limit`` bytes of a part (checked against its CRC if it all fits)."""
        out = bytearray()
        for chunk in self.chunks(info, verify=info.file_size <= limit):
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def read(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        """A whole part, CRC checked; larger than ``limit`` is :attr:`ZipFault.PART_TOO_LARGE`."""
        if info.file_size > limit:
            raise ZipError(
                ZipFault.PART_TOO_LARGE,
                f"{info.filename!r} is {info.file_size} bytes (limit {limit})",
                part=info.filename,
            )
        return b"".join(self.chunks(info, verify=True))


def _check_directory(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> dict[str, zipfile.ZipInfo]:
    """Refuse bombs, traversal and duplicates from the central directory alone."""
    by_key: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = part_key(info.filename)
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\0" in name or _DRIVE.match(name):
            raise ZipError(
                ZipFault.UNSAFE_NAME,
                f"unsafe entry name {info.filename!r} (path traversal)",
                part=info.filename,
            )
        if name in by_key:
            raise ZipError(
                ZipFault.DUPLICATE_NAME,
                f"duplicate entry name {info.filename!r}",
                part=info.filename,
            )
        by_key[name] = info
        if info.file_size > limits.part_bytes:
            raise ZipError(
                ZipFault.BOMB,
                f"entry {info.filename!r} declares {info.file_size} bytes uncompressed "
                f"(limit {limits.part_bytes}): possible zip bomb",
                part=info.filename,
            )
        if info.file_size > limits.ratio_min_bytes and info.file_size > limits.ratio * max(
            info.compress_size, 1
        ):
            raise ZipError(
                ZipFault.BOMB,
                f"entry {info.filename!r} declares a {info.file_size // max(info.compress_size, 1)}"
                ":1 compression ratio: possible zip bomb",
                part=info.filename,
            )
        total += info.file_size
    if total > limits.total_bytes:
        raise ZipError(
            ZipFault.BOMB,
            f"zip declares {total} bytes uncompressed (limit {limits.total_bytes}): "
            "possible zip bomb",
        )
    return by_key
