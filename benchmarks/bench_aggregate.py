"""The fold against one raw ``np.add.at`` pass and the per-event Python fold, side by side.

Usage: python benchmarks/bench_aggregate.py [EVENTS ...] [--repeats N]
(defaults: 2,500,000 — the README's default replay — 10,000,000 and 50,000,000 events, 5
repeats). For each size, ``ticker bench`` (see ticker/bench.py) folds the whole double11-2021
festival with the aggregator and makes one raw ``np.add.at`` pass over the same events in each
repeat (three raw passes, as one is short), on one core; the medians of this process's CPU
seconds and their ratio are printed, with the load average, since the machine is shared and
absolute figures move 2–3× between runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    print("events/s per CPU second of this process (the ratio's basis); wall-clock fold in brackets")
    print(f"{'events':>12} {'fold M/s':>9} {'np.add.at M/s':>14} {'fold / add.at':>14} "
          f"{'vs Python':>10} {'(fold, wall)':>13}")
    for events in args.events:
        r = run_bench(events, repeats=args.repeats, python_events=100_000)
        fold = r.events / statistics.median(r.aggregator_cpu_s) / 1e6
        raw = r.events / statistics.median(r.raw_cpu_s) / 1e6
        print(f"{r.events:>12,} {fold:>9.1f} {raw:>14.1f} {r.of_raw:>14.1%} {r.ratio:>9.0f}× "
              f"{r.aggregator_events_per_s / 1e6:>10.1f} M/s", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
