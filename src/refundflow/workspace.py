"""The workspace: the folder layout under ``--root`` and the one-process-at-a-time lock."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import layout
from .config import CONFIG_FILE, DEFAULT_CONFIG_TEXT, REJECTED_FOLDER, ROLE_KEYS, Config
from .errors import Reason, WorkspaceError, os_problem

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

    def check_writable(self) -> None:
        """Refuse to start when inbox/ or refundsheets/ cannot be written.

        Nothing could be taken out of the inbox, archived or recorded. An outbox folder that
        cannot be written stops nobody: its deliveries wait, are listed by ``status`` and are
        made again once it can be. Tried with a real file (permission bits say nothing for
        root, a read-only mount or an immutable folder); its name is junk to the watcher.
        """
        for folder in (self.inbox, self.sheets):
            probe = folder / f".refundflow-probe.{os.getpid()}.tmp"
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                os.unlink(probe)
            except OSError as exc:
                raise WorkspaceError(
                    f"无法写入文件夹 {folder}({os_problem(exc)}),refundflow 无法工作",
                    reason=Reason.STORAGE_DENIED,
                    hint="请让运行 refundflow 的账户可以写入 inbox 和 refundsheets 文件夹"
                    "(inbox 中的文件处理后要从中取走,refundsheets 存放账本和存档),然后重新启动",
                ) from exc


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


def init_templates(workspace: Workspace) -> list[Path]:
    """Write each template ``templates/`` lacks; never replace one that is there.

    A site may have adjusted its templates, so ``init`` only fills gaps (``refundflow
    templates`` regenerates them all). They are written in a hidden folder beside and linked
    into place, so a template is either whole or absent, and one that appeared meanwhile wins.
    Returns what was created, so the CLI can say so.
    """
    from .templates import write_templates  # xlsxwriter: loaded only when templates are made

    folder = workspace.templates
    if all((folder / name).exists() for name in _TEMPLATE_FILES):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    with tempfile.TemporaryDirectory(dir=folder, prefix=".init-") as aside:
        for written in write_templates(Path(aside), workspace.config):
            if _place(written, folder / written.name):
                created.append(folder / written.name)
    return created


def _place(written: Path, dest: Path) -> bool:
    """Put ``written`` at ``dest`` unless something is there; False if it was."""
    try:
        os.link(written, dest)
    except FileExistsError:
        return False
    except OSError:  # a share without hard links (some SMB mounts): create it exclusively
        try:
            with dest.open("xb") as out:
                out.write(written.read_bytes())
        except FileExistsError:
            return False
    return True


_TEMPLATE_FILES = (
    layout.REFUND_TEMPLATE_FILE,
    layout.HANDOVER_TEMPLATE_FILE,
    layout.CS_STATS_TEMPLATE_FILE,
    layout.FINANCE_STATS_TEMPLATE_FILE,
)


class WorkspaceLock:
    """An exclusive lock: one watcher, ``process`` or ``rebuild`` per workspace.

    The lock is an flock on the workspace root folder itself, which cannot be deleted or
    replaced from under us while it holds files: a lock file could be, and a second watcher
    would then take a fresh one and give the same form numbers twice. flock is released by
    the kernel when the holder dies (even kill -9), so a stale lock never blocks a restart.
    The file ``refundsheets/.refundflow.lock`` only says who holds it, for the message.
    """

    def __init__(self, workspace: Workspace, *, command: str) -> None:
        self._root = workspace.root
        self._path = workspace.sheets / LOCK_FILE
        self._command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkspaceError(
                f"工作区正在被使用:{self._holder()}",
                reason=Reason.WORKSPACE_LOCKED,
                hint="同一工作区同时只能运行一个 watch 或 process;请等它结束或先停止它",
            ) from None
        self._fd = fd
        started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")  # people read it: to the minute
        self._write_holder(
            f"refundflow {self._command} (pid {os.getpid()}, {socket.gethostname()}, {started})"
        )

    def _holder(self) -> str:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return "另一个 refundflow 进程"
        try:
            text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        finally:
            os.close(fd)
        return text or "另一个 refundflow 进程"

    def _write_holder(self, text: str) -> None:
        """Best effort: the lock holds without this file. Never written through a link."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self._path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
            )
        except OSError:
            return
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, 0)
                os.pwrite(fd, text.encode(), 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            self._write_holder("")
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
