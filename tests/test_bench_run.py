"""bench/run.py end to end with --quick: the table's shape, never its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ROWS = [
    "per form, `process` on 3 drops, vs naive openpyxl",
    "per form, `process` on 3 drops, vs the floor",
    "burst of 3 forms, `process`",
    "drop → routed copy, 1 spaced drops (p50 / p95)",
    "first drop after `watch` starts",
    "burst of 3 forms, `watch` running",
    "`refundflow --help` start-up",
    "`refundflow status` start-up",
    "`refundflow status`, 100 forms in the ledger",
    "monthly workbook, 50 refunds (time; peak memory)",
    "rebuild the ledger from 3 archived forms",
    "watcher CPU for 3 spaced drops (scaled to 1,000)",
]


def test_quick_run_writes_one_table_with_every_row_the_machine_and_the_versions(
    tmp_path: Path,
) -> None:
    out = tmp_path / "RESULTS.md"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert "A `--quick` run" in text
    machine = next(line for line in text.splitlines() if line.startswith("- machine:"))
    assert f"{os.cpu_count()} cores" in machine and "GiB RAM" in machine
    versions = next(line for line in text.splitlines() if line.startswith("- versions:"))
    for name in ("Python", "openpyxl", "xlsxwriter", "python-calamine", "pandas"):
        assert name in versions
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == (
        "| measurement | refundflow | compared with | ratio | goal | goal met? | why / note |"
    )
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table[2:]]
    assert [row[0] for row in rows] == ROWS
    assert all(len(row) == 7 for row in rows)
    # a row with a goal is not judged on tiny sizes; the same table is printed
    assert {row[5] for row in rows if row[4]} == {"not judged (--quick)"}
    assert "\n".join(table) in done.stdout
