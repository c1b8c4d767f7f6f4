"""Time of `refundflow rebuild` on an archive of N received forms.

    python3 bench/bench_rebuild.py [--files 10000] [--keep DIR] [--workers 2 0]

The archive is made by the real pipeline (Processor.process_file with a --now style clock):
N/2 refunds, each filed by customer service and then signed by the technical department,
so half the replayed files are new forms and half are hand-offs with a history to patch.
The forms are made from one filled form by a zip-level patch of the order number and the
times (openpyxl would take longer than the benchmark itself). Then the ledger is rebuilt
the way `refundflow rebuild` does, timed, and checked to equal the one the pipeline wrote:
with one read-ahead worker a core, and with none (the sandboxed reads in turn). The CPU
column counts this process and every worker it started, so a loaded machine shows what the
rebuild itself costs. Goal (issue 9 / 11): 10,000 archived forms in under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from refundflow.breaches import BreachChecker  # noqa: E402
from refundflow.config import load_config  # noqa: E402
from refundflow.layout import FIELDS_BY_NAME  # noqa: E402
from refundflow.ledger import Ledger  # noqa: E402
from refundflow.processor import Outcome, Processor  # noqa: E402
from refundflow.rebuild import read_ahead_workers, rebuild_ledger  # noqa: E402
from refundflow.sandbox import ParserPool, stop_helper_processes  # noqa: E402
from refundflow.workspace import Workspace, init_workspace  # noqa: E402
from refundflow.xlsxpatch import Patch, apply_patch  # noqa: E402

from formfill import NEW_FORM, fill_form  # noqa: E402

TEMPLATE = REPO / "templates" / "退款申请表.xlsx"
SHEET = "退款申请表"
FIRST_DAY = dt.datetime(2026, 1, 5, 8, 0)
PER_DAY = 200  # refunds filed a day (form numbers have three digits)
EPOCH = dt.datetime(1899, 12, 30)


def serial(at: dt.datetime) -> float:
    return round((at - EPOCH).total_seconds() / 86400, 10)


def cell(name: str) -> str:
    return FIELDS_BY_NAME[name].cell


def filed(base: bytes, i: int, at: dt.datetime) -> bytes:
    """Refund ``i`` as customer service files it at ``at``."""
    values: dict[str, str | float] = {
        cell("order_no"): f"TK{i:011d}",
        cell("purchase_time"): serial(at - dt.timedelta(hours=20)),
        cell("reported_at"): serial(at - dt.timedelta(minutes=6)),
        cell("submitted_at"): serial(at - dt.timedelta(minutes=2)),
        cell("cs_date"): serial(at - dt.timedelta(minutes=1)),
    }
    return apply_patch(base, Patch(sheet=SHEET, cell_values=values))


def signed_by_tech(copy: bytes, at: dt.datetime) -> bytes:
    values: dict[str, str | float] = {
        cell("tech_opinion"): "核实无误",
        cell("tech_by"): "王五",
        cell("tech_date"): serial(at - dt.timedelta(minutes=1)),
        cell("tech_approval"): "同意",
    }
    return apply_patch(copy, Patch(sheet=SHEET, cell_values=values))


def build_archive(root: Path, files: int) -> None:
    """``files`` received files through the real pipeline: filed, then signed by tech."""
    init_workspace(Workspace(root, load_config(root)))
    workspace = Workspace(root, load_config(root))
    base = fill_form(TEMPLATE, NEW_FORM)
    now = FIRST_DAY
    with ParserPool(memory_mb=1024, timeout=20) as pool:
        processor = Processor(workspace, clock=lambda: now, pool=pool)
        try:
            refunds = files // 2
            for day_start in range(0, refunds, PER_DAY):
                day = FIRST_DAY + dt.timedelta(days=day_start // PER_DAY)
                batch = range(day_start, min(day_start + PER_DAY, refunds))
                for n, i in enumerate(batch):
                    now = day + dt.timedelta(minutes=2 * n)
                    path = workspace.inbox / f"退款申请-{i}.xlsx"
                    path.write_bytes(filed(base, i, now))
                    result = processor.process_file(path)
                    assert result.outcome is Outcome.ROUTED, result
                    copy = workspace.outbox("tech") / f"{result.form_no}.xlsx"
                    now += dt.timedelta(minutes=1)
                    signed = signed_by_tech(copy.read_bytes(), now)
                    copy.unlink()
                    path = workspace.inbox / copy.name
                    path.write_bytes(signed)
                    result = processor.process_file(path)
                    assert result.outcome is Outcome.ROUTED, result
                # Each role empties its folder at the end of the day.
                for left in workspace.outbox("cs").glob("*.xlsx"):
                    left.unlink()
            # As the watcher would have: the late hand-offs are recorded (rebuild keeps them).
            BreachChecker(processor.ledger, workspace.config, since=dt.datetime.min).check(now)
        finally:
            processor.close()


def snapshot(path: Path) -> tuple[list[object], list[object]]:
    ledger = Ledger(path)
    try:
        forms = [dataclasses.asdict(f) for f in ledger.all_forms()]
        events = [dataclasses.asdict(e) | {"id": None} for e in ledger.events()]
    finally:
        ledger.close()
    return forms, events


def timed_rebuild(workspace: Workspace, workers: int) -> tuple[int, float, float]:
    """(files, wall seconds, CPU seconds of this process and every worker it started)."""
    cpu = _cpu()
    started = time.perf_counter()
    config = workspace.config
    with ParserPool(memory_mb=config.parse_memory_mb, timeout=config.parse_timeout_seconds) as pool:
        _backup, count = rebuild_ledger(workspace, pool=pool, workers=workers)
    took = time.perf_counter() - started
    # The workers are the forkserver's children: their time is counted once it is reaped.
    stop_helper_processes()
    for old in workspace.ledger_path.parent.glob("ledger.sqlite3.*.bak"):
        old.unlink()
    return count, took, _cpu() - cpu


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the archive in this folder")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[read_ahead_workers(), 0], help="read-ahead"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not one warning per late hand-off
    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name) / "ws"
    else:
        root = args.keep
    try:
        if not (root / "refundsheets" / "ledger.sqlite3").exists():
            started = time.perf_counter()
            build_archive(root, args.files)
            print(f"archive of {args.files} files built in {time.perf_counter() - started:.1f} s")
        stop_helper_processes()  # the build's workers: their CPU time is not the rebuild's
        workspace = Workspace(root, load_config(root))
        before = snapshot(workspace.ledger_path)
        same = True
        print(
            f"{'read-ahead workers':>18} {'wall':>8} {'ms a file':>10} {'CPU, all processes':>19}"
        )
        for workers in args.workers:
            count, took, cpu = timed_rebuild(workspace, workers)
            same = same and snapshot(workspace.ledger_path) == before
            per_file = took / max(count, 1) * 1000
            print(f"{workers:>18} {took:>7.1f}s {per_file:>10.2f} {cpu:>18.1f}s")
        print(f"{count} files; rebuilt ledger identical: {same}; goal: 10,000 in under 10 s")
        return 0 if same else 1
    finally:
        if tmp is not None:
            shutil.rmtree(tmp.name, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
