"""What a scenario's ``[[dimensions]]`` cost the fold: double11-2020's batches folded with its
dimensions (Taobao Live channels per order; origin and Tmall Global per brand, with races) and
without them (``without_dimensions``), interleaved in one process, CPU seconds per whole fold.

Usage: python benchmarks/bench_dimensions.py [--scale S] [--repeats N]  (defaults 0.001, 5)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import one_core

import ticker
from ticker.scenario.dimensions import without_dimensions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.001)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    one_core()
    scenario = ticker.resolve("double11-2020")
    plain = without_dimensions(scenario)
    batches = list(ticker.generate(scenario, scale=args.scale))

    def fold(s: ticker.Scenario) -> float:
        agg = ticker.Aggregator(s)
        t = time.process_time()
        for batch in batches:
            agg.apply(batch)
        agg.finish()
        return time.process_time() - t

    fold(scenario), fold(plain)  # warm-up
    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(args.repeats):
        times["without"].append(fold(plain))
        times["with"].append(fold(scenario))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{sum(len(b) for b in batches):,} events; CPU s per fold")
    for name, values in times.items():
        print(f"{name:>8} dimensions: median {statistics.median(values):.3f} s "
              f"({', '.join(f'{v:.3f}' for v in values)})")
    ratio = statistics.median(times["with"]) / statistics.median(times["without"])
    print(f"with / without: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
