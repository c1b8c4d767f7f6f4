"""The workspace: the folder layout under ``--root`` and the one-process-at-a-time lock."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .config import CONFIG_FILE, DEFAULT_CONFIG_TEXT, REJECTED_FOLDER, ROLE_KEYS, Config
from .errors import Reason, WorkspaceError

INBOX = "inbox"
OUTBOX = "outbox"
SHEETS = "refundsheets"
TEMPLATES = "templates"
LOCK_FILE = ".refundflow.lock"


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: Config

    @property
    def inbox(self) -> Path:
        return self.root / INBOX

    @property
    def sheets(self) -> Path:
        return self.root / SHEETS

    @property
    def templates(self) -> Path:
        return self.root / TEMPLATES

    @property
    def rejected(self) -> Path:
        return self.root / OUTBOX / REJECTED_FOLDER

    @property
    def ledger_path(self) -> Path:
        path = Path(self.config.ledger)
        return path if path.is_absolute() else self.root / path

    def outbox(self, role: str) -> Path:
        return self.root / OUTBOX / self.config.folder(role)

    def folders(self) -> list[Path]:
        return [
            self.inbox,
            *(self.outbox(role) for role in ROLE_KEYS),
            self.rejected,
            self.sheets,
            self.templates,
        ]

    def check(self) -> None:
        """Refuse to run on a folder that is not a workspace, saying how to make one."""
        missing = [p for p in self.folders() if not p.is_dir()]
        if missing:
            names = "、".join(str(p.relative_to(self.root)) for p in missing)
            raise WorkspaceError(
                f"{self.root} 不是完整的 refundflow 工作区,缺少文件夹:{names}",
                reason=Reason.WORKSPACE_MISSING,
                hint=f"请先运行 refundflow init --root {self.root}",
            )


def init_workspace(workspace: Workspace) -> list[Path]:
    """Create the folders and a commented refundflow.toml; never touch what exists.

    Returns what was created, so the CLI can say so.
    """
    created: list[Path] = []
    for folder in workspace.folders():
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(folder)
    config_path = workspace.root / CONFIG_FILE
    if not config_path.exists():
        config_path.write_text(DEFAULT_CONFIG_TEXT, encoding="utf-8")
        created.append(config_path)
    return created


class WorkspaceLock:
    """An exclusive lock: one watcher or ``process`` per workspace.

    flock is released by the kernel when the holder dies (even kill -9), so a stale lock
    never blocks a restart; the file's text only says who holds it.
    """

    def __init__(self, workspace: Workspace, *, command: str) -> None:
        self._path = workspace.sheets / LOCK_FILE
        self._command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "另一个进程"
            os.close(fd)
            raise WorkspaceError(
                f"工作区正在被使用:{holder}",
                reason=Reason.WORKSPACE_LOCKED,
                hint="同一工作区同时只能运行一个 watch 或 process;请等它结束或先停止它",
            ) from None
        started = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        holder = (
            f"refundflow {self._command} (pid {os.getpid()}, {socket.gethostname()}, {started})"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
