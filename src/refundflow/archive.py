"""Write-once file placement: exact bytes, fsynced, never overwriting anything.

Used for the archive under ``refundsheets/`` and for every copy put in a person's outbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

RECEIVED = "received"
SENT = "sent"
ORPHANS = "orphans"
SUPERSEDED = "superseded"  # a person's edits to a copy we took away from their folder
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
_OUR_PARTIAL = re.compile(r"^\..+\.\d+\.part$")  # what place_new writes aside: .<name>.<pid>.part


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Longest name (UTF-8 bytes) we give a file: the archive adds a 49-byte prefix, an outbox copy
#: " (nn)" and ".退回原因.txt", and most file systems stop at 255 bytes.
MAX_NAME_BYTES = 180


def safe_name(name: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file name that is safe on Windows shares too (staff name files freely).

    NFC-normalised (a name typed on a Mac and the same name typed on Windows are one name) and
    at most ``max_bytes`` long: a longer name keeps its start, a short hash of the whole name
    and its extension, so two long names that differ only at the end stay apart.
    """
    cleaned = unicodedata.normalize("NFC", _UNSAFE.sub("_", name)).strip(" .")
    return fit_name(cleaned or "未命名", max_bytes)


def fit_name(name: str, max_bytes: int) -> str:
    """``name`` itself if it fits in ``max_bytes`` of UTF-8, else ``start~hash.ext``."""
    if len(name.encode()) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 8:
        stem, ext = name, ""
    tail = f"~{hashlib.sha256(name.encode()).hexdigest()[:8]}" + (f".{ext}" if ext else "")
    start = stem.encode()[: max_bytes - len(tail.encode())].decode("utf-8", "ignore")
    return start + tail


def name_key(name: str) -> str:
    """Names equal under this key look the same to a person (and to Windows): never both."""
    return unicodedata.normalize("NFC", name).casefold()


def numbered(dest: Path, n: int) -> Path:
    """``dest`` for n == 1, else ``stem (n).suffix``: the way Windows names copies."""
    return dest if n == 1 else dest.with_name(f"{dest.stem} ({n}){dest.suffix}")


def folder_names(folder: Path) -> list[str]:
    """The names of a folder's entries ([] for a folder that does not exist yet)."""
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def free_names(
    dest: Path,
    *companions: str,
    freed: set[str] | frozenset[str] = frozenset(),
    listing: list[str] | None = None,
) -> Iterator[Path]:
    """Candidates ``dest``, ``dest (2)`` … whose own name and ``name + companion`` are free.

    A name counts as taken when an entry of the folder looks the same to a person (differs
    only in letter case or Unicode normalisation); names in ``freed`` (about to be removed)
    do not count. The folder is listed once (``listing``: a listing already made); callers
    still create the file exclusively, since another process may take a name meanwhile.
    """
    names = folder_names(dest.parent) if listing is None else listing
    taken = {name_key(n) for n in names if n not in freed}
    for n in range(1, 10_000):
        candidate = numbered(dest, n)
        names = [candidate.name, *(candidate.name + c for c in companions)]
        if not any(name_key(x) in taken for x in names):
            yield candidate
    raise FileExistsError(f"no free name for {dest}")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place_new(dest: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` at ``dest``, or at ``dest (2)`` … if that name is taken.

    The file appears whole or not at all (written aside, then hard-linked into place: link
    fails instead of replacing an existing file, unlike rename).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.part"
    try:
        # Inside the try: a full disk mid-write must not leave the .part behind.
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        for n in range(1, 10_000):
            candidate = numbered(dest, n)
            try:
                os.link(tmp, candidate)
            except FileExistsError:
                continue
            if durable:
                _fsync_dir(dest.parent)
            return candidate
        raise FileExistsError(f"no free name for {dest}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_exclusive(dest: Path, data: bytes) -> Path:
    """Create ``dest`` (or ``dest (2)`` …) and write it, without the write-aside step.

    For archive copies nobody opens while they are written and that the ledger only
    references once whole; a kill mid-write leaves an unreferenced file, never a wrong one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = numbered(dest, n)
        try:
            fh = open(candidate, "xb")  # noqa: SIM115 - closed below, removed if the write fails
        except FileExistsError:
            continue
        try:
            with fh:
                fh.write(data)
        except BaseException:
            # A full disk: no half-written archive copy with a name that looks whole.
            with contextlib.suppress(OSError):
                candidate.unlink()
            raise
        return candidate
    raise FileExistsError(f"no free name for {dest}")


def remove_partial_writes(folder: Path) -> int:
    """Delete temp files a killed process left behind in ``folder`` (see :func:`place_new`).

    Safe only under the workspace lock, and only in folders place_new writes to (never the
    inbox, where such a name may be someone's upload in progress). Their content is still in
    the archive or the inbox, so nothing is lost.
    """
    removed = 0
    for path in folder.glob(".*.part"):
        if not _OUR_PARTIAL.match(path.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def place_exact(dest: Path, data: bytes, *, durable: bool = True) -> Path:
    """Put ``data`` at ``dest`` unless it is already there with the same bytes; return where.

    Idempotent, so a delivery interrupted by a crash can simply be done again. When a
    *different* file has taken the name since it was chosen, the bytes go to ``dest (2)`` …:
    never over someone else's file.
    """
    if dest.is_file():
        try:
            if dest.read_bytes() == data:
                return dest
        except OSError:
            pass
    return place_new(dest, data, durable=durable)


class _Sequence:
    """Arrival sequence numbers that only go up, in this process, whatever the clock does."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self, after: int = 0) -> int:
        with self._lock:
            # The wall clock in ns, as archives written before this counter existed used;
            # when the clock stands still or was set back, one more than the last instead.
            self._last = max(time.time_ns(), after + 1, self._last + 1)
            return self._last


_SEQUENCE = _Sequence()


def next_sequence(after: int = 0) -> int:
    """A sequence number above ``after`` and above every one this process gave before."""
    return _SEQUENCE.next(after)


def archive_path(
    sheets: Path, kind: str, at: dt.datetime, sha: str, name: str, *, sequence: int | None = None
) -> Path:
    """refundsheets/archive/<kind>/<YYYY-MM>/<timestamp>_<sequence>_<sha12>_<name>

    ``at`` is the processing moment (``--now`` may freeze it or set it back). The sequence
    is the arrival order, recorded in the name itself so that it survives copying the
    archive: received files get theirs from the ledger (:meth:`Ledger.reserve_arrival`),
    which keeps it strictly increasing across restarts even when the clock goes back;
    ``rebuild`` replays in that order. Without one, :func:`next_sequence` is used.
    """
    stamp = at.strftime("%Y%m%dT%H%M%S")
    folder = sheets / "archive" / kind / at.strftime("%Y-%m")
    seq = next_sequence() if sequence is None else sequence
    return folder / f"{stamp}_{seq:019d}_{sha[:12]}_{safe_name(name)}"


def parse_archive_name(path: Path) -> tuple[dt.datetime, int, str, str] | None:
    """Inverse of :func:`archive_path`: (time, sequence, sha12, original name)."""
    parts = path.name.split("_", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    try:
        at = dt.datetime.strptime(parts[0], "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    return at, int(parts[1]), parts[2], parts[3]


def archived_files(sheets: Path, kind: str) -> list[tuple[int, Path]]:
    """Every archived file of ``kind`` (all months) as (sequence, path), in arrival order.

    Hidden names (our own write-aside temporaries) and names we did not write are skipped.
    """
    found = []
    for path in (sheets / "archive" / kind).glob("*/*"):
        parsed = parse_archive_name(path)
        if parsed is not None and not path.name.startswith("."):
            found.append((parsed[1], path))
    found.sort()
    return found


def form_numbers_sent(sheets: Path, prefix: str) -> frozenset[str]:
    """Every form number a copy in archive/sent/ is named after (``<prefix>YYYYMMDD-NNN.xlsx``).

    A rejected file someone happened to name so only makes that number skipped.
    """
    pattern = re.compile(rf"{re.escape(prefix)}\d{{8}}-\d{{3,}}\.xlsx")
    numbers = set()
    for _sequence, path in archived_files(sheets, SENT):
        name = path.name.split("_", 3)[3]
        if pattern.fullmatch(name):
            numbers.add(name[: -len(".xlsx")])
    return frozenset(numbers)
