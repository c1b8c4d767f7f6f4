"""Time sniffing and reading one filled refund form (template-sized), outside the sandbox.

    python3 bench/bench_read.py [--repeat 5] [--sniff-target-us 1000] [--read-target-ms 20]

Both run once for every dropped workbook. The targets are the bounds the unit tests used to
assert (a timed assertion fails on a busy CI machine without any defect, so they live here);
they catch gross regressions only: the 2-core development machine measures about 0.2 ms a
sniff and 1.4 ms a read. Exits 1 when the best time per call misses either target.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from refundflow.forms import read_form  # noqa: E402
from refundflow.sniff import FileKind, sniff  # noqa: E402

from formfill import NEW_FORM, fill_form  # noqa: E402

TEMPLATE = REPO / "templates" / "退款申请表.xlsx"


def best_per_call(call: Callable[[], object], number: int, repeat: int) -> float:
    """Seconds per call, the best of ``repeat`` runs of ``number`` calls (least disturbed)."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sniff-target-us", type=float, default=1000.0)
    parser.add_argument("--read-target-ms", type=float, default=20.0)
    args = parser.parse_args()
    data = fill_form(TEMPLATE, NEW_FORM)
    assert sniff(data, name="form.xlsx").kind is FileKind.XLSX
    read_form(data)  # warm up: imports and caches

    sniff_s = best_per_call(lambda: sniff(data, name="form.xlsx"), 200, args.repeat)
    read_s = best_per_call(lambda: read_form(data), 20, args.repeat)
    print(f"form of {len(data):,} bytes")
    print(f"sniff:     {sniff_s * 1e6:8.0f} us per call (target {args.sniff_target_us:.0f} us)")
    print(f"read_form: {read_s * 1e3:8.2f} ms per call (target {args.read_target_ms:.0f} ms)")
    ok = sniff_s * 1e6 <= args.sniff_target_us and read_s * 1e3 <= args.read_target_ms
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
