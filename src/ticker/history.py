"""A recorded run's history: check it end to end (``ticker verify``) and read it at any moment
(``ticker state --at``).

Both rest on invariant 3 of the design: state = fold(log), and on the one way to compute it,
:meth:`RunDir.restore`. ``verify`` re-folds the whole log with a fresh aggregator and compares, at
every snapshot's seq, the fold with the snapshot, and at the end with the summary and the
milestone file. ``state_at`` starts from the newest snapshot taken before the moment asked for
and folds the log up to it, so it reads at most one snapshot interval of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ticker.aggregate import AggregateState, Aggregator, SnapshotError
from ticker.aggregate.eventtime import EventTimeAggregator, EventTimeState
from ticker.clock import format_time
from ticker.errors import TickerError
from ticker.eventlog import EventLog, verify_log
from ticker.money import format_money, money_label
from ticker.rundir import RunDir, RunDirError
from ticker.scenario import Scenario, ScenarioError


class HistoryError(TickerError, ValueError):
    """The run cannot be read at all (one line for the user)."""


def verify_run(run_dir: RunDir, *, repair: bool = False) -> list[str]:
    """Every problem found, one line each (file, offset or line, what was expected); an empty
    list means the run is consistent. Every file of the run directory is read and checked,
    whatever else is wrong, so one pass names every damage.

    ``repair``: rebuild what is derived from the log — snapshots that differ or do not read,
    ``milestones.jsonl``, ``summary.json`` — from a re-fold of the log (the truth); each file
    rewritten is reported as a line starting ``repaired``. The log, ``run.json`` and
    ``scenario.toml`` are not derived: damage to them is reported, never "repaired".
    """
    problems = [str(p) for p in verify_log(run_dir.log)] if run_dir.log.is_dir() else [
        f"{run_dir.log}: missing (expected the event log's segments)"]
    try:
        meta = run_dir.meta()
    except RunDirError as exc:
        return [*problems, str(exc)]
    try:
        scenario = run_dir.scenario(meta)
        names = run_dir.brand_names(scenario)
    except (ScenarioError, RunDirError) as exc:
        return [*problems, *exc.lines()]
    if problems:  # the log is the truth: with it damaged, only the derived files' form is checked
        problems += _readable_derived(run_dir, meta["run"])
        if repair:
            problems.append(f"{run_dir.path}: not repaired: the log itself is damaged, and "
                            "everything else is derived from it")
        return problems
    log = EventLog(run_dir.log, readonly=True)
    end = log.next_seq
    if meta.get("events") not in (None, end) and meta.get("state") == "finished":
        problems.append(f"{run_dir.log}: holds {end:,} events, run.json says {meta['events']:,} "
                        "(the log is missing the rest: resume the run to regenerate it)")
    snapshots = run_dir.snapshot_seqs()
    for seq in snapshots:
        if seq > end:
            problems.append(f"{run_dir.snapshot_path(seq)}: covers seq {seq:,}, beyond the log's "
                            f"end ({end:,})")
            if repair:
                run_dir.snapshot_path(seq).unlink()
                problems.append(f"repaired {run_dir.snapshot_path(seq)}: removed")

    def check(seq: int, agg: Aggregator | EventTimeAggregator) -> None:
        problems.extend(_check_snapshot(run_dir, seq, agg.state, meta["run"], repair))

    # The whole log re-folded from the start (the snapshots are what is checked), each snapshot
    # compared as the fold passes its seq.
    agg = run_dir.restore(trust_snapshots=False, stops=[s for s in snapshots if 0 < s < end],
                          at_stop=check, log=log, scenario=scenario, brand_names=names).aggregator
    # A snapshot at the log's end was taken either mid-run (a crash right after it, or a
    # checkpoint interval ending there) or after the run's end (finish() closed the last
    # second): it is right if it matches the fold either before or after finish().
    at_end = None
    if meta.get("state") == "finished" and end > 0 and end not in snapshots:
        problems.append(f"{run_dir.snapshot_path(end)}: missing (a finished run keeps its final "
                        "state there)")
        if repair:
            snapshots.append(end)
            at_end = ["missing"]
    if end in snapshots and end > 0 and at_end is None:
        at_end = _check_snapshot(run_dir, end, agg.state, meta["run"], repair=False)
    agg.finish()
    if at_end:  # (repaired only as the finished run's: a crashed run's is rewritten by resume)
        problems += _check_snapshot(run_dir, end, agg.state, meta["run"],
                                    repair and meta.get("state") == "finished")
    problems += _compare_derived(run_dir, agg, repair)
    log.close()
    return problems


def _readable_derived(run_dir: RunDir, run: str) -> list[str]:
    """What can be said of the derived files without the log: do they read at all."""
    problems = []
    for seq in run_dir.snapshot_seqs():
        try:
            run_dir.load_snapshot(seq, run)
        except SnapshotError as exc:
            problems.append(str(exc))
    for read in (run_dir.read_milestones, run_dir.summary):
        try:
            read()
        except RunDirError as exc:
            problems.append(str(exc))
    return problems


def _check_snapshot(run_dir: RunDir, seq: int, state: AggregateState | EventTimeState, run: str,
                    repair: bool) -> list[str]:
    problems = _compare_snapshot(run_dir, seq, state, run)
    if problems and repair:
        run_dir.write_snapshot(state, run)
        problems.append(f"repaired {run_dir.snapshot_path(seq)}: rewritten from the log")
    return problems


def _compare_snapshot(run_dir: RunDir, seq: int, state: AggregateState | EventTimeState,
                      run: str) -> list[str]:
    try:
        saved = run_dir.load_snapshot(seq, run)
    except SnapshotError as exc:
        return [str(exc)]
    differ = saved.differences(state)
    if differ:
        return [f"{run_dir.snapshot_path(seq)}: differs from the re-folded log in "
                f"{', '.join(differ)}"]
    return []


def _compare_derived(run_dir: RunDir, agg: Aggregator | EventTimeAggregator,
                     repair: bool = False) -> list[str]:
    problems = []
    zone = agg.zone
    derived = [m.to_json(zone) for m in agg.state.milestones]
    finished = run_dir.meta().get("state") == "finished"
    try:
        saved = run_dir.read_milestones() if run_dir.milestones_path.is_file() else None
        if saved is None and finished:
            problems.append(f"{run_dir.milestones_path}: missing (a finished run lists its "
                            "milestones there)")
    except RunDirError as exc:
        problems.append(str(exc))
        saved = []
    if saved is not None and saved != derived and not problems:
        first = next((i for i, (a, b) in enumerate(zip(saved, derived, strict=False)) if a != b),
                     min(len(saved), len(derived)))
        problems.append(f"{run_dir.milestones_path}: line {first + 1}: differs from the "
                        f"re-derived milestones ({len(saved)} saved, {len(derived)} derived)")
    if problems and repair:
        run_dir.write_milestones(agg.state.milestones, zone)
        problems.append(f"repaired {run_dir.milestones_path}: rewritten from the log")
    try:
        summary = run_dir.summary()
    except RunDirError as exc:
        summary = None
        problems.append(str(exc))
        if repair:
            problems += _rebuild_summary(run_dir, agg, {})
        return problems
    if summary is None:
        problems.append(f"{run_dir.summary_path}: missing (the run did not finish)")
        if repair and run_dir.meta().get("state") == "finished":
            problems += _rebuild_summary(run_dir, agg, {})
        return problems
    from ticker.engine import summary_of

    meta = run_dir.meta()
    expected = summary_of(agg, meta["run"], meta["seed"], meta["scale"], wall_s=None,
                          events_per_s=None).to_json()
    for volatile in ("wall_s", "events_per_s"):  # the wall clock's, not the log's
        if not isinstance(summary.get(volatile), int | float | None):
            problems.append(f"{run_dir.summary_path}: {volatile}: expected a number, found "
                            f"{_short(summary.get(volatile))}")
        del expected[volatile]
    wrong = [key for key, value in expected.items() if summary.get(key) != value]
    for key in wrong:
        problems.append(f"{run_dir.summary_path}: {key} is {_short(summary.get(key))}, the "
                        f"re-folded log gives {_short(expected[key])}")
    if wrong and repair:
        problems += _rebuild_summary(run_dir, agg, summary)
    return problems


def _rebuild_summary(run_dir: RunDir, agg: Aggregator | EventTimeAggregator,
                     old: dict[str, Any]) -> list[str]:
    """summary.json from the fold; what the fold cannot know (wall time, MQTT delivery) is
    kept from the old summary when it still reads."""
    from ticker.engine import summary_of

    meta = run_dir.meta()
    if meta.get("state") != "finished":
        return [f"{run_dir.summary_path}: not rebuilt: the run did not finish (resume it)"]
    summary = summary_of(agg, meta["run"], meta["seed"], meta["scale"], wall_s=old.get("wall_s"),
                         events_per_s=old.get("events_per_s")).to_json()
    for key in ("mqtt", "ingest"):
        if key in old:
            summary[key] = old[key]
    run_dir.write_summary(summary)
    return [f"repaired {run_dir.summary_path}: rewritten from the log"]


def _short(value: object) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else f"{text[:57]}..."


@dataclass
class StateAt:
    at_us: int
    aggregator: Aggregator | EventTimeAggregator
    from_snapshot: int  # seq of the snapshot it started from (0: from the start)
    folded: int  # events folded from the log on top of it


def state_at(run_dir: RunDir, at_us: int) -> StateAt:
    """The state as of ``at_us`` (every event strictly before it; an arrival-ordered run: when its
    watermark reached it), from the newest earlier snapshot plus the log; O(events since that
    snapshot)."""
    try:
        restored = run_dir.restore(before_time=at_us)
    except RunDirError as exc:
        raise HistoryError(str(exc)) from None
    return StateAt(at_us, restored.aggregator, restored.from_snapshot, restored.folded)


def render_state(found: StateAt, scenario: Scenario, *, top: int = 10, last: int = 5,
                 as_json: bool = False) -> str:
    """``ticker state``'s output: the totals, brands over each threshold, the top brands and the
    latest milestones as of ``found.at_us`` (or all of it as JSON)."""
    at_us = found.at_us
    agg = found.aggregator
    st = agg.state
    board = agg.leaderboard(top)
    milestones = st.milestones
    if as_json:
        return orjson.dumps({
            "run": agg.run, "at": format_time(at_us, scenario.zone), "events": st.next_seq,
            "orders": st.orders, "refunds": st.refunds, "gmv_minor": st.gmv_minor,
            "gmv": format_money(st.gmv_minor, scenario.currency),
            "top_brands": [{"rank": i, "brand": b, "gmv_minor": g} for i, (b, g) in
                           enumerate(board, start=1)],
            "brands_over": {str(t): c for t, c in agg.brands_over().items()},
            "milestones": [m.to_json(scenario.zone) for m in milestones],
        }, option=orjson.OPT_INDENT_2).decode()
    out = [f"{agg.run} as of {format_time(at_us, scenario.zone)}"]
    out.append(f"  GMV      {format_money(st.gmv_minor, scenario.currency)} "
               f"({st.gmv_minor:,} minor units)")
    out.append(f"  orders   {st.orders:,} placed, {st.refunds:,} refunded ({st.next_seq:,} events)")
    for threshold, count in agg.brands_over().items():
        out.append(f"  brands over {money_label(threshold, scenario.currency)}: {count:,}")
    out.append("  top brands:")
    for rank, (brand, gmv) in enumerate(board, start=1):
        out.append(f"    {rank:>2}. {brand:<24} {format_money(gmv, scenario.currency)}")
    out.append(f"  milestones so far: {len(milestones)}")
    for m in milestones[-last:] if last else []:
        when = format_time(m.event_time_us, scenario.zone)[:19].replace("T", " ")
        out.append(f"    {when}  {m.headline}")
    out.append(f"  (from the snapshot at seq {found.from_snapshot:,} plus {found.folded:,} events of "
               "the log)")
    return "\n".join(out)
