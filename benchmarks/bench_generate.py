"""Generator throughput: events per second on one core, at the default batch size.

Usage: python benchmarks/bench_generate.py [--scenario NAME] [--scale S] [--repeat N]

Each repetition times ``generate(scenario, scale=S)`` end to end (the plan, every chunk, and the
re-cut into batches of ``DEFAULT_BATCH_EVENTS``), consuming the batches without keeping them.
The plan's share is shown separately: it is O(seconds + brands), paid once per run. The target
is 30 million events/s for double11-2021 at scale 0.01 (issue 14). The machine is shared: the
rate is also given per CPU second of this process (``time.process_time``), which other
processes' load moves much less than the wall clock; quote the median of several repetitions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _common import one_core

from ticker.scenario import generate, make_plan, resolve
from ticker.scenario.generate import DEFAULT_BATCH_EVENTS

TARGET_EVENTS_PER_S = 30e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="double11-2021")
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    one_core()
    scenario = resolve(args.scenario)

    print(f"generate({args.scenario}, scale={args.scale}), batch size {DEFAULT_BATCH_EVENTS:,}, "
          f"one core (cpu {sorted(os.sched_getaffinity(0))[0]})")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'run':>4} {'events':>12} {'plan s':>8} {'total s':>8} {'M events/s':>11} "
          f"{'per CPU s':>10}")
    rates, cpu_rates = [], []
    for run in range(1, args.repeat + 1):
        t0 = time.perf_counter()
        make_plan(scenario, scale=args.scale)
        plan_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        events = 0
        for batch in generate(scenario, scale=args.scale):
            events += len(batch)
        total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        rates.append(events / total_s)
        cpu_rates.append(events / cpu_s)
        print(f"{run:>4} {events:>12,} {plan_s:>8.3f} {total_s:>8.3f} {rates[-1] / 1e6:>11.2f} "
              f"{cpu_rates[-1] / 1e6:>10.2f}")
    median = statistics.median(rates)
    print(f"median {median / 1e6:.2f} M events/s (min {min(rates) / 1e6:.2f}, "
          f"max {max(rates) / 1e6:.2f}), {statistics.median(cpu_rates) / 1e6:.2f} M per CPU "
          f"second; target {TARGET_EVENTS_PER_S / 1e6:.0f} M: "
          f"{'met' if median >= TARGET_EVENTS_PER_S else 'NOT met'}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
