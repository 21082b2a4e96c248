"""The replay on a real Dask cluster (LocalCluster, worker processes, bound to 127.0.0.1):
identical results for many part counts, a worker killed mid-run, workers refused before work."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

distributed = pytest.importorskip("distributed", reason="needs ticker[cluster] (scripts/test installs it)")

import cloudpickle  # noqa: E402  (comes with distributed)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.cluster.test_scan import assert_identical, single  # noqa: E402
from ticker.cluster import driver  # noqa: E402
from ticker.scenario import resolve  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/


@pytest.fixture(scope="module")
def client():
    with driver.connect("local:2") as c:
        yield c


def on_cluster(client, name: str, scale: float, parts: int | None) -> driver.ClusterResult:
    _, reference = single(name, scale)
    scenario = resolve(name)
    return driver.run_scan(client, scenario, scenario.seed, scale, reference.run, parts)


def test_the_cluster_listens_on_loopback_only(client) -> None:
    addresses = [client.scheduler.address, *client.scheduler_info()["workers"]]
    assert len(addresses) == 3
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    assert client.dashboard_link.startswith("http://127.0.0.1:")


def _profiling() -> bool:
    import dask

    return dask.config.get("distributed.worker.profile.enabled")


def test_local_workers_do_not_run_the_statistical_profiler(client) -> None:
    assert set(client.run(_profiling).values()) == {False}


@pytest.mark.parametrize(("name", "scale", "parts"),
                         [("smoke", 1.0, 1), ("smoke", 1.0, 3), ("smoke", 1.0, None),
                          ("double11-2021", 0.001, 5), ("singles-day-2016", 0.0005, 6),
                          *(("double11-2020", 0.0002, p) for p in (1, 2, 3, 5, 8))])
def test_identical_to_one_process(client, name: str, scale: float, parts: int | None) -> None:
    """Every bundled kind of milestone, the dimensions' races (double11-2020's channels and
    Tmall Global brands, double11-2021's Tmall Global brands) and totals among them."""
    result = on_cluster(client, name, scale, parts)
    assert result.workers == 2
    assert_identical(name, scale, result.aggregator)


class CountPass1(distributed.WorkerPlugin):
    """Appends a line to a file each time a worker starts a pass-1 task."""

    def __init__(self, path: str):
        self.path = path

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and str(key).startswith("ticker-pass1"):
            with open(self.path, "a") as fh:
                fh.write(f"{key}\n")


def test_a_second_run_is_computed_again(client, tmp_path: Path) -> None:
    """Run-specific task keys: a second identical run executes its tasks, never reuses a result."""
    log = tmp_path / "executed"
    client.register_plugin(CountPass1(str(log)), name="count-pass1")
    try:
        for _ in range(2):
            assert_identical("smoke", 1.0, on_cluster(client, "smoke", 1.0, 2).aggregator)
    finally:
        client.unregister_worker_plugin("count-pass1")
    keys = log.read_text().split()
    assert len(keys) == 4 and len(set(keys)) == 4


class KillOnce(distributed.WorkerPlugin):
    """SIGKILLs the worker process the first time any worker starts a task of ``phase``."""

    def __init__(self, marker: str, phase: str):
        self.marker, self.phase = marker, phase

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and str(key).startswith(self.phase):
            try:
                os.rename(self.marker, self.marker + ".taken")  # atomic: only one worker dies
            except FileNotFoundError:
                return
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("phase", ["ticker-pass1", "ticker-pass2"])
def test_a_worker_killed_mid_run_changes_nothing(client, tmp_path: Path, phase: str) -> None:
    """Killed in pass 1 (the part scans it held are lost: Dask reruns them) or in pass 2 (a
    crossing search): the same result."""
    marker = tmp_path / "kill"
    marker.write_text("")
    before = set(client.run(os.getpid).values())
    client.register_plugin(KillOnce(str(marker), phase), name="kill-once")
    try:
        result = on_cluster(client, "double11-2021", 0.001, 6)
    finally:
        client.unregister_worker_plugin("kill-once")
    assert not marker.exists() and (tmp_path / "kill.taken").exists(), "no worker was killed"
    client.wait_for_workers(2)
    after = set(client.run(os.getpid).values())
    assert len(before - after) == 1, "the killed worker's process should have been replaced"
    assert result.probes > 0
    assert_identical("double11-2021", 0.001, result.aggregator)


def _pretend_version(undo: bool = False):
    import ticker
    import ticker.cluster.driver as d

    d.__version__ = ticker.__version__ if undo else "0.0.0-other"


def _pretend_other_numpy(undo: bool = False):
    """As if this worker's numpy rounded the order-value table differently."""
    import importlib

    import numpy as np

    import ticker.cluster.driver as d

    g = importlib.import_module("ticker.scenario.generate")  # ticker.scenario.generate is a function

    real = g.__dict__.setdefault("_real_amount_table", g._amount_table)
    g._amount_table = real if undo else (lambda sigma: real(sigma) + np.int64(1))
    d._plans.clear()


@pytest.mark.parametrize(("patch", "says"), [
    (_pretend_version, "runs ticker 0.0.0-other, this driver ticker"),
    (_pretend_other_numpy, "computes plan fingerprint"),
])
def test_a_different_worker_is_refused_before_work(client, patch, says: str) -> None:
    worker = sorted(client.scheduler_info()["workers"])[0]
    client.run(patch, workers=[worker])
    try:
        with pytest.raises(driver.ClusterError) as caught:
            on_cluster(client, "smoke", 1.0, 2)
    finally:
        client.run(patch, True, workers=[worker])
    text = str(caught.value)
    assert text.startswith(f"worker {worker} ") and says in text and "\n" not in text
    assert_identical("smoke", 1.0, on_cluster(client, "smoke", 1.0, 2).aggregator)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_cluster_spec_is_parsed_or_refused_in_one_line(spec: str) -> None:
    try:
        kind, where = driver.parse_cluster(spec)
    except driver.ClusterError as exc:
        assert "\n" not in str(exc) and "--cluster" in str(exc)
        return
    assert (kind, where) in {("local", int(spec[6:]) if kind == "local" else None), ("remote", spec)}


def _ticker(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ticker", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_cli_cluster_replay_has_the_single_process_summary(tmp_path: Path) -> None:
    """double11-2020 declares [[dimensions]]: their races are in the summary's milestones."""
    one = _ticker("replay", "double11-2020", "--scale", "0.0002", "--no-log", "--mqtt", "none",
                  "--quiet", "--summary", str(tmp_path / "one.json"), cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _ticker("replay", "double11-2020", "--scale", "0.0002", "--no-log", "--mqtt", "none",
                  "--cluster", "local:2", "--parts", "3", "--summary", str(tmp_path / "two.json"),
                  cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "cluster: 2 workers, 3 parts" in two.stdout
    a, b = (orjson.loads((tmp_path / f).read_bytes()) for f in ("one.json", "two.json"))
    for key in ("wall_s", "events_per_s"):
        a.pop(key), b.pop(key)
    assert a == b and {"channel_gmv", "tmall_global_brand_gmv"} <= {m["kind"] for m in a["milestones"]}


def test_cli_cluster_recorded_run_is_verified_queried_and_replayed(tmp_path: Path) -> None:
    """``--cluster`` records by default: ``verify``, ``state --at`` and a replay of the run
    directory read it as any run's."""
    run_dir = tmp_path / "run"
    done = _ticker("replay", "smoke", "--mqtt", "none", "--quiet", "--cluster", "local:2",
                   "--run-dir", str(run_dir), "--summary", str(tmp_path / "cluster.json"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    verified = _ticker("verify", str(run_dir), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    state = _ticker("state", str(run_dir), "--at", "2021-11-11T00:30", "--json", cwd=tmp_path)
    assert state.returncode == 0, state.stderr
    assert orjson.loads(state.stdout)["orders"] > 0
    again = _ticker("replay", str(run_dir), "--no-log", "--mqtt", "none", "--quiet", "--summary",
                    str(tmp_path / "again.json"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    a, b = (orjson.loads((tmp_path / f).read_bytes()) for f in ("cluster.json", "again.json"))
    for key in ("wall_s", "events_per_s"):
        a.pop(key), b.pop(key)
    assert a == b and a["milestones"]
    assert not (run_dir / "log" / ".staging").exists()


def test_cli_cluster_refuses_a_scenario_with_its_own_disorder(tmp_path: Path) -> None:
    """The two-pass scan is exact for the ordered stream: a scenario's [disorder] table (an
    arrival-ordered run) is refused in one line before anything is written; --disorder none
    runs its ordered stream, with the plain scenario's result."""
    from ticker.scenario import resolve

    text = resolve("smoke").text + "\n[disorder]\nlateness_s = 2\nlate = 0.01\nlate_max_s = 30\n"
    (tmp_path / "late.toml").write_text(text)
    done = _ticker("replay", "late.toml", "--mqtt", "none", "--cluster", "local:2", cwd=tmp_path)
    assert done.returncode == 2
    assert "[disorder]" in done.stderr and "--disorder none" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "runs").exists()
    ordered = _ticker("replay", "late.toml", "--mqtt", "none", "--quiet", "--no-log", "--cluster",
                      "local:2", "--disorder", "none", "--summary", str(tmp_path / "s.json"),
                      cwd=tmp_path)
    assert ordered.returncode == 0, ordered.stderr
    assert orjson.loads((tmp_path / "s.json").read_bytes())["milestones"]


@pytest.mark.parametrize(("args", "says"), [
    (["--cluster", "local:0", "--no-log"], "expected local:N"),
    (["--cluster", "mqtt://x:1", "--no-log"], "expected local:N"),
    (["--cluster", "local:2", "--resume"], "finish a recorded run on one process"),
    (["--cluster", "local:2", "--no-log", "--speed", "realtime"], "drop --speed"),
    (["--cluster", "tcp://127.0.0.1:1", "--no-log"], "cannot reach the Dask scheduler"),
])
def test_cli_cluster_mistakes_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    done = _ticker("replay", "smoke", "--mqtt", "none", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_local_cluster_closes_without_a_traceback(capfd) -> None:
    """A worker's heartbeat on its way when the cluster closes fails, and Dask logs it with two
    tracebacks (dask/distributed#7105; seen after a run). Here every heartbeat hangs in the
    scheduler, so each worker has one on its way at close, every time."""
    arrived: set[str] = set()
    changed = threading.Condition()

    async def hang(*args, address: str, **kwargs) -> None:
        with changed:
            arrived.add(address)
            changed.notify_all()
        await asyncio.Event().wait()

    with driver.connect("local:2") as client:
        workers = set(client.scheduler_info()["workers"])
        client.cluster.scheduler.handlers["heartbeat_worker"] = hang
        with changed:
            assert changed.wait_for(lambda: arrived >= workers, timeout=60), arrived
    err = capfd.readouterr().err
    assert "Traceback" not in err and "heartbeat" not in err, err


def test_only_a_closing_worker_s_failed_heartbeat_is_dropped() -> None:
    from distributed.core import Status

    from ticker.cluster.quiet import HEARTBEAT_FAILED, _ClosingHeartbeat

    class Worker:
        status = Status.running

    worker = Worker()
    quiet = _ClosingHeartbeat(worker)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg, (), None)

    assert quiet.filter(record(HEARTBEAT_FAILED))  # a running worker's: still logged
    for status in (Status.closing, Status.closing_gracefully, Status.closed):
        worker.status = status
        assert not quiet.filter(record(HEARTBEAT_FAILED))
        assert quiet.filter(record("Unexpected exception during heartbeat. Closing worker."))
