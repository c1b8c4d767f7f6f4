"""The ``refundflow`` command's entry point: refuse an unsupported system before importing.

The watcher relies on POSIX (file locks, process limits, the forkserver, inotify). On
Windows the import of those modules would end in a traceback; a person gets a message
saying where to run it instead.
"""

from __future__ import annotations

import sys

WINDOWS_MESSAGE = (
    "错误:refundflow 需要在 Linux 上运行(它依赖 Linux 的文件锁、进程限制和文件变动通知)。\n"
    "处理办法:在提供共享文件夹的 Linux 文件服务器上运行 refundflow watch(见 README 的"
    "“Running it as a service”);Windows 上的同事照常通过共享文件夹放入和取回表格即可。"
)


def main() -> None:
    if sys.platform == "win32":
        sys.exit(WINDOWS_MESSAGE)
    from .cli import cli

    cli(prog_name="refundflow")
