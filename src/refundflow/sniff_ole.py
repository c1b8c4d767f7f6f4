"""Sniffing legacy binary files: OLE compound files (.xls, encrypted OOXML, .doc) and bare
BIFF record streams, walked by a small bounds-checked reader instead of a parser."""

from __future__ import annotations

import struct

from .sniffkinds import FileKind, corrupt

BIFF_BOF = {0x0009: "BIFF2", 0x0209: "BIFF3", 0x0409: "BIFF4", 0x0809: "BIFF5/8"}
_MAX_OLE_DIR_ENTRIES = 4096
_MAX_BIFF_RECORDS = 64  # FILEPASS, when present, sits right after the first BOF


def raw_biff(data: bytes) -> tuple[FileKind, str] | None:
    """BIFF2-4 files (and the odd BIFF5) are a bare record stream with no OLE container."""
    if len(data) < 8:
        return None
    rtype, length = struct.unpack_from("<HH", data, 0)
    if rtype not in BIFF_BOF or not 4 <= length <= 20:
        return None
    if biff_filepass(data):
        return FileKind.ENCRYPTED, f"raw {BIFF_BOF[rtype]} stream with FILEPASS"
    return FileKind.XLS, f"raw {BIFF_BOF[rtype]} stream (no OLE container)"


def biff_filepass(stream: bytes) -> bool:
    """True if a FILEPASS record (0x002F) appears among the first records of the globals."""
    pos = 0
    for _ in range(_MAX_BIFF_RECORDS):
        if pos + 4 > len(stream):
            return False
        rtype, length = struct.unpack_from("<HH", stream, pos)
        if rtype == 0x002F:
            return True
        if rtype == 0x000A:  # EOF of the globals substream
            return False
        pos += 4 + length
    return False


_FREE, _END = 0xFFFFFFFF, 0xFFFFFFFE


class _Ole:
    """Just enough of MS-CFB to list the root storage and read the head of a stream.

    Every sector number and chain is checked against the file size, and every chain walk is
    bounded, because fuzzed files loop their FAT (that is what makes calamine allocate 8 GiB).
    """

    def __init__(self, data: bytes) -> None:
        if len(data) < 512:
            raise corrupt("OLE file shorter than its header")
        self.data = data
        shift, mini_shift = struct.unpack_from("<HH", data, 0x1E)
        if shift not in (9, 12) or mini_shift != 6:
            raise corrupt(f"OLE header has sector shift {shift}/{mini_shift}")
        self.sector: int = 1 << int(shift)
        self.n_sectors = (len(data) + self.sector - 1) // self.sector - 1
        (n_fat, self.dir_start, self.mini_cutoff, self.minifat_start, self.n_minifat,
         difat_start, _n_difat) = struct.unpack_from("<I I 4x I I I I I", data, 0x2C)  # fmt: skip
        # Writers get these counts wrong (ExcelLibrary declares 17 mini FAT sectors in a 7-sector
        # file) and readers cope, so clamp them to what the file can hold instead of refusing.
        n_fat = min(n_fat, self.n_sectors)
        self.n_minifat = min(self.n_minifat, self.n_sectors)
        fat_sectors = [s for s in struct.unpack_from("<109I", data, 0x4C) if s < _END][:n_fat]
        sec, seen = difat_start, set()
        per = self.sector // 4
        while len(fat_sectors) < n_fat and sec < _END:
            if sec in seen or sec >= self.n_sectors:
                raise corrupt("OLE DIFAT chain loops or leaves the file")
            seen.add(sec)
            entries = struct.unpack_from(f"<{per}I", data, self._offset(sec))
            fat_sectors.extend(s for s in entries[:-1] if s < _END)
            sec = entries[-1]
        self.fat_sectors = fat_sectors[:n_fat]
        self._minifat: list[int] | None = None
        self._ministream: bytes | None = None

    def _offset(self, sec: int) -> int:
        if sec >= self.n_sectors:
            raise corrupt(f"OLE sector {sec} is beyond the end of the file")
        return (sec + 1) * self.sector

    def _next(self, sec: int) -> int:
        per = self.sector // 4
        index = sec // per
        if index >= len(self.fat_sectors):
            raise corrupt("OLE FAT does not cover a used sector")
        value: int = struct.unpack_from("<I", self.data, self._offset(self.fat_sectors[index])
                                        + 4 * (sec % per))[0]  # fmt: skip
        return value

    def chain(self, start: int, limit: int) -> bytes:
        """Concatenate sectors of a FAT chain, at most ``limit`` bytes."""
        out = bytearray()
        sec, seen = start, set()
        while sec < _END and len(out) < limit:
            if sec in seen:
                raise corrupt("OLE FAT chain loops")
            seen.add(sec)
            off = self._offset(sec)
            out += self.data[off : off + self.sector]
            sec = self._next(sec)
        return bytes(out[:limit])

    def root_entries(self) -> dict[str, tuple[int, int, int]]:
        """Names (lower-cased) of the root storage's children -> (type, start, size)."""
        raw = self.chain(self.dir_start, _MAX_OLE_DIR_ENTRIES * 128)
        count = len(raw) // 128

        def entry(i: int) -> tuple[str, int, int, int, int, int, int]:
            if not 0 <= i < count:
                raise corrupt("OLE directory points outside itself")
            off = i * 128
            name_len, kind = struct.unpack_from("<HB", raw, off + 0x40)
            left, right, child = struct.unpack_from("<III", raw, off + 0x44)
            start, size = struct.unpack_from("<IQ", raw, off + 0x74)
            name_bytes = raw[off : off + max(0, min(name_len, 64) - 2)]
            name = name_bytes.decode("utf-16-le", errors="replace")
            return name, kind, left, right, child, start, size & 0xFFFFFFFF

        root = entry(0)
        if root[1] != 5:
            raise corrupt("OLE directory has no root entry")
        self.root_start, self.root_size = root[5], root[6]
        found: dict[str, tuple[int, int, int]] = {}
        stack, seen = [root[4]], set()
        while stack:
            i = stack.pop()
            if i == _FREE:
                continue
            if i in seen:
                raise corrupt("OLE directory tree loops")
            seen.add(i)
            name, kind, left, right, _child, start, size = entry(i)
            found[name.lower()] = (kind, start, size)
            stack += (left, right)
        return found

    def read_stream(self, start: int, size: int, limit: int) -> bytes:
        limit = min(size, limit)
        if size >= self.mini_cutoff:
            return self.chain(start, limit)
        # small streams live in 64-byte mini sectors inside the root entry's stream
        if self._minifat is None:
            raw = self.chain(self.minifat_start, self.n_minifat * self.sector)
            self._minifat = list(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
            self._ministream = self.chain(self.root_start, min(self.root_size, len(self.data)))
        assert self._ministream is not None
        out = bytearray()
        sec, seen = start, set()
        while sec < _END and len(out) < limit:
            if sec in seen or sec >= len(self._minifat):
                raise corrupt("OLE mini FAT chain loops or leaves the mini stream")
            seen.add(sec)
            out += self._ministream[sec * 64 : sec * 64 + 64]
            sec = self._minifat[sec]
        return bytes(out[:limit])


def classify_ole(data: bytes) -> tuple[FileKind, str]:
    try:
        ole = _Ole(data)
        entries = ole.root_entries()
    except struct.error:
        return FileKind.CORRUPT, "truncated OLE compound file"
    if "encryptedpackage" in entries or "encryptioninfo" in entries:
        return FileKind.ENCRYPTED, "encrypted OOXML package (OLE EncryptionInfo/EncryptedPackage)"
    for stream in ("workbook", "book"):
        if stream in entries:
            kind, start, size = entries[stream]
            if kind != 2:
                return FileKind.CORRUPT, f"OLE {stream!r} entry is not a stream"
            try:
                head = ole.read_stream(start, size, 64 * 1024)
            except struct.error:
                return FileKind.CORRUPT, "truncated OLE stream"
            if len(head) < 8:
                return FileKind.CORRUPT, "empty workbook stream"
            rtype, _length, version = struct.unpack_from("<HHH", head, 0)
            if rtype not in BIFF_BOF:
                return FileKind.CORRUPT, "workbook stream does not start with a BIFF BOF record"
            biff = {0x0600: "BIFF8", 0x0500: "BIFF5"}.get(version, BIFF_BOF[rtype])
            if biff_filepass(head):
                return FileKind.ENCRYPTED, f"{biff} workbook with FILEPASS (password)"
            vba = " with VBA macros" if "_vba_project_cur" in entries else ""
            return FileKind.XLS, f"{biff} workbook in OLE container{vba}"
    if "nativecontent_main" in entries:
        return FileKind.OTHER_SPREADSHEET, "Quattro Pro workbook"
    if "worddocument" in entries:
        return FileKind.OLE_OTHER, "Word 97-2003 document (.doc)"
    if "powerpoint document" in entries:
        return FileKind.OLE_OTHER, "PowerPoint 97-2003 presentation (.ppt)"
    return FileKind.OLE_OTHER, "OLE compound file without a workbook stream"
