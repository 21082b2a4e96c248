"""``RunDir.restore``: the one way to a run's state at a point of its log. Whatever snapshot it
starts from, the state equals an independent fold of the log's events up to that point."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker.aggregate.eventtime import aggregator_for
from ticker.cli import main
from ticker.eventlog import EventLog
from ticker.events import OrderBatch
from ticker.rundir import RunDir, RunDirError
from ticker.scenario import load_scenario

pytestmark = pytest.mark.timeout(300)

# hypothesis shares one recorded run per kind between examples (module fixtures, read-only)
_SHARED = settings(max_examples=30, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


def _record(root: Path, *extra: str) -> Path:
    run_dir = root / "run"
    assert main(["replay", "smoke", "--mqtt", "none", "--quiet", "--scale", "1",
                 "--snapshot-every", "65536", "--run-dir", str(run_dir), *extra]) == 0
    return run_dir


@pytest.fixture(scope="module")
def ordered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(tmp_path_factory.mktemp("restore-ordered"))


@pytest.fixture(scope="module")
def arrival(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(tmp_path_factory.mktemp("restore-arrival"), "--disorder", "realistic")


def _events(run_dir: Path) -> OrderBatch:
    with EventLog(run_dir / "log", readonly=True) as log:
        return OrderBatch.concat(log.read(0))


def _independent_fold(run_dir: Path, events: OrderBatch, batch: int):
    """A fresh aggregator over ``events`` cut by plain slicing (no snapshot, no rebatch)."""
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    scenario = load_scenario(run_dir / "scenario.toml")
    from ticker.scenario.brands import catalogue

    agg = aggregator_for(scenario, catalogue(scenario).names, meta["run"], meta.get("disorder"))
    for lo in range(0, len(events), batch):
        agg.apply(events.slice(lo, lo + batch))
    return agg


def _lateness_us(run_dir: Path) -> int:
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    return round(meta["disorder"]["lateness_s"] * 1_000_000) if meta.get("disorder") else 0


@pytest.mark.parametrize("kind", ["ordered", "arrival"])
@_SHARED
@given(data=st.data())
def test_restore_before_a_seq_is_the_fold_of_the_log_before_it(kind: str, data: st.DataObject,
                                                               request: pytest.FixtureRequest) -> None:
    run_dir = request.getfixturevalue(kind)
    events = _events(run_dir)
    seq = data.draw(st.integers(0, len(events) + 100), label="before_seq")
    restored = RunDir(run_dir).restore(before_seq=seq)
    expected = _independent_fold(run_dir, events.slice(0, min(seq, len(events))),
                                 data.draw(st.integers(2_048, 300_000), label="batch"))
    assert restored.aggregator.state.next_seq == min(seq, len(events))
    assert restored.aggregator.state.differences(expected.state) == []
    assert restored.aggregator.state.milestones == expected.state.milestones
    assert restored.from_snapshot + restored.folded == min(seq, len(events))
    assert restored.from_snapshot % 65536 == 0 and restored.folded <= 65536 + 65535


@pytest.mark.parametrize("kind", ["ordered", "arrival"])
@_SHARED
@given(data=st.data())
def test_restore_before_a_time_is_the_fold_up_to_the_first_event_at_or_after_it(
        kind: str, data: st.DataObject, request: pytest.FixtureRequest) -> None:
    """Ordered: every event before the moment. Arrival-ordered: the log up to the first
    arrival at or after the moment plus the run's lateness (when the watermark reached it)."""
    run_dir = request.getfixturevalue(kind)
    events = _events(run_dir)
    times = events.event_time
    at = data.draw(st.integers(int(times.min()) - 10, int(times.max()) + 10), label="at_us")
    reached = times >= at + _lateness_us(run_dir)
    stop = int(np.argmax(reached)) if reached.any() else len(events)
    restored = RunDir(run_dir).restore(before_time=at)
    expected = _independent_fold(run_dir, events.slice(0, stop),
                                 data.draw(st.integers(2_048, 300_000), label="batch"))
    assert restored.aggregator.state.next_seq == stop
    assert restored.aggregator.state.differences(expected.state) == []
    assert restored.aggregator.state.milestones == expected.state.milestones


def test_a_damaged_snapshot_is_passed_over_and_said(ordered: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ordered, run_dir)
    seqs = RunDir(run_dir).snapshot_seqs()
    middle = seqs[len(seqs) // 2]
    path = RunDir(run_dir).snapshot_path(middle)
    path.write_bytes(path.read_bytes()[:100])
    restored = RunDir(run_dir).restore(before_seq=middle + 10)
    assert restored.from_snapshot < middle
    assert any(str(path) in note for note in restored.notes)
    expected = _independent_fold(run_dir, _events(run_dir).slice(0, middle + 10), 4096)
    assert restored.aggregator.state.differences(expected.state) == []
    # a fold from the start (verify's) trusts no snapshot and says nothing of them
    fresh = RunDir(run_dir).restore(before_seq=middle + 10, trust_snapshots=False)
    assert (fresh.from_snapshot, fresh.folded, fresh.notes) == (0, middle + 10, [])


def test_stops_see_the_fold_at_each_seq(ordered: Path) -> None:
    events = _events(ordered)
    stops = [1, 70_000, 65_536 * 2, len(events) - 1]
    seen: dict[int, int] = {}
    RunDir(ordered).restore(trust_snapshots=False, stops=stops,
                            at_stop=lambda seq, agg: seen.__setitem__(seq, agg.state.gmv_minor))
    assert seen == {s: int(events.amount_minor[:s].sum()) for s in stops}


def test_a_log_that_cannot_be_read_is_one_line(ordered: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ordered, run_dir)
    segment = sorted((run_dir / "log").glob("*.seg"))[0]
    data = bytearray(segment.read_bytes())
    data[200] ^= 0xFF  # inside the first record's payload: a checksum mismatch
    segment.write_bytes(bytes(data))
    with pytest.raises(RunDirError, match=segment.name):
        RunDir(run_dir).restore(trust_snapshots=False)
