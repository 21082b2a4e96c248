"""A recorded run's history: check it end to end (``ticker verify``) and read it at any moment
(``ticker state --at``).

Both rest on invariant 3 of the design: state = fold(log). ``verify`` re-folds the whole log with
a fresh aggregator and compares, at every snapshot's seq, the fold with the snapshot, and at the
end with the summary and the milestone file. ``state_at`` starts from the newest snapshot taken
before the moment asked for and folds the log up to it, so it reads at most one snapshot interval
of events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from ticker.aggregate import AggregateState, Aggregator, SnapshotError
from ticker.errors import TickerError
from ticker.eventlog import EventLog, verify_log
from ticker.events import OrderBatch, rebatch
from ticker.rundir import RunDir, RunDirError

_BATCH = 1 << 20


class HistoryError(TickerError, ValueError):
    """The run cannot be read at all (one line for the user)."""


def _open(run_dir: RunDir) -> tuple[dict, Aggregator, EventLog]:
    try:
        meta, scenario, log = run_dir.open_recorded()
        names = run_dir.brand_names(scenario)
    except RunDirError as exc:
        raise HistoryError(str(exc)) from None
    return meta, Aggregator(scenario, names, meta["run"]), log


def _cut_at(batches: Iterator[OrderBatch], seqs: list[int]) -> Iterator[OrderBatch]:
    """Split batches so that every seq in ``seqs`` is a batch boundary."""
    marks = iter(sorted(seqs))
    mark = next(marks, None)
    for batch in batches:
        while mark is not None and batch.first_seq < mark < batch.end_seq:
            cut = mark - batch.first_seq
            yield batch.slice(0, cut)
            batch = batch.slice(cut, len(batch))
            mark = next(marks, None)
        while mark is not None and mark <= batch.first_seq:
            mark = next(marks, None)
        yield batch


def verify_run(run_dir: RunDir) -> list[str]:
    """Every problem found, one line each; an empty list means the run is consistent."""
    problems = [str(p) for p in verify_log(run_dir.log)]
    if problems:
        return problems  # the frames are the ground truth: nothing else can be checked on them
    meta, agg, log = _open(run_dir)
    end = log.next_seq
    if meta.get("events") not in (None, end) and meta.get("state") == "finished":
        problems.append(f"{run_dir.log}: holds {end:,} events, run.json says {meta['events']:,}")
    snapshots = run_dir.snapshot_seqs()
    for seq in snapshots:
        if seq > end:
            problems.append(f"{run_dir.snapshot_path(seq)}: covers seq {seq:,}, beyond the log's "
                            f"end ({end:,})")
    pending = [s for s in snapshots if 0 < s < end]
    for batch in _cut_at(rebatch(log.read(0), _BATCH), pending):
        agg.apply(batch)
        if pending and agg.state.next_seq == pending[0]:
            problems += _compare_snapshot(run_dir, pending.pop(0), agg.state, meta["run"])
    agg.finish()
    if end in snapshots:
        problems += _compare_snapshot(run_dir, end, agg.state, meta["run"])
    problems += _compare_derived(run_dir, agg)
    log.close()
    return problems


def _compare_snapshot(run_dir: RunDir, seq: int, state: AggregateState, run: str) -> list[str]:
    try:
        saved = run_dir.load_snapshot(seq, run)
    except SnapshotError as exc:
        return [str(exc)]
    differ = saved.differences(state)
    if differ:
        return [f"{run_dir.snapshot_path(seq)}: differs from the re-folded log in "
                f"{', '.join(differ)}"]
    return []


def _compare_derived(run_dir: RunDir, agg: Aggregator) -> list[str]:
    problems = []
    zone = agg.zone
    derived = [m.to_json(zone) for m in agg.state.milestones]
    if run_dir.milestones_path.is_file():
        saved = run_dir.read_milestones()
        if saved != derived:
            first = next((i for i, (a, b) in enumerate(zip(saved, derived, strict=False)) if a != b),
                         min(len(saved), len(derived)))
            problems.append(f"{run_dir.milestones_path}: differs from the re-derived milestones "
                            f"at line {first + 1} ({len(saved)} saved, {len(derived)} derived)")
    summary = run_dir.summary()
    if summary is None:
        problems.append(f"{run_dir.summary_path}: missing (the run did not finish)")
        return problems
    peak, _ = agg.peak()
    expected = {"orders": agg.state.orders, "refunds": agg.state.refunds,
                "events": agg.state.next_seq, "gmv_minor": agg.state.gmv_minor,
                "peak_orders_per_s": peak,
                "brands_over": {str(t): c for t, c in agg.brands_over().items()},
                "milestones": derived}
    for key, value in expected.items():
        if summary.get(key) != value:
            problems.append(f"{run_dir.summary_path}: {key} is {_short(summary.get(key))}, the "
                            f"re-folded log gives {_short(value)}")
    return problems


def _short(value) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else f"{text[:57]}..."


@dataclass
class StateAt:
    at_us: int
    aggregator: Aggregator
    from_snapshot: int  # seq of the snapshot it started from (0: from the start)
    folded: int  # events folded from the log on top of it


def state_at(run_dir: RunDir, at_us: int) -> StateAt:
    """The state as of ``at_us`` (every event strictly before it), from the newest earlier
    snapshot plus the log; O(events since that snapshot)."""
    meta, agg, log = _open(run_dir)
    start = 0
    for seq in reversed(run_dir.snapshot_seqs()):
        if seq > log.next_seq:
            continue
        try:
            state = run_dir.load_snapshot(seq, meta["run"])
        except SnapshotError:
            continue
        if state.next_seq and state.last_time_us < at_us and state.open_second >= 0:
            agg = Aggregator(agg.scenario, agg.brand_names, meta["run"], state)
            start = seq
            break
    folded = 0
    for batch in rebatch(log.read(start), _BATCH):
        stop = int(np.searchsorted(batch.event_time, at_us, side="left"))
        if stop:
            agg.apply(batch.slice(0, stop))
            folded += stop
        if stop < len(batch):
            break
    log.close()
    return StateAt(at_us, agg, start, folded)
