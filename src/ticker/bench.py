"""``ticker bench``: the aggregator's throughput against the plain Python fold, in one run.

The stream is the whole double11-2021 festival (290,000 brands, every milestone rule of the
scenario on) generated at the scale that gives about ``events`` events, held in memory so only
the fold is timed. The vectorised aggregator folds all of it ``repeats`` times (median taken);
the per-event reference fold (:mod:`ticker.aggregate.reference`) folds an evenly spaced sample
of whole batches, as it is some hundred times slower. Both run on one core in this process.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from ticker.aggregate import Aggregator
from ticker.aggregate.reference import ReferenceFold
from ticker.engine import tune_allocator
from ticker.events import OrderBatch, rebatch
from ticker.scenario import make_plan, resolve
from ticker.scenario.generate import DEFAULT_BATCH_EVENTS, chunks

BENCH_SCENARIO = "double11-2021"


@dataclass
class BenchResult:
    events: int
    scale: float
    brands: int
    batch_size: int
    aggregator_events_per_s: float
    aggregator_runs_s: list[float]
    python_fold_events_per_s: float
    python_events: int

    @property
    def ratio(self) -> float:
        return self.aggregator_events_per_s / self.python_fold_events_per_s

    def to_json(self) -> dict:
        return {"events": self.events, "aggregator_events_per_s": round(self.aggregator_events_per_s),
                "python_fold_events_per_s": round(self.python_fold_events_per_s),
                "ratio": round(self.ratio, 1)}


def run_bench(events: int = 10_000_000, *, repeats: int = 3, python_events: int = 200_000,
              batch_size: int = DEFAULT_BATCH_EVENTS) -> BenchResult:
    tune_allocator()
    scenario = resolve(BENCH_SCENARIO)
    scale = min(10.0, events / (scenario.orders * (1 + scenario.refund_rate)))
    plan = make_plan(scenario, None, scale)
    batches = list(rebatch(chunks(plan), batch_size))
    total = sum(len(b) for b in batches)
    names = plan.catalogue.names
    runs = []
    for _ in range(repeats):
        agg = Aggregator(scenario, names, "bench")
        start = time.perf_counter()
        for batch in batches:
            agg.apply(batch)
        agg.finish()
        runs.append(time.perf_counter() - start)
    # The reference fold on batches spread over the festival, in stream order.
    sample = _spread(batches, python_events)
    ref = ReferenceFold(scenario, names, "bench")
    start = time.perf_counter()
    for batch in sample:
        ref.apply(batch)
    python_s = time.perf_counter() - start
    folded = sum(len(b) for b in sample)
    return BenchResult(total, scale, len(names), batch_size, total / statistics.median(runs), runs,
                       folded / python_s, folded)


def _spread(batches: list[OrderBatch], events: int) -> list[OrderBatch]:
    """About ``events`` events in slices of 10,000 taken evenly across the stream."""
    pieces = max(1, events // 10_000)
    step = max(1, len(batches) * 4 // pieces)
    out = []
    for i in range(0, len(batches) * 4, step):
        batch = batches[i // 4]
        lo = (i % 4) * len(batch) // 4
        out.append(batch.slice(lo, min(len(batch), lo + 10_000)))
        if sum(len(b) for b in out) >= events:
            break
    return out
