"""Reading a run directory for a report: its summary and scenario, and, only when a fact needs
it, every brand's GMV before a moment (from the run restored to that moment)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ticker import comparisons
from ticker.report.facts import build_report
from ticker.report.model import Report, ReportError
from ticker.scenario.model import Scenario


def load_report(path: str | os.PathLike[str],
                baseline: str | os.PathLike[str] | None = None) -> Report:
    """Check a finished run directory against its scenario's targets.

    Reads ``run.json``, ``scenario.toml`` (the scenario exactly as run) and ``summary.json``;
    raises :class:`ReportError` for a directory that is not a finished run. A bad scenario file
    raises :class:`~ticker.scenario.ScenarioError` (one line per problem).
    """
    from ticker.rundir import RunDir, RunDirError

    rd = RunDir(Path(path))
    if not rd.path.is_dir():
        raise ReportError(f"{rd.path}: no such directory (expected the --run-dir of a "
                          "'ticker replay')")
    try:
        meta = rd.meta()
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    try:
        summary = rd.summary()  # checked there: one line naming the file and the key
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    if summary is None:
        state = meta.get("state", "unknown")
        raise ReportError(f"{rd.path}: the run has no summary.json (state {state!r}): finish it "
                          f"with 'ticker replay {meta.get('scenario', 'SCENARIO')} --run-dir "
                          f"{rd.path} --resume' first")
    if not rd.scenario_path.is_file():
        raise ReportError(f"{rd.scenario_path}: missing (the scenario as run)")
    scenario = rd.scenario()
    found: list[comparisons.RunFacts | str] = []

    def base() -> comparisons.RunFacts | str:  # found once, and only if a fact needs it
        if not found:
            found.append(_baseline(rd.path, scenario, float(summary["scale"]), baseline))
        return found[0]

    return build_report(scenario, summary, path=rd.path,
                        fold_brands=lambda before_us: brand_gmv_before(rd.path, scenario, before_us),
                        baseline=base)


def _baseline(path: Path, scenario: Scenario, scale: float,
              given: str | os.PathLike[str] | None) -> comparisons.RunFacts | str:
    """The baseline run of a year-on-year fact: ``given``, or the scenario's
    ``festival.baseline`` at this scale and its own seed next to the run (replayed once, then
    reused); a string says why there is none."""
    from ticker.api import replay
    from ticker.rundir import run_id
    from ticker.scenario import resolve
    from ticker.scenario.model import ScenarioError

    if given is None:
        if scenario.baseline is None:
            return "the scenario names no festival.baseline"
        try:
            base = resolve(scenario.baseline)
        except ScenarioError as exc:
            return f"festival.baseline: {exc.problems[0]}"
        given = path.parent / run_id(base.name, base.seed, scale)
        if not (Path(given) / "summary.json").is_file():
            replay(base, scale=scale, record=True, run_dir=given)
    report = load_report(given)
    where = Path(given)
    return comparisons.RunFacts(report.scenario, report.milestones,
                                lambda before_us: brand_gmv_before(where, report.scenario,
                                                                   before_us),
                                where, report.scale)


def brand_gmv_before(path: Path, scenario: Scenario, before_us: int | None) -> np.ndarray:
    """Every brand's net GMV from the log's events before ``before_us`` (all for ``None``).

    An ordered log's events before a moment are a prefix of it: the run restored to that moment
    (a snapshot plus the log behind it). In an arrival-ordered log they are not (a late order
    arrives after later ones): one pass over the whole log with its event-time aggregator, so
    redeliveries count once and every event before ``before_us`` counts, wherever it arrived."""
    from ticker.aggregate.eventtime import EventTimeAggregator, aggregator_for
    from ticker.rundir import RunDir, RunDirError

    run_dir = RunDir(path)
    try:
        meta = run_dir.meta()
        if not meta.get("disorder"):
            restored = run_dir.restore(before_time=before_us, scenario=scenario)
            return restored.aggregator.state.brand_gmv.copy()
        gmv = np.zeros(scenario.brand_count, np.int64)
        dedup = aggregator_for(scenario, run_dir.brand_names(scenario), meta["run"], meta["disorder"])
        assert isinstance(dedup, EventTimeAggregator)  # (a run with a disorder profile)
        for batch in run_dir.events():
            dedup.apply(batch)
            keep = dedup.accepted & (True if before_us is None else batch.event_time < before_us)
            np.add.at(gmv, batch.brand[keep], batch.amount_minor[keep])
        return gmv
    except RunDirError as exc:
        raise ReportError(str(exc)) from None

