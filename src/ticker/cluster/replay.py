"""``ticker replay SCENARIO --cluster …``: the replay computed on a Dask cluster, then handed to
the same sinks (terminal ticker, MQTT publisher) and summary as a single-process replay.

The scan has no event-time order to pace or tick along, so the sinks get the milestones and one
final tick when the result is in; the summary is the single-process run's, field for field
(``wall_s`` and ``events_per_s`` measure this run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ticker.cluster.driver import ClusterError, ClusterResult, connect, run_scan
from ticker.engine import ReplayOptions, Run, make_summary
from ticker.sink import Sink
from ticker.views import Summary


def check_options(source_is_run_dir: bool, options: ReplayOptions) -> None:
    """Refuse what a cluster replay cannot do, before anything starts; one line."""
    if source_is_run_dir:
        raise ClusterError("--cluster replays a scenario; a recorded run is re-read with 'ticker "
                           "replay RUN_DIR' on one process")
    if options.resume:
        raise ClusterError("--cluster cannot --resume (a cluster run is not recorded)")
    if options.speed is not None:
        raise ClusterError("--cluster runs as fast as it can; drop --speed")
    if options.record:
        raise ClusterError("--cluster does not record an event log yet: add --no-log")
    if options.disorder not in (None, "none", "off"):
        raise ClusterError("--cluster folds the ordered stream; --disorder runs on one process")


def execute(run: Run, sinks: Sequence[Sink], spec: str, parts: int | None = None, *, client=None,
            note: Callable[[str], None] | None = None) -> tuple[Summary, ClusterResult]:
    """Compute ``run`` on the cluster ``spec`` (or ``client``); returns (summary, result).
    ``note`` is told how the cluster did before the milestones are shown."""
    try:
        return _drive(run, sinks, spec, parts, client, note)
    finally:  # every sink is closed, as the single-process pipeline closes them
        for sink in reversed(sinks):
            sink.close()


def _drive(run: Run, sinks: Sequence[Sink], spec: str, parts: int | None, client,
           note: Callable[[str], None] | None) -> tuple[Summary, ClusterResult]:
    from ticker.engine import _tick  # the engine's one way to show the state to the sinks

    wall0 = time.perf_counter()
    start = run.start_info()
    for sink in sinks:
        sink.start(start)
    if client is None:
        with connect(spec) as own:
            result = run_scan(own, run.scenario, run.seed, run.scale, run.run, parts)
    else:
        result = run_scan(client, run.scenario, run.seed, run.scale, run.run, parts)
    run.aggregator = result.aggregator
    if note is not None:
        note(describe(result))
    if result.aggregator.state.milestones:
        for sink in sinks:
            sink.milestones(list(result.aggregator.state.milestones))
    _tick(run, sinks)
    wall = time.perf_counter() - wall0
    summary = make_summary(run, wall, result.aggregator.state.next_seq)
    for sink in sinks:
        sink.finish(summary)
    return summary, result


def describe(result: ClusterResult) -> str:
    t = result.timings
    return (f"cluster: {result.workers} workers, {result.parts} parts; pass 1 {t['pass1']:.2f} s, "
            f"merge {t['merge']:.2f} s, pass 2 {t['pass2']:.2f} s ({result.probes:,} ranges, "
            f"{result.probe_events:,} events regenerated)")
