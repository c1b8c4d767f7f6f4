"""Write-once file placement: exact bytes, fsynced, never overwriting anything.

Used for the archive under ``refundsheets/`` and for every copy put in a person's outbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import time
from pathlib import Path

RECEIVED = "received"
SENT = "sent"
ORPHANS = "orphans"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
_OUR_PARTIAL = re.compile(r"^\..+\.\d+\.part$")  # what place_new writes aside: .<name>.<pid>.part


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(name: str) -> str:
    """A file name that is safe on Windows shares too (staff name files freely)."""
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    return cleaned or "未命名"


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
    with open(tmp, "wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    try:
        for n in range(1, 10_000):
            candidate = dest if n == 1 else dest.with_name(f"{dest.stem} ({n}){dest.suffix}")
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
        candidate = dest if n == 1 else dest.with_name(f"{dest.stem} ({n}){dest.suffix}")
        try:
            with open(candidate, "xb") as fh:
                fh.write(data)
        except FileExistsError:
            continue
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


def place_exact(dest: Path, data: bytes, *, durable: bool = True) -> bool:
    """Put ``data`` exactly at ``dest`` unless it is already there with the same bytes.

    Returns False when a *different* file holds the name (the caller picks another name).
    Idempotent, so a delivery interrupted by a crash can simply be done again.
    """
    if dest.exists():
        try:
            return dest.read_bytes() == data
        except OSError:
            return False
    return place_new(dest, data, durable=durable) == dest


def archive_path(sheets: Path, kind: str, at: dt.datetime, sha: str, name: str) -> Path:
    """refundsheets/archive/<kind>/<YYYY-MM>/<timestamp>_<sequence>_<sha12>_<name>

    ``at`` is the processing moment (``--now`` may freeze it); the sequence is the wall
    clock in nanoseconds, so files that arrive in the same second keep their order in the
    name itself, whatever happens to the files' times when the archive is copied.
    """
    stamp = at.strftime("%Y%m%dT%H%M%S")
    folder = sheets / "archive" / kind / at.strftime("%Y-%m")
    return folder / f"{stamp}_{time.time_ns():019d}_{sha[:12]}_{safe_name(name)}"


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
