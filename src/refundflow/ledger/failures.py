"""SQLite's failures as a LedgerError that says, in Chinese, what to do about them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import LedgerError, Reason


@contextmanager
def ledger_errors(path: Path, root: Path | None = None) -> Iterator[None]:
    """SQLite's failures as LedgerError with a message staff can act on."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise ledger_error(path, exc, root) from exc


def rebuild_hint(root: Path | None) -> str:
    command = f"refundflow rebuild --root {root}" if root else "refundflow rebuild"
    return f"请运行 {command},从存档重建账本(原有的账本文件会先自动备份)"


def ledger_error(path: Path, exc: sqlite3.DatabaseError, root: Path | None) -> LedgerError:
    text = str(exc)
    rebuild = rebuild_hint(root)
    if "locked" in text or "busy" in text:
        return LedgerError(
            f"账本文件 {path} 正被其他程序占用,无法写入({text})",
            reason=Reason.LEDGER_BUSY,
            hint="请关闭打开了账本的程序(例如数据库查看工具)后重试;不要用其他程序修改账本",
        )
    if isinstance(exc, sqlite3.OperationalError) and (
        "unable to open" in text or "disk I/O" in text or "readonly" in text
    ):
        return LedgerError(
            f"无法读写账本文件 {path}({text})",
            reason=Reason.LEDGER_UNREADABLE,
            hint="请检查该文件和所在文件夹的读写权限与磁盘;如果文件已损坏," + rebuild,
        )
    return LedgerError(
        f"账本文件 {path} 已损坏,无法读取({text})",
        reason=Reason.LEDGER_CORRUPT,
        hint=rebuild,
    )
