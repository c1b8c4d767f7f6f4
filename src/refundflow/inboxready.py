"""Is an inbox entry ready to be handed over? The checks the watcher makes on one entry.

Names that are never handed over (:func:`is_junk`), the owner files an office program keeps
beside a file it has open, and what opening a settled regular file tells us (:func:`_inspect`:
locked, still being written, an unfinished zip). The watcher looks at entries with ``lstat``
only and opens files with ``O_NOFOLLOW`` and ``O_NONBLOCK``, so a link is never followed and a
FIFO never blocks the loop. :func:`stuck_entries` lists what will never be handed over as it
is, for ``refundflow status``.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

if sys.platform != "win32":
    import fcntl

#: Suffixes (compared case-insensitively) of files that are never handed over.
JUNK_SUFFIXES: tuple[str, ...] = (
    ".tmp",  # Office save temporaries: ~WRL0001.tmp, ~RF1a2b.TMP, 1A2B3C4D.tmp
    ".part",  # Firefox / wget partial downloads
    ".partial",  # older browsers
    ".crdownload",  # Chrome / Edge partial downloads
    ".download",  # Safari partial downloads
    ".退回原因.txt",  # our own reply files, written next to a rejected form
)
#: Whole names (compared case-insensitively) that are never handed over.
JUNK_NAMES: frozenset[str] = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store"})

#: Open flags for looking at a dropped file: never through a symlink, never blocking (a FIFO
#: swapped in after our lstat would otherwise block the loop until someone writes to it).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_END_RECORD = b"PK\x05\x06"
_ZIP_END_SIZE = 22  # the end-of-central-directory record without its comment
_ZIP_MAX_COMMENT = 0xFFFF


def is_junk(name: str) -> bool:
    """Is ``name`` a temporary, lock, system or reply file that must never be handed over?"""
    lowered = name.casefold()
    return (
        name.startswith(("~$", "."))  # owner files, .~lock.x#, ._x (macOS), .gitkeep, ...
        or lowered in JUNK_NAMES
        or lowered.endswith(JUNK_SUFFIXES)
    )


def _owner_file_names(name: str) -> list[str]:
    """Names of the files an office program keeps next to ``name`` while it has it open.

    Excel/WPS/Word write ``~$`` + the name, but for longer names drop the first one or two
    characters (``~$` + ``name[2:]``); LibreOffice writes ``.~lock.<name>#``.
    """
    names = [f"~${name}", f".~lock.{name}#"]
    stem = Path(name).stem
    names.extend(f"~${name[cut:]}" for cut in (1, 2) if len(stem) > cut)
    return names


def owner_file_present(path: Path) -> bool:
    """Does an Excel/WPS (``~$…``) or LibreOffice (``.~lock.…#``) owner file mark ``path`` open?"""
    return any((path.parent / owner).exists() for owner in _owner_file_names(path.name))


class _Check(enum.Enum):
    """What opening a settled regular file told us."""

    READY = "ready"
    CHANGED = "changed"  # not the entry we lstat'ed (replaced, linked, swapped for a link)
    UNREADABLE = "unreadable"  # cannot be opened (permissions, ...): retried with backoff
    LOCKED = "locked"  # another program holds an exclusive flock: retried with backoff
    WRITING = "writing"  # someone has it open for writing: waited for
    INCOMPLETE = "incomplete"  # empty, or a zip without its end record: waited for


def _regular(st: os.stat_result) -> bool:
    """A plain regular file with a single link: the only kind of entry the watcher opens."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def _signature(st: os.stat_result) -> tuple[int, ...]:
    """What must stay the same for an entry to count as unchanged (from ``lstat``)."""
    return (stat.S_IFMT(st.st_mode), st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def _read_lease(fd: int) -> Iterator[bool | None]:
    """Hold a Linux read lease on ``fd`` for the ``with`` block; yield whether someone writes.

    Yields ``True`` when the lease is refused with EAGAIN (someone has the file open for
    writing), ``False`` while it is held, ``None`` when the system cannot tell: taking one
    needs file ownership or CAP_LEASE (EACCES/EPERM otherwise) and a file system that
    supports leases (EINVAL otherwise). A writer opening the file while we hold the lease
    waits until we give it back, and the kernel tells the holder with a signal: SIGIO unless
    F_SETSIG names another, and SIGIO's default action ends the process. We ask for SIGURG,
    which is ignored by default, so a writer arriving at the wrong moment cannot kill us.
    """
    if not sys.platform.startswith("linux"):
        yield None
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        yield True if exc.errno == errno.EAGAIN else None
        return
    try:
        yield False
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def _open_for_writing(fd: int) -> bool | None:
    """Does anyone have this file open for writing? ``None``: the system cannot tell us.

    The lease is given back at once, so a writer opening the file meanwhile waits for a
    moment at most.
    """
    with _read_lease(fd) as writing:
        return writing


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """``os.pread``, which Windows lacks; the descriptor is ours alone."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _looks_complete(fd: int, size: int) -> bool:
    """Is the file not obviously unfinished? Reads the first 4 bytes and the tail only.

    Empty: unfinished. A zip (every xlsx) is written front to back and ends with its
    end-of-central-directory record (22 bytes plus a comment of up to 64 KiB): without it at
    the very end, the writer has not finished. Any other format cannot be judged here.
    """
    if size == 0:
        return False
    if _read_at(fd, len(_ZIP_LOCAL_HEADER), 0) != _ZIP_LOCAL_HEADER:
        return True
    last = _read_at(fd, _ZIP_END_SIZE, max(size - _ZIP_END_SIZE, 0))
    if last[:4] == _ZIP_END_RECORD and len(last) == _ZIP_END_SIZE and last[20:] == b"\0\0":
        return True  # the usual case: an end record with no comment
    span = min(size, _ZIP_END_SIZE + _ZIP_MAX_COMMENT)
    tail = _read_at(fd, span, size - span)
    at = tail.rfind(_ZIP_END_RECORD)
    while at >= 0:
        record_end = at + _ZIP_END_SIZE + int.from_bytes(tail[at + 20 : at + 22], "little")
        if at + _ZIP_END_SIZE <= len(tail) and record_end == len(tail):
            return True
        at = tail.rfind(_ZIP_END_RECORD, 0, at)
    return False


def _named_like_a_document(name: str) -> bool:
    """May a close or rename event alone say this file is done? Only for names with a suffix.

    Excel saves by writing a temporary with a bare 8-character name (``6F2A1B00``), closing
    it, and renaming it over the form a moment later: handed over on its close, it would be
    taken from under Excel. Such names keep the stability wait.
    """
    return bool(Path(name).suffix)


def _nobody_writing(path: Path, st: os.stat_result) -> bool:
    """Does the kernel say that nobody has the regular file ``st`` open for writing?"""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        opened = os.fstat(fd)
        same = _regular(opened) and (opened.st_dev, opened.st_ino) == (st.st_dev, st.st_ino)
        return same and _open_for_writing(fd) is False
    finally:
        os.close(fd)


def _inspect(path: Path, st: os.stat_result) -> _Check:
    """Open ``path`` (never through a link, never blocking) and say whether it can be handed over.

    ``st`` is the ``lstat`` the decision so far was based on: if the opened file is not that
    entry, the answer is :attr:`_Check.CHANGED`. ``FileNotFoundError`` propagates (the caller
    forgets the file). A file system that cannot do ``flock`` does not count as locked.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        # ELOOP: a symlink now stands where the file was; the next scan hands it over as one.
        return _Check.CHANGED if exc.errno == errno.ELOOP else _Check.UNREADABLE
    try:
        opened = os.fstat(fd)
        if not _regular(opened) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            return _Check.CHANGED
        if sys.platform != "win32":
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _Check.LOCKED  # someone holds LOCK_EX: still being written
            except OSError:
                pass  # ENOLCK / EOPNOTSUPP / EINVAL: this file system cannot tell us
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if _open_for_writing(fd):
            return _Check.WRITING
        if not _looks_complete(fd, opened.st_size):
            return _Check.INCOMPLETE
        return _Check.READY
    except OSError:
        return _Check.UNREADABLE
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StuckEntry:
    """An inbox entry the watcher will not hand over by itself, and why (in Chinese)."""

    name: str
    cause: str


#: Hidden names that are someone's working files, not a person's forms: never "stuck".
_HIDDEN_NOT_STUCK: tuple[str, ...] = (
    ".~lock.",  # LibreOffice owner files
    "._",  # macOS AppleDouble metadata
    ".nfs",  # NFS silly-renamed files, removed by the client
    ".fuse_hidden",  # the same on FUSE
)
_HIDDEN_NAMES_NOT_STUCK: frozenset[str] = frozenset({".ds_store", ".gitkeep", ".directory"})
_HOLD_SUFFIX = ".taking"  # the processor's own hold-aside names: .<name>.<pid>.taking

_KIND_NAMES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISLNK, "符号链接(快捷方式)"),
    (stat.S_ISDIR, "文件夹"),
    (stat.S_ISFIFO, "命名管道"),
    (stat.S_ISSOCK, "套接字"),
    (stat.S_ISCHR, "设备文件"),
    (stat.S_ISBLK, "设备文件"),
)


def _hidden_for_ever(name: str) -> bool:
    """A name starting with a dot that no program of ours, Office's or the OS's explains."""
    lowered = name.casefold()
    return (
        name.startswith(".")
        and not lowered.startswith(_HIDDEN_NOT_STUCK)
        and lowered not in _HIDDEN_NAMES_NOT_STUCK
        and not lowered.endswith((*JUNK_SUFFIXES, _HOLD_SUFFIX))
    )


def stuck_entries(inbox: Path) -> list[StuckEntry]:
    """Entries in ``inbox`` that will not be handled as they are, each with its cause.

    ``refundflow status`` shows them so that nothing a person dropped sits unanswered: hidden
    names (ignored for ever), files that cannot be opened, forms held by an Office owner file,
    and entries that are not plain files (answered by the processor while a watcher runs).
    Looks with ``lstat`` and opens with ``O_NOFOLLOW | O_NONBLOCK`` only.
    """
    try:
        with os.scandir(inbox) as it:
            names = sorted(entry.name for entry in it)
    except OSError:
        return []
    all_names = {name.casefold() for name in names}
    stuck: list[StuckEntry] = []
    for name in names:
        if is_junk(name):
            if _hidden_for_ever(name):
                stuck.append(
                    StuckEntry(
                        name,
                        "文件名以“.”开头,会被当作隐藏文件,永远不会被处理;"
                        "请把文件改名,去掉开头的“.”后再放入 inbox",
                    )
                )
            continue
        try:
            st = os.lstat(inbox / name)
        except OSError:
            continue  # gone meanwhile
        if not _regular(st):
            kind = next((text for test, text in _KIND_NAMES if test(st.st_mode)), "特殊文件")
            if stat.S_ISREG(st.st_mode):
                kind = "有多个硬链接的文件"
            stuck.append(
                StuckEntry(
                    name,
                    f"这是{kind},不是普通文件,不会被读取;运行中的 refundflow watch 会把它退回到 "
                    "outbox/rejected;请把表单文件本身(不是链接或文件夹)直接放入 inbox",
                )
            )
            continue
        owners = [o for o in _owner_file_names(name) if o.casefold() in all_names]
        if owners:
            stuck.append(
                StuckEntry(
                    name,
                    f"存在 Office 锁定文件 {owners[0]},表示文件正在 Excel/WPS/LibreOffice 中打开;"
                    "请关闭该文件;如果确认没有人打开它,请删除这个锁定文件",
                )
            )
            continue
        try:
            fd = os.open(inbox / name, _OPEN_FLAGS)
        except FileNotFoundError:
            continue
        except OSError as exc:
            stuck.append(
                StuckEntry(
                    name,
                    f"无法打开文件({exc.strerror}),可能没有读取权限;"
                    "请检查文件权限,或把文件重新保存一份后放入 inbox",
                )
            )
            continue
        os.close(fd)
    return stuck
