"""The log of ``refundflow watch`` running as a service: one plain line per message, on stderr.

Service managers read a program's stderr line by line. systemd's journal takes a priority
from a ``<N>`` prefix (sd-daemon(3): ``<6>`` info, ``<4>`` warning, ``<3>`` error) and stamps
the time itself; it tells a program that its stderr is the journal by setting
``JOURNAL_STREAM`` to that stream's ``device:inode`` (systemd.exec(5)), which is checked here,
so a terminal or a redirected file never gets the prefixes. Elsewhere (a terminal, a log file,
a Windows service wrapper feeding the event log) the line starts with the level's name. Either
way a message is one line without control characters: a multi-line message or a traceback
would become several journal entries, and an escape sequence in a file name must not reach a
terminal.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import TextIO

#: sd-daemon(3) priorities for the logging levels.
PRIORITIES: dict[int, int] = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
#: The logger of the per-file lines (what, where to, why): shown at INFO without -v.
FILE_LOG = "refundflow.watch"

_LINE_BREAKS = re.compile(r"\s*(?:\r\n|\r|\n)\s*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    r"""``text`` on one line: line breaks become `` | ``, other control characters ``\xNN``."""
    text = _LINE_BREAKS.sub(" | ", text.strip())
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def journal_attached(stream: TextIO, env: Mapping[str, str] = os.environ) -> bool:
    """Is ``stream`` the journal's own stream (``JOURNAL_STREAM`` names its device and inode)?"""
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):  # not set, malformed, or no real file
        return False


class ServiceFormatter(logging.Formatter):
    """``<6>message`` for the journal, ``INFO message`` elsewhere; always one line."""

    def __init__(self, *, journal: bool) -> None:
        super().__init__("%(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = one_line(super().format(record))
        if self.journal:
            return f"<{PRIORITIES.get(record.levelno, 6)}>{text}"
        return f"{record.levelname} {text}"


def use_service_log(*, verbose: bool, stream: TextIO | None = None) -> None:
    """Send all logging to ``stream`` (stderr) in the service format.

    Without ``verbose``: warnings and errors from everything, plus the per-file lines.
    """
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ServiceFormatter(journal=journal_attached(stream)))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger(FILE_LOG).setLevel(logging.DEBUG if verbose else logging.INFO)
