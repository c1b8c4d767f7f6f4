"""Overhead of one call into the sandboxed parser worker (ParserPool.run).

    python3 bench/bench_sandbox.py [--calls 2000] [--target-us 1000]

Every dropped workbook is read in the worker, so its round trip is on the per-form path.
Exits 1 when the median round trip exceeds the target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from refundflow.sandbox import ParserPool


def echo(value: object) -> object:
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--target-us", type=float, default=1000.0)
    args = parser.parse_args()
    samples = []
    with ParserPool(memory_mb=256, timeout=10) as pool:
        pool.run(echo, "warm up")
        for i in range(args.calls):
            start = time.perf_counter()
            pool.run(echo, i)
            samples.append((time.perf_counter() - start) * 1e6)
    median = statistics.median(samples)
    p99 = sorted(samples)[int(len(samples) * 0.99) - 1]
    print(f"ParserPool.run round trip: median {median:.0f} us, p99 {p99:.0f} us, n={args.calls}")
    return 0 if median <= args.target_us else 1


if __name__ == "__main__":
    sys.exit(main())
