"""The progress bar: drawn for a person at a terminal, silent in logs and pipes."""

from __future__ import annotations

import io

from refundflow.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_bar_fill_and_then_cleared() -> None:
    screen = Terminal()
    items = list(progress(range(4), total=4, label="重放存档", stream=screen))
    assert items == [0, 1, 2, 3]
    drawn = screen.getvalue()
    assert "重放存档" in drawn and "1/4" in drawn, drawn  # the first item is shown at once
    assert "4/4 100%" in drawn, "the last count is shown before the line is cleared"
    last_line = drawn.rsplit("\r", 2)[-2]
    assert last_line.strip() == "", "the line is left blank for what is printed next"
    assert drawn.endswith("\r") and "\n" not in drawn


def test_a_log_or_pipe_gets_nothing() -> None:
    log = io.StringIO()
    assert list(progress(["a", "b"], label="重放存档", stream=log)) == ["a", "b"]
    assert log.getvalue() == ""


def test_the_total_is_taken_from_a_sized_collection() -> None:
    screen = Terminal()
    list(progress(["a", "b", "c"], stream=screen))
    assert "3/3" in screen.getvalue()


def test_without_a_total_the_count_is_shown() -> None:
    screen = Terminal()
    list(progress(iter(range(2)), stream=screen))
    assert "2 (" in screen.getvalue()


def test_stopping_early_clears_the_line() -> None:
    screen = Terminal()
    for item in progress(range(10), total=10, stream=screen):
        if item == 1:
            break
    assert screen.getvalue().rsplit("\r", 2)[-2].strip() == ""
