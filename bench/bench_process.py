"""Per-form cost of the watcher's path against the naive openpyxl pipeline.

    python3 bench/bench_process.py [--forms 200] [--target-ms 5] [--history 100000]

The watcher's path (sniff, sandboxed calamine read, validate, zip-level patch, archive,
ledger commit, delivery) is designed for about 5 ms a form on a 2-core machine, excluding the
stability delay. The naive pipeline is a full openpyxl load + save of each form. Exits 1 when
the median misses the target by more than 2x or is not faster than the naive pipeline.
``--history N`` first fills the ledger with N earlier files (forms, events, receipts,
deliveries), as after a year or two of use: the per-form cost must not grow with it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openpyxl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from refundflow.config import load_config  # noqa: E402
from refundflow.ledger import Ledger  # noqa: E402
from refundflow.processor import Processor  # noqa: E402
from refundflow.sandbox import ParserPool  # noqa: E402
from refundflow.workspace import Workspace, init_workspace  # noqa: E402

from formfill import NEW_FORM, fill_form  # noqa: E402

TEMPLATE = REPO / "templates" / "退款申请表.xlsx"


def forms(count: int) -> list[bytes]:
    return [fill_form(TEMPLATE, {**NEW_FORM, "order_no": f"TK{i:010d}"}) for i in range(count)]


def fill_history(ledger_path: Path, count: int) -> None:
    """``count`` closed forms of earlier days, each with its event, receipt and delivery."""
    Ledger(ledger_path).close()  # creates the schema
    db = sqlite3.connect(ledger_path)
    with db:
        for i in range(count):
            day = dt.date(2024, 1, 1) + dt.timedelta(days=i // 200)
            form_no, sha = f"TKD{day:%Y%m%d}-{i % 200 + 1:03d}", f"{i:064x}"
            event = db.execute(
                "INSERT INTO events (at, form_no, kind, file_name, file_sha)"
                " VALUES (?, ?, 'accepted', ?, ?)",
                (f"{day} 09:00:00", form_no, f"{form_no}.xlsx", sha),
            ).lastrowid
            receipt = db.execute(
                "INSERT INTO receipts (sha, name, size, mtime_ns, received_at, archive,"
                " event_id, state) VALUES (?, ?, 1, 0, ?, ?, ?, 'done')",
                (sha, f"{form_no}.xlsx", f"{day} 09:00:00", f"archive/{sha}", event),
            ).lastrowid
            db.execute(
                "INSERT INTO deliveries (receipt_id, source, dest, sha, done)"
                " VALUES (?, ?, ?, ?, 1)",
                (receipt, f"archive/sent/{sha}", f"归档/{form_no}.xlsx", sha),
            )
            db.execute(
                "INSERT INTO forms (form_no, order_no, step, step_since, created_at,"
                " closed_at, transitions, snapshot) VALUES (?, ?, 'closed', ?, ?, ?, 8, '{}')",
                (form_no, f"TKH{i:09d}", f"{day} 09:00:00", f"{day} 09:00:00", f"{day} 18:00:00"),
            )
    db.close()


def bench_refundflow(payloads: list[bytes], history: int = 0) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        init_workspace(Workspace(root, load_config(root)))
        workspace = Workspace(root, load_config(root))
        if history:
            fill_history(workspace.ledger_path, history)
        timings = []
        with ParserPool(memory_mb=1024, timeout=20) as pool:
            processor = Processor(
                workspace, clock=lambda: dt.datetime(2026, 11, 23, 9, 10), pool=pool
            )
            for i, data in enumerate(payloads):
                path = workspace.inbox / f"form-{i}.xlsx"
                path.write_bytes(data)
                start = time.perf_counter()
                processor.process_file(path)
                timings.append((time.perf_counter() - start) * 1000)
            processor.close()
        return timings


def bench_naive(payloads: list[bytes]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        timings = []
        for i, data in enumerate(payloads):
            start = time.perf_counter()
            wb = openpyxl.load_workbook(io.BytesIO(data))
            values = {}
            for name, dn in wb.defined_names.items():
                for sheet, ref in dn.destinations:
                    values[name] = wb[sheet][ref.replace("$", "").split(":")[0]].value
            wb["退款申请表"]["B2"] = f"TKD20261123-{i:03d}"
            history = wb.create_sheet("流转记录")
            history.append(["时间", "环节", "从", "到", "经办人", "文件"])
            wb.save(out / f"form-{i}.xlsx")
            timings.append((time.perf_counter() - start) * 1000)
        return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--forms", type=int, default=200)
    parser.add_argument("--target-ms", type=float, default=5.0)
    parser.add_argument("--history", type=int, default=0, help="earlier files in the ledger")
    args = parser.parse_args()
    payloads = forms(args.forms)
    # The first calls warm the sandbox worker up.
    ours = bench_refundflow(payloads, args.history)[5:]
    naive = bench_naive(payloads[: min(50, len(payloads))])
    for label, timings in (("refundflow process_file", ours), ("naive openpyxl", naive)):
        p95 = sorted(timings)[int(len(timings) * 0.95) - 1]
        median = statistics.median(timings)
        print(f"{label:26} median {median:7.2f} ms   p95 {p95:7.2f} ms   n={len(timings)}")
    median = statistics.median(ours)
    speedup = statistics.median(naive) / median
    print(f"speed-up over naive: {speedup:.1f}x; target {args.target_ms} ms a form")
    return 0 if median <= 2 * args.target_ms and speedup > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
