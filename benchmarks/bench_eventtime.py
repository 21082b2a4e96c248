"""The fold of an arrival-ordered stream against the ordered one, side by side in one run.

Usage: python benchmarks/bench_eventtime.py [--scale S] [--profile NAME|FILE] [--repeats N]
       [--batch-size N]
(defaults: double11-2021 at 0.001 — 2.5 million orders, the README's replay — the bundled
``realistic`` profile, 5 repeats, 1,048,576-event batches). Both streams are generated once, in
memory, before timing; each repeat folds the ordered stream with ``Aggregator`` and the
arrival-ordered one (same orders, plus its redeliveries) with ``EventTimeAggregator``, on one
core, alternating so both see the same machine load, with the allocator tuned as a replay
tunes it (``engine.tune_allocator``). Prints the medians, their ratio, the
event-time figures (duplicates, late orders, corrections) and the reorder buffer's largest
size, with the load average: the machine is shared and absolute figures move 2–3× between runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _common import one_core

from ticker.aggregate import Aggregator, EventTimeAggregator, EventTimeConfig
from ticker.engine import tune_allocator
from ticker.events import OrderBatch, rebatch
from ticker.scenario import make_plan, resolve
from ticker.scenario.disorder import arrive, load_profile
from ticker.scenario.generate import chunks


def fold(aggregator, stream: OrderBatch, batch_size: int) -> float:
    start = time.perf_counter()
    for batch in rebatch([stream], batch_size):
        aggregator.apply(batch)
    aggregator.finish()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="double11-2021")
    parser.add_argument("--scale", type=float, default=0.001)
    parser.add_argument("--profile", default="realistic")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    one_core()
    tune_allocator()  # as every replay does: the batches' temporaries stay on the heap
    scenario = resolve(args.scenario)
    profile = load_profile(args.profile)
    plan = make_plan(scenario, None, args.scale)
    names = plan.catalogue.names
    ordered = OrderBatch.concat(chunks(plan))
    arrived = OrderBatch.concat(arrive(chunks(plan), profile, plan.seed))
    config = EventTimeConfig.from_profile(profile)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; one core; "
          f"median of {args.repeats}; {args.scenario} at scale {args.scale:g}; profile "
          f"{profile.name}; batches of {args.batch_size:,}")
    plain, event_time = [], []
    agg = None
    for _ in range(args.repeats):
        plain.append(fold(Aggregator(scenario, "bench", brand_names=names), ordered, args.batch_size))
        agg = EventTimeAggregator(scenario, names, "bench", config)
        event_time.append(fold(agg, arrived, args.batch_size))
    a, b = statistics.median(plain), statistics.median(event_time)
    print(f"{'stream':<34} {'events':>11} {'median s':>9} {'M events/s':>11}")
    print(f"{'ordered (Aggregator)':<34} {len(ordered):>11,} {a:>9.3f} {len(ordered) / a / 1e6:>11.2f}")
    print(f"{'arrival-ordered (EventTime…)':<34} {len(arrived):>11,} {b:>9.3f} "
          f"{len(arrived) / b / 1e6:>11.2f}")
    print(f"arrival-ordered / ordered events/s: {(len(arrived) / b) / (len(ordered) / a):.1%}")
    figures = agg.report()
    print(f"duplicates dropped {figures['duplicates_dropped']:,}; late orders "
          f"{figures['late_orders']:,} (max {figures['late_max_s']:.1f} s behind); corrections "
          f"{figures['corrections']}; reorder buffer at most {figures['reorder_buffer_max']:,} "
          f"events; duplicate window at the end {figures['dedup_window']:,} keys")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
