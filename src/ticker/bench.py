"""``ticker bench``: the aggregator's throughput against raw numpy and the plain Python fold.

The stream is the whole double11-2021 festival (290,000 brands, every milestone rule of the
scenario on) generated at the scale that gives about ``events`` events, held in memory so only
the fold is timed. Each repeat folds all of it with the aggregator and then makes one raw
``np.add.at`` pass of the same amounts into a 290,000-brand int64 array — the floor of any
per-brand fold in numpy — three times, as it is short — so the two are measured side by side
whatever else the machine is doing; the medians and their ratio are the figures (the ratio in
CPU seconds of this process, which leave out the turns a shared machine gives to others). The
per-event reference fold (:mod:`ticker.aggregate.reference`) folds an evenly spaced sample of
whole batches, as it is some hundred times slower. All of it runs on one core in this process.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ticker.aggregate import Aggregator
from ticker.aggregate.reference import ReferenceFold
from ticker.engine import tune_allocator
from ticker.events import OrderBatch, rebatch
from ticker.scenario import make_plan, resolve
from ticker.scenario.generate import DEFAULT_BATCH_EVENTS, chunks

if TYPE_CHECKING:
    from ticker.peers import PeerResult

BENCH_SCENARIO = "double11-2021"


@dataclass
class BenchResult:
    events: int
    scale: float
    brands: int
    batch_size: int
    aggregator_events_per_s: float
    aggregator_runs_s: list[float]
    raw_events_per_s: float
    raw_runs_s: list[float]
    python_fold_events_per_s: float
    python_events: int
    peers: list[PeerResult] = field(default_factory=list)  # with --peers
    #: CPU seconds of this process for each fold and each raw pass: what the ratio is taken
    #: from, since on a shared machine the wall clock also counts the other processes' turns
    aggregator_cpu_s: list[float] = field(default_factory=list)
    raw_cpu_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """The aggregator against the per-event Python fold."""
        return self.aggregator_events_per_s / self.python_fold_events_per_s

    @property
    def of_raw(self) -> float:
        """The aggregator's speed as a fraction of one raw ``np.add.at`` pass (1.0 = as fast),
        in CPU seconds (medians) when they were measured."""
        if self.aggregator_cpu_s and self.raw_cpu_s:
            return statistics.median(self.raw_cpu_s) / statistics.median(self.aggregator_cpu_s)
        return self.aggregator_events_per_s / self.raw_events_per_s

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "aggregator_events_per_s": round(self.aggregator_events_per_s),
                "raw_add_at_events_per_s": round(self.raw_events_per_s),
                "of_raw": round(self.of_raw, 3),
                "python_fold_events_per_s": round(self.python_fold_events_per_s),
                "ratio": round(self.ratio, 1),
                **({"peers": {p.name: {"version": p.version, "same_answers": p.same,
                                       "events_per_s": round(self.events / statistics.median(p.runs_s))
                                       if p.runs_s else None}
                              for p in self.peers}} if self.peers else {})}


def run_bench(events: int = 10_000_000, *, repeats: int = 3, python_events: int = 200_000,
              batch_size: int = DEFAULT_BATCH_EVENTS, peers: bool = False) -> BenchResult:
    tune_allocator()
    scenario = resolve(BENCH_SCENARIO)
    scale = min(10.0, events / (scenario.orders * (1 + scenario.refund_rate)))
    plan = make_plan(scenario, None, scale)
    batches = list(rebatch(chunks(plan), batch_size))
    total = sum(len(b) for b in batches)
    names = plan.catalogue.names
    runs, raw_runs, cpu, raw_cpu = [], [], [], []
    for _ in range(repeats):
        agg = Aggregator(scenario, "bench")
        start, start_cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            agg.apply(batch)
        agg.finish()
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        for _ in range(3):  # a raw pass is short, so one preemption or cold cache moves it far
            start_cpu = time.process_time()
            raw_runs.append(raw_pass(batches, len(names)))
            raw_cpu.append(time.process_time() - start_cpu)
    # The reference fold on batches spread over the festival, in stream order.
    sample = _spread(batches, python_events)
    ref = ReferenceFold(scenario, names, "bench")
    start = time.perf_counter()
    for batch in sample:
        ref.apply(batch)
    python_s = time.perf_counter() - start
    folded = sum(len(b) for b in sample)
    result = BenchResult(total, scale, len(names), batch_size, total / statistics.median(runs),
                         runs, total / statistics.median(raw_runs), raw_runs, folded / python_s,
                         folded, aggregator_cpu_s=cpu, raw_cpu_s=raw_cpu)
    if peers:
        from ticker.peers import run_peers, ticker_answers

        result.peers = run_peers(batches, ticker_answers(agg, names),
                                 list(scenario.milestones.brand_thresholds_minor), repeats)
    return result


def raw_pass(batches: list[OrderBatch], brands: int) -> float:
    """Seconds for one ``np.add.at`` of every batch's amounts into per-brand int64 totals."""
    totals = np.zeros(brands, np.int64)
    start = time.perf_counter()
    for batch in batches:
        np.add.at(totals, batch.brand, batch.amount_minor)
    return time.perf_counter() - start


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


def print_table(result: BenchResult) -> None:
    """``ticker bench``'s table: each fold's events/s against one raw pass and the Python fold."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"aggregator throughput, one core: double11-2021 at scale {result.scale:.4g}, "
                  f"{result.brands:,} brands, every milestone rule on")
    table.add_column("fold")
    table.add_column("events", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("vs one np.add.at", justify="right")
    table.add_column("vs Python", justify="right")
    runs = ", ".join(f"{s:.2f}" for s in result.aggregator_runs_s)
    raw = ", ".join(f"{s:.3f}" for s in result.raw_runs_s)
    table.add_row(f"ticker's aggregator (median of {runs} s)", f"{result.events:,}",
                  f"{result.aggregator_events_per_s:,.0f}", f"{result.of_raw:.0%}",
                  f"{result.ratio:,.0f}×")
    table.add_row(f"one raw np.add.at pass, brand GMV only (median of {raw} s)",
                  f"{result.events:,}", f"{result.raw_events_per_s:,.0f}", "100%",
                  f"{result.raw_events_per_s / result.python_fold_events_per_s:,.0f}×")
    table.add_row("per-event Python fold", f"{result.python_events:,}",
                  f"{result.python_fold_events_per_s:,.0f}",
                  f"{result.python_fold_events_per_s / result.raw_events_per_s:.1%}", "1×")
    for peer in result.peers:  # --peers: ticker's speed over each peer's, answers compared
        if not peer.runs_s:
            table.add_row(f"{peer.name}: {peer.note}", "", "", "", "")
            continue
        rate = result.events / statistics.median(peer.runs_s)
        answers = "same answers" if peer.same else peer.note
        table.add_row(f"{peer.name} {peer.version}, whole stream at once ({answers}; ticker "
                      f"{result.aggregator_events_per_s / rate:.1f}× faster)", f"{result.events:,}",
                      f"{rate:,.0f}", f"{rate / result.raw_events_per_s:.0%}",
                      f"{rate / result.python_fold_events_per_s:,.0f}×")
    Console(width=max(120, Console().width)).print(table)
