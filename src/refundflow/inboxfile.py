"""A dropped entry in ``inbox/``: read it without following links, take it out only if unchanged.

People drop files in ``inbox/``; the watcher runs with more rights than they have. So nothing
here opens a name through a symbolic link, blocks on a FIFO or opens a device: an entry is
judged by ``lstat`` first, and only a plain regular file with a single link is opened (with
``O_NOFOLLOW | O_NONBLOCK``, then checked again with ``fstat``). A file larger than the limit is
hashed in chunks, never read whole, so memory stays bounded whatever its size.

Taking a file out of the inbox renames it aside first (atomic), then compares what it holds
with what was read: a version saved meanwhile is put back, never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .archive import numbered

log = logging.getLogger(__name__)

HOLD_SUFFIX = ".taking"
_CHUNK = 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class EntryKind(StrEnum):
    FILE = "file"  # a regular file with one link: the only kind that is read
    SYMLINK = "symlink"
    HARDLINK = "hardlink"  # a regular file with more than one name
    DIRECTORY = "directory"
    FIFO = "fifo"
    SOCKET = "socket"
    DEVICE = "device"


@dataclass(frozen=True)
class Identity:
    """What says a file is still the one that was read."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Dropped:
    """One inbox entry as read: its kind, identity, and bytes when it is a form-sized file."""

    path: Path
    kind: EntryKind
    identity: Identity
    sha: str | None = None  # of the whole content; None for anything but a regular file
    data: bytes | None = None  # None when not a regular file, or larger than the limit


class ChangedWhileReading(Exception):
    """The file's size or modification time changed while it was read: still being written."""


def kind_of(st: os.stat_result) -> EntryKind:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISDIR(mode):
        return EntryKind.DIRECTORY
    if stat.S_ISFIFO(mode):
        return EntryKind.FIFO
    if stat.S_ISSOCK(mode):
        return EntryKind.SOCKET
    if stat.S_ISREG(mode):
        return EntryKind.FILE if st.st_nlink <= 1 else EntryKind.HARDLINK
    return EntryKind.DEVICE


def read_dropped(path: Path, *, max_bytes: int) -> Dropped:
    """Read ``path`` safely: its bytes if it is a plain file of at most ``max_bytes``.

    Raises FileNotFoundError when it is gone, PermissionError when it cannot be read, and
    :class:`ChangedWhileReading` when it was written to while being read.
    """
    first = os.lstat(path)
    kind = kind_of(first)
    if kind is not EntryKind.FILE:
        return Dropped(path, kind, Identity.of(first))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
            return Dropped(path, EntryKind.SYMLINK, Identity.of(os.lstat(path)))
        raise
    try:
        before = os.fstat(fd)
        kind = kind_of(before)
        if kind is not EntryKind.FILE:  # replaced since the lstat: judge what we opened
            return Dropped(path, kind, Identity.of(before))
        digest = hashlib.sha256()
        data: bytes | None = None
        if before.st_size <= max_bytes:
            data = _read_at_most(fd, max_bytes + 1)
            if len(data) > max_bytes:  # grew past the limit while we read
                digest.update(data)
                data = None
            else:
                digest.update(data)
        _hash_rest(fd, digest)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if Identity.of(after) != Identity.of(before):
        raise ChangedWhileReading(path.name)
    return Dropped(path, EntryKind.FILE, Identity.of(after), digest.hexdigest(), data)


def _read_at_most(fd: int, limit: int) -> bytes:
    parts = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(_CHUNK, remaining))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _hash_rest(fd: int, digest: hashlib._Hash) -> None:
    """Hash what is left to read from ``fd``, one chunk at a time (bounded memory)."""
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)


def hold_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{HOLD_SUFFIX}")


def is_hold_name(name: str) -> bool:
    """Is ``name`` a :func:`hold_name` (``.<name>.<pid>.taking``), of this run or another?"""
    if not (name.startswith(".") and name.endswith(HOLD_SUFFIX)):
        return False
    return name[: -len(HOLD_SUFFIX)].rpartition(".")[2].isdigit()


def original_name(hold: Path) -> str:
    """Inverse of :func:`hold_name`."""
    return hold.name[1:].rsplit(".", 2)[0]


def remove_if_unchanged(path: Path, sha: str, identity: Identity | None) -> bool:
    """Take the processed file out of the inbox unless it is not what was read any more.

    The file is first renamed aside (atomic), so a version saved between our check and the
    delete cannot be deleted unseen: what we hold is exactly what we compare. A file whose
    inode, size or modification time changed is put back even when its bytes are the same:
    a writer may still hold it open. ``identity`` None (finishing a crashed run's work, when
    only the bytes are known): the bytes decide. Returns whether the file was removed.
    """
    hold = hold_name(path)
    try:
        os.rename(path, hold)
    except FileNotFoundError:
        return False
    try:
        held = os.lstat(hold)
        same = kind_of(held) is EntryKind.FILE and (
            identity is None or Identity.of(held) == identity
        )
        if same and sha256_of(hold) == sha:
            hold.unlink()
            return True
    except OSError:
        pass
    log.info("%s 在处理时发生变动:留待下一轮处理", path.name)
    put_back(hold, path)
    return False


def sha256_of(path: Path) -> str:
    """The SHA-256 of a regular file, read in chunks without following a link."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        digest = hashlib.sha256()
        _hash_rest(fd, digest)
    finally:
        os.close(fd)
    return digest.hexdigest()


def put_back(hold: Path, original: Path) -> Path:
    """Return a held entry to the inbox under its name, or a free variant of it."""
    is_dir = hold.is_dir() and not hold.is_symlink()
    for n in range(1, 10_000):
        candidate = numbered(original, n)
        try:
            if is_dir:
                # Directories cannot be hard-linked; rename only over a name that is free.
                if candidate.exists() or candidate.is_symlink():
                    continue
                os.rename(hold, candidate)
                return candidate
            # link fails instead of replacing a file someone saved under the name meanwhile
            os.link(hold, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        hold.unlink()
        return candidate
    # Left hidden it would never be processed: better fail loudly and keep it.
    raise FileExistsError(f"no free name in inbox/ to put {hold.name} back as {original.name}")


def take_aside(path: Path) -> Path | None:
    """Rename an entry to its hold name (``None`` if it is gone), so it can be judged at rest."""
    hold = hold_name(path)
    try:
        os.rename(path, hold)
    except FileNotFoundError:
        return None
    return hold


def remove_entry(hold: Path) -> None:
    """Remove a held link, special file or empty name; never what a link points to."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(hold)
