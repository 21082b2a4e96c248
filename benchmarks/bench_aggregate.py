"""The fold against one raw ``np.add.at`` pass and the per-event Python fold, side by side.

Usage: python benchmarks/bench_aggregate.py [EVENTS ...] [--repeats N]
(defaults: 2,500,000 — the README's default replay — 10,000,000 and 50,000,000 events, 5
repeats). For each size, ``ticker bench`` (see ticker/bench.py) folds the whole double11-2021
festival with the aggregator and makes one raw ``np.add.at`` pass over the same events in each
repeat, on one core; the medians and their ratio are printed, with the load average, since the
machine is shared and absolute figures move 2–3× between runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from _common import one_core

from ticker.bench import run_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", nargs="*", type=int, default=[2_500_000, 10_000_000, 50_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    one_core()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; one core; "
          f"median of {args.repeats}")
    print(f"{'events':>12} {'fold M/s':>9} {'np.add.at M/s':>14} {'fold / add.at':>14} "
          f"{'vs Python':>10}")
    for events in args.events:
        r = run_bench(events, repeats=args.repeats, python_events=100_000)
        print(f"{r.events:>12,} {r.aggregator_events_per_s / 1e6:>9.1f} "
              f"{r.raw_events_per_s / 1e6:>14.1f} {r.of_raw:>14.1%} {r.ratio:>9.0f}×", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
