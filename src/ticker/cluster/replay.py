"""``ticker replay SCENARIO --cluster …``: the replay computed on a Dask cluster, then handed to
the same sinks (terminal ticker, MQTT publisher) and summary as a single-process replay.

The scan has no event-time order to pace or tick along, so the sinks get the milestones and one
final tick when the result is in; the summary is the single-process run's, field for field
(``wall_s`` and ``events_per_s`` measure this run).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ticker.aggregate import AggregateState
from ticker.cluster.driver import (
    ClusterError,
    ClusterResult,
    Recording,
    Staging,
    connect,
    run_scan,
)
from ticker.engine import ReplayOptions, Run, checkpoint, make_summary, snapshot_interval
from ticker.scenario import resolve
from ticker.sink import Sink
from ticker.views import Summary

if TYPE_CHECKING:
    from distributed import Client


def check_options(source: str | Path, options: ReplayOptions) -> None:
    """Refuse what a cluster replay cannot do, before anything starts; one line."""
    if (Path(source) / "run.json").is_file():
        raise ClusterError("--cluster replays a scenario; a recorded run is re-read with 'ticker "
                           "replay RUN_DIR' on one process")
    if options.resume:
        raise ClusterError("--cluster cannot --resume: finish a recorded run on one process "
                           "(the same command without --cluster)")
    if options.speed is not None:
        raise ClusterError("--cluster runs as fast as it can; drop --speed")
    if options.disorder not in (None, "none", "off"):
        raise ClusterError("--cluster folds the ordered stream; --disorder runs on one process")
    scenario = resolve(str(source))
    if options.disorder is None and scenario.disorder is not None:
        # the two-pass scan is exact for the ordered stream; arrival order is a property of the
        # whole stream (a late order lands in another part), folded by event time on one process
        raise ClusterError(f"--cluster folds the ordered stream; {scenario.name}'s [disorder] "
                           "table runs on one process (or add --disorder none for its ordered "
                           "stream)")


def execute(run: Run, sinks: Sequence[Sink], spec: str, parts: int | None = None, *,
            client: Client | None = None,
            note: Callable[[str], None] | None = None) -> tuple[Summary, ClusterResult]:
    """Compute ``run`` on the cluster ``spec`` (or ``client``); returns (summary, result).
    ``note`` is told how the cluster did before the milestones are shown."""
    try:
        return _drive(run, sinks, spec, parts, client, note)
    except BaseException:
        if run.log is not None:  # release the log (its lock); what it holds is a prefix
            with contextlib.suppress(OSError, ValueError):
                run.log.close()
        raise
    finally:  # every sink is closed, as the single-process pipeline closes them
        for sink in reversed(sinks):
            sink.close()


def _drive(run: Run, sinks: Sequence[Sink], spec: str, parts: int | None, client: Client | None,
           note: Callable[[str], None] | None) -> tuple[Summary, ClusterResult]:
    from ticker.engine import send_tick  # the engine's one way to show the state to the sinks

    wall0 = time.perf_counter()
    start = run.start_info()
    for sink in sinks:
        sink.start(start)
    recording = _recording(run)
    if client is None:
        with connect(spec) as own:
            result = run_scan(own, run.scenario, run.seed, run.scale, run.run, parts, recording)
    else:
        result = run_scan(client, run.scenario, run.seed, run.scale, run.run, parts, recording)
    run.aggregator = result.aggregator
    if note is not None:
        note(describe(result))
    if result.aggregator.state.milestones:
        for sink in sinks:
            sink.milestones(list(result.aggregator.state.milestones))
    send_tick(run, sinks)
    wall = time.perf_counter() - wall0
    summary = make_summary(run, wall, result.aggregator.state.next_seq)
    if run.run_dir is not None:  # as a single-process run ends: the final snapshot first
        checkpoint(run)
        run.run_dir.clear_staging()
    if run.log is not None:
        run.log.close()
    for sink in sinks:
        sink.finish(summary)
    if run.run_dir is not None:
        run.run_dir.write_summary(summary.to_json())
        meta = run.run_dir.meta()
        meta["state"] = "finished"
        run.run_dir.write_meta(meta)
    return summary, result


def _recording(run: Run) -> Recording | None:
    """A recorded run: its workers stage segments in the run directory, the driver takes them
    into the run's log and writes the snapshots a single process would."""
    if run.run_dir is None or run.log is None:
        return None
    run_dir, options = run.run_dir, run.options
    staging = Staging(str(run_dir.staging.absolute()), options.fsync, options.segment_bytes)

    def snapshot(state: AggregateState) -> None:
        run_dir.write_snapshot(state, run.run)
        run_dir.write_milestones(state.milestones, run.scenario.zone)

    return Recording(staging, snapshot_interval(options), run.log.log.adopt, snapshot)


def describe(result: ClusterResult) -> str:
    t = result.timings
    return (f"cluster: {result.workers} workers, {result.parts} parts; pass 1 {t['pass1']:.2f} s, "
            f"merge {t['merge']:.2f} s, pass 2 {t['pass2']:.2f} s ({result.probes:,} ranges, "
            f"{result.probe_events:,} events regenerated)")
