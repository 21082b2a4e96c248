"""``ticker follow`` against a real Mosquitto: a replay publishes its order frames in one process,
the follower folds them in another, and their final totals, per-second series and milestones are
equal — also when the follower is SIGKILLed mid-stream and restarted, and when the broker restarts
(persistence on) mid-stream. JSON orders: bad payloads are dead-lettered, counted, and the run
goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from ticker.events import OrderBatch
from ticker.ingest.follow import Reassembler, frame_refusal
from ticker.rundir import RunDir
from ticker.scenario import generate, resolve
from ticker.scenario.brands import catalogue

pytestmark = pytest.mark.network
TICKER = [sys.executable, "-m", "ticker"]
ENV = {**os.environ, "PYTHONWARNINGS": "error"}


def start_follow(url: str, run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TICKER, "follow", "--mqtt", url, "--run-dir", str(run_dir), "--quiet",
                             "--summary", str(run_dir.parent / f"{run_dir.name}.json"), *extra],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def replay(url: str, run_dir: Path, *extra: str, scale: str = "0.2",
           scenario: str = "smoke") -> subprocess.Popen:
    return subprocess.Popen([*TICKER, "replay", scenario, "--scale", scale, "--mqtt", url,
                             "--publish-orders", "--quiet", "--run-dir", str(run_dir),
                             "--summary", str(run_dir.parent / "replay.json"), *extra],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float = 240) -> None:
    _out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


def assert_same_run(follower: Path, replayer: Path) -> None:
    f = orjson.loads((follower.parent / f"{follower.name}.json").read_bytes())
    r = orjson.loads((replayer.parent / "replay.json").read_bytes())
    for key in ("gmv_minor", "orders", "refunds", "events", "peak_orders_per_s", "peak_at", "brands_over",
                "event_time"):
        assert f.get(key) == r.get(key), key
    strip = lambda ms: [{k: v for k, v in m.items() if k not in ("id", "corrects")}  # noqa: E731
                        for m in ms]
    assert strip(f["milestones"]) == strip(r["milestones"])
    fs, rs = (RunDir(p).load_snapshot(r["events"]) for p in (follower, replayer))
    assert np.array_equal(fs.second_orders, rs.second_orders)
    assert np.array_equal(fs.second_gmv, rs.second_gmv)
    assert np.array_equal(fs.brand_gmv, rs.brand_gmv)
    assert f["ingest"]["skipped_seqs"] == 0 and f["ingest"]["rejected"] == 0
    assert subprocess.run([*TICKER, "verify", str(follower)], env=ENV, capture_output=True).returncode == 0


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory()


def test_follower_equals_the_replayer(broker, tmp_path):
    follower = start_follow(broker.url, tmp_path / "fr", "--scenario", "smoke")
    wait_ready(follower)
    finish(replay(broker.url, tmp_path / "src"))
    finish(follower)
    assert_same_run(tmp_path / "fr", tmp_path / "src")


def wait_ready(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until follow's MQTT session exists (it prints nothing before its first order): the
    broker's own count of connected clients says so ($SYS, the probe being the other one)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{os.getpid()}")
    seen: list[int] = []
    client.on_message = lambda c, u, m: seen.append(int(m.payload or 0))
    port = int(proc.args[proc.args.index("--mqtt") + 1].rsplit(":", 1)[1])
    client.connect("127.0.0.1", port)
    client.subscribe("$SYS/broker/clients/connected")
    client.loop_start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1].decode()
            if seen and seen[-1] >= 2:  # the probe and the follower
                return
            time.sleep(0.05)  # polling the broker's own count, bounded
        raise TimeoutError(f"follow did not connect to the broker within {timeout} s")
    finally:
        client.loop_stop()
        client.disconnect()


def test_an_arrival_ordered_replay_followed_equals_it(broker, tmp_path):
    """replay --disorder realistic (shuffled, delayed, late and duplicated orders): the follower,
    folding by event time with the same profile, announces the same live, final and correction
    milestones and the same totals."""
    follower = start_follow(broker.url, tmp_path / "fr", "--scenario", "smoke", "--disorder", "realistic")
    wait_ready(follower)
    finish(replay(broker.url, tmp_path / "src", "--disorder", "realistic"))
    finish(follower)
    assert_same_run(tmp_path / "fr", tmp_path / "src")
    summary = orjson.loads((tmp_path / "fr.json").read_bytes())
    assert summary["event_time"]["late_orders"] > 0 and summary["event_time"]["duplicates_dropped"] > 0
    assert {m["timing"] for m in summary["milestones"]} >= {"live", "final"}


def wait_mid_stream(follower: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until the follower's log holds 100 kB (it is mid-stream); fails if it dies or times out."""
    deadline = time.monotonic() + timeout
    while not any(p.stat().st_size > 100_000 for p in log.glob("*.seg")):
        assert time.monotonic() < deadline and follower.poll() is None
        time.sleep(0.02)  # polling the follower's log, bounded


def test_a_sigkilled_follower_restarts_and_still_equals_the_replayer(broker, tmp_path):
    follower = start_follow(broker.url, tmp_path / "fr", "--scenario", "smoke")
    wait_ready(follower)
    source = replay(broker.url, tmp_path / "src", "--speed", "100")
    wait_mid_stream(follower, tmp_path / "fr" / "log")
    assert source.poll() is None, "the replay ended before the kill: raise its length"
    follower.send_signal(signal.SIGKILL)
    follower.communicate(timeout=30)
    restarted = start_follow(broker.url, tmp_path / "fr", "--scenario", "smoke")
    finish(source)
    finish(restarted)
    assert_same_run(tmp_path / "fr", tmp_path / "src")


def test_a_broker_restart_mid_stream_loses_nothing(broker, tmp_path):
    follower = start_follow(broker.url, tmp_path / "fr", "--scenario", "smoke")
    wait_ready(follower)
    source = replay(broker.url, tmp_path / "src", "--speed", "100")
    wait_mid_stream(follower, tmp_path / "fr" / "log")
    assert source.poll() is None, "the replay ended before the broker restart: raise its length"
    broker.stop()
    broker.start()
    finish(source)
    finish(follower)
    assert_same_run(tmp_path / "fr", tmp_path / "src")


@pytest.mark.slow
def test_double11_2021_followed_through_a_sigkill_and_a_broker_restart(broker, tmp_path):
    """The issue's case: the 2021 festival (scale 0.0001, 256,000 events, 290,000 brands) with the
    realistic disorder, paced, the follower killed once and the broker restarted once mid-stream;
    no --scenario (the follower learns it from the replay's status)."""
    follower = start_follow(broker.url, tmp_path / "fr", "--disorder", "realistic")
    wait_ready(follower)
    source = replay(broker.url, tmp_path / "src", "--speed", "40000", "--disorder", "realistic",
                    scale="0.0001", scenario="double11-2021")
    log = tmp_path / "fr" / "log"
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 1_000_000 for p in log.glob("*.seg")):
        assert time.monotonic() < deadline and follower.poll() is None
        time.sleep(0.05)  # polling the follower's log, bounded
    assert source.poll() is None, "the replay ended before the kill"
    follower.send_signal(signal.SIGKILL)
    follower.communicate(timeout=30)
    follower = start_follow(broker.url, tmp_path / "fr", "--disorder", "realistic")
    wait_ready(follower)
    assert source.poll() is None, "the replay ended before the broker restart"
    broker.stop()
    broker.start()
    finish(source, timeout=900)
    finish(follower, timeout=900)
    assert_same_run(tmp_path / "fr", tmp_path / "src")


def test_reassembly_gives_source_order_and_drops_redeliveries():
    scenario = resolve("smoke")
    stream = next(generate(scenario, seed=None, scale=0.05, batch_size=5000))
    parts = [stream.take(np.flatnonzero(stream.brand % 8 == p)) for p in range(8)]
    rng = np.random.default_rng(7)
    pieces = [p.slice(i, i + 300) for p in parts for i in range(0, len(p), 300)]
    order = rng.permutation(len(pieces))
    r = Reassembler(0)
    out = [r.add(pieces[i]) for i in order]
    out += [r.add(pieces[i]) for i in order[:5]]  # redelivered
    joined = OrderBatch.concat(out)
    assert joined.equals(stream)
    assert r.duplicates == sum(len(pieces[i]) for i in order[:5])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-3, 3)), min_size=1, max_size=12))
def test_a_frame_with_an_amount_of_the_wrong_sign_is_refused_before_it_is_logged(rows):
    """A placed order needs a positive amount, a refund a negative one — zero is neither: a
    frame the fold would refuse must be dead-lettered, not logged and then refused."""
    scenario = resolve("smoke")
    base = next(generate(scenario, seed=None, scale=0.05, batch_size=len(rows)))
    columns = {name: np.array(column) for name, column in base.columns().items()}
    columns["kind"] = np.array([kind for kind, _ in rows], base.kind.dtype)
    columns["amount_minor"] = np.array([amount for _, amount in rows], np.int64)
    frame = OrderBatch(**columns)
    wrong = any(amount <= 0 if kind == 0 else amount >= 0 for kind, amount in rows)
    reason = frame_refusal(frame, scenario, len(catalogue(scenario).names))
    assert reason == ("an amount of the wrong sign (placed orders positive, refunds negative)"
                      if wrong else None)
