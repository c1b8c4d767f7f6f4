"""The service log format: one plain line a message, the journal's priorities only for it."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import pytest

from refundflow.servicelog import ServiceFormatter, journal_attached, one_line


def record(level: int, message: str, *, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("坏了")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("refundflow.watch", level, __file__, 1, message, None, info)


@pytest.mark.parametrize(
    ("level", "journal", "line"),
    [
        pytest.param(logging.INFO, True, "<6>[已流转] a.xlsx: 去技术部", id="journal-info"),
        pytest.param(logging.WARNING, True, "<4>[已流转] a.xlsx: 去技术部", id="journal-warning"),
        pytest.param(logging.ERROR, True, "<3>[已流转] a.xlsx: 去技术部", id="journal-error"),
        pytest.param(logging.INFO, False, "INFO [已流转] a.xlsx: 去技术部", id="plain-info"),
        pytest.param(
            logging.WARNING, False, "WARNING [已流转] a.xlsx: 去技术部", id="plain-warning"
        ),
    ],
)
def test_level_prefix(level: int, journal: bool, line: str) -> None:
    assert (
        ServiceFormatter(journal=journal).format(record(level, "[已流转] a.xlsx: 去技术部")) == line
    )


def test_a_traceback_stays_on_one_line() -> None:
    text = ServiceFormatter(journal=False).format(record(logging.ERROR, "出错了", exc=True))
    assert "\n" not in text
    assert text.startswith("ERROR 出错了 | Traceback (most recent call last): | ")
    assert text.endswith("ValueError: 坏了")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("错误:x\n  处理办法:y", "错误:x | 处理办法:y", id="two-lines"),
        pytest.param("a\r\nb\rc", "a | b | c", id="windows-and-old-mac-breaks"),
        pytest.param("\x1b[31mred.xlsx\x1b[0m", "\\x1b[31mred.xlsx\\x1b[0m", id="ansi-in-a-name"),
        pytest.param("tab\there", "tab\\x09here", id="tab"),
    ],
)
def test_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


def test_journal_is_recognised_by_the_streams_device_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "err").open("w") as stream, (tmp_path / "other").open("w") as other:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal_attached(stream, env)
        assert not journal_attached(other, env)  # set for another stream (stderr redirected)
        assert not journal_attached(stream, {})
        assert not journal_attached(stream, {"JOURNAL_STREAM": "garbage"})
        assert not journal_attached(io.StringIO(), env)  # no file behind it
