"""A recorded replay on a real Dask cluster (LocalCluster, worker processes on 127.0.0.1): the
whole run directory — log segments, snapshots, milestones, summary, run.json — is byte for byte
the single-process run's; a driver killed mid-run leaves a log that is an unbroken prefix, which
a single-process --resume finishes to the same bytes."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

pytest.importorskip("distributed", reason="needs ticker[cluster] (scripts/test installs it)")

import cloudpickle  # (comes with distributed)

from ticker.cluster import driver
from ticker.cluster.replay import execute as on_cluster
from ticker.engine import ReplayOptions, execute, prepare
from ticker.eventlog import LOG_RECORD_EVENTS, segment_events, verify_log

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/

RECORD = 2_555_968  # bytes of a whole log record (LOG_RECORD_EVENTS events)

#: (scenario, scale, segment_bytes, snapshot_every): segments of one record and of three (so
#: that snapshots, every two records, fall inside a worker's stretch too)
CASES = [("smoke", 1.0, RECORD, LOG_RECORD_EVENTS),
         ("singles-day-2016", 0.004, 3 * RECORD, 2 * LOG_RECORD_EVENTS),
         # [[dimensions]]: their totals and races in every snapshot and the milestone file
         ("double11-2020", 0.0002, RECORD, 2 * LOG_RECORD_EVENTS)]


def options(run_dir: Path, case: tuple, **more) -> ReplayOptions:
    _, scale, segment_bytes, every = case
    return ReplayOptions(scale=scale, run_dir=run_dir, segment_bytes=segment_bytes,
                         snapshot_every=every, fsync="never", **more)


def contents(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run directory by its path in it; the summary without its timings."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() or (path.is_dir() and not any(path.iterdir())):
            out[str(path.relative_to(run_dir))] = path.read_bytes() if path.is_file() else b"dir"
    summary = orjson.loads(out.pop("summary.json"))
    for key in ("wall_s", "events_per_s"):
        assert summary.pop(key) is not None
    out["summary.json"] = orjson.dumps(summary)
    return out


@functools.cache
def _single(case: tuple, root: Path) -> dict[str, bytes]:
    run = prepare(case[0], options(root / "single", case))
    execute(run, [])
    return contents(root / "single")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    return lambda case: _single(case, root)


@pytest.fixture(scope="module")
def client():
    with driver.connect("local:2") as c:
        yield c


def test_segment_events_is_what_the_writer_does() -> None:
    assert segment_events(RECORD) == segment_events(2 * RECORD - 1) == LOG_RECORD_EVENTS
    assert segment_events(3 * RECORD) == 3 * LOG_RECORD_EVENTS
    assert segment_events(1) == LOG_RECORD_EVENTS  # a lone record gets a segment of its own


@pytest.mark.parametrize(("case", "parts"), [(CASES[0], p) for p in (1, 2, 3, 4)] +
                         [(CASES[1], p) for p in (1, 2, 5, 13)] +
                         [(CASES[2], p) for p in (1, 3, 8)])
def test_the_run_directory_is_the_single_process_one(client, single, tmp_path: Path, case,
                                                     parts: int) -> None:
    run = prepare(case[0], options(tmp_path / "cluster", case))
    _, result = on_cluster(run, [], "", parts, client=client)
    assert result.parts == parts
    expected, got = single(case), contents(tmp_path / "cluster")
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []
    assert sum(name.startswith("snapshots/") for name in got) >= 3


KILLER = """
import os, signal, sys
from pathlib import Path

from ticker.cluster.replay import execute
from ticker.engine import ReplayOptions, prepare
from ticker.eventlog import EventLog

def main():
    adopt, taken = EventLog.adopt, []

    def adopt_then_die(self, directory):
        adopt(self, directory)
        taken.append(directory)
        if len(taken) == {after}:
            os.kill(os.getpid(), signal.SIGKILL)  # the driver dies mid-run, as a crash would

    EventLog.adopt = adopt_then_die
    run = prepare({name!r}, ReplayOptions(scale={scale!r}, run_dir=Path({run_dir!r}),
                  segment_bytes={segment_bytes!r}, snapshot_every={every!r}, fsync="never"))
    execute(run, [], "local:2", {parts!r})

if __name__ == "__main__":
    main()
"""


def test_a_driver_killed_mid_run_leaves_a_prefix_that_resume_finishes(single, tmp_path: Path
                                                                      ) -> None:
    case = CASES[1]
    name, scale, segment_bytes, every = case
    run_dir = tmp_path / "run"
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER).format(
        after=2, name=name, scale=scale, run_dir=str(run_dir), segment_bytes=segment_bytes,
        every=every, parts=5))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert verify_log(run_dir / "log") == []  # an unbroken prefix, no torn tail
    segments = sorted((run_dir / "log").glob("*.seg"))
    assert 0 < len(segments) < len(single(case)) / 2, "killed before the end, after some"
    assert orjson.loads((run_dir / "run.json").read_bytes())["state"] == "running"
    run = prepare(name, options(run_dir, case, resume=True))
    assert any(note.startswith("resuming") for note in run.notes), run.notes
    execute(run, [])
    assert not (run_dir / "log" / ".staging").exists()
    expected, got = single(case), contents(run_dir)
    assert [n for n in sorted(set(expected) | set(got)) if got.get(n) != expected.get(n)] == []


def _pretend_blind(undo: bool = False) -> None:
    """As if this worker were on a machine without the run directory's storage."""
    import ticker.cluster.driver as d

    real = d.__dict__.setdefault("_real_sees", d.sees)
    d.sees = real if undo else (lambda path: False)


def test_a_worker_that_cannot_see_the_run_directory_is_refused_before_work(client, tmp_path: Path
                                                                         ) -> None:
    worker = sorted(client.scheduler_info()["workers"])[0]
    client.run(_pretend_blind, workers=[worker])
    try:
        run = prepare("smoke", options(tmp_path / "run", CASES[0]))
        with pytest.raises(driver.ClusterError) as caught:
            on_cluster(run, [], "", 2, client=client)
    finally:
        client.run(_pretend_blind, True, workers=[worker])
    text = str(caught.value)
    assert text.startswith(f"worker {worker} cannot see ") and "shared" in text
    assert "--no-log" in text and "\n" not in text
    assert not list((tmp_path / "run" / "log").glob("*.seg"))


def _die_mid_stretch(marker: str, undo: bool = False) -> None:
    """Make the first worker to start a second segment of a staged stretch die right there (a
    stretch half written: one whole segment and an empty one on disk)."""
    import ticker.eventlog as e

    real = e.EventLog.__dict__.get("_real_roll", e.EventLog._roll)
    e.EventLog._real_roll = real  # type: ignore[attr-defined]
    if undo:
        e.EventLog._roll = real  # type: ignore[method-assign]
        return

    def roll(self, first_seq: int):
        segment = real(self, first_seq)
        if ".staging" in str(self.directory) and len(self._segments) == 2:
            try:
                os.rename(marker, marker + ".taken")  # atomic: only one worker dies
            except FileNotFoundError:
                return segment
            os.kill(os.getpid(), signal.SIGKILL)
        return segment

    e.EventLog._roll = roll  # type: ignore[method-assign]


def test_a_worker_killed_while_writing_its_stretch_changes_nothing(client, single, tmp_path: Path
                                                                   ) -> None:
    case = CASES[1]
    marker = tmp_path / "kill"
    marker.write_text("")
    client.run(_die_mid_stretch, str(marker))
    try:
        run = prepare(case[0], options(tmp_path / "cluster", case))
        on_cluster(run, [], "", 4, client=client)
    finally:
        client.wait_for_workers(2)
        client.run(_die_mid_stretch, str(marker), True)
    assert (tmp_path / "kill.taken").exists(), "no worker was killed"
    expected, got = single(case), contents(tmp_path / "cluster")
    assert [n for n in sorted(set(expected) | set(got)) if got.get(n) != expected.get(n)] == []
